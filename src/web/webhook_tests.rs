//! `POST /webhooks/github` through the router, over a temporary sled store,
//! with the engine's inbox as a channel the tests read.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::Webhook;
use super::test_support::Fixture;
use super::webhook::{BODY_LIMIT, verify};
use crate::engine::Event;

const SECRET: &str = "webhook-secret-for-tests";
const MAIN_SHA: &str = "1111111111111111111111111111111111111111";
const TAG_OBJECT: &str = "2222222222222222222222222222222222222222";
const TAG_COMMIT: &str = "3333333333333333333333333333333333333333";
const ZEROS: &str = "0000000000000000000000000000000000000000";

struct Hook {
    f: Fixture,
    app: Router,
    rx: mpsc::Receiver<Event>,
    runs: tokio::sync::watch::Receiver<u64>,
}

fn hook_with(secret: Option<&str>, capacity: usize) -> Hook {
    let f = Fixture::new();
    let (inbox, rx) = mpsc::channel(capacity);
    let (run_events, runs) = tokio::sync::watch::channel(0);
    let app = f.app_with(Some(Webhook {
        secret: secret.map(|s| Arc::from(s.as_bytes())),
        main_branch: "main".into(),
        repository: "acme/web".into(),
        inbox,
        run_events: Some(run_events),
    }));
    Hook { f, app, rx, runs }
}

fn hook() -> Hook {
    hook_with(Some(SECRET), 8)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A delivery: event type, delivery id, signature header (None: absent), body.
struct Delivery<'a> {
    event: &'a str,
    id: Option<&'a str>,
    signature: Option<String>,
    body: Vec<u8>,
    content_length: Option<String>,
}

fn delivery<'a>(event: &'a str, id: &'a str, body: Vec<u8>) -> Delivery<'a> {
    Delivery {
        event,
        id: Some(id),
        signature: Some(sign(SECRET, &body)),
        body,
        content_length: None,
    }
}

fn json_body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn push(git_ref: &str, after: &str, head: Option<&str>) -> Vec<u8> {
    json_body(json!({
        "ref": git_ref,
        "before": ZEROS,
        "after": after,
        "created": true,
        "deleted": false,
        "forced": false,
        "head_commit": head.map(|id| json!({"id": id, "message": "m"})),
        "pusher": {"name": "pusher-name", "email": "p@example.com"},
        "sender": {"login": "sender-login", "id": 1},
        "repository": {"id": 1, "name": "web", "full_name": "acme/web"},
    }))
}

