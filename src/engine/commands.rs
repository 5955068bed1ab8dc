//! Chat commands: parse, check roles, act, reply, audit.

use crate::chat::Incoming;
use crate::domain::command::{self, Command, TrainOrBranch, TrainOrSha};
use crate::domain::ids::TrainId;
use crate::domain::messages;
use crate::domain::refusal::Refusal;
use crate::domain::train::{Actor, Input, Kind, Outcome, Route, Stage, Train};
use crate::store::{AuditEntry, Freeze};

use super::Engine;
use super::calls::{Asked, Purpose, Reply};
use super::gate::{Ask, GateState};
use crate::domain::gate::{Road, Rule, Verdict};
use crate::domain::ids::{Sha, ShaPrefix};
use crate::forge::ForgeError;

impl Engine {
    pub(super) async fn handle_chat(&mut self, msg: Incoming) -> anyhow::Result<()> {
        let prefix = self.cfg.bot.command_prefix.clone();
        let Some(parsed) = command::parse(&msg.text, &prefix) else {
            return Ok(());
        };
        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => {
                self.reply(&msg.user, e.to_string()).await;
                return Ok(());
            }
        };
        let asked = Asked {
            actor: Actor {
                ops: self.is_ops(&msg.user),
                user: msg.user.clone(),
            },
            text: messages::one_line(&msg.text, 300),
            private: msg.button,
            query: cmd.is_query(),
            thread: msg.thread.clone(),
        };
        let result = if cmd.ops_only() && !asked.actor.ops {
            Err(Refusal::NotOps {
                command: cmd.name(),
            })
        } else {
            self.run_command(&cmd, &asked, msg.train).await?
        };
        // A command waiting on a call is finished when its reply comes.
        if std::mem::take(&mut self.answer_later) {
            return Ok(());
        }
        self.finish_command(&asked, result).await
    }

    /// Audits a command (unless it only reads) and says a refusal.
    pub(super) async fn finish_command(
        &mut self,
        asked: &Asked,
        result: Result<(), Refusal>,
    ) -> anyhow::Result<()> {
        if !asked.query {
            let entry = AuditEntry {
                at: self.now(),
                user: asked.actor.user.clone(),
                action: asked.text.clone(),
                result: match &result {
                    Ok(()) => "accepted".into(),
                    Err(r) => format!("refused: {r}"),
                },
            };
            self.store.audit(&entry)?;
        }
        if let Err(Refusal::Held(hold)) = &result {
            self.remember_hold(&format!("{} refused: {hold}", asked.text))?;
        }
        if let Err(refusal) = result {
            tracing::warn!(user = %asked.actor.user, command = %asked.text, %refusal, "Command refused.");
            self.reply_to(asked, refusal.to_string()).await;
        }
        Ok(())
    }

    /// Answers the user who asked, privately if they clicked a button.
    pub(super) async fn reply_to(&mut self, asked: &Asked, text: String) {
        let was = std::mem::replace(&mut self.private_replies, asked.private);
        let thread = std::mem::replace(&mut self.reply_thread, asked.thread.clone());
        self.reply(&asked.actor.user, text).await;
        self.private_replies = was;
        self.reply_thread = thread;
    }

    /// Acts on a command. Accepted commands answer through what they
    /// announce (or an explicit reply); refusals come back as `Err`.
    /// `button`: the train whose button was clicked, if the command came
    /// from one.
    async fn run_command(
        &mut self,
        cmd: &Command,
        asked: &Asked,
        button: Option<TrainId>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let actor = &asked.actor;
        let user = &actor.user;
        match cmd {
            Command::Help(topic) => {
                let text = self.help_text(topic.as_deref());
                self.reply(user, text).await;
                Ok(Ok(()))
            }
            Command::Status(branch) => {
                let text = match branch {
                    None => self.status_text()?,
                    Some(b) => self.branch_status_text(b)?,
                };
                self.reply(user, text).await;
                Ok(Ok(()))
            }
            Command::History(n) => {
                let text = self.history_text(n.unwrap_or(5))?;
                self.reply(user, text).await;
                Ok(Ok(()))
            }
            Command::Depart => self.manual_departure(user).await,
            Command::Bb(branch) => self.bb(asked, branch),
            Command::Nodes => {
                let text = self.nodes_text()?;
                self.reply(user, text).await;
                Ok(Ok(()))
            }
            Command::Release(node) => self.release(actor, node).await,
            Command::Good(which) => {
                if let Some(want) = which.or(button)
                    && let Err(refusal) = self.still_running(want)?
                {
                    return Ok(Err(refusal));
                }
                if self.train.is_none() {
                    return Ok(Err(Refusal::NothingToApprove));
                }
                self.train_input_checked(Input::Good(actor.clone())).await
            }
            Command::Bad(reason) => {
                if let Some(want) = button
                    && let Err(refusal) = self.still_running(want)?
                {
                    return Ok(Err(refusal));
                }
                if self.train.is_none() {
                    return Ok(Err(Refusal::NothingToVeto));
                }
                if self.cfg.train.on_veto == crate::domain::eject::OnVeto::Eject {
                    return self.veto_ejecting(actor, reason.as_deref()).await;
                }
                self.train_input_checked(Input::Bad {
                    actor: actor.clone(),
                    reason: reason.clone(),
                })
                .await
            }
            Command::Force(target) => self.force(asked, target.as_ref()).await,
            Command::Rollback(sha) => self.rollback(asked, sha.as_ref()).await,
            Command::Freeze(reason) => {
                if let Some(f) = self.store.freeze()? {
                    return Ok(Err(Refusal::AlreadyFrozen { by: f.by }));
                }
                let freeze = Freeze {
                    by: user.clone(),
                    reason: reason.clone(),
                    at: self.now(),
                };
                self.store.set_freeze(Some(&freeze))?;
                self.say(None, messages::frozen(user, reason.as_deref()))
                    .await;
                Ok(Ok(()))
            }
            Command::Unfreeze => {
                if self.store.freeze()?.is_none() {
                    return Ok(Err(Refusal::NotFrozen));
                }
                self.store.set_freeze(None)?;
                // What the freeze held may be held again later: news then.
                self.store
                    .forget_notices("hold:", |k| k.ends_with("(rule: freeze)"))?;
                let text = messages::unfrozen(user, self.next_departure, &self.ctx());
                self.say(None, text).await;
                Ok(Ok(()))
            }
            Command::Cancel(target) => self.cancel(actor, target.as_ref()).await,
            Command::Deploy { git_ref, env } => self.deploy(asked, git_ref, env),
            Command::Lock { env, for_, reason } => self.lock(actor, env, *for_, reason).await,
            Command::Unlock(env) => self.unlock(actor, env).await,
            Command::Locks => {
                let text = self.locks_text();
                self.reply(user, text).await;
                Ok(Ok(()))
            }
            Command::Why(what) => {
                let text = self.why(what.as_ref()).await?;
                self.reply(user, text).await;
                Ok(Ok(()))
            }
            Command::Next => self.next(asked).await,
        }
    }

    /// SPEC §11 "train identity": an approval or veto names its train, and
    /// counts only while that train is the one running, never for another.
    fn still_running(&self, want: TrainId) -> anyhow::Result<Result<(), Refusal>> {
        if self.train.as_ref().is_some_and(|t| t.id == want) {
            return Ok(Ok(()));
        }
        Ok(Err(match self.store.train(want)? {
            Some(_) => Refusal::TrainEnded(want),
            None => Refusal::NoSuchTrain(want),
        }))
    }

    async fn force(
        &mut self,
        asked: &Asked,
        target: Option<&TrainOrSha>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        match target {
            Some(TrainOrSha::Sha(prefix)) => {
                if let Some(busy) = self.train_busy() {
                    return Ok(Err(busy));
                }
                self.resolve_beside(asked, Purpose::Force, prefix);
                Ok(Ok(()))
            }
            Some(TrainOrSha::Train(id)) => self.force_train(&asked.actor, Some(*id)).await,
            None => self.force_train(&asked.actor, None).await,
        }
    }

    /// Looks a typed SHA up on main beside the engine; the command is
    /// finished when it comes back.
    fn resolve_beside(&mut self, asked: &Asked, purpose: Purpose, prefix: &ShaPrefix) {
        self.answer_later = true;
        let (asked, p) = (asked.clone(), prefix.clone());
        let prefix = prefix.clone();
        self.beside(
            move |forge| async move { forge.resolve_on_main(&p).await },
            move |result| Reply::Resolved {
                asked,
                purpose,
                prefix,
                result,
            },
        );
    }

    /// `!force <sha>`, once the SHA is looked up on main.
    pub(super) async fn force_sha_resolved(
        &mut self,
        asked: &Asked,
        prefix: &ShaPrefix,
        result: Result<Sha, ForgeError>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let road = Road::Force { train: None };
        let (sha, overrides) = match self.production_road(asked, &road, Some(prefix), result)? {
            Ok((Some(sha), overrides, _)) => (sha, overrides),
            Ok((None, ..)) => return Ok(Err(Refusal::NothingToForce)),
            Err(refusal) => return Ok(Err(refusal)),
        };
        let kind = Kind::ForcedSha {
            by: asked.actor.user.clone(),
        };
        self.depart_overriding(sha, kind, Route::ProductionOnly, overrides)?;
        Ok(Ok(()))
    }

    /// What `!force <sha>` and `!rollback [sha]` share once their SHA is
    /// known: one run at a time, then the gate with the SHA's place on
    /// main. Gives the SHA (None: not on main, which the gate refuses),
    /// the rule it overrides and the gate's facts.
    #[allow(clippy::type_complexity)]
    fn production_road(
        &self,
        asked: &Asked,
        road: &Road,
        prefix: Option<&ShaPrefix>,
        result: Result<Sha, ForgeError>,
    ) -> anyhow::Result<Result<(Option<Sha>, Option<Rule>, GateState), Refusal>> {
        // The world may have moved while the forge was asked. A train
        // verifying production does not keep ops from rolling back.
        let verifying = self
            .train
            .as_ref()
            .is_some_and(|t| t.verifying_until().is_some());
        if let Some(busy) = self.busy()
            && !(verifying && matches!(road, Road::Rollback { .. }))
        {
            return Ok(Err(busy));
        }
        let (sha, shown, on_main) = match result {
            Ok(sha) => (Some(sha.clone()), sha.short().to_string(), true),
            Err(ForgeError::NotOnMain(_)) => (
                None,
                prefix.map(|p| p.to_string()).unwrap_or_default(),
                false,
            ),
            Err(e) => return Ok(Err(Refusal::Forge(e.to_string()))),
        };
        let st = self.gate_state()?;
        let ask = Ask {
            actor: Some(&asked.actor.user),
            on_main: Some((&shown, on_main)),
            ..Ask::default()
        };
        match self.ask_gate(road, &st, ask) {
            Verdict::Go { overrides } => Ok(Ok((sha, overrides, st))),
            Verdict::Wait(h) | Verdict::No(h) => Ok(Err(Refusal::Held(h))),
        }
    }

    /// Asks the gate for `!force` of train `id`.
    fn force_verdict(&self, actor: &Actor, id: TrainId) -> anyhow::Result<Verdict> {
        let st = self.gate_state()?;
        let ask = Ask {
            actor: Some(&actor.user),
            ..Ask::default()
        };
        Ok(self.ask_gate(&Road::Force { train: Some(id) }, &st, ask))
    }

    /// `!force [train]`: the train awaiting approval, else the last train if
    /// it expired or was interrupted and nothing departed since.
    async fn force_train(
        &mut self,
        actor: &Actor,
        want: Option<TrainId>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        if let Some(t) = &self.train {
            if want.is_some_and(|w| w != t.id) {
                return Ok(Err(self
                    .train_busy()
                    .unwrap_or(Refusal::TrainRunning(t.id))));
            }
            let id = t.id;
            let overrides = match self.force_verdict(actor, id)? {
                Verdict::Go { overrides } => overrides,
                Verdict::Wait(h) | Verdict::No(h) => return Ok(Err(Refusal::Held(h))),
            };
            let result = self
                .train_input_checked(Input::Force(actor.clone()))
                .await?;
            if result.is_ok() {
                self.record_override(id, overrides)?;
            }
            return Ok(result);
        }
        let Some(last) = self.store.last_train()? else {
            return Ok(Err(Refusal::NothingToForce));
        };
        if want.is_some_and(|w| w != last.id) {
            return Ok(Err(match self.store.train(want.unwrap())? {
                Some(_) => Refusal::NothingToForce,
                None => Refusal::NoSuchTrain(want.unwrap()),
            }));
        }
        let id = last.id;
        let overrides = match self.force_verdict(actor, id)? {
            Verdict::Go { overrides } => overrides,
            Verdict::Wait(h) | Verdict::No(h) => return Ok(Err(Refusal::Held(h))),
        };
        let result = self.reopen_input(last, Input::Force(actor.clone())).await?;
        if result.is_ok() {
            self.record_override(id, overrides)?;
        }
        Ok(result)
    }

    /// A forced deploy that passed a rule holding others (a closed window)
    /// is recorded as such on its train.
    fn record_override(
        &mut self,
        id: TrainId,
        overrides: Option<crate::domain::gate::Rule>,
    ) -> anyhow::Result<()> {
        let Some(rule) = overrides else {
            return Ok(());
        };
        let mut train = match &self.train {
            Some(t) if t.id == id => t.clone(),
            _ => match self.store.train(id)? {
                Some(t) => t,
                None => return Ok(()),
            },
        };
        train.overrode = Some(rule.name().to_string());
        self.store.save_train(&train)?;
        if let Some(t) = self.train.as_mut().filter(|t| t.id == id) {
            t.overrode = train.overrode;
        }
        Ok(())
    }

    async fn rollback(
        &mut self,
        asked: &Asked,
        sha: Option<&ShaPrefix>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        if let Some(t) = &self.train
            && t.verifying_until().is_none()
        {
            return Ok(Err(Refusal::TrainRunning(t.id)));
        }
        match sha {
            Some(prefix) => {
                self.resolve_beside(asked, Purpose::Rollback, prefix);
                Ok(Ok(()))
            }
            None => match self.store.production()?.and_then(|p| p.previous) {
                Some(prev) => self.rollback_to(asked, None, Ok(prev)).await,
                None => Ok(Err(Refusal::NothingToRollBack)),
            },
        }
    }

    /// `!rollback [sha]` with its target known (`prefix`: typed by ops).
    pub(super) async fn rollback_to(
        &mut self,
        asked: &Asked,
        prefix: Option<&ShaPrefix>,
        target: Result<Sha, ForgeError>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let road = Road::Rollback {
            sha_given: prefix.is_some(),
        };
        let (target, overrides) = match self.production_road(asked, &road, prefix, target)? {
            Ok((Some(sha), overrides, _)) => (sha, overrides),
            Ok((None, ..)) => return Ok(Err(Refusal::NothingToRollBack)),
            Err(refusal) => return Ok(Err(refusal)),
        };
        // A rollback ends a verification (the train stays deployed until
        // the rollback is live, which marks it rolled back).
        if self
            .train
            .as_ref()
            .is_some_and(|t| t.verifying_until().is_some())
        {
            let by = asked.actor.user.clone();
            if let Err(refusal) = self.train_input_checked(Input::StopVerify { by }).await? {
                return Ok(Err(refusal));
            }
        }
        // An interrupted train ends as rolled back once the rollback has
        // left (`prepared`), not now: a rollback that cannot leave must
        // leave production's unknown state holding everything.
        let kind = Kind::Rollback {
            by: asked.actor.user.clone(),
        };
        self.depart_overriding(target, kind, Route::ProductionOnly, overrides)?;
        Ok(Ok(()))
    }

    async fn cancel(
        &mut self,
        actor: &Actor,
        target: Option<&TrainOrBranch>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let want = match target {
            Some(TrainOrBranch::Branch(b)) => {
                // A waiting tag deploy of that name goes first: tag and
                // branch names look alike, and a queued tag is the rarer,
                // more deliberate target.
                if let Some((seq, tag)) = self.store.queued_tag_named(b.as_str())? {
                    return self.cancel_tag(actor, seq, tag).await;
                }
                return self.cancel_build(actor, b).await;
            }
            Some(TrainOrBranch::Train(id)) => Some(*id),
            None => None,
        };
        if let Some(t) = &self.train {
            if want.is_some_and(|w| w != t.id) {
                return Ok(Err(Refusal::NothingToCancel));
            }
            return self.train_input_checked(Input::Cancel(actor.clone())).await;
        }
        // An interrupted train waits for ops: !cancel settles it.
        match self.store.last_train()? {
            Some(last)
                if matches!(last.stage, Stage::Done(Outcome::Interrupted { .. }))
                    && want.is_none_or(|w| w == last.id) =>
            {
                self.reopen_input(last, Input::Cancel(actor.clone())).await
            }
            _ => Ok(Err(Refusal::NothingToCancel)),
        }
    }

    fn help_text(&self, topic: Option<&str>) -> String {
        let prefix = &self.cfg.bot.command_prefix;
        match topic {
            // Read by the dispatcher, never by an engine (SPEC §16).
            Some("use") if self.cfg.pipeline.multi => format!(
                "{prefix}use <pipeline> — commands here that name no pipeline go to it \
                 (e.g. {prefix}use {})",
                self.cfg.pipeline.name
            ),
            Some(name) => command::usage(name, prefix).unwrap_or_else(|| {
                format!(
                    "unknown command {prefix}{}; try {prefix}help",
                    messages::one_line(name, 40)
                )
            }),
            None => {
                let mut out = String::from("commands:");
                for name in command::NAMES {
                    out.push('\n');
                    out.push_str(&command::usage(name, prefix).expect("every name has usage"));
                }
                if self.cfg.pipeline.multi {
                    // The dispatcher reads these; the engine never sees them.
                    out.push_str(&format!(
                        "\nseveral pipelines: name one first ({prefix}status {0}, {prefix}good {0}#12) \
                         or {prefix}use {0} to make it this channel's default",
                        self.cfg.pipeline.name
                    ));
                }
                out
            }
        }
    }

    fn history_text(&self, n: usize) -> anyhow::Result<String> {
        let deploys = self.store.deploy_history(n)?;
        if deploys.is_empty() {
            return Ok("no production deploys yet".into());
        }
        let now = self.now();
        let mut out = format!(
            "last {} production deploy{}:",
            deploys.len(),
            if deploys.len() == 1 { "" } else { "s" }
        );
        for t in &deploys {
            out.push('\n');
            out.push_str(&history_line(t, now, &self.ctx()));
        }
        Ok(out)
    }

    pub(super) fn status_text(&self) -> anyhow::Result<String> {
        let now = self.now();
        let ctx = self.ctx();
        let mut out = String::new();
        match &self.train {
            Some(t) => {
                let since = messages::ago(t.stage_since, now);
                out.push_str(&format!(
                    "train {} {} — {} (since {since})",
                    t.id,
                    t.sha.short(),
                    messages::stage_label(&self.plan, &t.stage)
                ));
                if matches!(t.stage, Stage::AwaitingApproval { .. }) {
                    let approved: Vec<String> =
                        t.approvals.iter().map(|a| a.user.mention()).collect();
                    let waiting: Vec<String> =
                        t.waiting_for().iter().map(|u| u.mention()).collect();
                    out.push_str(&format!(
                        "\napproved: {} · waiting for: {}",
                        list_or(&approved, "nobody yet"),
                        list_or(&waiting, "nobody")
                    ));
                    if let Some(deadline) = t.next_wakeup(&self.plan) {
                        out.push_str(&format!(" · expires {}", messages::in_time(deadline, now)));
                    }
                }
            }
            None => match &self.departing {
                Some(sha) => out.push_str(&format!(
                    "no train running; a train with {} is about to leave (listing its commits)",
                    sha.short()
                )),
                None => out.push_str("no train running"),
            },
        }
        if let Some(h) = &self.door_hold {
            out.push_str(&format!("\nwaits: {h}"));
        }
        let waiting = self.waiting_shas(20)?;
        let shas: Vec<&str> = waiting.iter().map(|s| s.short()).collect();
        out.push_str(&format!("\nwaiting: {}", list_or(&shas, "nothing new")));
        let tags: Vec<String> = self
            .store
            .queued_tags()?
            .iter()
            .map(|(_, t)| {
                let to = match t.route {
                    crate::domain::train::Route::LowerOnly => "lower envs",
                    _ => "production",
                };
                format!("{} ({}) → {to}", t.name, t.sha.short())
            })
            .collect();
        if !tags.is_empty() {
            out.push_str(&format!("\ntags waiting: {}", tags.join(", ")));
        }
        match self.next_departure {
            Some(at) => out.push_str(&format!(
                "\nnext departure: {} ({})",
                ctx.time(at),
                messages::in_time(at, now)
            )),
            None => out.push_str("\nnext departure: none scheduled"),
        }
        let locks: Vec<String> = self
            .locks
            .iter()
            .filter(|l| l.holds(now))
            .map(|l| format!("{} by {} ({})", l.env, l.by.mention(), l.reason))
            .collect();
        if !locks.is_empty() {
            out.push_str(&format!("\nlocked: {}", locks.join(", ")));
        }
        match self.store.freeze()? {
            Some(f) => {
                let why = f.reason.map(|r| format!(": {r}")).unwrap_or_default();
                out.push_str(&format!(
                    "\nfrozen by {}{why} ({})",
                    f.by.mention(),
                    messages::ago(f.at, now)
                ));
            }
            None => out.push_str("\nnot frozen"),
        }
        match self.store.production()? {
            Some(p) => out.push_str(&format!(
                "\nproduction: {} (train {}, {})",
                p.sha.short(),
                p.train,
                messages::ago(p.since, now)
            )),
            None => out.push_str("\nproduction: nothing deployed yet"),
        }
        Ok(out)
    }

    /// Allocated SHAs newer than production, oldest first.
    pub(super) fn waiting_shas(
        &self,
        limit: usize,
    ) -> anyhow::Result<Vec<crate::domain::ids::Sha>> {
        let after = match self.store.production()? {
            Some(p) => match p.alloc_seq {
                Some(seq) => seq,
                None => return Ok(Vec::new()),
            },
            None => 0,
        };
        Ok(self
            .store
            .allocations_after(after, limit)?
            .into_iter()
            .map(|a| a.sha)
            .collect())
    }
}

