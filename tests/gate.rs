//! The gate end to end (SPEC §11): the real binary, a real git repository,
//! the console.

mod support;

use chrono::{Datelike, TimeDelta, Utc};
use support::{Bot, BotConfig, ENVIRONMENTS, Sandbox, bot_with_alice_and_bob, short};

fn through_lower_envs(bot: &mut Bot, train: u32) {
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #{train} ✔ {env} acceptance passed"));
    }
    bot.expect(&format!("🙋 train #{train}"));
}

fn day(d: chrono::Weekday) -> &'static str {
    trainbot::domain::window::weekday_name(d)
}

#[test]
fn the_clock_does_not_reship_a_rolled_back_head_and_says_so_once() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    let root = sandbox.repo.rev(&format!("{head}^"));
    bot.ask("!depart", "🚂 train #1 departs");
    through_lower_envs(&mut bot, 1);
    bot.send("@alice !good");
    bot.ask("@bob !good", "✅ train #1 deployed");
    bot.ask(
        &format!("!rollback {}", short(&root)),
        "🚂 train #2 rolls production back (by local)",
    );
    bot.expect("✅ train #2");
    bot.stop();

    // The same store, now with a clock that ticks every second.
    let config = BotConfig {
        schedule: "* * * * * *",
        ..BotConfig::default()
    };
    let path = sandbox.write_config(&config);
    let mut bot = Bot::spawn(&path);
    bot.expect(&format!(
        "⏸ the scheduled train with {sha} does not leave: {sha} was rolled back in train #1",
        sha = short(&head)
    ));
    bot.expect_logged("Scheduled departure held.", 3);
    assert_eq!(bot.said("does not leave").len(), 1, "said once");
    assert!(bot.said("departs").is_empty(), "no train left");
    let why = bot.ask("!why", "will not go with");
    assert!(why.ends_with("(rule: rejected head)"), "{why}");
    bot.stop();
}

/// Train #1 (alice's and bob's commits) cut by `kill -9` in its production
/// deploy, and the bot started again: it says the train is interrupted.
fn interrupted_train() -> (Sandbox, Bot, String) {
    let config = BotConfig {
        blocking_production: true,
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    bot.ask("!depart", "🚂 train #1 departs");
    through_lower_envs(&mut bot, 1);
    bot.send("@alice !good");
    bot.ask("@bob !good", "train #1 ▶ production deploy started");
    sandbox.wait_for_file("production.pid");
    bot.kill9();
    sandbox.touch("release");

    let mut bot = Bot::spawn(&sandbox.path().join("bot.toml"));
    bot.expect("⚠️ train #1 was interrupted during production deploy");
    (sandbox, bot, head)
}

#[test]
fn an_interrupted_train_holds_departures_until_cancelled() {
    let (sandbox, mut bot, _head) = interrupted_train();
    let next = sandbox.repo.commit("carol", "Fix the header");
    bot.expect_allocated(&next);
    bot.ask(
        "!depart",
        "train #1 was interrupted in production; !force 1 or !cancel 1 it (or !rollback) first (rule: interrupted)",
    );
    bot.ask("!deploy main to staging", "(rule: interrupted)");
    bot.ask("!why", "(rule: interrupted)");
    bot.ask("!cancel 1", "train #1");
    bot.ask("!depart", "🚂 train #2 departs (sent by local)");
    through_lower_envs(&mut bot, 2);
    bot.stop();
}

#[test]
fn a_lock_holds_a_train_at_the_door_until_unlocked() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    bot.ask(
        "!lock preview for 2h db migration",
        "🔒 preview locked by local until",
    );
    bot.ask(
        "@bob !lock preview mine",
        "preview is already locked by local",
    );
    bot.ask("!locks", "🔒 preview by local: db migration");
    bot.ask("!depart", "🚂 train #1 departs");
    bot.expect("train #1 ✔ staging acceptance passed");
    bot.expect("⏸ train #1 waits before preview: preview is locked by local (db migration) until");
    bot.ask("!status", "train #1");
    bot.expect("waits: preview is locked by local");
    bot.ask("!why #1", "train #1");
    assert_eq!(sandbox.deploys_to("preview"), Vec::<String>::new());
    bot.ask(
        "@bob !unlock preview",
        "only local (who locked preview) or ops can !unlock it",
    );
    bot.ask("!unlock preview", "🔓 preview unlocked by local");
    bot.expect("train #1 ✔ preview deploy passed");
    bot.expect("🙋 train #1");
    assert_eq!(sandbox.deploys_to("preview"), vec![head.clone()]);
    bot.ask("!locks", "no environment is locked");
    bot.stop();
}

