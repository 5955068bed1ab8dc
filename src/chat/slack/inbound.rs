//! What arrives over Socket Mode, reduced to what the bot acts on: a text
//! from a person in our channel, or a click on a Good / Bad button. Pure:
//! no I/O here, so every filter has a unit test.

use slack_morphism::prelude::*;

/// An input before the channel, bot and duplicate checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Keys that identify this input: seen before means delivered before.
    pub keys: Vec<String>,
    pub channel: Option<String>,
    pub user: String,
    /// The thread it was typed in (`thread_ts`).
    pub thread: Option<String>,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    Text(String),
    /// `/trainbot <text>`: the command without its prefix.
    Slash(String),
    /// The user opened the app's Home tab.
    HomeOpened,
    /// `action_id` is "good" or "bad", `train` the button's value.
    Click {
        action: Action,
        train: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Good,
    Bad,
}

/// A `message` or `app_mention` event from a person; `None` for anything
/// else (bots, edits, joins, other event types).
pub fn from_push(ev: &SlackPushEventCallback) -> Option<Inbound> {
    let event_key = format!("event:{}", ev.event_id.0);
    if let SlackEventCallbackBody::AppHomeOpened(h) = &ev.event {
        if h.tab.as_deref().is_some_and(|t| t != "home") {
            return None;
        }
        return Some(Inbound {
            keys: vec![event_key],
            channel: None,
            user: h.user.0.clone(),
            thread: None,
            what: What::HomeOpened,
        });
    }
    let (channel, ts, thread, user, text) = match &ev.event {
        SlackEventCallbackBody::Message(m) => {
            let plain =
                m.subtype.is_none() || m.subtype == Some(SlackMessageEventType::ThreadBroadcast);
            if !plain || m.sender.bot_id.is_some() {
                return None;
            }
            (
                m.origin.channel.as_ref().map(|c| c.0.clone()),
                &m.origin.ts,
                m.origin.thread_ts.as_ref(),
                m.sender.user.as_ref()?.0.clone(),
                m.content.as_ref()?.text.clone()?,
            )
        }
        SlackEventCallbackBody::AppMention(m) => (
            Some(m.channel.0.clone()),
            &m.origin.ts,
            m.origin.thread_ts.as_ref(),
            m.user.0.clone(),
            m.content.text.clone()?,
        ),
        _ => return None,
    };
    // A message that mentions the bot comes twice (message and app_mention,
    // with different event ids): the message's own ts joins them.
    let message_key = format!("msg:{}:{}", channel.as_deref().unwrap_or("-"), ts.0);
    Some(Inbound {
        keys: vec![event_key, message_key],
        channel,
        user,
        thread: thread.map(|t| t.0.clone()),
        what: What::Text(text),
    })
}

/// A `/trainbot …` slash command.
pub fn from_command(ev: &SlackCommandEvent) -> Inbound {
    Inbound {
        keys: vec![format!("slash:{}", ev.trigger_id.0)],
        channel: Some(ev.channel_id.0.clone()),
        user: ev.user_id.0.clone(),
        thread: None,
        what: What::Slash(ev.text.clone().unwrap_or_default().trim().to_string()),
    }
}

/// A click on one of our buttons.
pub fn from_interaction(ev: &SlackInteractionEvent) -> Option<Inbound> {
    let SlackInteractionEvent::BlockActions(ev) = ev else {
        return None;
    };
    let action = ev.actions.as_ref()?.first()?;
    let what = match action.action_id.0.as_str() {
        "good" => Action::Good,
        "bad" => Action::Bad,
        _ => return None,
    };
    // A redelivered envelope carries the same trigger id.
    Some(Inbound {
        keys: vec![format!("click:{}", ev.trigger_id.0)],
        channel: ev.channel.as_ref().map(|c| c.id.0.clone()),
        user: ev.user.as_ref()?.id.0.clone(),
        thread: None,
        what: What::Click {
            action: what,
            train: action.value.clone().unwrap_or_default(),
        },
    })
}

