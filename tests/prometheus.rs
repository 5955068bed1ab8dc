//! The `prometheus` step kind against a fake Prometheus speaking the real
//! HTTP API: the runner's verdicts, retries, errors and log.

#[path = "support/fake_prometheus.rs"]
mod fake_prometheus;

use std::time::Duration;

use fake_prometheus::{FakePrometheus, Reply};
use tokio::sync::watch;
use trainbot::config::{Step, StepKind};
use trainbot::runner::kinds::Backoff;
use trainbot::runner::prometheus::PrometheusRunner;
use trainbot::runner::{StepError, StepOutcome, StepRequest, StepRunner};

const ERRORS: &str =
    r#"sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#;

struct Fixture {
    dir: tempfile::TempDir,
    prometheus: FakePrometheus,
    runner: PrometheusRunner,
}

impl Fixture {
    fn new() -> Fixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tiny = Backoff::new(Duration::from_millis(1), Duration::from_millis(5));
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            prometheus: FakePrometheus::start(),
            runner: PrometheusRunner::new().with_backoff(tiny),
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("logs/train-1/verify.log")
    }

    fn request(&self, query: &str, max: f64, retries: u32, timeout: Duration) -> StepRequest {
        StepRequest {
            key: "train-1/production/verify/0".into(),
            step: Step {
                kind: StepKind::Prometheus {
                    // A trailing slash is dropped by the config; the runner
                    // copes with one too.
                    url: format!("{}/", self.prometheus.url()),
                    query: query.into(),
                    min: None,
                    max: Some(max),
                },
                timeout,
                retries,
                env: Vec::new(),
            },
            env: Vec::new(),
            cwd: self.dir.path().into(),
            workdir: None,
            log_path: self.log_path(),
        }
    }

    async fn run(&self, query: &str, max: f64, retries: u32) -> StepOutcome {
        let req = self.request(query, max, retries, Duration::from_secs(20));
        let (_tx, cancel) = watch::channel(false);
        self.runner.run(req, cancel).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap()
    }
}

fn error(outcome: &StepOutcome) -> String {
    match &outcome.result {
        Err(error) => error.to_string(),
        Ok(()) => panic!("expected a failure: {outcome:?}"),
    }
}

#[tokio::test]
async fn a_value_under_max_passes_and_the_log_shows_query_series_and_verdict() {
    let f = Fixture::new();
    f.prometheus.answer(ERRORS, Reply::value("0.01"));
    let outcome = f.run(ERRORS, 0.05, 0).await;
    assert_eq!(outcome.result, Ok(()), "{}", f.log());
    assert_eq!(outcome.attempts, 1);
    // The query arrived intact through URL encoding.
    assert_eq!(f.prometheus.queries(), [ERRORS]);
    let log = f.log();
    assert!(log.contains(&format!("> query: {ERRORS}")), "{log}");
    assert!(log.contains("{} = 0.01 ok"), "{log}");
    assert!(log.contains("verdict: pass, every value <= 0.05"), "{log}");
}

