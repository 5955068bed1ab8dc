//! `[forge.github] checks = true`: a `!bb` is a `trainbot/branch` check run
//! on GitHub — queued or in progress, then completed with its conclusion,
//! a title, a summary of the steps (and the failing step's last lines), and
//! the run page as `details_url`; `statuses = false` sets no commit status.

use serde_json::Value;

use crate::Github;
use crate::fake_github::CheckRunCall;
use crate::support::{BotConfig, short};

const NAME: &str = "trainbot/branch";

/// `feature/x` off main with one commit of Bob's; its head.
fn feature_branch(gh: &Github) -> String {
    gh.fake.branch("feature/x", &gh.fake.head("main"));
    gh.fake.commit(
        "feature/x",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Try a blue widget",
    )
}

/// Waits for the check run to be completed; every call made to it.
fn completed_run(gh: &Github) -> Vec<CheckRunCall> {
    gh.fake.wait_for("a completed check run", |s| {
        s.check_runs
            .iter()
            .any(|c| c.body["status"] == "completed")
            .then(|| s.check_runs.clone())
    })
}

fn statuses(calls: &[CheckRunCall]) -> Vec<&str> {
    calls
        .iter()
        .map(|c| c.body["status"].as_str().unwrap_or("?"))
        .collect()
}

fn summary(call: &CheckRunCall) -> &str {
    call.body["output"]["summary"].as_str().unwrap_or_default()
}

#[test]
fn a_passing_branch_build_is_a_successful_check_run_beside_the_status() {
    let mut gh = Github::start_app(BotConfig {
        branch_builds: true,
        github_keys: "checks = true".into(),
        ..BotConfig::default()
    });
    let sha = feature_branch(&gh);
    gh.bot.ask("@bob !bb feature/x", "🔧 build 1 feature/x");
    gh.bot.expect(&format!(
        "✅ build 1 feature/x ({}): good to merge",
        short(&sha)
    ));
    let calls = completed_run(&gh);
    let url = format!("http://127.0.0.1:{}/runs/build-1", gh.port);
    // Created once on the head, then updated: one run, not one per stage.
    assert_eq!(calls[0].method, "POST", "{calls:?}");
    assert_eq!(calls[0].body["name"], NAME);
    assert_eq!(calls[0].body["head_sha"], sha.as_str());
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.method == "PATCH" && c.id == calls[0].id)
    );
    assert_eq!(statuses(&calls), ["in_progress", "completed"], "{calls:?}");
    for c in &calls {
        assert_eq!(c.body["details_url"], url.as_str(), "{c:?}");
        assert_eq!(c.body["name"], NAME);
    }
    let done = calls.last().unwrap();
    assert_eq!(done.body["conclusion"], "success");
    assert_eq!(done.body["output"]["title"], "Build 1: good to merge");
    let summary = summary(done);
    for step in [
        "- checks 1: ✅ passed",
        "- deploy 1: ✅ passed",
        "- smoke 1: ✅ passed",
    ] {
        assert!(summary.contains(step), "{step} not in {summary}");
    }
    assert!(!summary.contains("Last lines"), "{summary}");
    // statuses = true (the default): the commit status is still set.
    gh.fake.wait_for_status(&sha, NAME, "success");
    gh.bot.stop();
}

