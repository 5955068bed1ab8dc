//! In-memory ports for engine tests under tokio's paused time: a clock that
//! follows tokio's, a chat that records, a forge with a short linear main,
//! and a runner whose steps take simulated time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, watch};

use crate::chat::{Chat, Message};
use crate::domain::clock::{Clock, Ts};
use crate::domain::ids::{BranchName, ChatUser, Sha, ShaPrefix};
use crate::domain::train::Commit;
use crate::forge::{Forge, ForgeError, TagRef};
use crate::runner::{StepOutcome, StepRequest, StepRunner};

/// The one timeout of these tests, in simulated time: far longer than any
/// step or timer they drive, so only a stuck engine reaches it.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// A clock that follows tokio's (paused) time: a fixed base plus the tokio
/// time elapsed since it was made. Unlike `domain::clock::FakeClock` it
/// moves by itself whenever tokio auto-advances.
pub struct FakeClock {
    base: Ts,
    started: tokio::time::Instant,
    /// How often the engine asked: a busy loop shows up here.
    reads: AtomicUsize,
}

impl FakeClock {
    pub fn new(base: Ts) -> Self {
        FakeClock {
            base,
            started: tokio::time::Instant::now(),
            reads: AtomicUsize::new(0),
        }
    }

    /// The time now, without counting it as a read by the engine.
    pub fn peek(&self) -> Ts {
        self.base + TimeDelta::from_std(self.started.elapsed()).expect("test time fits")
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Ts {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.peek()
    }
}

/// The text of any message, for matching; `ApprovalProgress` has none.
pub fn text_of(msg: &Message) -> &str {
    match msg {
        Message::Reply { text, .. }
        | Message::Notice { text, .. }
        | Message::Status { text, .. }
        | Message::Approval { text, .. }
        | Message::Remind { text, .. } => text,
        Message::ApprovalProgress { .. } => "",
    }
}

/// A chat that keeps everything said, with the clock time it was said at.
pub struct FakeChat {
    clock: Arc<FakeClock>,
    log: Mutex<Vec<(Ts, Message)>>,
    said: Notify,
}

impl FakeChat {
    pub fn new(clock: Arc<FakeClock>) -> Self {
        FakeChat {
            clock,
            log: Mutex::new(Vec::new()),
            said: Notify::new(),
        }
    }

    pub fn messages(&self) -> Vec<(Ts, Message)> {
        self.log.lock().unwrap().clone()
    }

    /// Every message so far, one a line, for failure reports.
    pub fn transcript(&self) -> String {
        self.messages()
            .iter()
            .map(|(at, m)| format!("{} {m:?}\n", at.format("%H:%M:%S%.3f")))
            .collect()
    }

    /// Waits for the first message, at index `from` or later, that `pred`
    /// accepts; returns its index, when it was said and the message.
    pub async fn wait_for_from(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&Message) -> bool,
    ) -> (usize, Ts, Message) {
        let found = tokio::time::timeout(TEST_TIMEOUT, async {
            loop {
                // Registered before looking, so a message sent in between wakes us.
                let said = self.said.notified();
                tokio::pin!(said);
                said.as_mut().enable();
                if let Some(hit) = self
                    .log
                    .lock()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, (_, m))| pred(m))
                    .map(|(i, (at, m))| (i, *at, m.clone()))
                {
                    return hit;
                }
                said.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no message {what} within {TEST_TIMEOUT:?}; said so far:\n{}",
                self.transcript()
            )
        })
    }

    /// Waits for a message whose text contains `needle`.
    pub async fn wait_for(&self, needle: &str) -> (usize, Ts, Message) {
        self.wait_for_from(0, &format!("containing {needle:?}"), |m| {
            text_of(m).contains(needle)
        })
        .await
    }
}

#[async_trait]
impl Chat for FakeChat {
    async fn send(&self, msg: Message) {
        let at = self.clock.peek();
        self.log.lock().unwrap().push((at, msg));
        self.said.notify_waiters();
    }
}

