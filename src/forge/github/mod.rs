//! The GitHub forge: commits, branches and tags read from the REST API,
//! commit statuses and deployments published to it, and Actions workflows
//! dispatched and followed. octocrab carries the requests; the routes and
//! the JSON are our own (`wire`), so only the fields we need must be there.

mod api;
mod auth;
mod patch;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;

pub use self::api::ApiStats;
use self::api::{Api, Asked, Method, encode};
pub use self::auth::{AppKey, Credentials};
use self::wire::{
    Branch, ChangedFile, CommitFiles, Compare, Created, GhCommit, GitObject, GitRef, GitTag,
    MatchingRef, Run, Runs, sha,
};
use super::{
    Actions, CheckConclusion, CheckRun, CheckStatus, CommitState, DeploymentState, Forge,
    ForgeError, Results, TagRef, WorkflowRun,
};
use crate::config::GithubSettings;
use crate::domain::ids::{BranchName, Sha, ShaPrefix};
use crate::domain::train::Commit;

/// At most this many commits are returned by `commits` (the newest), as the
/// git forge does.
const COMMIT_CAP: usize = super::git::COMMIT_CAP;
/// GitHub's largest page.
const PAGE_SIZE: usize = 100;
/// A bound on any listing, should a server keep sending full pages.
const MAX_PAGES: usize = 100;
/// Annotated tags of annotated tags are peeled at most this deep.
const MAX_PEEL: usize = 5;
/// GitHub rejects a commit status description longer than this.
const DESCRIPTION_MAX: usize = 140;
/// GitHub takes at most this many characters of a check run's summary.
const SUMMARY_MAX: usize = 65_535;

pub struct GithubForge {
    api: Api,
    main_branch: String,
    page_size: usize,
    commit_cap: usize,
    /// What the tag poller last listed, handed back while GitHub answers
    /// 304 to every page.
    tags_seen: Mutex<Option<Vec<TagRef>>>,
    /// Annotated tag object -> the commit it peels to: tag objects never
    /// change, so each is peeled once (kept for the tags that exist).
    peeled: Mutex<HashMap<String, Sha>>,
}

impl fmt::Debug for GithubForge {
    // Never shows the client, which holds the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubForge")
            .field("api", &self.api)
            .field("main_branch", &self.main_branch)
            .finish_non_exhaustive()
    }
}

impl GithubForge {
    /// A client for `settings.owner`/`settings.repo` at `settings.api_url`,
    /// signed in with `credentials`. Nothing is sent until the first call.
    pub fn new(
        settings: &GithubSettings,
        main_branch: &str,
        credentials: impl Into<Credentials>,
    ) -> Result<GithubForge, ForgeError> {
        Ok(GithubForge {
            api: Api::new(settings, credentials.into())?,
            main_branch: main_branch.to_string(),
            page_size: PAGE_SIZE,
            commit_cap: COMMIT_CAP,
            tags_seen: Mutex::default(),
            peeled: Mutex::default(),
        })
    }

    /// Counts replies and the rate limit into `stats` (for `/metrics`).
    pub fn with_stats(mut self, stats: Arc<ApiStats>) -> GithubForge {
        self.api.set_stats(stats);
        self
    }

    /// Shorter waits between retries, for tests.
    #[cfg(test)]
    pub(crate) fn with_backoff(mut self, backoff: std::time::Duration) -> GithubForge {
        self.api.set_backoff(backoff);
        self
    }

    /// Main's head, asked conditionally (it is polled): a 304 is the head
    /// last read, at no cost against the rate limit.
    async fn polled_main_head(&self) -> Result<Option<Sha>, ForgeError> {
        let route = self
            .api
            .route(&format!("branches/{}", encode(&self.main_branch, true)));
        match self.api.get_polled::<Branch>(&route).await? {
            Some(b) => sha(&b.value.commit.sha).map(Some),
            None => Ok(None),
        }
    }

