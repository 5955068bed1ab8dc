//! Whether a train leaves now, and with what (SPEC §1).

use super::ids::{Sha, TrainId};
use super::train::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    /// `!depart` by ops.
    Manual,
}

/// The stored facts a departure depends on.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub frozen: bool,
    /// A train (or tag deploy) that has not finished.
    pub running: Option<TrainId>,
    /// The newest allocated SHA.
    pub head: Option<&'a Sha>,
    /// Whether `head` was allocated after the SHA in production.
    pub head_is_new: bool,
    /// The last train that carried `head`, and how it ended.
    pub head_last_train: Option<(TrainId, &'a Outcome)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Depart(Sha),
    Skip(Skip),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Frozen,
    Running(TrainId),
    NothingAllocated,
    NothingNew,
    /// The clock does not ship code again that was turned down.
    Rejected {
        sha: Sha,
        train: TrainId,
        outcome: &'static str,
    },
}

pub fn decide(trigger: Trigger, facts: &Facts) -> Decision {
    if facts.frozen {
        return Decision::Skip(Skip::Frozen);
    }
    if let Some(id) = facts.running {
        return Decision::Skip(Skip::Running(id));
    }
    let Some(head) = facts.head else {
        return Decision::Skip(Skip::NothingAllocated);
    };
    if !facts.head_is_new {
        return Decision::Skip(Skip::NothingNew);
    }
    if trigger == Trigger::Schedule
        && let Some((train, outcome)) = facts.head_last_train
        && outcome.rejects_sha()
    {
        return Decision::Skip(Skip::Rejected {
            sha: head.clone(),
            train,
            outcome: outcome.word(),
        });
    }
    Decision::Depart(head.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ChatUser;

    fn sha() -> Sha {
        Sha::new(&"a".repeat(40)).unwrap()
    }

    #[test]
    fn departs_with_a_new_head() {
        let s = sha();
        let f = Facts {
            head: Some(&s),
            head_is_new: true,
            ..Facts::default()
        };
        assert_eq!(decide(Trigger::Schedule, &f), Decision::Depart(s.clone()));
    }

    #[test]
    fn frozen_and_running_skip_first() {
        let s = sha();
        let f = Facts {
            frozen: true,
            running: Some(TrainId(2)),
            head: Some(&s),
            head_is_new: true,
            ..Facts::default()
        };
        assert_eq!(decide(Trigger::Manual, &f), Decision::Skip(Skip::Frozen));
        let f = Facts {
            running: Some(TrainId(2)),
            ..f
        };
        let f = Facts { frozen: false, ..f };
        assert_eq!(
            decide(Trigger::Schedule, &f),
            Decision::Skip(Skip::Running(TrainId(2)))
        );
    }

    #[test]
    fn nothing_new_means_no_train() {
        let s = sha();
        let f = Facts {
            head: Some(&s),
            head_is_new: false,
            ..Facts::default()
        };
        assert_eq!(
            decide(Trigger::Manual, &f),
            Decision::Skip(Skip::NothingNew)
        );
        assert_eq!(
            decide(Trigger::Schedule, &Facts::default()),
            Decision::Skip(Skip::NothingAllocated)
        );
    }

    #[test]
    fn the_clock_does_not_reship_a_vetoed_head_but_ops_can() {
        let s = sha();
        let vetoed = Outcome::Vetoed {
            by: ChatUser::new("bob"),
            reason: None,
        };
        let f = Facts {
            head: Some(&s),
            head_is_new: true,
            head_last_train: Some((TrainId(4), &vetoed)),
            ..Facts::default()
        };
        assert_eq!(
            decide(Trigger::Schedule, &f),
            Decision::Skip(Skip::Rejected {
                sha: s.clone(),
                train: TrainId(4),
                outcome: "vetoed"
            })
        );
        assert_eq!(decide(Trigger::Manual, &f), Decision::Depart(s.clone()));
    }

    #[test]
    fn a_cancelled_head_goes_again_on_schedule() {
        let s = sha();
        let cancelled = Outcome::Cancelled {
            by: ChatUser::new("ops"),
        };
        let f = Facts {
            head: Some(&s),
            head_is_new: true,
            head_last_train: Some((TrainId(4), &cancelled)),
            ..Facts::default()
        };
        assert_eq!(decide(Trigger::Schedule, &f), Decision::Depart(s.clone()));
    }
}
