//! Prometheus steps: `{ prometheus = "http://prom:9090", query = "…",
//! max = 0.05 }` runs an instant query over the Prometheus HTTP API
//! (`GET /api/v1/query`) and passes when every returned series (or the
//! scalar) lies within `min..=max`. No data, NaN, a range vector or string,
//! and an error answer all fail the step.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{Instrument, info_span};

use super::http::{error_chain, redact, userinfo};
use super::kinds::{Attempt, AttemptLog, Backoff, Failure, RETRY_BACKOFF, not_run};
use super::log::DEFAULT_MAX_STEP_LOG;
use super::{StepError, StepOutcome, StepRequest, StepRunner};
use crate::config::{StepKind, prometheus_label, redact_url};

/// The instant-query endpoint, under the configured base URL.
const QUERY_PATH: &str = "/api/v1/query";
/// An answer larger than this is refused rather than read into memory.
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// How much of a body that is not Prometheus JSON goes into the log.
const BODY_BYTES: usize = 512;

/// Runs `{ prometheus = "…" }` steps with one shared client.
pub struct PrometheusRunner {
    client: Client,
    retry: Backoff,
    /// `bot.max_step_log`.
    max_log: u64,
}

impl PrometheusRunner {
    /// # Panics
    /// If no rustls crypto provider is installed in the process (main
    /// installs ring at start) or the TLS backend cannot start.
    pub fn new() -> PrometheusRunner {
        let client = Client::builder()
            .user_agent("trainbot")
            // A GET may follow a proxy's redirect; a loop may not.
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("cannot build the HTTP client");
        PrometheusRunner {
            client,
            retry: RETRY_BACKOFF,
            max_log: DEFAULT_MAX_STEP_LOG,
        }
    }

    /// Waits `retry` between attempts instead of 1s, 2s, … 10s.
    pub fn with_backoff(self, retry: Backoff) -> PrometheusRunner {
        PrometheusRunner { retry, ..self }
    }

    /// Caps each step's log at `max_log` bytes (plus the cut marker).
    pub fn with_log_cap(self, max_log: u64) -> PrometheusRunner {
        PrometheusRunner { max_log, ..self }
    }
}

impl Default for PrometheusRunner {
    fn default() -> PrometheusRunner {
        PrometheusRunner::new()
    }
}

#[async_trait]
impl StepRunner for PrometheusRunner {
    async fn run(&self, req: StepRequest, cancel: watch::Receiver<bool>) -> StepOutcome {
        let StepKind::Prometheus {
            url,
            query,
            min,
            max,
        } = &req.step.kind
        else {
            return not_run("only prometheus steps are supported by this runner".into());
        };
        // Normally done when the config is read; a step built otherwise
        // (tests, a reload) is covered too.
        crate::secrets::register_url(url);
        let base = url.trim_end_matches('/');
        let step = PrometheusStep {
            client: &self.client,
            endpoint: Url::parse(&format!("{base}{QUERY_PATH}")).map_err(|e| e.to_string()),
            shown_url: redact_url(base),
            label: prometheus_label(base, query, *min, *max),
            query: query.clone(),
            bounds: Bounds {
                min: *min,
                max: *max,
            },
        };
        let span = info_span!("step", key = %req.key);
        super::kinds::run_attempts(&req, &step, self.retry, self.max_log, cancel)
            .instrument(span)
            .await
    }
}

struct PrometheusStep<'a> {
    client: &'a Client,
    endpoint: Result<Url, String>,
    /// The base URL without its secrets, for logs and errors.
    shown_url: String,
    label: String,
    query: String,
    bounds: Bounds,
}

