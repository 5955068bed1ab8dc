//! `GET /`: the radiator. Complete server-rendered HTML, readable from across
//! a room; `/assets/app.js` only refreshes `<main>` every few seconds.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;
use chrono::{DateTime, TimeDelta};

use super::html::{Esc, ago, dur, page, run_link, time_tag, until, when};
use super::{Error, WebState, panels, pipeline};
use crate::domain::clock::Ts;
use crate::domain::ids::TrainId;
use crate::domain::messages::stage_label;
use crate::domain::train::{Kind, Train};
use crate::engine::Snapshot;

/// How many waiting SHAs are listed before "and N more".
const WAITING_SHOWN: usize = 6;
/// How many commits of the current train are listed.
const COMMITS_SHOWN: usize = 6;

pub async fn dashboard(State(s): State<WebState>) -> Result<Html<String>, Error> {
    let now = s.clock.now();
    let snap = s.snapshot();
    let mut body = String::new();
    if let Some(f) = &snap.frozen {
        let reason = f
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<div class=\"freeze\" role=\"alert\">Departures frozen by {}{}</div>",
            Esc(&f.by),
            Esc(&reason)
        );
    }
    for l in &snap.locks {
        let until = l
            .until
            .as_deref()
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<div class=\"freeze lock\" role=\"status\">🔒 {} locked by {}: {}{}</div>",
            Esc(&l.env),
            Esc(&l.by),
            Esc(&l.reason),
            Esc(&until)
        );
    }
    if let Some(held) = snap.train.as_ref().and_then(|t| t.held.as_deref()) {
        let _ = write!(
            body,
            "<div class=\"freeze held\" role=\"status\">⏸ the train waits: {}</div>",
            Esc(held)
        );
    }
    if let Some(t) = snap.train.as_ref()
        && let Some(v) = &t.verifying
    {
        let last = match (&v.last_check, v.last_ok) {
            (Some(at), Some(ok)) => format!(
                "; last check {} at {}",
                if ok { "green" } else { "red" },
                at.get(11..16).unwrap_or(at)
            ),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<div class=\"freeze verifying\" role=\"status\">🔎 train #{} is verifying production until {}: {}{}</div>",
            t.id,
            Esc(v.until.get(11..16).unwrap_or(&v.until)),
            Esc(&v.detail),
            Esc(&last)
        );
    }
    body.push_str("<div class=\"dash\">");
    body.push_str(&train_card(&s, &snap, now)?);
    body.push_str(&departure_card(&s, &snap, now)?);
    body.push_str(&panels::metrics_card(&s, now)?);
    body.push_str(&panels::health_card(&s)?);
    body.push_str(&panels::deploys_card(&s, now)?);
    body.push_str(&panels::nodes_card(&s));
    body.push_str("</div>");
    let title = title(&s, &snap);
    let frame = s.frame(&title, "radiator", Some(5));
    Ok(Html(page(&frame, &header_right(&s, &snap, now), &body)))
}

fn title(s: &WebState, snap: &Snapshot) -> String {
    match &snap.train {
        Some(t) => format!("{} {} · trainbot", s.train_label(t.id), t.stage_detail),
        None if s.base.is_empty() => "trainbot".to_string(),
        None => format!("{} · trainbot", s.name),
    }
}

fn header_right(s: &WebState, snap: &Snapshot, now: Ts) -> String {
    let prod = match &snap.production_sha {
        Some(sha) => format!(
            "production <code class=\"sha\">{}</code>",
            Esc(sha.get(..7).unwrap_or(sha))
        ),
        None => "nothing in production yet".to_string(),
    };
    let tz = s.settings.train.timezone;
    format!(
        "<span class=\"prod\">{prod}</span><span class=\"clock\">{} {}</span>",
        now.with_timezone(&tz).format("%H:%M"),
        Esc(&now.with_timezone(&tz).format("%Z").to_string())
    )
}

