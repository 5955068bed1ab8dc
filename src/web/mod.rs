//! HTTP: one router for every endpoint. Pages are read-only: nothing
//! changes over HTTP without the chat, except that the GitHub webhook hands
//! pushes to the engine's inbox. Every response carries a strict
//! Content-Security-Policy; scripts and styles come from `/assets/` only.

mod access;
mod api;
mod audit;
mod build_runs;
mod dashboard;
mod html;
mod logs;
mod masking;
mod metrics;
mod overview;
mod panels;
mod pipeline;
mod runs;
mod several;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::domain::train::Plan;
use crate::engine::{Metrics, Snapshot, plan_of};
use crate::store::{Store, StoreError};

pub use several::{router_for, webhook_router_for};
pub use webhook::Webhook;

#[derive(Clone)]
pub struct WebState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Read only for the pages; the one write over HTTP is the webhook
    /// recording a delivery id as seen (`Store::first_seen`).
    pub store: Store,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// The GitHub push webhook; None on the git forge (the route is 404).
    pub webhook: Option<Webhook>,
    /// Prefix of every link the pages render: "" for a single pipeline,
    /// "/p/NAME" for one among several (assets stay at the root).
    pub base: String,
    /// The pipeline's name, shown as `NAME#12` among several.
    pub name: String,
}

impl WebState {
    fn plan(&self) -> Plan {
        plan_of(&self.settings)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// `#12` alone, `web#12` among several: the number only says which
    /// train once the pipeline is known.
    fn train_label(&self, id: u64) -> String {
        if self.base.is_empty() {
            format!("#{id}")
        } else {
            format!("{}#{id}", self.name)
        }
    }

    fn frame<'a>(
        &'a self,
        title: &'a str,
        class: &'a str,
        refresh: Option<u32>,
    ) -> html::Frame<'a> {
        html::Frame {
            title,
            class,
            refresh,
            base: Some(&self.base),
        }
    }
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub fn router(state: WebState) -> Router {
    let access = access::Access::of(&state.settings);
    pages(state.clone())
        .merge(webhook_route(state))
        .merge(assets())
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        .layer(axum::middleware::map_response(security_headers))
}

/// `POST /webhooks/github` alone: part of [`router`], and all that
/// `bot.webhook_listen` serves.
fn webhook_route(state: WebState) -> Router {
    Router::new().route(
        "/webhooks/github",
        post(webhook::github)
            .layer(DefaultBodyLimit::max(webhook::BODY_LIMIT))
            .with_state(state),
    )
}

/// One pipeline's pages, API, metrics and health: the whole site of a
/// single pipeline, or what `/p/NAME` holds among several.
fn pages(state: WebState) -> Router {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/runs/{id}", get(runs::run_page))
        .route("/runs/{id}/logs/{step}", get(logs::raw_log))
        .route("/audit", get(audit::audit_page))
        .route("/api/status", get(api::api_status))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        // Inside the pipeline's own routes, so its error pages link back to
        // its own radiator.
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            error_links,
        ))
        .layer(axum::middleware::map_response(masking::mask_body))
        .with_state(state)
}

fn assets() -> Router {
    Router::new()
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// What a page can fail with: 4xx say what is wrong, 5xx are generic.
#[derive(Debug)]
pub enum Error {
    NotFound(String),
    BadRequest(String),
    Store(StoreError),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

/// The text of an error page, kept so that [`error_links`] can draw the
/// page again with the pipeline's links.
#[derive(Clone)]
struct ErrorText(String);

fn error_page(base: &str, text: &str) -> String {
    let frame = html::Frame {
        title: text,
        class: "error-page",
        refresh: None,
        base: Some(base),
    };
    let body = format!(
        "<section class=\"card\"><h1>{}</h1><p><a href=\"{}/\">back to the radiator</a></p></section>",
        html::Esc(text),
        html::Esc(base)
    );
    html::page(&frame, "", &body)
}

/// An `Error` does not know which pipeline failed; the pipeline's router
/// does.
async fn error_links(State(s): State<WebState>, res: Response) -> Response {
    if s.base.is_empty() {
        return res;
    }
    let Some(ErrorText(text)) = res.extensions().get::<ErrorText>().cloned() else {
        return res;
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, error_page(&s.base, &text).into())
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Error::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            Error::BadRequest(what) => (StatusCode::BAD_REQUEST, what),
            Error::Store(error) => {
                tracing::error!(%error, "Cannot read the store for a page.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the bot's log".to_string(),
                )
            }
        };
        let page = error_page("", &text);
        let mut res = (status, Html(page)).into_response();
        res.extensions_mut().insert(ErrorText(text));
        res
    }
}

async fn not_found(uri: axum::http::Uri) -> Error {
    Error::NotFound(format!("page {}", uri.path()))
}

/// Err: why the pipeline does not work.
fn health(state: &WebState) -> Result<(), &'static str> {
    // The engine publishes after every input it handles; a closed channel
    // means it stopped. The store must answer a read too.
    let working = state.snapshots.has_changed().is_ok()
        && state.snapshots.borrow().ready
        && state.store.production().is_ok();
    if !working {
        Err("engine not running")
    } else if state.metrics.storage_failing() {
        Err("storage failing")
    } else {
        Ok(())
    }
}

async fn healthz(State(state): State<WebState>) -> impl IntoResponse {
    match health(&state) {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod several_tests;
#[cfg(test)]
mod several_webhook_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;
#[cfg(test)]
mod webhook_tests;
