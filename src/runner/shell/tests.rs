use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::{Notify, watch};

use super::*;
use crate::config::Step;

/// Upper bound for anything a test waits for; never a guess at how long
/// something takes.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Records calls, optionally leaves a marker file when a group is recorded,
/// and can refuse to record.
#[derive(Default)]
struct FakeRegistry {
    events: Mutex<Vec<String>>,
    marker: Option<PathBuf>,
    refuse: bool,
    started: Notify,
}

impl ProcessRegistry for FakeRegistry {
    fn started(&self, key: &str, pgid: i32) -> io::Result<()> {
        if self.refuse {
            return Err(io::Error::other("disk full"));
        }
        if let Some(marker) = &self.marker {
            std::fs::write(marker, pgid.to_string())?;
        }
        self.events
            .lock()
            .unwrap()
            .push(format!("started {key} {pgid}"));
        self.started.notify_one();
        Ok(())
    }
    fn finished(&self, key: &str) {
        self.events.lock().unwrap().push(format!("finished {key}"));
    }
}

impl FakeRegistry {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    registry: Arc<FakeRegistry>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_registry(FakeRegistry::default())
    }

    fn with_registry(registry: FakeRegistry) -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            registry: Arc::new(registry),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn request(&self, cmd: &str, timeout: Duration, retries: u32) -> StepRequest {
        StepRequest {
            key: "train-1/staging/deploy/0".into(),
            step: Step {
                kind: StepKind::Run(cmd.into()),
                timeout,
                retries,
                env: Vec::new(),
            },
            env: vec![(
                "TRAINBOT_SHA".into(),
                "0123456789abcdef0123456789abcdef01234567".into(),
            )],
            cwd: self.dir.path().to_path_buf(),
            workdir: None,
            log_path: self.path("logs/train-1/deploy.log"),
        }
    }

    fn runner(&self, grace: Duration) -> ShellRunner {
        ShellRunner::new(self.registry.clone(), grace)
    }

    /// Runs with a cancel sender that stays alive (and never fires).
    async fn run(&self, req: StepRequest) -> StepOutcome {
        let (_tx, rx) = watch::channel(false);
        expect_within(self.runner(DEFAULT_GRACE).run(req, rx)).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("logs/train-1/deploy.log")).unwrap()
    }
}

async fn expect_within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, future)
        .await
        .expect("test timed out")
}

/// Whether a process is gone (or a zombie nobody has reaped yet).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// Signals are delivered asynchronously: a killed process may take a moment
/// to die. Waits for that, bounded by TEST_TIMEOUT.
async fn expect_gone(pid: i32) {
    let deadline = Instant::now() + TEST_TIMEOUT;
    while !is_gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_successful_command_runs_once_in_cwd() {
    let fx = Fixture::new();
    let outcome = fx.run(fx.request("pwd; echo done", TEST_TIMEOUT, 2)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.attempts, 1);
    let cwd = fx.dir.path().canonicalize().unwrap();
    assert_eq!(outcome.tail, [cwd.to_str().unwrap(), "done"]);
    let events = fx.registry.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].starts_with("started train-1/staging/deploy/0 "));
    assert_eq!(events[1], "finished train-1/staging/deploy/0");
}

#[tokio::test]
async fn a_failing_command_reports_its_exit_code_and_last_lines() {
    let fx = Fixture::new();
    let cmd = "i=1; while [ $i -le 30 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; exit 3";
    let outcome = fx.run(fx.request(cmd, TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Err(StepError::Exit(3)));
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.tail.len(), 20);
    assert_eq!(outcome.tail[0], "line 12");
    assert_eq!(outcome.tail[19], "oops");
}

#[tokio::test]
async fn output_past_the_cap_keeps_head_and_tail_and_reports_the_real_end() {
    let fx = Fixture::new();
    let cmd =
        "i=1; while [ $i -le 2000 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; exit 3";
    let (_tx, rx) = watch::channel(false);
    let runner = fx.runner(DEFAULT_GRACE).with_log_cap(1024);
    let outcome = expect_within(runner.run(fx.request(cmd, TEST_TIMEOUT, 0), rx)).await;
    assert_eq!(outcome.result, Err(StepError::Exit(3)));
    assert_eq!(outcome.tail[0], "line 1982");
    assert_eq!(outcome.tail[19], "oops");
    let log = fx.log();
    assert!(log.starts_with("== attempt 1/1: "), "{log}");
    assert!(log.contains("\nline 1\nline 2\n"), "{log}");
    assert!(log.contains(" bytes cut …\n"), "{log}");
    assert!(
        log.contains("line 2000\noops\n== attempt 1/1 exited with code 3 after "),
        "{log}"
    );
    assert!(log.len() < 1024 + 40, "{} bytes", log.len());
}

