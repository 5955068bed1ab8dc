//! Forges: where commits come from and where results are published. The git
//! CLI forge (results stay in the store) and GitHub (octocrab).

pub mod git;
pub mod github;

use std::collections::BTreeMap;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::clock::Ts;
use crate::domain::ids::{BranchName, Sha, ShaPrefix};
use crate::domain::train::Commit;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForgeError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} is not on the main branch")]
    NotOnMain(String),
    /// 401/403/404 from the forge's API: the token or the repository is
    /// wrong, and retrying will not help. The text is said in chat as is,
    /// e.g. "GitHub refused: bad token for acme/web".
    #[error("{0}")]
    Refused(String),
    #[error("forge error: {0}")]
    Other(String),
}

/// A tag and the commit it points at (peeled), with who pushed it when the
/// forge knows (the tagger of an annotated tag, the pusher on a webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    pub name: String,
    pub sha: Sha,
    pub pushed_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    /// The build did not finish: superseded, cancelled or interrupted.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
}

/// Where a check run is (GitHub's Checks API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed(CheckConclusion),
}

/// How a completed check run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckConclusion {
    Success,
    Failure,
    /// Superseded, cancelled or interrupted: the build did not finish.
    Cancelled,
}

/// A check run as it is sent: created with it, then updated to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// e.g. `trainbot/branch`.
    pub name: String,
    pub status: CheckStatus,
    /// The run page; empty for none.
    pub details_url: String,
    /// The output's title and summary (Markdown).
    pub title: String,
    pub summary: String,
}

#[async_trait]
pub trait Forge: Send + Sync {
    /// The head of the main branch, or None if it does not exist yet.
    async fn main_head(&self) -> Result<Option<Sha>, ForgeError>;
    /// The first parent of a commit (None for a root commit).
    async fn parent(&self, sha: &Sha) -> Result<Option<Sha>, ForgeError>;
    /// Commits in `base..head`, oldest first (all ancestors of head when base is None).
    async fn commits(&self, base: Option<&Sha>, head: &Sha) -> Result<Vec<Commit>, ForgeError>;
    /// A SHA a user typed, resolved to a commit that is on the main branch.
    async fn resolve_on_main(&self, sha: &ShaPrefix) -> Result<Sha, ForgeError>;
    /// The head of a branch, or None if there is no such branch.
    async fn branch_head(&self, branch: &BranchName) -> Result<Option<Sha>, ForgeError>;
    /// Every tag, peeled to its commit.
    async fn tags(&self) -> Result<Vec<TagRef>, ForgeError>;
    /// Whether `reverting`'s change is exactly the inverse of `reverted`'s
    /// (SPEC §11 "verified revert"): a message saying so is not proof. Each
    /// commit's change is taken against its first parent; a commit that
    /// changes nothing reverts nothing.
    async fn reverts(&self, reverting: &Sha, reverted: &Sha) -> Result<bool, ForgeError>;
    /// Where one tag points now, peeled to its commit; None if there is no
    /// such tag (deleted). Asked right before a queued tag deploy starts.
    async fn tag(&self, name: &str) -> Result<Option<TagRef>, ForgeError>;

    /// Whether a known commit is in the main branch's history (SPEC §11
    /// rule *on main*).
    async fn is_on_main(&self, sha: &Sha) -> Result<bool, ForgeError> {
        match self.resolve_on_main(&sha.as_prefix()).await {
            Ok(_) => Ok(true),
            Err(ForgeError::NotOnMain(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the repository can be seen with the credentials given;
    /// asked once at start so a wrong token or name is said at once.
    async fn check(&self) -> Result<(), ForgeError> {
        Ok(())
    }
}

/// Where results are published for people to see on the forge: commit
/// statuses and deployments (GitHub). The git forge has none: its results
/// live in the store only.
#[async_trait]
pub trait Results: Send + Sync {
    /// Publishes a commit status under `context` (e.g. `trainbot/branch`).
    async fn commit_status(
        &self,
        sha: &Sha,
        context: &str,
        state: CommitState,
        description: &str,
        target_url: &str,
    ) -> Result<(), ForgeError>;

    /// Opens a deployment of `sha` to `environment`; its id.
    async fn create_deployment(
        &self,
        sha: &Sha,
        environment: &str,
        description: &str,
    ) -> Result<u64, ForgeError>;

    /// Creates a check run on `sha`; its id.
    async fn create_check_run(&self, sha: &Sha, run: &CheckRun) -> Result<u64, ForgeError>;

    /// Sets a check run `create_check_run` created to `run`.
    async fn update_check_run(&self, id: u64, run: &CheckRun) -> Result<(), ForgeError>;

    /// Adds a status to a deployment `create_deployment` opened to
    /// `environment`, with where that environment is reached, if known.
    async fn deployment_status(
        &self,
        deployment: u64,
        state: DeploymentState,
        log_url: &str,
        environment: &str,
        environment_url: Option<&str>,
    ) -> Result<(), ForgeError>;
}

/// One run of a GitHub Actions workflow, the fields a workflow step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    pub id: u64,
    pub head_sha: String,
    pub created_at: Ts,
    /// `queued`, `in_progress`, `completed`, …
    pub status: String,
    /// `success`, `failure`, `cancelled`, … once completed.
    pub conclusion: Option<String>,
    pub html_url: String,
}

/// The part of GitHub Actions a workflow step drives.
#[async_trait]
pub trait Actions: Send + Sync {
    /// The commit a branch or tag name points at now (the run GitHub starts
    /// for a dispatch on `git_ref` carries this as its head SHA).
    async fn ref_sha(&self, git_ref: &str) -> Result<Sha, ForgeError>;
    /// `workflow_dispatch` of `workflow` (file name or id) on `git_ref`.
    async fn dispatch(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<(), ForgeError>;
    /// Recent `workflow_dispatch` runs of `workflow` whose head is `head_sha`.
    async fn runs(&self, workflow: &str, head_sha: &str) -> Result<Vec<WorkflowRun>, ForgeError>;
    /// One run, as it is now.
    async fn run(&self, id: u64) -> Result<WorkflowRun, ForgeError>;
}
