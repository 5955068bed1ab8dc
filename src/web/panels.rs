//! The radiator's panels besides the current train: delivery metrics,
//! acceptance health, recent production deploys, branch nodes.

use std::fmt::Write;

use chrono::TimeDelta;

use super::dashboard::{deploy_took, kind_label, train_cell};
use super::html::{Esc, ago, dur};
use super::{Error, WebState};
use crate::domain::clock::Ts;
use crate::domain::metrics::{Delivery, delivery, env_health};
use crate::domain::train::Train;

/// Window of the delivery metrics.
pub const METRICS_DAYS: i64 = 30;
/// Trains shown per environment in the health panel.
const HEALTH_TRAINS: usize = 20;
/// Production deploys listed.
const DEPLOYS_SHOWN: usize = 10;

/// The delivery metrics over the last `METRICS_DAYS` days.
pub fn delivery_now(s: &WebState, now: Ts) -> Result<Delivery, Error> {
    // Computed once per minute and per change of the newest train (the one
    // a train's end changes), not per request: the window can hold many
    // trains.
    let last = s.store.last_train()?;
    let key = format!(
        "{:?}/{}",
        last.as_ref()
            .map(|t| (t.id.0, t.outcome().map(|o| o.word()), t.rolled_back)),
        now.timestamp() / 60
    );
    if let Some(d) = s.metrics.cached_delivery(&key) {
        return Ok(d);
    }
    let d = compute_delivery(s, now)?;
    s.metrics.cache_delivery(key, d.clone());
    Ok(d)
}

fn compute_delivery(s: &WebState, now: Ts) -> Result<Delivery, Error> {
    let from = now - TimeDelta::days(METRICS_DAYS);
    // A train may depart before the window and end inside it.
    let trains = s.store.trains_since(from - TimeDelta::days(2))?;
    let store = &s.store;
    Ok(delivery(
        &trains,
        |sha| store.allocation(sha).ok().flatten().map(|a| a.at),
        from,
        now,
    ))
}

fn tile(label: &str, value: &str, sub: &str, class: &str) -> String {
    format!(
        "<div class=\"tile {class}\"><div class=\"tile-label\">{}</div>\
         <div class=\"tile-value\">{}</div><div class=\"tile-sub\">{}</div></div>",
        Esc(label),
        Esc(value),
        Esc(sub)
    )
}

fn per_day(x: f64) -> String {
    if x > 0.0 && x < 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn opt_dur(d: Option<TimeDelta>) -> String {
    d.map(dur).unwrap_or_else(|| "—".into())
}

pub fn metrics_card(s: &WebState, now: Ts) -> Result<String, Error> {
    let d = delivery_now(s, now)?;
    let mut out = format!(
        "<section class=\"card metrics-card\" id=\"metrics\"><h2>Delivery · last {METRICS_DAYS} days</h2><div class=\"tiles\">"
    );
    out.push_str(&tile(
        "Deploys per day",
        &per_day(d.deploys_per_day),
        &plural(d.deploys, "deploy"),
        "",
    ));
    out.push_str(&tile(
        "Lead time",
        &opt_dur(d.lead_time_median),
        &format!(
            "median · p90 {} · {}",
            opt_dur(d.lead_time_p90),
            plural(d.commits, "commit")
        ),
        "",
    ));
    let (rate, rate_class) = match d.change_failure_rate {
        Some(r) => (
            format!("{:.0}%", r * 100.0),
            if r > 0.3 {
                "bad"
            } else if r > 0.15 {
                "warn"
            } else {
                "good"
            },
        ),
        None => ("—".into(), ""),
    };
    out.push_str(&tile(
        "Change failure rate",
        &rate,
        &format!(
            "{} of {} · {} stopped before production",
            d.change_failures, d.production_deploys, d.stopped_before_production
        ),
        rate_class,
    ));
    let open = if d.open_failures > 0 {
        format!(" · {} open", d.open_failures)
    } else {
        String::new()
    };
    out.push_str(&tile(
        "Time to restore",
        &opt_dur(d.restore_median),
        &format!("median · {} restored{open}", d.restores),
        if d.open_failures > 0 { "bad" } else { "" },
    ));
    out.push_str("</div></section>");
    Ok(out)
}

/// Per lower environment, the last trains as coloured cells, oldest left.
pub fn health_card(s: &WebState) -> Result<String, Error> {
    let plan = s.plan();
    let mut trains = s.store.recent_trains(HEALTH_TRAINS)?;
    trains.reverse();
    let mut out = format!(
        "<section class=\"card health-card\" id=\"health\"><h2>Acceptance · last {HEALTH_TRAINS} trains</h2>"
    );
    if plan.envs.is_empty() {
        out.push_str("<p class=\"sub\">no lower environments configured</p>");
    }
    out.push_str("<table class=\"health\">");
    for (i, env) in plan.envs.iter().enumerate() {
        let results: Vec<_> = trains.iter().map(|t| (t.id.0, env_health(t, i))).collect();
        let passed = results.iter().filter(|(_, h)| h.word() == "passed").count();
        let ran = results
            .iter()
            .filter(|(_, h)| h.word() != "not run")
            .count();
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"cells\">",
            Esc(&env.name)
        );
        for (id, h) in &results {
            let word = h.word();
            let _ = write!(
                out,
                "<a class=\"cell {cls}\" href=\"{base}/runs/train-{id}\" title=\"#{id} {env}: {word}\">\
                 <span class=\"cell-label\">#{id} {word}</span></a>",
                cls = word.replace(' ', "-"),
                base = Esc(&s.base),
                env = Esc(&env.name),
            );
        }
        let _ = write!(out, "</td><td class=\"ratio\">{passed}/{ran}</td></tr>");
    }
    out.push_str("</table></section>");
    Ok(out)
}

