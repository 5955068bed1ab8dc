//! The engine: the single writer. One task owns the state and handles every
//! input serially: handle -> persist and flush -> perform effects -> sleep
//! until the next timer, inside one `select!`. Long work (steps, polling)
//! runs in spawned tasks that report back through the inbox.

mod builds;
mod calls;
mod commands;
mod eject;
mod faults;
mod gate;
mod gate_commands;
mod main_branch;
pub mod metrics;
mod publish;
mod recovery;
mod status;
mod steps;
mod stopping;
mod tags;
#[cfg(test)]
mod test_fakes;
#[cfg(test)]
mod tests;
mod trains;
mod why_sha;
pub mod workdirs;

use std::sync::Arc;

use chrono::TimeDelta;
use tokio::sync::{mpsc, watch};

pub use metrics::Metrics;
pub use status::{FrozenView, GateView, LockView, Snapshot, TagView, TrainView, VerifyView};

use crate::chat::{Chat, Incoming, Message, Run};
use crate::config::Settings;
use crate::domain::approval::Identities;
use crate::domain::clock::{Clock, Ts};
use crate::domain::ids::{ChatUser, Sha, TrainId};
use crate::domain::messages::Ctx;
use crate::domain::schedule::next_departure;
use crate::domain::train::{EnvPlan, Plan, StepPos, Train};
use crate::forge::{Forge, Results};
use crate::runner::{ProcessRegistry, StepOutcome, StepRunner};
use crate::store::{ProductionClaim, RunningProcess, Store};

/// Everything that can happen to the engine.
#[derive(Debug, Clone)]
pub enum Event {
    Chat(Incoming),
    StepDone {
        train: TrainId,
        pos: StepPos,
        outcome: StepOutcome,
        took: TimeDelta,
        log: String,
    },
    /// The poller saw this head on the main branch.
    MainHead(Sha),
    /// The push webhook says main moved to this SHA. Deliveries can arrive
    /// out of order, so the forge is asked for the head now.
    MainPushed(Sha),
    /// The push webhook saw this tag created or moved.
    TagPushed(crate::forge::TagRef),
    /// The tag poller's list, sent when it changed.
    TagsPolled(Vec<crate::forge::TagRef>),
    /// The forge refused a request (bad token, no access): said in chat.
    ForgeRefused(String),
    MainChecked {
        sha: Sha,
        failure: Option<Box<main_branch::CheckFailure>>,
    },
    /// A call made beside the engine came back (SPEC §12).
    Reply(Box<calls::Reply>),
    BuildStepDone {
        build: u64,
        pos: crate::domain::build::BuildPos,
        outcome: StepOutcome,
        took: TimeDelta,
        log: String,
    },
    Shutdown,
}

/// The ports the engine drives.
pub struct Ports {
    pub chat: Arc<dyn Chat>,
    pub forge: Arc<dyn Forge>,
    /// Where statuses and deployments are published (GitHub); None: the
    /// store alone keeps them.
    pub results: Option<Arc<dyn Results>>,
    pub runner: Arc<dyn StepRunner>,
    pub clock: Arc<dyn Clock>,
}

struct RunningStep {
    train: TrainId,
    pos: StepPos,
    cancel: watch::Sender<bool>,
}

