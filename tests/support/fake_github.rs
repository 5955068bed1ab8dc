//! A fake GitHub REST API on 127.0.0.1 for end-to-end tests: the routes
//! trainbot's GitHub forge and workflow runner use, speaking the real wire
//! format, over a small in-memory repository (commits, branches, tags). An
//! axum app on its own thread and runtime, so plain `#[test]`s drive it. It
//! records every call; tests wait on those records with a deadline and
//! inject faults (`fail_next`). Also: signing and posting webhooks to the bot.
//! The including crate defines `TIMEOUT`, the upper bound of every wait.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[path = "fake_github_app.rs"]
mod app;
#[allow(unused_imports)]
pub use app::{App, Minted, Refusal, Use, sign_jwt};

/// A commit of the fake repository.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub parents: Vec<String>,
    pub author_name: String,
    pub author_email: String,
    /// The GitHub account of the author; None makes `"author": null`.
    pub author_login: Option<String>,
    pub message: String,
    /// RFC 3339; a minute after the previous commit's.
    pub date: String,
    /// What `GET /commits/{sha}` lists in `files` (empty by default).
    pub files: Vec<ChangedFile>,
}

/// One entry of a commit's `files`: the path, GitHub's `status` (`added`,
/// `removed`, `modified`, `renamed`, …) and the unified diff hunks, which
/// GitHub leaves out (`None`) for binary and very large files.
#[derive(Debug, Clone)]
pub struct ChangedFile {
    pub filename: String,
    pub status: String,
    pub patch: Option<String>,
}

impl ChangedFile {
    /// A text file whose lines `removed` became `added`, in one hunk.
    pub fn modified(filename: &str, removed: &[&str], added: &[&str]) -> ChangedFile {
        let mut patch = format!(
            "@@ -1,{} +1,{} @@\n context",
            removed.len() + 1,
            added.len() + 1
        );
        for line in removed {
            write!(patch, "\n-{line}").expect("write to a string");
        }
        for line in added {
            write!(patch, "\n+{line}").expect("write to a string");
        }
        ChangedFile {
            filename: filename.to_string(),
            status: "modified".into(),
            patch: Some(patch),
        }
    }

    /// The `+` and `-` lines of the patch: (additions, deletions).
    fn counts(&self) -> (usize, usize) {
        let lines = || self.patch.iter().flat_map(|p| p.lines());
        let added = lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count();
        let removed = lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count();
        (added, removed)
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query, e.g. `/repos/acme/web/commits?sha=main&per_page=100`.
    pub path: String,
    /// The JSON body; `Null` when there was none.
    pub body: Value,
    /// What the fake answered.
    pub status: u16,
}

/// `POST /repos/{o}/{r}/statuses/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: u64,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: String,
    pub target_url: String,
}

/// One call to the Checks API: `POST /repos/{o}/{r}/check-runs` (a new
/// run, its `id` given here) or `PATCH …/check-runs/{id}`, with its body.
#[derive(Debug, Clone)]
pub struct CheckRunCall {
    pub id: u64,
    /// `POST` or `PATCH`.
    pub method: String,
    pub body: Value,
}

/// `POST /repos/{o}/{r}/deployments`.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: u64,
    pub sha: String,
    pub git_ref: String,
    pub environment: String,
    pub description: String,
    /// GitHub's default is true.
    pub auto_merge: bool,
    /// None when the request left it out (GitHub then checks every context).
    pub required_contexts: Option<Vec<String>>,
    pub body: Value,
}

/// `POST /repos/{o}/{r}/deployments/{id}/statuses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    pub id: u64,
    pub deployment_id: u64,
    pub state: String,
    pub log_url: String,
    pub description: String,
    /// The request as sent (`environment_url`, `auto_inactive`, …).
    pub body: Value,
}

/// `POST /repos/{o}/{r}/actions/workflows/{workflow}/dispatches`.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub workflow: String,
    pub git_ref: String,
    pub inputs: Value,
}

/// A workflow run a dispatch created. Each `GET` of it moves it one step:
/// queued → in_progress → completed with `outcome` (it stays in_progress
/// while its workflow is held: `hold_runs`).
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub workflow: String,
    pub git_ref: String,
    pub head_sha: String,
    pub created_at: String,
    pub status: String,
    pub conclusion: Option<String>,
    /// The conclusion it will have: the workflow's outcome at dispatch time.
    pub outcome: String,
    pub inputs: Value,
}

/// `POST /hooks/{name}`: a plain webhook endpoint for `{ http = … }` steps
/// (no token asked, as a deploy hook would not).
#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    /// The JSON body the step sent.
    pub body: Value,
}

struct Fault {
    path_contains: String,
    status: u16,
    times: usize,
}

#[derive(Default)]
pub struct State {
    /// In creation order: parents always come before their children.
    pub commits: Vec<Commit>,
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub calls: Vec<Call>,
    pub statuses: Vec<Status>,
    pub deployments: Vec<Deployment>,
    pub deployment_statuses: Vec<DeploymentStatus>,
    /// Calls to the Checks API, in order.
    pub check_runs: Vec<CheckRunCall>,
    pub dispatches: Vec<Dispatch>,
    pub runs: Vec<Run>,
    /// Successful calls to `POST /hooks/{name}`, in order.
    pub hooks: Vec<Hook>,
    /// Workflow -> conclusion of the runs dispatched from now on ("success"
    /// when absent).
    pub outcomes: HashMap<String, String>,
    /// Workflows whose runs stay in_progress (`hold_runs`).
    pub runs_held: HashSet<String>,
    faults: Vec<Fault>,
    /// Paths of requests that were held by `hold`, in arrival order.
    pub held: Vec<String>,
    /// One counter for every id (statuses, deployments, runs), so an id
    /// used on the wrong route finds nothing.
    last_id: u64,
    /// GitHub App auth, once `enable_app` turned it on.
    pub app: Option<App>,
    /// Whether the request being answered was signed by an app's
    /// installation token (GitHub takes check runs from apps only).
    signed_by_app: bool,
}

