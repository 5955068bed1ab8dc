//! Refusals: a command that cannot be done. `Display` is the one-line reply.

use thiserror::Error;

use super::ids::{ChatUser, TrainId};

fn names(users: &[ChatUser]) -> String {
    if users.is_empty() {
        return "nobody (only ops can !force it)".into();
    }
    users
        .iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("only ops can !{command}")]
    NotOps { command: &'static str },
    #[error("no train is waiting for approval")]
    NothingToApprove,
    #[error("train {train} is in {stage}; approvals open after the last lower environment")]
    NotYetAwaitingApproval { train: TrainId, stage: String },
    #[error(
        "only the authors of train {train} can approve it: {}",
        names(may_approve)
    )]
    NotAnAuthor {
        train: TrainId,
        may_approve: Vec<ChatUser>,
    },
    #[error(
        "only the authors of train {train} or ops can veto it: {}",
        names(may_approve)
    )]
    NotAnAuthorToVeto {
        train: TrainId,
        may_approve: Vec<ChatUser>,
    },
    #[error("you already approved train {train}")]
    AlreadyApproved { train: TrainId },
    #[error("train {train} is already deploying to production; use !rollback if it goes wrong")]
    TooLateToVeto { train: TrainId },
    #[error("no train is running")]
    NothingToVeto,
    #[error("train {train} is in {stage}; !force is possible once it awaits approval (or !bad it)")]
    ForceDuringLower { train: TrainId, stage: String },
    #[error("train {train} is already deploying to production")]
    AlreadyInProduction { train: TrainId },
    #[error("nothing to force; use !force <sha>")]
    NothingToForce,
    #[error("nothing to cancel")]
    NothingToCancel,
    #[error(
        "you have {queued} branch builds waiting for a node (at most {max}); !cancel one or wait"
    )]
    TooManyQueued { queued: usize, max: usize },
    #[error("train {0} is running; !cancel it first")]
    TrainRunning(TrainId),
    #[error("a train with {0} is about to leave")]
    Departing(String),
    #[error("departures are frozen by {}{}; !unfreeze first", by.mention(), reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Frozen {
        by: ChatUser,
        reason: Option<String>,
    },
    #[error("nothing new since production ({0}); no train")]
    NothingNew(String),
    #[error("no SHA allocated yet; nothing to depart")]
    NothingAllocated,
    #[error("no train {0}")]
    NoSuchTrain(TrainId),
    /// A button or `!good N` of a train that is no longer the running one:
    /// it never counts for another train (SPEC §11 "train identity").
    #[error("train {0} already ended")]
    TrainEnded(TrainId),
    #[error("nothing in production yet to roll back")]
    NothingToRollBack,
    #[error("already frozen by {}; !unfreeze first", by.mention())]
    AlreadyFrozen { by: ChatUser },
    #[error("departures are not frozen")]
    NotFrozen,
    #[error("{0}")]
    Forge(String),
    /// The gate said wait or no (SPEC §11).
    #[error("{0}")]
    Held(super::gate::Hold),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_one_line() {
        let r = Refusal::NotAnAuthor {
            train: TrainId(3),
            may_approve: vec![ChatUser::new("alice"), ChatUser::new("bob")],
        };
        assert_eq!(
            r.to_string(),
            "only the authors of train #3 can approve it: alice, bob"
        );
        assert_eq!(
            Refusal::NotOps { command: "force" }.to_string(),
            "only ops can !force"
        );
        let f = Refusal::Frozen {
            by: ChatUser::new("ops"),
            reason: Some("incident".into()),
        };
        assert_eq!(
            f.to_string(),
            "departures are frozen by ops (incident); !unfreeze first"
        );
        assert_eq!(
            Refusal::TrainEnded(TrainId(12)).to_string(),
            "train #12 already ended"
        );
    }
}
