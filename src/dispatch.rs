//! Several pipelines, one chat (SPEC §16): every chat message passes here
//! and goes to the inbox of the pipeline it is for. A single-pipeline bot
//! forwards everything unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::chat::{Chat, Incoming, Message, Scope};
use crate::domain::route::{Route, Said, Summary, route};
use crate::domain::train::Outcome;
use crate::engine::{Event, Snapshot};

/// One pipeline as the dispatcher sees it.
pub struct Pipeline {
    pub name: String,
    /// Its chat channel as configured; messages from the console carry
    /// none and reach every pipeline.
    pub channel: String,
    pub inbox: mpsc::Sender<Event>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

pub struct Dispatcher {
    pipelines: Vec<Pipeline>,
    prefix: String,
    chat: Arc<dyn Chat>,
    /// `!use`: the default pipeline of a place (a channel, or the console).
    defaults: HashMap<Option<String>, String>,
    /// Where the defaults are kept across restarts (the root store).
    store: Option<crate::store::Store>,
}

impl Dispatcher {
    pub fn new(pipelines: Vec<Pipeline>, prefix: &str, chat: Arc<dyn Chat>) -> Dispatcher {
        Dispatcher {
            pipelines,
            prefix: prefix.to_string(),
            chat,
            defaults: HashMap::new(),
            store: None,
        }
    }

    /// Keeps `!use` defaults in `store` and takes up those it kept; a
    /// default naming a pipeline that is gone is dropped.
    pub fn with_store(mut self, store: crate::store::Store) -> Dispatcher {
        match store.use_defaults() {
            Ok(kept) => {
                for (place, name) in kept {
                    if self.pipelines.iter().any(|p| p.name == name) {
                        self.defaults.insert(place, name);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "Cannot read the !use defaults."),
        }
        self.store = Some(store);
        self
    }

    /// Takes chat messages until the chat ends or every engine has stopped.
    pub async fn run(mut self, mut incoming: mpsc::Receiver<Incoming>) {
        while let Some(msg) = incoming.recv().await {
            if !self.dispatch(msg).await {
                return;
            }
        }
    }

    /// False once the engines are gone.
    pub async fn dispatch(&mut self, msg: Incoming) -> bool {
        if let [only] = self.pipelines.as_slice() {
            return only.inbox.send(Event::Chat(msg)).await.is_ok();
        }
        let place = msg.channel.clone();
        // Borrows of the pipelines end here: `!use` changes the defaults.
        let (routed, first) = {
            let here: Vec<&str> = self
                .pipelines
                .iter()
                .filter(|p| msg.channel.as_ref().is_none_or(|c| p.channel == *c))
                .map(|p| p.name.as_str())
                .collect();
            let Some(&first) = here.first() else {
                return true;
            };
            let said = Said {
                text: &msg.text,
                prefix: &self.prefix,
                user: msg.user.as_str(),
                button: msg.pipeline.as_deref(),
            };
            let default = self.defaults.get(&place).map(String::as_str);
            let routed = route(&said, &here, default, |name| self.summary(name));
            (routed, first.to_string())
        };
        let answer = match routed {
            Route::Ignore => return true,
            Route::To { pipeline, text } => {
                let Some(p) = self.pipelines.iter().find(|p| p.name == pipeline) else {
                    return true;
                };
                let sent = p.inbox.send(Event::Chat(Incoming { text, ..msg })).await;
                return sent.is_ok();
            }
            Route::Choose(names) => format!(
                "Which pipeline? {} — name it first, e.g. `{}status {}`",
                names.join(", "),
                self.prefix,
                names.first().map_or("NAME", String::as_str)
            ),
            Route::Use(name) => {
                let answer = format!("Commands here go to {name} now.");
                if let Some(store) = &self.store
                    && let Err(error) = store.set_use_default(place.as_deref(), &name)
                {
                    // Still the default until a restart: said in the log.
                    tracing::warn!(%error, "Cannot keep the !use default.");
                }
                self.defaults.insert(place.clone(), name);
                answer
            }
            Route::UseUnknown(names) => format!(
                "Usage: {}use <pipeline> — pipelines here: {}",
                self.prefix,
                names.join(", ")
            ),
        };
        let Some(p) = self.pipelines.iter().find(|p| p.name == first) else {
            return true;
        };
        let scope = Scope {
            pipeline: first,
            channel: p.channel.clone(),
            multi: true,
            shared: false,
        };
        let reply = Message::Reply {
            to: msg.user.clone(),
            text: answer,
            private: msg.button,
            thread: msg.thread.clone(),
        };
        self.chat.send_in(&scope, reply).await;
        true
    }

    fn summary(&self, name: &str) -> Summary {
        let Some(p) = self.pipelines.iter().find(|p| p.name == name) else {
            return Summary::default();
        };
        let snap = p.snapshots.borrow().clone();
        let train = snap.train.as_ref();
        let approval = train.is_some_and(|t| t.stage == "approval");
        Summary {
            name: p.name.clone(),
            awaiting: match train {
                Some(t) if approval => t.waiting_for.clone(),
                _ => Vec::new(),
            },
            approval,
            running: train.is_some_and(|t| !Outcome::WORDS.contains(&t.stage.as_str())),
            frozen: snap.frozen.is_some(),
        }
    }
}
