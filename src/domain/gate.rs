//! The gate: one pure function every road to an environment asks before it
//! moves (SPEC §11). It answers go, wait (and until when, where known) or
//! no, naming the rule. Roads never keep private checks of their own.

use std::fmt;

use chrono_tz::Tz;

use super::clock::Ts;
use super::ids::{ChatUser, Sha, TrainId};
use super::lock::{Lock, holding};
use super::window::Windows;

pub const PRODUCTION: &str = "production";

/// Every way code moves towards an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Road<'a> {
    /// The schedule departs a train.
    Clock,
    /// `!depart`.
    Depart,
    /// A running train (or tag or `!deploy` run) about to enter a lower
    /// environment.
    Enter { env: &'a str },
    /// An approved train about to enter production.
    Production,
    /// `!force` of a train, or of a SHA (`train: None`).
    Force { train: Option<TrainId> },
    /// `!rollback`, to the previous production SHA or a given one.
    Rollback { sha_given: bool },
    /// `!deploy <ref> to <env>`.
    Deploy { env: &'a str },
    /// A queued tag deploy about to leave.
    Tag { production: bool },
}

impl Road<'_> {
    /// Roads that change production, for the *who* rule.
    fn updates_live(&self) -> bool {
        matches!(self, Road::Force { .. } | Road::Rollback { .. })
            || matches!(self, Road::Deploy { env } if *env == PRODUCTION)
    }

    /// The environment whose lock holds this road.
    fn env(&self) -> Option<&str> {
        match self {
            Road::Enter { env } | Road::Deploy { env } => Some(env),
            Road::Production
            | Road::Force { .. }
            | Road::Rollback { .. }
            | Road::Tag { production: true } => Some(PRODUCTION),
            // A staging tag departs and waits at its first environment's door.
            Road::Clock | Road::Depart | Road::Tag { production: false } => None,
        }
    }

    /// Roads that must carry a SHA of the main branch.
    fn needs_main(&self) -> bool {
        matches!(
            self,
            Road::Tag { production: true }
                | Road::Force { train: None }
                | Road::Rollback { sha_given: true }
        ) || matches!(self, Road::Deploy { env } if *env == PRODUCTION)
    }

    /// Commands are answered at once; automatic roads wait and go later.
    fn is_command(&self) -> bool {
        matches!(
            self,
            Road::Depart | Road::Force { .. } | Road::Rollback { .. } | Road::Deploy { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Interrupted,
    RejectedHead,
    Freeze,
    Lock,
    Window,
    Who,
    OnMain,
    TagSource,
    TrainIdentity,
    VerifiedRevert,
    Verifying,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Interrupted => "interrupted",
            Rule::RejectedHead => "rejected head",
            Rule::Freeze => "freeze",
            Rule::Lock => "lock",
            Rule::Window => "window",
            Rule::Who => "who",
            Rule::OnMain => "on main",
            Rule::TagSource => "tag source",
            Rule::TrainIdentity => "train identity",
            Rule::VerifiedRevert => "verified revert",
            Rule::Verifying => "verifying",
        }
    }
}

/// Why a road waits or is refused: one line naming the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub rule: Rule,
    pub detail: String,
    /// When the hold ends by itself (a lock's end, a window's opening).
    pub until: Option<Ts>,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rule: {})", self.detail, self.rule.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `overrides`: a rule this road may pass that would hold others
    /// (`!force` outside the windows), to be recorded.
    Go {
        overrides: Option<Rule>,
    },
    Wait(Hold),
    No(Hold),
}

impl Verdict {
    pub const GO: Verdict = Verdict::Go { overrides: None };

    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Go { .. } => "go",
            Verdict::Wait(_) => "wait",
            Verdict::No(_) => "no",
        }
    }

    pub fn hold(&self) -> Option<&Hold> {
        match self {
            Verdict::Go { .. } => None,
            Verdict::Wait(h) | Verdict::No(h) => Some(h),
        }
    }
}

/// A freeze, as the gate needs it.
#[derive(Debug, Clone, Copy)]
pub struct Frozen<'a> {
    pub by: &'a ChatUser,
    pub reason: Option<&'a str>,
}

/// A head SHA whose last train turned it down.
#[derive(Debug, Clone, Copy)]
pub struct Rejected<'a> {
    pub sha: &'a Sha,
    pub train: TrainId,
    /// "vetoed", "failed", "expired", "cancelled", "rolled back".
    pub how: &'static str,
}

/// Everything the gate looks at, gathered by the engine beforehand.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub now: Ts,
    pub tz: Tz,
    pub prefix: &'a str,
    pub main_branch: &'a str,
    /// Who asks; None for the clock, trains and tags.
    pub actor: Option<&'a ChatUser>,
    /// `[roles] production`: when set, who may update live.
    pub production_role: Option<&'a [String]>,
    /// A train whose production state is unknown (§8).
    pub interrupted: Option<TrainId>,
    pub frozen: Option<Frozen<'a>>,
    pub locks: &'a [Lock],
    pub windows: &'a Windows,
    /// The clock's head, when its last train turned it down.
    pub rejected_head: Option<Rejected<'a>>,
    /// The road's SHA and whether it is in the main branch's history
    /// (None: not asked).
    pub on_main: Option<(&'a str, bool)>,
    /// A tag that can no longer be trusted (deleted, given up), and why.
    pub tag_problem: Option<&'a str>,
    /// A train verifying production (SPEC §15), and until when.
    pub verifying: Option<(TrainId, Ts)>,
}

