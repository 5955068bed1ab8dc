//! Picking up where the last run left off (SPEC §8).

use crate::domain::train::Input;
use crate::runner::shell::{boot_id, kill_process_group};

use super::Engine;

impl Engine {
    /// Kills step processes a previous run left, then resumes its train.
    pub(super) async fn recover(&mut self) -> anyhow::Result<()> {
        let boot = boot_id();
        for (key, proc) in self.store.running_processes()? {
            // After a reboot the pid may belong to someone else now.
            if proc.boot_id.is_some() && proc.boot_id == boot {
                tracing::warn!(
                    key,
                    pgid = proc.pgid,
                    "Killing a step process left by the previous run."
                );
                if let Err(error) = kill_process_group(proc.pgid) {
                    tracing::warn!(%error, key, "Cannot kill a leftover step process group.");
                }
            }
            self.store.forget_process(&key)?;
        }
        if let Some(last) = self.store.last_train()?
            && !last.is_done()
        {
            tracing::info!(train = last.id.0, "Resuming an unfinished train.");
            self.train = Some(last);
            self.train_input(Input::Restarted).await?;
        }
        self.recover_builds().await?;
        self.poll_main_now().await
    }
}