fn list_or<S: AsRef<str>>(items: &[S], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        items.join(", ")
    }
}

fn history_line(t: &Train, now: crate::domain::clock::Ts, ctx: &messages::Ctx) -> String {
    let authors: Vec<&str> = t.authors.iter().map(|a| a.name.as_str()).collect();
    let approvers: Vec<String> = t.approvals.iter().map(|a| a.user.mention()).collect();
    let mut notes = Vec::new();
    if let Some(by) = &t.forced_by {
        notes.push(match t.kind {
            Kind::Rollback { .. } => format!("rollback by {}", by.mention()),
            _ => format!("forced by {}", by.mention()),
        });
    }
    match messages::verify_outcome(t) {
        Some(v) if v.contains("rolled back automatically") => {
            notes.push("rolled back automatically (verification red)".into())
        }
        Some(v) => {
            if t.rolled_back {
                notes.push("rolled back".into());
            }
            notes.push(v);
        }
        None if t.rolled_back => notes.push("rolled back".into()),
        None => {}
    }
    if t.overrode.as_deref() == Some("window") {
        notes.push("outside the deploy windows".into());
    }
    if let Some(Outcome::Failed { error, .. }) = t.outcome() {
        notes.push(format!(
            "failed after deploy: {}",
            messages::one_line(error, 60)
        ));
    }
    // Deploy and smoke; the verification window after them is not the deploy.
    let deployed = t.verify.as_ref().map(|v| v.since).or(t.finished);
    let took = t
        .production_started
        .map(|s| crate::domain::clock::human(deployed.unwrap_or(now) - s));
    format!(
        "train {} {} · {} · authors: {} · approved by: {} · total {}{}{}",
        t.id,
        t.sha.short(),
        ctx.time(t.finished.unwrap_or(t.created)),
        list_or(&authors, "none"),
        list_or(&approvers, "nobody"),
        crate::domain::clock::human(t.duration(now)),
        took.map(|p| format!(", production {p}"))
            .unwrap_or_default(),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" · {}", notes.join(", "))
        }
    )
}
