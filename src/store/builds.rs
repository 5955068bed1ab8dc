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
}
