//! The deploy train: a value with a closed `Stage`, changed only by
//! `handle(input, plan, now)`, which returns effects as data.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::approval::{ApprovalPolicy, Author};
use super::clock::Ts;
use super::ids::{ChatUser, Sha, TrainId};
use super::refusal::Refusal;

/// A commit a train carries, as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub sha: Sha,
    pub author_name: String,
    pub author_email: String,
    /// The forge login (GitHub), when known.
    pub author_login: Option<String>,
    /// First line of the message.
    pub subject: String,
    /// The whole message (reverts are detected from it).
    pub message: String,
}

/// The shape of the pipeline: how many steps each phase has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub envs: Vec<EnvPlan>,
    pub production_deploy: usize,
    pub production_smoke: usize,
    pub approval: ApprovalPolicy,
    pub approval_timeout: TimeDelta,
    /// Production verification after smoke (SPEC §15); no steps: none.
    pub verify: VerifyPlan,
}

/// `[production] verify`: the checks' steps and their window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPlan {
    pub steps: usize,
    pub window: TimeDelta,
    pub every: TimeDelta,
    pub delay: TimeDelta,
    pub failure_limit: u32,
    pub auto_rollback: bool,
}

impl Default for VerifyPlan {
    fn default() -> Self {
        VerifyPlan {
            steps: 0,
            window: TimeDelta::minutes(10),
            every: TimeDelta::minutes(1),
            delay: TimeDelta::zero(),
            failure_limit: 0,
            auto_rollback: true,
        }
    }
}

impl VerifyPlan {
    /// How many checks the window holds: one at `delay`, then one every
    /// `every`, each starting before the window ends.
    pub fn total(&self) -> u32 {
        let span = (self.window - self.delay).num_milliseconds().max(1);
        let every = self.every.num_milliseconds().max(1);
        ((span + every - 1) / every) as u32
    }

    /// When check `k` (from 0) is due for a window that began at `since`.
    pub fn due(&self, since: Ts, k: u32) -> Ts {
        since + self.delay + self.every * k as i32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPlan {
    pub name: String,
    pub deploy: usize,
    pub acceptance: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Lower(usize),
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Deploy,
    Acceptance,
    Smoke,
    /// `[production] verify`: a check of production after smoke.
    Verify,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Deploy => "deploy",
            Phase::Acceptance => "acceptance",
            Phase::Smoke => "smoke",
            Phase::Verify => "verify",
        }
    }
}

/// Which step of which phase of which environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPos {
    pub target: Target,
    pub phase: Phase,
    pub step: usize,
}

/// Which parts of the pipeline a train runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Route {
    /// Lower envs, approval, production: the hourly train.
    Full,
    /// Lower envs only (a staging tag).
    LowerOnly,
    /// Production steps only (`!force <sha>`, `!rollback`, a production tag,
    /// `!deploy … to production`).
    ProductionOnly,
    /// One lower environment's deploy and acceptance (`!deploy … to staging`).
    Env(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Scheduled,
    Departed {
        by: ChatUser,
    },
    ForcedSha {
        by: ChatUser,
    },
    Rollback {
        by: ChatUser,
    },
    Tag {
        name: String,
        pushed_by: String,
    },
    /// `!deploy <git_ref> to <env>`.
    Deploy {
        by: ChatUser,
        git_ref: String,
        env: String,
    },
}