impl State {
    /// Every call whose path (with query) contains `path_contains`.
    pub fn calls_to(&self, path_contains: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.path.contains(path_contains))
            .collect()
    }

    pub fn find_commit(&self, sha: &str) -> Option<&Commit> {
        self.commits.iter().find(|c| c.sha == sha)
    }

    /// A full SHA, a unique prefix of at least 4 hex digits, a branch or a
    /// tag (optionally `refs/heads/…`, `refs/tags/…`) to its commit's SHA.
    pub fn resolve(&self, git_ref: &str) -> Option<String> {
        if let Some(c) = self.find_commit(git_ref) {
            return Some(c.sha.clone());
        }
        let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        if let Some(sha) = self.branches.get(branch) {
            return Some(sha.clone());
        }
        let tag = git_ref.strip_prefix("refs/tags/").unwrap_or(git_ref);
        if let Some(sha) = self.tags.get(tag) {
            return Some(sha.clone());
        }
        let prefix = git_ref.to_ascii_lowercase();
        if !(4..40).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut found = self.commits.iter().filter(|c| c.sha.starts_with(&prefix));
        match (found.next(), found.next()) {
            (Some(c), None) => Some(c.sha.clone()),
            _ => None,
        }
    }

    /// `sha` and every commit reachable from it.
    fn ancestors(&self, sha: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut todo = vec![sha.to_string()];
        while let Some(sha) = todo.pop() {
            if let Some(c) = self.find_commit(&sha)
                && seen.insert(sha)
            {
                todo.extend(c.parents.iter().cloned());
            }
        }
        seen
    }

    /// The commits in `set`, oldest first.
    fn in_order(&self, set: &HashSet<String>) -> Vec<&Commit> {
        self.commits
            .iter()
            .filter(|c| set.contains(&c.sha))
            .collect()
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    fn add_commit(
        &mut self,
        parents: Vec<String>,
        name: &str,
        email: &str,
        login: Option<&str>,
        message: &str,
    ) -> String {
        let n = self.commits.len();
        let digest = hex::encode(Sha256::digest(format!("fake-github commit {n}")));
        let sha = digest[..40].to_string();
        let date = chrono::DateTime::from_timestamp(1_704_067_200 + 60 * n as i64, 0)
            .expect("a valid date")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.commits.push(Commit {
            sha: sha.clone(),
            parents,
            author_name: name.to_string(),
            author_email: email.to_string(),
            author_login: login.map(str::to_string),
            message: message.to_string(),
            date,
            files: Vec::new(),
        });
        sha
    }

    fn take_fault(&mut self, path: &str) -> Option<u16> {
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && path.contains(&f.path_contains))?;
        fault.times -= 1;
        Some(fault.status)
    }
}

struct Shared {
    owner: String,
    repo: String,
    token: String,
    base_url: String,
    state: Mutex<State>,
    changed: Condvar,
    /// Paths held unanswered (`hold`) until `release`: GitHub hanging.
    holding: tokio::sync::watch::Sender<Vec<String>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not take the
        // server down with it: the state is still what was recorded.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakeGithub {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FakeGithub {
    /// Serves `owner/repo` to requests bearing `token`. `main` starts with
    /// Alice's (`alice`, alice@example.com) "initial commit".
    pub fn start(owner: &str, repo: &str, token: &str) -> FakeGithub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Shared {
            owner: owner.to_string(),
            repo: repo.to_string(),
            token: token.to_string(),
            base_url,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            holding: tokio::sync::watch::channel(Vec::new()).0,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("fake-github".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake GitHub runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::select! {
                        served = axum::serve(listener, app) => served.expect("serve"),
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every open connection.
            })
            .expect("spawn the fake GitHub thread");
        let fake = FakeGithub {
            shared,
            stop: Some(stop),
        };
        fake.commit(
            "main",
            "Alice",
            "alice@example.com",
            Some("alice"),
            "initial commit",
        );
        fake
    }

