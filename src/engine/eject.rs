//! SPEC §15 "Eject the culprit": under `train.on_veto = "eject"` a veto ends
//! the train vetoed (the gate's rejected-head rule holds its head), then the
//! commits before the first vetoed one leave at once as a new train through
//! the usual departure (gate, commit listing, one train at a time). The
//! intent is stored with the veto and removed when the new train is saved,
//! so a restart in between neither loses nor doubles it.

use crate::domain::eject::{self, Intent, Named};
use crate::domain::gate::Verdict;
use crate::domain::ids::{ChatUser, Sha};
use crate::domain::refusal::Refusal;
use crate::domain::train::{Actor, Effect, Input, Kind, Route, Train};

use super::Engine;
use super::calls::{Departing, Origin};

/// What a veto of `train` under "eject" leaves to depart (None: nothing
/// rides on), the veto's reason (a leading SHA taken out), and, when nothing
/// rides on, what to say.
pub(super) fn intent_of(
    train: &Train,
    vetoer: &ChatUser,
    reason: Option<&str>,
    production: Option<&Sha>,
) -> (Option<Intent>, Option<String>, Option<String>) {
    if train.route != Route::Full {
        return (None, reason.map(str::to_string), None);
    }
    let (named, reason) = eject::name_commits(&train.commits, &train.authors, vetoer, reason);
    let e = eject::eject(
        &train.commits,
        &train.authors,
        &named,
        &train.approvals,
        production,
    );
    let label = eject::ejected_label(&train.commits, &train.authors, &e.ejected);
    match e.head {
        Some(head) => {
            let intent = Intent {
                vetoed: train.id,
                by: vetoer.clone(),
                head,
                ejected: label,
                carried: e.carried,
            };
            (Some(intent), reason, None)
        }
        None => {
            let why = if named == Named::Whole {
                "the veto names the whole train"
            } else {
                "nothing before them is newer than production"
            };
            (None, reason, Some(eject::nothing_rides_on(&label, why)))
        }
    }
}

impl Engine {
    /// `!bad [sha] [reason]` under `on_veto = "eject"`.
    pub(super) async fn veto_ejecting(
        &mut self,
        actor: &Actor,
        reason: Option<&str>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let Some(train) = self.train.as_ref() else {
            return Ok(Err(Refusal::NothingToVeto));
        };
        let production = self.store.production()?.map(|p| p.sha);
        let (intent, reason, note) = intent_of(train, &actor.user, reason, production.as_ref());
        let input = Input::Bad {
            actor: actor.clone(),
            reason,
        };
        let effects = match self.persist_input(input)? {
            Ok(effects) => effects,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // In the store with the vetoed train, before either is said.
        if let Some(intent) = &intent {
            self.store.set_eject_intent(Some(intent))?;
        }
        self.publish();
        self.apply(effects).await?;
        match intent {
            Some(intent) => self.depart_ejected(intent).await?,
            None => {
                if let Some(note) = note {
                    self.say(None, note).await;
                }
            }
        }
        Ok(Ok(()))
    }

    /// The partial train leaves, if the gate lets it (a different SHA from
    /// the vetoed head; a freeze or an interrupted train still hold it).
    pub(super) async fn depart_ejected(&mut self, intent: Intent) -> anyhow::Result<()> {
        if self.train.is_some() || self.departing.is_some() {
            return Ok(());
        }
        match self.clock_verdict(&intent.head)? {
            Verdict::Go { .. } => self.depart_from(Departing {
                sha: intent.head.clone(),
                kind: Kind::Departed { by: intent.by },
                route: Route::Full,
                overrides: None,
                origin: Origin::Other,
            }),
            Verdict::Wait(hold) | Verdict::No(hold) => {
                self.store.set_eject_intent(None)?;
                let what = format!(
                    "ejected {}; {} does not ride on",
                    intent.ejected,
                    intent.head.short()
                );
                self.say_hold_once(None, &what, &hold).await
            }
        }
    }

    /// A restart between a veto and its partial train's departure: the
    /// stored intent departs now, unless a train left after the veto.
    pub(super) async fn resume_ejection(&mut self) -> anyhow::Result<()> {
        let Some(intent) = self.store.eject_intent()? else {
            return Ok(());
        };
        let last = self.store.last_train()?.map(|t| t.id);
        if self.train.is_some() || last.is_some_and(|id| id > intent.vetoed) {
            self.store.set_eject_intent(None)?;
            return Ok(());
        }
        tracing::info!(vetoed = intent.vetoed.0, head = %intent.head, "Departing the train a veto left.");
        self.depart_ejected(intent).await
    }

    /// A departing train with `sha` as its head: the stored intent, if it
    /// is the one a veto left (taken out of the store).
    pub(super) fn take_ejection(&mut self, sha: &Sha) -> anyhow::Result<Option<Intent>> {
        match self.store.eject_intent()? {
            Some(intent) if &intent.head == sha => {
                self.store.set_eject_intent(None)?;
                Ok(Some(intent))
            }
            _ => Ok(None),
        }
    }

    /// The new train takes the carried approvals (before it is saved); what
    /// to say after its departure.
    pub(super) fn carry_over(
        &self,
        train: &mut Train,
        intent: &Intent,
        effects: &mut Vec<Effect>,
    ) -> String {
        let extra = train.carry_approvals(&intent.carried, &self.plan, self.now());
        if !extra.is_empty() {
            effects.retain(|e| !matches!(e, Effect::AskApproval));
            effects.extend(extra);
        }
        let carried: Vec<ChatUser> = train.approvals.iter().map(|a| a.user.clone()).collect();
        eject::rode_on_message(
            &intent.ejected,
            &train.sha,
            &train.id.to_string(),
            &carried,
            &train.waiting_for(),
        )
    }
}
