//! Records that do not decode (SPEC §12). One unreadable record must never
//! stop the bot from starting nor a page from showing, and must not be
//! lost either: it is moved, raw, into the `quarantine` tree under its tree
//! name and key (`trains/` + the 8 key bytes), logged, and named once to
//! whoever asks (`take_set_aside`: the engine says it in chat). Readers skip
//! it and go on with the rest.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use sled::transaction::TransactionError;
use sled::{IVec, Transactional, Tree};

use super::{Result, Store, StoreError, codec, from_be, tx_err};

const QUARANTINE: &str = "quarantine";

/// Names of records set aside and not yet reported; shared by every clone
/// of the store, so one set aside by a web page is still said once.
#[derive(Clone, Default)]
pub(super) struct SetAside(Arc<Mutex<Vec<String>>>);

impl SetAside {
    fn push(&self, name: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(name);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

type Entry = sled::Result<(IVec, IVec)>;

impl Store {
    /// Decodes the record `key` of `tree`; one that does not decode is set
    /// aside and reads as absent.
    pub(super) fn read<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Option<T>> {
        match codec::decode(bytes) {
            Ok(value) => Ok(Some(value)),
            Err(StoreError::Codec(why)) => {
                self.set_aside(tree, key, bytes, &why);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The records of an iteration over `tree` with their keys, skipping
    /// (and setting aside) those that do not decode.
    pub(super) fn decoded_entries<'a, T: DeserializeOwned + 'a>(
        &'a self,
        tree: &'a Tree,
        entries: impl Iterator<Item = Entry> + 'a,
    ) -> impl Iterator<Item = Result<(IVec, T)>> + 'a {
        entries.filter_map(move |entry| match entry {
            Err(e) => Some(Err(e.into())),
            Ok((key, bytes)) => self
                .read(tree, &key, &bytes)
                .map(|v| v.map(|v| (key, v)))
                .transpose(),
        })
    }

    /// `decoded_entries` without the keys.
    pub(super) fn decoded<'a, T: DeserializeOwned + 'a>(
        &'a self,
        tree: &'a Tree,
        entries: impl Iterator<Item = Entry> + 'a,
    ) -> impl Iterator<Item = Result<T>> + 'a {
        self.decoded_entries(tree, entries)
            .map(|r| r.map(|(_, v)| v))
    }

    /// Sets the record aside and says so once; a failure to move it is
    /// logged: the record is skipped anyway, and met again next time.
    fn set_aside(&self, tree: &Tree, key: &[u8], bytes: &[u8], why: &str) {
        let name = record_name(&tree.name(), key);
        match self.move_to_quarantine(tree, key, bytes) {
            Ok(true) => {
                tracing::warn!(record = %name, error = why, "A stored record could not be read; it was moved to the quarantine tree.");
                self.set_aside.push(name);
            }
            // Someone else (a page, the engine) moved it first.
            Ok(false) => {}
            Err(error) => {
                tracing::error!(record = %name, %error, "A stored record could not be read nor set aside; skipping it.");
            }
        }
    }

    /// Moves the record, raw, in one transaction, if it still holds what
    /// was read; flushed. False if it had changed or gone.
    fn move_to_quarantine(&self, tree: &Tree, key: &[u8], bytes: &[u8]) -> Result<bool> {
        let quarantine = self.tree(QUARANTINE)?;
        let aside = [&tree.name()[..], b"/", key].concat();
        let res: std::result::Result<bool, TransactionError<()>> =
            (tree, &quarantine).transaction(|(t, q)| {
                if t.get(key)?.as_deref() != Some(bytes) {
                    return Ok(false);
                }
                t.remove(key)?;
                q.insert(aside.as_slice(), bytes)?;
                Ok(true)
            });
        let moved = res.map_err(tx_err)?;
        if moved {
            self.flush()?;
        }
        Ok(moved)
    }

    /// Records set aside since the last call, named like `trains/42`; each
    /// is given once.
    pub fn take_set_aside(&self) -> Vec<String> {
        self.set_aside.take()
    }

    /// Everything in quarantine: each record's name and its raw bytes.
    pub fn quarantined(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.tree(QUARANTINE)?
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                let cut = key.iter().position(|b| *b == b'/').unwrap_or(key.len());
                let rest = key.get(cut + 1..).unwrap_or_default();
                Ok((record_name(&key[..cut], rest), bytes.to_vec()))
            })
            .collect()
    }

    /// The highest id of `tree` ever set aside: ids are never given twice,
    /// even when the record that had one is in quarantine.
    pub(super) fn last_id_set_aside(&self, tree: &Tree) -> Result<u64> {
        let prefix = [&tree.name()[..], b"/"].concat();
        let last = self.tree(QUARANTINE)?.scan_prefix(&prefix).last();
        Ok(match last.transpose()? {
            Some((key, _)) if key.len() == prefix.len() + 8 => from_be(&key[prefix.len()..]),
            _ => 0,
        })
    }
}

/// How a record is named for people: its tree, then its key as text, or
/// as a number where ids and sequence numbers are 8 big-endian bytes
/// (after a text prefix, as in `tags/queue:3`), else in hex.
fn record_name(tree: &[u8], key: &[u8]) -> String {
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .filter(|s| !s.chars().any(char::is_control))
            .map(str::to_string)
    };
    let tree = String::from_utf8_lossy(tree);
    let key = match text(key) {
        Some(s) => s,
        None if key.len() >= 8 => {
            let (head, id) = key.split_at(key.len() - 8);
            match text(head) {
                Some(head) => format!("{head}{}", from_be(id)),
                None => hex::encode(key),
            }
        }
        None => hex::encode(key),
    };
    format!("{tree}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_trains::train;
    use crate::domain::train::Train;
    use crate::store::be;

    fn garbage() -> &'static [u8] {
        b"\x01{not json"
    }