    /// `http://127.0.0.1:P`, the API's base URL.
    pub fn api_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.shared.owner, self.shared.repo)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.shared.lock());
        self.shared.changed.notify_all();
        out
    }

    /// A commit on top of `branch` (created from main when missing); its SHA.
    pub fn commit(
        &self,
        branch: &str,
        name: &str,
        email: &str,
        login: Option<&str>,
        message: &str,
    ) -> String {
        self.with(|s| {
            let parent = s
                .branches
                .get(branch)
                .or_else(|| s.branches.get("main"))
                .cloned();
            let sha = s.add_commit(parent.into_iter().collect(), name, email, login, message);
            s.branches.insert(branch.to_string(), sha.clone());
            sha
        })
    }

    /// `commit`, changing `files` (what `GET /commits/{sha}` lists).
    pub fn commit_with_files(
        &self,
        branch: &str,
        name: &str,
        email: &str,
        login: Option<&str>,
        message: &str,
        files: Vec<ChangedFile>,
    ) -> String {
        let sha = self.commit(branch, name, email, login, message);
        self.with(|s| {
            let commit = s.commits.iter_mut().find(|c| c.sha == sha);
            commit.expect("the commit just made").files = files;
        });
        sha
    }

    /// A merge commit on `branch` whose second parent is `other`'s head.
    pub fn merge(
        &self,
        branch: &str,
        other: &str,
        name: &str,
        email: &str,
        login: Option<&str>,
    ) -> String {
        self.with(|s| {
            let parents = vec![s.branches[branch].clone(), s.branches[other].clone()];
            let message = format!("Merge branch '{other}' into {branch}");
            let sha = s.add_commit(parents, name, email, login, &message);
            s.branches.insert(branch.to_string(), sha.clone());
            sha
        })
    }

    /// Creates or moves `name` to `from` (a SHA, branch or tag).
    pub fn branch(&self, name: &str, from: &str) {
        self.with(|s| {
            let sha = s
                .resolve(from)
                .unwrap_or_else(|| panic!("no commit {from:?}"));
            s.branches.insert(name.to_string(), sha);
        });
    }

    pub fn delete_branch(&self, name: &str) {
        self.with(|s| s.branches.remove(name));
    }

    /// Creates or moves tag `name` to `sha` (a SHA, branch or tag).
    pub fn tag(&self, name: &str, sha: &str) {
        self.with(|s| {
            let sha = s
                .resolve(sha)
                .unwrap_or_else(|| panic!("no commit {sha:?}"));
            s.tags.insert(name.to_string(), sha);
        });
    }

    /// Deletes tag `name` (as `git push --delete origin <tag>` does).
    pub fn delete_tag(&self, name: &str) {
        self.with(|s| s.tags.remove(name));
    }

    /// The SHA `branch` points at; panics if there is no such branch.
    pub fn head(&self, branch: &str) -> String {
        self.with(|s| s.branches.get(branch).cloned())
            .unwrap_or_else(|| panic!("no branch {branch:?}"))
    }

    /// Runs of `workflow` dispatched from now on conclude with `conclusion`
    /// ("success", "failure", "cancelled", …).
    pub fn set_workflow_outcome(&self, workflow: &str, conclusion: &str) {
        self.with(|s| {
            s.outcomes
                .insert(workflow.to_string(), conclusion.to_string())
        });
    }

    /// Runs of `workflow` stay in_progress, unchanged, until `finish_runs`:
    /// a run that goes on for a while.
    pub fn hold_runs(&self, workflow: &str) {
        self.with(|s| s.runs_held.insert(workflow.to_string()));
    }

    /// Runs of `workflow` move on again (see `hold_runs`).
    pub fn finish_runs(&self, workflow: &str) {
        self.with(|s| s.runs_held.remove(workflow));
    }

    /// The next `times` requests whose path (with query) contains
    /// `path_contains` answer `status` with `{"message":"injected"}`. A 429
    /// carries `Retry-After: 0`.
    pub fn fail_next(&self, path_contains: &str, status: u16, times: usize) {
        self.with(|s| {
            s.faults.push(Fault {
                path_contains: path_contains.to_string(),
                status,
                times,
            })
        });
    }

    /// Requests whose path (with query) contains `path_contains` hang
    /// until `release` (or a minute): GitHub answering slowly. Each one is
    /// counted in `held` when it arrives.
    pub fn hold(&self, path_contains: &str) {
        self.shared
            .holding
            .send_modify(|h| h.push(path_contains.to_string()));
    }

    /// Held requests go on, and nothing is held any more.
    pub fn release(&self) {
        self.shared.holding.send_modify(Vec::clear);
    }

    /// Waits until `n` requests whose path contains `path_contains` are
    /// (or were) held.
    pub fn wait_held(&self, path_contains: &str, n: usize) {
        self.wait_for(&format!("{n} held requests to {path_contains}"), |s| {
            (s.held.iter().filter(|p| p.contains(path_contains)).count() >= n).then_some(())
        });
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    pub fn calls_to(&self, path_contains: &str) -> Vec<Call> {
        self.with(|s| s.calls_to(path_contains).into_iter().cloned().collect())
    }

    pub fn statuses(&self) -> Vec<Status> {
        self.with(|s| s.statuses.clone())
    }

    pub fn deployments(&self) -> Vec<Deployment> {
        self.with(|s| s.deployments.clone())
    }

    /// Every call to the Checks API, in order.
    pub fn check_runs(&self) -> Vec<CheckRunCall> {
        self.with(|s| s.check_runs.clone())
    }

    pub fn deployment_statuses(&self) -> Vec<DeploymentStatus> {
        self.with(|s| s.deployment_statuses.clone())
    }

    pub fn dispatches(&self) -> Vec<Dispatch> {
        self.with(|s| s.dispatches.clone())
    }

    pub fn runs(&self) -> Vec<Run> {
        self.with(|s| s.runs.clone())
    }

    /// Waits until `f` gives a value; panics with the recorded calls after
    /// the deadline.
    pub fn wait_for<T>(&self, what: &str, f: impl Fn(&State) -> Option<T>) -> T {
        let deadline = Instant::now() + super::TIMEOUT;
        let mut st = self.shared.lock();
        loop {
            if let Some(v) = f(&st) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let mut report = format!(
                    "timed out after {:?} waiting for {what}\ncalls:\n",
                    super::TIMEOUT
                );
                for c in &st.calls {
                    let _ = writeln!(report, "{} {} {} {}", c.method, c.path, c.status, c.body);
                }
                drop(st);
                panic!("{report}");
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until `f` holds for the calls so far; returns them.
    pub fn wait_for_calls(&self, what: &str, f: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        self.wait_for(what, |s| f(&s.calls).then(|| s.calls.clone()))
    }

    /// The first call whose path contains `path_contains`.
    pub fn wait_for_call(&self, path_contains: &str) -> Call {
        let what = format!("a call to {path_contains:?}");
        self.wait_for(&what, |s| {
            s.calls_to(path_contains).first().map(|c| (*c).clone())
        })
    }

    /// A commit status `state` under `context` on `sha`.
    pub fn wait_for_status(&self, sha: &str, context: &str, state: &str) -> Status {
        let what = format!("status {state} for {context} on {sha}");
        self.wait_for(&what, |s| {
            s.statuses
                .iter()
                .find(|st| st.sha == sha && st.context == context && st.state == state)
                .cloned()
        })
    }

    /// A deployment status `state` (of any deployment).
    pub fn wait_for_deployment_status(&self, state: &str) -> DeploymentStatus {
        let what = format!("a deployment status {state}");
        self.wait_for(&what, |s| {
            s.deployment_statuses
                .iter()
                .find(|d| d.state == state)
                .cloned()
        })
    }

    /// Every deployment, once `n` deployment statuses say success.
    pub fn wait_for_successful_deployments(&self, n: usize) -> Vec<Deployment> {
        let what = format!("{n} deployments finished with success");
        self.wait_for(&what, |s| {
            let done = s
                .deployment_statuses
                .iter()
                .filter(|d| d.state == "success")
                .count();
            (done == n).then(|| s.deployments.clone())
        })
    }

    /// The first call to `POST /hooks/{name}` that was answered 200.
    pub fn wait_for_hook(&self, name: &str) -> Hook {
        let what = format!("a call to /hooks/{name}");
        self.wait_for(&what, |s| s.hooks.iter().find(|h| h.name == name).cloned())
    }

    /// `{api_url}/hooks/{name}`: a URL for an http step.
    pub fn hook_url(&self, name: &str) -> String {
        format!("{}/hooks/{name}", self.shared.base_url)
    }

    pub fn wait_for_dispatch(&self, workflow: &str) -> Dispatch {
        let what = format!("a dispatch of {workflow}");
        self.wait_for(&what, |s| {
            s.dispatches
                .iter()
                .find(|d| d.workflow == workflow)
                .cloned()
        })
    }

    /// A `push` webhook payload for `git_ref` (`refs/heads/main`). The head
    /// commit, when `head_commit` (its message) is given, is `after`, with
    /// its author from the fake repository if it knows `after`.
    pub fn push_event(
        &self,
        git_ref: &str,
        before: &str,
        after: &str,
        head_commit: Option<&str>,
        pusher: &str,
    ) -> Value {
        const ZERO: &str = "0000000000000000000000000000000000000000";
        let known = self.with(|s| s.find_commit(after).cloned());
        let head = head_commit.map(|message| {
            let (name, email, login) = match &known {
                Some(c) => (
                    c.author_name.clone(),
                    c.author_email.clone(),
                    c.author_login.clone(),
                ),
                None => (
                    pusher.to_string(),
                    format!("{pusher}@example.com"),
                    Some(pusher.to_string()),
                ),
            };
            json!({
                "id": after, "tree_id": after, "distinct": true, "message": message,
                "timestamp": known.as_ref().map_or("2024-01-01T00:00:00Z", |c| c.date.as_str()),
                "url": format!("{}/{}/commit/{after}", self.api_url(), self.full_name()),
                "author": {"name": name, "email": email, "username": login},
                "committer": {"name": name, "email": email, "username": login},
                "added": [], "removed": [], "modified": []
            })
        });
        let base = self.api_url();
        let full_name = self.full_name();
        json!({
            "ref": git_ref,
            "before": before,
            "after": after,
            "created": before == ZERO,
            "deleted": after == ZERO,
            "forced": false,
            "base_ref": null,
            "compare": format!("{base}/{full_name}/compare/{}...{}", &before[..12.min(before.len())], &after[..12.min(after.len())]),
            "commits": head.iter().cloned().collect::<Vec<_>>(),
            "head_commit": head,
            "pusher": {"name": pusher, "email": format!("{pusher}@example.com")},
            "sender": {"login": pusher, "id": 1, "type": "User"},
            "repository": {
                "id": 1, "name": self.shared.repo, "full_name": full_name,
                "default_branch": "main", "master_branch": "main",
                "html_url": format!("{base}/{full_name}"),
                "owner": {"login": self.shared.owner, "name": self.shared.owner}
            }
        })
    }
}

/// An answer: status, JSON body (none for 204) and a `Link` header.
struct Reply {
    status: u16,
    body: Option<Value>,
    link: Option<String>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            link: None,
        }
    }
    fn message(status: u16, message: &str) -> Reply {
        Reply::json(status, json!({"message": message}))
    }
    fn not_found() -> Reply {
        Reply::message(404, "Not Found")
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let bearer = app::bearer(header_text(&headers, "authorization").as_deref());
    let query = parse_query(uri.query().unwrap_or_default());
    let if_none_match = header_text(&headers, "if-none-match");
    hang_while_held(&shared, &path).await;
    let mut st = shared.lock();
    let hook = uri
        .path()
        .strip_prefix("/hooks/")
        .filter(|name| method == Method::POST && !name.is_empty() && !name.contains('/'));
    let reply = if let Some(status) = st.take_fault(&path) {
        Reply::message(status, "injected")
    } else if let Some(name) = hook {
        st.hooks.push(Hook {
            name: name.to_string(),
            body: body.clone(),
        });
        Reply::json(200, json!({"ok": true}))
    } else if let Some(reply) =
        app::answer(&shared, &mut st, &method, uri.path(), bearer.as_deref())
    {
        reply
    } else if let app::Credential::Refused(reply) =
        app::judge(&shared, &mut st, &method, &path, bearer.as_deref())
    {
        reply
    } else {
        answer(&shared, &mut st, &method, uri.path(), &query, &body)
    };
    let (reply, etag) = conditional(reply, &method, if_none_match.as_deref());
    st.calls.push(Call {
        method: method.to_string(),
        path,
        body,
        status: reply.status,
    });
    let remaining = rate_remaining(&st);
    drop(st);
    shared.changed.notify_all();
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match reply.body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    let headers = resp.headers_mut();
    if let Some(link) = reply.link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert("link", link);
    }
    if reply.status == 429 {
        headers.insert("retry-after", HeaderValue::from_static("0"));
    }
    conditional_headers(headers, etag.as_deref(), remaining);
    resp
}

