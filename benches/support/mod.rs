//! What the benches share: the real engine (`Engine::new`, its inbox,
//! `tokio::spawn(engine.run())`) with bench-local ports — a chat that hands
//! every reply and notice to the bench, a forge with a fixed main branch, a
//! runner that is never asked for anything slow — on a store filled through
//! the public `Store` API in a temporary directory.

// Each bench binary uses part of this module.
#![allow(dead_code)]

pub mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use trainbot::chat::{Chat, Incoming, Message};
use trainbot::config::Settings;
use trainbot::domain::approval::Author;
use trainbot::domain::clock::{SystemClock, Ts};
use trainbot::domain::ids::{BranchName, ChatUser, Sha, ShaPrefix, TrainId};
use trainbot::domain::train::{
    Commit, Kind, Outcome, Phase, Route, Stage, StepPos, StepRecord, Target, Train,
};
use trainbot::engine::{Engine, Event, Metrics, Ports, Snapshot};
use trainbot::forge::{Forge, ForgeError, TagRef};
use trainbot::runner::{StepOutcome, StepRequest, StepRunner};
use trainbot::store::{AuditEntry, Production, Store};

/// Trains stored, for every bench.
pub const SIZES: [u64; 3] = [0, 10_000, 100_000];

/// Audit entries of the big audit log.
pub const AUDIT_ENTRIES: u64 = 1_000_000;

/// How long the bench waits for one answer before it calls the engine stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The console user, who is ops.
pub const OPS: &str = "local";

/// The `n`th commit id: 40 hex digits whose first seven differ.
pub fn sha(n: u64) -> Sha {
    Sha::new(&format!("{n:08x}").repeat(5)).expect("valid sha")
}

/// Answers from the engine: the text of every reply and notice, in order.
pub struct BenchChat {
    tx: mpsc::UnboundedSender<String>,
}

impl BenchChat {
    /// A chat and the answers said into it.
    pub fn new() -> (Arc<BenchChat>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(BenchChat { tx }), rx)
    }
}

#[async_trait]
impl Chat for BenchChat {
    async fn send(&self, msg: Message) {
        match msg {
            Message::Reply { text, .. } | Message::Notice { text, .. } => {
                let _ = self.tx.send(text);
            }
            // Status lines, approval requests and progress are not answers.
            _ => {}
        }
    }
}

/// A main branch whose head is one fixed commit, the one after the last
/// train's; everything else is empty.
pub struct BenchForge {
    head: Sha,
}

impl BenchForge {
    pub fn new(head: Sha) -> BenchForge {
        BenchForge { head }
    }
}

#[async_trait]
impl Forge for BenchForge {
    async fn main_head(&self) -> Result<Option<Sha>, ForgeError> {
        Ok(Some(self.head.clone()))
    }
    async fn parent(&self, _sha: &Sha) -> Result<Option<Sha>, ForgeError> {
        Ok(None)
    }
    async fn commits(&self, _base: Option<&Sha>, head: &Sha) -> Result<Vec<Commit>, ForgeError> {
        Ok(vec![commit(head.clone(), 0)])
    }
    async fn resolve_on_main(&self, prefix: &ShaPrefix) -> Result<Sha, ForgeError> {
        Err(ForgeError::NotOnMain(prefix.to_string()))
    }
    async fn branch_head(&self, _branch: &BranchName) -> Result<Option<Sha>, ForgeError> {
        Ok(None)
    }
    async fn tags(&self) -> Result<Vec<TagRef>, ForgeError> {
        Ok(Vec::new())
    }
    async fn reverts(&self, _reverting: &Sha, _reverted: &Sha) -> Result<bool, ForgeError> {
        Ok(false)
    }
    async fn tag(&self, _name: &str) -> Result<Option<TagRef>, ForgeError> {
        Ok(None)
    }
}

/// Steps pass at once. No bench starts one; it is here because the engine
/// needs a runner.
pub struct OkRunner;

#[async_trait]
impl StepRunner for OkRunner {
    async fn run(&self, _req: StepRequest, _cancel: watch::Receiver<bool>) -> StepOutcome {
        StepOutcome {
            result: Ok(()),
            attempts: 1,
            tail: Vec::new(),
            link: None,
        }
    }
}

/// One lower environment and production; departures only at New Year's
/// midnight, so the clock sends no train during a bench.
pub const CONFIG: &str = r#"[bot]
data_dir = "./data"

[chat]
adapter = "console"
console_user = "local"

[forge]
kind = "git"
main_branch = "main"
poll_interval = "1h"

[forge.git]
path = "."

[train]
schedule = "0 0 0 1 1 *"
timezone = "UTC"
approval = "all-authors"
approval_timeout = "30m"
environments = ["staging"]

[environments.staging]
deploy = [{ run = "true" }]
acceptance = [{ run = "true" }]

[production]
deploy = [{ run = "true" }]
smoke = [{ run = "true" }]

[roles]
ops = ["local"]
"#;

