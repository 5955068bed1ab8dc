//! SPEC §15 against a fake Prometheus that speaks the real HTTP API
//! (`GET /api/v1/query`, `{"status":"success","data":{"resultType":"vector",…}}`):
//! the real binary verifies production with a `prometheus` step and rolls
//! back by itself when the error ratio goes over `max`.

mod support;

#[path = "support/fake_prometheus.rs"]
mod fake_prometheus;

use fake_prometheus::{FakePrometheus, Reply};
use support::{BotConfig, Sandbox, short};

const QUERY: &str =
    "sum(rate(http_requests_total{code=~\"5..\"}[5m])) / sum(rate(http_requests_total[5m]))";

/// A 4s verify window, a check every 2s, the error ratio at most 0.05.
fn config(sandbox: &Sandbox, prometheus: &FakePrometheus) -> std::path::PathBuf {
    let smoke = "smoke = [{ run = \"true\" }]\n";
    let query = QUERY.replace('\\', "\\\\").replace('"', "\\\"");
    let text = BotConfig::default().render().replacen(
        smoke,
        &format!(
            "{smoke}verify = [{{ prometheus = \"{}\", query = \"{query}\", max = 0.05 }}]\n\
             verify_for = \"4s\"\nverify_every = \"2s\"\n",
            prometheus.url()
        ),
        1,
    );
    assert!(text.contains("prometheus = "), "{text}");
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).expect("write bot.toml");
    path
}

#[test]
fn a_window_that_stays_green_in_prometheus_ends_deployed() {
    let sandbox = Sandbox::new();
    let prometheus = FakePrometheus::start();
    prometheus.answer(QUERY, Reply::value("0.01"));
    let mut bot = support::Bot::spawn(&config(&sandbox, &prometheus));
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    bot.ask(
        &format!("!force {}", short(&root)),
        "🔎 train #1 verifies production",
    );
    let line = bot.expect(&format!("✅ train #1 deployed {}", short(&root)));
    assert!(line.contains("verified: 2 checks green"), "{line}");
    assert_eq!(prometheus.queries(), [QUERY, QUERY]);
    assert_eq!(sandbox.deploys_to("production"), [root]);
    bot.stop();
}

/// Deploys the root, then alice's commit, whose window goes as `replies` say.
fn red_after_alice(replies: Vec<Reply>, why: &str) {
    let sandbox = Sandbox::new();
    let prometheus = FakePrometheus::start();
    prometheus.answer(QUERY, Reply::value("0.01"));
    let mut bot = support::Bot::spawn(&config(&sandbox, &prometheus));
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    bot.ask(
        &format!("!force {}", short(&root)),
        &format!("✅ train #1 deployed {}", short(&root)),
    );
    prometheus.answers(QUERY, replies);
    let a = sandbox.repo.commit("alice", "Add the widget");
    bot.expect_allocated(&a);
    bot.ask(
        &format!("!force {}", short(&a)),
        "🔎 train #2 verifies production",
    );
    let red = bot.expect(&format!("🚨 train #2 deployed {}", short(&a)));
    assert!(red.contains("rolled back automatically"), "{red}");
    bot.expect("cc @alice");
    bot.expect(&format!(
        "✅ train #3 rolled production back to {}",
        short(&root)
    ));
    assert_eq!(
        sandbox.deploys_to("production"),
        [root.clone(), a.clone(), root.clone()]
    );
    let logs = step_logs(sandbox.path());
    assert!(logs.contains(why), "the verify log says why: {logs}");
    // The clock does not ship the rolled-back head again.
    bot.ask("!next", "was rolled back in train #2");
    bot.ask("!history", "rolled back automatically (verification red)");
    bot.stop();
}

/// Every step log under `dir`, put together.
fn step_logs(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.push_str(&step_logs(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    all
}

#[test]
fn a_window_that_turns_red_in_its_second_check_rolls_back_by_itself() {
    red_after_alice(
        vec![Reply::value("0.01"), Reply::value("0.2")],
        "over max 0.05",
    );
}

#[test]
fn a_query_with_no_data_is_an_error_and_rolls_back() {
    red_after_alice(vec![Reply::no_data()], "no data for");
}
