//! `GET /` among several pipelines: one card per pipeline with what a
//! glance across the room needs — its train, production, last deploy,
//! health — each linking to the pipeline's own radiator.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;

use super::html::{Esc, Frame, ago, page};
use super::several::Pipelines;
use super::{WebState, health};

pub async fn overview(State(all): State<Pipelines>) -> Html<String> {
    let mut body = String::from("<div class=\"dash overview\">");
    for s in all.iter() {
        body.push_str(&card(s));
    }
    if all.is_empty() {
        body.push_str("<p class=\"big-quiet\">no pipelines configured</p>");
    }
    body.push_str("</div>");
    let frame = Frame {
        title: "pipelines · trainbot",
        class: "radiator overview",
        refresh: Some(5),
        base: None,
    };
    let clock = all
        .first()
        .map(|s| {
            let now = s.clock.now().with_timezone(&s.settings.train.timezone);
            format!(
                "<span class=\"clock\">{} {}</span>",
                now.format("%H:%M"),
                Esc(&now.format("%Z").to_string())
            )
        })
        .unwrap_or_default();
    Html(page(&frame, &clock, &body))
}

/// One pipeline's card. Never fails: a pipeline whose store cannot be read
/// shows that on its card rather than hiding the others.
fn card(s: &WebState) -> String {
    let snap = s.snapshot();
    let now = s.clock.now();
    let base = Esc(&s.base);
    let (state, health_text) = match health(s) {
        Ok(()) => ("running", "healthy".to_string()),
        Err(why) => ("failed", why.to_string()),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"card train-card pipeline-card {state}\">\
         <h2><a class=\"pipeline-name\" href=\"{base}/\">{name}</a></h2>",
        name = Esc(&s.name),
    );
    match &snap.train {
        Some(t) => {
            let _ = write!(
                out,
                "<p class=\"stage-line\"><a class=\"train-no\" href=\"{base}/runs/train-{id}\">{label}</a> \
                 <strong>{stage}</strong></p>",
                id = t.id,
                label = Esc(&s.train_label(t.id)),
                stage = Esc(&t.stage_detail),
            );
        }
        None => out.push_str("<p class=\"stage-line\">no train running</p>"),
    }
    if let Some(f) = &snap.frozen {
        let _ = write!(out, "<p class=\"freeze\">frozen by {}</p>", Esc(&f.by));
    }
    let prod = match &snap.production_sha {
        Some(sha) => format!(
            "production <code class=\"sha\">{}</code>",
            Esc(sha.get(..7).unwrap_or(sha))
        ),
        None => "nothing in production yet".to_string(),
    };
    let last = match s.store.deploy_history(1) {
        Ok(deploys) => deploys
            .first()
            .and_then(|t| t.finished)
            .map(|f| format!("last deploy {}", ago(f, now)))
            .unwrap_or_else(|| "no deploys yet".into()),
        Err(error) => {
            tracing::error!(%error, pipeline = %s.name, "Cannot read the deploy history.");
            "deploy history unreadable".into()
        }
    };
    let _ = write!(
        out,
        "<p class=\"prod\">{prod}</p><p class=\"sub\">{}</p>\
         <p class=\"health-line\">{}</p></section>",
        Esc(&last),
        Esc(&health_text)
    );
    out
}
