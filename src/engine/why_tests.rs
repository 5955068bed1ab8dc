//! `!why <sha>` (SPEC §11) after trains ran, under paused time: the newest
//! train that carried a SHA says where it is, whether the SHA was its head,
//! one of its commits, or never allocated at all. The fake main shows c0 ←
//! c1 at start (c1 allocated), then c2 ← c3 land (only c3 allocated).

use super::*;

fn two_then_four() -> Options {
    Options {
        visible: Some(2),
        ..Options::default()
    }
}

/// `!why <what>`'s answer: the next message that starts with `what`.
async fn why(bot: &Bot, what: &str) -> String {
    let from = bot.chat.messages().len();
    bot.type_line(&format!("!why {what}")).await;
    let (_, _, msg) = bot
        .chat
        .wait_for_from(from, &format!("!why {what}"), |m| {
            text_of(m).starts_with(what)
        })
        .await;
    text_of(&msg).to_string()
}

/// Sends a train; its authors approve it and it deploys.
async fn ships(bot: &Bot, train: u64, approvers: &[&str]) {
    bot.type_line("!depart").await;
    bot.chat
        .wait_for_from(
            0,
            "asking for approval",
            |m| matches!(m, Message::Approval { train: t, .. } if *t == TrainId(train)),
        )
        .await;
    for who in approvers {
        bot.type_line(&format!("@{who} !good")).await;
    }
    bot.chat
        .wait_for(&format!("✅ train #{train} deployed"))
        .await;
}

/// The rest of main lands: c2 and c3, of which only c3 is allocated.
async fn main_moves_on(bot: &Bot) {
    bot.forge.visible.store(HISTORY, Ordering::SeqCst);
    bot.chat.wait_for("📥 abc0003").await;
}

#[tokio::test(start_paused = true)]
async fn a_sha_shipped_by_an_earlier_train_or_inside_a_later_one_is_in_production() {
    let bot = Bot::start(
        "a_sha_shipped_by_an_earlier_train_or_inside_a_later_one_is_in_production",
        two_then_four(),
    )
    .await;
    ships(&bot, 1, &["bob"]).await;
    bot.clock_passes(minutes(60)).await;
    main_moves_on(&bot).await;
    ships(&bot, 2, &["alice", "bob"]).await;
    bot.clock_passes(minutes(30)).await;
    // c1 was train #1's head; production has moved on to c3 since.
    let c1 = why(&bot, "abc0001").await;
    assert!(
        c1.starts_with("abc0001 is in production since 1h 3") && c1.ends_with("(train #1)"),
        "{c1}"
    );
    // c2 was never allocated (main jumped to c3): train #2 carried it.
    let c2 = why(&bot, "abc0002").await;
    assert_eq!(c2, "abc0002 is in production since 30m ago (train #2)");
    let c3 = why(&bot, "abc0003").await;
    assert!(c3.ends_with("(train #2)"), "{c3}");
    let unknown = why(&bot, "abcdef0").await;
    assert_eq!(
        unknown,
        "abcdef0 is not a SHA allocated from main nor carried by a train"
    );
    bot.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_head_vetoed_once_and_shipped_inside_a_newer_train_is_in_production() {
    let bot = Bot::start(
        "a_head_vetoed_once_and_shipped_inside_a_newer_train_is_in_production",
        two_then_four(),
    )
    .await;
    bot.type_line("!depart").await;
    bot.chat
        .wait_for_from(0, "asking for approval", |m| {
            matches!(m, Message::Approval { .. })
        })
        .await;
    bot.type_line("@bob !bad flaky").await;
    bot.chat.wait_for("train #1 vetoed").await;
    let vetoed = why(&bot, "abc0001").await;
    assert_eq!(vetoed, "abc0001 was rejected by train #1 (vetoed)");
    main_moves_on(&bot).await;
    ships(&bot, 2, &["alice", "bob"]).await;
    bot.clock_passes(minutes(5)).await;
    let live = why(&bot, "abc0001").await;
    assert_eq!(live, "abc0001 is in production since 5m ago (train #2)");
    bot.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_commit_of_a_train_rolled_back_since_says_so() {
    let bot = Bot::start(
        "a_commit_of_a_train_rolled_back_since_says_so",
        two_then_four(),
    )
    .await;
    ships(&bot, 1, &["bob"]).await;
    main_moves_on(&bot).await;
    ships(&bot, 2, &["alice", "bob"]).await;
    bot.type_line("!rollback abc0001").await;
    bot.chat.wait_for("✅ train #3").await;
    let c2 = why(&bot, "abc0002").await;
    assert_eq!(c2, "abc0002 was deployed by train #2 and rolled back since");
    let c1 = why(&bot, "abc0001").await;
    assert!(c1.ends_with("(train #3)"), "{c1}");
    bot.finish().await;
}
