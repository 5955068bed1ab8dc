//! One `/webhooks/github` for two pipelines with their own repositories,
//! secrets, inboxes and delivery stores.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::test_support::Fixture;
use super::{Webhook, router_for};
use crate::engine::Event;

const WEB_SECRET: &str = "web-secret";
const API_SECRET: &str = "api-secret";
const SHA: &str = "1111111111111111111111111111111111111111";

struct Hooks {
    _web: Fixture,
    _api: Fixture,
    app: Router,
    web: mpsc::Receiver<Event>,
    api: mpsc::Receiver<Event>,
}

fn webhook(secret: &str, repository: &str) -> (Webhook, mpsc::Receiver<Event>) {
    let (inbox, rx) = mpsc::channel(8);
    let hook = Webhook {
        secret: Some(Arc::from(secret.as_bytes())),
        main_branch: "main".into(),
        repository: repository.into(),
        inbox,
        run_events: None,
    };
    (hook, rx)
}

fn hooks() -> Hooks {
    let (web_f, api_f) = (Fixture::new(), Fixture::new());
    let (web_hook, web) = webhook(WEB_SECRET, "acme/web");
    let (api_hook, api) = webhook(API_SECRET, "Acme/API");
    let app = router_for(vec![
        web_f.state("web", Some(web_hook)),
        api_f.state("api", Some(api_hook)),
    ]);
    Hooks {
        _web: web_f,
        _api: api_f,
        app,
        web,
        api,
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn push_from(repository: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "after": SHA,
        "repository": {"full_name": repository},
    }))
    .unwrap()
}

impl Hooks {
    async fn post(
        &self,
        event: &str,
        id: &str,
        secret: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let req = Request::post("/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", id)
            .header("x-hub-signature-256", sign(secret, &body))
            .body(Body::from(body))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn quiet(&mut self) {
        assert!(self.web.try_recv().is_err(), "web got an event");
        assert!(self.api.try_recv().is_err(), "api got an event");
    }
}

fn main_pushed(ev: Event) {
    assert!(
        matches!(&ev, Event::MainPushed(s) if s.as_str() == SHA),
        "{ev:?}"
    );
}

#[tokio::test]
async fn a_push_goes_to_the_pipeline_of_its_repository() {
    let mut h = hooks();
    let (status, _) = h
        .post("push", "d1", WEB_SECRET, push_from("acme/web"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    main_pushed(h.web.try_recv().unwrap());
    h.quiet();
    // Repository names compare case-insensitively, as on GitHub.
    let (status, _) = h
        .post("push", "d2", API_SECRET, push_from("acme/api"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    main_pushed(h.api.try_recv().unwrap());
    h.quiet();
}

#[tokio::test]
async fn another_pipelines_secret_does_not_sign_for_a_repository() {
    let mut h = hooks();
    let (status, body) = h
        .post("push", "d1", API_SECRET, push_from("acme/web"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = h
        .post("push", "d2", WEB_SECRET, push_from("acme/api"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.post("push", "d3", "guess", push_from("acme/web")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    h.quiet();
    // Refused deliveries are not remembered: signed properly, they act.
    let (status, _) = h
        .post("push", "d1", WEB_SECRET, push_from("acme/web"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    main_pushed(h.web.try_recv().unwrap());
}

#[tokio::test]
async fn a_repository_no_pipeline_serves_is_acknowledged_and_ignored() {
    let mut h = hooks();
    let (status, body) = h
        .post("push", "d1", WEB_SECRET, push_from("acme/other"))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, "ignored\n"));
    let (status, _) = h.post("push", "d2", "guess", push_from("acme/other")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    h.quiet();
}

#[tokio::test]
async fn each_pipeline_remembers_its_own_deliveries() {
    let mut h = hooks();
    let (status, _) = h
        .post("push", "same", WEB_SECRET, push_from("acme/web"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = h
        .post("push", "same", WEB_SECRET, push_from("acme/web"))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "already seen\n"));
    main_pushed(h.web.try_recv().unwrap());
    let (status, _) = h
        .post("push", "same", API_SECRET, push_from("acme/api"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    main_pushed(h.api.try_recv().unwrap());
    h.quiet();
}

#[tokio::test]
async fn pings_and_malformed_bodies_answer_as_for_one_pipeline() {
    let mut h = hooks();
    let ping = serde_json::to_vec(&json!({"zen": "z", "repository": {"full_name": "acme/api"}}));
    let (status, body) = h.post("ping", "p1", API_SECRET, ping.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "pong\n"));
    // An organisation's ping names no repository.
    let org = serde_json::to_vec(&json!({"zen": "z"})).unwrap();
    let (status, _) = h.post("ping", "p2", WEB_SECRET, org).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .post("push", "m1", WEB_SECRET, b"{not json".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.post("push", "m2", "guess", b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    h.quiet();
}

#[tokio::test]
async fn bodies_over_one_mib_are_refused_at_the_root() {
    let h = hooks();
    let mut big = push_from("acme/web");
    big.resize(super::webhook::BODY_LIMIT + 1, b' ');
    let (status, _) = h.post("push", "big", WEB_SECRET, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