#[tokio::test]
async fn a_series_over_max_fails_naming_its_labels_and_value() {
    let f = Fixture::new();
    f.prometheus.answer(
        "errors",
        Reply::series(&[(&[("job", "web")], "0.01"), (&[("job", "api")], "0.2")]),
    );
    let outcome = f.run("errors", 0.05, 0).await;
    assert_eq!(error(&outcome), r#"{job="api"} = 0.2 (over max 0.05)"#);
    let log = f.log();
    assert!(log.contains(r#"{job="web"} = 0.01 ok"#), "{log}");
    assert!(
        log.contains(r#"{job="api"} = 0.2 FAIL: over max 0.05"#),
        "{log}"
    );
    assert!(log.contains("verdict: fail"), "{log}");
}

#[tokio::test]
async fn green_then_red_answers_in_sequence() {
    let f = Fixture::new();
    f.prometheus
        .answers("errors", [Reply::value("0.01"), Reply::value("0.3")]);
    assert_eq!(f.run("errors", 0.05, 0).await.result, Ok(()));
    let outcome = f.run("errors", 0.05, 0).await;
    assert_eq!(error(&outcome), "{} = 0.3 (over max 0.05)");
    // The last answer repeats.
    assert!(f.run("errors", 0.05, 0).await.result.is_err());
    assert_eq!(f.prometheus.wait_for_queries(3).len(), 3);
}

#[tokio::test]
async fn a_red_value_passes_on_a_retry_once_it_recovers() {
    let f = Fixture::new();
    f.prometheus
        .answers("errors", [Reply::value("NaN"), Reply::value("0.01")]);
    let outcome = f.run("errors", 0.05, 1).await;
    assert_eq!(outcome.result, Ok(()), "{}", f.log());
    assert_eq!(outcome.attempts, 2);
}

#[tokio::test]
async fn no_data_fails_after_the_retries() {
    let f = Fixture::new();
    // Nothing set for the query: an empty vector, like an unknown metric.
    let outcome = f.run("errors", 0.05, 2).await;
    assert_eq!(error(&outcome), "no data for errors");
    assert_eq!(outcome.attempts, 3);
    assert_eq!(f.prometheus.queries().len(), 3);
}

#[tokio::test]
async fn a_scalar_is_checked() {
    let f = Fixture::new();
    f.prometheus.answer("scalar(errors)", Reply::scalar("0.5"));
    let outcome = f.run("scalar(errors)", 0.05, 0).await;
    assert_eq!(error(&outcome), "scalar = 0.5 (over max 0.05)");
}

#[tokio::test]
async fn a_matrix_is_refused() {
    let f = Fixture::new();
    f.prometheus.answer("errors[5m]", Reply::matrix());
    let outcome = f.run("errors[5m]", 0.05, 0).await;
    assert!(
        error(&outcome).contains("not an instant vector or scalar"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn prometheus_error_text_is_the_step_error_and_bad_data_is_not_retried() {
    let f = Fixture::new();
    f.prometheus.answer(
        "sum(",
        Reply::error(
            400,
            "bad_data",
            "invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis",
        ),
    );
    let outcome = f.run("sum(", 0.05, 3).await;
    assert_eq!(
        error(&outcome),
        "Prometheus answered HTTP 400: bad_data: invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"
    );
    assert_eq!(outcome.attempts, 1, "a malformed query is not retried");
    assert!(f.log().contains("bad_data"), "{}", f.log());
}

#[tokio::test]
async fn an_unavailable_prometheus_is_retried() {
    let f = Fixture::new();
    f.prometheus.answers(
        "errors",
        [
            Reply::error(503, "timeout", "query timed out in expression evaluation"),
            Reply::value("0"),
        ],
    );
    let outcome = f.run("errors", 0.05, 1).await;
    assert_eq!(outcome.result, Ok(()), "{}", f.log());
    assert_eq!(outcome.attempts, 2);
    assert!(f.log().contains("timeout: query timed out"), "{}", f.log());
}

#[tokio::test]
async fn a_slow_prometheus_times_out() {
    let f = Fixture::new();
    f.prometheus.answer(
        "errors",
        Reply::slow(Duration::from_secs(30), Reply::value("0")),
    );
    let req = f.request("errors", 0.05, 0, Duration::from_millis(200));
    let (_tx, cancel) = watch::channel(false);
    let outcome = f.runner.run(req, cancel).await;
    assert!(
        matches!(outcome.result, Err(StepError::Timeout(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_fails_without_showing_its_password() {
    let f = Fixture::new();
    let mut req = f.request("errors", 0.05, 1, Duration::from_secs(20));
    // Port 1 on loopback: nothing listens there.
    req.step.kind = StepKind::Prometheus {
        url: "http://bob:hunter2@127.0.0.1:1".into(),
        query: "errors".into(),
        min: None,
        max: Some(0.05),
    };
    let (_tx, cancel) = watch::channel(false);
    let outcome = f.runner.run(req, cancel).await;
    let text = error(&outcome);
    assert_eq!(outcome.attempts, 2, "a refused connection is retried");
    assert!(text.starts_with("prometheus http://"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let log = f.log();
    assert!(log.contains("! "), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}
