//! `GET /audit?page=N`: the audit log, newest first, paged.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::html::{Esc, Frame, page, time_tag};
use super::{Error, WebState};

pub const PAGE_SIZE: usize = 50;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// 1-based.
    page: Option<usize>,
}

pub async fn audit_page(
    State(s): State<WebState>,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, Error> {
    let total = s.store.audit_len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let n = q.page.unwrap_or(1).max(1);
    if n > pages {
        return Err(Error::NotFound(format!("audit page {n}")));
    }
    let entries = s.store.audit_page((n - 1) * PAGE_SIZE, PAGE_SIZE)?;
    let tz = s.settings.train.timezone;
    let mut body = format!(
        "<section class=\"card\"><h2>Audit log</h2><p class=\"sub\">{total} entries · page {n} of {pages} · newest first</p>"
    );
    if entries.is_empty() {
        body.push_str("<p class=\"sub\">nothing recorded yet</p>");
    } else {
        body.push_str(
            "<table class=\"audit\"><thead><tr><th>when</th><th>who</th><th>what</th>\
             <th>result</th></tr></thead><tbody>",
        );
        for e in &entries {
            let cls = if e.result == "accepted" {
                "ok"
            } else {
                "refused"
            };
            let local =
                e.at.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string();
            let _ = write!(
                body,
                "<tr class=\"{cls}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                time_tag(e.at, &local),
                Esc(e.user.as_str()),
                Esc(&e.action),
                Esc(&e.result),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<nav class=\"pager\">");
    if n > 1 {
        let _ = write!(
            body,
            "<a rel=\"prev\" href=\"/audit?page={}\">newer</a>",
            n - 1
        );
    }
    if n < pages {
        let _ = write!(
            body,
            "<a rel=\"next\" href=\"/audit?page={}\">older</a>",
            n + 1
        );
    }
    body.push_str("</nav></section>");
    let frame = Frame {
        title: "audit · trainbot",
        class: "audit-page",
        refresh: None,
    };
    Ok(Html(page(&frame, "", &body)))
}