    /// A branch's head, asked conditionally too (branch builds poll it).
    /// None when there is no such branch.
    async fn head_of(&self, branch: &str) -> Result<Option<Sha>, ForgeError> {
        let route = self
            .api
            .route(&format!("branches/{}", encode(branch, true)));
        match self.api.get_polled::<Branch>(&route).await? {
            Some(b) => sha(&b.value.commit.sha).map(Some),
            None => Ok(None),
        }
    }

    /// `commits/{ref}`: None when GitHub cannot resolve `git_ref`.
    async fn commit(&self, git_ref: &str) -> Result<Option<GhCommit>, ForgeError> {
        let route = self
            .api
            .route(&format!("commits/{}", encode(git_ref, true)));
        self.api.get_opt(&route).await
    }

    /// The files `sha` changed, with their patches: every page of them
    /// (GitHub lists at most 3000).
    async fn changed_files(&self, sha: &Sha) -> Result<Vec<ChangedFile>, ForgeError> {
        let mut files = Vec::new();
        for page in 1..=MAX_PAGES {
            let route = self.api.route(&format!(
                "commits/{sha}?per_page={}&page={page}",
                self.page_size
            ));
            let Some(batch) = self.api.get_opt::<CommitFiles>(&route).await? else {
                return Err(self.api.not_found(Asked::Commit(sha.short())).await);
            };
            let n = batch.files.len();
            files.extend(batch.files);
            if n < self.page_size {
                break;
            }
        }
        Ok(files)
    }

    /// `base..head` through the compare API, whose pages run oldest first:
    /// pages holding only commits older than the newest `commit_cap` are
    /// skipped.
    async fn compare_range(&self, base: &Sha, head: &Sha) -> Result<Vec<Commit>, ForgeError> {
        let route = |page: usize| {
            self.api.route(&format!(
                "compare/{base}...{head}?per_page={}&page={page}",
                self.page_size
            ))
        };
        let asked = Asked::Range(base.short(), head.short());
        let first: Compare = self.api.get_of(&route(1), asked).await?;
        let total = first.total_commits;
        let done = |n: usize| n == 0 || (total.is_none() && n < self.page_size);
        let mut finished = done(first.commits.len());
        let mut commits = first.commits;
        let mut page = 1;
        if let Some(total) = total {
            let skip = total.saturating_sub(self.commit_cap) / self.page_size;
            if skip > 0 {
                commits.clear();
                page = skip;
            }
        }
        let last = total.map_or(MAX_PAGES, |t| t.div_ceil(self.page_size).min(MAX_PAGES));
        while !finished && page < last {
            page += 1;
            let next: Compare = self.api.get_of(&route(page), asked).await?;
            finished = done(next.commits.len());
            commits.extend(next.commits);
        }
        let extra = commits.len().saturating_sub(self.commit_cap);
        commits.drain(..extra);
        commits.into_iter().map(GhCommit::into_commit).collect()
    }

    /// Ancestors of `head` (itself included), newest `commit_cap` of them.
    async fn history(&self, head: &Sha) -> Result<Vec<Commit>, ForgeError> {
        let mut commits: Vec<GhCommit> = Vec::new();
        for page in 1..=MAX_PAGES {
            let route = self.api.route(&format!(
                "commits?sha={head}&per_page={}&page={page}",
                self.page_size
            ));
            let batch: Vec<GhCommit> = self.api.get_of(&route, Asked::Commit(head.short())).await?;
            let n = batch.len();
            commits.extend(batch);
            if n < self.page_size || commits.len() >= self.commit_cap {
                break;
            }
        }
        commits.truncate(self.commit_cap);
        commits.reverse();
        commits.into_iter().map(GhCommit::into_commit).collect()
    }
}

#[async_trait]
impl Forge for GithubForge {
    async fn check(&self) -> Result<(), ForgeError> {
        let route = self.api.repo_route();
        self.api.get::<serde_json::Value>(&route).await.map(drop)
    }

    async fn main_head(&self) -> Result<Option<Sha>, ForgeError> {
        self.polled_main_head().await
    }

    async fn parent(&self, sha: &Sha) -> Result<Option<Sha>, ForgeError> {
        let Some(commit) = self.commit(sha.as_str()).await? else {
            return Err(self.api.not_found(Asked::Commit(sha.short())).await);
        };
        match commit.parents.first() {
            Some(parent) => wire::sha(&parent.sha).map(Some),
            None => Ok(None),
        }
    }

