//! Starting the binary: config errors, `check`, the data_dir lock.

mod support;

use support::{Bot, BotConfig, Sandbox, run_to_end};

/// Writes the default config with `line` added under `[train]`; returns the
/// config path and the 1-based line number of the addition.
fn config_with_train_line(sandbox: &Sandbox, line: &str) -> (String, usize) {
    let text = BotConfig::default().render();
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| *l == "[train]").expect("[train]") + 1;
    lines.insert(at, line);
    let path = sandbox.path().join("bad.toml");
    std::fs::write(&path, lines.join("\n")).expect("write bad.toml");
    (path.display().to_string(), at + 1)
}

fn assert_config_error(config: &str, dir: &std::path::Path, key: &str, line: usize) {
    let (status, stdout, stderr) = run_to_end(&["--config", config], dir);
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
    assert!(stderr.contains(key), "{stderr}");
}

#[test]
fn an_unknown_key_exits_2_naming_key_and_line() {
    let sandbox = Sandbox::new();
    let (config, line) = config_with_train_line(&sandbox, "bogus = 1");
    assert_config_error(&config, sandbox.path(), "train.bogus", line);
}

#[test]
fn a_bad_duration_exits_2_naming_key_and_line() {
    let sandbox = Sandbox::new();
    let text = BotConfig::default().render().replace(
        "approval_timeout = \"30m\"",
        "approval_timeout = \"30 minutes\"",
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("approval_timeout"))
        .expect("approval_timeout")
        + 1;
    let path = sandbox.path().join("bad.toml");
    std::fs::write(&path, text).expect("write bad.toml");
    let config = path.display().to_string();
    assert_config_error(&config, sandbox.path(), "train.approval_timeout", line);
}

#[test]
fn a_duration_over_30_days_exits_2_naming_key_and_line() {
    let sandbox = Sandbox::new();
    let text = BotConfig::default().render().replace(
        "approval_timeout = \"30m\"",
        "approval_timeout = \"100000000d\"",
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("approval_timeout"))
        .expect("approval_timeout")
        + 1;
    let path = sandbox.path().join("bad.toml");
    std::fs::write(&path, text).expect("write bad.toml");
    let config = path.display().to_string();
    assert_config_error(&config, sandbox.path(), "train.approval_timeout", line);
    let (_, _, stderr) = run_to_end(&["--config", &config], sandbox.path());
    assert!(stderr.contains("at most 30d"), "{stderr}");
}

#[test]
fn a_missing_config_exits_2() {
    let sandbox = Sandbox::new();
    let (status, _, stderr) = run_to_end(&["--config", "nope.toml"], sandbox.path());
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("nope.toml"), "{stderr}");
    // The default is ./bot.toml, absent here too.
    let (status, _, stderr) = run_to_end(&["check"], sandbox.path());
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
}

#[test]
fn check_prints_the_next_five_departures_in_rfc3339() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&BotConfig::default());
    let (status, stdout, stderr) = run_to_end(&["check", "--config", "bot.toml"], sandbox.path());
    assert!(status.success(), "stderr: {stderr}");
    let departures: Vec<&str> = stdout.lines().collect();
    assert_eq!(departures.len(), 5, "{stdout}");
    for d in departures {
        let t = chrono::DateTime::parse_from_rfc3339(d).expect("RFC 3339");
        // The test schedule: New Year's midnight, UTC.
        assert_eq!(
            t.format("%m-%d %H:%M:%S %:z").to_string(),
            "01-01 00:00:00 +00:00"
        );
    }
}

#[test]
fn a_second_bot_on_the_same_data_dir_exits_1() {
    let sandbox = Sandbox::new();
    let config = sandbox.write_config(&BotConfig::default());
    let mut first = Bot::spawn(&config);
    first.expect_allocated(&sandbox.repo.head());

    let (status, stdout, stderr) = run_to_end(&["--config", "bot.toml"], sandbox.path());
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("another trainbot is already running on")
            && stderr.contains(&sandbox.path().join("data").display().to_string()),
        "{stderr}"
    );
    first.stop();
}

#[test]
fn sigterm_stops_the_bot_while_stdin_is_still_open() {
    let sandbox = Sandbox::new();
    let mut bot = Bot::spawn(&sandbox.write_config(&BotConfig::default()));
    bot.expect_allocated(&sandbox.repo.head());
    // As in a terminal: nobody closes stdin before Ctrl-C or SIGTERM.
    bot.stop_with_stdin_open();
}
