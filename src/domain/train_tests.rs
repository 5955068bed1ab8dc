use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::domain::approval::ApprovalPolicy;

/// The gate says go at every door: these tests are about the train; the
/// doors have tests of their own below.
fn open_doors(train: &mut Train, mut effects: Vec<Effect>, plan: &Plan, now: Ts) -> Vec<Effect> {
    while effects
        .last()
        .is_some_and(|e| matches!(e, Effect::AtDoor(_)))
    {
        effects.pop();
        effects.extend(train.handle(Input::Enter, plan, now).unwrap());
    }
    effects
}

fn depart_open(new: NewTrain, plan: &Plan, now: Ts) -> (Train, Vec<Effect>) {
    let (mut train, effects) = Train::depart(new, plan, now);
    let effects = open_doors(&mut train, effects, plan, now);
    (train, effects)
}

impl Train {
    fn handle_open(&mut self, input: Input, plan: &Plan, now: Ts) -> Result<Vec<Effect>, Refusal> {
        let effects = self.handle(input, plan, now)?;
        Ok(open_doors(self, effects, plan, now))
    }
}

fn t0() -> Ts {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn plan(policy: ApprovalPolicy) -> Plan {
    Plan {
        envs: vec![
            EnvPlan {
                name: "staging".into(),
                deploy: 1,
                acceptance: 1,
            },
            EnvPlan {
                name: "preview".into(),
                deploy: 1,
                acceptance: 0,
            },
        ],
        production_deploy: 2,
        production_smoke: 1,
        approval: policy,
        approval_timeout: TimeDelta::minutes(30),
        verify: Default::default(),
    }
}

fn user(s: &str) -> ChatUser {
    ChatUser::new(s)
}

fn author(name: &str, chat: Option<&str>) -> Author {
    Author {
        name: name.into(),
        email: format!("{name}@example.com"),
        chat: chat.map(user),
        only_reverted: false,
    }
}

fn actor(s: &str, ops: bool) -> Actor {
    Actor { user: user(s), ops }
}

fn new_train(route: Route, authors: Vec<Author>) -> NewTrain {
    NewTrain {
        id: TrainId(1),
        sha: Sha::new(&"b".repeat(40)).unwrap(),
        base: Some(Sha::new(&"a".repeat(40)).unwrap()),
        commits: Vec::new(),
        reverted: Vec::new(),
        authors,
        kind: Kind::Scheduled,
        route,
    }
}

fn two_authors() -> Vec<Author> {
    vec![author("alice", Some("alice")), author("bob", Some("bob"))]
}

fn pos(target: Target, phase: Phase, step: usize) -> StepPos {
    StepPos {
        target,
        phase,
        step,
    }
}

fn ok(p: StepPos) -> Input {
    Input::StepFinished {
        pos: p,
        ok: true,
        error: None,
    }
}

/// Runs every lower step to success; returns the effects of the last one.
fn pass_lower(train: &mut Train, plan: &Plan, now: Ts) -> Vec<Effect> {
    let mut effects = Vec::new();
    while let Stage::Running(p) = train.stage {
        effects = train.handle_open(ok(p), plan, now).unwrap();
    }
    effects
}

#[test]
fn departing_runs_the_first_staging_step() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (train, effects) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    assert_eq!(
        effects,
        vec![Effect::RunStep(pos(Target::Lower(0), Phase::Deploy, 0))]
    );
    assert_eq!(
        train.stage,
        Stage::Running(pos(Target::Lower(0), Phase::Deploy, 0))
    );
}

#[test]
fn lower_envs_run_in_order_skipping_empty_phases() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let e = train
        .handle_open(ok(pos(Target::Lower(0), Phase::Deploy, 0)), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::RunStep(pos(Target::Lower(0), Phase::Acceptance, 0))]
    );
    let e = train
        .handle_open(ok(pos(Target::Lower(0), Phase::Acceptance, 0)), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::RunStep(pos(Target::Lower(1), Phase::Deploy, 0))]
    );
    let e = train
        .handle_open(ok(pos(Target::Lower(1), Phase::Deploy, 0)), &plan, t0())
        .unwrap();
    assert_eq!(e, vec![Effect::AskApproval]);
    assert!(matches!(train.stage, Stage::AwaitingApproval { .. }));
}

