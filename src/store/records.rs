//! What is stored besides trains.

use serde::{Deserialize, Serialize};

use crate::domain::clock::Ts;
use crate::domain::ids::{ChatUser, Sha, TrainId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub seq: u64,
    pub sha: Sha,
    pub at: Ts,
}

/// What runs in production now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Production {
    pub sha: Sha,
    pub train: TrainId,
    pub since: Ts,
    /// Allocation sequence of `sha`; SHAs allocated after it are waiting.
    pub alloc_seq: Option<u64>,
    /// What ran before, for `!rollback`.
    pub previous: Option<Sha>,
    pub previous_train: Option<TrainId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    pub by: ChatUser,
    pub reason: Option<String>,
    pub at: Ts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Ts,
    pub user: ChatUser,
    /// The command as typed, or the action (e.g. "button good").
    pub action: String,
    /// "accepted", or the refusal.
    pub result: String,
}

/// A step process group, recorded before the step's command starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningProcess {
    pub pgid: i32,
    /// Only kill after a restart on the same boot: pids are reused.
    pub boot_id: Option<String>,
}

/// Proof that this production attempt was claimed exactly once; the
/// production runner takes it as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductionClaim {
    pub train: TrainId,
    pub attempt: u32,
}
