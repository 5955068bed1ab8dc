//! The team's rhythm while a train waits for approval (SPEC §14): reminders
//! to the authors who have not answered, one escalation to ops, and one
//! notice five minutes before the train expires.
//!
//! Every time is computed from stored facts: when the train started to wait
//! (`Stage::AwaitingApproval { since }`) and what was already said
//! (`Train::nudged`). The engine sleeps until `next_at`, then asks `due`,
//! which records what it returns; the train is saved before anything is
//! said, so a restart neither repeats nor drops a nudge.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::clock::Ts;
use super::ids::ChatUser;
use super::train::{Plan, Route, Stage, Train};

/// How long before the approval timeout the channel hears the train expires.
pub const EXPIRY_NOTICE: TimeDelta = TimeDelta::minutes(5);

/// `[train] remind_after` and `escalate_after`; None: off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rhythm {
    pub remind_after: Option<TimeDelta>,
    pub escalate_after: Option<TimeDelta>,
}

/// What a train waiting for approval was already told (stored with it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nudged {
    /// Reminder rounds sent: round `k` is due `k × remind_after` after the
    /// approval request.
    #[serde(default)]
    pub reminders: u32,
    #[serde(default)]
    pub escalated: bool,
    #[serde(default)]
    pub expiry_noticed: bool,
}

/// Something to say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nudge {
    /// Remind each of `to` (the approvers who have not answered).
    Remind { to: Vec<ChatUser>, left: TimeDelta },
    /// Tell ops who is missing.
    Escalate {
        missing: Vec<ChatUser>,
        waited: TimeDelta,
    },
    /// The train expires in `EXPIRY_NOTICE`.
    ExpiresSoon { missing: Vec<ChatUser> },
}

/// When the train started waiting for approval and when it expires, if it
/// waits for approval now.
fn waiting(train: &Train, plan: &Plan) -> Option<(Ts, Ts)> {
    match train.stage {
        Stage::AwaitingApproval { since } if train.route == Route::Full => {
            Some((since, since + plan.approval_timeout))
        }
        _ => None,
    }
}

fn waiting_for(train: &Train) -> Vec<ChatUser> {
    train.waiting_for().into_iter().cloned().collect()
}

impl Rhythm {
    /// The next time something is due, or None: the engine's wake-up.
    pub fn next_at(&self, train: &Train, plan: &Plan) -> Option<Ts> {
        let (since, expiry) = waiting(train, plan)?;
        let n = &train.nudged;
        let remind = self
            .remind_after
            .filter(|_| !train.waiting_for().is_empty())
            .map(|every| since + every * (n.reminders as i32 + 1));
        let escalate = self
            .escalate_after
            .filter(|_| !n.escalated)
            .map(|after| since + after);
        let expiry_notice = (!n.expiry_noticed && plan.approval_timeout > EXPIRY_NOTICE)
            .then(|| expiry - EXPIRY_NOTICE);
        [remind, escalate, expiry_notice]
            .into_iter()
            .flatten()
            .filter(|at| *at < expiry)
            .min()
    }

    /// What is due at `now`, recorded on the train as said: save the train
    /// before saying it. Several missed reminder rounds (the bot was down)
    /// make one reminder.
    pub fn due(&self, train: &mut Train, plan: &Plan, now: Ts) -> Vec<Nudge> {
        let Some((since, expiry)) = waiting(train, plan) else {
            return Vec::new();
        };
        if now >= expiry {
            return Vec::new(); // the train expires now
        }
        let mut out = Vec::new();
        let missing = waiting_for(train);
        if let Some(every) = self.remind_after.filter(|e| *e > TimeDelta::zero()) {
            let elapsed = (now - since).num_milliseconds();
            let rounds = (elapsed / every.num_milliseconds()).max(0) as u32;
            if rounds > train.nudged.reminders {
                train.nudged.reminders = rounds;
                if !missing.is_empty() {
                    out.push(Nudge::Remind {
                        to: missing.clone(),
                        left: expiry - now,
                    });
                }
            }
        }
        if let Some(after) = self.escalate_after
            && !train.nudged.escalated
            && now >= since + after
        {
            train.nudged.escalated = true;
            out.push(Nudge::Escalate {
                missing: missing.clone(),
                waited: now - since,
            });
        }
        if !train.nudged.expiry_noticed
            && plan.approval_timeout > EXPIRY_NOTICE
            && now >= expiry - EXPIRY_NOTICE
        {
            train.nudged.expiry_noticed = true;
            out.push(Nudge::ExpiresSoon { missing });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::approval::ApprovalPolicy;
    use crate::domain::test_trains;

    fn plan() -> Plan {
        Plan {
            envs: Vec::new(),
            production_deploy: 1,
            production_smoke: 0,
            approval: ApprovalPolicy::AllAuthors,
            approval_timeout: TimeDelta::minutes(30),
            verify: Default::default(),
        }
    }

    const RHYTHM: Rhythm = Rhythm {
        remind_after: Some(TimeDelta::minutes(10)),
        escalate_after: Some(TimeDelta::minutes(20)),
    };

    fn waiting_train() -> (Train, Ts) {
        let t = test_trains::train(1, 0);
        let since = t.created;
        assert!(!t.waiting_for().is_empty(), "the test train has approvers");
        (t, since)
    }

    /// Walks the wake-ups as the engine would, returning (minute, nudge kind).
    fn walk(rhythm: Rhythm, t: &mut Train, since: Ts) -> Vec<(i64, &'static str)> {
        let plan = plan();
        let mut said = Vec::new();
        while let Some(at) = rhythm.next_at(t, &plan) {
            for n in rhythm.due(t, &plan, at) {
                let kind = match n {
                    Nudge::Remind { .. } => "remind",
                    Nudge::Escalate { .. } => "escalate",
                    Nudge::ExpiresSoon { .. } => "expires",
                };
                said.push(((at - since).num_minutes(), kind));
            }
            assert!(said.len() < 20, "a nudge repeats: {said:?}");
        }
        said
    }

    #[test]
    fn reminders_every_remind_after_one_escalation_and_the_expiry_notice() {
        let (mut t, since) = waiting_train();
        assert_eq!(
            walk(RHYTHM, &mut t, since),
            [
                (10, "remind"),
                (20, "remind"),
                (20, "escalate"),
                (25, "expires")
            ]
        );
    }

    #[test]
    fn off_by_default_but_the_expiry_notice() {
        let (mut t, since) = waiting_train();
        assert_eq!(walk(Rhythm::default(), &mut t, since), [(25, "expires")]);
    }

    #[test]
    fn missed_rounds_make_one_reminder_and_nothing_is_said_twice() {
        let (mut t, since) = waiting_train();
        let plan = plan();
        let late = since + TimeDelta::minutes(21);
        let said = RHYTHM.due(&mut t, &plan, late);
        assert_eq!(said.len(), 2, "{said:?}"); // one reminder, the escalation
        assert!(RHYTHM.due(&mut t, &plan, late).is_empty());
        assert_eq!(
            RHYTHM.next_at(&t, &plan),
            Some(since + TimeDelta::minutes(25))
        );
    }

    #[test]
    fn nothing_once_the_train_no_longer_waits() {
        let (mut t, since) = waiting_train();
        t.stage = Stage::Waiting {
            target: crate::domain::train::Target::Production,
            since,
        };
        assert_eq!(RHYTHM.next_at(&t, &plan()), None);
        assert!(
            RHYTHM
                .due(&mut t, &plan(), since + TimeDelta::minutes(26))
                .is_empty()
        );
    }
}
