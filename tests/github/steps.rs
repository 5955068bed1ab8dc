//! Step kinds and branch builds on GitHub: `!bb` as the `trainbot/branch`
//! commit status, tag deploys brought by the push webhook, workflow steps
//! followed to their conclusion, http steps retried, and GitHub's 5xx
//! answers retried by the client.

use serde_json::json;

use crate::fake_github::{FakeGithub, Status};
use crate::support::{BotConfig, GITHUB_TOKEN_ENV, WEBHOOK_SECRET_ENV, short};
use crate::{Github, SECRET, TOKEN};

const CONTEXT: &str = "trainbot/branch";

fn start_on_default(fake: FakeGithub, config: BotConfig) -> Github {
    let env = [(GITHUB_TOKEN_ENV, TOKEN), (WEBHOOK_SECRET_ENV, SECRET)];
    Github::start_on(fake, config, &env)
}

/// A bot whose production deploy is `deploy` (an inline TOML array).
fn start_with_production(deploy: String) -> Github {
    Github::start(BotConfig {
        production_deploy: Some(deploy),
        ..BotConfig::default()
    })
}

/// Bob's commit on main, allocated.
fn bobs_commit(gh: &mut Github) -> String {
    let sha = gh.fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make the widget blue",
    );
    gh.bot.expect_allocated(&sha);
    sha
}

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

/// The `trainbot/branch` statuses of `sha`, in the order they were set.
fn branch_statuses(gh: &Github, sha: &str) -> Vec<Status> {
    gh.fake
        .statuses()
        .into_iter()
        .filter(|s| s.sha == sha && s.context == CONTEXT)
        .collect()
}

fn states(statuses: &[Status]) -> Vec<&str> {
    statuses.iter().map(|s| s.state.as_str()).collect()
}

fn build_url(gh: &Github) -> String {
    format!("http://127.0.0.1:{}/runs/build-1", gh.port)
}

/// Waits for the deployment to `env` to get the status `state`.
fn wait_for_deployment_state(gh: &Github, env: &str, state: &str) {
    let what = format!("a deployment to {env} with status {state}");
    gh.fake.wait_for(&what, |s| {
        s.deployments
            .iter()
            .filter(|d| d.environment == env)
            .find(|d| {
                s.deployment_statuses
                    .iter()
                    .any(|st| st.deployment_id == d.id && st.state == state)
            })
            .map(drop)
    });
}

