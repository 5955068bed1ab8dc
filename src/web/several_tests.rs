//! Two pipelines behind `router_for`: `web` (the filled fixture, train 4
//! awaiting approval) and `api` (one train of its own, numbered 1 too).

use std::collections::HashMap;

use axum::Router;
use axum::http::StatusCode;

use super::router_for;
use super::test_support::{Fixture, get};
use super::tests::{assert_prometheus, write_train_3_log};
use crate::domain::test_trains::train;

const API_SUBJECT: &str = "api-only change";

struct Two {
    web: Fixture,
    api: Fixture,
    app: Router,
}

fn api_fixture() -> Fixture {
    let api = Fixture::new();
    let mut one = train(1, 0);
    one.commits[0].subject = API_SUBJECT.into();
    api.store.save_train(&one).unwrap();
    api
}

fn two_named(web_name: &str) -> Two {
    let web = Fixture::filled();
    let api = api_fixture();
    let app = router_for(vec![web.state(web_name, None), api.state("api", None)]);
    Two { web, api, app }
}

fn two() -> Two {
    two_named("web")
}

/// Every `href="…"` of a page, as written.
fn hrefs(html: &str) -> Vec<&str> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect()
}

#[tokio::test]
async fn the_overview_links_every_pipeline_and_shows_its_train() {
    let t = two();
    let (status, _, html) = get(&t.app, "/").await;
    assert_eq!(status, StatusCode::OK);
    for link in ["href=\"/p/web/\"", "href=\"/p/api/\""] {
        assert!(html.contains(link), "no {link} in {html}");
    }
    assert!(html.contains(">web#4</a>"), "{html}");
    assert!(html.contains("href=\"/p/web/runs/train-4\""), "{html}");
    assert!(html.contains("awaiting approval"), "{html}");
    // web's production SHA, short; api has none.
    let prod = &t.web.snapshots.borrow().production_sha.clone().unwrap()[..7];
    assert!(html.contains(prod), "{html}");
    assert!(html.contains("nothing in production yet"), "{html}");
    assert!(html.contains("last deploy "), "{html}");
    assert!(html.contains("data-refresh=\"5\""), "{html}");
    assert!(html.contains("healthy"), "{html}");
}

#[tokio::test]
async fn the_overview_escapes_pipeline_names() {
    let t = two_named("w<b>&x");
    let (status, _, html) = get(&t.app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("w<b>"), "{html}");
    assert!(html.contains(">w&lt;b&gt;&amp;x</a>"), "{html}");
    assert!(html.contains("href=\"/p/w&lt;b&gt;&amp;x/\""), "{html}");
}

