//! Results published on the forge (GitHub commit statuses and Deployments),
//! in order, by one background task: a slow or failing API never holds up
//! the engine, and a deployment's statuses never overtake its creation.
//! On the git forge there is no publisher; results live in the store.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Event;
use crate::domain::ids::Sha;
use crate::forge::{CheckRun, CheckStatus, CommitState, DeploymentState, ForgeError, Results};
use crate::store::Store;

/// The commit status context of branch builds.
pub const BRANCH_CONTEXT: &str = "trainbot/branch";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// A branch build's commit status.
    BuildStatus {
        sha: Sha,
        state: CommitState,
        description: String,
        url: String,
    },
    /// A branch build's check run: created the first time, then updated.
    BuildCheck { build: u64, sha: Sha, run: CheckRun },
    /// The deploy steps of `env` started for run `run` (`train-3`).
    DeployStarted {
        run: String,
        env: String,
        sha: Sha,
        url: String,
    },
    /// The deploy steps of `env` ended.
    DeployEnded {
        run: String,
        env: String,
        ok: bool,
        url: String,
    },
    /// The run is over: a deployment still open (a veto or cancel stopped
    /// its steps) is marked failed.
    RunEnded {
        run: String,
        envs: Vec<String>,
        url: String,
    },
}

#[derive(Clone, Default)]
pub struct Publisher {
    tx: Option<mpsc::UnboundedSender<Publish>>,
}

impl Publisher {
    /// Starts the task; refusals (bad token) go to the engine to be said.
    /// `urls`: where each environment is reached, by name (`url` keys).
    pub fn spawn(
        forge: Arc<dyn Results>,
        store: Store,
        inbox: mpsc::Sender<Event>,
        urls: HashMap<String, String>,
    ) -> Publisher {
        let (tx, rx) = mpsc::unbounded_channel();
        // Restarted if it panics; the queue outlives it, open deployments
        // are found again in the store.
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        crate::supervise::restarting("publisher", move || {
            let (forge, store, inbox, rx, urls) = (
                forge.clone(),
                store.clone(),
                inbox.clone(),
                rx.clone(),
                urls.clone(),
            );
            tokio::spawn(async move {
                let mut task = Task {
                    forge,
                    store,
                    inbox,
                    urls,
                    checks: HashMap::new(),
                    open: HashMap::new(),
                };
                let mut rx = rx.lock().await;
                while let Some(job) = rx.recv().await {
                    task.publish(job).await;
                }
            })
        });
        Publisher { tx: Some(tx) }
    }

    pub fn send(&self, job: Publish) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }
}

struct Task {
    forge: Arc<dyn Results>,
    store: Store,
    inbox: mpsc::Sender<Event>,
    /// Environment URLs by environment name.
    urls: HashMap<String, String>,
    /// Check runs by build id; also in the store, for restarts.
    checks: HashMap<u64, u64>,
    /// Open deployments by (run, env); also in the store, for restarts.
    open: HashMap<(String, String), u64>,
}

fn check_key(build: u64) -> String {
    format!("forge:check:build-{build}")
}

fn note_key(run: &str, env: &str) -> String {
    format!("forge:deployment:{run}:{env}")
}

impl Task {
    async fn publish(&mut self, job: Publish) {
        let result = match job {
            Publish::BuildStatus {
                sha,
                state,
                description,
                url,
            } => {
                self.forge
                    .commit_status(&sha, BRANCH_CONTEXT, state, &description, &url)
                    .await
            }
            Publish::BuildCheck { build, sha, run } => self.build_check(build, &sha, &run).await,
            Publish::DeployStarted { run, env, sha, url } => {
                self.deploy_started(run, env, sha, url).await
            }
            Publish::DeployEnded { run, env, ok, url } => {
                let state = if ok {
                    DeploymentState::Success
                } else {
                    DeploymentState::Failure
                };
                self.close(&run, &env, state, &url).await
            }
            Publish::RunEnded { run, envs, url } => {
                let mut result = Ok(());
                for env in envs {
                    let r = self.close(&run, &env, DeploymentState::Failure, &url).await;
                    result = result.and(r);
                }
                result
            }
        };
        match result {
            Ok(()) => {}
            Err(ForgeError::Refused(text)) => {
                let _ = self.inbox.send(Event::ForgeRefused(text)).await;
            }
            Err(error) => tracing::warn!(%error, "Cannot publish to the forge."),
        }
    }

    /// Creates the build's check run, or updates the one it has; a
    /// completed one is forgotten.
    async fn build_check(
        &mut self,
        build: u64,
        sha: &Sha,
        run: &CheckRun,
    ) -> Result<(), ForgeError> {
        let known = match self.checks.get(&build) {
            Some(id) => Some(*id),
            // Created before a restart.
            None => self
                .store
                .chat_note(&check_key(build))
                .ok()
                .flatten()
                .and_then(|v| v.parse().ok()),
        };
        let done = matches!(run.status, CheckStatus::Completed(_));
        let result = match known {
            Some(id) => self.forge.update_check_run(id, run).await,
            None => match self.forge.create_check_run(sha, run).await {
                Ok(id) => {
                    self.checks.insert(build, id);
                    if !done
                        && let Err(error) =
                            self.store.set_chat_note(&check_key(build), &id.to_string())
                    {
                        tracing::warn!(%error, "Cannot remember a check run id.");
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if done {
            self.checks.remove(&build);
            if known.is_some()
                && let Err(error) = self.store.set_chat_note(&check_key(build), "")
            {
                tracing::warn!(%error, "Cannot forget a check run id.");
            }
        }
        result
    }

    async fn deploy_started(
        &mut self,
        run: String,
        env: String,
        sha: Sha,
        url: String,
    ) -> Result<(), ForgeError> {
        let description = format!("trainbot {run}");
        let id = self
            .forge
            .create_deployment(&sha, &env, &description)
            .await?;
        if let Err(error) = self
            .store
            .set_chat_note(&note_key(&run, &env), &id.to_string())
        {
            tracing::warn!(%error, "Cannot remember a deployment id.");
        }
        let env_url = self.urls.get(&env).cloned();
        let result = self
            .forge
            .deployment_status(
                id,
                DeploymentState::InProgress,
                &url,
                &env,
                env_url.as_deref(),
            )
            .await;
        self.open.insert((run, env), id);
        result
    }

    /// Gives the deployment of (run, env), if one is open, its last status.
    async fn close(
        &mut self,
        run: &str,
        env: &str,
        state: DeploymentState,
        url: &str,
    ) -> Result<(), ForgeError> {
        let key = (run.to_string(), env.to_string());
        let id = match self.open.remove(&key) {
            Some(id) => Some(id),
            // Opened before a restart.
            None => self
                .store
                .chat_note(&note_key(run, env))
                .ok()
                .flatten()
                .and_then(|v| v.parse().ok()),
        };
        let Some(id) = id else { return Ok(()) };
        if let Err(error) = self.store.set_chat_note(&note_key(run, env), "") {
            tracing::warn!(%error, "Cannot forget a deployment id.");
        }
        let env_url = self.urls.get(env).map(String::as_str);
        self.forge
            .deployment_status(id, state, url, env, env_url)
            .await
    }
}
