//! The call layer under the GitHub forge: one logical request to the REST API,
//! retried with backoff when GitHub is down or busy, its status code turned
//! into a reply or a `ForgeError` whose text can be said in chat.
//!
//! octocrab's own retry is off: it retries at once, POSTs included. Here a
//! POST that creates something is sent again only when GitHub answered (5xx,
//! 429), never after a transport error that may have hidden a success.

mod signin;

use std::any::Any;
use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use self::signin::{As, Client};
use super::auth::Credentials;
use crate::config::GithubSettings;
use crate::forge::ForgeError;

/// Attempts in all for one call, the first included.
const ATTEMPTS: u32 = 5;
/// The first wait between attempts; it doubles each time.
const BACKOFF: Duration = Duration::from_millis(200);
/// No wait (Retry-After included) is longer than this: a step or a poll is
/// waiting on the answer, and the next poll will try again anyway.
const MAX_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Polled answers kept at most. The polled URLs name things that come and
/// go (branch names, a workflow's runs of one head SHA, run ids), so the
/// cache is capped and the entry used longest ago goes first: a route
/// polled now is never the one evicted, and an evicted one costs a single
/// full answer if it is polled again. A few dozen routes are polled at once
/// at most (main, the tag pages, the branches and runs being followed).
pub(super) const CACHE_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    /// A POST that is harmless to repeat (a commit status, a deployment status).
    Post,
    /// A POST that creates something (a deployment, a workflow run, a
    /// check run).
    CreatingPost,
    /// A PATCH that sets fields (a check run's): harmless to repeat.
    Patch,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post | Method::CreatingPost => "POST",
            Method::Patch => "PATCH",
        })
    }
}

