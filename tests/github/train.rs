//! A full train in github mode: commits and authors from the API, a GitHub
//! Deployment per environment with its statuses, in order.

use crate::fake_github::ChangedFile;
use crate::support::{BotConfig, short};
use crate::{Github, TOKEN};

#[test]
fn a_train_deploys_every_environment_as_a_github_deployment() {
    let config = BotConfig {
        // Carol's email is unknown to the console; her login names her.
        extra: "[people]\n\"carol-gh\" = \"carol\"".into(),
        ..BotConfig::default()
    };
    let mut gh = Github::start(config);
    let bob = gh.fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make the widget blue",
    );
    gh.bot.expect_allocated(&bob);

    gh.bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    gh.bot.expect("🙋 train #1");
    gh.bot.send("@alice !good");
    gh.bot.send("@bob !good");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&bob)
    ));

    let envs = ["staging", "preview", "preprod", "production"];
    let deployments = gh.fake.wait_for_successful_deployments(4);
    let seen: Vec<&str> = deployments.iter().map(|d| d.environment.as_str()).collect();
    assert_eq!(seen, envs);
    for d in &deployments {
        assert_eq!(d.sha, bob, "{d:?}");
        assert!(!d.auto_merge, "{d:?}");
        assert_eq!(d.required_contexts.as_deref(), Some(&[][..]), "{d:?}");
        let states: Vec<(String, String)> = gh.fake.with(|s| {
            s.deployment_statuses
                .iter()
                .filter(|st| st.deployment_id == d.id)
                .map(|st| (st.state.clone(), st.log_url.clone()))
                .collect()
        });
        let url = format!("http://127.0.0.1:{}/runs/train-1", gh.port);
        assert_eq!(
            states,
            [
                ("in_progress".to_string(), url.clone()),
                ("success".to_string(), url)
            ],
            "{}",
            d.environment
        );
    }

    // The second train's commits come from compare (production...head),
    // through one 500 from GitHub; Carol is known by her login.
    let carol = gh.fake.commit(
        "main",
        "Carol",
        "carol@corp.example",
        Some("carol-gh"),
        "Faster widgets",
    );
    gh.bot.expect_allocated(&carol);
    gh.fake.fail_next("/compare/", 500, 1);
    gh.bot.ask(
        "!depart",
        &format!(
            "🚂 train #2 departs (sent by local) with {} (1 commit)",
            short(&carol)
        ),
    );
    gh.bot.expect("Faster widgets — Carol (@carol)");
    gh.bot.expect("🙋 train #2");
    gh.bot.send("@carol !good");
    gh.bot.expect(&format!(
        "✅ train #2 deployed {} to production",
        short(&carol)
    ));
    let compares = gh.fake.calls_to(&format!("/compare/{bob}...{carol}"));
    let answers: Vec<u16> = compares.iter().map(|c| c.status).collect();
    assert!(answers.ends_with(&[500, 200]), "{compares:?}");
    assert_eq!(
        gh.sandbox.deploys_to("production"),
        vec![bob.clone(), carol]
    );
    gh.bot.stop();
}

/// SPEC §11 "verified revert" on GitHub: the commits' patches decide, not
/// their messages.
#[test]
fn deployments_carry_the_environment_url_and_production_retires_older_ones() {
    let mut gh = Github::start(BotConfig {
        env_urls: vec![
            ("staging", "https://staging.acme.example"),
            ("production", "https://www.acme.example"),
        ],
        ..BotConfig::default()
    });
    let bob = gh.fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make the widget blue",
    );
    gh.bot.expect_allocated(&bob);
    gh.bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    gh.bot.expect("🙋 train #1");
    gh.bot.send("@alice !good");
    gh.bot.send("@bob !good");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&bob)
    ));
    let deployments = gh.fake.wait_for_successful_deployments(4);
    for d in &deployments {
        let bodies: Vec<serde_json::Value> = gh.fake.with(|s| {
            s.deployment_statuses
                .iter()
                .filter(|st| st.deployment_id == d.id)
                .map(|st| st.body.clone())
                .collect()
        });
        assert_eq!(bodies.len(), 2, "{}: {bodies:?}", d.environment);
        let url = match d.environment.as_str() {
            "staging" => Some("https://staging.acme.example"),
            "production" => Some("https://www.acme.example"),
            _ => None,
        };
        for body in &bodies {
            assert_eq!(
                body["environment_url"].as_str(),
                url,
                "{}: {body}",
                d.environment
            );
            let retire = d.environment == "production";
            assert_eq!(
                body["auto_inactive"].as_bool(),
                retire.then_some(true),
                "{body}"
            );
        }
    }
    gh.bot.stop();
}

