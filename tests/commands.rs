//! Chat commands end to end: bad input and freezing.

mod support;

use support::{Bot, BotConfig, Sandbox};

fn idle_bot() -> (Sandbox, Bot) {
    let sandbox = Sandbox::new();
    let mut bot = Bot::spawn(&sandbox.write_config(&BotConfig::default()));
    bot.expect_allocated(&sandbox.repo.head());
    (sandbox, bot)
}

/// Sends `line` and asserts the reply is exactly `reply`, on one line: the
/// next line read must be the reply to the next command.
fn expect_one_line_reply(bot: &mut Bot, line: &str, reply: &str) {
    bot.send(line);
    assert_eq!(bot.next_line(), format!("trainbot> {reply}"));
}

#[test]
fn unknown_commands_and_bad_arguments_get_a_one_line_error_with_usage() {
    let (_sandbox, mut bot) = idle_bot();
    expect_one_line_reply(&mut bot, "!bogus", "unknown command !bogus; try !help");
    let history =
        "'x' is not a number from 1 to 50. Usage: !history [n] — the last n production deploys";
    expect_one_line_reply(&mut bot, "!history x", history);
    bot.send("!depart now");
    let reply = bot.next_line();
    assert!(
        reply.starts_with("trainbot> !depart takes no arguments. Usage: !depart"),
        "{reply}"
    );
    bot.send("!force zzz");
    let reply = bot.next_line();
    assert!(
        reply.contains("is neither a train (#N) nor a SHA") && reply.contains("Usage: !force"),
        "{reply}"
    );
    // Nothing happened: no train left, and the next reply is !status's.
    expect_one_line_reply(&mut bot, "!status", "no train running");
    assert!(bot.said("🚂").is_empty());
    bot.stop();
}

#[test]
fn a_freeze_refuses_departures_until_unfrozen() {
    let (sandbox, mut bot) = idle_bot();
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);

    bot.ask(
        "!freeze db migration",
        "🧊 departures frozen by local: db migration",
    );
    bot.ask(
        "!depart",
        "departures are frozen by local (db migration); !unfreeze first",
    );
    bot.ask("@mallory !unfreeze", "@mallory: only ops can !unfreeze");
    bot.ask("!status", "no train running");
    bot.expect("frozen by local: db migration");

    bot.ask("!unfreeze", "departures resumed by local");
    bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    bot.expect("🙋 train #1");
    bot.stop();
}
