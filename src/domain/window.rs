//! Production deploy windows: `"Mon-Fri 09:00-17:00"`, `"Sat 10:00-12:00"`,
//! in the train's time zone (SPEC §11, rule *window*).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveTime, TimeDelta, TimeZone, Weekday};
use chrono_tz::Tz;

use super::clock::Ts;

/// One window: days of the week (Monday = 0) and a time range within a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    start: NaiveTime,
    /// `None`: until midnight (`24:00`).
    end: Option<NaiveTime>,
    text: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Result<usize, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| lower.len() >= 3 && d.starts_with(&lower[..3]) && is_day_name(&lower))
        .ok_or_else(|| format!("'{s}' is not a day (Mon, Tue, … Sun)"))
}

fn is_day_name(lower: &str) -> bool {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    FULL.iter().any(|f| f.starts_with(lower))
}

fn time(s: &str) -> Result<Option<NaiveTime>, String> {
    if s == "24:00" {
        return Ok(None);
    }
    NaiveTime::parse_from_str(s, "%H:%M")
        .map(Some)
        .map_err(|_| format!("'{s}' is not a time (HH:MM)"))
}

impl FromStr for Window {
    type Err = String;

    /// `"Mon-Fri 09:00-17:00"`: a day or a range of days (a range may wrap,
    /// `Fri-Mon`), then a time range that ends after it starts.
    fn from_str(text: &str) -> Result<Window, String> {
        let shape = || format!("'{text}' is not a window like \"Mon-Fri 09:00-17:00\"");
        let (days_part, times_part) = text.trim().split_once(' ').ok_or_else(shape)?;
        let (start, end) = times_part.trim().split_once('-').ok_or_else(shape)?;
        let start =
            time(start.trim())?.ok_or_else(|| "a window cannot start at 24:00".to_string())?;
        let end = time(end.trim())?;
        if end.is_some_and(|e| e <= start) {
            return Err(format!(
                "'{text}': the window must end after it starts (use 24:00 for midnight)"
            ));
        }
        let mut days = [false; 7];
        let (first, last) = match days_part.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => {
                let d = day(days_part)?;
                (d, d)
            }
        };
        let mut d = first;
        loop {
            days[d] = true;
            if d == last {
                break;
            }
            d = (d + 1) % 7;
        }
        Ok(Window {
            days,
            start,
            end,
            text: text.trim().to_string(),
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Every window of `[production] windows`; none means always open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    pub fn is_open(&self, now: Ts, tz: Tz) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let local = now.with_timezone(&tz);
        let wd = local.weekday().num_days_from_monday() as usize;
        let t = local.time();
        self.0
            .iter()
            .any(|w| w.days[wd] && t >= w.start && w.end.is_none_or(|e| t < e))
    }

    /// The next time a window opens after `now` (`now` itself when one is
    /// open), looking a week and a day ahead.
    pub fn next_opening(&self, now: Ts, tz: Tz) -> Option<Ts> {
        if self.is_open(now, tz) {
            return Some(now);
        }
        let local = now.with_timezone(&tz);
        let mut best: Option<Ts> = None;
        for offset in 0..=8 {
            let date = local.date_naive() + TimeDelta::days(offset);
            let wd = date.weekday().num_days_from_monday() as usize;
            for w in self.0.iter().filter(|w| w.days[wd]) {
                let Some(at) = tz.from_local_datetime(&date.and_time(w.start)).earliest() else {
                    continue; // the start falls in a DST gap that day
                };
                let at = at.to_utc();
                if at > now && best.is_none_or(|b| at < b) {
                    best = Some(at);
                }
            }
            if best.is_some() {
                break;
            }
        }
        best
    }
}

pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn at(s: &str) -> Ts {
        s.parse::<chrono::DateTime<Utc>>().unwrap()
    }

    fn windows(list: &[&str]) -> Windows {
        Windows(list.iter().map(|w| w.parse().unwrap()).collect())
    }

    #[test]
    fn office_hours_are_open_on_weekdays_only() {
        let w = windows(&["Mon-Fri 09:00-17:00"]);
        // 2026-11-30 is a Monday.
        assert!(w.is_open(at("2026-11-30T09:00:00Z"), Tz::UTC));
        assert!(w.is_open(at("2026-11-30T16:59:59Z"), Tz::UTC));
        assert!(!w.is_open(at("2026-11-30T17:00:00Z"), Tz::UTC));
        assert!(!w.is_open(at("2026-12-05T10:00:00Z"), Tz::UTC)); // Saturday
    }

    #[test]
    fn the_next_opening_skips_the_weekend() {
        let w = windows(&["Mon-Fri 09:00-17:00", "Sat 10:00-12:00"]);
        // Friday evening -> Saturday 10:00.
        assert_eq!(
            w.next_opening(at("2026-12-04T18:00:00Z"), Tz::UTC),
            Some(at("2026-12-05T10:00:00Z"))
        );
        // Saturday noon -> Monday 09:00.
        assert_eq!(
            w.next_opening(at("2026-12-05T12:00:00Z"), Tz::UTC),
            Some(at("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn windows_follow_the_time_zone() {
        let w = windows(&["Mon 09:00-10:00"]);
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert!(w.is_open(at("2026-11-30T08:30:00Z"), berlin));
        assert!(!w.is_open(at("2026-11-30T09:30:00Z"), berlin));
    }

    #[test]
    fn ranges_wrap_and_midnight_is_24_00() {
        let w = windows(&["Fri-Mon 20:00-24:00"]);
        assert!(w.is_open(at("2026-11-29T23:59:00Z"), Tz::UTC)); // Sunday
        assert!(!w.is_open(at("2026-12-01T21:00:00Z"), Tz::UTC)); // Tuesday
    }

    #[test]
    fn no_windows_is_always_open() {
        let w = Windows::default();
        assert!(w.is_open(at("2026-12-05T03:00:00Z"), Tz::UTC));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (text, says) in [
            ("Mon-Fri", "is not a window"),
            ("Funday 09:00-10:00", "is not a day"),
            ("Mon 9am-5pm", "is not a time"),
            ("Mon 17:00-09:00", "must end after it starts"),
        ] {
            let err = text.parse::<Window>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
