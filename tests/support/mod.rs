//! End-to-end helpers: a temp dir with a real git repo and a bot.toml per
//! test, and the real `trainbot` binary driven through stdin/stdout.
//!
//! Waiting is always on an event: a line on the bot's stdout, the bot's exit,
//! or (only where nothing else tells) a file appearing, polled briefly.
//! [`TIMEOUT`] is an upper bound for a wait, never a delay.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long any one expectation may take before the test fails. Generous:
/// the machine is shared, and a passing test never waits this long.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How often to look for a file when no line on stdout announces it.
const FILE_POLL: Duration = Duration::from_millis(20);

pub const BIN: &str = env!("CARGO_BIN_EXE_trainbot");

/// A temp dir holding `repo/` (the forge), `bot.toml`, `data/` (the bot's
/// `data_dir`) and `deploys.txt` (one line per deploy step: `ENV SHA`).
pub struct Sandbox {
    dir: TempDir,
    pub repo: TestRepo,
}

impl Sandbox {
    /// A repository whose root commit is alice's "initial commit".
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("trainbot-e2e-")
            .tempdir()
            .expect("temp dir");
        let repo = TestRepo::init(&dir.path().join("repo"));
        Sandbox { dir, repo }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `bot.toml` and returns its path.
    pub fn write_config(&self, config: &BotConfig) -> PathBuf {
        let path = self.path().join("bot.toml");
        std::fs::write(&path, config.render()).expect("write bot.toml");
        path
    }

    /// The `deploys.txt` lines, `ENV SHA` each, in order.
    pub fn deploys(&self) -> Vec<String> {
        read_deploys(self.path())
    }

    pub fn deploys_to(&self, env: &str) -> Vec<String> {
        let prefix = format!("{env} ");
        self.deploys()
            .into_iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    /// Creates `name` in the sandbox (the blocking production step waits for
    /// `release`).
    pub fn touch(&self, name: &str) {
        std::fs::write(self.path().join(name), "").expect("touch");
    }

    /// Polls for `name` to appear. Only for facts the bot does not announce
    /// (what a step did after its "started" line): no event to wait on.
    pub fn wait_for_file(&self, name: &str) -> String {
        let path = self.path().join(name);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && text.ends_with('\n')
            {
                return text.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear within {TIMEOUT:?}",
                path.display()
            );
            std::thread::sleep(FILE_POLL);
        }
    }
}

