//! Tag deploys (SPEC §6): a pushed tag matching `[tags]` becomes a numbered
//! train, one at a time with the others. Tags arrive by polling (both
//! forges) and by the push webhook (GitHub); either way a tag at a given
//! commit is acted on once, and a waiting tag deploy is kept in the store.
//! Right before one leaves, the forge is asked where the tag points now
//! (SPEC §11 "tag source"); a tag the forge fails is retried with backoff
//! and dropped after `tags.give_up_after`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::calls::{Departing, Origin, Reply};
use super::gate::Ask;
use super::{Engine, Event};
use crate::domain::gate::{Road, Verdict};
use crate::domain::messages;
use crate::domain::refusal::Refusal;
use crate::domain::tags::{self, Retry};
use crate::domain::train::{Actor, Kind, Route};
use crate::forge::{Forge, ForgeError, TagRef};
use crate::store::{QueuedTag, TagFailure};

/// Lists the forge's tags every `interval`, starting one interval from now
/// (the engine has just listed them), and reports the list when it changed.
/// Only started when a tag regex is configured.
pub fn spawn_tag_poller(
    forge: Arc<dyn Forge>,
    interval: Duration,
    tx: mpsc::Sender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Vec<TagRef>> = None;
        let first = tokio::time::Instant::now() + interval;
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match forge.tags().await {
                Ok(tags) if last.as_ref() != Some(&tags) => {
                    last = Some(tags.clone());
                    if tx.send(Event::TagsPolled(tags)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(ForgeError::Refused(text)) => {
                    if tx.send(Event::ForgeRefused(text)).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "Cannot list tags."),
            }
        }
    })
}

impl Engine {
    /// Which part of the pipeline a tag runs, if any. A tag matching both
    /// regexes goes to production: that regex is the more deliberate one.
    fn tag_route(&self, name: &str) -> Option<Route> {
        let tags = &self.cfg.tags;
        if tags.production.as_ref().is_some_and(|r| r.is_match(name)) {
            Some(Route::ProductionOnly)
        } else if tags.staging.as_ref().is_some_and(|r| r.is_match(name)) {
            Some(Route::LowerOnly)
        } else {
            None
        }
    }

    /// Whether `[tags]` has a regex at all: without one, tags do nothing
    /// and the forge is never asked for them.
    pub(super) fn tags_configured(&self) -> bool {
        self.cfg.tags.staging.is_some() || self.cfg.tags.production.is_some()
    }

    /// At start, before anything is announced: the first time the bot
    /// looks, the tags that exist are noted, so a tag pushed after the bot
    /// said it is running always counts as new.
    pub(super) async fn baseline_tags(&mut self) -> anyhow::Result<()> {
        // Before anything is said, but never longer than a forge call may
        // take: the poller's first list is the baseline otherwise.
        let listed = tokio::time::timeout(self.cfg.forge.timeout, self.ports.forge.tags())
            .await
            .unwrap_or_else(|_| {
                Err(ForgeError::Other(
                    "the forge did not list tags in time".into(),
                ))
            });
        match listed {
            Ok(tags) => self.handle_tags_polled(tags).await,
            Err(ForgeError::Refused(text)) => {
                self.forge_refused(text).await;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot list tags.");
                Ok(())
            }
        }
    }

    /// The full list from the poller: the first list ever is the baseline
    /// (existing tags are not deployed); after that, new or moved tags count.
    pub(super) async fn handle_tags_polled(&mut self, tags: Vec<TagRef>) -> anyhow::Result<()> {
        let all: Vec<_> = tags
            .iter()
            .map(|t| (t.name.clone(), t.sha.clone()))
            .collect();
        if self.store.tag_baseline(&all)? {
            tracing::info!(
                tags = all.len(),
                "Existing tags noted; new ones will deploy."
            );
            return Ok(());
        }
        for tag in tags {
            self.handle_tag(tag).await?;
        }
        Ok(())
    }

