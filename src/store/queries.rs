//! Read-only queries for the web pages and metrics. Nothing here writes.

use super::{Allocation, Result, Store, be, from_be};
use crate::domain::clock::Ts;
use crate::domain::ids::Sha;
use crate::domain::train::Train;

impl Store {
    /// Trains created at or after `since`, newest first. Train ids grow with
    /// time, so the scan stops at the first older train.
    pub fn trains_since(&self, since: Ts) -> Result<Vec<Train>> {
        let mut out = Vec::new();
        for r in self.decoded(&self.trains, self.trains.iter().rev()) {
            let train: Train = r?;
            if train.created < since {
                break;
            }
            out.push(train);
        }
        Ok(out)
    }

    /// The allocation record of a SHA, if it was allocated.
    pub fn allocation(&self, sha: &Sha) -> Result<Option<Allocation>> {
        let Some(seq) = self.alloc_by_sha.get(sha.as_str())? else {
            return Ok(None);
        };
        self.allocation_at(&seq)
    }

    /// The allocation whose SHA starts with `prefix` (the first, when
    /// several do), by a range scan of the SHA index.
    pub fn allocation_by_prefix(&self, prefix: &str) -> Result<Option<Allocation>> {
        let Some(entry) = self.alloc_by_sha.scan_prefix(prefix).next() else {
            return Ok(None);
        };
        let (_, seq) = entry?;
        self.allocation_at(&seq)
    }

    /// The allocation stored under `seq` (as the SHA index holds it).
    fn allocation_at(&self, seq: &[u8]) -> Result<Option<Allocation>> {
        let key = be(from_be(seq));
        match self.allocations.get(key)? {
            Some(v) => self.read(&self.allocations, &key, &v),
            None => Ok(None),
        }
    }

    /// How many production deploys the history holds. Its keys are 1, 2, 3…
    /// with none removed, so the last key is the count (sled's `len()` would
    /// walk the whole tree).
    pub fn deploys_len(&self) -> Result<u64> {
        Ok(self.deploys.last()?.map_or(0, |(k, _)| from_be(&k)))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::test_trains::{at, sha, train};

    #[test]
    fn trains_since_stops_at_the_first_older_train() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (id, min) in [(1, 0), (2, 100), (3, 200)] {
            s.save_train(&train(id, min)).unwrap();
        }
        let ids: Vec<u64> = s
            .trains_since(at(100))
            .unwrap()
            .iter()
            .map(|t| t.id.0)
            .collect();
        assert_eq!(ids, vec![3, 2]);
    }

    #[test]
    fn deploys_are_counted_without_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.deploys_len().unwrap(), 0);
        for id in [1, 2, 3] {
            s.set_production(&crate::store::Production {
                sha: sha(id),
                train: crate::domain::ids::TrainId(id),
                since: at(id as i64),
                alloc_seq: Some(id),
                previous: None,
                previous_train: None,
            })
            .unwrap();
        }
        assert_eq!(s.deploys_len().unwrap(), 3);
    }

    #[test]
    fn an_allocation_is_found_by_its_sha() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let when = at(5) + TimeDelta::seconds(1);
        s.allocate(&sha(7), None, when).unwrap();
        assert_eq!(s.allocation(&sha(7)).unwrap().unwrap().at, when);
        assert_eq!(s.allocation(&sha(8)).unwrap(), None);
        assert_eq!(s.deploys_len().unwrap(), 0);
    }
}
