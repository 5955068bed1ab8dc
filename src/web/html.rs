//! HTML building blocks: escaping, the page frame, small formatters.
//! Everything that did not come from us goes through `Esc`.

use std::fmt::{self, Write};

use chrono::TimeDelta;
use chrono_tz::Tz;

use crate::domain::clock::{Ts, human};

/// Displays a string HTML-escaped (text and attribute values alike).
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

#[cfg(test)]
pub fn esc(s: &str) -> String {
    Esc(s).to_string()
}

/// What a page needs besides its body.
pub struct Frame<'a> {
    pub title: &'a str,
    /// `<main>` class, for page-specific layout.
    pub class: &'a str,
    /// Seconds between live refreshes of `<main>`; None: static.
    pub refresh: Option<u32>,
    /// Where this pipeline's pages live ("" alone, "/p/NAME" among several);
    /// None: the overview of several, which has no audit of its own.
    pub base: Option<&'a str>,
}

/// The whole document: no inline script or style (the CSP forbids them).
pub fn page(frame: &Frame, header_right: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let refresh = frame
        .refresh
        .map(|s| format!(" data-refresh=\"{s}\""))
        .unwrap_or_default();
    let nav = match frame.base {
        Some("") => "<a href=\"/\">radiator</a><a href=\"/audit\">audit</a>\
             <a href=\"/api/status\">api</a><a href=\"/metrics\">metrics</a>"
            .to_string(),
        Some(base) => format!(
            "<a href=\"/\">pipelines</a><a href=\"{b}/\">radiator</a><a href=\"{b}/audit\">audit</a>\
             <a href=\"{b}/api/status\">api</a><a href=\"{b}/metrics\">metrics</a>",
            b = Esc(base)
        ),
        None => "<a href=\"/\">pipelines</a><a href=\"/api/status\">api</a>\
             <a href=\"/metrics\">metrics</a>"
            .to_string(),
    };
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"{home}/\">trainbot</a>\
         <nav>{nav}</nav>\
         <div class=\"top-right\">{header_right}</div></header>\
         <main class=\"{class}\"{refresh}>{body}</main></body></html>\n",
        title = Esc(frame.title),
        home = Esc(frame.base.unwrap_or("")),
        class = Esc(frame.class),
    );
    out
}

/// "2m 5s"; nothing for negative spans.
pub fn dur(d: TimeDelta) -> String {
    human(d.max(TimeDelta::zero()))
}

pub fn ago(then: Ts, now: Ts) -> String {
    format!("{} ago", dur(now - then))
}

/// "in 12m", "in 3 days".
pub fn until(at: Ts, now: Ts) -> String {
    let d = at - now;
    if d > TimeDelta::days(2) {
        format!("in {} days", d.num_days())
    } else {
        format!("in {}", dur(d))
    }
}

/// "14:05" today, "Mon 3 Mar 14:05" otherwise, in the configured zone.
pub fn when(t: Ts, now: Ts, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    if local.date_naive() == today {
        local.format("%H:%M").to_string()
    } else if (local.date_naive() - today).num_days().abs() > 300 {
        local.format("%-d %b %Y %H:%M").to_string()
    } else {
        local.format("%a %-d %b %H:%M").to_string()
    }
}

/// `<time>` with the full instant as its machine-readable value.
pub fn time_tag(t: Ts, text: &str) -> String {
    format!("<time datetime=\"{}\">{}</time>", t.to_rfc3339(), Esc(text))
}

pub fn run_link(base: &str, id: u64) -> String {
    format!(
        "<a class=\"train-link\" href=\"{}/runs/train-{id}\">#{id}</a>",
        Esc(base)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("ünïcödé ok"), "ünïcödé ok");
    }
}
