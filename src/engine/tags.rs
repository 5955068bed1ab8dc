//! Tag deploys (SPEC §6): a pushed tag matching `[tags]` becomes a train.

use super::Engine;
use crate::forge::TagRef;

impl Engine {
    pub(super) async fn handle_tag(&mut self, tag: TagRef) -> anyhow::Result<()> {
        tracing::info!(tag = %tag.name, sha = %tag.sha, "Tag seen.");
        Ok(())
    }
}