#[test]
fn a_failing_lower_step_fails_the_train() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let p = pos(Target::Lower(0), Phase::Deploy, 0);
    let e = train
        .handle_open(
            Input::StepFinished {
                pos: p,
                ok: false,
                error: Some("exited with code 1".into()),
            },
            &plan,
            t0(),
        )
        .unwrap();
    let outcome = Outcome::Failed {
        at: p,
        error: "exited with code 1".into(),
    };
    assert_eq!(e, vec![Effect::Ended(outcome.clone())]);
    assert_eq!(train.outcome(), Some(&outcome));
    assert!(outcome.rejects_sha());
}

#[test]
fn each_env_failure_names_its_env() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    for fail_at in [
        pos(Target::Lower(0), Phase::Acceptance, 0),
        pos(Target::Lower(1), Phase::Deploy, 0),
    ] {
        let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
        while let Stage::Running(p) = train.stage {
            let good = p != fail_at;
            train
                .handle_open(
                    Input::StepFinished {
                        pos: p,
                        ok: good,
                        error: None,
                    },
                    &plan,
                    t0(),
                )
                .unwrap();
        }
        assert!(matches!(train.outcome(), Some(Outcome::Failed { at, .. }) if *at == fail_at));
    }
}

#[test]
fn a_stale_step_report_changes_nothing() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let before = train.clone();
    let e = train
        .handle_open(ok(pos(Target::Lower(1), Phase::Deploy, 0)), &plan, t0())
        .unwrap();
    assert!(e.is_empty());
    assert_eq!(train, before);
}

#[test]
fn all_authors_approve_then_production_runs() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    let e = train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    assert_eq!(e, vec![Effect::Approved { by: user("alice") }]);
    assert_eq!(train.waiting_for(), vec![&user("bob")]);
    let e = train
        .handle_open(Input::Good(actor("bob", false)), &plan, t0())
        .unwrap();
    let first = pos(Target::Production, Phase::Deploy, 0);
    assert_eq!(
        e,
        vec![
            Effect::Approved { by: user("bob") },
            Effect::ClaimProduction { attempt: 1 },
            Effect::RunStep(first)
        ]
    );
    let e = train.handle_open(ok(first), &plan, t0()).unwrap();
    assert_eq!(
        e,
        vec![Effect::RunStep(pos(Target::Production, Phase::Deploy, 1))]
    );
    let e = train
        .handle_open(ok(pos(Target::Production, Phase::Deploy, 1)), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![
            Effect::ProductionLive,
            Effect::RunStep(pos(Target::Production, Phase::Smoke, 0))
        ]
    );
    let e = train
        .handle_open(
            ok(pos(Target::Production, Phase::Smoke, 0)),
            &plan,
            t0() + TimeDelta::minutes(3),
        )
        .unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::Deployed)]);
    assert_eq!(
        train.duration(t0() + TimeDelta::hours(1)),
        TimeDelta::minutes(3)
    );
}

#[test]
fn any_author_needs_one_approval() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    let e = train
        .handle_open(Input::Good(actor("bob", false)), &plan, t0())
        .unwrap();
    assert!(e.contains(&Effect::ClaimProduction { attempt: 1 }));
}

#[test]
fn approval_by_a_stranger_is_refused_with_who_may() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    let r = train
        .handle_open(Input::Good(actor("mallory", true)), &plan, t0())
        .unwrap_err();
    assert_eq!(
        r.to_string(),
        "only the authors of train #1 can approve it: alice, bob"
    );
    assert!(train.approvals.is_empty());
}

#[test]
fn approving_twice_or_too_early_is_refused() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let r = train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap_err();
    assert!(matches!(r, Refusal::NotYetAwaitingApproval { .. }), "{r}");
    pass_lower(&mut train, &plan, t0());
    train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    let r = train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap_err();
    assert_eq!(r, Refusal::AlreadyApproved { train: TrainId(1) });
}

#[test]
fn an_author_without_a_chat_user_cannot_approve_and_only_force_ships() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(
        new_train(Route::Full, vec![author("carol", None)]),
        &plan,
        t0(),
    );
    pass_lower(&mut train, &plan, t0());
    assert!(train.approvers().is_empty());
    let r = train
        .handle_open(Input::Good(actor("carol", false)), &plan, t0())
        .unwrap_err();
    assert!(r.to_string().contains("only ops can !force it"), "{r}");
    let e = train
        .handle_open(Input::Force(actor("ops", true)), &plan, t0())
        .unwrap();
    assert_eq!(e[0], Effect::ClaimProduction { attempt: 1 });
    assert_eq!(train.forced_by, Some(user("ops")));
}

