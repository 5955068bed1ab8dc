//! `POST /webhooks/github` end to end: signatures, redelivery, bad bodies,
//! and polling as the fallback when webhooks are off.

use crate::fake_github::{post_webhook, signature};
use crate::support::{BotConfig, GITHUB_TOKEN_ENV, short};
use crate::{Github, SECRET, TOKEN};

/// Polling only at start: later commits reach the bot by webhook alone.
fn webhooks_only() -> BotConfig {
    BotConfig {
        poll_interval: "1h",
        ..BotConfig::default()
    }
}

#[test]
fn a_signed_push_allocates_once_and_forged_ones_do_nothing() {
    let mut gh = Github::start(webhooks_only());
    let sha = gh
        .fake
        .commit("main", "Bob", "bob@example.com", Some("bob"), "Blue");
    let body = gh
        .fake
        .push_event(
            "refs/heads/main",
            &"0".repeat(40),
            &sha,
            Some("Blue"),
            "bob",
        )
        .to_string();
    let url = gh.webhook_url();

    let wrong = signature("not the secret", body.as_bytes());
    let (status, _) = post_webhook(&url, "push", "d-1", body.as_bytes(), Some(&wrong));
    assert_eq!(status, 401);
    let (status, _) = post_webhook(&url, "push", "d-2", body.as_bytes(), None);
    assert_eq!(status, 401);

    let (status, text) = gh.deliver("push", "d-3", body.as_bytes());
    assert_eq!((status, text.as_str()), (202, "accepted"));
    // Nothing was said for the forged deliveries: this is the next line.
    let line = gh.bot.next_line();
    assert!(line.contains(&format!("📥 {}", short(&sha))), "{line}");

    let (status, text) = gh.deliver("push", "d-3", body.as_bytes());
    assert_eq!((status, text.as_str()), (200, "already seen"));
    gh.bot.ask("!status", "waiting");
    assert_eq!(gh.bot.said("📥").len(), 2, "allocated once");
    gh.bot.stop();
}

#[test]
fn a_redelivery_is_ignored_after_a_restart_too() {
    let mut gh = Github::start(webhooks_only());
    let sha = gh
        .fake
        .commit("main", "Bob", "bob@example.com", Some("bob"), "Blue");
    let (status, _) = gh.push("refs/heads/main", &sha, "d-restart");
    assert_eq!(status, 202);
    gh.bot.expect_allocated(&sha);
    let url = gh.webhook_url();
    let Github { fake, bot, .. } = gh;
    let config = bot.config_path();
    bot.stop();
    let env = [
        (GITHUB_TOKEN_ENV, TOKEN),
        (crate::support::WEBHOOK_SECRET_ENV, SECRET),
    ];
    let mut bot = crate::support::Bot::spawn_with_env(&config, &env);
    bot.ask("!status", "waiting");
    let (status, text) = crate::push(&fake, &url, "refs/heads/main", &sha, "d-restart");
    assert_eq!((status, text.as_str()), (200, "already seen"));
    bot.stop();
}

#[test]
fn bad_bodies_get_their_status_and_change_nothing() {
    let mut gh = Github::start(webhooks_only());
    let (status, text) = gh.deliver("ping", "p-1", br#"{"zen":"Keep it logically awesome."}"#);
    assert_eq!((status, text.as_str()), (200, "pong"));
    let (status, text) = gh.deliver("push", "m-1", b"{not json");
    assert_eq!(status, 400, "{text}");
    assert!(text.starts_with("malformed JSON"), "{text}");
    let big = vec![b' '; (1 << 20) + 1];
    let (status, _) = gh.deliver("push", "b-1", &big);
    assert_eq!(status, 413);
    let (status, text) = gh.deliver("issues", "i-1", br#"{"action":"opened"}"#);
    assert_eq!((status, text.as_str()), (202, "ignored"));
    // A run changed on GitHub: workflow steps look now; the chat hears nothing.
    let run = br#"{"action":"completed","workflow_run":{"id":7}}"#;
    let (status, text) = gh.deliver("workflow_run", "w-1", run);
    assert_eq!((status, text.as_str()), (202, "accepted"));
    // None of it reached the chat: the next line answers this command.
    gh.bot.send("!status");
    let line = gh.bot.next_line();
    assert!(!line.contains("📥"), "{line}");
    gh.bot.stop();
}

#[test]
fn polling_finds_merges_when_webhooks_are_off() {
    // No webhook secret in the environment: deliveries are refused.
    let mut gh = Github::start_with_env(BotConfig::default(), &[(GITHUB_TOKEN_ENV, TOKEN)]);
    let sha = gh
        .fake
        .commit("main", "Bob", "bob@example.com", Some("bob"), "Blue");
    let (status, _) = gh.push("refs/heads/main", &sha, "d-off");
    assert_eq!(status, 401);
    gh.bot.expect_allocated(&sha);
    gh.bot.stop();
}

#[test]
fn webhook_and_polling_allocate_a_sha_once() {
    let mut gh = Github::start(BotConfig::default());
    let sha = gh
        .fake
        .commit("main", "Bob", "bob@example.com", Some("bob"), "Blue");
    let (status, _) = gh.push("refs/heads/main", &sha, "d-both");
    assert_eq!(status, 202);
    gh.bot.expect_allocated(&sha);
    // Let the poller see the same head before looking.
    gh.fake.wait_for_calls("two more polls of main", |calls| {
        calls
            .iter()
            .filter(|c| c.path.contains("/branches/main"))
            .count()
            >= 3
    });
    gh.bot.ask("!status", "waiting");
    assert_eq!(gh.bot.said(&format!("📥 {}", short(&sha))).len(), 1);
    gh.bot.stop();
}

#[test]
fn a_late_delivery_of_an_older_push_does_not_make_its_sha_the_newest() {
    let mut gh = Github::start(webhooks_only());
    let older = gh
        .fake
        .commit("main", "Bob", "bob@example.com", Some("bob"), "First");
    let newer = gh
        .fake
        .commit("main", "Bob", "bob@example.com", Some("bob"), "Second");
    // GitHub delivers the second push first.
    assert_eq!(gh.push("refs/heads/main", &newer, "p-2").0, 202);
    gh.bot.expect_allocated(&newer);
    assert_eq!(gh.push("refs/heads/main", &older, "p-1").0, 202);
    let status = gh.bot.ask("!status", "waiting:");
    assert!(status.ends_with(short(&newer)), "{status}");
    assert!(!status.contains(short(&older)), "{status}");
    assert!(gh.bot.said(&format!("📥 {}", short(&older))).is_empty());
    gh.bot.stop();
}
