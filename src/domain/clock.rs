//! Time is injected: the domain takes `now` as an argument, the engine asks a
//! `Clock`, tests use `FakeClock`.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

pub type Ts = DateTime<Utc>;

pub trait Clock: Send + Sync {
    fn now(&self) -> Ts;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Ts {
        Utc::now()
    }
}

/// A clock that moves only when told to.
pub struct FakeClock(Mutex<Ts>);

impl FakeClock {
    pub fn new(start: Ts) -> Self {
        FakeClock(Mutex::new(start))
    }
    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Ts {
        *self.0.lock().unwrap()
    }
}

/// "1h 5m", "42s", "850ms": short human durations for chat.
pub fn human(d: TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 if s % 60 == 0 => format!("{}m", s / 60),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_are_short() {
        assert_eq!(human(TimeDelta::milliseconds(850)), "850ms");
        assert_eq!(human(TimeDelta::seconds(42)), "42s");
        assert_eq!(human(TimeDelta::seconds(125)), "2m 5s");
        assert_eq!(human(TimeDelta::seconds(1800)), "30m");
        assert_eq!(human(TimeDelta::seconds(3900)), "1h 5m");
        assert_eq!(human(TimeDelta::seconds(7200)), "2h");
    }

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(DateTime::UNIX_EPOCH);
        assert_eq!(c.now(), DateTime::UNIX_EPOCH);
        c.advance(TimeDelta::seconds(5));
        assert_eq!(c.now(), DateTime::UNIX_EPOCH + TimeDelta::seconds(5));
    }
}