impl Hook {
    async fn post(&self, d: Delivery<'_>) -> (StatusCode, String) {
        let mut req = Request::post("/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", d.event);
        if let Some(id) = d.id {
            req = req.header("x-github-delivery", id);
        }
        if let Some(sig) = d.signature {
            req = req.header("x-hub-signature-256", sig);
        }
        if let Some(len) = d.content_length {
            req = req.header("content-length", len);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(d.body)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(text.lines().count(), 1, "not one line: {text:?}");
        (status, text.trim_end().to_string())
    }

    fn expect_nothing(&mut self) {
        if let Ok(ev) = self.rx.try_recv() {
            panic!("unexpected event {ev:?}");
        }
    }

    fn expect_event(&mut self) -> Event {
        self.rx.try_recv().expect("an event on the inbox")
    }
}

#[test]
fn verify_accepts_the_github_docs_example() {
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let secret = b"It's a Secret to Everybody".as_slice();
    assert!(verify(Some(secret), b"Hello, World!", Some(sig)));
    assert!(verify(
        Some(secret),
        b"Hello, World!",
        Some(&sig.to_uppercase().replace("SHA256=", "sha256="))
    ));
}

#[test]
fn verify_refuses_anything_else() {
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let secret = b"It's a Secret to Everybody".as_slice();
    let body = b"Hello, World!".as_slice();
    assert!(!verify(Some(secret), b"Hello, World?", Some(sig)));
    assert!(!verify(Some(b"another secret"), body, Some(sig)));
    assert!(!verify(None, body, Some(sig)));
    assert!(!verify(Some(b""), body, Some(&sign("", body))));
    assert!(!verify(Some(secret), body, None));
    assert!(!verify(Some(secret), body, Some(&sig[7..])));
    assert!(!verify(
        Some(secret),
        body,
        Some(&sig.replace("sha256", "sha1"))
    ));
    assert!(!verify(Some(secret), body, Some(&sig[..sig.len() - 2])));
    assert!(!verify(Some(secret), body, Some(&format!("{sig}00"))));
    assert!(!verify(Some(secret), body, Some("sha256=zz")));
    assert!(!verify(Some(secret), body, Some("sha256=")));
}

#[tokio::test]
async fn push_to_main_sends_its_head_to_the_engine() {
    let mut h = hook();
    let body = push("refs/heads/main", MAIN_SHA, Some(MAIN_SHA));
    let (status, text) = h.post(delivery("push", "d-1", body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::ACCEPTED, "accepted"));
    match h.expect_event() {
        Event::MainPushed(sha) => assert_eq!(sha.as_str(), MAIN_SHA),
        other => panic!("unexpected {other:?}"),
    }
    h.expect_nothing();
    assert_eq!(h.f.metrics.webhook_events(), 1);
}

#[tokio::test]
async fn annotated_tag_push_sends_the_commit_and_the_pusher() {
    let mut h = hook();
    let body = push("refs/tags/v1.2.3", TAG_OBJECT, Some(TAG_COMMIT));
    let (status, text) = h.post(delivery("push", "d-tag", body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::ACCEPTED, "accepted"));
    match h.expect_event() {
        Event::TagPushed(tag) => {
            assert_eq!(tag.name, "v1.2.3");
            assert_eq!(tag.sha.as_str(), TAG_COMMIT);
            assert_eq!(tag.pushed_by.as_deref(), Some("sender-login"));
        }
        other => panic!("unexpected {other:?}"),
    }
    h.expect_nothing();
}

#[tokio::test]
async fn tag_push_without_head_commit_uses_after_and_the_pusher_name() {
    let mut h = hook();
    let mut v: serde_json::Value =
        serde_json::from_slice(&push("refs/tags/v2", TAG_COMMIT, None)).unwrap();
    v.as_object_mut().unwrap().remove("sender");
    let (status, _) = h.post(delivery("push", "d-tag2", json_body(v))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    match h.expect_event() {
        Event::TagPushed(tag) => {
            assert_eq!(tag.sha.as_str(), TAG_COMMIT);
            assert_eq!(tag.pushed_by.as_deref(), Some("pusher-name"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn pushes_from_another_repository_are_ignored() {
    let mut h = hook();
    let from = |full_name: Option<&str>, git_ref: &str| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&push(git_ref, TAG_COMMIT, Some(TAG_COMMIT))).unwrap();
        match full_name {
            Some(name) => v["repository"]["full_name"] = json!(name),
            None => drop(v.as_object_mut().unwrap().remove("repository")),
        }
        json_body(v)
    };
    let cases = [
        from(Some("evil/web"), "refs/tags/v1"),
        from(Some("acme/web-fork"), "refs/tags/v1"),
        from(Some("other/repo"), "refs/heads/main"),
        from(None, "refs/tags/v1"),
    ];
    for (i, body) in cases.into_iter().enumerate() {
        let id = format!("d-foreign-{i}");
        let (status, text) = h.post(delivery("push", &id, body)).await;
        assert_eq!((status, text.as_str()), (StatusCode::ACCEPTED, "ignored"));
    }
    h.expect_nothing();
    // The name is compared as GitHub does, ignoring case.
    let body = from(Some("ACME/Web"), "refs/tags/v1");
    let (status, text) = h.post(delivery("push", "d-case", body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::ACCEPTED, "accepted"));
    assert!(matches!(h.expect_event(), Event::TagPushed(_)));
}

#[tokio::test]
async fn bad_missing_or_unconfigured_signatures_are_refused() {
    let body = push("refs/heads/main", MAIN_SHA, Some(MAIN_SHA));
    let mut h = hook();
    let mut wrong = delivery("push", "d-wrong", body.clone());
    wrong.signature = Some(sign("not the secret", &body));
    let mut missing = delivery("push", "d-missing", body.clone());
    missing.signature = None;
    let mut bad_hex = delivery("push", "d-hex", body.clone());
    bad_hex.signature = Some("sha256=not-hex".into());
    for d in [wrong, missing, bad_hex] {
        let (status, text) = h.post(d).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(text, "bad or missing X-Hub-Signature-256");
        assert!(!text.contains(SECRET));
    }
    h.expect_nothing();
    assert_eq!(h.f.metrics.webhook_events(), 0);
    // Nothing was recorded: the same ids, properly signed, are fresh.
    let (status, _) = h.post(delivery("push", "d-wrong", body.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let mut unset = hook_with(None, 8);
    let (status, _) = unset.post(delivery("push", "d-1", body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    unset.expect_nothing();
}

#[tokio::test]
async fn a_redelivery_is_acknowledged_and_ignored() {
    let mut h = hook();
    let body = push("refs/heads/main", MAIN_SHA, Some(MAIN_SHA));
    let (first, _) = h.post(delivery("push", "d-same", body.clone())).await;
    let (second, text) = h.post(delivery("push", "d-same", body)).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    assert_eq!((second, text.as_str()), (StatusCode::OK, "already seen"));
    h.expect_event();
    h.expect_nothing();
    assert_eq!(h.f.metrics.webhook_events(), 1);
    // In the store, so a restart still knows it.
    assert!(
        !h.f.store
            .first_seen("github:delivery:d-same", super::test_support::now())
            .unwrap()
    );
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let mut h = hook();
    let (status, text) = h
        .post(delivery("push", "d-json", b"{\"ref\": ".to_vec()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("malformed JSON: "), "{text}");
    h.expect_nothing();
}

#[tokio::test]
async fn bad_pushes_are_bad_requests_and_not_remembered() {
    let mut h = hook();
    let bad_sha = push("refs/heads/main", "not-a-sha", None);
    let (status, text) = h.post(delivery("push", "d-bad", bad_sha)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let no_ref = json_body(json!({"after": MAIN_SHA}));
    let (status, text) = h.post(delivery("push", "d-bad", no_ref)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.starts_with("malformed push: "), "{text}");
    let mut no_id = delivery("push", "", push("refs/heads/main", MAIN_SHA, None));
    no_id.id = None;
    let (status, text) = h.post(no_id).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery")
    );
    h.expect_nothing();
    let good = push("refs/heads/main", MAIN_SHA, None);
    let (status, _) = h.post(delivery("push", "d-bad", good)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    h.expect_event();
}

#[tokio::test]
async fn bodies_over_one_mib_are_refused() {
    let h = hook();
    let over = vec![b' '; BODY_LIMIT + 1];
    let (status, _) = h.post(delivery("push", "d-big", over.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A Content-Length that understates the body does not get it through…
    let mut lying = delivery("push", "d-big", over);
    lying.content_length = Some("10".into());
    let (status, _) = h.post(lying).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // …and one that announces too much is refused without reading.
    let mut announced = delivery("push", "d-big", b"{}".to_vec());
    announced.content_length = Some((BODY_LIMIT + 1).to_string());
    let (status, _) = h.post(announced).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_of_exactly_one_mib_is_read() {
    let mut h = hook();
    let frame = json_body(json!({"zen": ""}));
    let pad = BODY_LIMIT - frame.len();
    let body = json_body(json!({"zen": "z".repeat(pad)}));
    assert_eq!(body.len(), BODY_LIMIT);
    let (status, text) = h.post(delivery("ping", "d-mib", body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "pong"));
    h.expect_nothing();
}

#[tokio::test]
async fn ping_answers_pong() {
    let mut h = hook();
    let body = json_body(json!({"zen": "Keep it logically awesome.", "hook_id": 1}));
    let (status, text) = h.post(delivery("ping", "d-ping", body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "pong"));
    h.expect_nothing();
    assert_eq!(h.f.metrics.webhook_events(), 1);
}

#[tokio::test]
async fn other_events_branches_and_deletions_are_ignored() {
    let mut h = hook();
    let deleted_tag = json_body(json!({
        "ref": "refs/tags/v1", "after": ZEROS, "deleted": true, "created": false,
        "head_commit": null, "pusher": {"name": "p"}, "sender": {"login": "s"},
    }));
    let cases = [
        ("issues", json_body(json!({"action": "opened"}))),
        ("push", push("refs/heads/feature", MAIN_SHA, Some(MAIN_SHA))),
        ("push", push("refs/heads/main", ZEROS, None)),
        ("push", deleted_tag),
    ];
    for (i, (event, body)) in cases.into_iter().enumerate() {
        let id = format!("d-ignored-{i}");
        let (status, text) = h.post(delivery(event, &id, body)).await;
        assert_eq!((status, text.as_str()), (StatusCode::ACCEPTED, "ignored"));
    }
    h.expect_nothing();
}

#[tokio::test]
async fn a_full_inbox_is_unavailable_and_the_delivery_can_come_again() {
    let mut h = hook_with(Some(SECRET), 1);
    let body = push("refs/heads/main", MAIN_SHA, None);
    let (status, _) = h.post(delivery("push", "d-first", body.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = h.post(delivery("push", "d-busy", body.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    h.expect_event();
    h.expect_nothing();
    let (status, _) = h.post(delivery("push", "d-busy", body.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    h.expect_event();

    // A closed inbox (the engine stopped) likewise.
    drop(h.rx);
    let h = Hook {
        rx: mpsc::channel(1).1,
        ..h
    };
    let (status, _) = h.post(delivery("push", "d-closed", body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        h.f.store
            .first_seen("github:delivery:d-closed", super::test_support::now())
            .unwrap()
    );
}

#[tokio::test]
async fn the_git_forge_has_no_webhook() {
    let f = Fixture::new();
    let res = f
        .app()
        .oneshot(
            Request::post("/webhooks/github")
                .header("x-github-event", "ping")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_workflow_run_event_wakes_the_workflow_steps_and_nothing_else() {
    let mut h = hook();
    let body = json_body(json!({"action": "completed", "workflow_run": {"id": 7}}));
    let (status, text) = h.post(delivery("workflow_run", "w-1", body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::ACCEPTED, "accepted"));
    assert_eq!(*h.runs.borrow_and_update(), 1);
    assert!(h.rx.try_recv().is_err(), "the engine hears nothing");
}
