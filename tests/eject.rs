//! SPEC §15 "Eject the culprit" end to end: the real binary on the console,
//! a real git repository, steps that record `$TRAINBOT_ENV $TRAINBOT_SHA`.

mod support;

use support::{BotConfig, ENVIRONMENTS, Sandbox, short};

/// The default test config with `train.on_veto = "eject"`.
fn eject_config(sandbox: &Sandbox) -> std::path::PathBuf {
    let text =
        BotConfig::default()
            .render()
            .replacen("[train]\n", "[train]\non_veto = \"eject\"\n", 1);
    assert!(text.contains("on_veto = \"eject\""), "{text}");
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).expect("write bot.toml");
    path
}

#[test]
fn the_middle_author_vetoes_and_the_first_commit_rides_on_at_once() {
    let sandbox = Sandbox::new();
    let mut bot = support::Bot::spawn(&eject_config(&sandbox));
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    // Production runs the root, so the next train carries only what follows.
    bot.ask(
        &format!("!force {}", short(&root)),
        &format!("✅ train #1 deployed {}", short(&root)),
    );
    let a = sandbox.repo.commit("alice", "Add the widget");
    let b = sandbox.repo.commit("bob", "Make the widget blue");
    let c = sandbox.repo.commit("carol", "Make the widget round");
    bot.expect_allocated(&c);

    bot.ask(
        "!depart",
        &format!(
            "🚂 train #2 departs (sent by local) with {} (3 commits)",
            short(&c)
        ),
    );
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #2 ✔ {env} acceptance passed"));
    }
    bot.expect("🙋 train #2");
    bot.ask("@alice !good", "👍 alice approved train #2");

    bot.ask(
        "@bob !bad the widget is ugly",
        "⛔ train #2 vetoed by bob: the widget is ugly",
    );
    bot.expect(&format!(
        "🚂 train #3 departs (sent by bob) with {} (1 commit)",
        short(&a)
    ));
    bot.expect(&format!(
        "⏏ ejected {} (bob), {} (carol); {} rides on in train #3; \
         approved already: alice; waiting for nobody",
        short(&b),
        short(&c),
        short(&a)
    ));
    // The lower environments run again for the new head, then production,
    // without asking alice again.
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #3 ✔ {env} acceptance passed"));
    }
    bot.expect(&format!("✅ train #3 deployed {}", short(&a)));
    assert!(bot.said("🙋 train #3").is_empty(), "train #3 asked again");
    assert_eq!(sandbox.deploys_to("production"), [root.clone(), a.clone()]);
    for env in ENVIRONMENTS {
        assert_eq!(sandbox.deploys_to(env), [c.clone(), a.clone()], "{env}");
    }

    // The vetoed head is held by the clock; the status says what is live.
    bot.ask("!status", "no train running");
    bot.expect(&format!("production: {} (train #3,", short(&a)));
    bot.stop();
}

#[test]
fn with_stop_a_veto_ends_the_train_and_nothing_departs() {
    let config = BotConfig::default();
    let (sandbox, mut bot, head) = support::bot_with_alice_and_bob(&config);
    bot.ask(
        "!depart",
        &format!("🚂 train #1 departs (sent by local) with {}", short(&head)),
    );
    bot.expect("🙋 train #1");
    bot.ask("@bob !bad nope", "⛔ train #1 vetoed by bob: nope");
    bot.ask("!status", "no train running");
    assert!(bot.said("train #2").is_empty());
    assert!(bot.said("⏏").is_empty());
    assert!(sandbox.deploys_to("production").is_empty());
    bot.stop();
}
