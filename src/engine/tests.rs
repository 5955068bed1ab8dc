//! Engine tests with fake ports under tokio's paused time: what depends on
//! minutes passing (progress of a long step, a tag deploy's retry, the
//! approval timeout) without waiting for them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::test_fakes::{
    FakeChat, FakeClock, FakeForge, FakeRunner, base_time, console_user, sha, text_of,
};
use super::{Engine, Event, Ports};
use crate::chat::{Message, Run};
use crate::config::Settings;
use crate::domain::clock::Ts;
use crate::domain::ids::TrainId;
use crate::forge::TagRef;
use crate::store::{QueuedTag, Store, TagFailure};

/// Commits on the fake main branch; the head is the last.
const HISTORY: usize = 4;

/// Real (not simulated) time a test may take before it is declared stuck:
/// a busy engine never lets paused time advance, so no tokio timeout fires.
const REAL_TIME_LIMIT: Duration = Duration::from_secs(60);

struct Options {
    /// How long the production deploy step takes.
    production_deploy: Duration,
    /// `[tags] production = '^v[0-9]+$'`.
    tags: bool,
    /// A tag deploy in the store before the engine starts (as a previous
    /// run left it); the tag exists on the forge.
    stored_tag: Option<QueuedTag>,
    /// `commits` fails this many times from the start.
    fail_commits: usize,
    /// `commits` takes this long from the start.
    slow_commits: Duration,
    /// A tag on the forge (not queued): its name and history index.
    forge_tag: Option<(&'static str, usize)>,
    /// `train.schedule`, when not New Year's only.
    schedule: Option<&'static str>,
    /// The step of this name (`staging-deploy-1`) panics.
    panics_in: Option<&'static str>,
    /// More `[train]` keys (`remind_after = "10m"`).
    train_keys: &'static str,
    /// `[forge] main_branch`.
    main_branch: &'static str,
    /// More sections, at the end of the config.
    extra: &'static str,
    /// Only this many commits of the fake history are on main at start.
    visible: Option<usize>,
    /// Steps that take this long, by name (`production-verify-1`).
    durations: &'static [(&'static str, Duration)],
    /// More `[production]` keys (`verify = [...]`).
    production_keys: &'static str,
    /// Which steps fail (see `FakeRunner::fails`).
    #[allow(clippy::type_complexity)]
    fails: Option<Arc<dyn Fn(&str, &str, usize) -> bool + Send + Sync>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            production_deploy: Duration::from_secs(1),
            tags: false,
            stored_tag: None,
            slow_commits: Duration::ZERO,
            forge_tag: None,
            schedule: None,
            fail_commits: 0,
            panics_in: None,
            train_keys: "",
            main_branch: "main",
            extra: "",
            visible: None,
            fails: None,
            production_keys: "",
            durations: &[],
        }
    }
}

/// The config: one lower environment, production, departures only at New
/// Year's midnight (the clock never sends a train by itself).
fn config(tags: bool) -> String {
    let mut text = r#"[bot]
data_dir = "./data"

[chat]
adapter = "console"
console_user = "local"

[forge]
kind = "git"
main_branch = "main"
poll_interval = "1s"

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
deploy = [{ run = "true", timeout = "1h" }]
smoke = [{ run = "true" }]

[roles]
ops = ["local"]
"#
    .to_string();
    if tags {
        text.push_str("\n[tags]\nproduction = '^v[0-9]+$'\n");
    }
    text
}

/// Ends the process if a test runs longer than `REAL_TIME_LIMIT` in real
/// time: under paused time a spinning engine would otherwise hang forever.
struct Watchdog(Option<std_mpsc::Sender<()>>);

impl Watchdog {
    fn start(test: &'static str) -> Self {
        let (done, wait) = std_mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std_mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(REAL_TIME_LIMIT) {
                // Straight to stderr: the harness captures eprintln! and
                // the capture dies with the process.
                let text = format!(
                    "{test}: still running after {REAL_TIME_LIMIT:?} of real time; the engine spins\n"
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
                std::process::exit(101);
            }
        });
        Watchdog(Some(done))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}

/// A running engine with fake ports.
struct Bot {
    clock: Arc<FakeClock>,
    chat: Arc<FakeChat>,
    forge: Arc<FakeForge>,
    store: Store,
    metrics: Arc<super::Metrics>,
    inbox: mpsc::Sender<Event>,
    task: JoinHandle<anyhow::Result<()>>,
    /// Every step run: its name and `TRAINBOT_SHA`.
    ran: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    _dir: tempfile::TempDir,
    _watchdog: Watchdog,
}

impl Bot {
    async fn start(test: &'static str, opts: Options) -> Bot {
        let dir = tempfile::tempdir().expect("temp dir");
        let bot = Bot::start_in(test, &opts, dir, base_time()).await;
        // Started: the head of main is allocated before anything else.
        let allocated = format!("is on {} and waits", opts.main_branch);
        bot.chat.wait_for(&allocated).await;
        bot
    }

    /// Ends this engine as `kill -9` would, mid-whatever: its data
    /// directory and the time it stopped, to start another on.
    async fn crash(self) -> (tempfile::TempDir, Ts) {
        let now = self.clock.peek();
        let Bot {
            task, store, _dir, ..
        } = self;
        task.abort();
        let _ = task.await;
        // Only the engine may hold the store when it is opened again.
        drop(store);
        (_dir, now)
    }

    /// Stops this engine and starts a new one on the same store, its clock
    /// going on from this one's; it has said nothing yet.
    async fn restart(self, test: &'static str, opts: &Options) -> Bot {
        let now = self.clock.peek();
        let dir = self.stop_keeping_dir().await;
        Bot::start_in(test, opts, dir, now).await
    }

    async fn stop_keeping_dir(self) -> tempfile::TempDir {
        self.inbox.send(Event::Shutdown).await.expect("engine runs");
        self.task
            .await
            .expect("engine task")
            .unwrap_or_else(|e| panic!("engine failed: {e:#}\n{}", self.chat.transcript()));
        self._dir
    }