#[test]
fn a_veto_in_a_lower_env_stops_the_step_and_deploys_nothing() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let e = train
        .handle_open(
            Input::Bad {
                actor: actor("bob", false),
                reason: Some("broken".into()),
            },
            &plan,
            t0(),
        )
        .unwrap();
    let outcome = Outcome::Vetoed {
        by: user("bob"),
        reason: Some("broken".into()),
    };
    assert_eq!(e, vec![Effect::StopStep, Effect::Ended(outcome)]);
}

#[test]
fn a_veto_while_awaiting_approval_ends_the_train() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    let e = train
        .handle_open(
            Input::Bad {
                actor: actor("ops", true),
                reason: None,
            },
            &plan,
            t0(),
        )
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::Ended(Outcome::Vetoed {
            by: user("ops"),
            reason: None
        })]
    );
}

#[test]
fn a_veto_by_a_stranger_or_during_production_is_refused() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let r = train
        .handle_open(
            Input::Bad {
                actor: actor("eve", false),
                reason: None,
            },
            &plan,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(r, Refusal::NotAnAuthorToVeto { .. }));
    pass_lower(&mut train, &plan, t0());
    train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    let r = train
        .handle_open(
            Input::Bad {
                actor: actor("bob", false),
                reason: None,
            },
            &plan,
            t0(),
        )
        .unwrap_err();
    assert_eq!(r, Refusal::TooLateToVeto { train: TrainId(1) });
}

#[test]
fn unanswered_approval_expires_at_the_timeout() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    let deadline = t0() + TimeDelta::minutes(30);
    assert_eq!(train.next_wakeup(&plan), Some(deadline));
    assert!(
        train
            .handle_open(Input::Wakeup, &plan, deadline - TimeDelta::seconds(1))
            .unwrap()
            .is_empty()
    );
    let e = train.handle_open(Input::Wakeup, &plan, deadline).unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::Expired)]);
    assert_eq!(train.next_wakeup(&plan), None);
}

#[test]
fn force_is_refused_for_non_ops_and_during_lower_envs() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let r = train
        .handle_open(Input::Force(actor("alice", false)), &plan, t0())
        .unwrap_err();
    assert_eq!(r.to_string(), "only ops can !force");
    let r = train
        .handle_open(Input::Force(actor("ops", true)), &plan, t0())
        .unwrap_err();
    assert_eq!(
        r.to_string(),
        "train #1 is in staging deploy; !force is possible once it awaits approval (or !bad it)"
    );
}

#[test]
fn force_ships_an_expired_train() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    train
        .handle_open(Input::Wakeup, &plan, t0() + TimeDelta::hours(1))
        .unwrap();
    let e = train
        .handle_open(
            Input::Force(actor("ops", true)),
            &plan,
            t0() + TimeDelta::hours(2),
        )
        .unwrap();
    assert_eq!(
        e,
        vec![
            Effect::ClaimProduction { attempt: 1 },
            Effect::RunStep(pos(Target::Production, Phase::Deploy, 0))
        ]
    );
    assert_eq!(train.finished, None);
}

#[test]
fn force_of_a_finished_train_is_refused() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    train
        .handle_open(
            Input::Bad {
                actor: actor("bob", false),
                reason: None,
            },
            &plan,
            t0(),
        )
        .unwrap();
    assert_eq!(
        train
            .handle_open(Input::Force(actor("ops", true)), &plan, t0())
            .unwrap_err(),
        Refusal::NothingToForce
    );
}

#[test]
fn cancel_stops_a_running_step() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    assert!(matches!(
        train.handle_open(Input::Cancel(actor("bob", false)), &plan, t0()),
        Err(Refusal::NotOps { .. })
    ));
    let e = train
        .handle_open(Input::Cancel(actor("ops", true)), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![
            Effect::StopStep,
            Effect::Ended(Outcome::Cancelled { by: user("ops") })
        ]
    );
    // SPEC §11: a cancelled head is not sent again by the clock.
    assert!(train.outcome().unwrap().rejects_sha());
    assert_eq!(
        train
            .handle_open(Input::Cancel(actor("ops", true)), &plan, t0())
            .unwrap_err(),
        Refusal::NothingToCancel
    );
}

