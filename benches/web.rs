//! Web pages through the real axum router (`trainbot::web::router`, built
//! as `main` builds it, with the running engine's snapshots and metrics),
//! each request sent with `tower::ServiceExt::oneshot` and timed until its
//! whole body is read: `/api/status`, `/audit` first and last page,
//! `/metrics`, with 0, 10,000 and 100,000 trains stored, then with
//! 1,000,000 audit entries added to the 100,000-train store.
//!
//! Target (issue 10, SPEC §12 "Flat cost"): each within 1.2× of its
//! empty-store figure.

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use support::{AUDIT_ENTRIES, Bot, Filled, SIZES};
use trainbot::domain::clock::SystemClock;
use trainbot::web::{WebState, router};

/// Times every page on this store; `samples`: criterion's sample size.
fn pages(c: &mut Criterion, rt: &Runtime, filled: &Filled, bot: &Bot, label: &str, samples: usize) {
    let app = router(WebState {
        snapshots: bot.snapshots.clone(),
        store: filled.store.clone(),
        settings: filled.cfg.clone(),
        metrics: bot.metrics.clone(),
        clock: Arc::new(SystemClock),
        webhook: None,
        base: String::new(),
        name: filled.cfg.pipeline.name.clone(),
    });
    let uris = [
        ("api_status", "/api/status"),
        ("audit_first", "/audit"),
        ("audit_last", "/audit?oldest"),
        ("metrics", "/metrics"),
    ];
    for (_, uri) in uris {
        let bytes = rt.block_on(support::http::get(&app, uri));
        eprintln!("{label}: GET {uri} → {bytes} bytes");
    }
    let mut group = c.benchmark_group("web");
    group
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    for (name, uri) in uris {
        group.bench_function(BenchmarkId::new(name, label), |b| {
            b.iter_custom(|iters| rt.block_on(support::http::timed_get(&app, uri, iters)))
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = support::runtime();
    for trains in SIZES {
        let filled = Filled::new(trains);
        let bot = rt.block_on(Bot::start(&filled));
        pages(c, &rt, &filled, &bot, &trains.to_string(), 20);
        if trains == SIZES[SIZES.len() - 1] {
            filled.add_audit(AUDIT_ENTRIES);
            let label = format!("{trains}+1M_audit");
            pages(c, &rt, &filled, &bot, &label, 10);
        }
        rt.block_on(bot.stop());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
