//! Slack delivers an event again when an ack is late or a socket drops;
//! each input acts once, also across a restart: its keys go to the store.

use chrono::{TimeDelta, Utc};

use crate::store::AdapterStore;

/// How long a seen key is kept; Slack retries within minutes.
const KEEP: TimeDelta = TimeDelta::days(7);

#[derive(Clone)]
pub struct Dedupe {
    store: AdapterStore,
}

impl Dedupe {
    /// Forgets keys older than a week.
    pub fn new(store: AdapterStore) -> Dedupe {
        match store.prune_seen(Utc::now() - KEEP) {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "Forgot old Slack event ids."),
            Err(error) => tracing::warn!(%error, "Cannot prune old Slack event ids."),
        }
        Dedupe { store }
    }

    /// True if no key was seen before; every key is recorded either way.
    /// A store failure lets the input through: better twice than never.
    pub fn first_time(&self, keys: &[String]) -> bool {
        let now = Utc::now();
        let mut fresh = true;
        for key in keys {
            match self.store.first_seen(&format!("slack:{key}"), now) {
                Ok(first) => fresh &= first,
                Err(error) => tracing::warn!(%error, key, "Cannot record a Slack event id."),
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_with_any_key_seen_before_is_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let dedupe = Dedupe::new(
            crate::store::Store::open(dir.path())
                .unwrap()
                .adapter_handle(),
        );
        let keys = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        assert!(dedupe.first_time(&keys("event:1", "msg:C1:1.1")));
        assert!(!dedupe.first_time(&keys("event:1", "msg:C1:1.1")));
        // The app_mention twin of the same message.
        assert!(!dedupe.first_time(&keys("event:2", "msg:C1:1.1")));
        assert!(dedupe.first_time(&keys("event:3", "msg:C1:1.2")));
    }
}
