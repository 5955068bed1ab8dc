//! The radiator in a real browser: the real binary with a temp git repo runs
//! one train to production and leaves a second awaiting approval; headless
//! Chromium loads `/` and a run page, we assert on the rendered DOM and keep
//! screenshots in `target/test-output/`.
//!
//! The bot runs with a web password (SPEC §13); Chromium logs in with it
//! in the URL (`http://user:password@host/`), which it accepts for the page
//! it navigates to and then reuses for the page's own requests.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`); without it the
//! test fails and says so. It never skips.

#[path = "support/http.rs"]
mod http;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http::{http_get, http_get_as};

/// The one timeout for anything this test waits on.
const TIMEOUT: Duration = Duration::from_secs(60);
const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD_ENV: &str = "TRAINBOT_TEST_WEB_PASSWORD";
/// URL-safe, so it can stand in `http://radiator:PASSWORD@…`.
const PASSWORD: &str = "browser-pass-1234";

struct Bot {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    transcript: Vec<String>,
    config: String,
    data_dir: PathBuf,
}

impl Bot {
    fn say(&mut self, line: &str) {
        self.transcript.push(format!("> {line}"));
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn expect_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        self.fail(&format!("no line containing {needle:?}"));
    }

    fn fail(&self, what: &str) -> ! {
        let mut logs = String::new();
        if let Ok(dirs) = std::fs::read_dir(self.data_dir.join("logs")) {
            for d in dirs.flatten() {
                for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                    let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                    logs.push_str(&format!("--- {}\n{text}\n", f.path().display()));
                }
            }
        }
        panic!(
            "{what}\n--- config\n{}\n--- transcript\n{}\n--- step logs\n{logs}",
            self.config,
            self.transcript.join("\n")
        );
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn commit(repo: &Path, file: &str, message: &str, name: &str) {
    std::fs::write(repo.join(file), message).unwrap();
    git(repo, &["add", file]);
    let author = format!("{name} <{}@example.com>", name.to_lowercase());
    git(
        repo,
        &[
            "-c",
            &format!("user.name={name}"),
            "-c",
            &format!("user.email={}@example.com", name.to_lowercase()),
            "commit",
            "-q",
            "-m",
            message,
            "--author",
            &author,
        ],
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(repo: &Path, data: &Path, port: u16) -> String {
    let step = r#"[{ run = "echo \"$TRAINBOT_ENV at $TRAINBOT_SHA\"", timeout = "1m" }]"#;
    let mut envs = String::new();
    for env in ["staging", "preview", "preprod"] {
        envs.push_str(&format!(
            "[environments.{env}]\ndeploy = {step}\nacceptance = {step}\n"
        ));
    }
    format!(
        r#"[bot]
data_dir = "{data}"
http_listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[chat]
adapter = "console"
console_user = "local"

[forge]
kind = "git"
main_branch = "main"
poll_interval = "200ms"

[forge.git]
path = "{repo}"

[train]
schedule = "0 0 0 1 1 * 2099"
environments = ["staging", "preview", "preprod"]

{envs}
[production]
deploy = {step}
smoke = {step}

[branch_builds]
nodes = ["branch-1", "branch-2"]
node_url = "http://{{node}}.localhost"

[roles]
ops = ["local"]

[web]
password_env = "{PASSWORD_ENV}"
"#,
        data = data.display(),
        repo = repo.display(),
    )
}

fn start_bot(dir: &Path, port: u16) -> Bot {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    commit(&repo, "a.txt", "Initial commit", "Alice");
    commit(
        &repo,
        "b.txt",
        "Add the <script>alert(1)</script> banner",
        "Alice",
    );
    let data_dir = dir.join("data");
    let config = config(&repo, &data_dir, port);
    let path = dir.join("bot.toml");
    std::fs::write(&path, &config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainbot"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env(PASSWORD_ENV, PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let stdin = child.stdin.take().unwrap();
    Bot {
        child,
        stdin,
        lines,
        transcript: Vec::new(),
        config,
        data_dir,
    }
}

fn wait_for_health(bot: &Bot, port: u16) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if http_get(port, "/healthz").is_some_and(|(s, _)| s == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bot.fail("/healthz never answered 200");
}

fn chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the dashboard browser test needs it. \
         Install it with `apt-get install -y chromium` (CI's .ci/run does)."
    );
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

fn output_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; screenshots go next to it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_radiator_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut bot = start_bot(dir.path(), port);
    bot.expect_line("waits for the next train");
    wait_for_health(&bot, port);

    // Train 1 goes all the way to production.
    bot.say("!depart");
    bot.expect_line("must approve");
    bot.say("@alice !good");
    bot.expect_line("deployed");

    // Train 2, with bob's commit, waits for bob's approval.
    commit(
        &dir.path().join("repo"),
        "c.txt",
        "Make the widget <blink>",
        "Bob",
    );
    bot.expect_line("waits for the next train");
    bot.say("!depart");
    bot.expect_line("must approve");

    let (status, text) = http_get(port, "/api/status").unwrap();
    assert_eq!(status, 401, "no password, yet:\n{text}");
    let bearer = format!("Bearer {PASSWORD}");
    let (status, json) = http_get_as(port, "/api/status", Some(&bearer)).unwrap();
    assert_eq!(status, 200, "{json}");
    assert!(json.contains("\"stage\":\"approval\""), "{json}");

    // Without the password the browser sees no radiator.
    let refused = chromium(
        &dir.path().join("chromium-anonymous"),
        &["--dump-dom"],
        &format!("http://127.0.0.1:{port}/"),
    );
    assert!(!refused.contains("class=\"pipeline\""), "{refused}");
    assert!(!refused.contains("branch-1"), "{refused}");

    let url = format!("http://radiator:{PASSWORD}@127.0.0.1:{port}/");
    let profile = dir.path().join("chromium");
    let dom = chromium(&profile, &["--dump-dom"], &url);
    for needle in [
        "class=\"pipeline\"",
        "<span class=\"stage-name\">approval</span>",
        "id=\"nodes\"",
        "branch-1",
        "id=\"metrics\"",
        "Lead time",
        "href=\"/runs/train-2\"",
        "href=\"/runs/train-1\"",
    ] {
        assert!(dom.contains(needle), "missing {needle} in the DOM:\n{dom}");
    }
    assert!(!dom.contains("<blink>"), "unescaped commit subject:\n{dom}");

    // With time to run, the script swaps in a fresh <main> without a reload.
    let live = chromium(
        &profile,
        &["--virtual-time-budget=12000", "--dump-dom"],
        &url,
    );
    assert!(
        live.contains("data-refreshed=\""),
        "no live refresh:\n{live}"
    );
    assert!(live.contains("class=\"pipeline\""), "{live}");

    let out = output_dir();
    let shot = out.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    chromium(&profile, &[&arg, "--window-size=1600,1000"], &url);
    assert!(shot.exists(), "no screenshot at {}", shot.display());

    let run_url = format!("http://radiator:{PASSWORD}@127.0.0.1:{port}/runs/train-1");
    let run_dom = chromium(&profile, &["--dump-dom"], &run_url);
    assert!(run_dom.contains("production deploy 1"), "{run_dom}");
    assert!(
        run_dom.contains("production at "),
        "the step log is missing:\n{run_dom}"
    );
    assert!(!run_dom.contains("<script>alert"), "{run_dom}");
    let run_shot = format!("--screenshot={}", out.join("run.png").display());
    chromium(&profile, &[&run_shot, "--window-size=1600,1000"], &run_url);
}
