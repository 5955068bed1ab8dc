//! `GET /metrics`: Prometheus text format (0.0.4), written by hand.
//! Counters the engine bumps come from `engine::Metrics`; totals the store
//! knows (trains by outcome, deploys) are read from the store.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::{Error, WebState};
use crate::domain::train::{Outcome, Stage};
use crate::engine::metrics::{APPROVAL_BUCKETS, Histogram, STEP_BUCKETS};

/// A label value escaped per the text format.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (i, bound) in bounds.iter().enumerate() {
        let n = h.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

/// The GitHub forge's requests by result, and the rate limit GitHub last
/// reported (absent until it has).
fn github_families(out: &mut String, github: &crate::forge::github::ApiStats) {
    family(
        out,
        "trainbot_github_requests_total",
        "counter",
        "Requests sent to the GitHub API, by result: ok (2xx), not_modified (304 to a conditional request, free of the rate limit), error.",
    );
    let (ok, not_modified, error) = github.requests();
    for (result, n) in [("ok", ok), ("not_modified", not_modified), ("error", error)] {
        let _ = writeln!(
            out,
            "trainbot_github_requests_total{{result=\"{result}\"}} {n}"
        );
    }
    if let Some((remaining, limit)) = github.rate_limit() {
        family(
            out,
            "trainbot_github_rate_limit_remaining",
            "gauge",
            "Requests left in GitHub's rate limit window (x-ratelimit-remaining of the latest reply).",
        );
        let _ = writeln!(out, "trainbot_github_rate_limit_remaining {remaining}");
        family(
            out,
            "trainbot_github_rate_limit_limit",
            "gauge",
            "Size of GitHub's rate limit window (x-ratelimit-limit of the latest reply).",
        );
        let _ = writeln!(out, "trainbot_github_rate_limit_limit {limit}");
    }
}

pub async fn metrics(State(s): State<WebState>) -> Result<impl IntoResponse, Error> {
    let text = render(&s)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

pub fn render(s: &WebState) -> Result<String, Error> {
    let now = s.clock.now();
    let snap = s.snapshot();
    let m = &s.metrics;
    let mut out = String::new();

    family(
        &mut out,
        "trainbot_trains",
        "gauge",
        "Stored trains by outcome (running: not ended).",
    );
    let by_outcome: BTreeMap<&str, u64> = Outcome::WORDS
        .into_iter()
        .chain(["running"])
        .map(|k| (k, 0))
        .collect();
    let counted = s.store.trains_by_outcome()?;
    let mut by_outcome: BTreeMap<String, u64> = by_outcome
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    by_outcome.extend(counted);
    for (outcome, n) in &by_outcome {
        let _ = writeln!(out, "trainbot_trains{{outcome=\"{outcome}\"}} {n}");
    }

    family(
        &mut out,
        "trainbot_trains_ended_total",
        "counter",
        "Trains that ended since the bot started, by outcome.",
    );
    for (outcome, n) in m.trains_ended() {
        let _ = writeln!(
            out,
            "trainbot_trains_ended_total{{outcome=\"{}\"}} {n}",
            label(&outcome)
        );
    }

    family(
        &mut out,
        "trainbot_production_deploys_total",
        "counter",
        "Production deploys recorded in the deploy history.",
    );
    let _ = writeln!(
        out,
        "trainbot_production_deploys_total {}",
        s.store.deploys_len()?
    );

    let steps = m.steps();
    family(
        &mut out,
        "trainbot_step_duration_seconds",
        "histogram",
        "Step durations by environment and phase, since the bot started.",
    );
    for ((env, phase), st) in &steps {
        let labels = format!("env=\"{}\",phase=\"{}\"", label(env), label(phase));
        histogram(
            &mut out,
            "trainbot_step_duration_seconds",
            &labels,
            STEP_BUCKETS,
            &st.durations,
        );
    }
    family(
        &mut out,
        "trainbot_steps_total",
        "counter",
        "Steps finished by environment, phase and result.",
    );
    for ((env, phase), st) in &steps {
        for (result, n) in [("passed", st.passed), ("failed", st.failed)] {
            let _ = writeln!(
                out,
                "trainbot_steps_total{{env=\"{}\",phase=\"{}\",result=\"{result}\"}} {n}",
                label(env),
                label(phase)
            );
        }
    }

    family(
        &mut out,
        "trainbot_approval_wait_seconds",
        "histogram",
        "How long ended trains waited for approval.",
    );
    histogram(
        &mut out,
        "trainbot_approval_wait_seconds",
        "",
        APPROVAL_BUCKETS,
        &m.approval_wait(),
    );
    family(
        &mut out,
        "trainbot_approval_waiting_seconds",
        "gauge",
        "How long the current train has waited for approval (0: none waits).",
    );
    let current = match &snap.train {
        Some(t) => s.store.train(crate::domain::ids::TrainId(t.id))?,
        None => None,
    };
    let waiting = current
        .and_then(|t| match t.stage {
            Stage::AwaitingApproval { since } => Some((now - since).num_seconds().max(0)),
            _ => None,
        })
        .unwrap_or(0);
    let _ = writeln!(out, "trainbot_approval_waiting_seconds {waiting}");

    family(
        &mut out,
        "trainbot_allocated_shas_waiting",
        "gauge",
        "Allocated SHAs waiting for the next train.",
    );
    let _ = writeln!(
        out,
        "trainbot_allocated_shas_waiting {}",
        snap.waiting.len()
    );
    family(
        &mut out,
        "trainbot_frozen",
        "gauge",
        "1 while departures are frozen.",
    );
    let _ = writeln!(out, "trainbot_frozen {}", u8::from(snap.frozen.is_some()));

    let nodes = s
        .store
        .nodes(&s.settings.branch_builds.nodes)
        .unwrap_or_default();
    let busy = nodes.iter().filter(|n| n.is_busy()).count();
    family(
        &mut out,
        "trainbot_branch_nodes",
        "gauge",
        "Branch nodes by state.",
    );
    let _ = writeln!(out, "trainbot_branch_nodes{{state=\"busy\"}} {busy}");
    let _ = writeln!(
        out,
        "trainbot_branch_nodes{{state=\"idle\"}} {}",
        nodes.len() - busy
    );
    family(
        &mut out,
        "trainbot_branch_node_utilisation",
        "gauge",
        "Busy branch nodes / branch nodes (0 without nodes).",
    );
    let utilisation = if nodes.is_empty() {
        0.0
    } else {
        busy as f64 / nodes.len() as f64
    };
    let _ = writeln!(out, "trainbot_branch_node_utilisation {utilisation}");

    family(
        &mut out,
        "trainbot_chat_events_total",
        "counter",
        "Chat messages received.",
    );
    let _ = writeln!(out, "trainbot_chat_events_total {}", m.chat_events());
    family(
        &mut out,
        "trainbot_webhook_events_total",
        "counter",
        "Forge webhook deliveries received.",
    );
    let _ = writeln!(out, "trainbot_webhook_events_total {}", m.webhook_events());
    if let Some(github) = m.github() {
        github_families(&mut out, github);
    }
    family(
        &mut out,
        "trainbot_errors_total",
        "counter",
        "Errors the bot survived, by where they happened.",
    );
    let errors = m.errors();
    if errors.is_empty() {
        let _ = writeln!(out, "trainbot_errors_total{{kind=\"snapshot\"}} 0");
    }
    for (kind, n) in errors {
        let _ = writeln!(
            out,
            "trainbot_errors_total{{kind=\"{}\"}} {n}",
            label(&kind)
        );
    }
    Ok(out)
}
