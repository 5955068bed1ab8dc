//! When the next trains leave, for `trainbot check` and `!status`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::settings::Settings;

/// The next `n` departures strictly after `after`, in the configured zone.
/// `after` is passed in rather than read from the clock so callers and tests
/// decide what "now" is.
pub fn next_departures(settings: &Settings, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
    let train = &settings.train;
    train
        .schedule
        .after(&after.with_timezone(&train.timezone))
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn departures_in_the_configured_zone() {
        let text = "[train]\nenvironments = []\nschedule = \"0 30 9 * * Mon-Fri\"\ntimezone = \"Europe/Berlin\"\n";
        let settings = Settings::parse(text, Path::new("/x/bot.toml")).unwrap();
        // Friday 2026-03-27 10:00 UTC: 09:30 Berlin has passed, next is Monday.
        let after = Utc.with_ymd_and_hms(2026, 3, 27, 10, 0, 0).unwrap();
        let next: Vec<String> = next_departures(&settings, after, 2)
            .iter()
            .map(|d| d.to_rfc3339())
            .collect();
        assert_eq!(
            next,
            ["2026-03-30T09:30:00+02:00", "2026-03-31T09:30:00+02:00"]
        );
    }

    #[test]
    fn hourly_default_is_strictly_after() {
        let settings =
            Settings::parse("[train]\nenvironments = []\n", Path::new("/x/bot.toml")).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let next = next_departures(&settings, after, 5);
        assert_eq!(next.len(), 5);
        assert_eq!(next[0].to_rfc3339(), "2026-01-01T13:00:00+00:00");
    }
}
