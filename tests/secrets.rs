//! SPEC §13 masking, end to end: secrets the bot knows — the token and
//! password in an http step's URL, the same token echoed by a shell step —
//! never leave the bot; `***` stands where they were. Checked in every sink:
//! chat (the console), stderr, step log files, `/api/status`, run pages,
//! `/audit` and the dashboard.

#[path = "support/fake_github.rs"]
mod fake_github;
#[path = "support/fake_slack.rs"]
mod fake_slack;
mod support;

/// The upper bound of every wait on the fake Slack.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use fake_github::FakeGithub;
use fake_slack::{APP_TOKEN, BOT_TOKEN, FakeSlack, envelope};
use support::http::http_get;
use support::{Bot, BotConfig, GITHUB_TOKEN_ENV, Sandbox, WEBHOOK_SECRET_ENV, free_port};

/// In the URL's path: looks like a GitHub token.
const PATH_TOKEN: &str = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2";
/// A query value.
const QUERY_TOKEN: &str = "qt-5ecret-7781";
/// The URL's user info password.
const PASSWORD: &str = "pw-s3cret-9911";
const SECRETS: [&str; 3] = [PATH_TOKEN, QUERY_TOKEN, PASSWORD];

/// Answers every request with 500 and a body that echoes the request line
/// (path and query: the tokens), as a careless server would.
fn echoing_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let answer = format!("refused: {}\n", request_line.trim());
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    port
}

fn all_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "log") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} shows in {what}:\n{text}");
    }
}

#[test]
fn secrets_of_steps_never_show_in_chat_logs_or_pages() {
    let server = echoing_server();
    let port = free_port();
    let url = format!(
        "http://deployer:{PASSWORD}@127.0.0.1:{server}/deploy/{PATH_TOKEN}?token={QUERY_TOKEN}&env=staging"
    );
    let sandbox = Sandbox::new();
    let config = BotConfig {
        http_port: port,
        extra: format!(
            "[branch_builds]\nnodes = [\"n1\"]\nnode_url = \"http://{{node}}.test\"\n\
             checks = [{{ run = \"echo checking with {PATH_TOKEN}; exit 1\" }}]\n\
             deploy = [{{ run = \"true\" }}]\nsmoke = [{{ run = \"true\" }}]"
        ),
        ..BotConfig::default()
    };
    // Staging deploys with a shell step that prints the token, then the
    // http step whose server answers 500 with the URL.
    let text = config.render().replacen(
        "[environments.staging]\ndeploy = [",
        &format!(
            "[environments.staging]\ndeploy = [{{ run = \"echo deploying with {QUERY_TOKEN}\" }}, {{ http = \"{url}\" }}, "
        ),
        1,
    );
    assert!(text.contains(&url), "{text}");
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).unwrap();

    let mut bot = Bot::spawn(&path);
    bot.expect_allocated(&sandbox.repo.head());
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);

    bot.ask("!depart", "🚂 train #1 departs");
    let failed = bot.expect("❌ train #1 failed in staging deploy");
    assert!(failed.contains("HTTP 500"), "{failed}");
    assert!(failed.contains("/deploy/***?token=***&env=***"), "{failed}");

    sandbox.repo.branch("a");
    sandbox.repo.commit_on("a", "alice", "branch a work");
    bot.ask("!bb a", "🔧 build");
    bot.expect("failed in");

    // The tail of the failing step in chat: the server's echo, masked.
    let chat = bot.said("");
    let chat = chat.join("\n");
    assert!(
        chat.contains("refused: POST /deploy/***?token=***&env=staging"),
        "the echoed URL is not in chat, masked:\n{chat}"
    );
    assert!(chat.contains("checking with ***"), "{chat}");
    assert_clean("chat", &chat);

    let mut logs = Vec::new();
    all_files(&sandbox.path().join("data"), &mut logs);
    let all_logs: String = logs.iter().map(|(p, t)| format!("{p}:\n{t}\n")).collect();
    assert!(all_logs.contains("deploying with ***"), "{all_logs}");
    assert!(
        all_logs.contains("refused: POST /deploy/***?token=***&env=staging"),
        "{all_logs}"
    );
    assert!(all_logs.contains("checking with ***"), "{all_logs}");
    assert_clean("step logs", &all_logs);

    let mut pages = String::new();
    for page in [
        "/",
        "/api/status",
        "/audit",
        "/runs/train-1",
        "/runs/build-1",
    ] {
        let (status, text) = http_get(port, page).expect("the bot answers");
        assert_eq!(status, 200, "{page}: {text}");
        assert_clean(page, &text);
        pages.push_str(&text);
    }
    assert!(pages.contains("deploying with ***"), "{pages}");
    // The raw logs, as the web streams them.
    for (path, _) in &logs {
        let Some(rel) = path.rsplit_once("/logs/").map(|(_, rel)| rel) else {
            continue;
        };
        let Some((run, step)) = rel.trim_end_matches(".log").split_once('/') else {
            continue;
        };
        let (status, text) = http_get(port, &format!("/runs/{run}/logs/{step}")).expect("raw log");
        assert_eq!(status, 200, "{path}: {text}");
        assert_clean(path, &text);
    }

    assert_clean("stderr", &bot.log());
    bot.stop();
}

