//! SPEC §15 "Verify production" and "Roll back by itself" end to end: the
//! real binary on the console, a real git repository, `run` verify steps
//! that turn red when a file named `red` exists.

mod support;

use support::{BotConfig, Sandbox, short};

/// The default test config with a 4s verify window, a check every 2s.
fn verify_config(sandbox: &Sandbox) -> std::path::PathBuf {
    verify_config_for(sandbox, "4s")
}

fn verify_config_for(sandbox: &Sandbox, window: &str) -> std::path::PathBuf {
    let smoke = "smoke = [{ run = \"true\" }]\n";
    let text = BotConfig::default().render().replacen(
        smoke,
        &format!(
            "{smoke}verify = [{{ run = \"echo check $TRAINBOT_SHA >> checks.txt; test ! -e red\" }}]\nverify_for = \"{window}\"\nverify_every = \"2s\"\n"
        ),
        1,
    );
    assert!(text.contains("verify_every"), "{text}");
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).expect("write bot.toml");
    path
}

fn checks_of(sandbox: &Sandbox, sha: &str) -> usize {
    std::fs::read_to_string(sandbox.path().join("checks.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == format!("check {sha}"))
        .count()
}

#[test]
fn a_verify_window_that_stays_green_ends_deployed() {
    let sandbox = Sandbox::new();
    let mut bot = support::Bot::spawn(&verify_config(&sandbox));
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    bot.ask(
        &format!("!force {}", short(&root)),
        "🔎 train #1 verifies production",
    );
    let line = bot.expect(&format!("✅ train #1 deployed {}", short(&root)));
    assert!(line.contains("verified: 2 checks green"), "{line}");
    assert_eq!(checks_of(&sandbox, &root), 2);
    assert_eq!(sandbox.deploys_to("production"), [root]);
    // Each check keeps its own log.
    let logs = sandbox.path().join("data/logs/train-1");
    for name in ["production-verify-1.log", "production-verify-1-run-2.log"] {
        assert!(logs.join(name).exists(), "{name} in {logs:?}");
    }
    bot.stop();
}

#[test]
fn a_red_second_check_rolls_back_to_the_previous_sha() {
    let sandbox = Sandbox::new();
    let mut bot = support::Bot::spawn(&verify_config(&sandbox));
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    bot.ask(
        &format!("!force {}", short(&root)),
        &format!("✅ train #1 deployed {}", short(&root)),
    );
    let a = sandbox.repo.commit("alice", "Add the widget");
    bot.expect_allocated(&a);
    bot.ask(
        &format!("!force {}", short(&a)),
        "🔎 train #2 verifies production",
    );
    // The first check is green; then production turns red.
    bot.expect("train #2 ✔ production verify passed");
    sandbox.touch("red");
    let red = bot.expect(&format!("🚨 train #2 deployed {}", short(&a)));
    assert!(red.contains("rolled back automatically"), "{red}");
    bot.expect("cc @alice");
    bot.expect(&format!(
        "✅ train #3 rolled production back to {}",
        short(&root)
    ));
    assert_eq!(checks_of(&sandbox, &a), 2);
    assert_eq!(
        sandbox.deploys_to("production"),
        [root.clone(), a.clone(), root.clone()]
    );
    // The clock does not ship the rolled-back head again.
    bot.ask("!next", "was rolled back in train #2");
    bot.ask("!history", "rolled back automatically (verification red)");
    bot.stop();
}

#[test]
fn a_verifying_train_holds_a_force_of_another_sha() {
    let sandbox = Sandbox::new();
    let mut bot = support::Bot::spawn(&verify_config(&sandbox));
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    let a = sandbox.repo.commit("alice", "Add the widget");
    bot.expect_allocated(&a);
    bot.ask(
        &format!("!force {}", short(&root)),
        "🔎 train #1 verifies production",
    );
    bot.ask(
        &format!("!force {}", short(&a)),
        "train #1 is verifying production until",
    );
    bot.expect(&format!("✅ train #1 deployed {}", short(&root)));
    assert_eq!(sandbox.deploys_to("production"), [root]);
    bot.stop();
}

#[test]
fn a_kill_in_the_window_resumes_the_checks_left_and_never_deploys_again() {
    let sandbox = Sandbox::new();
    let config = verify_config_for(&sandbox, "8s");
    let mut bot = support::Bot::spawn(&config);
    let root = sandbox.repo.head();
    bot.expect_allocated(&root);
    bot.ask(
        &format!("!force {}", short(&root)),
        "🔎 train #1 verifies production",
    );
    bot.expect("train #1 ✔ production verify passed");
    bot.kill9();
    let mut bot = support::Bot::spawn(&config);
    let line = bot.expect(&format!("✅ train #1 deployed {}", short(&root)));
    assert!(line.contains("checks green"), "{line}");
    // Production ran once; the checks went on for what was left of the
    // window (one every 2s in 8s: at most 4, one of them before the kill).
    assert_eq!(
        sandbox.deploys_to("production"),
        std::slice::from_ref(&root)
    );
    let checks = checks_of(&sandbox, &root);
    assert!((2..=4).contains(&checks), "{checks} checks");
    assert!(bot.said("interrupted").is_empty());
    bot.stop();
}