impl<'a> Facts<'a> {
    /// Facts with nothing holding anything.
    #[cfg(test)]
    pub fn open(now: Ts, windows: &'a Windows, locks: &'a [Lock]) -> Facts<'a> {
        Facts {
            now,
            tz: Tz::UTC,
            prefix: "!",
            main_branch: "main",
            actor: None,
            production_role: None,
            interrupted: None,
            frozen: None,
            locks,
            windows,
            rejected_head: None,
            on_main: None,
            tag_problem: None,
            verifying: None,
        }
    }

    fn time(&self, t: Ts) -> String {
        t.with_timezone(&self.tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

fn hold(rule: Rule, detail: String, until: Option<Ts>) -> Hold {
    Hold {
        rule,
        detail,
        until,
    }
}

/// Rule *who*: with `[roles] production` set, only its users update live
/// (the production roads, and `!unlock production`).
pub fn who(actor: Option<&ChatUser>, production_role: Option<&[String]>) -> Option<Hold> {
    let allowed = production_role?;
    if actor.is_some_and(|a| allowed.iter().any(|u| u == a.as_str())) {
        return None;
    }
    let detail = format!(
        "only roles.production may update live: {}",
        if allowed.is_empty() {
            "nobody".to_string()
        } else {
            allowed.join(", ")
        }
    );
    Some(hold(Rule::Who, detail, None))
}

/// May `road` move now? The rules are asked in a fixed order; the first
/// that holds answers.
/// "train #N is verifying production until HH:MM" (rule *verifying*).
pub fn verifying_hold(train: TrainId, until: Ts, tz: Tz) -> Hold {
    let at = until.with_timezone(&tz).format("%H:%M %Z");
    let detail = format!("train {train} is verifying production until {at}");
    hold(Rule::Verifying, detail, Some(until))
}

pub fn gate(road: &Road, f: &Facts) -> Verdict {
    let p = f.prefix;
    let refuse_or_wait = |h: Hold| {
        if road.is_command() {
            Verdict::No(h)
        } else {
            Verdict::Wait(h)
        }
    };
    if road.updates_live()
        && let Some(h) = who(f.actor, f.production_role)
    {
        return Verdict::No(h);
    }
    if let Some(t) = f.interrupted {
        let exempt = match road {
            Road::Force { train: Some(x) } => *x == t,
            Road::Rollback { .. } | Road::Enter { .. } | Road::Production => true,
            _ => false,
        };
        if !exempt {
            let detail = format!(
                "train {t} was interrupted in production; {p}force {n} or {p}cancel {n} it (or {p}rollback) first",
                n = t.0
            );
            return refuse_or_wait(hold(Rule::Interrupted, detail, None));
        }
    }
    if let Some((t, until)) = f.verifying {
        // Ops can always roll back; that ends the verification.
        let holds = match road {
            Road::Rollback { .. } => false,
            Road::Clock | Road::Depart => true,
            _ => road.env() == Some(PRODUCTION),
        };
        if holds {
            return refuse_or_wait(verifying_hold(t, until, f.tz));
        }
    }
    if let Some(fr) = f.frozen
        && matches!(
            road,
            Road::Clock | Road::Depart | Road::Tag { .. } | Road::Deploy { .. }
        )
    {
        let why = fr.reason.map(|r| format!(" ({r})")).unwrap_or_default();
        let detail = format!(
            "departures are frozen by {}{why}; {p}unfreeze first",
            fr.by.mention()
        );
        return refuse_or_wait(hold(Rule::Freeze, detail, None));
    }
    if let (Road::Tag { .. }, Some(problem)) = (road, f.tag_problem) {
        return Verdict::No(hold(Rule::TagSource, problem.to_string(), None));
    }
    if road.needs_main()
        && let Some((sha, false)) = f.on_main
    {
        let detail = format!("{sha} is not on {}", f.main_branch);
        return Verdict::No(hold(Rule::OnMain, detail, None));
    }
    if let (Road::Clock, Some(r)) = (road, f.rejected_head) {
        let detail = format!(
            "{} was {} in train {}; the clock does not send it again (a newer SHA or {p}depart does)",
            r.sha.short(),
            r.how,
            r.train
        );
        return Verdict::No(hold(Rule::RejectedHead, detail, None));
    }
    if let Some(env) = road.env()
        && let Some(lock) = holding(f.locks, env, f.now)
    {
        let until = lock
            .until
            .map(|u| format!(" until {}", f.time(u)))
            .unwrap_or_default();
        let detail = format!(
            "{env} is locked by {} ({}){until}; {p}unlock {env} releases it",
            lock.by.mention(),
            lock.reason
        );
        let h = hold(Rule::Lock, detail, lock.until);
        // An approved train, a tag and a `!deploy` (production's too, SPEC
        // §11) wait at the door; `!force`/`!rollback` are refused.
        return match road {
            Road::Deploy { .. } => Verdict::Wait(h),
            _ => refuse_or_wait(h),
        };
    }
    if road.env() == Some(PRODUCTION) && !f.windows.is_open(f.now, f.tz) {
        if matches!(road, Road::Force { .. } | Road::Rollback { .. }) {
            return Verdict::Go {
                overrides: Some(Rule::Window),
            };
        }
        let next = f.windows.next_opening(f.now, f.tz);
        let detail = format!(
            "production is outside its deploy windows{}",
            next.map(|n| format!("; next opening {}", f.time(n)))
                .unwrap_or_default()
        );
        let detail = if road.is_command() {
            format!("{detail}; {p}force <sha> overrides a window")
        } else {
            detail
        };
        return refuse_or_wait(hold(Rule::Window, detail, next));
    }
    Verdict::GO
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
