//! The Slack adapter driven directly (no binary, no engine) against the
//! fake Slack holding two channels: one connection serves both, each
//! pipeline speaks in its own channel with its own message refs, and what
//! people say arrives tagged with the channel it was said in.

#[path = "support/fake_slack.rs"]
mod fake_slack;

use std::time::Duration;

use fake_slack::{
    APP_TOKEN, BOT_TOKEN, CHANNEL_ID, CHANNEL2_ID, CHANNEL2_NAME, Call, FakeSlack, dm_of, envelope,
};
use slack_morphism::prelude::SlackApiToken;
use tokio::sync::mpsc;
use trainbot::chat::slack::{Slack, StartError, Tokens};
use trainbot::chat::{Chat, Incoming, Message, Run, Scope};
use trainbot::config::SlackSettings;
use trainbot::domain::ids::{ChatUser, TrainId};
use trainbot::store::Store;

/// The one upper bound for every wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

const ALICE: &str = "U0ALICE";

struct Bot {
    slack: Slack,
    inbox: mpsc::Receiver<Incoming>,
    _dir: tempfile::TempDir,
}

async fn start(fake: &FakeSlack, channels: &[&str]) -> Result<Bot, StartError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let cfg = SlackSettings {
        channel: channels[0].to_string(),
        bot_token_env: "UNUSED_BOT".into(),
        app_token_env: "UNUSED_APP".into(),
        api_url: fake.api_url.clone(),
    };
    let tokens = Tokens {
        bot: SlackApiToken::new(BOT_TOKEN.to_string().into()),
        app: SlackApiToken::new(APP_TOKEN.to_string().into()),
    };
    let (tx, inbox) = mpsc::channel(16);
    let channels = channels.iter().map(|c| c.to_string()).collect();
    let slack = Slack::start(&cfg, channels, tokens, store.adapter_handle(), "!", tx).await?;
    Ok(Bot {
        slack,
        inbox,
        _dir: dir,
    })
}

fn scope(pipeline: &str, channel: &str, multi: bool) -> Scope {
    Scope {
        pipeline: pipeline.into(),
        channel: channel.into(),
        multi,
        shared: false,
    }
}

fn status(train: u64, text: &str) -> Message {
    Message::Status {
        run: Run::Train(TrainId(train)),
        text: text.into(),
        url: "http://bot/runs".into(),
    }
}

/// The successful `method` call whose text contains `needle`.
async fn wait_call(fake: &FakeSlack, method: &'static str, needle: &str) -> Call {
    fake.wait_for(&format!("{method} with {needle:?}"), |s| {
        s.calls_to(method)
            .into_iter()
            .find(|c| c.text().contains(needle))
            .cloned()
    })
    .await
}

async fn next(bot: &mut Bot) -> Incoming {
    tokio::time::timeout(TIMEOUT, bot.inbox.recv())
        .await
        .expect("an input in time")
        .expect("the inbox is open")
}

#[tokio::test]
async fn each_pipeline_posts_and_updates_in_its_own_channel() {
    let fake = FakeSlack::start().await;
    let web = scope("web", "#web-deploys", true);
    let api = scope("api", "#deploys", true);
    let bot = start(&fake, &["#deploys", "#web-deploys", "#deploys"])
        .await
        .unwrap();

    // Both pipelines have a train #1: their refs must not mix.
    bot.slack.send_in(&web, status(1, "web one")).await;
    bot.slack.send_in(&api, status(1, "api one")).await;
    let web_post = wait_call(&fake, "chat.postMessage", "web one").await;
    let api_post = wait_call(&fake, "chat.postMessage", "api one").await;
    assert_eq!(web_post.args["channel"], CHANNEL2_ID);
    assert_eq!(api_post.args["channel"], CHANNEL_ID);

    bot.slack.send_in(&web, status(1, "web two")).await;
    let update = wait_call(&fake, "chat.update", "web two").await;
    assert_eq!(update.args["channel"], CHANNEL2_ID);
    assert_eq!(update.args["ts"].as_str(), web_post.ts.as_deref());

    bot.slack
        .send_in(
            &web,
            Message::Approval {
                train: TrainId(1),
                text: "web approve?".into(),
            },
        )
        .await;
    let approval = wait_call(&fake, "chat.postMessage", "web approve?").await;
    assert_eq!(approval.args["channel"], CHANNEL2_ID);
    assert_eq!(approval.thread_ts(), web_post.ts.as_deref());
    let blocks = approval.args["blocks"].as_array().unwrap();
    let buttons = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(buttons["elements"][0]["value"], "web#1");

    // Unscoped messages keep going to the first channel.
    bot.slack
        .send(Message::Notice {
            run: None,
            text: "unscoped".into(),
        })
        .await;
    let notice = wait_call(&fake, "chat.postMessage", "unscoped").await;
    assert_eq!(notice.args["channel"], CHANNEL_ID);
    bot.slack.shutdown().await;
}

#[tokio::test]
async fn a_single_pipeline_keeps_the_refs_and_buttons_it_had() {
    let fake = FakeSlack::start().await;
    let only = scope("repo", "#deploys", false);
    let bot = start(&fake, &["#deploys"]).await.unwrap();
    // Written by a version without scopes, updated by one with.
    bot.slack.send(status(4, "before")).await;
    let post = wait_call(&fake, "chat.postMessage", "before").await;
    bot.slack.send_in(&only, status(4, "after")).await;
    let update = wait_call(&fake, "chat.update", "after").await;
    assert_eq!(update.args["ts"].as_str(), post.ts.as_deref());

    let approval = Message::Approval {
        train: TrainId(4),
        text: "approve?".into(),
    };
    bot.slack.send_in(&only, approval).await;
    let approval = wait_call(&fake, "chat.postMessage", "approve?").await;
    let blocks = approval.args["blocks"].as_array().unwrap();
    let buttons = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(buttons["elements"][0]["value"], "4");
    bot.slack.shutdown().await;
}

