//! Tag deploys on the git forge: tags found by polling `refs/tags`.

mod support;

use support::{Bot, BotConfig, Sandbox, short};

fn start() -> (Sandbox, Bot, u16) {
    let sandbox = Sandbox::new();
    let head = sandbox.repo.head();
    // Tags that exist before the bot first looks are not deployed.
    sandbox.repo.tag("v0.9.0", &head, None);
    sandbox.repo.tag("v0.9.1-rc.1", &head, None);
    let config = BotConfig {
        tags: true,
        http_port: support::free_port(),
        ..BotConfig::default()
    };
    let mut bot = Bot::spawn(&sandbox.write_config(&config));
    bot.expect_allocated(&head);
    (sandbox, bot, config.http_port)
}

#[test]
fn staging_tags_run_the_lower_envs_and_production_tags_only_production() {
    let (sandbox, mut bot, _) = start();
    let rc = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&rc);
    sandbox.repo.tag("v1.0.0-rc.1", &rc, None);
    bot.expect(&format!(
        "🚂 train #1 deploys tag v1.0.0-rc.1 to the lower environments (pushed by unknown) with {}",
        short(&rc)
    ));
    bot.expect(&format!(
        "✅ train #1 took {} through the lower environments",
        short(&rc)
    ));
    let lower: Vec<String> = ["staging", "preview", "preprod"]
        .iter()
        .map(|e| format!("{e} {rc}"))
        .collect();
    assert_eq!(sandbox.deploys(), lower);

    sandbox.repo.tag("v1.0.0", &rc, Some("carol"));
    bot.expect(&format!(
        "🚂 train #2 deploys tag v1.0.0 to production (pushed by Carol) with {}",
        short(&rc)
    ));
    bot.expect(&format!(
        "✅ train #2 deployed {} to production",
        short(&rc)
    ));
    assert_eq!(sandbox.deploys_to("production"), vec![rc.clone()]);
    assert_eq!(
        sandbox.deploys().len(),
        4,
        "no lower env ran for the production tag"
    );
    assert!(
        bot.said("v0.9").is_empty(),
        "tags from before the bot were deployed"
    );
    bot.stop();
}

#[test]
fn a_tag_waits_for_the_running_train() {
    let (sandbox, mut bot, port) = start();
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);
    bot.ask("!depart", "🚂 train #1 departs");
    bot.expect("🙋 train #1");
    sandbox.repo.tag("v2.0.0", &head, None);
    bot.expect(&format!(
        "🏷 tag v2.0.0 ({}) pushed by unknown waits: train #1 is running",
        short(&head)
    ));
    bot.ask(
        "!status",
        &format!("tags waiting: v2.0.0 ({}) → production", short(&head)),
    );
    let api = support::http::http_get_json(port, "/api/status");
    assert_eq!(api["tags_waiting"][0]["name"], "v2.0.0", "{api}");
    assert_eq!(api["tags_waiting"][0]["to"], "production", "{api}");
    bot.ask("@bob !bad not yet", "⛔ train #1 vetoed by bob");
    bot.expect("🚂 train #2 deploys tag v2.0.0 to production");
    bot.expect(&format!(
        "✅ train #2 deployed {} to production",
        short(&head)
    ));
    assert_eq!(sandbox.deploys_to("production"), vec![head.clone()]);
    bot.stop();
}

#[test]
fn a_tag_matching_no_regex_does_nothing() {
    let (sandbox, mut bot, _) = start();
    let head = sandbox.repo.head();
    sandbox.repo.tag("nightly", &head, None);
    sandbox.repo.tag("v3.0.0", &head, None);
    // The production tag after it is the proof the poller saw both.
    bot.expect("🚂 train #1 deploys tag v3.0.0");
    bot.expect("✅ train #1 deployed");
    assert!(bot.said("nightly").is_empty());
    bot.stop();
}

#[test]
fn ops_drop_a_waiting_tag_with_cancel_and_the_audit_log_has_it() {
    let (sandbox, mut bot, port) = start();
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);
    bot.ask("!depart", "🚂 train #1 departs");
    bot.expect("🙋 train #1");
    sandbox.repo.tag("v2.0.0", &head, None);
    bot.expect(&format!(
        "🏷 tag v2.0.0 ({}) pushed by unknown waits: train #1 is running",
        short(&head)
    ));
    bot.ask("@bob !cancel v2.0.0", "only ops can !cancel");
    bot.ask(
        "!cancel v2.0.0",
        &format!(
            "🏷 tag v2.0.0 ({}) dropped by local; it will not deploy",
            short(&head)
        ),
    );
    // "tags waiting" would come before this line of the reply.
    bot.ask("!status", "production: nothing deployed yet");
    assert!(bot.said("tags waiting").is_empty());
    // The train it waited for ends; the dropped tag does not follow it.
    bot.ask("@bob !bad not yet", "⛔ train #1 vetoed by bob");
    bot.ask("!status", "production: nothing deployed yet");
    assert!(bot.said("train #2").is_empty());
    let (code, audit) = support::http::http_get(port, "/audit").expect("/audit answers");
    assert_eq!(code, 200);
    assert!(audit.contains("!cancel v2.0.0"), "{audit}");
    assert!(sandbox.deploys_to("production").is_empty());
    bot.stop();
}

#[test]
fn a_production_tag_off_main_is_refused_and_a_freeze_holds_tags() {
    let (sandbox, mut bot, _) = start();
    sandbox.repo.branch("feature/x");
    let off = sandbox.repo.commit_on("feature/x", "bob", "Not merged");
    sandbox.repo.tag("v2.0.0", &off, None);
    bot.expect(&format!(
        "⏸ tag v2.0.0 does not deploy to production: {} is not on main (rule: on main)",
        short(&off)
    ));
    assert!(sandbox.deploys_to("production").is_empty());

    bot.ask("!freeze release week", "🧊");
    let head = sandbox.repo.head();
    sandbox.repo.tag("v2.0.1", &head, None);
    bot.expect("⏸ tag v2.0.1 waits: departures are frozen by local (release week)");
    bot.ask("!unfreeze", "departures resumed by local");
    bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&head)
    ));
    assert_eq!(bot.said("⏸ tag v2.0.1 waits").len(), 1, "said once");
    bot.stop();
}
