//! Raw TOML -> validated [`Settings`]: defaults filled in, durations parsed,
//! cron compiled, paths made absolute, environments matched to their tables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::environments::{environments, is_name};
use super::pipelines::{pool, repository_name};
use super::problem::Problem;
use super::raw::{
    RawBot, RawBranchBuilds, RawChat, RawConfig, RawEnv, RawForge, RawGithub, RawProduction,
    RawSlack, RawSteps, RawTags, RawTrain, RawWeb,
};
use super::settings::{
    BotSettings, BranchBuildSettings, ChatAdapter, ChatSettings, ForgeKind, ForgeSettings,
    GithubAuth, GithubSettings, PipelineId, ProductionSettings, Settings, SlackSettings,
    TagSettings, TrainSettings, VerifySettings, WebSettings,
};
use super::steps::{check_duration, check_http_url, steps};
use crate::domain::approval::ApprovalPolicy;
use crate::domain::eject::OnVeto;
use crate::domain::size::parse_size;

type Result<T> = std::result::Result<T, Problem>;

pub(super) fn settings(raw: RawConfig, path: &Path) -> Result<Settings> {
    let config_dir = config_dir(path)?;
    // In the file's order, so the first problem reported stays the same.
    let bot = bot(&raw.bot, &config_dir)?;
    let web = web(&raw.web)?;
    exposed(&raw.bot, &bot, &web)?;
    let chat = chat(&raw.chat)?;
    let forge = forge(&raw.forge, &config_dir)?;
    let settings = Settings {
        pipeline: PipelineId {
            name: repository_name(&forge),
            multi: false,
        },
        bot,
        chat,
        forge,
        main_checks: steps("main.checks", &raw.main.checks)?,
        train: train(&raw.train, &raw.environments)?,
        production: ProductionSettings {
            deploy: steps("production.deploy", &raw.production.deploy)?,
            url: super::environments::env_url("production.url", raw.production.url.as_ref())?,
            smoke: steps("production.smoke", &raw.production.smoke)?,
            windows: windows(raw.production.windows.as_deref().unwrap_or_default())?,
            verify: verify(&raw.production)?,
        },
        branch_builds: branch_builds(&raw.branch_builds)?,
        tags: tags(&raw.tags)?,
        ops: raw.roles.ops.clone().unwrap_or_default(),
        production_role: raw.roles.production.clone(),
        people: raw.people.clone(),
        web,
        config_dir,
    };
    if settings.forge.kind != ForgeKind::Github {
        workflows_need_github(&raw)?;
        urls_need_github(&raw)?;
    }
    Ok(settings)
}

/// Workflow steps are dispatched on GitHub Actions: with the git forge
/// there is nowhere to run them.
/// An environment's `url` is only shown on GitHub deployments: on the git
/// forge it would do nothing.
fn urls_need_github(raw: &RawConfig) -> Result<()> {
    let mut urls = vec![("production.url".to_string(), &raw.production.url)];
    for (name, env) in &raw.environments {
        urls.push((format!("environments.{}.url", name.get_ref()), &env.url));
    }
    for (key, url) in urls {
        if let Some(url) = url {
            return Err(Problem::at(
                url.span(),
                key,
                "environment URLs are shown on GitHub deployments and need forge.kind = \"github\"",
            ));
        }
    }
    Ok(())
}

fn workflows_need_github(raw: &RawConfig) -> Result<()> {
    let mut lists: Vec<(String, &RawSteps)> = vec![
        ("main.checks".into(), &raw.main.checks),
        ("production.deploy".into(), &raw.production.deploy),
        ("production.smoke".into(), &raw.production.smoke),
        ("production.verify".into(), &raw.production.verify),
        ("branch_builds.checks".into(), &raw.branch_builds.checks),
        ("branch_builds.deploy".into(), &raw.branch_builds.deploy),
        ("branch_builds.smoke".into(), &raw.branch_builds.smoke),
    ];
    for (name, env) in &raw.environments {
        let name = name.get_ref();
        lists.push((format!("environments.{name}.deploy"), &env.deploy));
        lists.push((format!("environments.{name}.acceptance"), &env.acceptance));
    }
    for (key, steps) in lists {
        if let Some((i, step)) = steps
            .iter()
            .flatten()
            .enumerate()
            .find(|(_, s)| s.get_ref().workflow.is_some())
        {
            return Err(Problem::at(
                step.span(),
                format!("{key}[{i}]"),
                "workflow steps run on GitHub Actions and need forge.kind = \"github\"",
            ));
        }
    }
    Ok(())
}

