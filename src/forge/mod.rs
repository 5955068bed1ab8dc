//! Forges: where commits come from. The git CLI forge now; GitHub later.

pub mod git;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::ids::{BranchName, Sha, ShaPrefix};
use crate::domain::train::Commit;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForgeError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} is not on the main branch")]
    NotOnMain(String),
    #[error("forge error: {0}")]
    Other(String),
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
}
