//! The Slack adapter end to end: the real binary against a fake Slack
//! (Web API + Socket Mode on 127.0.0.1), a temp git repo with two authors.
//! No test talks to the real Slack.

#[path = "support/fake_slack.rs"]
mod fake_slack;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_slack::{APP_TOKEN, BOT_TOKEN, BOT_USER, Call, FakeSlack, envelope};

/// The one upper bound for every wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const OPS: &str = "U0OPS";

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_COMMITTER_NAME", "CI")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .env("GIT_AUTHOR_NAME", "CI")
        .env("GIT_AUTHOR_EMAIL", "ci@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Commits as `author` ("Name <email>"); returns the short SHA.
fn commit(repo: &Path, author: &str, subject: &str) -> String {
    git(
        repo,
        &[
            "commit",
            "--allow-empty",
            "-q",
            "-m",
            subject,
            "--author",
            author,
        ],
    );
    git(repo, &["rev-parse", "--short=7", "HEAD"])
}

/// A repository in a temporary directory with one commit (its short SHA),
/// and the bot's config for `fake` on it.
fn one_commit(
    fake: &FakeSlack,
    author: &str,
    subject: &str,
) -> (tempfile::TempDir, PathBuf, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let first = commit(&repo, author, subject);
    let cfg = config(dir.path(), &repo, fake);
    (dir, repo, first, cfg)
}

fn new_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    repo
}

