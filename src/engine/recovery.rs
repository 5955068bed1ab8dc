//! Picking up where the last run left off (SPEC §8).

use crate::domain::messages;
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
        if let Some(mut last) = self.store.last_train()?
            && !last.is_done()
        {
            let id = last.id.0;
            let ended = last.fit_config(&self.plan, self.now());
            self.train = Some(last);
            if ended.is_empty() {
                tracing::info!(train = id, "Resuming an unfinished train.");
                self.train_input(Input::Restarted).await?;
            } else {
                // Its environment or step left the config: it ends as
                // failed, saved before it is said, and the bot goes on.
                tracing::warn!(
                    train = id,
                    "The config changed under an unfinished train; it failed."
                );
                if let Some(train) = &self.train {
                    self.store.save_train(train)?;
                }
                self.publish();
                self.apply(ended).await?;
            }
        }
        // A red train's automatic rollback that never left leaves now.
        if let Some(red) = self.pending_auto_rollback()? {
            tracing::warn!(train = red.id.0, "Resuming an automatic rollback.");
            self.auto_rollback(&red).await?;
        }
        self.resume_ejection().await?;
        self.recover_builds().await?;
        self.poll_main_now().await?;
        self.report_set_aside().await;
        Ok(())
    }

    /// Says once which stored records could not be read and were moved
    /// aside (the store logs each as it moves it). Called at start and
    /// after each input, since a page may meet a bad record at any time.
    pub(super) async fn report_set_aside(&mut self) {
        let names = self.store.take_set_aside();
        if !names.is_empty() {
            self.say(None, messages::set_aside(&names)).await;
        }
    }
}
