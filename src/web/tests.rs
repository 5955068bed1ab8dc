use std::sync::Arc;

use axum::http::StatusCode;
use chrono::TimeDelta;

use super::test_support::{Fixture, now};
use crate::domain::test_trains::{deployed, prod_failure};
use crate::engine::Snapshot;

#[tokio::test]
async fn api_status_has_the_documented_shape() {
    let f = Fixture::filled();
    let (status, ctype, body) = f.get("/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "train",
        "production_sha",
        "waiting",
        "next_departure",
        "frozen",
        "delivery",
        "recent_deploys",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    for key in [
        "id",
        "sha",
        "stage",
        "authors",
        "approved_by",
        "waiting_for",
        "stage_since",
        "url",
    ] {
        assert!(v["train"].get(key).is_some(), "missing train.{key} in {v}");
    }
    assert_eq!(v["train"]["id"], 4);
    assert_eq!(v["waiting"][0].as_str().unwrap().len(), 40);
    assert_eq!(v["production_sha"].as_str().unwrap().len(), 40);
    assert!(v.get("ready").is_none());
    assert_eq!(v["delivery"]["deploys"], 2);
    assert_eq!(v["delivery"]["stopped_before_production"], 1);
    assert_eq!(v["recent_deploys"][0]["train"], 2);
}

#[tokio::test]
async fn api_status_is_made_again_for_a_new_snapshot_or_a_new_deploy_only() {
    let f = Fixture::filled();
    let recent = |body: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["recent_deploys"][0]["train"]
            .clone()
    };
    let (_, _, first) = f.get("/api/status").await;
    assert_eq!(recent(&first), 2);
    // The same snapshot, the same minute, the same history: the same text.
    let (_, _, again) = f.get("/api/status").await;
    assert_eq!(again, first);
    // A deploy the snapshot does not know of yet still shows.
    let five = deployed(5, 300, 310, 320);
    f.save_deployed(&five);
    let (_, _, after_deploy) = f.get("/api/status").await;
    assert_eq!(recent(&after_deploy), 5);
    // A new snapshot is read afresh.
    f.snapshots.send_replace(Arc::new(Snapshot {
        ready: true,
        ..Snapshot::default()
    }));
    let (_, _, fresh) = f.get("/api/status").await;
    let v: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    assert!(v["train"].is_null(), "{v}");
}

#[tokio::test]
async fn api_status_train_is_null_without_a_train() {
    let f = Fixture::new();
    let (status, _, body) = f.get("/api/status").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["train"].is_null());
    assert!(v["frozen"].is_null());
    assert!(v["delivery"]["change_failure_rate"].is_null());
}

