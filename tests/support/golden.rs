//! The golden store (tests/fixtures/golden-v1) and the repository it names,
//! shared by the tests that open it (restarts, pipelines).

use std::path::{Path, PathBuf};

/// The golden store: `db/` is the sled directory a trainbot built at commit
/// 2aeffe4 wrote while it ran `regenerate_golden_store` below. It is never
/// rewritten: a later version that cannot open it without loss is a bug in
/// that version, not in the fixture. A new format gets a new fixture
/// (golden-v2) next to this one. It is a single-pipeline store: with
/// several pipelines (SPEC §16) it must open as that one pipeline.
pub const GOLDEN: &str = "tests/fixtures/golden-v1";

/// The commits of the golden repository, made with fixed dates so that the
/// SHAs are the same every time it is made again: the golden store names
/// them, and the bot's forge (a git repo) must know them.
pub struct GoldenRepo {
    path: PathBuf,
    commits: u32,
}

impl GoldenRepo {
    pub fn init(path: &Path) -> GoldenRepo {
        std::fs::create_dir_all(path).expect("repo dir");
        let mut repo = GoldenRepo {
            path: path.to_path_buf(),
            commits: 0,
        };
        repo.git("alice", &["init", "-q", "-b", "main"]);
        repo.commit("alice", "initial commit");
        repo
    }

    pub fn commit(&mut self, author: &str, subject: &str) -> String {
        self.commits += 1;
        self.git(author, &["commit", "-q", "--allow-empty", "-m", subject]);
        self.git(author, &["rev-parse", "HEAD"])
    }

    /// A commit on a new branch `name`; main stays checked out.
    pub fn commit_on_branch(&mut self, name: &str, author: &str, subject: &str) -> String {
        self.git(author, &["checkout", "-q", "-b", name]);
        let sha = self.commit(author, subject);
        self.git(author, &["checkout", "-q", "main"]);
        sha
    }

    /// Commits at fixed dates, so the same scenario gives the same SHAs.
    pub fn git(&self, author: &str, args: &[&str]) -> String {
        let date = format!("2026-11-30T12:{:02}:00Z", self.commits);
        super::git_as(&self.path, author, Some(&date), args)
    }
}

/// What the golden scenario made, by SHA.
pub struct Golden {
    /// Deployed by train #1 (approved by alice and bob).
    pub deployed: String,
    /// Vetoed in train #2 by alice.
    pub vetoed: String,
    /// Allocated, waiting for a train.
    pub waiting: String,
    /// Built on branch `feature`.
    pub feature: String,
}

/// Makes the golden repository in `repo`, commit by commit; `seen` is
/// called after each commit on main, so a bot can see it arrive.
pub fn golden_repo(repo: &Path, mut seen: impl FnMut(&str, u32)) -> Golden {
    let mut git = GoldenRepo::init(repo);
    seen(&git.git("alice", &["rev-parse", "HEAD"]), 0);
    let deployed = git.commit("bob", "Make the widget blue");
    seen(&deployed, 1);
    let vetoed = git.commit("alice", "Make the widget wobble");
    seen(&vetoed, 2);
    let waiting = git.commit("bob", "Paint the widget green");
    seen(&waiting, 3);
    let feature = git.commit_on_branch("feature", "alice", "Try a round widget");
    Golden {
        deployed,
        vetoed,
        waiting,
        feature,
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Copies the golden store to `data/db` under `dir` (the bot's data_dir is
/// `dir/data`).
pub fn copy_store(dir: &Path) {
    let db = dir.join("data").join("db");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(GOLDEN)
            .join("db"),
        &db,
    );
    std::fs::create_dir_all(db.join("blobs")).expect("blobs dir");
}
