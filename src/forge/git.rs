//! The git CLI forge: a local repository read with the `git` command.
//!
//! `git` is run directly, never through a shell; values that come from users
//! (SHA prefixes, branch names) are validated ids and follow
//! `--end-of-options`, so they can never be read as options.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Forge, ForgeError, TagRef};
use crate::domain::ids::{BranchName, Sha, ShaPrefix};
use crate::domain::train::Commit;

/// At most this many commits are returned by `commits` (the most recent
/// ones): a train over a base that is far behind (or a first train with no
/// base at all) must not list a repository's whole history.
pub const COMMIT_CAP: usize = 500;

/// Separates the fields of one commit in `git log` output. Commits are
/// separated by NUL (`-z`), which a commit message cannot contain.
const FIELD: char = '\x1f';

pub struct GitForge {
    repo: PathBuf,
    main_branch: String,
    commit_cap: usize,
}

impl GitForge {
    pub fn new(repo: impl Into<PathBuf>, main_branch: impl Into<String>) -> GitForge {
        GitForge {
            repo: repo.into(),
            main_branch: main_branch.into(),
            commit_cap: COMMIT_CAP,
        }
    }

    fn main_ref(&self) -> String {
        format!("refs/heads/{}", self.main_branch)
    }

    fn command(&self, args: &[&str]) -> Command {
        tracing::debug!(repo = %self.repo.display(), ?args, "Running git.");
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            // Never wait for credentials, never take optional locks in a
            // repository people may be working in, and let no inherited
            // GIT_DIR or GIT_WORK_TREE point `-C` elsewhere.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .kill_on_drop(true);
        command
    }

    async fn git(&self, args: &[&str]) -> Result<Output, ForgeError> {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| ForgeError::Other(format!("cannot run git: {e}")))
    }

    /// `git` with `input` on its stdin (written while git runs, so neither
    /// side can block on a full pipe).
    async fn git_with_input(&self, args: &[&str], input: &[u8]) -> Result<Output, ForgeError> {
        let cannot = |e: std::io::Error| ForgeError::Other(format!("cannot run git: {e}"));
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(cannot)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let write = async move {
            // A git that exits early closes the pipe; its exit status says why.
            let _ = stdin.write_all(input).await;
        };
        let ((), output) = tokio::join!(write, child.wait_with_output());
        output.map_err(cannot)
    }

    /// The patch id (`git patch-id --stable`) of `sha`'s change against its
    /// first parent, or of the inverse of that change; None when the commit
    /// changes nothing. Without context lines (`-U0`), so that a revert made
    /// after other edits near the same lines still has the same id; without
    /// path prefixes, so that `-R` does not swap `a/` and `b/` into the id.
    async fn patch_id(&self, sha: &Sha, inverse: bool) -> Result<Option<String>, ForgeError> {
        let parent = self.parent(sha).await?;
        let mut args = vec![
            "diff-tree",
            "-p",
            "-U0",
            "--no-commit-id",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--no-renames",
            "--no-prefix",
            "--full-index",
            // Binary changes with their content: without it every change to
            // a binary file reads "Binary files differ" and looks the same.
            "--binary",
        ];
        if inverse {
            args.push("-R");
        }
        match &parent {
            Some(parent) => args.extend(["--end-of-options", parent.as_str(), sha.as_str()]),
            None => args.extend(["--root", "--end-of-options", sha.as_str()]),
        }
        let diff = self.git(&args).await?;
        if !diff.status.success() {
            return Err(git_error("diff-tree", &diff));
        }
        if diff.stdout.trim_ascii().is_empty() {
            return Ok(None);
        }
        let out = self
            .git_with_input(&["patch-id", "--stable"], &diff.stdout)
            .await?;
        if !out.status.success() {
            return Err(git_error("patch-id", &out));
        }
        // "<patch id> <commit id>"; the commit id is zeros for a bare diff.
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.split_whitespace().next().map(str::to_string))
    }

    /// `git rev-parse --verify --quiet <rev>`: the commit, or None if `rev`
    /// names nothing (exit 1 with nothing on stderr).
    async fn rev_parse(&self, rev: &str) -> Result<Option<Sha>, ForgeError> {
        let out = self
            .git(&["rev-parse", "--verify", "--quiet", "--end-of-options", rev])
            .await?;
        if out.status.success() {
            return parse_sha(&out.stdout).map(Some);
        }
        if out.status.code() == Some(1) && out.stderr.trim_ascii().is_empty() {
            return Ok(None);
        }
        Err(git_error("rev-parse", &out))
    }
}