#[tokio::test]
async fn a_pipeline_page_links_only_within_its_pipeline() {
    let t = two();
    write_train_3_log(&t.web, b"boom\n");
    for i in 0..60 {
        t.web
            .store
            .audit(&crate::store::AuditEntry {
                at: super::test_support::now(),
                user: crate::domain::ids::ChatUser::new("local"),
                action: format!("!freeze number {i}"),
                result: "accepted".into(),
            })
            .unwrap();
    }
    let pages = [
        "/p/web/",
        "/p/web/runs/train-4",
        "/p/web/runs/train-3",
        "/p/web/audit",
        "/p/web/audit?oldest",
    ];
    for path in pages {
        let (status, _, html) = get(&t.app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let links = hrefs(&html);
        assert!(links.len() > 4, "{path}: {links:?}");
        for href in links {
            let ok = href.starts_with("/p/web/") || href.starts_with("/assets/") || href == "/";
            assert!(ok, "{path} links {href}");
        }
    }
    let (_, _, html) = get(&t.app, "/p/web/").await;
    assert!(html.contains("<title>web#4 awaiting approval"), "{html}");
    assert!(html.contains("href=\"/p/web/runs/train-2\""), "{html}");
    assert!(html.contains("href=\"/p/web/audit\""), "{html}");
    let (_, _, html) = get(&t.app, "/p/web/runs/train-3").await;
    let raw = "/p/web/runs/train-3/logs/staging-acceptance-1";
    assert!(html.contains(&format!("href=\"{raw}\"")), "{html}");
    let (status, _, log) = get(&t.app, raw).await;
    assert_eq!((status, log.as_str()), (StatusCode::OK, "boom\n"));
    let (_, _, html) = get(&t.app, "/p/web/audit").await;
    assert!(html.contains("href=\"/p/web/audit?before="), "{html}");
    assert!(html.contains("href=\"/p/web/audit?oldest\""), "{html}");
    let (status, _, _) = get(&t.app, "/p/web").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
}

#[tokio::test]
async fn each_pipeline_serves_its_own_runs_and_errors() {
    let t = two();
    let (status, _, html) = get(&t.app, "/p/api/runs/train-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(API_SUBJECT), "{html}");
    assert!(html.contains("api#1"), "{html}");
    let (status, _, html) = get(&t.app, "/p/web/runs/train-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(API_SUBJECT), "{html}");
    // Train 4 is web's alone; its 404 links back to api's radiator.
    let (status, _, html) = get(&t.app, "/p/api/runs/train-4").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("href=\"/p/api/\">back to the radiator"),
        "{html}"
    );
    let (status, _, _) = get(&t.app, "/p/nope/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&t.app, "/audit").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, css) = get(&t.app, "/assets/app.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains(".pipeline"));
}

#[tokio::test]
async fn api_status_is_by_pipeline_among_several() {
    let t = two();
    let (status, ctype, body) = get(&t.app, "/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let all = v["pipelines"].as_object().unwrap();
    assert_eq!(all.len(), 2, "{v}");
    assert_eq!(v["pipelines"]["web"]["train"]["id"], 4);
    assert!(v["pipelines"]["api"]["train"].is_null(), "{v}");
    let (_, _, alone) = t.web.get("/api/status").await;
    let alone: serde_json::Value = serde_json::from_str(&alone).unwrap();
    assert!(alone.get("pipelines").is_none(), "{alone}");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v["pipelines"]["web"]), keys(&alone));
    assert_eq!(keys(&v["pipelines"]["api"]), keys(&alone));
    let (_, _, api_page) = get(&t.app, "/p/api/api/status").await;
    let api_alone: serde_json::Value = serde_json::from_str(&api_page).unwrap();
    assert_eq!(api_alone, v["pipelines"]["api"]);
}

#[tokio::test]
async fn one_pipeline_through_router_for_is_the_single_site() {
    let web = Fixture::filled();
    let app = router_for(vec![web.state("web", None)]);
    let (_, _, body) = get(&app, "/api/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("pipelines").is_none(), "{v}");
    assert_eq!(v["train"]["id"], 4);
    let (status, _, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/runs/train-4\""), "{html}");
    assert!(html.contains("<title>#4 awaiting approval"), "{html}");
}

#[tokio::test]
async fn metrics_are_labelled_by_pipeline_with_one_type_per_family() {
    let t = two();
    t.api.metrics.chat_event();
    let (status, ctype, text) = get(&t.app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert_prometheus(&text);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with('#')) {
        *seen.entry(line).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "repeated: {repeated:?}");
    for line in [
        "trainbot_trains{pipeline=\"web\",outcome=\"deployed\"} 2",
        "trainbot_trains{pipeline=\"api\",outcome=\"running\"} 1",
        "trainbot_production_deploys_total{pipeline=\"web\"} 2",
        "trainbot_production_deploys_total{pipeline=\"api\"} 0",
        "trainbot_chat_events_total{pipeline=\"api\"} 1",
        "trainbot_chat_events_total{pipeline=\"web\"} 0",
        "trainbot_approval_wait_seconds_count{pipeline=\"web\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    let samples = text.lines().filter(|l| !l.starts_with('#'));
    for line in samples {
        assert!(line.contains("{pipeline=\""), "unlabelled: {line}");
    }
    // A family's samples follow its TYPE line, not another family's.
    let web_at = text.find("trainbot_frozen{pipeline=\"web\"}").unwrap();
    let api_at = text.find("trainbot_frozen{pipeline=\"api\"}").unwrap();
    let next_family = text[web_at..].find("# HELP").unwrap() + web_at;
    assert!(api_at < next_family, "{text}");
}

#[tokio::test]
async fn healthz_fails_naming_the_pipeline_whose_engine_stopped() {
    let t = two();
    let (status, _, body) = get(&t.app, "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    let Two { web, api, app } = t;
    drop(api.snapshots);
    let (status, _, body) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("pipeline api"), "{body}");
    let (_, _, html) = get(&app, "/").await;
    assert!(html.contains("engine not running"), "{html}");
    drop(web);
}
