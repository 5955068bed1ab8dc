//! Each run's own working directory, `data_dir/work/<run>` (SPEC §13): a
//! train is `train-N`, a branch build `build-N`, a main check `main-<sha>`.
//! All steps of a run share it; two runs never do. It is created `0700`
//! before the run's first step, removed when the run passes, and kept for
//! `bot.keep_failed_workdirs` when it does not. Leftovers (a crash, a run
//! that failed long ago) are swept by age at start and when a run ends.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Engine;

/// `data_dir/work`
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("work")
}

/// Creates `dir` (and `work/` above it) `0700` if it is not there, and
/// marks it as in use now (a sweep goes by age).
pub fn prepare(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::File::open(dir)?.set_modified(SystemTime::now())
}

/// A run ended: a passed run's directory goes; a failed one's stays for
/// `keep` (its age counts from now), or goes at once when `keep` is zero.
pub fn finish(dir: &Path, passed: bool, keep: Duration) {
    if !dir.exists() {
        return;
    }
    let result = if passed || keep.is_zero() {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::File::open(dir).and_then(|f| f.set_modified(SystemTime::now()))
    };
    if let Err(error) = result {
        tracing::warn!(dir = %dir.display(), %error, "Cannot tidy a run's workdir.");
    }
}

/// Removes every run directory under `root` last touched `keep` ago or
/// earlier, except those of `active` runs.
pub fn sweep(root: &Path, keep: Duration, active: &BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if active.contains(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age < keep {
            continue;
        }
        let path = entry.path();
        let result = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => tracing::info!(dir = %path.display(), "Removed an old workdir."),
            Err(error) => {
                tracing::warn!(dir = %path.display(), %error, "Cannot remove an old workdir.")
            }
        }
    }
}

impl Engine {
    /// The directory of run `run` (`train-3`, `build-7`, `main-abc1234`).
    pub(super) fn workdir(&self, run: &str) -> PathBuf {
        root(&self.cfg.bot.data_dir).join(run)
    }

    /// The runs going on now, whose directories a sweep leaves alone.
    fn active_runs(&self) -> BTreeSet<String> {
        let mut active = BTreeSet::new();
        if let Some(train) = &self.train {
            active.insert(format!("train-{}", train.id.0));
        }
        for id in self.builds.keys() {
            active.insert(format!("build-{id}"));
        }
        if let Some((sha, _)) = &self.checking {
            active.insert(main_run(sha));
        }
        active
    }

    /// At start, once the runs that go on are known: leftovers older than
    /// `keep_failed_workdirs` go (a crash left them, or they failed long ago).
    pub(super) fn sweep_workdirs_at_start(&self) {
        let root = root(&self.cfg.bot.data_dir);
        sweep(
            &root,
            self.cfg.bot.keep_failed_workdirs,
            &self.active_runs(),
        );
    }

    /// Run `run` ended: its directory goes (passed) or stays a while, and
    /// old ones go. Beside the engine: a checkout may take a while to delete.
    /// A superseded main check counts as passed: its steps have ended.
    pub(super) fn run_ended(&self, run: &str, passed: bool) {
        let dir = self.workdir(run);
        let root = root(&self.cfg.bot.data_dir);
        let keep = self.cfg.bot.keep_failed_workdirs;
        let mut active = self.active_runs();
        active.insert(run.to_string());
        tokio::task::spawn_blocking(move || {
            finish(&dir, passed, keep);
            // With `keep` zero, failed runs go at once and the start sweeps
            // the rest: a sweep now could meet a run starting beside it.
            if !keep.is_zero() {
                sweep(&root, keep, &active);
            }
        });
    }
}

/// The run name of the main checks of `sha`.
pub(super) fn main_run(sha: &crate::domain::ids::Sha) -> String {
    format!("main-{}", sha.short())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn prepared_private_removed_when_passed_kept_when_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = root(tmp.path());
        let dir = root.join("train-1");
        prepare(&dir).unwrap();
        prepare(&dir).unwrap(); // again: fine
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::write(dir.join("x"), "checkout").unwrap();
        finish(&dir, false, Duration::from_secs(3600));
        assert!(dir.join("x").exists());
        // Not old enough to sweep; an active run is never swept.
        sweep(&root, Duration::from_secs(3600), &BTreeSet::new());
        assert!(dir.exists());
        sweep(&root, Duration::ZERO, &BTreeSet::from(["train-1".into()]));
        assert!(dir.exists());
        sweep(&root, Duration::ZERO, &BTreeSet::new());
        assert!(!dir.exists());

        prepare(&dir).unwrap();
        finish(&dir, true, Duration::from_secs(3600));
        assert!(!dir.exists());
        prepare(&dir).unwrap();
        finish(&dir, false, Duration::ZERO);
        assert!(!dir.exists());
    }
}