    async fn start_in(test: &'static str, opts: &Options, dir: tempfile::TempDir, now: Ts) -> Bot {
        let watchdog = Watchdog::start(test);
        let text = config(opts.tags)
            .replace(
                "approval_timeout = \"30m\"\n",
                &format!("approval_timeout = \"30m\"\n{}\n", opts.train_keys),
            )
            .replace(
                "smoke = [{ run = \"true\" }]\n",
                &format!("smoke = [{{ run = \"true\" }}]\n{}\n", opts.production_keys),
            )
            .replace(
                "main_branch = \"main\"",
                &format!("main_branch = \"{}\"", opts.main_branch),
            )
            .replace(
                "schedule = \"0 0 0 1 1 *\"",
                &format!("schedule = \"{}\"", opts.schedule.unwrap_or("0 0 0 1 1 *")),
            )
            + opts.extra;
        let cfg = Settings::parse(&text, &dir.path().join("bot.toml"))
            .unwrap_or_else(|e| panic!("config: {e}"));
        let store = Store::open(&cfg.bot.data_dir).expect("store");
        let clock = Arc::new(FakeClock::new(now));
        let forge = Arc::new(FakeForge::new(clock.clone(), HISTORY));
        forge
            .fail_commits
            .store(opts.fail_commits, Ordering::SeqCst);
        *forge.slow_commits.lock().unwrap() = opts.slow_commits;
        if let Some((name, i)) = opts.forge_tag {
            forge.tags.lock().unwrap().push(TagRef {
                name: name.into(),
                sha: sha(i),
                pushed_by: None,
            });
        }
        if let Some(n) = opts.visible {
            forge.visible.store(n, Ordering::SeqCst);
        }
        if let Some(tag) = &opts.stored_tag {
            store
                .record_tag(&tag.name, &tag.sha, Some(tag))
                .expect("stored tag");
            forge.tags.lock().unwrap().push(TagRef {
                name: tag.name.clone(),
                sha: tag.sha.clone(),
                pushed_by: None,
            });
        }
        let mut runner = FakeRunner::default();
        runner
            .durations
            .insert("production-deploy-1".into(), opts.production_deploy);
        runner.panics_in = opts.panics_in.map(str::to_string);
        for (name, d) in opts.durations {
            runner.durations.insert(name.to_string(), *d);
        }
        runner.fails = opts.fails.clone();
        Bot::spawn(watchdog, cfg, store, clock, forge, runner, dir)
    }

    /// An engine on `cfg` and `store` with these fakes, running.
    fn spawn(
        watchdog: Watchdog,
        cfg: Settings,
        store: Store,
        clock: Arc<FakeClock>,
        forge: Arc<FakeForge>,
        runner: FakeRunner,
        dir: tempfile::TempDir,
    ) -> Bot {
        let chat = Arc::new(FakeChat::new(clock.clone()));
        let ran = runner.ran.clone();
        let ports = Ports {
            results: None,
            chat: chat.clone(),
            forge: forge.clone(),
            runner: Arc::new(runner),
            clock: clock.clone(),
        };
        let engine = Engine::new(Arc::new(cfg), store.clone(), ports);
        let inbox = engine.inbox();
        let metrics = engine.metrics();
        let task = tokio::spawn(engine.run());
        Bot {
            clock,
            chat,
            forge,
            store,
            metrics,
            inbox,
            task,
            ran,
            _dir: dir,
            _watchdog: watchdog,
        }
    }

    /// A console line, as the console adapter reads it (`@alice …` is alice).
    async fn type_line(&self, line: &str) {
        let msg = crate::chat::console::parse_line(line, &console_user()).expect("a message");
        self.inbox
            .send(Event::Chat(msg))
            .await
            .expect("engine runs");
    }

    /// Stops the engine, which must end cleanly; what it said.
    async fn stop(self) -> Vec<(Ts, Message)> {
        self.inbox.send(Event::Shutdown).await.expect("engine runs");
        self.task
            .await
            .expect("engine task")
            .unwrap_or_else(|e| panic!("engine failed: {e:#}\n{}", self.chat.transcript()));
        self.chat.messages()
    }

    /// Stops the engine, which must end cleanly, and checks that nothing
    /// went wrong along the way.
    async fn finish(self) -> Vec<(Ts, Message)> {
        self.inbox.send(Event::Shutdown).await.expect("engine runs");
        self.task
            .await
            .expect("engine task")
            .unwrap_or_else(|e| panic!("engine failed: {e:#}\n{}", self.chat.transcript()));
        let said = self.chat.messages();
        let trouble: Vec<_> = said
            .iter()
            .map(|(_, m)| text_of(m))
            .filter(|t| t.contains('❌') || t.contains("⚠️"))
            .collect();
        assert!(
            trouble.is_empty(),
            "unexpected trouble: {trouble:?}\n{}",
            self.chat.transcript()
        );
        said
    }
}

impl Bot {
    /// A tag at the fake history's `i`th commit; the poller finds it.
    fn push_tag(&self, name: &str, i: usize) {
        self.forge.tags.lock().unwrap().push(TagRef {
            name: name.into(),
            sha: sha(i),
            pushed_by: None,
        });
    }

    /// The clock times of the `commits` calls after the first `skip`.
    fn commit_calls_since(&self, skip: usize) -> Vec<Ts> {
        let calls = self.forge.commit_calls.lock().unwrap();
        calls.iter().copied().skip(skip).collect()
    }

    /// A Slack button click of `train` by `user`, as the listener sends it.
    async fn click(&self, user: &str, text: &str, train: u64) {
        let msg = crate::chat::Incoming {
            user: crate::domain::ids::ChatUser::new(user),
            text: text.into(),
            button: true,
            train: Some(TrainId(train)),
            channel: None,
            pipeline: None,
            thread: None,
        };
        self.inbox
            .send(Event::Chat(msg))
            .await
            .expect("engine runs");
    }

    /// Lets `d` of simulated time pass (the engine's timers fire).
    async fn clock_passes(&self, d: TimeDelta) {
        tokio::time::sleep(d.to_std().expect("positive")).await;
    }
}

