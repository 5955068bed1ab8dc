//! Steps: `{ run = … }`, `{ http = … }`, `{ workflow = … }` or
//! `{ prometheus = …, query = …, max = … }`, each with an optional `timeout`
//! and `retries`.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::problem::Problem;
use super::raw::{RawEnvValue, RawStep, RawSteps};
use super::settings::{EnvValue, Step, StepKind};
use crate::domain::duration::{MAX_DURATION, MAX_DURATION_TEXT, parse_duration};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_METHOD: &str = "POST";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// What workflow inputs may mention; anything else in braces is a typo that
/// would otherwise reach the workflow as literal text.
const PLACEHOLDERS: [&str; 6] = ["sha", "prev_sha", "env", "train", "branch", "node"];

/// Validates a list of steps; `key` is its dotted key, e.g. `production.deploy`.
pub(super) fn steps(key: &str, raw: &RawSteps) -> Result<Vec<Step>, Problem> {
    raw.iter()
        .flatten()
        .enumerate()
        .map(|(i, step_raw)| step(&format!("{key}[{i}]"), step_raw))
        .collect()
}

fn step(key: &str, raw: &Spanned<RawStep>) -> Result<Step, Problem> {
    let span = raw.span();
    let raw = raw.get_ref();
    let kinds: Vec<&str> = [
        raw.run.as_ref().map(|_| "run"),
        raw.http.as_ref().map(|_| "http"),
        raw.workflow.as_ref().map(|_| "workflow"),
        raw.prometheus.as_ref().map(|_| "prometheus"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(" and ")
        };
        let message = format!(
            "a step needs exactly one of run, http, workflow or prometheus (found {found})"
        );
        return Err(Problem::at(span, key, message));
    }
    only_with(key, &raw.method, "method", "http", raw.http.is_some())?;
    only_with(key, &raw.git_ref, "ref", "workflow", raw.workflow.is_some())?;
    only_with(
        key,
        &raw.inputs,
        "inputs",
        "workflow",
        raw.workflow.is_some(),
    )?;
    let prometheus = raw.prometheus.is_some();
    only_with(key, &raw.query, "query", "prometheus", prometheus)?;
    only_with(key, &raw.min, "min", "prometheus", prometheus)?;
    only_with(key, &raw.max, "max", "prometheus", prometheus)?;

    let kind = if let Some(run) = &raw.run {
        if run.get_ref().trim().is_empty() {
            return Err(Problem::at(
                run.span(),
                format!("{key}.run"),
                "the command is empty",
            ));
        }
        StepKind::Run(run.get_ref().clone())
    } else if let Some(url) = &raw.http {
        http_kind(key, url, raw.method.as_ref())?
    } else if let Some(workflow) = &raw.workflow {
        workflow_kind(key, workflow, raw)?
    } else if let Some(url) = &raw.prometheus {
        prometheus_kind(key, span, url, raw)?
    } else {
        unreachable!("exactly one kind was checked above")
    };

    let timeout = match &raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(text) => check_duration(text.get_ref())
            .map_err(|message| Problem::at(text.span(), format!("{key}.timeout"), message))?,
    };
    Ok(Step {
        kind,
        timeout,
        retries: raw.retries.unwrap_or(0),
        env: step_env(key, raw)?,
    })
}

/// `env = { NAME = "plain", TOKEN = { secret_env = "VAR" } }`, in name order.
fn step_env(key: &str, raw: &RawStep) -> Result<Vec<(String, EnvValue)>, Problem> {
    let mut env = Vec::new();
    for (name, value) in raw.env.iter().flatten() {
        let entry = format!("{key}.env.{}", name.get_ref());
        if !is_env_name(name.get_ref()) {
            let message = format!("{:?} is not an environment variable name", name.get_ref());
            return Err(Problem::at(name.span(), entry, message));
        }
        if name.get_ref().to_ascii_uppercase().starts_with("TRAINBOT_") {
            let message = "TRAINBOT_* variables are the bot's own facts; pick another name";
            return Err(Problem::at(name.span(), entry, message));
        }
        let value = match value.get_ref() {
            RawEnvValue::Plain(text) => EnvValue::Plain(text.clone()),
            RawEnvValue::Secret(secret) => {
                let var = &secret.secret_env;
                if !is_env_name(var) {
                    let message = format!(
                        "{var:?} is not an environment variable name (secret_env names the variable, not the secret)"
                    );
                    return Err(Problem::at(
                        value.span(),
                        format!("{entry}.secret_env"),
                        message,
                    ));
                }
                EnvValue::Secret {
                    var: var.clone(),
                    key: entry,
                }
            }
        };
        env.push((name.get_ref().clone(), value));
    }
    Ok(env)
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A key that only makes sense next to another (`method` with `http`) is an
/// error alone, rather than silently ignored.
fn only_with<T>(
    key: &str,
    value: &Option<Spanned<T>>,
    name: &str,
    partner: &str,
    has_partner: bool,
) -> Result<(), Problem> {
    match value {
        Some(value) if !has_partner => Err(Problem::at(
            value.span(),
            format!("{key}.{name}"),
            format!("{name} only goes with {partner}"),
        )),
        _ => Ok(()),
    }
}

fn http_kind(
    key: &str,
    url: &Spanned<String>,
    method: Option<&Spanned<String>>,
) -> Result<StepKind, Problem> {
    check_http_url(url.get_ref())
        .map_err(|message| Problem::at(url.span(), format!("{key}.http"), message))?;
    let method = match method {
        None => DEFAULT_METHOD.to_string(),
        Some(method) => {
            let upper = method.get_ref().to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                let message = format!(
                    "{:?} is not an HTTP method (use one of {})",
                    method.get_ref(),
                    METHODS.join(", ")
                );
                return Err(Problem::at(method.span(), format!("{key}.method"), message));
            }
            upper
        }
    };
    Ok(StepKind::Http {
        url: url.get_ref().clone(),
        method,
    })
}

