//! The engine's side of the gate (SPEC §11): gathers the facts, asks the
//! pure `domain::gate`, and says a wait or refusal once, audited.

use crate::domain::gate::{self, Facts, Frozen, Hold, Rejected, Road, Verdict};
use crate::domain::ids::{ChatUser, TrainId};
use crate::domain::lock::{self, Lock};
use crate::domain::refusal::Refusal;
use crate::domain::train::{Input, Outcome, Stage, Target, target_name};
use crate::store::{AuditEntry, Freeze};

use super::Engine;

/// What the gate reads from the store, owned so `Facts` can borrow it.
pub(super) struct GateState {
    freeze: Option<Freeze>,
    interrupted: Option<TrainId>,
}

/// The road's extras, known only to the caller.
#[derive(Default)]
pub(super) struct Ask<'a> {
    pub actor: Option<&'a ChatUser>,
    pub on_main: Option<(&'a str, bool)>,
    pub rejected: Option<Rejected<'a>>,
    pub tag_problem: Option<&'a str>,
}

impl Engine {
    /// One run at a time: a train running, or one listing its commits to
    /// leave, refuses a new one.
    pub(super) fn busy(&self) -> Option<Refusal> {
        if let Some(r) = self.train_busy() {
            return Some(r);
        }
        self.departing
            .as_ref()
            .map(|sha| Refusal::Departing(sha.short().to_string()))
    }

    /// The running train refuses a new run: a verifying one by the gate's
    /// rule *verifying* (SPEC §15), any other as running.
    pub(super) fn train_busy(&self) -> Option<Refusal> {
        if let Some(t) = &self.train {
            // A verifying train holds other deploys by the gate's rule.
            if let Some(until) = t.verifying_until() {
                let hold = gate::verifying_hold(t.id, until, self.cfg.train.timezone);
                return Some(Refusal::Held(hold));
            }
            return Some(Refusal::TrainRunning(t.id));
        }
        None
    }
}

impl GateState {
    pub fn interrupted(&self) -> Option<TrainId> {
        self.interrupted
    }
}

impl Engine {
    pub(super) fn gate_state(&self) -> anyhow::Result<GateState> {
        let interrupted = self.store.last_train()?.and_then(|t| {
            let open =
                matches!(t.stage, Stage::Done(Outcome::Interrupted { .. })) && !t.rolled_back;
            open.then_some(t.id)
        });
        Ok(GateState {
            freeze: self.store.freeze()?,
            interrupted,
        })
    }

    /// Asks the gate whether `road` may move now.
    pub(super) fn ask_gate(&self, road: &Road, st: &GateState, ask: Ask) -> Verdict {
        let facts = Facts {
            now: self.now(),
            tz: self.cfg.train.timezone,
            prefix: &self.cfg.bot.command_prefix,
            main_branch: &self.cfg.forge.main_branch,
            actor: ask.actor,
            production_role: self.cfg.production_role.as_deref(),
            interrupted: st.interrupted,
            frozen: st.freeze.as_ref().map(|f| Frozen {
                by: &f.by,
                reason: f.reason.as_deref(),
            }),
            locks: &self.locks,
            windows: &self.cfg.production.windows,
            rejected_head: ask.rejected,
            on_main: ask.on_main,
            tag_problem: ask.tag_problem,
            verifying: self
                .train
                .as_ref()
                .and_then(|t| Some((t.id, t.verifying_until()?))),
        };
        gate::gate(road, &facts)
    }

    /// Says a hold once (keyed by what it says), and audits it then.
    pub(super) async fn say_hold_once(
        &mut self,
        train: Option<TrainId>,
        what: &str,
        hold: &Hold,
    ) -> anyhow::Result<()> {
        let text = format!("⏸ {what}: {hold}");
        if self.store.first_notice(&format!("hold:{what}:{hold}"))? {
            self.store.audit(&AuditEntry {
                at: self.now(),
                user: ChatUser::new("trainbot"),
                action: what.to_string(),
                result: format!("held: {hold}"),
            })?;
            self.say(train, text).await;
        }
        self.remember_hold(&format!("{what}: {hold}"))
    }

    /// The holds a lock on `env` caused were said once; once it is gone, a
    /// new lock holding the same road is news again.
    pub(super) fn forget_lock_holds(&self, env: &str) -> anyhow::Result<()> {
        let locked = format!(":{env} is locked by ");
        self.store.forget_notices("hold:", |k| {
            k.contains(&locked) && k.ends_with("(rule: lock)")
        })?;
        Ok(())
    }

    /// What `!why` repeats: the last wait or refusal, kept in the store.
    pub(super) fn remember_hold(&mut self, line: &str) -> anyhow::Result<()> {
        if self.last_hold.as_deref() != Some(line) {
            self.store.set_last_hold(line)?;
            self.last_hold = Some(line.to_string());
        }
        Ok(())
    }

    /// A train at the door of an environment goes through when the gate
    /// says go; otherwise it waits, said once. Called after every input
    /// and timer.
    pub(super) async fn check_door(&mut self) -> anyhow::Result<()> {
        loop {
            let Some(train) = &self.train else {
                self.door_hold = None;
                return Ok(());
            };
            let Some(target) = train.waiting_at() else {
                self.door_hold = None;
                return Ok(());
            };
            let id = train.id;
            let env = target_name(&self.plan, target).to_string();
            let road = match target {
                Target::Production => Road::Production,
                Target::Lower(_) => Road::Enter { env: &env },
            };
            let st = self.gate_state()?;
            match self.ask_gate(&road, &st, Ask::default()) {
                Verdict::Go { .. } => {
                    if self.door_hold.take().is_some() {
                        let what = format!("train {id} waits before {env}");
                        self.store
                            .forget_notices(&format!("hold:{what}:"), |_| true)?;
                    }
                    self.train_input(Input::Enter).await?;
                }
                Verdict::Wait(hold) | Verdict::No(hold) => {
                    let what = format!("train {id} waits before {env}");
                    self.say_hold_once(Some(id), &what, &hold).await?;
                    let changed = self.door_hold.as_ref() != Some(&hold);
                    self.door_hold = Some(hold);
                    if changed {
                        self.publish();
                        self.show_status().await;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Timed locks that ran out are ended, and said.
    pub(super) async fn expire_locks(&mut self) -> anyhow::Result<()> {
        let now = self.now();
        let ended: Vec<Lock> = self
            .locks
            .iter()
            .filter(|l| !l.holds(now))
            .cloned()
            .collect();
        for l in ended {
            self.store.remove_lock(&l.env)?;
            self.locks.retain(|x| x.env != l.env);
            self.forget_lock_holds(&l.env)?;
            self.say(
                None,
                format!(
                    "🔓 the lock on {} by {} ended ({})",
                    l.env,
                    l.by.mention(),
                    l.reason
                ),
            )
            .await;
        }
        Ok(())
    }

    /// When a hold may end by itself: a lock's end or a window's opening.
    pub(super) fn gate_wakeup(&self) -> Option<crate::domain::clock::Ts> {
        let now = self.now();
        let door = self.door_hold.as_ref().and_then(|h| h.until);
        [door, lock::next_expiry(&self.locks, now)]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }
}
