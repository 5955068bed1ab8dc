//! Several pipelines behind one listener (SPEC §16): each pipeline's own
//! site under `/p/NAME`, and at the root what spans them all — the
//! overview, `/api/status` by pipeline, one Prometheus text labelled by
//! pipeline, one health answer, one GitHub webhook.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::api::{json_response, status_json};
use super::metrics::label;
use super::webhook::{self, BODY_LIMIT, Webhook, deliver, read_body, reply, signed_for};
use super::{
    Error, WebState, access, assets, health, not_found, overview, pages, router, webhook_route,
};

/// Every pipeline, in the configured order.
pub type Pipelines = Arc<[WebState]>;

/// The whole site for `pipelines`: with one, exactly [`router`]; with
/// several, the overview at `/` and each pipeline's pages under
/// `/p/NAME/`. Sets each pipeline's `base` to where its pages are served,
/// so its links cannot point elsewhere.
///
/// Panics on a pipeline name that cannot be one path segment (the config
/// only admits plain names).
pub fn router_for(mut pipelines: Vec<WebState>) -> Router {
    if pipelines.len() == 1 {
        let mut one = pipelines.remove(0);
        one.base = String::new();
        return router(one);
    }
    for p in &mut pipelines {
        assert!(
            !p.name.is_empty() && !p.name.contains(['/', '{', '}', '*', '?', '#', '%', ':']),
            "pipeline name {:?} cannot be a path segment",
            p.name
        );
        p.base = format!("/p/{}", p.name);
    }
    // `web` and `bot` are top-level keys: every pipeline has the same.
    let access = access::Access::of(&pipelines[0].settings);
    let all: Pipelines = pipelines.into();
    let mut app = Router::new()
        .route("/", get(overview::overview))
        .route("/api/status", get(api_status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(axum::middleware::map_response(super::masking::mask_body))
        .with_state(all.clone())
        .merge(several_webhook_route(all.clone()));
    for p in all.iter() {
        // Nested under `/p/NAME/` so that the radiator is `/p/NAME/`, the
        // page the pipeline's relative-looking links and chat links expect;
        // `/p/NAME` as typed by people redirects there.
        let home = format!("{}/", p.base);
        let to = Redirect::permanent(&home);
        app = app
            .route(&p.base, get(move || async move { to }))
            .nest(&home, pages(p.clone()));
    }
    app.merge(assets())
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        .layer(axum::middleware::map_response(super::security_headers))
}

/// What `bot.webhook_listen` serves: `POST /webhooks/github`, dispatched
/// exactly as [`router_for`] does, and nothing else (404). No password and
/// no Host check: the delivery's signature is what counts.
pub fn webhook_router_for(mut pipelines: Vec<WebState>) -> Router {
    let hook = if pipelines.len() == 1 {
        webhook_route(pipelines.remove(0))
    } else {
        several_webhook_route(pipelines.into())
    };
    hook.fallback(|| async {
        webhook::reply(
            StatusCode::NOT_FOUND,
            "only POST /webhooks/github is served here",
        )
    })
    .layer(axum::middleware::map_response(super::security_headers))
}

/// One hook for every pipeline (see [`github`]).
fn several_webhook_route(all: Pipelines) -> Router {
    Router::new()
        .route(
            "/webhooks/github",
            post(github).layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(all)
}

/// `{"pipelines": {NAME: <one pipeline's status>, …}}`, from each
/// pipeline's cached JSON: the cost stays that of one pipeline plus copies.
async fn api_status(State(all): State<Pipelines>) -> Result<Response, Error> {
    let mut sorted: Vec<&WebState> = all.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut body = String::from("{\"pipelines\":{");
    for (i, s) in sorted.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let name = serde_json::to_string(&s.name).map_err(|e| Error::BadRequest(e.to_string()))?;
        body.push_str(&name);
        body.push(':');
        body.push_str(&status_json(s)?);
    }
    body.push_str("}}");
    Ok(json_response(body))
}

async fn healthz(State(all): State<Pipelines>) -> impl IntoResponse {
    for s in all.iter() {
        if let Err(why) = health(s) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("pipeline {}: {why}\n", s.name),
            );
        }
    }
    (StatusCode::OK, "ok\n".to_string())
}

async fn metrics(State(all): State<Pipelines>) -> Result<impl IntoResponse, Error> {
    let mut texts = Vec::with_capacity(all.len());
    for s in all.iter() {
        texts.push((s.name.as_str(), super::metrics::render(s)?));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        merge_metrics(&texts),
    ))
}