/// The current train, or the last one when none runs.
fn train_card(s: &WebState, snap: &Snapshot, now: Ts) -> Result<String, Error> {
    let current = match &snap.train {
        Some(t) => s.store.train(TrainId(t.id))?,
        None => None,
    };
    let (train, heading) = match current {
        Some(t) => (t, "Current train"),
        None => match s.store.last_train()? {
            Some(t) => (t, "No train running · last train"),
            None => {
                return Ok("<section class=\"card train-card idle\" id=\"train\">\
                    <h2>Current train</h2><p class=\"big-quiet\">No train has run yet</p>\
                    </section>"
                    .into());
            }
        },
    };
    let plan = s.plan();
    let running = !train.is_done();
    let mut out = String::new();
    let state = if running { "running" } else { "idle" };
    let _ = write!(
        out,
        "<section class=\"card train-card {state}\" id=\"train\"><h2>{heading}</h2>\
         <div class=\"train-head\"><a class=\"train-no\" href=\"{base}/runs/train-{id}\">{label}</a>\
         <code class=\"sha big-sha\">{sha}</code><span class=\"kind\">{kind}</span></div>\
         <p class=\"stage-line\"><strong>{stage}</strong> {since}</p>",
        id = train.id.0,
        base = Esc(&s.base),
        label = Esc(&s.train_label(train.id.0)),
        sha = Esc(train.sha.short()),
        kind = Esc(&kind_label(&train.kind)),
        stage = Esc(&stage_label(&plan, &train.stage)),
        since = if running {
            format!("for {}", dur(now - train.stage_since))
        } else {
            train.finished.map(|f| ago(f, now)).unwrap_or_default()
        },
    );
    out.push_str(&pipeline::render(&train, &plan, now));
    out.push_str("<div class=\"train-body\">");
    out.push_str(&authors(&train));
    out.push_str(&commits(&s.base, &train));
    out.push_str("</div></section>");
    Ok(out)
}

pub fn kind_label(kind: &Kind) -> String {
    match kind {
        Kind::Scheduled => "scheduled".into(),
        Kind::Departed { by } => format!("sent by {by}"),
        Kind::ForcedSha { by } => format!("forced by {by}"),
        Kind::Rollback { by } => format!("rollback by {by}"),
        Kind::Tag { name, pushed_by } => format!("tag {name} by {pushed_by}"),
        Kind::Deploy { by, git_ref, env } => format!("{git_ref} to {env} by {by}"),
    }
}

fn authors(t: &Train) -> String {
    let mut out = String::from("<div class=\"authors\"><h3>Authors</h3><ul class=\"chips\">");
    for a in &t.authors {
        let who = a
            .chat
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or(a.name.clone());
        let (cls, mark) = match &a.chat {
            Some(u) if t.has_approved(u) => ("approved", "approved"),
            _ if !a.can_approve() => ("cannot", "cannot approve"),
            _ if t.production_started.is_some() || t.is_done() => ("cannot", ""),
            _ => ("waiting", "waiting"),
        };
        let _ = write!(
            out,
            "<li class=\"chip {cls}\"><span class=\"who\">{}</span> <span class=\"mark\">{}</span></li>",
            Esc(&who),
            mark
        );
    }
    if let Some(by) = &t.forced_by {
        let _ = write!(
            out,
            "<li class=\"chip forced\">forced by {}</li>",
            Esc(by.as_str())
        );
    }
    out.push_str("</ul></div>");
    out
}

fn commits(base: &str, t: &Train) -> String {
    let mut out = format!(
        "<div class=\"commits\"><h3>{} commit{}</h3><ul>",
        t.commits.len(),
        if t.commits.len() == 1 { "" } else { "s" }
    );
    // Newest first: the head is what people look for.
    for c in t.commits.iter().rev().take(COMMITS_SHOWN) {
        let reverted = if t.reverted.contains(&c.sha) {
            " reverted"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<li class=\"commit{reverted}\"><code class=\"sha\">{}</code> \
             <span class=\"subject\">{}</span> <span class=\"author\">{}</span></li>",
            Esc(c.sha.short()),
            Esc(&c.subject),
            Esc(&c.author_name)
        );
    }
    if t.commits.len() > COMMITS_SHOWN {
        let _ = write!(
            out,
            "<li class=\"more\"><a href=\"{}/runs/train-{}\">and {} more</a></li>",
            Esc(base),
            t.id.0,
            t.commits.len() - COMMITS_SHOWN
        );
    }
    out.push_str("</ul></div>");
    out
}

