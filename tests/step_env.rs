//! What a step gets (SPEC §13): an environment built from scratch, its own
//! `env` (with `secret_env` values), a workdir of its run's own, and no way
//! into the bot's memory or environment. The real binary, real shell steps:
//! each step is a script in the sandbox that writes what it saw to files.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use support::{Bot, Sandbox, TIMEOUT, run_to_end, short};

/// Planted in the bot's own environment: no step may see it.
const PLANTED: &str = "ghp_plantedBotToken0123456789";
/// The value of `STEP_SECRET_SRC`, which the build's checks get as `DEPLOY_TOKEN`.
const STEP_SECRET: &str = "s3cret-for-the-step-42";

/// A train through staging (deploy `train-deploy.sh`, acceptance fails) and
/// branch builds whose one checks step is `build-checks.sh`, with a plain
/// and a secret variable.
const CONFIG: &str = r#"
[bot]
data_dir = "./data"
http_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:0"
keep_failed_workdirs = "1h"

[chat]
adapter = "console"
console_user = "local"

[forge]
kind = "git"
main_branch = "main"
poll_interval = "100ms"

[forge.git]
path = "repo"

[main]
checks = [{ run = "echo \"$TRAINBOT_WORKDIR\" >> main-workdirs.txt" }]

[train]
schedule = "0 0 0 1 1 *"
environments = ["staging"]

[environments.staging]
deploy = [{ run = "sh train-deploy.sh" }]
acceptance = [{ run = "exit 1" }]

[production]
deploy = [{ run = "true" }]
smoke = [{ run = "true" }]

[roles]
ops = ["local"]

[branch_builds]
nodes = ["n1", "n2"]
checks = [{ run = "sh build-checks.sh", env = { PLAIN_VAR = "plain value", DEPLOY_TOKEN = { secret_env = "STEP_SECRET_SRC" } } }]
"#;