/// The step log of train 1's production deploy.
fn production_log(gh: &Github) -> String {
    let path = gh
        .sandbox
        .path()
        .join("data/logs/train-1/production-deploy-1.log");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn a_passing_branch_build_sets_pending_then_success() {
    let mut gh = Github::start(BotConfig {
        branch_builds: true,
        ..BotConfig::default()
    });
    let sha = feature_branch(&gh);
    gh.bot.ask("@bob !bb feature/x", "🔧 build 1 feature/x");
    gh.bot.expect(&format!(
        "✅ build 1 feature/x ({}): good to merge",
        short(&sha)
    ));
    gh.fake.wait_for_status(&sha, CONTEXT, "success");
    let statuses = branch_statuses(&gh, &sha);
    assert_eq!(states(&statuses), ["pending", "success"], "{statuses:?}");
    assert_eq!(statuses[0].description, "build 1 on n1");
    assert_eq!(statuses[1].description, "good to merge");
    for s in &statuses {
        assert_eq!(s.target_url, build_url(&gh), "{s:?}");
    }
    gh.bot.stop();
}

#[test]
fn a_queued_branch_build_is_pending_on_github_until_a_node_frees() {
    let mut gh = Github::start(BotConfig {
        branch_builds: true,
        blocking_branch_deploy: true,
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
    let queued = gh.fake.wait_for_status(&shas[2], CONTEXT, "pending");
    assert_eq!(queued.description, "build 3 queued for a branch node");
    gh.sandbox.touch("release-a");
    gh.bot.expect("🔧 build 3 c");
    for br in ["b", "c"] {
        gh.sandbox.touch(&format!("release-{br}"));
    }
    gh.bot.expect_each(&["✅ build 2 b", "✅ build 3 c"]);
    gh.fake.wait_for_status(&shas[2], CONTEXT, "success");
    let statuses = branch_statuses(&gh, &shas[2]);
    assert_eq!(
        states(&statuses),
        ["pending", "pending", "success"],
        "{statuses:?}"
    );
    assert_eq!(statuses[1].description, "build 3 on n1");
    gh.bot.stop();
}

#[test]
fn a_failing_branch_build_sets_failure() {
    let mut gh = Github::start(BotConfig {
        branch_builds: true,
        failing_branch_checks: true,
        ..BotConfig::default()
    });
    let sha = feature_branch(&gh);
    gh.bot.ask("@bob !bb feature/x", "🔧 build 1 feature/x");
    gh.bot.expect(&format!(
        "❌ build 1 feature/x ({}): failed in checks 1: exited with code 1",
        short(&sha)
    ));
    gh.fake.wait_for_status(&sha, CONTEXT, "failure");
    let statuses = branch_statuses(&gh, &sha);
    assert_eq!(states(&statuses), ["pending", "failure"], "{statuses:?}");
    assert_eq!(
        statuses[1].description,
        "checks 1 failed: exited with code 1"
    );
    assert_eq!(statuses[1].target_url, build_url(&gh));
    let builds = std::fs::read_to_string(gh.sandbox.path().join("builds.txt")).unwrap();
    assert_eq!(
        builds.lines().collect::<Vec<_>>(),
        [format!("checks feature/x n1 {sha}")],
        "nothing after the failed checks ran"
    );
    gh.bot.stop();
}

#[test]
fn a_branch_build_status_gets_through_a_500_from_github() {
    let mut gh = Github::start(BotConfig {
        branch_builds: true,
        ..BotConfig::default()
    });
    let sha = feature_branch(&gh);
    gh.fake.fail_next("/statuses/", 500, 1);
    gh.bot.ask("@bob !bb feature/x", "🔧 build 1 feature/x");
    gh.bot.expect("✅ build 1 feature/x");
    gh.fake.wait_for_status(&sha, CONTEXT, "success");
    let answers: Vec<u16> = gh
        .fake
        .calls_to("/statuses/")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(answers, [500, 201, 201]);
    let statuses = branch_statuses(&gh, &sha);
    assert_eq!(states(&statuses), ["pending", "success"], "{statuses:?}");
    gh.bot.stop();
}

#[test]
fn pushed_tags_deploy_by_webhook_lower_envs_then_production() {
    // Polls only at start: the tag can only come by the webhook.
    let mut gh = Github::start(BotConfig {
        tags: true,
        poll_interval: "1h",
        ..BotConfig::default()
    });
    // The baseline poll was answered before any tag exists.
    gh.fake.wait_for_call("/tags");
    let sha = gh.fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make the widget blue",
    );

    gh.fake.tag("v1.0.0-rc.1", &sha);
    let (status, body) = gh.push("refs/tags/v1.0.0-rc.1", &sha, "d-1");
    assert_eq!(status, 202, "{body}");
    gh.bot.expect(&format!(
        "🚂 train #1 deploys tag v1.0.0-rc.1 to the lower environments (pushed by alice) with {}",
        short(&sha)
    ));
    gh.bot.expect(&format!(
        "✅ train #1 took {} through the lower environments",
        short(&sha)
    ));
    let lower = ["staging", "preview", "preprod"];
    let deployments = gh.fake.wait_for_successful_deployments(3);
    let envs: Vec<&str> = deployments.iter().map(|d| d.environment.as_str()).collect();
    assert_eq!(envs, lower);
    assert!(deployments.iter().all(|d| d.sha == sha), "{deployments:?}");
    let lines: Vec<String> = lower.iter().map(|e| format!("{e} {sha}")).collect();
    assert_eq!(gh.sandbox.deploys(), lines);

    gh.fake.tag("v1.0.0", &sha);
    let (status, body) = gh.push("refs/tags/v1.0.0", &sha, "d-2");
    assert_eq!(status, 202, "{body}");
    gh.bot.expect(&format!(
        "🚂 train #2 deploys tag v1.0.0 to production (pushed by alice) with {}",
        short(&sha)
    ));
    gh.bot.expect(&format!(
        "✅ train #2 deployed {} to production",
        short(&sha)
    ));
    let deployments = gh.fake.wait_for_successful_deployments(4);
    let second: Vec<(&str, &str)> = deployments[3..]
        .iter()
        .map(|d| (d.environment.as_str(), d.sha.as_str()))
        .collect();
    assert_eq!(second, [("production", sha.as_str())]);
    assert_eq!(deployments[3].description, "trainbot train-2");
    assert_eq!(gh.sandbox.deploys_to("production"), vec![sha.clone()]);
    assert_eq!(gh.sandbox.deploys().len(), 4, "no lower env ran for v1.0.0");
    gh.bot.stop();
}

const WORKFLOW_DEPLOY: &str =
    r#"[{ workflow = "deploy.yml", inputs = { sha = "{sha}", env = "{env}" } }]"#;

#[test]
fn a_workflow_step_is_dispatched_and_followed_to_success() {
    let mut gh = start_with_production(WORKFLOW_DEPLOY.into());
    let sha = bobs_commit(&mut gh);
    gh.bot.ask(
        &format!("!force {}", short(&sha)),
        "🚂 train #1 goes straight to production (forced by local)",
    );
    gh.bot
        .expect("train #1 ▶ production deploy started: workflow deploy.yml");
    let passed = gh.bot.expect("train #1 ✔ production deploy passed");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&sha)
    ));

    let dispatches = gh.fake.dispatches();
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    assert_eq!(dispatches[0].workflow, "deploy.yml");
    assert_eq!(dispatches[0].git_ref, "main");
    assert_eq!(
        dispatches[0].inputs,
        json!({"sha": sha, "env": "production"})
    );
    let runs = gh.fake.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, "completed");
    assert_eq!(runs[0].conclusion.as_deref(), Some("success"));
    // The chat links the run; the step log names it too.
    let run_url = format!("{}/acme/web/actions/runs/{}", gh.fake.api_url(), runs[0].id);
    assert!(passed.ends_with(&format!(" — {run_url}")), "{passed}");
    let log = production_log(&gh);
    assert!(log.contains(&format!("following run {run_url}")), "{log}");
    assert!(log.contains("run success"), "{log}");
    wait_for_deployment_state(&gh, "production", "success");
    gh.bot.stop();
}