impl Kind {
    /// What kind of run it is, one word for machines (`/api/status`):
    /// `scheduled`, `departed`, `forced`, `rollback`, `tag` or `deploy`.
    pub fn word(&self) -> &'static str {
        match self {
            Kind::Scheduled => "scheduled",
            Kind::Departed { .. } => "departed",
            Kind::ForcedSha { .. } => "forced",
            Kind::Rollback { .. } => "rollback",
            Kind::Tag { .. } => "tag",
            Kind::Deploy { .. } => "deploy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Running(StepPos),
    /// At the door of an environment: the gate is asked before it enters
    /// (a lock or a production window may hold it here).
    Waiting {
        target: Target,
        since: Ts,
    },
    AwaitingApproval {
        since: Ts,
    },
    /// Smoke passed (production is live): the verify checks run every
    /// interval for the window; the checks are kept in `Train::verify`.
    Verifying {
        since: Ts,
    },
    Done(Outcome),
}

/// A train's production verification (SPEC §15): every fact the schedule
/// of its checks is computed from, so a restart resumes what is left of
/// the window and never deploys again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// When smoke passed: the window starts.
    pub since: Ts,
    /// When the window ends.
    pub until: Ts,
    /// How many checks the window holds.
    pub total: u32,
    /// Checks that finished, and how many of them failed.
    pub checks: u32,
    pub failures: u32,
    /// When the next check is due (None: no more in the window).
    pub next: Option<Ts>,
    /// The last finished check: when, and whether it was green.
    pub last: Option<(Ts, bool)>,
    /// The step of the check running now.
    pub running: Option<usize>,
    /// How it ended (None: still verifying).
    pub result: Option<VerifyResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyResult {
    /// The window stayed green.
    Green,
    /// More checks failed than `verify_failure_limit`; `auto_rollback`:
    /// the previous SHA is redeployed by the bot.
    Red { auto_rollback: bool },
    /// Ended by a person (`!rollback`, `!cancel`).
    Stopped { by: ChatUser },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Production deploy and smoke passed.
    Deployed,
    /// A staging tag went through the lower environments.
    LowerDone,
    Vetoed {
        by: ChatUser,
        reason: Option<String>,
    },
    Failed {
        at: StepPos,
        error: String,
    },
    Expired,
    Cancelled {
        by: ChatUser,
    },
    /// The bot died while a production step ran; never re-run by itself.
    Interrupted {
        at: StepPos,
    },
}

impl Outcome {
    /// Code the clock must not ship again on its own.
    pub fn rejects_sha(&self) -> bool {
        matches!(
            self,
            Outcome::Vetoed { .. }
                | Outcome::Failed { .. }
                | Outcome::Expired
                | Outcome::Cancelled { .. }
        )
    }
    /// Every outcome's word, in the order the metrics list them.
    pub const WORDS: [&'static str; 7] = [
        "deployed",
        "done",
        "vetoed",
        "failed",
        "expired",
        "cancelled",
        "interrupted",
    ];

    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::LowerDone => "done",
            Outcome::Vetoed { .. } => "vetoed",
            Outcome::Failed { .. } => "failed",
            Outcome::Expired => "expired",
            Outcome::Cancelled { .. } => "cancelled",
            Outcome::Interrupted { .. } => "interrupted",
        }
    }
}

/// One step run, for the run page and durations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub pos: StepPos,
    pub attempt: u32,
    pub started: Ts,
    pub finished: Option<Ts>,
    pub ok: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub user: ChatUser,
    pub at: Ts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Train {
    pub id: TrainId,
    pub sha: Sha,
    /// What production ran when the train left (None: nothing yet).
    pub base: Option<Sha>,
    pub commits: Vec<Commit>,
    /// Commits a later commit of this train verifiably reverts (SPEC §11).
    pub reverted: Vec<Sha>,
    pub authors: Vec<Author>,
    pub kind: Kind,
    pub route: Route,
    pub stage: Stage,
    pub approvals: Vec<Approval>,
    pub forced_by: Option<ChatUser>,
    /// Bumped by each run of the production steps (a forced re-run after an
    /// interruption is attempt 2); the once-only claim is per attempt.
    pub production_attempt: u32,
    pub created: Ts,
    pub stage_since: Ts,
    pub production_started: Option<Ts>,
    pub finished: Option<Ts>,
    pub steps: Vec<StepRecord>,
    /// A later rollback took this train's SHA out of production.
    pub rolled_back: bool,
    /// A gate rule this deploy overrode (`!force` outside the deploy
    /// windows: "window").
    #[serde(default)]
    pub overrode: Option<String>,
    /// The lower environments' names when the train left, in plan order:
    /// `Target::Lower(i)` is an index, and a restart with a changed config
    /// must tell a moved environment from a removed one (SPEC §12). Empty
    /// in records written before it was kept.
    #[serde(default)]
    pub envs: Vec<String>,
    /// What was already said while the train waited for approval
    /// (reminders, escalation, expiry notice; SPEC §14).
    #[serde(default)]
    pub nudged: super::rhythm::Nudged,
    /// Production verification after smoke, when `[production] verify`
    /// was set (SPEC §15). None in records written before it was kept.
    #[serde(default)]
    pub verify: Option<Verification>,
}

