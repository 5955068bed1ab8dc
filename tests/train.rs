//! A deploy train end to end: the real binary, a real git repo, shell steps
//! that record each deploy in `deploys.txt`.

mod support;

use support::{Bot, BotConfig, ENVIRONMENTS, Sandbox, bot_with_alice_and_bob, short};

/// `!depart` by ops, then every lower environment passes in order.
fn depart_through_lower_envs(bot: &mut Bot, train: u32) {
    bot.ask(
        "!depart",
        &format!("🚂 train #{train} departs (sent by local)"),
    );
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #{train} ✔ {env} deploy passed"));
        bot.expect(&format!("train #{train} ✔ {env} acceptance passed"));
    }
    bot.expect(&format!("🙋 train #{train}"));
}

fn lower_and_production(sha: &str) -> Vec<String> {
    ["staging", "preview", "preprod", "production"]
        .iter()
        .map(|env| format!("{env} {sha}"))
        .collect()
}

#[test]
fn all_authors_approve_then_production_runs_once() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    let sha = short(&head);

    bot.ask(
        "!depart",
        &format!("🚂 train #1 departs (sent by local) with {sha} (2 commits)"),
    );
    bot.expect(&format!("{sha} Make the widget blue — Bob (@bob)"));
    bot.expect("initial commit — Alice (@alice)");
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #1 ✔ {env} deploy passed"));
        bot.expect(&format!("train #1 ✔ {env} acceptance passed"));
    }
    bot.expect(&format!(
        "🙋 train #1 ({sha}) passed staging, preview, preprod; every author must approve"
    ));
    bot.expect("Alice <alice@example.com>: type `@alice !good`");
    bot.expect("Bob <bob@example.com>: type `@bob !good`");

    bot.ask(
        "@alice !good",
        "👍 alice approved train #1 (1/2; waiting for bob)",
    );
    assert!(sandbox.deploys_to("production").is_empty());
    bot.ask("@bob !good", "👍 bob approved train #1 (2/2)");
    bot.expect(&format!("✅ train #1 deployed {sha} to production"));
    assert_eq!(sandbox.deploys(), lower_and_production(&head));

    bot.ask("!history", "last 1 production deploy:");
    let line = bot.expect(&format!("train #1 {sha} ·"));
    assert!(
        line.contains("authors: Alice, Bob · approved by: alice, bob"),
        "{line}"
    );
    bot.ask("!status", "no train running");
    bot.expect(&format!("production: {sha} (train #1,"));
    bot.stop();
}

#[test]
fn any_author_policy_ships_on_one_approval() {
    let config = BotConfig {
        approval: "any-author",
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    depart_through_lower_envs(&mut bot, 1);
    assert_eq!(bot.said("one author must approve").len(), 1);

    bot.ask(
        "@bob !good",
        "👍 bob approved train #1 (one approval is enough)",
    );
    bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&head)
    ));
    assert_eq!(sandbox.deploys(), lower_and_production(&head));
    bot.stop();
}

#[test]
fn a_veto_stops_the_train_and_ops_can_send_the_sha_again() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    depart_through_lower_envs(&mut bot, 1);
    bot.ask("@alice !good", "👍 alice approved train #1");

    bot.ask(
        "@bob !bad broken",
        "⛔ train #1 vetoed by bob: broken. Nothing went to production.",
    );
    assert!(sandbox.deploys_to("production").is_empty());

    // SPEC §1: the clock skips a vetoed head, ops' !depart sends it again.
    bot.ask(
        "!depart",
        &format!("🚂 train #2 departs (sent by local) with {}", short(&head)),
    );
    bot.expect("🙋 train #2");
    assert!(sandbox.deploys_to("production").is_empty());
    bot.stop();
}

#[test]
fn mallory_can_neither_force_nor_approve() {
    let (sandbox, mut bot, _head) = bot_with_alice_and_bob(&BotConfig::default());
    depart_through_lower_envs(&mut bot, 1);

    bot.ask("@mallory !force", "@mallory: only ops can !force");
    bot.ask(
        "@mallory !good",
        "@mallory: only the authors of train #1 can approve it: alice, bob",
    );
    bot.ask("!status", "awaiting approval");
    bot.expect("approved: nobody yet · waiting for: alice, bob");
    assert!(sandbox.deploys_to("production").is_empty());
    assert!(bot.said("production deploy started").is_empty());
    bot.stop();
}

