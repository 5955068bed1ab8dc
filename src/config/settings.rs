//! Validated settings. Everything here has been checked: durations parsed,
//! cron compiled, paths absolute, every environment has its table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::domain::approval::ApprovalPolicy;

/// A config problem, shown as one line: what is wrong, the key and its line.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Which pipeline a [`Settings`] is (SPEC §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineId {
    /// `[pipelines.NAME]`'s NAME; for a config without [pipelines], the
    /// repository's name (forge.github.repo for github; the git path's
    /// directory name for git, canonicalized, e.g. "main" for /work/main).
    pub name: String,
    /// True when the config has a [pipelines] table (even with only one
    /// entry): labels like `web#12` are used.
    pub multi: bool,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file's directory: relative paths and shell steps start here.
    pub config_dir: PathBuf,
    pub pipeline: PipelineId,
    pub bot: BotSettings,
    pub chat: ChatSettings,
    pub forge: ForgeSettings,
    /// `[main] checks`: a merged SHA must pass them to be allocated.
    pub main_checks: Vec<Step>,
    pub train: TrainSettings,
    pub production: ProductionSettings,
    pub branch_builds: BranchBuildSettings,
    pub tags: TagSettings,
    pub ops: Vec<String>,
    /// `[roles] production`: when set, who may update live.
    pub production_role: Option<Vec<String>>,
    /// Commit email or forge login -> chat user id/name.
    pub people: BTreeMap<String, String>,
    /// `[web]`, the same for every pipeline.
    pub web: WebSettings,
}

/// `[web]`: who may read the pages (SPEC §13).
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// The variable holding the password; None: the pages are open.
    pub password_env: Option<String>,
    /// `web.public`: a non-loopback `bot.http_listen` without a password
    /// was asked for.
    pub public: bool,
    /// The password itself, read from `password_env` when the bot starts
    /// (`trainbot run`); None in settings just parsed from the file.
    pub password: Option<secrecy::SecretString>,
}

#[derive(Debug, Clone)]
pub struct BotSettings {
    pub data_dir: PathBuf,
    pub command_prefix: String,
    pub http_listen: SocketAddr,
    /// `bot.webhook_listen`: a listener serving only `POST /webhooks/github`.
    pub webhook_listen: Option<SocketAddr>,
    /// Where this pipeline's pages are: `root_url` itself for a single
    /// pipeline, `<root_url>/p/NAME` for one of several, so chat links land
    /// on the pipeline they are about. Without a trailing slash.
    pub public_url: String,
    /// `bot.public_url` as configured: the dashboard's overview.
    pub root_url: String,
    /// How long a running production step may finish after the first stop
    /// signal (SPEC §12).
    pub shutdown_grace: Duration,
    /// Bytes a step log keeps at most (plus the cut marker).
    pub max_step_log: u64,
    /// How long the workdir of a run that did not pass is kept
    /// (`Duration::ZERO`: removed when the run ends).
    pub keep_failed_workdirs: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatAdapter {
    Console,
    Slack,
}

#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub adapter: ChatAdapter,
    pub console_user: String,
    pub slack: SlackSettings,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub channel: String,
    pub bot_token_env: String,
    pub app_token_env: String,
    /// Without a trailing slash.
    pub api_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeKind {
    Git,
    Github,
}

#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    pub main_branch: String,
    pub poll_interval: Duration,
    /// The deadline of one forge call made for the engine.
    pub timeout: Duration,
    /// `[forge.git] path`, absolute.
    pub git_path: PathBuf,
    pub github: GithubSettings,
}

#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub owner: String,
    pub repo: String,
    pub token_env: String,
    pub webhook_secret_env: String,
    pub api_url: String,
    /// `!bb` publishes a `trainbot/branch` check run.
    pub checks: bool,
    /// `!bb` publishes a `trainbot/branch` commit status.
    pub statuses: bool,
    pub auth: GithubAuth,
}

