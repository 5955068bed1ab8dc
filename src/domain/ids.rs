//! Validated identifiers: once constructed they are safe to store, show and
//! pass to adapters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("'{0}' is not a SHA (7 to 40 hex characters)")]
    BadSha(String),
    #[error("'{0}' is not a train (use #N or N)")]
    BadTrain(String),
    #[error("'{0}' is not a valid branch name")]
    BadBranch(String),
}

/// A full commit id as the forge reports it (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha(String);

impl Sha {
    /// A commit id as given by the forge: 40 (or 64) lowercase hex characters.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let ok = (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(Sha(s.to_ascii_lowercase()))
        } else {
            Err(IdError::BadSha(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The 7-character form used in chat.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
    /// The whole SHA, as a prefix the forge resolves.
    pub fn as_prefix(&self) -> ShaPrefix {
        ShaPrefix(self.0.clone())
    }
}

impl fmt::Display for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA as a user typed it: 7 to 40 hex characters, resolved by the forge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShaPrefix(String);

impl ShaPrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ShaPrefix {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(ShaPrefix(s.to_ascii_lowercase()))
        } else {
            Err(IdError::BadSha(s.to_string()))
        }
    }
}

impl fmt::Display for ShaPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Train number, shown as `#N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrainId(pub u64);

impl FromStr for TrainId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let digits = s.strip_prefix('#').unwrap_or(s);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::BadTrain(s.to_string()));
        }
        digits
            .parse()
            .map(TrainId)
            .map_err(|_| IdError::BadTrain(s.to_string()))
    }
}

tokio::task_local! {
    /// The pipeline whose engine runs this task, when several share the bot:
    /// its trains show as `web#12` (SPEC §16). Each engine runs inside its
    /// own scope, so every message it formats carries the label without
    /// threading a name through every message function.
    pub static TRAIN_LABEL: std::sync::Arc<str>;
}

impl fmt::Display for TrainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match TRAIN_LABEL.try_with(|label| write!(f, "{label}#{}", self.0)) {
            Ok(written) => written,
            Err(_) => write!(f, "#{}", self.0),
        }
    }
}

/// A chat user id or name, as the chat adapter reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatUser(pub String);

impl ChatUser {
    pub fn new(s: impl Into<String>) -> Self {
        ChatUser(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How chat text shows this user: a Slack user id as a mention
    /// (`<@U0123ABC>`, which Slack renders as the name), a console name as
    /// it is. `Display` stays the bare id (logs, the web, the API).
    pub fn mention(&self) -> String {
        mention(&self.0)
    }
}

/// [`ChatUser::mention`] of a user id kept as a string.
pub fn mention(user: &str) -> String {
    if is_slack_user_id(user) {
        format!("<@{user}>")
    } else {
        user.to_string()
    }
}

/// Chat text for the web and the API, which show users by bare id: every
/// `<@U…>` mention made by [`mention`] becomes the id again.
pub fn unmention(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('>') {
            Some(end) if is_slack_user_id(&after[..end]) => {
                out.push_str(&after[..end]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("<@");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `U…` or `W…`, then capitals and digits, with at least one digit: a Slack
/// user id. Console names (`alice`, `ops`) never look like that.
pub fn is_slack_user_id(user: &str) -> bool {
    let mut chars = user.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && user.len() >= 3
        && chars
            .clone()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && chars.any(|c| c.is_ascii_digit())
}

impl fmt::Display for ChatUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A branch name that is a valid git ref name and safe to hand to `git` and
/// to steps (as an environment variable only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BranchName(String);

impl BranchName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BranchName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if is_valid_branch(s) {
            Ok(BranchName(s.to_string()))
        } else {
            Err(IdError::BadBranch(s.chars().take(60).collect()))
        }
    }
}

impl fmt::Display for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `git check-ref-format` rules, stricter where a name could be mistaken for
/// an option or a path.
fn is_valid_branch(s: &str) -> bool {
    const FORBIDDEN: &[char] = &[
        ' ', '~', '^', ':', '?', '*', '[', '\\', '$', ';', '&', '|', '`', '\'', '"', '<', '>', '(',
        ')', '{', '}', '!',
    ];
    if s.is_empty() || s.len() > 200 || s.starts_with('-') || s.starts_with('/') || s.ends_with('/')
    {
        return false;
    }
    if s.ends_with('.')
        || s.ends_with(".lock")
        || s.contains("..")
        || s.contains("@{")
        || s == "@"
        || s.contains("//")
    {
        return false;
    }
    if s.chars().any(|c| c.is_control() || FORBIDDEN.contains(&c)) {
        return false;
    }
    s.split('/')
        .all(|part| !part.starts_with('.') && !part.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_shows_mentions_as_bare_ids() {
        assert_eq!(
            unmention("frozen by <@U0OPS1> (<@nobody> <@U0123ABC>"),
            "frozen by U0OPS1 (<@nobody> U0123ABC"
        );
        assert_eq!(unmention("a <@ b"), "a <@ b");
    }

    #[test]
    fn slack_user_ids_are_shown_as_mentions_and_names_plainly() {
        assert_eq!(ChatUser::new("U0123ABC").mention(), "<@U0123ABC>");
        assert_eq!(ChatUser::new("W111").mention(), "<@W111>");
        for plain in ["alice", "ops", "USA", "U", "U12a", "C0123ABC"] {
            assert_eq!(ChatUser::new(plain).mention(), plain);
        }
        assert_eq!(ChatUser::new("U0123ABC").to_string(), "U0123ABC");
    }

    #[test]
    fn hostile_branch_names_are_refused() {
        for bad in [
            "; touch /tmp/pwned",
            "$(id)",
            "--upload-pack=x",
            "../x",
            "a..b",
            "a b",
            "x\u{7}",
            "-x",
            "a/.b",
            "a.lock",
            "",
            "`id`",
            "a@{1}",
        ] {
            assert!(bad.parse::<BranchName>().is_err(), "{bad:?} accepted");
        }
        assert!("x".repeat(201).parse::<BranchName>().is_err());
    }

    #[test]
    fn ordinary_branch_names_are_accepted() {
        for good in ["feature/x", "main", "fix-123", "user/alice/thing_2", "v1.2"] {
            assert!(good.parse::<BranchName>().is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn train_ids_parse_with_or_without_hash() {
        assert_eq!("#12".parse::<TrainId>().unwrap(), TrainId(12));
        assert_eq!("7".parse::<TrainId>().unwrap(), TrainId(7));
        assert!("#".parse::<TrainId>().is_err());
        let label = std::sync::Arc::from("web");
        let shown = TRAIN_LABEL.sync_scope(label, || TrainId(12).to_string());
        assert_eq!(shown, "web#12");
        assert_eq!(TrainId(12).to_string(), "#12");
        assert!("x1".parse::<TrainId>().is_err());
    }

    #[test]
    fn sha_prefixes_are_7_to_40_hex() {
        assert!("abc1234".parse::<ShaPrefix>().is_ok());
        assert!("abc123".parse::<ShaPrefix>().is_err());
        assert!("ghijklm".parse::<ShaPrefix>().is_err());
        assert!("a".repeat(41).parse::<ShaPrefix>().is_err());
        assert_eq!(Sha::new(&"A".repeat(40)).unwrap().short(), "aaaaaaa");
    }
}