#[test]
fn an_expired_train_deploys_nothing_until_ops_force_it() {
    let config = BotConfig {
        approval_timeout: "1s",
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    let sha = short(&head);
    depart_through_lower_envs(&mut bot, 1);

    bot.expect("⌛ train #1 expired: no approval within 1s. Nothing deployed; ops can !force 1.");
    assert!(sandbox.deploys_to("production").is_empty());

    bot.ask(
        "!force",
        &format!("✅ train #1 deployed {sha} to production"),
    );
    assert_eq!(bot.said("(forced by local)").len(), 1);
    assert_eq!(sandbox.deploys(), lower_and_production(&head));
    bot.ask("!history", "last 1 production deploy:");
    let line = bot.expect(&format!("train #1 {sha}"));
    assert!(line.contains("forced by local"), "{line}");
    bot.stop();
}

/// SPEC §14 on the console, with short durations: reminders are lines that
/// mention the author, ops hear once who is missing, then the train expires.
#[test]
fn on_the_console_authors_are_reminded_and_ops_hear_who_is_missing() {
    let config = BotConfig {
        approval_timeout: "4s",
        ..BotConfig::default()
    };
    let sandbox = Sandbox::new();
    let path = sandbox.write_config(&config);
    let text = std::fs::read_to_string(&path).expect("bot.toml");
    let text = text.replace(
        "approval_timeout = \"4s\"\n",
        "approval_timeout = \"4s\"\nremind_after = \"1500ms\"\nescalate_after = \"2s\"\n",
    );
    std::fs::write(&path, text).expect("bot.toml");
    let mut bot = Bot::spawn(&path);
    bot.expect_allocated(&sandbox.repo.head());
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);
    depart_through_lower_envs(&mut bot, 1);

    bot.expect("@bob: ⏰ reminder: train #1");
    let escalation = bot.expect("📣 @local: train #1");
    assert!(escalation.contains("missing: @alice, @bob"), "{escalation}");
    bot.expect("⌛ train #1 expired");
    // At 1.5s and 3s (a slow machine may merge the two: the exact minutes
    // are the engine tests'); once to ops; no expiry notice for a timeout
    // under 5m.
    let reminders = bot.said("@bob: ⏰ reminder: train #1").len();
    assert!((1..=2).contains(&reminders), "{reminders} reminders");
    assert_eq!(bot.said("📣").len(), 1);
    assert!(bot.said("⌛ train #1 expires in").is_empty());
    assert!(sandbox.deploys_to("production").is_empty());
    bot.stop();
}

#[test]
fn a_failing_acceptance_step_fails_the_train_with_its_last_lines() {
    let config = BotConfig {
        failing_acceptance: Some("preview"),
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);

    bot.ask("!depart", "🚂 train #1 departs");
    bot.expect("train #1 ✘ preview acceptance failed");
    bot.expect("| checking ");
    bot.expect("| 3 tests failed on preview");
    bot.expect("❌ train #1 failed in preview acceptance");
    assert_eq!(
        sandbox.deploys(),
        vec![format!("staging {head}"), format!("preview {head}")]
    );
    assert!(bot.said("🙋").is_empty());
    bot.stop();
}

#[test]
fn a_step_printing_past_max_step_log_keeps_its_start_and_end_and_says_its_real_last_lines() {
    let config = BotConfig {
        approval: "any-author",
        max_step_log: Some("1KiB"),
        production_deploy: Some(
            r#"[{ run = "i=1; while [ $i -le 3000 ]; do echo \"deploy line $i\"; i=$((i+1)); done; exit 1" }]"#
                .into(),
        ),
        ..BotConfig::default()
    };
    let (sandbox, mut bot, _head) = bot_with_alice_and_bob(&config);
    depart_through_lower_envs(&mut bot, 1);
    bot.send("@bob !good");
    bot.expect("train #1 ✘ production deploy failed");
    // The report ends with the step's real last lines, not what the cap kept
    // in the middle of the file.
    bot.expect("| deploy line 2981");
    bot.expect("| deploy line 3000");
    bot.expect("❌ train #1 failed in production");

    let path = sandbox
        .path()
        .join("data/logs/train-1/production-deploy-1.log");
    let log = std::fs::read_to_string(&path).expect("the step log");
    assert!(log.starts_with("== attempt 1/1: "), "{log}");
    assert!(log.contains("\ndeploy line 1\ndeploy line 2\n"), "{log}");
    assert!(log.contains(" bytes cut …\n"), "{log}");
    assert!(
        log.contains("deploy line 3000\n== attempt 1/1 exited with code 1 after "),
        "{log}"
    );
    assert!(log.len() < 1024 + 40, "{} bytes:\n{log}", log.len());
    bot.stop();
}

