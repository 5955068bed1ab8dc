//! The TOML file, 1:1. Every section and key is optional; the doc comment of
//! each field gives its default. Values that need checking beyond their TOML
//! type are `Spanned` so a bad one can be reported with its line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::pipelines;
use super::problem::{Problem, from_toml_error};
use super::settings::{ConfigError, Settings};

/// Reads the TOML text and validates it into every pipeline's [`Settings`],
/// in name order. `path` is where the text came from: relative paths in it
/// start at its directory.
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<Settings>, ConfigError> {
    let invalid = |problem: Problem| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: problem.render(text),
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|err| invalid(from_toml_error(text, &err)))?;
    pipelines::settings(raw, text, path).map_err(invalid)
}

/// The whole file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    pub bot: RawBot,
    pub chat: RawChat,
    pub forge: RawForge,
    pub main: RawMain,
    pub train: RawTrain,
    /// `[environments.NAME]`, one per lower environment. Default: none, which
    /// is an error unless `train.environments` is set to match.
    pub environments: BTreeMap<Spanned<String>, RawEnv>,
    pub production: RawProduction,
    pub branch_builds: RawBranchBuilds,
    pub tags: RawTags,
    pub roles: RawRoles,
    /// Commit email or forge login -> chat user id/name. Default: empty.
    pub people: BTreeMap<String, String>,
    /// Shared by every pipeline: not a key of `[pipelines.NAME]`.
    pub web: RawWeb,
    /// `[pipelines.NAME]`: several pipelines, each over the sections above
    /// as defaults. Absent: the file is one pipeline. Spanned so an empty
    /// `[pipelines]` table can be pointed at.
    pub pipelines: Option<Spanned<BTreeMap<Spanned<String>, RawPipeline>>>,
}

/// A list of steps. `None` (absent) differs from `Some([])`: a pipeline's
/// `deploy = []` overrides the top level's steps with none.
pub(super) type RawSteps = Option<Vec<Spanned<RawStep>>>;

/// `[pipelines.NAME]`: the sections a pipeline may override, key by key.
/// `bot`, `people` and all of `chat` but the channel are shared by every
/// pipeline, so they are unknown keys here.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPipeline {
    pub chat: RawPipelineChat,
    pub forge: RawForge,
    pub main: RawMain,
    pub train: RawTrain,
    pub environments: BTreeMap<Spanned<String>, RawEnv>,
    pub production: RawProduction,
    pub branch_builds: RawBranchBuilds,
    pub tags: RawTags,
    pub roles: RawRoles,
}

/// `[pipelines.NAME.chat]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPipelineChat {
    /// This pipeline's Slack channel. Default: `chat.slack.channel`, shared.
    pub channel: Option<Spanned<String>>,
}

/// `[bot]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawBot {
    /// Default `"./trainbot-data"`, relative to the config file's directory.
    pub data_dir: Option<Spanned<String>>,
    /// Default `"!"`.
    pub command_prefix: Option<Spanned<String>>,
    /// Default `"127.0.0.1:8080"`.
    pub http_listen: Option<Spanned<String>>,
    /// Default `"http://127.0.0.1:8080"`.
    pub public_url: Option<Spanned<String>>,
    /// A second listener serving only `POST /webhooks/github`. Default:
    /// none (the webhook is on `http_listen` only).
    pub webhook_listen: Option<Spanned<String>>,
    /// How long a running production step may go on after SIGTERM/SIGINT
    /// before it is stopped. Default `"10m"`.
    pub shutdown_grace: Option<Spanned<String>>,
    /// The most a step's log keeps (its start and its end), like `"512KiB"`
    /// or `"1GiB"`; at least `"1KiB"`. Default `"10MiB"`.
    pub max_step_log: Option<Spanned<String>>,
    /// How long the workdir of a run that did not pass is kept, for a look
    /// at what it left; `"0s"` removes it at once. Default `"24h"`.
    pub keep_failed_workdirs: Option<Spanned<String>>,
}

/// `[web]`: who may read the pages (SPEC §13).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawWeb {
    /// The environment variable holding the password every page, `/api/*`
    /// and `/metrics` ask for. Default: none (no password).
    pub password_env: Option<Spanned<String>>,
    /// Lets `bot.http_listen` be a non-loopback address without a password.
    /// Default false.
    pub public: Option<bool>,
}

/// `[chat]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawChat {
    /// `"console"` | `"slack"`. Default `"console"`.
    pub adapter: Option<Spanned<String>>,
    /// Default `"local"`.
    pub console_user: Option<Spanned<String>>,
    pub slack: RawSlack,
}

/// `[chat.slack]`, validated even when the console is selected.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSlack {
    /// Name or id. Default `"#deploys"`.
    pub channel: Option<Spanned<String>>,
    /// Default `"SLACK_BOT_TOKEN"`.
    pub bot_token_env: Option<Spanned<String>>,
    /// Default `"SLACK_APP_TOKEN"`.
    pub app_token_env: Option<Spanned<String>>,
    /// Default `"https://slack.com/api"`; a trailing `/` is dropped.
    pub api_url: Option<Spanned<String>>,
}