/// What a route asks GitHub for, so that a 404 says what was not found:
/// GitHub answers 404 both for an unknown repository and for an unknown
/// thing in a repository it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked<'a> {
    Repository,
    /// A commit, by its short SHA (or the prefix typed).
    Commit(&'a str),
    /// A workflow, by its file name or id.
    Workflow(&'a str),
    Tag(&'a str),
    Branch(&'a str),
    /// A name that may be a branch or a tag.
    Ref(&'a str),
    /// Two commits compared (`compare/{base}...{head}`), by their short SHAs.
    Range(&'a str, &'a str),
}

/// A reply GitHub gave: any 2xx, a 304 to a conditional GET, or a 404/422
/// the caller gives a meaning to.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub body: String,
    /// The `ETag` header, for a conditional GET next time.
    pub etag: Option<String>,
    /// The `Link` header's `rel="next"` URL, when GitHub pages the answer.
    pub next: Option<String>,
}

/// What GitHub's replies told about the rate limit, and how the requests
/// went: shared with `/metrics`. Counts attempts (a retry is one more).
#[derive(Debug)]
pub struct ApiStats {
    /// `x-ratelimit-remaining` of the latest reply; -1 before any.
    remaining: AtomicI64,
    /// `x-ratelimit-limit` of the latest reply; -1 before any.
    limit: AtomicI64,
    ok: AtomicU64,
    not_modified: AtomicU64,
    error: AtomicU64,
}

impl Default for ApiStats {
    fn default() -> ApiStats {
        ApiStats {
            remaining: AtomicI64::new(-1),
            limit: AtomicI64::new(-1),
            ok: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            error: AtomicU64::new(0),
        }
    }
}

impl ApiStats {
    /// The rate limit's remaining requests and size, once GitHub said.
    pub fn rate_limit(&self) -> Option<(u64, u64)> {
        let remaining = u64::try_from(self.remaining.load(Ordering::Relaxed)).ok()?;
        let limit = u64::try_from(self.limit.load(Ordering::Relaxed)).unwrap_or(0);
        Some((remaining, limit))
    }

    /// Requests answered (2xx), not modified (304, free of the rate limit)
    /// and failed (anything else, transport errors included).
    pub fn requests(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.not_modified.load(Ordering::Relaxed),
            self.error.load(Ordering::Relaxed),
        )
    }

    fn count(&self, status: Option<u16>) {
        let counter = match status {
            Some(304) => &self.not_modified,
            Some(200..=299) => &self.ok,
            _ => &self.error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn rate(&self, remaining: Option<i64>, limit: Option<i64>) {
        if let Some(r) = remaining {
            self.remaining.store(r, Ordering::Relaxed);
        }
        if let Some(l) = limit {
            self.limit.store(l, Ordering::Relaxed);
        }
    }
}

/// A polled GET's last answer: its ETag and the parsed body, handed back
/// as it is when GitHub answers 304.
struct Cached {
    etag: String,
    value: Arc<dyn Any + Send + Sync>,
    next: Option<String>,
    /// When it was last stored or handed back (`Api::tick`): the least
    /// recently used entry is evicted first.
    used: u64,
}

/// What a conditional GET found.
pub(super) struct Polled<T> {
    pub value: Arc<T>,
    /// False when GitHub answered 304: the same answer as last time.
    pub changed: bool,
    /// The next page's URL (`Link: rel="next"`).
    pub next: Option<String>,
}

enum Attempt {
    Done(Reply),
    Retry { why: String, wait: Option<Duration> },
    Fail(ForgeError),
}

/// The octocrab client and the repository every route is under.
pub(super) struct Api {
    client: Client,
    owner: String,
    repo: String,
    backoff: Duration,
    stats: Arc<ApiStats>,
    /// Polled URL -> its ETag and last answer. Only the polled routes
    /// (`get_polled`) are kept, at most `CACHE_MAX` of them.
    cache: Mutex<HashMap<String, Cached>>,
    /// A counter that orders the uses of cache entries.
    tick: AtomicU64,
}

impl fmt::Debug for Api {
    // Written out so that the client (and the token in it) is never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(super) fn new(
        settings: &GithubSettings,
        credentials: Credentials,
    ) -> Result<Api, ForgeError> {
        let client = Client::new(settings, credentials)?;
        Ok(Api {
            client,
            owner: settings.owner.clone(),
            repo: settings.repo.clone(),
            backoff: BACKOFF,
            stats: Arc::default(),
            cache: Mutex::default(),
            tick: AtomicU64::new(0),
        })
    }

    /// Where replies are counted (shared with `/metrics`).
    pub(super) fn set_stats(&mut self, stats: Arc<ApiStats>) {
        self.stats = stats;
    }

    /// A conditional GET of a polled route (or a `next` URL it gave): sends
    /// the ETag of the last answer, and on 304 hands that answer back
    /// unparsed. None (and nothing kept) for a 404/422.
    pub(super) async fn get_polled<T>(&self, route: &str) -> Result<Option<Polled<T>>, ForgeError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let etag = lock(&self.cache).get(route).map(|c| c.etag.clone());
        let mut reply = self.call(Method::Get, route, None, etag.as_deref()).await?;
        if reply.status == 304 {
            if let Some(cached) = self.cached(route) {
                return Ok(Some(cached));
            }
            // Evicted (or forgotten) while the request was out: the answer
            // it matched is gone, so ask for it in full.
            reply = self.call(Method::Get, route, None, None).await?;
        }
        match reply.status {
            404 | 422 => {
                self.forget(route);
                Ok(None)
            }
            _ => {
                let value: Arc<T> = Arc::new(self.expect_ok(Method::Get, route, &reply)?);
                match &reply.etag {
                    Some(etag) => self.keep(route, etag, value.clone(), reply.next.clone()),
                    None => self.forget(route),
                }
                Ok(Some(Polled {
                    value,
                    changed: true,
                    next: reply.next,
                }))
            }
        }
    }

    /// The answer kept for `route`, as a 304 hands it back.
    fn cached<T: Send + Sync + 'static>(&self, route: &str) -> Option<Polled<T>> {
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut cache = lock(&self.cache);
        let cached = cache.get_mut(route)?;
        let value = cached.value.clone().downcast::<T>().ok()?;
        cached.used = used;
        Some(Polled {
            value,
            changed: false,
            next: cached.next.clone(),
        })
    }

    /// Keeps `route`'s answer for the next conditional GET, evicting the
    /// least recently used entry when the cache is full.
    fn keep(
        &self,
        route: &str,
        etag: &str,
        value: Arc<dyn Any + Send + Sync>,
        next: Option<String>,
    ) {
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut cache = lock(&self.cache);
        if !cache.contains_key(route) && cache.len() >= CACHE_MAX {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            route.to_string(),
            Cached {
                etag: etag.to_string(),
                value,
                next,
                used,
            },
        );
    }

    /// Drops what is kept for `route`: its answer will not be asked again
    /// (a completed run), or it is no longer valid.
    pub(super) fn forget(&self, route: &str) {
        lock(&self.cache).remove(route);
    }

    /// How many polled answers are kept (for tests of the bound).
    #[cfg(test)]
    pub(super) fn cached_routes(&self) -> usize {
        lock(&self.cache).len()
    }

    #[cfg(test)]
    pub(super) fn set_backoff(&mut self, backoff: Duration) {
        self.backoff = backoff;
    }

    /// `/repos/{owner}/{repo}`, the repository itself.
    pub(super) fn repo_route(&self) -> String {
        format!(
            "/repos/{}/{}",
            encode(&self.owner, false),
            encode(&self.repo, false)
        )
    }

    /// `/repos/{owner}/{repo}/{rest}`; `rest` must already be encoded.
    pub(super) fn route(&self, rest: &str) -> String {
        format!(
            "/repos/{}/{}/{rest}",
            encode(&self.owner, false),
            encode(&self.repo, false)
        )
    }

    /// GET, where 404 means the repository is not there for us.
    pub(super) async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, ForgeError> {
        self.get_of(route, Asked::Repository).await
    }

    /// GET of `asked`, where a 404 says what was not found.
    pub(super) async fn get_of<T: DeserializeOwned>(
        &self,
        route: &str,
        asked: Asked<'_>,
    ) -> Result<T, ForgeError> {
        let reply = self.call(Method::Get, route, None, None).await?;
        match reply.status {
            404 => Err(self.not_found(asked).await),
            _ => self.expect_ok(Method::Get, route, &reply),
        }
    }

    /// GET of one thing (a branch, a commit): None when GitHub has no such
    /// thing (404, or 422 for a SHA it cannot resolve).
    pub(super) async fn get_opt<T: DeserializeOwned>(
        &self,
        route: &str,
    ) -> Result<Option<T>, ForgeError> {
        let reply = self.call(Method::Get, route, None, None).await?;
        match reply.status {
            404 | 422 => Ok(None),
            _ => self.expect_ok(Method::Get, route, &reply).map(Some),
        }
    }

    /// POST (or PATCH), and the reply's body as it came (empty for a 204); a 404 says
    /// what was not found.
    pub(super) async fn post(
        &self,
        method: Method,
        route: &str,
        body: &Value,
        asked: Asked<'_>,
    ) -> Result<String, ForgeError> {
        let reply = self.call(method, route, Some(body), None).await?;
        match reply.status {
            404 => Err(self.not_found(asked).await),
            // A commit status or check run on a SHA GitHub does not have is
            // a 422 "No commit found for SHA: …", not a 404.
            422 if matches!(asked, Asked::Commit(_))
                && message(&reply.body).starts_with("No commit found") =>
            {
                Err(self.not_found(asked).await)
            }
            200..=299 => Ok(reply.body),
            _ => Err(rejected(method, route, &reply)),
        }
    }

    pub(super) fn parse<T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        body: &str,
    ) -> Result<T, ForgeError> {
        serde_json::from_str(body).map_err(|e| {
            let e = ForgeError::Other(format!(
                "unexpected reply from GitHub to {method} {route}: {e}"
            ));
            tracing::warn!(error = %e, "GitHub reply not understood.");
            e
        })
    }

    fn expect_ok<T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        reply: &Reply,
    ) -> Result<T, ForgeError> {
        match reply.status {
            200..=299 => self.parse(method, route, &reply.body),
            _ => Err(rejected(method, route, reply)),
        }
    }

    /// The error for a 404 on a route that asked for `asked`: the thing,
    /// unless the repository itself cannot be seen (asked once more).
    pub(super) async fn not_found(&self, asked: Asked<'_>) -> ForgeError {
        let what = match asked {
            Asked::Repository => return self.not_visible(),
            Asked::Commit(sha) => format!("commit {sha}"),
            Asked::Workflow(name) => format!("workflow {name}"),
            Asked::Tag(name) => format!("tag {name}"),
            Asked::Branch(name) => format!("branch {name}"),
            Asked::Ref(name) => format!("branch or tag {name}"),
            Asked::Range(base, head) => format!("commit {base} or {head}"),
        };
        let repo = self.call(Method::Get, &self.repo_route(), None, None).await;
        if matches!(&repo, Ok(reply) if reply.status == 404) {
            return self.not_visible();
        }
        let e = ForgeError::Refused(format!("{what} not found in {}/{}", self.owner, self.repo));
        tracing::warn!(error = %e, "GitHub has no such thing.");
        e
    }

    pub(super) fn not_visible(&self) -> ForgeError {
        let e = ForgeError::Refused(format!(
            "GitHub refused: {}/{} not found or not visible to the token",
            self.owner, self.repo
        ));
        tracing::warn!(error = %e, "GitHub call refused.");
        e
    }

    /// One logical call with the repository's credentials.
    async fn call(
        &self,
        method: Method,
        route: &str,
        body: Option<&Value>,
        if_none_match: Option<&str>,
    ) -> Result<Reply, ForgeError> {
        self.call_as(As::Repository, method, route, body, if_none_match)
            .await
    }

    /// One logical call: attempts with backoff until GitHub gives an answer
    /// that retrying will not change.
    async fn call_as(
        &self,
        who: As,
        method: Method,
        route: &str,
        body: Option<&Value>,
        if_none_match: Option<&str>,
    ) -> Result<Reply, ForgeError> {
        let mut attempt = 1;
        loop {
            let (why, wait) = match self.attempt(who, method, route, body, if_none_match).await {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Fail(e) => {
                    tracing::warn!(%method, route, error = %e, "GitHub call failed.");
                    return Err(e);
                }
                Attempt::Retry { why, wait } => (why, wait),
            };
            if attempt >= ATTEMPTS {
                let e = ForgeError::Other(format!(
                    "GitHub gave no answer to {method} {route} after {ATTEMPTS} attempts: {why}"
                ));
                tracing::warn!(%method, route, error = %e, "GitHub call failed.");
                return Err(e);
            }
            let wait = wait
                .unwrap_or(self.backoff * 2u32.pow(attempt - 1))
                .min(MAX_WAIT);
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(%method, route, attempt, wait_ms, error = %why, "GitHub call failed; retrying.");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        who: As,
        method: Method,
        route: &str,
        body: Option<&Value>,
        if_none_match: Option<&str>,
    ) -> Attempt {
        let octo = match self.client_for(who).await {
            Ok(octo) => octo,
            Err(attempt) => return attempt,
        };
        tracing::debug!(%method, route, "Calling GitHub.");
        let sent = match method {
            Method::Get => {
                let headers = if_none_match.and_then(|etag| {
                    let mut headers = axum::http::HeaderMap::new();
                    let value = axum::http::HeaderValue::from_str(etag).ok()?;
                    headers.insert(axum::http::header::IF_NONE_MATCH, value);
                    Some(headers)
                });
                octo._get_with_headers(route, headers).await
            }
            Method::Post | Method::CreatingPost => octo._post(route, body).await,
            Method::Patch => octo._patch(route, body).await,
        };
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.stats.count(None);
                return self.transport_error(method, route, &e);
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let rate_limited = header("x-ratelimit-remaining").as_deref() == Some("0");
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<i64>().ok());
        self.stats
            .rate(number("x-ratelimit-remaining"), number("x-ratelimit-limit"));
        self.stats.count(Some(status));
        let etag = header("etag");
        let next = header("link").and_then(|l| next_link(&l));
        let body = match octo.body_to_string(response).await {
            Ok(body) => body,
            Err(e) => return self.transport_error(method, route, &e),
        };
        let reply = Reply {
            status,
            body,
            etag,
            next,
        };
        match status {
            200..=299 | 404 | 422 => Attempt::Done(reply),
            304 if if_none_match.is_some() => Attempt::Done(reply),
            401 => Attempt::Fail(self.unauthorized(who, &reply)),
            403 if rate_limited || retry_after.is_some() => Attempt::Retry {
                why: "rate limited (403)".into(),
                wait: retry_after,
            },
            403 => Attempt::Fail(self.forbidden(&reply)),
            429 => Attempt::Retry {
                why: "rate limited (429)".into(),
                wait: retry_after,
            },
            500..=599 => Attempt::Retry {
                why: format!("{status} {}", message(&reply.body)),
                wait: retry_after,
            },
            _ => Attempt::Fail(rejected(method, route, &reply)),
        }
    }

    fn transport_error(&self, method: Method, route: &str, e: &octocrab::Error) -> Attempt {
        let why = one_line(e);
        if method == Method::CreatingPost && !nothing_sent(e) {
            // The request may have reached GitHub, and the deployment or
            // run been created, before the connection failed; sending it
            // again could deploy twice. Say so instead of guessing.
            return Attempt::Fail(ForgeError::Other(format!(
                "no answer from GitHub to {method} {route} (not retried: it may have been done): {why}"
            )));
        }
        Attempt::Retry { why, wait: None }
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        next.then(|| url.to_string())
    })
}