#[async_trait]
impl Forge for GitForge {
    async fn main_head(&self) -> Result<Option<Sha>, ForgeError> {
        self.rev_parse(&format!("{}^{{commit}}", self.main_ref()))
            .await
    }

    async fn parent(&self, sha: &Sha) -> Result<Option<Sha>, ForgeError> {
        if let Some(parent) = self.rev_parse(&format!("{sha}^1^{{commit}}")).await? {
            return Ok(Some(parent));
        }
        // No first parent: a root commit, or no such commit at all.
        match self.rev_parse(&format!("{sha}^{{commit}}")).await? {
            Some(_) => Ok(None),
            None => Err(ForgeError::NotFound(sha.to_string())),
        }
    }

    async fn commits(&self, base: Option<&Sha>, head: &Sha) -> Result<Vec<Commit>, ForgeError> {
        let range = match base {
            Some(base) => format!("{base}..{head}"),
            None => head.to_string(),
        };
        let max_count = format!("--max-count={}", self.commit_cap);
        let format = ["%H", "%an", "%ae", "%s", "%B"].join("%x1f");
        let format = format!("--format={format}");
        // --max-count keeps the newest commits; --reverse then puts them
        // oldest first. --topo-order keeps parents before children even when
        // commit dates are skewed.
        let args = [
            "log",
            "-z",
            "--topo-order",
            "--reverse",
            "--no-color",
            &max_count,
            &format,
            "--end-of-options",
            &range,
            "--",
        ];
        let out = self.git(&args).await?;
        if !out.status.success() {
            return Err(git_error("log", &out));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.split('\0')
            .filter(|record| !record.trim().is_empty())
            .map(parse_commit)
            .collect()
    }

    async fn resolve_on_main(&self, prefix: &ShaPrefix) -> Result<Sha, ForgeError> {
        let sha = self
            .rev_parse(&format!("{prefix}^{{commit}}"))
            .await?
            .ok_or_else(|| ForgeError::NotFound(prefix.to_string()))?;
        let main = self.main_ref();
        let out = self
            .git(&[
                "merge-base",
                "--is-ancestor",
                "--end-of-options",
                sha.as_str(),
                &main,
            ])
            .await?;
        match out.status.code() {
            Some(0) => Ok(sha),
            Some(1) => Err(ForgeError::NotOnMain(prefix.to_string())),
            _ => Err(git_error("merge-base", &out)),
        }
    }

    async fn branch_head(&self, branch: &BranchName) -> Result<Option<Sha>, ForgeError> {
        self.rev_parse(&format!("refs/heads/{branch}^{{commit}}"))
            .await
    }

    async fn tags(&self) -> Result<Vec<TagRef>, ForgeError> {
        // `*objectname` is the peeled commit of an annotated tag (empty for a
        // lightweight one, whose objectname is the commit itself).
        let format = "--format=%(refname:strip=2)%1f%(objectname)%1f%(*objectname)%1f%(taggername)";
        let out = self.git(&["for-each-ref", format, "refs/tags"]).await?;
        if !out.status.success() {
            return Err(git_error("for-each-ref", &out));
        }
        let mut tags = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let fields: Vec<&str> = line.split(FIELD).collect();
            let [name, object, peeled, tagger] = fields[..] else {
                continue;
            };
            let sha = if peeled.is_empty() { object } else { peeled };
            // A tag of a tree or blob has no commit to deploy.
            let Ok(sha) = Sha::new(sha) else { continue };
            if self
                .rev_parse(&format!("{sha}^{{commit}}"))
                .await?
                .is_none()
            {
                continue;
            }
            tags.push(TagRef {
                name: name.to_string(),
                sha,
                pushed_by: (!tagger.is_empty()).then(|| tagger.to_string()),
            });
        }
        Ok(tags)
    }

    /// Compares patch ids: `reverting`'s change against the inverse of
    /// `reverted`'s, each against its first parent (so a merge is compared
    /// by what it brought into the branch, as `git revert -m 1` undoes it).
    async fn reverts(&self, reverting: &Sha, reverted: &Sha) -> Result<bool, ForgeError> {
        let undo = self.patch_id(reverted, true).await?;
        let change = self.patch_id(reverting, false).await?;
        Ok(matches!((undo, change), (Some(undo), Some(change)) if undo == change))
    }

