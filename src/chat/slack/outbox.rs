//! Sends messages in order; owns the status and approval message refs
//! (kept in the chat notes, so a restart still updates its messages).

use slack_morphism::prelude::*;

use super::blocks;
use super::client::Web;
use super::lanes::Lanes;
use super::routing::{Channels, Keys};
use crate::chat::{Message, Scope};
use crate::store::AdapterStore;

pub struct Outbox {
    pub web: Web,
    pub store: AdapterStore,
    pub channels: Channels,
}

impl Outbox {
    pub async fn run(&self, lanes: &mut Lanes) {
        while let Some((scope, msg)) = lanes.next().await {
            self.deliver(scope.as_ref(), msg).await;
        }
    }

    fn note(&self, key: &str) -> Option<SlackTs> {
        match self.store.chat_note(key) {
            // An empty note is a cleared one.
            Ok(v) => v.filter(|v| !v.is_empty()).map(SlackTs),
            Err(error) => {
                tracing::warn!(%error, key, "Cannot read a Slack message ref.");
                None
            }
        }
    }

    fn set_note(&self, key: &str, value: &str) {
        if let Err(error) = self.store.set_chat_note(key, value) {
            tracing::warn!(%error, key, "Cannot store a Slack message ref.");
        }
    }

    /// The scope's channel. One not resolved at start is a wiring mistake;
    /// its messages still show, in the first channel, rather than vanish.
    fn channel(&self, scope: Option<&Scope>) -> &SlackChannelId {
        let Some(scope) = scope else {
            return self.channels.first();
        };
        self.channels.id_of(&scope.channel).unwrap_or_else(|| {
            tracing::warn!(
                pipeline = scope.pipeline,
                channel = scope.channel,
                "A Slack channel not given at start; using the first one."
            );
            self.channels.first()
        })
    }

    pub async fn deliver(&self, scope: Option<&Scope>, msg: Message) {
        let channel = self.channel(scope);
        let keys = Keys::for_scope(scope);
        match msg {
            Message::Reply {
                to,
                text,
                private: true,
                thread,
            } => {
                let content = blocks::plain(&text);
                let thread = thread.map(SlackTs);
                self.web
                    .ephemeral(channel, to.as_str(), content, thread)
                    .await
            }
            Message::Reply {
                to, text, thread, ..
            } => {
                // A command typed in a thread is answered in that thread.
                let content = blocks::reply(&to, &text);
                self.web
                    .post(channel, content, thread.map(SlackTs), false)
                    .await;
            }
            // A channel fallback until reminders go out as direct messages.
            Message::Remind { to, train, text } => {
                // A direct message with this train's buttons; if Slack will
                // not open the DM, the channel hears it, mentioning them.
                let value = keys.button_value(train);
                if super::dm::remind(&self.web, &to, &value, &text)
                    .await
                    .is_none()
                {
                    let content = blocks::reply(&to, &text);
                    self.web.post(channel, content, None, false).await;
                }
            }
            Message::Notice { run, text } => {
                let thread = run.and_then(|r| self.note(&keys.status(r)));
                self.web
                    .post(channel, blocks::plain(&text), thread, false)
                    .await;
            }
            Message::Status { run, text, url } => {
                let content = blocks::status(&text, &url);
                let key = keys.status(run);
                match self.note(&key) {
                    Some(ts) => {
                        self.web.update(channel, ts, content).await;
                    }
                    None => {
                        if let Some(ts) = self.web.post(channel, content, None, false).await {
                            self.set_note(&key, &ts.0);
                        }
                    }
                }
            }
            Message::Approval { train, text } => {
                let thread = self.note(&keys.status(crate::chat::Run::Train(train)));
                let value = keys.button_value(train);
                let content = blocks::approval(&value, &text, &[], true);
                // Open before it shows: a click may come at once.
                self.set_note(&keys.open_approval(), &train.0.to_string());
                if let Some(ts) = self.web.post(channel, content, thread, true).await {
                    self.set_note(&keys.approval(train), &ts.0);
                    self.set_note(&keys.approval_text(train), &text);
                }
            }
            Message::ApprovalProgress {
                train,
                approved_by,
                open,
            } => {
                let open_key = keys.open_approval();
                if !open
                    && self
                        .note(&open_key)
                        .is_some_and(|t| t.0 == train.0.to_string())
                {
                    self.set_note(&open_key, "");
                }
                let (Some(ts), Some(text)) = (
                    self.note(&keys.approval(train)),
                    self.note(&keys.approval_text(train)),
                ) else {
                    return;
                };
                let value = keys.button_value(train);
                let content = blocks::approval(&value, &text.0, &approved_by, open);
                self.web.update(channel, ts, content).await;
                if !open {
                    // Closed for good: later progress (the train's end) is not news.
                    self.set_note(&keys.approval(train), "");
                }
            }
        }
    }
}
