use std::collections::HashMap;

use super::*;
use crate::domain::ids::ChatUser;
use crate::domain::test_trains::*;
use crate::domain::train::{Phase, StepPos};

fn no_alloc(_: &Sha) -> Option<Ts> {
    None
}

fn window() -> (Ts, Ts) {
    (at(0), at(30 * 24 * 60))
}

#[test]
fn deploys_per_day_counts_successful_production_deploys_in_the_window() {
    let (from, to) = window();
    let mut trains: Vec<Train> = (1..=6)
        .map(|i| deployed(i, 100 * i as i64, 100 * i as i64 + 10, 100 * i as i64 + 20))
        .collect();
    // Ended before the window: not counted.
    trains.push(deployed(7, -500, -490, -480));
    let d = delivery(&trains, no_alloc, from, to);
    assert_eq!(d.days, 30);
    assert_eq!(d.deploys, 6);
    assert!((d.deploys_per_day - 0.2).abs() < 1e-9);
}

#[test]
fn lead_time_runs_from_allocation_to_the_end_of_the_production_deploy() {
    let (from, to) = window();
    // Commits 10 and 11 ship in train 1 (head 11); only 11 was allocated
    // (one push), so 10 takes 11's allocation.
    let mut t = deployed(1, 60, 70, 80);
    t.sha = sha(11);
    t.commits = vec![commit(10, "Alice", "a"), commit(11, "Bob", "b")];
    let allocs: HashMap<Sha, Ts> = [(sha(11), at(20))].into_iter().collect();
    let d = delivery(&[t], |s| allocs.get(s).copied(), from, to);
    assert_eq!(d.commits, 2);
    // Live at minute 80 (end of the deploy step, not of smoke).
    assert_eq!(d.lead_time_median, Some(TimeDelta::minutes(60)));
    assert_eq!(d.lead_time_p90, Some(TimeDelta::minutes(60)));
}

#[test]
fn a_commit_counts_once_at_its_first_ship() {
    let (from, to) = window();
    let mut vetoed = train(1, 10);
    lower_passed(&mut vetoed, 10);
    end(
        &mut vetoed,
        Outcome::Vetoed {
            by: ChatUser::new("alice"),
            reason: None,
        },
        20,
    );
    let mut first = deployed(2, 30, 40, 50);
    first.commits = vec![commit(1, "Alice", "x")];
    let mut again = deployed(3, 100, 110, 200);
    again.commits = vec![commit(1, "Alice", "x")];
    let allocs: HashMap<Sha, Ts> = [(sha(1), at(0))].into_iter().collect();
    let d = delivery(
        &[vetoed, again, first],
        |s| allocs.get(s).copied(),
        from,
        to,
    );
    assert_eq!(d.commits, 1);
    assert_eq!(d.lead_time_median, Some(TimeDelta::minutes(50)));
}

#[test]
fn median_and_p90_use_nearest_rank() {
    let v: Vec<TimeDelta> = (1..=10).map(TimeDelta::minutes).collect();
    assert_eq!(percentile(&v, 50), Some(TimeDelta::minutes(5)));
    assert_eq!(percentile(&v, 90), Some(TimeDelta::minutes(9)));
    assert_eq!(percentile(&v[..1], 90), Some(TimeDelta::minutes(1)));
    assert_eq!(percentile(&[], 50), None);
}