    async fn commits(&self, base: Option<&Sha>, head: &Sha) -> Result<Vec<Commit>, ForgeError> {
        match base {
            Some(base) => self.compare_range(base, head).await,
            None => self.history(head).await,
        }
    }

    async fn resolve_on_main(&self, prefix: &ShaPrefix) -> Result<Sha, ForgeError> {
        let commit = self
            .commit(prefix.as_str())
            .await?
            .ok_or_else(|| ForgeError::NotFound(prefix.to_string()))?;
        let full = sha(&commit.sha)?;
        let route = self.api.route(&format!(
            "compare/{full}...{}?per_page=1&page=1",
            encode(&self.main_branch, true)
        ));
        // The commit was just found: a 404 is about main (or the repository).
        let asked = Asked::Branch(&self.main_branch);
        let compare: Compare = self.api.get_of(&route, asked).await?;
        // Only the status is read, so one commit per page is enough. "ahead":
        // main is ahead of the commit, so the commit is in main.
        match compare.status.as_str() {
            "identical" | "ahead" => Ok(full),
            _ => Err(ForgeError::NotOnMain(prefix.to_string())),
        }
    }

    async fn branch_head(&self, branch: &BranchName) -> Result<Option<Sha>, ForgeError> {
        self.head_of(branch.as_str()).await
    }

    /// Every tag, from `git/matching-refs/tags/` asked conditionally: when
    /// GitHub answers 304 to every page, nothing changed and the last list
    /// is handed back without a request counted against the rate limit.
    async fn tags(&self) -> Result<Vec<TagRef>, ForgeError> {
        // Taken out and put back only on success: after a failure half way
        // (a page read, the next one not), the list is built again.
        let seen = lock(&self.tags_seen).take();
        let mut route = self.api.route("git/matching-refs/tags/");
        let mut pages = Vec::new();
        let mut changed = false;
        for _ in 0..MAX_PAGES {
            // GitHub answers [] when there is no tag: a 404 is the
            // repository itself out of sight.
            let Some(page) = self.api.get_polled::<Vec<MatchingRef>>(&route).await? else {
                return Err(self.api.not_visible());
            };
            changed |= page.changed;
            pages.push(page.value);
            match page.next {
                Some(next) => route = next,
                None => break,
            }
        }
        if !changed && let Some(seen) = seen {
            *lock(&self.tags_seen) = Some(seen.clone());
            return Ok(seen);
        }
        let mut tags = Vec::new();
        let mut peeled = HashMap::new();
        for entry in pages.iter().flat_map(|p| p.iter()) {
            let Some(name) = entry.name.strip_prefix("refs/tags/") else {
                continue;
            };
            let commit = match entry.object.kind.as_str() {
                "commit" => sha(&entry.object.sha)?,
                "tag" => {
                    let known = lock(&self.peeled).get(&entry.object.sha).cloned();
                    let commit = match known {
                        Some(commit) => Some(commit),
                        None => self
                            .peel(name, &entry.object)
                            .await?
                            .map(|(commit, _)| commit),
                    };
                    let Some(commit) = commit else { continue };
                    peeled.insert(entry.object.sha.clone(), commit.clone());
                    commit
                }
                // A tag of a tree or blob has no commit to deploy.
                _ => continue,
            };
            tags.push(TagRef {
                name: name.to_string(),
                sha: commit,
                pushed_by: None,
            });
        }
        *lock(&self.peeled) = peeled;
        *lock(&self.tags_seen) = Some(tags.clone());
        Ok(tags)
    }

    /// Compares the two commits' `files` (see `patch`): GitHub has no patch
    /// id, but the lines each file gains and loses are there.
    async fn reverts(&self, reverting: &Sha, reverted: &Sha) -> Result<bool, ForgeError> {
        let undo = self.changed_files(reverting).await?;
        let done = self.changed_files(reverted).await?;
        patch::is_inverse((reverting, &undo), (reverted, &done))
    }