/// A fake main branch: `c0 ← c1 ← … ← head`, alternating authors.
pub struct FakeForge {
    history: Vec<Commit>,
    pub tags: Mutex<Vec<TagRef>>,
    /// `commits` fails with `ForgeError::Other` this many more times.
    pub fail_commits: AtomicUsize,
    /// `commits` takes this long to answer (a slow forge).
    pub slow_commits: Mutex<std::time::Duration>,
    /// Every `commits` call, with the clock time it came at.
    pub commit_calls: Mutex<Vec<Ts>>,
    /// (reverting, reverted) pairs whose changes are inverse; `reverts`
    /// answers false for any other pair.
    pub true_reverts: Mutex<Vec<(Sha, Sha)>>,
    /// `reverts` fails with `ForgeError::Other` while set.
    pub fail_reverts: AtomicBool,
    /// What `tag(name)` answers instead of looking in `tags`: a tag moved
    /// (Some) or deleted (None) that the poller has not seen yet.
    pub tag_now: Mutex<HashMap<String, Option<Sha>>>,
    /// Branch heads `branch_head` answers; any other branch does not exist.
    pub branches: Mutex<HashMap<String, Sha>>,
    /// How many commits of the history are on main yet (the head is the
    /// last of them); all unless a test holds some back.
    pub visible: AtomicUsize,
    clock: Arc<FakeClock>,
}