/// What happened to the train, as something the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Atomically claim the production run for this attempt before the
    /// first production step; the engine refuses to run production without it.
    ClaimProduction {
        attempt: u32,
    },
    RunStep(StepPos),
    /// Kill whatever step of this train runs now.
    StopStep,
    AskApproval,
    /// A new approval was recorded.
    Approved {
        by: ChatUser,
    },
    /// The last production deploy step passed: this SHA is live.
    ProductionLive,
    Ended(Outcome),
    /// Picked up again after a restart.
    Resumed,
    /// The train stands at the door of `target`: ask the gate, then send
    /// `Input::Enter` when it says go.
    AtDoor(Target),
    /// Smoke passed and production verification began.
    Verifying,
    /// A verify check finished (green or red).
    Checked {
        ok: bool,
    },
}

/// Who is acting, and whether they are ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: ChatUser,
    pub ops: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    StepFinished {
        pos: StepPos,
        ok: bool,
        error: Option<String>,
    },
    Good(Actor),
    Bad {
        actor: Actor,
        reason: Option<String>,
    },
    Force(Actor),
    Cancel(Actor),
    /// The gate let the train through the door it waits at.
    Enter,
    /// The clock reached `next_wakeup`.
    Wakeup,
    /// The bot restarted with this train in its stored stage.
    Restarted,
    /// `!rollback` while the train verifies: verification ends.
    StopVerify {
        by: ChatUser,
    },
}

pub struct NewTrain {
    pub id: TrainId,
    pub sha: Sha,
    pub base: Option<Sha>,
    pub commits: Vec<Commit>,
    /// Commits of `commits` that a later one verifiably reverts
    /// (`approval::reverted` of the claims the forge confirmed).
    pub reverted: Vec<Sha>,
    pub authors: Vec<Author>,
    pub kind: Kind,
    pub route: Route,
}

impl Train {
    /// A train leaves: its first step starts (or approval, when there are no
    /// lower steps).
    pub fn depart(new: NewTrain, plan: &Plan, now: Ts) -> (Train, Vec<Effect>) {
        let forced_by = match &new.kind {
            Kind::ForcedSha { by } | Kind::Rollback { by } => Some(by.clone()),
            Kind::Deploy { by, .. } if new.route == Route::ProductionOnly => Some(by.clone()),
            _ => None,
        };
        let mut train = Train {
            id: new.id,
            sha: new.sha,
            base: new.base,
            commits: new.commits,
            reverted: new.reverted,
            authors: new.authors,
            kind: new.kind,
            route: new.route,
            stage: Stage::AwaitingApproval { since: now },
            approvals: Vec::new(),
            forced_by,
            production_attempt: 0,
            created: now,
            stage_since: now,
            production_started: None,
            finished: None,
            steps: Vec::new(),
            rolled_back: false,
            overrode: None,
            envs: plan.envs.iter().map(|e| e.name.clone()).collect(),
            nudged: Default::default(),
            verify: None,
        };
        let effects = match (&train.route, &train.kind) {
            // `!deploy … to production` waits at production's door, where
            // a lock holds it (SPEC §11); `!force`, `!rollback` and a tag
            // that left its queue go straight in.
            (Route::ProductionOnly, Kind::Deploy { .. }) => {
                train.stop_at_door(Target::Production, now)
            }
            (Route::ProductionOnly, _) => train.start_production(plan, now),
            (Route::Full | Route::LowerOnly, _) => match first_pos(plan, Target::Lower(0)) {
                Some(pos) if pos.target != Target::Production => {
                    train.stop_at_door(pos.target, now)
                }
                _ => train.after_lower(plan, now),
            },
            (Route::Env(i), _) => match first_pos(plan, Target::Lower(*i)) {
                Some(pos) if pos.target == Target::Lower(*i) => train.stop_at_door(pos.target, now),
                _ => train.end(Outcome::LowerDone, now),
            },
        };
        (train, effects)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.stage {
            Stage::Done(o) => Some(o),
            _ => None,
        }
    }

