//! Production verification (SPEC §15): the window's checks, the failure
//! limit, the delay, a restart in the window.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::domain::approval::ApprovalPolicy;

fn t0() -> Ts {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn m(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn plan(verify: VerifyPlan) -> Plan {
    Plan {
        envs: Vec::new(),
        production_deploy: 1,
        production_smoke: 1,
        approval: ApprovalPolicy::AllAuthors,
        approval_timeout: m(30),
        verify,
    }
}

fn vp(window: i64, every: i64, delay: i64, failure_limit: u32, auto_rollback: bool) -> VerifyPlan {
    VerifyPlan {
        steps: 1,
        window: m(window),
        every: m(every),
        delay: m(delay),
        failure_limit,
        auto_rollback,
    }
}

fn prod(phase: Phase, step: usize) -> StepPos {
    StepPos {
        target: Target::Production,
        phase,
        step,
    }
}

fn done(p: StepPos, ok: bool) -> Input {
    Input::StepFinished {
        pos: p,
        ok,
        error: (!ok).then(|| "exit 1".into()),
    }
}

/// A forced train through deploy and smoke at t0: verifying.
fn verifying(plan: &Plan) -> (Train, Vec<Effect>) {
    let new = NewTrain {
        id: crate::domain::ids::TrainId(4),
        sha: Sha::new(&"b".repeat(40)).unwrap(),
        base: Some(Sha::new(&"a".repeat(40)).unwrap()),
        commits: Vec::new(),
        reverted: Vec::new(),
        authors: Vec::new(),
        kind: Kind::ForcedSha {
            by: ChatUser::new("ops"),
        },
        route: Route::ProductionOnly,
    };
    let (mut train, _) = Train::depart(new, plan, t0());
    train
        .handle(done(prod(Phase::Deploy, 0), true), plan, t0())
        .unwrap();
    let effects = train
        .handle(done(prod(Phase::Smoke, 0), true), plan, t0())
        .unwrap();
    (train, effects)
}

/// Runs the check due at its wake-up with `ok`; returns when it started.
fn check(train: &mut Train, plan: &Plan, ok: bool) -> (Ts, Vec<Effect>) {
    let at = train.next_wakeup(plan).expect("a check is due");
    let e = train.handle(Input::Wakeup, plan, at).unwrap();
    assert_eq!(e, vec![Effect::RunStep(prod(Phase::Verify, 0))], "at {at}");
    (
        at,
        train
            .handle(done(prod(Phase::Verify, 0), ok), plan, at)
            .unwrap(),
    )
}

#[test]
fn the_window_holds_one_check_every_interval_from_the_delay() {
    assert_eq!(vp(10, 1, 0, 0, true).total(), 10);
    assert_eq!(vp(10, 3, 0, 0, true).total(), 4); // 0, 3, 6, 9
    assert_eq!(vp(10, 1, 2, 0, true).total(), 8); // 2 … 9
    assert_eq!(vp(1, 1, 0, 0, true).total(), 1);
}

#[test]
fn without_verify_steps_smoke_ends_the_train_deployed() {
    let plan = plan(VerifyPlan::default());
    let (train, effects) = verifying(&plan);
    assert_eq!(effects, vec![Effect::Ended(Outcome::Deployed)]);
    assert!(train.verify.is_none());
}

#[test]
fn a_green_window_checks_every_interval_and_ends_deployed_at_its_end() {
    let plan = plan(vp(3, 1, 0, 0, true));
    let (mut train, effects) = verifying(&plan);
    // The SHA is live before verification; the first check runs at once.
    assert_eq!(
        effects,
        vec![Effect::Verifying, Effect::RunStep(prod(Phase::Verify, 0))]
    );
    assert_eq!(train.stage, Stage::Verifying { since: t0() });
    assert_eq!(train.verifying_until(), Some(t0() + m(3)));
    assert_eq!(
        train.next_wakeup(&plan),
        None,
        "the check's end comes as an input"
    );
    let e = train
        .handle(done(prod(Phase::Verify, 0), true), &plan, t0())
        .unwrap();
    assert_eq!(e, vec![Effect::Checked { ok: true }]);
    let (at, _) = check(&mut train, &plan, true);
    assert_eq!(at, t0() + m(1));
    let (at, _) = check(&mut train, &plan, true);
    assert_eq!(at, t0() + m(2));
    assert_eq!(
        train.next_wakeup(&plan),
        Some(t0() + m(3)),
        "the window's end"
    );
    let e = train.handle(Input::Wakeup, &plan, t0() + m(3)).unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::Deployed)]);
    let v = train.verify.as_ref().unwrap();
    assert_eq!((v.checks, v.failures), (3, 0));
    assert_eq!(v.result, Some(VerifyResult::Green));
    assert!(!train.rolled_back);
}

