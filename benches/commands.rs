//! The bot's own cost of answering a command, with 10,000 trains stored:
//! parsing plus the store reads `!status` and `!history` do. Target: well
//! under a millisecond.

use chrono::{TimeDelta, Utc};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

use trainbot::domain::approval::ApprovalPolicy;
use trainbot::domain::command;
use trainbot::domain::ids::{Sha, TrainId};
use trainbot::domain::train::{EnvPlan, Kind, NewTrain, Plan, Route, Train};
use trainbot::store::{Production, Store};

fn sha(n: u64) -> Sha {
    Sha::new(&format!("{n:040x}")).unwrap()
}

fn filled_store(dir: &std::path::Path, trains: u64) -> Store {
    let store = Store::open(dir).unwrap();
    let plan = Plan {
        envs: vec![EnvPlan {
            name: "staging".into(),
            deploy: 1,
            acceptance: 1,
        }],
        production_deploy: 1,
        production_smoke: 1,
        approval: ApprovalPolicy::AllAuthors,
        approval_timeout: TimeDelta::minutes(30),
    };
    let now = Utc::now();
    for n in 1..=trains {
        let seq = store.allocate(&sha(n), None, now).unwrap().unwrap();
        let new = NewTrain {
            id: TrainId(n),
            sha: sha(n),
            base: None,
            commits: Vec::new(),
            reverted: Vec::new(),
            authors: Vec::new(),
            kind: Kind::Scheduled,
            route: Route::Full,
        };
        let (train, _) = Train::depart(new, &plan, now);
        store.save_train(&train).unwrap();
        let prod = Production {
            sha: sha(n),
            train: TrainId(n),
            since: now,
            alloc_seq: Some(seq),
            previous: None,
            previous_train: None,
        };
        store.set_production(&prod).unwrap();
    }
    store
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(dir.path(), 10_000);
    c.bench_function("status with 10k trains", |b| {
        b.iter(|| {
            let cmd = command::parse(black_box("!status"), "!");
            let prod = store.production().unwrap().unwrap();
            let waiting = store
                .allocations_after(prod.alloc_seq.unwrap_or(0), 20)
                .unwrap();
            let last = store.last_train().unwrap();
            let frozen = store.freeze().unwrap();
            black_box((cmd, waiting, last, frozen))
        })
    });
    c.bench_function("history 5 with 10k trains", |b| {
        b.iter(|| {
            let cmd = command::parse(black_box("!history 5"), "!");
            black_box((cmd, store.deploy_history(5).unwrap()))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