    /// When the engine must call back with `Input::Wakeup`.
    pub fn next_wakeup(&self, plan: &Plan) -> Option<Ts> {
        match self.stage {
            Stage::AwaitingApproval { since } if self.route == Route::Full => {
                Some(since + plan.approval_timeout)
            }
            Stage::Verifying { .. } => {
                let v = self.verify.as_ref()?;
                if v.running.is_some() {
                    return None; // the check's end comes as an input
                }
                Some(v.next.map_or(v.until, |n| n.min(v.until)))
            }
            _ => None,
        }
    }

    /// The step running now and when it started.
    pub fn running_step(&self) -> Option<(StepPos, Ts)> {
        let Stage::Running(pos) = self.stage else {
            return None;
        };
        self.steps
            .iter()
            .rev()
            .find(|r| r.pos == pos && r.finished.is_none())
            .map(|r| (pos, r.started))
    }

    /// Authors whose `!good` counts.
    pub fn approvers(&self) -> Vec<&ChatUser> {
        self.authors
            .iter()
            .filter(|a| a.can_approve())
            .filter_map(|a| a.chat.as_ref())
            .collect()
    }

    pub fn is_author(&self, user: &ChatUser) -> bool {
        self.approvers().contains(&user)
    }

    pub fn has_approved(&self, user: &ChatUser) -> bool {
        self.approvals.iter().any(|a| &a.user == user)
    }

    /// Approvers who have not said `!good` yet.
    pub fn waiting_for(&self) -> Vec<&ChatUser> {
        self.approvers()
            .into_iter()
            .filter(|u| !self.has_approved(u))
            .collect()
    }

    fn approved(&self, policy: ApprovalPolicy) -> bool {
        let approvers = self.approvers();
        if approvers.is_empty() {
            return false;
        }
        match policy {
            ApprovalPolicy::AllAuthors => approvers.iter().all(|u| self.has_approved(u)),
            ApprovalPolicy::AnyAuthor => approvers.iter().any(|u| self.has_approved(u)),
        }
    }

    pub fn handle(&mut self, input: Input, plan: &Plan, now: Ts) -> Result<Vec<Effect>, Refusal> {
        match input {
            Input::StepFinished { pos, ok, error } => {
                Ok(self.step_finished(pos, ok, error, plan, now))
            }
            Input::Good(actor) => self.good(actor, plan, now),
            Input::Bad { actor, reason } => self.bad(actor, reason, now),
            Input::Force(actor) => self.force(actor, plan, now),
            Input::Cancel(actor) => self.cancel(actor, now),
            Input::Enter => Ok(self.enter(plan, now)),
            Input::Wakeup => Ok(self.wakeup(plan, now)),
            Input::Restarted => Ok(self.restarted(plan, now)),
            Input::StopVerify { by } => Ok(self.stop_verify(by, now)),
        }
    }

    fn step_finished(
        &mut self,
        pos: StepPos,
        ok: bool,
        error: Option<String>,
        plan: &Plan,
        now: Ts,
    ) -> Vec<Effect> {
        if pos.phase == Phase::Verify {
            return self.check_step_finished(pos, ok, plan, now);
        }
        if self.stage != Stage::Running(pos) {
            return Vec::new(); // a late report from a step we already stopped
        }
        if let Some(rec) = self.steps.iter_mut().rev().find(|r| r.pos == pos) {
            rec.finished = Some(now);
            rec.ok = Some(ok);
        }
        if !ok {
            let error = error.unwrap_or_else(|| "failed".into());
            return self.end(Outcome::Failed { at: pos, error }, now);
        }
        let mut effects = Vec::new();
        let last_prod_deploy = pos.target == Target::Production
            && pos.phase == Phase::Deploy
            && pos.step + 1 == plan.production_deploy;
        if last_prod_deploy {
            effects.push(Effect::ProductionLive);
        }
        match next_pos(plan, pos) {
            // `!deploy` to one environment ends when that environment is done.
            next if matches!(self.route, Route::Env(_))
                && next.is_none_or(|n| n.target != pos.target) =>
            {
                effects.extend(self.end(Outcome::LowerDone, now))
            }
            Some(next) if next.target == Target::Production && pos.target != Target::Production => {
                effects.extend(self.after_lower(plan, now))
            }
            Some(next) if next.target != pos.target => {
                effects.extend(self.stop_at_door(next.target, now))
            }
            Some(next) => effects.extend(self.run(next, now)),
            None if pos.target == Target::Production => {
                effects.extend(self.smoke_passed(plan, now))
            }
            None => effects.extend(self.after_lower(plan, now)),
        }
        effects
    }

