//! Stopping with SIGTERM (SPEC §12): a running production step may finish,
//! a second signal stops at once, lower steps are stopped and run again
//! after the restart.

mod support;

use std::time::Instant;

use support::{Bot, BotConfig, ENVIRONMENTS, Sandbox, TIMEOUT, bot_with_alice_and_bob, short};

/// A train of alice's and bob's commits whose production deploy runs and
/// blocks until `release` exists; returns once the step runs (its pid file).
fn production_deploy_running() -> (Sandbox, Bot, String) {
    let config = BotConfig {
        blocking_production: true,
        ..BotConfig::default()
    };
    let (sandbox, mut bot, head) = bot_with_alice_and_bob(&config);
    bot.ask("!depart", "🚂 train #1 departs (sent by local)");
    for env in ENVIRONMENTS {
        bot.expect(&format!("train #1 ✔ {env} acceptance passed"));
    }
    bot.expect("🙋 train #1");
    bot.ask("@alice !good", "👍 alice approved");
    bot.ask("@bob !good", "train #1 ▶ production deploy started");
    sandbox.wait_for_file("production.pid");
    (sandbox, bot, head)
}

/// Whether `pid` still runs (a zombie has finished).
fn is_running(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn sigterm_lets_the_production_deploy_finish_and_records_it_once() {
    let (sandbox, mut bot, head) = production_deploy_running();
    bot.sigterm();
    bot.expect("⏳ stopping: waiting for train #1's production deploy to finish (up to 10m)");
    // No new work while it waits, and the user hears why.
    bot.ask("!depart", "trainbot is stopping");
    sandbox.touch("release");
    bot.expect("train #1 ✔ production deploy passed");
    bot.expect_clean_exit();
    assert_eq!(bot.said("⏳ stopping").len(), 1);
    assert!(
        bot.said("smoke started").is_empty(),
        "no step after the signal"
    );
    assert_eq!(sandbox.deploys_to("production"), vec![head.clone()]);

    // The smoke step never started: the restarted bot does not re-run
    // anything in production by itself, and production is the new SHA.
    let mut bot = Bot::spawn(&sandbox.path().join("bot.toml"));
    bot.expect("train #1 was interrupted during production smoke");
    bot.ask("!history", "last 1 production deploy:");
    bot.expect(&format!("train #1 {}", short(&head)));
    // Nothing waits to ship: the head is what production runs.
    bot.ask("!status", "waiting: nothing new");
    assert_eq!(sandbox.deploys_to("production"), vec![head]);
    bot.stop();
}

#[test]
fn a_second_sigterm_stops_at_once_and_the_deploy_counts_as_interrupted() {
    let (sandbox, mut bot, head) = production_deploy_running();
    let pid = sandbox.wait_for_file("production.pid");
    bot.sigterm();
    bot.expect("⏳ stopping: waiting for train #1's production deploy");
    bot.sigterm();
    bot.expect("is stopped by a second signal");
    bot.expect_clean_exit();
    // Killed with the bot, not left running.
    let deadline = Instant::now() + TIMEOUT;
    while is_running(&pid) {
        assert!(Instant::now() < deadline, "step {pid} still runs");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let mut bot = Bot::spawn(&sandbox.path().join("bot.toml"));
    bot.expect(
        "⚠️ train #1 was interrupted during production deploy (the bot stopped). \
         It is not re-run by itself: ops, !force 1 to re-run it or !cancel 1.",
    );
    assert_eq!(sandbox.deploys_to("production"), vec![head]);
    bot.stop();
}

/// The staging deploy writes its line, then blocks until `release`; on
/// SIGTERM it writes `staging-term.txt` and exits.
const BLOCKING_STAGING: &str = r#"echo \"$TRAINBOT_ENV $TRAINBOT_SHA\" >> deploys.txt; trap 'echo term >> staging-term.txt; exit 143' TERM; echo $$ > staging.pid; i=0; while [ ! -e release ]; do sleep 0.05; i=$((i+1)); [ $i -lt 1200 ] || exit 1; done"#;

#[test]
fn a_lower_step_gets_sigterm_on_stop_and_runs_again_after_the_restart() {
    let sandbox = Sandbox::new();
    let config = BotConfig::default().render();
    let (before, after) = config
        .split_once("[environments.staging]\n")
        .expect("a staging table");
    let (_, after) = after.split_once('\n').expect("its deploy line");
    let config = format!(
        "{before}[environments.staging]\ndeploy = [{{ run = \"{BLOCKING_STAGING}\" }}]\n{after}"
    );
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, config).expect("write bot.toml");
    let mut bot = Bot::spawn(&path);
    let head = sandbox.repo.head();
    bot.expect_allocated(&head);
    bot.ask("!depart", "train #1 ▶ staging deploy started");
    sandbox.wait_for_file("staging.pid");
    bot.sigterm();
    bot.expect_clean_exit();
    assert_eq!(sandbox.wait_for_file("staging-term.txt"), "term");
    assert!(
        bot.said("⏳ stopping").is_empty(),
        "only production is waited for"
    );
    assert_eq!(sandbox.deploys_to("staging"), vec![head.clone()]);

    sandbox.touch("release");
    let mut bot = Bot::spawn(&path);
    bot.expect(&format!("↻ resuming train #1 ({})", short(&head)));
    bot.expect("train #1 ✔ staging deploy passed");
    bot.expect("🙋 train #1");
    assert_eq!(sandbox.deploys_to("staging"), vec![head.clone(), head]);
    bot.stop();
}

/// The `deploy` lines of `builds.txt` (branch steps append `PHASE BRANCH
/// NODE SHA`), once there are at least `n`: nothing announces a step's
/// first line, so the file is the event.
fn wait_for_branch_deploys(sandbox: &Sandbox, n: usize) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let lines: Vec<String> = std::fs::read_to_string(sandbox.path().join("builds.txt"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("deploy "))
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{n} branch deploys not seen: {lines:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_branch_step_is_stopped_on_stop_and_runs_again_after_the_restart() {
    let sandbox = Sandbox::new();
    let config = BotConfig {
        branch_builds: true,
        blocking_branch_deploy: true,
        ..BotConfig::default()
    };
    let path = sandbox.write_config(&config);
    let mut bot = Bot::spawn(&path);
    bot.expect_allocated(&sandbox.repo.head());
    sandbox.repo.branch("a");
    let a_sha = sandbox.repo.commit_on("a", "alice", "branch a work");
    bot.ask("!bb a", "build 1 a ▶ deploy 1 started");
    wait_for_branch_deploys(&sandbox, 1);
    bot.sigterm();
    bot.expect_clean_exit();
    assert!(
        bot.said("⏳ stopping").is_empty(),
        "only production is waited for"
    );

    sandbox.touch("release-a");
    let mut bot = Bot::spawn(&path);
    bot.expect("build 1 a ▶ deploy 1 started");
    bot.expect(&format!("a ({}): good to merge", short(&a_sha)));
    let deploys = wait_for_branch_deploys(&sandbox, 2);
    assert_eq!(deploys.len(), 2, "{deploys:?}");
    assert!(deploys.iter().all(|l| l.ends_with(&a_sha)), "{deploys:?}");
    bot.stop();
}
