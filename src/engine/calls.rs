//! Network calls run beside the engine (SPEC §12): a call is spawned with
//! the forge's deadline and its result comes back through the inbox as an
//! `Event::Reply`. The engine's loop awaits only its inbox and its store, so
//! `!status` answers while GitHub hangs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::chat::Chat;
use crate::config::Settings;
use crate::domain::approval::{self, Identities};
use crate::domain::clock::human;
use crate::domain::ids::{BranchName, ChatUser, Sha, ShaPrefix};
use crate::domain::refusal::Refusal;
use crate::domain::train::{Actor, Commit, Kind, Route};
use crate::forge::{Forge, ForgeError, TagRef};
use crate::store::QueuedTag;

use super::{Engine, Event};

/// A command whose answer waits for a call: enough to finish it later
/// (audit, reply, privately for a button).
#[derive(Debug, Clone)]
pub struct Asked {
    pub actor: Actor,
    pub text: String,
    pub private: bool,
    pub query: bool,
    /// The chat thread the command was typed in: its answers go there.
    pub thread: Option<String>,
}

/// Which command resolved a SHA on main.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Force,
    Rollback,
}

/// Where a departure came from: a tag deploy that fails is put back.
#[derive(Debug, Clone)]
pub enum Origin {
    Tag { seq: u64, tag: QueuedTag },
    Other,
}

/// A train that is about to leave: its commits are being listed.
#[derive(Debug, Clone)]
pub struct Departing {
    pub sha: Sha,
    pub kind: Kind,
    pub route: Route,
    pub overrides: Option<crate::domain::gate::Rule>,
    pub origin: Origin,
}

/// What the forge and the chat said about a departing train.
#[derive(Debug, Clone)]
pub struct Prep {
    pub base: Option<Sha>,
    pub commits: Vec<Commit>,
    pub reverted: Vec<Sha>,
    /// Emails `[people]` does not know, as the chat resolved them.
    pub looked_up: BTreeMap<String, Option<ChatUser>>,
}

/// A call's result, back in the engine.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `!force <sha>`, `!rollback <sha>`: the SHA looked up on main.
    Resolved {
        asked: Asked,
        purpose: Purpose,
        prefix: ShaPrefix,
        result: Result<Sha, ForgeError>,
    },
    /// `!deploy`: the ref's SHA and whether it is on main.
    Deploy {
        asked: Asked,
        git_ref: String,
        env: String,
        result: Result<(Sha, bool), Refusal>,
    },
    /// `!next`: the commits the next train would carry.
    Next {
        asked: Asked,
        sha: Sha,
        result: Result<Vec<Commit>, ForgeError>,
    },
    /// `!bb`: the branch's head.
    BranchHead {
        asked: Asked,
        branch: BranchName,
        result: Result<Option<Sha>, ForgeError>,
    },
    /// A departing train's commits, reverts and authors.
    Prepared {
        departing: Departing,
        result: Result<Prep, ForgeError>,
    },
    /// A new head's parent and commit, read for its allocation.
    Allocate {
        sha: Sha,
        parent: Option<Sha>,
        commit: Option<Commit>,
    },
    /// A queued tag read again (and, for production, checked on main).
    TagChecked {
        seq: u64,
        tag: QueuedTag,
        result: Result<(Option<TagRef>, Option<bool>), ForgeError>,
    },
}

impl Engine {
    /// Runs `call` beside the engine; its result, or a timeout at the
    /// forge's deadline, comes back as `wrap(result)` through the inbox.
    pub(super) fn beside<T, F, Fut>(
        &self,
        call: F,
        wrap: impl FnOnce(Result<T, ForgeError>) -> Reply + Send + 'static,
    ) where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Forge>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ForgeError>> + Send + 'static,
    {
        let forge = self.ports.forge.clone();
        let tx = self.tx.clone();
        let deadline = self.cfg.forge.timeout;
        tokio::spawn(async move {
            let result = match tokio::time::timeout(deadline, call(forge)).await {
                Ok(r) => r,
                Err(_) => Err(ForgeError::Other(format!(
                    "the forge did not answer within {}",
                    human(chrono::TimeDelta::from_std(deadline).unwrap_or_default())
                ))),
            };
            let _ = tx.send(Event::Reply(Box::new(wrap(result)))).await;
        });
    }

    /// Lists a departing train's commits, verifies its reverts and looks
    /// its authors up, beside the engine.
    pub(super) fn prepare(&self, departing: Departing, base: Option<Sha>) {
        let chat = self.ports.chat.clone();
        let cfg = self.cfg.clone();
        let sha = departing.sha.clone();
        let skip_commits = matches!(departing.kind, Kind::Deploy { .. });
        self.beside(
            move |forge| async move {
                // A `!deploy` asks nobody: its commits are not listed.
                let commits = if skip_commits {
                    Vec::new()
                } else {
                    forge.commits(base.as_ref(), &sha).await?
                };
                let claims = approval::revert_claims(&commits);
                let verified = super::trains::verified_reverts(&*forge, claims).await;
                let reverted = approval::reverted(&verified);
                let looked_up = look_up_authors(&cfg, &*chat, &commits).await;
                Ok(Prep {
                    base,
                    commits,
                    reverted,
                    looked_up,
                })
            },
            move |result| Reply::Prepared { departing, result },
        );
    }

    pub(super) async fn handle_reply(&mut self, reply: Reply) -> anyhow::Result<()> {
        match reply {
            Reply::Resolved {
                asked,
                purpose,
                prefix,
                result,
            } => {
                let answer = match purpose {
                    Purpose::Force => self.force_sha_resolved(&asked, &prefix, result).await?,
                    Purpose::Rollback => self.rollback_to(&asked, Some(&prefix), result).await?,
                };
                self.finish_command(&asked, answer).await
            }
            Reply::Deploy {
                asked,
                git_ref,
                env,
                result,
            } => {
                let answer = self.deploy_resolved(&asked, &git_ref, &env, result)?;
                self.finish_command(&asked, answer).await
            }
            Reply::Next { asked, sha, result } => {
                let text = self.next_text(&sha, result)?;
                self.reply_to(&asked, text).await;
                self.finish_command(&asked, Ok(())).await
            }
            Reply::BranchHead {
                asked,
                branch,
                result,
            } => {
                let answer = self.bb_resolved(&asked.actor.user, &branch, result).await?;
                self.finish_command(&asked, answer).await
            }
            Reply::Prepared { departing, result } => self.prepared(departing, result).await,
            Reply::TagChecked { seq, tag, result } => self.tag_checked(seq, tag, result).await,
            Reply::Allocate {
                sha,
                parent,
                commit,
            } => self.allocate(sha, parent, commit).await,
        }
    }
}

/// SPEC §3 rule 2: emails `[people]` does not know, asked of the chat.
async fn look_up_authors(
    cfg: &Settings,
    chat: &dyn Chat,
    commits: &[Commit],
) -> BTreeMap<String, Option<ChatUser>> {
    let ids = Identities {
        people: &cfg.people,
        console: cfg.chat.adapter == crate::config::ChatAdapter::Console,
    };
    let mut looked_up = BTreeMap::new();
    for c in commits {
        let email = c.author_email.to_ascii_lowercase();
        if looked_up.contains_key(&email)
            || ids
                .resolve(&c.author_email, c.author_login.as_deref())
                .is_some()
        {
            continue;
        }
        let user = chat.lookup_email(&email).await;
        looked_up.insert(email, user);
    }
    looked_up
}
