//! Trains for tests of what reads them (metrics, pages): built from minutes
//! after a fixed epoch, with one lower environment ("staging") unless told.

use chrono::{DateTime, TimeDelta};

use super::approval::Author;
use super::clock::Ts;
use super::ids::{ChatUser, Sha, TrainId};
use super::train::{
    Approval, Commit, Kind, Outcome, Phase, Route, Stage, StepPos, StepRecord, Target, Train,
};

/// 2025-01-01T00:00:00Z plus `min` minutes.
pub fn at(min: i64) -> Ts {
    DateTime::from_timestamp(1_735_689_600, 0).unwrap() + TimeDelta::minutes(min)
}

pub fn sha(n: u64) -> Sha {
    Sha::new(&format!("{n:040x}")).unwrap()
}

pub fn commit(n: u64, author: &str, subject: &str) -> Commit {
    Commit {
        sha: sha(n),
        author_name: author.to_string(),
        author_email: format!("{}@example.com", author.to_lowercase()),
        author_login: None,
        subject: subject.to_string(),
        message: subject.to_string(),
    }
}

pub fn pos(target: Target, phase: Phase) -> StepPos {
    StepPos {
        target,
        phase,
        step: 0,
    }
}

/// A train departed at minute `created` carrying commit `id` (head) by alice,
/// awaiting approval with no steps run yet.
pub fn train(id: u64, created: i64) -> Train {
    Train {
        id: TrainId(id),
        sha: sha(id),
        base: None,
        commits: vec![commit(id, "Alice", &format!("change {id}"))],
        reverted: Vec::new(),
        authors: vec![Author {
            name: "Alice".into(),
            email: "alice@example.com".into(),
            chat: Some(ChatUser::new("alice")),
            only_reverted: false,
        }],
        kind: Kind::Scheduled,
        route: Route::Full,
        stage: Stage::AwaitingApproval { since: at(created) },
        approvals: Vec::new(),
        forced_by: None,
        production_attempt: 0,
        created: at(created),
        stage_since: at(created),
        production_started: None,
        finished: None,
        steps: Vec::new(),
        rolled_back: false,
        overrode: None,
        envs: Vec::new(),
        nudged: Default::default(),
        verify: None,
    }
}

/// Appends a step run from minute `start` to `end` (None: still running).
pub fn step(t: &mut Train, p: StepPos, start: i64, end: Option<i64>, ok: Option<bool>) {
    t.steps.push(StepRecord {
        pos: p,
        attempt: 1,
        started: at(start),
        finished: end.map(at),
        ok,
    });
}

/// Staging deploy and acceptance passed, one minute each, from `created`.
pub fn lower_passed(t: &mut Train, created: i64) {
    step(
        t,
        pos(Target::Lower(0), Phase::Deploy),
        created,
        Some(created + 1),
        Some(true),
    );
    let (s, e) = (created + 1, created + 2);
    step(
        t,
        pos(Target::Lower(0), Phase::Acceptance),
        s,
        Some(e),
        Some(true),
    );
}

/// A train approved at `approved` whose production deploy went live at
/// `live` and whose smoke passed a minute later.
pub fn deployed(id: u64, created: i64, approved: i64, live: i64) -> Train {
    let mut t = train(id, created);
    lower_passed(&mut t, created);
    t.approvals.push(Approval {
        user: ChatUser::new("alice"),
        at: at(approved),
    });
    t.production_started = Some(at(approved));
    t.production_attempt = 1;
    step(
        &mut t,
        pos(Target::Production, Phase::Deploy),
        approved,
        Some(live),
        Some(true),
    );
    step(
        &mut t,
        pos(Target::Production, Phase::Smoke),
        live,
        Some(live + 1),
        Some(true),
    );
    end(&mut t, Outcome::Deployed, live + 1);
    t
}

/// A train whose production smoke failed at `failed`.
pub fn prod_failure(id: u64, created: i64, approved: i64, failed: i64) -> Train {
    let mut t = deployed(id, created, approved, failed);
    t.steps.pop();
    let smoke = pos(Target::Production, Phase::Smoke);
    step(&mut t, smoke, failed, Some(failed), Some(false));
    end(
        &mut t,
        Outcome::Failed {
            at: smoke,
            error: "exit 1".into(),
        },
        failed,
    );
    t
}

pub fn end(t: &mut Train, outcome: Outcome, min: i64) {
    t.stage = Stage::Done(outcome);
    t.finished = Some(at(min));
    t.stage_since = at(min);
}
