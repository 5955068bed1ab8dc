//! Tags already acted on, and tag deploys waiting for the running train.
//! One tree, so "seen" and "queued" are written in one atomic batch: a
//! crash can neither lose a tag deploy nor queue it twice.

use serde::{Deserialize, Serialize};

use super::{Result, Store, be, codec, from_be};
use crate::domain::ids::Sha;
use crate::domain::train::Route;

const TREE: &str = "tags";
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
}

fn queue_key(seq: u64) -> Vec<u8> {
    let mut key = QUEUE.as_bytes().to_vec();
    key.extend_from_slice(&be(seq));
    key
}

/// A queue entry: its sequence number and the tag deploy.
fn queued_entry(entry: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(u64, QueuedTag)> {
    let (k, v) = entry?;
    Ok((from_be(&k[QUEUE.len()..]), codec::decode(&v)?))
}

impl Store {
    /// The commit `name` pointed at when it was last acted on.
    pub fn tag_seen(&self, name: &str) -> Result<Option<Sha>> {
        self.db
            .open_tree(TREE)?
            .get(format!("{SEEN}{name}"))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// Records the tag as seen and, with `deploy`, queues its deploy; one
    /// atomic batch, flushed. Returns the queue position (1 = next).
    pub fn record_tag(&self, name: &str, sha: &Sha, deploy: Option<&QueuedTag>) -> Result<usize> {
        let tree = self.db.open_tree(TREE)?;
        let mut batch = sled::Batch::default();
        batch.insert(format!("{SEEN}{name}").as_bytes(), codec::encode(sha));
        if let Some(queued) = deploy {
            let next = tree
                .scan_prefix(QUEUE)
                .keys()
                .next_back()
                .transpose()?
                .map_or(0, |k| from_be(&k[QUEUE.len()..]))
                + 1;
            batch.insert(queue_key(next), codec::encode(queued));
        }
        tree.apply_batch(batch)?;
        self.flush()?;
        Ok(tree.scan_prefix(QUEUE).count())
    }

    /// Marks every tag there is now as seen without deploying any, once:
    /// a bot that meets a repository's existing tags must not ship them all.
    /// True if this was the first time.
    pub fn tag_baseline(&self, tags: &[(String, Sha)]) -> Result<bool> {
        let tree = self.db.open_tree(TREE)?;
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
        self.db
            .open_tree(TREE)?
            .scan_prefix(QUEUE)
            .map(queued_entry)
            .collect()
    }

    /// Puts a tag deploy back in its old place (it could not leave).
    pub fn requeue_tag(&self, seq: u64, tag: &QueuedTag) -> Result<()> {
        self.db
            .open_tree(TREE)?
            .insert(queue_key(seq), codec::encode(tag))?;
        self.flush()
    }

    /// The tag deploy waiting longest, if any.
    pub fn next_queued_tag(&self) -> Result<Option<(u64, QueuedTag)>> {
        self.db
            .open_tree(TREE)?
            .scan_prefix(QUEUE)
            .next()
            .map(queued_entry)
            .transpose()
    }

    /// Takes a tag deploy off the queue (it has become a train).
    pub fn dequeue_tag(&self, seq: u64) -> Result<()> {
        self.db.open_tree(TREE)?.remove(queue_key(seq))?;
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
    fn the_baseline_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.tag_baseline(&[("v1".into(), sha('a'))]).unwrap());
        assert_eq!(store.tag_seen("v1").unwrap(), Some(sha('a')));
        assert!(!store.tag_baseline(&[("v2".into(), sha('b'))]).unwrap());
        assert_eq!(store.tag_seen("v2").unwrap(), None);
    }
}
