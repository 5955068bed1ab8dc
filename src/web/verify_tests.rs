//! The radiator and the API show a verifying train and an automatic
//! rollback (SPEC §15).

use std::sync::Arc;

use axum::http::StatusCode;

use super::test_support::{Fixture, now};
use crate::domain::train::{Verification, VerifyResult};
use crate::engine::VerifyView;

#[tokio::test]
async fn the_dashboard_shows_a_verifying_train_with_time_left_and_its_last_check() {
    let f = Fixture::filled();
    let mut snap = f.snapshots.borrow().as_ref().clone();
    if let Some(t) = snap.train.as_mut() {
        t.stage = "verifying".into();
        t.stage_detail = "verifying production".into();
        t.verifying = Some(VerifyView {
            until: "2026-01-01T10:10:00+00:00".into(),
            checks: 2,
            total: 10,
            failures: 0,
            last_check: Some("2026-01-01T10:02:00+00:00".into()),
            last_ok: Some(true),
            detail: "check 2/10 green, 8m left".into(),
        });
    }
    f.snapshots.send_replace(Arc::new(snap));
    let (status, _, body) = f.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("is verifying production until 10:10: check 2/10 green, 8m left; last check green at 10:02"),
        "{body}"
    );
    let (_, _, api) = f.get("/api/status").await;
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v["train"]["verifying"]["total"], 10);
    assert_eq!(v["train"]["verifying"]["last_ok"], true);
}

#[tokio::test]
async fn an_automatic_rollback_shows_in_recent_deploys() {
    let f = Fixture::filled();
    let deploys = f.store.deploy_history(10).unwrap();
    let mut red = deploys.first().expect("a deploy").clone();
    red.rolled_back = true;
    red.verify = Some(Verification {
        since: now(),
        until: now(),
        total: 10,
        checks: 2,
        failures: 1,
        next: None,
        last: Some((now(), false)),
        running: None,
        result: Some(VerifyResult::Red {
            auto_rollback: true,
        }),
    });
    f.store.save_train(&red).unwrap();
    let (_, _, body) = f.get("/").await;
    assert!(body.contains("rolled back automatically"), "{body}");
    let (_, _, api) = f.get("/api/status").await;
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    let d = &v["recent_deploys"][0];
    assert_eq!(d["rolled_back"], true, "{d}");
    assert_eq!(
        d["verify"],
        "verification red (1 of 2 checks failed): rolled back automatically"
    );
}