#[tokio::test]
async fn inputs_carry_the_configured_channel_they_came_from() {
    let fake = FakeSlack::start().await;
    let mut bot = start(&fake, &["#deploys", CHANNEL2_ID]).await.unwrap();

    let other = envelope::message_in("C0OTHER", "e0", "Ev0", ALICE, "!status", "1.000001");
    fake.send_envelope(other).await;
    let web = envelope::message_in(CHANNEL2_ID, "e1", "Ev1", ALICE, "!status", "1.000002");
    fake.send_envelope(web).await;
    // The message in a channel not configured never arrives: this is the next.
    let got = next(&mut bot).await;
    assert_eq!(got.channel.as_deref(), Some(CHANNEL2_ID));
    assert_eq!((got.text.as_str(), got.pipeline), ("!status", None));

    let api = envelope::message_in(CHANNEL_ID, "e2", "Ev2", ALICE, "!depart", "1.000003");
    fake.send_envelope(api).await;
    let got = next(&mut bot).await;
    assert_eq!(got.channel.as_deref(), Some("#deploys"));
    assert_eq!(got.text, "!depart");

    let click = envelope::click_in(
        (CHANNEL2_ID, CHANNEL2_NAME),
        "e3",
        ALICE,
        "good",
        "web#12",
        "1.000004",
    );
    fake.send_envelope(click).await;
    let got = next(&mut bot).await;
    assert!(got.button);
    assert_eq!(got.channel.as_deref(), Some(CHANNEL2_ID));
    assert_eq!(got.pipeline.as_deref(), Some("web"));
    assert_eq!(got.train, Some(TrainId(12)));
    assert_eq!(got.text, "!good 12");
    bot.slack.shutdown().await;
}

#[tokio::test]
async fn a_reminder_goes_to_the_person_s_dm_with_buttons_that_count() {
    let fake = FakeSlack::start().await;
    let web = scope("web", "#web-deploys", true);
    let mut bot = start(&fake, &["#deploys", "#web-deploys"]).await.unwrap();

    let sent = bot
        .slack
        .remind(
            Some(&web),
            &ChatUser::new(ALICE),
            TrainId(3),
            "train #3 waits for your approval",
        )
        .await;
    assert!(sent);
    let open = fake.with(|s| s.calls_to("conversations.open")[0].args.clone());
    assert_eq!(open["users"], serde_json::json!([ALICE]));
    let dm = dm_of(ALICE);
    let post = wait_call(&fake, "chat.postMessage", "train #3 waits").await;
    assert_eq!(post.args["channel"], dm.as_str());
    let blocks = post.args["blocks"].as_array().unwrap();
    let buttons = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(buttons["elements"][0]["action_id"], "good");
    assert_eq!(buttons["elements"][0]["value"], "web#3");
    assert_eq!(buttons["elements"][1]["action_id"], "bad");

    // Clicked there: the same input as a click in the channel, with no
    // channel (a DM is not one of the pipelines' channels).
    let click = envelope::click_in(
        (&dm, "directmessage"),
        "e1",
        ALICE,
        "good",
        "web#3",
        post.ts.as_deref().unwrap(),
    );
    fake.send_envelope(click).await;
    let got = next(&mut bot).await;
    assert!(got.button);
    assert_eq!(got.text, "!good 3");
    assert_eq!(got.train, Some(TrainId(3)));
    assert_eq!(got.pipeline.as_deref(), Some("web"));
    assert_eq!(got.channel, None);
    // Typed text in a DM is not a command.
    let typed = envelope::message_in(&dm, "e2", "Ev2", ALICE, "!depart", "1.000009");
    fake.send_envelope(typed).await;
    let later = envelope::message_in(CHANNEL_ID, "e3", "Ev3", ALICE, "!status", "1.000010");
    fake.send_envelope(later).await;
    assert_eq!(next(&mut bot).await.text, "!status");
    bot.slack.shutdown().await;
}

#[tokio::test]
async fn a_slash_command_arrives_as_a_command_from_its_channel() {
    let fake = FakeSlack::start().await;
    let mut bot = start(&fake, &["#deploys", CHANNEL2_ID]).await.unwrap();
    fake.send_envelope(envelope::slash("s1", CHANNEL2_ID, ALICE, "status web"))
        .await;
    let got = next(&mut bot).await;
    assert_eq!(got.text, "!status web");
    assert_eq!(got.channel.as_deref(), Some(CHANNEL2_ID));
    assert_eq!((got.button, got.thread), (false, None));
    bot.slack.shutdown().await;
}

#[tokio::test]
async fn an_unknown_channel_among_several_is_named() {
    let fake = FakeSlack::start().await;
    let err = start(&fake, &["#deploys", "#nope"]).await.err().unwrap();
    assert!(err.is_config());
    assert_eq!(
        err.to_string(),
        StartError::NoSuchChannel("#nope".into()).to_string()
    );
    assert_eq!(
        fake.with(|s| s.connections),
        0,
        "no Socket Mode connection before the config is right"
    );
}
