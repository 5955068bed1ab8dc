//! The web password and the Host check over the real routers, one pipeline
//! and several, and the webhook-only router of `bot.webhook_listen`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::test_support::Fixture;
use super::{Webhook, router, router_for, webhook_router_for};
use crate::domain::test_trains::train;

const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "webhook-secret-for-access";

/// Every route of a single pipeline's site but health and the webhook,
/// with a path that exists (so an open route would answer 200).
const SINGLE: &[&str] = &[
    "/",
    "/runs/train-1",
    "/runs/train-1/logs/0",
    "/audit",
    "/audit?page=2",
    "/api/status",
    "/metrics",
    "/no-such-page",
    "/webhooks/github",
];

/// The same for two pipelines, `web` and `api`.
const SEVERAL: &[&str] = &[
    "/",
    "/api/status",
    "/metrics",
    "/no-such-page",
    "/webhooks/github",
    "/p/web",
    "/p/web/",
    "/p/web/runs/train-1",
    "/p/web/audit",
    "/p/web/api/status",
    "/p/web/metrics",
    "/p/api/",
    "/p/api/runs/train-1",
];

fn protected(f: &mut Fixture, password: Option<&str>) {
    let mut settings = (*f.settings).clone();
    settings.web.password = password.map(|p| p.to_string().into());
    settings.bot.root_url = "https://trainbot.example.com".into();
    f.settings = Arc::new(settings);
}

fn fixture(password: Option<&str>) -> Fixture {
    let mut f = Fixture::new();
    f.store.save_train(&train(1, 0)).unwrap();
    protected(&mut f, password);
    f
}