/// `[forge]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawForge {
    /// `"git"` | `"github"`. Default `"git"`.
    pub kind: Option<Spanned<String>>,
    /// Default `"main"`.
    pub main_branch: Option<Spanned<String>>,
    /// Default `"30s"`.
    pub poll_interval: Option<Spanned<String>>,
    /// How long one forge call may take before the engine gives up on it.
    /// Default `"30s"`.
    pub timeout: Option<Spanned<String>>,
    pub git: RawGit,
    pub github: RawGithub,
}

/// `[forge.git]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawGit {
    /// Default `"."`, relative to the config file's directory.
    pub path: Option<Spanned<String>>,
}

/// `[forge.github]`, validated even when the git forge is selected.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawGithub {
    /// Default `""`.
    pub owner: Option<Spanned<String>>,
    /// Default `""`.
    pub repo: Option<Spanned<String>>,
    /// Default `"GITHUB_TOKEN"`.
    pub token_env: Option<Spanned<String>>,
    /// Default `"GITHUB_WEBHOOK_SECRET"`.
    pub webhook_secret_env: Option<Spanned<String>>,
    /// Default `"https://api.github.com"`; a trailing `/` is dropped.
    pub api_url: Option<Spanned<String>>,
    /// `!bb` results as a `trainbot/branch` check run. Default false.
    pub checks: Option<bool>,
    /// `!bb` results as a `trainbot/branch` commit status. Default true.
    pub statuses: Option<bool>,
    /// `"token"` (default) or `"app"`.
    pub auth: Option<Spanned<String>>,
    /// The GitHub App's id, with `auth = "app"`.
    pub app_id: Option<Spanned<i64>>,
    /// Default `"GITHUB_APP_PRIVATE_KEY"`: the app's PEM private key.
    pub private_key_env: Option<Spanned<String>>,
    /// The app's installation on the repository; looked up when absent.
    pub installation_id: Option<Spanned<i64>>,
}

/// `[main]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMain {
    /// Checks a merged SHA must pass to be allocated. Default: none.
    pub checks: RawSteps,
}

/// `[train]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawTrain {
    /// Cron, seconds first. Default `"0 0 * * * *"` (hourly).
    pub schedule: Option<Spanned<String>>,
    /// IANA name. Default `"UTC"`.
    pub timezone: Option<Spanned<String>>,
    /// `"all-authors"` | `"any-author"`. Default `"all-authors"`.
    pub approval: Option<Spanned<String>>,
    /// Default `"30m"`.
    pub approval_timeout: Option<Spanned<String>>,
    /// Authors who have not answered are reminded this long after the
    /// approval request, then again every as long (SPEC §14). Default
    /// `"0s"`: off.
    pub remind_after: Option<Spanned<String>>,
    /// Ops are told who is missing this long after the approval request.
    /// Default `"0s"`: off.
    pub escalate_after: Option<Spanned<String>>,
    /// Lower environments, in order. Default `["staging", "preview", "preprod"]`.
    pub environments: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"stop"` | `"eject"`: what a veto does (SPEC §15). Default `"stop"`.
    pub on_veto: Option<Spanned<String>>,
}

/// `[environments.NAME]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawEnv {
    /// Default: none.
    pub deploy: RawSteps,
    /// Default: none.
    pub acceptance: RawSteps,
    /// Where the environment is reached, an http(s) URL: the
    /// `environment_url` of its GitHub deployments. Default: none.
    pub url: Option<Spanned<String>>,
}

/// `[production]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawProduction {
    /// Default: none.
    pub deploy: RawSteps,
    /// Where production is reached, an http(s) URL: the `environment_url`
    /// of its GitHub deployments. Default: none.
    pub url: Option<Spanned<String>>,
    /// Default: none.
    pub smoke: RawSteps,
    /// Deploy windows, `"Mon-Fri 09:00-17:00"`, in `train.timezone`.
    /// Default: none (always open).
    pub windows: Option<Vec<Spanned<String>>>,
    /// Steps checking production after smoke, every `verify_every` for
    /// `verify_for` (SPEC §15). Default: none (no verification).
    pub verify: RawSteps,
    /// Default `"10m"`.
    pub verify_for: Option<Spanned<String>>,
    /// Default `"1m"`.
    pub verify_every: Option<Spanned<String>>,
    /// Failed checks tolerated in the window. Default 0.
    pub verify_failure_limit: Option<Spanned<i64>>,
    /// Wait before the first check. Default `"0s"`.
    pub verify_delay: Option<Spanned<String>>,
    /// Redeploy the previous production SHA when verification is red.
    /// Default true.
    pub auto_rollback: Option<bool>,
}

/// `[branch_builds]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawBranchBuilds {
    /// Default: none (branch builds are off).
    pub nodes: Option<Vec<Spanned<String>>>,
    /// Must contain `{node}`. Default `"http://{node}.localhost"`.
    pub node_url: Option<Spanned<String>>,
    /// Default: none.
    pub checks: RawSteps,
    /// Default: none.
    pub deploy: RawSteps,
    /// Default: none.
    pub smoke: RawSteps,
    /// Pipelines naming the same pool share its nodes. Default: none (the
    /// nodes are this pipeline's own).
    pub pool: Option<Spanned<String>>,
    /// How many `!bb` of one user may wait for a node at once. Default 3.
    pub max_queued_per_user: Option<Spanned<i64>>,
}

