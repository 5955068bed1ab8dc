//! The main branch: polling for new heads, `[main] checks`, allocation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Engine, Event};
use crate::config::Step;
use crate::domain::ids::Sha;
use crate::domain::messages;
use crate::forge::Forge;
use crate::runner::{StepRequest, StepRunner};

#[derive(Debug)]
pub struct CheckFailure {
    pub step: String,
    pub error: String,
    pub log: String,
    pub tail: Vec<String>,
}

/// Asks the forge for the main head every `interval` and reports changes.
pub fn spawn_poller(
    forge: Arc<dyn Forge>,
    interval: Duration,
    tx: mpsc::Sender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Sha> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match forge.main_head().await {
                Ok(Some(head)) if last.as_ref() != Some(&head) => {
                    last = Some(head.clone());
                    if tx.send(Event::MainHead(head)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(crate::forge::ForgeError::Refused(text)) => {
                    if tx.send(Event::ForgeRefused(text)).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "Cannot read the main branch."),
            }
        }
    })
}

impl Engine {
    /// Reads the main head once, before the first command is answered, so
    /// `!status` is right from the start.
    pub(super) async fn poll_main_now(&mut self) -> anyhow::Result<()> {
        match self.ports.forge.main_head().await {
            Ok(Some(head)) => self.handle_main_head(head).await,
            Ok(None) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "Cannot read the main branch.");
                Ok(())
            }
        }
    }

    /// A push to main: the head the forge reports now is allocated, so a
    /// late delivery of an older push never makes an older SHA the newest.
    /// If the forge cannot be asked, the pushed SHA is taken as it is.
    pub(super) async fn handle_main_pushed(&mut self, pushed: Sha) -> anyhow::Result<()> {
        let head = match self.ports.forge.main_head().await {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, sha = %pushed, "Cannot read main; taking the pushed SHA.");
                pushed
            }
        };
        self.handle_main_head(head).await
    }

    pub(super) async fn handle_main_head(&mut self, sha: Sha) -> anyhow::Result<()> {
        if self.store.main_seen()?.as_ref() == Some(&sha)
            || self.store.allocation_seq(&sha)?.is_some()
        {
            return Ok(());
        }
        if self.checking.as_ref().is_some_and(|(s, _)| *s == sha) {
            return Ok(());
        }
        if self.cfg.main_checks.is_empty() {
            self.store.set_main_seen(&sha)?;
            return self.allocate(sha).await;
        }
        // Only the newest head matters: checks of an older one stop.
        if let Some((_, cancel)) = self.checking.take() {
            let _ = cancel.send(true);
        }
        let (cancel, cancel_rx) = watch::channel(false);
        self.checking = Some((sha.clone(), cancel));
        let steps = self.cfg.main_checks.clone();
        let reqs: Vec<(Step, StepRequest)> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let name = format!("check-{}", i + 1);
                let run = format!("main-{}", sha.short());
                let req = StepRequest {
                    key: format!("{run}/{name}"),
                    step: step.clone(),
                    env: self.step_env(sha.as_str(), "", "main", "", &self.cfg.forge.main_branch),
                    cwd: self.cfg.config_dir.clone(),
                    log_path: self.log_path(&run, &name),
                };
                (step.clone(), req)
            })
            .collect();
        tracing::info!(sha = %sha, "Running main checks.");
        tokio::spawn(run_checks(
            self.ports.runner.clone(),
            sha,
            reqs,
            cancel_rx,
            self.tx.clone(),
        ));
        Ok(())
    }

    pub(super) async fn handle_main_checked(
        &mut self,
        sha: Sha,
        failure: Option<CheckFailure>,
    ) -> anyhow::Result<()> {
        if self.checking.as_ref().is_none_or(|(s, _)| *s != sha) {
            return Ok(()); // superseded by a newer head
        }
        self.checking = None;
        self.store.set_main_seen(&sha)?;
        match failure {
            None => self.allocate(sha).await,
            Some(f) => {
                let author = match self
                    .ports
                    .forge
                    .commits(None, &sha)
                    .await
                    .ok()
                    .and_then(|c| c.last().cloned())
                {
                    Some(c) => {
                        let who = self
                            .identities()
                            .resolve(&c.author_email, c.author_login.as_deref());
                        match who {
                            Some(u) if self.ctx().console => format!("{} @{u}", c.author_name),
                            Some(u) => format!("<@{u}>"),
                            None => c.author_name,
                        }
                    }
                    None => "unknown author".into(),
                };
                let text =
                    messages::main_checks_failed(&sha, &author, &f.step, &f.error, &f.log, &f.tail);
                self.say(None, text).await;
                Ok(())
            }
        }
    }

    async fn allocate(&mut self, sha: Sha) -> anyhow::Result<()> {
        let parent = self.ports.forge.parent(&sha).await.unwrap_or(None);
        let Some(_) = self.store.allocate(&sha, parent.as_ref(), self.now())? else {
            return Ok(());
        };
        tracing::info!(sha = %sha, "SHA allocated.");
        let head = self
            .ports
            .forge
            .commits(parent.as_ref(), &sha)
            .await
            .ok()
            .and_then(|c| c.into_iter().last());
        let subject = head
            .as_ref()
            .map(|c| (c.subject.as_str(), c.author_name.as_str()));
        let text = messages::allocated(&sha, subject, self.next_departure, &self.ctx());
        self.say(None, text).await;
        Ok(())
    }
}

async fn run_checks(
    runner: Arc<dyn StepRunner>,
    sha: Sha,
    reqs: Vec<(Step, StepRequest)>,
    cancel: watch::Receiver<bool>,
    tx: mpsc::Sender<Event>,
) {
    let mut failure = None;
    for (step, req) in reqs {
        let log = req.log_path.display().to_string();
        let outcome = super::steps::run_caught(runner.clone(), req, cancel.clone()).await;
        if let Err(e) = outcome.result {
            failure = Some(CheckFailure {
                step: step.label(),
                error: e.to_string(),
                log,
                tail: outcome.tail,
            });
            break;
        }
    }
    let _ = tx.send(Event::MainChecked { sha, failure }).await;
}
