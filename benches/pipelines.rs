//! Several pipelines (SPEC §16, issue: "with 20 pipelines configured and one
//! train running in each, `!status <pipeline>` and `/api/status` stay within
//! 1.5× of the single-pipeline figures; resident memory grows by less than
//! 2 MiB per pipeline").
//!
//! Built as `main` builds it: one sled store split by `Store::pipelines`
//! into a namespace per pipeline, one real `Engine` per pipeline (bench
//! ports from `support`, its chat wrapped in `ScopedChat`, run inside its
//! `TRAIN_LABEL` scope), the real `Dispatcher` in front, and the web through
//! `router_for`. Every pipeline has a train awaiting approval (stored, then
//! resumed by its engine). The single-pipeline figures come from the same
//! run: one pipeline, a train awaiting approval, `Dispatcher` and
//! `router_for` with one pipeline (which is `router`).
//!
//! - `pipelines/status/1` and `/20`: `!status` (one pipeline) and
//!   `!status pNN` (20, cycling through them) handed to
//!   `Dispatcher::dispatch` as a console line, timed until the answer
//!   reaches the chat port.
//! - `pipelines/api_status/1` and `/20`: `GET /api/status` through the
//!   router, whole body read; with 20 it reports every pipeline.
//!   `api_status_one_of/20` is one pipeline's `/p/pNN/api/status`.
//! - Memory, printed before the timings: resident memory of this process
//!   before and after starting the 20 engines (in-process), and of the
//!   release binary with one pipeline and one running train against 20
//!   pipelines with a running train each (`!depart` on the console, the
//!   first step a `sleep`), read from `/proc/PID/status`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use support::{BenchChat, BenchForge, CONFIG, OPS, OkRunner, awaiting_train, sha};
use trainbot::chat::{Chat, Incoming, Scope, ScopedChat};
use trainbot::config::Settings;
use trainbot::dispatch::{self, Dispatcher};
use trainbot::domain::clock::SystemClock;
use trainbot::domain::ids::{ChatUser, TRAIN_LABEL};
use trainbot::engine::{Engine, Event, Ports};
use trainbot::store::{Store, Wanted};
use trainbot::web::{WebState, router_for};

/// Pipelines of the big setup.
const PIPELINES: usize = 20;
/// Authors of each running train; nobody approves.
const AUTHORS: u64 = 17;
const BIN: &str = env!("CARGO_BIN_EXE_trainbot");

fn name(i: usize) -> String {
    format!("p{i:02}")
}

/// Resident memory of `pid` ("self" for this process), KiB.
fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `pipelines` pipelines (one: a config without `[pipelines]`) on one
/// store, each engine running with a train awaiting approval, the
/// dispatcher in front.
struct Bots {
    dispatcher: Dispatcher,
    answers: mpsc::UnboundedReceiver<String>,
    webs: Vec<WebState>,
    names: Vec<String>,
    inboxes: Vec<mpsc::Sender<Event>>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Bots {
    async fn start(pipelines: usize) -> Bots {
        let dir = tempfile::tempdir().expect("temp dir");
        let multi = pipelines > 1;
        let mut text = CONFIG.to_string();
        if multi {
            for i in 0..pipelines {
                text.push_str(&format!(
                    "\n[pipelines.{}]\nforge.git.path = \".\"\n",
                    name(i)
                ));
            }
        }
        let all = Settings::parse_pipelines(&text, &dir.path().join("bot.toml")).expect("config");
        assert_eq!(all.len(), pipelines);
        let root_dir = all[0].bot.data_dir.clone();
        let prefix = all[0].bot.command_prefix.clone();
        let root = Store::open(&root_dir).expect("store");
        let wanted: Vec<Wanted<'_>> = all
            .iter()
            .map(|s| Wanted {
                name: &s.pipeline.name,
                heir: !multi,
            })
            .collect();
        let stores = root.pipelines(&wanted, multi).expect("pipeline stores");
        let (chat, answers) = BenchChat::new();
        let chat: Arc<dyn Chat> = chat;
        let (mut routes, mut webs, mut names, mut inboxes, mut tasks) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (mut settings, store) in all.into_iter().zip(stores) {
            if !store.legacy {
                settings.bot.data_dir = root_dir.join("p").join(&settings.pipeline.name);
            }
            let settings = Arc::new(settings);
            let name = settings.pipeline.name.clone();
            let store = store.store;
            store
                .save_train(&awaiting_train(1, AUTHORS))
                .expect("save train");
            let scope = Scope {
                pipeline: name.clone(),
                channel: settings.chat.slack.channel.clone(),
                multi,
                // The console is shared by every pipeline.
                shared: multi,
            };
            let ports = Ports {
                chat: Arc::new(ScopedChat::new(chat.clone(), scope)),
                forge: Arc::new(BenchForge::new(sha(2))),
                results: None,
                runner: Arc::new(OkRunner),
                clock: Arc::new(SystemClock),
            };
            let engine = Engine::new(settings.clone(), store.clone(), ports);
            routes.push(dispatch::Pipeline {
                name: name.clone(),
                channel: settings.chat.slack.channel.clone(),
                inbox: engine.inbox(),
                snapshots: engine.snapshots(),
            });
            webs.push(WebState {
                snapshots: engine.snapshots(),
                store,
                settings: settings.clone(),
                metrics: engine.metrics(),
                clock: Arc::new(SystemClock),
                webhook: None,
                base: String::new(),
                name: name.clone(),
            });
            inboxes.push(engine.inbox());
            let run = engine.run();
            tasks.push(if multi {
                tokio::spawn(TRAIN_LABEL.scope(Arc::from(name.as_str()), run))
            } else {
                tokio::spawn(run)
            });
            names.push(name);
        }
        let dispatcher = Dispatcher::new(routes, &prefix, chat);
        let mut bots = Bots {
            dispatcher,
            answers,
            webs,
            names,
            inboxes,
            tasks,
            _dir: dir,
        };
        // Every engine resumes its train.
        let mut resumed = 0;
        while resumed < pipelines {
            if bots.answer().await.contains("resuming train") {
                resumed += 1;
            }
        }
        // Whatever else they say on starting comes before the first command.
        tokio::time::sleep(Duration::from_millis(300)).await;
        bots.drain();
        bots
    }

    fn drain(&mut self) {
        while self.answers.try_recv().is_ok() {}
    }

    async fn answer(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(30), self.answers.recv()).await {
            Ok(Some(text)) => text,
            Ok(None) => panic!("the engines stopped"),
            Err(_) => panic!("no answer within 30 s"),
        }
    }