/// Writes the config and the two step scripts; returns the config's path.
fn setup(sandbox: &Sandbox, build_checks: &str, train_deploy: &str) -> PathBuf {
    std::fs::write(sandbox.path().join("build-checks.sh"), build_checks).unwrap();
    std::fs::write(sandbox.path().join("train-deploy.sh"), train_deploy).unwrap();
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

/// The bot, with a secret of its own and the step secret in its environment.
fn spawn(config: &Path, extra: &[(&str, &str)]) -> Bot {
    let mut env = vec![("GITHUB_TOKEN", PLANTED), ("STEP_SECRET_SRC", STEP_SECRET)];
    env.extend_from_slice(extra);
    Bot::spawn_with_env(config, &env)
}

/// Runs a branch build of a new branch `feature` to its (passing) end.
fn build_passes(sandbox: &Sandbox, bot: &mut Bot) {
    bot.expect_allocated(&sandbox.repo.head());
    sandbox.repo.branch("feature");
    let sha = sandbox.repo.commit_on("feature", "alice", "feature work");
    bot.ask("!bb feature", "🔧 build");
    bot.expect(&format!("feature ({}): good to merge", short(&sha)));
}

fn read(sandbox: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(sandbox.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Finds the bot by walking up from the step's shell (its pid is an
/// ancestor's, however many shells lie between), then tries its environ and
/// mem. Controls: the step's own environ and mem, and a same-user process
/// that is not hardened, must be readable, or the denials prove nothing.
const PROBE: &str = r#"
pid=$$
bot=
while [ "$pid" -gt 1 ]; do
  if [ "$(cat /proc/$pid/comm 2>/dev/null)" = trainbot ]; then bot=$pid; break; fi
  pid=$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f2)
done
echo "bot=$bot" > proc.txt
if [ -n "$bot" ] && [ "$bot" != "$$" ]; then echo "found bot" >> proc.txt; fi
cat /proc/$bot/environ > bot-environ.txt 2>bot-environ.err && echo "bot environ: read" >> proc.txt || echo "bot environ: denied" >> proc.txt
if ( exec 3< /proc/$bot/mem ) 2>>bot-mem.err; then echo "bot mem: opened" >> proc.txt; else echo "bot mem: denied" >> proc.txt; fi
tr '\0' '\n' < /proc/$$/environ | grep -q '^TRAINBOT_SHA=' && echo "own environ: read" >> proc.txt
if ( exec 3< /proc/$$/mem ); then echo "own mem: opened" >> proc.txt; fi
SLEEPER_MARK=visible sleep 10 &
sleeper=$!
i=0
while [ $i -lt 100 ]; do
  if tr '\0' '\n' < /proc/$sleeper/environ | grep -q '^SLEEPER_MARK=visible$'; then echo "other environ: read" >> proc.txt; break; fi
  sleep 0.02; i=$((i+1))
done
kill $sleeper
echo end >> proc.txt
"#;

/// The probe as the first step of a branch build of the bot `bin` (the
/// binary, or a wrapper that `exec`s it), checked.
fn probe(bin: Option<&dyn Fn(&Sandbox) -> PathBuf>) {
    let sandbox = Sandbox::new();
    let config = setup(&sandbox, PROBE, "true");
    let mut bot = match bin {
        None => spawn(&config, &[]),
        Some(wrapper) => Bot::spawn_bin(
            &wrapper(&sandbox),
            &config,
            &[("GITHUB_TOKEN", PLANTED), ("STEP_SECRET_SRC", STEP_SECRET)],
        ),
    };
    build_passes(&sandbox, &mut bot);

    let proc = read(&sandbox, "proc.txt");
    let lines: Vec<&str> = proc.lines().collect();
    assert!(lines.contains(&"found bot"), "{proc}");
    // The controls: reading a process's environ and mem works at all here.
    for control in [
        "own environ: read",
        "own mem: opened",
        "other environ: read",
    ] {
        assert!(lines.contains(&control), "{control}: {proc}");
    }
    assert!(lines.contains(&"bot environ: denied"), "{proc}");
    assert!(lines.contains(&"bot mem: denied"), "{proc}");
    assert_eq!(read(&sandbox, "bot-environ.txt"), "", "{proc}");
    let err = read(&sandbox, "bot-environ.err");
    assert!(err.contains("Permission denied"), "{err}");
    let err = read(&sandbox, "bot-mem.err");
    assert!(
        err.contains("Permission denied") || err.contains("not permitted"),
        "{err}"
    );
    // Nothing the step wrote holds the bot's secret.
    let log = sandbox.path().join("data/logs/build-1/checks-1.log");
    for path in [
        sandbox.path().join("proc.txt"),
        sandbox.path().join("bot-environ.txt"),
        sandbox.path().join("bot-environ.err"),
        sandbox.path().join("bot-mem.err"),
        log,
    ] {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(!text.contains(PLANTED), "{}: {text}", path.display());
    }
    bot.stop();
}

/// A non-root bot: being non-dumpable is what keeps a step out. A root bot:
/// its steps also lose the capabilities that would let root read it anyway.
#[test]
fn a_step_cannot_read_the_bots_environ_or_memory() {
    probe(None);
}

/// Run as root, the bot and its steps are given the same capabilities,
/// none that peeks (as in a container without them): then being
/// non-dumpable alone must keep the step out.
#[test]
fn a_step_with_the_bots_own_capabilities_still_cannot_read_it() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !setpriv {
        eprintln!("not root or no setpriv: the test above covers this case");
        return;
    }
    let wrapper = |sandbox: &Sandbox| {
        let path = sandbox.path().join("trainbot-capped");
        let script = format!(
            "#!/bin/sh\nexec setpriv --bounding-set=-sys_ptrace,-sys_admin,-perfmon,-checkpoint_restore --inh-caps=-all {} \"$@\"\n",
            support::BIN
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    probe(Some(&wrapper));
}

#[test]
fn a_steps_environment_holds_only_what_spec_lists() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path().join("expected-token"), STEP_SECRET).unwrap();
    let script = r#"
env | cut -d= -f1 | sort > env-names.txt
[ "$DEPLOY_TOKEN" = "$(cat expected-token)" ] && echo "token matches" > token.txt
echo "${#DEPLOY_TOKEN}" >> token.txt
printf '%s\n' "$PLAIN_VAR" "$TRAINBOT_CONFIG_DIR" "$TRAINBOT_WORKDIR" "$HOME" "$LANG" > values.txt
"#;
    let config = setup(&sandbox, script, "true");
    let mut bot = spawn(
        &config,
        &[
            ("SECRET_THING", "do-not-pass-me"),
            ("USER", "someone"),
            ("TERM", "xterm"),
            ("TMPDIR", "/tmp"),
            ("HOME", "/home/trainbot-test"),
            ("LANG", "C.UTF-8"),
            ("LD_PRELOAD", ""),
        ],
    );
    build_passes(&sandbox, &mut bot);

    let names = read(&sandbox, "env-names.txt");
    // PWD is the shell's own (sh exports it), not the bot's.
    let names: Vec<&str> = names
        .lines()
        .filter(|n| !["PWD", "OLDPWD", "SHLVL", "_"].contains(n))
        .collect();
    assert_eq!(
        names,
        [
            "DEPLOY_TOKEN",
            "HOME",
            "LANG",
            "PATH",
            "PLAIN_VAR",
            "TRAINBOT_BRANCH",
            "TRAINBOT_CONFIG_DIR",
            "TRAINBOT_ENV",
            "TRAINBOT_NODE",
            "TRAINBOT_NODE_URL",
            "TRAINBOT_PIPELINE",
            "TRAINBOT_PREV_SHA",
            "TRAINBOT_SHA",
            "TRAINBOT_TRAIN",
            "TRAINBOT_WORKDIR",
        ]
    );
    assert_eq!(
        read(&sandbox, "token.txt"),
        format!("token matches\n{}\n", STEP_SECRET.len())
    );
    let values = read(&sandbox, "values.txt");
    let values: Vec<&str> = values.lines().collect();
    let dir = sandbox.path().canonicalize().unwrap();
    assert_eq!(values[0], "plain value");
    assert_eq!(Path::new(values[1]).canonicalize().unwrap(), dir);
    assert!(
        Path::new(values[2]).starts_with(sandbox.path().join("data").join("work")),
        "{values:?}"
    );
    assert_eq!(values[3..], ["/home/trainbot-test", "C.UTF-8"]);
    bot.stop();
}

/// Waits until `what` holds, polling: a workdir goes beside the engine,
/// after the run's last message.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn concurrent_runs_have_their_own_workdirs_kept_only_on_failure() {
    let sandbox = Sandbox::new();
    let step = |who: &str| {
        format!(
            r#"echo "$TRAINBOT_WORKDIR" > {who}-workdir.tmp && mv {who}-workdir.tmp {who}-workdir.txt
echo checkout > "$TRAINBOT_WORKDIR/checkout-{who}"
i=0; while [ ! -e release-{who} ]; do sleep 0.05; i=$((i+1)); [ $i -lt 1200 ] || exit 1; done
"#
        )
    };
    let config = setup(&sandbox, &step("build"), &step("train"));
    let mut bot = spawn(&config, &[]);
    bot.expect_allocated(&sandbox.repo.head());
    let head = sandbox.repo.commit("bob", "Make the widget blue");
    bot.expect_allocated(&head);
    sandbox.repo.branch("feature");
    let feature = sandbox.repo.commit_on("feature", "alice", "feature work");

    bot.ask("!depart", "🚂 train #1 departs");
    bot.ask("!bb feature", "🔧 build");
    // Both steps run at once, each in its own directory.
    let train_dir = PathBuf::from(sandbox.wait_for_file("train-workdir.txt"));
    let build_dir = PathBuf::from(sandbox.wait_for_file("build-workdir.txt"));
    assert_ne!(train_dir, build_dir);
    let work = sandbox.path().join("data").join("work");
    for dir in [&train_dir, &build_dir] {
        assert_eq!(dir.parent(), Some(work.as_path()), "{}", dir.display());
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&work), 0o700);
    assert!(train_dir.join("checkout-train").exists());
    assert!(!train_dir.join("checkout-build").exists());
    // Each main check ran in a directory of its own SHA, gone once it passed.
    let main_dirs = read(&sandbox, "main-workdirs.txt");
    let main_dirs: Vec<PathBuf> = main_dirs.lines().map(PathBuf::from).collect();
    assert_eq!(
        main_dirs,
        [&sandbox.repo.rev("main~1"), &head].map(|sha| work.join(format!("main-{}", short(sha))))
    );
    for dir in &main_dirs {
        eventually("a passed main check's workdir is gone", || !dir.exists());
    }

    // The build passes: its workdir goes.
    sandbox.touch("release-build");
    bot.expect(&format!("feature ({}): good to merge", short(&feature)));
    eventually("the passed build's workdir is gone", || !build_dir.exists());
    // The train fails: its workdir stays for a look.
    sandbox.touch("release-train");
    bot.expect("❌ train #1 failed in staging acceptance");
    bot.ask("!nodes", "branch nodes:");
    std::thread::sleep(Duration::from_millis(200));
    assert!(train_dir.join("checkout-train").exists());
    bot.stop();

    // A restart sweeps what is older than keep_failed_workdirs, by age.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::open(&train_dir)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let recent = work.join("build-99");
    std::fs::create_dir(&recent).unwrap();
    let mut bot = spawn(&config, &[]);
    bot.ask("!nodes", "branch nodes:");
    assert!(
        !train_dir.exists(),
        "an old failed workdir is swept at start"
    );
    assert!(recent.exists(), "a recent one is kept");
    bot.stop();
}

#[test]
fn an_unset_secret_env_or_a_bad_env_name_is_a_config_error() {
    let sandbox = Sandbox::new();
    let config = setup(&sandbox, "true", "true");
    let config = config.to_str().unwrap();
    // STEP_SECRET_SRC is not in this environment.
    let (status, _, stderr) = run_to_end(&["--config", config], sandbox.path());
    assert_eq!(status.code(), Some(2), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("branch_builds.checks[0].env.DEPLOY_TOKEN.secret_env")
            && last.contains("STEP_SECRET_SRC"),
        "{stderr}"
    );

    let bad = CONFIG.replace("PLAIN_VAR =", "TRAINBOT_SHA =");
    std::fs::write(sandbox.path().join("bot.toml"), bad).unwrap();
    let (status, _, stderr) = run_to_end(&["--config", config, "check"], sandbox.path());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 40: branch_builds.checks[0].env.TRAINBOT_SHA"),
        "{stderr}"
    );
}