fn workflow_kind(
    key: &str,
    workflow: &Spanned<String>,
    raw: &RawStep,
) -> Result<StepKind, Problem> {
    if workflow.get_ref().trim().is_empty() {
        return Err(Problem::at(
            workflow.span(),
            format!("{key}.workflow"),
            "the workflow file is empty",
        ));
    }
    if let Some(git_ref) = &raw.git_ref
        && git_ref.get_ref().trim().is_empty()
    {
        return Err(Problem::at(
            git_ref.span(),
            format!("{key}.ref"),
            "the ref is empty",
        ));
    }
    let mut inputs = BTreeMap::new();
    for (name, value) in raw.inputs.iter().flat_map(|inputs| inputs.get_ref()) {
        if let Some(unknown) = unknown_placeholder(value.get_ref()) {
            let message = format!(
                "{{{unknown}}} is not a placeholder (use {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            );
            return Err(Problem::at(
                value.span(),
                format!("{key}.inputs.{name}"),
                message,
            ));
        }
        inputs.insert(name.clone(), value.get_ref().clone());
    }
    Ok(StepKind::Workflow {
        workflow: workflow.get_ref().clone(),
        git_ref: raw.git_ref.as_ref().map(|r| r.get_ref().clone()),
        inputs,
    })
}

/// `{ prometheus = "http://prom:9090", query = "…", min = …, max = … }`:
/// a query, and at least one bound, `min <= max`.
fn prometheus_kind(
    key: &str,
    span: std::ops::Range<usize>,
    url: &Spanned<String>,
    raw: &RawStep,
) -> Result<StepKind, Problem> {
    check_http_url(url.get_ref())
        .map_err(|message| Problem::at(url.span(), format!("{key}.prometheus"), message))?;
    let query = match &raw.query {
        None => {
            let message = "a prometheus step needs a query (query = \"…\")";
            return Err(Problem::at(span, format!("{key}.query"), message));
        }
        Some(query) if query.get_ref().trim().is_empty() => {
            let message = "the query is empty";
            return Err(Problem::at(query.span(), format!("{key}.query"), message));
        }
        Some(query) => query.get_ref().trim().to_string(),
    };
    let bound = |value: &Option<Spanned<f64>>, name: &str| match value {
        Some(value) if !value.get_ref().is_finite() => Err(Problem::at(
            value.span(),
            format!("{key}.{name}"),
            format!("{name} must be a finite number"),
        )),
        _ => Ok(value.as_ref().map(|value| *value.get_ref())),
    };
    let min = bound(&raw.min, "min")?;
    let max = bound(&raw.max, "max")?;
    match (min, max, &raw.min) {
        (None, None, _) => {
            let message =
                "a prometheus step needs max, min or both (the bounds every series must keep)";
            return Err(Problem::at(span, format!("{key}.max"), message));
        }
        (Some(low), Some(high), Some(min_raw)) if low > high => {
            let message = format!("min ({low}) is greater than max ({high})");
            return Err(Problem::at(min_raw.span(), format!("{key}.min"), message));
        }
        _ => {}
    }
    Ok(StepKind::Prometheus {
        url: url.get_ref().trim_end_matches('/').to_string(),
        query,
        min,
        max,
    })
}

/// The first `{word}` in `text` that is not a known placeholder. Braces
/// around anything that is not a plain word (JSON, say) are left alone.
fn unknown_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('}') else { break };
        let word = &rest[..close];
        let is_word =
            !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_word && !PLACEHOLDERS.contains(&word) {
            return Some(word);
        }
    }
    None
}

/// A duration, or the message that shows the accepted forms.
pub(super) fn check_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (use \"90s\", \"30m\", \"1h\")"))?;
    if duration > MAX_DURATION {
        return Err(format!("{text:?} is too long: at most {MAX_DURATION_TEXT}"));
    }
    Ok(duration)
}

/// An `http://` or `https://` URL, or the message saying it is not.
pub(super) fn check_http_url(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !text.chars().any(char::is_whitespace) => Ok(()),
        // Shown at start: user info, query values and token paths hidden.
        _ => Err(format!(
            "{:?} is not an http:// or https:// URL",
            crate::secrets::redact_url(text)
        )),
    }
}

#[cfg(test)]
#[path = "steps_tests.rs"]
mod prometheus_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(unknown_placeholder("{sha}-{env}"), None);
        assert_eq!(unknown_placeholder("{\"a\": 1}"), None);
        assert_eq!(unknown_placeholder("{sah}"), Some("sah"));
        assert_eq!(unknown_placeholder("x{"), None);
    }
}
