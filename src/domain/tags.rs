//! Tag deploys the forge fails (SPEC §11 "tag source"): when to try again and
//! when to give up, and what chat hears. Pure: times come in as arguments.
//! Chat hears a failing tag twice at most, at the first failure and when it
//! is given up, never once per retry.

use chrono::TimeDelta;

use super::clock::{Ts, human};
use super::ids::{ChatUser, Sha};

/// The longest wait between two tries: a forge that is down for hours is
/// still asked every ten minutes.
pub const MAX_BACKOFF: TimeDelta = TimeDelta::minutes(10);

/// What to do after the forge failed a tag deploy for the `attempts`th time
/// (1 = the first failure), the first failure having been at `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(Ts),
    /// `give_up_after` has passed since the first failure: drop the tag.
    GiveUp,
}

/// The first wait: a minute, or a quarter of the limit when that is
/// shorter, so a short limit still gets several tries.
fn first_backoff(give_up_after: TimeDelta) -> TimeDelta {
    (give_up_after / 4).clamp(TimeDelta::milliseconds(1), TimeDelta::minutes(1))
}

/// Doubling waits (1m, 2m, 4m, … capped at [`MAX_BACKOFF`]) from the first
/// failure, the last try falling on the limit itself.
pub fn retry(give_up_after: TimeDelta, since: Ts, attempts: u32, now: Ts) -> Retry {
    let deadline = since + give_up_after;
    if now >= deadline {
        return Retry::GiveUp;
    }
    let doublings = attempts.saturating_sub(1).min(16);
    let wait = (first_backoff(give_up_after) * 2i32.pow(doublings)).min(MAX_BACKOFF);
    Retry::At((now + wait).min(deadline))
}

/// The first failure of a tag deploy: said once, with the limit.
pub fn tag_failing(name: &str, sha: &Sha, error: &str, give_up_after: TimeDelta) -> String {
    format!(
        "🏷 tag {name} ({}) cannot leave yet: {error}; trying again with backoff for up to {}",
        sha.short(),
        human(give_up_after)
    )
}

/// The tag deploy failed until its limit and is dropped.
pub fn tag_given_up(name: &str, sha: &Sha, error: &str, give_up_after: TimeDelta) -> String {
    format!(
        "🏷 tag {name} ({}) dropped: the forge failed it for {} ({error})",
        sha.short(),
        human(give_up_after)
    )
}

/// The tag was deleted while it waited.
pub fn tag_deleted(name: &str, sha: &Sha) -> String {
    format!(
        "tag {name} ({}) was deleted while it waited; its deploy is dropped",
        sha.short()
    )
}

/// The tag was moved while it waited: the deploy takes the new commit.
pub fn tag_moved(name: &str, from: &Sha, to: &Sha) -> String {
    format!(
        "🏷 tag {name} moved from {} to {} while it waited; deploying {}",
        from.short(),
        to.short(),
        to.short()
    )
}

/// `!cancel <tag>` dropped a waiting tag deploy.
pub fn tag_cancelled(name: &str, sha: &Sha, by: &ChatUser) -> String {
    format!(
        "🏷 tag {name} ({}) dropped by {}; it will not deploy",
        sha.short(),
        by.mention()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Ts {
        chrono::DateTime::UNIX_EPOCH + TimeDelta::minutes(minutes)
    }

    #[test]
    fn waits_double_up_to_ten_minutes_and_the_last_try_is_at_the_limit() {
        let hour = TimeDelta::hours(1);
        let mut now = at(0);
        let mut tries = vec![];
        for attempts in 1.. {
            match retry(hour, at(0), attempts, now) {
                Retry::At(next) => {
                    tries.push((next - at(0)).num_minutes());
                    now = next;
                }
                Retry::GiveUp => break,
            }
        }
        assert_eq!(tries, [1, 3, 7, 15, 25, 35, 45, 55, 60]);
    }

    #[test]
    fn a_short_limit_starts_with_a_quarter_of_it() {
        let limit = TimeDelta::seconds(4);
        let t0 = at(0);
        assert_eq!(
            retry(limit, t0, 1, t0),
            Retry::At(t0 + TimeDelta::seconds(1))
        );
        assert_eq!(
            retry(limit, t0, 2, t0 + TimeDelta::seconds(1)),
            Retry::At(t0 + TimeDelta::seconds(3))
        );
        assert_eq!(
            retry(limit, t0, 3, t0 + TimeDelta::seconds(3)),
            Retry::At(t0 + limit)
        );
        assert_eq!(retry(limit, t0, 4, t0 + limit), Retry::GiveUp);
    }

    #[test]
    fn texts_name_the_tag_and_the_limit() {
        let a = Sha::new(&"a".repeat(40)).unwrap();
        let b = Sha::new(&"b".repeat(40)).unwrap();
        let hour = TimeDelta::hours(1);
        assert_eq!(
            tag_failing("v1", &a, "forge down", hour),
            "🏷 tag v1 (aaaaaaa) cannot leave yet: forge down; trying again with backoff for up to 1h"
        );
        assert_eq!(
            tag_given_up("v1", &a, "forge down", hour),
            "🏷 tag v1 (aaaaaaa) dropped: the forge failed it for 1h (forge down)"
        );
        assert_eq!(
            tag_moved("v1", &a, &b),
            "🏷 tag v1 moved from aaaaaaa to bbbbbbb while it waited; deploying bbbbbbb"
        );
    }
}
