//! `POST /webhooks/github`: GitHub push and ping deliveries, verified by their
//! HMAC signature, remembered by delivery id, and turned into engine events.
//! The handler only sends into the engine's inbox; it never decides anything.

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::mpsc;

use super::WebState;
use crate::domain::ids::Sha;
use crate::engine::Event;
use crate::forge::TagRef;

/// Largest body accepted, in bytes (1 MiB); GitHub caps payloads at 25 MB but
/// a push with that much JSON is not one we act on.
pub const BODY_LIMIT: usize = 1 << 20;

/// How long a delivery waits for room in the engine's inbox before 503.
#[cfg(not(test))]
const INBOX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
#[cfg(test)]
const INBOX_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

pub const SIGNATURE: &str = "x-hub-signature-256";
const DELIVERY: &str = "x-github-delivery";
const EVENT: &str = "x-github-event";

/// What the webhook route needs; absent on the git forge (the route is 404).
#[derive(Clone)]
pub struct Webhook {
    /// From `forge.github.webhook_secret_env`; None: the variable is unset,
    /// every delivery is refused (401). Never logged.
    pub secret: Option<Arc<[u8]>>,
    pub main_branch: String,
    /// The configured `owner/repo`: a push from any other repository (an
    /// organisation-wide hook sends those too) is acknowledged and ignored.
    pub repository: String,
    pub inbox: mpsc::Sender<Event>,
    /// Bumped by each `workflow_run` delivery, so workflow steps look at
    /// their run at once instead of at their next poll.
    pub run_events: Option<tokio::sync::watch::Sender<u64>>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("main_branch", &self.main_branch)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// True if `header` is `sha256=<hex>` and the hex is the HMAC-SHA256 of `body`
/// under `secret`, compared in constant time. No secret, an empty secret (an
/// HMAC anyone can compute), or a missing or malformed header: false.
pub fn verify(secret: Option<&[u8]>, body: &[u8], header: Option<&str>) -> bool {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return false;
    };
    let Some(sig) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// A short `text/plain` answer.
pub fn reply(status: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into().replace(['\r', '\n'], " ");
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

pub async fn github(
    State(s): State<WebState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(hook) = &s.webhook else {
        return reply(StatusCode::NOT_FOUND, "no webhook: the forge is git");
    };
    let body = match read_body(&headers, body) {
        Ok(body) => body,
        Err((status, why)) => return reply(status, why),
    };
    if !signed_for(&s, hook, &headers, &body) {
        return unsigned();
    }
    deliver(&s, hook, &headers, &body).await
}

pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the delivery carries `hook`'s signature; a refusal is logged and
/// counted on `s`, the pipeline it was meant for.
pub fn signed_for(s: &WebState, hook: &Webhook, headers: &HeaderMap, body: &[u8]) -> bool {
    if verify(
        hook.secret.as_deref(),
        body,
        header_text(headers, SIGNATURE),
    ) {
        return true;
    }
    tracing::warn!(
        delivery = ?header_text(headers, DELIVERY),
        pipeline = %s.name,
        secret_configured = hook.secret.is_some(),
        "Refused a webhook delivery: bad or missing signature."
    );
    s.metrics.error("webhook_signature");
    false
}

pub fn unsigned() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        "bad or missing X-Hub-Signature-256",
    )
}