/// A held request waits for `release` (at most a minute, so a failed test
/// leaves nothing hanging).
async fn hang_while_held(shared: &Shared, path: &str) {
    let mut rx = shared.holding.subscribe();
    let mut counted = false;
    loop {
        let held = rx.borrow_and_update().iter().any(|p| path.contains(p));
        if !held {
            return;
        }
        if !counted {
            counted = true;
            shared.lock().held.push(path.to_string());
            shared.changed.notify_all();
        }
        let wait = std::time::Duration::from_secs(60);
        if tokio::time::timeout(wait, rx.changed()).await.is_err() {
            return;
        }
    }
}

fn answer(
    sh: &Shared,
    st: &mut State,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Reply {
    let Some(rest) = path.strip_prefix("/repos/") else {
        return Reply::not_found();
    };
    let mut parts = rest.splitn(3, '/');
    let (owner, repo) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !owner.eq_ignore_ascii_case(&sh.owner) || !repo.eq_ignore_ascii_case(&sh.repo) {
        return Reply::not_found();
    }
    let rest = percent_decode(parts.next().unwrap_or_default());
    let rest = rest.trim_end_matches('/');
    let get = method == Method::GET;
    let post = method == Method::POST;
    if get && rest.is_empty() {
        let full_name = format!("{}/{}", sh.owner, sh.repo);
        return Reply::json(
            200,
            json!({
                "id": 1, "name": sh.repo, "full_name": full_name, "default_branch": "main",
                "private": true, "html_url": format!("{}/{full_name}", sh.base_url)
            }),
        );
    }
    if get && let Some(name) = rest.strip_prefix("branches/") {
        return match st.branches.get(name) {
            Some(sha) => Reply::json(
                200,
                json!({"name": name, "commit": {"sha": sha}, "protected": false}),
            ),
            None => Reply::message(404, "Branch not found"),
        };
    }
    if get && rest == "commits" {
        let from = query.get("sha").map_or("main", String::as_str);
        let Some(sha) = st.resolve(from) else {
            return Reply::not_found();
        };
        let set = st.ancestors(&sha);
        let items = st
            .in_order(&set)
            .into_iter()
            .rev()
            .map(|c| commit_json(sh, c))
            .collect();
        return paged(sh, path, query, items, 30, |v| json!(v));
    }
    if get && let Some(git_ref) = rest.strip_prefix("commits/") {
        return match st.resolve(git_ref).and_then(|sha| st.find_commit(&sha)) {
            Some(c) => Reply::json(200, commit_with_files(sh, c, query)),
            None => Reply::message(422, &format!("No commit found for SHA: {git_ref}")),
        };
    }
    if get && let Some(spec) = rest.strip_prefix("compare/") {
        return compare(sh, st, path, query, spec);
    }
    if get && rest == "tags" {
        let items = st
            .tags
            .iter()
            .rev()
            .map(|(name, sha)| json!({"name": name, "commit": {"sha": sha, "url": format!("{}/repos/{}/{}/commits/{sha}", sh.base_url, sh.owner, sh.repo)}}))
            .collect();
        return paged(sh, path, query, items, 30, |v| json!(v));
    }
    if get && let Some(reply) = matching_refs(sh, st, rest) {
        return reply;
    }
    // One tag's ref. The fake's tags are lightweight: the ref names the
    // commit itself (an annotated one would name a tag object).
    if get && let Some(name) = rest.strip_prefix("git/ref/tags/") {
        return match st.tags.get(name) {
            Some(sha) => Reply::json(
                200,
                json!({
                    "ref": format!("refs/tags/{name}"),
                    "node_id": "REF_1",
                    "url": format!("{}/repos/{}/{}/git/refs/tags/{name}", sh.base_url, sh.owner, sh.repo),
                    "object": {"type": "commit", "sha": sha,
                               "url": format!("{}/repos/{}/{}/git/commits/{sha}", sh.base_url, sh.owner, sh.repo)}
                }),
            ),
            None => Reply::not_found(),
        };
    }
    if post && let Some(sha) = rest.strip_prefix("statuses/") {
        return create_status(st, sha, body);
    }
    if post && rest == "deployments" {
        return create_deployment(st, body);
    }
    if post
        && let Some(id) = rest
            .strip_prefix("deployments/")
            .and_then(|r| r.strip_suffix("/statuses"))
    {
        return create_deployment_status(sh, st, id, body);
    }
    if let Some(reply) = check_runs::answer(sh, st, method, rest, body) {
        return reply;
    }
    if let Some(workflow_rest) = rest.strip_prefix("actions/workflows/") {
        if post && let Some(workflow) = workflow_rest.strip_suffix("/dispatches") {
            return dispatch(st, workflow, body);
        }
        if get && let Some(workflow) = workflow_rest.strip_suffix("/runs") {
            return list_runs(sh, st, workflow, query);
        }
    }
    if get && let Some(id) = rest.strip_prefix("actions/runs/") {
        let Some(run) = st.runs.iter_mut().find(|r| id.parse() == Ok(r.id)) else {
            return Reply::not_found();
        };
        match run.status.as_str() {
            "queued" => run.status = "in_progress".into(),
            "in_progress" if st.runs_held.contains(&run.workflow) => {}
            "in_progress" => {
                run.status = "completed".into();
                run.conclusion = Some(run.outcome.clone());
            }
            _ => {}
        }
        return Reply::json(200, run_json(sh, run));
    }
    Reply::not_found()
}

fn compare(
    sh: &Shared,
    st: &State,
    path: &str,
    query: &HashMap<String, String>,
    spec: &str,
) -> Reply {
    let Some((base, head)) = spec.split_once("...") else {
        return Reply::not_found();
    };
    let (Some(base_sha), Some(head_sha)) = (st.resolve(base), st.resolve(head)) else {
        return Reply::not_found();
    };
    let from_base = st.ancestors(&base_sha);
    let from_head = st.ancestors(&head_sha);
    let ahead: HashSet<String> = from_head.difference(&from_base).cloned().collect();
    let behind = from_base.difference(&from_head).count();
    let status = match (ahead.len(), behind) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let common: HashSet<String> = from_base.intersection(&from_head).cloned().collect();
    let merge_base = st.in_order(&common).last().map(|c| commit_json(sh, c));
    let base_commit = st.find_commit(&base_sha).map(|c| commit_json(sh, c));
    let items = st
        .in_order(&ahead)
        .into_iter()
        .map(|c| commit_json(sh, c))
        .collect();
    let total = ahead.len();
    let html_url = format!(
        "{}/{}/{}/compare/{base}...{head}",
        sh.base_url, sh.owner, sh.repo
    );
    // Unpaged, GitHub answers up to 250 commits.
    paged(sh, path, query, items, 250, |commits| {
        json!({
            "url": format!("{}{path}", sh.base_url), "html_url": html_url,
            "status": status, "ahead_by": total, "behind_by": behind, "total_commits": total,
            "base_commit": base_commit, "merge_base_commit": merge_base,
            "commits": commits, "files": []
        })
    })
}

fn create_status(st: &mut State, sha: &str, body: &Value) -> Reply {
    if st.find_commit(sha).is_none() {
        return Reply::message(422, &format!("No commit found for SHA: {sha}"));
    }
    let state = text(body, "state");
    if !["error", "failure", "pending", "success"].contains(&state.as_str()) {
        return Reply::message(422, "Validation Failed");
    }
    let status = Status {
        id: st.next_id(),
        sha: sha.to_string(),
        state,
        context: body["context"].as_str().unwrap_or("default").to_string(),
        description: text(body, "description"),
        target_url: text(body, "target_url"),
    };
    let now = now();
    let answer = json!({
        "id": status.id, "state": status.state, "context": status.context,
        "description": status.description, "target_url": status.target_url,
        "created_at": now, "updated_at": now
    });
    st.statuses.push(status);
    Reply::json(201, answer)
}

fn create_deployment(st: &mut State, body: &Value) -> Reply {
    let git_ref = text(body, "ref");
    let Some(sha) = st.resolve(&git_ref) else {
        return Reply::message(422, &format!("No ref found for: {git_ref}"));
    };
    let deployment = Deployment {
        id: st.next_id(),
        sha,
        environment: body["environment"]
            .as_str()
            .unwrap_or("production")
            .to_string(),
        description: text(body, "description"),
        auto_merge: body["auto_merge"].as_bool().unwrap_or(true),
        required_contexts: body["required_contexts"].as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        }),
        git_ref,
        body: body.clone(),
    };
    let answer = json!({
        "id": deployment.id, "sha": deployment.sha, "ref": deployment.git_ref,
        "task": body["task"].as_str().unwrap_or("deploy"), "environment": deployment.environment,
        "description": deployment.description, "payload": body.get("payload").cloned().unwrap_or(json!({})),
        "created_at": now(), "updated_at": now()
    });
    st.deployments.push(deployment);
    Reply::json(201, answer)
}

