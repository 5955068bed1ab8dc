//! Durations as people write them in the config: `"90s"`, `"30m"`, `"1h30m"`.

use std::time::Duration;

use chrono::TimeDelta;

/// The longest duration the config takes. Anything longer is a typo, and
/// bounding it keeps every `now + duration` far inside chrono's range.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);
/// `MAX_DURATION` as the config writes it, for messages.
pub const MAX_DURATION_TEXT: &str = "30d";

/// Parses one or more `<number><unit>` parts (units `ms`, `s`, `m`, `h`,
/// `d`). Zero is refused: every duration in the config is a timeout or an
/// interval, and zero would mean "never wait" or a busy loop. Huge values
/// saturate rather than fail, so they are refused as too long, not as
/// nonsense.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        // Only digits: parsing fails only on overflow.
        let number: u64 = rest[..digits].parse().unwrap_or(u64::MAX);
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            _ => return None,
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    (!total.is_zero()).then_some(total)
}

/// A duration as chrono's `TimeDelta`, at most `MAX_DURATION`: the config
/// refuses longer ones, and the cap keeps `now + delta` from overflowing
/// even if one slipped through.
pub fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d.min(MAX_DURATION)).unwrap_or(TimeDelta::days(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn refuses_zero_and_nonsense() {
        for bad in [
            "",
            "0s",
            "30",
            "m",
            "30 minutes",
            "1.5h",
            "-1s",
            "1h 30m",
            "30M",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_values_saturate_and_convert_within_bounds() {
        let huge = parse_duration("100000000000000000000000d").unwrap();
        assert!(huge > MAX_DURATION);
        assert_eq!(
            parse_duration("100000000d").unwrap().as_secs(),
            8_640_000_000_000
        );
        assert_eq!(to_delta(huge), TimeDelta::days(30));
        assert_eq!(to_delta(Duration::from_secs(90)), TimeDelta::seconds(90));
    }
}
