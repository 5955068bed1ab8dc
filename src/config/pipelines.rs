//! `[pipelines.NAME]` (SPEC §16): a pipeline is the top-level sections
//! overridden key by key by its own, then validated like a whole file, so
//! one config and several share every check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use toml::Spanned;

use super::environments::DEFAULT_ENVIRONMENTS;
use super::problem::{Problem, key_at};
use super::raw::{
    RawBranchBuilds, RawChat, RawConfig, RawEnv, RawForge, RawGit, RawGithub, RawMain, RawPipeline,
    RawProduction, RawRoles, RawSlack, RawTags, RawTrain,
};
use super::settings::{ForgeKind, ForgeSettings, PipelineId, Settings};
use super::validate;

type EnvTables = BTreeMap<Spanned<String>, RawEnv>;

/// Every pipeline's settings, in name order; one for a file without
/// `[pipelines]`.
pub(super) fn settings(
    mut raw: RawConfig,
    text: &str,
    path: &Path,
) -> Result<Vec<Settings>, Problem> {
    let Some(pipelines) = raw.pipelines.take() else {
        return Ok(vec![validate::settings(raw, path)?]);
    };
    if pipelines.get_ref().is_empty() {
        return Err(Problem::at(
            pipelines.span(),
            "pipelines",
            "is empty: add [pipelines.NAME] tables, or remove [pipelines] for one pipeline",
        ));
    }
    let mut all = Vec::new();
    let mut used_tables = BTreeSet::new();
    for (name, own) in pipelines.get_ref() {
        check_name(name)?;
        let name = name.get_ref();
        let merged = merge(&raw, own);
        used_tables.extend(merged.environments.keys().map(|k| k.get_ref().clone()));
        let mut settings =
            validate::settings(merged, path).map_err(|p| in_pipeline(p, name, text))?;
        settings.pipeline = PipelineId {
            name: name.clone(),
            multi: true,
        };
        settings.bot.public_url = format!("{}/p/{name}", settings.bot.root_url);
        all.push(settings);
    }
    // Top-level tables are defaults a pipeline takes only when it lists
    // them; one that no pipeline takes is as much a mistake as an unlisted
    // table in a single config.
    if let Some(unused) = raw
        .environments
        .keys()
        .find(|k| !used_tables.contains(k.get_ref()))
    {
        let name = unused.get_ref();
        return Err(Problem::at(
            unused.span(),
            format!("environments.{name}"),
            format!("[environments.{name}] is not listed in any pipeline's train.environments"),
        ));
    }
    Ok(all)
}

/// Names reach URLs (`/p/NAME/`), labels (`web#12`) and store keys.
fn check_name(name: &Spanned<String>) -> Result<(), Problem> {
    let text = name.get_ref();
    let mut chars = text.chars();
    let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = chars.next().is_some_and(lower) && chars.all(|c| lower(c) || c == '-' || c == '_');
    if valid {
        return Ok(());
    }
    Err(Problem::at(
        name.span(),
        format!("pipelines.{text}"),
        format!("{text:?} is not a pipeline name (a-z, 0-9, then also \"-\", \"_\")"),
    ))
}

/// A problem found in a pipeline's merged config is named by where its
/// value was written: the pipeline's table, or the top-level default it
/// inherited. What no line holds (a missing table) is the pipeline's.
fn in_pipeline(mut problem: Problem, name: &str, text: &str) -> Problem {
    let own = format!("pipelines.{name}");
    let written_in_pipeline = match &problem.span {
        None => true,
        Some(span) => key_at(text, span.start)
            .is_some_and(|key| key == own || key.starts_with(&format!("{own}."))),
    };
    if written_in_pipeline && !problem.key.is_empty() {
        // The pipeline's channel is `chat.channel`; it was validated as the
        // top-level key it stands in for.
        let key = match problem.key.as_str() {
            "chat.slack.channel" => "chat.channel",
            key => key,
        };
        problem.key = format!("{own}.{key}");
    }
    problem
}