#[tokio::test]
async fn healthz_is_503_until_the_engine_publishes() {
    let f = Fixture::new();
    f.snapshots.send_replace(Arc::new(Snapshot::default()));
    let (status, _, _) = f.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    f.snapshots.send_replace(Arc::new(Snapshot {
        ready: true,
        ..Snapshot::default()
    }));
    let (status, _, _) = f.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_dashboard_is_complete_html_with_a_strict_csp() {
    let f = Fixture::filled();
    let res = tower::ServiceExt::oneshot(
        f.app(),
        axum::http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let (_, ctype, html) = f.get("/").await;
    assert!(ctype.starts_with("text/html"), "{ctype}");
    for needle in [
        "<main class=\"radiator\" data-refresh=\"5\">",
        "id=\"train\"",
        "href=\"/runs/train-4\"",
        "class=\"pipeline\"",
        "<li class=\"stage current\"><span class=\"stage-name\">approval</span>",
        "id=\"health\"",
        "id=\"nodes\"",
        "branch-1",
        "id=\"metrics\"",
        "Change failure rate",
        "id=\"deploys\"",
        "1 SHA waiting",
        "<script src=\"/assets/app.js\" defer></script>",
    ] {
        assert!(html.contains(needle), "missing {needle} in\n{html}");
    }
    // No inline scripts or styles: the CSP would block them.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains("style="));
}

#[tokio::test]
async fn a_script_in_a_commit_message_is_escaped_everywhere() {
    let f = Fixture::filled();
    for path in ["/", "/runs/train-1", "/audit"] {
        let (status, _, html) = f.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.contains("<script>alert"), "{path}: unescaped\n{html}");
        assert!(!html.contains("<b>"), "{path}: unescaped\n{html}");
    }
    let (_, _, run) = f.get("/runs/train-1").await;
    assert!(
        run.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{run}"
    );
    assert!(run.contains("Mallory &lt;b&gt;"));
    // A tag deploy waiting, its pusher escaped on the dashboard.
    let (_, _, page) = f.get("/").await;
    assert!(page.contains("1 tag deploy waiting"), "{page}");
    assert!(page.contains("v2.0.0 → production"), "{page}");
    assert!(page.contains("by Mallory &lt;b&gt;"), "{page}");
    // A locked environment is visibly locked, its reason escaped.
    assert!(
        page.contains("🔒 staging locked by bob: db &lt;migration&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn the_dashboard_shows_the_freeze_and_no_nodes_when_none_are_configured() {
    let mut f = Fixture::filled();
    Arc::get_mut(&mut f.settings)
        .unwrap()
        .branch_builds
        .nodes
        .clear();
    let mut snap = f.snapshots.borrow().as_ref().clone();
    snap.frozen = Some(crate::engine::FrozenView {
        by: "ops".into(),
        reason: Some("release <party>".into()),
    });
    f.snapshots.send_replace(Arc::new(snap));
    let (_, _, html) = f.get("/").await;
    assert!(html.contains("no branch nodes configured"), "{html}");
    assert!(
        html.contains("Departures frozen by ops: release &lt;party&gt;"),
        "{html}"
    );
}

#[tokio::test]
async fn a_run_page_shows_steps_with_their_logs() {
    let f = Fixture::filled();
    let log_dir = f.settings.bot.data_dir.join("logs").join("train-3");
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::write(
        log_dir.join("staging-acceptance-1.log"),
        "test 7 failed: <oops>\n",
    )
    .unwrap();
    let (status, _, html) = f.get("/runs/train-3").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "staging acceptance 1",
        "failed",
        "test 7 failed: &lt;oops&gt;",
        "exit status 1",
        "staging deploy 1",
    ] {
        assert!(html.contains(needle), "missing {needle} in\n{html}");
    }
    // Finished: no live refresh.
    assert!(!html.contains("data-refresh"));
    let (_, _, current) = f.get("/runs/train-4").await;
    assert!(current.contains("data-refresh=\"3\""));
}

/// Writes `bytes` as the log of train 3's failed acceptance step.
pub fn write_train_3_log(f: &Fixture, bytes: &[u8]) -> std::path::PathBuf {
    let log_dir = f.settings.bot.data_dir.join("logs").join("train-3");
    std::fs::create_dir_all(&log_dir).unwrap();
    let path = log_dir.join("staging-acceptance-1.log");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn bytes_that_are_not_utf8_show_as_replacement_characters() {
    let f = Fixture::filled();
    write_train_3_log(&f, b"before \xff\xfe bad bytes\nafter <ok>\n");
    let (status, _, html) = f.get("/runs/train-3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("before \u{FFFD}\u{FFFD} bad bytes\nafter &lt;ok&gt;"),
        "{html}"
    );
    assert!(html.contains("href=\"/runs/train-3/logs/staging-acceptance-1\""));
}

#[tokio::test]
async fn a_big_log_shows_its_last_256_kib_and_links_the_whole_file() {
    let f = Fixture::filled();
    let text: String = (0..60_000).map(|i| format!("line {i:06}\n")).collect();
    write_train_3_log(&f, text.as_bytes());
    let (_, _, html) = f.get("/runs/train-3").await;
    assert!(
        html.contains("line 059999\n</pre>"),
        "the real end is shown"
    );
    assert!(!html.contains("line 000000"), "the start is not");
    let shown = 256 * 1024 / 12 * 12;
    let hidden = text.len() - shown;
    assert!(
        html.contains(&format!("… the first {hidden} bytes are not shown")),
        "{}",
        &html[html.find("Steps").unwrap()..][..2000]
    );
    assert!(html.contains("<a href=\"/runs/train-3/logs/staging-acceptance-1\">whole log</a>"));

    let (status, ctype, whole) = f.get("/runs/train-3/logs/staging-acceptance-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "text/plain; charset=utf-8");
    assert_eq!(whole, text);
}

#[tokio::test]
async fn the_raw_log_route_serves_only_logs_of_that_run() {
    let f = Fixture::filled();
    let path = write_train_3_log(&f, b"mine\n");
    let data = &f.settings.bot.data_dir;
    std::fs::write(data.join("secret.log"), "TOP SECRET\n").unwrap();
    std::fs::write(data.join("logs").join("secret.log"), "TOP SECRET\n").unwrap();
    std::os::unix::fs::symlink(data.join("secret.log"), path.with_file_name("link.log")).unwrap();
    let (status, _, body) = f.get("/runs/train-3/logs/staging-acceptance-1").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "mine\n"));
    for bad in [
        "/runs/train-3/logs/..%2F..%2Fsecret",
        "/runs/train-3/logs/..%2Fsecret",
        "/runs/train-3/logs/..",
        "/runs/train-3/logs/link",
        "/runs/train-3/logs/staging-acceptance-1.log",
        "/runs/train-3/logs/staging-deploy-1",
        "/runs/train-99/logs/staging-acceptance-1",
        "/runs/..%2Ftrain-3/logs/staging-acceptance-1",
        "/runs/build-8/logs/checks-1",
    ] {
        let (status, _, body) = f.get(bad).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
        assert!(!body.contains("TOP SECRET"), "{bad}");
    }
}

#[tokio::test]
async fn a_build_page_shows_the_end_of_its_logs_and_links_them() {
    let f = Fixture::filled();
    let build = crate::domain::build::Build::new(
        7,
        "feature/x".parse().unwrap(),
        crate::domain::test_trains::sha(9),
        crate::domain::ids::ChatUser::new("bob"),
        now(),
    );
    f.store.save_build(&build).unwrap();
    let dir = f.settings.bot.data_dir.join("logs").join("build-7");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("checks-1.log"), b"lint ok \xff\n").unwrap();
    let (status, _, html) = f.get("/runs/build-7").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("lint ok \u{FFFD}\n</pre>"), "{html}");
    assert!(
        html.contains("href=\"/runs/build-7/logs/checks-1\""),
        "{html}"
    );
    let res = tower::ServiceExt::oneshot(
        f.app(),
        axum::http::Request::get("/runs/build-7/logs/checks-1")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        &body[..],
        b"lint ok \xff\n",
        "the raw log is the file as it is"
    );
}

