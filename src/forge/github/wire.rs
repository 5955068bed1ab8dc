//! The parts of GitHub's JSON replies the forge reads. Only the fields used
//! are declared, with defaults where GitHub may leave them out, so that a
//! small fake (or a new GitHub field) does not break parsing.

use serde::Deserialize;

use crate::domain::clock::Ts;
use crate::domain::ids::Sha;
use crate::domain::train::Commit;
use crate::forge::{ForgeError, WorkflowRun};

#[derive(Debug, Deserialize)]
pub(super) struct ShaOnly {
    pub sha: String,
}

/// `GET /repos/{o}/{r}/branches/{branch}`.
#[derive(Debug, Deserialize)]
pub(super) struct Branch {
    pub commit: ShaOnly,
}

/// A commit as `commits/{ref}`, `commits?sha=` and `compare` list it.
#[derive(Debug, Deserialize)]
pub(super) struct GhCommit {
    pub sha: String,
    #[serde(default)]
    pub commit: CommitDetail,
    /// The GitHub user the author email belongs to; null when none does.
    #[serde(default)]
    pub author: Option<Login>,
    #[serde(default)]
    pub parents: Vec<ShaOnly>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CommitDetail {
    #[serde(default)]
    pub author: Option<GitPerson>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GitPerson {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Login {
    pub login: String,
}

/// `GET /repos/{o}/{r}/commits/{ref}` read for the files it changed (one
/// page of them: GitHub pages a large commit's files).
#[derive(Debug, Deserialize)]
pub(super) struct CommitFiles {
    #[serde(default)]
    pub files: Vec<ChangedFile>,
}

/// One entry of a commit's `files`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ChangedFile {
    pub filename: String,
    /// `added`, `removed`, `modified`, `renamed`, `copied`, `changed`, …
    #[serde(default)]
    pub status: String,
    /// The unified diff's hunks; left out for binary files and for files
    /// past GitHub's diff size limit.
    #[serde(default)]
    pub patch: Option<String>,
    /// The path before a rename.
    #[serde(default)]
    pub previous_filename: Option<String>,
    #[serde(default)]
    pub changes: u64,
}

/// `GET /repos/{o}/{r}/compare/{base}...{head}`.
#[derive(Debug, Deserialize)]
pub(super) struct Compare {
    /// `ahead`, `behind`, `identical` or `diverged`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub total_commits: Option<usize>,
    #[serde(default)]
    pub commits: Vec<GhCommit>,
}

/// `git/ref/tags/{name}`: the ref and the object it names.
#[derive(Debug, Deserialize)]
pub(super) struct GitRef {
    pub object: GitObject,
}

/// One entry of `git/matching-refs/tags/`: `ref` is `refs/tags/{name}`.
#[derive(Debug, Deserialize)]
pub(super) struct MatchingRef {
    #[serde(rename = "ref")]
    pub name: String,
    pub object: GitObject,
}

/// What a ref or an annotated tag points at: `commit`, `tag`, `tree`, `blob`.
#[derive(Debug, Deserialize)]
pub(super) struct GitObject {
    #[serde(rename = "type")]
    pub kind: String,
    pub sha: String,
}

/// `git/tags/{sha}`: an annotated tag object.
#[derive(Debug, Deserialize)]
pub(super) struct GitTag {
    pub object: GitObject,
    pub tagger: Option<Tagger>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Tagger {
    pub name: Option<String>,
}

/// What a POST that creates something returns (a deployment).
#[derive(Debug, Deserialize)]
pub(super) struct Created {
    pub id: u64,
}

/// `GET /repos/{o}/{r}/actions/workflows/{workflow}/runs`.
#[derive(Debug, Deserialize)]
pub(super) struct Runs {
    #[serde(default)]
    pub workflow_runs: Vec<Run>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Run {
    pub id: u64,
    pub head_sha: String,
    pub created_at: Ts,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

pub(super) fn sha(s: &str) -> Result<Sha, ForgeError> {
    Sha::new(s).map_err(|e| ForgeError::Other(format!("GitHub gave no commit id: {e}")))
}

impl GhCommit {
    pub(super) fn into_commit(self) -> Result<Commit, ForgeError> {
        let person = self.commit.author.unwrap_or_default();
        let message = self.commit.message.trim_end().to_string();
        Ok(Commit {
            sha: sha(&self.sha)?,
            author_name: person.name.unwrap_or_default(),
            author_email: person.email.unwrap_or_default(),
            author_login: self.author.map(|a| a.login),
            subject: message.lines().next().unwrap_or("").to_string(),
            message,
        })
    }
}

/// From a reference: a polled answer is kept (shared) for the next 304.
impl From<&Run> for WorkflowRun {
    fn from(run: &Run) -> WorkflowRun {
        WorkflowRun {
            id: run.id,
            head_sha: run.head_sha.clone(),
            created_at: run.created_at,
            status: run.status.clone().unwrap_or_default(),
            conclusion: run.conclusion.clone(),
            html_url: run.html_url.clone().unwrap_or_default(),
        }
    }
}
