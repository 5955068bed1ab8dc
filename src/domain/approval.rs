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

/// Commits of this list reverted by a later commit of the same list
/// (`This reverts commit <sha>`).
pub fn reverted_shas(commits: &[Commit]) -> Vec<Sha> {
    let mut reverted = Vec::new();
    for (i, c) in commits.iter().enumerate() {
        for target in reverts_in(&c.message) {
            if let Some(earlier) = commits[..i]
                .iter()
                .find(|e| e.sha.as_str().starts_with(&target))
            {
                reverted.push(earlier.sha.clone());
            }
        }
    }
    reverted
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
        let commits = vec![a.clone(), b];
        let reverted = reverted_shas(&commits);
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
        let reverted = reverted_shas(&commits);
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
        assert!(reverted_shas(&[r]).is_empty());
    }
}
