//! Environment locks: `!lock staging for 2h db migration` (SPEC §11).

use serde::{Deserialize, Serialize};

use super::clock::Ts;
use super::ids::ChatUser;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// A lower environment's name, or `production`.
    pub env: String,
    pub by: ChatUser,
    pub reason: String,
    pub since: Ts,
    /// A lock taken `for` a while ends by itself then.
    pub until: Option<Ts>,
}

impl Lock {
    pub fn holds(&self, now: Ts) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// The lock that holds `env` now, if any.
pub fn holding<'a>(locks: &'a [Lock], env: &str, now: Ts) -> Option<&'a Lock> {
    locks.iter().find(|l| l.env == env && l.holds(now))
}

/// When the next timed lock ends: the engine wakes then.
pub fn next_expiry(locks: &[Lock], now: Ts) -> Option<Ts> {
    locks
        .iter()
        .filter_map(|l| l.until)
        .filter(|u| *u > now)
        .min()
}