/// `[tags]`: regexes; a tag matching one deploys its SHA.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawTags {
    /// Default: none (tags do nothing).
    pub staging: Option<Spanned<String>>,
    /// Default: none (tags do nothing).
    pub production: Option<Spanned<String>>,
    /// How long a tag deploy whose commits the forge cannot list is tried
    /// again (with backoff) before it is dropped. Default `"1h"`.
    pub give_up_after: Option<Spanned<String>>,
}

/// `[roles]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRoles {
    /// Chat user ids/names allowed to `!force`, freeze and cancel. Default: none.
    pub ops: Option<Vec<String>>,
    /// Who may update live (`!force`, `!rollback`, `!deploy … to
    /// production`, `!unlock production`). Default: unset (ops may).
    pub production: Option<Vec<String>>,
}

/// One step: exactly one of `run`, `http`, `workflow`, `prometheus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    /// A shell command, run by `sh -c` in the config file's directory.
    pub run: Option<Spanned<String>>,
    /// A URL; 2xx is success.
    pub http: Option<Spanned<String>>,
    /// Only with `http`. Default `"POST"`.
    pub method: Option<Spanned<String>>,
    /// A GitHub Actions workflow file, dispatched with `workflow_dispatch`.
    pub workflow: Option<Spanned<String>>,
    /// Only with `workflow`. Default: the main branch.
    #[serde(rename = "ref")]
    pub git_ref: Option<Spanned<String>>,
    /// Only with `workflow`. Default: none.
    pub inputs: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// A Prometheus server's base URL: the step runs an instant query.
    pub prometheus: Option<Spanned<String>>,
    /// Only with `prometheus`, and required there: the PromQL expression.
    pub query: Option<Spanned<String>>,
    /// Only with `prometheus`: every series must be at least this.
    pub min: Option<Spanned<f64>>,
    /// Only with `prometheus`: every series must be at most this. At least
    /// one of `min` and `max` is required.
    pub max: Option<Spanned<f64>>,
    /// Default `"30m"`.
    pub timeout: Option<Spanned<String>>,
    /// Extra attempts after a failure. Default 0.
    pub retries: Option<u32>,
    /// Variables for the step: `NAME = "plain"` or
    /// `NAME = { secret_env = "VAR" }` (the value of the bot's `VAR`, read
    /// at start). Default: none.
    pub env: Option<BTreeMap<Spanned<String>, Spanned<RawEnvValue>>>,
}

/// A value in a step's `env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string or { secret_env = \"VAR\" }")]
pub(super) enum RawEnvValue {
    Plain(String),
    Secret(RawSecretEnv),
}