fn webhook() -> (Webhook, mpsc::Receiver<crate::engine::Event>) {
    let (inbox, rx) = mpsc::channel(8);
    let hook = Webhook {
        secret: Some(Arc::from(SECRET.as_bytes())),
        main_branch: "main".into(),
        repository: "acme/web".into(),
        inbox,
        run_events: None,
    };
    (hook, rx)
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn send(app: &Router, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(res.into_body(), 8 << 20)
        .await
        .unwrap();
    Answer {
        status,
        challenge,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(app: &Router, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(app, "GET", path, headers).await
}

fn basic(user: &str, password: &str) -> String {
    let creds = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

/// A ping for acme/web signed with [`SECRET`].
async fn ping(app: &Router, host: &str) -> Answer {
    let body = br#"{"zen":"Keep it logically awesome.","repository":{"full_name":"acme/web"}}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let req = Request::post("/webhooks/github")
        .header("host", host)
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", format!("ping-{host}"))
        .header("x-hub-signature-256", sig)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        challenge: None,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn every_route_needs_the_password(app: &Router, paths: &[&str]) {
    for path in paths {
        let a = get(app, path, &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.body);
        assert_eq!(
            a.challenge.as_deref(),
            Some("Basic realm=\"trainbot\", charset=\"UTF-8\""),
            "{path}"
        );
        let wrong = basic("admin", "wrong password");
        let a = get(app, path, &[("authorization", &wrong)]).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{path} with a wrong one"
        );
        let prefix = format!("Bearer {PASSWORD}x");
        let a = get(app, path, &[("authorization", &prefix)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path} with more");
        let short = &PASSWORD[..PASSWORD.len() - 1];
        let a = get(app, path, &[("authorization", &format!("Bearer {short}"))]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path} with less");

        for auth in [
            basic("anyone", PASSWORD),
            basic("", PASSWORD),
            format!("Bearer {PASSWORD}"),
        ] {
            let a = get(app, path, &[("authorization", &auth)]).await;
            assert_ne!(a.status, StatusCode::UNAUTHORIZED, "{path} with {auth}");
            assert_ne!(a.status, StatusCode::MISDIRECTED_REQUEST, "{path}");
        }
    }
    for open in ["/healthz", "/assets/app.css", "/assets/app.js"] {
        let a = get(app, open, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{open}: {}", a.body);
    }
}

#[tokio::test]
async fn a_single_pipeline_asks_for_the_password_everywhere_but_health_and_the_webhook() {
    let f = fixture(Some(PASSWORD));
    let (hook, _rx) = webhook();
    let app = router(f.state("web", Some(hook)));
    every_route_needs_the_password(&app, SINGLE).await;
    // A page that exists answers once the password is given.
    let a = get(
        &app,
        "/api/status",
        &[("authorization", &basic("u", PASSWORD))],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("\"train\""), "{}", a.body);
    // The webhook needs its signature, not the password.
    let a = ping(&app, "trainbot.example.com").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("pong"), "{}", a.body);
}

#[tokio::test]
async fn several_pipelines_ask_for_the_password_everywhere_but_health_and_the_webhook() {
    let (web, api) = (fixture(Some(PASSWORD)), fixture(Some(PASSWORD)));
    let (hook, _rx) = webhook();
    let app = router_for(vec![web.state("web", Some(hook)), api.state("api", None)]);
    every_route_needs_the_password(&app, SEVERAL).await;
    for open in ["/p/web/healthz", "/p/api/healthz"] {
        assert_eq!(get(&app, open, &[]).await.status, StatusCode::OK, "{open}");
    }
    let a = get(&app, "/p/api/", &[("authorization", &basic("x", PASSWORD))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = ping(&app, "trainbot.example.com").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn without_a_password_the_pages_are_open() {
    let f = fixture(None);
    let app = router(f.state("web", None));
    for path in ["/", "/api/status", "/metrics", "/audit", "/runs/train-1"] {
        let a = get(&app, path, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
}

#[tokio::test]
async fn a_host_the_bot_does_not_answer_to_is_misdirected() {
    for password in [None, Some(PASSWORD)] {
        let f = fixture(password);
        let (hook, _rx) = webhook();
        let app = router(f.state("web", Some(hook)));
        let auth = format!("Bearer {PASSWORD}");
        for host in [
            "trainbot.example.com",
            "TrainBot.Example.com:443",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.168.0.7",
        ] {
            let a = get(
                &app,
                "/api/status",
                &[("host", host), ("authorization", &auth)],
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{host}: {}", a.body);
        }
        for host in ["evil.example", "trainbot.example.com.evil.example:8080"] {
            let a = get(
                &app,
                "/api/status",
                &[("host", host), ("authorization", &auth)],
            )
            .await;
            assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
            let a = get(&app, "/", &[("host", host)]).await;
            assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
            // Health and the signed webhook answer whatever the name.
            let a = get(&app, "/healthz", &[("host", host)]).await;
            assert_eq!(a.status, StatusCode::OK, "{host}");
            let a = ping(&app, host).await;
            assert_eq!(a.status, StatusCode::OK, "{host}: {}", a.body);
        }
    }
    let (web, api) = (fixture(None), fixture(None));
    let app = router_for(vec![web.state("web", None), api.state("api", None)]);
    let a = get(&app, "/p/web/", &[("host", "evil.example")]).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
    let a = get(&app, "/p/web/", &[("host", "trainbot.example.com")]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn the_webhook_listener_serves_the_webhook_alone() {
    for several in [false, true] {
        let (web, api) = (fixture(Some(PASSWORD)), fixture(Some(PASSWORD)));
        let (hook, _rx) = webhook();
        let mut webs = vec![web.state("web", Some(hook))];
        if several {
            webs.push(api.state("api", None));
        }
        let app = webhook_router_for(webs);
        let auth = format!("Bearer {PASSWORD}");
        for path in [
            "/",
            "/api/status",
            "/metrics",
            "/healthz",
            "/audit",
            "/p/web/",
            "/assets/app.css",
        ] {
            let a = get(&app, path, &[("authorization", &auth)]).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
        }
        let a = ping(&app, "hooks.example.net").await;
        assert_eq!(a.status, StatusCode::OK, "several: {several}: {}", a.body);
        assert!(a.body.contains("pong"), "{}", a.body);
        let a = send(&app, "POST", "/webhooks/github", &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "unsigned: {}", a.body);
        assert!(a.challenge.is_none());
    }
}