    /// One pushed (or newly polled) tag.
    pub(super) async fn handle_tag(&mut self, tag: TagRef) -> anyhow::Result<()> {
        if self.store.tag_seen(&tag.name)?.as_ref() == Some(&tag.sha) {
            return Ok(());
        }
        let Some(route) = self.tag_route(&tag.name) else {
            self.store.record_tag(&tag.name, &tag.sha, None)?;
            return Ok(());
        };
        let queued = QueuedTag {
            name: tag.name.clone(),
            sha: tag.sha.clone(),
            pushed_by: tag.pushed_by.unwrap_or_else(|| "unknown".into()),
            route,
            failing: None,
        };
        let position = self.store.record_tag(&tag.name, &tag.sha, Some(&queued))?;
        tracing::info!(tag = %queued.name, sha = %queued.sha, ?route, "Tag deploy queued.");
        let why = if let Some(train) = &self.train {
            Some(format!("train {} is running", train.id))
        } else if let Some(f) = self.store.freeze()? {
            Some(format!("deploys are frozen by {}", f.by.mention()))
        } else if position > 1 {
            Some("earlier tags go first".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            let text =
                messages::tag_waits(&queued.name, &queued.sha, &queued.pushed_by, &why, position);
            self.say(None, text).await;
        }
        Ok(())
    }

    /// Sends the oldest waiting tag deploy when no train runs and deploys
    /// are not frozen. Called after every input.
    pub(super) async fn depart_queued_tag(&mut self) -> anyhow::Result<()> {
        if self.train.is_some()
            || self.departing.is_some()
            || self.tag_retry_at.is_some_and(|at| self.now() < at)
        {
            return Ok(());
        }
        // Called after every input: the (usually empty) queue is looked at
        // first, and only its head is read.
        let Some((seq, tag)) = self.store.next_queued_tag()? else {
            return Ok(());
        };
        // The gate is asked before the forge is: a held tag costs no
        // forge call. A wait keeps the tag in its place, said once.
        let road = Road::Tag {
            production: tag.route == Route::ProductionOnly,
        };
        let st = self.gate_state()?;
        if let Some(hold) = self.ask_gate(&road, &st, Ask::default()).hold().cloned() {
            let what = format!("tag {} waits", tag.name);
            return self.say_hold_once(None, &what, &hold).await;
        }
        self.start_queued_tag(seq, tag).await
    }

    /// The tag deploy at the head of the queue leaves now. The forge is
    /// asked, beside the engine, where the tag points (and, for production,
    /// whether that is on main) first; `tag_checked` goes on.
    async fn start_queued_tag(&mut self, seq: u64, tag: QueuedTag) -> anyhow::Result<()> {
        // Counts as departing: nothing else leaves while the tag is read.
        self.departing = Some(tag.sha.clone());
        let name = tag.name.clone();
        let production = tag.route == Route::ProductionOnly;
        self.beside(
            move |forge| async move {
                let now_at = forge.tag(&name).await?;
                let on_main = match (&now_at, production) {
                    (Some(t), true) => Some(forge.is_on_main(&t.sha).await?),
                    _ => None,
                };
                Ok((now_at, on_main))
            },
            move |result| Reply::TagChecked { seq, tag, result },
        );
        Ok(())
    }

    /// A queued tag, read again: a tag deleted while it waited is dropped,
    /// a moved one deploys its new commit (SPEC §11 "tag source"), and a
    /// production tag off main is refused (rule *on main*).
    pub(super) async fn tag_checked(
        &mut self,
        seq: u64,
        mut tag: QueuedTag,
        result: Result<(Option<TagRef>, Option<bool>), ForgeError>,
    ) -> anyhow::Result<()> {
        self.departing = None;
        let (now_at, on_main) = match result {
            Ok((Some(now_at), on_main)) => (now_at, on_main),
            Ok((None, _)) => {
                tracing::info!(tag = %tag.name, sha = %tag.sha, "Queued tag was deleted; dropped.");
                self.store.dequeue_tag(seq)?;
                // Pushed again, even at the same commit, it counts as new.
                self.store.forget_tag(&tag.name)?;
                self.tag_retry_at = None;
                // The gate's *tag source* rule words the refusal.
                let problem = tags::tag_deleted(&tag.name, &tag.sha);
                let road = Road::Tag {
                    production: tag.route == Route::ProductionOnly,
                };
                let st = self.gate_state()?;
                let ask = Ask {
                    tag_problem: Some(&problem),
                    ..Ask::default()
                };
                let text = match self.ask_gate(&road, &st, ask).hold() {
                    Some(hold) => format!("🏷 {hold}"),
                    None => format!("🏷 {problem}"),
                };
                self.say(None, text).await;
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(%error, tag = %tag.name, "Cannot read a queued tag.");
                return self.tag_failed(seq, tag, error).await;
            }
        };
        if now_at.sha != tag.sha {
            tracing::info!(tag = %tag.name, from = %tag.sha, to = %now_at.sha, "Queued tag moved.");
            self.say(None, tags::tag_moved(&tag.name, &tag.sha, &now_at.sha))
                .await;
            tag.sha = now_at.sha;
            // Seen at its new commit, so the poller's next list does not
            // queue the same move again.
            self.store.record_tag(&tag.name, &tag.sha, None)?;
        }
        // Asked again: the world may have moved while the forge was read.
        let st = self.gate_state()?;
        let ask = Ask {
            on_main: on_main.map(|m| (tag.sha.short(), m)),
            ..Ask::default()
        };
        let road = Road::Tag {
            production: tag.route == Route::ProductionOnly,
        };
        match self.ask_gate(&road, &st, ask) {
            Verdict::Go { .. } => {}
            Verdict::Wait(hold) => {
                let what = format!("tag {} waits", tag.name);
                return self.say_hold_once(None, &what, &hold).await;
            }
            Verdict::No(hold) => {
                tracing::warn!(tag = %tag.name, %hold, "Tag deploy refused.");
                self.store.dequeue_tag(seq)?;
                let what = format!("tag {} does not deploy to production", tag.name);
                return self.say_hold_once(None, &what, &hold).await;
            }
        }
        if self.train.is_some() || self.departing.is_some() {
            return Ok(()); // stays queued; tried again when the way is free
        }
        // It stays queued until its train is stored, which takes it off
        // the queue in the same transaction (`prepared`): a crash while
        // its commits are listed leaves it queued, to depart after the
        // restart.
        let kind = Kind::Tag {
            name: tag.name.clone(),
            pushed_by: tag.pushed_by.clone(),
        };
        self.depart_from(Departing {
            sha: tag.sha.clone(),
            kind,
            route: tag.route,
            overrides: None,
            origin: Origin::Tag { seq, tag },
        })
    }

    /// The forge failed a tag deploy (queued at `seq`): tried again with
    /// backoff until `tags.give_up_after` from the first failure, then
    /// dropped. Chat hears the first failure and the giving up, no retry.
    pub(super) async fn tag_failed(
        &mut self,
        seq: u64,
        mut tag: QueuedTag,
        error: ForgeError,
    ) -> anyhow::Result<()> {
        // `!cancel` took it off the queue while the forge was asked: it
        // stays cancelled, not queued again for a retry.
        if self.store.queued_tag(seq)?.is_none() {
            tracing::info!(tag = %tag.name, %error, "Cancelled tag deploy failed; dropped.");
            return Ok(());
        }
        let now = self.now();
        // Bounded, so `since + limit` cannot overflow.
        let limit = crate::domain::duration::to_delta(self.cfg.tags.give_up_after);
        let first = tag.failing.is_none();
        let failing = tag.failing.get_or_insert(TagFailure {
            since: now,
            attempts: 0,
        });
        failing.attempts += 1;
        let (since, attempts) = (failing.since, failing.attempts);
        match tags::retry(limit, since, attempts, now) {
            Retry::At(at) => {
                tracing::warn!(%error, tag = %tag.name, attempts, retry_at = %at, "Tag deploy failed; will retry.");
                self.store.requeue_tag(seq, &tag)?;
                self.tag_retry_at = Some(at);
                if first {
                    let text = tags::tag_failing(&tag.name, &tag.sha, &error.to_string(), limit);
                    self.say(None, text).await;
                }
            }
            Retry::GiveUp => {
                tracing::error!(%error, tag = %tag.name, attempts, "Tag deploy given up.");
                self.store.dequeue_tag(seq)?;
                self.tag_retry_at = None;
                let text = tags::tag_given_up(&tag.name, &tag.sha, &error.to_string(), limit);
                self.say(None, text).await;
            }
        }
        Ok(())
    }

    /// `!cancel <tag>` for a tag deploy that waits: ops only, like
    /// cancelling a train, since a tag deploy is one.
    pub(super) async fn cancel_tag(
        &mut self,
        actor: &Actor,
        seq: u64,
        tag: QueuedTag,
    ) -> anyhow::Result<Result<(), Refusal>> {
        if !actor.ops {
            return Ok(Err(Refusal::NotOps { command: "cancel" }));
        }
        tracing::info!(tag = %tag.name, by = %actor.user, "Queued tag cancelled.");
        self.store.dequeue_tag(seq)?;
        // The wait belonged to a failing tag; the next one may go at once.
        self.tag_retry_at = None;
        let text = tags::tag_cancelled(&tag.name, &tag.sha, &actor.user);
        self.say(None, text).await;
        Ok(Ok(()))
    }
}
