//! Chat commands through the real engine: each command goes into the
//! engine's inbox as a console line (`Event::Chat`) and is timed until its
//! answer reaches the chat port, with 0, 10,000 and 100,000 trains stored.
//!
//! - `status`, `history_5`: the bot idle, production at the last train.
//! - `why_oldest_sha`: `!why` of the first train's SHA, found through the
//!   index of carried commits (flat as history grows).
//! - `good_author`: an author's `!good` on a train awaiting the approval of
//!   17 authors; the approval is saved and flushed before it is said. Every
//!   16 approvals the engine is restarted (untimed) on a fresh copy of the
//!   train, so the train never completes. The command's audit entry is
//!   written after the approval is said, so its flush lands in the time of
//!   the next `!good`.
//! - `good_refused`: `!good` by someone who is not an author: audited (a
//!   flushed write), then refused.
//! - `burst_2000_good`: 2,000 refused `!good` sent at once, timed until the
//!   2,000th answer; the throughput line is answers per second.
//!
//! Targets (issue 10): each within 1.2× of its empty-store figure, `!status`
//! well under 100 µs, the burst at least 50,000 answers/s.

mod support;

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tokio::runtime::Runtime;

use support::{Bot, Filled, OPS, SIZES, awaiting_train};
use trainbot::chat::Incoming;
use trainbot::domain::ids::ChatUser;
use trainbot::engine::Event;

/// Authors of the train awaiting approval; one never approves.
const AUTHORS: u64 = 17;
/// Approvals between restarts.
const CHUNK: u64 = AUTHORS - 1;
/// Commands in a burst.
const BURST: u64 = 2_000;
/// Who says `!good` without being an author.
const VISITOR: &str = "visitor";

/// Says `text` as `user` `iters` times, one after the other; the time from
/// each send to its answer, summed.
async fn timed(bot: &mut Bot, iters: u64, user: &str, text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        bot.ask(user, text).await;
        total += start.elapsed();
    }
    total
}

/// `iters` authors' approvals, `CHUNK` per fresh train.
async fn approvals(bot: &mut Bot, iters: u64, train: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        bot.restart_with(&awaiting_train(train, AUTHORS)).await;
        let k = CHUNK.min(iters - done);
        for a in 0..k {
            let user = format!("dev{a}");
            let start = Instant::now();
            let said = bot.ask(&user, "!good").await;
            total += start.elapsed();
            assert!(said.contains("approved"), "{user}: {said}");
        }
        done += k;
    }
    total
}

/// `iters` bursts of `BURST` refused `!good`, each timed from the first
/// send until the last answer.
async fn bursts(bot: &mut Bot, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        bot.drain();
        let events: Vec<Event> = (0..BURST)
            .map(|_| {
                Event::Chat(Incoming {
                    user: ChatUser::new(VISITOR),
                    text: "!good".into(),
                    button: false,
                    train: None,
                    channel: None,
                    pipeline: None,
                    thread: None,
                })
            })
            .collect();
        let inbox = bot.inbox.clone();
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for ev in events {
                inbox.send(ev).await.expect("engine runs");
            }
        });
        for _ in 0..BURST {
            bot.answer().await;
        }
        total += start.elapsed();
        sender.await.expect("sender");
    }
    total
}

fn idle(c: &mut Criterion, rt: &Runtime, bot: &mut Bot, trains: u64) {
    rt.block_on(bot.expect_one(OPS, "!status", "no train running"));
    rt.block_on(bot.expect_one(OPS, "!history 5", "deploy"));
    // The oldest train's SHA, which every later deploy carries on.
    let why = format!("!why {}", support::sha(1));
    // With no trains stored it is just a SHA main's head stands on.
    let where_ = if trains > 0 {
        "in production since"
    } else {
        "0000000"
    };
    rt.block_on(bot.expect_one(OPS, &why, where_));
    let mut group = c.benchmark_group("chat");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("status", trains), |b| {
        b.iter_custom(|iters| rt.block_on(timed(bot, iters, OPS, "!status")))
    });
    group.bench_function(BenchmarkId::new("history_5", trains), |b| {
        b.iter_custom(|iters| rt.block_on(timed(bot, iters, OPS, "!history 5")))
    });
    group.bench_function(BenchmarkId::new("why_oldest_sha", trains), |b| {
        b.iter_custom(|iters| rt.block_on(timed(bot, iters, OPS, &why)))
    });
    group.finish();
}

fn approving(c: &mut Criterion, rt: &Runtime, bot: &mut Bot, trains: u64) {
    let train = trains + 1;
    rt.block_on(async {
        bot.restart_with(&awaiting_train(train, AUTHORS)).await;
        bot.expect_one("dev0", "!good", "approved").await;
        bot.expect_one(VISITOR, "!good", "can approve it").await;
    });
    let mut group = c.benchmark_group("chat");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("good_author", trains), |b| {
        b.iter_custom(|iters| rt.block_on(approvals(bot, iters, train)))
    });
    group.bench_function(BenchmarkId::new("good_refused", trains), |b| {
        b.iter_custom(|iters| rt.block_on(timed(bot, iters, VISITOR, "!good")))
    });
    group
        .sample_size(10)
        .throughput(Throughput::Elements(BURST));
    group.bench_function(BenchmarkId::new("burst_2000_good", trains), |b| {
        b.iter_custom(|iters| rt.block_on(bursts(bot, iters)))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = support::runtime();
    for trains in SIZES {
        let filled = Filled::new(trains);
        let mut bot = rt.block_on(Bot::start(&filled));
        idle(c, &rt, &mut bot, trains);
        approving(c, &rt, &mut bot, trains);
        rt.block_on(bot.stop());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