#[test]
fn production_only_routes_claim_first() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let mut new = new_train(Route::ProductionOnly, two_authors());
    new.kind = Kind::Rollback { by: user("ops") };
    let (train, e) = depart_open(new, &plan, t0());
    assert_eq!(
        e,
        vec![
            Effect::ClaimProduction { attempt: 1 },
            Effect::RunStep(pos(Target::Production, Phase::Deploy, 0))
        ]
    );
    assert_eq!(train.forced_by, Some(user("ops")));
}

#[test]
fn lower_only_routes_end_after_the_lower_envs() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::LowerOnly, two_authors()), &plan, t0());
    let e = pass_lower(&mut train, &plan, t0());
    assert_eq!(e, vec![Effect::Ended(Outcome::LowerDone)]);
}

#[test]
fn no_lower_envs_means_approval_at_once() {
    let mut plan = plan(ApprovalPolicy::AllAuthors);
    plan.envs.clear();
    let (train, e) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    assert_eq!(e, vec![Effect::AskApproval]);
    assert!(matches!(train.stage, Stage::AwaitingApproval { .. }));
}

#[test]
fn no_production_steps_deploys_at_once() {
    let mut plan = plan(ApprovalPolicy::AnyAuthor);
    plan.production_deploy = 0;
    plan.production_smoke = 0;
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    let e = train
        .handle_open(Input::Good(actor("bob", false)), &plan, t0())
        .unwrap();
    assert_eq!(
        e[1..],
        [
            Effect::ClaimProduction { attempt: 1 },
            Effect::ProductionLive,
            Effect::Ended(Outcome::Deployed)
        ]
    );
}

#[test]
fn restart_in_a_lower_env_runs_the_step_again() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    let p = pos(Target::Lower(0), Phase::Deploy, 0);
    let e = train.handle_open(Input::Restarted, &plan, t0()).unwrap();
    assert_eq!(e, vec![Effect::Resumed, Effect::RunStep(p)]);
    assert_eq!(train.steps.last().unwrap().attempt, 2);
}

#[test]
fn restart_while_awaiting_approval_keeps_approvals() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    let e = train.handle_open(Input::Restarted, &plan, t0()).unwrap();
    assert_eq!(e, vec![Effect::Resumed]);
    assert!(train.has_approved(&user("alice")));
}

#[test]
fn restart_during_production_interrupts_and_never_reruns() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    pass_lower(&mut train, &plan, t0());
    train
        .handle_open(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    let p = pos(Target::Production, Phase::Deploy, 0);
    let e = train.handle_open(Input::Restarted, &plan, t0()).unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::Interrupted { at: p })]);
    // Ops may force a recorded re-run: a new attempt, so a new claim.
    let e = train
        .handle_open(Input::Force(actor("ops", true)), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::ClaimProduction { attempt: 2 }, Effect::RunStep(p)]
    );
}

#[test]
fn restart_of_a_finished_train_does_nothing() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    train
        .handle_open(Input::Cancel(actor("ops", true)), &plan, t0())
        .unwrap();
    assert!(
        train
            .handle_open(Input::Restarted, &plan, t0())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_interrupted_train_can_be_cancelled() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let (mut train, _) = depart_open(new_train(Route::ProductionOnly, two_authors()), &plan, t0());
    train.handle_open(Input::Restarted, &plan, t0()).unwrap();
    let e = train
        .handle_open(Input::Cancel(actor("ops", true)), &plan, t0())
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::Ended(Outcome::Cancelled { by: user("ops") })]
    );
}

#[test]
fn a_failing_smoke_after_deploy_is_a_failure_in_production() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let (mut train, _) = depart_open(new_train(Route::ProductionOnly, two_authors()), &plan, t0());
    train
        .handle_open(ok(pos(Target::Production, Phase::Deploy, 0)), &plan, t0())
        .unwrap();
    let e = train
        .handle_open(ok(pos(Target::Production, Phase::Deploy, 1)), &plan, t0())
        .unwrap();
    assert_eq!(e[0], Effect::ProductionLive);
    let smoke = pos(Target::Production, Phase::Smoke, 0);
    let e = train
        .handle_open(
            Input::StepFinished {
                pos: smoke,
                ok: false,
                error: None,
            },
            &plan,
            t0(),
        )
        .unwrap();
    assert_eq!(
        e,
        vec![Effect::Ended(Outcome::Failed {
            at: smoke,
            error: "failed".into()
        })]
    );
}