    async fn tag(&self, name: &str) -> Result<Option<TagRef>, ForgeError> {
        // The full ref: a bare name could also be a branch of that name.
        let full = format!("refs/tags/{name}");
        let Some(sha) = self.rev_parse(&format!("{full}^{{commit}}")).await? else {
            return Ok(None);
        };
        // for-each-ref matches whole path components, so `refs/tags/v1`
        // also lists `refs/tags/v1/x`: the exact name is picked out.
        let format = "--format=%(refname)%1f%(taggername)";
        let out = self.git(&["for-each-ref", format, &full]).await?;
        if !out.status.success() {
            return Err(git_error("for-each-ref", &out));
        }
        let pushed_by = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let (refname, tagger) = line.split_once(FIELD)?;
                (refname == full && !tagger.is_empty()).then(|| tagger.to_string())
            });
        Ok(Some(TagRef {
            name: name.to_string(),
            sha,
            pushed_by,
        }))
    }
}

fn parse_sha(stdout: &[u8]) -> Result<Sha, ForgeError> {
    let text = String::from_utf8_lossy(stdout);
    Sha::new(text.trim()).map_err(|e| ForgeError::Other(format!("git gave no commit id: {e}")))
}

/// One `git log` record: hash, author name, author email, subject, body.
fn parse_commit(record: &str) -> Result<Commit, ForgeError> {
    let record = record.trim_start_matches('\n');
    let mut fields = record.splitn(5, FIELD);
    let mut next = || {
        fields
            .next()
            .ok_or_else(|| ForgeError::Other(format!("unexpected git log output: {record:.80}")))
    };
    let sha = parse_sha(next()?.as_bytes())?;
    let author_name = next()?.to_string();
    let author_email = next()?.to_string();
    let subject = next()?.to_string();
    let message = next()?.trim_end().to_string();
    Ok(Commit {
        sha,
        author_name,
        author_email,
        author_login: None,
        subject,
        message,
    })
}

