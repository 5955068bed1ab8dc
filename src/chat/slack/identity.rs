//! SPEC §3 rule 2: a commit email becomes a Slack user through
//! `users.lookupByEmail`. A hit is stored (ids do not change); a miss is
//! remembered until the bot restarts, so a person who joins later is found.

use std::collections::HashSet;
use std::sync::Mutex;

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::client::{Web, retrying};
use crate::domain::ids::ChatUser;
use crate::store::AdapterStore;

pub struct Identity {
    web: Web,
    store: AdapterStore,
    misses: Mutex<HashSet<String>>,
}

impl Identity {
    pub fn new(web: Web, store: AdapterStore) -> Identity {
        Identity {
            web,
            store,
            misses: Mutex::new(HashSet::new()),
        }
    }

    pub async fn lookup(&self, email: &str) -> Option<ChatUser> {
        let email = email.trim().to_ascii_lowercase();
        let key = format!("slack:email:{email}");
        match self.store.chat_note(&key) {
            Ok(Some(id)) => return Some(ChatUser::new(id)),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "Cannot read a stored Slack lookup."),
        }
        if email.is_empty() || self.misses.lock().expect("misses").contains(&email) {
            return None;
        }
        let req = SlackApiUsersLookupByEmailRequest::new(EmailAddress(email.clone()));
        let session = self.web.session();
        // `users_not_found` is an answer (remembered), not a failure.
        let found = match session.users_lookup_by_email(&req).await {
            Ok(resp) => Ok(resp.user.id.0),
            Err(SlackClientError::ApiError(e)) if e.code == "users_not_found" => Err(true),
            Err(_) => retrying("users.lookupByEmail", || {
                session.users_lookup_by_email(&req)
            })
            .await
            .map(|resp| resp.user.id.0)
            .ok_or(false),
        };
        match found {
            Ok(id) => {
                tracing::debug!(user = id, "Found a commit author in Slack.");
                if let Err(error) = self.store.set_chat_note(&key, &id) {
                    tracing::warn!(%error, "Cannot store a Slack lookup.");
                }
                Some(ChatUser::new(id))
            }
            Err(not_found) => {
                if not_found {
                    self.misses.lock().expect("misses").insert(email);
                }
                None
            }
        }
    }
}