    async fn tag(&self, name: &str) -> Result<Option<TagRef>, ForgeError> {
        let route = self
            .api
            .route(&format!("git/ref/tags/{}", encode(name, true)));
        let Some(found) = self.api.get_opt::<GitRef>(&route).await? else {
            return Ok(None);
        };
        Ok(self
            .peel(name, &found.object)
            .await?
            .map(|(sha, pushed_by)| TagRef {
                name: name.to_string(),
                sha,
                pushed_by,
            }))
    }
}

impl GithubForge {
    /// The commit tag `name`'s `object` names, and its tagger: an annotated
    /// tag names a tag object, peeled to its commit. None for a tag of a
    /// tree or blob (no commit to deploy) or a tag object that is gone.
    async fn peel(
        &self,
        name: &str,
        object: &GitObject,
    ) -> Result<Option<(Sha, Option<String>)>, ForgeError> {
        let mut kind = object.kind.clone();
        let mut at = object.sha.clone();
        let mut pushed_by = None;
        for _ in 0..MAX_PEEL {
            match kind.as_str() {
                "commit" => return Ok(Some((sha(&at)?, pushed_by))),
                "tag" => {
                    let route = self.api.route(&format!("git/tags/{}", encode(&at, false)));
                    let Some(tag) = self.api.get_opt::<GitTag>(&route).await? else {
                        return Ok(None);
                    };
                    pushed_by = pushed_by.or(tag.tagger.and_then(|t| t.name));
                    kind = tag.object.kind;
                    at = tag.object.sha;
                }
                _ => return Ok(None),
            }
        }
        Err(ForgeError::Other(format!(
            "tag {name} is nested more than {MAX_PEEL} tags deep"
        )))
    }
}

#[async_trait]
impl Results for GithubForge {
    async fn commit_status(
        &self,
        sha: &Sha,
        context: &str,
        state: CommitState,
        description: &str,
        target_url: &str,
    ) -> Result<(), ForgeError> {
        let state = match state {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        };
        let mut body = json!({
            "state": state,
            "description": truncate(description, DESCRIPTION_MAX),
            "context": context,
        });
        // No link is better than an empty one.
        if !target_url.is_empty() {
            body["target_url"] = json!(target_url);
        }
        let route = self.api.route(&format!("statuses/{sha}"));
        self.api
            .post(Method::Post, &route, &body, Asked::Commit(sha.short()))
            .await
            .map(drop)
    }

    async fn create_check_run(&self, sha: &Sha, run: &CheckRun) -> Result<u64, ForgeError> {
        let mut body = check_run_body(run);
        body["head_sha"] = json!(sha.as_str());
        let route = self.api.route("check-runs");
        let reply = self
            .api
            .post(
                Method::CreatingPost,
                &route,
                &body,
                Asked::Commit(sha.short()),
            )
            .await?;
        let created: Created = self.api.parse(Method::CreatingPost, &route, &reply)?;
        Ok(created.id)
    }

    async fn update_check_run(&self, id: u64, run: &CheckRun) -> Result<(), ForgeError> {
        let body = check_run_body(run);
        let route = self.api.route(&format!("check-runs/{id}"));
        self.api
            .post(Method::Patch, &route, &body, Asked::Repository)
            .await
            .map(drop)
    }

    async fn create_deployment(
        &self,
        sha: &Sha,
        environment: &str,
        description: &str,
    ) -> Result<u64, ForgeError> {
        let body = json!({
            "ref": sha.as_str(),
            "environment": environment,
            "description": truncate(description, DESCRIPTION_MAX),
            "auto_merge": false,
            "required_contexts": [],
            "transient_environment": false,
            "production_environment": environment == "production",
        });
        let route = self.api.route("deployments");
        let reply = self
            .api
            .post(Method::CreatingPost, &route, &body, Asked::Repository)
            .await?;
        let created: Created = self.api.parse(Method::CreatingPost, &route, &reply)?;
        Ok(created.id)
    }

