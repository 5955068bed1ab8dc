//! Starting the bot: one engine per pipeline, the chat dispatcher, the
//! web and webhook listeners, signals; and waiting for the engines to stop.

use anyhow::Context;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use trainbot::chat::console::Console;
use trainbot::chat::slack::{Slack, Tokens};
use trainbot::chat::{Chat, Scope, ScopedChat};
use trainbot::config::{ChatAdapter, ForgeKind, Settings};
use trainbot::dispatch::Dispatcher;
use trainbot::domain::clock::SystemClock;
use trainbot::domain::ids::TRAIN_LABEL;
use trainbot::engine::{Engine, Event, Ports, StoreRegistry};
use trainbot::forge::git::GitForge;
use trainbot::forge::github::{ApiStats, Credentials, GithubForge};
use trainbot::forge::{Forge, Results};
use trainbot::runner::StepRunner;
use trainbot::runner::http::HttpRunner;
use trainbot::runner::kinds::StepKinds;
use trainbot::runner::prometheus::PrometheusRunner;
use trainbot::runner::shell::ShellRunner;
use trainbot::runner::workflow::WorkflowRunner;
use trainbot::store::{Store, StoreError, Wanted};
use trainbot::web::{WebState, Webhook, router_for, webhook_router_for};

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
    if let Some(secret) = &secret {
        trainbot::secrets::register(secret);
    }
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

/// One pipeline before its engine starts.
pub(crate) struct Planned {
    pub(crate) settings: Settings,
    pub(crate) github: Option<Credentials>,
}

