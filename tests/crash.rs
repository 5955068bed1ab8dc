//! kill -9 and restart on the same data_dir (SPEC §8).

mod support;

use std::time::Instant;

use support::{Bot, BotConfig, ENVIRONMENTS, TIMEOUT, bot_with_alice_and_bob, short};

fn depart_to_approval(bot: &mut Bot) {
    bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #1 ✔ {env} acceptance passed"));
    }
    bot.expect("🙋 train #1");
}

/// Whether `pid` still runs. A zombie has finished; it only waits for
/// whoever adopted it to reap it.
fn is_running(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn approvals_survive_a_crash_while_awaiting_approval() {
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&BotConfig::default());
    depart_to_approval(&mut bot);
    bot.ask(
        "@alice !good",
        "👍 alice approved train #1 (1/2; waiting for bob)",
    );
    bot.kill9();

    let mut bot = Bot::spawn(&sandbox.path().join("bot.toml"));
    bot.expect(&format!(
        "↻ resuming train #1 ({}) at awaiting approval; approved by alice; waiting for bob",
        short(&head)
    ));
    bot.ask("@bob !good", "👍 bob approved train #1 (2/2)");
    bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&head)
    ));
    assert_eq!(sandbox.deploys_to("production"), vec![head]);
    bot.stop();
}

#[test]
fn a_production_deploy_cut_by_a_crash_is_not_rerun_until_forced() {
    let config = BotConfig {
        blocking_production: true,
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    depart_to_approval(&mut bot);
    bot.ask("@alice !good", "👍 alice approved");
    bot.ask("@bob !good", "train #1 ▶ production deploy started");
    // The step announces nothing once started; its pid file is the event.
    let pid = sandbox.wait_for_file("production.pid");
    bot.kill9();
    assert!(is_running(&pid), "the step outlives the crashed bot");

    let mut bot = Bot::spawn(&sandbox.path().join("bot.toml"));
    bot.expect(
        "⚠️ train #1 was interrupted during production deploy (the bot stopped). \
         It is not re-run by itself: ops, !force 1 to re-run it or !cancel 1.",
    );
    // The restarted bot killed the leftover group before saying so; the
    // kernel may still be tearing it down, and nothing announces the end.
    let deadline = Instant::now() + TIMEOUT;
    while is_running(&pid) {
        assert!(Instant::now() < deadline, "step {pid} still runs");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sandbox.deploys_to("production"), vec![head.clone()]);

    sandbox.touch("release");
    bot.ask(
        "!force 1",
        &format!("✅ train #1 deployed {} to production in", short(&head)),
    );
    assert_eq!(bot.said("(forced by local)").len(), 1);
    assert_eq!(
        sandbox.deploys_to("production"),
        vec![head.clone(), head.clone()]
    );
    bot.ask("!history", "last 1 production deploy:");
    let line = bot.expect(&format!("train #1 {}", short(&head)));
    assert!(line.contains("forced by local"), "{line}");
    bot.stop();
}
