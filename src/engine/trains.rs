//! Departures and the train's effects: persist first, then act and announce.

use crate::chat::{Message, Run};
use crate::domain::approval::{self, RevertClaim};
use crate::domain::departure::{self, Decision, Facts, Skip};
use crate::domain::gate::{Rejected, Road, Verdict};
use crate::domain::ids::{ChatUser, Sha, TrainId};
use crate::domain::messages;
use crate::domain::refusal::Refusal;
use crate::domain::rhythm::Nudge;
use crate::domain::train::{
    Effect, Input, Kind, NewTrain, Outcome, Route, Stage, Train, VerifyResult,
};
use crate::forge::{Forge, ForgeError};
use crate::store::{Production, StoreError};

use super::Engine;
use super::calls::{Departing, Origin, Prep};
use super::gate::Ask;
use super::publish::Publish;

/// Who the bot's own rollback is by.
const AUTO: &str = "trainbot";

impl Engine {
    /// What a departure would carry now, read from the store.
    pub(super) fn departure_decision(&self) -> anyhow::Result<Decision> {
        if let Some(sha) = &self.departing {
            return Ok(Decision::Skip(Skip::Departing(sha.clone())));
        }
        let head = self.store.head()?;
        let production = self.store.production()?;
        let head_is_new = match (&head, &production) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(h), Some(p)) => match p.alloc_seq {
                Some(seq) => h.seq > seq,
                None => h.sha != p.sha,
            },
        };
        let facts = Facts {
            running: self.train.as_ref().map(|t| t.id),
            head: head.as_ref().map(|h| &h.sha),
            head_is_new,
        };
        Ok(departure::decide(&facts))
    }

    /// The last train that carried `sha` as its head, when it turned it
    /// down: vetoed, failed, expired, cancelled or rolled back.
    pub(super) fn rejection_of(
        &self,
        sha: &Sha,
    ) -> anyhow::Result<Option<(TrainId, &'static str)>> {
        Ok(self.store.last_train_for(sha)?.and_then(|t| {
            if t.rolled_back {
                return Some((t.id, "rolled back"));
            }
            let o = t.outcome()?;
            o.rejects_sha().then(|| (t.id, o.word()))
        }))
    }

    /// The clock's departure, through the gate (SPEC §11).
    pub(super) fn clock_verdict(&self, sha: &Sha) -> anyhow::Result<Verdict> {
        let rejected = self.rejection_of(sha)?;
        let st = self.gate_state()?;
        let ask = Ask {
            rejected: rejected.map(|(train, how)| Rejected { sha, train, how }),
            ..Ask::default()
        };
        Ok(self.ask_gate(&Road::Clock, &st, ask))
    }

    pub(super) async fn scheduled_departure(&mut self) -> anyhow::Result<()> {
        match self.departure_decision()? {
            Decision::Depart(sha) => match self.clock_verdict(&sha)? {
                Verdict::Go { .. } => self.depart(sha, Kind::Scheduled, Route::Full),
                Verdict::Wait(hold) | Verdict::No(hold) => {
                    tracing::info!(%hold, "Scheduled departure held.");
                    let what = format!("the scheduled train with {} does not leave", sha.short());
                    self.say_hold_once(None, &what, &hold).await
                }
            },
            Decision::Skip(skip) => {
                tracing::info!(?skip, "Scheduled departure skipped.");
                if let Some(Refusal::Held(hold)) = self.busy() {
                    // A train verifying production holds the clock (rule
                    // verifying), said once.
                    let what = "the scheduled train does not leave";
                    return self.say_hold_once(None, what, &hold).await;
                }
                if let Skip::Running(id) = skip
                    && self.store.first_notice(&format!("running:{}", id.0))?
                {
                    self.say(None, messages::skipped_running(id)).await;
                }
                Ok(())
            }
        }
    }

    /// `!depart` by ops.
    pub(super) async fn manual_departure(
        &mut self,
        by: &ChatUser,
    ) -> anyhow::Result<Result<(), Refusal>> {
        match self.departure_decision()? {
            Decision::Depart(sha) => {
                let st = self.gate_state()?;
                let ask = Ask {
                    actor: Some(by),
                    ..Ask::default()
                };
                if let Some(hold) = self.ask_gate(&Road::Depart, &st, ask).hold() {
                    return Ok(Err(Refusal::Held(hold.clone())));
                }
                self.depart(sha, Kind::Departed { by: by.clone() }, Route::Full)?;
                Ok(Ok(()))
            }
            Decision::Skip(skip) => Ok(Err(match skip {
                Skip::Running(id) => Refusal::TrainRunning(id),
                Skip::Departing(sha) => Refusal::Departing(sha.short().to_string()),
                Skip::NothingAllocated => Refusal::NothingAllocated,
                Skip::NothingNew => {
                    let prod = self
                        .store
                        .production()?
                        .map(|p| p.sha.short().to_string())
                        .unwrap_or_default();
                    Refusal::NothingNew(prod)
                }
            })),
        }
    }

    /// A train leaves with `sha`: its commits are listed beside the
    /// engine, and it departs when they come back (`prepared`). Until then
    /// it counts as running: nothing else departs.
    pub(super) fn depart(&mut self, sha: Sha, kind: Kind, route: Route) -> anyhow::Result<()> {
        self.depart_overriding(sha, kind, route, None)
    }

    /// `depart`, recording a rule the departure overrode (`!force` outside
    /// the deploy windows).
    pub(super) fn depart_overriding(
        &mut self,
        sha: Sha,
        kind: Kind,
        route: Route,
        overrides: Option<crate::domain::gate::Rule>,
    ) -> anyhow::Result<()> {
        self.depart_from(Departing {
            sha,
            kind,
            route,
            overrides,
            origin: Origin::Other,
        })
    }

    pub(super) fn depart_from(&mut self, departing: Departing) -> anyhow::Result<()> {
        let base = match self.store.production()? {
            Some(p) => Some(p.sha),
            None => self.store.first_base()?,
        };
        tracing::info!(sha = %departing.sha, "Listing a departing train's commits.");
        self.departing = Some(departing.sha.clone());
        self.prepare(departing, base);
        Ok(())
    }

    /// The departing train's commits are known: it leaves. A forge failure
    /// is said (or, for a tag deploy, retried by the tag queue).
    pub(super) async fn prepared(
        &mut self,
        departing: Departing,
        result: Result<Prep, ForgeError>,
    ) -> anyhow::Result<()> {
        self.departing = None;
        let ejection = self.take_ejection(&departing.sha)?;
        let prep = match result {
            Ok(prep) => prep,
            Err(error) => {
                tracing::warn!(%error, "Cannot list the train's commits.");
                return match departing.origin {
                    Origin::Tag { seq, tag } => self.tag_failed(seq, tag, error).await,
                    Origin::Other => {
                        let mut text =
                            format!("cannot list commits for {}: {error}", departing.sha.short());
                        // The bot's own rollback did not leave: production
                        // stays red until ops roll back (or the bot restarts).
                        if matches!(&departing.kind, Kind::Rollback { by } if by.as_str() == AUTO) {
                            let ops = self.ops_mentions();
                            text.push_str(&format!(
                                "; the automatic rollback did not leave, {}rollback it: {ops}",
                                self.cfg.bot.command_prefix,
                            ));
                        }
                        self.say(None, text).await;
                        Ok(())
                    }
                };
            }
        };
        let tag_seq = match &departing.origin {
            Origin::Tag { seq, .. } => {
                self.tag_retry_at = None;
                // `!cancel` took it off the queue while its commits were
                // listed: the cancel was said, and it does not depart.
                if self.store.queued_tag(*seq)?.is_none() {
                    tracing::info!(seq, "Tag deploy cancelled while departing.");
                    return Ok(());
                }
                Some(*seq)
            }
            Origin::Other => None,
        };
        let Prep {
            base,
            commits,
            reverted,
            looked_up,
        } = prep;
        let ids = self.identities();
        let authors = approval::authors(&commits, &reverted, |c| {
            ids.resolve(&c.author_email, c.author_login.as_deref())
                .or_else(|| looked_up.get(&c.author_email.to_ascii_lowercase())?.clone())
        });
        let id = self.store.next_train_id()?;
        let new = NewTrain {
            id,
            sha: departing.sha,
            base,
            commits,
            reverted,
            authors,
            kind: departing.kind,
            route: departing.route,
        };
        let now = self.now();
        // A rollback settles an interrupted train (SPEC §11): known before
        // the rollback becomes the last train.
        let settles = match new.kind {
            Kind::Rollback { .. } => self.gate_state()?.interrupted(),
            _ => None,
        };
        let (mut train, mut effects) = Train::depart(new, &self.plan, now);
        train.overrode = departing.overrides.map(|r| r.name().to_string());
        let rode_on = ejection.map(|i| self.carry_over(&mut train, &i, &mut effects));
        match tag_seq {
            Some(seq) => self.store.save_tag_train(&train, seq)?,
            None => self.store.save_train(&train)?,
        }
        // After the rollback is stored: a crash in between leaves the
        // rollback as the last train, which the gate reads as settled.
        if let Some(id) = settles
            && let Some(mut interrupted) = self.store.train(id)?
        {
            interrupted.rolled_back = true;
            self.store.save_train(&interrupted)?;
        }
        tracing::info!(train = id.0, sha = %train.sha, "Train departs.");
        let text = messages::departure_message(&self.ctx(), &train);
        self.train = Some(train);
        self.publish();
        // The status message first: the departure goes into its thread.
        self.show_status().await;
        self.say(Some(id), text).await;
        if let Some(text) = rode_on {
            self.say(Some(id), text).await;
        }
        self.apply(effects).await?;
        Ok(())
    }

    /// Feeds an input to the current train: persist, then act.
    pub(super) async fn train_input(&mut self, input: Input) -> anyhow::Result<()> {
        self.train_input_checked(input).await.map(|_| ())
    }

    /// Like `train_input`, but gives back the refusal.
    pub(super) async fn train_input_checked(
        &mut self,
        input: Input,
    ) -> anyhow::Result<Result<(), Refusal>> {
        match self.persist_input(input)? {
            Ok(effects) => {
                // The dashboard shows the new stage before the chat says it.
                self.publish();
                self.apply(effects).await?;
                Ok(Ok(()))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// Feeds an input to the current train and saves it; the effects are
    /// the caller's to apply (after saying what must come first).
    pub(super) fn persist_input(
        &mut self,
        input: Input,
    ) -> anyhow::Result<Result<Vec<Effect>, Refusal>> {
        let Some(train) = self.train.as_mut() else {
            return Ok(Err(Refusal::NothingToVeto));
        };
        let now = self.ports.clock.now();
        match train.handle(input, &self.plan, now) {
            Ok(effects) => {
                self.store.save_train(train)?;
                Ok(Ok(effects))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// A finished train taken up again (`!force` of an expired or
    /// interrupted one, `!cancel` of an interrupted one).
    pub(super) async fn reopen_input(
        &mut self,
        mut train: Train,
        input: Input,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let now = self.now();
        match train.handle(input, &self.plan, now) {
            Ok(effects) => {
                self.store.save_train(&train)?;
                self.train = Some(train);
                self.apply(effects).await?;
                Ok(Ok(()))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    pub(super) async fn apply(&mut self, effects: Vec<Effect>) -> anyhow::Result<()> {
        for effect in effects {
            let Some(train) = self.train.as_ref() else {
                return Ok(());
            };
            let id = train.id;
            match effect {
                Effect::ClaimProduction { attempt } => {
                    match self.store.claim_production(id, attempt) {
                        Ok(claim) => self.claim = Some(claim),
                        Err(StoreError::AlreadyClaimed { .. }) => {
                            tracing::error!(
                                train = id.0,
                                attempt,
                                "Production already claimed; not running it again."
                            );
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Effect::RunStep(pos) => self.start_step(pos).await?,
                Effect::StopStep => self.stop_step(),
                Effect::AskApproval => {
                    let text = messages::approval_request(&self.ctx(), train);
                    self.send_msg(Message::Approval { train: id, text }).await;
                }
                Effect::Approved { by } => {
                    let text = messages::approved(&self.ctx(), train, &by);
                    let progress = approval_progress(train);
                    self.say(Some(id), text).await;
                    self.send_msg(progress).await;
                }
                Effect::ProductionLive => self.production_live().await?,
                Effect::Resumed => {
                    let text = messages::resumed(&self.ctx(), train);
                    self.say(Some(id), text).await;
                }
                Effect::Ended(outcome) => self.ended(outcome).await?,
                // The gate is asked after the input (`check_door`).
                Effect::AtDoor(_) => {}
                Effect::Verifying => {
                    let text = messages::verifying(&self.ctx(), train);
                    self.say(Some(id), text).await;
                }
                // The check's step said how it went; the status line shows
                // the count.
                Effect::Checked { .. } => {}
            }
        }
        self.show_status().await;
        Ok(())
    }

    /// Reminders, the escalation and the expiry notice that are due (SPEC
    /// §14): recorded on the train and saved before they are said.
    pub(super) async fn nudge(&mut self, now: crate::domain::clock::Ts) -> anyhow::Result<()> {
        let rhythm = self.rhythm();
        let Some(train) = self.train.as_mut() else {
            return Ok(());
        };
        let nudges = rhythm.due(train, &self.plan, now);
        if nudges.is_empty() {
            return Ok(());
        }
        self.store.save_train(train)?;
        let train = train.clone();
        let id = train.id;
        for nudge in nudges {
            match nudge {
                Nudge::Remind { to, left } => {
                    for user in to {
                        let text = messages::reminder(&self.ctx(), &train, &user, left);
                        tracing::info!(train = id.0, user = %user, "Reminding an author.");
                        self.send_msg(Message::Remind {
                            to: user,
                            train: id,
                            text,
                        })
                        .await;
                    }
                }
                Nudge::Escalate { missing, waited } => {
                    let ops = self.ops_to_tell();
                    let text = messages::escalation(&self.ctx(), &train, &ops, &missing, waited);
                    tracing::info!(train = id.0, "Escalating a waiting approval to ops.");
                    self.say(Some(id), text).await;
                }
                Nudge::ExpiresSoon { missing } => {
                    let text = messages::expires_soon(&self.ctx(), &train, &missing);
                    self.say(Some(id), text).await;
                }
            }
        }
        Ok(())
    }

    /// Ops, mentioned as the chat shows mentions.
    fn ops_mentions(&self) -> String {
        let console = self.ctx().console;
        let ops: Vec<String> = self
            .ops_to_tell()
            .iter()
            .map(|u| messages::mention_user(u, console))
            .collect();
        ops.join(" ")
    }

    /// Who hears an escalation: `roles.ops`, or the production role when
    /// no ops are configured.
    fn ops_to_tell(&self) -> Vec<ChatUser> {
        let ops = if self.cfg.ops.is_empty() {
            self.cfg.production_role.clone().unwrap_or_default()
        } else {
            self.cfg.ops.clone()
        };
        ops.into_iter().map(ChatUser::new).collect()
    }

    /// Updates the train's status message, if what it says has changed.
    pub(super) async fn show_status(&mut self) {
        let Some(train) = self.train.as_ref() else {
            return;
        };
        let mut text = messages::status_line(&self.ctx(), train, self.now());
        if let (Some(h), Some(_)) = (&self.door_hold, train.waiting_at()) {
            text.push_str(&format!(" — {}", h.detail));
        }
        self.send_status(train.id, text).await;
    }

    pub(super) async fn send_status(&mut self, train: TrainId, text: String) {
        let url = self.ctx().run_url(train);
        self.send_run_status(Run::Train(train), text, url).await;
    }

    /// Updates a run's status message, unless it would say the same again.
    pub(super) async fn send_run_status(&mut self, run: Run, text: String, url: String) {
        if self.last_status.get(&run) == Some(&text) {
            return;
        }
        self.last_status.insert(run, text.clone());
        self.send_msg(Message::Status { run, text, url }).await;
    }

    /// A run that is over will not change its status again.
    pub(super) fn forget_status(&mut self, run: Run) {
        self.last_status.remove(&run);
    }

    /// The production deploy steps passed: record the new production SHA
    /// (and, for a rollback, which train it took out) before saying so.
    async fn production_live(&mut self) -> anyhow::Result<()> {
        let Some(train) = self.train.as_ref() else {
            return Ok(());
        };
        let previous = self.store.production()?;
        if matches!(train.kind, Kind::Rollback { .. })
            && let Some(prev) = &previous
            && let Some(mut replaced) = self.store.train(prev.train)?
            && replaced.id != train.id
        {
            replaced.rolled_back = true;
            self.store.save_train(&replaced)?;
        }
        let prod = Production {
            sha: train.sha.clone(),
            train: train.id,
            since: self.now(),
            alloc_seq: self.store.allocation_seq(&train.sha)?,
            previous: previous.as_ref().map(|p| p.sha.clone()),
            previous_train: previous.as_ref().map(|p| p.train),
        };
        self.store.set_production(&prod)?;
        tracing::info!(train = train.id.0, sha = %train.sha, "Production is live.");
        Ok(())
    }

    async fn ended(&mut self, outcome: Outcome) -> anyhow::Result<()> {
        let Some(train) = self.train.take() else {
            return Ok(());
        };
        self.claim = None;
        self.metrics.train_ended(&train);
        let mut envs: Vec<String> = self.plan.envs.iter().map(|e| e.name.clone()).collect();
        envs.push("production".into());
        self.publisher.send(Publish::RunEnded {
            run: format!("train-{}", train.id.0),
            envs,
            url: self.ctx().run_url(train.id),
        });
        tracing::info!(train = train.id.0, outcome = outcome.word(), "Train ended.");
        let passed = matches!(outcome, Outcome::Deployed | Outcome::LowerDone);
        self.run_ended(&format!("train-{}", train.id.0), passed);
        let text = messages::ended(&self.ctx(), &train, self.now());
        self.send_status(train.id, text.clone()).await;
        self.forget_status(Run::Train(train.id));
        self.send_msg(approval_progress(&train)).await;
        // A failure mentions the train's authors (SPEC §14), in the notice
        // only: the status message is edited in place. So does a red
        // verification (and, without auto_rollback, ops too).
        let red = match train.verify.as_ref().and_then(|v| v.result.as_ref()) {
            Some(VerifyResult::Red { auto_rollback }) => Some(*auto_rollback),
            _ => None,
        };
        let cc = (matches!(outcome, Outcome::Failed { .. }) || red.is_some())
            .then(|| messages::failure_mentions(&self.ctx(), &train))
            .flatten();
        let cc = match (red, cc) {
            (Some(false), cc) => {
                let ops = self.ops_mentions();
                let ops = format!("production is red and stays as it is; ops: {ops}");
                Some(cc.map_or(ops.clone(), |cc| format!("{cc}\n{ops}")))
            }
            (_, cc) => cc,
        };
        let text = match cc {
            Some(cc) => format!("{text}\n{cc}"),
            None => text,
        };
        self.say(Some(train.id), text).await;
        if red == Some(true) {
            self.auto_rollback(&train).await?;
        }
        Ok(())
    }

    /// A red verification with `auto_rollback` (SPEC §15): the previous
    /// production SHA goes back through the rollback road (production
    /// steps, a claim, the once-only rules). The bot's own rollback is not
    /// held by a lock or a window: a red production must heal.
    pub(super) async fn auto_rollback(&mut self, red: &Train) -> anyhow::Result<()> {
        let previous = self
            .store
            .production()?
            .filter(|p| p.train == red.id)
            .and_then(|p| p.previous);
        let Some(prev) = previous else {
            let ops = self.ops_mentions();
            let text = format!(
                "🚨 train {} is red in production and there is no previous SHA to roll back to; ops: {ops}",
                red.id,
            );
            self.say(Some(red.id), text).await;
            return Ok(());
        };
        tracing::warn!(train = red.id.0, sha = %prev, "Verification red: rolling back.");
        self.store.audit(&crate::store::AuditEntry {
            at: self.now(),
            user: ChatUser::new("trainbot"),
            action: format!(
                "rollback to {} (train {} verification red)",
                prev.short(),
                red.id
            ),
            result: "rolling back automatically".into(),
        })?;
        let kind = Kind::Rollback {
            by: ChatUser::new(AUTO),
        };
        self.depart(prev, kind, Route::ProductionOnly)
    }

    /// A red train whose automatic rollback never went live (the bot
    /// stopped while it was leaving): it is still the last train and its
    /// SHA is still in production.
    pub(super) fn pending_auto_rollback(&self) -> anyhow::Result<Option<Train>> {
        if self.train.is_some() || self.departing.is_some() {
            return Ok(None);
        }
        let Some(last) = self.store.last_train()? else {
            return Ok(None);
        };
        let red = matches!(
            last.verify.as_ref().and_then(|v| v.result.as_ref()),
            Some(VerifyResult::Red {
                auto_rollback: true
            })
        );
        let live = self.store.production()?.is_some_and(|p| p.train == last.id);
        Ok((red && live).then_some(last))
    }
}

/// The revert claims the forge confirms (SPEC §11): a message alone does not
/// spare an author. A check the forge cannot make leaves the claim
/// unverified, so the author is asked; it never holds the train back.
pub(super) async fn verified_reverts(
    forge: &dyn Forge,
    claims: Vec<RevertClaim>,
) -> Vec<RevertClaim> {
    let mut verified = Vec::with_capacity(claims.len());
    for claim in claims {
        let (reverting, reverted) = (&claim.reverting, &claim.reverted);
        match forge.reverts(reverting, reverted).await {
            Ok(true) => verified.push(claim),
            Ok(false) => tracing::info!(
                %reverting,
                %reverted,
                "Not a revert of that commit (the change is not its inverse); its author is asked."
            ),
            Err(error) => tracing::warn!(
                %reverting,
                %reverted,
                %error,
                "Cannot verify a revert; its author is asked."
            ),
        }
    }
    verified
}

/// Who approved so far, and whether the buttons still make sense.
fn approval_progress(train: &Train) -> Message {
    Message::ApprovalProgress {
        train: train.id,
        approved_by: train.approvals.iter().map(|a| a.user.clone()).collect(),
        open: matches!(train.stage, Stage::AwaitingApproval { .. }),
    }
}
