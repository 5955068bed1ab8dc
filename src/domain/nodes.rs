//! Branch node choice: sticky, then never used, then least recently
//! deployed idle node; all busy means the build queues.

use serde::{Deserialize, Serialize};

use super::clock::Ts;
use super::ids::{BranchName, ChatUser, Sha};

/// What a branch node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// The branch it is leased to (kept while idle, until released or taken).
    pub branch: Option<BranchName>,
    pub sha: Option<Sha>,
    pub requester: Option<ChatUser>,
    pub deployed_at: Option<Ts>,
    /// The build running on it now.
    pub busy_with: Option<u64>,
    /// Ever deployed to or leased.
    pub used: bool,
    /// The pipeline whose lease it is (a shared pool's nodes serve several;
    /// their build ids collide). None in records written before pools.
    #[serde(default)]
    pub pipeline: Option<String>,
}

impl Node {
    pub fn new(name: &str) -> Node {
        Node {
            name: name.into(),
            branch: None,
            sha: None,
            requester: None,
            deployed_at: None,
            busy_with: None,
            used: false,
            pipeline: None,
        }
    }
    pub fn is_busy(&self) -> bool {
        self.busy_with.is_some()
    }
    /// The other pipeline holding its lease, if another one does (a record
    /// without a pipeline is nobody else's).
    pub fn held_by_other<'a>(&'a self, pipeline: &str) -> Option<&'a str> {
        self.pipeline.as_deref().filter(|p| *p != pipeline)
    }
}

/// The node a build of `branch` of `pipeline` should run on, or `None` to
/// queue. A node another pipeline leases to a branch of the same name is
/// not this branch's (a shared pool).
pub fn choose(nodes: &[Node], pipeline: &str, branch: &BranchName) -> Option<usize> {
    if let Some(i) = nodes
        .iter()
        .position(|n| n.branch.as_ref() == Some(branch) && n.held_by_other(pipeline).is_none())
    {
        // Sticky: the branch keeps its node, and waits for it when busy.
        return (!nodes[i].is_busy()).then_some(i);
    }
    if let Some(i) = nodes.iter().position(|n| !n.used && !n.is_busy()) {
        return Some(i);
    }
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.is_busy())
        .min_by_key(|(_, n)| (n.deployed_at, n.name.clone()))
        .map(|(i, _)| i)
}

/// Position (1-based) a new queued build takes behind `queued` others.
pub fn queue_position(queued: usize) -> usize {
    queued + 1
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;

    fn t(min: i64) -> Ts {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(min)
    }

    fn b(s: &str) -> BranchName {
        s.parse().unwrap()
    }

    fn leased(name: &str, branch: &str, at: i64) -> Node {
        Node {
            branch: Some(b(branch)),
            deployed_at: Some(t(at)),
            used: true,
            ..Node::new(name)
        }
    }

    #[test]
    fn a_branch_keeps_its_node() {
        let nodes = vec![Node::new("n1"), leased("n2", "a", 5)];
        assert_eq!(choose(&nodes, "p", &b("a")), Some(1));
    }

    #[test]
    fn a_sticky_branch_waits_for_its_busy_node() {
        let mut nodes = vec![Node::new("n1"), leased("n2", "a", 5)];
        nodes[1].busy_with = Some(7);
        assert_eq!(choose(&nodes, "p", &b("a")), None);
    }

    #[test]
    fn a_branch_of_the_same_name_in_another_pipeline_is_not_sticky() {
        let mut theirs = leased("n2", "a", 5);
        theirs.pipeline = Some("other".into());
        let nodes = vec![leased("n1", "x", 9), theirs];
        assert_eq!(choose(&nodes, "p", &b("a")), Some(1), "LRU, not sticky");
        let mut nodes = nodes;
        nodes[1].deployed_at = Some(t(10));
        assert_eq!(choose(&nodes, "p", &b("a")), Some(0));
        nodes[1].pipeline = Some("p".into());
        assert_eq!(choose(&nodes, "p", &b("a")), Some(1), "its own: sticky");
    }

    #[test]
    fn never_used_nodes_come_first() {
        let nodes = vec![leased("n1", "x", 1), Node::new("n2")];
        assert_eq!(choose(&nodes, "p", &b("a")), Some(1));
    }

    #[test]
    fn else_the_least_recently_deployed_idle_node() {
        let nodes = vec![
            leased("n1", "x", 9),
            leased("n2", "y", 3),
            leased("n3", "z", 6),
        ];
        assert_eq!(choose(&nodes, "p", &b("a")), Some(1));
    }

    #[test]
    fn busy_nodes_are_skipped_and_all_busy_queues() {
        let mut nodes = vec![leased("n1", "x", 1), leased("n2", "y", 3)];
        nodes[0].busy_with = Some(1);
        assert_eq!(choose(&nodes, "p", &b("a")), Some(1));
        nodes[1].busy_with = Some(2);
        assert_eq!(choose(&nodes, "p", &b("a")), None);
        assert_eq!(queue_position(2), 3);
    }

    #[test]
    fn a_released_node_counts_as_used_but_free() {
        let mut n1 = leased("n1", "x", 1);
        n1.branch = None;
        let nodes = vec![n1, leased("n2", "y", 0)];
        assert_eq!(
            choose(&nodes, "p", &b("a")),
            Some(1),
            "LRU among used nodes, released or not"
        );
    }
}
