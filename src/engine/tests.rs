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
use crate::store::Store;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            production_deploy: Duration::from_secs(1),
            tags: false,
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
    inbox: mpsc::Sender<Event>,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
    _watchdog: Watchdog,
}

impl Bot {
    async fn start(test: &'static str, opts: Options) -> Bot {
        let watchdog = Watchdog::start(test);
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Settings::parse(&config(opts.tags), &dir.path().join("bot.toml"))
            .unwrap_or_else(|e| panic!("config: {e}"));
        let store = Store::open(&cfg.bot.data_dir).expect("store");
        let clock = Arc::new(FakeClock::new(base_time()));
        let chat = Arc::new(FakeChat::new(clock.clone()));
        let forge = Arc::new(FakeForge::new(clock.clone(), HISTORY));
        let mut runner = FakeRunner::default();
        runner
            .durations
            .insert("production-deploy-1".into(), opts.production_deploy);
        let ports = Ports {
            results: None,
            chat: chat.clone(),
            forge: forge.clone(),
            runner: Arc::new(runner),
            clock: clock.clone(),
        };
        let engine = Engine::new(Arc::new(cfg), store, ports);
        let inbox = engine.inbox();
        let task = tokio::spawn(engine.run());
        let bot = Bot {
            clock,
            chat,
            forge,
            inbox,
            task,
            _dir: dir,
            _watchdog: watchdog,
        };
        // Started: the head of main is allocated before anything else.
        bot.chat.wait_for("is on main and waits").await;
        bot
    }

    /// A console line, as the console adapter reads it (`@alice …` is alice).
    async fn type_line(&self, line: &str) {
        let msg = crate::chat::console::parse_line(line, &console_user()).expect("a message");
        self.inbox
            .send(Event::Chat(msg))
            .await
            .expect("engine runs");
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
    bot.forge.tags.lock().unwrap().push(TagRef {
        name: "v1".into(),
        sha: sha(HISTORY - 1),
        pushed_by: None,
    });
    let head = sha(HISTORY - 1);
    let (_, failed, _) = bot
        .chat
        .wait_for(&format!("cannot list commits for {}", head.short()))
        .await;
    assert!(
        failed - pushed <= TimeDelta::seconds(2),
        "the poller is slow"
    );
    let (_, waits, _) = bot
        .chat
        .wait_for(&format!(
            "🏷 tag v1 ({}) pushed by unknown waits: its commits could not be listed; trying again in a minute",
            head.short()
        ))
        .await;
    assert_eq!(waits, failed);
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
    let calls: Vec<_> = bot
        .forge
        .commit_calls
        .lock()
        .unwrap()
        .iter()
        .copied()
        .skip(calls_before)
        .collect();
    assert_eq!(calls, [failed, departed], "commit listings after the push");
    bot.chat.wait_for("✅ train #1 deployed").await;
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "🏷 tag v1"), 1);
    assert_eq!(count_containing(&said, "cannot list commits"), 1);
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
    // Nothing said in between but the approval's own messages.
    let said = bot.chat.messages();
    let between: Vec<_> = said[asked_at + 1..expired_at]
        .iter()
        .map(|(_, m)| m)
        .filter(|m| !matches!(m, Message::ApprovalProgress { .. } | Message::Status { .. }))
        .collect();
    assert!(between.is_empty(), "said while waiting: {between:#?}");
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