#[test]
fn a_train_waits_at_each_door_until_the_gate_lets_it_in() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, e) = Train::depart(new_train(Route::Full, two_authors()), &plan, t0());
    assert_eq!(e, vec![Effect::AtDoor(Target::Lower(0))]);
    assert_eq!(train.waiting_at(), Some(Target::Lower(0)));
    // Held at the door: a veto still works, nothing runs.
    let mut held = train.clone();
    let e = held
        .handle(
            Input::Bad {
                actor: actor("bob", false),
                reason: None,
            },
            &plan,
            t0(),
        )
        .unwrap();
    assert!(matches!(
        e.as_slice(),
        [Effect::Ended(Outcome::Vetoed { .. })]
    ));
    let e = train.handle(Input::Enter, &plan, t0()).unwrap();
    assert_eq!(
        e,
        vec![Effect::RunStep(pos(Target::Lower(0), Phase::Deploy, 0))]
    );
    // A late second go changes nothing.
    assert!(train.handle(Input::Enter, &plan, t0()).unwrap().is_empty());
}

#[test]
fn approval_leads_to_the_production_door_and_force_passes_it() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let (mut train, _) = depart_open(new_train(Route::Full, two_authors()), &plan, t0());
    train.stage = Stage::AwaitingApproval { since: t0() };
    let e = train
        .handle(Input::Good(actor("alice", false)), &plan, t0())
        .unwrap();
    assert_eq!(e.last(), Some(&Effect::AtDoor(Target::Production)));
    assert_eq!(train.waiting_at(), Some(Target::Production));
    // A window holds it; ops force it through.
    let e = train
        .handle(Input::Force(actor("ops", true)), &plan, t0())
        .unwrap();
    assert_eq!(e[0], Effect::ClaimProduction { attempt: 1 });
}

#[test]
fn a_restart_at_a_door_asks_the_gate_again() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, _) = Train::depart(new_train(Route::Full, two_authors()), &plan, t0());
    let e = train.handle(Input::Restarted, &plan, t0()).unwrap();
    assert_eq!(e, vec![Effect::Resumed, Effect::AtDoor(Target::Lower(0))]);
}

#[test]
fn a_deploy_to_one_env_runs_only_that_env() {
    let plan = plan(ApprovalPolicy::AllAuthors);
    let (mut train, e) = depart_open(new_train(Route::Env(0), Vec::new()), &plan, t0());
    assert_eq!(
        e,
        vec![Effect::RunStep(pos(Target::Lower(0), Phase::Deploy, 0))]
    );
    train
        .handle_open(ok(pos(Target::Lower(0), Phase::Deploy, 0)), &plan, t0())
        .unwrap();
    let e = train
        .handle_open(ok(pos(Target::Lower(0), Phase::Acceptance, 0)), &plan, t0())
        .unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::LowerDone)]);
    // The second environment alone.
    let (mut train, e) = depart_open(new_train(Route::Env(1), Vec::new()), &plan, t0());
    assert_eq!(
        e,
        vec![Effect::RunStep(pos(Target::Lower(1), Phase::Deploy, 0))]
    );
    let e = train
        .handle_open(ok(pos(Target::Lower(1), Phase::Deploy, 0)), &plan, t0())
        .unwrap();
    assert_eq!(e, vec![Effect::Ended(Outcome::LowerDone)]);
}

#[test]
fn a_deploy_to_production_waits_at_its_door_and_goes_in_on_the_gates_go() {
    let plan = plan(ApprovalPolicy::AnyAuthor);
    let new = NewTrain {
        kind: Kind::Deploy {
            by: user("ops"),
            git_ref: "main".into(),
            env: "production".into(),
        },
        ..new_train(Route::ProductionOnly, Vec::new())
    };
    let (mut train, effects) = Train::depart(new, &plan, t0());
    assert_eq!(effects, vec![Effect::AtDoor(Target::Production)]);
    assert_eq!(train.waiting_at(), Some(Target::Production));
    let e = train.handle_open(Input::Enter, &plan, t0()).unwrap();
    assert!(
        e.contains(&Effect::RunStep(pos(Target::Production, Phase::Deploy, 0))),
        "{e:?}"
    );
}