fn read_deploys(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("deploys.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A real git repository on `main`; authors are `name@example.com`, which the
/// console knows as `@name`.
pub struct TestRepo {
    path: PathBuf,
}

impl TestRepo {
    pub fn init(path: &Path) -> TestRepo {
        std::fs::create_dir_all(path).expect("repo dir");
        let repo = TestRepo {
            path: path.to_path_buf(),
        };
        repo.git("alice", &["init", "-q", "-b", "main"]);
        repo.commit("alice", "initial commit");
        repo
    }

    /// A commit by `author` (`alice` is Alice <alice@example.com>); its SHA.
    pub fn commit(&self, author: &str, subject: &str) -> String {
        self.commit_with_body(author, subject, "")
    }

    /// A commit by `author` that writes `content` to `file`; its SHA.
    pub fn commit_file(&self, author: &str, subject: &str, file: &str, content: &str) -> String {
        std::fs::write(self.path.join(file), content).expect("write the file");
        self.git(author, &["add", "--", file]);
        self.commit(author, subject)
    }

    /// `author` undoes `sha` with a real `git revert`; its SHA.
    pub fn revert(&self, author: &str, sha: &str) -> String {
        self.git(author, &["revert", "--no-edit", sha]);
        self.head()
    }

    /// A commit by `author` whose message says it reverts `sha`, the way
    /// `git revert` words it, while it changes `file` instead.
    pub fn claim_revert(&self, author: &str, sha: &str, file: &str) -> String {
        std::fs::write(self.path.join(file), format!("not a revert of {sha}\n"))
            .expect("write the file");
        self.git(author, &["add", "--", file]);
        let body = format!("This reverts commit {sha}.");
        self.commit_with_body(author, &format!("Revert {}", &sha[..7]), &body)
    }

    fn commit_with_body(&self, author: &str, subject: &str, body: &str) -> String {
        let message = if body.is_empty() {
            subject.to_string()
        } else {
            format!("{subject}\n\n{body}")
        };
        self.git(author, &["commit", "-q", "--allow-empty", "-m", &message]);
        self.head()
    }

    /// Creates `name` at main's head (or moves it there).
    pub fn branch(&self, name: &str) -> String {
        self.git("alice", &["branch", "-f", name, "main"]);
        self.git("alice", &["rev-parse", name])
    }

    /// A commit by `author` on `branch`; main stays checked out after.
    pub fn commit_on(&self, branch: &str, author: &str, subject: &str) -> String {
        self.git(author, &["checkout", "-q", branch]);
        let sha = self.commit(author, subject);
        self.git(author, &["checkout", "-q", "main"]);
        sha
    }

    /// Tags `sha` as `name`: annotated (tagger `author`) or lightweight.
    pub fn tag(&self, name: &str, sha: &str, annotated_by: Option<&str>) {
        match annotated_by {
            Some(author) => self.git(author, &["tag", "-a", "-m", name, name, sha]),
            None => self.git("alice", &["tag", name, sha]),
        };
    }

    pub fn head(&self) -> String {
        self.git("alice", &["rev-parse", "HEAD"])
    }

    /// The full SHA of any revision (`abc^`, a branch).
    pub fn rev(&self, rev: &str) -> String {
        self.git("alice", &["rev-parse", rev])
    }

    /// Runs git with author and committer set explicitly (no global config
    /// of the machine leaks in).
    fn git(&self, author: &str, args: &[&str]) -> String {
        git_as(&self.path, author, None, args)
    }
}

/// Runs git in `path` as `author` (`alice` is "Alice <alice@example.com>"),
/// committing at `date` when given; no global config of the machine leaks in.
pub fn git_as(path: &Path, author: &str, date: Option<&str>, args: &[&str]) -> String {
    let mut name = author.to_string();
    name[..1].make_ascii_uppercase();
    let email = format!("{author}@example.com");
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(path)
        .args(args)
        .env("GIT_AUTHOR_NAME", &name)
        .env("GIT_AUTHOR_EMAIL", &email)
        .env("GIT_COMMITTER_NAME", &name)
        .env("GIT_COMMITTER_EMAIL", &email)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
    }
    let out = cmd.output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn short(sha: &str) -> &str {
    &sha[..7]
}

/// What a test's bot.toml says. Every step appends `$TRAINBOT_ENV
/// $TRAINBOT_SHA` to `deploys.txt` (steps run in the config's directory).
#[derive(Debug, Clone)]
pub struct BotConfig {
    pub approval: &'static str,
    pub approval_timeout: &'static str,
    /// This environment's acceptance step fails, printing a reason.
    pub failing_acceptance: Option<&'static str>,
    /// The production deploy step, after writing its line, writes its pid to
    /// `production.pid` and waits for a file `release`.
    pub blocking_production: bool,
    /// `[branch_builds]` with nodes n1, n2; every step appends `PHASE
    /// $TRAINBOT_BRANCH $TRAINBOT_NODE $TRAINBOT_SHA` to `builds.txt`.
    pub branch_builds: bool,
    /// The branch deploy step waits for a file `release-<branch>`.
    pub blocking_branch_deploy: bool,
    /// The branch checks step exits 1 after writing its line.
    pub failing_branch_checks: bool,
    /// `[tags]`: `-rc.N` tags go to staging, `vX.Y.Z` tags to production.
    pub tags: bool,
    /// `[tags] give_up_after`, with `tags`.
    pub tags_give_up_after: Option<&'static str>,
    /// `forge.kind = "github"` against this API URL (a fake), repository
    /// acme/web, token and webhook secret in `GITHUB_TOKEN_ENV` and
    /// `WEBHOOK_SECRET_ENV`.
    pub github: Option<String>,
    pub poll_interval: &'static str,
    /// `bot.http_listen` port (0: any).
    pub http_port: u16,
    /// Replaces `[production] deploy` (an inline TOML array).
    pub production_deploy: Option<String>,
    /// Appended as is (e.g. a `[people]` table).
    pub extra: String,
    /// Keys added to `[forge.github]` as is (e.g. `checks = true`).
    pub github_keys: String,
    /// `url` of an environment (or `production`), by name.
    pub env_urls: Vec<(&'static str, &'static str)>,
    /// `train.schedule`; default: New Year's midnight only.
    pub schedule: &'static str,
    /// `[production] windows`, each quoted (e.g. `"Mon 09:00-10:00"`).
    pub windows: Vec<String>,
    /// `bot.max_step_log` (e.g. `"1KiB"`); default: not set.
    pub max_step_log: Option<&'static str>,
    /// `[roles] production`, when set.
    pub production_role: Option<Vec<&'static str>>,
}

pub mod golden;
pub mod http;

pub const GITHUB_TOKEN_ENV: &str = "TRAINBOT_TEST_GITHUB_TOKEN";
pub const WEBHOOK_SECRET_ENV: &str = "TRAINBOT_TEST_WEBHOOK_SECRET";

/// A port nobody listens on right now, for a bot the test must reach.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            approval: "all-authors",
            approval_timeout: "30m",
            failing_acceptance: None,
            blocking_production: false,
            branch_builds: false,
            blocking_branch_deploy: false,
            failing_branch_checks: false,
            tags: false,
            tags_give_up_after: None,
            github: None,
            poll_interval: "100ms",
            http_port: 0,
            production_deploy: None,
            extra: String::new(),
            github_keys: String::new(),
            env_urls: Vec::new(),
            schedule: "0 0 0 1 1 *",
            windows: Vec::new(),
            max_step_log: None,
            production_role: None,
        }
    }
}

