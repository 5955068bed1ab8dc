//! Approval policies, who may approve a train, and how authors become chat
//! users (SPEC §3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{ChatUser, Sha};
use super::train::Commit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalPolicy {
    /// Every author who can approve must say `!good`.
    AllAuthors,
    /// One author's `!good` is enough.
    AnyAuthor,
}

/// A commit author of a train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub name: String,
    pub email: String,
    /// The chat user they are, when known; without one they cannot approve.
    pub chat: Option<ChatUser>,
    /// Every commit of theirs in the train was reverted by a later one.
    pub only_reverted: bool,
}

impl Author {
    pub fn can_approve(&self) -> bool {
        self.chat.is_some() && !self.only_reverted
    }
}

/// How commit authors are matched to chat users, before any adapter lookup.
pub struct Identities<'a> {
    /// `[people]`: commit email or forge login -> chat user.
    pub people: &'a BTreeMap<String, String>,
    /// On the console, `alice@example.com` is `alice`.
    pub console: bool,
}

impl Identities<'_> {
    /// Rule 1 (`[people]`) and rule 3 (console); `None` means the adapter may
    /// look the email up (rule 2), else the author stays unmentioned.
    pub fn resolve(&self, email: &str, login: Option<&str>) -> Option<ChatUser> {
        let by_people = self
            .people
            .iter()
            .find(|(k, _)| {
                k.eq_ignore_ascii_case(email) || login.is_some_and(|l| k.eq_ignore_ascii_case(l))
            })
            .map(|(_, v)| ChatUser::new(v.clone()));
        by_people.or_else(|| {
            let local = email.split('@').next().unwrap_or("");
            let usable = !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_alphanumeric() || "._-+".contains(c));
            (self.console && usable).then(|| ChatUser::new(local))
        })
    }
}

/// The train's authors in commit order, one entry per email, with `chat`
/// filled by `resolve`.
pub fn authors(
    commits: &[Commit],
    reverted: &[Sha],
    mut resolve: impl FnMut(&Commit) -> Option<ChatUser>,
) -> Vec<Author> {
    let mut out: Vec<Author> = Vec::new();
    for c in commits {
        let live = !reverted.contains(&c.sha);
        let email = c.author_email.to_ascii_lowercase();
        if let Some(a) = out.iter_mut().find(|a| a.email == email) {
            a.only_reverted &= !live;
            continue;
        }
        out.push(Author {
            name: c.author_name.clone(),
            email,
            chat: resolve(c),
            only_reverted: !live,
        });
    }
    out
}

/// A later commit whose message says it reverts an earlier one of the same
/// list (`This reverts commit <sha>`). Only a claim: the forge must confirm
/// that `reverting` undoes exactly `reverted`'s change (SPEC §11) before it
/// counts, since anyone can write that sentence into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertClaim {
    pub reverting: Sha,
    pub reverted: Sha,
}

/// The revert claims of this list's messages, in the order of the reverting
/// commits; a claim naming a commit outside the list reverts nothing here.
pub fn revert_claims(commits: &[Commit]) -> Vec<RevertClaim> {
    let mut claims = Vec::new();
    for (i, c) in commits.iter().enumerate() {
        for target in reverts_in(&c.message) {
            if let Some(earlier) = commits[..i]
                .iter()
                .find(|e| e.sha.as_str().starts_with(&target))
            {
                let claim = RevertClaim {
                    reverting: c.sha.clone(),
                    reverted: earlier.sha.clone(),
                };
                if !claims.contains(&claim) {
                    claims.push(claim);
                }
            }
        }
    }
    claims
}

/// The commits that stay reverted, given the claims the forge verified (in
/// the order `revert_claims` gave them). A revert that is itself reverted
/// later ("Reapply …") undoes nothing, so its target is live again and its
/// author is asked.
pub fn reverted(verified: &[RevertClaim]) -> Vec<Sha> {
    let mut out: Vec<Sha> = Vec::new();
    // Newest reverting commit first: whether a commit is reverted depends only
    // on claims made by commits after it, which are then already settled.
    for claim in verified.iter().rev() {
        if !out.contains(&claim.reverting) && !out.contains(&claim.reverted) {
            out.push(claim.reverted.clone());
        }
    }
    out.reverse();
    out
}

