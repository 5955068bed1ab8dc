//! The Slack adapter: Socket Mode in (no public URL), the Web API out.
//! Each train has one status message, updated in place, whose thread holds
//! the details; the approval request there carries Good / Bad buttons.
//! Messages leave through an outbox task, so a slow or failing Slack (429s,
//! retries) never holds up the engine.

mod blocks;
mod client;
mod dedupe;
mod identity;
mod inbound;
mod lanes;
mod listener;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use slack_morphism::prelude::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use client::{StartError, Tokens};

use self::listener::OPEN_APPROVAL;
use super::{Chat, Incoming, Message, Run};
use crate::config::SlackSettings;
use crate::domain::ids::{ChatUser, TrainId};
use crate::store::AdapterStore;

/// Messages waiting for Slack; past this many, new ones are dropped (logged).
const OUTBOX: usize = 1024;

pub struct Slack {
    outbox: Mutex<Option<Arc<lanes::LaneSenders>>>,
    sender: Mutex<Option<JoinHandle<()>>>,
    identity: identity::Identity,
    listener: SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
}

impl Slack {
    /// Checks the bot token and the channel, then listens. Commands go to
    /// `inbox`; `prefix` is the command prefix (buttons speak commands).
    pub async fn start(
        cfg: &SlackSettings,
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
        let (web, bot) = client::Web::connect(client.clone(), cfg, tokens.bot).await?;
        client::check_app_token(&client, cfg, &tokens.app).await?;
        let (listener, rx) =
            listener::listen(client, &tokens.app)
                .await
                .map_err(|e| StartError::Api {
                    url: cfg.api_url.clone(),
                    error: e.to_string(),
                })?;
        let pump = listener::Pump {
            web: web.clone(),
            bot,
            dedupe: dedupe::Dedupe::new(store.clone()),
            prefix: prefix.to_string(),
            out: inbox,
        };
        // Both tasks are restarted if they panic; their queues outlive them.
        let (pump, rx) = (Arc::new(pump), Arc::new(tokio::sync::Mutex::new(rx)));
        crate::supervise::restarting("slack listener", move || {
            let (pump, rx) = (pump.clone(), rx.clone());
            tokio::spawn(async move { pump.run(&mut *rx.lock().await).await })
        });
        let (tx, out_rx) = lanes::lanes(OUTBOX);
        let outbox = Arc::new(Outbox {
            web: web.clone(),
            store: store.clone(),
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
        })
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

#[async_trait]
impl Chat for Slack {
    async fn send(&self, msg: Message) {
        let outbox = self.outbox.lock().expect("outbox").clone();
        let Some(outbox) = outbox else {
            return;
        };
        if let Err(error) = outbox.try_send(msg) {
            tracing::warn!(%error, "Slack outbox full; a message was dropped.");
        }
    }

    async fn lookup_email(&self, email: &str) -> Option<ChatUser> {
        self.identity.lookup(email).await
    }
}

/// Sends messages in order; owns the status and approval message refs.
struct Outbox {
    web: client::Web,
    store: AdapterStore,
}

fn status_key(train: TrainId) -> String {
    run_status_key(Run::Train(train))
}

/// Where a run's status message ts is kept. Trains keep the key they had
/// before builds had status messages, so an upgrade finds their threads.
fn run_status_key(run: Run) -> String {
    match run {
        Run::Train(t) => format!("slack:status:{}", t.0),
        Run::Build(b) => format!("slack:status:build-{b}"),
    }
}

fn approval_key(train: TrainId) -> String {
    format!("slack:approval:{}", train.0)
}

fn approval_text_key(train: TrainId) -> String {
    format!("slack:approval_text:{}", train.0)
}

impl Outbox {
    async fn run(&self, lanes: &mut lanes::Lanes) {
        while let Some(msg) = lanes.next().await {
            self.deliver(msg).await;
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

    async fn deliver(&self, msg: Message) {
        match msg {
            Message::Reply {
                to,
                text,
                private: true,
            } => self.web.ephemeral(to.as_str(), blocks::plain(&text)).await,
            Message::Reply { to, text, .. } => {
                self.web.post(blocks::reply(&to, &text), None, false).await;
            }
            Message::Notice { run, text } => {
                let thread = run.and_then(|r| self.note(&run_status_key(r)));
                self.web.post(blocks::plain(&text), thread, false).await;
            }
            Message::Status { run, text, url } => {
                let content = blocks::status(&text, &url);
                let key = run_status_key(run);
                match self.note(&key) {
                    Some(ts) => {
                        self.web.update(ts, content).await;
                    }
                    None => {
                        if let Some(ts) = self.web.post(content, None, false).await {
                            self.set_note(&key, &ts.0);
                        }
                    }
                }
            }
            Message::Approval { train, text } => {
                let thread = self.note(&status_key(train));
                let content = blocks::approval(train.0, &text, &[], true);
                // Open before it shows: a click may come at once.
                self.set_note(OPEN_APPROVAL, &train.0.to_string());
                if let Some(ts) = self.web.post(content, thread, true).await {
                    self.set_note(&approval_key(train), &ts.0);
                    self.set_note(&approval_text_key(train), &text);
                }
            }
            Message::ApprovalProgress {
                train,
                approved_by,
                open,
            } => {
                if !open
                    && self
                        .note(OPEN_APPROVAL)
                        .is_some_and(|t| t.0 == train.0.to_string())
                {
                    self.set_note(OPEN_APPROVAL, "");
                }
                let (Some(ts), Some(text)) = (
                    self.note(&approval_key(train)),
                    self.note(&approval_text_key(train)),
                ) else {
                    return;
                };
                let content = blocks::approval(train.0, &text.0, &approved_by, open);
                self.web.update(ts, content).await;
                if !open {
                    // Closed for good: later progress (the train's end) is not news.
                    self.set_note(&approval_key(train), "");
                }
            }
        }
    }
}
