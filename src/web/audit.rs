//! `GET /audit`: the audit log, newest first, a page at a time. Pages are
//! key ranges next to a cursor (`?before=K`, `?after=K`, `?oldest`), so the
//! oldest page costs what the newest does, however long the log.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::html::{Esc, page, time_tag};
use super::{Error, WebState};
use crate::store::AuditCursor;

pub const PAGE_SIZE: usize = 50;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Entries older than this key.
    before: Option<u64>,
    /// Entries newer than this key.
    after: Option<u64>,
    /// Present: the oldest entries.
    oldest: Option<String>,
}

impl AuditQuery {
    fn cursor(&self) -> Result<AuditCursor, Error> {
        match (self.before, self.after, &self.oldest) {
            (None, None, None) => Ok(AuditCursor::Newest),
            (Some(key), None, None) => Ok(AuditCursor::Before(key)),
            (None, Some(key), None) => Ok(AuditCursor::After(key)),
            (None, None, Some(_)) => Ok(AuditCursor::Oldest),
            _ => Err(Error::BadRequest(
                "use one of before, after and oldest".into(),
            )),
        }
    }
}

pub async fn audit_page(
    State(s): State<WebState>,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, Error> {
    let cursor = q.cursor()?;
    let audit = s.store.audit_page(cursor, PAGE_SIZE)?;
    let entries = &audit.entries;
    let tz = s.settings.train.timezone;
    let mut body = format!(
        "<section class=\"card\"><h2>Audit log</h2><p class=\"sub\">newest first · {PAGE_SIZE} a page</p>"
    );
    if entries.is_empty() && cursor == AuditCursor::Newest {
        body.push_str("<p class=\"sub\">nothing recorded yet</p>");
    } else if entries.is_empty() {
        body.push_str("<p class=\"sub\">nothing on this page</p>");
    } else {
        body.push_str(
            "<table class=\"audit\"><thead><tr><th>when</th><th>who</th><th>what</th>\
             <th>result</th></tr></thead><tbody>",
        );
        for (_, e) in entries {
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
    let base = Esc(&s.base);
    body.push_str("<nav class=\"pager\">");
    if audit.newer {
        let _ = write!(body, "<a href=\"{base}/audit\">newest</a>");
        if let Some((first, _)) = entries.first() {
            let _ = write!(
                body,
                "<a rel=\"prev\" href=\"{base}/audit?after={first}\">newer</a>"
            );
        }
    }
    if audit.older {
        if let Some((last, _)) = entries.last() {
            let _ = write!(
                body,
                "<a rel=\"next\" href=\"{base}/audit?before={last}\">older</a>"
            );
        }
        let _ = write!(body, "<a href=\"{base}/audit?oldest\">oldest</a>");
    }
    body.push_str("</nav></section>");
    let frame = s.frame("audit · trainbot", "audit-page", None);
    Ok(Html(page(&frame, "", &body)))
}
