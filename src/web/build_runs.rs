//! `GET /runs/build-N`: one branch build, its commit status and step logs.
//! Log paths come only from the parsed build number and fixed phase names.

use std::fmt::Write;

use axum::response::Html;

use super::html::{Esc, ago, dur, page};
use super::logs::render_log;
use super::{Error, WebState};
use crate::domain::build::{BuildPhase, BuildStage};

/// `build-N` → N; anything else is not a build.
pub fn parse_build_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("build-")?;
    let ok = !digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit());
    if ok { digits.parse().ok() } else { None }
}

pub fn build_page(s: &WebState, id: u64) -> Result<Html<String>, Error> {
    let build = s
        .store
        .build(id)?
        .ok_or_else(|| Error::NotFound(format!("run build-{id}")))?;
    let now = s.clock.now();
    let stage = match &build.stage {
        BuildStage::Queued => "queued".to_string(),
        BuildStage::Running(p) => format!("running {} {}", p.phase.name(), p.step + 1),
        BuildStage::Done(o) => o.word().to_string(),
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card run-head\"><div class=\"train-head\">\
         <span class=\"train-no\">build {id}</span><code class=\"sha big-sha\">{sha}</code>\
         <span class=\"kind\">{branch}</span></div>\
         <p class=\"stage-line\"><strong>{stage}</strong> · commit status {state} · node {node} · \
         requested by {who} {ago}{took}</p></section>",
        sha = Esc(build.sha.as_str()),
        branch = Esc(build.branch.as_str()),
        stage = Esc(&stage),
        state = build.commit_state().word(),
        node = Esc(build.node.as_deref().unwrap_or("none")),
        who = Esc(build.requester.as_str()),
        ago = ago(build.created, now),
        took = build
            .finished
            .map(|f| format!(" · took {}", dur(f - build.created)))
            .unwrap_or_default(),
    );
    body.push_str("<section class=\"card\"><h2>Steps</h2>");
    let b = &s.settings.branch_builds;
    let run = format!("build-{id}");
    let dir = s.settings.bot.data_dir.join("logs").join(&run);
    for (phase, n) in [
        (BuildPhase::Checks, b.checks.len()),
        (BuildPhase::Deploy, b.deploy.len()),
        (BuildPhase::Smoke, b.smoke.len()),
    ] {
        for step in 1..=n {
            let name = format!("{}-{step}", phase.name());
            let _ = write!(body, "<details open><summary>{}</summary>", Esc(&name));
            let running = matches!(&build.stage, BuildStage::Running(p) if p.phase == phase && p.step + 1 == step);
            render_log(&mut body, &s.base, &dir, &run, &name, running, "not run");
            body.push_str("</details>");
        }
    }
    body.push_str("</section>");
    let title = format!("build {id} {} · trainbot", build.branch);
    let frame = s.frame(&title, "run", (!build.is_done()).then_some(3));
    Ok(Html(page(&frame, "", &body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_build_numbers_are_builds() {
        assert_eq!(parse_build_id("build-12"), Some(12));
        for bad in ["build-", "build-x", "build-1/../2", "train-1", "build-+1"] {
            assert_eq!(parse_build_id(bad), None, "{bad}");
        }
    }
}
