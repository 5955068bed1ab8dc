//! Several pipelines in one bot (SPEC §16) end to end: the real binary, two
//! real git repositories (`web/` and `api/`), the console.

mod support;

use std::path::{Path, PathBuf};

use support::golden::{copy_store, golden_repo};
use support::{Bot, TestRepo, free_port, run_to_end, short};

/// Every step records `PIPELINE ENV SHA` in `deploys.txt`: steps run in the
/// config's directory and see `TRAINBOT_PIPELINE`.
const RECORD: &str = r#"echo \"$TRAINBOT_PIPELINE $TRAINBOT_ENV $TRAINBOT_SHA\" >> deploys.txt"#;

/// A step that records, then waits for the file `release-NAME` (bounded, so
/// a failed test leaves no process behind for long).
fn blocking(name: &str) -> String {
    format!(
        r#"{RECORD}; i=0; while [ ! -e release-{name} ]; do sleep 0.05; i=$((i+1)); [ $i -lt 1200 ] || exit 1; done"#
    )
}

/// The top-level defaults of a two-pipeline config (console, one staging
/// environment, all authors approve, ops is the console user), then
/// `pipelines`: the `[pipelines.*]` tables as written.
fn config_text(http_port: u16, pipelines: &str) -> String {
    format!(
        r#"[bot]
data_dir = "./data"
http_listen = "127.0.0.1:{http_port}"
public_url = "http://127.0.0.1:{http_port}"

[chat]
adapter = "console"
console_user = "local"

[forge]
kind = "git"
main_branch = "main"
poll_interval = "100ms"

[train]
schedule = "0 0 0 1 1 *"
timezone = "UTC"
approval = "all-authors"
approval_timeout = "30m"
environments = ["staging"]

[environments.staging]
deploy = [{{ run = "{RECORD}" }}]
acceptance = [{{ run = "test -n \"$TRAINBOT_PIPELINE\"" }}]

[production]
deploy = [{{ run = "{RECORD}" }}]
smoke = [{{ run = "true" }}]

[roles]
ops = ["local"]

{pipelines}"#
    )
}

/// `[pipelines.web]` and `[pipelines.api]` on the repositories `web/` and
/// `api/`; web's staging deploy waits for `release-web`, api's production
/// deploy for `release-api`.
const TWO_BLOCKING: &str = r#"[pipelines.web]
forge.git.path = "web"

[pipelines.web.environments.staging]
deploy = [{ run = "BLOCK_WEB" }]

[pipelines.api]
forge.git.path = "api"

[pipelines.api.production]
deploy = [{ run = "BLOCK_API" }]
"#;

const TWO_PLAIN: &str = r#"[pipelines.web]
forge.git.path = "web"

[pipelines.api]
forge.git.path = "api"
"#;

/// A temp dir with two repositories, `web/` and `api/`, each with alice's
/// root commit, and `bot.toml`.
struct Two {
    dir: tempfile::TempDir,
    web: TestRepo,
    api: TestRepo,
}

