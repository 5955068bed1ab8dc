//! Which train carried a commit (SPEC §11 `!why <sha>`): every SHA a train
//! carried, its commits and its head, maps to the newest train that carried
//! it and the newest that carried it on a road to production. Written in
//! the train's own transaction, so `!why` looks a SHA up instead of
//! scanning the history.

use std::collections::BTreeMap;

use sled::transaction::{TransactionError, TransactionalTree, UnabortableTransactionError};
use sled::{Transactional, Tree};

use super::{Result, Store, be, from_be, tx_err};
use crate::domain::ids::{Sha, TrainId};
use crate::domain::train::{Route, Train};

/// The index tree, namespaced per pipeline like the others.
pub(super) const TREE: &str = "train_by_commit";
/// Meta key: the trains stored before the index existed are in it.
const INDEXED: &str = "train_by_commit_indexed";

/// The trains that carried one SHA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarriedBy {
    /// The newest train that carried it, whatever its route.
    pub newest: TrainId,
    /// The newest that carried it toward production (a full train or a
    /// production-only run), when one did.
    pub production: Option<TrainId>,
}

impl CarriedBy {
    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&be(self.newest.0));
        out[8..].copy_from_slice(&be(self.production.map_or(0, |t| t.0)));
        out
    }

    fn decode(bytes: &[u8]) -> Option<CarriedBy> {
        if bytes.len() < 16 {
            return None;
        }
        let production = from_be(&bytes[8..]);
        Some(CarriedBy {
            newest: TrainId(from_be(bytes)),
            production: (production != 0).then_some(TrainId(production)),
        })
    }

    /// What the index holds once `train` is saved, given what it held: a
    /// train saved again (an older one marked rolled back) never takes the
    /// place of a newer one.
    fn with(old: Option<CarriedBy>, train: &Train) -> CarriedBy {
        let id = train.id;
        let toward_production = matches!(train.route, Route::Full | Route::ProductionOnly);
        let production = toward_production.then_some(id);
        match old {
            None => CarriedBy {
                newest: id,
                production,
            },
            Some(old) => CarriedBy {
                newest: old.newest.max(id),
                production: old.production.max(production),
            },
        }
    }
}

/// What a SHA prefix finds in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// No train carried a SHA starting with it.
    None,
    /// One SHA starts with it, and these trains carried it.
    One(Sha, CarriedBy),
    /// Several carried SHAs start with it.
    Several,
}

/// The SHAs a train carried: its commits and its head.
fn carried(train: &Train) -> impl Iterator<Item = &Sha> {
    train
        .commits
        .iter()
        .map(|c| &c.sha)
        .chain(std::iter::once(&train.sha))
}

/// Indexes `train`'s SHAs inside the transaction that saves it.
pub(super) fn index_train(
    tree: &TransactionalTree,
    train: &Train,
) -> std::result::Result<(), UnabortableTransactionError> {
    for sha in carried(train) {
        let old = tree.get(sha.as_str())?;
        let old_value = old.as_deref().and_then(CarriedBy::decode);
        let new = CarriedBy::with(old_value, train);
        if old_value != Some(new) {
            tree.insert(sha.as_str(), &new.encode())?;
        }
    }
    Ok(())
}

impl Store {
    pub(super) fn carried_tree(&self) -> Result<Tree> {
        Ok(self.carried.clone())
    }

    /// The trains that carried this SHA, if any did.
    pub fn carried_by(&self, sha: &Sha) -> Result<Option<CarriedBy>> {
        let tree = self.carried_tree()?;
        Ok(tree
            .get(sha.as_str())?
            .as_deref()
            .and_then(CarriedBy::decode))
    }

    /// The SHA starting with `prefix` that a train carried, and the trains
    /// that did: a range scan that reads at most two entries, however long
    /// the history.
    pub fn carried_by_prefix(&self, prefix: &str) -> Result<Carried> {
        let tree = self.carried_tree()?;
        let mut found = tree.scan_prefix(prefix);
        let Some(first) = found.next() else {
            return Ok(Carried::None);
        };
        if found.next().is_some() {
            return Ok(Carried::Several);
        }
        let (key, value) = first?;
        let sha = Sha::new(&String::from_utf8_lossy(&key)).ok();
        Ok(match (sha, CarriedBy::decode(&value)) {
            (Some(sha), Some(by)) => Carried::One(sha, by),
            _ => Carried::None,
        })
    }

