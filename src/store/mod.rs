//! sled behind one module: trees, a versioned codec, the data_dir lock.
//! Every write that the bot announces is flushed before it returns.

mod audit_pages;
mod builds;
mod carried;
mod codec;
mod eject;
mod locks;
mod pipelines;
mod quarantine;
mod queries;
mod records;
mod seen;
mod tags;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sled::transaction::TransactionError;
use sled::{Db, Transactional, Tree};
use thiserror::Error;

pub use audit_pages::{AuditCursor, AuditPage};
pub use carried::{Carried, CarriedBy};
pub use pipelines::{PipelineStore, Wanted};
pub use records::*;
pub use seen::AdapterStore;
pub use tags::{QueuedTag, TagFailure};

use crate::domain::ids::{Sha, TrainId};
use crate::domain::train::Train;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("another trainbot is already running on {0} (its database is locked)")]
    Locked(String),
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record is unreadable: {0}")]
    Codec(String),
    #[error("production for train {train} attempt {attempt} was already claimed")]
    AlreadyClaimed { train: TrainId, attempt: u32 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Prefix of this pipeline's tree names: "" for the pipeline that owns
    /// the trees of the single-pipeline layout, `p/NAME/` for the others.
    ns: Arc<str>,
    meta: Tree,
    trains: Tree,
    allocations: Tree,
    alloc_by_sha: Tree,
    train_by_sha: Tree,
    deploys: Tree,
    audit: Tree,
    procs: Tree,
    claims: Tree,
    builds: Tree,
    nodes: Tree,
    /// Branch name -> its last build id.
    branch_builds: Tree,
    /// Train id -> its outcome word ("running" until it ends).
    train_outcomes: Tree,
    /// Outcome word -> how many trains have it, kept by `save_train`.
    outcome_counts: Tree,
    /// Tags seen and tag deploys queued (`tags.rs`); `save_tag_train`
    /// writes it with the train.
    tags: Tree,
    /// SHA -> the trains that carried it (`carried.rs`), kept by
    /// `save_train`.
    carried: Tree,
    /// While on, every write fails before it changes anything: the switch
    /// the engine's storage-fault tests turn (a store that fails on demand).
    faults: Arc<AtomicBool>,
    /// This handle's flushes wait for `commit` (group commit): the engine's
    /// handle defers while it applies inputs that arrived together.
    defer: Arc<AtomicBool>,
    /// Flushes that reached the disk, for the group-commit tests.
    flushes: Arc<std::sync::atomic::AtomicU64>,
    /// Unreadable records moved aside and not yet reported.
    set_aside: quarantine::SetAside,
}

