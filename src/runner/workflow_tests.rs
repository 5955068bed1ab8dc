use std::sync::Mutex;

use tokio::sync::Notify;

use super::*;
use crate::config::Step;
use crate::domain::ids::Sha;

/// Upper bound for anything a test waits for; never a guess at how long
/// something takes.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
const MAIN_HEAD: &str = "0123456789abcdef0123456789abcdef01234567";
const RELEASE_HEAD: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// GitHub Actions in memory: a dispatch starts a run of the ref's head,
/// created now; each `run()` moves it on: queued → in_progress → completed.
#[derive(Default)]
struct FakeActions {
    state: Mutex<State>,
    dispatched: Notify,
}

#[derive(Default)]
struct State {
    heads: BTreeMap<String, String>,
    runs: Vec<WorkflowRun>,
    dispatches: Vec<(String, String, BTreeMap<String, String>)>,
    /// The conclusion of runs dispatched from now on.
    conclusion: String,
    /// Runs never complete.
    stuck: bool,
    /// Every call is refused with this text.
    refused: Option<String>,
    next_id: u64,
}

impl FakeActions {
    fn new() -> FakeActions {
        let fake = FakeActions::default();
        {
            let mut state = fake.state();
            state.heads.insert("main".into(), MAIN_HEAD.into());
            state.heads.insert("release".into(), RELEASE_HEAD.into());
            state.conclusion = "success".into();
            state.next_id = 100;
        }
        fake
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn refused(&self) -> Result<(), ForgeError> {
        match &self.state().refused {
            Some(text) => Err(ForgeError::Refused(text.clone())),
            None => Ok(()),
        }
    }
}

fn run_url(id: u64) -> String {
    format!("https://github.com/acme/web/actions/runs/{id}")
}

#[async_trait]
impl Actions for FakeActions {
    async fn ref_sha(&self, git_ref: &str) -> Result<Sha, ForgeError> {
        self.refused()?;
        let state = self.state();
        let head = state
            .heads
            .get(git_ref)
            .ok_or_else(|| ForgeError::NotFound(git_ref.into()))?;
        Ok(Sha::new(head).unwrap())
    }

    async fn dispatch(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<(), ForgeError> {
        self.refused()?;
        let mut state = self.state();
        let head = state.heads[git_ref].clone();
        let id = state.next_id;
        state.next_id += 1;
        let conclusion = state.conclusion.clone();
        state.runs.push(WorkflowRun {
            id,
            head_sha: head,
            created_at: Utc::now(),
            status: "queued".into(),
            // Parked here until the run completes.
            conclusion: Some(conclusion),
            html_url: run_url(id),
        });
        state
            .dispatches
            .push((workflow.into(), git_ref.into(), inputs.clone()));
        self.dispatched.notify_one();
        Ok(())
    }

    async fn runs(&self, _workflow: &str, head_sha: &str) -> Result<Vec<WorkflowRun>, ForgeError> {
        self.refused()?;
        let state = self.state();
        Ok(state
            .runs
            .iter()
            .filter(|run| run.head_sha == head_sha)
            .map(shown)
            .collect())
    }

    async fn run(&self, id: u64) -> Result<WorkflowRun, ForgeError> {
        self.refused()?;
        let mut state = self.state();
        let stuck = state.stuck;
        let run = state
            .runs
            .iter_mut()
            .find(|run| run.id == id)
            .ok_or_else(|| ForgeError::NotFound(format!("run {id}")))?;
        match run.status.as_str() {
            "queued" => run.status = "in_progress".into(),
            "in_progress" if !stuck => run.status = "completed".into(),
            _ => {}
        }
        Ok(shown(run))
    }
}

/// A run as GitHub shows it: no conclusion before it completes.
fn shown(run: &WorkflowRun) -> WorkflowRun {
    let mut run = run.clone();
    if run.status != "completed" {
        run.conclusion = None;
    }
    run
}

struct Fixture {
    dir: tempfile::TempDir,
    actions: Arc<FakeActions>,
    runner: WorkflowRunner,
}

impl Fixture {
    fn new() -> Fixture {
        let actions = Arc::new(FakeActions::new());
        let tiny = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            runner: WorkflowRunner::new(actions.clone(), "main".into()).with_backoff(tiny, tiny),
            actions,
        }
    }

