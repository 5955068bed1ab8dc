//! Delivery metrics and per-environment health, computed from stored trains.
//! Pure: the trains, the allocation times and the window come in as arguments.
//!
//! Definitions (shown on the dashboard):
//! - a *production deploy* is a train (not a rollback) whose production steps
//!   ran to an end: deployed, or failed in a production step;
//! - a *change failure* is such a deploy that failed in production or was
//!   later rolled back; trains stopped before production are counted apart;
//! - *lead time* of a commit runs from its allocation (or the allocation of
//!   the first later commit of its train that was allocated, since a push of
//!   several commits allocates only its head) to the end of the production
//!   deploy steps that shipped it; each commit counts once, at its first ship;
//! - *time to restore* runs from a change failure (the failed step, or the
//!   end of the deploy that was later rolled back) to the next successful
//!   production deploy, a rollback included.

use std::collections::HashSet;

use chrono::TimeDelta;

use super::clock::Ts;
use super::ids::Sha;
use super::train::{Kind, Outcome, Phase, Route, Stage, Target, Train};

/// The four delivery metrics over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub days: i64,
    /// Successful production deploys in the window (rollbacks excluded).
    pub deploys: usize,
    pub deploys_per_day: f64,
    pub lead_time_median: Option<TimeDelta>,
    pub lead_time_p90: Option<TimeDelta>,
    /// Commits whose lead time was measured.
    pub commits: usize,
    pub production_deploys: usize,
    pub change_failures: usize,
    /// `change_failures / production_deploys`, None without deploys.
    pub change_failure_rate: Option<f64>,
    /// Vetoed, expired, failed in a lower environment or cancelled before
    /// production: not deploys, not failures.
    pub stopped_before_production: usize,
    pub restore_median: Option<TimeDelta>,
    pub restores: usize,
    /// Change failures not yet followed by a successful deploy.
    pub open_failures: usize,
}

/// A lower environment's result in one train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Passed,
    Failed,
    Running,
    /// Stopped (vetoed, cancelled, expired) while there, or never reached.
    NotRun,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Passed => "passed",
            Health::Failed => "failed",
            Health::Running => "running",
            Health::NotRun => "not run",
        }
    }
}

/// How a lower environment (index `env`) did in `train`: the last run of
/// each of its steps decides.
pub fn env_health(train: &Train, env: usize) -> Health {
    let target = Target::Lower(env);
    let mut last = std::collections::BTreeMap::new();
    for rec in train.steps.iter().filter(|r| r.pos.target == target) {
        last.insert((rec.pos.phase == Phase::Acceptance, rec.pos.step), rec);
    }
    if last.is_empty() {
        return Health::NotRun;
    }
    if last.values().any(|r| r.ok == Some(false)) {
        return Health::Failed;
    }
    if let Stage::Running(pos) = train.stage
        && pos.target == target
    {
        return Health::Running;
    }
    let passed_on = match train.stage {
        Stage::Running(pos) => pos.target != target,
        Stage::AwaitingApproval { .. } | Stage::Verifying { .. } => true,
        Stage::Waiting { target: t, .. } => t != target && last.values().all(|r| r.ok.is_some()),
        Stage::Done(Outcome::Failed { at, .. }) => at.target != target,
        Stage::Done(_) => {
            // Done after this env: every step it started finished well.
            last.values().all(|r| r.ok == Some(true))
        }
    };
    if passed_on && last.values().all(|r| r.ok == Some(true)) {
        Health::Passed
    } else {
        Health::NotRun
    }
}

/// When the production deploy steps of `train` ended (the last production
/// deploy step that passed), else when the train finished.
pub fn production_live_at(train: &Train) -> Option<Ts> {
    train
        .steps
        .iter()
        .filter(|r| r.pos.target == Target::Production && r.pos.phase == Phase::Deploy)
        .filter(|r| r.ok == Some(true))
        .filter_map(|r| r.finished)
        .max()
        .or(train.finished)
}

fn is_rollback(t: &Train) -> bool {
    matches!(t.kind, Kind::Rollback { .. })
}

fn failed_in_production(t: &Train) -> bool {
    matches!(t.outcome(), Some(Outcome::Failed { at, .. }) if at.target == Target::Production)
}

fn is_change_failure(t: &Train) -> bool {
    failed_in_production(t) || (t.rolled_back && t.outcome() == Some(&Outcome::Deployed))
}

fn in_window(t: Option<Ts>, from: Ts, to: Ts) -> bool {
    t.is_some_and(|t| t >= from && t <= to)
}