/// One metric family: its `# HELP` and `# TYPE` lines and every sample.
#[derive(Default)]
struct Family {
    comments: Vec<String>,
    samples: Vec<String>,
}

/// The pipelines' texts as one: each sample gains `pipeline="NAME"`, and
/// each family is written once with all its samples together (the text
/// format refuses a repeated `# TYPE` or a family split in two).
pub fn merge_metrics(texts: &[(&str, String)]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (name, text) in texts {
        let pipeline = format!("pipeline=\"{}\"", label(name));
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                current = rest.split(' ').next().unwrap_or_default().to_string();
                let family = families.entry(current.clone()).or_insert_with(|| {
                    order.push(current.clone());
                    Family::default()
                });
                if family.comments.len() < 2 && !family.comments.iter().any(|c| c == line) {
                    family.comments.push(line.to_string());
                }
            } else if !line.is_empty() {
                let family = families.entry(current.clone()).or_insert_with(|| {
                    order.push(current.clone());
                    Family::default()
                });
                family.samples.push(with_label(line, &pipeline));
            }
        }
    }
    let mut out = String::new();
    for name in &order {
        let family = &families[name];
        for line in family.comments.iter().chain(&family.samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `name{a="b"} 1` → `name{pipeline="x",a="b"} 1`; `name 1` →
/// `name{pipeline="x"} 1`.
fn with_label(sample: &str, pipeline: &str) -> String {
    let end = sample.find(['{', ' ']).unwrap_or(sample.len());
    let (name, rest) = sample.split_at(end);
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => format!("{name}{{{pipeline}{labels}"),
        Some(labels) => format!("{name}{{{pipeline},{labels}"),
        None => format!("{name}{{{pipeline}}}{rest}"),
    }
}

/// One hook for every pipeline: a delivery goes to the pipelines whose
/// repository sent it, and only those whose own secret signed it act on it.
async fn github(
    State(all): State<Pipelines>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let hooked: Vec<(&WebState, &Webhook)> = all
        .iter()
        .filter_map(|s| s.webhook.as_ref().map(|h| (s, h)))
        .collect();
    if hooked.is_empty() {
        return reply(StatusCode::NOT_FOUND, "no webhook: the forge is git");
    }
    let body = match read_body(&headers, body) {
        Ok(body) => body,
        Err((status, why)) => return reply(status, why),
    };
    let from = repository_of(&body);
    let serving: Vec<_> = hooked
        .iter()
        .filter(|(_, h)| {
            from.as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case(&h.repository))
        })
        .collect();
    let signed: Vec<_> = if serving.is_empty() {
        // No pipeline serves it (another repository, an organisation's
        // ping, malformed JSON): any pipeline's secret may vouch for it, and
        // that pipeline answers as a lone pipeline would (ignored, pong,
        // 400) — never acting, as the repository is not its own.
        let signature = webhook::header_text(&headers, webhook::SIGNATURE);
        let Some(first) = hooked
            .iter()
            .find(|(_, h)| webhook::verify(h.secret.as_deref(), &body, signature))
        else {
            tracing::warn!(from = ?from, "Refused a webhook delivery: no pipeline's secret signs it.");
            return webhook::unsigned();
        };
        vec![first]
    } else {
        serving
            .into_iter()
            .filter(|(s, h)| signed_for(s, h, &headers, &body))
            .collect()
    };
    if signed.is_empty() {
        return webhook::unsigned();
    }
    let mut answer: Option<Response> = None;
    for (s, h) in signed {
        let res = deliver(s, h, &headers, &body).await;
        // The first failure wins, so that GitHub shows it and can redeliver.
        let failed = !res.status().is_success();
        if answer.is_none() || failed && answer.as_ref().is_some_and(|a| a.status().is_success()) {
            answer = Some(res);
        }
    }
    answer.unwrap_or_else(webhook::unsigned)
}

/// `repository.full_name` of a payload, if it has one.
fn repository_of(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(
        json.get("repository")?
            .get("full_name")?
            .as_str()?
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_gain_the_pipeline_label_first() {
        let p = "pipeline=\"web\"";
        assert_eq!(with_label("a 1", p), "a{pipeline=\"web\"} 1");
        assert_eq!(
            with_label("a{le=\"+Inf\"} 2", p),
            "a{pipeline=\"web\",le=\"+Inf\"} 2"
        );
        assert_eq!(with_label("a{} 3", p), "a{pipeline=\"web\"} 3");
    }
}
