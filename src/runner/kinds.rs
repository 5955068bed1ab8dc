//! The runner the engine holds: it hands each step to the runner of its kind.
//! Also the attempt loop the in-process kinds (http, workflow, prometheus) share: retries
//! with a backoff, a timeout per attempt, cancel, and the step log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use super::log::StepLog;
use super::shell::{cancelled, human_duration};
use super::{StepError, StepOutcome, StepRequest, StepRunner};
use crate::config::StepKind;

/// Delays between retries of an in-process step unless configured otherwise.
pub const RETRY_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));

/// Picks the runner by the step's kind.
pub struct StepKinds {
    shell: Arc<dyn StepRunner>,
    http: Arc<dyn StepRunner>,
    /// None unless the forge is GitHub.
    workflow: Option<Arc<dyn StepRunner>>,
    /// Set by [`StepKinds::with_prometheus`]; main always sets it.
    prometheus: Option<Arc<dyn StepRunner>>,
}

impl StepKinds {
    pub fn new(
        shell: Arc<dyn StepRunner>,
        http: Arc<dyn StepRunner>,
        workflow: Option<Arc<dyn StepRunner>>,
    ) -> StepKinds {
        StepKinds {
            shell,
            http,
            workflow,
            prometheus: None,
        }
    }

    /// Runs `{ prometheus = … }` steps with `runner`.
    pub fn with_prometheus(self, runner: Arc<dyn StepRunner>) -> StepKinds {
        StepKinds {
            prometheus: Some(runner),
            ..self
        }
    }
}

#[async_trait]
impl StepRunner for StepKinds {
    async fn run(&self, req: StepRequest, cancel: watch::Receiver<bool>) -> StepOutcome {
        let runner = match &req.step.kind {
            StepKind::Run(_) => &self.shell,
            StepKind::Http { .. } => &self.http,
            StepKind::Workflow { .. } => match &self.workflow {
                Some(runner) => runner,
                None => return not_run("workflow steps need the github forge".into()),
            },
            StepKind::Prometheus { .. } => match &self.prometheus {
                Some(runner) => runner,
                None => return not_run("no runner for prometheus steps".into()),
            },
        };
        runner.run(req, cancel).await
    }
}

/// Delays that double from `first` up to `max`: 1s, 2s, 4s, … capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The delay after `waited` earlier delays.
    pub fn delay(&self, waited: u32) -> Duration {
        let factor = 2u32.saturating_pow(waited.min(30));
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// The value of a `TRAINBOT_*` variable of a step, or "" if it is not set.
pub(super) fn fact<'a>(env: &'a [(String, String)], var: &str) -> &'a str {
    env.iter()
        .find(|(name, _)| name == var)
        .map_or("", |(_, value)| value.as_str())
}

/// An outcome for a step that was not even attempted.
pub(super) fn not_run(message: String) -> StepOutcome {
    StepOutcome {
        result: Err(StepError::Other(message)),
        attempts: 0,
        tail: Vec::new(),
        link: None,
    }
}

/// Why an attempt failed, and whether another attempt could help.
#[derive(Debug)]
pub(super) struct Failure {
    pub error: StepError,
    pub retry: bool,
}

impl Failure {
    /// A failure that retrying will not fix (a refused token, a bad URL).
    pub fn fatal(error: StepError) -> Failure {
        Failure {
            error,
            retry: false,
        }
    }
}

impl From<StepError> for Failure {
    fn from(error: StepError) -> Failure {
        Failure { error, retry: true }
    }
}

/// Lines an attempt writes to the step log.
pub(super) struct AttemptLog {
    log: Mutex<StepLog>,
    link: Mutex<Option<String>>,
}

impl AttemptLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, StepLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes (and logs) the page where this attempt's run can be watched.
    pub fn link(&self, url: &str) {
        self.line(&format!("following run {url}"));
        *self.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.to_string());
    }

    /// Writes a line; a log that cannot be written does not fail the step.
    pub fn line(&self, text: &str) {
        if let Err(error) = self.lock().write_line(text) {
            warn!(%error, "Cannot write step log.");
        }
    }
}

/// One attempt of an in-process step; `run_attempts` adds the rest.
#[async_trait]
pub(super) trait Attempt: Send + Sync {
    /// What the attempt header names, with no secrets in it.
    fn label(&self) -> String;
    async fn attempt(&self, log: &AttemptLog) -> Result<(), Failure>;
    /// Written to the log when an attempt is abandoned (timeout or cancel).
    fn abandoned_note(&self) -> Option<&'static str> {
        None
    }
}

/// Runs up to `1 + retries` attempts, `backoff` apart, each bounded by the
/// step's timeout, until one succeeds, one fails for good or `cancel` turns
/// true.
pub(super) async fn run_attempts(
    req: &StepRequest,
    step: &dyn Attempt,
    backoff: Backoff,
    max_log: u64,
    mut cancel: watch::Receiver<bool>,
) -> StepOutcome {
    let total = req.step.retries.saturating_add(1);
    let mut outcome = StepOutcome {
        result: Ok(()),
        attempts: 0,
        tail: Vec::new(),
        link: None,
    };
    // One log for all attempts, so the cap holds for the step as a whole.
    let log = match StepLog::open(&req.log_path, max_log) {
        Ok(log) => log,
        Err(e) => {
            let path = req.log_path.display();
            outcome.attempts = 1;
            outcome.result = Err(StepError::Spawn(format!("cannot open log {path}: {e}")));
            return outcome;
        }
    };
    let log = AttemptLog {
        log: Mutex::new(log),
        link: Mutex::new(None),
    };
    for number in 1..=total {
        if number > 1 {
            tokio::select! {
                () = tokio::time::sleep(backoff.delay(number - 2)) => {}
                () = cancelled(&mut cancel) => {
                    outcome.result = Err(StepError::Cancelled);
                    break;
                }
            }
        }
        if *cancel.borrow_and_update() {
            outcome.result = Err(StepError::Cancelled);
            break;
        }
        let (result, tail, link) = attempt(req, step, &log, number, total, &mut cancel)
            .instrument(info_span!("attempt", number))
            .await;
        let retry = result.as_ref().err().is_some_and(|failure| failure.retry);
        outcome = StepOutcome {
            result: result.map_err(|failure| failure.error),
            attempts: number,
            tail,
            link,
        };
        match &outcome.result {
            Ok(()) | Err(StepError::Cancelled) => break,
            Err(_) if !retry => break,
            Err(error) if number < total => warn!(%error, "Step attempt failed; retrying."),
            Err(_) => {}
        }
    }
    outcome
}