impl Two {
    fn new() -> Two {
        let dir = tempfile::Builder::new()
            .prefix("trainbot-e2e-")
            .tempdir()
            .expect("temp dir");
        let web = TestRepo::init(&dir.path().join("web"));
        let api = TestRepo::init(&dir.path().join("api"));
        Two { dir, web, api }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.path().join("bot.toml");
        std::fs::write(&path, text).expect("write bot.toml");
        path
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.path().join(name), "").expect("touch");
    }

    fn deploys(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("deploys.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A bot on both repositories, with a commit by `web_author` on web and
    /// one by `api_author` on api, both allocated after the root commits.
    fn bot_with_commits(
        &self,
        config: &str,
        web_author: &str,
        api_author: &str,
    ) -> (Bot, String, String) {
        let path = self.write_config(config);
        let mut bot = Bot::spawn(&path);
        bot.expect_each(&[
            &format!("[web] 📥 {}", short(&self.web.head())),
            &format!("[api] 📥 {}", short(&self.api.head())),
        ]);
        let web = self.web.commit(web_author, "Make the widget blue");
        bot.expect(&format!("[web] 📥 {}", short(&web)));
        let api = self.api.commit(api_author, "Speed up the index");
        bot.expect(&format!("[api] 📥 {}", short(&api)));
        (bot, web, api)
    }
}

fn two_blocking() -> String {
    TWO_BLOCKING
        .replace("BLOCK_WEB", &blocking("web"))
        .replace("BLOCK_API", &blocking("api"))
}

#[test]
fn two_pipelines_run_their_trains_at_once_and_commands_find_their_pipeline() {
    let two = Two::new();
    let (mut bot, web, api) =
        two.bot_with_commits(&config_text(0, &two_blocking()), "bob", "carol");

    bot.ask("!depart web", "[web] 🚂 train web#1 departs");
    bot.expect("[web] train web#1 ▶ staging deploy started");
    // web's staging deploy now waits for release-web: api's train goes all
    // the way to its approval meanwhile.
    bot.ask("!depart api", "[api] 🚂 train api#1 departs");
    bot.expect("[api] train api#1 ✔ staging acceptance passed");
    bot.expect("[api] 🙋 train api#1");
    // The approval's last line: nothing of api is on its way to stdout now.
    bot.expect("Carol <carol@example.com>: type `@carol !good`");
    assert!(
        bot.said("web#1 ✔ staging").is_empty(),
        "web's train is still in its staging deploy"
    );

    // !status names its pipeline; without one it asks which.
    let before = bot.said("").len();
    let status = bot.ask("!status web", "train web#1");
    assert!(status.starts_with("trainbot> [web] "), "{status}");
    bot.ask(
        "!status",
        "Which pipeline? api, web — name it first, e.g. `!status api`",
    );
    let said = bot.said("");
    let reply = &said[before..said.len() - 1];
    assert!(
        reply.iter().all(|l| !l.contains("api")),
        "web's status says nothing of api: {reply:#?}"
    );

    // web goes on to its approval: both trains ask, each its own author.
    two.touch("release-web");
    bot.expect("[web] train web#1 ✔ staging acceptance passed");
    bot.expect("[web] 🙋 train web#1");
    // carol is asked by api only: her !good goes there. alice (the root
    // commit's author) is asked by both: she must say which.
    bot.ask("@carol !good", "[api] 👍 carol approved train api#1");
    bot.ask(
        "@alice !good",
        "@alice: Which pipeline? api, web — name it first",
    );
    // A train's label names its pipeline.
    bot.ask("@alice !good api#1", "[api] 👍 alice approved train api#1");
    bot.expect("[api] train api#1 ▶ production deploy started");
    // bob is asked by web only: his veto stops web while api deploys.
    bot.ask(
        "@bob !bad breaks login",
        "[web] ⛔ train web#1 vetoed by bob",
    );
    two.touch("release-api");
    bot.expect(&format!("[api] ✅ train api#1 deployed {}", short(&api)));
    bot.ask("!status api", "[api]");
    bot.expect(&format!("production: {} (train api#1", short(&api)));
    bot.ask("!status web", "[web]");
    bot.expect("production: nothing deployed yet");

    let mut deploys = two.deploys();
    deploys.sort();
    assert_eq!(
        deploys,
        vec![
            format!("api production {api}"),
            format!("api staging {api}"),
            format!("web staging {web}"),
        ],
        "steps see TRAINBOT_PIPELINE; nothing of web reached production"
    );
    bot.stop();
}

#[test]
fn use_makes_a_pipeline_the_console_default() {
    let two = Two::new();
    let (mut bot, _web, api) = two.bot_with_commits(&config_text(0, TWO_PLAIN), "bob", "carol");
    bot.ask(
        "!help use",
        "!use <pipeline> — commands here that name no pipeline go to it",
    );
    bot.ask("!use api", "Commands here go to api now.");
    bot.ask("!depart", "[api] 🚂 train api#1 departs");
    bot.expect("[api] 🙋 train api#1");
    // A named pipeline still wins over the default.
    bot.ask("!status web", "[web] no train running");
    bot.ask(
        "!use nope",
        "Usage: !use <pipeline> — pipelines here: api, web",
    );
    bot.ask("@carol !good", "[api] 👍 carol approved train api#1");
    // alice approves too; her !good goes to the default, api.
    bot.ask(
        "@alice !good",
        &format!("[api] ✅ train api#1 deployed {}", short(&api)),
    );
    assert!(bot.said("web#1").is_empty(), "web never departed");
    bot.stop();
    // The default outlives a restart.
    let mut bot = Bot::spawn(&two.path().join("bot.toml"));
    bot.ask("!history", "[api] ");
    bot.stop();
}

#[test]
fn check_names_the_pipeline_key_and_line_of_a_bad_value() {
    let two = Two::new();
    let pipelines = format!("{TWO_PLAIN}train.schedule = \"every tuesday\"\n");
    let text = config_text(0, &pipelines);
    let line = text
        .lines()
        .position(|l| l.starts_with("train.schedule"))
        .expect("the bad line")
        + 1;
    let path = two.write_config(&text);
    let (status, stdout, stderr) = run_to_end(
        &["--config", &path.display().to_string(), "check"],
        two.path(),
    );
    assert_eq!(status.code(), Some(2), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("line {line}: pipelines.api.train.schedule: ")),
        "{stderr}"
    );

    // A bad default is named by its top-level key, wherever it is used.
    let text = config_text(0, TWO_PLAIN).replace(
        r#"approval_timeout = "30m""#,
        r#"approval_timeout = "soon""#,
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("approval_timeout"))
        .expect("the bad line")
        + 1;
    let path = two.write_config(&text);
    let (status, _, stderr) = run_to_end(
        &["--config", &path.display().to_string(), "check"],
        two.path(),
    );
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("line {line}: train.approval_timeout: ")),
        "{stderr}"
    );
}