impl FakeForge {
    pub fn new(clock: Arc<FakeClock>, len: usize) -> Self {
        let history: Vec<Commit> = (0..len)
            .map(|i| {
                let (name, email) = if i % 2 == 0 {
                    ("Alice", "alice@example.com")
                } else {
                    ("Bob", "bob@example.com")
                };
                Commit {
                    sha: sha(i),
                    author_name: name.into(),
                    author_email: email.into(),
                    author_login: None,
                    subject: format!("change {i}"),
                    message: format!("change {i}\n"),
                }
            })
            .collect();
        FakeForge {
            visible: AtomicUsize::new(history.len()),
            history,
            tags: Mutex::new(Vec::new()),
            fail_commits: AtomicUsize::new(0),
            slow_commits: Mutex::new(std::time::Duration::ZERO),
            commit_calls: Mutex::new(Vec::new()),
            true_reverts: Mutex::new(Vec::new()),
            fail_reverts: AtomicBool::new(false),
            tag_now: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn head(&self) -> Sha {
        let n = self
            .visible
            .load(Ordering::SeqCst)
            .clamp(1, self.history.len());
        self.history[n - 1].sha.clone()
    }

    fn index(&self, sha: &Sha) -> Result<usize, ForgeError> {
        self.history
            .iter()
            .position(|c| c.sha == *sha)
            .ok_or_else(|| ForgeError::NotFound(sha.to_string()))
    }
}

/// The fake history's `i`th commit id: 40 hex digits, distinct first seven.
pub fn sha(i: usize) -> Sha {
    Sha::new(&format!("{:07x}", 0xabc0000 + i).repeat(6)[..40]).expect("valid sha")
}

#[async_trait]
impl Forge for FakeForge {
    async fn main_head(&self) -> Result<Option<Sha>, ForgeError> {
        Ok(Some(self.head()))
    }

    async fn parent(&self, sha: &Sha) -> Result<Option<Sha>, ForgeError> {
        let i = self.index(sha)?;
        Ok(i.checked_sub(1).map(|p| self.history[p].sha.clone()))
    }

    async fn commits(&self, base: Option<&Sha>, head: &Sha) -> Result<Vec<Commit>, ForgeError> {
        self.commit_calls.lock().unwrap().push(self.clock.peek());
        let slow = *self.slow_commits.lock().unwrap();
        if !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        let fail = self
            .fail_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(ForgeError::Other("the forge is down".into()));
        }
        let end = self.index(head)?;
        let start = match base {
            Some(b) => self.index(b)? + 1,
            None => 0,
        };
        Ok(self.history[start.min(end + 1)..=end].to_vec())
    }

    async fn resolve_on_main(&self, prefix: &ShaPrefix) -> Result<Sha, ForgeError> {
        self.history
            .iter()
            .find(|c| c.sha.as_str().starts_with(prefix.as_str()))
            .map(|c| c.sha.clone())
            .ok_or_else(|| ForgeError::NotOnMain(prefix.to_string()))
    }

    async fn branch_head(&self, branch: &BranchName) -> Result<Option<Sha>, ForgeError> {
        Ok(self.branches.lock().unwrap().get(branch.as_str()).cloned())
    }

    async fn tags(&self) -> Result<Vec<TagRef>, ForgeError> {
        Ok(self.tags.lock().unwrap().clone())
    }

    async fn reverts(&self, reverting: &Sha, reverted: &Sha) -> Result<bool, ForgeError> {
        if self.fail_reverts.load(Ordering::SeqCst) {
            return Err(ForgeError::Other("the forge is down".into()));
        }
        let pair = (reverting.clone(), reverted.clone());
        Ok(self.true_reverts.lock().unwrap().contains(&pair))
    }

    async fn tag(&self, name: &str) -> Result<Option<TagRef>, ForgeError> {
        if let Some(now) = self.tag_now.lock().unwrap().get(name) {
            return Ok(now.clone().map(|sha| TagRef {
                name: name.into(),
                sha,
                pushed_by: None,
            }));
        }
        let tags = self.tags.lock().unwrap();
        Ok(tags.iter().find(|t| t.name == name).cloned())
    }
}

/// Steps that succeed after a simulated duration, looked up by the step's
/// name in its key (`production-deploy-1`), then by its environment
/// (`TRAINBOT_ENV`); one second unless configured.
#[derive(Default)]
pub struct FakeRunner {
    pub durations: HashMap<String, Duration>,
    /// The step of this name (`staging-deploy-1`) panics.
    pub panics_in: Option<String>,
    /// Every step run: its name and `TRAINBOT_SHA`.
    pub ran: Arc<Mutex<Vec<(String, String)>>>,
    /// Decides whether a step fails: (name, `TRAINBOT_SHA`, how many times
    /// that step ran before for that SHA).
    #[allow(clippy::type_complexity)]
    pub fails: Option<Arc<dyn Fn(&str, &str, usize) -> bool + Send + Sync>>,
}

impl FakeRunner {
    fn duration(&self, req: &StepRequest) -> Duration {
        // Keys look like `train-3/staging-deploy-1/0`.
        let name = req.key.split('/').nth(1).unwrap_or_default();
        let env = req
            .env
            .iter()
            .find(|(k, _)| k == "TRAINBOT_ENV")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        [name, env]
            .iter()
            .find_map(|k| self.durations.get(*k))
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

#[async_trait]
impl StepRunner for FakeRunner {
    async fn run(&self, req: StepRequest, mut cancel: watch::Receiver<bool>) -> StepOutcome {
        let took = self.duration(&req);
        let name = req.key.split('/').nth(1).unwrap_or_default();
        if self.panics_in.as_deref() == Some(name) {
            panic!("the fake runner panics in {name}");
        }
        let sha = req
            .env
            .iter()
            .find(|(k, _)| k == "TRAINBOT_SHA")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let before = {
            let mut ran = self.ran.lock().unwrap();
            let before = ran.iter().filter(|(n, s)| n == name && *s == sha).count();
            ran.push((name.to_string(), sha.clone()));
            before
        };
        let fails = self.fails.as_ref().is_some_and(|f| f(name, &sha, before));
        let result = tokio::select! {
            _ = tokio::time::sleep(took) => if fails {
                Err(crate::runner::StepError::Exit(1))
            } else {
                Ok(())
            },
            // A dropped sender is no cancel: only `true` stops the step.
            Ok(_) = cancel.wait_for(|c| *c) => Err(crate::runner::StepError::Cancelled),
        };
        StepOutcome {
            result,
            attempts: 1,
            tail: Vec::new(),
            link: None,
        }
    }
}

/// A fixed, recognisable start for the fake clock.
pub fn base_time() -> Ts {
    DateTime::parse_from_rfc3339("2030-03-04T10:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc)
}

/// Who a console line comes from: `@alice !good` is alice, else `local`.
pub fn console_user() -> ChatUser {
    ChatUser::new("local")
}