fn commit(sha: Sha, author: u64) -> Commit {
    Commit {
        sha,
        author_name: format!("Dev {author}"),
        author_email: format!("dev{author}@example.com"),
        author_login: None,
        subject: "a change".into(),
        message: "a change\n".into(),
    }
}

fn author(n: u64) -> Author {
    Author {
        name: format!("Dev {n}"),
        email: format!("dev{n}@example.com"),
        chat: Some(ChatUser::new(format!("dev{n}"))),
        only_reverted: false,
    }
}

fn pos(target: Target, phase: Phase) -> StepPos {
    StepPos {
        target,
        phase,
        step: 0,
    }
}

/// Train `n` of a history of one train an hour, ending an hour ago:
/// departed, approved by its author, deployed, its four steps recorded.
fn deployed_train(n: u64, created: Ts) -> Train {
    let dev = n % 20;
    let steps = [
        pos(Target::Lower(0), Phase::Deploy),
        pos(Target::Lower(0), Phase::Acceptance),
        pos(Target::Production, Phase::Deploy),
        pos(Target::Production, Phase::Acceptance),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, p)| StepRecord {
        pos: p,
        attempt: 1,
        started: created + TimeDelta::minutes(5 * i as i64),
        finished: Some(created + TimeDelta::minutes(5 * i as i64 + 4)),
        ok: Some(true),
    })
    .collect();
    Train {
        id: TrainId(n),
        sha: sha(n),
        base: (n > 1).then(|| sha(n - 1)),
        commits: vec![commit(sha(n), dev)],
        reverted: Vec::new(),
        authors: vec![author(dev)],
        kind: Kind::Scheduled,
        route: Route::Full,
        stage: Stage::Done(Outcome::Deployed),
        approvals: vec![trainbot::domain::train::Approval {
            user: ChatUser::new(format!("dev{dev}")),
            at: created + TimeDelta::minutes(9),
        }],
        forced_by: None,
        production_attempt: 1,
        created,
        stage_since: created + TimeDelta::minutes(20),
        production_started: Some(created + TimeDelta::minutes(10)),
        finished: Some(created + TimeDelta::minutes(20)),
        steps,
        rolled_back: false,
        overrode: None,
        envs: vec!["staging".into()],
        nudged: Default::default(),
        verify: None,
    }
}

/// Train `id`, just departed with commits by `authors` people (`dev0`…),
/// through staging and now awaiting their approval; nobody approved yet.
pub fn awaiting_train(id: u64, authors: u64) -> Train {
    let now = Utc::now();
    let mut train = deployed_train(id, now - TimeDelta::minutes(10));
    train.commits = (0..authors).map(|a| commit(sha(id), a)).collect();
    train.authors = (0..authors).map(author).collect();
    train.stage = Stage::AwaitingApproval { since: now };
    train.stage_since = now;
    train.approvals.clear();
    train.production_attempt = 0;
    train.production_started = None;
    train.finished = None;
    train.steps.truncate(2);
    train
}