#[test]
fn a_red_check_past_the_failure_limit_ends_the_train_rolled_back() {
    let plan = plan(vp(10, 1, 0, 1, true));
    let (mut train, _) = verifying(&plan);
    train
        .handle(done(prod(Phase::Verify, 0), true), &plan, t0())
        .unwrap();
    // One failure is tolerated (verify_failure_limit = 1)…
    let (_, e) = check(&mut train, &plan, false);
    assert_eq!(e, vec![Effect::Checked { ok: false }]);
    assert!(!train.is_done());
    let (_, e) = check(&mut train, &plan, true);
    assert_eq!(e, vec![Effect::Checked { ok: true }]);
    // …the second is not.
    let (at, e) = check(&mut train, &plan, false);
    assert_eq!(at, t0() + m(3));
    assert_eq!(
        e,
        vec![
            Effect::Checked { ok: false },
            Effect::Ended(Outcome::Deployed)
        ]
    );
    let v = train.verify.as_ref().unwrap();
    assert_eq!((v.checks, v.failures), (4, 2));
    assert_eq!(
        v.result,
        Some(VerifyResult::Red {
            auto_rollback: true
        })
    );
    assert!(train.rolled_back, "the clock holds its head");
}

#[test]
fn without_auto_rollback_a_red_window_is_only_red() {
    let plan = plan(vp(10, 1, 0, 0, false));
    let (mut train, _) = verifying(&plan);
    let e = train
        .handle(done(prod(Phase::Verify, 0), false), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![
            Effect::Checked { ok: false },
            Effect::Ended(Outcome::Deployed)
        ]
    );
    assert_eq!(
        train.verify.as_ref().unwrap().result,
        Some(VerifyResult::Red {
            auto_rollback: false
        })
    );
    assert!(!train.rolled_back);
}

#[test]
fn the_delay_waits_before_the_first_check() {
    let plan = plan(vp(5, 2, 1, 0, true));
    let (mut train, effects) = verifying(&plan);
    assert_eq!(effects, vec![Effect::Verifying]);
    assert_eq!(train.next_wakeup(&plan), Some(t0() + m(1)));
    // An early wake-up does nothing.
    assert!(train.handle(Input::Wakeup, &plan, t0()).unwrap().is_empty());
    let (at, _) = check(&mut train, &plan, true);
    assert_eq!(at, t0() + m(1));
    let (at, _) = check(&mut train, &plan, true);
    assert_eq!(at, t0() + m(3));
    assert_eq!(train.next_wakeup(&plan), Some(t0() + m(5)));
}

#[test]
fn a_restart_resumes_the_window_and_never_deploys_again() {
    let plan = plan(vp(10, 1, 0, 0, true));
    let (mut train, _) = verifying(&plan);
    train
        .handle(done(prod(Phase::Verify, 0), true), &plan, t0())
        .unwrap();
    let json = serde_json::to_string(&train).unwrap();
    let mut back: Train = serde_json::from_str(&json).unwrap();
    assert_eq!(back, train);
    // Between checks: nothing runs at once; the next check at its time.
    let e = back
        .handle(Input::Restarted, &plan, t0() + TimeDelta::seconds(30))
        .unwrap();
    assert_eq!(e, vec![Effect::Resumed]);
    assert_eq!(back.next_wakeup(&plan), Some(t0() + m(1)));
    // Cut in the middle of a check: the check runs again, nothing else.
    let at = t0() + m(1);
    train.handle(Input::Wakeup, &plan, at).unwrap();
    let e = train
        .handle(Input::Restarted, &plan, at + TimeDelta::seconds(5))
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::Resumed, Effect::RunStep(prod(Phase::Verify, 0))]
    );
    // Down past the window's end: it ends green with the checks it had.
    let mut late: Train = serde_json::from_str(&json).unwrap();
    let e = late.handle(Input::Restarted, &plan, t0() + m(30)).unwrap();
    assert_eq!(e, vec![Effect::Resumed, Effect::Ended(Outcome::Deployed)]);
    assert_eq!(late.production_attempt, 1, "never deployed again");
}

#[test]
fn a_verifying_train_cannot_be_vetoed_or_forced_and_stop_verify_ends_it() {
    let plan = plan(vp(10, 1, 0, 0, true));
    let (mut train, _) = verifying(&plan);
    let ops = Actor {
        user: ChatUser::new("ops"),
        ops: true,
    };
    assert!(
        train
            .handle(
                Input::Bad {
                    actor: ops.clone(),
                    reason: None
                },
                &plan,
                t0()
            )
            .is_err()
    );
    assert!(train.handle(Input::Force(ops), &plan, t0()).is_err());
    let e = train
        .handle(
            Input::StopVerify {
                by: ChatUser::new("ops"),
            },
            &plan,
            t0(),
        )
        .unwrap();
    assert_eq!(e, vec![Effect::StopStep, Effect::Ended(Outcome::Deployed)]);
    assert_eq!(
        train.verify.as_ref().unwrap().result,
        Some(VerifyResult::Stopped {
            by: ChatUser::new("ops")
        })
    );
}

#[test]
fn a_rollback_is_not_verified() {
    let plan = plan(vp(10, 1, 0, 0, true));
    let new = NewTrain {
        id: crate::domain::ids::TrainId(5),
        sha: Sha::new(&"a".repeat(40)).unwrap(),
        base: Some(Sha::new(&"b".repeat(40)).unwrap()),
        commits: Vec::new(),
        reverted: Vec::new(),
        authors: Vec::new(),
        kind: Kind::Rollback {
            by: ChatUser::new("trainbot"),
        },
        route: Route::ProductionOnly,
    };
    let (mut train, _) = Train::depart(new, &plan, t0());
    train
        .handle(done(prod(Phase::Deploy, 0), true), &plan, t0())
        .unwrap();
    let e = train
        .handle(done(prod(Phase::Smoke, 0), true), &plan, t0())
        .unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::Deployed)]);
    assert!(train.verify.is_none());
}
