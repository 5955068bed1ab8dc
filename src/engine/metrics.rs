//! Counters the engine bumps as things happen, for `/metrics`. Shared by
//! `Arc`; the web layer only reads. Everything the store can tell (trains by
//! outcome, deploys) is derived from the store instead.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::TimeDelta;

use crate::domain::metrics::approval_wait;
use crate::domain::train::Train;

/// Upper bounds in seconds of the step duration buckets.
pub const STEP_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Upper bounds in seconds of the approval wait buckets.
pub const APPROVAL_BUCKETS: &[f64] = &[60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0];

/// A cumulative histogram in the Prometheus sense.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket of the matching bounds, observations at or below it.
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        for (b, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *b += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

/// Step durations and results by (env, phase).
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    pub durations: Histogram,
    pub passed: u64,
    pub failed: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// A store write failed and has not worked since (`/healthz` is 503).
    storage_failing: std::sync::atomic::AtomicBool,
    chat_events: AtomicU64,
    webhook_events: AtomicU64,
    trains_ended: Mutex<BTreeMap<String, u64>>,
    steps: Mutex<BTreeMap<(String, String), StepStats>>,
    approval_wait: Mutex<Histogram>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// The delivery metrics last computed for the web, and for what.
    delivery: Mutex<Option<(String, crate::domain::metrics::Delivery)>>,
    /// The GitHub forge's request counts and rate limit, when the forge is
    /// GitHub.
    github: std::sync::OnceLock<std::sync::Arc<crate::forge::github::ApiStats>>,
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

impl Metrics {
    pub fn chat_event(&self) {
        self.chat_events.fetch_add(1, Ordering::Relaxed);
    }

    pub fn webhook_event(&self) {
        self.webhook_events.fetch_add(1, Ordering::Relaxed);
    }

    /// A train ended: counts its outcome and, if it waited for approval, how long.
    pub fn train_ended(&self, train: &Train) {
        let word = train.outcome().map_or("unknown", |o| o.word());
        *lock(&self.trains_ended)
            .entry(word.to_string())
            .or_default() += 1;
        if let Some(wait) = approval_wait(train) {
            lock(&self.approval_wait).observe(APPROVAL_BUCKETS, seconds(wait));
        }
    }

    pub fn step_finished(&self, env: &str, phase: &str, took: TimeDelta, ok: bool) {
        let mut steps = lock(&self.steps);
        let s = steps
            .entry((env.to_string(), phase.to_string()))
            .or_default();
        s.durations.observe(STEP_BUCKETS, seconds(took));
        if ok {
            s.passed += 1;
        } else {
            s.failed += 1;
        }
    }

    /// Something went wrong that did not stop the bot (`kind`: where).
    /// The delivery metrics computed for `key`, if they still are.
    pub fn cached_delivery(&self, key: &str) -> Option<crate::domain::metrics::Delivery> {
        let cached = lock(&self.delivery);
        cached
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, d)| d.clone())
    }

    pub fn cache_delivery(&self, key: String, delivery: crate::domain::metrics::Delivery) {
        *lock(&self.delivery) = Some((key, delivery));
    }

    pub fn set_storage_failing(&self, failing: bool) {
        self.storage_failing.store(failing, Ordering::Relaxed);
    }

    pub fn storage_failing(&self) -> bool {
        self.storage_failing.load(Ordering::Relaxed)
    }

    pub fn error(&self, kind: &str) {
        *lock(&self.errors).entry(kind.to_string()).or_default() += 1;
    }

    /// Shows `stats` (the GitHub forge's) on `/metrics`; the first one stays.
    pub fn attach_github(&self, stats: std::sync::Arc<crate::forge::github::ApiStats>) {
        let _ = self.github.set(stats);
    }

    pub fn github(&self) -> Option<&crate::forge::github::ApiStats> {
        self.github.get().map(|s| &**s)
    }

    pub fn chat_events(&self) -> u64 {
        self.chat_events.load(Ordering::Relaxed)
    }

    pub fn webhook_events(&self) -> u64 {
        self.webhook_events.load(Ordering::Relaxed)
    }

    pub fn trains_ended(&self) -> BTreeMap<String, u64> {
        lock(&self.trains_ended).clone()
    }

    pub fn steps(&self) -> BTreeMap<(String, String), StepStats> {
        lock(&self.steps).clone()
    }

    pub fn approval_wait(&self) -> Histogram {
        lock(&self.approval_wait).clone()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }
}

/// A poisoned lock only means a panic mid-update of a counter: keep counting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(&[1.0, 10.0], 0.5);
        h.observe(&[1.0, 10.0], 5.0);
        h.observe(&[1.0, 10.0], 50.0);
        assert_eq!(h.buckets, vec![1, 2]);
        assert_eq!(h.count, 3);
        assert_eq!(h.sum, 55.5);
    }

    #[test]
    fn steps_are_counted_by_env_and_phase() {
        let m = Metrics::default();
        m.step_finished("staging", "deploy", TimeDelta::seconds(3), true);
        m.step_finished("staging", "deploy", TimeDelta::seconds(4), false);
        let s = &m.steps()[&("staging".to_string(), "deploy".to_string())];
        assert_eq!((s.passed, s.failed, s.durations.count), (1, 1, 2));
    }
}