/// A string value and where it is, or its default, which has no place in the
/// file. Defaults are valid, so only written values ever produce a problem.
struct Field<'a> {
    key: &'static str,
    value: &'a str,
    span: Option<Range<usize>>,
}

impl<'a> Field<'a> {
    fn new(key: &'static str, raw: &'a Option<Spanned<String>>, default: &'a str) -> Field<'a> {
        match raw {
            Some(spanned) => Field {
                key,
                value: spanned.get_ref(),
                span: Some(spanned.span()),
            },
            None => Field {
                key,
                value: default,
                span: None,
            },
        }
    }

    fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            span: self.span.clone(),
            key: self.key.to_string(),
            message: message.into(),
        }
    }

    /// Non-empty and without whitespace: names, ids, prefixes.
    fn word(&self) -> Result<String> {
        if self.value.is_empty() || self.value.chars().any(char::is_whitespace) {
            return Err(self.problem(format!(
                "{:?} must be non-empty, without spaces",
                self.value
            )));
        }
        Ok(self.value.to_string())
    }

    /// An environment variable name; secrets are read from it at startup.
    fn env_name(&self) -> Result<String> {
        let valid = self
            .value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && self
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let message = format!(
                "{:?} is not an environment variable name (the file names the variable, not the secret)",
                self.value
            );
            return Err(self.problem(message));
        }
        Ok(self.value.to_string())
    }

    /// An http(s) URL without the trailing `/`, so paths can be appended.
    fn base_url(&self) -> Result<String> {
        check_http_url(self.value).map_err(|message| self.problem(message))?;
        Ok(self.value.trim_end_matches('/').to_string())
    }

    /// A size of at least 1 KiB, so a capped log still shows its headers.
    fn size(&self) -> Result<u64> {
        match parse_size(self.value) {
            Some(size) if size >= 1024 => Ok(size),
            Some(_) => Err(self.problem(format!("{:?} is too small: at least 1KiB", self.value))),
            None => Err(self.problem(format!(
                "{:?} is not a size (use \"512KiB\", \"10MiB\", \"1GiB\")",
                self.value
            ))),
        }
    }

    fn path(&self, config_dir: &Path) -> Result<PathBuf> {
        if self.value.is_empty() {
            return Err(self.problem("the path is empty"));
        }
        std::path::absolute(config_dir.join(self.value))
            .map_err(|err| self.problem(format!("cannot make {:?} absolute: {err}", self.value)))
    }

    fn duration(&self) -> Result<std::time::Duration> {
        check_duration(self.value).map_err(|message| self.problem(message))
    }

    /// A duration, or zero written as `"0s"` (`"0"`, `"0m"`, …).
    fn duration_or_zero(&self) -> Result<std::time::Duration> {
        let digits = self
            .value
            .trim_end_matches(|c: char| c.is_ascii_alphabetic());
        if !digits.is_empty() && digits.chars().all(|c| c == '0') {
            return Ok(std::time::Duration::ZERO);
        }
        self.duration()
    }
}

/// The config file's directory, absolute: `bot.toml` has the parent "".
fn config_dir(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::path::absolute(dir)
        .map_err(|err| Problem::nowhere("", format!("cannot find the config directory: {err}")))
}

/// A socket address, like `"127.0.0.1:8080"`.
fn socket_address(field: &Field<'_>) -> Result<SocketAddr> {
    field.value.parse().map_err(|_| {
        field.problem(format!(
            "{:?} is not an address (use \"127.0.0.1:8080\" or \"0.0.0.0:8080\")",
            field.value
        ))
    })
}

