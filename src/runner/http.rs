//! HTTP steps: `{ http = "https://…", method = "POST" }` sends the step's
//! facts as JSON; a 2xx answer is success.

use std::error::Error as _;

use async_trait::async_trait;
use reqwest::{Client, Method, Url};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::{Instrument, info_span};

use super::kinds::{Attempt, AttemptLog, Backoff, Failure, RETRY_BACKOFF, fact, not_run};
use super::log::DEFAULT_MAX_STEP_LOG;
use super::{StepError, StepOutcome, StepRequest, StepRunner};
use crate::config::{StepKind, redact_url};

/// How much of a response body goes into the step log.
const BODY_BYTES: usize = 2048;

/// The facts a step learns: variable, and its name in the JSON body.
const FACTS: [(&str, &str); 8] = [
    ("TRAINBOT_SHA", "sha"),
    ("TRAINBOT_PREV_SHA", "prev_sha"),
    ("TRAINBOT_ENV", "env"),
    ("TRAINBOT_TRAIN", "train"),
    ("TRAINBOT_BRANCH", "branch"),
    ("TRAINBOT_NODE", "node"),
    ("TRAINBOT_NODE_URL", "node_url"),
    ("TRAINBOT_PIPELINE", "pipeline"),
];

/// Runs `{ http = "…" }` steps with one shared client.
pub struct HttpRunner {
    client: Client,
    retry: Backoff,
    /// `bot.max_step_log`.
    max_log: u64,
}

impl HttpRunner {
    /// # Panics
    /// If no rustls crypto provider is installed in the process (main
    /// installs ring at start) or the TLS backend cannot start.
    pub fn new() -> HttpRunner {
        let client = Client::builder()
            .user_agent("trainbot")
            // Anything but a 2xx fails the step; a redirect is not followed
            // (it would turn a POST into a GET).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("cannot build the HTTP client");
        HttpRunner {
            client,
            retry: RETRY_BACKOFF,
            max_log: DEFAULT_MAX_STEP_LOG,
        }
    }

    /// Waits `retry` between attempts instead of 1s, 2s, … 10s.
    pub fn with_backoff(self, retry: Backoff) -> HttpRunner {
        HttpRunner { retry, ..self }
    }

    /// Caps each step's log at `max_log` bytes (plus the cut marker).
    pub fn with_log_cap(self, max_log: u64) -> HttpRunner {
        HttpRunner { max_log, ..self }
    }
}

impl Default for HttpRunner {
    fn default() -> HttpRunner {
        HttpRunner::new()
    }
}

#[async_trait]
impl StepRunner for HttpRunner {
    async fn run(&self, req: StepRequest, cancel: watch::Receiver<bool>) -> StepOutcome {
        let StepKind::Http { url, method } = &req.step.kind else {
            return not_run("only http steps are supported by this runner".into());
        };
        // Normally done when the config is read; a step built otherwise
        // (tests, a reload) is covered too.
        crate::secrets::register_url(url);
        let step = HttpStep {
            client: &self.client,
            method: method.to_ascii_uppercase(),
            url: Url::parse(url).map_err(|e| e.to_string()),
            shown_url: redact_url(url),
            body: facts_body(&req),
        };
        let span = info_span!("step", key = %req.key);
        super::kinds::run_attempts(&req, &step, self.retry, self.max_log, cancel)
            .instrument(span)
            .await
    }
}

struct HttpStep<'a> {
    client: &'a Client,
    method: String,
    url: Result<Url, String>,
    /// The URL without its userinfo, for logs and errors.
    shown_url: String,
    body: Value,
}

#[async_trait]
impl Attempt for HttpStep<'_> {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.shown_url)
    }

    async fn attempt(&self, log: &AttemptLog) -> Result<(), Failure> {
        let label = self.label();
        let url = self.url.clone().map_err(|e| {
            Failure::fatal(StepError::Other(format!("bad URL {}: {e}", self.shown_url)))
        })?;
        let method = Method::from_bytes(self.method.as_bytes()).map_err(|_| {
            Failure::fatal(StepError::Other(format!("bad HTTP method {}", self.method)))
        })?;
        let secret = userinfo(&url);
        log.line(&format!("> {label}"));
        let sent = self.client.request(method, url).json(&self.body).send();
        let mut response = sent.await.map_err(|e| {
            let text = redact(&error_chain(e), secret.as_deref());
            log.line(&format!("! {text}"));
            StepError::Other(format!("{label}: {text}"))
        })?;
        let status = response.status();
        log.line(&format!("< HTTP {status}"));

        let mut body = Vec::new();
        while body.len() <= BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    let text = redact(&error_chain(e), secret.as_deref());
                    log.line(&format!("! cannot read the body: {text}"));
                    break;
                }
            }
        }
        let cut = body.len() > BODY_BYTES;
        body.truncate(BODY_BYTES);
        for line in String::from_utf8_lossy(&body).lines() {
            log.line(line);
        }
        if cut {
            log.line("… (body cut at 2 KiB)");
        }

        if status.is_success() {
            Ok(())
        } else {
            Err(StepError::Other(format!("HTTP {} from {label}", status.as_u16())).into())
        }
    }
}

/// `{"sha": …, "prev_sha": …, …, "step": key}`: the facts shell steps get
/// as `TRAINBOT_*` variables ("" where a fact does not apply).
fn facts_body(req: &StepRequest) -> Value {
    let mut body = Map::new();
    for (var, name) in FACTS {
        body.insert(name.into(), Value::String(fact(&req.env, var).into()));
    }
    body.insert("step".into(), Value::String(req.key.clone()));
    Value::Object(body)
}

/// The `user:pass@` part of a URL, to take out of error texts.
pub(super) fn userinfo(url: &Url) -> Option<String> {
    match (url.username(), url.password()) {
        ("", None) => None,
        (user, None) => Some(format!("{user}@")),
        (user, Some(password)) => Some(format!("{user}:{password}@")),
    }
}

pub(super) fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) => text.replace(secret, "***@"),
        None => text.to_string(),
    }
}

/// "error sending request: client error (Connect): tcp connect error: …",
/// without the URL reqwest puts in its own message.
pub(super) fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
