//! `!why <sha>` (SPEC §11): where a SHA is and why. Read from the store's
//! indexes only (production, the running train, the trains that carried
//! it, the allocations): no forge call, no scan of the history.

use crate::domain::ids::{Sha, ShaPrefix};
use crate::domain::messages;
use crate::domain::train::{Outcome, Train};
use crate::store::{Carried, CarriedBy};

use super::Engine;

impl Engine {
    /// Production's head, then the running train, then the newest train
    /// that carried the SHA, then the SHAs waiting on main.
    pub(super) async fn why_sha(&self, prefix: &ShaPrefix) -> anyhow::Result<String> {
        let p = prefix.as_str();
        if let Some(prod) = self.store.production()?
            && prod.sha.as_str().starts_with(p)
        {
            return Ok(format!(
                "{} is in production since {} (train {})",
                prod.sha.short(),
                messages::ago(prod.since, self.now()),
                prod.train
            ));
        }
        if let Some(t) = &self.train
            && (t.sha.as_str().starts_with(p)
                || t.commits.iter().any(|c| c.sha.as_str().starts_with(p)))
        {
            return self.why_train(t.id);
        }
        match self.store.carried_by_prefix(p)? {
            Carried::One(sha, by) => {
                if let Some(text) = self.why_carried(&sha, by)? {
                    return Ok(text);
                }
            }
            Carried::Several => {
                return Ok(format!("{p} is ambiguous: several SHAs start with it"));
            }
            Carried::None => {}
        }
        let Some(alloc) = self.store.allocation_by_prefix(p)? else {
            return Ok(format!(
                "{p} is not a SHA allocated from {} nor carried by a train",
                self.cfg.forge.main_branch
            ));
        };
        let sha = alloc.sha;
        if let Some((id, how)) = self.rejection_of(&sha)? {
            return Ok(format!(
                "{} was rejected by train {id} ({how})",
                sha.short()
            ));
        }
        let waiting = self.waiting_shas(usize::MAX)?;
        if waiting.contains(&sha) {
            return Ok(format!(
                "{} waits for a train; {}",
                sha.short(),
                self.why_departure()?
            ));
        }
        Ok(format!("{} is older than production", sha.short()))
    }

    /// What the newest train that carried `sha` says of it: the newest
    /// train decides (a head vetoed once and shipped later is live).
    fn why_carried(&self, sha: &Sha, by: CarriedBy) -> anyhow::Result<Option<String>> {
        let Some(newest) = self.store.train(by.newest)? else {
            return Ok(None);
        };
        let short = sha.short();
        Ok(Some(match newest.outcome() {
            Some(Outcome::Deployed) => self.deployed_by(short, &newest),
            Some(o) if o.rejects_sha() => {
                format!("{short} was rejected by train {} ({})", newest.id, o.word())
            }
            _ => {
                // A run that stops short of production (a staging tag, a
                // `!deploy` to staging) after a train that shipped it.
                let shipped = match by.production.filter(|id| *id != newest.id) {
                    Some(id) => self.store.train(id)?,
                    None => None,
                };
                match shipped {
                    Some(t) if t.outcome() == Some(&Outcome::Deployed) => {
                        self.deployed_by(short, &t)
                    }
                    _ => format!(
                        "{short} was last in train {} ({}), which is {}",
                        newest.id,
                        newest.sha.short(),
                        messages::stage_label(&self.plan, &newest.stage)
                    ),
                }
            }
        }))
    }

    /// A deployed train's SHA: live since the train went live, unless a
    /// rollback took it out.
    fn deployed_by(&self, short: &str, train: &Train) -> String {
        if train.rolled_back {
            return format!(
                "{short} was deployed by train {} and rolled back since",
                train.id
            );
        }
        // Live once smoke passed: when verification began, else when the
        // train ended.
        let live = train
            .verify
            .as_ref()
            .map(|v| v.since)
            .or(train.finished)
            .unwrap_or(train.stage_since);
        format!(
            "{short} is in production since {} (train {})",
            messages::ago(live, self.now()),
            train.id
        )
    }
}
