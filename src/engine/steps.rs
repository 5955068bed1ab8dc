//! Running a train's steps: one at a time, in a spawned task that reports
//! back through the inbox.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::TimeDelta;
use tokio::sync::watch;

use super::publish::Publish;
use super::{Engine, Event, RunningStep};
use crate::config::Step;
use crate::domain::ids::TrainId;
use crate::domain::messages;
use crate::domain::train::{Input, Phase, StepPos, Target, Train, phase_len};
use crate::runner::{StepError, StepOutcome, StepRequest, StepRunner};

impl Engine {
    fn step_config(&self, pos: StepPos) -> Option<&Step> {
        let steps = match (pos.target, pos.phase) {
            (Target::Lower(i), Phase::Deploy) => &self.cfg.train.environments.get(i)?.deploy,
            (Target::Lower(i), Phase::Acceptance) => {
                &self.cfg.train.environments.get(i)?.acceptance
            }
            (Target::Production, Phase::Deploy) => &self.cfg.production.deploy,
            (Target::Production, Phase::Smoke) => &self.cfg.production.smoke,
            (Target::Production, Phase::Verify) => &self.cfg.production.verify.steps,
            _ => return None,
        };
        steps.get(pos.step)
    }

    pub(super) fn log_path(&self, run: &str, name: &str) -> PathBuf {
        self.cfg
            .bot
            .data_dir
            .join("logs")
            .join(run)
            .join(format!("{name}.log"))
    }

    fn env_name(&self, target: Target) -> String {
        crate::domain::train::target_name(&self.plan, target).to_string()
    }

