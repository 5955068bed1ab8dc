//! The facts of `!status` as data, for the HTTP API and the dashboard.

use std::sync::Arc;

use serde::Serialize;

use crate::domain::ids::unmention;
use crate::domain::messages;
use crate::store::Freeze;

use super::Engine;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub train: Option<TrainView>,
    pub production_sha: Option<String>,
    pub waiting: Vec<String>,
    /// RFC 3339 in the configured zone.
    pub next_departure: Option<String>,
    pub frozen: Option<FrozenView>,
    /// Tag deploys waiting for their turn, oldest first.
    pub tags_waiting: Vec<TagView>,
    /// Environment locks in force.
    pub locks: Vec<LockView>,
    /// What the gate says of the next scheduled departure.
    pub gate: GateView,
    /// False until the engine has published once; /healthz uses it.
    #[serde(skip)]
    pub ready: bool,
    /// `/api/status` of this snapshot, kept by the web while the minute
    /// and the deploy history stay the same (dashboards poll it).
    #[serde(skip)]
    pub api_json: ApiCache,
}

/// The JSON of `/api/status` for one snapshot, and what it was made from.
#[derive(Debug, Clone, Default)]
pub struct ApiCache(Arc<std::sync::Mutex<Option<Cached>>>);

/// JSON text and the key it was made for.
type Cached = (ApiCacheKey, Arc<str>);

/// What else `/api/status` depends on: the minute (delivery metrics) and
/// the newest deploy.
pub type ApiCacheKey = (i64, Option<Vec<u8>>);