#[test]
fn a_failing_branch_build_is_a_failed_check_run_with_the_last_lines_and_no_status() {
    let branch_builds = r#"[branch_builds]
nodes = ["n1"]
node_url = "http://{node}.test"
checks = [{ run = "echo compiling the widget; echo 'error: the widget is not blue'; exit 1" }]
deploy = [{ run = "true" }]
smoke = [{ run = "true" }]
"#;
    let mut gh = Github::start_app(BotConfig {
        github_keys: "checks = true\nstatuses = false".into(),
        extra: branch_builds.into(),
        ..BotConfig::default()
    });
    let sha = feature_branch(&gh);
    gh.bot.ask("@bob !bb feature/x", "🔧 build 1 feature/x");
    gh.bot.expect(&format!(
        "❌ build 1 feature/x ({}): failed in checks 1: exited with code 1",
        short(&sha)
    ));
    let calls = completed_run(&gh);
    assert_eq!(statuses(&calls), ["in_progress", "completed"], "{calls:?}");
    let done = calls.last().unwrap();
    assert_eq!(done.method, "PATCH");
    assert_eq!(done.body["conclusion"], "failure");
    assert_eq!(
        done.body["output"]["title"],
        "Build 1: checks 1 failed: exited with code 1"
    );
    let summary = summary(done);
    for part in [
        "- checks 1: ❌ failed: exited with code 1",
        "- deploy 1: not run",
        "- smoke 1: not run",
        "Last lines of checks 1:",
        "error: the widget is not blue",
    ] {
        assert!(summary.contains(part), "{part:?} not in {summary}");
    }
    assert!(
        done.body["details_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/runs/build-1")),
        "{done:?}"
    );
    // statuses = false: no commit status at all.
    let sent: Vec<Value> = gh
        .fake
        .statuses()
        .iter()
        .map(|s| Value::String(s.context.clone()))
        .collect();
    assert!(sent.is_empty(), "{sent:?}");
    gh.bot.stop();
}

#[test]
fn a_queued_branch_build_is_a_queued_check_run_until_a_node_frees() {
    let mut gh = Github::start_app(BotConfig {
        branch_builds: true,
        blocking_branch_deploy: true,
        github_keys: "checks = true\nstatuses = false".into(),
        ..BotConfig::default()
    });
    let main = gh.fake.head("main");
    let mut shas = Vec::new();
    for br in ["a", "b", "c"] {
        gh.fake.branch(br, &main);
        shas.push(gh.fake.commit(
            br,
            "Bob",
            "bob@example.com",
            Some("bob"),
            &format!("work on {br}"),
        ));
    }
    gh.bot.ask("!bb a", "🔧 build 1 a");
    gh.bot.ask("!bb b", "🔧 build 2 b");
    gh.bot.ask("!bb c", "⏳ build 3 c");
    let of_c = |s: &crate::fake_github::State| -> Option<Vec<CheckRunCall>> {
        let first = s
            .check_runs
            .iter()
            .find(|c| c.body["head_sha"] == shas[2].as_str())?;
        Some(
            s.check_runs
                .iter()
                .filter(|c| c.id == first.id)
                .cloned()
                .collect(),
        )
    };
    let queued = gh.fake.wait_for("build 3's check run", of_c);
    assert_eq!(queued[0].method, "POST");
    assert_eq!(queued[0].body["status"], "queued");
    assert_eq!(queued[0].body["output"]["title"], "Build 3 queued");
    for br in ["a", "b", "c"] {
        gh.sandbox.touch(&format!("release-{br}"));
    }
    gh.bot
        .expect_each(&["✅ build 1 a", "✅ build 2 b", "✅ build 3 c"]);
    let calls = gh.fake.wait_for("build 3's check run completed", |s| {
        of_c(s).filter(|c| c.iter().any(|c| c.body["status"] == "completed"))
    });
    assert_eq!(
        statuses(&calls),
        ["queued", "in_progress", "completed"],
        "{calls:?}"
    );
    assert_eq!(calls.last().unwrap().body["conclusion"], "success");
    assert!(gh.fake.statuses().is_empty());
    gh.bot.stop();
}

#[test]
fn a_token_cannot_publish_check_runs_and_the_chat_says_why() {
    // GitHub takes check runs from apps only; the commit status still works.
    let mut gh = Github::start(BotConfig {
        branch_builds: true,
        github_keys: "checks = true".into(),
        ..BotConfig::default()
    });
    let sha = feature_branch(&gh);
    gh.bot.send("@bob !bb feature/x");
    gh.bot.expect_each(&[
        "🔧 build 1 feature/x",
        "GitHub refused: the token may not do this on acme/web (403: You must authenticate via a GitHub App.)",
    ]);
    gh.bot.expect("good to merge");
    gh.fake.wait_for_status(&sha, NAME, "success");
    assert!(gh.fake.check_runs().is_empty());
    assert_eq!(gh.bot.said("GitHub refused").len(), 1);
    gh.bot.stop();
}