/// A store written by the single-pipeline version opens under a config of
/// several pipelines: the one named after its repository (the git forge's
/// directory `web/`) keeps its history, approvals, production SHA, freeze
/// and lock, and its numbering; the new pipeline starts empty.
#[test]
fn the_golden_store_opens_as_the_pipeline_named_after_its_repository() {
    let dir = tempfile::Builder::new()
        .prefix("trainbot-e2e-")
        .tempdir()
        .expect("temp dir");
    let golden = golden_repo(&dir.path().join("web"), |_, _| {});
    // Only web is named after its repository: api's is `api-service/`.
    let api = TestRepo::init(&dir.path().join("api-service"));
    copy_store(dir.path());
    let port = free_port();
    // The golden scenario's three environments, for both pipelines.
    let pipelines = TWO_PLAIN.replace(r#""api""#, r#""api-service""#);
    let mut text = config_text(port, &pipelines).replace(
        r#"environments = ["staging"]"#,
        r#"environments = ["staging", "preview", "preprod"]"#,
    );
    for env in ["preview", "preprod"] {
        text.push_str(&format!(
            "\n[environments.{env}]\ndeploy = [{{ run = \"{RECORD}\" }}]\n"
        ));
    }
    let path = dir.path().join("bot.toml");
    std::fs::write(&path, text).expect("bot.toml");
    let mut bot = Bot::spawn(&path);
    bot.expect(&format!("[api] 📥 {}", short(&api.head())));

    bot.ask("!status web", "[web] no train running");
    bot.expect(&format!(
        "waiting: {}, {}",
        short(&golden.vetoed),
        short(&golden.waiting)
    ));
    bot.expect("locked: preview by local (db migration)");
    bot.expect("frozen by local: release week");
    bot.expect(&format!(
        "production: {} (train web#1",
        short(&golden.deployed)
    ));
    bot.ask("!history web", "[web] last 1 production deploy:");
    let line = bot.expect(&format!("train web#1 {}", short(&golden.deployed)));
    assert!(line.contains("approved by: alice, bob"), "{line}");
    bot.ask(&format!("!why web {}", short(&golden.vetoed)), "web#2");

    // api has nothing of it.
    bot.ask("!status api", "[api] no train running");
    bot.expect("production: nothing deployed yet");
    bot.ask("!locks api", "[api] no environment is locked");

    let status = support::http::http_get_json(port, "/api/status");
    let pipelines = status["pipelines"].as_object().expect("pipelines");
    let mut names: Vec<&String> = pipelines.keys().collect();
    names.sort();
    assert_eq!(names, ["api", "web"], "{status}");
    assert_eq!(
        status["pipelines"]["web"]["production_sha"],
        golden.deployed.as_str()
    );
    assert_eq!(status["pipelines"]["web"]["frozen"]["by"], "local");
    assert!(
        status["pipelines"]["api"]["production_sha"].is_null(),
        "{status}"
    );
    assert!(status["pipelines"]["api"]["frozen"].is_null(), "{status}");
    let web = support::http::http_get_json(port, "/p/web/api/status");
    assert_eq!(web["production_sha"], golden.deployed.as_str(), "{web}");
    let (code, metrics) = support::http::http_get(port, "/metrics").expect("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains(r#"pipeline="web""#), "{metrics}");
    assert!(metrics.contains(r#"pipeline="api""#), "{metrics}");
    assert!(
        metrics.contains("trainbot_frozen{pipeline=\"web\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trainbot_frozen{pipeline=\"api\"} 0"),
        "{metrics}"
    );
    assert_eq!(
        metrics.matches("# TYPE trainbot_frozen ").count(),
        1,
        "{metrics}"
    );

    // Only web is frozen: !unfreeze goes there. Its next train continues
    // its numbering; api's first train is api#1.
    bot.ask("!unfreeze", "[web] departures resumed by local");
    bot.ask("!depart web", "[web] 🚂 train web#3 departs");
    bot.ask("!cancel web", "[web] 🛑 train web#3 cancelled by local");
    bot.ask("!depart api", "[api] 🚂 train api#1 departs");
    bot.ask("!cancel api", "[api] 🛑 train api#1 cancelled by local");
    assert!(bot.said("set aside").is_empty());
    bot.stop();

    // A second start takes the same pipeline as the heir (it is recorded).
    let mut bot = Bot::spawn(&path);
    bot.ask("!history web", "[web] last 1 production deploy:");
    bot.ask("!status api", "[api] no train running");
    bot.stop();
}

/// The upper bound of the fake Slack's waits.
const TIMEOUT: std::time::Duration = support::TIMEOUT;

#[path = "support/fake_slack.rs"]
mod fake_slack;

/// The real binary against the fake Slack; killed when dropped.
struct SlackBot {
    child: std::process::Child,
    stderr: PathBuf,
}

impl SlackBot {
    fn spawn(config: &Path) -> SlackBot {
        let stderr = config.with_file_name("bot.stderr");
        let child = std::process::Command::new(support::BIN)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("SLACK_BOT_TOKEN", fake_slack::BOT_TOKEN)
            .env("SLACK_APP_TOKEN", fake_slack::APP_TOKEN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn trainbot");
        SlackBot { child, stderr }
    }

    /// SIGTERM; the bot must exit 0.
    async fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bot did not exit"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit {status}");
    }
}

impl Drop for SlackBot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            eprintln!("--- trainbot stderr ---\n{log}");
        }
    }
}