fn create_deployment_status(sh: &Shared, st: &mut State, id: &str, body: &Value) -> Reply {
    let Some(deployment_id) = st
        .deployments
        .iter()
        .map(|d| d.id)
        .find(|d| id.parse() == Ok(*d))
    else {
        return Reply::not_found();
    };
    let status = DeploymentStatus {
        id: st.next_id(),
        deployment_id,
        state: text(body, "state"),
        log_url: text(body, "log_url"),
        description: text(body, "description"),
        body: body.clone(),
    };
    let answer = json!({
        "id": status.id, "state": status.state, "log_url": status.log_url,
        "description": status.description, "created_at": now(),
        "deployment_url": format!("{}/repos/{}/{}/deployments/{deployment_id}", sh.base_url, sh.owner, sh.repo)
    });
    st.deployment_statuses.push(status);
    Reply::json(201, answer)
}

fn dispatch(st: &mut State, workflow: &str, body: &Value) -> Reply {
    let git_ref = text(body, "ref");
    let Some(head_sha) = st.resolve(&git_ref) else {
        return Reply::message(422, &format!("No ref found for: {git_ref}"));
    };
    let inputs = body.get("inputs").cloned().unwrap_or(json!({}));
    st.dispatches.push(Dispatch {
        workflow: workflow.to_string(),
        git_ref: git_ref.clone(),
        inputs: inputs.clone(),
    });
    let run = Run {
        id: st.next_id(),
        workflow: workflow.to_string(),
        git_ref,
        head_sha,
        created_at: now(),
        status: "queued".into(),
        conclusion: None,
        outcome: st
            .outcomes
            .get(workflow)
            .cloned()
            .unwrap_or_else(|| "success".into()),
        inputs,
    };
    st.runs.push(run);
    Reply {
        status: 204,
        body: None,
        link: None,
    }
}