/// The outcome word of a train for counting: "running" until it ends.
fn outcome_word(train: &Train) -> &'static str {
    train.outcome().map_or("running", |o| o.word())
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn from_be(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(e.into()))?;
        // Private even when created before the umask was tightened (SPEC §13).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::Sled(e.into()))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(16 << 20)
            .open()
            .map_err(|e| match e {
                // sled reports its file lock as an io error with this text.
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked(dir.display().to_string())
                }
                other => StoreError::Sled(other),
            })?;
        let store = Store::with_namespace(db, "")?;
        store.upgrade_once()?;
        Ok(store)
    }

    /// The trees of one namespace of the same database.
    fn with_namespace(db: Db, ns: &str) -> Result<Store> {
        let tree = |name: &str| db.open_tree(format!("{ns}{name}"));
        Ok(Store {
            meta: tree("meta")?,
            trains: tree("trains")?,
            allocations: tree("allocations")?,
            alloc_by_sha: tree("alloc_by_sha")?,
            train_by_sha: tree("train_by_sha")?,
            deploys: tree("deploys")?,
            audit: tree("audit")?,
            procs: tree("procs")?,
            claims: tree("claims")?,
            builds: tree("builds")?,
            nodes: tree("nodes")?,
            branch_builds: tree("branch_builds")?,
            train_outcomes: tree("train_outcomes")?,
            outcome_counts: tree("outcome_counts")?,
            tags: tree(tags::TREE)?,
            carried: tree(carried::TREE)?,
            faults: Arc::default(),
            defer: Arc::default(),
            flushes: Arc::default(),
            set_aside: Default::default(),
            ns: Arc::from(ns),
            db,
        })
    }

    /// A tree of this store's namespace that is not kept open in the struct.
    fn tree(&self, name: &str) -> Result<Tree> {
        Ok(self.db.open_tree(format!("{}{name}", self.ns))?)
    }

    /// What a store written by an older version lacks, made once: the
    /// counts of outcomes and the index of carried commits.
    fn upgrade_once(&self) -> Result<()> {
        self.count_outcomes_once()?;
        self.index_commits_once()
    }

    /// A store written before outcomes were counted gets its counts once.
    fn count_outcomes_once(&self) -> Result<()> {
        if !self.train_outcomes.is_empty() || self.trains.is_empty() {
            return Ok(());
        }
        let mut words = Vec::new();
        let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
        for entry in self.decoded_entries(&self.trains, self.trains.iter()) {
            let (key, train): (_, Train) = entry?;
            let word = outcome_word(&train);
            words.push((key, word));
            *counts.entry(word).or_default() += 1;
        }
        // One transaction: a crash half-way must not leave counts that are
        // never redone (the check above looks at train_outcomes).
        let res: std::result::Result<(), TransactionError<()>> =
            (&self.train_outcomes, &self.outcome_counts).transaction(|(outcomes, totals)| {
                for (key, word) in &words {
                    outcomes.insert(key, word.as_bytes())?;
                }
                for (word, n) in &counts {
                    totals.insert(*word, &be(*n))?;
                }
                Ok(())
            });
        res.map_err(tx_err)?;
        self.flush()
    }

    /// How many trains have each outcome ("running" for unfinished ones),
    /// read from counters: no scan, however long the history.
    pub fn trains_by_outcome(&self) -> Result<Vec<(String, u64)>> {
        self.outcome_counts
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((String::from_utf8_lossy(&k).into_owned(), from_be(&v)))
            })
            .collect()
    }

    /// Opens a store this process had open a moment ago. sled's flusher
    /// thread lets go of the file lock shortly after the last handle drops,
    /// so tests that reopen wait for the lock (bounded).
    #[cfg(test)]
    pub(crate) fn reopen(dir: &Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(dir) {
                Ok(store) => return store,
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("cannot reopen the store: {e}"),
            }
        }
    }

    pub fn flush(&self) -> Result<()> {
        self.writable()?;
        if self.defer.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.flush_now()
    }

    /// How many flushes reached the disk since the store was opened.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// A handle of its own whose flushes can be deferred (`defer_flushes`)
    /// without deferring anyone else's: the engine's.
    pub fn group_committing(&self) -> Store {
        Store {
            defer: Arc::default(),
            ..self.clone()
        }
    }

    /// From now on this handle's flushes wait for `commit`.
    pub fn defer_flushes(&self) {
        self.defer.store(true, Ordering::Relaxed);
    }

    /// Flushes once for everything written since `defer_flushes`, and
    /// flushes at once again from then on.
    pub fn commit(&self) -> Result<()> {
        self.defer.store(false, Ordering::Relaxed);
        self.flush()
    }

    /// A flush that is never deferred: a once-only claim is durable before
    /// its step may start.
    fn flush_now(&self) -> Result<()> {
        self.writable()?;
        self.db.flush()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Fails while `inject_write_failures` is on, before anything is
    /// written: a refused write changes nothing.
    fn writable(&self) -> Result<()> {
        if self.faults.load(Ordering::Relaxed) {
            return Err(StoreError::Sled(sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ))));
        }
        Ok(())
    }

    /// Makes every flush fail (on) or work again (off), for every clone of
    /// this store: how tests make the disk fill up.
    pub fn inject_write_failures(&self, on: bool) {
        self.faults.store(on, Ordering::Relaxed);
    }

    /// A tiny write, flushed: whether storage works again.
    pub fn probe(&self) -> Result<()> {
        self.writable()?;
        self.meta.insert("probe", &b"1"[..])?;
        self.flush()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.meta.get(key)? {
            Some(v) => self.read(&self.meta, key.as_bytes(), &v),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, value: Option<&T>) -> Result<()> {
        match value {
            Some(v) => self.meta.insert(key, codec::encode(v))?,
            None => self.meta.remove(key)?,
        };
        self.flush()
    }

    // --- allocation ---

    /// Allocates a SHA once; returns its sequence number, or None if it was
    /// allocated before. The first allocation also stores the train base.
    pub fn allocate(
        &self,
        sha: &Sha,
        parent: Option<&Sha>,
        at: crate::domain::clock::Ts,
    ) -> Result<Option<u64>> {
        if self.alloc_by_sha.contains_key(sha.as_str())? {
            return Ok(None);
        }
        let seq = self.db.generate_id()? + 1;
        let record = Allocation {
            seq,
            sha: sha.clone(),
            at,
        };
        let res: std::result::Result<(), TransactionError<()>> =
            (&self.allocations, &self.alloc_by_sha, &self.meta).transaction(
                |(alloc, by_sha, meta)| {
                    alloc.insert(&be(seq), codec::encode(&record))?;
                    by_sha.insert(sha.as_str(), &be(seq))?;
                    if meta.get(FIRST_BASE)?.is_none() {
                        meta.insert(FIRST_BASE, codec::encode(&parent))?;
                    }
                    Ok(())
                },
            );
        res.map_err(tx_err)?;
        self.flush()?;
        Ok(Some(seq))
    }

    pub fn allocation_seq(&self, sha: &Sha) -> Result<Option<u64>> {
        Ok(self.alloc_by_sha.get(sha.as_str())?.map(|v| from_be(&v)))
    }

    /// The newest allocated SHA.
    pub fn head(&self) -> Result<Option<Allocation>> {
        self.decoded(&self.allocations, self.allocations.iter().rev())
            .next()
            .transpose()
    }

    /// Allocated SHAs after sequence `after`, oldest first (at most `limit`).
    pub fn allocations_after(&self, after: u64, limit: usize) -> Result<Vec<Allocation>> {
        self.decoded(&self.allocations, self.allocations.range(be(after + 1)..))
            .take(limit)
            .collect()
    }

    /// The parent of the first SHA ever allocated: the base of the first train.
    pub fn first_base(&self) -> Result<Option<Sha>> {
        Ok(self.get_meta::<Option<Sha>>(FIRST_BASE)?.flatten())
    }

    // --- trains ---

    pub fn next_train_id(&self) -> Result<TrainId> {
        let last = self.trains.last()?.map(|(k, _)| from_be(&k)).unwrap_or(0);
        Ok(TrainId(last.max(self.last_id_set_aside(&self.trains)?) + 1))
    }

    /// Writes the train and flushes; also indexes it by head SHA and by
    /// every SHA it carried, and keeps the count of trains by outcome.
    pub fn save_train(&self, train: &Train) -> Result<()> {
        self.save_train_dequeuing(train, None)
    }

    /// Writes a tag deploy's new train and takes its tag (queued at
    /// `seq`) off the queue in one transaction: a crash leaves the tag
    /// queued or the train stored, never both (twice) nor neither (lost).
    pub fn save_tag_train(&self, train: &Train, seq: u64) -> Result<()> {
        self.save_train_dequeuing(train, Some(seq))
    }

    fn save_train_dequeuing(&self, train: &Train, tag: Option<u64>) -> Result<()> {
        self.writable()?;
        let bytes = codec::encode(train);
        let key = be(train.id.0);
        let word = outcome_word(train);
        let trees = (
            &self.trains,
            &self.train_by_sha,
            &self.train_outcomes,
            &self.outcome_counts,
            &self.tags,
            &self.carried,
        );
        let res: std::result::Result<(), TransactionError<()>> =
            trees.transaction(|(trains, by_sha, outcomes, counts, tags, by_commit)| {
                if let Some(seq) = tag {
                    tags.remove(tags::queue_key(seq))?;
                }
                trains.insert(&key, bytes.as_slice())?;
                by_sha.insert(train.sha.as_str(), &key)?;
                carried::index_train(by_commit, train)?;
                let old = outcomes.insert(&key, word.as_bytes())?;
                if old.as_deref() != Some(word.as_bytes()) {
                    if let Some(old) = old {
                        let n = counts.get(&old)?.map_or(0, |v| from_be(&v));
                        counts.insert(old, &be(n.saturating_sub(1)))?;
                    }
                    let n = counts.get(word)?.map_or(0, |v| from_be(&v));
                    counts.insert(word, &be(n + 1))?;
                }
                Ok(())
            });
        res.map_err(tx_err)?;
        self.flush()
    }

    pub fn train(&self, id: TrainId) -> Result<Option<Train>> {
        let key = be(id.0);
        match self.trains.get(key)? {
            Some(v) => self.read(&self.trains, &key, &v),
            None => Ok(None),
        }
    }

    pub fn last_train(&self) -> Result<Option<Train>> {
        self.decoded(&self.trains, self.trains.iter().rev())
            .next()
            .transpose()
    }

    /// The newest trains, newest first.
    pub fn recent_trains(&self, n: usize) -> Result<Vec<Train>> {
        self.decoded(&self.trains, self.trains.iter().rev())
            .take(n)
            .collect()
    }

    /// The last train that carried this SHA as its head.
    pub fn last_train_for(&self, sha: &Sha) -> Result<Option<Train>> {
        match self.train_by_sha.get(sha.as_str())? {
            Some(id) => self.train(TrainId(from_be(&id))),
            None => Ok(None),
        }
    }

    // --- production ---

    pub fn production(&self) -> Result<Option<Production>> {
        self.get_meta(PRODUCTION)
    }

    /// Records that `train` put its SHA live, in the deploy history.
    pub fn set_production(&self, prod: &Production) -> Result<()> {
        self.writable()?;
        let seq = self.deploys.last()?.map(|(k, _)| from_be(&k)).unwrap_or(0) + 1;
        let res: std::result::Result<(), TransactionError<()>> = (&self.meta, &self.deploys)
            .transaction(|(meta, deploys)| {
                meta.insert(PRODUCTION, codec::encode(prod))?;
                deploys.insert(&be(seq), &be(prod.train.0))?;
                Ok(())
            });
        res.map_err(tx_err)?;
        self.flush()
    }

    /// Trains that deployed to production, newest first.
    /// The key of the newest production deploy: changes whenever the
    /// history gains a deploy, for caches of what is derived from it.
    pub fn newest_deploy(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.deploys.last()?.map(|(k, _)| k.to_vec()))
    }

    pub fn deploy_history(&self, n: usize) -> Result<Vec<Train>> {
        let mut out = Vec::new();
        for r in self.deploys.iter().rev().take(n) {
            let (_, id) = r?;
            if let Some(t) = self.train(TrainId(from_be(&id)))? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Once-only proof for a production run: a compare-and-swap, flushed
    /// before it returns. A second claim of the same attempt fails.
    pub fn claim_production(&self, train: TrainId, attempt: u32) -> Result<ProductionClaim> {
        self.writable()?;
        let key = format!("{}/{}", train.0, attempt);
        match self.claims.compare_and_swap(
            key.as_bytes(),
            None as Option<&[u8]>,
            Some(&b"claimed"[..]),
        )? {
            Ok(()) => {
                self.flush_now()?;
                Ok(ProductionClaim { train, attempt })
            }
            Err(_) => Err(StoreError::AlreadyClaimed { train, attempt }),
        }
    }

    // --- freeze, notices ---

    pub fn freeze(&self) -> Result<Option<Freeze>> {
        self.get_meta(FREEZE)
    }

    pub fn set_freeze(&self, freeze: Option<&Freeze>) -> Result<()> {
        self.writable()?;
        self.put_meta(FREEZE, freeze)
    }

    /// A one-time notice key (e.g. "skip:rejected:<sha>"): true the first time.
    pub fn first_notice(&self, key: &str) -> Result<bool> {
        self.writable()?;
        let k = format!("notice:{key}");
        let fresh = self.meta.insert(k.as_bytes(), &b"1"[..])?.is_none();
        if fresh {
            self.flush()?;
        }
        Ok(fresh)
    }

    /// Forgets the one-time notices whose key starts with `prefix` and
    /// that `which` picks: what they said no longer holds, so saying it
    /// again later is news.
    pub fn forget_notices(&self, prefix: &str, which: impl Fn(&str) -> bool) -> Result<()> {
        self.writable()?;
        let start = format!("notice:{prefix}");
        let mut batch = sled::Batch::default();
        for key in self.meta.scan_prefix(start.as_bytes()).keys() {
            let key = key?;
            if which(&String::from_utf8_lossy(&key)[start.len()..]) {
                batch.remove(key);
            }
        }
        self.meta.apply_batch(batch)?;
        self.flush()
    }

    /// The last wait or refusal of the gate, as said: `!why` repeats it,
    /// also after a restart.
    pub fn last_hold(&self) -> Result<Option<String>> {
        self.get_meta(LAST_HOLD)
    }

    pub fn set_last_hold(&self, text: &str) -> Result<()> {
        self.writable()?;
        self.put_meta(LAST_HOLD, Some(&text.to_string()))
    }

    pub fn main_seen(&self) -> Result<Option<Sha>> {
        self.get_meta(MAIN_SEEN)
    }

    pub fn set_main_seen(&self, sha: &Sha) -> Result<()> {
        self.writable()?;
        self.put_meta(MAIN_SEEN, Some(sha))
    }

    // --- audit ---

    pub fn audit(&self, entry: &AuditEntry) -> Result<()> {
        self.writable()?;
        let seq = self.db.generate_id()?;
        self.audit.insert(be(seq), codec::encode(entry))?;
        self.flush()
    }

    // --- step process groups ---

    pub fn record_process(&self, key: &str, proc: &RunningProcess) -> Result<()> {
        self.writable()?;
        self.procs.insert(key, codec::encode(proc))?;
        self.flush()
    }

    pub fn forget_process(&self, key: &str) -> Result<()> {
        self.writable()?;
        self.procs.remove(key)?;
        self.flush()
    }

    pub fn running_processes(&self) -> Result<Vec<(String, RunningProcess)>> {
        self.decoded_entries(&self.procs, self.procs.iter())
            .map(|r| r.map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v)))
            .collect()
    }
}

const FIRST_BASE: &str = "first_base";
const PRODUCTION: &str = "production";
const FREEZE: &str = "freeze";
const MAIN_SEEN: &str = "main_seen";
const LAST_HOLD: &str = "last_hold";

fn tx_err(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(s) => StoreError::Sled(s),
        TransactionError::Abort(()) => StoreError::Codec("transaction aborted".into()),
    }
}

#[cfg(test)]
mod tests;