    /// The console line `text`, through the dispatcher; its answer.
    async fn ask(&mut self, text: &str) -> String {
        let msg = Incoming {
            user: ChatUser::new(OPS),
            text: text.into(),
            button: false,
            train: None,
            channel: None,
            pipeline: None,
            thread: None,
        };
        assert!(self.dispatcher.dispatch(msg).await, "engines stopped");
        self.answer().await
    }

    /// The `i`th `!status` command: named when there are several.
    fn status(&self, i: usize) -> String {
        match self.names.as_slice() {
            [_] => "!status".into(),
            names => format!("!status {}", names[i % names.len()]),
        }
    }

    /// Checks that `!status` answers once, about the right pipeline's train.
    async fn check_status(&mut self) {
        for i in 0..self.names.len() {
            let text = self.status(i);
            let said = self.ask(&text).await;
            assert!(said.contains("#1"), "{text}: {said}");
            if self.names.len() > 1 {
                assert!(
                    said.contains(&format!("{}#1", self.names[i])),
                    "{text}: {said}"
                );
            }
            if i == 0 {
                eprintln!("{text} → {}", said.lines().next().unwrap_or(""));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            self.answers.try_recv().is_err(),
            "!status said more than one thing"
        );
    }

    async fn timed_status(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for i in 0..iters as usize {
            let text = self.status(i);
            let start = Instant::now();
            std::hint::black_box(self.ask(&text).await);
            total += start.elapsed();
        }
        total
    }

    async fn stop(self) {
        for inbox in &self.inboxes {
            let _ = inbox.send(Event::Shutdown).await;
        }
        for task in self.tasks {
            task.await
                .expect("engine task")
                .unwrap_or_else(|e| panic!("engine failed: {e:#}"));
        }
    }
}

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A config of `pipelines` pipelines (one: no `[pipelines]`), each on its
/// own one-commit repository, the first step of a train a long `sleep`.
fn sandbox(dir: &Path, pipelines: usize) -> std::path::PathBuf {
    let mut text = String::from(
        "[bot]\ndata_dir = \"./data\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [roles]\nops = [\"local\"]\n[train]\nschedule = \"0 0 0 1 1 *\"\nenvironments = [\"staging\"]\n\
         [environments.staging]\ndeploy = [{ run = \"sleep 30\" }]\n\
         [production]\ndeploy = [{ run = \"true\" }]\n",
    );
    for i in 0..pipelines {
        let repo = dir.join("repos").join(name(i));
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "first"]);
        if pipelines == 1 {
            text.push_str(&format!("[forge.git]\npath = \"repos/{}\"\n", name(i)));
        } else {
            text.push_str(&format!(
                "[pipelines.{}]\nforge.git.path = \"repos/{}\"\n",
                name(i),
                name(i)
            ));
        }
    }
    let config = dir.join("bot.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// The release binary on `pipelines` pipelines, a train departed in each
/// and running its first step: its resident memory, KiB.
fn binary_rss(pipelines: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox(dir.path(), pipelines);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn trainbot");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut wait_for = |needle: &str| {
        let mut seen = 0;
        for line in lines.by_ref() {
            if line.expect("stdout").contains(needle) {
                seen += 1;
                if seen == pipelines {
                    return;
                }
            }
        }
        panic!("{pipelines} pipelines: saw {needle:?} {seen} times, then the bot stopped");
    };
    // Every pipeline has found its commit.
    wait_for("is on main and waits");
    for i in 0..pipelines {
        let cmd = if pipelines == 1 {
            "!depart".to_string()
        } else {
            format!("!depart {}", name(i))
        };
        writeln!(stdin, "{cmd}").unwrap();
    }
    // Each train runs its first step, which outlasts the measurement.
    wait_for("staging deploy started: sleep 30");
    // Let start-up settle, then ask every pipeline once.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..pipelines {
        let cmd = if pipelines == 1 {
            "!status".to_string()
        } else {
            format!("!status {}", name(i))
        };
        writeln!(stdin, "{cmd}").unwrap();
    }
    wait_for("staging deploy (since");
    std::thread::sleep(Duration::from_millis(200));
    let rss = rss_kib(&child.id().to_string());
    drop(stdin);
    child.kill().unwrap();
    child.wait().unwrap();
    rss
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn group<'a>(
    c: &'a mut Criterion,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("pipelines");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    group
}

