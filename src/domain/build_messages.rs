//! Texts for branch builds and nodes.

use chrono::TimeDelta;

use super::build::{Build, BuildOutcome, BuildPos, BuildStage};
use super::clock::{Ts, human};
use super::messages::{Ctx, ago, one_line, push_tail};
use super::nodes::Node;

pub fn build_url(ctx: &Ctx, id: u64) -> String {
    format!("{}/runs/build-{id}", ctx.public_url.trim_end_matches('/'))
}

pub fn node_url(template: &str, node: &str) -> String {
    template.replace("{node}", node)
}

fn pos_name(pos: BuildPos) -> String {
    format!("{} {}", pos.phase.name(), pos.step + 1)
}

pub fn started(ctx: &Ctx, b: &Build, node_url: &str) -> String {
    format!(
        "🔧 build {} {} ({}) by {} on {} ({node_url}) — {}",
        b.id,
        b.branch,
        b.sha.short(),
        b.requester.mention(),
        b.node.as_deref().unwrap_or("?"),
        build_url(ctx, b.id)
    )
}

/// The build's one status message: where it is now, or how it ended.
pub fn status_line(ctx: &Ctx, b: &Build, now: Ts) -> String {
    match &b.stage {
        BuildStage::Queued => format!(
            "⏳ build {} {} ({}): queued for a branch node",
            b.id,
            b.branch,
            b.sha.short()
        ),
        BuildStage::Running(pos) => format!(
            "🔧 build {} {} ({}) on {}: {}",
            b.id,
            b.branch,
            b.sha.short(),
            b.node.as_deref().unwrap_or("?"),
            pos_name(*pos)
        ),
        BuildStage::Done(_) => ended(ctx, b, now),
    }
}

pub fn queued(b: &Build, position: usize) -> String {
    format!(
        "⏳ build {} {} ({}) queued: all branch nodes are busy; position {position}",
        b.id,
        b.branch,
        b.sha.short()
    )
}

pub fn step_started(b: &Build, pos: BuildPos, label: &str) -> String {
    format!(
        "build {} {} ▶ {} started: {}",
        b.id,
        b.branch,
        pos_name(pos),
        one_line(label, 60)
    )
}

pub fn step_passed(b: &Build, pos: BuildPos, took: TimeDelta) -> String {
    format!(
        "build {} {} ✔ {} passed in {}",
        b.id,
        b.branch,
        pos_name(pos),
        human(took)
    )
}

pub fn step_failed(
    b: &Build,
    pos: BuildPos,
    took: TimeDelta,
    error: &str,
    log: &str,
    tail: &[String],
) -> String {
    let mut out = format!(
        "build {} {} ✘ {} failed after {}: {error}\nlog: {log}",
        b.id,
        b.branch,
        pos_name(pos),
        human(took)
    );
    push_tail(&mut out, tail);
    out
}

pub fn ended(ctx: &Ctx, b: &Build, now: Ts) -> String {
    let took = human(b.duration(now));
    let (icon, what) = match b.outcome() {
        Some(BuildOutcome::Passed) => ("✅", "good to merge".to_string()),
        Some(BuildOutcome::Failed { at, error }) => {
            ("❌", format!("failed in {}: {error}", pos_name(*at)))
        }
        Some(BuildOutcome::Superseded { by }) => ("⏭", format!("superseded by build {by}")),
        Some(BuildOutcome::Cancelled { by }) => ("🛑", format!("cancelled by {}", by.mention())),
        Some(BuildOutcome::Interrupted) => (
            "⚠️",
            format!(
                "interrupted by a restart; {}bb {} runs it again",
                ctx.prefix, b.branch
            ),
        ),
        None => ("", "running".to_string()),
    };
    format!(
        "{icon} build {} {} ({}): {what} ({}) — {}",
        b.id,
        b.branch,
        b.sha.short(),
        took,
        build_url(ctx, b.id)
    )
}

pub fn branch_status(ctx: &Ctx, b: &Build, now: Ts) -> String {
    let stage = match &b.stage {
        super::build::BuildStage::Queued => "queued".to_string(),
        super::build::BuildStage::Running(p) => format!("running {}", pos_name(*p)),
        super::build::BuildStage::Done(o) => o.word().to_string(),
    };
    format!(
        "{} at {}: build {} {stage} · commit status {} · node {} · {} · {}",
        b.branch,
        b.sha.short(),
        b.id,
        b.commit_state().word(),
        b.node.as_deref().unwrap_or("none"),
        ago(b.created, now),
        build_url(ctx, b.id)
    )
}

/// `!nodes` of pipeline `mine`: a node of a shared pool that another
/// pipeline holds says which.
pub fn nodes(nodes: &[Node], mine: &str, template: &str, now: Ts) -> String {
    if nodes.is_empty() {
        return "no branch nodes configured ([branch_builds] nodes)".into();
    }
    let mut out = String::from("branch nodes:");
    for n in nodes {
        let state = if n.is_busy() { "busy" } else { "idle" };
        let what = match (&n.branch, &n.sha, n.deployed_at) {
            (Some(b), Some(s), Some(at)) => {
                format!("{b} {} · deployed {}", s.short(), ago(at, now))
            }
            (Some(b), _, _) => format!("{b} · not deployed yet"),
            _ => "free".to_string(),
        };
        let what = match n.held_by_other(mine) {
            Some(other) if n.branch.is_some() => format!("held by pipeline {other}: {what}"),
            _ => what,
        };
        out.push_str(&format!(
            "\n{}: {what} · {state} · {}",
            n.name,
            node_url(template, &n.name)
        ));
    }
    out
}