fn minutes(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

/// The Status texts for `train`, in order.
fn statuses(said: &[(Ts, Message)], train: TrainId) -> Vec<(Ts, String)> {
    said.iter()
        .filter_map(|(at, m)| match m {
            Message::Status {
                run: Run::Train(t),
                text,
                ..
            } if *t == train => Some((*at, text.clone())),
            _ => None,
        })
        .collect()
}

fn count_containing(said: &[(Ts, Message)], needle: &str) -> usize {
    said.iter()
        .filter(|(_, m)| text_of(m).contains(needle))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_long_production_step_counts_its_minutes_and_says_it_still_runs() {
    let bot = Bot::start(
        "a_long_production_step_counts_its_minutes_and_says_it_still_runs",
        Options {
            production_deploy: Duration::from_secs(11 * 60),
            ..Options::default()
        },
    )
    .await;
    let head = sha(HISTORY - 1);
    bot.type_line(&format!("!force {}", head.short())).await;
    let (started_at, started, _) = bot
        .chat
        .wait_for("train #1 ▶ production deploy started")
        .await;
    let reads_before = bot.clock.reads();
    let (passed_at, passed, _) = bot.chat.wait_for("production deploy passed in 11m").await;
    let reads_during = bot.clock.reads() - reads_before;
    bot.chat.wait_for("✅ train #1 deployed").await;
    let said = bot.finish().await;

    assert_eq!(passed - started, minutes(11));
    let status = statuses(&said, TrainId(1));
    for pair in status.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "a status sent twice in a row");
    }
    // Each minute's status once, sent when that minute was reached.
    for m in 1..=10 {
        let suffix = format!(" · {m}m");
        let hits: Vec<_> = status
            .iter()
            .filter(|(_, text)| text.ends_with(&suffix))
            .collect();
        assert_eq!(hits.len(), 1, "status{suffix}: {status:#?}");
        let at = hits[0].0 - started;
        assert!(
            at >= minutes(m) && at < minutes(m) + TimeDelta::seconds(1),
            "status{suffix} sent {at} after the step started"
        );
    }
    // Between "started" and "passed" (by order: the next step's status
    // carries the same time): one a minute, " · 11m" only when the minute's
    // timer beats the step's end, which falls on the same instant.
    let during = statuses(&said[started_at..passed_at], TrainId(1)).len();
    assert!(
        (10..=11).contains(&during),
        "{during} status messages during the 11-minute step: {status:#?}"
    );
    assert_eq!(count_containing(&said, "still running after 5m"), 1);
    assert_eq!(count_containing(&said, "still running after 10m"), 1);
    assert_eq!(count_containing(&said, "still running after 15m"), 0);
    assert_eq!(count_containing(&said, "still running"), 2);
    // The engine wakes about once a minute, not in a loop: a handful of
    // clock reads per wake (47 in all when this was written).
    assert!(
        reads_during <= 11 * 10,
        "{reads_during} clock reads in 11 minutes"
    );
    assert!(status.last().unwrap().1.contains("deployed"), "{status:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_tag_whose_commits_cannot_be_listed_departs_a_minute_later() {
    let bot = Bot::start(
        "a_tag_whose_commits_cannot_be_listed_departs_a_minute_later",
        Options {
            tags: true,
            ..Options::default()
        },
    )
    .await;
    // The start-up listing was empty (the baseline); now v1 is pushed and
    // the forge fails the next listing of commits.
    let pushed = bot.clock.peek();
    let calls_before = bot.forge.commit_calls.lock().unwrap().len();
    bot.forge.fail_commits.store(1, Ordering::SeqCst);
    bot.push_tag("v1", HISTORY - 1);
    let head = sha(HISTORY - 1);
    let (_, failed, _) = bot
        .chat
        .wait_for(&format!(
            "🏷 tag v1 ({}) cannot leave yet: forge error: the forge is down; trying again with backoff for up to 1h",
            head.short()
        ))
        .await;
    assert!(
        failed - pushed <= TimeDelta::seconds(2),
        "the poller is slow"
    );
    let (_, departed, _) = bot
        .chat
        .wait_for("🚂 train #1 deploys tag v1 to production")
        .await;
    assert!(
        departed - failed >= minutes(1) && departed - failed < minutes(1) + TimeDelta::seconds(1),
        "departed {} after the failure",
        departed - failed
    );
    // Nothing asked the forge in between: one failed call, one retry.
    let calls = bot.commit_calls_since(calls_before);
    assert_eq!(calls, [failed, departed], "commit listings after the push");
    bot.chat.wait_for("✅ train #1 deployed").await;
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "🏷 tag v1"), 1);
    assert_eq!(count_containing(&said, "cannot list commits"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_tag_that_keeps_failing_backs_off_and_is_given_up_after_its_limit() {
    let bot = Bot::start(
        "a_tag_that_keeps_failing_backs_off_and_is_given_up_after_its_limit",
        Options {
            tags: true,
            ..Options::default()
        },
    )
    .await;
    let calls_before = bot.forge.commit_calls.lock().unwrap().len();
    bot.forge.fail_commits.store(usize::MAX, Ordering::SeqCst);
    bot.push_tag("v1", HISTORY - 1);
    let (_, failed, _) = bot.chat.wait_for("🏷 tag v1 (").await;
    let (_, gave_up, _) = bot
        .chat
        .wait_for(&format!(
            "🏷 tag v1 ({}) dropped: the forge failed it for 1h (forge error: the forge is down)",
            sha(HISTORY - 1).short()
        ))
        .await;
    assert_eq!(gave_up - failed, minutes(60));
    // Doubling waits from a minute, at most ten apart; the last try on the
    // limit. Not a try a minute.
    let tries: Vec<i64> = bot
        .commit_calls_since(calls_before)
        .into_iter()
        .map(|at| (at - failed).num_minutes())
        .collect();
    assert_eq!(tries, [0, 1, 3, 7, 15, 25, 35, 45, 55, 60]);
    // Dropped for good: an hour later nothing was tried again.
    bot.clock_passes(minutes(60)).await;
    assert_eq!(bot.commit_calls_since(calls_before).len(), 10);
    let said = bot.finish().await;
    // Chat heard the first failure and the giving up, nothing per retry.
    assert_eq!(count_containing(&said, "🏷 tag v1"), 2, "{said:#?}");
    assert_eq!(count_containing(&said, "train #1"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_tag_keeps_its_first_failure_time_across_a_restart() {
    // A previous run saw the forge fail this tag 8 times, the first 59
    // minutes ago, and said so then.
    let tag = QueuedTag {
        name: "v1".into(),
        sha: sha(HISTORY - 1),
        pushed_by: "alice".into(),
        route: crate::domain::train::Route::ProductionOnly,
        failing: Some(TagFailure {
            since: base_time() - minutes(59),
            attempts: 8,
        }),
    };
    let bot = Bot::start(
        "a_failing_tag_keeps_its_first_failure_time_across_a_restart",
        Options {
            tags: true,
            stored_tag: Some(tag),
            fail_commits: usize::MAX,
            ..Options::default()
        },
    )
    .await;
    let (_, gave_up, _) = bot
        .chat
        .wait_for("🏷 tag v1 (abc0003) dropped: the forge failed it for 1h")
        .await;
    // Tried at start, then on the limit: an hour after the first failure,
    // not an hour after the restart.
    assert_eq!(gave_up, base_time() + minutes(1));
    // (The listings at start include the main branch's own.)
    let later: Vec<Ts> = bot
        .commit_calls_since(0)
        .into_iter()
        .filter(|at| *at > base_time())
        .collect();
    assert_eq!(later, [base_time() + minutes(1)]);
    let said = bot.finish().await;
    // The first failure was said before the restart, not again after it.
    assert_eq!(count_containing(&said, "🏷 tag v1"), 1, "{said:#?}");
}

/// A tag deploy to production of main's head, queued by a previous run.
fn queued_v1() -> QueuedTag {
    QueuedTag {
        name: "v1".into(),
        sha: sha(HISTORY - 1),
        pushed_by: "alice".into(),
        route: crate::domain::train::Route::ProductionOnly,
        failing: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_while_a_tag_departs_neither_loses_nor_doubles_it() {
    const TEST: &str = "a_crash_while_a_tag_departs_neither_loses_nor_doubles_it";
    let slow = Options {
        tags: true,
        stored_tag: Some(queued_v1()),
        slow_commits: Duration::from_secs(60),
        ..Options::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let bot = Bot::start_in(TEST, &slow, dir, base_time()).await;
    // Half-way through the listing of its commits, kill -9.
    bot.clock_passes(TimeDelta::seconds(30)).await;
    assert!(bot.store.last_train().unwrap().is_none());
    let (_dir, now) = bot.crash().await;
    let opts = Options {
        tags: true,
        forge_tag: Some(("v1", HISTORY - 1)),
        ..Options::default()
    };
    let bot = Bot::start_in(TEST, &opts, _dir, now).await;
    bot.chat.wait_for("train #1").await;
    let train = bot.store.last_train().unwrap().expect("the tag's train");
    assert_eq!((train.id, &train.sha), (TrainId(1), &sha(HISTORY - 1)));
    assert!(bot.store.queued_tags().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_tag_cancelled_while_its_commits_are_listed_does_not_depart() {
    // The listing answers after the cancel, or fails after it (the forge's
    // 30s timeout): either way the tag stays cancelled.
    for listing in [20, 60] {
        let slow = Options {
            tags: true,
            stored_tag: Some(queued_v1()),
            slow_commits: Duration::from_secs(listing),
            ..Options::default()
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let test = "a_tag_cancelled_while_its_commits_are_listed_does_not_depart";
        let bot = Bot::start_in(test, &slow, dir, base_time()).await;
        bot.clock_passes(TimeDelta::seconds(10)).await;
        bot.type_line("!cancel v1").await;
        bot.chat.wait_for("tag v1 (abc0003) dropped by local").await;
        bot.clock_passes(minutes(5)).await;
        assert!(bot.store.last_train().unwrap().is_none());
        let queued = bot.store.queued_tags().unwrap();
        assert!(queued.is_empty(), "{listing}s: {queued:?}");
        let said = bot.chat.transcript();
        assert!(!said.contains("departs"), "{listing}s: {said}");
        assert!(!said.contains("cannot leave"), "{listing}s: {said}");
        bot.finish().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_tag_deleted_while_it_waits_is_dropped_and_said_once() {
    let bot = Bot::start(
        "a_tag_deleted_while_it_waits_is_dropped_and_said_once",
        Options {
            tags: true,
            production_deploy: Duration::from_secs(5 * 60),
            ..Options::default()
        },
    )
    .await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 1).short()))
        .await;
    bot.chat
        .wait_for("train #1 ▶ production deploy started")
        .await;
    bot.push_tag("v1", HISTORY - 2);
    bot.chat.wait_for("waits: train #1 is running").await;
    bot.forge.tags.lock().unwrap().clear();
    bot.chat.wait_for("✅ train #1 deployed").await;
    bot.chat
        .wait_for(&format!(
            "🏷 tag v1 ({}) was deleted while it waited; its deploy is dropped",
            sha(HISTORY - 2).short()
        ))
        .await;
    bot.clock_passes(minutes(10)).await;
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "was deleted"), 1);
    assert_eq!(count_containing(&said, "train #2"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_tag_moved_while_it_waits_deploys_its_new_commit() {
    let bot = Bot::start(
        "a_tag_moved_while_it_waits_deploys_its_new_commit",
        Options {
            tags: true,
            production_deploy: Duration::from_secs(5 * 60),
            ..Options::default()
        },
    )
    .await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 2).short()))
        .await;
    bot.chat
        .wait_for("train #1 ▶ production deploy started")
        .await;
    bot.push_tag("v1", HISTORY - 2);
    bot.chat.wait_for("waits: train #1 is running").await;
    // Moved on the forge, and the poller has not seen it yet.
    bot.forge
        .tag_now
        .lock()
        .unwrap()
        .insert("v1".into(), Some(sha(HISTORY - 1)));
    bot.chat.wait_for("✅ train #1 deployed").await;
    let (moved_at, ..) = bot
        .chat
        .wait_for(&format!(
            "🏷 tag v1 moved from {} to {} while it waited; deploying {}",
            sha(HISTORY - 2).short(),
            sha(HISTORY - 1).short(),
            sha(HISTORY - 1).short()
        ))
        .await;
    let (departed_at, ..) = bot
        .chat
        .wait_for("🚂 train #2 deploys tag v1 to production")
        .await;
    assert!(moved_at < departed_at);
    bot.chat.wait_for("✅ train #2 deployed").await;
    let said = bot.finish().await;
    let deployed = said.iter().find_map(|(_, m)| match m {
        Message::Notice { text, .. } if text.starts_with("✅ train #2 deployed") => Some(text),
        _ => None,
    });
    assert!(
        deployed.is_some_and(|t| t.contains(sha(HISTORY - 1).short())),
        "{deployed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ops_cancel_a_waiting_tag_by_its_name() {
    let bot = Bot::start(
        "ops_cancel_a_waiting_tag_by_its_name",
        Options {
            tags: true,
            production_deploy: Duration::from_secs(5 * 60),
            ..Options::default()
        },
    )
    .await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 1).short()))
        .await;
    bot.chat
        .wait_for("train #1 ▶ production deploy started")
        .await;
    bot.push_tag("v1", HISTORY - 2);
    bot.chat.wait_for("waits: train #1 is running").await;
    bot.type_line("@bob !cancel v1").await;
    bot.chat.wait_for("only ops can !cancel").await;
    bot.type_line("!cancel v1").await;
    bot.chat
        .wait_for(&format!(
            "🏷 tag v1 ({}) dropped by local; it will not deploy",
            sha(HISTORY - 2).short()
        ))
        .await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    bot.clock_passes(minutes(10)).await;
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "train #2"), 0);
    assert_eq!(count_containing(&said, "dropped by"), 1);
}

#[tokio::test(start_paused = true)]
async fn approvals_and_buttons_of_an_ended_train_never_count_for_the_next() {
    let bot = Bot::start(
        "approvals_and_buttons_of_an_ended_train_never_count_for_the_next",
        Options::default(),
    )
    .await;
    bot.type_line("!depart").await;
    bot.chat
        .wait_for_from(0, "train #1 asking for approval", |m| {
            matches!(
                m,
                Message::Approval {
                    train: TrainId(1),
                    ..
                }
            )
        })
        .await;
    bot.type_line("!cancel").await;
    bot.chat.wait_for("train #1 cancelled").await;
    bot.type_line("!depart").await;
    bot.chat
        .wait_for_from(0, "train #2 asking for approval", |m| {
            matches!(
                m,
                Message::Approval {
                    train: TrainId(2),
                    ..
                }
            )
        })
        .await;
    // A Good and a Bad button of train #1, and `!good 1` typed.
    bot.click("alice", "!good 1", 1).await;
    bot.click("bob", "!bad", 1).await;
    bot.type_line("@alice !good 1").await;
    bot.type_line("@alice !good 9").await;
    bot.chat.wait_for("no train #9").await;
    let said = bot.chat.messages();
    let replies: Vec<_> = said
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Reply {
                to, text, private, ..
            } => Some((to.as_str(), text.as_str(), *private)),
            _ => None,
        })
        .collect();
    assert_eq!(
        replies,
        [
            ("alice", "train #1 already ended", true),
            ("bob", "train #1 already ended", true),
            ("alice", "train #1 already ended", false),
            ("alice", "no train #9", false),
        ]
    );
    // Train #2 was neither approved nor vetoed: its own buttons still work.
    bot.click("bob", "!bad", 2).await;
    bot.chat.wait_for("train #2 vetoed").await;
    let said = bot.finish().await;
    let approvals = said.iter().filter(|(_, m)| {
        matches!(m, Message::ApprovalProgress { approved_by, .. } if !approved_by.is_empty())
    });
    assert_eq!(approvals.count(), 0, "{said:#?}");
}

#[tokio::test(start_paused = true)]
async fn an_unapproved_train_expires_after_the_approval_timeout() {
    let bot = Bot::start(
        "an_unapproved_train_expires_after_the_approval_timeout",
        Options::default(),
    )
    .await;
    bot.type_line("!depart").await;
    let (asked_at, asked, _) = bot
        .chat
        .wait_for_from(0, "asking for approval", |m| {
            matches!(m, Message::Approval { .. })
        })
        .await;
    let (expired_at, expired, _) = bot.chat.wait_for("⌛ train #1 expired").await;
    assert_eq!(expired - asked, minutes(30));
    // Nothing said in between but the approval's own messages and, five
    // minutes before the end, that it expires (SPEC §14).
    let said = bot.chat.messages();
    let between: Vec<_> = said[asked_at + 1..expired_at]
        .iter()
        .filter(|(_, m)| !matches!(m, Message::ApprovalProgress { .. } | Message::Status { .. }))
        .map(|(at, m)| (*at - asked, text_of(m)))
        .collect();
    assert_eq!(
        between,
        [(minutes(25), "⌛ train #1 expires in 5m; waiting for @bob")],
        "said while waiting"
    );
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "expired"), 2, "notice and status");
    let status = statuses(&said, TrainId(1));
    assert!(status.last().unwrap().1.contains("expired"), "{status:#?}");
}