#[test]
fn rollback_redeploys_the_previous_production_sha() {
    let config = BotConfig {
        approval: "any-author",
        ..BotConfig::default()
    };
    let (sandbox, mut bot, first) = bot_with_alice_and_bob(&config);
    depart_through_lower_envs(&mut bot, 1);
    bot.ask(
        "@bob !good",
        &format!("✅ train #1 deployed {}", short(&first)),
    );

    let second = sandbox.repo.commit("alice", "Make the widget red");
    bot.expect_allocated(&second);
    depart_through_lower_envs(&mut bot, 2);
    bot.ask(
        "@alice !good",
        &format!("✅ train #2 deployed {}", short(&second)),
    );

    bot.ask(
        "!rollback",
        &format!(
            "🚂 train #3 rolls production back (by local) with {}",
            short(&first)
        ),
    );
    bot.expect(&format!(
        "✅ train #3 rolled production back to {} in",
        short(&first)
    ));
    assert_eq!(bot.said("(by local)").len(), 2, "departure and arrival");
    assert_eq!(
        sandbox.deploys_to("production"),
        vec![first.clone(), second.clone(), first.clone()]
    );
    bot.ask("!history", "last 3 production deploys:");
    let rollback = bot.expect("train #3 ");
    assert!(rollback.ends_with("· rollback by local"), "{rollback}");
    let replaced = bot.expect("train #2 ");
    assert!(replaced.ends_with("· rolled back"), "{replaced}");
    bot.ask("!status", "no train running");
    bot.expect(&format!("production: {} (train #3,", short(&first)));
    bot.stop();
}

/// SPEC §11 "verified revert": only a commit that undoes exactly another's
/// change spares that author; a message that merely claims it does not.
#[test]
fn a_true_revert_spares_its_author_and_a_mere_claim_does_not() {
    let sandbox = Sandbox::new();
    let mut bot = Bot::spawn(&sandbox.write_config(&BotConfig::default()));
    bot.expect_allocated(&sandbox.repo.head());
    let repo = &sandbox.repo;
    let flaky = repo.commit_file("carol", "Add a flaky cache", "cache.txt", "flaky\n");
    let slow = repo.commit_file("dave", "Add a slow query", "query.txt", "slow\n");
    repo.commit("bob", "Make the widget blue");
    // Says it reverts carol's cache, but touches something else.
    repo.claim_revert("bob", &flaky, "notes.txt");
    let head = repo.revert("alice", &slow);
    bot.expect_allocated(&head);

    bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    let shown = [
        format!("{} Add a flaky cache — Carol (@carol)", short(&flaky)),
        format!(
            "{} Add a slow query (reverted) — Dave (@dave)",
            short(&slow)
        ),
    ];
    bot.expect_each(&[&shown[0], &shown[1]]);
    bot.expect("🙋 train #1");
    bot.expect_each(&[
        "Carol <carol@example.com>: type `@carol !good`",
        "Dave <dave@example.com>: not asked: their commits were reverted",
    ]);
    bot.ask(
        "@dave !good",
        "@dave: only the authors of train #1 can approve it: alice, carol, bob",
    );
    bot.ask(
        "@alice !good",
        "👍 alice approved train #1 (1/3; waiting for carol, bob)",
    );
    bot.ask(
        "@bob !good",
        "👍 bob approved train #1 (2/3; waiting for carol)",
    );
    bot.ask("@carol !good", "👍 carol approved train #1 (3/3)");
    bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&head)
    ));
    assert!(bot.said("(reverted) — Carol").is_empty());
    bot.stop();
}
