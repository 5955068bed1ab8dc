//! SPEC §11 "tag source" on the github forge: only the configured
//! repository's tag pushes count, a queued tag is read again right before
//! it leaves, and a tag GitHub keeps failing is given up after its limit.

use crate::Github;
use crate::support::{BotConfig, short};

fn tags_by_webhook() -> BotConfig {
    BotConfig {
        tags: true,
        // Polls only at start: tags come by the webhook alone.
        poll_interval: "1h",
        ..BotConfig::default()
    }
}

#[test]
fn a_tag_push_from_another_repository_is_ignored() {
    let mut gh = Github::start(tags_by_webhook());
    let sha = gh.fake.head("main");
    gh.fake.tag("v1.0.0", &sha);
    let mut body = gh.fake.push_event(
        "refs/tags/v1.0.0",
        &"0".repeat(40),
        &sha,
        Some("x"),
        "mallory",
    );
    body["repository"]["full_name"] = "mallory/web".into();
    let (status, text) = gh.deliver("push", "t-foreign", body.to_string().as_bytes());
    assert_eq!((status, text.as_str()), (202, "ignored"));
    // The same push from acme/web (any case) deploys: the repository was
    // the only difference.
    gh.bot.ask("!status", "production: nothing deployed yet");
    assert!(gh.bot.said("🏷").is_empty() && gh.bot.said("🚂").is_empty());
    body["repository"]["full_name"] = "Acme/Web".into();
    let (status, text) = gh.deliver("push", "t-ours", body.to_string().as_bytes());
    assert_eq!((status, text.as_str()), (202, "accepted"));
    gh.bot
        .expect("🚂 train #1 deploys tag v1.0.0 to production");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&sha)
    ));
    gh.bot.stop();
}

#[test]
fn a_tag_deleted_while_it_waits_is_dropped_and_said_once() {
    let mut gh = Github::start(tags_by_webhook());
    let sha = gh.fake.head("main");
    gh.bot.ask("!depart", "🚂 train #1 departs");
    gh.bot.expect("🙋 train #1");
    gh.fake.tag("v1.0.0", &sha);
    let (status, _) = gh.push("refs/tags/v1.0.0", &sha, "t-1");
    assert_eq!(status, 202);
    gh.bot.expect(&format!(
        "🏷 tag v1.0.0 ({}) pushed by alice waits: train #1 is running",
        short(&sha)
    ));
    // Deleted on GitHub; the deletion's own push is not needed (nor sent).
    gh.fake.delete_tag("v1.0.0");
    gh.bot.ask("!cancel", "🛑 train #1 cancelled");
    gh.bot.expect(&format!(
        "🏷 tag v1.0.0 ({}) was deleted while it waited; its deploy is dropped",
        short(&sha)
    ));
    gh.fake.wait_for_call("/git/ref/tags/v1.0.0");
    // "tags waiting" would come before this line of the reply.
    gh.bot.ask("!status", "production: nothing deployed yet");
    assert!(gh.bot.said("tags waiting").is_empty());
    assert_eq!(gh.bot.said("was deleted").len(), 1);
    assert!(gh.bot.said("train #2").is_empty());
    assert!(gh.sandbox.deploys_to("production").is_empty());
    gh.bot.stop();
}

#[test]
fn a_tag_whose_commits_cannot_be_listed_is_given_up_after_its_limit() {
    let mut gh = Github::start(BotConfig {
        tags_give_up_after: Some("3s"),
        ..tags_by_webhook()
    });
    let sha = gh.fake.head("main");
    // A reply retrying will not change: every listing fails at once.
    gh.fake.fail_next("/commits?sha=", 422, 1000);
    gh.fake.tag("v1.0.0", &sha);
    let (status, _) = gh.push("refs/tags/v1.0.0", &sha, "t-1");
    assert_eq!(status, 202);
    let first = gh
        .bot
        .expect(&format!("🏷 tag v1.0.0 ({}) cannot leave yet:", short(&sha)));
    assert!(
        first.ends_with("trying again with backoff for up to 3s"),
        "{first}"
    );
    gh.bot.expect(&format!(
        "🏷 tag v1.0.0 ({}) dropped: the forge failed it for 3s",
        short(&sha)
    ));
    // Tried with backoff from 750ms (a quarter of the limit), not once:
    // at 0, 0.75s, 2.25s and on the limit.
    let tries = gh
        .fake
        .calls_to("/commits?sha=")
        .iter()
        .filter(|c| c.status == 422)
        .count();
    assert_eq!(tries, 4, "listings of the tag's commits");
    // "tags waiting" would come before this line of the reply.
    gh.bot.ask("!status", "production: nothing deployed yet");
    assert!(gh.bot.said("tags waiting").is_empty());
    // Chat heard the first failure and the giving up, nothing per retry.
    assert_eq!(gh.bot.said("🏷 tag v1.0.0").len(), 2);
    assert!(gh.bot.said("🚂").is_empty());
    gh.bot.stop();
}