#[async_trait]
impl Attempt for PrometheusStep<'_> {
    fn label(&self) -> String {
        self.label.clone()
    }

    async fn attempt(&self, log: &AttemptLog) -> Result<(), Failure> {
        let endpoint = self.endpoint.clone().map_err(|e| {
            Failure::fatal(StepError::Other(format!("bad URL {}: {e}", self.shown_url)))
        })?;
        let secret = userinfo(&endpoint);
        log.line(&format!("> GET {}{QUERY_PATH}", self.shown_url));
        log.line(&format!("> query: {}", self.query));
        let sent = self
            .client
            .get(endpoint)
            .query(&[("query", self.query.as_str())])
            .send();
        let mut response = sent.await.map_err(|e| {
            let text = redact(&error_chain(e), secret.as_deref());
            log.line(&format!("! {text}"));
            StepError::Other(format!("prometheus {}: {text}", self.shown_url))
        })?;
        let status = response.status();
        log.line(&format!("< HTTP {status}"));
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    let text = redact(&error_chain(e), secret.as_deref());
                    log.line(&format!("! cannot read the answer: {text}"));
                    return Err(StepError::Other(format!("cannot read the answer: {text}")).into());
                }
            }
            if body.len() > MAX_ANSWER_BYTES {
                log.line("! the answer is over 4 MiB");
                let message = format!("the answer to {} is over 4 MiB", self.query);
                return Err(Failure::fatal(StepError::Other(message)));
            }
        }

        let data = parse_answer(status, &body).map_err(|refused| {
            if refused.show_body {
                let end = body.len().min(BODY_BYTES);
                for line in String::from_utf8_lossy(&body[..end]).lines() {
                    log.line(line);
                }
            }
            log.line(&format!("! {}", refused.message));
            let error = StepError::Other(refused.message);
            // A malformed query stays malformed; anything else may pass later.
            if status == StatusCode::BAD_REQUEST {
                Failure::fatal(error)
            } else {
                Failure::from(error)
            }
        })?;
        for warning in &data.warnings {
            log.line(&format!("warning: {warning}"));
        }
        let evaluation = evaluate(&data.result, &self.query, self.bounds);
        for line in &evaluation.lines {
            log.line(line);
        }
        match evaluation.verdict {
            Ok(()) => {
                log.line(&format!("verdict: pass, {}", self.bounds.describe()));
                Ok(())
            }
            Err(message) => {
                log.line(&format!("verdict: fail, {message}"));
                Err(StepError::Other(message).into())
            }
        }
    }
}

/// The bounds every value must keep: `min <= value <= max`, NaN never.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Bounds {
    /// Why `value` is out of bounds, or None when it is within them.
    pub fn check(&self, value: f64) -> Option<String> {
        if value.is_nan() {
            return Some("NaN is not a number".into());
        }
        if let Some(max) = self.max
            && value > max
        {
            return Some(format!("over max {max}"));
        }
        if let Some(min) = self.min
            && value < min
        {
            return Some(format!("under min {min}"));
        }
        None
    }

    /// "every value <= 0.05"
    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("every value in [{min}, {max}]"),
            (None, Some(max)) => format!("every value <= {max}"),
            (Some(min), None) => format!("every value >= {min}"),
            (None, None) => "no bounds".into(),
        }
    }
}

/// The `data` of a successful answer, with the envelope's warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub result: QueryResult,
    pub warnings: Vec<String>,
}

/// `data` by its `resultType`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryResult {
    Vector(Vec<Series>),
    Scalar(Sample),
    Matrix(serde_json::Value),
    String(serde_json::Value),
}

/// One series of an instant vector. A native histogram has `histogram`
/// instead of `value`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub metric: BTreeMap<String, String>,
    pub value: Option<Sample>,
    pub histogram: Option<serde_json::Value>,
}

/// `[<unix time>, "<value>"]`: the value is a string so that `NaN`,
/// `+Inf` and `-Inf` fit in JSON.
pub type Sample = (f64, String);

/// The response envelope: `{"status": "success" | "error", "data": …,
/// "errorType": …, "error": …, "warnings": […]}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    data: Option<QueryResult>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// Why an answer was refused before its values were looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    /// The body is not Prometheus JSON: worth showing in the log.
    pub show_body: bool,
}

