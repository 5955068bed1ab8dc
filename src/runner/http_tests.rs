use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::*;
use crate::config::Step;

/// Upper bound for anything a test waits for; never a guess at how long
/// something takes.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const PREV: &str = "89abcdef0123456789abcdef0123456789abcdef";

struct Fixture {
    dir: tempfile::TempDir,
    runner: HttpRunner,
}

impl Fixture {
    fn new() -> Fixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tiny = Backoff::new(Duration::from_millis(1), Duration::from_millis(5));
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            runner: HttpRunner::new().with_backoff(tiny),
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("logs/train-1/deploy.log")
    }

    fn request(&self, url: &str, timeout: Duration, retries: u32) -> StepRequest {
        let env = [
            ("TRAINBOT_SHA", SHA),
            ("TRAINBOT_PREV_SHA", PREV),
            ("TRAINBOT_ENV", "staging"),
            ("TRAINBOT_TRAIN", "1"),
            ("TRAINBOT_BRANCH", ""),
            ("TRAINBOT_NODE", ""),
            ("TRAINBOT_NODE_URL", ""),
            ("TRAINBOT_PIPELINE", "web"),
        ];
        StepRequest {
            key: "train-1/staging/deploy/0".into(),
            step: Step {
                kind: StepKind::Http {
                    url: url.into(),
                    method: "post".into(),
                },
                timeout,
                retries,
                env: Vec::new(),
            },
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: self.dir.path().into(),
            workdir: None,
            log_path: self.log_path(),
        }
    }

    async fn run(&self, req: StepRequest) -> StepOutcome {
        let (_tx, cancel) = watch::channel(false);
        tokio::time::timeout(TEST_TIMEOUT, self.runner.run(req, cancel))
            .await
            .expect("step did not end")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap()
    }
}

fn error(outcome: &StepOutcome) -> String {
    outcome.result.clone().unwrap_err().to_string()
}

#[tokio::test]
async fn a_2xx_passes_and_the_body_carries_the_facts() {
    let fx = Fixture::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/deploy"))
        .respond_with(ResponseTemplate::new(202).set_body_string("queued\nid 7"))
        .expect(1)
        .mount(&server)
        .await;

    let url = format!("{}/deploy", server.uri());
    let outcome = fx.run(fx.request(&url, TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.attempts, 1);
    assert_eq!(
        outcome.tail,
        [
            format!("> POST {url}"),
            "< HTTP 202 Accepted".into(),
            "queued".into(),
            "id 7".into()
        ]
    );

    let received = server.received_requests().await.unwrap();
    let request = &received[0];
    assert_eq!(request.headers["user-agent"], "trainbot");
    assert_eq!(request.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "sha": SHA,
            "prev_sha": PREV,
            "env": "staging",
            "train": "1",
            "branch": "",
            "node": "",
            "node_url": "",
            "pipeline": "web",
            "step": "train-1/staging/deploy/0",
        })
    );
    let log = fx.log();
    assert!(
        log.starts_with(&format!("== attempt 1/1: POST {url} (started ")),
        "{log}"
    );
    assert!(log.contains("\n== attempt 1/1 succeeded after "), "{log}");
}