/// A poisoned lock only means a panic mid-update of the cache: it is
/// still a valid cache.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A reply that is not a success and that retrying will not change.
fn rejected(method: Method, route: &str, reply: &Reply) -> ForgeError {
    ForgeError::Other(format!(
        "GitHub answered {} to {method} {route}: {}",
        reply.status,
        message(&reply.body)
    ))
}

/// GitHub's `message`, or the start of the body, on one line.
fn message(body: &str) -> String {
    let text = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

/// An octocrab error and its causes on one line (its own Display of some
/// variants is just "GitHub" or spans lines with a backtrace).
fn one_line(e: &octocrab::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let text = parts.join(": ");
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(300).collect()
}

/// True when the connection was refused: nothing reached GitHub, so even a
/// creating POST may be sent again.
fn nothing_sent(e: &octocrab::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = s.source();
    }
    false
}

/// Percent-encodes one path segment (or, with `keep_slash`, a ref like
/// `feature/x`, which GitHub takes with its slashes as they are).
pub(super) fn encode(s: &str, keep_slash: bool) -> String {
    let set = if keep_slash { PATH } else { SEGMENT };
    percent_encoding::utf8_percent_encode(s, set).to_string()
}

/// Unreserved characters (RFC 3986) stay; everything else is escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path of segments: `/` stays too (branch names like `feature/x`).
const PATH: &percent_encoding::AsciiSet = &SEGMENT.remove(b'/');