/// Drops a leading `<@BOT>` mention: `<@U0BOT> !status` is `!status`.
pub fn strip_mention<'a>(text: &'a str, bot_user: &str) -> &'a str {
    let text = text.trim();
    let mention = format!("<@{bot_user}>");
    match text.strip_prefix(&mention) {
        Some(rest) => rest.trim_start_matches([':', ',']).trim(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(event: serde_json::Value) -> SlackPushEventCallback {
        serde_json::from_value(serde_json::json!({
            "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1", "event_time": 1700000000,
            "type": "event_callback", "event": event
        }))
        .unwrap()
    }

    #[test]
    fn a_person_s_message_is_an_input_keyed_by_event_and_message() {
        let ev = push(serde_json::json!({
            "type": "message", "channel": "C1", "user": "U1", "text": "!status",
            "ts": "1700000000.000100", "channel_type": "channel"
        }));
        let got = from_push(&ev).unwrap();
        assert_eq!(got.user, "U1");
        assert_eq!(got.channel.as_deref(), Some("C1"));
        assert_eq!(got.what, What::Text("!status".into()));
        assert_eq!(got.keys, ["event:Ev1", "msg:C1:1700000000.000100"]);
    }

    #[test]
    fn a_message_in_a_thread_carries_its_thread() {
        let ev = push(serde_json::json!({
            "type": "message", "channel": "C1", "user": "U1", "text": "!status",
            "ts": "1700000000.000200", "thread_ts": "1700000000.000100", "channel_type": "channel"
        }));
        let got = from_push(&ev).unwrap();
        assert_eq!(got.thread.as_deref(), Some("1700000000.000100"));
    }

    #[test]
    fn a_slash_command_is_read_from_the_real_payload() {
        let ev: SlackCommandEvent = serde_json::from_value(serde_json::json!({
            "token": "t", "team_id": "T1", "team_domain": "fake", "channel_id": "C1",
            "channel_name": "deploys", "user_id": "U1", "user_name": "ann",
            "command": "/trainbot", "text": " status web ", "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T1/1/x", "trigger_id": "tr9"
        }))
        .unwrap();
        let got = from_command(&ev);
        assert_eq!(got.keys, ["slash:tr9"]);
        assert_eq!(got.channel.as_deref(), Some("C1"));
        assert_eq!(got.user, "U1");
        assert_eq!(got.what, What::Slash("status web".into()));
    }

    #[test]
    fn opening_the_home_tab_is_read() {
        let ev = push(serde_json::json!({
            "type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
            "event_ts": "1700000000.000100"
        }));
        let got = from_push(&ev).unwrap();
        assert_eq!((got.user.as_str(), &got.what), ("U1", &What::HomeOpened));
        let messages = push(serde_json::json!({
            "type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "messages",
            "event_ts": "1700000000.000100"
        }));
        assert_eq!(from_push(&messages), None);
    }

    #[test]
    fn bots_and_edits_are_ignored() {
        let bot = push(serde_json::json!({
            "type": "message", "channel": "C1", "bot_id": "B1", "text": "hi", "ts": "1.2"
        }));
        assert_eq!(from_push(&bot), None);
        let bot_message = push(serde_json::json!({
            "type": "message", "subtype": "bot_message", "channel": "C1", "text": "hi", "ts": "1.2"
        }));
        assert_eq!(from_push(&bot_message), None);
        let edit = push(serde_json::json!({
            "type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1.2",
            "message": {"text": "!depart", "user": "U1", "ts": "1.1"}
        }));
        assert_eq!(from_push(&edit), None);
    }

    #[test]
    fn an_app_mention_shares_the_message_key() {
        let ev = push(serde_json::json!({
            "type": "app_mention", "channel": "C1", "user": "U1",
            "text": "<@U0BOT> !status", "ts": "1700000000.000100"
        }));
        let got = from_push(&ev).unwrap();
        assert_eq!(got.keys[1], "msg:C1:1700000000.000100");
        let What::Text(text) = &got.what else {
            panic!()
        };
        assert_eq!(strip_mention(text, "U0BOT"), "!status");
    }

    #[test]
    fn a_leading_mention_of_the_bot_is_dropped_and_others_kept() {
        assert_eq!(strip_mention("<@U0BOT>: !good 3", "U0BOT"), "!good 3");
        assert_eq!(strip_mention("  !status ", "U0BOT"), "!status");
        assert_eq!(strip_mention("<@U9> !status", "U0BOT"), "<@U9> !status");
    }

    #[test]
    fn a_good_button_click_is_read() {
        let ev: SlackInteractionEvent = serde_json::from_value(serde_json::json!({
            "type": "block_actions",
            "team": {"id": "T1"}, "user": {"id": "U1"}, "api_app_id": "A1",
            "trigger_id": "tr1",
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
            "channel": {"id": "C1", "name": "deploys"},
            "actions": [{"type": "button", "action_id": "good", "block_id": "b",
                         "value": "3", "action_ts": "1.3"}]
        }))
        .unwrap();
        let got = from_interaction(&ev).unwrap();
        assert_eq!(got.keys, ["click:tr1"]);
        assert_eq!(
            got.what,
            What::Click {
                action: Action::Good,
                train: "3".into()
            }
        );
    }
}