fn config(dir: &Path, repo: &Path, fake: &FakeSlack) -> PathBuf {
    let text = format!(
        r##"
[bot]
data_dir = "{data}"
http_listen = "127.0.0.1:0"
public_url = "http://trainbot.test"

[chat]
adapter = "slack"

[chat.slack]
channel = "#deploys"
api_url = "{api}/"

[forge]
poll_interval = "200ms"

[forge.git]
path = "{repo}"

[train]
schedule = "0 0 0 1 1 * 2099"
environments = ["staging"]

[environments.staging]
deploy = [{{ run = "echo deploy $TRAINBOT_SHA" }}]
acceptance = [{{ run = "echo accept $TRAINBOT_SHA" }}]

[production]
deploy = [{{ run = "echo production $TRAINBOT_SHA" }}]
smoke = [{{ run = "echo smoke" }}]

[branch_builds]
nodes = ["n1"]
checks = [{{ run = "echo checks $TRAINBOT_BRANCH" }}]
deploy = [{{ run = "echo deploy $TRAINBOT_NODE" }}]

[roles]
ops = ["{OPS}"]

[people]
"bob@example.com" = "{BOB}"
"##,
        data = dir.join("data").display(),
        api = fake.api_url,
        repo = repo.display(),
    );
    let path = dir.join("bot.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The real binary, its stdout and stderr collected together.
struct Bot {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Bot {
    fn spawn(config: &Path, env: &[(&str, &str)]) -> Bot {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainbot"));
        cmd.arg("--config")
            .arg(config)
            .env_remove("SLACK_BOT_TOKEN")
            .env_remove("SLACK_APP_TOKEN")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("trainbot starts");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut r in readers.drain(..) {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Bot { child, output }
    }

    fn with_tokens(config: &Path) -> Bot {
        Bot::spawn(
            config,
            &[
                ("SLACK_BOT_TOKEN", BOT_TOKEN),
                ("SLACK_APP_TOKEN", APP_TOKEN),
            ],
        )
    }

    /// Waits for the process to end by itself.
    async fn exit(mut self) -> (ExitStatus, String) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let out = self.output.lock().unwrap().clone();
                return (status, out);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "trainbot did not exit:\n{}",
                self.output.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then the exit status and everything it printed; asserts no
    /// token ever appeared in it.
    async fn stop(self) -> String {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let (status, out) = self.exit().await;
        assert!(status.success(), "exit {status:?}:\n{out}");
        assert_no_tokens(&out);
        out
    }
}

impl Drop for Bot {
    /// Kills a bot still running; after a failed assertion, shows what it said.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let out = self.output.lock().map(|o| o.clone()).unwrap_or_default();
            let lines: Vec<&str> = out.lines().filter(|l| !l.contains(" TRACE ")).collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            eprintln!(
                "--- trainbot output (last 200 lines) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

fn assert_no_tokens(out: &str) {
    for token in [BOT_TOKEN, APP_TOKEN] {
        assert!(
            !out.contains(token),
            "a token leaked into the output:\n{out}"
        );
    }
}

fn updates_of(fake: &FakeSlack, ts: &str) -> Vec<Call> {
    fake.with(|s| {
        s.calls_to("chat.update")
            .into_iter()
            .filter(|c| c.args["ts"] == ts)
            .cloned()
            .collect()
    })
}

fn replies_to(fake: &FakeSlack, user: &str) -> usize {
    let mention = format!("<@{user}> ");
    fake.with(|s| {
        s.calls_to("chat.postMessage")
            .iter()
            .filter(|c| c.text().starts_with(&mention) && c.thread_ts().is_none())
            .count()
    })
}

/// A message in the channel from `user`, answered (acked) by the bot.
async fn say(fake: &FakeSlack, n: u32, user: &str, text: &str) -> serde_json::Value {
    let ts = format!("1700001000.{n:06}");
    let env = envelope::message(&format!("env-{n}"), &format!("Ev{n}"), user, text, &ts);
    fake.send_envelope(env.clone()).await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_answered_once_even_when_slack_delivers_again() {
    let fake = FakeSlack::start().await;
    let (_dir, _repo, _first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "First");
    let bot = Bot::with_tokens(&cfg);

    // One 429 on the first answer: waited out, then posted.
    fake.with(|s| s.rate_limit.insert("chat.postMessage".into(), 1));
    let status = say(&fake, 1, "U0DEV", "!status").await;
    fake.wait_for("the answer to !status", |s| {
        s.calls_to("chat.postMessage")
            .iter()
            .find(|c| c.text().starts_with("<@U0DEV> ") && c.args["channel"] == "C0DEPLOY")
            .map(|_| ())
    })
    .await;
    let limited = fake.with(|s| s.calls.iter().filter(|c| c.status == 429).count());
    assert_eq!(limited, 1);

    // Delivered again, then a message by the bot itself, one in another
    // channel, and a mention that Slack sends twice (message + app_mention).
    fake.send_envelope(envelope::redelivery("env-1b", &status))
        .await;
    say(&fake, 2, BOT_USER, "!depart").await;
    let mut elsewhere = envelope::message("env-3", "Ev3", "U0DEV", "!help", "1700001000.000003");
    elsewhere["payload"]["event"]["channel"] = "C0OTHER".into();
    fake.send_envelope(elsewhere).await;
    let mention = "<@U0BOT> !help";
    let ts = "1700001000.000004";
    say(&fake, 4, "U0DEV", mention).await;
    fake.send_envelope(envelope::events_api(
        "env-5",
        "Ev5",
        0,
        serde_json::json!({"type": "app_mention", "channel": "C0DEPLOY", "user": "U0DEV",
                           "text": mention, "ts": ts, "event_ts": ts}),
    ))
    .await;
    // A last command; answers come in order, so everything before it is done.
    say(&fake, 6, "U0OPS", "!unfreeze").await;
    fake.wait_for_post("<@U0OPS> departures are not frozen")
        .await;
    assert_eq!(replies_to(&fake, "U0DEV"), 2, "one !status, one !help");
    assert_eq!(replies_to(&fake, BOT_USER), 0);

    // Across a restart the same event is still known.
    bot.stop().await;
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for("a second connection", |s| {
        (s.connections == 2).then_some(())
    })
    .await;
    fake.send_envelope(envelope::redelivery("env-1c", &status))
        .await;
    say(&fake, 7, "U0OPS", "!freeze").await;
    fake.wait_for_post("departures frozen by <@U0OPS>").await;
    assert_eq!(replies_to(&fake, "U0DEV"), 2);
    let texts: Vec<String> = fake.with(|s| s.calls.iter().map(|c| c.args.to_string()).collect());
    for t in texts {
        assert_no_tokens(&t);
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_train_is_approved_with_buttons_and_its_status_is_updated_in_place() {
    let fake = FakeSlack::start().await;
    fake.with(|s| s.emails.insert("alice@example.com".into(), ALICE.into()));
    let (_dir, repo, first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "Add the thing");
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;
    let second = commit(&repo, "Bob <bob@example.com>", "Fix the thing");
    fake.wait_for_post(&second).await;

    say(&fake, 1, OPS, "!depart").await;
    let status = fake.wait_for_post("train #1").await;
    assert_eq!(status.thread_ts(), None, "the status message is top-level");
    assert!(
        status.args["blocks"]
            .to_string()
            .contains("http://trainbot.test/runs/train-1")
    );
    let status_ts = status.ts.clone().unwrap();
    let departs = fake.wait_for_post("train #1 departs").await;
    assert_eq!(departs.thread_ts(), Some(status_ts.as_str()));

    let approval = fake
        .wait_for("the approval request", |s| {
            s.calls_to("chat.postMessage")
                .into_iter()
                .find(|c| c.has_buttons())
                .cloned()
        })
        .await;
    assert_eq!(approval.thread_ts(), Some(status_ts.as_str()));
    assert_eq!(approval.args["reply_broadcast"], true);
    assert!(
        approval.text().contains("<@U0ALICE>"),
        "{}",
        approval.text()
    );
    assert!(approval.text().contains("<@U0BOB>"), "{}", approval.text());
    let approval_ts = approval.ts.clone().unwrap();
    // Alice came from users.lookupByEmail, Bob from [people].
    let lookups: Vec<String> = fake.with(|s| {
        s.calls_to("users.lookupByEmail")
            .iter()
            .map(|c| c.args["email"].as_str().unwrap_or_default().to_string())
            .collect()
    });
    assert_eq!(lookups, ["alice@example.com"]);

    // Someone who is not an author: a private refusal.
    fake.send_envelope(envelope::click(
        "env-c1",
        "U0EVE",
        "good",
        "1",
        &approval_ts,
    ))
    .await;
    let refusal = fake
        .wait_for("an ephemeral refusal", |s| {
            s.calls_to("chat.postEphemeral").first().cloned().cloned()
        })
        .await;
    assert_eq!(refusal.args["user"], "U0EVE");
    assert!(
        refusal.text().contains("only the authors"),
        "{}",
        refusal.text()
    );

    fake.send_envelope(envelope::click("env-c2", ALICE, "good", "1", &approval_ts))
        .await;
    fake.wait_for("the approval message to show Alice", |s| {
        s.calls_to("chat.update")
            .into_iter()
            .find(|c| {
                c.args["ts"] == approval_ts.as_str()
                    && c.args["blocks"]
                        .to_string()
                        .contains("Approved by <@U0ALICE>.")
            })
            .map(|_| ())
    })
    .await;
    // The progress names people as mentions, never as raw ids.
    let progress = fake
        .wait_for_post("approved train #1 (1/2; waiting for")
        .await;
    assert_eq!(
        progress.text(),
        "👍 <@U0ALICE> approved train #1 (1/2; waiting for <@U0BOB>)"
    );
    // Bob clicks Good on a reminder in his DM with the bot: the same
    // button value, so it counts the same.
    let dm = fake_slack::dm_of(BOB);
    fake.send_envelope(envelope::click_in(
        (&dm, "directmessage"),
        "env-c3",
        BOB,
        "good",
        "1",
        "1700009000.000001",
    ))
    .await;
    let done = fake.wait_for_post("deployed").await;
    assert_eq!(done.thread_ts(), Some(status_ts.as_str()));
    fake.wait_for("the status to say deployed", |s| {
        s.calls_to("chat.update")
            .into_iter()
            .find(|c| c.args["ts"] == status_ts.as_str() && c.text().contains("deployed"))
            .map(|_| ())
    })
    .await;

    // One status message for the train, updated in place.
    let top_level = fake.with(|s| {
        s.calls_to("chat.postMessage")
            .iter()
            .filter(|c| c.thread_ts().is_none() && c.text().contains("train #1"))
            .count()
    });
    assert_eq!(top_level, 1);
    assert!(updates_of(&fake, &status_ts).len() >= 3);
    // The approval message lost its buttons once both approved.
    let last = updates_of(&fake, &approval_ts).pop().unwrap();
    assert!(!last.has_buttons());
    assert!(
        last.args["blocks"]
            .to_string()
            .contains("<@U0ALICE>, <@U0BOB>")
    );
    // A click on the closed request: its train has ended.
    fake.send_envelope(envelope::click("env-c4", ALICE, "bad", "1", &approval_ts))
        .await;
    let late = fake
        .wait_for("a second ephemeral", |s| {
            s.calls_to("chat.postEphemeral").get(1).cloned().cloned()
        })
        .await;
    assert_eq!(late.text(), "train #1 already ended");
    bot.stop().await;
}

/// The approval request of `train` (the message with its buttons).
async fn approval_of(fake: &FakeSlack, train: u64) -> Call {
    let needle = format!("train #{train} ");
    fake.wait_for("the approval request", |s| {
        s.calls_to("chat.postMessage")
            .into_iter()
            .find(|c| c.has_buttons() && c.text().contains(&needle))
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_click_of_an_ended_train_changes_nothing() {
    let fake = FakeSlack::start().await;
    fake.with(|s| s.emails.insert("alice@example.com".into(), ALICE.into()));
    let (_dir, repo, first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "Add the thing");
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;
    let second = commit(&repo, "Bob <bob@example.com>", "Fix the thing");
    fake.wait_for_post(&second).await;

    say(&fake, 1, OPS, "!depart").await;
    let old = approval_of(&fake, 1).await;
    let old_ts = old.ts.clone().unwrap();
    // The buttons carry their train's id.
    let buttons = old.args["blocks"].to_string();
    assert!(buttons.contains(r#""value":"1""#), "{buttons}");
    say(&fake, 2, OPS, "!cancel").await;
    fake.wait_for_post("train #1 cancelled").await;
    say(&fake, 3, OPS, "!depart").await;
    let new = approval_of(&fake, 2).await;
    let new_ts = new.ts.clone().unwrap();

    // Good and Bad on train #1's request while train #2 awaits approval.
    fake.send_envelope(envelope::click("env-s1", ALICE, "good", "1", &old_ts))
        .await;
    fake.send_envelope(envelope::click("env-s2", BOB, "bad", "1", &old_ts))
        .await;
    let answers = fake
        .wait_for("two ephemeral answers", |s| {
            let calls = s.calls_to("chat.postEphemeral");
            (calls.len() == 2).then(|| {
                calls
                    .iter()
                    .map(|c| {
                        (
                            c.args["user"].as_str().unwrap_or_default().to_string(),
                            c.text().to_string(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
    assert_eq!(
        answers,
        [
            (ALICE.to_string(), "train #1 already ended".to_string()),
            (BOB.to_string(), "train #1 already ended".to_string()),
        ]
    );
    // `!good 1` typed: the same answer, in the channel.
    say(&fake, 4, ALICE, "!good 1").await;
    fake.wait_for_post("train #1 already ended").await;

    // Train #2 was neither approved nor vetoed: both authors still count.
    fake.send_envelope(envelope::click("env-s3", ALICE, "good", "2", &new_ts))
        .await;
    fake.send_envelope(envelope::click("env-s4", BOB, "good", "2", &new_ts))
        .await;
    fake.wait_for_post("train #2 deployed").await;
    let said: Vec<String> = fake.with(|s| {
        s.calls_to("chat.postMessage")
            .iter()
            .map(|c| c.text().to_string())
            .collect()
    });
    assert!(!said.iter().any(|t| t.contains("vetoed")), "{said:#?}");
    assert!(
        !said.iter().any(|t| t.contains("train #1 deployed")),
        "{said:#?}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_build_has_one_status_message_with_its_steps_in_the_thread() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let first = commit(&repo, "Bob <bob@example.com>", "Add the thing");
    git(&repo, &["branch", "feature/x"]);
    let cfg = config(dir.path(), &repo, &fake);
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;

    say(&fake, 1, BOB, "!bb feature/x").await;
    let status = fake.wait_for_post("build 1 feature/x").await;
    assert_eq!(status.thread_ts(), None, "the status message is top-level");
    let status_ts = status.ts.clone().unwrap();
    assert!(
        status.args["blocks"]
            .to_string()
            .contains("http://trainbot.test/runs/build-1")
    );
    let done = fake.wait_for_post("good to merge").await;
    assert_eq!(done.thread_ts(), Some(status_ts.as_str()));
    fake.wait_for("the status to say good to merge", |s| {
        s.calls_to("chat.update")
            .into_iter()
            .find(|c| c.args["ts"] == status_ts.as_str() && c.text().contains("good to merge"))
            .map(|_| ())
    })
    .await;
    let (top_level, threaded) = fake.with(|s| {
        let posts = s.calls_to("chat.postMessage");
        let about = posts.iter().filter(|c| c.text().contains("build 1"));
        let top = about.clone().filter(|c| c.thread_ts().is_none()).count();
        let threaded = about
            .filter(|c| c.thread_ts() == Some(status_ts.as_str()))
            .count();
        (top, threaded)
    });
    assert_eq!(top_level, 1, "one status message for the build");
    assert!(
        threaded >= 4,
        "start, steps and end in the thread: {threaded}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_drops_mid_train_and_the_train_still_completes() {
    let fake = FakeSlack::start().await;
    fake.with(|s| s.emails.insert("alice@example.com".into(), ALICE.into()));
    let (_dir, _repo, first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "Only commit");
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;
    say(&fake, 1, OPS, "!depart").await;
    let approval = fake
        .wait_for("the approval request", |s| {
            s.calls_to("chat.postMessage")
                .into_iter()
                .find(|c| c.has_buttons())
                .cloned()
        })
        .await;
    let approval_ts = approval.ts.unwrap();

    // The connection dies without a goodbye: the client opens a new one.
    fake.drop_socket().await;
    fake.wait_for("a reconnect", |s| (s.connections == 2).then_some(()))
        .await;
    // Slack asks for a refresh: again a new one.
    fake.send_frame(envelope::disconnect()).await;
    fake.wait_for("a second reconnect", |s| (s.connections == 3).then_some(()))
        .await;
    // One more: the token check at start.
    let opens = fake.with(|s| s.calls_to("apps.connections.open").len());
    assert_eq!(opens, 4);

    fake.send_envelope(envelope::click("env-c1", ALICE, "good", "1", &approval_ts))
        .await;
    fake.wait_for_post("train #1 deployed").await;
    bot.stop().await;
}

/// The answer to `user` posted in the channel (top-level or not).
async fn answer_to(fake: &FakeSlack, user: &str, needle: &str) -> Call {
    let mention = format!("<@{user}> ");
    fake.wait_for(&format!("an answer to {user} with {needle:?}"), |s| {
        s.calls_to("chat.postMessage")
            .into_iter()
            .find(|c| c.text().starts_with(&mention) && c.text().contains(needle))
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slash_command_is_acked_at_once_and_answered_like_a_typed_command() {
    let fake = FakeSlack::start().await;
    let (_dir, _repo, first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "First");
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;

    fake.send_envelope(envelope::slash(
        "env-s1",
        fake_slack::CHANNEL_ID,
        "U0DEV",
        "status",
    ))
    .await;
    let (ack, took) = fake.ack_of("env-s1").unwrap();
    assert!(took < Duration::from_secs(3), "acked after {took:?}");
    assert_eq!(ack.get("payload"), None, "a bare ack: {ack}");
    let status = answer_to(&fake, "U0DEV", "waiting").await;
    assert_eq!(status.args["channel"], fake_slack::CHANNEL_ID);
    assert_eq!(status.thread_ts(), None);
    assert!(status.text().contains(&first), "{}", status.text());

    // `/trainbot` alone is help.
    fake.send_envelope(envelope::slash(
        "env-s2",
        fake_slack::CHANNEL_ID,
        "U0DEV",
        "",
    ))
    .await;
    answer_to(&fake, "U0DEV", "commands:").await;

    // Outside the bot's channels: the ack says where it works; nothing runs.
    fake.send_envelope(envelope::slash("env-s3", "C0OTHER", "U0DEV", "freeze"))
        .await;
    let (ack, _) = fake.ack_of("env-s3").unwrap();
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    let text = ack["payload"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("#deploys"), "{text}");
    say(&fake, 4, OPS, "!unfreeze").await;
    fake.wait_for_post("<@U0OPS> departures are not frozen")
        .await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_typed_in_a_thread_is_answered_in_that_thread() {
    let fake = FakeSlack::start().await;
    let (_dir, _repo, first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "First");
    let bot = Bot::with_tokens(&cfg);
    let allocated = fake.wait_for_post(&first).await;
    let parent = allocated.ts.clone().unwrap();

    fake.send_envelope(envelope::thread_message(
        "env-t1",
        "EvT1",
        "U0DEV",
        "!status",
        "1700002000.000001",
        &parent,
    ))
    .await;
    let answer = answer_to(&fake, "U0DEV", "waiting").await;
    assert_eq!(answer.thread_ts(), Some(parent.as_str()));
    // A refusal goes to the thread too; a top-level command stays top-level.
    fake.send_envelope(envelope::thread_message(
        "env-t2",
        "EvT2",
        "U0DEV",
        "!freeze",
        "1700002000.000002",
        &parent,
    ))
    .await;
    let refusal = answer_to(&fake, "U0DEV", "ops").await;
    assert_eq!(
        refusal.thread_ts(),
        Some(parent.as_str()),
        "{}",
        refusal.text()
    );
    say(&fake, 3, "U0DEV", "!help").await;
    let help = answer_to(&fake, "U0DEV", "commands:").await;
    assert_eq!(help.thread_ts(), None);
    bot.stop().await;
}

/// The `views.publish` calls for `user`, as their blocks' text.
fn home_views(fake: &FakeSlack, user: &str) -> Vec<String> {
    fake.with(|s| {
        s.calls_to("views.publish")
            .into_iter()
            .filter(|c| c.args["user_id"] == user)
            .map(|c| {
                assert_eq!(c.args["view"]["type"], "home", "{}", c.args);
                c.args["view"]["blocks"].to_string()
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_tab_is_published_when_opened_and_again_when_the_train_moves() {
    let fake = FakeSlack::start().await;
    fake.with(|s| s.emails.insert("alice@example.com".into(), ALICE.into()));
    let (_dir, _repo, first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "Add the thing");
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;

    fake.send_envelope(envelope::home_opened("env-h1", "EvH1", ALICE))
        .await;
    let opened = fake
        .wait_for("the Home tab", |s| {
            s.calls_to("views.publish").first().map(|c| c.args.clone())
        })
        .await;
    assert_eq!(opened["user_id"], ALICE);
    let blocks = opened["view"]["blocks"].to_string();
    assert!(blocks.contains("no train running"), "{blocks}");
    assert!(blocks.contains(&format!("waiting: {first}")), "{blocks}");
    assert!(
        blocks.contains("production: nothing deployed yet"),
        "{blocks}"
    );

    say(&fake, 1, OPS, "!depart").await;
    fake.wait_for("the Home tab at the approval", |s| {
        s.calls_to("views.publish")
            .into_iter()
            .find(|c| {
                let b = c.args["view"]["blocks"].to_string();
                b.contains("train #1") && b.contains("must approve: <@U0ALICE>")
            })
            .map(|_| ())
    })
    .await;
    let approval = approval_of(&fake, 1).await;
    fake.send_envelope(envelope::click(
        "env-c1",
        ALICE,
        "good",
        "1",
        approval.ts.as_deref().unwrap(),
    ))
    .await;
    fake.wait_for_post("train #1 deployed").await;
    fake.wait_for("the Home tab after the deploy", |s| {
        s.calls_to("views.publish")
            .iter()
            .any(|c| {
                c.args["view"]["blocks"]
                    .to_string()
                    .contains(&format!("production: {first}"))
            })
            .then_some(())
    })
    .await;
    assert!(home_views(&fake, ALICE).len() >= 3);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_exits_2_naming_the_variable() {
    let fake = FakeSlack::start().await;
    let (_dir, _repo, _first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "First");
    let (status, out) = Bot::spawn(&cfg, &[("SLACK_BOT_TOKEN", BOT_TOKEN)])
        .exit()
        .await;
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("SLACK_APP_TOKEN"), "{out}");
    assert_no_tokens(&out);
    let (status, out) = Bot::spawn(
        &cfg,
        &[("SLACK_BOT_TOKEN", ""), ("SLACK_APP_TOKEN", APP_TOKEN)],
    )
    .exit()
    .await;
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("SLACK_BOT_TOKEN"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_exits_2_saying_invalid_auth() {
    let fake = FakeSlack::start().await;
    fake.with(|s| s.invalid_auth = true);
    let (_dir, _repo, _first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "First");
    let (status, out) = Bot::with_tokens(&cfg).exit().await;
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("SLACK_BOT_TOKEN: invalid_auth"), "{out}");
    assert_no_tokens(&out);

    fake.with(|s| s.invalid_auth = false);
    let wrong_app = [
        ("SLACK_BOT_TOKEN", BOT_TOKEN),
        ("SLACK_APP_TOKEN", "xapp-revoked"),
    ];
    let (status, out) = Bot::spawn(&cfg, &wrong_app).exit().await;
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("SLACK_APP_TOKEN: invalid_auth"), "{out}");
    assert!(!out.contains("xapp-revoked"), "{out}");
}

/// SPEC §14: an author who has not answered is reminded in a direct
/// message that carries the train's buttons, and a click there counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_is_a_direct_message_whose_buttons_count() {
    let fake = FakeSlack::start().await;
    fake.with(|s| s.emails.insert("alice@example.com".into(), ALICE.into()));
    let (_dir, _repo, first, cfg) = one_commit(&fake, "Bob <bob@example.com>", "Add the thing");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "environments = [\"staging\"]",
        "environments = [\"staging\"]\nremind_after = \"2s\"\napproval_timeout = \"30m\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let bot = Bot::with_tokens(&cfg);
    fake.wait_for_post(&first).await;
    say(&fake, 1, OPS, "!depart").await;
    fake.wait_for_post("must approve").await;

    let dm = fake_slack::dm_of(BOB);
    let reminder = fake
        .wait_for("a reminder in Bob's DM", |s| {
            s.calls_to("chat.postMessage")
                .into_iter()
                .find(|c| c.args["channel"] == dm.as_str() && c.has_buttons())
                .cloned()
        })
        .await;
    assert!(reminder.text().contains("train #1"), "{}", reminder.text());
    let opened = fake.with(|s| {
        s.calls_to("conversations.open")
            .iter()
            .any(|c| c.args["users"].to_string().contains(BOB))
    });
    assert!(opened, "the DM was opened with conversations.open");
    let value = reminder.args["blocks"].to_string();
    assert!(
        value.contains("\\\"value\\\":\\\"1\\\"") || value.contains("\"value\":\"1\""),
        "{value}"
    );

    fake.send_envelope(envelope::click_in(
        (&dm, "directmessage"),
        "env-dm1",
        BOB,
        "good",
        "1",
        reminder.ts.as_deref().unwrap_or("1700009000.000001"),
    ))
    .await;
    fake.wait_for_post("deployed").await;
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_freezes_name_people_as_mentions_never_raw_ids() {
    let fake = FakeSlack::start().await;
    let (_dir, _repo, _first, cfg) = one_commit(&fake, "Alice <alice@example.com>", "First");
    let bot = Bot::with_tokens(&cfg);

    say(&fake, 1, OPS, "!lock staging db migration").await;
    fake.wait_for_post(&format!("🔒 staging locked by <@{OPS}>"))
        .await;
    say(&fake, 2, "U0DEV", "!locks").await;
    fake.wait_for_post(&format!("🔒 staging by <@{OPS}>: db migration"))
        .await;
    say(&fake, 3, "U0DEV", "!unlock staging").await;
    fake.wait_for_post(&format!(
        "only <@{OPS}> (who locked staging) or ops can !unlock it"
    ))
    .await;
    let raw = fake.with(|s| {
        s.calls_to("chat.postMessage")
            .iter()
            .map(|c| c.text().to_string())
            .filter(|t| t.contains(OPS) && !t.contains(&format!("<@{OPS}>")))
            .collect::<Vec<_>>()
    });
    assert!(raw.is_empty(), "raw ids in {raw:?}");
    bot.stop().await;
}
