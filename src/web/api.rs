//! `GET /api/status`: the facts of `!status` and of the radiator as JSON.
//! The engine's snapshot is the base (SPEC §7 fields); the delivery metrics
//! and recent deploys are added here. Documented in `docs/api.md`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use serde::Serialize;

use super::panels::delivery_now;
use super::{Error, WebState};
use crate::domain::metrics::Delivery;
use crate::engine::Snapshot;

#[derive(Debug, Serialize)]
pub struct ApiStatus {
    #[serde(flatten)]
    pub snapshot: Snapshot,
    pub delivery: DeliveryView,
    /// The last production deploys, newest first.
    pub recent_deploys: Vec<DeployView>,
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub days: i64,
    pub deploys: usize,
    pub deploys_per_day: f64,
    pub lead_time_median_seconds: Option<i64>,
    pub lead_time_p90_seconds: Option<i64>,
    pub change_failure_rate: Option<f64>,
    pub change_failures: usize,
    pub production_deploys: usize,
    pub stopped_before_production: usize,
    pub time_to_restore_median_seconds: Option<i64>,
    pub open_failures: usize,
}

#[derive(Debug, Serialize)]
pub struct DeployView {
    pub train: u64,
    pub sha: String,
    pub outcome: String,
    /// RFC 3339.
    pub finished: Option<String>,
    pub forced_by: Option<String>,
    pub rolled_back: bool,
    /// How its production verification ended ("verification red (1 of 2
    /// checks failed): rolled back automatically"), when it had one.
    pub verify: Option<String>,
}

fn secs(d: Option<TimeDelta>) -> Option<i64> {
    d.map(|d| d.num_seconds())
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            days: d.days,
            deploys: d.deploys,
            deploys_per_day: d.deploys_per_day,
            lead_time_median_seconds: secs(d.lead_time_median),
            lead_time_p90_seconds: secs(d.lead_time_p90),
            change_failure_rate: d.change_failure_rate,
            change_failures: d.change_failures,
            production_deploys: d.production_deploys,
            stopped_before_production: d.stopped_before_production,
            time_to_restore_median_seconds: secs(d.restore_median),
            open_failures: d.open_failures,
        }
    }
}

pub async fn api_status(State(s): State<WebState>) -> Result<Response, Error> {
    Ok(json_response(status_json(&s)?.to_string()))
}

pub fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `/api/status` as JSON text, made once per snapshot, minute and deploy
/// history: a radiator polling it costs a lock and a copy.
pub fn status_json(s: &WebState) -> Result<Arc<str>, Error> {
    let snapshot = s.snapshot();
    let key = (s.clock.now().timestamp() / 60, s.store.newest_deploy()?);
    snapshot.api_json.get_or(key, || {
        let status = status(s)?;
        serde_json::to_string(&status).map_err(|e| Error::BadRequest(e.to_string()))
    })
}

pub fn status(s: &WebState) -> Result<ApiStatus, Error> {
    let now = s.clock.now();
    let tz = s.settings.train.timezone;
    let recent_deploys = s
        .store
        .deploy_history(10)?
        .into_iter()
        .map(|t| DeployView {
            train: t.id.0,
            sha: t.sha.to_string(),
            outcome: t.outcome().map_or("running", |o| o.word()).to_string(),
            finished: t.finished.map(|f| f.with_timezone(&tz).to_rfc3339()),
            forced_by: t.forced_by.as_ref().map(|u| u.to_string()),
            rolled_back: t.rolled_back,
            verify: crate::domain::messages::verify_outcome(&t)
                .map(|v| crate::domain::ids::unmention(&v)),
        })
        .collect();
    Ok(ApiStatus {
        snapshot: s.snapshot().as_ref().clone(),
        delivery: delivery_now(s, now)?.into(),
        recent_deploys,
    })
}