    fn log_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("logs/{name}.log"))
    }

    fn request(&self, name: &str, kind: StepKind, timeout: Duration, retries: u32) -> StepRequest {
        let env = [
            ("TRAINBOT_SHA", MAIN_HEAD),
            ("TRAINBOT_PREV_SHA", RELEASE_HEAD),
            ("TRAINBOT_ENV", "staging"),
            ("TRAINBOT_TRAIN", "3"),
            ("TRAINBOT_BRANCH", ""),
            ("TRAINBOT_NODE", ""),
            ("TRAINBOT_NODE_URL", ""),
        ];
        StepRequest {
            key: format!("train-3/staging/{name}/0"),
            step: Step {
                kind,
                timeout,
                retries,
                env: Vec::new(),
            },
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: self.dir.path().into(),
            workdir: None,
            log_path: self.log_path(name),
        }
    }

    fn deploy(&self, timeout: Duration, retries: u32) -> StepRequest {
        self.request("deploy", deploy_yml(None, &[]), timeout, retries)
    }

    async fn run(&self, req: StepRequest) -> StepOutcome {
        let (_tx, cancel) = watch::channel(false);
        tokio::time::timeout(TEST_TIMEOUT, self.runner.run(req, cancel))
            .await
            .expect("step did not end")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap()
    }
}