    #[test]
    fn records_are_named_by_tree_and_key() {
        assert_eq!(record_name(b"trains", &be(42)), "trains/42");
        assert_eq!(record_name(b"meta", b"production"), "meta/production");
        let mut queued = b"queue:".to_vec();
        queued.extend_from_slice(&be(3));
        assert_eq!(record_name(b"tags", &queued), "tags/queue:3");
        assert_eq!(record_name(b"x", &[0, 1]), "x/0001");
    }

    #[test]
    fn a_bad_train_is_set_aside_kept_and_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in 1..=3 {
            store.save_train(&train(id, id as i64)).unwrap();
        }
        store.trains.insert(be(2), garbage()).unwrap();
        let ids: Vec<u64> = store
            .recent_trains(10)
            .unwrap()
            .iter()
            .map(|t| t.id.0)
            .collect();
        assert_eq!(ids, [3, 1]);
        assert_eq!(store.take_set_aside(), ["trains/2"]);
        assert_eq!(store.take_set_aside(), Vec::<String>::new());
        // Moved, not copied: the next reader does not meet it again.
        assert_eq!(store.recent_trains(10).unwrap().len(), 2);
        assert_eq!(store.take_set_aside(), Vec::<String>::new());
        assert_eq!(
            store.quarantined().unwrap(),
            [("trains/2".to_string(), garbage().to_vec())]
        );
    }

    #[test]
    fn the_last_train_unreadable_neither_stops_the_start_nor_frees_its_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.save_train(&train(1, 1)).unwrap();
            store.save_train(&train(2, 2)).unwrap();
            store.trains.insert(be(2), garbage()).unwrap();
            // A store written before outcomes were counted counts at open.
            store.train_outcomes.clear().unwrap();
        }
        let store = Store::reopen(dir.path());
        assert_eq!(store.take_set_aside(), ["trains/2"]);
        assert_eq!(store.last_train().unwrap().map(|t: Train| t.id.0), Some(1));
        assert_eq!(store.next_train_id().unwrap().0, 3);
        assert_eq!(store.train(crate::domain::ids::TrainId(2)).unwrap(), None);
    }

    #[test]
    fn bad_records_of_every_kind_read_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.meta.insert("production", garbage()).unwrap();
        store.meta.insert("freeze", garbage()).unwrap();
        store.audit.insert(be(1), garbage()).unwrap();
        store.builds.insert(be(1), garbage()).unwrap();
        store.nodes.insert("n1", garbage()).unwrap();
        store.allocations.insert(be(1), garbage()).unwrap();
        store.procs.insert("train-1/x/0", garbage()).unwrap();
        store
            .db
            .open_tree("locks")
            .unwrap()
            .insert("preview", garbage())
            .unwrap();
        let mut queued = b"queue:".to_vec();
        queued.extend_from_slice(&be(1));
        store
            .db
            .open_tree("tags")
            .unwrap()
            .insert(queued, garbage())
            .unwrap();
        assert_eq!(store.production().unwrap(), None);
        assert_eq!(store.freeze().unwrap(), None);
        let page = store.audit_page(super::super::AuditCursor::Newest, 10);
        assert!(page.unwrap().entries.is_empty());
        assert!(store.unfinished_builds(10).unwrap().is_empty());
        assert_eq!(store.next_build_id().unwrap(), 2);
        assert_eq!(store.nodes(&["n1".into()]).unwrap()[0].name, "n1");
        assert_eq!(store.head().unwrap(), None);
        assert!(store.running_processes().unwrap().is_empty());
        assert!(store.locks().unwrap().is_empty());
        assert!(store.queued_tags().unwrap().is_empty());
        let mut names = store.take_set_aside();
        names.sort();
        assert_eq!(
            names,
            [
                "allocations/1",
                "audit/1",
                "builds/1",
                "locks/preview",
                "meta/freeze",
                "meta/production",
                "nodes/n1",
                "procs/train-1/x/0",
                "tags/queue:1",
            ]
        );
        assert_eq!(store.quarantined().unwrap().len(), 9);
    }
}