fn bot(raw: &RawBot, config_dir: &Path) -> Result<BotSettings> {
    let listen = Field::new("bot.http_listen", &raw.http_listen, "127.0.0.1:8080");
    let http_listen = socket_address(&listen)?;
    let webhook_listen = match &raw.webhook_listen {
        None => None,
        Some(_) => {
            let field = Field::new("bot.webhook_listen", &raw.webhook_listen, "");
            let addr = socket_address(&field)?;
            if addr == http_listen && addr.port() != 0 {
                return Err(field.problem(format!(
                    "{:?} is bot.http_listen too: the webhook's own listener needs another port",
                    field.value
                )));
            }
            Some(addr)
        }
    };
    let public_url =
        Field::new("bot.public_url", &raw.public_url, "http://127.0.0.1:8080").base_url()?;
    Ok(BotSettings {
        data_dir: Field::new("bot.data_dir", &raw.data_dir, "./trainbot-data").path(config_dir)?,
        command_prefix: Field::new("bot.command_prefix", &raw.command_prefix, "!").word()?,
        http_listen,
        webhook_listen,
        root_url: public_url.clone(),
        public_url,
        shutdown_grace: Field::new("bot.shutdown_grace", &raw.shutdown_grace, "10m").duration()?,
        max_step_log: Field::new("bot.max_step_log", &raw.max_step_log, "10MiB").size()?,
        keep_failed_workdirs: Field::new(
            "bot.keep_failed_workdirs",
            &raw.keep_failed_workdirs,
            "24h",
        )
        .duration_or_zero()?,
    })
}

fn web(raw: &RawWeb) -> Result<WebSettings> {
    let password_env = match &raw.password_env {
        None => None,
        Some(_) => Some(Field::new("web.password_env", &raw.password_env, "").env_name()?),
    };
    Ok(WebSettings {
        password_env,
        public: raw.public.unwrap_or(false),
        password: None,
    })
}

/// The pages show commits, people and logs: they leave the machine only
/// behind a password, or when the file says they are public (SPEC §13).
fn exposed(raw: &RawBot, bot: &BotSettings, web: &WebSettings) -> Result<()> {
    let loopback = bot.http_listen.ip().to_canonical().is_loopback();
    if loopback || web.password_env.is_some() || web.public {
        return Ok(());
    }
    let listen = Field::new("bot.http_listen", &raw.http_listen, "127.0.0.1:8080");
    Err(listen.problem(format!(
        "{:?} is not a loopback address, so anyone who reaches it reads the dashboard: \
         set web.password_env (a password) or web.public = true, \
         or serve only the webhook with bot.webhook_listen",
        listen.value
    )))
}

fn chat(raw: &RawChat) -> Result<ChatSettings> {
    // Slack is validated first and even when unused, so switching adapters
    // later does not reveal old mistakes.
    let slack = slack(&raw.slack)?;
    let adapter = Field::new("chat.adapter", &raw.adapter, "console");
    let adapter = match adapter.value {
        "console" => ChatAdapter::Console,
        "slack" => ChatAdapter::Slack,
        other => {
            return Err(adapter.problem(format!(
                "{other:?} is not an adapter (use \"console\" or \"slack\")"
            )));
        }
    };
    let console_user = Field::new("chat.console_user", &raw.console_user, "local");
    if console_user.value.starts_with('@') {
        return Err(console_user.problem("write the name without \"@\""));
    }
    Ok(ChatSettings {
        adapter,
        console_user: console_user.word()?,
        slack,
    })
}

fn slack(raw: &RawSlack) -> Result<SlackSettings> {
    Ok(SlackSettings {
        channel: Field::new("chat.slack.channel", &raw.channel, "#deploys").word()?,
        bot_token_env: Field::new(
            "chat.slack.bot_token_env",
            &raw.bot_token_env,
            "SLACK_BOT_TOKEN",
        )
        .env_name()?,
        app_token_env: Field::new(
            "chat.slack.app_token_env",
            &raw.app_token_env,
            "SLACK_APP_TOKEN",
        )
        .env_name()?,
        api_url: Field::new("chat.slack.api_url", &raw.api_url, "https://slack.com/api")
            .base_url()?,
    })
}