fn bench(c: &mut Criterion) {
    let one_bin = binary_rss(1);
    let many_bin = binary_rss(PIPELINES);
    eprintln!(
        "release binary, VmRSS: 1 pipeline {:.1} MiB, {PIPELINES} pipelines {:.1} MiB: \
         {:.2} MiB per added pipeline",
        mib(one_bin),
        mib(many_bin),
        mib(many_bin.saturating_sub(one_bin)) / (PIPELINES - 1) as f64
    );

    let rt: Runtime = support::runtime();
    let before = rss_kib("self");
    let mut one = rt.block_on(Bots::start(1));
    let after_one = rss_kib("self");
    let mut many = rt.block_on(Bots::start(PIPELINES));
    let after_many = rss_kib("self");
    eprintln!(
        "in process, VmRSS: +{:.1} MiB for 1 pipeline, +{:.1} MiB for {PIPELINES}: \
         {:.2} MiB per pipeline",
        mib(after_one.saturating_sub(before)),
        mib(after_many.saturating_sub(after_one)),
        mib(after_many.saturating_sub(after_one)) / PIPELINES as f64
    );

    rt.block_on(one.check_status());
    rt.block_on(many.check_status());
    let mut g = group(c);
    g.bench_function(BenchmarkId::new("status", 1), |b| {
        b.iter_custom(|iters| rt.block_on(one.timed_status(iters)))
    });
    g.bench_function(BenchmarkId::new("status", PIPELINES), |b| {
        b.iter_custom(|iters| rt.block_on(many.timed_status(iters)))
    });
    g.finish();

    let one_app = router_for(one.webs.clone());
    let many_app = router_for(many.webs.clone());
    let own = format!("/p/{}/api/status", many.names[PIPELINES / 2]);
    for (label, app, uri) in [
        ("1", &one_app, "/api/status"),
        ("20", &many_app, "/api/status"),
        ("20", &many_app, own.as_str()),
    ] {
        let bytes = rt.block_on(support::http::get(app, uri));
        eprintln!("{label} pipelines: GET {uri} → {bytes} bytes");
    }
    let mut g = group(c);
    g.bench_function(BenchmarkId::new("api_status", 1), |b| {
        b.iter_custom(|iters| rt.block_on(support::http::timed_get(&one_app, "/api/status", iters)))
    });
    g.bench_function(BenchmarkId::new("api_status", PIPELINES), |b| {
        b.iter_custom(|iters| {
            rt.block_on(support::http::timed_get(&many_app, "/api/status", iters))
        })
    });
    g.bench_function(BenchmarkId::new("api_status_one_of", PIPELINES), |b| {
        b.iter_custom(|iters| rt.block_on(support::http::timed_get(&many_app, &own, iters)))
    });
    g.finish();

    rt.block_on(one.stop());
    rt.block_on(many.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
