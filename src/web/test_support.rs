//! A router over a temporary sled store filled with trains, a fake clock and
//! the example config, for handler tests.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tokio::sync::watch;
use tower::ServiceExt;

use super::{WebState, Webhook, router};
use crate::config::Settings;
use crate::domain::clock::{Clock, FakeClock};
use crate::domain::ids::ChatUser;
use crate::domain::test_trains::*;
use crate::domain::train::{Phase, Stage, Target, Train};
use crate::engine::{Metrics, Snapshot, TrainView};
use crate::store::{AuditEntry, Production, Store};

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub snapshots: watch::Sender<Arc<Snapshot>>,
}

/// Minute 300 after the test epoch: after every fixture train.
pub fn now() -> crate::domain::clock::Ts {
    at(300)
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../bot.toml.example");
        let mut settings = Settings::parse(text, &dir.path().join("bot.toml")).unwrap();
        settings.bot.data_dir = dir.path().join("data");
        let store = Store::open(&settings.bot.data_dir).unwrap();
        let (snapshots, _) = watch::channel(Arc::new(Snapshot {
            ready: true,
            ..Snapshot::default()
        }));
        Fixture {
            _dir: dir,
            store,
            settings: Arc::new(settings),
            metrics: Arc::default(),
            snapshots,
        }
    }

    /// Two deployed trains (the second with a hostile commit message), a
    /// failed one, and train 4 awaiting approval as the current train.
    pub fn filled() -> Fixture {
        let f = Fixture::new();
        let mut one = deployed(1, 0, 10, 20);
        one.commits[0].subject = "<script>alert('x')</script>".into();
        one.commits[0].author_name = "Mallory <b>".into();
        f.store.allocate(&sha(1), None, at(-30)).unwrap();
        f.save_deployed(&one);
        let two = deployed(2, 60, 70, 80);
        f.store.allocate(&sha(2), None, at(50)).unwrap();
        f.save_deployed(&two);
        let mut three = train(3, 100);
        let acc = pos(Target::Lower(0), Phase::Acceptance);
        step(
            &mut three,
            pos(Target::Lower(0), Phase::Deploy),
            100,
            Some(101),
            Some(true),
        );
        step(&mut three, acc, 101, Some(102), Some(false));
        end(
            &mut three,
            crate::domain::train::Outcome::Failed {
                at: acc,
                error: "exit status 1".into(),
            },
            102,
        );
        f.store.save_train(&three).unwrap();
        let mut four = train(4, 200);
        four.authors.push(crate::domain::approval::Author {
            name: "Bob".into(),
            email: "bob@example.com".into(),
            chat: Some(ChatUser::new("bob")),
            only_reverted: false,
        });
        for (i, env) in [0, 1, 2].into_iter().enumerate() {
            let m = 200 + 2 * i as i64;
            step(
                &mut four,
                pos(Target::Lower(env), Phase::Deploy),
                m,
                Some(m + 1),
                Some(true),
            );
            step(
                &mut four,
                pos(Target::Lower(env), Phase::Acceptance),
                m + 1,
                Some(m + 2),
                Some(true),
            );
        }
        four.approvals.push(crate::domain::train::Approval {
            user: ChatUser::new("alice"),
            at: at(250),
        });
        four.stage = Stage::AwaitingApproval { since: at(206) };
        four.stage_since = at(206);
        f.store.save_train(&four).unwrap();
        f.store.allocate(&sha(5), None, at(280)).unwrap();
        f.store
            .audit(&AuditEntry {
                at: at(200),
                user: ChatUser::new("local"),
                action: "!depart <b>now</b>".into(),
                result: "accepted".into(),
            })
            .unwrap();
        f.set_current(&four);
        f
    }

    pub fn save_deployed(&self, t: &Train) {
        self.store.save_train(t).unwrap();
        self.store
            .set_production(&Production {
                sha: t.sha.clone(),
                train: t.id,
                since: t.finished.unwrap(),
                alloc_seq: self.store.allocation_seq(&t.sha).unwrap(),
                previous: None,
                previous_train: None,
            })
            .unwrap();
    }

    /// Publishes a snapshot with `t` as the current train.
    pub fn set_current(&self, t: &Train) {
        let snap = Snapshot {
            train: Some(TrainView {
                kind: "scheduled",
                id: t.id.0,
                sha: t.sha.to_string(),
                stage: "approval".into(),
                stage_detail: "awaiting approval".into(),
                authors: vec!["alice".into(), "bob".into()],
                approved_by: vec!["alice".into()],
                waiting_for: vec!["bob".into()],
                stage_since: t.stage_since.to_rfc3339(),
                url: "http://127.0.0.1:8080/runs/train-4".into(),
                held: None,
                verifying: None,
            }),
            production_sha: Some(sha(2).to_string()),
            waiting: vec![sha(5).to_string()],
            next_departure: Some(at(360).to_rfc3339()),
            frozen: None,
            tags_waiting: vec![crate::engine::TagView {
                name: "v2.0.0".into(),
                sha: sha(5).to_string(),
                pushed_by: "Mallory <b>".into(),
                to: "production".into(),
            }],
            locks: vec![crate::engine::LockView {
                env: "staging".into(),
                by: "bob".into(),
                reason: "db <migration>".into(),
                since: at(300).to_rfc3339(),
                until: None,
            }],
            gate: Default::default(),
            ready: true,
            api_json: Default::default(),
        };
        self.snapshots.send_replace(Arc::new(snap));
    }

    pub fn app(&self) -> Router {
        self.app_with(None)
    }

    /// The router with `webhook` as the GitHub webhook (None: the git forge).
    pub fn app_with(&self, webhook: Option<Webhook>) -> Router {
        router(self.state("web", webhook))
    }

    /// This fixture as pipeline `name` (its `base` is for `router_for` to set).
    pub fn state(&self, name: &str, webhook: Option<Webhook>) -> WebState {
        let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(now()));
        WebState {
            snapshots: self.snapshots.subscribe(),
            store: self.store.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            clock,
            webhook,
            base: String::new(),
            name: name.to_string(),
        }
    }

    /// GET `path`: status, content type and body.
    pub async fn get(&self, path: &str) -> (StatusCode, String, String) {
        get(&self.app(), path).await
    }
}

/// GET `path` from `app`: status, content type and body.
pub async fn get(app: &Router, path: &str) -> (StatusCode, String, String) {
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(res.into_body(), 8 << 20)
        .await
        .unwrap();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}
