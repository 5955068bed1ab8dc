//! Tags already acted on, and tag deploys waiting for the running train.
//! One tree, so "seen" and "queued" are written in one atomic batch: a
//! crash can neither lose a tag deploy nor queue it twice.

use serde::{Deserialize, Serialize};

use super::{Result, Store, be, codec, from_be};
use crate::domain::clock::Ts;
use crate::domain::ids::Sha;
use crate::domain::train::Route;

pub(super) const TREE: &str = "tags";
const SEEN: &str = "seen:";
const QUEUE: &str = "queue:";
const BASELINE: &str = "baseline";

/// A tag deploy waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedTag {
    pub name: String,
    pub sha: Sha,
    pub pushed_by: String,
    pub route: Route,
    /// Set while the forge fails this deploy (its commits cannot be listed,
    /// or the tag cannot be read): stored, so the `tags.give_up_after` limit
    /// counts from the first failure across restarts. Absent in records
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<TagFailure>,
}

/// A tag deploy the forge has failed: since when, and how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFailure {
    pub since: Ts,
    pub attempts: u32,
}

pub(super) fn queue_key(seq: u64) -> Vec<u8> {
    let mut key = QUEUE.as_bytes().to_vec();
    key.extend_from_slice(&be(seq));
    key
}

/// A queue entry: its sequence number and the tag deploy.
fn queued_entry(entry: Result<(sled::IVec, QueuedTag)>) -> Result<(u64, QueuedTag)> {
    let (k, tag) = entry?;
    Ok((from_be(&k[QUEUE.len()..]), tag))
}

impl Store {
    /// The commit `name` pointed at when it was last acted on.
    pub fn tag_seen(&self, name: &str) -> Result<Option<Sha>> {
        let tree = self.tags.clone();
        let key = format!("{SEEN}{name}");
        match tree.get(&key)? {
            Some(v) => self.read(&tree, key.as_bytes(), &v),
            None => Ok(None),
        }
    }

    /// Records the tag as seen and, with `deploy`, queues its deploy; one
    /// atomic batch, flushed. A tag that is already queued (it moved while
    /// it waited) is replaced in its place rather than queued twice.
    /// Returns the queue position (1 = next).
    pub fn record_tag(&self, name: &str, sha: &Sha, deploy: Option<&QueuedTag>) -> Result<usize> {
        self.writable()?;
        let tree = self.tags.clone();
        let mut batch = sled::Batch::default();
        batch.insert(format!("{SEEN}{name}").as_bytes(), codec::encode(sha));
        let mut seq = None;
        if let Some(queued) = deploy {
            let next = match self.queued_tag_named(name)? {
                Some((same, _)) => same,
                None => {
                    tree.scan_prefix(QUEUE)
                        .keys()
                        .next_back()
                        .transpose()?
                        .map_or(0, |k| from_be(&k[QUEUE.len()..]))
                        + 1
                }
            };
            batch.insert(queue_key(next), codec::encode(queued));
            seq = Some(next);
        }
        tree.apply_batch(batch)?;
        self.flush()?;
        let ahead = tree
            .scan_prefix(QUEUE)
            .keys()
            .filter(|k| {
                k.as_ref()
                    .is_ok_and(|k| seq.is_none_or(|s| from_be(&k[QUEUE.len()..]) <= s))
            })
            .count();
        Ok(ahead)
    }