fn deploy_yml(git_ref: Option<&str>, inputs: &[(&str, &str)]) -> StepKind {
    StepKind::Workflow {
        workflow: "deploy.yml".into(),
        git_ref: git_ref.map(str::to_string),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn a_successful_run_passes_and_is_followed_in_the_log() {
    let fx = Fixture::new();
    let outcome = fx.run(fx.deploy(TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.attempts, 1);
    let log = fx.log("deploy");
    assert!(
        log.starts_with("== attempt 1/1: workflow deploy.yml on main (started "),
        "{log}"
    );
    let following = format!("following run {}\n", run_url(100));
    assert!(log.contains(&following), "{log}");
    assert!(
        log.contains(&format!("{following}run queued\nrun in_progress\nrun completed\nrun success\n== attempt 1/1 succeeded")),
        "{log}"
    );
}

#[tokio::test]
async fn a_failed_run_fails_the_step_with_its_url() {
    let fx = Fixture::new();
    fx.actions.state().conclusion = "failure".into();
    let outcome = fx.run(fx.deploy(TEST_TIMEOUT, 1)).await;
    assert_eq!(outcome.attempts, 2);
    assert_eq!(
        outcome.result,
        Err(StepError::Other(format!(
            "workflow run failure: {}",
            run_url(101)
        )))
    );
    assert_eq!(outcome.tail.last().unwrap(), "run failure");
    assert_eq!(fx.actions.state().dispatches.len(), 2);
}

#[tokio::test]
async fn inputs_are_filled_and_the_ref_defaults_to_main() {
    let fx = Fixture::new();
    let inputs = [
        ("sha", "{sha}"),
        ("note", "{env} train {train} from {prev_sha}{x}"),
    ];
    let req = fx.request("deploy", deploy_yml(None, &inputs), TEST_TIMEOUT, 0);
    assert_eq!(fx.run(req).await.result, Ok(()));

    let (workflow, git_ref, sent) = fx.actions.state().dispatches[0].clone();
    assert_eq!(
        (workflow.as_str(), git_ref.as_str()),
        ("deploy.yml", "main")
    );
    assert_eq!(sent["sha"], MAIN_HEAD);
    assert_eq!(
        sent["note"],
        format!("staging train 3 from {RELEASE_HEAD}{{x}}")
    );
    assert_eq!(fx.actions.state().runs[0].head_sha, MAIN_HEAD);
}

#[tokio::test]
async fn a_given_ref_is_dispatched_and_its_head_followed() {
    let fx = Fixture::new();
    let req = fx.request("deploy", deploy_yml(Some("release"), &[]), TEST_TIMEOUT, 0);
    assert_eq!(fx.run(req).await.result, Ok(()));
    let state = fx.actions.state();
    assert_eq!(state.dispatches[0].1, "release");
    assert_eq!(state.runs[0].head_sha, RELEASE_HEAD);
    assert_eq!(state.runs[0].status, "completed");
}

#[test]
fn placeholders_are_filled_in_one_pass() {
    let env = vec![
        ("TRAINBOT_SHA".to_string(), "{env}".to_string()),
        ("TRAINBOT_ENV".to_string(), "prod".to_string()),
    ];
    assert_eq!(
        fill("{sha}/{env}/{node}/{{sha}/{sha", &env),
        "{env}/prod//{{env}/{sha"
    );
    assert_eq!(fill("$(rm -rf /) {branch}", &env), "$(rm -rf /) ");
}

#[tokio::test]
async fn a_run_created_before_the_dispatch_is_not_taken() {
    let fx = Fixture::new();
    fx.actions.state().runs.push(WorkflowRun {
        id: 7,
        head_sha: MAIN_HEAD.into(),
        created_at: Utc::now() - chrono::TimeDelta::minutes(5),
        status: "completed".into(),
        conclusion: Some("failure".into()),
        html_url: run_url(7),
    });
    let outcome = fx.run(fx.deploy(TEST_TIMEOUT, 0)).await;
    assert_eq!(outcome.result, Ok(()));
    let log = fx.log("deploy");
    assert!(
        log.contains(&format!("following run {}", run_url(100))),
        "{log}"
    );
    assert!(!log.contains(&run_url(7)), "{log}");
}

#[tokio::test]
async fn two_steps_on_the_same_head_follow_different_runs() {
    let fx = Fixture::new();
    let first = fx.request("first", deploy_yml(None, &[]), TEST_TIMEOUT, 0);
    let second = fx.request("second", deploy_yml(None, &[]), TEST_TIMEOUT, 0);
    let (a, b) = tokio::join!(fx.run(first), fx.run(second));
    assert_eq!((a.result, b.result), (Ok(()), Ok(())));
    let followed: Vec<String> = ["first", "second"]
        .iter()
        .map(|name| {
            let log = fx.log(name);
            let line = log
                .lines()
                .find(|l| l.starts_with("following run "))
                .unwrap();
            line.to_string()
        })
        .collect();
    assert_ne!(followed[0], followed[1]);
    assert!(
        fx.actions
            .state()
            .runs
            .iter()
            .all(|run| run.status == "completed")
    );
}

#[tokio::test]
async fn a_run_that_never_completes_times_out() {
    let fx = Fixture::new();
    fx.actions.state().stuck = true;
    let outcome = fx.run(fx.deploy(Duration::from_millis(100), 0)).await;
    assert_eq!(outcome.result, Err(StepError::Timeout("100ms".into())));
    let log = fx.log("deploy");
    assert!(log.contains("run in_progress\n"), "{log}");
    assert!(
        log.contains("trainbot does not cancel it on GitHub"),
        "{log}"
    );
}

#[tokio::test]
async fn cancel_stops_following_at_once() {
    let fx = Fixture::new();
    fx.actions.state().stuck = true;
    let (tx, cancel) = watch::channel(false);
    let step = fx.runner.run(fx.deploy(TEST_TIMEOUT * 3, 2), cancel);
    let cancel_after_dispatch = async {
        fx.actions.dispatched.notified().await;
        tx.send(true).unwrap();
    };
    let (outcome, ()) = tokio::time::timeout(TEST_TIMEOUT, async {
        tokio::join!(step, cancel_after_dispatch)
    })
    .await
    .expect("cancel did not stop the step");
    assert_eq!(outcome.result, Err(StepError::Cancelled));
    assert_eq!(outcome.attempts, 1);
    assert_eq!(fx.actions.state().dispatches.len(), 1);
    assert!(fx.log("deploy").contains("== attempt 1/3 cancelled after "));
}

#[tokio::test]
async fn a_refusal_is_said_as_it_is_and_not_retried() {
    let fx = Fixture::new();
    fx.actions.state().refused = Some("GitHub refused: bad token for acme/web".into());
    let outcome = fx.run(fx.deploy(TEST_TIMEOUT, 2)).await;
    assert_eq!(outcome.attempts, 1);
    assert_eq!(
        outcome.result,
        Err(StepError::Other(
            "GitHub refused: bad token for acme/web".into()
        ))
    );
    assert!(fx.actions.state().dispatches.is_empty());
}

#[tokio::test]
async fn an_unknown_ref_fails_the_attempt() {
    let fx = Fixture::new();
    let req = fx.request("deploy", deploy_yml(Some("nope"), &[]), TEST_TIMEOUT, 1);
    let outcome = fx.run(req).await;
    assert_eq!(outcome.attempts, 2);
    assert_eq!(
        outcome.result,
        Err(StepError::Other("nope not found".into()))
    );
}

#[tokio::test]
async fn workflow_run_webhooks_wake_a_follower_long_before_its_next_poll() {
    let mut fx = Fixture::new();
    let (events, rx) = watch::channel(0u64);
    let hour = Duration::from_secs(3600);
    fx.runner = WorkflowRunner::new(fx.actions.clone(), "main".into())
        .with_backoff(Backoff::new(hour, hour), Backoff::new(hour, hour))
        .with_run_events(rx);
    let req = fx.deploy(TEST_TIMEOUT, 0);
    let (_cancel_tx, cancel) = watch::channel(false);
    let step = fx.runner.run(req, cancel);
    tokio::pin!(step);
    // Each event is a run changing on GitHub; polling alone would wait an hour.
    let outcome = tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            tokio::select! {
                outcome = &mut step => break outcome,
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    events.send_modify(|n| *n += 1);
                }
            }
        }
    })
    .await
    .expect("the follower never woke");
    assert_eq!(outcome.result, Ok(()));
}