#[test]
fn a_closed_window_holds_an_approved_train_and_force_overrides_it() {
    let tomorrow = day((Utc::now() + TimeDelta::days(1)).weekday());
    let config = BotConfig {
        approval: "any-author",
        windows: vec![format!("{tomorrow} 00:00-24:00")],
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    bot.ask("!depart", "🚂 train #1 departs");
    through_lower_envs(&mut bot, 1);
    bot.ask(
        "@bob !good",
        "⏸ train #1 waits before production: production is outside its deploy windows; next opening",
    );
    assert!(sandbox.deploys_to("production").is_empty());
    bot.ask("!status", "waits: production is outside its deploy windows");
    bot.ask("!force", &format!("✅ train #1 deployed {}", short(&head)));
    bot.ask("!history", "last 1 production deploy:");
    let line = bot.expect("train #1");
    assert!(line.contains("outside the deploy windows"), "{line}");
    bot.stop();
}

#[test]
fn an_open_window_lets_an_approved_train_through() {
    let now = Utc::now();
    // Opened a minute ago (or at midnight, right after it).
    let start =
        (now - TimeDelta::minutes(1)).max(now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc());
    let config = BotConfig {
        approval: "any-author",
        windows: vec![format!(
            "{} {}-24:00",
            day(now.weekday()),
            start.format("%H:%M")
        )],
        ..BotConfig::default()
    };
    let (_sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    bot.ask("!depart", "🚂 train #1 departs");
    through_lower_envs(&mut bot, 1);
    bot.ask(
        "@bob !good",
        &format!("✅ train #1 deployed {}", short(&head)),
    );
    assert!(bot.said("outside its deploy windows").is_empty());
    bot.stop();
}

#[test]
fn deploy_sends_a_ref_to_one_environment() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    bot.ask(
        "!deploy main to staging",
        &format!(
            "🚂 train #1 deploys main to staging (by local) with {}",
            short(&head)
        ),
    );
    bot.expect("train #1 ✔ staging acceptance passed");
    bot.expect("train #1");
    assert_eq!(sandbox.deploys_to("staging"), vec![head.clone()]);
    assert!(sandbox.deploys_to("preview").is_empty());
    bot.ask(
        "!deploy main to moon",
        "no environment moon; there are staging, preview, preprod, production",
    );
    bot.ask("@bob !deploy main to staging", "only ops can !deploy");
    bot.ask(
        "!deploy nosuchbranch to staging",
        "no branch, tag or SHA nosuchbranch",
    );
    sandbox.repo.branch("feature/x");
    let off = sandbox.repo.commit_on("feature/x", "bob", "Off main");
    bot.ask(
        "!deploy feature/x to production",
        &format!("{} is not on main (rule: on main)", short(&off)),
    );
    bot.stop();
}

#[test]
fn why_and_next_explain_the_next_departure() {
    let (_sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    bot.ask(
        "!next",
        &format!(
            "the next train would carry {} (2 commits) and ask alice, bob",
            short(&head)
        ),
    );
    bot.expect(&format!("will go with {}", short(&head)));
    bot.ask("!freeze release week", "🧊");
    bot.ask("!why", "will not go with");
    assert_eq!(
        bot.said("departures are frozen by local (release week); !unfreeze first (rule: freeze)")
            .len(),
        1
    );
    bot.ask(
        &format!("!why {}", short(&head)),
        &format!("{} waits for a train", short(&head)),
    );
    bot.ask("!why #9", "no train #9");
    bot.stop();
}

/// A commit a train carried below its head (here the first commit of
/// main, allocated but never a train's head) is live with that train.
#[test]
fn why_a_commit_shipped_inside_a_train_is_in_production() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    let first = sandbox.repo.rev(&format!("{head}^"));
    bot.ask("!depart", "🚂 train #1 departs");
    through_lower_envs(&mut bot, 1);
    bot.send("@alice !good");
    bot.ask("@bob !good", "✅ train #1 deployed");
    let why = bot.ask(
        &format!("!why {}", short(&first)),
        &format!("{} is in production since", short(&first)),
    );
    assert!(why.ends_with("(train #1)"), "{why}");
    bot.stop();
}

#[test]
fn a_rollback_settles_an_interrupted_train_and_holds_its_head() {
    let (sandbox, mut bot, head) = interrupted_train();
    let root = sandbox.repo.rev(&format!("{head}^"));
    bot.ask(
        &format!("!rollback {}", short(&root)),
        "🚂 train #2 rolls production back (by local)",
    );
    bot.expect("✅ train #2");
    let why = bot.ask("!why", "will not go with");
    assert!(
        why.ends_with(&format!(
            "{} was rolled back in train #1; the clock does not send it again (a newer SHA or !depart does) (rule: rejected head)",
            short(&head)
        )),
        "{why}"
    );
    bot.stop();
}

#[test]
fn a_timed_lock_ends_by_itself() {
    let (_sandbox, mut bot, _head) = bot_with_alice_and_bob(&BotConfig::default());
    bot.ask(
        "!lock staging for 1s smoke test",
        "🔒 staging locked by local until",
    );
    bot.expect("🔓 the lock on staging by local ended (smoke test)");
    bot.ask("!locks", "no environment is locked");
    bot.stop();
}

#[test]
fn only_the_production_role_updates_live_and_only_from_main() {
    let config = BotConfig {
        production_role: Some(vec!["alice"]),
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    // local is ops, but not in roles.production.
    bot.ask(
        &format!("!force {}", short(&head)),
        "only roles.production may update live: alice (rule: who)",
    );
    let root = sandbox.repo.rev(&format!("{head}^"));
    bot.ask(&format!("!rollback {}", short(&root)), "(rule: who)");
    bot.ask("!deploy main to production", "(rule: who)");
    bot.ask(
        "!lock production freeze for the release",
        "🔒 production locked by local",
    );
    bot.ask("!unlock production", "(rule: who)");
    assert!(sandbox.deploys_to("production").is_empty());
    bot.stop();
}

#[test]
fn a_deploy_to_a_locked_production_waits_at_its_door_until_unlocked() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    bot.ask(
        "!lock production release freeze",
        "🔒 production locked by local",
    );
    bot.ask(
        &format!("!force {}", short(&head)),
        "production is locked by local (release freeze)",
    );
    bot.ask(
        "!deploy main to production",
        "🚂 train #1 deploys main to production",
    );
    bot.expect(
        "⏸ train #1 waits before production: production is locked by local (release freeze)",
    );
    assert!(sandbox.deploys_to("production").is_empty());
    bot.ask("!unlock production", "🔓 production unlocked by local");
    bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&head)
    ));
    assert_eq!(sandbox.deploys_to("production"), vec![head.clone()]);
    bot.stop();
}

#[test]
fn force_of_a_sha_off_main_is_refused() {
    let (sandbox, mut bot, _head) = bot_with_alice_and_bob(&BotConfig::default());
    sandbox.repo.branch("feature/x");
    let off = sandbox.repo.commit_on("feature/x", "bob", "Off main");
    bot.ask(
        &format!("!force {}", short(&off)),
        &format!("{} is not on main (rule: on main)", short(&off)),
    );
    assert!(sandbox.deploys_to("production").is_empty());
    bot.stop();
}