fn approvers(t: &Train) -> String {
    if let Some(by) = &t.forced_by {
        return format!("forced by {by}");
    }
    let names: Vec<String> = t.approvals.iter().map(|a| a.user.to_string()).collect();
    if names.is_empty() {
        kind_label(&t.kind)
    } else {
        names.join(", ")
    }
}

pub fn deploys_card(s: &WebState, now: Ts) -> Result<String, Error> {
    let deploys = s.store.deploy_history(DEPLOYS_SHOWN)?;
    let mut out = String::from(
        "<section class=\"card deploys-card\" id=\"deploys\"><h2>Production deploys</h2>",
    );
    if deploys.is_empty() {
        out.push_str("<p class=\"sub\">no production deploys yet</p></section>");
        return Ok(out);
    }
    out.push_str(
        "<table class=\"deploys\"><thead><tr><th>train</th><th>sha</th><th>authors</th>\
         <th>approved</th><th>when</th><th>took</th><th></th></tr></thead><tbody>",
    );
    for t in &deploys {
        let authors: Vec<&str> = t.authors.iter().map(|a| a.name.as_str()).collect();
        let auto = matches!(
            t.verify.as_ref().and_then(|v| v.result.as_ref()),
            Some(crate::domain::train::VerifyResult::Red {
                auto_rollback: true
            })
        );
        let badge = if t.rolled_back && auto {
            "<span class=\"badge bad\">rolled back automatically</span>"
        } else if t.rolled_back {
            "<span class=\"badge bad\">rolled back</span>"
        } else if let Some(o) = t.outcome().filter(|o| o.word() != "deployed") {
            &format!("<span class=\"badge bad\">{}</span>", o.word())
        } else if t.forced_by.is_some() {
            "<span class=\"badge warn\">forced</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code class=\"sha\">{}</code></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{badge}</td></tr>",
            train_cell(&s.base, t),
            Esc(t.sha.short()),
            Esc(&authors.join(", ")),
            Esc(&approvers(t)),
            t.finished.map(|f| ago(f, now)).unwrap_or_default(),
            deploy_took(t).map(dur).unwrap_or_default(),
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

/// Branch nodes as the store knows them: branch, SHA, age, busy or idle.
pub fn nodes_card(s: &WebState) -> String {
    let names = &s.settings.branch_builds.nodes;
    let mut out =
        String::from("<section class=\"card nodes-card\" id=\"nodes\"><h2>Branch nodes</h2>");
    if names.is_empty() {
        out.push_str("<p class=\"sub\">no branch nodes configured</p></section>");
        return out;
    }
    let nodes = s.store.nodes(names).unwrap_or_default();
    let now = s.clock.now();
    out.push_str("<ul class=\"nodes\">");
    for node in &nodes {
        let url = s
            .settings
            .branch_builds
            .node_url
            .replace("{node}", &node.name);
        let state = if node.is_busy() { "busy" } else { "idle" };
        let detail = match (&node.branch, &node.sha, node.deployed_at) {
            (Some(b), Some(sha), Some(at)) => format!(
                "{b} {} · deployed {}",
                sha.short(),
                crate::domain::messages::ago(at, now)
            ),
            (Some(b), _, _) => format!("{b} · not deployed yet"),
            _ => "free".to_string(),
        };
        // A shared pool's node held by another pipeline: its build is
        // that pipeline's (build ids are per pipeline), not linked here.
        let other = node
            .held_by_other(&s.name)
            .filter(|_| node.branch.is_some());
        let detail = match other {
            Some(p) => format!("held by pipeline {p}: {detail}"),
            None => detail,
        };
        let build = node
            .busy_with
            .filter(|_| other.is_none())
            .map(|id| {
                format!(
                    " <a href=\"{}/runs/build-{id}\">build {id}</a>",
                    Esc(&s.base)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "<li class=\"node {state}\"><span class=\"node-name\">{}</span>\
             <span class=\"node-state\">{state}</span><span class=\"node-detail\">{}{build}</span>\
             <span class=\"node-url\">{}</span></li>",
            Esc(&node.name),
            Esc(&detail),
            Esc(&url)
        );
    }
    out.push_str("</ul></section>");
    out
}
