//! What a train would leave with, if the gate lets it (SPEC §1). Whether
//! it may leave is the gate's question (`domain::gate`).

use super::ids::{Sha, TrainId};

/// The stored facts a departure depends on.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// A train (or tag deploy) that has not finished.
    pub running: Option<TrainId>,
    /// The newest allocated SHA.
    pub head: Option<&'a Sha>,
    /// Whether `head` was allocated after the SHA in production.
    pub head_is_new: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Depart(Sha),
    Skip(Skip),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Running(TrainId),
    /// A train with this head is listing its commits to leave.
    Departing(Sha),
    NothingAllocated,
    NothingNew,
}

pub fn decide(facts: &Facts) -> Decision {
    if let Some(id) = facts.running {
        return Decision::Skip(Skip::Running(id));
    }
    let Some(head) = facts.head else {
        return Decision::Skip(Skip::NothingAllocated);
    };
    if !facts.head_is_new {
        return Decision::Skip(Skip::NothingNew);
    }
    Decision::Depart(head.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(decide(&f), Decision::Depart(s.clone()));
    }

    #[test]
    fn a_running_train_skips() {
        let s = sha();
        let f = Facts {
            running: Some(TrainId(2)),
            head: Some(&s),
            head_is_new: true,
        };
        assert_eq!(decide(&f), Decision::Skip(Skip::Running(TrainId(2))));
    }

    #[test]
    fn nothing_new_means_no_train() {
        let s = sha();
        let f = Facts {
            head: Some(&s),
            head_is_new: false,
            ..Facts::default()
        };
        assert_eq!(decide(&f), Decision::Skip(Skip::NothingNew));
        assert_eq!(
            decide(&Facts::default()),
            Decision::Skip(Skip::NothingAllocated)
        );
    }
}