/// The file as this pipeline sees it: its own keys over the top level's.
fn merge(top: &RawConfig, own: &RawPipeline) -> RawConfig {
    let train = own.train.clone().over(&top.train);
    let environments = environments(&own.environments, &top.environments, &train);
    RawConfig {
        bot: top.bot.clone(),
        chat: RawChat {
            slack: RawSlack {
                channel: own.chat.channel.clone().over(&top.chat.slack.channel),
                ..top.chat.slack.clone()
            },
            ..top.chat.clone()
        },
        forge: own.forge.clone().over(&top.forge),
        main: own.main.clone().over(&top.main),
        train,
        environments,
        production: own.production.clone().over(&top.production),
        branch_builds: own.branch_builds.clone().over(&top.branch_builds),
        tags: own.tags.clone().over(&top.tags),
        roles: own.roles.clone().over(&top.roles),
        people: top.people.clone(),
        web: top.web.clone(),
        pipelines: None,
    }
}

/// The pipeline's own tables (over the top-level table of the same name,
/// key by key), plus the top-level tables it lists but does not override.
fn environments(own: &EnvTables, top: &EnvTables, train: &RawTrain) -> EnvTables {
    let listed = |name: &str| match &train.environments {
        Some(list) => list.get_ref().iter().any(|n| n.get_ref() == name),
        None => DEFAULT_ENVIRONMENTS.contains(&name),
    };
    let mut out: EnvTables = own
        .iter()
        .map(|(name, env)| {
            let merged = match top.get(name.get_ref().as_str()) {
                Some(under) => env.clone().over(under),
                None => env.clone(),
            };
            (name.clone(), merged)
        })
        .collect();
    for (name, env) in top {
        if !out.contains_key(name.get_ref().as_str()) && listed(name.get_ref()) {
            out.insert(name.clone(), env.clone());
        }
    }
    out
}

/// A pool name joins pipelines' node pools, so it is compared as written
/// and must be plain.
pub(super) fn pool(raw: &Spanned<String>) -> Result<String, Problem> {
    let name = raw.get_ref();
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !plain {
        return Err(Problem::at(
            raw.span(),
            "branch_builds.pool",
            format!("{name:?} is not a pool name (a-z, 0-9, \"-\", \"_\")"),
        ));
    }
    Ok(name.clone())
}

/// A single pipeline is named after its repository: the GitHub repo, or
/// the git directory (resolved, so "." names the directory it means).
pub(super) fn repository_name(forge: &ForgeSettings) -> String {
    if forge.kind == ForgeKind::Github {
        return forge.github.repo.clone();
    }
    let path = std::fs::canonicalize(&forge.git_path).unwrap_or_else(|_| forge.git_path.clone());
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

/// Key-by-key override: a key set here wins, an absent one is inherited.
trait Over {
    fn over(self, under: &Self) -> Self;
}

impl<T: Clone> Over for Option<T> {
    fn over(self, under: &Self) -> Self {
        self.or_else(|| under.clone())
    }
}

/// Lists every field, so a key added to a section cannot be forgotten here
/// (the struct literal would not compile).
macro_rules! over_fields {
    ($($ty:ident { $($field:ident),* $(,)? })*) => {$(
        impl Over for $ty {
            fn over(self, under: &Self) -> Self {
                $ty { $($field: self.$field.over(&under.$field)),* }
            }
        }
    )*};
}

over_fields! {
    RawForge { kind, main_branch, poll_interval, timeout, git, github }
    RawGit { path }
    RawGithub { owner, repo, token_env, webhook_secret_env, api_url, checks, statuses, auth, app_id, private_key_env, installation_id }
    RawMain { checks }
    RawTrain { schedule, timezone, approval, approval_timeout, remind_after, escalate_after, environments, on_veto }
    RawEnv { deploy, acceptance, url }
    RawProduction { deploy, url, smoke, windows, verify, verify_for, verify_every, verify_failure_limit, verify_delay, auto_rollback }
    RawBranchBuilds { nodes, node_url, checks, deploy, smoke, pool, max_queued_per_user }
    RawTags { staging, production, give_up_after }
    RawRoles { ops, production }
}