    async fn deployment_status(
        &self,
        deployment: u64,
        state: DeploymentState,
        log_url: &str,
        environment: &str,
        environment_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let (state, description) = match state {
            DeploymentState::InProgress => ("in_progress", "Deploying"),
            DeploymentState::Success => ("success", "Deployed"),
            DeploymentState::Failure => ("failure", "Deploy failed"),
        };
        let mut body = json!({ "state": state, "description": description });
        if !log_url.is_empty() {
            body["log_url"] = json!(log_url);
        }
        if let Some(url) = environment_url {
            body["environment_url"] = json!(url);
        }
        // GitHub marks older successful deployments of an environment
        // inactive by itself, except production's unless asked.
        if environment == "production" {
            body["auto_inactive"] = json!(true);
        }
        // A repeated deployment status only adds a duplicate entry: safe to retry.
        let route = self
            .api
            .route(&format!("deployments/{deployment}/statuses"));
        self.api
            .post(Method::Post, &route, &body, Asked::Repository)
            .await
            .map(drop)
    }
}

#[async_trait]
impl Actions for GithubForge {
    async fn ref_sha(&self, git_ref: &str) -> Result<Sha, ForgeError> {
        let Some(commit) = self.commit(git_ref).await? else {
            let asked = if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
                Asked::Tag(tag)
            } else if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
                Asked::Branch(branch)
            } else if Sha::new(git_ref).is_ok() {
                Asked::Commit(git_ref.get(..7).unwrap_or(git_ref))
            } else {
                Asked::Ref(git_ref)
            };
            return Err(self.api.not_found(asked).await);
        };
        sha(&commit.sha)
    }

    async fn dispatch(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<(), ForgeError> {
        let body = json!({ "ref": git_ref, "inputs": inputs });
        let route = self.api.route(&format!(
            "actions/workflows/{}/dispatches",
            encode(workflow, false)
        ));
        // A repeated dispatch would start a second run: a creating POST.
        self.api
            .post(
                Method::CreatingPost,
                &route,
                &body,
                Asked::Workflow(workflow),
            )
            .await
            .map(drop)
    }

    async fn runs(&self, workflow: &str, head_sha: &str) -> Result<Vec<WorkflowRun>, ForgeError> {
        let route = self.api.route(&format!(
            "actions/workflows/{}/runs?event=workflow_dispatch&head_sha={}&per_page=20",
            encode(workflow, false),
            encode(head_sha, false)
        ));
        // Polled until the dispatched run shows up: asked conditionally.
        let Some(runs) = self.api.get_polled::<Runs>(&route).await? else {
            return Err(self.api.not_found(Asked::Workflow(workflow)).await);
        };
        Ok(runs.value.workflow_runs.iter().map(Into::into).collect())
    }

    async fn run(&self, id: u64) -> Result<WorkflowRun, ForgeError> {
        let route = self.api.route(&format!("actions/runs/{id}"));
        // Polled while the run goes on: asked conditionally, and forgotten
        // once completed, as a completed run is not asked again.
        let Some(run) = self.api.get_polled::<Run>(&route).await? else {
            return Err(self.api.not_found(Asked::Repository).await);
        };
        let run = WorkflowRun::from(&*run.value);
        if run.status == "completed" {
            self.api.forget(&route);
        }
        Ok(run)
    }
}

/// A poisoned lock only means a panic mid-update: the data is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fields of `POST check-runs` and `PATCH check-runs/{id}` a run sets.
fn check_run_body(run: &CheckRun) -> serde_json::Value {
    let (status, conclusion) = match run.status {
        CheckStatus::Queued => ("queued", None),
        CheckStatus::InProgress => ("in_progress", None),
        CheckStatus::Completed(c) => (
            "completed",
            Some(match c {
                CheckConclusion::Success => "success",
                CheckConclusion::Failure => "failure",
                CheckConclusion::Cancelled => "cancelled",
            }),
        ),
    };
    let mut body = json!({
        "name": run.name,
        "status": status,
        "output": {"title": run.title, "summary": truncate(&run.summary, SUMMARY_MAX)},
    });
    if let Some(conclusion) = conclusion {
        body["conclusion"] = json!(conclusion);
    }
    if !run.details_url.is_empty() {
        body["details_url"] = json!(run.details_url);
    }
    body
}

/// At most `max` characters of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}