    /// The lower environments are behind us.
    fn after_lower(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        if self.route == Route::LowerOnly {
            return self.end(Outcome::LowerDone, now);
        }
        // Approvals carried over from a vetoed train may be enough (SPEC §15).
        if self.route == Route::Full && self.approved(plan.approval) {
            return self.stop_at_door(Target::Production, now);
        }
        self.set_stage(Stage::AwaitingApproval { since: now }, now);
        vec![Effect::AskApproval]
    }

    /// Approvals carried over from a vetoed train (SPEC §15), recorded for
    /// the authors who may approve this one. A train already awaiting
    /// approval that needs no more goes on to production's door.
    pub fn carry_approvals(&mut self, carried: &[Approval], plan: &Plan, now: Ts) -> Vec<Effect> {
        for a in carried {
            if self.is_author(&a.user) && !self.has_approved(&a.user) {
                self.approvals.push(a.clone());
            }
        }
        match self.stage {
            Stage::AwaitingApproval { .. }
                if self.route == Route::Full && self.approved(plan.approval) =>
            {
                self.stop_at_door(Target::Production, now)
            }
            _ => Vec::new(),
        }
    }

    fn start_production(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        self.production_attempt += 1;
        self.production_started = Some(now);
        let mut effects = vec![Effect::ClaimProduction {
            attempt: self.production_attempt,
        }];
        match first_pos(plan, Target::Production) {
            Some(pos) => effects.extend(self.run(pos, now)),
            None => {
                effects.push(Effect::ProductionLive);
                effects.extend(self.smoke_passed(plan, now));
            }
        }
        effects
    }

    fn run(&mut self, pos: StepPos, now: Ts) -> Vec<Effect> {
        self.set_stage(Stage::Running(pos), now);
        self.record_run(pos, now)
    }

    /// A new run of the step at `pos` starts: recorded (its number counts
    /// the runs before it), and the engine is asked to run it.
    fn record_run(&mut self, pos: StepPos, now: Ts) -> Vec<Effect> {
        let attempt = self.steps.iter().filter(|r| r.pos == pos).count() as u32 + 1;
        self.steps.push(StepRecord {
            pos,
            attempt,
            started: now,
            finished: None,
            ok: None,
        });
        vec![Effect::RunStep(pos)]
    }

    fn end(&mut self, outcome: Outcome, now: Ts) -> Vec<Effect> {
        self.set_stage(Stage::Done(outcome.clone()), now);
        self.finished = Some(now);
        vec![Effect::Ended(outcome)]
    }

    fn set_stage(&mut self, stage: Stage, now: Ts) {
        // Moving from one step to the next of the same env and phase is not a
        // new stage for "time in stage".
        let same_place = match (&self.stage, &stage) {
            (Stage::Running(a), Stage::Running(b)) => a.target == b.target,
            _ => false,
        };
        if !same_place {
            self.stage_since = now;
        }
        self.stage = stage;
    }

    fn good(&mut self, actor: Actor, plan: &Plan, now: Ts) -> Result<Vec<Effect>, Refusal> {
        match &self.stage {
            Stage::AwaitingApproval { .. } if self.route == Route::Full => {}
            Stage::Running(pos) if pos.target != Target::Production => {
                return Err(Refusal::NotYetAwaitingApproval {
                    train: self.id,
                    stage: pos_label(plan, *pos),
                });
            }
            _ => return Err(Refusal::NothingToApprove),
        }
        if !self.is_author(&actor.user) {
            let may_approve = self.approvers().into_iter().cloned().collect();
            return Err(Refusal::NotAnAuthor {
                train: self.id,
                may_approve,
            });
        }
        if self.has_approved(&actor.user) {
            return Err(Refusal::AlreadyApproved { train: self.id });
        }
        self.approvals.push(Approval {
            user: actor.user.clone(),
            at: now,
        });
        let mut effects = vec![Effect::Approved { by: actor.user }];
        if self.approved(plan.approval) {
            effects.extend(self.stop_at_door(Target::Production, now));
        }
        Ok(effects)
    }