/// The Slack tokens are real inputs here: read from the environment,
/// registered, and masked in everything the bot sends to Slack and prints —
/// a failing branch build whose step prints the bot token (pasted into its
/// own command, as a careless config would) shows `***` in its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_tokens_never_reach_slack_or_the_logs() {
    let fake = FakeSlack::start().await;
    let sandbox = Sandbox::new();
    let port = free_port();
    let text = format!(
        r##"
[bot]
data_dir = "./data"
http_listen = "127.0.0.1:{port}"
public_url = "http://trainbot.test"

[chat]
adapter = "slack"

[chat.slack]
channel = "#deploys"
api_url = "{api}/"

[forge]
poll_interval = "100ms"

[forge.git]
path = "repo"

[train]
schedule = "0 0 0 1 1 * 2099"
environments = ["staging"]

[environments.staging]
deploy = [{{ run = "true" }}]
acceptance = [{{ run = "true" }}]

[production]
deploy = [{{ run = "true" }}]
smoke = [{{ run = "true" }}]

[branch_builds]
nodes = ["n1"]
checks = [{{ run = "echo calling slack with {BOT_TOKEN}; echo app {APP_TOKEN}; exit 1" }}]
deploy = [{{ run = "true" }}]
"##,
        api = fake.api_url,
    );
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).unwrap();
    let bot = Bot::spawn_with_env(
        &path,
        &[
            ("SLACK_BOT_TOKEN", BOT_TOKEN),
            ("SLACK_APP_TOKEN", APP_TOKEN),
            ("RUST_LOG", "debug"),
        ],
    );
    fake.wait_for_post("is on main").await;
    sandbox.repo.branch("a");
    sandbox.repo.commit_on("a", "alice", "branch a work");
    let env = envelope::message("env-1", "Ev1", "U0ALICE", "!bb a", "1700001000.000001");
    fake.send_envelope(env).await;
    let failed = fake.wait_for_post("failed in").await;
    fake.wait_for_post("calling slack with ***").await;

    let calls = fake.with(|s| {
        s.calls_to("chat.postMessage")
            .into_iter()
            .chain(s.calls_to("chat.update"))
            .chain(s.calls_to("chat.postEphemeral"))
            .map(|c| c.args.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert!(calls.contains("app ***"), "{calls}");
    for token in [BOT_TOKEN, APP_TOKEN] {
        assert!(!calls.contains(token), "{token} sent to Slack:\n{calls}");
        assert!(!failed.args.to_string().contains(token));
    }

    let mut logs = Vec::new();
    all_files(&sandbox.path().join("data"), &mut logs);
    let all_logs: String = logs.iter().map(|(p, t)| format!("{p}:\n{t}\n")).collect();
    assert!(all_logs.contains("calling slack with ***"), "{all_logs}");
    let mut pages = all_logs;
    for page in ["/", "/api/status", "/audit", "/runs/build-1"] {
        let (_, text) = http_get(port, page).expect("the bot answers");
        pages.push_str(&text);
    }
    let stderr = bot.log();
    for token in [BOT_TOKEN, APP_TOKEN] {
        assert!(!pages.contains(token), "{token} in logs or pages:\n{pages}");
        assert!(!stderr.contains(token), "{token} in stderr:\n{stderr}");
    }
    drop(bot);
}

/// The GitHub token and the webhook secret, read from the environment on
/// the github forge, are masked too: a deploy step that prints them (pasted
/// into its own command) shows `***` in chat, its log and the pages.
#[test]
fn the_github_token_and_webhook_secret_never_show() {
    const TOKEN: &str = "ghp_maskTest_Z9y8X7w6V5u4";
    const HOOK_SECRET: &str = "hook-secret-5521";
    let fake = FakeGithub::start("acme", "web", TOKEN);
    let sandbox = Sandbox::new();
    let port = free_port();
    let config = BotConfig {
        github: Some(fake.api_url()),
        http_port: port,
        ..BotConfig::default()
    };
    let text = config.render().replacen(
        "[environments.staging]\ndeploy = [",
        &format!(
            "[environments.staging]\ndeploy = [{{ run = \"echo gh {TOKEN} hook {HOOK_SECRET}; exit 1\" }}, "
        ),
        1,
    );
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).unwrap();
    let mut bot = Bot::spawn_with_env(
        &path,
        &[(GITHUB_TOKEN_ENV, TOKEN), (WEBHOOK_SECRET_ENV, HOOK_SECRET)],
    );
    bot.expect_allocated(&fake.head("main"));
    bot.ask("!depart", "🚂 train #1 departs");
    bot.expect("| gh *** hook ***");
    bot.expect("❌ train #1 failed in staging deploy");

    let mut everything = bot.said("").join("\n");
    let mut logs = Vec::new();
    all_files(&sandbox.path().join("data"), &mut logs);
    for (_, text) in &logs {
        everything.push_str(text);
    }
    assert!(everything.contains("echo gh *** hook ***"), "{everything}");
    for page in ["/", "/api/status", "/audit", "/runs/train-1"] {
        let (_, text) = http_get(port, page).expect("the bot answers");
        everything.push_str(&text);
    }
    everything.push_str(&bot.log());
    for secret in [TOKEN, HOOK_SECRET] {
        assert!(
            !everything.contains(secret),
            "{secret} shows:\n{everything}"
        );
    }
    bot.stop();
}

/// A step secret (`env = { T = { secret_env = … } }`) printed by its step —
/// whole, and in two writes with a pause between them, so that it reaches
/// the bot in two reads — shows `***` in chat, the step log and the pages.
#[test]
fn a_step_secret_printed_by_its_step_is_masked_even_in_pieces() {
    const STEP_SECRET: &str = "step-S3cret-4242";
    let sandbox = Sandbox::new();
    let port = free_port();
    let config = BotConfig {
        http_port: port,
        ..BotConfig::default()
    };
    let run = "echo deploying with $T; printf 'split step-S3c'; sleep 0.3; printf 'ret-4242 end\\n'; exit 1";
    let text = config.render().replacen(
        "[environments.staging]\ndeploy = [",
        &format!(
            "[environments.staging]\ndeploy = [{{ run = \"{run}\", env = {{ T = {{ secret_env = \"TRAINBOT_TEST_STEP_SECRET\" }} }} }}, "
        ),
        1,
    );
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).unwrap();
    let mut bot = Bot::spawn_with_env(&path, &[("TRAINBOT_TEST_STEP_SECRET", STEP_SECRET)]);
    bot.expect_allocated(&sandbox.repo.head());
    bot.ask("!depart", "🚂 train #1 departs");
    bot.expect("| deploying with ***");
    bot.expect("| split *** end");
    bot.expect("❌ train #1 failed in staging deploy");

    let mut everything = bot.said("").join("\n");
    let mut logs = Vec::new();
    all_files(&sandbox.path().join("data"), &mut logs);
    let all_logs: String = logs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        all_logs.contains("deploying with ***\nsplit *** end"),
        "{all_logs}"
    );
    everything.push_str(&all_logs);
    for page in ["/", "/api/status", "/audit", "/runs/train-1"] {
        let (_, text) = http_get(port, page).expect("the bot answers");
        everything.push_str(&text);
    }
    everything.push_str(&bot.log());
    assert!(
        !everything.contains(STEP_SECRET),
        "the step secret shows:\n{everything}"
    );
    bot.stop();
}