/// Reads an answer to `GET /api/v1/query`: its data, or the error
/// Prometheus (or whatever answered) gave.
pub fn parse_answer(status: StatusCode, body: &[u8]) -> Result<Answer, Refused> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(e) if status.is_success() => {
            return Err(Refused {
                message: format!("not a Prometheus answer: {e}"),
                show_body: true,
            });
        }
        Err(_) => {
            return Err(Refused {
                message: format!("Prometheus answered HTTP {}", status.as_u16()),
                show_body: true,
            });
        }
    };
    if envelope.status != "success" || !status.is_success() {
        let kind = envelope.error_type.as_deref().unwrap_or("error");
        let text = envelope.error.as_deref().unwrap_or("no error text");
        return Err(Refused {
            message: format!(
                "Prometheus answered HTTP {}: {kind}: {text}",
                status.as_u16()
            ),
            show_body: false,
        });
    }
    match envelope.data {
        Some(result) => Ok(Answer {
            result,
            warnings: envelope.warnings,
        }),
        None => Err(Refused {
            message: "not a Prometheus answer: no data field".into(),
            show_body: true,
        }),
    }
}

/// The log lines of an evaluation and its verdict (the error names the
/// first failing series and its value).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub lines: Vec<String>,
    pub verdict: Result<(), String>,
}

/// Checks every value of `result` against `bounds`.
pub fn evaluate(result: &QueryResult, query: &str, bounds: Bounds) -> Evaluation {
    let samples: Vec<(String, Result<f64, String>, &str)> = match result {
        QueryResult::Vector(series) => series
            .iter()
            .map(|s| {
                let name = series_name(&s.metric);
                match &s.value {
                    Some((_, text)) => (name, parse_value(text), text.as_str()),
                    None if s.histogram.is_some() => {
                        (name, Err("a histogram, not a float".into()), "histogram")
                    }
                    None => (name, Err("no value".into()), "none"),
                }
            })
            .collect(),
        QueryResult::Scalar((_, text)) => vec![("scalar".into(), parse_value(text), text.as_str())],
        QueryResult::Matrix(_) | QueryResult::String(_) => {
            let kind = if matches!(result, QueryResult::Matrix(_)) {
                "matrix"
            } else {
                "string"
            };
            let message = format!("{query} is a {kind}, not an instant vector or scalar");
            return Evaluation {
                lines: Vec::new(),
                verdict: Err(message),
            };
        }
    };
    if samples.is_empty() {
        return Evaluation {
            lines: vec!["(empty result)".into()],
            verdict: Err(format!("no data for {query}")),
        };
    }
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (name, value, text) in &samples {
        let problem = match value {
            Ok(value) => bounds.check(*value),
            Err(problem) => Some(problem.clone()),
        };
        match problem {
            None => lines.push(format!("{name} = {text} ok")),
            Some(problem) => {
                lines.push(format!("{name} = {text} FAIL: {problem}"));
                failures.push(format!("{name} = {text} ({problem})"));
            }
        }
    }
    let verdict = match failures.as_slice() {
        [] => Ok(()),
        [only] => Err(only.clone()),
        [first, rest @ ..] => Err(format!(
            "{first}, and {} more of {} series",
            rest.len(),
            samples.len()
        )),
    };
    Evaluation { lines, verdict }
}

/// A sample value as Prometheus writes it: a Go float, or `NaN`, `+Inf`,
/// `-Inf`.
pub fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("{text:?} is not a number")),
    }
}

/// `up{instance="a:9100", job="node"}`, or `{code="500"}` without a name,
/// `{}` for a series with no labels (a `sum(…)`).
pub fn series_name(metric: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = metric
        .iter()
        .filter(|(name, _)| name.as_str() != "__name__")
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    let name = metric.get("__name__").map_or("", String::as_str);
    format!("{name}{{{}}}", labels.join(", "))
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
