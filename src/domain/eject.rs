//! SPEC §15 "Eject the culprit": with `train.on_veto = "eject"` a veto
//! names commits, the train ends vetoed, and at once a partial train leaves
//! with the commits before the first vetoed one. Pure: which commits a veto
//! names, the new head, what rides on, which approvals carry over.

use serde::{Deserialize, Serialize};

use super::approval::Author;
use super::ids::{ChatUser, Sha, TrainId};
use super::train::{Approval, Commit};

/// `[train] on_veto`: what a veto does to the rest of the train.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnVeto {
    /// The whole train stops (the default, as before).
    #[default]
    Stop,
    /// The vetoed commits are ejected; the ones before them ride on.
    Eject,
}

/// Which commits a veto names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// `!bad <sha> <reason>`: that commit of the train.
    Sha(Sha),
    /// The vetoing author's own commits in the train.
    Own(ChatUser),
    /// The whole train (ops, or someone with no commit of theirs in it).
    Whole,
}

/// `!bad [sha] [reason]` against a train's commits: the first word names a
/// commit only if it is 7–40 hex characters and the prefix of exactly one
/// commit of the train, so a reason that starts with "deadbeef" stays a
/// reason. Gives what the veto names and the reason left.
pub fn name_commits(
    commits: &[Commit],
    authors: &[Author],
    vetoer: &ChatUser,
    reason: Option<&str>,
) -> (Named, Option<String>) {
    let text = reason.map(str::trim).unwrap_or("");
    let (first, rest) = match text.split_once(char::is_whitespace) {
        Some((f, r)) => (f, r.trim()),
        None => (text, ""),
    };
    let hex = (7..=40).contains(&first.len()) && first.chars().all(|c| c.is_ascii_hexdigit());
    if hex {
        let want = first.to_ascii_lowercase();
        let mut found = commits.iter().filter(|c| c.sha.as_str().starts_with(&want));
        if let (Some(c), None) = (found.next(), found.next()) {
            let rest = (!rest.is_empty()).then(|| rest.to_string());
            return (Named::Sha(c.sha.clone()), rest);
        }
    }
    let reason = (!text.is_empty()).then(|| text.to_string());
    if commits
        .iter()
        .any(|c| author_of(authors, c) == Some(vetoer))
    {
        (Named::Own(vetoer.clone()), reason)
    } else {
        (Named::Whole, reason)
    }
}

/// The chat user who wrote `commit`, as the train's authors know them.
pub fn author_of<'a>(authors: &'a [Author], commit: &Commit) -> Option<&'a ChatUser> {
    authors
        .iter()
        .find(|a| a.email.eq_ignore_ascii_case(&commit.author_email))
        .and_then(|a| a.chat.as_ref())
}

/// What a veto does under `on_veto = "eject"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ejection {
    /// The commits the veto named, oldest first.
    pub named: Vec<Sha>,
    /// The first named commit and every commit after it: they wait for a
    /// newer head.
    pub ejected: Vec<Sha>,
    /// The new train's head: the newest commit before the first named one,
    /// when there is one and it is newer than production.
    pub head: Option<Sha>,
    /// The commits the new train carries (empty without a head).
    pub rides_on: Vec<Sha>,
    /// Approvals of the vetoed train whose authors still have commits in
    /// the new train.
    pub carried: Vec<Approval>,
    /// Authors of the new train who can approve and have not yet.
    pub waiting_for: Vec<ChatUser>,
}

