//! The Slack adapter: Socket Mode in (no public URL), the Web API out.
//! Each train has one status message, updated in place, whose thread holds
//! the details; the approval request there carries Good / Bad buttons.
//! Messages leave through an outbox task, so a slow or failing Slack (429s,
//! retries) never holds up the engine.

mod blocks;
mod client;
mod dedupe;
mod dm;
mod home;
mod identity;
mod inbound;
mod lanes;
mod listener;
mod outbox;
mod routing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use slack_morphism::prelude::*;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use client::{StartError, Tokens};

use super::{Chat, Incoming, Message, Scope};
use crate::config::SlackSettings;
use crate::domain::ids::{ChatUser, TrainId};
use crate::engine::Snapshot;
use crate::store::AdapterStore;

/// Messages waiting for Slack; past this many, new ones are dropped (logged).
const OUTBOX: usize = 1024;

pub struct Slack {
    outbox: Mutex<Option<Arc<lanes::LaneSenders>>>,
    sender: Mutex<Option<JoinHandle<()>>>,
    identity: identity::Identity,
    listener: SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
    home: Arc<home::Home>,
    web: client::Web,
}

impl Slack {
    /// Checks the bot token and finds every channel, then listens on one
    /// Socket Mode connection for all of them. `channels` are the configured
    /// strings (names or ids) of every pipeline; unscoped messages go to the
    /// first. Commands go to `inbox`; `prefix` is the command prefix
    /// (buttons speak commands).
    pub async fn start(
        cfg: &SlackSettings,
        channels: Vec<String>,
        tokens: Tokens,
        store: AdapterStore,
        prefix: &str,
        inbox: mpsc::Sender<Incoming>,
    ) -> Result<Slack, StartError> {
        let connector = client::connector(&cfg.api_url).map_err(|e| StartError::Api {
            url: cfg.api_url.clone(),
            error: format!("no TLS roots: {e}"),
        })?;
        let client = Arc::new(SlackClient::new(connector));
        let mut unique: Vec<String> = Vec::with_capacity(channels.len());
        for c in channels {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        if unique.is_empty() {
            unique.push(cfg.channel.clone());
        }
        let (web, bot, found) =
            client::Web::connect(client.clone(), cfg, tokens.bot, &unique).await?;
        let channels = routing::Channels::new(found);
        client::check_app_token(&client, cfg, &tokens.app).await?;
        let (listener, rx) = listener::listen(client, &tokens.app, channels.clone())
            .await
            .map_err(|e| StartError::Api {
                url: cfg.api_url.clone(),
                error: e.to_string(),
            })?;
        let home = Arc::new(home::Home::new(web.clone(), store.clone()));
        let dm_web = web.clone();
        let pump = listener::Pump {
            bot,
            channels: channels.clone(),
            dedupe: dedupe::Dedupe::new(store.clone()),
            prefix: prefix.to_string(),
            out: inbox,
            home: home.clone(),
        };
        // Both tasks are restarted if they panic; their queues outlive them.
        let (pump, rx) = (Arc::new(pump), Arc::new(tokio::sync::Mutex::new(rx)));
        crate::supervise::restarting("slack listener", move || {
            let (pump, rx) = (pump.clone(), rx.clone());
            tokio::spawn(async move { pump.run(&mut *rx.lock().await).await })
        });
        let (tx, out_rx) = lanes::lanes(OUTBOX);
        let outbox = Arc::new(outbox::Outbox {
            web: web.clone(),
            store: store.clone(),
            channels,
        });
        let out_rx = Arc::new(tokio::sync::Mutex::new(out_rx));
        let sender = crate::supervise::restarting("slack outbox", move || {
            let (outbox, out_rx) = (outbox.clone(), out_rx.clone());
            tokio::spawn(async move { outbox.run(&mut *out_rx.lock().await).await })
        });
        Ok(Slack {
            outbox: Mutex::new(Some(Arc::new(tx))),
            sender: Mutex::new(Some(sender)),
            identity: identity::Identity::new(web, store),
            listener,
            home,
            web: dm_web,
        })
    }

    /// Reminds `to` in their DM with the bot: `text` with the Good / Bad
    /// buttons of `train` (the same values as the channel's approval
    /// request of that pipeline, so a click counts the same). Sent at once,
    /// not through the outbox; false when Slack refused.
    pub async fn remind(
        &self,
        scope: Option<&Scope>,
        to: &ChatUser,
        train: TrainId,
        text: &str,
    ) -> bool {
        let value = routing::Keys::for_scope(scope).button_value(train);
        let text = crate::chat::masked_text(text);
        dm::remind(&self.web, to, &value, &text).await.is_some()
    }

    /// What the Home tab shows: each pipeline's snapshots, by name. Tabs
    /// already opened are published again when a train changes stage.
    pub fn set_home(&self, pipelines: Vec<(String, watch::Receiver<Arc<Snapshot>>)>) {
        self.home.set(pipelines);
    }

    /// Stops listening, then gives the outbox a few seconds to drain.
    pub async fn shutdown(&self) {
        self.listener.shutdown().await;
        drop(self.outbox.lock().expect("outbox").take());
        let sender = self.sender.lock().expect("sender").take();
        if let Some(sender) = sender
            && tokio::time::timeout(Duration::from_secs(5), sender)
                .await
                .is_err()
        {
            tracing::warn!("Slack messages still unsent at shutdown were dropped.");
        }
    }
}

impl Slack {
    fn queue(&self, scope: Option<Scope>, msg: Message) {
        let outbox = self.outbox.lock().expect("outbox").clone();
        let Some(outbox) = outbox else {
            return;
        };
        if let Err(error) = outbox.try_send((scope, msg)) {
            tracing::warn!(%error, "Slack outbox full; a message was dropped.");
        }
    }
}

#[async_trait]
impl Chat for Slack {
    async fn send(&self, msg: Message) {
        self.queue(None, msg);
    }

    async fn send_in(&self, scope: &Scope, msg: Message) {
        self.queue(Some(scope.clone()), msg);
    }

    async fn lookup_email(&self, email: &str) -> Option<ChatUser> {
        self.identity.lookup(email).await
    }
}