    fn bad(
        &mut self,
        actor: Actor,
        reason: Option<String>,
        now: Ts,
    ) -> Result<Vec<Effect>, Refusal> {
        let running_step = match &self.stage {
            Stage::Running(pos) if pos.target == Target::Production => {
                return Err(Refusal::TooLateToVeto { train: self.id });
            }
            Stage::Running(_) => true,
            Stage::AwaitingApproval { .. } | Stage::Waiting { .. } => false,
            Stage::Verifying { .. } => return Err(Refusal::TooLateToVeto { train: self.id }),
            Stage::Done(_) => return Err(Refusal::NothingToVeto),
        };
        if !actor.ops && !self.is_author(&actor.user) {
            let may_approve = self.approvers().into_iter().cloned().collect();
            return Err(Refusal::NotAnAuthorToVeto {
                train: self.id,
                may_approve,
            });
        }
        let mut effects = if running_step {
            vec![Effect::StopStep]
        } else {
            Vec::new()
        };
        effects.extend(self.end(
            Outcome::Vetoed {
                by: actor.user,
                reason,
            },
            now,
        ));
        Ok(effects)
    }

    fn force(&mut self, actor: Actor, plan: &Plan, now: Ts) -> Result<Vec<Effect>, Refusal> {
        if !actor.ops {
            return Err(Refusal::NotOps { command: "force" });
        }
        match &self.stage {
            Stage::AwaitingApproval { .. } if self.route == Route::Full => {}
            Stage::Waiting {
                target: Target::Production,
                ..
            } => {}
            Stage::Waiting { target, .. } => {
                return Err(Refusal::ForceDuringLower {
                    train: self.id,
                    stage: format!("waiting before {}", target_name(plan, *target)),
                });
            }
            Stage::Done(Outcome::Expired | Outcome::Interrupted { .. })
                if self.route != Route::LowerOnly => {}
            Stage::Running(pos) if pos.target != Target::Production => {
                return Err(Refusal::ForceDuringLower {
                    train: self.id,
                    stage: pos_label(plan, *pos),
                });
            }
            Stage::Running(_) | Stage::Verifying { .. } => {
                return Err(Refusal::AlreadyInProduction { train: self.id });
            }
            _ => return Err(Refusal::NothingToForce),
        }
        self.forced_by = Some(actor.user);
        self.finished = None;
        Ok(self.start_production(plan, now))
    }

    fn cancel(&mut self, actor: Actor, now: Ts) -> Result<Vec<Effect>, Refusal> {
        if !actor.ops {
            return Err(Refusal::NotOps { command: "cancel" });
        }
        let effects = match &self.stage {
            // Production is live: ops end the verification, not the deploy.
            Stage::Verifying { .. } => return Ok(self.stop_verify(actor.user, now)),
            Stage::Running(_) => vec![Effect::StopStep],
            Stage::AwaitingApproval { .. }
            | Stage::Waiting { .. }
            | Stage::Done(Outcome::Interrupted { .. }) => Vec::new(),
            Stage::Done(_) => return Err(Refusal::NothingToCancel),
        };
        Ok(effects
            .into_iter()
            .chain(self.end(Outcome::Cancelled { by: actor.user }, now))
            .collect())
    }

    fn wakeup(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        if let Stage::Verifying { .. } = self.stage {
            return self.verify_wakeup(plan, now);
        }
        match self.next_wakeup(plan) {
            Some(at) if now >= at => self.end(Outcome::Expired, now),
            _ => Vec::new(),
        }
    }

    fn restarted(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        match self.stage {
            Stage::Verifying { .. } => {
                // Checks only read production: a check cut short runs
                // again; production's own steps never do.
                let mut effects = vec![Effect::Resumed];
                if let Some(v) = self.verify.as_mut()
                    && v.running.take().is_some()
                {
                    v.next = Some(now);
                }
                effects.extend(self.verify_wakeup(plan, now));
                effects
            }
            Stage::Running(pos) if pos.target == Target::Production => {
                self.end(Outcome::Interrupted { at: pos }, now)
            }
            Stage::Running(pos) => {
                // Lower-env deploys are by SHA, so running the step again is safe.
                let mut effects = vec![Effect::Resumed];
                effects.extend(self.run(pos, now));
                effects
            }
            Stage::AwaitingApproval { .. } => vec![Effect::Resumed],
            Stage::Waiting { target, .. } => vec![Effect::Resumed, Effect::AtDoor(target)],
            Stage::Done(_) => Vec::new(),
        }
    }