/// `{ secret_env = "VAR" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecretEnv {
    pub secret_env: String,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::{ChatAdapter, ForgeKind, StepKind};
    use crate::domain::approval::ApprovalPolicy;

    const ENVS: &str = "[environments.staging]\n[environments.preview]\n[environments.preprod]\n";

    fn parse_at(text: &str, path: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new(path)).map_err(|err| err.to_string())
    }

    fn expect_ok(text: &str) -> Settings {
        parse_at(text, "/etc/trainbot/bot.toml").unwrap_or_else(|err| panic!("{err}"))
    }

    /// The error for `text`, checked to be one line naming `key` and `line N`.
    fn expect_error(text: &str, key: &str, line: usize) -> String {
        let Err(err) = parse_at(text, "/etc/trainbot/bot.toml") else {
            panic!("expected an error for:\n{text}");
        };
        assert!(!err.contains('\n'), "not one line: {err}");
        assert!(err.starts_with("/etc/trainbot/bot.toml: "), "{err}");
        assert!(
            err.contains(&format!("line {line}: ")),
            "no line {line}: {err}"
        );
        assert!(err.contains(key), "no key {key}: {err}");
        err
    }

    #[test]
    fn example_parses() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let path = dir.join("bot.toml.example");
        let settings = Settings::load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(settings.config_dir, dir);
        assert_eq!(settings.forge.git_path, dir);
        assert_eq!(settings.bot.data_dir, dir.join("trainbot-data"));
        assert_eq!(settings.bot.max_step_log, 10 << 20);
        assert_eq!(settings.chat.adapter, ChatAdapter::Console);
        assert!(settings.ops.contains(&settings.chat.console_user));
        let names: Vec<&str> = settings
            .train
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["staging", "preview", "preprod"]);
        assert!(
            settings
                .train
                .environments
                .iter()
                .all(|e| !e.deploy.is_empty() && !e.acceptance.is_empty())
        );
        assert_eq!(settings.train.environments[0].acceptance[0].retries, 1);
        assert!(!settings.production.deploy.is_empty() && !settings.production.smoke.is_empty());
        assert_eq!(settings.branch_builds.nodes, ["branch-1", "branch-2"]);
        assert_eq!(settings.forge.poll_interval, Duration::from_secs(5));
        assert!(settings.people.is_empty());
        assert!(settings.main_checks.is_empty());
    }

    #[test]
    fn defaults() {
        let settings = expect_ok(ENVS);
        assert_eq!(settings.config_dir, PathBuf::from("/etc/trainbot"));
        assert_eq!(
            settings.bot.data_dir,
            PathBuf::from("/etc/trainbot/trainbot-data")
        );
        assert_eq!(settings.bot.command_prefix, "!");
        assert_eq!(settings.bot.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.bot.public_url, "http://127.0.0.1:8080");
        assert_eq!(settings.chat.adapter, ChatAdapter::Console);
        assert_eq!(settings.chat.console_user, "local");
        assert_eq!(settings.chat.slack.channel, "#deploys");
        assert_eq!(settings.chat.slack.bot_token_env, "SLACK_BOT_TOKEN");
        assert_eq!(settings.chat.slack.app_token_env, "SLACK_APP_TOKEN");
        assert_eq!(settings.chat.slack.api_url, "https://slack.com/api");
        assert_eq!(settings.forge.kind, ForgeKind::Git);
        assert_eq!(settings.forge.main_branch, "main");
        assert_eq!(settings.forge.poll_interval, Duration::from_secs(30));
        assert_eq!(settings.forge.git_path, PathBuf::from("/etc/trainbot"));
        assert_eq!(settings.forge.github.token_env, "GITHUB_TOKEN");
        assert_eq!(
            settings.forge.github.webhook_secret_env,
            "GITHUB_WEBHOOK_SECRET"
        );
        assert_eq!(settings.forge.github.api_url, "https://api.github.com");
        assert_eq!(settings.forge.github.auth, crate::config::GithubAuth::Token);
        assert_eq!(settings.train.schedule_text, "0 0 * * * *");
        assert_eq!(settings.train.timezone, chrono_tz::UTC);
        assert_eq!(settings.train.approval, ApprovalPolicy::AllAuthors);
        assert_eq!(settings.train.approval_timeout, Duration::from_secs(1800));
        assert_eq!(settings.train.on_veto, crate::domain::eject::OnVeto::Stop);
        assert_eq!(settings.tags.give_up_after, Duration::from_secs(3600));
        assert_eq!(settings.train.environments.len(), 3);
        assert_eq!(settings.branch_builds.node_url, "http://{node}.localhost");
        assert!(settings.branch_builds.nodes.is_empty());
        assert!(settings.tags.staging.is_none() && settings.tags.production.is_none());
        assert!(settings.ops.is_empty() && settings.people.is_empty());
    }

    #[test]
    fn an_app_is_its_id_its_key_variable_and_maybe_its_installation() {
        let app = |extra: &str| {
            let text = format!("{ENVS}[forge.github]\nauth = \"app\"\napp_id = 12345\n{extra}");
            expect_ok(&text).forge.github.auth
        };
        assert_eq!(
            app(""),
            crate::config::GithubAuth::App {
                app_id: 12345,
                private_key_env: "GITHUB_APP_PRIVATE_KEY".into(),
                installation_id: None,
            }
        );
        assert_eq!(
            app("private_key_env = \"APP_PEM\"\ninstallation_id = 678"),
            crate::config::GithubAuth::App {
                app_id: 12345,
                private_key_env: "APP_PEM".into(),
                installation_id: Some(678),
            }
        );
    }

    #[test]
    fn empty_file_names_the_missing_environment_tables() {
        let err = parse_at("", "bot.toml").unwrap_err();
        assert!(err.contains("train.environments"), "{err}");
        assert!(
            err.contains("[environments.staging], [environments.preview], [environments.preprod]"),
            "{err}"
        );
    }

    #[test]
    fn no_lower_environments() {
        let settings = expect_ok("[train]\nenvironments = []\n");
        assert!(settings.train.environments.is_empty());
    }

    #[test]
    fn steps_of_every_kind() {
        let text = r#"
[forge]
kind = "github"
[forge.github]
owner = "acme"
repo = "web"
[train]
environments = ["qa"]
[environments.qa]
deploy = [
  { run = "./deploy.sh", timeout = "10m", retries = 2 },
  { http = "https://hooks.example.com/deploy" },
  { http = "https://hooks.example.com/deploy", method = "put" },
  { workflow = "deploy.yml", ref = "release", inputs = { sha = "{sha}", env = "{env}" } },
]
"#;
        let settings = expect_ok(text);
        let deploy = &settings.train.environments[0].deploy;
        assert_eq!(deploy[0].kind, StepKind::Run("./deploy.sh".into()));
        assert_eq!(
            (deploy[0].timeout, deploy[0].retries),
            (Duration::from_secs(600), 2)
        );
        assert_eq!(deploy[1].timeout, Duration::from_secs(1800));
        assert_eq!(deploy[1].label(), "POST https://hooks.example.com/deploy");
        assert_eq!(deploy[2].label(), "PUT https://hooks.example.com/deploy");
        let StepKind::Workflow {
            git_ref, inputs, ..
        } = &deploy[3].kind
        else {
            panic!()
        };
        assert_eq!(git_ref.as_deref(), Some("release"));
        assert_eq!(inputs["sha"], "{sha}");
    }

    #[test]
    fn relative_paths_start_at_the_config_directory() {
        let text = format!("{ENVS}[bot]\ndata_dir = \"data\"\n[forge.git]\npath = \"../repo\"\n");
        let settings = parse_at(&text, "/srv/bot/conf/bot.toml").unwrap();
        assert_eq!(settings.bot.data_dir, PathBuf::from("/srv/bot/conf/data"));
        assert_eq!(
            settings.forge.git_path,
            PathBuf::from("/srv/bot/conf/../repo")
        );

        let text = format!("{ENVS}[bot]\ndata_dir = \"/var/lib/trainbot\"\n");
        let settings = parse_at(&text, "bot.toml").unwrap();
        assert_eq!(settings.bot.data_dir, PathBuf::from("/var/lib/trainbot"));
        assert_eq!(settings.config_dir, std::env::current_dir().unwrap());
    }

    #[test]
    fn slack_is_an_adapter() {
        let settings = expect_ok(&format!(
            "{ENVS}[chat]\nadapter = \"slack\"\n[chat.slack]\nchannel = \"C0DEPLOY\"\n"
        ));
        assert_eq!(settings.chat.adapter, ChatAdapter::Slack);
        assert_eq!(settings.chat.slack.channel, "C0DEPLOY");
    }

    #[test]
    fn trailing_slashes_are_dropped() {
        let settings = expect_ok(&format!(
            "{ENVS}[chat.slack]\napi_url = \"http://127.0.0.1:9999/api/\"\n"
        ));
        assert_eq!(settings.chat.slack.api_url, "http://127.0.0.1:9999/api");
    }

    #[test]
    fn unknown_key() {
        let err = expect_error(
            &format!("{ENVS}[bot]\ndata_dri = \"x\"\n"),
            "bot.data_dri",
            5,
        );
        assert!(err.contains("unknown field `data_dri`"), "{err}");
        assert!(err.contains("data_dir"), "expected keys are listed: {err}");
        expect_error("[colour]\nx = 1\n", "colour", 1);
        expect_error(
            &format!("{ENVS}[production]\ndeploy = [{{ run = \"x\", tmeout = \"1m\" }}]\n"),
            "tmeout",
            5,
        );
    }

    #[test]
    fn wrong_type() {
        let err = expect_error(
            &format!("{ENVS}[bot]\ncommand_prefix = 5\n"),
            "bot.command_prefix",
            5,
        );
        assert!(err.contains("invalid type"), "{err}");
        expect_error(
            &format!("{ENVS}[production]\ndeploy = [{{ run = \"x\", retries = -1 }}]\n"),
            "production.deploy[0].retries",
            5,
        );
        expect_error(
            "[train]\nenvironments = \"staging\"\n",
            "train.environments",
            2,
        );
    }

    #[test]
    fn syntax_error_is_one_line() {
        expect_error("[bot\n", "", 1);
    }

    #[test]
    fn bad_values() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[train]\napproval_timeout = \"30 minutes\"",
                "train.approval_timeout",
                "is not a duration",
            ),
            (
                "[forge]\npoll_interval = \"0s\"",
                "forge.poll_interval",
                "is not a duration",
            ),
            (
                "[train]\nschedule = \"0 9 * * *\"",
                "train.schedule",
                "cron needs 6 fields, seconds first",
            ),
            (
                "[train]\nschedule = \"every hour\"",
                "train.schedule",
                "is not a cron schedule",
            ),
            (
                "[train]\ntimezone = \"Mars/Olympus\"",
                "train.timezone",
                "IANA",
            ),
            (
                "[train]\napproval = \"everyone\"",
                "train.approval",
                "\"all-authors\" or \"any-author\"",
            ),
            (
                "[train]\non_veto = \"explode\"",
                "train.on_veto",
                "\"stop\" or \"eject\"",
            ),
            (
                "[chat]\nadapter = \"irc\"",
                "chat.adapter",
                "not an adapter",
            ),
            ("[forge]\nkind = \"gitlab\"", "forge.kind", "not a forge"),
            (
                "[forge]\nkind = \"github\"",
                "forge.github.owner",
                "is required with forge.kind",
            ),
            (
                "[production]\ndeploy = [{ workflow = \"deploy.yml\" }]",
                "production.deploy[0]",
                "need forge.kind = \"github\"",
            ),
            (
                "[bot]\nhttp_listen = \"localhost\"",
                "bot.http_listen",
                "not an address",
            ),
            (
                "[bot]\npublic_url = \"example.com\"",
                "bot.public_url",
                "URL",
            ),
            (
                "[chat.slack]\nbot_token_env = \"xoxb-123\"",
                "chat.slack.bot_token_env",
                "environment variable",
            ),
            (
                "[forge.github]\napi_url = \"ftp://x\"",
                "forge.github.api_url",
                "URL",
            ),
            (
                "[forge.github]\nauth = \"oauth\"",
                "forge.github.auth",
                "\"token\" or \"app\"",
            ),
            (
                "[forge.github]\nauth = \"app\"",
                "forge.github.auth",
                "needs forge.github.app_id",
            ),
            (
                "[forge.github]\napp_id = -4",
                "forge.github.app_id",
                "-4 is not an id",
            ),
            (
                "[forge.github]\ninstallation_id = 0",
                "forge.github.installation_id",
                "0 is not an id",
            ),
            (
                "[forge.github]\nprivate_key_env = \"-----BEGIN\"",
                "forge.github.private_key_env",
                "environment variable",
            ),
            ("[tags]\nstaging = \"(v\"", "tags.staging", "not a regex"),
            (
                "[tags]\ngive_up_after = \"soon\"",
                "tags.give_up_after",
                "not a duration",
            ),
            (
                "[tags]\ngive_up_after = \"0s\"",
                "tags.give_up_after",
                "not a duration",
            ),
            // Every duration is at most 30 days, so none can overflow a clock.
            (
                "[train]\napproval_timeout = \"100000000d\"",
                "train.approval_timeout",
                "\"100000000d\" is too long: at most 30d",
            ),
            (
                "[tags]\ngive_up_after = \"99999999999999999999999h\"",
                "tags.give_up_after",
                "at most 30d",
            ),
            (
                "[forge]\npoll_interval = \"30d1s\"",
                "forge.poll_interval",
                "at most 30d",
            ),
            (
                "[production]\ndeploy = [{ run = \"x\", timeout = \"31d\" }]",
                "production.deploy[0].timeout",
                "at most 30d",
            ),
            (
                "[bot]\nmax_step_log = \"10MB\"",
                "bot.max_step_log",
                "\"10MB\" is not a size",
            ),
            (
                "[bot]\nmax_step_log = \"100\"",
                "bot.max_step_log",
                "at least 1KiB",
            ),
            (
                "[branch_builds]\nnode_url = \"http://x\"",
                "branch_builds.node_url",
                "{node}",
            ),
            (
                "[branch_builds]\nnodes = [\"a b\"]",
                "branch_builds.nodes",
                "not a node name",
            ),
        ];
        for (body, key, what) in cases {
            let err = expect_error(&format!("{ENVS}{body}\n"), key, 5);
            assert!(err.contains(what), "{body}: {err}");
        }
    }

    #[test]
    fn environment_listed_without_table() {
        let text = "[train]\nenvironments = [\"staging\", \"qa\"]\n[environments.staging]\n";
        let err = expect_error(text, "train.environments", 2);
        assert!(
            err.contains("\"qa\" has no [environments.qa] table"),
            "{err}"
        );
    }

    #[test]
    fn table_not_listed() {
        let text =
            "[train]\nenvironments = [\"staging\"]\n[environments.staging]\n\n[environments.qa]\n";
        let err = expect_error(text, "environments.qa", 5);
        assert!(err.contains("not listed in train.environments"), "{err}");
        let err = expect_error(&format!("{ENVS}[environments.qa]\n"), "environments.qa", 4);
        assert!(err.contains("default"), "{err}");
    }

    #[test]
    fn step_with_two_kinds_or_none() {
        let text = format!(
            "{ENVS}[production]\ndeploy = [\n  {{ run = \"a\" }},\n  {{ run = \"b\", http = \"https://x\" }},\n]\n"
        );
        let err = expect_error(&text, "production.deploy[1]", 7);
        assert!(err.contains("found run and http"), "{err}");
        let text = format!("{ENVS}[production]\nsmoke = [{{ timeout = \"1m\" }}]\n");
        let err = expect_error(&text, "production.smoke[0]", 5);
        assert!(err.contains("found none"), "{err}");
    }

    #[test]
    fn step_details() {
        let prod = |step: &str| format!("{ENVS}[production]\ndeploy = [{step}]\n");
        expect_error(
            &prod("{ run = \"x\", method = \"GET\" }"),
            "production.deploy[0].method",
            5,
        );
        expect_error(
            &prod("{ http = \"https://x\", method = \"FETCH\" }"),
            "production.deploy[0].method",
            5,
        );
        expect_error(
            &prod("{ run = \"x\", timeout = \"soon\" }"),
            "production.deploy[0].timeout",
            5,
        );
        expect_error(
            &prod("{ workflow = \"d.yml\", inputs = { sha = \"{sah}\" } }"),
            "production.deploy[0].inputs.sha",
            5,
        );
        expect_error(
            &prod("{ workflow = \"d.yml\", inputs = { sha = 1 } }"),
            "production.deploy[0].inputs.sha",
            5,
        );
        expect_error(
            &prod("{ run = \"x\", ref = \"main\" }"),
            "production.deploy[0].ref",
            5,
        );
    }

    #[test]
    fn windows_and_the_production_role_are_read() {
        let s = expect_ok(&format!(
            "{ENVS}[production]\nwindows = [\"Mon-Fri 09:00-17:00\", \"Sat 10:00-12:00\"]\n[roles]\nops = [\"o\"]\nproduction = [\"alice\"]\n"
        ));
        assert_eq!(s.production.windows.0.len(), 2);
        assert_eq!(s.production_role, Some(vec!["alice".to_string()]));
        let s = expect_ok(ENVS);
        assert!(s.production.windows.0.is_empty() && s.production_role.is_none());
    }

    #[test]
    fn a_bad_window_names_its_key_and_line() {
        let text = format!(
            "{ENVS}[production]\nwindows = [\n  \"Mon-Fri 09:00-17:00\",\n  \"Mon-Fri 17:00-09:00\",\n]\n"
        );
        let err = expect_error(&text, "production.windows[1]", 7);
        assert!(err.contains("must end after it starts"), "{err}");
    }

    #[test]
    fn shutdown_grace_defaults_to_ten_minutes_and_names_its_key_and_line() {
        let settings = expect_ok(ENVS);
        assert_eq!(settings.bot.shutdown_grace, Duration::from_secs(600));
        let settings = expect_ok(&format!("{ENVS}[bot]\nshutdown_grace = \"90s\"\n"));
        assert_eq!(settings.bot.shutdown_grace, Duration::from_secs(90));
        let err = expect_error(
            &format!("{ENVS}[bot]\ndata_dir = \"d\"\nshutdown_grace = \"ten minutes\"\n"),
            "bot.shutdown_grace",
            6,
        );
        assert!(err.contains("is not a duration"), "{err}");
    }

    #[test]
    fn the_pages_leave_loopback_only_behind_a_password_or_when_public() {
        let s = expect_ok(ENVS);
        assert!(s.web.password_env.is_none() && !s.web.public && s.web.password.is_none());
        assert!(s.bot.webhook_listen.is_none());
        for loopback in ["127.0.0.1:0", "127.1.2.3:8080", "[::1]:8080"] {
            expect_ok(&format!("{ENVS}[bot]\nhttp_listen = \"{loopback}\"\n"));
        }
        for open in ["0.0.0.0:8080", "192.168.1.10:8080", "[::]:8080"] {
            let text = format!("{ENVS}[bot]\ndata_dir = \"d\"\nhttp_listen = \"{open}\"\n");
            let err = expect_error(&text, "bot.http_listen", 6);
            assert!(
                err.contains("web.password_env") && err.contains("web.public"),
                "{err}"
            );
            let s = expect_ok(&format!(
                "{text}[web]\npassword_env = \"TRAINBOT_WEB_PASSWORD\"\n"
            ));
            assert_eq!(s.web.password_env.as_deref(), Some("TRAINBOT_WEB_PASSWORD"));
            let s = expect_ok(&format!("{text}[web]\npublic = true\n"));
            assert!(s.web.public);
            expect_error(
                &format!("{text}[web]\npublic = false\n"),
                "bot.http_listen",
                6,
            );
        }
        expect_error(
            &format!("{ENVS}[web]\npassword_env = \"hunter 2\"\n"),
            "web.password_env",
            5,
        );
        expect_error(
            &format!("{ENVS}[web]\npasword_env = \"X\"\n"),
            "web.pasword_env",
            5,
        );
    }

    #[test]
    fn the_webhook_may_have_a_listener_of_its_own() {
        let s = expect_ok(&format!("{ENVS}[bot]\nwebhook_listen = \"0.0.0.0:9000\"\n"));
        assert_eq!(s.bot.webhook_listen.unwrap().to_string(), "0.0.0.0:9000");
        let err = expect_error(
            &format!("{ENVS}[bot]\nwebhook_listen = \"0.0.0.0\"\n"),
            "bot.webhook_listen",
            5,
        );
        assert!(err.contains("not an address"), "{err}");
        expect_error(
            &format!(
                "{ENVS}[bot]\nhttp_listen = \"127.0.0.1:8080\"\nwebhook_listen = \"127.0.0.1:8080\"\n"
            ),
            "bot.webhook_listen",
            6,
        );
    }

    /// `text` with the lines that start with one of `keys` uncommented;
    /// each key must start exactly one line.
    fn uncomment(text: &str, keys: &[&str]) -> String {
        for key in keys {
            let n = text.lines().filter(|l| l.starts_with(key)).count();
            assert_eq!(n, 1, "{key:?} starts {n} lines");
        }
        text.lines()
            .map(|line| match keys.iter().find(|k| line.starts_with(*k)) {
                Some(_) => &line[2..],
                None => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_example_s_commented_github_app_keys_are_real() {
        let text = include_str!("../../bot.toml.example");
        let keys = [
            "# auth",
            "# app_id",
            "# private_key_env",
            "# installation_id",
            "# checks = true",
        ];
        let s = expect_ok(&uncomment(text, &keys));
        assert_eq!(
            s.forge.github.auth,
            crate::config::GithubAuth::App {
                app_id: 123456,
                private_key_env: "GITHUB_APP_PRIVATE_KEY".into(),
                installation_id: Some(7890123),
            }
        );
        assert!(s.forge.github.checks);
    }

    #[test]
    fn the_example_s_commented_web_access_keys_are_real() {
        let text = include_str!("../../bot.toml.example");
        let keys = ["# [web]", "# password_env", "# public", "# webhook_listen"];
        let s = expect_ok(&uncomment(text, &keys));
        assert_eq!(s.web.password_env.as_deref(), Some("TRAINBOT_WEB_PASSWORD"));
        assert_eq!(s.bot.webhook_listen.unwrap().to_string(), "0.0.0.0:8081");
    }

    #[test]
    fn the_example_s_commented_rhythm_keys_are_real_and_off_by_default() {
        let text = include_str!("../../bot.toml.example");
        let s = expect_ok(text);
        assert_eq!((s.train.remind_after, s.train.escalate_after), (None, None));
        let keys = ["# remind_after", "# escalate_after"];
        let s = expect_ok(&uncomment(text, &keys));
        assert_eq!(s.train.remind_after, Some(Duration::from_secs(600)));
        assert_eq!(s.train.escalate_after, Some(Duration::from_secs(1200)));
    }

    #[test]
    fn step_env_plain_and_secret() {
        use crate::config::EnvValue;
        let text = "[train]\nenvironments = [\"staging\"]\n[environments.staging]\ndeploy = [{ run = \"x\", env = { REGION = \"eu\", TOKEN = { secret_env = \"DEPLOY_TOKEN\" } } }]\n";
        let s = expect_ok(text);
        assert_eq!(
            s.train.environments[0].deploy[0].env,
            [
                ("REGION".to_string(), EnvValue::Plain("eu".into())),
                (
                    "TOKEN".to_string(),
                    EnvValue::Secret {
                        var: "DEPLOY_TOKEN".into(),
                        key: "environments.staging.deploy[0].env.TOKEN".into(),
                    }
                ),
            ]
        );
        // Every kind takes env.
        expect_ok(&format!(
            "{ENVS}[production]\nsmoke = [{{ http = \"https://x\", env = {{ A = \"1\" }} }}]\n"
        ));
    }

    #[test]
    fn bad_step_env_names_its_key_and_line() {
        let staging = |env: &str| {
            format!(
                "[train]\nenvironments = [\"staging\"]\n[environments.staging]\n\ndeploy = [{{ run = \"x\", env = {env} }}]\n"
            )
        };
        let err = expect_error(
            &staging("{ X = \"1\", \"A-B\" = \"2\" }"),
            "environments.staging.deploy[0].env.A-B",
            5,
        );
        assert!(err.contains("not an environment variable name"), "{err}");
        let err = expect_error(
            &staging("{ TRAINBOT_SHA = \"1\" }"),
            "environments.staging.deploy[0].env.TRAINBOT_SHA",
            5,
        );
        assert!(err.contains("TRAINBOT_"), "{err}");
        let err = expect_error(
            &staging("{ T = { secret_env = \"ghp_abc def\" } }"),
            "environments.staging.deploy[0].env.T.secret_env",
            5,
        );
        assert!(err.contains("not an environment variable name"), "{err}");
        expect_error(
            &staging("{ T = { secret = \"VAR\" } }"),
            "environments.staging.deploy[0].env.T",
            5,
        );
        expect_error(
            &staging("{ T = 5 }"),
            "environments.staging.deploy[0].env.T",
            5,
        );
    }

    #[test]
    fn unset_secret_env_is_an_error_naming_key_and_variable() {
        let text = format!(
            "{ENVS}[production]\ndeploy = [{{ run = \"x\", env = {{ TOKEN = {{ secret_env = \"STEP_TOKEN_T1\" }} }} }}]\n"
        );
        let s = expect_ok(&text);
        let pipelines = [s];
        for lookup in [None, Some(String::new())] {
            let err =
                crate::config::load_step_secrets_with(&pipelines, |_| lookup.clone()).unwrap_err();
            assert_eq!(
                err,
                "production.deploy[0].env.TOKEN.secret_env: the environment variable STEP_TOKEN_T1 is not set or empty"
            );
        }
        assert_eq!(crate::config::step_secret("STEP_TOKEN_T1"), None);
        // Too short to be masked: refused, not handed to a step unmasked.
        let err =
            crate::config::load_step_secrets_with(&pipelines, |_| Some("1234".into())).unwrap_err();
        assert_eq!(
            err,
            "production.deploy[0].env.TOKEN.secret_env: the value of STEP_TOKEN_T1 is too short to be masked in logs and chat: at least 6 characters"
        );
        assert_eq!(crate::config::step_secret("STEP_TOKEN_T1"), None);
        crate::config::load_step_secrets_with(&pipelines, |var| {
            (var == "STEP_TOKEN_T1").then(|| "s3cret-step-token-t1".to_string())
        })
        .unwrap();
        assert_eq!(
            crate::config::step_secret("STEP_TOKEN_T1").as_deref(),
            Some("s3cret-step-token-t1")
        );
        assert_eq!(
            crate::secrets::mask("echo s3cret-step-token-t1"),
            "echo ***"
        );
    }

    #[test]
    fn keep_failed_workdirs() {
        assert_eq!(
            expect_ok(ENVS).bot.keep_failed_workdirs,
            Duration::from_secs(86_400)
        );
        let s = expect_ok(&format!("{ENVS}[bot]\nkeep_failed_workdirs = \"0s\"\n"));
        assert_eq!(s.bot.keep_failed_workdirs, Duration::ZERO);
        let s = expect_ok(&format!("{ENVS}[bot]\nkeep_failed_workdirs = \"2h\"\n"));
        assert_eq!(s.bot.keep_failed_workdirs, Duration::from_secs(7200));
        let err = expect_error(
            &format!("{ENVS}[bot]\nkeep_failed_workdirs = \"a while\"\n"),
            "bot.keep_failed_workdirs",
            5,
        );
        assert!(err.contains("is not a duration"), "{err}");
    }
}
