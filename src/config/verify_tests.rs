//! `[production] verify` and its window (SPEC §15).

use std::path::Path;
use std::time::Duration;

use super::Settings;

const ENVS: &str = "[train]\nenvironments = []\n";

fn parse(production: &str) -> Result<Settings, String> {
    let text = format!("{ENVS}[production]\n{production}");
    Settings::parse(&text, Path::new("/etc/trainbot/bot.toml")).map_err(|e| e.to_string())
}

/// The error names the key and its line (the `[production]` header is
/// line 3, so its first key is line 4).
fn error(production: &str, key: &str, line: usize) -> String {
    let err = parse(production).expect_err("an error");
    assert!(err.contains(key), "{key} not named: {err}");
    assert!(
        err.contains(&format!("line {line}: ")),
        "no line {line}: {err}"
    );
    err
}

#[test]
fn no_verify_means_no_verification_and_auto_rollback_defaults_on() {
    let s = parse("").unwrap();
    assert!(s.production.verify.steps.is_empty());
    assert!(s.production.verify.auto_rollback);
}

#[test]
fn verify_steps_take_the_defaults() {
    let s = parse("verify = [{ run = \"true\" }]\n").unwrap();
    let v = &s.production.verify;
    assert_eq!(v.steps.len(), 1);
    assert_eq!(v.window, Duration::from_secs(600));
    assert_eq!(v.every, Duration::from_secs(60));
    assert_eq!(v.delay, Duration::ZERO);
    assert_eq!(v.failure_limit, 0);
    assert!(v.auto_rollback);
}

#[test]
fn every_verify_key_is_read() {
    let s = parse(
        "verify = [{ run = \"true\" }, { http = \"https://x/health\" }]\nverify_for = \"30m\"\nverify_every = \"5m\"\nverify_failure_limit = 2\nverify_delay = \"2m\"\nauto_rollback = false\n",
    )
    .unwrap();
    let v = &s.production.verify;
    assert_eq!(v.steps.len(), 2);
    assert_eq!(v.window, Duration::from_secs(1800));
    assert_eq!(v.every, Duration::from_secs(300));
    assert_eq!(v.delay, Duration::from_secs(120));
    assert_eq!(v.failure_limit, 2);
    assert!(!v.auto_rollback);
}

#[test]
fn bad_verify_keys_name_the_key_and_line() {
    let steps = "verify = [{ run = \"true\" }]\n";
    error(
        &format!("{steps}verify_for = \"5m\"\nverify_every = \"10m\"\n"),
        "production.verify_every",
        6,
    );
    error(
        &format!("{steps}verify_for = \"5m\"\nverify_delay = \"5m\"\n"),
        "production.verify_delay",
        6,
    );
    error(
        &format!("{steps}verify_for = \"soon\"\n"),
        "production.verify_for",
        5,
    );
    error(
        &format!("{steps}verify_failure_limit = -1\n"),
        "production.verify_failure_limit",
        5,
    );
    error(
        &format!("{steps}verify_every = \"40d\"\n"),
        "production.verify_every",
        5,
    );
    // A window without steps would parse and do nothing: refused.
    error("verify_for = \"5m\"\n", "production.verify_for", 4);
    error(
        "verify_failure_limit = 1\n",
        "production.verify_failure_limit",
        4,
    );
}

#[test]
fn a_pipeline_overrides_verify_key_by_key() {
    let text = "[forge]\nkind = \"git\"\n[forge.git]\npath = \".\"\n[train]\nenvironments = []\n[production]\nverify = [{ run = \"true\" }]\nverify_for = \"20m\"\n[pipelines.web.chat]\nchannel = \"#web\"\n[pipelines.api.chat]\nchannel = \"#api\"\n[pipelines.api.production]\nverify_every = \"2m\"\nauto_rollback = false\n";
    let all = crate::config::Settings::parse_pipelines(text, Path::new("/etc/trainbot/bot.toml"));
    let all = all.unwrap_or_else(|e| panic!("{e}"));
    let get = |name: &str| all.iter().find(|s| s.pipeline.name == name).unwrap();
    assert_eq!(
        get("web").production.verify.window,
        Duration::from_secs(1200)
    );
    assert_eq!(get("web").production.verify.every, Duration::from_secs(60));
    assert!(get("web").production.verify.auto_rollback);
    assert_eq!(get("api").production.verify.every, Duration::from_secs(120));
    assert_eq!(get("api").production.verify.steps.len(), 1);
    assert!(!get("api").production.verify.auto_rollback);
}