/// Acts on a delivery whose signature [`signed_for`] has verified.
pub async fn deliver(s: &WebState, hook: &Webhook, headers: &HeaderMap, body: &[u8]) -> Response {
    let text = |name: &str| header_text(headers, name);
    let delivery = text(DELIVERY);
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let Some(delivery) = delivery.filter(|d| !d.is_empty()) else {
        return reply(StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery");
    };
    let event = text(EVENT).unwrap_or_default();
    let action = match decide(event, json, &hook.main_branch, &hook.repository) {
        Ok(a) => a,
        Err(why) => return reply(StatusCode::BAD_REQUEST, why),
    };
    // The one write the web layer makes: the delivery id, so that GitHub's
    // redeliveries (also after a restart) are acknowledged and ignored.
    let key = format!("github:delivery:{delivery}");
    match s.store.first_seen(&key, s.clock.now()) {
        Ok(true) => {}
        Ok(false) => return reply(StatusCode::OK, "already seen"),
        Err(error) => {
            tracing::error!(%error, "Cannot record a webhook delivery.");
            s.metrics.error("webhook_store");
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the bot's log",
            );
        }
    }
    let answer = match action {
        Action::Pong => reply(StatusCode::OK, "pong"),
        Action::Ignore => reply(StatusCode::ACCEPTED, "ignored"),
        Action::RunChanged => match &hook.run_events {
            Some(events) => {
                events.send_modify(|n| *n = n.wrapping_add(1));
                reply(StatusCode::ACCEPTED, "accepted")
            }
            None => reply(StatusCode::ACCEPTED, "ignored"),
        },
        Action::Send(ev) => {
            // GitHub waits 10 s for an answer and does not redeliver by
            // itself: wait a little for room rather than refuse at once.
            let sent = hook.inbox.send_timeout(ev, INBOX_WAIT).await;
            if let Err(error) = sent {
                // Not acted on: forget the delivery so a redelivery works.
                tracing::warn!(%error, delivery = ?delivery, "Cannot pass a webhook delivery to the engine.");
                s.metrics.error("webhook_inbox");
                if let Err(error) = s.store.forget_seen(&key) {
                    tracing::error!(%error, "Cannot forget a webhook delivery.");
                }
                return reply(StatusCode::SERVICE_UNAVAILABLE, "busy; redeliver later");
            }
            reply(StatusCode::ACCEPTED, "accepted")
        }
    };
    tracing::debug!(delivery = ?delivery, event = ?event, "Webhook delivery handled.");
    s.metrics.webhook_event();
    answer
}

/// The body, or the refusal: 413 if it is, or says it is, over [`BODY_LIMIT`] (the route's
/// `DefaultBodyLimit` stops reading there whatever Content-Length claimed).
pub fn read_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, (StatusCode, String)> {
    let too_large = || (StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB".to_string());
    let claimed = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if claimed.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    match body {
        Ok(body) => Ok(body),
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            Err(too_large())
        }
        Err(e) => Err((e.status(), e.body_text())),
    }
}

/// What a verified delivery asks for.
#[derive(Debug)]
enum Action {
    Pong,
    Send(Event),
    /// A workflow run changed on GitHub.
    RunChanged,
    Ignore,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    created: bool,
    head_commit: Option<HeadCommit>,
    pusher: Option<Pusher>,
    sender: Option<Sender>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct HeadCommit {
    id: String,
}

#[derive(Deserialize)]
struct Pusher {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Sender {
    login: Option<String>,
}

/// The action for event type `event` with payload `json`; Err is the 400 text.
/// Only pushes to `repository` (`owner/repo`) count.
fn decide(
    event: &str,
    json: serde_json::Value,
    main_branch: &str,
    repository: &str,
) -> Result<Action, String> {
    match event {
        "ping" => return Ok(Action::Pong),
        "workflow_run" => return Ok(Action::RunChanged),
        "push" => {}
        _ => return Ok(Action::Ignore),
    }
    let push: Push = serde_json::from_value(json).map_err(|e| format!("malformed push: {e}"))?;
    let sha = |s: &str| Sha::new(s).map_err(|e| format!("malformed push: {e}"));
    let gone = push.deleted || push.after.bytes().all(|b| b == b'0');
    tracing::debug!(git_ref = ?push.git_ref, created = push.created, deleted = push.deleted, "Push received.");
    // SPEC §11 "tag source": a tag (or main) from another repository must
    // not deploy (or move main); GitHub compares names case-insensitively.
    let from = push
        .repository
        .as_ref()
        .and_then(|r| r.full_name.as_deref());
    if !from.is_some_and(|f| f.eq_ignore_ascii_case(repository)) {
        tracing::warn!(from = ?from, expected = %repository, git_ref = ?push.git_ref, "Ignored a push from another repository.");
        return Ok(Action::Ignore);
    }
    if gone {
        return Ok(Action::Ignore);
    }
    if push.git_ref.strip_prefix("refs/heads/") == Some(main_branch) {
        return Ok(Action::Send(Event::MainPushed(sha(&push.after)?)));
    }
    let Some(name) = push.git_ref.strip_prefix("refs/tags/") else {
        return Ok(Action::Ignore);
    };
    // An annotated tag's `after` is the tag object; head_commit is its commit.
    let commit = push.head_commit.as_ref().map_or(&push.after, |c| &c.id);
    let pushed_by = push
        .sender
        .and_then(|s| s.login)
        .or(push.pusher.and_then(|p| p.name));
    Ok(Action::Send(Event::TagPushed(TagRef {
        name: name.to_string(),
        sha: sha(commit)?,
        pushed_by,
    })))
}