/// A data directory with `trains` trains stored, one an hour, every one
/// deployed; its config. The temporary directory goes when this does.
pub struct Filled {
    pub trains: u64,
    pub cfg: Arc<Settings>,
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl Filled {
    pub fn new(trains: u64) -> Filled {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Settings::parse(CONFIG, &dir.path().join("bot.toml")).expect("bench config");
        let store = Store::open(&cfg.bot.data_dir).expect("store");
        let started = Instant::now();
        let now = Utc::now();
        for n in 1..=trains {
            let created = now - TimeDelta::hours((trains - n + 1) as i64);
            let parent = (n > 1).then(|| sha(n - 1));
            let seq = store
                .allocate(&sha(n), parent.as_ref(), created)
                .expect("allocate")
                .expect("a new sha");
            store
                .save_train(&deployed_train(n, created))
                .expect("save train");
            store
                .set_production(&Production {
                    sha: sha(n),
                    train: TrainId(n),
                    since: created + TimeDelta::minutes(20),
                    alloc_seq: Some(seq),
                    previous: parent,
                    previous_train: (n > 1).then(|| TrainId(n - 1)),
                })
                .expect("set production");
        }
        if trains > 0 {
            eprintln!(
                "filled a store with {trains} trains in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Filled {
            trains,
            cfg: Arc::new(cfg),
            store,
            _dir: dir,
        }
    }

    /// Adds `n` audit entries through `Store::audit` (each flushed), from
    /// a few threads at once so their flushes overlap.
    pub fn add_audit(&self, n: u64) {
        const THREADS: u64 = 8;
        let started = Instant::now();
        let now = Utc::now();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let store = self.store.clone();
                s.spawn(move || {
                    for i in (t..n).step_by(THREADS as usize) {
                        let entry = AuditEntry {
                            at: now - TimeDelta::seconds((n - i) as i64),
                            user: ChatUser::new(format!("dev{}", i % 20)),
                            action: "!good".into(),
                            result: "accepted".into(),
                        };
                        store.audit(&entry).expect("audit");
                    }
                });
            }
        });
        eprintln!(
            "added {n} audit entries in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// A running engine on a filled store, and the answers it says.
pub struct Bot {
    pub inbox: mpsc::Sender<Event>,
    pub answers: mpsc::UnboundedReceiver<String>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub metrics: Arc<Metrics>,
    chat: Arc<BenchChat>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    cfg: Arc<Settings>,
    store: Store,
    head: Sha,
}

impl Bot {
    /// Starts the engine; returns once it answers commands and the head of
    /// main (one commit after the last train's) is on main and waits.
    pub async fn start(filled: &Filled) -> Bot {
        let (tx, answers) = mpsc::unbounded_channel();
        let chat = Arc::new(BenchChat { tx });
        let head = sha(filled.trains + 1);
        let (inbox, snapshots, metrics, task) =
            spawn_engine(&filled.cfg, &filled.store, &chat, &head);
        let mut bot = Bot {
            inbox,
            answers,
            snapshots,
            metrics,
            chat,
            task: Some(task),
            cfg: filled.cfg.clone(),
            store: filled.store.clone(),
            head,
        };
        bot.wait_for("is on main and waits").await;
        bot
    }

    /// Stops the engine and starts a new one on the same store: how a
    /// train stored while it was stopped becomes the engine's train.
    pub async fn restart_with(&mut self, train: &Train) {
        self.stop_engine().await;
        self.store.save_train(train).expect("save train");
        let (inbox, snapshots, metrics, task) =
            spawn_engine(&self.cfg, &self.store, &self.chat, &self.head);
        (self.inbox, self.snapshots, self.metrics) = (inbox, snapshots, metrics);
        self.task = Some(task);
        self.wait_for("resuming train").await;
        self.drain();
    }

    async fn stop_engine(&mut self) {
        self.inbox.send(Event::Shutdown).await.expect("engine runs");
        let task = self.task.take().expect("an engine runs");
        task.await
            .expect("engine task")
            .unwrap_or_else(|e| panic!("engine failed: {e:#}"));
    }

    pub async fn stop(mut self) {
        self.stop_engine().await;
    }

    /// Forgets answers said so far.
    pub fn drain(&mut self) {
        while self.answers.try_recv().is_ok() {}
    }

    /// Sends a chat line from `user` into the inbox.
    pub async fn send(&self, user: &str, text: &str) {
        let msg = Incoming {
            user: ChatUser::new(user),
            text: text.into(),
            button: false,
            train: None,
            channel: None,
            pipeline: None,
            thread: None,
        };
        self.inbox
            .send(Event::Chat(msg))
            .await
            .expect("engine runs");
    }

    /// The next answer.
    pub async fn answer(&mut self) -> String {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.answers.recv()).await {
            Ok(Some(text)) => text,
            Ok(None) => panic!("the engine stopped"),
            Err(_) => panic!("no answer within {ANSWER_TIMEOUT:?}"),
        }
    }

    /// Says `text` as `user` and waits for the answer.
    pub async fn ask(&mut self, user: &str, text: &str) -> String {
        self.send(user, text).await;
        self.answer().await
    }

    /// Waits for an answer containing `needle`, dropping others.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let text = self.answer().await;
            if text.contains(needle) {
                return text;
            }
        }
    }

    /// Asks once and checks that exactly one answer comes, containing
    /// `needle`: the benches time one answer per command.
    pub async fn expect_one(&mut self, user: &str, text: &str, needle: &str) {
        self.drain();
        let first = self.ask(user, text).await;
        assert!(
            first.contains(needle),
            "{text}: answered {first:?}, expected {needle:?}"
        );
        // Anything else it says comes before the answer to the next command.
        let probe = self.ask(OPS, "!locks").await;
        assert!(
            probe.contains("no environment is locked"),
            "{text} said more than one thing: then {probe:?}"
        );
        eprintln!("{text} → {}", first.lines().next().unwrap_or(""));
    }
}

type Spawned = (
    mpsc::Sender<Event>,
    watch::Receiver<Arc<Snapshot>>,
    Arc<Metrics>,
    JoinHandle<anyhow::Result<()>>,
);

fn spawn_engine(cfg: &Arc<Settings>, store: &Store, chat: &Arc<BenchChat>, head: &Sha) -> Spawned {
    let ports = Ports {
        chat: chat.clone(),
        forge: Arc::new(BenchForge { head: head.clone() }),
        results: None,
        runner: Arc::new(OkRunner),
        clock: Arc::new(SystemClock),
    };
    let engine = Engine::new(cfg.clone(), store.clone(), ports);
    let inbox = engine.inbox();
    let snapshots = engine.snapshots();
    let metrics = engine.metrics();
    (inbox, snapshots, metrics, tokio::spawn(engine.run()))
}

/// The runtime the engine runs on: the two cores of the build machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
