//! Workflow steps: `workflow_dispatch` of a GitHub Actions workflow, then the
//! run it started is followed to its conclusion.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;
use tracing::{Instrument, info_span};

use super::kinds::{Attempt, AttemptLog, Backoff, Failure, RETRY_BACKOFF, fact, not_run};
use super::log::DEFAULT_MAX_STEP_LOG;
use super::{StepError, StepOutcome, StepRequest, StepRunner};
use crate::config::StepKind;
use crate::domain::clock::Ts;
use crate::forge::{Actions, ForgeError, WorkflowRun};

/// Time between polls of GitHub: quick at first (a run shows up within a
/// second or two of its dispatch), then backing off to stay far below the
/// API rate limit for runs that take many minutes.
pub const POLL_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));

/// How much earlier than our clock says GitHub may stamp a run we started.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// What may appear in input values, and the variable it stands for.
const PLACEHOLDERS: [(&str, &str); 7] = [
    ("{sha}", "TRAINBOT_SHA"),
    ("{prev_sha}", "TRAINBOT_PREV_SHA"),
    ("{env}", "TRAINBOT_ENV"),
    ("{train}", "TRAINBOT_TRAIN"),
    ("{branch}", "TRAINBOT_BRANCH"),
    ("{node}", "TRAINBOT_NODE"),
    ("{pipeline}", "TRAINBOT_PIPELINE"),
];

/// Runs `{ workflow = "…" }` steps through GitHub Actions.
pub struct WorkflowRunner {
    actions: Arc<dyn Actions>,
    main_branch: String,
    poll: Backoff,
    retry: Backoff,
    /// `bot.max_step_log`.
    max_log: u64,
    /// Runs some attempt already follows. GitHub does not say which dispatch
    /// started a run, so two steps dispatching the same workflow on the same
    /// head each take the oldest run nobody took yet.
    claimed: Mutex<HashSet<u64>>,
    /// Bumped by each `workflow_run` webhook: a run changed on GitHub, so
    /// every follower looks now instead of at its next backoff.
    run_events: watch::Receiver<u64>,
}

impl WorkflowRunner {
    pub fn new(actions: Arc<dyn Actions>, main_branch: String) -> WorkflowRunner {
        WorkflowRunner {
            actions,
            main_branch,
            poll: POLL_BACKOFF,
            retry: RETRY_BACKOFF,
            max_log: DEFAULT_MAX_STEP_LOG,
            claimed: Mutex::new(HashSet::new()),
            // Without webhooks nothing is ever sent: backoff alone.
            run_events: watch::channel(0).1,
        }
    }

    /// Caps each step's log at `max_log` bytes (plus the cut marker).
    pub fn with_log_cap(self, max_log: u64) -> WorkflowRunner {
        WorkflowRunner { max_log, ..self }
    }

    /// Wakes followers when GitHub reports a workflow run changed.
    pub fn with_run_events(self, run_events: watch::Receiver<u64>) -> WorkflowRunner {
        WorkflowRunner { run_events, ..self }
    }

    /// Waits the `waited`-th poll delay, or less if a run changed on GitHub.
    async fn pause(&self, waited: u32) {
        let mut events = self.run_events.clone();
        events.mark_unchanged();
        tokio::select! {
            () = tokio::time::sleep(self.poll.delay(waited)) => {}
            Ok(()) = events.changed() => {}
        }
    }

    /// Polls GitHub `poll` apart and waits `retry` between attempts.
    pub fn with_backoff(self, poll: Backoff, retry: Backoff) -> WorkflowRunner {
        WorkflowRunner {
            poll,
            retry,
            ..self
        }
    }

    /// Takes the oldest run of `head` created since `dispatched` (give or
    /// take clock skew) that no attempt has taken yet.
    fn claim(&self, runs: Vec<WorkflowRun>, head: &str, dispatched: Ts) -> Option<WorkflowRun> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        let run = runs
            .into_iter()
            .filter(|run| run.head_sha == head && run.created_at >= dispatched - CLOCK_SKEW)
            .filter(|run| !claimed.contains(&run.id))
            .min_by_key(|run| (run.created_at, run.id))?;
        claimed.insert(run.id);
        Some(run)
    }
}

#[async_trait]
impl StepRunner for WorkflowRunner {
    async fn run(&self, req: StepRequest, cancel: watch::Receiver<bool>) -> StepOutcome {
        let StepKind::Workflow {
            workflow,
            git_ref,
            inputs,
        } = &req.step.kind
        else {
            return not_run("only workflow steps are supported by this runner".into());
        };
        let step = WorkflowStep {
            runner: self,
            workflow,
            git_ref: git_ref.as_deref().unwrap_or(&self.main_branch),
            inputs: fill_inputs(inputs, &req.env),
        };
        let span = info_span!("step", key = %req.key);
        super::kinds::run_attempts(&req, &step, self.retry, self.max_log, cancel)
            .instrument(span)
            .await
    }
}

