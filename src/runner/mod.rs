//! Step runners: shell, http, workflow and prometheus steps, and `StepKinds`, which picks
//! the runner by the step's kind.

pub mod http;
pub mod kinds;
mod log;
pub use log::DEFAULT_MAX_STEP_LOG;
pub mod prometheus;
pub mod shell;
pub mod workflow;

use std::path::PathBuf;

use async_trait::async_trait;
use thiserror::Error;
use tokio::sync::watch;

use crate::config::Step;

/// One step to run, with everything it needs to know.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// Unique and stable across restarts, e.g. `train-3/staging/deploy/0`;
    /// the key under which the step's process group is recorded.
    pub key: String,
    pub step: Step,
    /// `TRAINBOT_*` variables. User text reaches steps only through these.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The run's own directory (`TRAINBOT_WORKDIR`), created `0700` before
    /// the step starts if it is not there.
    pub workdir: Option<PathBuf>,
    /// The step's output goes here (created, appended per attempt).
    pub log_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    #[error("timed out after {0}")]
    Timeout(String),
    #[error("exited with code {0}")]
    Exit(i32),
    #[error("killed by signal {0}")]
    Signal(i32),
    #[error("could not start: {0}")]
    Spawn(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Other(String),
    /// The step's task panicked (the panic is logged, not shown in chat).
    #[error("internal error")]
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub result: Result<(), StepError>,
    /// How many attempts ran (1 + retries used).
    pub attempts: u32,
    /// The last lines of output (at most 20), for failure reports.
    pub tail: Vec<String>,
    /// Where the step's own run can be watched (a GitHub Actions run).
    pub link: Option<String>,
}

impl StepOutcome {
    /// A step whose task panicked: failed, with nothing more to show.
    pub fn internal_error() -> StepOutcome {
        StepOutcome {
            result: Err(StepError::Internal),
            attempts: 1,
            tail: Vec::new(),
            link: None,
        }
    }
}

/// Where process groups of running steps are written down, so a restarted
/// bot can kill what its predecessor left running.
pub trait ProcessRegistry: Send + Sync {
    /// Called after the process exists but before the step's command starts.
    /// An error stops the step from starting.
    fn started(&self, key: &str, pgid: i32) -> std::io::Result<()>;
    fn finished(&self, key: &str);
}

#[async_trait]
pub trait StepRunner: Send + Sync {
    /// Runs the step (with its retries and timeout) until it ends or `cancel`
    /// turns true, in which case its whole process group is killed.
    async fn run(&self, req: StepRequest, cancel: watch::Receiver<bool>) -> StepOutcome;
}
