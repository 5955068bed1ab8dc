//! Progress of a long step: the status message shows the minutes it has
//! run, updated once a minute, and every few minutes the chat hears that it
//! is still running. Pure: the engine asks when to look next.

use chrono::TimeDelta;

use super::clock::Ts;

/// Below this a step is not "long" and nothing extra is said.
const MINUTE: TimeDelta = TimeDelta::minutes(1);
/// A "still running" notice every this many minutes.
pub const NOTICE_EVERY_MINUTES: i64 = 5;

/// Whole minutes a step started at `started` has run by `now`.
pub fn minutes(started: Ts, now: Ts) -> i64 {
    (now - started).num_minutes().max(0)
}

/// When the next whole minute of the step's run is reached.
pub fn next_tick(started: Ts, now: Ts) -> Ts {
    started + MINUTE * (minutes(started, now) as i32 + 1)
}

/// Whether `now` is a minute at which a "still running" notice is due.
pub fn notice_due(started: Ts, now: Ts) -> Option<i64> {
    let m = minutes(started, now);
    (m > 0 && m % NOTICE_EVERY_MINUTES == 0).then_some(m)
}

/// " · 4m" for a step running four minutes; nothing under a minute.
pub fn suffix(started: Ts, now: Ts) -> String {
    match minutes(started, now) {
        0 => String::new(),
        m => format!(" · {}", super::clock::human(TimeDelta::minutes(m))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_trains::at;

    #[test]
    fn ticks_fall_on_whole_minutes_of_the_run() {
        let start = at(10);
        assert_eq!(next_tick(start, start), at(11));
        assert_eq!(next_tick(start, at(11)), at(12));
        assert_eq!(next_tick(start, at(11) + TimeDelta::seconds(59)), at(12));
        assert_eq!(minutes(start, at(9)), 0, "a clock that went back");
    }

    #[test]
    fn notices_come_every_five_minutes() {
        let start = at(0);
        let due: Vec<i64> = (0..=16).filter_map(|m| notice_due(start, at(m))).collect();
        assert_eq!(due, [5, 10, 15]);
    }

    #[test]
    fn the_suffix_shows_whole_minutes() {
        let start = at(0);
        assert_eq!(suffix(start, start + TimeDelta::seconds(59)), "");
        assert_eq!(suffix(start, at(4) + TimeDelta::seconds(30)), " · 4m");
        assert_eq!(suffix(start, at(75)), " · 1h 15m");
    }
}