fn list_runs(sh: &Shared, st: &State, workflow: &str, query: &HashMap<String, String>) -> Reply {
    // Every run here comes from a dispatch.
    let dispatched = query.get("event").is_none_or(|e| e == "workflow_dispatch");
    let runs: Vec<&Run> = st
        .runs
        .iter()
        .rev()
        .filter(|r| dispatched && r.workflow == workflow)
        .filter(|r| query.get("head_sha").is_none_or(|sha| *sha == r.head_sha))
        .filter(|r| query.get("branch").is_none_or(|b| *b == r.git_ref))
        .collect();
    let per_page = per_page(query, 30);
    let page = page_number(query);
    let shown: Vec<Value> = runs
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| run_json(sh, r))
        .collect();
    Reply::json(
        200,
        json!({"total_count": runs.len(), "workflow_runs": shown}),
    )
}

fn run_json(sh: &Shared, run: &Run) -> Value {
    json!({
        "id": run.id, "name": run.workflow, "workflow": run.workflow,
        "path": format!(".github/workflows/{}", run.workflow),
        "head_branch": run.git_ref, "head_sha": run.head_sha, "event": "workflow_dispatch",
        "status": run.status, "conclusion": run.conclusion,
        "created_at": run.created_at, "updated_at": run.created_at, "run_attempt": 1,
        "html_url": format!("{}/{}/{}/actions/runs/{}", sh.base_url, sh.owner, sh.repo, run.id),
        "inputs": run.inputs
    })
}

fn commit_json(sh: &Shared, c: &Commit) -> Value {
    let repo_url = format!("{}/repos/{}/{}", sh.base_url, sh.owner, sh.repo);
    let person = json!({"name": c.author_name, "email": c.author_email, "date": c.date});
    json!({
        "sha": c.sha,
        "url": format!("{repo_url}/commits/{}", c.sha),
        "html_url": format!("{}/{}/{}/commit/{}", sh.base_url, sh.owner, sh.repo, c.sha),
        "commit": {"author": person, "committer": person, "message": c.message},
        "author": c.author_login.as_ref().map(|login| json!({"login": login, "type": "User"})),
        "committer": c.author_login.as_ref().map(|login| json!({"login": login, "type": "User"})),
        "parents": c.parents.iter().map(|p| json!({"sha": p, "url": format!("{repo_url}/commits/{p}")})).collect::<Vec<_>>()
    })
}