pub const ENVIRONMENTS: [&str; 3] = ["staging", "preview", "preprod"];

const RECORD: &str = r#"echo \"$TRAINBOT_ENV $TRAINBOT_SHA\" >> deploys.txt"#;

impl BotConfig {
    pub fn render(&self) -> String {
        // Departures run at New Year's midnight only: a test departs with
        // !depart, and the clock never sends a train of its own.
        let mut out = format!(
            r#"[bot]
data_dir = "./data"
http_listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
{max_step_log}
[chat]
adapter = "console"
console_user = "local"

[forge]
kind = "{kind}"
main_branch = "main"
poll_interval = "{poll}"

[forge.git]
path = "repo"

[forge.github]
owner = "acme"
repo = "web"
token_env = "{GITHUB_TOKEN_ENV}"
webhook_secret_env = "{WEBHOOK_SECRET_ENV}"
api_url = "{api_url}"

[train]
schedule = "{schedule}"
timezone = "UTC"
approval = "{approval}"
approval_timeout = "{timeout}"
environments = ["staging", "preview", "preprod"]
"#,
            approval = self.approval,
            schedule = self.schedule,
            timeout = self.approval_timeout,
            port = self.http_port,
            kind = if self.github.is_some() {
                "github"
            } else {
                "git"
            },
            poll = self.poll_interval,
            max_step_log = self
                .max_step_log
                .map(|size| format!("max_step_log = \"{size}\"\n"))
                .unwrap_or_default(),
            api_url = self.github.as_deref().unwrap_or("https://api.github.com"),
        );
        for env in ENVIRONMENTS {
            let acceptance = if self.failing_acceptance == Some(env) {
                r#"echo \"checking $TRAINBOT_SHA\"; echo \"3 tests failed on $TRAINBOT_ENV\"; exit 1"#
            } else {
                r#"test -n \"$TRAINBOT_SHA\""#
            };
            writeln!(
                out,
                "\n[environments.{env}]\ndeploy = [{{ run = \"{RECORD}\" }}]\nacceptance = [{{ run = \"{acceptance}\" }}]"
            )
            .unwrap();
        }
        let production = if let Some(deploy) = &self.production_deploy {
            deploy.clone()
        } else if self.blocking_production {
            // Bounded, so a failed test leaves no process behind for long.
            format!(
                r#"{RECORD}; echo $$ > production.pid; i=0; while [ ! -e release ]; do sleep 0.05; i=$((i+1)); [ $i -lt 1200 ] || exit 1; done"#
            )
        } else {
            RECORD.to_string()
        };
        let production = if self.production_deploy.is_some() {
            production
        } else {
            format!("[{{ run = \"{production}\" }}]")
        };
        writeln!(
            out,
            "\n[production]\ndeploy = {production}\nsmoke = [{{ run = \"true\" }}]\nwindows = [{}]\n\n[roles]\nops = [\"local\"]",
            self.windows
                .iter()
                .map(|w| format!("{w:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
        .unwrap();
        if let Some(role) = &self.production_role {
            writeln!(out, "production = {role:?}").unwrap();
        }
        if self.tags {
            out.push_str(
                "\n[tags]\nstaging = '^v[0-9]+(\\.[0-9]+)*-rc\\.[0-9]+$'\nproduction = '^v[0-9]+(\\.[0-9]+)*$'\n",
            );
            if let Some(after) = self.tags_give_up_after {
                writeln!(out, "give_up_after = \"{after}\"").unwrap();
            }
        }
        for (env, url) in &self.env_urls {
            let table = if *env == "production" {
                "\n[production]\n".to_string()
            } else {
                format!("\n[environments.{env}]\n")
            };
            out = out.replacen(&table, &format!("{table}url = \"{url}\"\n"), 1);
        }
        if !self.github_keys.is_empty() {
            let keys = format!("[forge.github]\n{}\n", self.github_keys);
            out = out.replacen("[forge.github]\n", &keys, 1);
        }
        if !self.extra.is_empty() {
            out.push('\n');
            out.push_str(&self.extra);
            out.push('\n');
        }
        if self.branch_builds {
            let rec = |phase: &str| {
                format!(
                    r#"echo \"{phase} $TRAINBOT_BRANCH $TRAINBOT_NODE $TRAINBOT_SHA\" >> builds.txt"#
                )
            };
            let mut checks = rec("checks");
            if self.failing_branch_checks {
                checks.push_str("; exit 1");
            }
            let mut deploy = rec("deploy");
            if self.blocking_branch_deploy {
                deploy.push_str(
                    r#"; i=0; while [ ! -e release-$TRAINBOT_BRANCH ]; do sleep 0.05; i=$((i+1)); [ $i -lt 1200 ] || exit 1; done"#,
                );
            }
            writeln!(
                out,
                "\n[branch_builds]\nnodes = [\"n1\", \"n2\"]\nnode_url = \"http://{{node}}.test\"\nchecks = [{{ run = \"{checks}\" }}]\ndeploy = [{{ run = \"{deploy}\" }}]\nsmoke = [{{ run = \"{}\" }}]",
                rec("smoke"),
            )
            .unwrap();
        }
        out
    }
}

/// The running binary. Dropping it kills the process.
pub struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Everything said and read so far: `> ` for input, `< ` for output.
    transcript: Vec<String>,
    config: PathBuf,
    stderr: PathBuf,
}

impl Bot {
    /// Starts `trainbot --config <config>`; stderr goes to a file next to it.
    pub fn spawn(config: &Path) -> Bot {
        Bot::spawn_with_env(config, &[])
    }

    /// `spawn`, with extra environment variables (tokens, secrets).
    pub fn spawn_with_env(config: &Path, env: &[(&str, &str)]) -> Bot {
        Bot::spawn_bin(Path::new(BIN), config, env)
    }

    /// `spawn_with_env` with another build of trainbot (the golden store is
    /// written by an older one).
    pub fn spawn_bin(bin: &Path, config: &Path, env: &[(&str, &str)]) -> Bot {
        let dir = config.parent().expect("config dir");
        let stderr = (1..)
            .map(|n| dir.join(format!("bot-{n}.stderr")))
            .find(|p| !p.exists())
            .expect("a free stderr name");
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn trainbot");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Bot {
            stdin: child.stdin.take(),
            child,
            lines,
            transcript: Vec::new(),
            config: config.to_path_buf(),
            stderr,
        }
    }

    /// The config file the bot runs on (to start another on it).
    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    /// One chat line: `!status`, or `@alice !good` to speak as alice.
    pub fn send(&mut self, line: &str) {
        self.transcript.push(format!("> {line}"));
        let stdin = self.stdin.as_mut().expect("stdin open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            self.fail(&format!("cannot write {line:?} to the bot: {e}"));
        }
    }

    /// Reads lines until one matches; the skipped ones stay in the transcript.
    pub fn expect_line(&mut self, what: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.expect_described("a line matching the test's predicate", what, timeout)
    }

    /// `expect_line` for a line containing `needle`, within [`TIMEOUT`].
    pub fn expect(&mut self, needle: &str) -> String {
        let want = format!("a line containing {needle:?}");
        self.expect_described(&want, |l| l.contains(needle), TIMEOUT)
    }

    /// Reads lines until every needle has appeared, in any order: for
    /// things that run in parallel and finish in no fixed order.
    pub fn expect_each(&mut self, needles: &[&str]) {
        let mut left: Vec<&str> = needles.to_vec();
        while !left.is_empty() {
            let want = format!("lines containing {left:?}");
            let pending = left.clone();
            let line =
                self.expect_described(&want, |l| pending.iter().any(|n| l.contains(n)), TIMEOUT);
            left.retain(|n| !line.contains(n));
        }
    }

    /// The very next line, whatever it says (to check a reply is one line).
    pub fn next_line(&mut self) -> String {
        self.expect_described("any line", |_| true, TIMEOUT)
    }

    fn expect_described(
        &mut self,
        want: &str,
        what: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(format!("< {line}"));
                    if what(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("waited {timeout:?} for {want}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the bot closed stdout while waiting for {want}"))
                }
            }
        }
    }

    /// Sends `line` and returns the reply containing `needle`.
    pub fn ask(&mut self, line: &str, needle: &str) -> String {
        self.send(line);
        self.expect(needle)
    }

    /// Waits for the bot to report `sha` allocated (seen on main).
    pub fn expect_allocated(&mut self, sha: &str) {
        self.expect(&format!("📥 {}", short(sha)));
    }

    /// Every line read so far that contains `needle`.
    /// What the bot logged to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the log holds `needle` at least `n` times.
    pub fn expect_logged(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {n} times:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn said(&self, needle: &str) -> Vec<String> {
        self.transcript
            .iter()
            .filter(|l| l.starts_with("< ") && l.contains(needle))
            .cloned()
            .collect()
    }

    /// SIGKILL, as a crash would. The bot gets no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then the bot must exit 0 and must not have said anything
    /// after the last expected line (bors' `finish()`); stdout must hold only
    /// chat lines.
    pub fn stop(mut self) {
        self.stdin.take();
        self.terminate();
    }

    /// `stop`, with stdin still open, as in a terminal where someone
    /// presses Ctrl-C or a service manager sends SIGTERM.
    pub fn stop_with_stdin_open(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        self.sigterm();
        self.expect_clean_exit();
    }

    /// Sends SIGTERM and returns at once (the bot may take its time).
    pub fn sigterm(&mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
    }

    /// Waits for the bot to exit after a signal: exit 0, nothing said after
    /// the last expected line, only chat on stdout.
    pub fn expect_clean_exit(&mut self) {
        let (status, after) = self.wait_for_exit();
        if !status.success() {
            self.fail(&format!("the bot stopped with {status}, not 0"));
        }
        if let Some(line) = after.iter().find(|l| l.starts_with("trainbot>")) {
            self.fail(&format!("unexpected message after the test: {line}"));
        }
        let stray = self
            .transcript
            .iter()
            .filter_map(|l| l.strip_prefix("< "))
            .find(|l| !(l.starts_with("trainbot>") || l.starts_with("  ")));
        if let Some(line) = stray {
            self.fail(&format!(
                "stdout carries something that is not chat: {line}"
            ));
        }
    }

    /// Waits for the process to end: stdout closes when it exits (steps
    /// write to their log files, never to the bot's stdout).
    fn wait_for_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(format!("< {line}"));
                    rest.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.fail("the bot did not exit after SIGTERM"),
            }
        }
        (self.child.wait().expect("wait"), rest)
    }

    /// Panics with everything needed to see what happened.
    fn fail(&self, why: &str) -> ! {
        let dir = self.config.parent().expect("config dir");
        let mut report = format!("{why}\n");
        let config = std::fs::read_to_string(&self.config).unwrap_or_default();
        let _ = write!(report, "\n--- {} ---\n{config}", self.config.display());
        let _ = write!(report, "\n--- transcript ---\n");
        for line in &self.transcript {
            let _ = writeln!(report, "{line}");
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let _ = write!(report, "\n--- stderr ---\n{stderr}");
        let _ = write!(
            report,
            "\n--- deploys.txt ---\n{}\n",
            read_deploys(dir).join("\n")
        );
        for log in step_logs(&dir.join("data").join("logs")) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(10)..];
            let _ = write!(report, "\n--- {} ---\n{}\n", log.display(), tail.join("\n"));
        }
        panic!("{report}");
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn step_logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(step_logs(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Runs the binary to completion (for `check` and start-up errors).
pub fn run_to_end(args: &[&str], dir: &Path) -> (ExitStatus, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run trainbot");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bot on a sandbox whose main branch has alice's root commit and bob's
/// commit on top, both allocated, so a `!depart` carries both. (The first
/// allocation sets the base: only what the bot sees arrive is in a train.)
pub fn bot_with_alice_and_bob(config: &BotConfig) -> (Sandbox, Bot, String) {
    let sandbox = Sandbox::new();
    let path = sandbox.write_config(config);
    let mut bot = Bot::spawn(&path);
    bot.expect_allocated(&sandbox.repo.head());
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);
    (sandbox, bot, head)
}