struct WorkflowStep<'a> {
    runner: &'a WorkflowRunner,
    workflow: &'a str,
    git_ref: &'a str,
    inputs: BTreeMap<String, String>,
}

#[async_trait]
impl Attempt for WorkflowStep<'_> {
    fn label(&self) -> String {
        format!("workflow {} on {}", self.workflow, self.git_ref)
    }

    async fn attempt(&self, log: &AttemptLog) -> Result<(), Failure> {
        let actions = &*self.runner.actions;
        let head = actions.ref_sha(self.git_ref).await.map_err(forge_failure)?;
        let inputs = serde_json::to_string(&self.inputs).unwrap_or_default();
        log.line(&format!(
            "dispatching {} on {} ({head}) with inputs {inputs}",
            self.workflow, self.git_ref
        ));
        let dispatched = Utc::now();
        actions
            .dispatch(self.workflow, self.git_ref, &self.inputs)
            .await
            .map_err(forge_failure)?;
        let run = self.find_run(head.as_str(), dispatched, log).await?;
        log.link(&run.html_url);
        let run = self.wait_for_completion(run, log).await?;
        let conclusion = run.conclusion.as_deref().unwrap_or("without a conclusion");
        log.line(&format!("run {conclusion}"));
        if conclusion == "success" {
            Ok(())
        } else {
            let message = format!("workflow run {conclusion}: {}", run.html_url);
            Err(StepError::Other(message).into())
        }
    }

    fn abandoned_note(&self) -> Option<&'static str> {
        Some("(a run already dispatched goes on: trainbot does not cancel it on GitHub)")
    }
}

impl WorkflowStep<'_> {
    /// Polls the runs of `head` until the one our dispatch started shows up.
    async fn find_run(
        &self,
        head: &str,
        dispatched: Ts,
        log: &AttemptLog,
    ) -> Result<WorkflowRun, Failure> {
        let actions = &*self.runner.actions;
        let mut waited = 0;
        loop {
            self.runner.pause(waited).await;
            waited = waited.saturating_add(1);
            match actions.runs(self.workflow, head).await {
                Ok(runs) => {
                    if let Some(run) = self.runner.claim(runs, head, dispatched) {
                        return Ok(run);
                    }
                }
                Err(error) => poll_failed(error, log)?,
            }
        }
    }

    /// Polls the run until it is completed, logging its status changes.
    async fn wait_for_completion(
        &self,
        mut run: WorkflowRun,
        log: &AttemptLog,
    ) -> Result<WorkflowRun, Failure> {
        let actions = &*self.runner.actions;
        let mut status = String::new();
        let mut waited = 0;
        loop {
            if run.status != status {
                status.clone_from(&run.status);
                log.line(&format!("run {status}"));
            }
            if run.status == "completed" {
                return Ok(run);
            }
            self.runner.pause(waited).await;
            waited = waited.saturating_add(1);
            match actions.run(run.id).await {
                Ok(now) => run = now,
                Err(error) => poll_failed(error, log)?,
            }
        }
    }
}

/// A poll that failed: passing trouble is logged and polled through (the
/// attempt's timeout bounds it); a refusal or a missing run ends the attempt.
fn poll_failed(error: ForgeError, log: &AttemptLog) -> Result<(), Failure> {
    match error {
        ForgeError::Other(_) => {
            log.line(&format!("cannot poll GitHub ({error}); trying again"));
            Ok(())
        }
        error => Err(forge_failure(error)),
    }
}

/// A refusal (bad token, no such repository) is said as it is and not
/// retried; anything else may pass.
fn forge_failure(error: ForgeError) -> Failure {
    match error {
        ForgeError::Refused(message) => Failure::fatal(StepError::Other(message)),
        error => StepError::Other(error.to_string()).into(),
    }
}

/// Input values with `{sha}`, `{env}`, … replaced by the step's facts, in one
/// pass: a fact that itself contains `{env}` is not expanded again.
fn fill_inputs(
    inputs: &BTreeMap<String, String>,
    env: &[(String, String)],
) -> BTreeMap<String, String> {
    inputs
        .iter()
        .map(|(name, value)| (name.clone(), fill(value, env)))
        .collect()
}

fn fill(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match PLACEHOLDERS
            .iter()
            .find(|(placeholder, _)| rest.starts_with(placeholder))
        {
            Some((placeholder, var)) => {
                out.push_str(fact(env, var));
                rest = &rest[placeholder.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;
