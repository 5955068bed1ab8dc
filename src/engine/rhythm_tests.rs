//! The team's rhythm (SPEC §14) under paused time: reminders, escalation,
//! the expiry notice, across a restart; failures that mention people; the
//! configured main branch in the allocation message.

use super::*;

const RHYTHM: &str = "remind_after = \"10m\"\nescalate_after = \"20m\"";

/// The rhythm configured; main shows two commits at start, so the next
/// head brings a train with two authors (`two_authors`).
fn rhythm() -> Options {
    Options {
        train_keys: RHYTHM,
        visible: Some(2),
        ..Options::default()
    }
}

/// The whole history lands on main: the next train carries commits by
/// Bob and Alice.
async fn two_authors(bot: &Bot) {
    bot.forge.visible.store(HISTORY, Ordering::SeqCst);
    bot.chat.wait_for("📥 abc0003").await;
}

/// Every reminder said, as (time after `from`, to whom, train).
fn reminders(said: &[(Ts, Message)], from: Ts) -> Vec<(TimeDelta, String, u64)> {
    said.iter()
        .filter_map(|(at, m)| match m {
            Message::Remind { to, train, .. } => Some((*at - from, to.to_string(), train.0)),
            _ => None,
        })
        .collect()
}

/// The notices containing `needle`, as (time after `from`, text).
fn notices(said: &[(Ts, Message)], from: Ts, needle: &str) -> Vec<(TimeDelta, String)> {
    said.iter()
        .filter_map(|(at, m)| match m {
            Message::Notice { text, .. } if text.contains(needle) => {
                Some((*at - from, text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Sends a train and waits for its approval request; when it was asked.
async fn awaiting_approval(bot: &Bot) -> Ts {
    bot.type_line("!depart").await;
    let (_, asked, _) = bot
        .chat
        .wait_for_from(0, "asking for approval", |m| {
            matches!(m, Message::Approval { .. })
        })
        .await;
    asked
}

fn who(pairs: &[(TimeDelta, String, u64)]) -> Vec<(i64, &str)> {
    pairs
        .iter()
        .map(|(d, u, _)| (d.num_minutes(), u.as_str()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn authors_are_reminded_every_remind_after_ops_hear_once_and_the_channel_five_minutes_before_expiry()
 {
    let bot = Bot::start(
        "authors_are_reminded_every_remind_after_ops_hear_once_and_the_channel_five_minutes_before_expiry",
        rhythm(),
    )
    .await;
    two_authors(&bot).await;
    let asked = awaiting_approval(&bot).await;
    let (_, expired, _) = bot.chat.wait_for("⌛ train #1 expired").await;
    assert_eq!(expired - asked, minutes(30));
    let said = bot.finish().await;
    let reminded = reminders(&said, asked);
    assert_eq!(
        who(&reminded),
        [(10, "bob"), (10, "alice"), (20, "bob"), (20, "alice")],
        "{said:#?}"
    );
    assert!(reminded.iter().all(|(_, _, t)| *t == 1));
    let texts: Vec<&str> = said
        .iter()
        .filter(|(_, m)| matches!(m, Message::Remind { .. }))
        .map(|(_, m)| text_of(m))
        .collect();
    assert!(
        texts[0].contains("train #1") && texts[0].contains("`@bob !good`"),
        "{texts:?}"
    );
    assert_eq!(
        notices(&said, asked, "📣"),
        [(
            minutes(20),
            "📣 @local: train #1 (abc0003) has waited 20m for approval; missing: @bob, @alice. \
             Ops can !force 1 or !bad 1."
                .to_string()
        )]
    );
    assert_eq!(
        notices(&said, asked, "expires in"),
        [(
            minutes(25),
            "⌛ train #1 expires in 5m; waiting for @bob, @alice".to_string()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn an_author_who_approved_is_not_reminded_and_nothing_comes_once_the_train_is_approved() {
    let bot = Bot::start(
        "an_author_who_approved_is_not_reminded_and_nothing_comes_once_the_train_is_approved",
        rhythm(),
    )
    .await;
    two_authors(&bot).await;
    let asked = awaiting_approval(&bot).await;
    bot.clock_passes(minutes(5)).await;
    bot.type_line("@alice !good").await;
    bot.chat.wait_for("👍 alice approved train #1").await;
    // Bob is still reminded at 10 minutes; he approves at 15.
    bot.chat
        .wait_for_from(0, "a reminder", |m| matches!(m, Message::Remind { .. }))
        .await;
    bot.clock_passes(minutes(5)).await;
    bot.type_line("@bob !good").await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    // Long past the escalation and the expiry: nothing more is said of it.
    bot.clock_passes(minutes(40)).await;
    let said = bot.finish().await;
    assert_eq!(who(&reminders(&said, asked)), [(10, "bob")], "{said:#?}");
    assert_eq!(notices(&said, asked, "📣"), []);
    assert_eq!(notices(&said, asked, "expires in"), []);
}

#[tokio::test(start_paused = true)]
async fn a_restart_neither_repeats_nor_drops_a_reminder() {
    const TEST: &str = "a_restart_neither_repeats_nor_drops_a_reminder";
    let opts = rhythm();
    let bot = Bot::start(TEST, rhythm()).await;
    two_authors(&bot).await;
    let asked = awaiting_approval(&bot).await;
    bot.chat
        .wait_for_from(0, "a reminder", |m| matches!(m, Message::Remind { .. }))
        .await;
    // Stopped two minutes after the first reminder, started again at once.
    bot.clock_passes(minutes(2)).await;
    let bot = bot.restart(TEST, &opts).await;
    bot.chat.wait_for("↻ resuming train #1").await;
    bot.chat.wait_for("⌛ train #1 expired").await;
    let said = bot.stop().await;
    assert_eq!(
        who(&reminders(&said, asked)),
        [(20, "bob"), (20, "alice")],
        "{said:#?}"
    );
    assert_eq!(notices(&said, asked, "📣").len(), 1, "{said:#?}");
    assert_eq!(notices(&said, asked, "expires in").len(), 1, "{said:#?}");

    // Down when a reminder was due: it comes once at the restart, not again.
    let bot = Bot::start(TEST, rhythm()).await;
    two_authors(&bot).await;
    let asked = awaiting_approval(&bot).await;
    bot.clock_passes(minutes(5)).await;
    let now = bot.clock.peek();
    let dir = bot.stop_keeping_dir().await;
    let bot = Bot::start_in(TEST, &opts, dir, now + minutes(7)).await;
    bot.chat.wait_for("⌛ train #1 expired").await;
    let said = bot.stop().await;
    assert_eq!(
        who(&reminders(&said, asked)),
        [(12, "bob"), (12, "alice"), (20, "bob"), (20, "alice")],
        "{said:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_train_mentions_its_authors() {
    let bot = Bot::start(
        "a_failed_train_mentions_its_authors",
        Options {
            panics_in: Some("staging-deploy-1"),
            visible: Some(2),
            ..Options::default()
        },
    )
    .await;
    two_authors(&bot).await;
    bot.type_line("!depart").await;
    let (_, _, failed) = bot
        .chat
        .wait_for_from(
            0,
            "the train's failure notice",
            |m| matches!(m, Message::Notice { text, .. } if text.starts_with("❌ train #1 failed")),
        )
        .await;
    assert!(
        text_of(&failed).ends_with("\ncc @bob, @alice"),
        "{failed:?}"
    );
    let said = bot.stop().await;
    // The status message, edited in place, does not ping.
    let status = statuses(&said, TrainId(1));
    assert!(!status.last().unwrap().1.contains("cc @"), "{status:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_branch_build_mentions_its_requester() {
    let bot = Bot::start(
        "a_failed_branch_build_mentions_its_requester",
        Options {
            panics_in: Some("checks-1"),
            extra: "\n[branch_builds]\nnodes = [\"n1\"]\nnode_url = \"http://{node}\"\n\
                    checks = [{ run = \"true\" }]\ndeploy = [{ run = \"true\" }]\n",
            ..Options::default()
        },
    )
    .await;
    bot.forge
        .branches
        .lock()
        .unwrap()
        .insert("feat".into(), sha(1));
    bot.type_line("@bob !bb feat").await;
    let (_, _, failed) = bot
        .chat
        .wait_for_from(
            0,
            "the build's failure notice",
            |m| matches!(m, Message::Notice { text, .. } if text.starts_with("❌ build 1")),
        )
        .await;
    assert!(text_of(&failed).ends_with("\ncc @bob"), "{failed:?}");
    bot.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_main_check_mentions_the_commits_author() {
    const TEST: &str = "a_failed_main_check_mentions_the_commits_author";
    let opts = Options {
        panics_in: Some("check-1"),
        extra: "\n[main]\nchecks = [{ run = \"true\" }]\n",
        ..Options::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let bot = Bot::start_in(TEST, &opts, dir, base_time()).await;
    // The head (abc0003) is Bob's.
    let (_, _, failed) = bot.chat.wait_for("❌ main checks failed for abc0003").await;
    assert!(text_of(&failed).contains("(Bob @bob)"), "{failed:?}");
    bot.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_allocation_message_names_the_configured_main_branch() {
    let bot = Bot::start(
        "the_allocation_message_names_the_configured_main_branch",
        Options {
            main_branch: "master",
            ..Options::default()
        },
    )
    .await;
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "is on master and waits"), 1);
    assert_eq!(count_containing(&said, "on main"), 0, "{said:#?}");
}
