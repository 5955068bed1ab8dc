//! Lower environments: `train.environments` (the order) paired with the
//! `[environments.NAME]` tables (the steps).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::problem::Problem;
use super::raw::RawEnv;
use super::settings::EnvSettings;
use super::steps::steps;

/// `train.environments` when the key is absent.
pub(super) const DEFAULT_ENVIRONMENTS: [&str; 3] = ["staging", "preview", "preprod"];

/// Pairs `train.environments` with the `[environments.NAME]` tables: a name
/// without a table or a table without a name is a mistake either way.
pub(super) fn environments(
    listed: Option<&Spanned<Vec<Spanned<String>>>>,
    tables: &BTreeMap<Spanned<String>, RawEnv>,
) -> Result<Vec<EnvSettings>, Problem> {
    let key = "train.environments";
    let by_name: BTreeMap<&str, (&Spanned<String>, &RawEnv)> = tables
        .iter()
        .map(|(name, env)| (name.get_ref().as_str(), (name, env)))
        .collect();
    let names: Vec<(&str, Option<Range<usize>>)> = match listed {
        Some(list) => list
            .get_ref()
            .iter()
            .map(|n| (n.get_ref().as_str(), Some(n.span())))
            .collect(),
        None => {
            let missing: Vec<String> = DEFAULT_ENVIRONMENTS
                .iter()
                .filter(|name| !by_name.contains_key(*name))
                .map(|name| format!("[environments.{name}]"))
                .collect();
            if !missing.is_empty() {
                let message = format!(
                    "defaults to {DEFAULT_ENVIRONMENTS:?}, but {} missing; add the tables or set train.environments (\"[]\" for none)",
                    if missing.len() == 1 {
                        format!("{} is", missing[0])
                    } else {
                        format!("{} are", missing.join(", "))
                    }
                );
                return Err(Problem::nowhere(key, message));
            }
            DEFAULT_ENVIRONMENTS
                .iter()
                .map(|name| (*name, None))
                .collect()
        }
    };

    let mut seen = BTreeSet::new();
    let mut envs = Vec::new();
    for (name, span) in names {
        let problem = |message: String| Problem {
            span: span.clone(),
            key: key.to_string(),
            message,
        };
        if !is_name(name) || name == "production" {
            return Err(problem(format!(
                "{name:?} is not an environment name (letters, digits, \"-\", \"_\"; not \"production\")"
            )));
        }
        if !seen.insert(name) {
            return Err(problem(format!("{name:?} is listed twice")));
        }
        let Some((_, env)) = by_name.get(name) else {
            return Err(problem(format!(
                "{name:?} has no [environments.{name}] table"
            )));
        };
        envs.push(EnvSettings {
            name: name.to_string(),
            deploy: steps(&format!("environments.{name}.deploy"), &env.deploy)?,
            acceptance: steps(&format!("environments.{name}.acceptance"), &env.acceptance)?,
            url: env_url(&format!("environments.{name}.url"), env.url.as_ref())?,
        });
    }
    if let Some((table, _)) = by_name
        .iter()
        .find(|(name, _)| !seen.contains(*name))
        .map(|(_, v)| *v)
    {
        let name = table.get_ref();
        let message = match listed {
            Some(_) => format!("[environments.{name}] is not listed in train.environments"),
            None => format!(
                "[environments.{name}] is not listed in train.environments (default {DEFAULT_ENVIRONMENTS:?})"
            ),
        };
        return Err(Problem::at(
            table.span(),
            format!("environments.{name}"),
            message,
        ));
    }
    Ok(envs)
}

/// An environment's `url`: an http(s) URL, shown on its GitHub deployments.
pub(super) fn env_url(key: &str, raw: Option<&Spanned<String>>) -> Result<Option<String>, Problem> {
    let Some(url) = raw else { return Ok(None) };
    super::steps::check_http_url(url.get_ref())
        .map_err(|message| Problem::at(url.span(), key.to_string(), message))?;
    Ok(Some(url.get_ref().clone()))
}

/// Environment and node names reach chat, URLs and environment variables.
pub(super) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