/// How the bot proves who it is to GitHub: `[forge.github] auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubAuth {
    /// A token (personal, fine-grained, or any bearer) in `token_env`.
    Token,
    /// A GitHub App: a JWT signed with its private key buys installation
    /// tokens, renewed before they expire.
    App {
        app_id: u64,
        private_key_env: String,
        /// None: asked of GitHub for the repository.
        installation_id: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub schedule: cron::Schedule,
    pub schedule_text: String,
    pub timezone: chrono_tz::Tz,
    pub approval: ApprovalPolicy,
    pub approval_timeout: Duration,
    /// `remind_after`: None when off (SPEC §14).
    pub remind_after: Option<Duration>,
    /// `escalate_after`: None when off.
    pub escalate_after: Option<Duration>,
    /// Lower environments, in order, each with its steps.
    pub environments: Vec<EnvSettings>,
    /// What a veto does: stop the train, or eject the vetoed commits.
    pub on_veto: crate::domain::eject::OnVeto,
}

#[derive(Debug, Clone)]
pub struct EnvSettings {
    pub name: String,
    pub deploy: Vec<Step>,
    pub acceptance: Vec<Step>,
    /// `[environments.NAME] url`: its GitHub deployments' `environment_url`.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ProductionSettings {
    pub deploy: Vec<Step>,
    /// `[production] url`: its GitHub deployments' `environment_url`.
    pub url: Option<String>,
    pub smoke: Vec<Step>,
    pub windows: crate::domain::window::Windows,
    /// `[production] verify` and its window (SPEC §15).
    pub verify: VerifySettings,
}

/// How production is verified after smoke (SPEC §15). No steps: none.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub steps: Vec<Step>,
    pub window: std::time::Duration,
    pub every: std::time::Duration,
    pub failure_limit: u32,
    pub delay: std::time::Duration,
    pub auto_rollback: bool,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            steps: Vec::new(),
            window: std::time::Duration::from_secs(600),
            every: std::time::Duration::from_secs(60),
            failure_limit: 0,
            delay: std::time::Duration::ZERO,
            auto_rollback: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct BranchBuildSettings {
    pub nodes: Vec<String>,
    /// Contains `{node}`, replaced by the node name.
    pub node_url: String,
    pub checks: Vec<Step>,
    pub deploy: Vec<Step>,
    pub smoke: Vec<Step>,
    /// `[branch_builds] pool`: pipelines naming the same pool share nodes.
    pub pool: Option<String>,
    /// `[branch_builds] max_queued_per_user`: a user's `!bb` past this many
    /// queued builds is refused (SPEC §13).
    pub max_queued_per_user: usize,
}

#[derive(Debug, Clone, Default)]
pub struct TagSettings {
    pub staging: Option<regex::Regex>,
    pub production: Option<regex::Regex>,
    /// A failing tag deploy is dropped this long after its first failure.
    pub give_up_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub timeout: Duration,
    pub retries: u32,
    /// `env = { … }`: the step's own variables, in name order. Shell steps
    /// get them; http and workflow steps ignore them.
    pub env: Vec<(String, EnvValue)>,
}

/// A value of a step's `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    /// `{ secret_env = "VAR" }`: the bot's `VAR`, checked and registered as
    /// a secret at start ([`super::load_step_secrets`]). `key` is the dotted
    /// config key, for the error when it is unset.
    Secret {
        var: String,
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Run by `sh -c` in the config file's directory.
    Run(String),
    Http {
        url: String,
        method: String,
    },
    Workflow {
        workflow: String,
        git_ref: Option<String>,
        inputs: BTreeMap<String, String>,
    },
    /// `{ prometheus = "http://prom:9090", query = "…", max = 0.05 }`: an
    /// instant query over the Prometheus HTTP API; every returned series
    /// must lie within `min..=max` (at least one is set; no data fails).
    Prometheus {
        /// The server's base URL, without a trailing `/`.
        url: String,
        query: String,
        min: Option<f64>,
        max: Option<f64>,
    },
}

