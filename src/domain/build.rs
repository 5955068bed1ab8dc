//! A branch build: checks, deploy to its node, smoke, then a commit status.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::clock::Ts;
use super::ids::{BranchName, ChatUser, Sha};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuildPhase {
    Checks,
    Deploy,
    Smoke,
}

impl BuildPhase {
    pub fn name(self) -> &'static str {
        match self {
            BuildPhase::Checks => "checks",
            BuildPhase::Deploy => "deploy",
            BuildPhase::Smoke => "smoke",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPos {
    pub phase: BuildPhase,
    pub step: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuildStage {
    Queued,
    Running(BuildPos),
    Done(BuildOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuildOutcome {
    /// Good to merge.
    Passed,
    Failed {
        at: BuildPos,
        error: String,
    },
    Superseded {
        by: u64,
    },
    Cancelled {
        by: ChatUser,
    },
    Interrupted,
}

impl BuildOutcome {
    pub fn word(&self) -> &'static str {
        match self {
            BuildOutcome::Passed => "good to merge",
            BuildOutcome::Failed { .. } => "failed",
            BuildOutcome::Superseded { .. } => "superseded",
            BuildOutcome::Cancelled { .. } => "cancelled",
            BuildOutcome::Interrupted => "interrupted",
        }
    }
}

/// Commit status of the build's SHA, as a forge would show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    Error,
}

impl CommitState {
    pub fn word(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildPlan {
    pub checks: usize,
    pub deploy: usize,
    pub smoke: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: u64,
    pub branch: BranchName,
    pub sha: Sha,
    pub requester: ChatUser,
    pub node: Option<String>,
    pub stage: BuildStage,
    pub created: Ts,
    pub started: Option<Ts>,
    pub finished: Option<Ts>,
}

/// What the engine must do next for a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStep {
    Run(BuildPos),
    /// The deploy phase passed: the node now runs this SHA. Then the next
    /// step, or `None` when the build has passed with that.
    Deployed(Option<BuildPos>),
    Done(BuildOutcome),
}

impl Build {
    pub fn new(id: u64, branch: BranchName, sha: Sha, requester: ChatUser, now: Ts) -> Build {
        Build {
            id,
            branch,
            sha,
            requester,
            node: None,
            stage: BuildStage::Queued,
            created: now,
            started: None,
            finished: None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.stage, BuildStage::Done(_))
    }

    pub fn outcome(&self) -> Option<&BuildOutcome> {
        match &self.stage {
            BuildStage::Done(o) => Some(o),
            _ => None,
        }
    }

    pub fn commit_state(&self) -> CommitState {
        match &self.stage {
            BuildStage::Queued | BuildStage::Running(_) => CommitState::Pending,
            BuildStage::Done(BuildOutcome::Passed) => CommitState::Success,
            BuildStage::Done(BuildOutcome::Failed { .. }) => CommitState::Failure,
            BuildStage::Done(_) => CommitState::Error,
        }
    }

    /// The build got its node and starts.
    pub fn start(&mut self, node: &str, plan: BuildPlan, now: Ts) -> BuildStep {
        self.node = Some(node.to_string());
        self.started = Some(now);
        self.advance(None, plan, now)
    }

    pub fn step_finished(
        &mut self,
        pos: BuildPos,
        ok: bool,
        error: Option<String>,
        plan: BuildPlan,
        now: Ts,
    ) -> Option<BuildStep> {
        if self.stage != BuildStage::Running(pos) {
            return None; // a step stopped on purpose
        }
        if !ok {
            return Some(self.end(
                BuildOutcome::Failed {
                    at: pos,
                    error: error.unwrap_or_else(|| "failed".into()),
                },
                now,
            ));
        }
        let next = self.advance(Some(pos), plan, now);
        let deployed = pos.phase == BuildPhase::Deploy && pos.step + 1 == plan.deploy;
        Some(match (deployed, next) {
            (true, BuildStep::Run(p)) => BuildStep::Deployed(Some(p)),
            (true, BuildStep::Done(BuildOutcome::Passed)) => BuildStep::Deployed(None),
            (_, other) => other,
        })
    }

    /// How a build the bot was running when it stopped ends after a
    /// restart: interrupted (it is not re-run), or failed when its step is
    /// no longer in the config ("config changed: deploy step 2 is gone",
    /// SPEC §12).
    pub fn restart_outcome(&self, plan: BuildPlan) -> BuildOutcome {
        let BuildStage::Running(pos) = self.stage else {
            return BuildOutcome::Interrupted;
        };
        let len = match pos.phase {
            BuildPhase::Checks => plan.checks,
            BuildPhase::Deploy => plan.deploy,
            BuildPhase::Smoke => plan.smoke,
        };
        if pos.step < len {
            return BuildOutcome::Interrupted;
        }
        BuildOutcome::Failed {
            at: pos,
            error: format!(
                "config changed: {} step {} is gone",
                pos.phase.name(),
                pos.step + 1
            ),
        }
    }

    pub fn end(&mut self, outcome: BuildOutcome, now: Ts) -> BuildStep {
        self.stage = BuildStage::Done(outcome.clone());
        self.finished = Some(now);
        BuildStep::Done(outcome)
    }

    fn advance(&mut self, after: Option<BuildPos>, plan: BuildPlan, now: Ts) -> BuildStep {
        let all = [
            (BuildPhase::Checks, plan.checks),
            (BuildPhase::Deploy, plan.deploy),
            (BuildPhase::Smoke, plan.smoke),
        ];
        let mut positions = all
            .iter()
            .flat_map(|&(phase, n)| (0..n).map(move |step| BuildPos { phase, step }));
        let next = match after {
            None => positions.next(),
            Some(pos) => positions.skip_while(|p| *p != pos).nth(1),
        };
        match next {
            Some(pos) => {
                self.stage = BuildStage::Running(pos);
                BuildStep::Run(pos)
            }
            None => self.end(BuildOutcome::Passed, now),
        }
    }

    pub fn duration(&self, now: Ts) -> TimeDelta {
        self.finished.unwrap_or(now) - self.started.unwrap_or(self.created)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn build() -> Build {
        let sha = Sha::new(&"c".repeat(40)).unwrap();
        Build::new(
            1,
            "feature/x".parse().unwrap(),
            sha,
            ChatUser::new("dev"),
            DateTime::<Utc>::UNIX_EPOCH,
        )
    }

    const PLAN: BuildPlan = BuildPlan {
        checks: 1,
        deploy: 1,
        smoke: 1,
    };

    fn pos(phase: BuildPhase) -> BuildPos {
        BuildPos { phase, step: 0 }
    }

    #[test]
    fn checks_then_deploy_then_smoke_then_good_to_merge() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let mut b = build();
        assert_eq!(b.commit_state(), CommitState::Pending);
        assert_eq!(
            b.start("n1", PLAN, now),
            BuildStep::Run(pos(BuildPhase::Checks))
        );
        assert_eq!(
            b.step_finished(pos(BuildPhase::Checks), true, None, PLAN, now),
            Some(BuildStep::Run(pos(BuildPhase::Deploy)))
        );
        assert_eq!(
            b.step_finished(pos(BuildPhase::Deploy), true, None, PLAN, now),
            Some(BuildStep::Deployed(Some(pos(BuildPhase::Smoke))))
        );
        assert_eq!(
            b.step_finished(pos(BuildPhase::Smoke), true, None, PLAN, now),
            Some(BuildStep::Done(BuildOutcome::Passed))
        );
        assert_eq!(b.commit_state(), CommitState::Success);
    }

    #[test]
    fn a_failing_check_fails_the_build_before_any_deploy() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let mut b = build();
        b.start("n1", PLAN, now);
        let step = b.step_finished(
            pos(BuildPhase::Checks),
            false,
            Some("exited with code 2".into()),
            PLAN,
            now,
        );
        assert!(
            matches!(step, Some(BuildStep::Done(BuildOutcome::Failed { at, .. })) if at.phase == BuildPhase::Checks)
        );
        assert_eq!(b.commit_state(), CommitState::Failure);
    }

    #[test]
    fn no_smoke_steps_means_deployed_then_done() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let plan = BuildPlan {
            checks: 0,
            deploy: 1,
            smoke: 0,
        };
        let mut b = build();
        assert_eq!(
            b.start("n1", plan, now),
            BuildStep::Run(pos(BuildPhase::Deploy))
        );
        assert_eq!(
            b.step_finished(pos(BuildPhase::Deploy), true, None, plan, now),
            Some(BuildStep::Deployed(None))
        );
        assert_eq!(b.stage, BuildStage::Done(BuildOutcome::Passed));
    }

    #[test]
    fn stale_reports_are_ignored_and_superseded_is_an_error_status() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let mut b = build();
        b.start("n1", PLAN, now);
        assert_eq!(
            b.step_finished(pos(BuildPhase::Smoke), true, None, PLAN, now),
            None
        );
        b.end(BuildOutcome::Superseded { by: 2 }, now);
        assert_eq!(b.commit_state(), CommitState::Error);
    }

    #[test]
    fn a_running_build_whose_step_left_the_config_fails_after_a_restart() {
        let mut b = build();
        b.stage = BuildStage::Running(BuildPos {
            phase: BuildPhase::Deploy,
            step: 1,
        });
        let two = BuildPlan { deploy: 2, ..PLAN };
        assert_eq!(b.restart_outcome(two), BuildOutcome::Interrupted);
        assert_eq!(
            b.restart_outcome(PLAN),
            BuildOutcome::Failed {
                at: BuildPos {
                    phase: BuildPhase::Deploy,
                    step: 1
                },
                error: "config changed: deploy step 2 is gone".into()
            }
        );
    }
}