#[tokio::test]
async fn unknown_runs_and_traversal_attempts_are_404() {
    let f = Fixture::filled();
    for path in [
        "/runs/train-99",
        "/runs/train-x",
        "/runs/..%2F..%2Fetc%2Fpasswd",
        "/runs/train-1%2F..%2F2",
        "/nope",
    ] {
        let (status, ctype, html) = f.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(ctype.starts_with("text/html"), "{path}");
        assert!(html.contains("not found"), "{path}: {html}");
    }
}

#[tokio::test]
async fn audit_is_newest_first_and_paged() {
    let f = Fixture::new();
    for i in 0..60 {
        f.store
            .audit(&crate::store::AuditEntry {
                at: now() + TimeDelta::seconds(i),
                user: crate::domain::ids::ChatUser::new("local"),
                action: format!("!freeze number {i}"),
                result: "accepted".into(),
            })
            .unwrap();
    }
    let (status, _, first) = f.get("/audit").await;
    assert_eq!(status, StatusCode::OK);
    let newest = first.find("number 59").unwrap();
    let older = first.find("number 58").unwrap();
    assert!(newest < older);
    assert!(first.contains("number 10<") && !first.contains("number 9<"));
    assert!(!first.contains(">newer<") && !first.contains(">newest<"));
    // The cursor is the key of the last entry shown.
    let next = link(&first, "older");
    assert!(next.starts_with("/audit?before="), "{next}");
    assert!(first.contains("href=\"/audit?oldest\""));

    let (status, _, second) = f.get(&next).await;
    assert_eq!(status, StatusCode::OK);
    assert!(second.contains("number 9<") && second.contains("number 0<"));
    assert!(!second.contains("number 10<"));
    assert!(!second.contains(">older<") && !second.contains(">oldest<"));
    let back = link(&second, "newer");
    assert!(back.starts_with("/audit?after="), "{back}");
    let (_, _, again) = f.get(&back).await;
    assert!(again.contains("number 59<") && again.contains("number 10<"));
    assert!(!again.contains("number 9<"));

    let (_, _, last) = f.get("/audit?oldest").await;
    assert!(last.contains("number 0<") && last.contains("number 49<"));
    assert!(!last.contains("number 50<") && !last.contains(">older<"));
    assert!(last.contains(">newer<") && last.contains("href=\"/audit\">newest<"));

    let (status, _, _) = f.get("/audit?before=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = f.get("/audit?before=1&after=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The href of the pager link labelled `label` (HTML-unescaped).
fn link(html: &str, label: &str) -> String {
    let end = html
        .find(&format!("\">{label}</a>"))
        .unwrap_or_else(|| panic!("no {label} link in {html}"));
    let start = html[..end].rfind("href=\"").unwrap() + "href=\"".len();
    html[start..end].replace("&amp;", "&")
}

/// Every line of the Prometheus text is a comment or `name{labels} value`.
pub fn assert_prometheus(text: &str) {
    let sample =
        regex::Regex::new(r#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|NaN|\+Inf|-Inf)$"#)
            .unwrap();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.insert(parts.next().unwrap().to_string());
            assert!(
                matches!(parts.next(), Some("counter" | "gauge" | "histogram")),
                "{line}"
            );
        } else if !line.starts_with("# HELP ") {
            assert!(sample.is_match(line), "bad sample line: {line}");
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                typed.contains(name) || typed.contains(base),
                "no TYPE for {name}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let f = Fixture::filled();
    f.metrics.chat_event();
    f.metrics
        .step_finished("staging", "deploy", TimeDelta::seconds(3), true);
    f.metrics
        .step_finished("staging", "acceptance", TimeDelta::seconds(40), false);
    f.metrics.train_ended(&deployed(9, 0, 10, 20));
    f.metrics.train_ended(&prod_failure(10, 0, 10, 20));
    let (status, ctype, text) = f.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert_prometheus(&text);
    for line in [
        "trainbot_trains{outcome=\"deployed\"} 2",
        "trainbot_trains{outcome=\"failed\"} 1",
        "trainbot_trains{outcome=\"running\"} 1",
        "trainbot_trains_ended_total{outcome=\"failed\"} 1",
        "trainbot_production_deploys_total 2",
        "trainbot_step_duration_seconds_bucket{env=\"staging\",phase=\"deploy\",le=\"5\"} 1",
        "trainbot_step_duration_seconds_bucket{env=\"staging\",phase=\"acceptance\",le=\"30\"} 0",
        "trainbot_step_duration_seconds_count{env=\"staging\",phase=\"acceptance\"} 1",
        "trainbot_steps_total{env=\"staging\",phase=\"acceptance\",result=\"failed\"} 1",
        "trainbot_approval_wait_seconds_count 2",
        "trainbot_approval_waiting_seconds 5640",
        "trainbot_allocated_shas_waiting 1",
        "trainbot_branch_nodes{state=\"idle\"} 2",
        "trainbot_chat_events_total 1",
        "trainbot_webhook_events_total 0",
        "trainbot_errors_total{kind=\"snapshot\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn assets_are_served_by_the_binary() {
    let f = Fixture::new();
    let (status, ctype, js) = f.get("/assets/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/javascript"));
    assert!(js.contains("data-refresh"));
    let (status, ctype, css) = f.get("/assets/app.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/css"));
    assert!(css.contains(".pipeline"));
}