async fn attempt(
    req: &StepRequest,
    step: &dyn Attempt,
    log: &AttemptLog,
    number: u32,
    total: u32,
    cancel: &mut watch::Receiver<bool>,
) -> (Result<(), Failure>, Vec<String>, Option<String>) {
    *log.link.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let header = format!(
        "== attempt {number}/{total}: {} (started {started_at})",
        step.label()
    );
    if let Err(e) = log.lock().start_attempt(&header) {
        let error = StepError::Spawn(format!("cannot write log: {e}"));
        return (Err(error.into()), Vec::new(), None);
    }
    let started = Instant::now();
    let result = tokio::select! {
        result = tokio::time::timeout(req.step.timeout, step.attempt(log)) => match result {
            Ok(result) => result,
            Err(_elapsed) => Err(StepError::Timeout(human_duration(req.step.timeout)).into()),
        },
        () = cancelled(cancel) => Err(StepError::Cancelled.into()),
    };
    let elapsed = started.elapsed();
    if let (Err(failure), Some(note)) = (&result, step.abandoned_note())
        && matches!(failure.error, StepError::Timeout(_) | StepError::Cancelled)
    {
        log.line(note);
    }

    let link = log.link.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut log = log.lock();
    let tail = log.attempt_tail();
    let ended = match &result {
        Ok(()) => "succeeded".to_string(),
        Err(failure) => failure.error.to_string(),
    };
    if let Err(error) = log.write_line(&format!(
        "== attempt {number}/{total} {ended} after {elapsed:.1?}"
    )) {
        warn!(%error, "Cannot write step log footer.");
    }
    let duration_ms = elapsed.as_millis() as u64;
    match &result {
        Ok(()) => info!(duration_ms, "Step attempt succeeded."),
        Err(failure) => info!(duration_ms, error = %failure.error, "Step attempt failed."),
    }
    (result, tail, link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Step;

    /// Fails at once with its name, to show which runner got the step.
    struct Fixed(&'static str);

    #[async_trait]
    impl StepRunner for Fixed {
        async fn run(&self, _req: StepRequest, _cancel: watch::Receiver<bool>) -> StepOutcome {
            not_run(self.0.into())
        }
    }

    fn request(kind: StepKind) -> StepRequest {
        StepRequest {
            key: "train-1/staging/deploy/0".into(),
            step: Step {
                kind,
                timeout: Duration::from_secs(1),
                retries: 0,
                env: Vec::new(),
            },
            env: Vec::new(),
            cwd: ".".into(),
            workdir: None,
            log_path: "unused.log".into(),
        }
    }

    fn error(outcome: StepOutcome) -> String {
        outcome.result.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn each_kind_goes_to_its_runner() {
        let kinds = StepKinds::new(
            Arc::new(Fixed("shell")),
            Arc::new(Fixed("http")),
            Some(Arc::new(Fixed("workflow"))),
        )
        .with_prometheus(Arc::new(Fixed("prometheus")));
        let (_tx, cancel) = watch::channel(false);
        let prometheus = StepKind::Prometheus {
            url: "http://prom:9090".into(),
            query: "up".into(),
            min: Some(1.0),
            max: None,
        };
        assert_eq!(
            error(kinds.run(request(prometheus), cancel.clone()).await),
            "prometheus"
        );
        let http = StepKind::Http {
            url: "http://x".into(),
            method: "POST".into(),
        };
        let workflow = StepKind::Workflow {
            workflow: "deploy.yml".into(),
            git_ref: None,
            inputs: Default::default(),
        };
        let run = StepKind::Run("true".into());
        assert_eq!(
            error(kinds.run(request(run), cancel.clone()).await),
            "shell"
        );
        assert_eq!(
            error(kinds.run(request(http), cancel.clone()).await),
            "http"
        );
        assert_eq!(
            error(kinds.run(request(workflow), cancel).await),
            "workflow"
        );
    }

    #[tokio::test]
    async fn workflow_steps_fail_without_a_workflow_runner() {
        let kinds = StepKinds::new(Arc::new(Fixed("shell")), Arc::new(Fixed("http")), None);
        let (_tx, cancel) = watch::channel(false);
        let workflow = StepKind::Workflow {
            workflow: "deploy.yml".into(),
            git_ref: None,
            inputs: Default::default(),
        };
        let outcome = kinds.run(request(workflow), cancel).await;
        assert_eq!(outcome.attempts, 0);
        assert_eq!(error(outcome), "workflow steps need the github forge");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(15));
        let delays: Vec<u64> = (0..6).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 15, 15]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(15));
    }
}