    /// A store written before the index existed gets it once, in one
    /// transaction with the flag that says so: a crash half-way redoes it
    /// all at the next start.
    pub(super) fn index_commits_once(&self) -> Result<()> {
        if self.meta.contains_key(INDEXED)? {
            return Ok(());
        }
        self.writable()?;
        let tree = self.carried_tree()?;
        let mut index: BTreeMap<String, CarriedBy> = BTreeMap::new();
        for train in self.decoded::<Train>(&self.trains, self.trains.iter()) {
            let train = train?;
            for sha in carried(&train) {
                let old = index.get(sha.as_str()).copied();
                index.insert(sha.to_string(), CarriedBy::with(old, &train));
            }
        }
        let res: std::result::Result<(), TransactionError<()>> =
            (&tree, &self.meta).transaction(|(tree, meta)| {
                for (sha, by) in &index {
                    let old = tree.get(sha.as_bytes())?;
                    let merged = match old.as_deref().and_then(CarriedBy::decode) {
                        Some(old) => CarriedBy {
                            newest: old.newest.max(by.newest),
                            production: old.production.max(by.production),
                        },
                        None => *by,
                    };
                    tree.insert(sha.as_bytes(), &merged.encode())?;
                }
                meta.insert(INDEXED, &b"1"[..])?;
                Ok(())
            });
        res.map_err(tx_err)?;
        self.flush()
    }

    /// Forgets that the index was built, and the index: a store as the
    /// version before it left it, for the backfill's tests.
    #[cfg(test)]
    pub(super) fn unindex_commits(&self) -> Result<()> {
        self.carried_tree()?.clear()?;
        self.meta.remove(INDEXED)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_trains::{commit, sha, train};

    /// Train `id` with head `sha(head)` carrying `sha(c)` for each `c`.
    fn carrying(id: u64, head: u64, commits: &[u64], route: Route) -> Train {
        let mut t = train(id, id as i64);
        t.sha = sha(head);
        t.commits = commits
            .iter()
            .map(|&c| commit(c, "Alice", "a change"))
            .collect();
        t.route = route;
        t
    }

    fn by(newest: u64, production: Option<u64>) -> Option<CarriedBy> {
        Some(CarriedBy {
            newest: TrainId(newest),
            production: production.map(TrainId),
        })
    }

    #[test]
    fn a_train_indexes_its_commits_and_head_and_the_newest_train_wins() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.save_train(&carrying(1, 2, &[1, 2], Route::Full)).unwrap();
        s.save_train(&carrying(2, 4, &[2, 3, 4], Route::Full))
            .unwrap();
        // A staging run is newest but did not carry it toward production.
        s.save_train(&carrying(3, 4, &[], Route::LowerOnly))
            .unwrap();
        // Saving an older train again (rolled back) changes nothing.
        let mut old = carrying(1, 2, &[1, 2], Route::Full);
        old.rolled_back = true;
        s.save_train(&old).unwrap();
        assert_eq!(s.carried_by(&sha(1)).unwrap(), by(1, Some(1)));
        assert_eq!(s.carried_by(&sha(2)).unwrap(), by(2, Some(2)));
        assert_eq!(s.carried_by(&sha(4)).unwrap(), by(3, Some(2)));
        assert_eq!(s.carried_by(&sha(9)).unwrap(), None);
    }

    #[test]
    fn a_prefix_finds_one_carried_sha_or_says_several_match() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.save_train(&carrying(1, 0x12, &[0x11, 0x12], Route::Full))
            .unwrap();
        let full = sha(0x11);
        assert_eq!(
            s.carried_by_prefix(full.as_str()).unwrap(),
            Carried::One(full.clone(), by(1, Some(1)).unwrap())
        );
        // Both SHAs start alike up to their last digit.
        let common = common_prefix(full.as_str(), sha(0x12).as_str());
        assert_eq!(s.carried_by_prefix(common).unwrap(), Carried::Several);
        assert_eq!(s.carried_by_prefix("ffffff").unwrap(), Carried::None);
    }

    fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
        let n = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        &a[..n]
    }

    #[test]
    fn a_store_from_before_the_index_is_indexed_once_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.save_train(&carrying(1, 2, &[1, 2], Route::Full)).unwrap();
            s.save_train(&carrying(2, 3, &[3], Route::Full)).unwrap();
            s.unindex_commits().unwrap();
            assert_eq!(s.carried_by(&sha(1)).unwrap(), None);
        }
        let s = Store::reopen(dir.path());
        assert_eq!(s.carried_by(&sha(1)).unwrap(), by(1, Some(1)));
        assert_eq!(s.carried_by(&sha(3)).unwrap(), by(2, Some(2)));
        // Once: an entry removed after it is not built again at the next open.
        s.carried_tree().unwrap().remove(sha(3).as_str()).unwrap();
        drop(s);
        let s = Store::reopen(dir.path());
        assert_eq!(s.carried_by(&sha(3)).unwrap(), None);
        assert_eq!(s.carried_by(&sha(1)).unwrap(), by(1, Some(1)));
    }
}