/// `GET /commits/{sha}`: the commit with `stats` and one page of its
/// `files` (GitHub pages a commit's files, 300 by default).
fn commit_with_files(sh: &Shared, c: &Commit, query: &HashMap<String, String>) -> Value {
    let per_page = per_page(query, 300);
    let start = (page_number(query) - 1) * per_page;
    let (mut additions, mut deletions) = (0, 0);
    let mut files = Vec::new();
    for (i, f) in c.files.iter().enumerate() {
        let (added, removed) = f.counts();
        additions += added;
        deletions += removed;
        if !(start..start + per_page).contains(&i) {
            continue;
        }
        let blob = format!(
            "{}/{}/{}/blob/{}/{}",
            sh.base_url, sh.owner, sh.repo, c.sha, f.filename
        );
        let blob_sha = hex::encode(Sha256::digest(format!("{}:{}", c.sha, f.filename)));
        let mut file = json!({
            "sha": blob_sha[..40],
            "filename": f.filename, "status": f.status,
            "additions": added, "deletions": removed, "changes": added + removed,
            "blob_url": blob, "raw_url": blob.replace("/blob/", "/raw/"),
            "contents_url": format!("{}/repos/{}/{}/contents/{}?ref={}", sh.base_url, sh.owner, sh.repo, f.filename, c.sha),
        });
        if let Some(patch) = &f.patch {
            file["patch"] = json!(patch);
        }
        files.push(file);
    }
    let mut body = commit_json(sh, c);
    body["stats"] =
        json!({"additions": additions, "deletions": deletions, "total": additions + deletions});
    body["files"] = json!(files);
    body
}

/// One page of `items` (`per_page`, `page` from the query), wrapped by
/// `wrap`, with GitHub's `Link` header when there is more than one page.
fn paged(
    sh: &Shared,
    path: &str,
    query: &HashMap<String, String>,
    items: Vec<Value>,
    default_per_page: usize,
    wrap: impl FnOnce(Vec<Value>) -> Value,
) -> Reply {
    let per_page = per_page(query, default_per_page);
    let page = page_number(query);
    let last = items.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut reply = Reply::json(200, wrap(shown));
    if last > 1 {
        let route = path.split('?').next().unwrap_or(path);
        let mut kept: Vec<(&String, &String)> = query
            .iter()
            .filter(|(k, _)| *k != "page" && *k != "per_page")
            .collect();
        kept.sort();
        let mut common = String::new();
        for (k, v) in kept {
            let _ = write!(common, "{}={}&", percent_encode(k), percent_encode(v));
        }
        let url = |n: usize| {
            format!(
                "<{}{route}?{common}per_page={per_page}&page={n}>",
                sh.base_url
            )
        };
        let mut links = Vec::new();
        if page < last {
            links.push(format!("{}; rel=\"next\"", url(page + 1)));
            links.push(format!("{}; rel=\"last\"", url(last)));
        }
        if page > 1 {
            links.push(format!("{}; rel=\"first\"", url(1)));
            links.push(format!("{}; rel=\"prev\"", url(page - 1)));
        }
        reply.link = (!links.is_empty()).then(|| links.join(", "));
    }
    reply
}

fn per_page(query: &HashMap<String, String>, default: usize) -> usize {
    query
        .get("per_page")
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(default, |n| n.clamp(1, 100))
}

fn page_number(query: &HashMap<String, String>) -> usize {
    query
        .get("page")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn text(body: &Value, key: &str) -> String {
    body[key].as_str().unwrap_or_default().to_string()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `sha256=` and the hex HMAC-SHA256 of `body`: `X-Hub-Signature-256`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a webhook delivery as GitHub does; the status and body of the
/// answer. `signature` None sends no `X-Hub-Signature-256`.
pub fn post_webhook(
    url: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
    signature: Option<&str>,
) -> (u16, String) {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("User-Agent", "GitHub-Hookshot/fake"),
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
    ];
    if let Some(sig) = signature {
        headers.push(("X-Hub-Signature-256", sig));
    }
    let reply = http("POST", url, &headers, body);
    (reply.status, reply.body)
}

/// An answer the blocking client read.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A `GET` with a bearer token (when given), as API clients send it.
pub fn http_get(url: &str, token: Option<&str>) -> HttpReply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "application/vnd.github+json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    http("GET", url, &headers, b"")
}