pub struct Engine {
    cfg: Arc<Settings>,
    plan: Plan,
    store: Store,
    ports: Ports,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    /// The train that has not finished, if any.
    train: Option<Train>,
    step: Option<RunningStep>,
    claim: Option<ProductionClaim>,
    /// Main checks running for this SHA.
    checking: Option<(Sha, watch::Sender<bool>)>,
    next_departure: Option<Ts>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    /// Branch builds running or queued.
    builds: builds::ActiveBuilds,
    metrics: Arc<Metrics>,
    /// The input being handled is a button click: replies go privately.
    private_replies: bool,
    /// The chat thread of the command being answered (None otherwise).
    reply_thread: Option<String>,
    /// The last status sent per run, so an unchanged one is not sent again.
    last_status: std::collections::HashMap<Run, String>,
    /// The last forge refusal said in chat, and when: said again only
    /// when it changes or an hour has passed.
    last_refusal: Option<(String, Ts)>,
    /// Commit statuses and deployments for the forge (GitHub).
    publisher: publish::Publisher,
    /// A tag deploy that could not leave (the forge failed) waits until then.
    tag_retry_at: Option<Ts>,
    /// The last "still running" notice, so a minute is announced once.
    last_progress: Option<(TrainId, StepPos, i64)>,
    /// Environment locks (SPEC §11), as stored.
    locks: Vec<crate::domain::lock::Lock>,
    /// Why the train waits at the door of an environment, if it does.
    door_hold: Option<crate::domain::gate::Hold>,
    /// The last hold said (what waited, and why), for `!why`.
    /// The last wait or refusal of the gate, as said ("what: hold").
    last_hold: Option<String>,
    /// A train listing its commits to leave, with this head.
    departing: Option<Sha>,
    /// The command being handled waits on a call: it is finished (audited,
    /// refusals said) when the reply comes back.
    answer_later: bool,
    /// Inputs waiting for a failing store, and when to try again.
    stalled: faults::Stalled,
    /// Said while a batch of inputs is applied; sent after its one flush,
    /// so nothing is said before it is in the store (group commit).
    outbox: Option<Vec<Message>>,
    /// A stop signal came: no new work, no new steps (SPEC §12).
    stopping: bool,
    /// The shared node pool's wake-up (`branch_builds.pool`): bumped when
    /// this engine frees a node of the pool.
    pool: Option<watch::Sender<u64>>,
    /// The same, watched: another engine of the pool freed a node.
    pool_freed: Option<watch::Receiver<u64>>,
    /// This batch freed a node of the pool: the pool hears it after the
    /// batch's flush.
    pool_node_freed: bool,
}

/// Lets a restarted bot find and kill step processes its predecessor left.
pub struct StoreRegistry(pub Store);

impl ProcessRegistry for StoreRegistry {
    fn started(&self, key: &str, pgid: i32) -> std::io::Result<()> {
        let proc = RunningProcess {
            pgid,
            boot_id: crate::runner::shell::boot_id(),
        };
        self.0
            .record_process(key, &proc)
            .map_err(std::io::Error::other)
    }
    fn finished(&self, key: &str) {
        if let Err(error) = self.0.forget_process(key) {
            tracing::warn!(%error, key, "Cannot forget a finished step process.");
        }
    }
}

