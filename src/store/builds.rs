//! Branch builds and node leases.

use sled::Transactional;
use sled::transaction::TransactionError;

use super::{Result, Store, be, codec, from_be, tx_err};
use crate::domain::build::Build;
use crate::domain::ids::BranchName;
use crate::domain::nodes::Node;

impl Store {
    pub fn next_build_id(&self) -> Result<u64> {
        let last = self.builds.last()?.map(|(k, _)| from_be(&k)).unwrap_or(0);
        Ok(last.max(self.last_id_set_aside(&self.builds)?) + 1)
    }

    /// Writes the build and indexes it as its branch's last build.
    pub fn save_build(&self, build: &Build) -> Result<()> {
        self.writable()?;
        let bytes = codec::encode(build);
        let res: std::result::Result<(), TransactionError<()>> =
            (&self.builds, &self.branch_builds).transaction(|(builds, by_branch)| {
                builds.insert(&be(build.id), bytes.as_slice())?;
                by_branch.insert(build.branch.as_str(), &be(build.id))?;
                Ok(())
            });
        res.map_err(tx_err)?;
        self.flush()
    }

    pub fn build(&self, id: u64) -> Result<Option<Build>> {
        match self.builds.get(be(id))? {
            Some(v) => self.read(&self.builds, &be(id), &v),
            None => Ok(None),
        }
    }

    pub fn last_build_for(&self, branch: &BranchName) -> Result<Option<Build>> {
        match self.branch_builds.get(branch.as_str())? {
            Some(id) => self.build(from_be(&id)),
            None => Ok(None),
        }
    }

    /// Builds that had not finished when the bot last stopped, oldest first.
    pub fn unfinished_builds(&self, scan_back: usize) -> Result<Vec<Build>> {
        let mut out: Vec<Build> = Vec::new();
        let scan = self.builds.iter().rev().take(scan_back);
        for r in self.decoded(&self.builds, scan) {
            let b: Build = r?;
            if !b.is_done() {
                out.push(b);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The configured nodes with what the store knows of them, in config order.
    pub fn nodes(&self, names: &[String]) -> Result<Vec<Node>> {
        names
            .iter()
            .map(|name| {
                let stored = match self.nodes.get(name.as_bytes())? {
                    Some(v) => self.read(&self.nodes, name.as_bytes(), &v)?,
                    None => None,
                };
                Ok(stored.unwrap_or_else(|| Node::new(name)))
            })
            .collect()
    }

    pub fn save_node(&self, node: &Node) -> Result<()> {
        self.writable()?;
        self.nodes
            .insert(node.name.as_bytes(), codec::encode(node))?;
        self.flush()
    }

    /// Writes `after` only if the node's record is still `before` (as
    /// `nodes` read it): a compare-and-swap, so of the engines sharing a
    /// pool only one takes a node. False: it changed; read it again.
    pub fn swap_node(&self, before: &Node, after: &Node) -> Result<bool> {
        self.writable()?;
        let key = after.name.as_bytes();
        let current = self.nodes.get(key)?;
        let now: Node = match &current {
            Some(v) => match self.read(&self.nodes, key, v)? {
                Some(node) => node,
                // Unreadable: set aside just now; the record is gone.
                None => return Ok(false),
            },
            None => Node::new(&after.name),
        };
        if now != *before {
            return Ok(false);
        }
        let swapped = self
            .nodes
            .compare_and_swap(key, current, Some(codec::encode(after)))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// This store with the node records of a shared pool (SPEC §16): the
    /// pipelines naming the same `branch_builds.pool` lease the same nodes.
    pub fn with_pool(&self, pool: &str) -> Result<Store> {
        Ok(Store {
            nodes: self.db.open_tree(format!("pool/{pool}/nodes"))?,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn leased(node: &Node, pipeline: &str, build: u64) -> Node {
        Node {
            busy_with: Some(build),
            used: true,
            pipeline: Some(pipeline.into()),
            ..node.clone()
        }
    }

    #[test]
    fn of_two_pipelines_racing_for_a_pool_node_one_leases_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = Store::open(dir.path()).unwrap();
        let stores = root
            .pipelines(
                &[
                    super::super::Wanted {
                        name: "api",
                        heir: false,
                    },
                    super::super::Wanted {
                        name: "web",
                        heir: false,
                    },
                ],
                true,
            )
            .unwrap();
        let api = stores[0].store.with_pool("shared").unwrap();
        let web = stores[1].store.with_pool("shared").unwrap();
        let alone = stores[1].store.clone();
        let names = ["n1".to_string()];
        for _ in 0..20 {
            // Both read the node free, then both try to lease it at once.
            let gate = Arc::new(Barrier::new(2));
            let race = |store: Store, pipeline: &'static str, build: u64| {
                let (gate, names) = (gate.clone(), names.clone());
                std::thread::spawn(move || {
                    let read = store.nodes(&names).unwrap().remove(0);
                    gate.wait();
                    store
                        .swap_node(&read, &leased(&read, pipeline, build))
                        .unwrap()
                })
            };
            let a = race(api.clone(), "api", 1);
            let w = race(web.clone(), "web", 1);
            let (a, w) = (a.join().unwrap(), w.join().unwrap());
            assert!(a != w, "exactly one lease: api {a}, web {w}");
            let node = web.nodes(&names).unwrap().remove(0);
            let winner = if a { "api" } else { "web" };
            assert_eq!(node.pipeline.as_deref(), Some(winner));
            assert_eq!(api.nodes(&names).unwrap(), vec![node.clone()]);
            // The loser reads again and sees it busy; the winner frees it.
            assert!(node.is_busy());
            let freed = Node {
                busy_with: None,
                ..node.clone()
            };
            assert!(web.swap_node(&node, &freed).unwrap());
            assert!(!api.swap_node(&node, &freed).unwrap(), "stale read");
            api.save_node(&Node::new("n1")).unwrap();
        }
        // A pipeline's own nodes are not the pool's.
        assert_eq!(alone.nodes(&names).unwrap(), vec![Node::new("n1")]);
    }
}
