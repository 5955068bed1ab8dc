//! Departure times from a cron schedule in a time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::clock::Ts;

/// The first departure strictly after `now`.
pub fn next_departure(schedule: &cron::Schedule, tz: Tz, now: Ts) -> Option<Ts> {
    schedule
        .after(&now.with_timezone(&tz))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// The next `n` departures after `now`, in the schedule's zone.
pub fn departures(schedule: &cron::Schedule, tz: Tz, now: Ts, n: usize) -> Vec<DateTime<Tz>> {
    schedule.after(&now.with_timezone(&tz)).take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(s: &str) -> Ts {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn hourly_departures_are_on_the_hour() {
        let s = cron::Schedule::from_str("0 0 * * * *").unwrap();
        assert_eq!(
            next_departure(&s, Tz::UTC, at("2026-11-23T12:14:39Z")),
            Some(at("2026-11-23T13:00:00Z"))
        );
        assert_eq!(
            next_departure(&s, Tz::UTC, at("2026-11-23T13:00:00Z")),
            Some(at("2026-11-23T14:00:00Z"))
        );
    }

    #[test]
    fn office_hours_follow_the_zone() {
        let s = cron::Schedule::from_str("0 0 9-17 * * Mon-Fri").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Friday 17:30 in Berlin: next is Monday 09:00 Berlin (08:00 UTC in winter).
        let next = next_departure(&s, berlin, at("2026-11-27T16:30:00Z")).unwrap();
        assert_eq!(next, at("2026-11-30T08:00:00Z"));
        let five = departures(&s, berlin, at("2026-11-27T16:30:00Z"), 5);
        assert_eq!(five.len(), 5);
        assert_eq!(five[0].to_rfc3339(), "2026-11-30T09:00:00+01:00");
    }
}
