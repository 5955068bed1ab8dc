//! A fake Prometheus on 127.0.0.1 for tests: `GET /api/v1/query` (instant
//! queries) answered in the real wire format of the Prometheus HTTP API
//! (docs/querying/api.md). An axum app on its own thread and runtime, so
//! plain `#[test]`s and `#[tokio::test]`s alike can drive it.
//!
//! API:
//! - [`FakePrometheus::start`] serves; [`FakePrometheus::url`] is the base
//!   URL to put in a step: `{ prometheus = fake.url(), query = "…", max = … }`.
//!   Dropping the fake stops it.
//! - [`FakePrometheus::answer`] sets what one query gets from now on;
//!   [`FakePrometheus::answers`] a sequence: the Nth call of that query gets
//!   the Nth answer, the last one repeating (green then red:
//!   `answers(q, [Reply::value("0.01"), Reply::value("0.2")])`).
//! - A query with no answer set gets no data (an empty vector), as
//!   Prometheus does for a metric it has never seen.
//! - [`Reply`]: `value` (one series without labels), `series` (labelled
//!   series), `scalar`, `no_data`, `matrix`, `error` (an error envelope
//!   with its HTTP status), `slow` (any reply, after a delay).
//! - [`FakePrometheus::queries`] lists the queries received, in order;
//!   [`FakePrometheus::wait_for_queries`] waits (up to [`WAIT`]) until at
//!   least n were received.
//!
//! Use it from a test file with
//! `#[path = "support/fake_prometheus.rs"] mod fake_prometheus;` or, in
//! `support/mod.rs`, `pub mod fake_prometheus;`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The longest [`FakePrometheus::wait_for_queries`] waits.
pub const WAIT: Duration = Duration::from_secs(20);

/// The evaluation time in every answer (Prometheus writes a float).
const TIME: f64 = 1_435_781_451.781;

/// One answer of the fake.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An instant vector: labels and value per series. Values are sample
    /// strings: "0.01", "NaN", "+Inf", "-Inf".
    Vector(Vec<(Vec<(String, String)>, String)>),
    Scalar(String),
    /// A range vector: the wrong answer for an instant check.
    Matrix,
    /// `{"status":"error", …}` with this HTTP status.
    Error {
        status: u16,
        error_type: String,
        error: String,
    },
    /// `reply`, after `delay`.
    Slow(Duration, Box<Reply>),
}

impl Reply {
    /// One series without labels (what `sum(…)` returns).
    pub fn value(value: &str) -> Reply {
        Reply::Vector(vec![(Vec::new(), value.to_string())])
    }

    /// Series with labels: `series(&[(&[("job", "web")], "0.2")])`.
    pub fn series(series: &[(&[(&str, &str)], &str)]) -> Reply {
        Reply::Vector(
            series
                .iter()
                .map(|(labels, value)| {
                    let labels = labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    (labels, value.to_string())
                })
                .collect(),
        )
    }

    pub fn scalar(value: &str) -> Reply {
        Reply::Scalar(value.to_string())
    }

    /// An empty instant vector.
    pub fn no_data() -> Reply {
        Reply::Vector(Vec::new())
    }

    pub fn matrix() -> Reply {
        Reply::Matrix
    }

    /// E.g. `error(400, "bad_data", "1:5: parse error")`,
    /// `error(422, "execution", "…")`, `error(503, "timeout", "…")`.
    pub fn error(status: u16, error_type: &str, error: &str) -> Reply {
        Reply::Error {
            status,
            error_type: error_type.to_string(),
            error: error.to_string(),
        }
    }

    pub fn slow(delay: Duration, reply: Reply) -> Reply {
        Reply::Slow(delay, Box::new(reply))
    }
}

#[derive(Default)]
struct Inner {
    /// Per query: the replies still to give; the last one stays.
    replies: HashMap<String, Vec<Reply>>,
    received: Vec<String>,
}

struct Shared {
    state: Mutex<Inner>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakePrometheus {
    shared: Arc<Shared>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FakePrometheus {
    pub fn start() -> FakePrometheus {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner::default()),
            changed: Condvar::new(),
        });
        let app = Router::new()
            .route("/api/v1/query", get(query))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("fake-prometheus".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake Prometheus runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::select! {
                        served = axum::serve(listener, app) => served.expect("serve"),
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn the fake Prometheus thread");
        FakePrometheus {
            shared,
            url,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:P`: the base URL of a `prometheus` step.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `query` gets `reply` from now on.
    pub fn answer(&self, query: &str, reply: Reply) {
        self.answers(query, [reply]);
    }

    /// `query`'s next calls get these replies in order, the last repeating.
    pub fn answers(&self, query: &str, replies: impl IntoIterator<Item = Reply>) {
        let replies: Vec<Reply> = replies.into_iter().collect();
        assert!(!replies.is_empty(), "answers needs at least one reply");
        self.shared
            .lock()
            .replies
            .insert(query.to_string(), replies);
    }

    /// The queries received so far, in order.
    pub fn queries(&self) -> Vec<String> {
        self.shared.lock().received.clone()
    }

    /// The queries received once there are at least `n`; panics after [`WAIT`].
    pub fn wait_for_queries(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut state = self.shared.lock();
        while state.received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fake Prometheus got {} queries, expected {n}: {:?}",
                state.received.len(),
                state.received
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.received.clone()
    }
}

async fn query(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(query) = params.get("query") else {
        return error_response(400, "bad_data", "invalid parameter \"query\": no query");
    };
    let reply = {
        let mut state = shared.lock();
        state.received.push(query.clone());
        let reply = match state.replies.get_mut(query) {
            Some(replies) if replies.len() > 1 => replies.remove(0),
            Some(replies) => replies[0].clone(),
            None => Reply::no_data(),
        };
        shared.changed.notify_all();
        reply
    };
    let mut reply = reply;
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Vector(series) => {
            let result: Vec<Value> = series
                .into_iter()
                .map(|(labels, value)| {
                    let metric: serde_json::Map<String, Value> = labels
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    json!({ "metric": metric, "value": [TIME, value] })
                })
                .collect();
            success("vector", Value::Array(result))
        }
        Reply::Scalar(value) => success("scalar", json!([TIME, value])),
        Reply::Matrix => success(
            "matrix",
            json!([{ "metric": {}, "values": [[TIME - 15.0, "1"], [TIME, "1"]] }]),
        ),
        Reply::Error {
            status,
            error_type,
            error,
        } => error_response(status, &error_type, &error),
        Reply::Slow(..) => unreachable!("unwrapped above"),
    }
}

fn success(result_type: &str, result: Value) -> Response {
    let body = json!({
        "status": "success",
        "data": { "resultType": result_type, "result": result },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn error_response(status: u16, error_type: &str, error: &str) -> Response {
    let body = json!({ "status": "error", "errorType": error_type, "error": error });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}
