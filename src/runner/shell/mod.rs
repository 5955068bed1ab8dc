//! Shell steps: `sh -c` in its own process group, recorded before it starts,
//! with an explicit environment, a per-attempt timeout, retries and cancel.

mod output;
mod process;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, info, info_span, warn};

use self::process::GatedChild;
pub use self::process::{boot_id, kill_process_group};
use super::log::{DEFAULT_MAX_STEP_LOG, StepLog};
use super::{ProcessRegistry, StepError, StepOutcome, StepRequest, StepRunner};
use crate::config::StepKind;

/// Time between SIGTERM and SIGKILL unless configured otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Runs `{ run = "…" }` steps.
pub struct ShellRunner {
    registry: Arc<dyn ProcessRegistry>,
    /// Time a step gets between SIGTERM and SIGKILL on timeout or cancel.
    grace: Duration,
    /// `bot.max_step_log`.
    max_log: u64,
}

/// How one attempt ended.
struct Attempt {
    result: Result<(), StepError>,
    tail: Vec<String>,
}

/// Why the runner stopped waiting for the command.
enum Stop {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
}

impl ShellRunner {
    pub fn new(registry: Arc<dyn ProcessRegistry>, grace: Duration) -> ShellRunner {
        ShellRunner {
            registry,
            grace,
            max_log: DEFAULT_MAX_STEP_LOG,
        }
    }

    /// Caps each step's log at `max_log` bytes (plus the cut marker).
    pub fn with_log_cap(self, max_log: u64) -> ShellRunner {
        ShellRunner { max_log, ..self }
    }

    pub fn with_default_grace(registry: Arc<dyn ProcessRegistry>) -> ShellRunner {
        ShellRunner::new(registry, DEFAULT_GRACE)
    }

    async fn run_command(
        &self,
        req: &StepRequest,
        cmd: &str,
        cancel: &mut watch::Receiver<bool>,
    ) -> StepOutcome {
        let total = req.step.retries.saturating_add(1);
        let mut outcome = StepOutcome {
            result: Ok(()),
            attempts: 0,
            tail: Vec::new(),
            link: None,
        };
        // One log for all attempts, so the cap holds for the step as a whole.
        let mut log = match StepLog::open(&req.log_path, self.max_log) {
            Ok(log) => log,
            Err(e) => {
                outcome.attempts = 1;
                outcome.result = Err(StepError::Spawn(format!(
                    "cannot open log {}: {e}",
                    req.log_path.display()
                )));
                return outcome;
            }
        };
        for number in 1..=total {
            if *cancel.borrow_and_update() {
                outcome.result = Err(StepError::Cancelled);
                break;
            }
            let attempt = self
                .attempt(req, cmd, &mut log, number, total, cancel)
                .instrument(info_span!("attempt", number))
                .await;
            outcome = StepOutcome {
                result: attempt.result,
                attempts: number,
                tail: attempt.tail,
                link: None,
            };
            match &outcome.result {
                Ok(()) | Err(StepError::Cancelled) => break,
                Err(error) if number < total => warn!(%error, "Step attempt failed; retrying."),
                Err(_) => {}
            }
        }
        outcome
    }

