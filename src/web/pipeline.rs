//! A train drawn as its pipeline: each lower environment, approval,
//! production, with where it is now.

use std::fmt::Write;

use chrono::TimeDelta;

use super::html::{Esc, dur};
use crate::domain::clock::Ts;
use crate::domain::metrics::{Health, env_health};
use crate::domain::train::{Outcome, Phase, Plan, Route, Stage, Target, Train};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Done,
    Current,
    Failed,
    /// The train ended here without failing (vetoed, cancelled, expired).
    Stopped,
    Pending,
    /// Not part of this train's route.
    Skipped,
}

impl Cell {
    pub fn class(self) -> &'static str {
        match self {
            Cell::Done => "done",
            Cell::Current => "current",
            Cell::Failed => "failed",
            Cell::Stopped => "stopped",
            Cell::Pending => "pending",
            Cell::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCell {
    pub name: String,
    pub cell: Cell,
    pub note: String,
}

fn cell(name: &str, cell: Cell, note: impl Into<String>) -> StageCell {
    StageCell {
        name: name.to_string(),
        cell,
        note: note.into(),
    }
}

/// Where the train is, stage by stage.
pub fn pipeline(t: &Train, plan: &Plan, now: Ts) -> Vec<StageCell> {
    let in_stage = dur(now - t.stage_since);
    let last_lower = t.steps.iter().rev().find_map(|r| match r.pos.target {
        Target::Lower(i) => Some(i),
        Target::Production => None,
    });
    let mut out: Vec<StageCell> = plan
        .envs
        .iter()
        .enumerate()
        .map(|(i, env)| match env_health(t, i) {
            Health::Passed => cell(&env.name, Cell::Done, "passed"),
            Health::Failed => cell(&env.name, Cell::Failed, failed_note(t)),
            Health::Running => {
                let phase = match t.stage {
                    Stage::Running(p) => p.phase.name(),
                    _ => "",
                };
                cell(&env.name, Cell::Current, format!("{phase} · {in_stage}"))
            }
            Health::NotRun if t.route == Route::ProductionOnly => {
                cell(&env.name, Cell::Skipped, "skipped")
            }
            Health::NotRun if t.is_done() && last_lower == Some(i) => cell(
                &env.name,
                Cell::Stopped,
                t.outcome().map_or("", |o| o.word()),
            ),
            Health::NotRun => cell(&env.name, Cell::Pending, ""),
        })
        .collect();
    out.push(approval_cell(t, plan, &in_stage));
    out.push(production_cell(t, &in_stage));
    out
}

fn failed_note(t: &Train) -> String {
    match t.outcome() {
        Some(Outcome::Failed { at, .. }) => format!("failed in {}", at.phase.name()),
        _ => "failed".into(),
    }
}

fn lower_all_passed(t: &Train, plan: &Plan) -> bool {
    (0..plan.envs.len()).all(|i| env_health(t, i) == Health::Passed)
}

fn approval_cell(t: &Train, plan: &Plan, in_stage: &str) -> StageCell {
    let name = "approval";
    if let Some(by) = &t.forced_by {
        return cell(name, Cell::Done, format!("forced by {by}"));
    }
    if t.route != Route::Full {
        return cell(name, Cell::Skipped, "skipped");
    }
    let approvers = t
        .approvals
        .iter()
        .map(|a| a.user.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if t.production_started.is_some() {
        return cell(name, Cell::Done, format!("by {approvers}"));
    }
    match &t.stage {
        Stage::AwaitingApproval { .. } => {
            let waiting = t.waiting_for().len();
            cell(name, Cell::Current, format!("{waiting} to go · {in_stage}"))
        }
        Stage::Done(o) if lower_all_passed(t, plan) => match o {
            Outcome::Vetoed { by, .. } => cell(name, Cell::Failed, format!("vetoed by {by}")),
            Outcome::Expired => cell(name, Cell::Failed, "expired"),
            other => cell(name, Cell::Stopped, other.word()),
        },
        _ => cell(name, Cell::Pending, ""),
    }
}

fn production_cell(t: &Train, in_stage: &str) -> StageCell {
    let name = "production";
    match &t.stage {
        Stage::Running(p) if p.target == Target::Production => cell(
            name,
            Cell::Current,
            format!("{} · {in_stage}", p.phase.name()),
        ),
        Stage::Done(Outcome::Deployed) if t.rolled_back => cell(name, Cell::Stopped, "rolled back"),
        Stage::Done(Outcome::Deployed) => cell(name, Cell::Done, "deployed"),
        Stage::Done(Outcome::Failed { at, .. }) if at.target == Target::Production => {
            cell(name, Cell::Failed, format!("failed in {}", at.phase.name()))
        }
        Stage::Done(Outcome::Interrupted { .. }) => cell(name, Cell::Failed, "interrupted"),
        _ if t.route == Route::LowerOnly => cell(name, Cell::Skipped, "skipped"),
        _ => cell(name, Cell::Pending, ""),
    }
}

/// The pipeline as an ordered list of coloured stages.
pub fn render(t: &Train, plan: &Plan, now: Ts) -> String {
    let mut out = String::from("<ol class=\"pipeline\" aria-label=\"pipeline\">");
    for c in pipeline(t, plan, now) {
        let _ = write!(
            out,
            "<li class=\"stage {cls}\"><span class=\"stage-name\">{name}</span>\
             <span class=\"stage-note\">{note}</span></li>",
            cls = c.cell.class(),
            name = Esc(&c.name),
            note = Esc(&c.note),
        );
    }
    out.push_str("</ol>");
    out
}

/// How long a step ran (or has run so far).
pub fn step_time(started: Ts, finished: Option<Ts>, now: Ts) -> TimeDelta {
    finished.unwrap_or(now) - started
}

/// "staging deploy 1": the same words as the log file names.
pub fn step_name(plan: &Plan, target: Target, phase: Phase, step: usize) -> String {
    format!(
        "{} {} {}",
        crate::domain::train::target_name(plan, target),
        phase.name(),
        step + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_trains::*;
    use crate::domain::train::{EnvPlan, StepPos};

    fn plan() -> Plan {
        Plan {
            envs: ["staging", "preview"]
                .iter()
                .map(|n| EnvPlan {
                    name: n.to_string(),
                    deploy: 1,
                    acceptance: 1,
                })
                .collect(),
            production_deploy: 1,
            production_smoke: 1,
            approval: crate::domain::approval::ApprovalPolicy::AllAuthors,
            approval_timeout: TimeDelta::minutes(30),
            verify: Default::default(),
        }
    }

    fn cells(t: &Train) -> Vec<Cell> {
        pipeline(t, &plan(), at(100))
            .iter()
            .map(|c| c.cell)
            .collect()
    }

    #[test]
    fn a_running_train_is_current_where_its_step_runs() {
        let mut t = train(1, 0);
        lower_passed(&mut t, 0);
        let p = StepPos {
            target: Target::Lower(1),
            phase: Phase::Acceptance,
            step: 0,
        };
        step(
            &mut t,
            pos(Target::Lower(1), Phase::Deploy),
            2,
            Some(3),
            Some(true),
        );
        step(&mut t, p, 3, None, None);
        t.stage = Stage::Running(p);
        use Cell::*;
        assert_eq!(cells(&t), vec![Done, Current, Pending, Pending]);
    }

    #[test]
    fn approval_is_current_while_waiting_and_failed_when_expired() {
        let mut t = train(1, 0);
        lower_passed(&mut t, 0);
        step(
            &mut t,
            pos(Target::Lower(1), Phase::Deploy),
            2,
            Some(3),
            Some(true),
        );
        step(
            &mut t,
            pos(Target::Lower(1), Phase::Acceptance),
            3,
            Some(4),
            Some(true),
        );
        use Cell::*;
        assert_eq!(cells(&t), vec![Done, Done, Current, Pending]);
        end(&mut t, Outcome::Expired, 40);
        assert_eq!(cells(&t), vec![Done, Done, Failed, Pending]);
    }

    #[test]
    fn a_production_failure_is_drawn_in_production() {
        let mut t = prod_failure(1, 0, 10, 20);
        step(
            &mut t,
            pos(Target::Lower(1), Phase::Deploy),
            2,
            Some(3),
            Some(true),
        );
        step(
            &mut t,
            pos(Target::Lower(1), Phase::Acceptance),
            3,
            Some(4),
            Some(true),
        );
        use Cell::*;
        assert_eq!(cells(&t), vec![Done, Done, Done, Failed]);
    }
}
