//! Environment locks, one per environment, keyed by its name.

use crate::domain::lock::Lock;

use super::{Result, Store, codec};

const LOCKS: &str = "locks";

impl Store {
    /// Every lock, expired ones included (the engine ends those).
    pub fn locks(&self) -> Result<Vec<Lock>> {
        let tree = self.tree(LOCKS)?;
        self.decoded(&tree, tree.iter()).collect()
    }

    /// Takes or replaces the lock of `lock.env`; flushed.
    pub fn set_lock(&self, lock: &Lock) -> Result<()> {
        self.writable()?;
        self.tree(LOCKS)?
            .insert(lock.env.as_bytes(), codec::encode(lock))?;
        self.flush()
    }

    /// Releases the lock of `env`; flushed.
    pub fn remove_lock(&self, env: &str) -> Result<()> {
        self.writable()?;
        self.tree(LOCKS)?.remove(env.as_bytes())?;
        self.flush()
    }
}