    /// The facts a step learns, as `TRAINBOT_*` variables (never pasted into
    /// the command), with its run's own directory (`TRAINBOT_WORKDIR`) and
    /// the config's (`TRAINBOT_CONFIG_DIR`).
    pub(super) fn step_env(
        &self,
        run: &str,
        sha: &str,
        prev: &str,
        env: &str,
        train: &str,
        branch: &str,
    ) -> Vec<(String, String)> {
        let workdir = self.workdir(run).display().to_string();
        let config_dir = self.cfg.config_dir.display().to_string();
        [
            ("TRAINBOT_SHA", sha),
            ("TRAINBOT_PREV_SHA", prev),
            ("TRAINBOT_ENV", env),
            ("TRAINBOT_TRAIN", train),
            ("TRAINBOT_BRANCH", branch),
            ("TRAINBOT_NODE", ""),
            ("TRAINBOT_NODE_URL", ""),
            ("TRAINBOT_PIPELINE", &self.cfg.pipeline.name),
            ("TRAINBOT_WORKDIR", &workdir),
            ("TRAINBOT_CONFIG_DIR", &config_dir),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Starts the step at `pos` of the current train. A production step runs
    /// only with this attempt's claim in hand.
    pub(super) async fn start_step(&mut self, pos: StepPos) -> anyhow::Result<()> {
        let Some(train) = self.train.as_ref() else {
            return Ok(());
        };
        if self.stopping {
            // Recorded as running but never started: the restart takes it
            // up (a lower step runs again; a production one is interrupted).
            tracing::info!(
                train = train.id.0,
                ?pos,
                "Stopping: the next step is not started."
            );
            return Ok(());
        }
        // A verify check only reads production: it needs no claim (and a
        // restart resumes checks without one).
        if pos.target == Target::Production && pos.phase != Phase::Verify {
            let claimed = self
                .claim
                .is_some_and(|c| c.train == train.id && c.attempt == train.production_attempt);
            if !claimed {
                tracing::error!(
                    train = train.id.0,
                    "Production step without a claim; not running it."
                );
                return self.interrupt_unclaimed(pos).await;
            }
        }
        let Some(step) = self.step_config(pos).cloned() else {
            anyhow::bail!("no step configured at {pos:?}");
        };
        let env = self.env_name(pos.target);
        let attempt = train.steps.iter().filter(|r| r.pos == pos).count();
        let name = format!("{env}-{}-{}", pos.phase.name(), pos.step + 1);
        let run = format!("train-{}", train.id.0);
        // Each run of a step keeps its own log: a verify check every
        // minute, a production step run again after an interruption.
        let log = crate::domain::train::log_name(&name, attempt as u32);
        let req = StepRequest {
            key: format!("{run}/{name}/{attempt}"),
            env: self.step_env(
                &run,
                train.sha.as_str(),
                train.base.as_ref().map(|s| s.as_str()).unwrap_or(""),
                &env,
                &train.id.0.to_string(),
                &self.cfg.forge.main_branch,
            ),
            cwd: self.cfg.config_dir.clone(),
            workdir: Some(self.workdir(&run)),
            log_path: self.log_path(&run, &log),
            step: step.clone(),
        };
        let id = train.id;
        if pos.phase == Phase::Deploy && pos.step == 0 {
            self.publisher.send(Publish::DeployStarted {
                run: run.clone(),
                env: env.clone(),
                sha: train.sha.clone(),
                url: self.ctx().run_url(id),
            });
        }
        let text = messages::step_started(&self.ctx(), id, pos, &step.label());
        self.say(Some(id), text).await;
        let (cancel, cancel_rx) = watch::channel(false);
        self.step = Some(RunningStep {
            train: id,
            pos,
            cancel,
        });
        self.spawn_run(req, cancel_rx, move |outcome, took, log| Event::StepDone {
            train: id,
            pos,
            outcome,
            took,
            log,
        });
        Ok(())
    }

    /// Runs one step in a spawned task; `done` turns its outcome, duration
    /// and log path into the event reported back to the inbox.
    pub(super) fn spawn_run(
        &self,
        req: StepRequest,
        cancel: watch::Receiver<bool>,
        done: impl FnOnce(StepOutcome, TimeDelta, String) -> Event + Send + 'static,
    ) {
        let runner = self.ports.runner.clone();
        let tx = self.tx.clone();
        let clock = self.ports.clock.clone();
        tokio::spawn(async move {
            let started = clock.now();
            let log = req.log_path.display().to_string();
            let outcome = run_caught(runner, req, cancel).await;
            let took = clock.now() - started;
            let _ = tx.send(done(outcome, took, log)).await;
        });
    }

    pub(super) async fn handle_step_done(
        &mut self,
        train: TrainId,
        pos: StepPos,
        outcome: StepOutcome,
        took: TimeDelta,
        log: String,
    ) -> anyhow::Result<()> {
        let current = self
            .step
            .as_ref()
            .is_some_and(|s| s.train == train && s.pos == pos);
        if !current {
            return Ok(()); // a step we stopped on purpose
        }
        let ok = outcome.result.is_ok();
        let env = self.env_name(pos.target);
        self.metrics.step_finished(&env, pos.phase.name(), took, ok);
        let text = match &outcome.result {
            Ok(()) => messages::step_passed(&self.ctx(), train, pos, took, outcome.attempts),
            Err(e) => messages::step_failed(
                &self.ctx(),
                train,
                pos,
                took,
                &e.to_string(),
                &log,
                &outcome.tail,
            ),
        };
        let text = messages::with_run_link(text, outcome.link.as_deref());
        // Saved before it is said; if the store fails, the report waits
        // (and this step is still the one the engine expects).
        let error = outcome
            .result
            .as_ref()
            .err()
            .map(|e: &StepError| e.to_string());
        let step = self.step.take();
        let effects = match self.persist_input(Input::StepFinished { pos, ok, error }) {
            Ok(result) => result.unwrap_or_default(),
            Err(e) => {
                self.step = step;
                return Err(e);
            }
        };
        self.publish();
        self.say(Some(train), text).await;
        if pos.phase == Phase::Deploy
            && (!ok || pos.step + 1 == phase_len(&self.plan, pos.target, Phase::Deploy))
        {
            self.publisher.send(Publish::DeployEnded {
                run: format!("train-{}", train.0),
                env: env.clone(),
                ok,
                url: self.ctx().run_url(train),
            });
        }
        self.apply(effects).await
    }

    pub(super) fn stop_step(&mut self) {
        if let Some(step) = self.step.take() {
            let _ = step.cancel.send(true);
        }
    }

    /// Called with a train whose production steps cannot run without a claim.
    async fn interrupt_unclaimed(&mut self, pos: StepPos) -> anyhow::Result<()> {
        let Some(mut train) = self.train.take() else {
            return Ok(());
        };
        let now = self.now();
        mark_interrupted(&mut train, pos, now);
        self.store.save_train(&train)?;
        self.run_ended(&format!("train-{}", train.id.0), false);
        let text = messages::ended(&self.ctx(), &train, now);
        self.send_status(train.id, text.clone()).await;
        self.say(Some(train.id), text).await;
        Ok(())
    }
}

/// Runs one step; a panicking runner must not leave its train (or build,
/// or main check) running forever: the step fails with "internal error"
/// and the panic goes to the log.
pub(super) async fn run_caught(
    runner: Arc<dyn StepRunner>,
    req: StepRequest,
    cancel: watch::Receiver<bool>,
) -> StepOutcome {
    if let Some(dir) = &req.workdir
        && let Err(error) = super::workdirs::prepare(dir)
    {
        tracing::error!(dir = %dir.display(), %error, "Cannot make the run's workdir.");
        return StepOutcome {
            result: Err(crate::runner::StepError::Spawn(format!(
                "cannot make the run's workdir: {error}"
            ))),
            ..StepOutcome::internal_error()
        };
    }
    crate::supervise::catch("step", async move { runner.run(req, cancel).await })
        .await
        .unwrap_or_else(|_| StepOutcome::internal_error())
}

fn mark_interrupted(train: &mut Train, pos: StepPos, now: crate::domain::clock::Ts) {
    train.stage =
        crate::domain::train::Stage::Done(crate::domain::train::Outcome::Interrupted { at: pos });
    train.finished = Some(now);
}
