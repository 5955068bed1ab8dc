//! Storage faults (SPEC §12): a failed write means the input is not acted
//! on and nothing is announced. The engine does not stop (a stopped engine
//! would take running steps down with it): it says once that storage is
//! failing, `/healthz` turns 503, inputs that must not be lost wait, and
//! they are applied in order once a probe write works again.

use std::collections::VecDeque;

use chrono::TimeDelta;

use crate::domain::clock::Ts;

use super::{Engine, Event};

/// The longest wait between two tries of a failing store.
const MAX_BACKOFF: TimeDelta = TimeDelta::seconds(60);

#[derive(Default)]
pub(super) struct Stalled {
    /// Inputs not yet applied because a write failed, oldest first.
    events: VecDeque<Event>,
    /// The error said in chat while storage fails.
    failing: Option<String>,
    attempt: u32,
    retry_at: Option<Ts>,
}

impl Stalled {
    pub fn retry_at(&self) -> Option<Ts> {
        self.retry_at
    }
}

impl Engine {
    /// Handles one input; a failed write does not stop the engine.
    pub(super) async fn handle_guarded(&mut self, ev: Event) {
        // Inputs keep their order: while some wait, the next waits too.
        // Chat commands are answered at once (and refused if they write).
        if !self.stalled.events.is_empty() && !matches!(ev, Event::Chat(_)) {
            self.stalled.events.push_back(ev);
            return;
        }
        // What a failure needs: who to answer, or the input to try again
        // (a command is answered, not replayed). No copy of a command.
        let keep = match &ev {
            Event::Chat(msg) => Err(msg.user.clone()),
            other => Ok(other.clone()),
        };
        if let Err(error) = self.try_input(ev).await {
            match keep {
                Err(user) => {
                    let text = format!("⚠️ not done: storage is failing ({error})");
                    self.reply(&user, text).await;
                }
                Ok(ev) => self.stalled.events.push_back(ev),
            }
            self.storage_failed(error).await;
        }
    }

    /// `handle`, with the in-memory state put back if it fails midway, so
    /// memory never runs ahead of the store.
    async fn try_input(&mut self, ev: Event) -> anyhow::Result<()> {
        // Only cheap copies up front: a failed write left the store as it
        // was, so the train and the locks are read back from it.
        let (train, departing) = (self.train.as_ref().map(|t| t.id), self.departing.clone());
        let result = self.handle(ev).await;
        if result.is_err() {
            self.train = match train {
                Some(id) => self.store.train(id).ok().flatten(),
                None => None,
            };
            if let Ok(locks) = self.store.locks() {
                self.locks = locks;
            }
            self.departing = departing;
            self.private_replies = false;
            self.reply_thread = None;
            self.answer_later = false;
        }
        result
    }

    /// Runs one of the engine's own steps (timers, the tag queue, doors);
    /// a storage failure is handled like a failed input.
    pub(super) async fn guarded(&mut self, result: anyhow::Result<()>) {
        if let Err(error) = result {
            self.storage_failed(error).await;
        }
    }

    pub(super) async fn storage_failed(&mut self, error: anyhow::Error) {
        let text = format!("{error:#}");
        tracing::error!(error = %text, "A store write failed; the input waits.");
        self.metrics.error("store");
        self.metrics.set_storage_failing(true);
        if self.stalled.failing.is_none() {
            self.say(
                None,
                format!(
                    "⚠️ storage is failing: {text}. Nothing new is done until it works again; \
                     running steps go on."
                ),
            )
            .await;
            self.stalled.failing = Some(text);
        }
        self.stalled.attempt = self.stalled.attempt.saturating_add(1);
        let backoff = TimeDelta::seconds(1 << self.stalled.attempt.min(6)).min(MAX_BACKOFF);
        self.stalled.retry_at = Some(self.now() + backoff);
    }

    /// When a retry is due: a probe write first, then the waiting inputs
    /// in order. Recovery is said once.
    pub(super) async fn retry_storage(&mut self) {
        if self.stalled.retry_at.is_none_or(|at| self.now() < at) {
            return;
        }
        self.stalled.retry_at = None;
        if let Err(error) = self.store.probe() {
            return self.storage_failed(error.into()).await;
        }
        let mut applied = 0;
        while let Some(ev) = self.stalled.events.pop_front() {
            if let Err(error) = self.try_input(ev.clone()).await {
                self.stalled.events.push_front(ev);
                return self.storage_failed(error).await;
            }
            applied += 1;
        }
        if self.stalled.failing.take().is_some() {
            tracing::info!(applied, "Storage works again.");
            self.metrics.set_storage_failing(false);
            self.stalled.attempt = 0;
            let held = match applied {
                0 => String::new(),
                1 => "; 1 waiting input applied".into(),
                n => format!("; {n} waiting inputs applied"),
            };
            self.say(None, format!("✅ storage works again{held}"))
                .await;
        }
    }
}
