//! The `prometheus` step kind's keys: checked with the key and line.

use std::path::Path;

use crate::config::{Settings, StepKind};

const ENVS: &str = "[environments.staging]\n[environments.preview]\n[environments.preprod]\n";

/// A config whose `production.smoke` is `[step]`, on line 5.
fn smoke(step: &str) -> String {
    format!("{ENVS}[production]\nsmoke = [{step}]\n")
}

fn parse(text: &str) -> Result<Settings, String> {
    Settings::parse(text, Path::new("/etc/trainbot/bot.toml")).map_err(|e| e.to_string())
}

/// The error, checked to be one line naming `key` on line 5.
fn error(step: &str, key: &str) -> String {
    let err = parse(&smoke(step)).expect_err("expected an error");
    assert!(!err.contains('\n'), "not one line: {err}");
    assert!(err.contains("line 5: "), "no line 5: {err}");
    assert!(err.contains(key), "no key {key}: {err}");
    err
}

#[test]
fn a_prometheus_step_has_its_url_query_and_bounds() {
    let step = r#"{ prometheus = "http://prom:9090/", query = 'sum(rate(x{code=~"5.."}[5m]))', max = 0.05, retries = 2, timeout = "30s" }"#;
    let settings = parse(&smoke(step)).unwrap_or_else(|e| panic!("{e}"));
    let step = &settings.production.smoke[0];
    assert_eq!(
        step.kind,
        StepKind::Prometheus {
            url: "http://prom:9090".into(),
            query: r#"sum(rate(x{code=~"5.."}[5m]))"#.into(),
            min: None,
            max: Some(0.05),
        }
    );
    assert_eq!(step.retries, 2);
    assert_eq!(step.timeout, std::time::Duration::from_secs(30));
    assert_eq!(
        step.label(),
        r#"prometheus http://prom:9090 sum(rate(x{code=~"5.."}[5m])) <= 0.05"#
    );
}

#[test]
fn integer_bounds_and_both_bounds_are_accepted() {
    let step = r#"{ prometheus = "http://prom:9090", query = "up", min = 1, max = 1 }"#;
    let settings = parse(&smoke(step)).unwrap_or_else(|e| panic!("{e}"));
    let StepKind::Prometheus { min, max, .. } = &settings.production.smoke[0].kind else {
        panic!("not a prometheus step");
    };
    assert_eq!((*min, *max), (Some(1.0), Some(1.0)));
    assert_eq!(
        settings.production.smoke[0].label(),
        "prometheus http://prom:9090 up in [1, 1]"
    );
}

#[test]
fn the_label_shortens_the_query_and_redacts_the_url() {
    let query = "a".repeat(100);
    let step = format!(
        r#"{{ prometheus = "https://bob:hunter2@prom.example.com", query = "{query}", min = 0.9 }}"#
    );
    let settings = parse(&smoke(&step)).unwrap_or_else(|e| panic!("{e}"));
    let label = settings.production.smoke[0].label();
    assert!(!label.contains("hunter2"), "{label}");
    assert!(
        label.contains(&format!("{}… >= 0.9", "a".repeat(60))),
        "{label}"
    );
    assert!(!label.contains(&"a".repeat(61)), "{label}");
}

#[test]
fn a_prometheus_step_without_a_query_is_refused() {
    let err = error(
        r#"{ prometheus = "http://prom:9090", max = 1 }"#,
        "production.smoke[0].query",
    );
    assert!(err.contains("needs a query"), "{err}");
    error(
        r#"{ prometheus = "http://prom:9090", query = " ", max = 1 }"#,
        "production.smoke[0].query",
    );
}

#[test]
fn a_query_without_prometheus_is_refused() {
    let err = error(
        r#"{ run = "x", query = "up" }"#,
        "production.smoke[0].query",
    );
    assert!(err.contains("query only goes with prometheus"), "{err}");
    let err = error(
        r#"{ http = "http://x", max = 1 }"#,
        "production.smoke[0].max",
    );
    assert!(err.contains("max only goes with prometheus"), "{err}");
}

#[test]
fn a_prometheus_step_without_bounds_is_refused() {
    let err = error(
        r#"{ prometheus = "http://prom:9090", query = "up" }"#,
        "production.smoke[0].max",
    );
    assert!(err.contains("needs max, min or both"), "{err}");
}

#[test]
fn min_over_max_is_refused() {
    let err = error(
        r#"{ prometheus = "http://prom:9090", query = "up", min = 2, max = 1.5 }"#,
        "production.smoke[0].min",
    );
    assert!(err.contains("min (2) is greater than max (1.5)"), "{err}");
}

#[test]
fn non_finite_bounds_and_bad_urls_are_refused() {
    error(
        r#"{ prometheus = "http://prom:9090", query = "up", max = nan }"#,
        "production.smoke[0].max",
    );
    error(
        r#"{ prometheus = "prom:9090", query = "up", max = 1 }"#,
        "production.smoke[0].prometheus",
    );
}

#[test]
fn prometheus_and_run_together_are_refused() {
    let err = error(
        r#"{ run = "x", prometheus = "http://prom:9090", query = "up", max = 1 }"#,
        "production.smoke[0]",
    );
    assert!(err.contains("found run and prometheus"), "{err}");
}
