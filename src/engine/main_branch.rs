//! The main branch: polling for new heads, `[main] checks`, allocation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::calls::Reply;
use super::{Engine, Event};
use crate::config::Step;
use crate::domain::ids::Sha;
use crate::domain::messages;
use crate::domain::train::Commit;
use crate::forge::Forge;
use crate::runner::{StepRequest, StepRunner};

#[derive(Debug, Clone)]
pub struct CheckFailure {
    pub step: String,
    pub error: String,
    pub log: String,
    pub tail: Vec<String>,
    /// The checked commit, read from the forge to name its author.
    pub commit: Option<Commit>,
}

/// The checked head's parent and its own commit, for the allocation and
/// its message; read beside the engine, None where the forge failed.
async fn head_facts(forge: &dyn Forge, sha: &Sha) -> (Option<Sha>, Option<Commit>) {
    let parent = forge.parent(sha).await.unwrap_or(None);
    let commit = forge
        .commits(parent.as_ref(), sha)
        .await
        .ok()
        .and_then(|c| c.into_iter().last());
    (parent, commit)
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
        self.read_main_beside(None);
        Ok(())
    }

    /// Reads main's head beside the engine and reports it as `MainHead`;
    /// if the forge cannot be asked, `fallback` (a pushed SHA) is taken.
    fn read_main_beside(&self, fallback: Option<Sha>) {
        let (forge, tx) = (self.ports.forge.clone(), self.tx.clone());
        let deadline = self.cfg.forge.timeout;
        tokio::spawn(async move {
            let head = match tokio::time::timeout(deadline, forge.main_head()).await {
                Ok(Ok(head)) => head,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Cannot read the main branch.");
                    fallback
                }
                Err(_) => {
                    tracing::warn!("The forge did not say main's head in time.");
                    fallback
                }
            };
            if let Some(head) = head {
                let _ = tx.send(Event::MainHead(head)).await;
            }
        });
    }

    /// A push to main: the head the forge reports now is allocated, so a
    /// late delivery of an older push never makes an older SHA the newest.
    /// If the forge cannot be asked, the pushed SHA is taken as it is.
    pub(super) async fn handle_main_pushed(&mut self, pushed: Sha) -> anyhow::Result<()> {
        self.read_main_beside(Some(pushed));
        Ok(())
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
            self.allocate_beside(sha);
            return Ok(());
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
                let run = super::workdirs::main_run(&sha);
                let req = StepRequest {
                    key: format!("{run}/{name}"),
                    step: step.clone(),
                    env: self.step_env(
                        &run,
                        sha.as_str(),
                        "",
                        "main",
                        "",
                        &self.cfg.forge.main_branch,
                    ),
                    cwd: self.cfg.config_dir.clone(),
                    workdir: Some(self.workdir(&run)),
                    log_path: self.log_path(&run, &name),
                };
                (step.clone(), req)
            })
            .collect();
        tracing::info!(sha = %sha, "Running main checks.");
        tokio::spawn(run_checks(
            self.ports.runner.clone(),
            self.ports.forge.clone(),
            self.cfg.forge.timeout,
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
            // Superseded by a newer head: its checks say nothing any more.
            self.run_ended(&super::workdirs::main_run(&sha), true);
            return Ok(());
        }
        self.checking = None;
        self.run_ended(&super::workdirs::main_run(&sha), failure.is_none());
        self.store.set_main_seen(&sha)?;
        match failure {
            None => {
                self.allocate_beside(sha);
                Ok(())
            }
            Some(f) => {
                let author = match f.commit.clone() {
                    Some(c) => {
                        let who = self
                            .identities()
                            .resolve(&c.author_email, c.author_login.as_deref());
                        match who {
                            Some(u) if self.ctx().console => format!("{} @{u}", c.author_name),
                            Some(u) => u.mention(),
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

    /// Allocates `sha` once its parent and subject are read beside the
    /// engine (`Reply::Allocate`).
    fn allocate_beside(&self, sha: Sha) {
        let s = sha.clone();
        self.beside(
            move |forge| async move { Ok(head_facts(&*forge, &s).await) },
            move |result| {
                let (parent, commit) = result.unwrap_or((None, None));
                Reply::Allocate {
                    sha,
                    parent,
                    commit,
                }
            },
        );
    }

    pub(super) async fn allocate(
        &mut self,
        sha: Sha,
        parent: Option<Sha>,
        head: Option<Commit>,
    ) -> anyhow::Result<()> {
        let Some(_) = self.store.allocate(&sha, parent.as_ref(), self.now())? else {
            return Ok(());
        };
        tracing::info!(sha = %sha, "SHA allocated.");
        let subject = head
            .as_ref()
            .map(|c| (c.subject.as_str(), c.author_name.as_str()));
        let text = messages::allocated(
            &sha,
            subject,
            self.next_departure,
            &self.cfg.forge.main_branch,
            &self.ctx(),
        );
        self.say(None, text).await;
        Ok(())
    }
}

async fn run_checks(
    runner: Arc<dyn StepRunner>,
    forge: Arc<dyn Forge>,
    deadline: Duration,
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
            // The author is named in chat: read here, not in the engine.
            let commit = tokio::time::timeout(deadline, head_facts(&*forge, &sha))
                .await
                .ok()
                .and_then(|(_, c)| c);
            failure = Some(Box::new(CheckFailure {
                step: step.label(),
                error: e.to_string(),
                log,
                tail: outcome.tail,
                commit,
            }));
            break;
        }
    }
    let _ = tx.send(Event::MainChecked { sha, failure }).await;
}