fn forge(raw: &RawForge, config_dir: &Path) -> Result<ForgeSettings> {
    let github = github(&raw.github)?;
    let kind = Field::new("forge.kind", &raw.kind, "git");
    let kind = match kind.value {
        "git" => ForgeKind::Git,
        "github" => {
            for (key, value) in [
                ("forge.github.owner", &github.owner),
                ("forge.github.repo", &github.repo),
            ] {
                if value.is_empty() {
                    return Err(Problem {
                        span: kind.span.clone(),
                        key: key.into(),
                        message: "is required with forge.kind = \"github\"".into(),
                    });
                }
            }
            ForgeKind::Github
        }
        other => {
            return Err(kind.problem(format!(
                "{other:?} is not a forge (use \"git\" or \"github\")"
            )));
        }
    };
    let main_branch = Field::new("forge.main_branch", &raw.main_branch, "main");
    if main_branch.value.starts_with('-') || main_branch.value.contains("..") {
        return Err(main_branch.problem(format!("{:?} is not a branch name", main_branch.value)));
    }
    Ok(ForgeSettings {
        kind,
        main_branch: main_branch.word()?,
        poll_interval: Field::new("forge.poll_interval", &raw.poll_interval, "30s").duration()?,
        timeout: Field::new("forge.timeout", &raw.timeout, "30s").duration()?,
        git_path: Field::new("forge.git.path", &raw.git.path, ".").path(config_dir)?,
        github,
    })
}

fn github(raw: &RawGithub) -> Result<GithubSettings> {
    // Owner and repo have no sensible default; they are required only once
    // the github forge is selected.
    let name = |field: Field<'_>| match field.value {
        "" => Ok(String::new()),
        _ => field.word(),
    };
    Ok(GithubSettings {
        owner: name(Field::new("forge.github.owner", &raw.owner, ""))?,
        repo: name(Field::new("forge.github.repo", &raw.repo, ""))?,
        token_env: Field::new("forge.github.token_env", &raw.token_env, "GITHUB_TOKEN")
            .env_name()?,
        webhook_secret_env: Field::new(
            "forge.github.webhook_secret_env",
            &raw.webhook_secret_env,
            "GITHUB_WEBHOOK_SECRET",
        )
        .env_name()?,
        api_url: Field::new(
            "forge.github.api_url",
            &raw.api_url,
            "https://api.github.com",
        )
        .base_url()?,
        checks: raw.checks.unwrap_or(false),
        statuses: raw.statuses.unwrap_or(true),
        auth: github_auth(raw)?,
    })
}

/// `auth`, and for an app its id, key variable and installation.
fn github_auth(raw: &RawGithub) -> Result<GithubAuth> {
    let auth = Field::new("forge.github.auth", &raw.auth, "token");
    let private_key_env = Field::new(
        "forge.github.private_key_env",
        &raw.private_key_env,
        "GITHUB_APP_PRIVATE_KEY",
    )
    .env_name()?;
    let id = |key: &'static str, value: &Option<Spanned<i64>>| -> Result<Option<u64>> {
        match value {
            None => Ok(None),
            Some(n) => match u64::try_from(*n.get_ref()) {
                Ok(id) if id >= 1 => Ok(Some(id)),
                _ => Err(Problem::at(
                    n.span(),
                    key,
                    format!(
                        "{} is not an id (a number from GitHub, at least 1)",
                        n.get_ref()
                    ),
                )),
            },
        }
    };
    let app_id = id("forge.github.app_id", &raw.app_id)?;
    let installation_id = id("forge.github.installation_id", &raw.installation_id)?;
    match auth.value {
        "token" => Ok(GithubAuth::Token),
        "app" => match app_id {
            Some(app_id) => Ok(GithubAuth::App {
                app_id,
                private_key_env,
                installation_id,
            }),
            None => Err(auth.problem(
                "auth = \"app\" needs forge.github.app_id, the App ID on the app's settings page",
            )),
        },
        other => Err(auth.problem(format!(
            "{other:?} is not a way to sign in to GitHub: \"token\" or \"app\""
        ))),
    }
}

