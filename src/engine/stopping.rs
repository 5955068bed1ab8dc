//! Stopping (SPEC §12). The first SIGTERM/SIGINT takes no new work: commands
//! get a one-line answer, nothing departs, no step starts. A running
//! production step may finish (up to `bot.shutdown_grace`) and its result is
//! recorded as usual; every other step is stopped (SIGTERM, then SIGKILL
//! after the runner's grace) and, still recorded as running, runs again
//! after the restart. A second signal stops at once: a production step
//! still running is killed and counts as interrupted after the restart (§8).

use std::time::Duration;

use chrono::TimeDelta;
use tokio::time::Instant;

use super::{Engine, Event};
use crate::domain::messages;
use crate::domain::train::{Phase, Target};
use crate::runner::shell::{DEFAULT_GRACE, kill_process_group};

/// How long stopped steps get to end: the runner's SIGTERM grace, its
/// SIGKILL and the reaping. Whatever is left is killed when the process
/// exits (and again by the next start: its groups are recorded).
const STOPPED_STEPS: Duration = Duration::from_secs(2 * DEFAULT_GRACE.as_secs());

/// Config durations are bounded (30 days); this keeps `Instant` arithmetic
/// from overflowing whatever the config says.
const LONGEST_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

impl Engine {
    /// Stops as described above, flushes the store and returns.
    pub(super) async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stopping = true;
        let production = self
            .step
            .as_ref()
            // A verify check only reads production: it is stopped like a
            // lower step and runs again after the restart.
            .filter(|s| s.pos.target == Target::Production && s.pos.phase != Phase::Verify)
            .map(|s| (s.train, s.pos));
        let mut stopped = self.stop_other_steps(production.is_none());
        tracing::info!(
            stopped,
            production = production.is_some(),
            "Stopping: no new work."
        );
        let grace = self.cfg.bot.shutdown_grace.min(LONGEST_GRACE);
        if let Some((train, pos)) = production {
            let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
            self.say(Some(train), messages::stopping_waits(train, pos, grace))
                .await;
        }
        let started = Instant::now();
        let (steps_deadline, grace_deadline) = (started + STOPPED_STEPS, started + grace);
        loop {
            let production = self.step.is_some();
            if !production && stopped == 0 {
                break;
            }
            let deadline = match (production, stopped > 0) {
                (true, true) => grace_deadline.min(steps_deadline),
                (true, false) => grace_deadline,
                (false, _) => steps_deadline,
            };
            let ev = tokio::select! {
                ev = self.rx.recv() => ev,
                () = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if stopped > 0 && now >= steps_deadline {
                        tracing::warn!(stopped, "Stopped steps did not end in time; they are killed on exit.");
                        stopped = 0;
                    }
                    if production && now >= grace_deadline {
                        self.cut_production(Some(grace)).await;
                        break;
                    }
                    continue;
                }
            };
            match ev {
                None => break,
                Some(Event::Shutdown) => {
                    tracing::warn!("Second stop signal: stopping at once.");
                    self.cut_production(None).await;
                    break;
                }
                Some(Event::StepDone {
                    train,
                    pos,
                    outcome,
                    took,
                    log,
                }) => {
                    let current = self
                        .step
                        .as_ref()
                        .is_some_and(|s| s.train == train && s.pos == pos);
                    if current {
                        // Recorded as usual; the next step, if any, waits
                        // for the restart (`start_step` starts nothing now).
                        self.handle_step_done(train, pos, outcome, took, log)
                            .await?;
                    } else {
                        stopped = stopped.saturating_sub(1);
                    }
                }
                // Not recorded: the build or check counts as still running.
                Some(Event::BuildStepDone { .. } | Event::MainChecked { .. }) => {
                    stopped = stopped.saturating_sub(1);
                }
                Some(Event::Chat(msg)) => {
                    self.private_replies = msg.button;
                    self.reply_thread = msg.thread.clone();
                    self.reply(&msg.user, messages::stopping_reply()).await;
                    self.private_replies = false;
                    self.reply_thread = None;
                }
                // Polls, pushes and refusals are seen again after the restart.
                Some(other) => tracing::debug!(event = ?other, "Ignored while stopping."),
            }
        }
        self.publish();
        self.store.flush()?;
        tracing::info!("Stopped.");
        Ok(())
    }

    /// Cancels every running step but a production one (unless `all`):
    /// train steps, branch build steps, main checks. Returns how many.
    fn stop_other_steps(&mut self, all: bool) -> usize {
        let mut stopped = 0;
        if all && self.step.is_some() {
            self.stop_step();
            stopped += 1;
        }
        if let Some((_, cancel)) = self.checking.take() {
            let _ = cancel.send(true);
            stopped += 1;
        }
        for build in self.builds.values_mut() {
            if let Some(cancel) = build.step.take() {
                let _ = cancel.send(true);
                stopped += 1;
            }
        }
        stopped
    }

    /// Kills the running production step now (a second signal, or the grace
    /// ran out). Its train stays recorded as running production, which the
    /// next start reads as interrupted (§8).
    async fn cut_production(&mut self, grace: Option<Duration>) {
        let Some(step) = self.step.take() else {
            return;
        };
        tracing::warn!(
            train = step.train.0,
            "Stopping the production step; it counts as interrupted after the restart."
        );
        let _ = step.cancel.send(true);
        // The runner's cancel waits its SIGTERM grace; stopping at once
        // means SIGKILL now, to every group still recorded.
        match self.store.running_processes() {
            Ok(groups) => {
                for (key, group) in groups {
                    if let Err(error) = kill_process_group(group.pgid) {
                        tracing::debug!(%error, key, "Cannot kill a step process group.");
                    }
                }
            }
            Err(error) => tracing::error!(%error, "Cannot read the running step processes."),
        }
        let grace = grace.map(|g| TimeDelta::from_std(g).unwrap_or(TimeDelta::MAX));
        let text = messages::stopping_cut(step.train, step.pos, grace);
        self.say(Some(step.train), text).await;
    }
}