    async fn attempt(
        &self,
        req: &StepRequest,
        cmd: &str,
        log: &mut StepLog,
        number: u32,
        total: u32,
        cancel: &mut watch::Receiver<bool>,
    ) -> Attempt {
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if let Err(e) = log.start_attempt(&format!(
            "== attempt {number}/{total}: {cmd} (started {started_at})"
        )) {
            return failed(StepError::Spawn(format!("cannot write log: {e}")));
        }
        let started = Instant::now();
        let result = self.supervise(req, cmd, log, cancel).await;
        let elapsed = started.elapsed();

        let tail = log.attempt_tail();
        let ended = match &result {
            Ok(()) => "succeeded".to_string(),
            Err(error) => error.to_string(),
        };
        if let Err(error) = log.write_line(&format!(
            "== attempt {number}/{total} {ended} after {elapsed:.1?}"
        )) {
            warn!(%error, "Cannot write step log footer.");
        }
        let duration_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(()) => info!(duration_ms, "Step attempt succeeded."),
            Err(error) => info!(duration_ms, %error, "Step attempt failed."),
        }
        Attempt { result, tail }
    }

    /// Starts the command once its group is recorded and waits for it to end,
    /// time out or be cancelled. The group is written off in the registry
    /// whatever happens, even if this future is dropped.
    async fn supervise(
        &self,
        req: &StepRequest,
        cmd: &str,
        log: &mut StepLog,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), StepError> {
        let (output, writer) =
            output::pipe().map_err(|e| StepError::Spawn(format!("cannot make a pipe: {e}")))?;
        let env = process::request_env(req)?;
        let GatedChild { mut child, pgid } = process::spawn_gated(cmd, &req.cwd, &env, writer)
            .map_err(|e| StepError::Spawn(format!("cannot start sh: {e}")))?;
        let mut guard = GroupGuard {
            registry: &*self.registry,
            key: &req.key,
            pgid,
            running: true,
        };

        if let Err(e) = self.registry.started(&req.key, pgid) {
            // The command has not started: the wrapper is still at the gate.
            let _ = kill_process_group(pgid);
            let _ = child.wait().await;
            guard.running = false;
            return Err(StepError::Spawn(format!(
                "cannot record process group: {e}"
            )));
        }
        let stdin = child.stdin.take();
        if let Some(mut stdin) = stdin {
            // A failed write means the wrapper is gone; its exit status says why.
            let _ = stdin.write_all(b"\n").await;
        }

        let (ended, ended_rx) = oneshot::channel();
        let wait = async {
            let stop = tokio::select! {
                status = child.wait() => match status {
                    Ok(status) => Stop::Exited(status),
                    // Should not happen; the guard kills the group we lost track of.
                    Err(e) => return Err(StepError::Other(format!("cannot wait for the step: {e}"))),
                },
                () = tokio::time::sleep(req.step.timeout) => Stop::TimedOut,
                () = cancelled(cancel) => Stop::Cancelled,
            };
            let result = self.stop_result(&mut child, pgid, req, stop).await;
            guard.running = false;
            let _ = ended.send(());
            result
        };
        // The output is copied while the command runs, and a little after.
        let (result, ()) = tokio::join!(wait, output::copy_to_log(output, log, ended_rx));
        result
    }

    /// What the way the command stopped means, after stopping its group if it
    /// timed out or was cancelled.
    async fn stop_result(
        &self,
        child: &mut tokio::process::Child,
        pgid: i32,
        req: &StepRequest,
        stop: Stop,
    ) -> Result<(), StepError> {
        match stop {
            Stop::Exited(status) => status_result(status),
            Stop::TimedOut => {
                warn!(pgid, "Step timed out; stopping its process group.");
                log_terminate(process::terminate_group(child, pgid, self.grace).await);
                Err(StepError::Timeout(human_duration(req.step.timeout)))
            }
            Stop::Cancelled => {
                info!(pgid, "Step cancelled; stopping its process group.");
                log_terminate(process::terminate_group(child, pgid, self.grace).await);
                Err(StepError::Cancelled)
            }
        }
    }
}

#[async_trait]
impl StepRunner for ShellRunner {
    async fn run(&self, req: StepRequest, mut cancel: watch::Receiver<bool>) -> StepOutcome {
        let span = info_span!("step", key = %req.key);
        let cmd = match &req.step.kind {
            StepKind::Run(cmd) => cmd.clone(),
            StepKind::Http { .. } => return unsupported("http"),
            StepKind::Workflow { .. } => return unsupported("workflow"),
            StepKind::Prometheus { .. } => return unsupported("prometheus"),
        };
        self.run_command(&req, &cmd, &mut cancel)
            .instrument(span)
            .await
    }
}

/// Kills the group if the attempt is abandoned while it runs (the step's
/// future dropped), and always tells the registry the attempt is over.
struct GroupGuard<'a> {
    registry: &'a dyn ProcessRegistry,
    key: &'a str,
    pgid: i32,
    running: bool,
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if self.running {
            let _ = kill_process_group(self.pgid);
        }
        self.registry.finished(self.key);
    }
}

/// Resolves once `cancel` is true. A dropped sender means nobody can cancel
/// any more, so that never resolves.
pub(super) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|&cancelled| cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn status_result(status: ExitStatus) -> Result<(), StepError> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(StepError::Exit(code)),
        (None, Some(signal)) => Err(StepError::Signal(signal)),
        (None, None) => Err(StepError::Other(format!("ended with {status}"))),
    }
}

fn log_terminate(result: io::Result<ExitStatus>) {
    if let Err(error) = result {
        warn!(%error, "Cannot stop step process group.");
    }
}

fn failed(error: StepError) -> Attempt {
    Attempt {
        result: Err(error),
        tail: Vec::new(),
    }
}

fn unsupported(kind: &str) -> StepOutcome {
    StepOutcome {
        result: Err(StepError::Other(format!(
            "{kind} steps are not supported by this runner"
        ))),
        attempts: 0,
        tail: Vec::new(),
        link: None,
    }
}

/// `10m`, `1h30m`, `90s` → `1m30s`, `1.5s`, `250ms`: how durations are written
/// in the config, so a timeout reads back as it was configured.
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs < 60 && millis != 0 {
        return format!("{}s", trim_float(d.as_secs_f64()));
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value != 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

fn trim_float(secs: f64) -> String {
    let text = format!("{secs:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests;