/// Resolves when another engine of the pool freed a node; never without a
/// pool (or once every sender is gone).
async fn pool_freed(rx: Option<&mut watch::Receiver<u64>>) -> Result<(), ()> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Ok(()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

pub fn plan_of(cfg: &Settings) -> Plan {
    Plan {
        envs: cfg
            .train
            .environments
            .iter()
            .map(|e| EnvPlan {
                name: e.name.clone(),
                deploy: e.deploy.len(),
                acceptance: e.acceptance.len(),
            })
            .collect(),
        production_deploy: cfg.production.deploy.len(),
        production_smoke: cfg.production.smoke.len(),
        approval: cfg.train.approval,
        approval_timeout: crate::domain::duration::to_delta(cfg.train.approval_timeout),
        verify: {
            let v = &cfg.production.verify;
            let delta = crate::domain::duration::to_delta;
            crate::domain::train::VerifyPlan {
                steps: v.steps.len(),
                window: delta(v.window),
                every: delta(v.every),
                delay: delta(v.delay),
                failure_limit: v.failure_limit,
                auto_rollback: v.auto_rollback,
            }
        },
    }
}

impl Engine {
    pub fn new(cfg: Arc<Settings>, store: Store, ports: Ports) -> Engine {
        let (tx, rx) = mpsc::channel(1024);
        let (snapshot, _) = watch::channel(Arc::new(Snapshot::default()));
        Engine {
            plan: plan_of(&cfg),
            cfg,
            // Its own handle: deferring its flushes defers nobody else's.
            store: store.group_committing(),
            ports,
            tx,
            rx,
            train: None,
            step: None,
            claim: None,
            checking: None,
            next_departure: None,
            snapshot,
            builds: Default::default(),
            metrics: Arc::default(),
            private_replies: false,
            reply_thread: None,
            last_status: Default::default(),
            last_refusal: None,
            publisher: publish::Publisher::default(),
            tag_retry_at: None,
            last_progress: None,
            locks: Vec::new(),
            door_hold: None,
            last_hold: None,
            departing: None,
            answer_later: false,
            stalled: Default::default(),
            outbox: None,
            stopping: false,
            pool: None,
            pool_freed: None,
            pool_node_freed: false,
        }
    }

    /// Joins a shared node pool: `store` already reads the pool's nodes
    /// (`Store::with_pool`); `freed` is the pool's one wake-up, shared by
    /// its engines. When one frees a node, the others start their queued
    /// builds at once.
    pub fn with_pool(mut self, freed: watch::Sender<u64>) -> Engine {
        self.pool_freed = Some(freed.subscribe());
        self.pool = Some(freed);
        self
    }

    /// Where adapters send their inputs.
    pub fn inbox(&self) -> mpsc::Sender<Event> {
        self.tx.clone()
    }

    /// What the web pages show; updated after every input.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// Counters for `/metrics`, bumped as things happen.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            plan: &self.plan,
            prefix: &self.cfg.bot.command_prefix,
            public_url: &self.cfg.bot.public_url,
            tz: self.cfg.train.timezone,
            console: self.cfg.chat.adapter == crate::config::ChatAdapter::Console,
        }
    }

    fn identities(&self) -> Identities<'_> {
        Identities {
            people: &self.cfg.people,
            console: self.cfg.chat.adapter == crate::config::ChatAdapter::Console,
        }
    }

    fn now(&self) -> Ts {
        self.ports.clock.now()
    }

    /// `[train] remind_after` and `escalate_after` (SPEC §14).
    fn rhythm(&self) -> crate::domain::rhythm::Rhythm {
        let delta = crate::domain::duration::to_delta;
        crate::domain::rhythm::Rhythm {
            remind_after: self.cfg.train.remind_after.map(delta),
            escalate_after: self.cfg.train.escalate_after.map(delta),
        }
    }

    fn is_ops(&self, user: &ChatUser) -> bool {
        self.cfg.ops.iter().any(|o| o == user.as_str())
    }

    /// Starts a batch: writes are not flushed and messages not sent until
    /// `end_batch`.
    fn begin_batch(&mut self) {
        self.store.defer_flushes();
        self.outbox.get_or_insert_with(Vec::new);
    }

    /// Inputs that arrived while the last one was handled are applied in
    /// the same batch (at most `BATCH` of them). True if a stop came.
    async fn handle_waiting_inputs(&mut self) -> bool {
        const BATCH: usize = 1024;
        let mut yielded = false;
        let mut n = 1;
        while n < BATCH {
            match self.rx.try_recv() {
                Ok(Event::Shutdown) | Err(mpsc::error::TryRecvError::Disconnected) => return true,
                Ok(ev) => {
                    self.handle_guarded(ev).await;
                    n += 1;
                }
                // Once, let a sender that is mid-burst catch up: one flush
                // then covers what it sends, at the cost of a scheduler turn.
                Err(mpsc::error::TryRecvError::Empty) if !yielded => {
                    yielded = true;
                    tokio::task::yield_now().await;
                }
                Err(mpsc::error::TryRecvError::Empty) => return false,
            }
        }
        false
    }

    /// One flush for the whole batch, then everything it said, in order.
    async fn end_batch(&mut self) {
        if let Err(error) = self.store.commit()
            && !self.metrics.storage_failing()
        {
            self.storage_failed(error.into()).await;
        }
        for msg in self.outbox.take().unwrap_or_default() {
            self.ports.chat.send(msg).await;
        }
        if self.pool_node_freed {
            self.wake_pool();
        }
    }

    /// Sends a message, or keeps it for the end of the batch.
    async fn send_msg(&mut self, msg: Message) {
        match self.outbox.as_mut() {
            Some(outbox) => outbox.push(msg),
            None => self.ports.chat.send(msg).await,
        }
    }

    async fn say(&mut self, train: Option<TrainId>, text: String) {
        let run = train.map(Run::Train);
        self.send_msg(Message::Notice { run, text }).await;
    }

    async fn reply(&mut self, to: &ChatUser, text: String) {
        self.send_msg(Message::Reply {
            to: to.clone(),
            text,
            private: self.private_replies,
            thread: self.reply_thread.clone(),
        })
        .await;
    }

    /// Says a forge refusal ("GitHub refused: bad token for acme/web") in
    /// chat, without repeating it every poll.
    async fn forge_refused(&mut self, text: String) {
        let now = self.now();
        let repeat = self
            .last_refusal
            .as_ref()
            .is_some_and(|(t, at)| *t == text && now - *at < TimeDelta::hours(1));
        tracing::warn!(%text, "The forge refused a request.");
        if !repeat {
            self.last_refusal = Some((text.clone(), now));
            self.say(None, format!("⚠️ {text}")).await;
        }
    }

    /// Runs until shutdown. Errors are storage failures the bot cannot work without.
    pub async fn run(mut self) -> anyhow::Result<()> {
        self.next_departure = self.compute_next_departure(self.now());
        self.locks = self.store.locks()?;
        self.last_hold = self.store.last_hold()?;
        if let Some(results) = &self.ports.results {
            let mut urls: std::collections::HashMap<String, String> = self
                .cfg
                .train
                .environments
                .iter()
                .filter_map(|env| Some((env.name.clone(), env.url.clone()?)))
                .collect();
            if let Some(url) = &self.cfg.production.url {
                urls.insert("production".into(), url.clone());
            }
            self.publisher = publish::Publisher::spawn(
                results.clone(),
                self.store.clone(),
                self.tx.clone(),
                urls,
            );
        }
        // In the background: the first answer must not wait on GitHub.
        let (forge, tx) = (self.ports.forge.clone(), self.tx.clone());
        crate::supervise::once("forge check", async move {
            match forge.check().await {
                Ok(()) => {}
                Err(crate::forge::ForgeError::Refused(text)) => {
                    let _ = tx.send(Event::ForgeRefused(text)).await;
                }
                Err(error) => tracing::warn!(%error, "Cannot reach the forge; will keep trying."),
            }
        });
        if self.tags_configured() {
            self.baseline_tags().await?;
        }
        self.recover().await?;
        self.sweep_workdirs_at_start();
        // A poller that panics is started again; the engine goes on.
        let (forge, interval, tx) = (
            self.ports.forge.clone(),
            self.cfg.forge.poll_interval,
            self.tx.clone(),
        );
        crate::supervise::restarting("main poller", move || {
            main_branch::spawn_poller(forge.clone(), interval, tx.clone())
        });
        if self.tags_configured() {
            let (forge, tx) = (self.ports.forge.clone(), self.tx.clone());
            crate::supervise::restarting("tag poller", move || {
                tags::spawn_tag_poller(forge.clone(), interval, tx.clone())
            });
        }
        self.depart_queued_tag().await?;
        self.check_door().await?;
        self.publish();
        loop {
            let wake = self.next_wake();
            let sleep = match wake {
                Some(at) => (at - self.now()).to_std().unwrap_or_default(),
                None => std::time::Duration::from_secs(24 * 3600),
            };
            let stop = tokio::select! {
                ev = self.rx.recv() => match ev {
                    None | Some(Event::Shutdown) => true,
                    Some(ev) => {
                        self.begin_batch();
                        self.handle_guarded(ev).await;
                        self.handle_waiting_inputs().await
                    }
                },
                Ok(()) = pool_freed(self.pool_freed.as_mut()) => {
                    self.begin_batch();
                    if self.stalled.retry_at().is_none() && !self.stopping {
                        let r = self.start_queued_builds().await;
                        self.guarded(r).await;
                    }
                    false
                }
                _ = tokio::time::sleep(sleep) => {
                    self.begin_batch();
                    self.retry_storage().await;
                    let r = self.on_timer().await;
                    self.guarded(r).await;
                    false
                }
            };
            if self.stalled.retry_at().is_none() {
                let r = self.depart_queued_tag().await;
                self.guarded(r).await;
                let r = self.check_door().await;
                self.guarded(r).await;
            }
            self.report_set_aside().await;
            self.publish();
            self.end_batch().await;
            if stop {
                break;
            }
        }
        self.shutdown().await
    }

    async fn handle(&mut self, ev: Event) -> anyhow::Result<()> {
        match ev {
            Event::Chat(msg) => {
                self.metrics.chat_event();
                self.private_replies = msg.button;
                self.reply_thread = msg.thread.clone();
                let result = self.handle_chat(msg).await;
                self.private_replies = false;
                self.reply_thread = None;
                result
            }
            Event::StepDone {
                train,
                pos,
                outcome,
                took,
                log,
            } => self.handle_step_done(train, pos, outcome, took, log).await,
            Event::MainHead(sha) => self.handle_main_head(sha).await,
            Event::MainPushed(sha) => self.handle_main_pushed(sha).await,
            Event::TagPushed(tag) => self.handle_tag(tag).await,
            Event::TagsPolled(tags) => self.handle_tags_polled(tags).await,
            Event::ForgeRefused(text) => {
                self.forge_refused(text).await;
                Ok(())
            }
            Event::MainChecked { sha, failure } => {
                self.handle_main_checked(sha, failure.map(|f| *f)).await
            }
            Event::Reply(reply) => self.handle_reply(*reply).await,
            Event::BuildStepDone {
                build,
                pos,
                outcome,
                took,
                log,
            } => {
                self.handle_build_step_done(build, pos, outcome, took, log)
                    .await
            }
            Event::Shutdown => Ok(()),
        }
    }

    fn next_wake(&self) -> Option<Ts> {
        let train_wake = self.train.as_ref().and_then(|t| t.next_wakeup(&self.plan));
        let rhythm = self.rhythm();
        let nudge = self
            .train
            .as_ref()
            .and_then(|t| rhythm.next_at(t, &self.plan));
        // A retry time that has passed is no reason to wake (it would spin).
        let tag_retry = self.tag_retry_at.filter(|at| *at > self.now());
        let progress = self
            .train
            .as_ref()
            .and_then(|t| t.running_step())
            .map(|(_, started)| crate::domain::progress::next_tick(started, self.now()));
        [
            train_wake,
            nudge,
            self.next_departure,
            tag_retry,
            progress,
            self.gate_wakeup(),
            self.stalled.retry_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn compute_next_departure(&self, now: Ts) -> Option<Ts> {
        next_departure(&self.cfg.train.schedule, self.cfg.train.timezone, now)
    }

    async fn on_timer(&mut self) -> anyhow::Result<()> {
        let now = self.now();
        self.expire_locks().await?;
        if self
            .train
            .as_ref()
            .and_then(|t| t.next_wakeup(&self.plan))
            .is_some_and(|at| now >= at)
        {
            self.train_input(crate::domain::train::Input::Wakeup)
                .await?;
        }
        self.nudge(now).await?;
        if self.next_departure.is_some_and(|at| now >= at) {
            self.next_departure = self.compute_next_departure(now);
            self.scheduled_departure().await?;
        }
        self.step_progress(now).await;
        Ok(())
    }

    /// A long step: the status message shows its minutes (sent only when
    /// the text changed), and every few minutes the chat hears it goes on.
    async fn step_progress(&mut self, now: Ts) {
        let Some((id, pos, started)) = self
            .train
            .as_ref()
            .and_then(|t| t.running_step().map(|(pos, started)| (t.id, pos, started)))
        else {
            return;
        };
        self.show_status().await;
        if let Some(minutes) = crate::domain::progress::notice_due(started, now)
            && self.last_progress != Some((id, pos, minutes))
        {
            self.last_progress = Some((id, pos, minutes));
            let text = crate::domain::messages::step_still_running(&self.ctx(), id, pos, minutes);
            self.say(Some(id), text).await;
        }
    }
}