    /// Stops at the door of `target`; the engine asks the gate.
    fn stop_at_door(&mut self, target: Target, now: Ts) -> Vec<Effect> {
        self.set_stage(Stage::Waiting { target, since: now }, now);
        vec![Effect::AtDoor(target)]
    }

    /// The gate said go: through the door.
    fn enter(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        match self.stage {
            Stage::Waiting {
                target: Target::Production,
                ..
            } => self.start_production(plan, now),
            Stage::Waiting { target, .. } => match first_pos(plan, target) {
                Some(pos) => self.run(pos, now),
                None => self.after_lower(plan, now),
            },
            _ => Vec::new(), // a late go for a train that moved on
        }
    }

    /// Smoke passed: the train is deployed, or verifies first.
    fn smoke_passed(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        let vp = plan.verify;
        // A rollback restores what ran before; verifying it could only
        // "roll back" to the code it replaces.
        if vp.steps == 0 || matches!(self.kind, Kind::Rollback { .. }) {
            return self.end(Outcome::Deployed, now);
        }
        let total = vp.total();
        self.verify = Some(Verification {
            since: now,
            until: now + vp.window,
            total,
            checks: 0,
            failures: 0,
            next: Some(vp.due(now, 0)),
            last: None,
            running: None,
            result: None,
        });
        self.set_stage(Stage::Verifying { since: now }, now);
        let mut effects = vec![Effect::Verifying];
        effects.extend(self.verify_wakeup(plan, now));
        effects
    }

    /// A verify timer: start the check that is due, or end a window that
    /// is over.
    fn verify_wakeup(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        let vp = plan.verify;
        let Some(v) = self.verify.as_mut() else {
            return self.end(Outcome::Deployed, now);
        };
        if v.running.is_some() {
            return Vec::new();
        }
        if now >= v.until || vp.steps == 0 {
            v.result = Some(VerifyResult::Green);
            v.next = None;
            return self.end(Outcome::Deployed, now);
        }
        match v.next {
            Some(due) if now >= due => {
                // The next slot after now: slots missed while the bot was
                // down are not made up in a burst.
                let k = (0..v.total).find(|&k| vp.due(v.since, k) > now);
                v.next = k.map(|k| vp.due(v.since, k)).filter(|n| *n < v.until);
                v.running = Some(0);
                self.run_check_step(0, now)
            }
            _ => Vec::new(),
        }
    }

    fn run_check_step(&mut self, step: usize, now: Ts) -> Vec<Effect> {
        let pos = StepPos {
            target: Target::Production,
            phase: Phase::Verify,
            step,
        };
        self.record_run(pos, now)
    }

    fn check_step_finished(&mut self, pos: StepPos, ok: bool, plan: &Plan, now: Ts) -> Vec<Effect> {
        let running = matches!(self.stage, Stage::Verifying { .. })
            && self
                .verify
                .as_ref()
                .is_some_and(|v| v.running == Some(pos.step));
        if !running {
            return Vec::new(); // a late report of a check we stopped
        }
        if let Some(rec) = self.steps.iter_mut().rev().find(|r| r.pos == pos) {
            rec.finished = Some(now);
            rec.ok = Some(ok);
        }
        let vp = plan.verify;
        let Some(v) = self.verify.as_mut() else {
            return Vec::new();
        };
        if ok && pos.step + 1 < vp.steps {
            v.running = Some(pos.step + 1);
            return self.run_check_step(pos.step + 1, now);
        }
        v.running = None;
        v.checks += 1;
        v.last = Some((now, ok));
        if !ok {
            v.failures += 1;
        }
        let mut effects = vec![Effect::Checked { ok }];
        if v.failures > vp.failure_limit {
            v.result = Some(VerifyResult::Red {
                auto_rollback: vp.auto_rollback,
            });
            v.next = None;
            // The clock must not send this head again (SPEC §11); the
            // rollback that follows also marks it.
            if vp.auto_rollback {
                self.rolled_back = true;
            }
            effects.extend(self.end(Outcome::Deployed, now));
            return effects;
        }
        effects.extend(self.verify_wakeup(plan, now));
        effects
    }

