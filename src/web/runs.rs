//! `GET /runs/{id}`: one train, its commits, its steps with durations and
//! their logs, refreshed (tail-followed) while it runs. Log paths are built
//! only from the parsed train number and configured environment names.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::response::Html;

use super::dashboard::kind_label;
use super::html::{Esc, ago, dur, page, time_tag, when};
use super::logs::render_log;
use super::pipeline::{self, step_name, step_time};
use super::{Error, WebState};
use crate::domain::ids::TrainId;
use crate::domain::messages::stage_label;
use crate::domain::train::{Outcome, Plan, StepRecord, Target, Train, target_name};

/// `train-N` → N; anything else is not a run.
pub fn parse_run_id(id: &str) -> Option<TrainId> {
    let digits = id.strip_prefix("train-")?;
    let ok = !digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.parse().ok().map(TrainId)).flatten()
}

pub async fn run_page(
    State(s): State<WebState>,
    Path(id): Path<String>,
) -> Result<Html<String>, Error> {
    let not_found = || Error::NotFound(format!("run {id}"));
    if let Some(build) = super::build_runs::parse_build_id(&id) {
        return super::build_runs::build_page(&s, build);
    }
    let train_id = parse_run_id(&id).ok_or_else(not_found)?;
    let train = s.store.train(train_id)?.ok_or_else(not_found)?;
    let now = s.clock.now();
    let plan = s.plan();
    let tz = s.settings.train.timezone;
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card run-head\"><div class=\"train-head\">\
         <span class=\"train-no\">{label}</span><code class=\"sha big-sha\">{sha}</code>\
         <span class=\"kind\">{kind}</span></div>\
         <p class=\"stage-line\"><strong>{stage}</strong> · departed {dep} ({ago}){took}</p>",
        label = Esc(&s.train_label(train.id.0)),
        sha = Esc(train.sha.as_str()),
        kind = Esc(&kind_label(&train.kind)),
        stage = Esc(&stage_label(&plan, &train.stage)),
        dep = time_tag(train.created, &when(train.created, now, tz)),
        ago = ago(train.created, now),
        took = match train.finished {
            Some(f) => format!(" · took {}", dur(f - train.created)),
            None => String::new(),
        },
    );
    body.push_str(&pipeline::render(&train, &plan, now));
    if let Some(Outcome::Failed { error, .. }) = train.outcome() {
        let _ = write!(body, "<p class=\"error-line\">{}</p>", Esc(error));
    }
    body.push_str("</section>");
    body.push_str(&commits_card(&train));
    body.push_str(&steps_card(&s, &train, &plan, now));
    let title = format!(
        "{} {} · trainbot",
        s.train_label(train.id.0),
        stage_label(&plan, &train.stage)
    );
    let frame = s.frame(&title, "run", (!train.is_done()).then_some(3));
    Ok(Html(page(&frame, "", &body)))
}

fn commits_card(t: &Train) -> String {
    let mut out = format!(
        "<section class=\"card\"><h2>Commits</h2><p class=\"sub\">base {}</p><ul class=\"commit-list\">",
        t.base.as_ref().map(|b| b.short()).unwrap_or("none")
    );
    for c in &t.commits {
        let reverted = if t.reverted.contains(&c.sha) {
            " <span class=\"badge warn\">reverted</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<li class=\"commit\"><code class=\"sha\">{}</code> <span class=\"subject\">{}</span> \
             <span class=\"author\">{} &lt;{}&gt;</span>{reverted}</li>",
            Esc(c.sha.short()),
            Esc(&c.subject),
            Esc(&c.author_name),
            Esc(&c.author_email),
        );
    }
    if t.commits.is_empty() {
        out.push_str("<li class=\"sub\">no commits listed</li>");
    }
    out.push_str("</ul>");
    if !t.approvals.is_empty() {
        let names: Vec<String> = t.approvals.iter().map(|a| a.user.to_string()).collect();
        let _ = write!(out, "<p>approved by {}</p>", Esc(&names.join(", ")));
    }
    out.push_str("</section>");
    out
}

fn steps_card(s: &WebState, t: &Train, plan: &Plan, now: crate::domain::clock::Ts) -> String {
    let mut out = String::from("<section class=\"card\"><h2>Steps</h2>");
    if t.steps.is_empty() {
        out.push_str("<p class=\"sub\">no steps have run</p>");
    }
    for rec in &t.steps {
        let (cls, word) = match rec.ok {
            Some(true) => ("passed", "passed"),
            Some(false) => ("failed", "failed"),
            None if rec.finished.is_none() && !t.is_done() => ("running", "running"),
            None => ("stopped", "stopped"),
        };
        let name = step_name(plan, rec.pos.target, rec.pos.phase, rec.pos.step);
        let attempt = if rec.attempt > 1 {
            format!(" (run {})", rec.attempt)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<details class=\"step {cls}\"{open}><summary><span class=\"step-name\">{name}{attempt}</span>\
             <span class=\"step-state\">{word}</span><span class=\"step-time\">{took}</span></summary>",
            open = if cls != "passed" { " open" } else { "" },
            name = Esc(&name),
            took = dur(step_time(rec.started, rec.finished, now)),
        );
        match log_name(plan, rec) {
            Some(step) => {
                let run = format!("train-{}", t.id.0);
                let dir = s.settings.bot.data_dir.join("logs").join(&run);
                render_log(
                    &mut out,
                    &s.base,
                    &dir,
                    &run,
                    &step,
                    cls == "running",
                    "no log",
                );
            }
            None => out.push_str("<p class=\"sub\">no log</p>"),
        }
        out.push_str("</details>");
    }
    out.push_str("</section>");
    out
}

/// `<env>-<phase>-<step>` (`-run-N` from its second run): the name of the
/// step's log in `data_dir/logs/train-N/`, as the engine writes it.
fn log_name(plan: &Plan, rec: &StepRecord) -> Option<String> {
    let env = match rec.pos.target {
        Target::Lower(_) => target_name(plan, rec.pos.target),
        Target::Production => "production",
    };
    let safe = !env.is_empty()
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !safe {
        return None;
    }
    let name = format!("{env}-{}-{}", rec.pos.phase.name(), rec.pos.step + 1);
    Some(crate::domain::train::log_name(&name, rec.attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_train_numbers_are_runs() {
        assert_eq!(parse_run_id("train-3"), Some(TrainId(3)));
        for bad in [
            "train-",
            "train-x",
            "train-1/../2",
            "3",
            "train-+3",
            "train-99999999999999999999",
            "build-1",
        ] {
            assert_eq!(parse_run_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_run_of_a_step_has_its_own_log() {
        use crate::domain::train::{Phase, StepPos};
        let plan = Plan {
            envs: Vec::new(),
            production_deploy: 1,
            production_smoke: 1,
            approval: crate::domain::approval::ApprovalPolicy::AllAuthors,
            approval_timeout: chrono::TimeDelta::minutes(30),
            verify: Default::default(),
        };
        let rec = |attempt| StepRecord {
            pos: StepPos {
                target: Target::Production,
                phase: Phase::Verify,
                step: 0,
            },
            attempt,
            started: chrono::Utc::now(),
            finished: None,
            ok: None,
        };
        assert_eq!(
            log_name(&plan, &rec(1)).as_deref(),
            Some("production-verify-1")
        );
        assert_eq!(
            log_name(&plan, &rec(3)).as_deref(),
            Some("production-verify-1-run-3")
        );
    }
}
