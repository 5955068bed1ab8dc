//! Commands of the gate (SPEC §11): `!deploy`, `!lock`, `!unlock`,
//! `!locks`, `!why`, `!next`.

use crate::domain::command::TrainOrSha;
use crate::domain::gate::{self, PRODUCTION, Road, Verdict};
use crate::domain::ids::{BranchName, Sha, ShaPrefix, TrainId};
use crate::domain::lock::Lock;
use crate::domain::messages;
use crate::domain::refusal::Refusal;
use crate::domain::train::{Actor, Kind, Route, Stage};
use crate::forge::{Forge, ForgeError};

use super::Engine;
use super::calls::{Asked, Reply};
use super::gate::Ask;

impl Engine {
    fn env_known(&self, env: &str) -> Result<Option<usize>, Refusal> {
        if env == PRODUCTION {
            return Ok(None);
        }
        match self.plan.envs.iter().position(|e| e.name == env) {
            Some(i) => Ok(Some(i)),
            None => {
                let mut all: Vec<&str> = self.plan.envs.iter().map(|e| e.name.as_str()).collect();
                all.push(PRODUCTION);
                Err(Refusal::Forge(format!(
                    "no environment {env}; there are {}",
                    all.join(", ")
                )))
            }
        }
    }

    /// `!deploy <ref> to <env>`: one environment's steps, numbered like a
    /// train, one at a time with trains. The ref is resolved beside the
    /// engine; `deploy_resolved` goes on.
    pub(super) fn deploy(
        &mut self,
        asked: &Asked,
        git_ref: &str,
        env: &str,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let index = match self.env_known(env) {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        if let Some(t) = &self.train {
            // Production waits for a verifying train (rule verifying).
            return Ok(Err(match self.train_busy() {
                Some(held @ Refusal::Held(_)) if env == crate::domain::gate::PRODUCTION => held,
                _ => Refusal::TrainRunning(t.id),
            }));
        }
        self.answer_later = true;
        let (asked, git_ref, env) = (asked.clone(), git_ref.to_string(), env.to_string());
        let r = git_ref.clone();
        let production = index.is_none();
        self.beside(
            move |forge| async move { Ok(resolve_ref(&*forge, &r, production).await) },
            move |result| Reply::Deploy {
                asked,
                git_ref,
                env,
                result: result.unwrap_or_else(|e| Err(Refusal::Forge(e.to_string()))),
            },
        );
        Ok(Ok(()))
    }

    pub(super) fn deploy_resolved(
        &mut self,
        asked: &Asked,
        git_ref: &str,
        env: &str,
        resolved: Result<(Sha, bool), Refusal>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let index = match self.env_known(env) {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        if let Some(busy) = self.busy() {
            return Ok(Err(busy));
        }
        let (sha, on_main) = match resolved {
            Ok(found) => found,
            Err(r) => return Ok(Err(r)),
        };
        let st = self.gate_state()?;
        let ask = Ask {
            actor: Some(&asked.actor.user),
            on_main: Some((sha.short(), on_main)),
            ..Ask::default()
        };
        // A locked environment (production included): the run departs and
        // waits at its door, where the gate says so.
        if let Verdict::No(h) = self.ask_gate(&Road::Deploy { env }, &st, ask) {
            return Ok(Err(Refusal::Held(h)));
        }
        let kind = Kind::Deploy {
            by: asked.actor.user.clone(),
            git_ref: git_ref.to_string(),
            env: env.to_string(),
        };
        let route = match index {
            Some(i) => Route::Env(i),
            None => Route::ProductionOnly,
        };
        self.depart(sha, kind, route)?;
        Ok(Ok(()))
    }

    pub(super) async fn lock(
        &mut self,
        actor: &Actor,
        env: &str,
        for_: Option<std::time::Duration>,
        reason: &str,
    ) -> anyhow::Result<Result<(), Refusal>> {
        if let Err(r) = self.env_known(env) {
            return Ok(Err(r));
        }
        if env == PRODUCTION && !actor.ops {
            return Ok(Err(Refusal::NotOps {
                command: "lock production",
            }));
        }
        let now = self.now();
        if let Some(l) = self.locks.iter().find(|l| l.env == env && l.holds(now)) {
            return Ok(Err(Refusal::Forge(format!(
                "{env} is already locked by {} ({})",
                l.by.mention(),
                l.reason
            ))));
        }
        // The parser bounds `for_`, and `to_delta` bounds it again.
        let until = for_.map(|d| now + crate::domain::duration::to_delta(d));
        let lock = Lock {
            env: env.to_string(),
            by: actor.user.clone(),
            reason: reason.to_string(),
            since: now,
            until,
        };
        self.store.set_lock(&lock)?;
        self.locks.retain(|l| l.env != env);
        self.locks.push(lock);
        let until = until
            .map(|u| format!(" until {}", self.ctx().time(u)))
            .unwrap_or_default();
        self.say(
            None,
            format!(
                "🔒 {env} locked by {}{until}: {reason}",
                actor.user.mention()
            ),
        )
        .await;
        Ok(Ok(()))
    }

    pub(super) async fn unlock(
        &mut self,
        actor: &Actor,
        env: &str,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let now = self.now();
        let Some(lock) = self
            .locks
            .iter()
            .find(|l| l.env == env && l.holds(now))
            .cloned()
        else {
            return Ok(Err(Refusal::Forge(format!("{env} is not locked"))));
        };
        if lock.by != actor.user && !actor.ops {
            return Ok(Err(Refusal::Forge(format!(
                "only {} (who locked {env}) or ops can !unlock it",
                lock.by.mention()
            ))));
        }
        if env == PRODUCTION
            && let Some(h) = gate::who(Some(&actor.user), self.cfg.production_role.as_deref())
        {
            return Ok(Err(Refusal::Held(h)));
        }
        self.store.remove_lock(env)?;
        self.locks.retain(|l| l.env != env);
        self.forget_lock_holds(env)?;
        self.say(
            None,
            format!("🔓 {env} unlocked by {}", actor.user.mention()),
        )
        .await;
        Ok(Ok(()))
    }

    pub(super) fn locks_text(&self) -> String {
        let now = self.now();
        let ctx = self.ctx();
        let live: Vec<&Lock> = self.locks.iter().filter(|l| l.holds(now)).collect();
        if live.is_empty() {
            return "no environment is locked".into();
        }
        let mut out = String::from("locks:");
        for l in live {
            let until = l
                .until
                .map(|u| format!(", until {}", ctx.time(u)))
                .unwrap_or_default();
            out.push_str(&format!(
                "\n🔒 {} by {}: {} (since {}{until})",
                l.env,
                l.by.mention(),
                l.reason,
                messages::ago(l.since, now)
            ));
        }
        out
    }

    /// `!why`: why the next departure will or will not go.
    pub(super) fn why_departure(&self) -> anyhow::Result<String> {
        use crate::domain::departure::{Decision, Skip};
        let when = match self.next_departure {
            Some(at) => format!(
                "the next departure ({}, {})",
                self.ctx().time(at),
                messages::in_time(at, self.now())
            ),
            None => "no departure is scheduled; a departure".into(),
        };
        Ok(match self.departure_decision()? {
            Decision::Skip(Skip::Running(id)) => match self.train_busy() {
                Some(Refusal::Held(h)) => format!("{when} will not go: {h}"),
                _ => format!("{when} will not go: train {id} is running"),
            },
            Decision::Skip(Skip::Departing(sha)) => {
                format!(
                    "{when} will not go: a train with {} is about to leave",
                    sha.short()
                )
            }
            Decision::Skip(Skip::NothingAllocated) => {
                format!("{when} will not go: no SHA allocated yet")
            }
            Decision::Skip(Skip::NothingNew) => {
                format!("{when} will not go: nothing new since production")
            }
            Decision::Depart(sha) => match self.clock_verdict(&sha)? {
                Verdict::Go { .. } => format!("{when} will go with {}", sha.short()),
                Verdict::Wait(h) | Verdict::No(h) => {
                    format!("{when} will not go with {}: {h}", sha.short())
                }
            },
        })
    }

    /// `!why <train>`: where a train is and why.
    pub(super) fn why_train(&self, id: TrainId) -> anyhow::Result<String> {
        let train = match &self.train {
            Some(t) if t.id == id => t.clone(),
            _ => match self.store.train(id)? {
                Some(t) => t,
                None => return Ok(format!("no train {id}")),
            },
        };
        let stage = messages::stage_label(&self.plan, &train.stage);
        let mut out = format!("train {id} ({}) is {stage}", train.sha.short());
        if let (Some(h), true) = (&self.door_hold, train.waiting_at().is_some()) {
            out.push_str(&format!(": {h}"));
        }
        if let Stage::AwaitingApproval { .. } = train.stage {
            let waiting: Vec<String> = train.waiting_for().iter().map(|u| u.mention()).collect();
            out.push_str(&format!(": waiting for {}", waiting.join(", ")));
        }
        if train.rolled_back {
            out.push_str(" (rolled back since)");
        }
        Ok(out)
    }

    pub(super) async fn why(&self, what: Option<&TrainOrSha>) -> anyhow::Result<String> {
        let mut text = match what {
            None => self.why_departure()?,
            Some(TrainOrSha::Train(id)) => self.why_train(*id)?,
            Some(TrainOrSha::Sha(p)) => self.why_sha(p).await?,
        };
        if what.is_none()
            && let Some(line) = &self.last_hold
        {
            text.push_str(&format!("\nlast held: {line}"));
        }
        Ok(text)
    }

    /// `!next`: what the next train would carry and whether it may go;
    /// its commits are listed beside the engine.
    pub(super) async fn next(&mut self, asked: &Asked) -> anyhow::Result<Result<(), Refusal>> {
        use crate::domain::departure::Decision;
        let Decision::Depart(sha) = self.departure_decision()? else {
            let text = self.why_departure()?;
            self.reply_to(asked, text).await;
            return Ok(Ok(()));
        };
        let base = match self.store.production()? {
            Some(p) => Some(p.sha),
            None => self.store.first_base()?,
        };
        self.answer_later = true;
        let asked = asked.clone();
        let head = sha.clone();
        self.beside(
            move |forge| async move { forge.commits(base.as_ref(), &head).await },
            move |result| Reply::Next { asked, sha, result },
        );
        Ok(Ok(()))
    }

    pub(super) fn next_text(
        &self,
        sha: &Sha,
        commits: Result<Vec<crate::domain::train::Commit>, ForgeError>,
    ) -> anyhow::Result<String> {
        let commits = match commits {
            Ok(c) => c,
            Err(e) => return Ok(format!("cannot list commits for {}: {e}", sha.short())),
        };
        let ids = self.identities();
        let mut asks: Vec<String> = Vec::new();
        for c in &commits {
            let who = ids
                .resolve(&c.author_email, c.author_login.as_deref())
                .map(|u| u.mention())
                .unwrap_or_else(|| c.author_name.clone());
            if !asks.contains(&who) {
                asks.push(who);
            }
        }
        let mut out = format!(
            "the next train would carry {} ({} commit{}) and ask {}",
            sha.short(),
            commits.len(),
            if commits.len() == 1 { "" } else { "s" },
            if asks.is_empty() {
                "nobody".to_string()
            } else {
                asks.join(", ")
            }
        );
        for c in commits.iter().rev().take(10) {
            out.push_str(&format!(
                "\n{} {} — {}",
                c.sha.short(),
                messages::one_line(&c.subject, 72),
                c.author_name
            ));
        }
        out.push('\n');
        out.push_str(&self.why_departure()?);
        Ok(out)
    }
}

/// A branch, tag or SHA, as the forge knows it now, and whether it is on
/// main (asked only for production).
async fn resolve_ref(
    forge: &dyn Forge,
    git_ref: &str,
    production: bool,
) -> Result<(Sha, bool), Refusal> {
    let refused = |e: ForgeError| Refusal::Forge(e.to_string());
    let mut found = None;
    if let Ok(branch) = git_ref.parse::<BranchName>() {
        found = forge.branch_head(&branch).await.map_err(refused)?;
    }
    if found.is_none() {
        found = forge
            .tags()
            .await
            .map_err(refused)?
            .into_iter()
            .find(|t| t.name == git_ref)
            .map(|t| t.sha);
    }
    if found.is_none()
        && let Ok(prefix) = git_ref.parse::<ShaPrefix>()
    {
        found = Some(forge.resolve_on_main(&prefix).await.map_err(refused)?);
    }
    let Some(sha) = found else {
        return Err(Refusal::Forge(format!(
            "no branch, tag or SHA {}",
            messages::one_line(git_ref, 40)
        )));
    };
    if !production {
        return Ok((sha, true));
    }
    let on_main = forge.is_on_main(&sha).await.map_err(refused)?;
    Ok((sha, on_main))
}