/// `commits` oldest first, as the train carries them; `production` is the
/// SHA live now (a commit of the train at or after the would-be head means
/// the prefix is not newer than production).
pub fn eject(
    commits: &[Commit],
    authors: &[Author],
    named: &Named,
    approvals: &[Approval],
    production: Option<&Sha>,
) -> Ejection {
    let is_named = |c: &Commit| match named {
        Named::Sha(sha) => &c.sha == sha,
        Named::Own(user) => author_of(authors, c) == Some(user),
        Named::Whole => true,
    };
    let names: Vec<Sha> = commits
        .iter()
        .filter(|c| is_named(c))
        .map(|c| c.sha.clone())
        .collect();
    // Nothing of the train matched (a stale name): the whole train waits.
    let first = commits.iter().position(is_named).unwrap_or(0);
    let ejected = commits[first..].iter().map(|c| c.sha.clone()).collect();
    let live = production.and_then(|p| commits.iter().position(|c| &c.sha == p));
    let newer = |i: usize| live.is_none_or(|j| i > j);
    let head = first.checked_sub(1).filter(|i| newer(*i));
    let prefix = match head {
        Some(i) => &commits[live.map_or(0, |j| j + 1)..=i],
        None => &[][..],
    };
    let mut approvers: Vec<&ChatUser> = Vec::new();
    for c in prefix {
        if let Some(u) = author_of(authors, c)
            && !approvers.contains(&u)
        {
            approvers.push(u);
        }
    }
    let carried: Vec<Approval> = approvals
        .iter()
        .filter(|a| approvers.contains(&&a.user))
        .cloned()
        .collect();
    let waiting_for = approvers
        .into_iter()
        .filter(|u| !carried.iter().any(|a| &a.user == *u))
        .cloned()
        .collect();
    Ejection {
        named: names,
        ejected,
        head: head.map(|i| commits[i].sha.clone()),
        rides_on: prefix.iter().map(|c| c.sha.clone()).collect(),
        carried,
        waiting_for,
    }
}

/// A partial train that must leave after a veto: stored with the vetoed
/// train, so a restart before it departs neither loses it nor sends it
/// twice (it is removed when the new train is saved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The vetoed train.
    pub vetoed: TrainId,
    /// Who vetoed: the new train is sent by them.
    pub by: ChatUser,
    pub head: Sha,
    /// "bbbbbbb (bob), ccccccc (carol)": what was ejected, for the message.
    pub ejected: String,
    pub carried: Vec<Approval>,
}

/// "bbbbbbb (bob), ccccccc (carol)": each ejected commit and who wrote it
/// (their chat name, else their commit name).
pub fn ejected_label(commits: &[Commit], authors: &[Author], ejected: &[Sha]) -> String {
    const SHOWN: usize = 10;
    let mut parts: Vec<String> = commits
        .iter()
        .filter(|c| ejected.contains(&c.sha))
        .take(SHOWN)
        .map(|c| {
            let who = author_of(authors, c)
                .map(|u| u.as_str().to_string())
                .unwrap_or_else(|| c.author_name.clone());
            format!("{} ({who})", c.sha.short())
        })
        .collect();
    if ejected.len() > SHOWN {
        parts.push(format!("and {} more", ejected.len() - SHOWN));
    }
    parts.join(", ")
}

/// What the chat hears once the partial train left: "⏏ ejected bbbbbbb
/// (bob); aaaaaaa rides on in train #2; waiting for: alice".
pub fn rode_on_message(
    ejected: &str,
    head: &Sha,
    train: &str,
    carried: &[ChatUser],
    waiting: &[&ChatUser],
) -> String {
    let mut out = format!(
        "⏏ ejected {ejected}; {} rides on in train {train}",
        head.short()
    );
    if !carried.is_empty() {
        let names: Vec<&str> = carried.iter().map(|u| u.as_str()).collect();
        out.push_str(&format!("; approved already: {}", names.join(", ")));
    }
    if waiting.is_empty() {
        out.push_str("; waiting for nobody");
    } else {
        let names: Vec<&str> = waiting.iter().map(|u| u.as_str()).collect();
        out.push_str(&format!("; waiting for: {}", names.join(", ")));
    }
    out
}

/// When nothing rides on: "⏏ ejected …; nothing rides on (…)".
pub fn nothing_rides_on(ejected: &str, why: &str) -> String {
    format!("⏏ ejected {ejected}; nothing rides on ({why})")
}

#[cfg(test)]
#[path = "eject_tests.rs"]
mod tests;