fn reverts_in(message: &str) -> impl Iterator<Item = String> + '_ {
    message
        .match_indices("This reverts commit ")
        .filter_map(|(i, m)| {
            let hex: String = message[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            (hex.len() >= 7).then(|| hex.to_ascii_lowercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(n: u8, email: &str, message: &str) -> Commit {
        Commit {
            sha: Sha::new(&format!("{:040x}", n)).unwrap(),
            author_name: email.split('@').next().unwrap().to_uppercase(),
            author_email: email.into(),
            author_login: None,
            subject: message.lines().next().unwrap_or("").into(),
            message: message.into(),
        }
    }

    #[test]
    fn people_map_wins_over_console_rule() {
        let people = BTreeMap::from([("alice@example.com".to_string(), "U0ALICE".to_string())]);
        let ids = Identities {
            people: &people,
            console: true,
        };
        assert_eq!(
            ids.resolve("Alice@Example.com", None),
            Some(ChatUser::new("U0ALICE"))
        );
        assert_eq!(
            ids.resolve("bob@example.com", None),
            Some(ChatUser::new("bob"))
        );
    }

    #[test]
    fn people_map_matches_forge_login() {
        let people = BTreeMap::from([("octo".to_string(), "U0OCTO".to_string())]);
        let ids = Identities {
            people: &people,
            console: false,
        };
        assert_eq!(
            ids.resolve("x@y.z", Some("octo")),
            Some(ChatUser::new("U0OCTO"))
        );
        assert_eq!(ids.resolve("x@y.z", None), None);
    }

    #[test]
    fn reverted_commits_are_found_and_their_authors_not_asked() {
        let a = commit(1, "alice@example.com", "add feature");
        let revert = format!("Revert \"add feature\"\n\nThis reverts commit {}.", a.sha);
        let b = commit(2, "bob@example.com", &revert);
        let commits = vec![a.clone(), b.clone()];
        let claims = revert_claims(&commits);
        assert_eq!(
            claims,
            vec![RevertClaim {
                reverting: b.sha.clone(),
                reverted: a.sha.clone(),
            }]
        );
        // The forge confirmed the claim.
        let reverted = reverted(&claims);
        assert_eq!(reverted, vec![a.sha.clone()]);
        let people = BTreeMap::new();
        let ids = Identities {
            people: &people,
            console: true,
        };
        let authors = authors(&commits, &reverted, |c| ids.resolve(&c.author_email, None));
        assert!(
            !authors[0].can_approve(),
            "alice only has a reverted commit"
        );
        assert!(authors[1].can_approve());
    }

    #[test]
    fn an_author_with_a_live_commit_still_approves() {
        let a1 = commit(1, "alice@example.com", "one");
        let a2 = commit(2, "alice@example.com", "two");
        let r = commit(
            3,
            "bob@example.com",
            &format!("This reverts commit {}.", a1.sha),
        );
        let commits = vec![a1, a2, r];
        let reverted = reverted(&revert_claims(&commits));
        let authors = authors(&commits, &reverted, |_| Some(ChatUser::new("x")));
        assert_eq!(authors.len(), 2);
        assert!(authors[0].can_approve());
    }

    #[test]
    fn a_revert_of_a_commit_outside_the_train_reverts_nothing_here() {
        let r = commit(
            3,
            "bob@example.com",
            &format!("This reverts commit {}.", "f".repeat(40)),
        );
        assert!(revert_claims(&[r]).is_empty());
    }

    #[test]
    fn an_unverified_claim_leaves_the_author_asked() {
        let a = commit(1, "alice@example.com", "add feature");
        let fake = format!("Tidy up\n\nThis reverts commit {}.", a.sha);
        let b = commit(2, "bob@example.com", &fake);
        let commits = vec![a, b];
        assert_eq!(revert_claims(&commits).len(), 1);
        // The forge found that the change is not the inverse: nothing verified.
        let reverted = reverted(&[]);
        let authors = authors(&commits, &reverted, |_| Some(ChatUser::new("x")));
        assert!(authors.iter().all(Author::can_approve), "{authors:?}");
    }

    #[test]
    fn a_reverted_revert_makes_its_target_live_again() {
        let claim = |reverting: u8, reverted: u8| RevertClaim {
            reverting: commit(reverting, "x@example.com", "").sha,
            reverted: commit(reverted, "x@example.com", "").sha,
        };
        let sha = |n: u8| commit(n, "x@example.com", "").sha;
        // 2 reverts 1, 3 reapplies 1 by reverting 2.
        assert_eq!(reverted(&[claim(2, 1), claim(3, 2)]), vec![sha(2)]);
        // ... and 4 reverts 3 again: 1 is reverted in the end.
        assert_eq!(
            reverted(&[claim(2, 1), claim(3, 2), claim(4, 3)]),
            vec![sha(1), sha(3)]
        );
    }
}
