//! trainbot's entry point: CLI, logging, wiring, exit codes (0 clean stop,
//! 2 bad config or arguments, 1 anything else).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::sync::{mpsc, watch};

use trainbot::chat::Chat;
use trainbot::chat::console::Console;
use trainbot::chat::slack::{Slack, StartError, Tokens};
use trainbot::cli::{Cli, Cmd};
use trainbot::config::{ChatAdapter, ForgeKind, Settings};
use trainbot::domain::clock::{Clock, SystemClock};
use trainbot::engine::{Engine, Event, Ports, StoreRegistry};
use trainbot::forge::git::GitForge;
use trainbot::forge::github::GithubForge;
use trainbot::forge::{Forge, Results};
use trainbot::runner::StepRunner;
use trainbot::runner::http::HttpRunner;
use trainbot::runner::kinds::StepKinds;
use trainbot::runner::shell::ShellRunner;
use trainbot::runner::workflow::WorkflowRunner;
use trainbot::store::{Store, StoreError};
use trainbot::web::{WebState, Webhook, router};

fn main() -> ExitCode {
    // One TLS provider for every client (Slack's connector needs it set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = match Settings::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trainbot: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Check => {
            let pipelines = match trainbot::config::load_pipelines(&cli.config) {
                Ok(pipelines) => pipelines,
                Err(e) => {
                    eprintln!("trainbot: {e}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("{}: ok", cli.config.display());
            let now = SystemClock.now();
            for pipeline in &pipelines {
                // A single pipeline prints as it always has: scripts read it.
                let indent = if pipeline.pipeline.multi {
                    println!("{}:", pipeline.pipeline.name);
                    "  "
                } else {
                    ""
                };
                for t in trainbot::config::next_departures(pipeline, now, 5) {
                    println!("{indent}{}", t.to_rfc3339());
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Run => {
            let token = match github_token(&settings) {
                Ok(token) => token,
                Err(e) => {
                    eprintln!("trainbot: {}: {e}", cli.config.display());
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("trainbot: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(run(settings, token));
            // The console reads stdin in a blocking thread that never returns
            // while stdin stays open (a terminal): stop without waiting for it.
            rt.shutdown_timeout(std::time::Duration::from_millis(250));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("trainbot: {e:#}");
                    // Missing tokens, a refused token, an unknown channel:
                    // the configuration (or its environment) is wrong.
                    match e.downcast_ref::<StartError>() {
                        Some(start) if start.is_config() => ExitCode::from(2),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}

/// The GitHub token, read before anything starts: without it the github
/// forge cannot work, and that is a configuration problem (exit 2).
fn github_token(s: &Settings) -> Result<Option<String>, String> {
    if s.forge.kind != ForgeKind::Github {
        return Ok(None);
    }
    let var = &s.forge.github.token_env;
    match std::env::var(var) {
        Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
        _ => Err(format!(
            "forge.github.token_env: the environment variable {var} is not set or empty; \
             it must hold a GitHub token for {}/{}",
            s.forge.github.owner, s.forge.github.repo
        )),
    }
}

/// The webhook receiver, for the github forge only. Without a secret every
/// delivery is refused and polling alone finds new commits and tags.
fn webhook(
    s: &Settings,
    inbox: &mpsc::Sender<Event>,
    run_events: watch::Sender<u64>,
) -> Option<Webhook> {
    if s.forge.kind != ForgeKind::Github {
        return None;
    }
    let var = &s.forge.github.webhook_secret_env;
    let secret = std::env::var(var).ok().filter(|v| !v.is_empty());
    if secret.is_none() {
        tracing::warn!(
            variable = %var,
            "No webhook secret: deliveries to /webhooks/github are refused; polling finds new commits and tags."
        );
    }
    Some(Webhook {
        secret: secret.map(|v| Arc::from(v.into_bytes())),
        main_branch: s.forge.main_branch.clone(),
        repository: format!("{}/{}", s.forge.github.owner, s.forge.github.repo),
        inbox: inbox.clone(),
        run_events: Some(run_events),
    })
}

async fn run(settings: Settings, github_token: Option<String>) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    // Listening from the start: a signal during start-up stops the bot
    // cleanly once the engine runs, instead of killing it outright.
    let signals = Signals::new();
    let store = match Store::open(&settings.bot.data_dir) {
        Ok(s) => s,
        Err(e @ StoreError::Locked(_)) => anyhow::bail!("{e}"),
        Err(e) => return Err(e).context("Cannot open the store"),
    };
    let registry = Arc::new(StoreRegistry(store.clone()));
    let (chat_tx, chat_rx) = mpsc::channel(256);
    let (chat, slack): (Arc<dyn Chat>, Option<Arc<Slack>>) = match settings.chat.adapter {
        ChatAdapter::Console => {
            let console = Arc::new(Console::new(&settings.chat.console_user));
            let reader = console.clone();
            trainbot::supervise::restarting("console reader", move || {
                reader.read_stdin(chat_tx.clone())
            });
            (console, None)
        }
        ChatAdapter::Slack => {
            let cfg = &settings.chat.slack;
            let tokens = Tokens::from_env(cfg)?;
            let slack = Arc::new(
                Slack::start(
                    cfg,
                    tokens,
                    store.adapter_handle(),
                    &settings.bot.command_prefix,
                    chat_tx,
                )
                .await?,
            );
            (slack.clone(), Some(slack))
        }
    };
    let max_log = settings.bot.max_step_log;
    let shell = Arc::new(ShellRunner::with_default_grace(registry).with_log_cap(max_log));
    // `workflow_run` webhooks wake the workflow steps following a run.
    let (run_events, run_events_rx) = watch::channel(0u64);
    let http = Arc::new(HttpRunner::new().with_log_cap(max_log));
    type Github = (
        Arc<dyn Forge>,
        Option<Arc<dyn Results>>,
        Option<Arc<dyn StepRunner>>,
    );
    let (forge, results, workflow): Github = match github_token {
        Some(token) => {
            let github = Arc::new(GithubForge::new(
                &settings.forge.github,
                &settings.forge.main_branch,
                token,
            )?);
            let workflow = WorkflowRunner::new(github.clone(), settings.forge.main_branch.clone())
                .with_run_events(run_events_rx)
                .with_log_cap(max_log);
            (github.clone(), Some(github), Some(Arc::new(workflow)))
        }
        None => (
            Arc::new(GitForge::new(
                settings.forge.git_path.clone(),
                settings.forge.main_branch.clone(),
            )),
            None,
            None,
        ),
    };
    let ports = Ports {
        chat,
        forge,
        results,
        runner: Arc::new(StepKinds::new(shell, http, workflow)),
        clock: Arc::new(SystemClock),
    };
    let engine = Engine::new(settings.clone(), store.clone(), ports);
    let inbox = engine.inbox();
    let listener = tokio::net::TcpListener::bind(settings.bot.http_listen)
        .await
        .with_context(|| format!("Cannot listen on {}", settings.bot.http_listen))?;
    // With port 0 in the config, the log is the only place the port shows.
    let listening = listener
        .local_addr()
        .map_or_else(|_| settings.bot.http_listen.to_string(), |a| a.to_string());
    let app = router(WebState {
        snapshots: engine.snapshots(),
        store,
        settings: settings.clone(),
        metrics: engine.metrics(),
        clock: Arc::new(SystemClock),
        webhook: webhook(&settings, &inbox, run_events),
    });
    let (stop_web, stop_web_rx) = watch::channel(false);
    // A restarted server accepts on a copy of the same socket: the port
    // stays the one announced, even with port 0 in the config.
    let listener = listener.into_std().context("Cannot keep the listener")?;
    let web = trainbot::supervise::restarting("web server", move || {
        let (app, mut stop) = (app.clone(), stop_web_rx.clone());
        let listener = listener
            .try_clone()
            .and_then(tokio::net::TcpListener::from_std);
        tokio::spawn(async move {
            let listener = match listener {
                Ok(listener) => listener,
                Err(error) => return tracing::error!(%error, "Cannot serve HTTP."),
            };
            let stopped = async move {
                let _ = stop.wait_for(|&stop| stop).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "The web server stopped.");
            }
        })
    });

    // One receiver for every run of the forwarder, restarted or not.
    let chat_rx = Arc::new(tokio::sync::Mutex::new(chat_rx));
    let forward = inbox.clone();
    trainbot::supervise::restarting("chat forwarder", move || {
        let (chat_rx, forward) = (chat_rx.clone(), forward.clone());
        tokio::spawn(async move {
            let mut chat_rx = chat_rx.lock().await;
            while let Some(msg) = chat_rx.recv().await {
                if forward.send(Event::Chat(msg)).await.is_err() {
                    return;
                }
            }
        })
    });
    // Every signal goes to the engine: the first stops it gently (a running
    // production step may finish), a second at once (SPEC §12).
    trainbot::supervise::once("signals", async move {
        let Some(mut signals) = signals else {
            return;
        };
        for n in 1u32.. {
            signals.next().await;
            match n {
                1 => tracing::info!("Signal received; stopping."),
                _ => tracing::warn!("Another signal received; stopping at once."),
            }
            if inbox.send(Event::Shutdown).await.is_err() {
                return;
            }
        }
    });

    tracing::info!(listen = %listening, "trainbot is running.");
    let result = engine.run().await;
    if let Some(slack) = slack {
        slack.shutdown().await;
    }
    let _ = stop_web.send(true);
    let _ = web.await;
    result
}

/// SIGTERM and SIGINT, as one stream.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(Signals { term, int }),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "Cannot listen for SIGTERM/SIGINT.");
                None
            }
        }
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