/// The delivery metrics for trains that ended within `[from, to]`.
/// `allocated_at` gives a SHA's allocation time, when it was allocated.
pub fn delivery(
    trains: &[Train],
    allocated_at: impl Fn(&Sha) -> Option<Ts>,
    from: Ts,
    to: Ts,
) -> Delivery {
    let mut sorted: Vec<&Train> = trains.iter().collect();
    sorted.sort_by_key(|t| t.id.0);
    let ended: Vec<&Train> = sorted
        .iter()
        .copied()
        .filter(|t| t.is_done() && in_window(t.finished, from, to))
        .collect();

    let successes: Vec<&Train> = ended
        .iter()
        .copied()
        .filter(|t| t.outcome() == Some(&Outcome::Deployed) && !is_rollback(t))
        .collect();
    let production_deploys = successes.len()
        + ended
            .iter()
            .filter(|t| failed_in_production(t) && !is_rollback(t))
            .count();
    let failures: Vec<&Train> = ended
        .iter()
        .copied()
        .filter(|t| !is_rollback(t) && is_change_failure(t))
        .collect();
    let stopped_before_production = ended
        .iter()
        .filter(|t| t.production_started.is_none() && t.outcome() != Some(&Outcome::LowerDone))
        .count();

    let lead = lead_times(&sorted, &allocated_at, from, to);
    let restore = restore_times(&sorted, &failures);
    let days = (to - from).num_days().max(1);
    Delivery {
        days,
        deploys: successes.len(),
        deploys_per_day: successes.len() as f64 / days as f64,
        lead_time_median: percentile(&lead, 50),
        lead_time_p90: percentile(&lead, 90),
        commits: lead.len(),
        production_deploys,
        change_failures: failures.len(),
        change_failure_rate: (production_deploys > 0)
            .then(|| failures.len() as f64 / production_deploys as f64),
        stopped_before_production,
        restore_median: percentile(&restore, 50),
        restores: restore.len(),
        open_failures: failures.len() - restore.len(),
    }
}

/// Lead time of every commit first shipped within the window.
fn lead_times(
    sorted: &[&Train],
    allocated_at: &impl Fn(&Sha) -> Option<Ts>,
    from: Ts,
    to: Ts,
) -> Vec<TimeDelta> {
    let mut shipped: HashSet<&Sha> = HashSet::new();
    let mut out = Vec::new();
    for t in sorted
        .iter()
        .filter(|t| t.outcome() == Some(&Outcome::Deployed))
    {
        let Some(live) = production_live_at(t) else {
            continue;
        };
        // Oldest first: a commit takes the allocation of itself or the
        // nearest later allocated commit of the same train.
        let mut next_alloc = allocated_at(&t.sha);
        let mut per_commit = Vec::new();
        for c in t.commits.iter().rev() {
            if let Some(at) = allocated_at(&c.sha) {
                next_alloc = Some(at);
            }
            per_commit.push((&c.sha, next_alloc));
        }
        for (sha, alloc) in per_commit {
            if !shipped.insert(sha) {
                continue;
            }
            if let Some(alloc) = alloc
                && live >= from
                && live <= to
            {
                out.push(live - alloc);
            }
        }
    }
    out.sort();
    out
}

/// For each failure, the time to the next successful production deploy.
fn restore_times(sorted: &[&Train], failures: &[&Train]) -> Vec<TimeDelta> {
    let mut out = Vec::new();
    for f in failures {
        let failed_at = if failed_in_production(f) {
            f.finished
        } else {
            production_live_at(f)
        };
        let Some(failed_at) = failed_at else { continue };
        let restored = sorted
            .iter()
            .filter(|t| t.id.0 > f.id.0 && t.outcome() == Some(&Outcome::Deployed))
            .filter_map(|t| production_live_at(t))
            .filter(|at| *at >= failed_at)
            .min();
        if let Some(at) = restored {
            out.push(at - failed_at);
        }
    }
    out.sort();
    out
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[TimeDelta], p: usize) -> Option<TimeDelta> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// How long a train waited for approval: from the request (the end of its
/// last lower step, or departure) to production start or its end.
pub fn approval_wait(train: &Train) -> Option<TimeDelta> {
    let asked = train
        .steps
        .iter()
        .filter(|r| r.pos.target != Target::Production)
        .filter_map(|r| r.finished)
        .max()
        .unwrap_or(train.created);
    if train.route != Route::Full {
        return None;
    }
    match (&train.stage, train.production_started) {
        (_, Some(started)) => Some(started - asked),
        (Stage::Done(Outcome::Vetoed { .. } | Outcome::Expired), None) => {
            let lower_passed = train.steps.iter().all(|r| r.ok == Some(true));
            train.finished.filter(|_| lower_passed).map(|f| f - asked)
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
