//! Step secrets (`env = { TOKEN = { secret_env = "VAR" } }`, SPEC §13): read
//! once at start, registered for masking, handed to shell steps by name.

use std::collections::BTreeMap;
use std::sync::RwLock;

use secrecy::{ExposeSecret, SecretString};

use super::settings::{EnvValue, Settings, Step};

/// `VAR` -> its value, as read at start.
static VALUES: RwLock<BTreeMap<String, SecretString>> = RwLock::new(BTreeMap::new());

/// Every step of a pipeline, whatever its phase.
fn all_steps(s: &Settings) -> impl Iterator<Item = &Step> {
    let lower = s
        .train
        .environments
        .iter()
        .flat_map(|e| e.deploy.iter().chain(&e.acceptance));
    s.main_checks
        .iter()
        .chain(lower)
        .chain(&s.production.deploy)
        .chain(&s.production.smoke)
        .chain(&s.production.verify.steps)
        .chain(&s.branch_builds.checks)
        .chain(&s.branch_builds.deploy)
        .chain(&s.branch_builds.smoke)
}

/// Reads every `secret_env` variable the steps name, with `lookup` (the
/// process environment in [`load_step_secrets`]), and registers each value
/// as a secret. An unset or empty one is a config error: `key: …`, one line.
pub fn load_step_secrets_with(
    pipelines: &[Settings],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    for step in pipelines.iter().flat_map(all_steps) {
        for (_, value) in &step.env {
            let EnvValue::Secret { var, key } = value else {
                continue;
            };
            let Some(secret) = lookup(var).filter(|v| !v.is_empty()) else {
                return Err(format!(
                    "{key}.secret_env: the environment variable {var} is not set or empty"
                ));
            };
            // A shorter one could not be masked (it would garble every
            // text), and SPEC §13 masks every step secret: refused, as the
            // web password is.
            if secret.trim().len() < crate::secrets::MIN_LEN {
                return Err(format!(
                    "{key}.secret_env: the value of {var} is too short to be masked in logs and \
                     chat: at least {} characters",
                    crate::secrets::MIN_LEN
                ));
            }
            crate::secrets::register(&secret);
            VALUES
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(var.clone(), SecretString::from(secret));
        }
    }
    Ok(())
}

/// [`load_step_secrets_with`] the bot's own environment. Called once at
/// start, before any step runs.
pub fn load_step_secrets(pipelines: &[Settings]) -> Result<(), String> {
    load_step_secrets_with(pipelines, |var| std::env::var(var).ok())
}

/// The value of `secret_env = "VAR"` as read at start; None if it was not.
pub fn step_secret(var: &str) -> Option<String> {
    VALUES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(var)
        .map(|v| v.expose_secret().to_string())
}
