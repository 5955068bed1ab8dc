//! What a chat adapter must remember across restarts: ids of events already
//! acted on (Slack redelivers), and small notes of its own (message
//! timestamps per train, email lookups). Two trees, string keys.

use crate::domain::clock::Ts;

use super::{Result, Store, codec};

const SEEN: &str = "seen";
const NOTES: &str = "chat_notes";

/// The narrow handle a chat adapter owns (SPEC §12): the ids of events it
/// acted on and notes of its own, in trees nobody else writes. It cannot
/// touch trains, approvals or anything else of the engine's, which goes
/// through the engine's inbox.
#[derive(Clone)]
pub struct AdapterStore(Store);

impl AdapterStore {
    /// See [`Store::first_seen`].
    pub fn first_seen(&self, key: &str, at: Ts) -> Result<bool> {
        self.0.first_seen(key, at)
    }

    /// See [`Store::prune_seen`].
    pub fn prune_seen(&self, before: Ts) -> Result<usize> {
        self.0.prune_seen(before)
    }

    /// See [`Store::chat_note`].
    pub fn chat_note(&self, key: &str) -> Result<Option<String>> {
        self.0.chat_note(key)
    }

    /// See [`Store::set_chat_note`].
    pub fn set_chat_note(&self, key: &str, value: &str) -> Result<()> {
        self.0.set_chat_note(key, value)
    }
}

impl Store {
    /// The handle a chat adapter gets: its own trees, nothing else.
    pub fn adapter_handle(&self) -> AdapterStore {
        AdapterStore(self.clone())
    }

    /// True the first time `key` (e.g. "slack:event:Ev123") is offered;
    /// recorded and flushed before it returns, so a redelivery after a
    /// restart is still known.
    pub fn first_seen(&self, key: &str, at: Ts) -> Result<bool> {
        self.writable()?;
        let tree = self.tree(SEEN)?;
        let fresh = tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(codec::encode(&at)))?
            .is_ok();
        if fresh {
            self.flush()?;
        }
        Ok(fresh)
    }

    /// Forgets `key`, so that it is fresh again (offered but not acted on,
    /// e.g. a webhook delivery the engine could not take); flushed.
    pub fn forget_seen(&self, key: &str) -> Result<()> {
        self.writable()?;
        self.tree(SEEN)?.remove(key)?;
        self.flush()
    }

    /// Forgets seen keys recorded before `before`; returns how many.
    pub fn prune_seen(&self, before: Ts) -> Result<usize> {
        self.writable()?;
        let tree = self.tree(SEEN)?;
        let mut pruned = 0;
        for entry in self.decoded_entries(&tree, tree.iter()) {
            let (key, at): (_, Ts) = entry?;
            if at < before {
                tree.remove(key)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// A note an adapter kept under `key`.
    pub fn chat_note(&self, key: &str) -> Result<Option<String>> {
        let tree = self.tree(NOTES)?;
        match tree.get(key)? {
            Some(v) => self.read(&tree, key.as_bytes(), &v),
            None => Ok(None),
        }
    }

    /// Keeps `value` under `key`, flushed.
    pub fn set_chat_note(&self, key: &str, value: &str) -> Result<()> {
        self.writable()?;
        self.tree(NOTES)?.insert(key, codec::encode(&value))?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};

    use super::*;

    #[test]
    fn a_key_is_seen_once_also_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.first_seen("slack:event:Ev1", now).unwrap());
            assert!(!store.first_seen("slack:event:Ev1", now).unwrap());
            store
                .set_chat_note("status:1", "1700000000.000100")
                .unwrap();
        }
        let store = Store::reopen(dir.path());
        assert!(!store.first_seen("slack:event:Ev1", now).unwrap());
        assert!(store.first_seen("slack:event:Ev2", now).unwrap());
        assert_eq!(
            store.chat_note("status:1").unwrap().as_deref(),
            Some("1700000000.000100")
        );
        assert_eq!(store.chat_note("status:2").unwrap(), None);
    }

    #[test]
    fn a_forgotten_key_is_fresh_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        assert!(store.first_seen("github:delivery:1", now).unwrap());
        store.forget_seen("github:delivery:1").unwrap();
        store.forget_seen("never-seen").unwrap();
        assert!(store.first_seen("github:delivery:1", now).unwrap());
        assert!(!store.first_seen("github:delivery:1", now).unwrap());
    }

    #[test]
    fn old_seen_keys_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        store.first_seen("old", now - TimeDelta::days(3)).unwrap();
        store.first_seen("new", now).unwrap();
        assert_eq!(store.prune_seen(now - TimeDelta::days(1)).unwrap(), 1);
        assert!(store.first_seen("old", now).unwrap());
        assert!(!store.first_seen("new", now).unwrap());
    }
}