#[tokio::test]
async fn a_process_left_holding_the_output_does_not_hold_the_step() {
    let fx = Fixture::new();
    // The background sleep keeps the output pipe open after the step ends.
    let cmd = "(sleep 5; echo late) & echo $! > child.pid; echo done";
    let outcome = fx.run(fx.request(cmd, TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.tail, ["done"]);
    let pid: i32 = std::fs::read_to_string(fx.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[tokio::test]
async fn the_command_sees_its_variables_but_not_the_bots_secrets() {
    // SAFETY: no other test reads or writes this variable; std serialises
    // environment access with process spawning.
    unsafe { std::env::set_var("SECRET_TOKEN", "hunter2") };
    let fx = Fixture::new();
    let cmd = r#"echo "sha=$TRAINBOT_SHA"; echo "secret=${SECRET_TOKEN:-unset}"; echo "path=${PATH:+set}"; read -r x; echo "stdin=${x:-eof}""#;
    let outcome = fx.run(fx.request(cmd, TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(
        outcome.tail,
        [
            "sha=0123456789abcdef0123456789abcdef01234567",
            "secret=unset",
            "path=set",
            "stdin=eof"
        ]
    );
    assert!(!fx.log().contains("hunter2"));
}

#[tokio::test]
async fn a_failed_attempt_is_retried_until_it_succeeds() {
    let fx = Fixture::new();
    let cmd = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 2 ]";
    let outcome = fx.run(fx.request(cmd, TEST_TIMEOUT, 3)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.attempts, 2);
    assert_eq!(
        outcome.tail,
        ["attempt 2"],
        "the tail is the last attempt's"
    );
    let finished = fx
        .registry
        .events()
        .iter()
        .filter(|e| e.starts_with("finished"))
        .count();
    assert_eq!(finished, 2);
}

#[tokio::test]
async fn retries_run_out() {
    let fx = Fixture::new();
    let outcome = fx.run(fx.request("exit 1", TEST_TIMEOUT, 2)).await;
    assert_eq!(outcome.result, Err(StepError::Exit(1)));
    assert_eq!(outcome.attempts, 3);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let fx = Fixture::new();
    let cmd = "sleep 30 & echo $! > child.pid; echo started; wait";
    let outcome = fx.run(fx.request(cmd, Duration::from_millis(500), 0)).await;
    assert_eq!(outcome.result, Err(StepError::Timeout("500ms".into())));
    assert_eq!(outcome.attempts, 1);
    expect_gone(read_pid(&fx.path("child.pid"))).await;
    assert!(fx.log().contains("timed out after 500ms"));
}

#[tokio::test]
async fn sigkill_follows_an_ignored_sigterm() {
    let fx = Fixture::new();
    // The trap makes the shell ignore SIGTERM; `wait` is restarted after it.
    let cmd = "trap '' TERM; sleep 30 & echo $! > child.pid; while :; do wait; done";
    let (_tx, rx) = watch::channel(false);
    let runner = fx.runner(Duration::from_millis(200));
    let outcome =
        expect_within(runner.run(fx.request(cmd, Duration::from_millis(500), 0), rx)).await;
    assert_eq!(outcome.result, Err(StepError::Timeout("500ms".into())));
    expect_gone(read_pid(&fx.path("child.pid"))).await;
}

#[tokio::test]
async fn cancel_kills_promptly_and_is_not_retried() {
    let fx = Fixture::new();
    let (tx, rx) = watch::channel(false);
    // A grace longer than the test bound: waiting for SIGKILL would fail it.
    let runner = fx.runner(TEST_TIMEOUT * 2);
    let req = fx.request("sleep 30", TEST_TIMEOUT * 2, 3);
    let run = tokio::spawn(async move { runner.run(req, rx).await });
    expect_within(fx.registry.started.notified()).await;
    tx.send(true).unwrap();
    let outcome = expect_within(run).await.unwrap();
    assert_eq!(outcome.result, Err(StepError::Cancelled));
    assert_eq!(outcome.attempts, 1);
    assert_eq!(
        fx.registry.events().last().unwrap(),
        "finished train-1/staging/deploy/0"
    );
}

#[tokio::test]
async fn an_abandoned_step_is_killed_and_written_off() {
    let fx = Fixture::new();
    let (_tx, rx) = watch::channel(false);
    let runner = fx.runner(DEFAULT_GRACE);
    let req = fx.request("sleep 30", TEST_TIMEOUT * 2, 0);
    let run = tokio::spawn(async move { runner.run(req, rx).await });
    expect_within(fx.registry.started.notified()).await;
    run.abort();
    assert!(expect_within(run).await.unwrap_err().is_cancelled());
    let events = fx.registry.events();
    assert_eq!(events.last().unwrap(), "finished train-1/staging/deploy/0");
    let pgid: i32 = events[0].rsplit(' ').next().unwrap().parse().unwrap();
    expect_gone(pgid).await;
}

#[tokio::test]
async fn cancelled_before_the_start_nothing_runs() {
    let fx = Fixture::new();
    let (_tx, rx) = watch::channel(true);
    let outcome = expect_within(
        fx.runner(DEFAULT_GRACE)
            .run(fx.request("touch ran", TEST_TIMEOUT, 0), rx),
    )
    .await;
    assert_eq!(outcome.result, Err(StepError::Cancelled));
    assert_eq!(outcome.attempts, 0);
    assert!(!fx.path("ran").exists());
    assert!(fx.registry.events().is_empty());
}

#[tokio::test]
async fn a_dropped_cancel_sender_does_not_cancel() {
    let fx = Fixture::new();
    let (tx, rx) = watch::channel(false);
    drop(tx);
    let outcome = expect_within(
        fx.runner(DEFAULT_GRACE)
            .run(fx.request("sleep 0.2; echo ok", TEST_TIMEOUT, 0), rx),
    )
    .await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.tail, ["ok"]);
}

#[tokio::test]
async fn the_group_is_recorded_before_the_command_starts() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("recorded");
    let fx = Fixture::with_registry(FakeRegistry {
        marker: Some(marker.clone()),
        ..Default::default()
    });
    let cmd = format!(
        "[ \"$(cat '{}')\" = \"$$\" ] && echo recorded",
        marker.display()
    );
    let outcome = fx.run(fx.request(&cmd, TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Ok(()), "{:?}", outcome.tail);
    assert_eq!(
        outcome.tail,
        ["recorded"],
        "the recorded pgid is the command's own pid"
    );
}

#[tokio::test]
async fn a_registry_failure_stops_the_command_from_starting() {
    let fx = Fixture::with_registry(FakeRegistry {
        refuse: true,
        ..Default::default()
    });
    let outcome = fx.run(fx.request("touch ran", TEST_TIMEOUT, 0)).await;
    assert_eq!(
        outcome.result,
        Err(StepError::Spawn(
            "cannot record process group: disk full".into()
        ))
    );
    assert!(!fx.path("ran").exists());
    assert_eq!(fx.registry.events(), ["finished train-1/staging/deploy/0"]);
}

#[tokio::test]
async fn the_log_has_a_header_and_footer_per_attempt() {
    let fx = Fixture::new();
    let cmd = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; printf 'out %s' $n; [ $n -ge 2 ]";
    let outcome = fx.run(fx.request(cmd, TEST_TIMEOUT, 1)).await;
    assert_eq!(outcome.result, Ok(()));
    let log = fx.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert!(
        lines[0].starts_with(&format!("== attempt 1/2: {cmd} (started 20")),
        "{log}"
    );
    assert_eq!(lines[1], "out 1");
    assert!(
        lines[2].starts_with("== attempt 1/2 exited with code 1 after "),
        "{log}"
    );
    assert!(lines[3].starts_with("== attempt 2/2: "), "{log}");
    assert_eq!(lines[4], "out 2");
    assert!(
        lines[5].starts_with("== attempt 2/2 succeeded after "),
        "{log}"
    );
}

#[tokio::test]
async fn other_step_kinds_are_refused() {
    let fx = Fixture::new();
    let mut req = fx.request("true", TEST_TIMEOUT, 0);
    req.step.kind = StepKind::Http {
        url: "http://127.0.0.1:1/".into(),
        method: "POST".into(),
    };
    let outcome = fx.run(req).await;
    assert_eq!(
        outcome.result,
        Err(StepError::Other(
            "http steps are not supported by this runner".into()
        ))
    );
    assert_eq!(outcome.attempts, 0);
}

#[test]
fn durations_read_as_configured() {
    let cases = [
        (600_000, "10m"),
        (90_000, "1m30s"),
        (5_400_000, "1h30m"),
        (1_500, "1.5s"),
        (250, "250ms"),
        (2_000, "2s"),
    ];
    for (ms, text) in cases {
        assert_eq!(human_duration(Duration::from_millis(ms)), text);
    }
}