#[tokio::test]
async fn only_revert_claims_the_forge_confirms_count_and_a_failed_check_counts_as_none() {
    use crate::domain::approval::RevertClaim;

    let forge = FakeForge::new(Arc::new(FakeClock::new(base_time())), HISTORY);
    let claim = |reverting: usize, reverted: usize| RevertClaim {
        reverting: sha(reverting),
        reverted: sha(reverted),
    };
    forge.true_reverts.lock().unwrap().push((sha(3), sha(1)));
    let claims = vec![claim(2, 0), claim(3, 1)];

    let verified = super::trains::verified_reverts(&forge, claims.clone()).await;
    assert_eq!(verified, vec![claim(3, 1)]);
    // A forge that cannot tell (down, binary files) spares nobody, and the
    // departure goes on without it.
    forge.fail_reverts.store(true, Ordering::SeqCst);
    assert_eq!(
        super::trains::verified_reverts(&forge, claims).await,
        vec![]
    );
}

/// The engine's task ends (after `Event::Shutdown`) and must end cleanly.
async fn engine_ends(bot: Bot) -> Vec<(Ts, Message)> {
    bot.task
        .await
        .expect("engine task")
        .unwrap_or_else(|e| panic!("engine failed: {e:#}\n{}", bot.chat.transcript()));
    bot.chat.messages()
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_fails_with_internal_error_and_the_engine_goes_on() {
    let bot = Bot::start(
        "a_panicking_step_fails_with_internal_error_and_the_engine_goes_on",
        Options {
            panics_in: Some("staging-deploy-1"),
            ..Options::default()
        },
    )
    .await;
    bot.type_line("!depart").await;
    let (_, _, failed) = bot.chat.wait_for("staging deploy failed").await;
    let failed = text_of(&failed);
    assert!(failed.contains("internal error"), "{failed}");
    // The panic's own text is for the log, never for chat.
    assert!(!failed.contains("fake runner"), "{failed}");
    bot.chat.wait_for("train #1 failed").await;
    // The engine still answers, and the train is over.
    bot.type_line("!status").await;
    let (_, _, status) = bot.chat.wait_for("no train running").await;
    assert!(matches!(status, Message::Reply { .. }), "{status:?}");
    bot.inbox.send(Event::Shutdown).await.expect("engine runs");
    let said = engine_ends(bot).await;
    assert_eq!(count_containing(&said, "fake runner panics"), 0);
}

/// Force-deploys main's head and waits for its production deploy to start.
async fn production_running(bot: &Bot) {
    bot.type_line(&format!("!force {}", sha(HISTORY - 1).short()))
        .await;
    bot.chat
        .wait_for("train #1 ▶ production deploy started")
        .await;
}

/// The store the engine left, opened again once it has ended.
fn store_left(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("data")).expect("the store opens again")
}