impl ApiCache {
    /// The cached JSON if it was made for `key`, else `make`'s (kept).
    pub fn get_or<E>(
        &self,
        key: ApiCacheKey,
        make: impl FnOnce() -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, json)) = cached.as_ref()
            && *k == key
        {
            return Ok(json.clone());
        }
        let json: Arc<str> = Arc::from(make()?);
        *cached = Some((key, json.clone()));
        Ok(json)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainView {
    pub id: u64,
    /// `Kind::word`: `deploy` for a `!deploy` run (SPEC §11), …
    pub kind: &'static str,
    pub sha: String,
    pub stage: String,
    /// Human form of the stage, e.g. "staging acceptance".
    pub stage_detail: String,
    pub authors: Vec<String>,
    pub approved_by: Vec<String>,
    /// Approvers who have not said `!good` yet.
    pub waiting_for: Vec<String>,
    /// RFC 3339: when the train entered its current stage.
    pub stage_since: String,
    /// The run page.
    pub url: String,
    /// Why the train waits at an environment's door (rule and detail).
    pub held: Option<String>,
    /// Production verification, while the train verifies (SPEC §15).
    pub verifying: Option<VerifyView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyView {
    /// RFC 3339: when the window ends.
    pub until: String,
    /// Finished checks, of how many, and how many failed.
    pub checks: u32,
    pub total: u32,
    pub failures: u32,
    /// RFC 3339, and whether it was green: the last finished check.
    pub last_check: Option<String>,
    pub last_ok: Option<bool>,
    /// "check 2/10 green, 8m left", when the snapshot was made.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockView {
    pub env: String,
    pub by: String,
    pub reason: String,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339; null: until `!unlock`.
    pub until: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GateView {
    /// "go", "wait" or "no".
    pub departure: String,
    pub rule: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagView {
    pub name: String,
    /// Full SHA.
    pub sha: String,
    pub pushed_by: String,
    /// "production" or "lower" (the lower environments only).
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrozenView {
    pub reason: Option<String>,
    pub by: String,
}

impl Engine {
    pub(super) fn publish(&self) {
        match self.build_snapshot() {
            Ok(s) => {
                self.snapshot.send_replace(Arc::new(s));
            }
            Err(error) => {
                self.metrics.error("snapshot");
                tracing::warn!(%error, "Cannot build the status snapshot.");
            }
        }
    }

    fn build_snapshot(&self) -> anyhow::Result<Snapshot> {
        let train = self.train.as_ref().map(|t| TrainView {
            id: t.id.0,
            kind: t.kind.word(),
            sha: t.sha.to_string(),
            stage: messages::stage_key(&self.plan, &t.stage),
            stage_detail: messages::stage_label(&self.plan, &t.stage),
            authors: t
                .authors
                .iter()
                .map(|a| {
                    a.chat
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or(a.name.clone())
                })
                .collect(),
            approved_by: t.approvals.iter().map(|a| a.user.to_string()).collect(),
            waiting_for: t.waiting_for().iter().map(|u| u.to_string()).collect(),
            stage_since: messages::rfc3339(t.stage_since, self.cfg.train.timezone),
            url: self.ctx().run_url(t.id),
            held: self.door_hold.as_ref().map(|h| unmention(&h.to_string())),
            verifying: t
                .verify
                .as_ref()
                .filter(|_| t.verifying_until().is_some())
                .map(|v| VerifyView {
                    until: messages::rfc3339(v.until, self.cfg.train.timezone),
                    checks: v.checks,
                    total: v.total,
                    failures: v.failures,
                    last_check: v
                        .last
                        .map(|(at, _)| messages::rfc3339(at, self.cfg.train.timezone)),
                    last_ok: v.last.map(|(_, ok)| ok),
                    detail: messages::verify_progress(v, self.now()),
                }),
        });
        let tz = self.cfg.train.timezone;
        let now = self.now();
        let locks = self
            .locks
            .iter()
            .filter(|l| l.holds(now))
            .map(|l| LockView {
                env: l.env.clone(),
                by: l.by.to_string(),
                reason: l.reason.clone(),
                since: messages::rfc3339(l.since, tz),
                until: l.until.map(|u| messages::rfc3339(u, tz)),
            })
            .collect();
        let verifying = match self.train_busy() {
            Some(crate::domain::refusal::Refusal::Held(h)) => Some(h),
            _ => None,
        };
        let gate = match self.departure_decision()? {
            // A train verifying production holds the clock (rule verifying).
            crate::domain::departure::Decision::Skip(_) if let Some(h) = &verifying => GateView {
                departure: "wait".into(),
                rule: Some(h.rule.name().to_string()),
                detail: Some(unmention(&h.detail)),
            },
            crate::domain::departure::Decision::Depart(sha) => {
                let v = self.clock_verdict(&sha)?;
                GateView {
                    departure: v.word().into(),
                    rule: v.hold().map(|h| h.rule.name().to_string()),
                    detail: v.hold().map(|h| unmention(&h.detail)),
                }
            }
            // No rule holds it; what departs next still reads go, wait or
            // no (SPEC §11), and `detail` says why.
            crate::domain::departure::Decision::Skip(skip) => GateView {
                departure: match skip {
                    crate::domain::departure::Skip::Departing(_) => "go",
                    crate::domain::departure::Skip::Running(_) => "wait",
                    _ => "no",
                }
                .into(),
                rule: None,
                detail: Some(match skip {
                    crate::domain::departure::Skip::Running(id) => {
                        format!("train {id} is running")
                    }
                    crate::domain::departure::Skip::Departing(sha) => {
                        format!("a train with {} is about to leave", sha.short())
                    }
                    crate::domain::departure::Skip::NothingAllocated => {
                        "no SHA allocated yet".into()
                    }
                    crate::domain::departure::Skip::NothingNew => {
                        "nothing new since production".into()
                    }
                }),
            },
        };
        Ok(Snapshot {
            train,
            production_sha: self.store.production()?.map(|p| p.sha.to_string()),
            waiting: self
                .waiting_shas(100)?
                .into_iter()
                .map(|s| s.to_string())
                .collect(),
            next_departure: self
                .next_departure
                .map(|t| messages::rfc3339(t, self.cfg.train.timezone)),
            frozen: self.store.freeze()?.map(|f: Freeze| FrozenView {
                reason: f.reason,
                by: f.by.to_string(),
            }),
            tags_waiting: self
                .store
                .queued_tags()?
                .into_iter()
                .map(|(_, t)| TagView {
                    name: t.name,
                    sha: t.sha.to_string(),
                    pushed_by: t.pushed_by,
                    to: match t.route {
                        crate::domain::train::Route::LowerOnly => "lower",
                        _ => "production",
                    }
                    .to_string(),
                })
                .collect(),
            locks,
            gate,
            ready: true,
            api_json: ApiCache::default(),
        })
    }
}