    /// The queued deploy of the tag `name`, if one waits.
    pub fn queued_tag_named(&self, name: &str) -> Result<Option<(u64, QueuedTag)>> {
        for entry in self.queued_tags()? {
            if entry.1.name == name {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// Forgets that the tag was seen (it was deleted): pushed again, even
    /// at the same commit, it counts as new.
    pub fn forget_tag(&self, name: &str) -> Result<()> {
        self.writable()?;
        self.tags.clone().remove(format!("{SEEN}{name}"))?;
        self.flush()
    }

    /// Marks every tag there is now as seen without deploying any, once:
    /// a bot that meets a repository's existing tags must not ship them all.
    /// True if this was the first time.
    pub fn tag_baseline(&self, tags: &[(String, Sha)]) -> Result<bool> {
        self.writable()?;
        let tree = self.tags.clone();
        if tree.contains_key(BASELINE)? {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        for (name, sha) in tags {
            batch.insert(format!("{SEEN}{name}").as_bytes(), codec::encode(sha));
        }
        batch.insert(BASELINE, &b"1"[..]);
        tree.apply_batch(batch)?;
        self.flush()?;
        Ok(true)
    }

    /// The tag deploys waiting, oldest first, with their queue keys.
    pub fn queued_tags(&self) -> Result<Vec<(u64, QueuedTag)>> {
        let tree = self.tags.clone();
        self.decoded_entries(&tree, tree.scan_prefix(QUEUE))
            .map(queued_entry)
            .collect()
    }

    /// Puts a tag deploy back in its old place (it could not leave), or
    /// updates it there (its failures, a moved SHA).
    pub fn requeue_tag(&self, seq: u64, tag: &QueuedTag) -> Result<()> {
        self.writable()?;
        self.tags
            .clone()
            .insert(queue_key(seq), codec::encode(tag))?;
        self.flush()
    }

    /// The tag deploy waiting longest, if any.
    pub fn next_queued_tag(&self) -> Result<Option<(u64, QueuedTag)>> {
        let tree = self.tags.clone();
        self.decoded_entries(&tree, tree.scan_prefix(QUEUE))
            .next()
            .map(queued_entry)
            .transpose()
    }

    /// The tag deploy queued at `seq`, if it still is.
    pub fn queued_tag(&self, seq: u64) -> Result<Option<QueuedTag>> {
        let tree = self.tags.clone();
        let key = queue_key(seq);
        match tree.get(&key)? {
            Some(v) => self.read(&tree, &key, &v),
            None => Ok(None),
        }
    }

    /// Takes a tag deploy off the queue (cancelled, refused or given up).
    pub fn dequeue_tag(&self, seq: u64) -> Result<()> {
        self.writable()?;
        self.tags.clone().remove(queue_key(seq))?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(c: char) -> Sha {
        Sha::new(&c.to_string().repeat(40)).unwrap()
    }

    fn queued(name: &str) -> QueuedTag {
        QueuedTag {
            name: name.into(),
            sha: sha('a'),
            pushed_by: "alice".into(),
            route: Route::ProductionOnly,
            failing: None,
        }
    }

    #[test]
    fn tags_queue_in_order_and_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tag_seen("v1").unwrap(), None);
        assert_eq!(
            store
                .record_tag("v1", &sha('a'), Some(&queued("v1")))
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .record_tag("v2", &sha('a'), Some(&queued("v2")))
                .unwrap(),
            2
        );
        assert_eq!(store.record_tag("x", &sha('b'), None).unwrap(), 2);
        assert_eq!(store.tag_seen("v1").unwrap(), Some(sha('a')));
        assert_eq!(store.tag_seen("x").unwrap(), Some(sha('b')));
        let q = store.queued_tags().unwrap();
        assert_eq!(store.next_queued_tag().unwrap().as_ref(), q.first());
        assert_eq!(
            q.iter().map(|(_, t)| t.name.as_str()).collect::<Vec<_>>(),
            ["v1", "v2"]
        );
        store.dequeue_tag(q[0].0).unwrap();
        store.requeue_tag(q[0].0, &q[0].1).unwrap();
        assert_eq!(store.queued_tags().unwrap(), q);
        store.dequeue_tag(q[0].0).unwrap();
        drop(store);
        let store = Store::reopen(dir.path());
        assert_eq!(store.queued_tags().unwrap().len(), 1);
        assert_eq!(
            store
                .record_tag("v3", &sha('a'), Some(&queued("v3")))
                .unwrap(),
            2
        );
        let names: Vec<String> = store
            .queued_tags()
            .unwrap()
            .into_iter()
            .map(|(_, t)| t.name)
            .collect();
        assert_eq!(names, ["v2", "v3"]);
    }

    #[test]
    fn a_moved_tag_keeps_its_place_and_failures_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .record_tag("v1", &sha('a'), Some(&queued("v1")))
            .unwrap();
        store
            .record_tag("v2", &sha('a'), Some(&queued("v2")))
            .unwrap();
        let moved = QueuedTag {
            sha: sha('b'),
            ..queued("v1")
        };
        assert_eq!(store.record_tag("v1", &sha('b'), Some(&moved)).unwrap(), 1);
        let q = store.queued_tags().unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].1, moved);
        let since = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let failing = QueuedTag {
            failing: Some(TagFailure { since, attempts: 3 }),
            ..moved
        };
        store.requeue_tag(q[0].0, &failing).unwrap();
        drop(store);
        let store = Store::reopen(dir.path());
        assert_eq!(
            store.queued_tag_named("v1").unwrap(),
            Some((q[0].0, failing))
        );
        store.forget_tag("v1").unwrap();
        assert_eq!(store.tag_seen("v1").unwrap(), None);
    }

    #[test]
    fn a_queued_tag_written_before_failures_were_kept_still_reads() {
        let old = br#"{"name":"v1","sha":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","pushed_by":"alice","route":"ProductionOnly"}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(old);
        let tag: QueuedTag = codec::decode(&bytes).unwrap();
        assert_eq!(tag, queued("v1"));
    }

    #[test]
    fn the_baseline_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.tag_baseline(&[("v1".into(), sha('a'))]).unwrap());
        assert_eq!(store.tag_seen("v1").unwrap(), Some(sha('a')));
        assert!(!store.tag_baseline(&[("v2".into(), sha('b'))]).unwrap());
        assert_eq!(store.tag_seen("v2").unwrap(), None);
    }
}