#[test]
fn a_workflow_run_that_fails_fails_the_production_deploy() {
    let mut gh = start_with_production(WORKFLOW_DEPLOY.into());
    gh.fake.set_workflow_outcome("deploy.yml", "failure");
    let sha = bobs_commit(&mut gh);
    gh.bot.ask(
        &format!("!force {}", short(&sha)),
        "🚂 train #1 goes straight to production (forced by local)",
    );
    let failed = gh.bot.expect("train #1 ✘ production deploy failed");
    let runs = gh.fake.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    let run_url = format!("{}/acme/web/actions/runs/{}", gh.fake.api_url(), runs[0].id);
    assert!(
        failed.contains(&format!("workflow run failure: {run_url}")),
        "{failed}"
    );
    gh.bot.expect(&format!(
        "❌ train #1 failed in production deploy: workflow run failure: {run_url}. Nothing more deployed."
    ));
    gh.bot.ask("!status", "production: nothing deployed yet");
    wait_for_deployment_state(&gh, "production", "failure");
    assert_eq!(gh.fake.dispatches().len(), 1, "retries = 0: one dispatch");
    gh.bot.stop();
}

#[test]
fn an_http_step_passes_on_its_second_attempt() {
    let fake = FakeGithub::start("acme", "web", TOKEN);
    let url = fake.hook_url("deploy");
    let config = BotConfig {
        production_deploy: Some(format!(r#"[{{ http = "{url}", retries = 2 }}]"#)),
        ..BotConfig::default()
    };
    let mut gh = start_on_default(fake, config);
    let sha = bobs_commit(&mut gh);
    gh.fake.fail_next("/hooks/deploy", 500, 1);
    gh.bot.ask(
        &format!("!force {}", short(&sha)),
        "🚂 train #1 goes straight to production (forced by local)",
    );
    let passed = gh.bot.expect("train #1 ✔ production deploy passed");
    assert!(passed.ends_with("(attempt 2)"), "{passed}");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&sha)
    ));
    let answers: Vec<u16> = gh
        .fake
        .calls_to("/hooks/deploy")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(answers, [500, 200]);
    let hook = gh.fake.wait_for_hook("deploy");
    assert_eq!(hook.body["sha"], json!(sha), "{}", hook.body);
    assert_eq!(hook.body["env"], json!("production"), "{}", hook.body);
    assert_eq!(hook.body["train"], json!("1"), "{}", hook.body);
    let log = production_log(&gh);
    assert!(log.contains("== attempt 1/3"), "{log}");
    assert!(log.contains("== attempt 2/3 succeeded"), "{log}");
    gh.bot.stop();
}