pub(crate) async fn run(planned: Vec<Planned>) -> anyhow::Result<()> {
    // Listening from the start: a signal during start-up stops the bot
    // cleanly once the engines run, instead of killing it outright.
    let signals = Signals::new();
    let first = &planned[0].settings;
    let (root_dir, multi) = (first.bot.data_dir.clone(), first.pipeline.multi);
    let (bot, chat_cfg) = (first.bot.clone(), first.chat.clone());
    let root = match Store::open(&root_dir) {
        Ok(s) => s,
        Err(e @ StoreError::Locked(_)) => anyhow::bail!("{e}"),
        Err(e) => return Err(e).context("Cannot open the store"),
    };
    let heirs = heirs(&root, &planned).await?;
    let wanted: Vec<Wanted<'_>> = planned
        .iter()
        .zip(heirs)
        .map(|(p, heir)| Wanted {
            name: &p.settings.pipeline.name,
            heir,
        })
        .collect();
    let stores = root.pipelines(&wanted, multi)?;
    let (chat_tx, chat_rx) = mpsc::channel(256);
    let (chat, slack): (Arc<dyn Chat>, Option<Arc<Slack>>) = match chat_cfg.adapter {
        ChatAdapter::Console => {
            let console = Arc::new(Console::new(&chat_cfg.console_user));
            let reader = console.clone();
            trainbot::supervise::restarting("console reader", move || {
                reader.read_stdin(chat_tx.clone())
            });
            (console, None)
        }
        ChatAdapter::Slack => {
            let cfg = &chat_cfg.slack;
            let tokens = Tokens::from_env(cfg)?;
            let mut channels: Vec<String> = Vec::new();
            for p in &planned {
                if !channels.contains(&p.settings.chat.slack.channel) {
                    channels.push(p.settings.chat.slack.channel.clone());
                }
            }
            let slack = Arc::new(
                Slack::start(
                    cfg,
                    channels,
                    tokens,
                    root.adapter_handle(),
                    &bot.command_prefix,
                    chat_tx,
                )
                .await?,
            );
            (slack.clone(), Some(slack))
        }
    };
    // Every message of every pipeline passes here: secrets become `***`.
    let chat: Arc<dyn Chat> = Arc::new(trainbot::chat::MaskedChat::new(chat));
    let console = chat_cfg.adapter == ChatAdapter::Console;
    let channels: Vec<String> = planned
        .iter()
        .map(|p| p.settings.chat.slack.channel.clone())
        .collect();
    let channel_count = |channel: &str| channels.iter().filter(|c| *c == channel).count();
    let mut engines = Vec::new();
    let mut webs = Vec::new();
    let mut routes = Vec::new();
    // One wake-up per shared node pool, for all the engines naming it.
    let mut pools: std::collections::HashMap<String, watch::Sender<u64>> = Default::default();
    for (p, store) in planned.into_iter().zip(stores) {
        let mut settings = p.settings;
        if !store.legacy {
            settings.bot.data_dir = root_dir.join("p").join(&settings.pipeline.name);
        }
        let settings = Arc::new(settings);
        let scope = Scope {
            pipeline: settings.pipeline.name.clone(),
            channel: settings.chat.slack.channel.clone(),
            multi,
            shared: multi && (console || channel_count(&settings.chat.slack.channel) > 1),
        };
        let chat: Arc<dyn Chat> = Arc::new(ScopedChat::new(chat.clone(), scope));
        let pool = match &settings.branch_builds.pool {
            Some(name) => {
                let freed = pools
                    .entry(name.clone())
                    .or_insert_with(|| watch::channel(0u64).0)
                    .clone();
                Some((store.store.with_pool(name)?, freed))
            }
            None => None,
        };
        let built = match pool {
            Some((store, freed)) => {
                let mut built = pipeline(settings.clone(), store, chat, p.github)?;
                built.engine = built.engine.with_pool(freed);
                built
            }
            None => pipeline(settings.clone(), store.store, chat, p.github)?,
        };
        routes.push(trainbot::dispatch::Pipeline {
            name: settings.pipeline.name.clone(),
            channel: settings.chat.slack.channel.clone(),
            inbox: built.engine.inbox(),
            snapshots: built.engine.snapshots(),
        });
        webs.push(built.web);
        engines.push((settings.pipeline.name.clone(), built.engine));
    }
    if let Some(slack) = &slack {
        slack.set_home(
            routes
                .iter()
                .map(|r| (r.name.clone(), r.snapshots.clone()))
                .collect(),
        );
    }
    let inboxes: Vec<mpsc::Sender<Event>> = routes.iter().map(|r| r.inbox.clone()).collect();
    let listener = tokio::net::TcpListener::bind(bot.http_listen)
        .await
        .with_context(|| format!("Cannot listen on {}", bot.http_listen))?;
    // With port 0 in the config, the log is the only place the port shows.
    let listening = listener
        .local_addr()
        .map_or_else(|_| bot.http_listen.to_string(), |a| a.to_string());
    let (stop_web, stop_web_rx) = watch::channel(false);
    let mut servers = Vec::new();
    if let Some(addr) = bot.webhook_listen {
        let hooks = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("Cannot listen on {addr} (bot.webhook_listen)"))?;
        let at = hooks
            .local_addr()
            .map_or_else(|_| addr.to_string(), |a| a.to_string());
        tracing::info!(listen = %at, "Serving the GitHub webhook alone.");
        let app = webhook_router_for(webs.clone());
        servers.push(serve("webhook server", hooks, app, stop_web_rx.clone())?);
    }
    let app = router_for(webs);
    servers.push(serve("web server", listener, app, stop_web_rx)?);

    // The dispatcher takes every chat message to its pipeline's inbox; a
    // restarted one goes on with the same receiver.
    let chat_rx = Arc::new(tokio::sync::Mutex::new(chat_rx));
    let dispatcher = Arc::new(tokio::sync::Mutex::new(
        Dispatcher::new(routes, &bot.command_prefix, chat.clone()).with_store(root.clone()),
    ));
    trainbot::supervise::restarting("chat dispatcher", move || {
        let (chat_rx, dispatcher) = (chat_rx.clone(), dispatcher.clone());
        tokio::spawn(async move {
            let mut chat_rx = chat_rx.lock().await;
            let mut dispatcher = dispatcher.lock().await;
            while let Some(msg) = chat_rx.recv().await {
                if !dispatcher.dispatch(msg).await {
                    return;
                }
            }
        })
    });
    // Every signal goes to every engine: the first stops them gently (a
    // running production step may finish), a second at once (SPEC §12).
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
            for inbox in &inboxes {
                let _ = inbox.send(Event::Shutdown).await;
            }
        }
    });

    tracing::info!(listen = %listening, pipelines = engines.len(), "trainbot is running.");
    // Each engine is its own task: pipelines never wait for one another.
    let running: Vec<_> = engines
        .into_iter()
        .map(|(name, engine)| {
            let label: Arc<str> = Arc::from(name.as_str());
            let run = engine.run();
            let task = if multi {
                tokio::spawn(TRAIN_LABEL.scope(label, run))
            } else {
                tokio::spawn(run)
            };
            (name, task)
        })
        .collect();
    let mut result = Ok(());
    for (name, task) in running {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(anyhow::anyhow!("the engine task ended: {e}")),
        };
        if let Err(e) = outcome
            && result.is_ok()
        {
            result = Err(e.context(format!("pipeline {name}")));
        }
    }
    if let Some(slack) = slack {
        slack.shutdown().await;
    }
    let _ = stop_web.send(true);
    for server in servers {
        let _ = server.await;
    }
    result
}