#[tokio::test(start_paused = true)]
async fn on_a_stop_signal_the_production_step_finishes_and_nothing_else_starts() {
    let bot = Bot::start(
        "on_a_stop_signal_the_production_step_finishes_and_nothing_else_starts",
        Options {
            production_deploy: Duration::from_secs(5 * 60),
            ..Options::default()
        },
    )
    .await;
    production_running(&bot).await;
    bot.inbox.send(Event::Shutdown).await.expect("engine runs");
    bot.chat
        .wait_for("⏳ stopping: waiting for train #1's production deploy to finish (up to 10m)")
        .await;
    bot.type_line("!depart").await;
    bot.chat.wait_for("trainbot is stopping").await;
    let Bot {
        task,
        chat,
        _dir,
        store,
        ..
    } = bot;
    // Only the engine may hold the store when it is opened again.
    drop(store);
    task.await.expect("engine task").expect("a clean stop");
    let said = chat.messages();
    assert_eq!(count_containing(&said, "production deploy passed in 5m"), 1);
    assert_eq!(count_containing(&said, "⏳ stopping"), 1);
    // No new work: the smoke waits for the restart, nothing departs.
    assert_eq!(count_containing(&said, "smoke started"), 0);
    assert_eq!(count_containing(&said, "departs"), 0);
    let store = store_left(&_dir);
    let production = store.production().unwrap().expect("production recorded");
    assert_eq!(production.sha, sha(HISTORY - 1));
    let train = store.last_train().unwrap().expect("the train");
    assert_eq!(train.id, TrainId(1));
    assert!(!train.is_done(), "{:?}", train.stage);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_that_cannot_leave_keeps_an_interrupted_train_holding() {
    const TEST: &str = "a_rollback_that_cannot_leave_keeps_an_interrupted_train_holding";
    let opts = || Options {
        production_deploy: Duration::from_secs(10 * 60),
        ..Options::default()
    };
    let bot = Bot::start(TEST, opts()).await;
    production_running(&bot).await;
    // kill -9 while production deploys: its state is unknown.
    let (_dir, now) = bot.crash().await;
    let bot = Bot::start_in(TEST, &opts(), _dir, now).await;
    bot.chat.wait_for("interrupted").await;

    let target = sha(HISTORY - 3);
    bot.forge.fail_commits.store(100, Ordering::SeqCst);
    bot.type_line(&format!("!rollback {}", target.short()))
        .await;
    bot.chat.wait_for("cannot list commits").await;
    // The rollback did not leave: production is still unknown, nothing
    // departs, and the interrupted train is not "rolled back".
    bot.forge.fail_commits.store(0, Ordering::SeqCst);
    bot.type_line("!depart").await;
    bot.chat
        .wait_for("train #1 was interrupted in production")
        .await;
    let first = bot.store.train(TrainId(1)).unwrap().unwrap();
    assert!(!first.rolled_back);

    // A rollback that leaves settles it.
    bot.type_line(&format!("!rollback {}", target.short()))
        .await;
    bot.chat.wait_for("train #2").await;
    let first = bot.store.train(TrainId(1)).unwrap().unwrap();
    assert!(first.rolled_back);
    assert_eq!(bot.store.last_train().unwrap().unwrap().id, TrainId(2));
}

#[tokio::test(start_paused = true)]
async fn a_second_stop_signal_cuts_the_production_step() {
    let bot = Bot::start(
        "a_second_stop_signal_cuts_the_production_step",
        Options {
            production_deploy: Duration::from_secs(5 * 60),
            ..Options::default()
        },
    )
    .await;
    production_running(&bot).await;
    bot.inbox.send(Event::Shutdown).await.expect("engine runs");
    bot.chat.wait_for("⏳ stopping").await;
    bot.inbox.send(Event::Shutdown).await.expect("engine runs");
    let Bot {
        task,
        chat,
        _dir,
        store,
        ..
    } = bot;
    // Only the engine may hold the store when it is opened again.
    drop(store);
    task.await.expect("engine task").expect("a clean stop");
    let said = chat.messages();
    assert_eq!(count_containing(&said, "is stopped by a second signal"), 1);
    assert_eq!(count_containing(&said, "production deploy passed"), 0);
    let store = store_left(&_dir);
    assert!(store.production().unwrap().is_none());
    // Still recorded as running production: the restart says interrupted.
    let train = store.last_train().unwrap().expect("the train");
    assert!(
        train
            .running_step()
            .is_some_and(|(pos, _)| pos.target == crate::domain::train::Target::Production),
        "{:?}",
        train.stage
    );
}

#[tokio::test(start_paused = true)]
async fn a_production_step_longer_than_the_grace_is_cut_when_it_ends() {
    let bot = Bot::start(
        "a_production_step_longer_than_the_grace_is_cut_when_it_ends",
        Options {
            production_deploy: Duration::from_secs(11 * 60),
            ..Options::default()
        },
    )
    .await;
    production_running(&bot).await;
    bot.inbox.send(Event::Shutdown).await.expect("engine runs");
    let (_, waiting, _) = bot.chat.wait_for("⏳ stopping").await;
    let (_, cut, _) = bot.chat.wait_for("did not finish within 10m").await;
    assert_eq!(cut - waiting, minutes(10));
    let Bot { task, chat, .. } = bot;
    task.await.expect("engine task").expect("a clean stop");
    assert_eq!(
        count_containing(&chat.messages(), "production deploy passed"),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_holds_inputs_says_so_once_and_never_stops_a_running_step() {
    let bot = Bot::start(
        "a_failing_store_holds_inputs_says_so_once_and_never_stops_a_running_step",
        Options {
            production_deploy: Duration::from_secs(10 * 60),
            ..Options::default()
        },
    )
    .await;
    let head = sha(HISTORY - 1);
    bot.type_line(&format!("!force {}", head.short())).await;
    bot.chat
        .wait_for("train #1 ▶ production deploy started")
        .await;

    // The disk fills up while production deploys.
    bot.store.inject_write_failures(true);
    bot.type_line("!freeze disk test").await;
    bot.chat.wait_for("⚠️ not done: storage is failing").await;
    bot.chat.wait_for("⚠️ storage is failing:").await;
    assert!(bot.metrics.storage_failing(), "/healthz says 503");
    bot.type_line("!freeze again").await;
    bot.type_line("!status").await;
    bot.chat.wait_for("not frozen").await;
    // The step ends while storage fails: its end waits, nothing is said.
    bot.clock_passes(minutes(11)).await;
    assert!(
        bot.chat
            .messages()
            .iter()
            .all(|(_, m)| !text_of(m).contains("deploy passed")),
        "nothing announced without a write:\n{}",
        bot.chat.transcript()
    );

    bot.store.inject_write_failures(false);
    bot.chat.wait_for("✅ storage works again").await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    assert!(!bot.metrics.storage_failing());
    let said = bot.stop().await;
    assert_eq!(
        count_containing(&said, "⚠️ storage is failing:"),
        1,
        "said once"
    );
    assert_eq!(count_containing(&said, "✅ storage works again"), 1);
    assert_eq!(count_containing(&said, "production deploy passed"), 1);
    assert_eq!(count_containing(&said, "not done: storage is failing"), 2);
    assert_eq!(
        count_containing(&said, "frozen by"),
        0,
        "the freeze was not taken"
    );
}

#[tokio::test(start_paused = true)]
async fn inputs_that_arrive_together_are_written_with_one_flush() {
    let bot = Bot::start(
        "inputs_that_arrive_together_are_written_with_one_flush",
        Options::default(),
    )
    .await;
    let audit_len = |store: &Store| {
        let page = store.audit_page(crate::store::AuditCursor::Newest, 1000);
        page.expect("audit").entries.len()
    };
    let audited = audit_len(&bot.store);
    let before = bot.store.flushes();
    // A burst: every command is refused and audited (a write each).
    for _ in 0..200 {
        let msg =
            crate::chat::console::parse_line("@mallory !good", &console_user()).expect("a message");
        bot.inbox.send(Event::Chat(msg)).await.expect("engine runs");
    }
    let mut from = 0;
    for _ in 0..200 {
        let (i, _, _) = bot
            .chat
            .wait_for_from(from, "a refusal", |m| {
                text_of(m).contains("no train is waiting for approval")
            })
            .await;
        from = i + 1;
    }
    let flushes = bot.store.flushes() - before;
    assert_eq!(
        audit_len(&bot.store) - audited,
        200,
        "every command is in the store"
    );
    assert!(
        flushes <= 2,
        "{flushes} flushes for one burst of 200 inputs"
    );
    let said = bot.finish().await;
    assert_eq!(
        count_containing(&said, "no train is waiting for approval"),
        200
    );
}

/// One engine of a shared node pool (SPEC §16) over a store of its own
/// pipeline, with fake ports; build steps take ten minutes.
struct PoolEngine {
    chat: Arc<FakeChat>,
    forge: Arc<FakeForge>,
    inbox: mpsc::Sender<Event>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl PoolEngine {
    async fn start(
        cfg: &Settings,
        name: &str,
        store: Store,
        freed: &tokio::sync::watch::Sender<u64>,
    ) -> PoolEngine {
        let mut cfg = cfg.clone();
        cfg.pipeline.name = name.into();
        let clock = Arc::new(FakeClock::new(base_time()));
        let chat = Arc::new(FakeChat::new(clock.clone()));
        let forge = Arc::new(FakeForge::new(clock.clone(), HISTORY));
        forge.branches.lock().unwrap().insert("feat".into(), sha(1));
        let forge_handle = forge.clone();
        let mut runner = FakeRunner::default();
        runner
            .durations
            .insert("checks-1".into(), Duration::from_secs(600));
        let ports = Ports {
            results: None,
            chat: chat.clone(),
            forge,
            runner: Arc::new(runner),
            clock,
        };
        let engine = Engine::new(Arc::new(cfg), store, ports).with_pool(freed.clone());
        let inbox = engine.inbox();
        let task = tokio::spawn(engine.run());
        chat.wait_for("is on main and waits").await;
        PoolEngine {
            chat,
            forge: forge_handle,
            inbox,
            task,
        }
    }

    async fn type_line(&self, line: &str) {
        let msg = crate::chat::console::parse_line(line, &console_user()).expect("a message");
        self.inbox
            .send(Event::Chat(msg))
            .await
            .expect("engine runs");
    }

    async fn stop(self) {
        self.inbox.send(Event::Shutdown).await.expect("engine runs");
        self.task
            .await
            .expect("engine task")
            .unwrap_or_else(|e| panic!("engine failed: {e:#}\n{}", self.chat.transcript()));
    }
}

/// A config with one branch node in pool `shared`.
fn pool_config(dir: &tempfile::TempDir) -> Settings {
    let text = format!(
        "{}\n[branch_builds]\nnodes = [\"n1\"]\nnode_url = \"http://{{node}}\"\n\
         pool = \"shared\"\nchecks = [{{ run = \"true\" }}]\n\
         deploy = [{{ run = \"true\" }}]\nsmoke = [{{ run = \"true\" }}]\n",
        config(false)
    );
    Settings::parse(&text, &dir.path().join("bot.toml")).unwrap_or_else(|e| panic!("config: {e}"))
}

#[tokio::test(start_paused = true)]
async fn a_starting_engine_leaves_the_pool_nodes_of_other_pipelines_busy() {
    let _watchdog =
        Watchdog::start("a_starting_engine_leaves_the_pool_nodes_of_other_pipelines_busy");
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = pool_config(&dir);
    let root = Store::open(&cfg.bot.data_dir).expect("store");
    let wanted = |name| crate::store::Wanted { name, heir: false };
    let stores = root
        .pipelines(&[wanted("api"), wanted("web")], true)
        .expect("pipeline stores");
    let pool = root.with_pool("shared").unwrap();
    // api's build 1 runs on n1; web has no build 1.
    let theirs = crate::domain::nodes::Node {
        branch: Some("feat".parse().unwrap()),
        busy_with: Some(1),
        used: true,
        pipeline: Some("api".into()),
        ..crate::domain::nodes::Node::new("n1")
    };
    pool.save_node(&theirs).unwrap();
    let (freed, _) = tokio::sync::watch::channel(0u64);
    let web_store = stores[1].store.with_pool("shared").unwrap();
    let web = PoolEngine::start(&cfg, "web", web_store, &freed).await;
    web.type_line("!bb feat").await;
    web.chat.wait_for("⏳ build 1 feat").await;
    assert_eq!(pool.nodes(&["n1".into()]).unwrap(), vec![theirs]);
    web.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pool_node_freed_by_one_pipeline_starts_the_build_another_queued() {
    let _watchdog =
        Watchdog::start("a_pool_node_freed_by_one_pipeline_starts_the_build_another_queued");
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = pool_config(&dir);
    let root = Store::open(&cfg.bot.data_dir).expect("store");
    let wanted = |name| crate::store::Wanted { name, heir: false };
    let stores = root
        .pipelines(&[wanted("api"), wanted("web")], true)
        .expect("pipeline stores");
    let pooled = |i: usize| stores[i].store.with_pool("shared").expect("pool");
    let (freed, _) = tokio::sync::watch::channel(0u64);
    let api = PoolEngine::start(&cfg, "api", pooled(0), &freed).await;
    let web = PoolEngine::start(&cfg, "web", pooled(1), &freed).await;

    api.type_line("!bb feat").await;
    api.chat.wait_for("🔧 build 1 feat").await;
    // The same branch name in another pipeline is another branch: it waits.
    web.type_line("!bb feat").await;
    web.chat.wait_for("⏳ build 1 feat").await;
    assert_eq!(
        count_containing(&web.chat.messages(), "🔧 build"),
        0,
        "{}",
        web.chat.transcript()
    );
    web.type_line("!nodes").await;
    web.chat.wait_for("n1: held by pipeline api: feat").await;
    web.type_line("!release n1").await;
    web.chat.wait_for("n1 is held by pipeline api").await;

    // api's build ends and frees the node: web's starts at that instant.
    let (_, ended, _) = api.chat.wait_for("good to merge").await;
    let (_, started, _) = web.chat.wait_for("🔧 build 1 feat").await;
    assert_eq!(started, ended, "web's build waited for a poll");
    let node = root
        .with_pool("shared")
        .unwrap()
        .nodes(&["n1".into()])
        .unwrap()
        .remove(0);
    assert_eq!(node.pipeline.as_deref(), Some("web"));
    assert_eq!(node.busy_with, Some(1));
    api.type_line("!release n1").await;
    api.chat.wait_for("n1 is held by pipeline web").await;
    web.chat.wait_for("good to merge").await;
    api.stop().await;
    web.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_user_may_queue_only_max_queued_per_user_branch_builds() {
    let _watchdog = Watchdog::start("a_user_may_queue_only_max_queued_per_user_branch_builds");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = pool_config(&dir);
    cfg.branch_builds.max_queued_per_user = 2;
    let store = Store::open(&cfg.bot.data_dir).expect("store");
    let (freed, _) = tokio::sync::watch::channel(0u64);
    let web = PoolEngine::start(&cfg, "web", store, &freed).await;
    {
        let mut branches = web.forge.branches.lock().unwrap();
        for (i, b) in ["a", "b", "c"].into_iter().enumerate() {
            branches.insert(b.into(), sha(2 + i));
        }
    }
    web.type_line("!bb feat").await;
    web.chat.wait_for("build 1 feat").await;
    web.type_line("!bb a").await;
    web.chat.wait_for("build 2 a").await;
    web.type_line("!bb b").await;
    web.chat.wait_for("build 3 b").await;
    web.type_line("!bb c").await;
    web.chat
        .wait_for("you have 2 branch builds waiting for a node (at most 2)")
        .await;
    // Another user is not held by this one's queue; a queued branch again
    // replaces its build and adds nothing.
    web.type_line("@bob !bb c").await;
    web.chat.wait_for("build 4 c").await;
    web.type_line("!bb a").await;
    web.chat.wait_for("build 5 a").await;
    web.stop().await;
}

#[path = "eject_tests.rs"]
mod eject_tests;
#[path = "rhythm_tests.rs"]
mod rhythm;

#[path = "verify_tests.rs"]
mod verify;

#[tokio::test(start_paused = true)]
async fn a_hold_is_said_again_once_it_was_lifted_and_why_repeats_it_after_a_restart() {
    const TEST: &str = "a_hold_is_said_again_once_it_was_lifted_and_why_repeats_it_after_a_restart";
    let opts = || Options {
        schedule: Some("0 */10 * * * *"),
        ..Options::default()
    };
    let bot = Bot::start(TEST, opts()).await;
    let held = "does not leave: departures are frozen by local (maintenance)";
    let tick = minutes(10);
    bot.type_line("!freeze maintenance").await;
    bot.clock_passes(tick).await;
    bot.chat.wait_for(held).await;
    // Said once per departure it holds, not again while it still holds…
    bot.clock_passes(tick).await;
    assert_eq!(count_containing(&bot.chat.messages(), held), 1);
    // …but a freeze lifted and laid again is news.
    bot.type_line("!unfreeze").await;
    bot.type_line("!freeze maintenance").await;
    let from = bot.chat.messages().len();
    bot.clock_passes(tick).await;
    bot.chat
        .wait_for_from(from, held, |m| text_of(m).contains(held))
        .await;
}

#[tokio::test(start_paused = true)]
async fn why_repeats_a_command_the_gate_refused_also_after_a_restart() {
    const TEST: &str = "why_repeats_a_command_the_gate_refused_also_after_a_restart";
    let bot = Bot::start(TEST, Options::default()).await;
    bot.type_line("!freeze maintenance").await;
    bot.type_line(&format!("!deploy {} to staging", sha(HISTORY - 1).short()))
        .await;
    bot.chat.wait_for("(rule: freeze)").await;
    let bot = bot.restart(TEST, &Options::default()).await;
    bot.type_line("!why").await;
    bot.chat
        .wait_for("last held: !deploy abc0003 to staging refused: departures are frozen by local")
        .await;
}

#[path = "why_tests.rs"]
mod why;