#[tokio::test]
async fn a_500_then_a_200_passes_on_the_retry() {
    let fx = Fixture::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("busy"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;

    let url = format!("{}/deploy", server.uri());
    let outcome = fx.run(fx.request(&url, TEST_TIMEOUT, 1)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.attempts, 2);
    let log = fx.log();
    assert!(log.contains("== attempt 1/2: POST"), "{log}");
    assert!(
        log.contains(&format!("== attempt 1/2 HTTP 500 from POST {url} after ")),
        "{log}"
    );
    assert!(
        log.contains("< HTTP 500 Internal Server Error\nbusy\n"),
        "{log}"
    );
    assert!(log.contains("== attempt 2/2 succeeded"), "{log}");
}

#[tokio::test]
async fn a_500_without_retries_fails_with_the_status() {
    let fx = Fixture::new();
    let server = MockServer::start().await;
    let long_body = "x".repeat(5000);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string(long_body))
        .expect(1)
        .mount(&server)
        .await;

    let url = format!("{}/deploy", server.uri());
    let outcome = fx.run(fx.request(&url, TEST_TIMEOUT, 0)).await;
    assert_eq!(
        outcome.result,
        Err(StepError::Other(format!("HTTP 503 from POST {url}")))
    );
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.tail.last().unwrap(), "… (body cut at 2 KiB)");
    assert!(!fx.log().contains(&"x".repeat(BODY_BYTES + 1)));
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let fx = Fixture::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(TEST_TIMEOUT * 2))
        .mount(&server)
        .await;

    let url = format!("{}/deploy", server.uri());
    let outcome = fx
        .run(fx.request(&url, Duration::from_millis(200), 0))
        .await;
    assert_eq!(outcome.result, Err(StepError::Timeout("200ms".into())));
    assert!(
        fx.log()
            .contains("== attempt 1/1 timed out after 200ms after ")
    );
}

/// Tells the test the request arrived, then answers only much later.
struct Hang(Arc<Notify>);

impl Respond for Hang {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        self.0.notify_one();
        ResponseTemplate::new(200).set_delay(TEST_TIMEOUT * 2)
    }
}

#[tokio::test]
async fn cancel_stops_a_request_at_once() {
    let fx = Fixture::new();
    let server = MockServer::start().await;
    let arrived = Arc::new(Notify::new());
    Mock::given(method("POST"))
        .respond_with(Hang(arrived.clone()))
        .mount(&server)
        .await;

    let url = format!("{}/deploy", server.uri());
    let (tx, cancel) = watch::channel(false);
    let req = fx.request(&url, TEST_TIMEOUT * 3, 2);
    let step = fx.runner.run(req, cancel);
    let cancel_when_arrived = async {
        arrived.notified().await;
        tx.send(true).unwrap();
    };
    let (outcome, ()) = tokio::time::timeout(TEST_TIMEOUT, async {
        tokio::join!(step, cancel_when_arrived)
    })
    .await
    .expect("cancel did not stop the step");
    assert_eq!(outcome.result, Err(StepError::Cancelled));
    assert_eq!(outcome.attempts, 1);
    assert!(fx.log().contains("== attempt 1/3 cancelled after "));
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_attempt_and_userinfo_never_shows() {
    let fx = Fixture::new();
    // A port nothing listens on: bind, note it, let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://deployer:hunter2@127.0.0.1:{port}/deploy");
    let outcome = fx.run(fx.request(&url, TEST_TIMEOUT, 1)).await;
    assert_eq!(outcome.attempts, 2);
    let error = error(&outcome);
    assert!(
        error.starts_with(&format!("POST http://***@127.0.0.1:{port}/deploy: ")),
        "{error}"
    );
    let log = fx.log();
    assert!(log.contains("! error sending request"), "{log}");
    for text in [&error, &log, &outcome.tail.join("\n")] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("deployer"), "{text}");
    }
}

#[test]
fn userinfo_is_redacted_in_any_url_text() {
    assert_eq!(
        redact_url("https://u:p@h.example/x@y"),
        "https://***@h.example/x@y"
    );
    assert_eq!(
        redact_url("https://token@h.example"),
        "https://***@h.example"
    );
    assert_eq!(
        redact_url("https://h.example/a?b=c@d"),
        "https://h.example/a?b=***"
    );
    assert_eq!(redact_url("not a url"), "not a url");
}

#[tokio::test]
async fn a_bad_url_fails_without_retries() {
    let fx = Fixture::new();
    let outcome = fx.run(fx.request("http://[::1", TEST_TIMEOUT, 3)).await;
    assert_eq!(outcome.attempts, 1);
    assert!(error(&outcome).starts_with("bad URL http://[::1: "));
}