/// Which pipelines may inherit an unowned single-pipeline history: those
/// named after their repository, and among several such, those whose
/// repository holds a commit of that history.
async fn heirs(root: &Store, planned: &[Planned]) -> anyhow::Result<Vec<bool>> {
    let named: Vec<bool> = planned
        .iter()
        .map(|p| p.settings.pipeline.name == repository_name(&p.settings))
        .collect();
    if named.iter().filter(|&&n| n).count() < 2 {
        return Ok(named);
    }
    let Some(sha) = root.unowned_legacy_sha()? else {
        return Ok(named);
    };
    let mut heirs = Vec::with_capacity(planned.len());
    for (p, named) in planned.iter().zip(named) {
        let holds = named && {
            let s = &p.settings;
            let forge: Arc<dyn Forge> = match &p.github {
                Some(credentials) => Arc::new(GithubForge::new(
                    &s.forge.github,
                    &s.forge.main_branch,
                    credentials.clone(),
                )?),
                None => Arc::new(GitForge::new(
                    s.forge.git_path.clone(),
                    s.forge.main_branch.clone(),
                )),
            };
            let asked = tokio::time::timeout(s.forge.timeout, forge.is_on_main(&sha)).await;
            matches!(asked, Ok(Ok(true)))
        };
        heirs.push(holds);
    }
    Ok(heirs)
}

/// Serves `app` on `listener` until `stop` turns true, restarted if it
/// fails. A restarted server accepts on a copy of the same socket: the port
/// stays the one announced, even with port 0 in the config.
fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = listener.into_std().context("Cannot keep the listener")?;
    Ok(trainbot::supervise::restarting(name, move || {
        let (app, mut stop) = (app.clone(), stop.clone());
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
    }))
}

/// The name the single-pipeline version went by: its repository's.
fn repository_name(s: &Settings) -> String {
    match s.forge.kind {
        ForgeKind::Github => s.forge.github.repo.clone(),
        ForgeKind::Git => std::fs::canonicalize(&s.forge.git_path)
            .unwrap_or_else(|_| s.forge.git_path.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// One pipeline's engine and its pages.
struct Built {
    engine: Engine,
    web: WebState,
}

/// The engine of one pipeline with its own forge, runners and store.
fn pipeline(
    settings: Arc<Settings>,
    store: Store,
    chat: Arc<dyn Chat>,
    github: Option<Credentials>,
) -> anyhow::Result<Built> {
    let registry = Arc::new(StoreRegistry(store.clone()));
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
    let github_stats = Arc::new(ApiStats::default());
    let (forge, results, workflow): Github = match github {
        Some(credentials) => {
            let github = Arc::new(
                GithubForge::new(
                    &settings.forge.github,
                    &settings.forge.main_branch,
                    credentials,
                )?
                .with_stats(github_stats.clone()),
            );
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
        runner: Arc::new(
            StepKinds::new(shell, http, workflow)
                .with_prometheus(Arc::new(PrometheusRunner::new().with_log_cap(max_log))),
        ),
        clock: Arc::new(SystemClock),
    };
    let is_github = ports.results.is_some();
    let engine = Engine::new(settings.clone(), store.clone(), ports);
    if is_github {
        engine.metrics().attach_github(github_stats);
    }
    let web = WebState {
        snapshots: engine.snapshots(),
        store,
        settings: settings.clone(),
        metrics: engine.metrics(),
        clock: Arc::new(SystemClock),
        webhook: webhook(&settings, &engine.inbox(), run_events),
        // router_for sets each pipeline's base.
        base: String::new(),
        name: settings.pipeline.name.clone(),
    };
    Ok(Built { engine, web })
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