/// Every message posted to `channel` (an id), in order.
fn posts_in(fake: &fake_slack::FakeSlack, channel: &str) -> Vec<String> {
    fake.with(|s| {
        s.calls_to("chat.postMessage")
            .into_iter()
            .filter(|c| c.args["channel"] == channel)
            .map(|c| c.text().to_string())
            .collect()
    })
}

/// A posted message in `channel` containing `needle`.
async fn post_in(fake: &fake_slack::FakeSlack, channel: &str, needle: &str) -> String {
    let what = format!("a message in {channel} containing {needle:?}");
    fake.wait_for(&what, |s| {
        s.calls_to("chat.postMessage")
            .into_iter()
            .find(|c| c.args["channel"] == channel && c.text().contains(needle))
            .map(|c| c.text().to_string())
    })
    .await
}

/// One Slack app for two pipelines, each in its own channel: a command in a
/// pipeline's channel acts on that pipeline, its messages go there without
/// a `[NAME]` prefix, and one Socket Mode connection serves both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_slack_each_pipeline_has_its_channel_and_one_connection_serves_both() {
    use fake_slack::{CHANNEL2_ID, CHANNEL3_ID, FakeSlack, envelope};
    const OPS: &str = "U0OPS";
    let fake = FakeSlack::start().await;
    let two = Two::new();
    let text = config_text(0, TWO_PLAIN)
        .replace(
            "[chat]\nadapter = \"console\"\nconsole_user = \"local\"",
            &format!(
                "[chat]\nadapter = \"slack\"\n\n[chat.slack]\nchannel = \"#deploys\"\napi_url = \"{}/\"",
                fake.api_url
            ),
        )
        .replace(r#"ops = ["local"]"#, &format!(r#"ops = ["{OPS}"]"#))
        .replace(
            "forge.git.path = \"web\"\n",
            "forge.git.path = \"web\"\nchat.channel = \"#web-deploys\"\n",
        )
        .replace(
            "forge.git.path = \"api\"\n",
            "forge.git.path = \"api\"\nchat.channel = \"#api-deploys\"\n",
        );
    let path = two.write_config(&text);
    for (email, id) in [
        ("alice@example.com", "U0ALICE"),
        ("carol@example.com", "U0CAROL"),
    ] {
        fake.with(|s| s.emails.insert(email.into(), id.into()));
    }
    let bot = SlackBot::spawn(&path);
    post_in(
        &fake,
        CHANNEL2_ID,
        &format!("📥 {}", short(&two.web.head())),
    )
    .await;
    post_in(
        &fake,
        CHANNEL3_ID,
        &format!("📥 {}", short(&two.api.head())),
    )
    .await;
    let api = two.api.commit("carol", "Speed up the index");
    post_in(&fake, CHANNEL3_ID, &format!("📥 {}", short(&api))).await;

    let depart = envelope::message_in(
        CHANNEL3_ID,
        "env-1",
        "Ev1",
        OPS,
        "!depart",
        "1700001000.000001",
    );
    fake.send_envelope(depart).await;
    let departs = post_in(&fake, CHANNEL3_ID, "🚂 train api#1 departs").await;
    assert!(
        departs.starts_with("🚂"),
        "no prefix in its own channel: {departs}"
    );
    let approval = fake
        .wait_for("api's approval with buttons", |s| {
            s.calls_to("chat.postMessage")
                .into_iter()
                .find(|c| c.args["channel"] == CHANNEL3_ID && c.text().contains("🙋 train api#1"))
                .cloned()
        })
        .await;
    assert!(approval.has_buttons(), "{:?}", approval.args);
    let values: Vec<String> = approval.args["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["value"].as_str().map(str::to_string))
        .collect();
    assert!(
        !values.is_empty() && values.iter().all(|v| v == "api#1"),
        "buttons carry api#1: {values:?}"
    );

    let status = envelope::message_in(
        CHANNEL2_ID,
        "env-2",
        "Ev2",
        OPS,
        "!status",
        "1700001000.000002",
    );
    fake.send_envelope(status).await;
    let answer = post_in(&fake, CHANNEL2_ID, "no train running").await;
    assert!(
        answer.starts_with(&format!("<@{OPS}> no train running")),
        "{answer}"
    );
    assert!(
        !answer.contains("api") && !answer.contains("[web]"),
        "{answer}"
    );

    // Both authors click good on api's approval: its train deploys.
    let ts = approval.ts.clone().expect("ts");
    for (n, user) in ["U0CAROL", "U0ALICE"].into_iter().enumerate() {
        let click = envelope::click_in(
            (CHANNEL3_ID, fake_slack::CHANNEL3_NAME),
            &format!("env-c{n}"),
            user,
            "good",
            "api#1",
            &ts,
        );
        fake.send_envelope(click).await;
    }
    post_in(
        &fake,
        CHANNEL3_ID,
        &format!("✅ train api#1 deployed {}", short(&api)),
    )
    .await;

    let web_posts = posts_in(&fake, CHANNEL2_ID);
    assert!(
        web_posts
            .iter()
            .all(|t| !t.contains("api") && !t.contains("departs")),
        "nothing of api's train in #web-deploys: {web_posts:#?}"
    );
    assert!(
        posts_in(&fake, fake_slack::CHANNEL_ID).is_empty(),
        "nothing in the default channel"
    );
    let (connections, opens) =
        fake.with(|s| (s.connections, s.calls_to("apps.connections.open").len()));
    // One open checks the app token at start, one opens the connection.
    assert_eq!(
        (connections, opens),
        (1, 2),
        "one Socket Mode connection for both pipelines"
    );
    bot.stop().await;
}

/// With two pipelines named after their repositories (`web/` and `api/`,
/// as in docs/pipelines.md), the golden history goes to the one whose
/// repository holds its production commit, and stays there.
#[test]
fn the_golden_store_goes_to_the_pipeline_whose_repository_holds_it() {
    let dir = tempfile::Builder::new()
        .prefix("trainbot-e2e-")
        .tempdir()
        .expect("temp dir");
    let golden = golden_repo(&dir.path().join("web"), |_, _| {});
    TestRepo::init(&dir.path().join("api"));
    copy_store(dir.path());
    let mut text = config_text(0, TWO_PLAIN).replace(
        r#"environments = ["staging"]"#,
        r#"environments = ["staging", "preview", "preprod"]"#,
    );
    for env in ["preview", "preprod"] {
        text.push_str(&format!(
            "\n[environments.{env}]\ndeploy = [{{ run = \"{RECORD}\" }}]\n"
        ));
    }
    let path = dir.path().join("bot.toml");
    std::fs::write(&path, &text).expect("bot.toml");
    for _ in 0..2 {
        let mut bot = Bot::spawn(&path);
        bot.ask("!status web", "[web] no train running");
        bot.expect(&format!(
            "production: {} (train web#1",
            short(&golden.deployed)
        ));
        bot.ask("!history web", "[web] last 1 production deploy:");
        bot.expect(&format!("train web#1 {}", short(&golden.deployed)));
        bot.ask("!history api", "[api] no production deploys yet");
        assert!(!bot.log().contains("belongs to no configured pipeline"));
        bot.stop();
    }
}
