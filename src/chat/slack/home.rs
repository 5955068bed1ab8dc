//! The app's Home tab: the radiator in short, per pipeline. Published with
//! `views.publish` for each user who opened it (`app_home_opened`), and
//! published again for all of them when a pipeline's train changes stage
//! (a task awaits the snapshots' `changed()`; no polling). Who opened it is
//! kept in the chat notes, so a restart still keeps their tab current.

use std::sync::{Arc, Mutex};

use slack_morphism::prelude::*;
use tokio::sync::watch;

use super::blocks;
use super::client::{Web, retrying};
use crate::engine::Snapshot;
use crate::store::AdapterStore;

/// The note listing who opened the Home tab (user ids, comma-separated).
const USERS: &str = "slack:home:users";

/// One pipeline's snapshots, by pipeline name.
pub type Source = (String, watch::Receiver<Arc<Snapshot>>);

pub struct Home {
    web: Web,
    store: AdapterStore,
    sources: Mutex<Vec<Source>>,
}

impl Home {
    pub fn new(web: Web, store: AdapterStore) -> Home {
        Home {
            web,
            store,
            sources: Mutex::new(Vec::new()),
        }
    }

    /// The pipelines to show; starts a watcher per pipeline that republishes
    /// when its train (or its stage) changes.
    pub fn set(self: &Arc<Self>, sources: Vec<Source>) {
        *self.sources.lock().expect("home sources") = sources.clone();
        for (name, mut rx) in sources {
            let home = self.clone();
            tokio::spawn(async move {
                let mut last = stage_of(&rx.borrow_and_update());
                while rx.changed().await.is_ok() {
                    let now = stage_of(&rx.borrow_and_update());
                    if now != last {
                        tracing::debug!(
                            pipeline = name,
                            ?now,
                            "Train stage changed; Home tabs republished."
                        );
                        last = now;
                        home.publish_all().await;
                    }
                }
            });
        }
    }

    /// `user` opened the Home tab: remember them and show it.
    pub async fn opened(&self, user: &str) {
        let mut users = self.users();
        if !users.iter().any(|u| u == user) {
            users.push(user.to_string());
            if let Err(error) = self.store.set_chat_note(USERS, &users.join(",")) {
                tracing::warn!(%error, "Cannot store who opened the Slack Home tab.");
            }
        }
        self.publish(user).await;
    }

    fn users(&self) -> Vec<String> {
        match self.store.chat_note(USERS) {
            Ok(v) => v
                .unwrap_or_default()
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "Cannot read who opened the Slack Home tab.");
                Vec::new()
            }
        }
    }

    fn view(&self) -> SlackView {
        let snaps: Vec<(String, Arc<Snapshot>)> = self
            .sources
            .lock()
            .expect("home sources")
            .iter()
            .map(|(name, rx)| (name.clone(), rx.borrow().clone()))
            .collect();
        SlackView::Home(SlackHomeView::new(blocks::home(&snaps)))
    }

    async fn publish(&self, user: &str) {
        let req = SlackApiViewsPublishRequest::new(SlackUserId(user.to_string()), self.view());
        let session = self.web.session();
        retrying("views.publish", || session.views_publish(&req)).await;
    }

    async fn publish_all(&self) {
        for user in self.users() {
            self.publish(&user).await;
        }
    }
}

/// What a republish follows: the train and its stage.
fn stage_of(snap: &Snapshot) -> Option<(u64, String)> {
    snap.train.as_ref().map(|t| (t.id, t.stage.clone()))
}
