//! Branch builds end to end: `!bb`, `!nodes`, `!release`, `!cancel <branch>`.
//! Steps append `PHASE BRANCH NODE SHA` to `builds.txt`.

mod support;

use support::{Bot, BotConfig, Sandbox, short};

fn start(blocking: bool) -> (Sandbox, Bot) {
    let sandbox = Sandbox::new();
    let config = BotConfig {
        branch_builds: true,
        blocking_branch_deploy: blocking,
        ..BotConfig::default()
    };
    let path = sandbox.write_config(&config);
    let mut bot = Bot::spawn(&path);
    bot.expect_allocated(&sandbox.repo.head());
    (sandbox, bot)
}

fn builds(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sandbox.path().join("builds.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The node a build started on, from its "🔧 build N …" line.
fn node_of(line: &str) -> String {
    line.split(" on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("node in start line")
        .to_string()
}

#[test]
fn a_branch_keeps_its_node_and_passes() {
    let (sandbox, mut bot) = start(false);
    sandbox.repo.branch("a");
    let a_sha = sandbox.repo.commit_on("a", "alice", "branch a work");
    sandbox.repo.branch("b");
    let b_sha = sandbox.repo.commit_on("b", "bob", "branch b work");

    let first = bot.ask("!bb a", "🔧 build");
    let node_a = node_of(&first);
    bot.expect(&format!("a ({}): good to merge", short(&a_sha)));
    let second = bot.ask("!bb b", "🔧 build");
    let node_b = node_of(&second);
    assert_ne!(node_a, node_b);
    bot.expect(&format!("b ({}): good to merge", short(&b_sha)));
    let third = bot.ask("!bb a", "🔧 build");
    assert_eq!(node_of(&third), node_a);
    bot.expect(&format!("a ({}): good to merge", short(&a_sha)));

    let lines = builds(&sandbox);
    for phase in ["checks", "deploy", "smoke"] {
        let a_line = format!("{phase} a {node_a} {a_sha}");
        assert_eq!(
            lines.iter().filter(|l| **l == a_line).count(),
            2,
            "{lines:?}"
        );
        assert!(
            lines.contains(&format!("{phase} b {node_b} {b_sha}")),
            "{lines:?}"
        );
    }

    bot.ask("!nodes", "branch nodes:");
    let n = bot.expect(&format!("{node_a}: a {}", short(&a_sha)));
    assert!(n.contains("idle"), "{n}");
    bot.expect(&format!("{node_b}: b {}", short(&b_sha)));
    let status = bot.ask("!status a", &format!("a at {}", short(&a_sha)));
    assert!(status.contains("commit status success"), "{status}");
    bot.stop();
}

#[test]
fn a_third_branch_queues_until_a_node_frees() {
    let (sandbox, mut bot) = start(true);
    for br in ["a", "b", "c"] {
        sandbox.repo.branch(br);
    }
    bot.ask("!bb a", "🔧 build 1 a");
    bot.ask("!bb b", "🔧 build 2 b");
    bot.ask("!bb c", "⏳ build 3 c");
    assert_eq!(bot.said("position 1").len(), 1);
    sandbox.touch("release-a");
    bot.expect("build 1 a");
    let line = bot.expect("🔧 build 3 c");
    assert_eq!(node_of(&line), "n1");
    sandbox.touch("release-b");
    sandbox.touch("release-c");
    bot.expect_each(&["✅ build 2 b", "✅ build 3 c"]);
    bot.stop();
}

#[test]
fn a_newer_bb_supersedes_and_reuses_the_node() {
    let (sandbox, mut bot) = start(true);
    let old = sandbox.repo.branch("a");
    let first = bot.ask("!bb a", "🔧 build 1 a");
    bot.expect("build 1 a ▶ deploy 1 started");
    let new = sandbox.repo.commit_on("a", "alice", "more work");
    bot.send("!bb a");
    bot.expect(&format!(
        "⏭ build 1 a ({}): superseded by build 2",
        short(&old)
    ));
    let second = bot.expect("🔧 build 2 a");
    assert!(second.contains(short(&new)), "{second}");
    assert_eq!(node_of(&first), node_of(&second));
    bot.expect("build 2 a ▶ deploy 1 started");
    sandbox.touch("release-a");
    bot.expect(&format!("a ({}): good to merge", short(&new)));
    let node = node_of(&second);
    assert!(builds(&sandbox).contains(&format!("deploy a {node} {new}")));
    bot.stop();
}

#[test]
fn hostile_branch_names_are_refused() {
    let (sandbox, mut bot) = start(false);
    let pwned = format!("/tmp/pwned-{}", std::process::id());
    for line in [
        format!("!bb ; touch {pwned}"),
        "!bb $(id)".to_string(),
        "!bb --upload-pack=x".to_string(),
        "!bb ../x".to_string(),
    ] {
        bot.send(&line);
        let reply = bot.next_line();
        assert!(!reply.contains("🔧"), "{reply}");
    }
    bot.ask("!bb nope", "no branch nope");
    assert!(!sandbox.path().join("builds.txt").exists());
    assert!(!std::path::Path::new(&pwned).exists());
    bot.stop();
}

#[test]
fn only_the_requester_or_ops_releases_a_node() {
    let (sandbox, mut bot) = start(false);
    sandbox.repo.branch("a");
    bot.ask("@alice !bb a", "🔧 build 1 a");
    bot.expect("good to merge");
    bot.ask("@zed !release n1", "only ops or alice can release n1");
    bot.ask("@alice !release n1", "🔓 n1 released by alice (was a)");
    bot.stop();
}

#[test]
fn cancel_stops_a_running_build() {
    let (sandbox, mut bot) = start(true);
    sandbox.repo.branch("a");
    bot.ask("!bb a", "🔧 build 1 a");
    bot.expect("build 1 a ▶ deploy 1 started");
    bot.ask("!cancel a", "🛑 build 1 a");
    bot.ask("!nodes", "branch nodes:");
    bot.expect("n1: a · not deployed yet · idle");
    bot.stop();
}