impl Step {
    /// A short label for chat and logs: the command, URL, workflow or query.
    pub fn label(&self) -> String {
        match &self.kind {
            StepKind::Run(cmd) => cmd.clone(),
            // Chat and the dashboard show the label: no `user:pass@`.
            StepKind::Http { url, method } => {
                format!("{method} {}", redact_url(url))
            }
            StepKind::Workflow { workflow, .. } => format!("workflow {workflow}"),
            StepKind::Prometheus {
                url,
                query,
                min,
                max,
            } => prometheus_label(url, query, *min, *max),
        }
    }
}

/// How much of a Prometheus query a label shows.
const LABEL_QUERY_CHARS: usize = 60;

/// `prometheus http://prom:9090 sum(rate(…)) <= 0.05`: the URL redacted,
/// the query cut to [`LABEL_QUERY_CHARS`].
pub fn prometheus_label(url: &str, query: &str, min: Option<f64>, max: Option<f64>) -> String {
    let mut shown: String = query.chars().take(LABEL_QUERY_CHARS).collect();
    if query.chars().count() > LABEL_QUERY_CHARS {
        shown.push('…');
    }
    let bounds = match (min, max) {
        (Some(min), Some(max)) => format!(" in [{min}, {max}]"),
        (None, Some(max)) => format!(" <= {max}"),
        (Some(min), None) => format!(" >= {min}"),
        (None, None) => String::new(),
    };
    format!("prometheus {} {shown}{bounds}", redact_url(url))
}

impl Settings {
    /// Reads and validates the config file. With several `[pipelines]` it
    /// returns the first by name; [`load_pipelines`] returns them all.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        load_pipelines(path).map(first)
    }

    /// Validates config text as if it were read from `path`; with several
    /// pipelines, the first by name (see [`Settings::parse_pipelines`]).
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        Self::parse_pipelines(text, path).map(first)
    }

    /// Every pipeline's effective settings, in name order. Never empty.
    pub fn parse_pipelines(text: &str, path: &Path) -> Result<Vec<Settings>, ConfigError> {
        super::raw::parse(text, path)
    }
}

/// Every pipeline's effective settings, in name order. Never empty: a
/// config without `[pipelines]` is one pipeline.
pub fn load_pipelines(path: &Path) -> Result<Vec<Settings>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Settings::parse_pipelines(&text, path)
}

fn first(pipelines: Vec<Settings>) -> Settings {
    pipelines
        .into_iter()
        .next()
        .expect("validation yields at least one pipeline")
}

/// `https://user:pass@host/x?token=t` → `https://***@host/x?token=***`,
/// token-like path segments hidden too: see [`crate::secrets::redact_url`].
pub fn redact_url(url: &str) -> String {
    crate::secrets::redact_url(url)
}

impl Settings {
    /// Registers the secrets of every http step's URL (user info, query
    /// values, token paths), so they are masked wherever they appear — in a
    /// client's error text too.
    pub fn register_secrets(&self) {
        let envs = self.train.environments.iter();
        let lists = [&self.main_checks]
            .into_iter()
            .chain(envs.flat_map(|e| [&e.deploy, &e.acceptance]))
            .chain([
                &self.production.deploy,
                &self.production.smoke,
                &self.production.verify.steps,
            ])
            .chain([
                &self.branch_builds.checks,
                &self.branch_builds.deploy,
                &self.branch_builds.smoke,
            ]);
        for step in lists.flatten() {
            if let StepKind::Http { url, .. } | StepKind::Prometheus { url, .. } = &step.kind {
                crate::secrets::register_url(url);
            }
        }
        // API URLs may carry a token too (a proxy's `?key=…`).
        crate::secrets::register_url(&self.forge.github.api_url);
        crate::secrets::register_url(&self.chat.slack.api_url);
    }
}