#[test]
fn only_a_revert_whose_patch_undoes_the_change_spares_its_author() {
    let mut gh = Github::start(BotConfig::default());
    let commit = |name: &str, message: &str, file: ChangedFile| {
        let email = format!("{}@example.com", name.to_lowercase());
        let files = vec![file];
        gh.fake
            .commit_with_files("main", name, &email, None, message, files)
    };
    let flaky = commit(
        "Carol",
        "Add a flaky cache",
        ChangedFile::modified("src/cache.rs", &["None"], &["Some(flaky())"]),
    );
    let slow = commit(
        "Dave",
        "Add a slow query",
        ChangedFile::modified("src/query.rs", &["fast()"], &["slow()"]),
    );
    let revert =
        |sha: &str, subject: &str| format!("Revert \"{subject}\"\n\nThis reverts commit {sha}.");
    // Claims to revert carol's cache while it edits the README.
    commit(
        "Bob",
        &revert(&flaky, "Add a flaky cache"),
        ChangedFile::modified("README.md", &["# web"], &["# Web"]),
    );
    let head = commit(
        "Bob",
        &revert(&slow, "Add a slow query"),
        ChangedFile::modified("src/query.rs", &["slow()"], &["fast()"]),
    );
    gh.bot.expect_allocated(&head);

    gh.bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    let shown = [
        format!("{} Add a flaky cache — Carol (@carol)", short(&flaky)),
        format!(
            "{} Add a slow query (reverted) — Dave (@dave)",
            short(&slow)
        ),
    ];
    gh.bot.expect_each(&[&shown[0], &shown[1]]);
    gh.bot.expect("🙋 train #1");
    gh.bot.expect_each(&[
        "Carol <carol@example.com>: type `@carol !good`",
        "Dave <dave@example.com>: not asked: their commits were reverted",
    ]);
    assert!(gh.bot.said("(reverted) — Carol").is_empty());
    // Both claims were checked against the commits' files.
    for sha in [&flaky, &slow] {
        let calls = gh.fake.calls_to(&format!("/commits/{sha}?"));
        assert!(calls.iter().any(|c| c.status == 200), "{sha}: {calls:?}");
    }
    gh.bot.stop();
}

#[test]
fn a_bad_token_is_said_in_chat_once_and_the_bot_keeps_running() {
    let env = [
        (crate::support::GITHUB_TOKEN_ENV, "ghp_wrong"),
        (crate::support::WEBHOOK_SECRET_ENV, crate::SECRET),
    ];
    let fake = crate::fake_github::FakeGithub::start("acme", "web", TOKEN);
    let sandbox = crate::support::Sandbox::new();
    let config = BotConfig {
        github: Some(fake.api_url()),
        ..BotConfig::default()
    };
    let mut bot = crate::support::Bot::spawn_with_env(&sandbox.write_config(&config), &env);
    bot.expect("⚠️ GitHub refused: bad token for acme/web");
    bot.ask("!status", "production: nothing deployed yet");
    assert_eq!(bot.said("GitHub refused").len(), 1);
    bot.stop();
}

#[test]
fn a_missing_token_exits_2_naming_the_variable() {
    let fake = crate::fake_github::FakeGithub::start("acme", "web", TOKEN);
    let sandbox = crate::support::Sandbox::new();
    let config = BotConfig {
        github: Some(fake.api_url()),
        ..BotConfig::default()
    };
    let path = sandbox.write_config(&config);
    let (status, _out, err) =
        crate::support::run_to_end(&["--config", path.to_str().unwrap()], sandbox.path());
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(crate::support::GITHUB_TOKEN_ENV), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_repository_the_token_cannot_see_is_said_at_start() {
    let env = [
        (crate::support::GITHUB_TOKEN_ENV, TOKEN),
        (crate::support::WEBHOOK_SECRET_ENV, crate::SECRET),
    ];
    // The fake serves acme/other; the bot is configured for acme/web.
    let fake = crate::fake_github::FakeGithub::start("acme", "other", TOKEN);
    let sandbox = crate::support::Sandbox::new();
    let config = BotConfig {
        github: Some(fake.api_url()),
        ..BotConfig::default()
    };
    let mut bot = crate::support::Bot::spawn_with_env(&sandbox.write_config(&config), &env);
    bot.expect("⚠️ GitHub refused: acme/web not found or not visible to the token");
    bot.ask("!status", "production: nothing deployed yet");
    bot.stop();
}