fn train(raw: &RawTrain, tables: &BTreeMap<Spanned<String>, RawEnv>) -> Result<TrainSettings> {
    let schedule_field = Field::new("train.schedule", &raw.schedule, "0 0 * * * *");
    let schedule = schedule(&schedule_field)?;
    let timezone = Field::new("train.timezone", &raw.timezone, "UTC");
    let tz = timezone.value.parse::<chrono_tz::Tz>().map_err(|_| {
        timezone.problem(format!(
            "{:?} is not an IANA time zone (e.g. \"UTC\", \"Europe/Berlin\")",
            timezone.value
        ))
    })?;
    let approval = Field::new("train.approval", &raw.approval, "all-authors");
    let approval = match approval.value {
        "all-authors" => ApprovalPolicy::AllAuthors,
        "any-author" => ApprovalPolicy::AnyAuthor,
        other => {
            return Err(approval.problem(format!(
                "{other:?} is not an approval policy (use \"all-authors\" or \"any-author\")"
            )));
        }
    };
    let on_veto = Field::new("train.on_veto", &raw.on_veto, "stop");
    let on_veto = match on_veto.value {
        "stop" => OnVeto::Stop,
        "eject" => OnVeto::Eject,
        other => {
            return Err(on_veto.problem(format!(
                "{other:?} is not what a veto does (use \"stop\" or \"eject\")"
            )));
        }
    };
    Ok(TrainSettings {
        on_veto,
        schedule,
        schedule_text: schedule_field.value.to_string(),
        timezone: tz,
        approval,
        approval_timeout: Field::new("train.approval_timeout", &raw.approval_timeout, "30m")
            .duration()?,
        remind_after: off_or(Field::new("train.remind_after", &raw.remind_after, "0s"))?,
        escalate_after: off_or(Field::new(
            "train.escalate_after",
            &raw.escalate_after,
            "0s",
        ))?,
        environments: environments(raw.environments.as_ref(), tables)?,
    })
}

/// A duration, or None for `"0s"` (off).
fn off_or(field: Field<'_>) -> Result<Option<std::time::Duration>> {
    let d = field.duration_or_zero()?;
    Ok((!d.is_zero()).then_some(d))
}

fn schedule(field: &Field<'_>) -> Result<cron::Schedule> {
    let text = field.value.trim();
    // The usual mistake is a crontab line; cron's own error for it does not
    // say that a seconds field is missing.
    if !text.starts_with('@') && text.split_whitespace().count() == 5 {
        return Err(field.problem(format!(
            "{text:?}: cron needs 6 fields, seconds first, e.g. \"0 0 * * * *\""
        )));
    }
    text.parse().map_err(|err: cron::error::Error| {
        // cron's message draws a caret under the input; the last line says why.
        let full = err.to_string();
        let reason = full.lines().map(str::trim).rfind(|l| !l.is_empty());
        field.problem(format!(
            "{text:?} is not a cron schedule ({}); use 6 or 7 fields, seconds first, e.g. {:?}",
            reason.unwrap_or("invalid"),
            "0 0 * * * *"
        ))
    })
}

fn branch_builds(raw: &RawBranchBuilds) -> Result<BranchBuildSettings> {
    let mut nodes = Vec::new();
    for node in raw.nodes.iter().flatten() {
        let name = node.get_ref();
        let problem = |message: String| Problem::at(node.span(), "branch_builds.nodes", message);
        if !is_name(name) {
            return Err(problem(format!(
                "{name:?} is not a node name (letters, digits, \"-\", \"_\")"
            )));
        }
        if nodes.contains(name) {
            return Err(problem(format!("{name:?} is listed twice")));
        }
        nodes.push(name.clone());
    }
    let node_url = Field::new(
        "branch_builds.node_url",
        &raw.node_url,
        "http://{node}.localhost",
    );
    if !node_url.value.contains("{node}") {
        return Err(node_url.problem(format!("{:?} does not contain {{node}}", node_url.value)));
    }
    Ok(BranchBuildSettings {
        nodes,
        node_url: node_url.base_url()?,
        checks: steps("branch_builds.checks", &raw.checks)?,
        deploy: steps("branch_builds.deploy", &raw.deploy)?,
        smoke: steps("branch_builds.smoke", &raw.smoke)?,
        pool: raw.pool.as_ref().map(pool).transpose()?,
        max_queued_per_user: match &raw.max_queued_per_user {
            None => 3,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(Problem::at(
                        n.span(),
                        "branch_builds.max_queued_per_user",
                        format!("{} is not a count of builds (at least 1)", n.get_ref()),
                    ));
                }
            },
        },
    })
}