    /// A person ends the verification (`!rollback`, `!cancel`); the train
    /// stays deployed.
    fn stop_verify(&mut self, by: ChatUser, now: Ts) -> Vec<Effect> {
        if !matches!(self.stage, Stage::Verifying { .. }) {
            return Vec::new();
        }
        let mut effects = Vec::new();
        if let Some(v) = self.verify.as_mut() {
            if v.running.take().is_some() {
                effects.push(Effect::StopStep);
            }
            v.next = None;
            v.result = Some(VerifyResult::Stopped { by });
        }
        effects.extend(self.end(Outcome::Deployed, now));
        effects
    }

    /// The train verifies production: until when.
    pub fn verifying_until(&self) -> Option<Ts> {
        match self.stage {
            Stage::Verifying { .. } => self.verify.as_ref().map(|v| v.until),
            _ => None,
        }
    }

    /// The environment whose door the train waits at.
    pub fn waiting_at(&self) -> Option<Target> {
        match self.stage {
            Stage::Waiting { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The steps' durations so far.
    pub fn duration(&self, now: Ts) -> TimeDelta {
        self.finished.unwrap_or(now) - self.created
    }
}

/// The log file of a step's run `attempt` (1 for the first): `name`, then
/// `name-run-2`, … (the engine writes it, the run page reads it).
pub fn log_name(name: &str, attempt: u32) -> String {
    match attempt {
        0 | 1 => name.to_string(),
        n => format!("{name}-run-{n}"),
    }
}

/// "staging deploy", "production smoke": where a step is, for people.
pub fn pos_label(plan: &Plan, pos: StepPos) -> String {
    format!("{} {}", target_name(plan, pos.target), pos.phase.name())
}

pub fn target_name(plan: &Plan, target: Target) -> &str {
    match target {
        Target::Lower(i) => plan.envs.get(i).map(|e| e.name.as_str()).unwrap_or("?"),
        Target::Production => "production",
    }
}

/// How many steps `phase` of `target` has.
pub fn phase_len(plan: &Plan, target: Target, phase: Phase) -> usize {
    match (target, phase) {
        (Target::Lower(i), Phase::Deploy) => plan.envs.get(i).map_or(0, |e| e.deploy),
        (Target::Lower(i), Phase::Acceptance) => plan.envs.get(i).map_or(0, |e| e.acceptance),
        (Target::Lower(_), Phase::Smoke) => 0,
        (Target::Production, Phase::Deploy) => plan.production_deploy,
        (Target::Production, Phase::Smoke) => plan.production_smoke,
        (Target::Production, Phase::Acceptance) => 0,
        (Target::Production, Phase::Verify) => plan.verify.steps,
        (Target::Lower(_), Phase::Verify) => 0,
    }
}

/// Every step position in pipeline order, from `from` on.
fn positions(plan: &Plan, from: Target) -> impl Iterator<Item = StepPos> + '_ {
    let start = match from {
        Target::Lower(i) => i,
        Target::Production => plan.envs.len(),
    };
    (start..=plan.envs.len()).flat_map(move |i| {
        let target = if i < plan.envs.len() {
            Target::Lower(i)
        } else {
            Target::Production
        };
        let phases = match target {
            Target::Lower(_) => [Phase::Deploy, Phase::Acceptance],
            Target::Production => [Phase::Deploy, Phase::Smoke],
        };
        phases.into_iter().flat_map(move |phase| {
            (0..phase_len(plan, target, phase)).map(move |step| StepPos {
                target,
                phase,
                step,
            })
        })
    })
}

fn first_pos(plan: &Plan, from: Target) -> Option<StepPos> {
    positions(plan, from).next()
}

fn next_pos(plan: &Plan, pos: StepPos) -> Option<StepPos> {
    positions(plan, pos.target).skip_while(|p| *p != pos).nth(1)
}

#[path = "train_restart.rs"]
mod restart;

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "train_verify_tests.rs"]
mod verify_tests;