/// Next departure and the SHAs it would take.
fn departure_card(s: &WebState, snap: &Snapshot, now: Ts) -> Result<String, Error> {
    let tz = s.settings.train.timezone;
    let mut out = String::from(
        "<section class=\"card depart-card\" id=\"departure\"><h2>Next departure</h2>",
    );
    let next = snap
        .next_departure
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc());
    match (next, &snap.frozen) {
        (_, Some(_)) => out.push_str("<p class=\"big-number frozen-text\">frozen</p>"),
        (Some(at), None) => {
            let _ = write!(
                out,
                "<p class=\"big-number\">{}</p><p class=\"sub\">{}</p>",
                time_tag(at, &when(at, now, tz)),
                until(at, now)
            );
        }
        (None, None) => {
            out.push_str("<p class=\"big-number\">—</p><p class=\"sub\">no departure scheduled</p>")
        }
    }
    // The current train's own commits are on their way, not waiting.
    let on_train: Vec<String> = match &snap.train {
        Some(t) => s
            .store
            .train(TrainId(t.id))?
            .map(|t| t.commits.iter().map(|c| c.sha.to_string()).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let waiting: Vec<&String> = snap
        .waiting
        .iter()
        .filter(|w| !on_train.contains(w))
        .collect();
    let n = waiting.len();
    let _ = write!(
        out,
        "<h3>{n} SHA{} waiting</h3><ul class=\"waiting\">",
        if n == 1 { "" } else { "s" }
    );
    // Newest first: the next train takes the newest.
    for sha in waiting.iter().rev().take(WAITING_SHOWN) {
        let allocated = crate::domain::ids::Sha::new(sha)
            .ok()
            .and_then(|sha| s.store.allocation(&sha).ok().flatten())
            .map(|a| ago(a.at, now))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<li><code class=\"sha\">{}</code> <span class=\"sub\">{}</span></li>",
            Esc(sha.get(..7).unwrap_or(sha)),
            Esc(&allocated)
        );
    }
    if n > WAITING_SHOWN {
        let _ = write!(out, "<li class=\"sub\">and {} more</li>", n - WAITING_SHOWN);
    }
    if n == 0 {
        let _ = write!(
            out,
            "<li class=\"sub\">nothing new on {}</li>",
            Esc(&s.settings.forge.main_branch)
        );
    }
    out.push_str("</ul>");
    if !snap.tags_waiting.is_empty() {
        let n = snap.tags_waiting.len();
        let _ = write!(
            out,
            "<h3>{n} tag deploy{} waiting</h3><ul class=\"waiting\">",
            if n == 1 { "" } else { "s" }
        );
        for t in &snap.tags_waiting {
            let to = if t.to == "lower" {
                "lower envs"
            } else {
                "production"
            };
            let _ = write!(
                out,
                "<li>{} → {to} <code class=\"sha\">{}</code> <span class=\"sub\">by {}</span></li>",
                Esc(&t.name),
                Esc(t.sha.get(..7).unwrap_or(&t.sha)),
                Esc(&t.pushed_by)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    Ok(out)
}

/// Production deploy time of a train, for tables.
pub fn deploy_took(t: &Train) -> Option<TimeDelta> {
    // Deploy and smoke; the verification window after them is not the deploy.
    let end = t.verify.as_ref().map(|v| v.since).or(t.finished)?;
    Some(end - t.production_started?)
}

/// `#7` linked, for tables.
pub fn train_cell(base: &str, t: &Train) -> String {
    run_link(base, t.id.0)
}