/// `[production] verify` and its window (SPEC §15).
fn verify(raw: &RawProduction) -> Result<VerifySettings> {
    let steps = steps("production.verify", &raw.verify)?;
    let window = Field::new("production.verify_for", &raw.verify_for, "10m");
    let every = Field::new("production.verify_every", &raw.verify_every, "1m");
    let delay = Field::new("production.verify_delay", &raw.verify_delay, "0s");
    let settings = VerifySettings {
        window: window.duration()?,
        every: every.duration()?,
        delay: delay.duration_or_zero()?,
        failure_limit: match &raw.verify_failure_limit {
            None => 0,
            Some(n) => u32::try_from(*n.get_ref()).map_err(|_| {
                Problem::at(
                    n.span(),
                    "production.verify_failure_limit",
                    format!("{} is not a count of checks (0 or more)", n.get_ref()),
                )
            })?,
        },
        auto_rollback: raw.auto_rollback.unwrap_or(true),
        steps,
    };
    if settings.every > settings.window {
        return Err(every.problem(format!(
            "{:?} is longer than verify_for ({:?}): no check would run",
            every.value, window.value
        )));
    }
    if settings.delay >= settings.window {
        return Err(delay.problem(format!(
            "{:?} is not shorter than verify_for ({:?}): no check would run",
            delay.value, window.value
        )));
    }
    let given = raw.verify_for.is_some()
        || raw.verify_every.is_some()
        || raw.verify_failure_limit.is_some()
        || raw.verify_delay.is_some();
    if settings.steps.is_empty() && given {
        let key = [
            ("production.verify_for", &raw.verify_for),
            ("production.verify_every", &raw.verify_every),
            ("production.verify_delay", &raw.verify_delay),
        ]
        .into_iter()
        .find_map(|(k, v)| v.as_ref().map(|v| (k, v.span())));
        let message = "has no effect without production.verify steps";
        return Err(match key {
            Some((k, span)) => Problem::at(span, k, message),
            None => {
                let n = raw.verify_failure_limit.as_ref().expect("given");
                Problem::at(n.span(), "production.verify_failure_limit", message)
            }
        });
    }
    Ok(settings)
}

fn windows(raw: &[Spanned<String>]) -> Result<crate::domain::window::Windows> {
    raw.iter()
        .enumerate()
        .map(|(i, w)| {
            w.get_ref()
                .parse()
                .map_err(|e: String| Problem::at(w.span(), format!("production.windows[{i}]"), e))
        })
        .collect::<Result<Vec<_>>>()
        .map(crate::domain::window::Windows)
}

fn tags(raw: &RawTags) -> Result<TagSettings> {
    let regex = |key: &str, raw: &Option<Spanned<String>>| -> Result<Option<regex::Regex>> {
        let Some(text) = raw else { return Ok(None) };
        regex::Regex::new(text.get_ref()).map(Some).map_err(|err| {
            // regex errors are multi-line with a caret diagram; keep the reason.
            let full = err.to_string();
            let reason = full
                .lines()
                .find_map(|line| line.strip_prefix("error: "))
                .or_else(|| full.lines().next())
                .unwrap_or("invalid")
                .to_string();
            Problem::at(
                text.span(),
                key,
                format!("{:?} is not a regex: {reason}", text.get_ref()),
            )
        })
    };
    Ok(TagSettings {
        staging: regex("tags.staging", &raw.staging)?,
        production: regex("tags.production", &raw.production)?,
        // Durations are never zero: a tag gets at least one retry.
        give_up_after: Field::new("tags.give_up_after", &raw.give_up_after, "1h").duration()?,
    })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod verify_tests;

#[cfg(test)]
#[path = "github_tests.rs"]
mod github_tests;