/// Git's own first line of complaint, or how it exited if it said nothing.
fn git_error(command: &str, out: &Output) -> ForgeError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    match stderr.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => ForgeError::Other(line.to_string()),
        None => ForgeError::Other(format!("git {command} failed ({})", out.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A throwaway repository with deterministic authors.
    struct Repo {
        dir: tempfile::TempDir,
    }

    impl Repo {
        fn new() -> Repo {
            let repo = Repo {
                dir: tempfile::tempdir().unwrap(),
            };
            repo.git(&["init", "--quiet", "-b", "main"], None);
            repo
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn git(&self, args: &[&str], author: Option<(&str, &str)>) -> String {
            let (name, email) = author.unwrap_or(("Setup", "setup@example.com"));
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(self.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", name)
                .env("GIT_AUTHOR_EMAIL", email)
                .env("GIT_COMMITTER_NAME", name)
                .env("GIT_COMMITTER_EMAIL", email)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        }

        fn commit(&self, message: &str, author: (&str, &str)) -> Sha {
            self.git(
                &["commit", "--quiet", "--allow-empty", "-m", message],
                Some(author),
            );
            Sha::new(&self.git(&["rev-parse", "HEAD"], None)).unwrap()
        }

        fn forge(&self) -> GitForge {
            GitForge::new(self.path(), "main")
        }

        /// Writes `files` (name, content) and commits every change.
        fn change(&self, message: &str, author: (&str, &str), files: &[(&str, &str)]) -> Sha {
            for (name, content) in files {
                std::fs::write(self.path().join(name), content).unwrap();
            }
            self.git(&["add", "--all"], None);
            self.commit(message, author)
        }

        /// A real `git revert` of `sha`.
        fn revert(&self, sha: &Sha, author: (&str, &str)) -> Sha {
            self.git(&["revert", "--no-edit", sha.as_str()], Some(author));
            Sha::new(&self.git(&["rev-parse", "HEAD"], None)).unwrap()
        }
    }

    const ALICE: (&str, &str) = ("Alice", "alice@example.com");
    const BOB: (&str, &str) = ("Bob", "bob@example.com");

    fn prefix(sha: &Sha) -> ShaPrefix {
        sha.short().parse().unwrap()
    }

    #[tokio::test]
    async fn main_head_is_none_until_the_first_commit() {
        let repo = Repo::new();
        assert_eq!(repo.forge().main_head().await, Ok(None));
        let sha = repo.commit("first", ALICE);
        assert_eq!(repo.forge().main_head().await, Ok(Some(sha)));
    }

    #[tokio::test]
    async fn parent_is_the_first_parent_and_none_for_a_root() {
        let repo = Repo::new();
        let root = repo.commit("root", ALICE);
        let child = repo.commit("child", BOB);
        let forge = repo.forge();
        assert_eq!(forge.parent(&child).await, Ok(Some(root.clone())));
        assert_eq!(forge.parent(&root).await, Ok(None));
        let unknown = Sha::new(&"0".repeat(40)).unwrap();
        assert_eq!(
            forge.parent(&unknown).await,
            Err(ForgeError::NotFound(unknown.to_string()))
        );
    }

    #[tokio::test]
    async fn commits_come_oldest_first_with_their_authors_and_messages() {
        let repo = Repo::new();
        let base = repo.commit("base", ALICE);
        let first = repo.commit("Fix the thing\n\nBecause it was broken.\nReally.", ALICE);
        let second = repo.commit("Revert \"Fix the thing\"\n\nThis reverts commit x.", BOB);
        let forge = repo.forge();

        let commits = forge.commits(Some(&base), &second).await.unwrap();
        assert_eq!(commits.len(), 2);
        assert_eq!(
            commits[0],
            Commit {
                sha: first,
                author_name: "Alice".into(),
                author_email: "alice@example.com".into(),
                author_login: None,
                subject: "Fix the thing".into(),
                message: "Fix the thing\n\nBecause it was broken.\nReally.".into(),
            }
        );
        assert_eq!(commits[1].sha, second);
        assert_eq!(commits[1].author_name, "Bob");
        assert_eq!(commits[1].author_email, "bob@example.com");
        assert_eq!(commits[1].subject, "Revert \"Fix the thing\"");

        let all = forge.commits(None, &second).await.unwrap();
        let subjects: Vec<_> = all.iter().map(|c| c.subject.as_str()).collect();
        assert_eq!(
            subjects,
            ["base", "Fix the thing", "Revert \"Fix the thing\""]
        );
        assert_eq!(forge.commits(Some(&second), &second).await, Ok(vec![]));
    }

    #[tokio::test]
    async fn commits_are_capped_to_the_most_recent() {
        let repo = Repo::new();
        for i in 1..=5 {
            repo.commit(&format!("c{i}"), ALICE);
        }
        let head = repo.forge().main_head().await.unwrap().unwrap();
        let forge = GitForge {
            commit_cap: 3,
            ..repo.forge()
        };
        let subjects: Vec<_> = forge
            .commits(None, &head)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.subject)
            .collect();
        assert_eq!(subjects, ["c3", "c4", "c5"]);
    }

    #[tokio::test]
    async fn short_shas_resolve_only_on_main() {
        let repo = Repo::new();
        let on_main = repo.commit("on main", ALICE);
        repo.git(&["checkout", "--quiet", "-b", "feature"], None);
        let on_feature = repo.commit("on feature", BOB);
        let forge = repo.forge();

        assert_eq!(forge.resolve_on_main(&prefix(&on_main)).await, Ok(on_main));
        let p = prefix(&on_feature);
        assert_eq!(
            forge.resolve_on_main(&p).await,
            Err(ForgeError::NotOnMain(p.to_string()))
        );
        let unknown: ShaPrefix = "0000000".parse().unwrap();
        assert_eq!(
            forge.resolve_on_main(&unknown).await,
            Err(ForgeError::NotFound("0000000".into()))
        );
    }

    #[tokio::test]
    async fn tags_are_peeled_to_their_commits() {
        let repo = Repo::new();
        let first = repo.commit("on main", ALICE);
        let second = repo.commit("more", BOB);
        repo.git(&["tag", "v1", first.as_str()], None);
        repo.git(
            &["tag", "-a", "-m", "release", "v2", second.as_str()],
            Some(ALICE),
        );
        let tags = repo.forge().tags().await.unwrap();
        assert_eq!(tags.len(), 2, "{tags:?}");
        assert_eq!(
            (tags[0].name.as_str(), tags[0].sha.as_str()),
            ("v1", first.as_str())
        );
        assert_eq!(tags[0].pushed_by, None);
        assert_eq!(
            (tags[1].name.as_str(), tags[1].sha.as_str()),
            ("v2", second.as_str())
        );
        assert_eq!(tags[1].pushed_by.as_deref(), Some("Alice"));
    }

    #[tokio::test]
    async fn one_tag_is_read_peeled_moved_or_gone() {
        let repo = Repo::new();
        let first = repo.commit("on main", ALICE);
        let second = repo.commit("more", BOB);
        repo.git(
            &["tag", "-a", "-m", "release", "v2", first.as_str()],
            Some(ALICE),
        );
        // A branch of the same name must not be taken for the tag.
        repo.git(&["branch", "v3", second.as_str()], None);
        let forge = repo.forge();
        let got = forge.tag("v2").await.unwrap().unwrap();
        assert_eq!(
            (got.name.as_str(), &got.sha, got.pushed_by.as_deref()),
            ("v2", &first, Some("Alice"))
        );
        assert_eq!(forge.tag("v3").await, Ok(None));
        repo.git(&["tag", "-f", "v2", second.as_str()], None);
        let moved = forge.tag("v2").await.unwrap().unwrap();
        assert_eq!((&moved.sha, moved.pushed_by), (&second, None));
        repo.git(&["tag", "-d", "v2"], None);
        assert_eq!(forge.tag("v2").await, Ok(None));
    }

    #[tokio::test]
    async fn branch_heads_are_found_or_none() {
        let repo = Repo::new();
        repo.commit("on main", ALICE);
        repo.git(&["checkout", "--quiet", "-b", "feature/x"], None);
        let head = repo.commit("on feature", BOB);
        let forge = repo.forge();
        assert_eq!(
            forge.branch_head(&"feature/x".parse().unwrap()).await,
            Ok(Some(head))
        );
        assert_eq!(
            forge.branch_head(&"missing".parse().unwrap()).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn a_true_revert_is_verified_and_a_mere_claim_is_not() {
        let repo = Repo::new();
        repo.change("root", ALICE, &[("f", "one\ntwo\nthree\n")]);
        let change = repo.change("shout", ALICE, &[("f", "one\nTWO\nthree\n")]);
        // Edits next to the reverted lines change the revert's context, not
        // its change: it must still count.
        repo.change("more", BOB, &[("f", "one\nTWO\nthree\nfour\n")]);
        let revert = repo.revert(&change, BOB);
        let claim = format!("Revert \"shout\"\n\nThis reverts commit {change}.");
        let fake = repo.change(&claim, BOB, &[("g", "something else\n")]);
        let empty = repo.commit(&claim, BOB);
        let forge = repo.forge();

        assert_eq!(forge.reverts(&revert, &change).await, Ok(true));
        assert_eq!(forge.reverts(&fake, &change).await, Ok(false));
        assert_eq!(forge.reverts(&empty, &change).await, Ok(false));
        // Redoing a change is not undoing it.
        let redo = repo.revert(&revert, ALICE);
        assert_eq!(forge.reverts(&redo, &change).await, Ok(false));
        assert_eq!(forge.reverts(&redo, &revert).await, Ok(true));
    }

    #[tokio::test]
    async fn reverts_of_a_root_commit_and_of_a_merge_are_verified() {
        let repo = Repo::new();
        let root = repo.change("root", ALICE, &[("r", "root\n")]);
        repo.git(&["checkout", "--quiet", "-b", "feature"], None);
        repo.change("feature", BOB, &[("g", "feature\n")]);
        repo.git(&["checkout", "--quiet", "main"], None);
        repo.change("main moves", ALICE, &[("f", "1\n")]);
        repo.git(
            &["merge", "--quiet", "--no-ff", "-m", "merge", "feature"],
            Some(ALICE),
        );
        let merge = Sha::new(&repo.git(&["rev-parse", "HEAD"], None)).unwrap();
        // A merge is undone relative to its first parent.
        repo.git(
            &["revert", "--no-edit", "-m", "1", merge.as_str()],
            Some(BOB),
        );
        let unmerge = Sha::new(&repo.git(&["rev-parse", "HEAD"], None)).unwrap();
        let unroot = repo.revert(&root, BOB);
        let forge = repo.forge();

        assert_eq!(forge.reverts(&unmerge, &merge).await, Ok(true));
        assert_eq!(forge.reverts(&unroot, &root).await, Ok(true));
        assert_eq!(forge.reverts(&unroot, &merge).await, Ok(false));
        let unknown = Sha::new(&"0".repeat(40)).unwrap();
        assert!(forge.reverts(&unknown, &root).await.is_err());
    }

    #[tokio::test]
    async fn a_missing_repository_is_an_error_with_gits_message() {
        let dir = tempfile::tempdir().unwrap();
        let forge = GitForge::new(dir.path().join("nope"), "main");
        match forge.main_head().await {
            Err(ForgeError::Other(message)) => assert!(message.contains("nope"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