/// A blocking HTTP/1.1 request on std::net (`http://host:port/path` only),
/// one connection per request (`Connection: close`).
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (host, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let mut stream =
        TcpStream::connect(host).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    stream
        .set_read_timeout(Some(super::TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(super::TIMEOUT))
        .expect("write timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .unwrap_or_else(|e| panic!("cannot send {method} {url}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("no complete answer to {method} {url}: {e}"));
    parse_reply(&raw).unwrap_or_else(|| {
        panic!(
            "a malformed answer to {method} {url}: {}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_reply(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

// ---- Conditional requests and the rate limit (issue 15) ----------------
//
// As GitHub: every 200 to a GET carries an `ETag` (here a hash of the
// body); a GET whose `If-None-Match` is the current ETag gets 304 Not
// Modified with no body, which costs nothing against the rate limit. Every
// reply says `x-ratelimit-limit` / `x-ratelimit-remaining`, the limit less
// the calls that were not 304s. `git/matching-refs/{prefix}` lists the refs
// under `refs/{prefix}` (branches and tags), unpaged, sorted by name.

/// The fake's hourly rate limit.
pub const RATE_LIMIT: usize = 5000;

impl State {
    /// Calls to routes containing `path_contains` that GitHub would count
    /// against the rate limit: all but the 304s.
    pub fn spent_on(&self, path_contains: &str) -> usize {
        self.calls_to(path_contains)
            .iter()
            .filter(|c| c.status != 304)
            .count()
    }
}

impl FakeGithub {
    /// See `State::spent_on`.
    pub fn spent_on(&self, path_contains: &str) -> usize {
        self.with(|s| s.spent_on(path_contains))
    }

    /// 304 answers to calls to routes containing `path_contains`.
    pub fn not_modified_on(&self, path_contains: &str) -> usize {
        self.with(|s| {
            s.calls_to(path_contains)
                .iter()
                .filter(|c| c.status == 304)
                .count()
        })
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The reply, or 304 when it is a 200 to a GET whose `If-None-Match` names
/// its ETag; and that ETag, for the header.
fn conditional(
    reply: Reply,
    method: &Method,
    if_none_match: Option<&str>,
) -> (Reply, Option<String>) {
    if *method != Method::GET || reply.status != 200 {
        return (reply, None);
    }
    let Some(body) = &reply.body else {
        return (reply, None);
    };
    let digest = Sha256::digest(body.to_string().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{hex}\"");
    let matches = if_none_match.is_some_and(|sent| {
        sent.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    });
    if matches {
        let not_modified = Reply {
            status: 304,
            body: None,
            link: None,
        };
        return (not_modified, Some(etag));
    }
    (reply, Some(etag))
}

fn rate_remaining(st: &State) -> usize {
    let spent = st.calls.iter().filter(|c| c.status != 304).count();
    RATE_LIMIT.saturating_sub(spent)
}

fn conditional_headers(headers: &mut HeaderMap, etag: Option<&str>, remaining: usize) {
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert("etag", etag);
    }
    headers.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert(
        "x-ratelimit-used",
        HeaderValue::from(RATE_LIMIT.saturating_sub(remaining)),
    );
}

/// `GET git/matching-refs/{prefix}` (`rest` without its trailing slash):
/// None for other routes.
fn matching_refs(sh: &Shared, st: &State, rest: &str) -> Option<Reply> {
    let prefix = rest.strip_prefix("git/matching-refs")?;
    let prefix = format!("refs{prefix}");
    let base = format!("{}/repos/{}/{}", sh.base_url, sh.owner, sh.repo);
    let heads = st
        .branches
        .iter()
        .map(|(n, sha)| (format!("refs/heads/{n}"), sha));
    let tags = st
        .tags
        .iter()
        .map(|(n, sha)| (format!("refs/tags/{n}"), sha));
    let mut refs: Vec<(String, &String)> = heads
        .chain(tags)
        .filter(|(name, _)| name.starts_with(&prefix))
        .collect();
    refs.sort();
    let items: Vec<Value> = refs
        .into_iter()
        .enumerate()
        .map(|(i, (name, sha))| {
            json!({
                "ref": name,
                "node_id": format!("REF_{i}"),
                "url": format!("{base}/git/{name}"),
                "object": {"type": "commit", "sha": sha, "url": format!("{base}/git/commits/{sha}")},
            })
        })
        .collect();
    Some(Reply::json(200, json!(items)))
}

/// The Checks API (publishing side): check runs created and updated, each
/// call recorded with its body. Kept apart from the polled read routes.
mod check_runs {
    use axum::http::Method;
    use serde_json::{Value, json};

    use super::{CheckRunCall, Reply, Shared, State, now};

    /// The reply to a Checks API call, or None for any other route.
    pub(super) fn answer(
        sh: &Shared,
        st: &mut State,
        method: &Method,
        rest: &str,
        body: &Value,
    ) -> Option<Reply> {
        let creating = *method == Method::POST && rest == "check-runs";
        let id = rest
            .strip_prefix("check-runs/")
            .filter(|_| *method == Method::PATCH);
        if !creating && id.is_none() {
            return None;
        }
        if !st.signed_by_app {
            // What GitHub answers a personal access token here.
            return Some(Reply::json(
                403,
                json!({"message": "You must authenticate via a GitHub App.", "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run", "status": "403"}),
            ));
        }
        Some(match id {
            Some(id) => update(sh, st, id, body),
            None => create(sh, st, body),
        })
    }

    fn create(sh: &Shared, st: &mut State, body: &Value) -> Reply {
        for key in ["name", "head_sha"] {
            if body[key].as_str().is_none_or(str::is_empty) {
                return Reply::message(422, &format!("Invalid request: {key} is missing"));
            }
        }
        let sha = body["head_sha"].as_str().unwrap_or_default();
        if st.find_commit(sha).is_none() {
            return Reply::message(422, &format!("No commit found for SHA: {sha}"));
        }
        if let Some(problem) = invalid(body) {
            return Reply::message(422, &problem);
        }
        let id = st.next_id();
        st.check_runs.push(CheckRunCall {
            id,
            method: "POST".into(),
            body: body.clone(),
        });
        Reply::json(201, run_json(sh, id, body))
    }

    fn update(sh: &Shared, st: &mut State, id: &str, body: &Value) -> Reply {
        let Some(id) = st
            .check_runs
            .iter()
            .map(|c| c.id)
            .find(|c| id.parse() == Ok(*c))
        else {
            return Reply::not_found();
        };
        if let Some(problem) = invalid(body) {
            return Reply::message(422, &problem);
        }
        st.check_runs.push(CheckRunCall {
            id,
            method: "PATCH".into(),
            body: body.clone(),
        });
        Reply::json(200, run_json(sh, id, body))
    }

    /// GitHub's rules for the fields both calls take.
    fn invalid(body: &Value) -> Option<String> {
        let status = body["status"].as_str();
        if let Some(s) = status
            && !["queued", "in_progress", "completed"].contains(&s)
        {
            return Some(format!("Invalid status: {s}"));
        }
        let conclusion = body["conclusion"].as_str();
        if status == Some("completed") && conclusion.is_none() {
            return Some("Invalid request: conclusion is required when status is completed".into());
        }
        if let Some(output) = body.get("output")
            && (output["title"].as_str().is_none() || output["summary"].as_str().is_none())
        {
            return Some("Invalid request: output needs a title and a summary".into());
        }
        None
    }

    fn run_json(sh: &Shared, id: u64, body: &Value) -> Value {
        json!({
            "id": id,
            "name": body["name"],
            "head_sha": body["head_sha"],
            "status": body["status"],
            "conclusion": body["conclusion"],
            "details_url": body["details_url"],
            "started_at": now(),
            "url": format!("{}/repos/{}/{}/check-runs/{id}", sh.base_url, sh.owner, sh.repo),
        })
    }
}