#[test]
fn change_failure_rate_counts_failed_production_steps_and_rollbacks_not_stopped_trains() {
    let (from, to) = window();
    let ok = deployed(1, 0, 10, 20);
    let mut rolled = deployed(2, 100, 110, 120);
    rolled.rolled_back = true;
    let failed = prod_failure(3, 200, 210, 220);
    let mut rollback = deployed(4, 130, 130, 140);
    rollback.kind = Kind::Rollback {
        by: ChatUser::new("ops"),
    };
    let mut expired = train(5, 300);
    lower_passed(&mut expired, 300);
    end(&mut expired, Outcome::Expired, 340);
    let mut lower_failed = train(6, 400);
    let acc = StepPos {
        target: Target::Lower(0),
        phase: Phase::Acceptance,
        step: 0,
    };
    step(&mut lower_failed, acc, 400, Some(401), Some(false));
    end(
        &mut lower_failed,
        Outcome::Failed {
            at: acc,
            error: "exit 1".into(),
        },
        401,
    );
    let d = delivery(
        &[ok, rolled, failed, rollback, expired, lower_failed],
        no_alloc,
        from,
        to,
    );
    assert_eq!(d.production_deploys, 3);
    assert_eq!(d.change_failures, 2);
    assert!((d.change_failure_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(d.stopped_before_production, 2);
    // Deploys exclude the failure and the rollback, include the rolled-back one.
    assert_eq!(d.deploys, 2);
}

#[test]
fn no_deploys_means_no_rate() {
    let (from, to) = window();
    let d = delivery(&[], no_alloc, from, to);
    assert_eq!(d.change_failure_rate, None);
    assert_eq!(d.lead_time_median, None);
    assert_eq!(d.restore_median, None);
    assert_eq!(d.deploys_per_day, 0.0);
}

#[test]
fn time_to_restore_runs_from_the_failure_to_the_next_successful_deploy() {
    let (from, to) = window();
    // Train 1 went live at 20 and was rolled back by train 2, live at 50.
    let mut bad = deployed(1, 0, 10, 20);
    bad.rolled_back = true;
    let mut rollback = deployed(2, 40, 40, 50);
    rollback.kind = Kind::Rollback {
        by: ChatUser::new("ops"),
    };
    // Train 3 failed its smoke at 100; train 4 went live at 130.
    let failed = prod_failure(3, 80, 90, 100);
    let fixed = deployed(4, 110, 120, 130);
    // Train 5 failed at 200 and nothing deployed since: open.
    let open = prod_failure(5, 180, 190, 200);
    let d = delivery(&[bad, rollback, failed, fixed, open], no_alloc, from, to);
    assert_eq!(d.restores, 2);
    assert_eq!(d.open_failures, 1);
    assert_eq!(d.restore_median, Some(TimeDelta::minutes(30)));
}

#[test]
fn env_health_tells_passed_failed_running_and_not_run() {
    let ok = deployed(1, 0, 10, 20);
    assert_eq!(env_health(&ok, 0), Health::Passed);
    assert_eq!(env_health(&ok, 1), Health::NotRun);

    let mut running = train(2, 0);
    let dep = pos(Target::Lower(0), Phase::Deploy);
    step(&mut running, dep, 0, None, None);
    running.stage = Stage::Running(dep);
    assert_eq!(env_health(&running, 0), Health::Running);

    let mut failed = train(3, 0);
    let acc = pos(Target::Lower(0), Phase::Acceptance);
    step(&mut failed, dep, 0, Some(1), Some(true));
    step(&mut failed, acc, 1, Some(2), Some(false));
    end(
        &mut failed,
        Outcome::Failed {
            at: acc,
            error: "x".into(),
        },
        2,
    );
    assert_eq!(env_health(&failed, 0), Health::Failed);

    let mut vetoed = train(4, 0);
    step(&mut vetoed, dep, 0, Some(1), Some(true));
    step(&mut vetoed, acc, 1, None, None);
    end(
        &mut vetoed,
        Outcome::Vetoed {
            by: ChatUser::new("bob"),
            reason: None,
        },
        2,
    );
    assert_eq!(env_health(&vetoed, 0), Health::NotRun);
}

#[test]
fn a_rerun_after_restart_is_judged_by_its_last_run() {
    let mut t = train(1, 0);
    let dep = pos(Target::Lower(0), Phase::Deploy);
    step(&mut t, dep, 0, None, None);
    step(&mut t, dep, 5, Some(6), Some(true));
    t.stage = Stage::AwaitingApproval { since: at(6) };
    assert_eq!(env_health(&t, 0), Health::Passed);
}

#[test]
fn approval_wait_runs_from_the_last_lower_step_to_production_or_the_end() {
    let t = deployed(1, 0, 30, 40);
    assert_eq!(approval_wait(&t), Some(TimeDelta::minutes(28)));
    let mut expired = train(2, 0);
    lower_passed(&mut expired, 0);
    end(&mut expired, Outcome::Expired, 32);
    assert_eq!(approval_wait(&expired), Some(TimeDelta::minutes(30)));
    let mut forced = deployed(3, 0, 0, 5);
    forced.route = Route::ProductionOnly;
    assert_eq!(approval_wait(&forced), None);
}
