//! Every user-facing text, platform-neutral. Short, scannable, one fact per
//! line; details go in following lines.

use chrono::{DateTime, TimeDelta};
use chrono_tz::Tz;

use super::clock::{Ts, human};
use super::ids::{ChatUser, Sha, TrainId};
use super::train::{
    Kind, Outcome, Plan, Route, Stage, StepPos, Target, Train, pos_label, target_name,
};

/// What the texts need besides the facts.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub prefix: &'a str,
    pub public_url: &'a str,
    pub tz: Tz,
    /// Console users approve by typing `@name !good`.
    pub console: bool,
}

impl Ctx<'_> {
    pub fn run_url(&self, train: TrainId) -> String {
        format!(
            "{}/runs/train-{}",
            self.public_url.trim_end_matches('/'),
            train.0
        )
    }

    pub fn time(&self, t: Ts) -> String {
        t.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

pub fn stage_label(plan: &Plan, stage: &Stage) -> String {
    match stage {
        Stage::Running(pos) => pos_label(plan, *pos),
        Stage::Waiting { target, .. } => format!("waiting before {}", target_name(plan, *target)),
        Stage::AwaitingApproval { .. } => "awaiting approval".into(),
        Stage::Verifying { .. } => "verifying production".into(),
        Stage::Done(o) => o.word().into(),
    }
}

/// A short stage name for the API: "staging", "approval", "production", "deployed"…
pub fn stage_key(plan: &Plan, stage: &Stage) -> String {
    match stage {
        Stage::Running(pos) => target_name(plan, pos.target).to_string(),
        Stage::Waiting { target, .. } => target_name(plan, *target).to_string(),
        Stage::AwaitingApproval { .. } => "approval".into(),
        Stage::Verifying { .. } => "verifying".into(),
        Stage::Done(o) => o.word().into(),
    }
}

/// A train's one-line status, for a message updated in place as it moves.
pub fn status_line(ctx: &Ctx, t: &Train, now: Ts) -> String {
    match &t.stage {
        Stage::Running(pos) => format!(
            "🚂 train {} ({}): {}{}",
            t.id,
            t.sha.short(),
            pos_label(ctx.plan, *pos),
            t.running_step()
                .map(|(_, started)| super::progress::suffix(started, now))
                .unwrap_or_default()
        ),
        Stage::Waiting { target, .. } => format!(
            "⏸ train {} ({}): waiting before {}",
            t.id,
            t.sha.short(),
            target_name(ctx.plan, *target)
        ),
        Stage::AwaitingApproval { .. } => format!(
            "🙋 train {} ({}): awaiting approval, {}/{} approved",
            t.id,
            t.sha.short(),
            t.approvals.len(),
            t.approvers().len()
        ),
        Stage::Verifying { .. } => format!(
            "🔎 train {} ({}): verifying production: {}",
            t.id,
            t.sha.short(),
            t.verify
                .as_ref()
                .map(|v| verify_progress(v, now))
                .unwrap_or_default()
        ),
        Stage::Done(_) => ended(ctx, t, now),
    }
}

/// "check 2/10 green, 8m left": how a verification stands.
pub fn verify_progress(v: &super::train::Verification, now: Ts) -> String {
    let left = human((v.until - now).max(chrono::TimeDelta::zero()));
    let check = match (v.running, v.last) {
        (Some(_), _) => format!("check {}/{} running", v.checks + 1, v.total),
        (None, Some((_, ok))) => format!(
            "check {}/{} {}",
            v.checks,
            v.total,
            if ok { "green" } else { "red" }
        ),
        (None, None) => format!("first check of {} due", v.total),
    };
    let failed = if v.failures > 0 {
        format!(", {} failed", v.failures)
    } else {
        String::new()
    };
    format!("{check}{failed}, {left} left")
}

/// How a train's verification ended, for its end notice and `!history`.
pub fn verify_outcome(t: &Train) -> Option<String> {
    use super::train::VerifyResult;
    let v = t.verify.as_ref()?;
    Some(match v.result.as_ref()? {
        VerifyResult::Green => format!("verified: {} checks green", v.checks),
        VerifyResult::Red {
            auto_rollback: true,
        } => format!(
            "verification red ({} of {} checks failed): rolled back automatically",
            v.failures, v.checks
        ),
        VerifyResult::Red {
            auto_rollback: false,
        } => format!(
            "verification red ({} of {} checks failed); auto_rollback is off",
            v.failures, v.checks
        ),
        VerifyResult::Stopped { by } => format!("verification stopped by {}", by.mention()),
    })
}

/// Production verification began.
pub fn verifying(ctx: &Ctx, t: &Train) -> String {
    let Some(v) = &t.verify else {
        return String::new();
    };
    format!(
        "🔎 train {} verifies production ({}): {} checks until {}",
        t.id,
        t.sha.short(),
        v.total,
        ctx.time(v.until)
    )
}

pub fn departure_message(ctx: &Ctx, t: &Train) -> String {
    let what = match &t.kind {
        Kind::Scheduled => "departs".to_string(),
        Kind::Departed { by } => format!("departs (sent by {})", by.mention()),
        Kind::ForcedSha { by } => {
            format!("goes straight to production (forced by {})", by.mention())
        }
        Kind::Rollback { by } => format!("rolls production back (by {})", by.mention()),
        Kind::Tag { name, pushed_by } => match t.route {
            Route::LowerOnly => {
                format!("deploys tag {name} to the lower environments (pushed by {pushed_by})")
            }
            _ => format!("deploys tag {name} to production (pushed by {pushed_by})"),
        },
        Kind::Deploy { by, git_ref, env } => {
            format!("deploys {git_ref} to {env} (by {})", by.mention())
        }
    };
    let n = t.commits.len();
    let mut out = format!(
        "🚂 train {} {what} with {} ({n} commit{}) — {}",
        t.id,
        t.sha.short(),
        if n == 1 { "" } else { "s" },
        ctx.run_url(t.id)
    );
    const SHOWN: usize = 15;
    for c in t.commits.iter().rev().take(SHOWN) {
        let who = t
            .authors
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(&c.author_email))
            .map(|a| mention(a.chat.as_ref(), &a.name, ctx.console))
            .unwrap_or_else(|| c.author_name.clone());
        let reverted = if t.reverted.contains(&c.sha) {
            " (reverted)"
        } else {
            ""
        };
        out.push_str(&format!(
            "\n{} {}{reverted} — {who}",
            c.sha.short(),
            one_line(&c.subject, 72)
        ));
    }
    if n > SHOWN {
        out.push_str(&format!("\n… and {} older commits", n - SHOWN));
    }
    out
}

fn mention(chat: Option<&ChatUser>, name: &str, console: bool) -> String {
    match chat {
        Some(u) if console => format!("{name} (@{u})"),
        Some(u) => format!("<@{u}>"),
        None => name.to_string(),
    }
}

/// A chat user as a mention: `@name` on the console, `<@U…>` on Slack.
pub fn mention_user(u: &ChatUser, console: bool) -> String {
    if console {
        format!("@{u}")
    } else {
        format!("<@{u}>")
    }
}

fn mentions(users: &[ChatUser], console: bool) -> String {
    users
        .iter()
        .map(|u| mention_user(u, console))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reminder to one approver who has not answered (SPEC §14); the chat
/// addresses it to them.
pub fn reminder(ctx: &Ctx, t: &Train, to: &ChatUser, left: TimeDelta) -> String {
    let how = if ctx.console {
        format!(
            "type `@{to} {p}good` or `@{to} {p}bad <reason>`",
            p = ctx.prefix
        )
    } else {
        format!(
            "click Good or Bad, or say `{p}good` / `{p}bad <reason>`",
            p = ctx.prefix
        )
    };
    format!(
        "⏰ reminder: train {} ({}) waits for your approval; {how}. It expires in {}.",
        t.id,
        t.sha.short(),
        human(left)
    )
}

/// Ops hear who is missing (SPEC §14).
pub fn escalation(
    ctx: &Ctx,
    t: &Train,
    ops: &[ChatUser],
    missing: &[ChatUser],
    waited: TimeDelta,
) -> String {
    let to = if ops.is_empty() {
        "ops".to_string()
    } else {
        mentions(ops, ctx.console)
    };
    let who = if missing.is_empty() {
        "no author can approve".to_string()
    } else {
        format!("missing: {}", mentions(missing, ctx.console))
    };
    format!(
        "📣 {to}: train {} ({}) has waited {} for approval; {who}. Ops can {p}force {n} or {p}bad {n}.",
        t.id,
        t.sha.short(),
        human(waited),
        p = ctx.prefix,
        n = t.id.0
    )
}

/// Five minutes before the approval timeout.
pub fn expires_soon(ctx: &Ctx, t: &Train, missing: &[ChatUser]) -> String {
    let who = if missing.is_empty() {
        "no author can approve".to_string()
    } else {
        format!("waiting for {}", mentions(missing, ctx.console))
    };
    format!(
        "⌛ train {} expires in {}; {who}",
        t.id,
        human(super::rhythm::EXPIRY_NOTICE)
    )
}

/// A failed train's authors, mentioned (SPEC §14): the line under its
/// failure notice. None when nobody is known.
pub fn failure_mentions(ctx: &Ctx, t: &Train) -> Option<String> {
    let mut users: Vec<ChatUser> = Vec::new();
    for a in &t.authors {
        if let Some(u) = &a.chat
            && !users.contains(u)
        {
            users.push(u.clone());
        }
    }
    (!users.is_empty()).then(|| format!("cc {}", mentions(&users, ctx.console)))
}

pub fn step_started(ctx: &Ctx, t: TrainId, pos: StepPos, label: &str) -> String {
    format!(
        "train {t} ▶ {} started: {}",
        step_name(ctx.plan, pos),
        one_line(label, 60)
    )
}

/// A step that has run for `minutes` and goes on.
pub fn step_still_running(ctx: &Ctx, t: TrainId, pos: StepPos, minutes: i64) -> String {
    format!(
        "train {t} ⏳ {} still running after {} — {}",
        step_name(ctx.plan, pos),
        human(TimeDelta::minutes(minutes)),
        ctx.run_url(t)
    )
}

/// The bot is stopping (SIGTERM/SIGINT) and lets a production step finish
/// first; said once.
pub fn stopping_waits(t: TrainId, pos: StepPos, grace: TimeDelta) -> String {
    format!(
        "⏳ stopping: waiting for train {t}'s production {} to finish (up to {})",
        pos.phase.name(),
        human(grace)
    )
}

/// The production step was stopped after all: a second signal, or the grace
/// ran out. After the restart the train counts as interrupted.
pub fn stopping_cut(t: TrainId, pos: StepPos, grace: Option<TimeDelta>) -> String {
    let why = match grace {
        Some(grace) => format!("did not finish within {}", human(grace)),
        None => "is stopped by a second signal".to_string(),
    };
    format!(
        "⛔ stopping: train {t}'s production {} {why}; after the restart the train counts as interrupted",
        pos.phase.name()
    )
}

/// The answer to any command while the bot stops.
pub fn stopping_reply() -> String {
    "⏳ trainbot is stopping; ask again once it is back".to_string()
}

pub fn step_passed(ctx: &Ctx, t: TrainId, pos: StepPos, took: TimeDelta, attempts: u32) -> String {
    let retried = if attempts > 1 {
        format!(" (attempt {attempts})")
    } else {
        String::new()
    };
    format!(
        "train {t} ✔ {} passed in {}{retried}",
        step_name(ctx.plan, pos),
        human(took)
    )
}

pub fn step_failed(
    ctx: &Ctx,
    t: TrainId,
    pos: StepPos,
    took: TimeDelta,
    error: &str,
    log: &str,
    tail: &[String],
) -> String {
    let mut out = format!(
        "train {t} ✘ {} failed after {}: {error}\nlog: {log}",
        step_name(ctx.plan, pos),
        human(took)
    );
    push_tail(&mut out, tail);
    out
}

/// Puts the page of a step's own run (a GitHub Actions run) at the end of
/// a step message's first line, unless the message already has it.
pub fn with_run_link(text: String, link: Option<&str>) -> String {
    match link {
        Some(url) if !text.contains(url) => match text.split_once('\n') {
            Some((first, rest)) => format!("{first} — {url}\n{rest}"),
            None => format!("{text} — {url}"),
        },
        _ => text,
    }
}

fn step_name(plan: &Plan, pos: StepPos) -> String {
    pos_label(plan, pos)
}

pub fn approval_request(ctx: &Ctx, t: &Train) -> String {
    let envs: Vec<&str> = ctx.plan.envs.iter().map(|e| e.name.as_str()).collect();
    let passed = if envs.is_empty() {
        String::new()
    } else {
        format!(" passed {};", envs.join(", "))
    };
    let policy = match ctx.plan.approval {
        super::approval::ApprovalPolicy::AllAuthors => "every author",
        super::approval::ApprovalPolicy::AnyAuthor => "one author",
    };
    let timeout = human(ctx.plan.approval_timeout);
    let mut out = format!(
        "🙋 train {} ({}){passed} {policy} must approve within {timeout}:",
        t.id,
        t.sha.short()
    );
    for a in &t.authors {
        let how = match (&a.chat, a.only_reverted) {
            (_, true) => "not asked: their commits were reverted".to_string(),
            (Some(u), _) if t.has_approved(u) => "approved already (carried over)".to_string(),
            (Some(u), _) if ctx.console => format!(
                "type `@{u} {p}good` or `@{u} {p}bad <reason>`",
                p = ctx.prefix
            ),
            (Some(u), _) => format!(
                "<@{u}>: click Good or Bad, or say `{p}good` / `{p}bad <reason>`",
                p = ctx.prefix
            ),
            (None, _) => "cannot approve: no chat user known for this email".to_string(),
        };
        let (name, email) = (one_line(&a.name, 80), one_line(&a.email, 120));
        out.push_str(&format!("\n{name} <{email}>: {how}"));
    }
    if t.approvers().is_empty() {
        out.push_str(&format!(
            "\nNo author can approve: only ops' {}force ships it.",
            ctx.prefix
        ));
    }
    out
}

pub fn approved(ctx: &Ctx, t: &Train, by: &ChatUser) -> String {
    let by = by.mention();
    if ctx.plan.approval == super::approval::ApprovalPolicy::AnyAuthor {
        return format!("👍 {by} approved train {} (one approval is enough)", t.id);
    }
    let approvers = t.approvers().len();
    let waiting: Vec<String> = t.waiting_for().iter().map(|u| u.mention()).collect();
    let rest = if waiting.is_empty() {
        String::new()
    } else {
        format!("; waiting for {}", waiting.join(", "))
    };
    format!(
        "👍 {by} approved train {} ({}/{approvers}{rest})",
        t.id,
        t.approvals.len()
    )
}

pub fn ended(ctx: &Ctx, t: &Train, now: Ts) -> String {
    let took = human(t.duration(now));
    let prefix = ctx.prefix;
    match t.outcome() {
        Some(Outcome::Deployed) => match &t.kind {
            Kind::Rollback { by } => format!(
                "✅ train {} rolled production back to {} in {took} (by {})",
                t.id,
                t.sha.short(),
                by.mention()
            ),
            _ => {
                let forced = t
                    .forced_by
                    .as_ref()
                    .map(|b| format!(" (forced by {})", b.mention()))
                    .unwrap_or_default();
                let verified = verify_outcome(t)
                    .map(|v| format!("; {v}"))
                    .unwrap_or_default();
                let icon = match t.verify.as_ref().and_then(|v| v.result.as_ref()) {
                    Some(super::train::VerifyResult::Red { .. }) => "🚨",
                    _ => "✅",
                };
                format!(
                    "{icon} train {} deployed {} to production in {took}{forced}{verified}",
                    t.id,
                    t.sha.short()
                )
            }
        },
        Some(Outcome::LowerDone) => format!(
            "✅ train {} took {} through the lower environments in {took}",
            t.id,
            t.sha.short()
        ),
        Some(Outcome::Vetoed { by, reason }) => {
            let why = reason
                .as_deref()
                .map(|r| format!(": {}", one_line(r, 200)))
                .unwrap_or_default();
            format!(
                "⛔ train {} vetoed by {}{why}. Nothing went to production.",
                t.id,
                by.mention()
            )
        }
        Some(Outcome::Failed { at, error })
            if at.target == Target::Production && production_live(t, ctx.plan, *at) =>
        {
            format!(
                "❌ train {} failed in {}: {error}. {} is live in production; consider {prefix}rollback.",
                t.id,
                pos_label(ctx.plan, *at),
                t.sha.short()
            )
        }
        Some(Outcome::Failed { at, error }) => {
            format!(
                "❌ train {} failed in {}: {error}. Nothing more deployed.",
                t.id,
                t.pos_label(ctx.plan, *at)
            )
        }
        Some(Outcome::Expired) => format!(
            "⌛ train {} expired: no approval within {}. Nothing deployed; ops can {prefix}force {}.",
            t.id,
            human(ctx.plan.approval_timeout),
            t.id.0
        ),
        Some(Outcome::Cancelled { by }) => {
            format!("🛑 train {} cancelled by {}.", t.id, by.mention())
        }
        Some(Outcome::Interrupted { at }) => format!(
            "⚠️ train {} was interrupted during {} (the bot stopped). It is not re-run by itself: ops, {prefix}force {} to re-run it or {prefix}cancel {}.",
            t.id,
            pos_label(ctx.plan, *at),
            t.id.0,
            t.id.0
        ),
        None => format!("train {} is {}", t.id, stage_label(ctx.plan, &t.stage)),
    }
}

/// Whether the production deploy steps had all passed before `at`.
fn production_live(t: &Train, plan: &Plan, at: StepPos) -> bool {
    at.phase == super::train::Phase::Smoke
        || (plan.production_deploy == 0 && t.route != Route::LowerOnly)
}

/// Records the store could not read and moved aside at start (SPEC §12).
pub fn set_aside(names: &[String]) -> String {
    match names {
        [one] => format!("⚠️ 1 stored record could not be read and was set aside: {one}"),
        _ => format!(
            "⚠️ {} stored records could not be read and were set aside: {}",
            names.len(),
            names.join(", ")
        ),
    }
}

pub fn resumed(ctx: &Ctx, t: &Train) -> String {
    let mut out = format!(
        "↻ resuming train {} ({}) at {}",
        t.id,
        t.sha.short(),
        stage_label(ctx.plan, &t.stage)
    );
    if matches!(t.stage, Stage::AwaitingApproval { .. }) {
        let waiting: Vec<String> = t.waiting_for().iter().map(|u| u.mention()).collect();
        let approved: Vec<String> = t.approvals.iter().map(|a| a.user.mention()).collect();
        if !approved.is_empty() {
            out.push_str(&format!("; approved by {}", approved.join(", ")));
        }
        if !waiting.is_empty() {
            out.push_str(&format!("; waiting for {}", waiting.join(", ")));
        }
    }
    out
}

pub fn allocated(
    sha: &Sha,
    subject: Option<(&str, &str)>,
    next: Option<Ts>,
    branch: &str,
    ctx: &Ctx,
) -> String {
    let what = subject
        .map(|(s, a)| format!(" \"{}\" by {}", one_line(s, 60), one_line(a, 60)))
        .unwrap_or_default();
    let when = next
        .map(|n| format!("; next departure {}", ctx.time(n)))
        .unwrap_or_default();
    format!(
        "📥 {}{what} is on {branch} and waits for the next train{when}",
        sha.short()
    )
}

pub fn main_checks_failed(
    sha: &Sha,
    author: &str,
    step: &str,
    error: &str,
    log: &str,
    tail: &[String],
) -> String {
    let mut out = format!(
        "❌ main checks failed for {} ({author}): {} {error}; it will not be deployed\nlog: {log}",
        sha.short(),
        one_line(step, 60)
    );
    push_tail(&mut out, tail);
    out
}

/// A pushed tag that cannot leave yet.
pub fn tag_waits(name: &str, sha: &Sha, pushed_by: &str, why: &str, position: usize) -> String {
    let queue = if position > 1 {
        format!(" (position {position})")
    } else {
        String::new()
    };
    format!(
        "🏷 tag {name} ({}) pushed by {pushed_by} waits{queue}: {why}",
        sha.short()
    )
}

pub fn skipped_running(t: TrainId) -> String {
    format!("⏭ scheduled departure skipped: train {t} is still running")
}

pub fn frozen(by: &ChatUser, reason: Option<&str>) -> String {
    let why = reason
        .map(|r| format!(": {}", one_line(r, 200)))
        .unwrap_or_default();
    format!("🧊 departures frozen by {}{why}", by.mention())
}

pub fn unfrozen(by: &ChatUser, next: Option<Ts>, ctx: &Ctx) -> String {
    let when = next
        .map(|n| format!("; next departure {}", ctx.time(n)))
        .unwrap_or_default();
    format!("departures resumed by {}{when}", by.mention())
}

/// "2m ago", "3h ago".
pub fn ago(then: Ts, now: Ts) -> String {
    format!("{} ago", human(now - then))
}

pub fn in_time(then: Ts, now: Ts) -> String {
    format!("in {}", human(then - now))
}

pub fn rfc3339(t: Ts, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339()
}

pub fn local(t: Ts, tz: Tz) -> DateTime<Tz> {
    t.with_timezone(&tz)
}

/// A failed step's last output lines, one `| ` line each.
pub fn push_tail(out: &mut String, tail: &[String]) {
    for line in tail {
        out.push_str("\n| ");
        out.push_str(&one_line(line, 200));
    }
}

/// One line of user text (a commit subject, a reason, a step's output), at
/// most `max` characters, control characters dropped, mentions made inert.
pub fn one_line(s: &str, max: usize) -> String {
    let first = s.lines().next().unwrap_or("");
    let cut: String = first
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    if first.chars().count() > max {
        inert(&format!("{cut}…"))
    } else {
        inert(&cut)
    }
}

/// User text shown in the bot's voice must not ping anyone (SPEC §13): a
/// zero-width space breaks Slack's `<@U…>`, `<!channel>`, `<!here>` and
/// `<!subteam^…>` sequences and bare `@channel`/`@here`/`@everyone`, while
/// the text still reads the same.
pub fn inert(s: &str) -> String {
    const ZWSP: &str = "\u{200B}";
    let mut out = s
        .replace("<@", &format!("<{ZWSP}@"))
        .replace("<!", &format!("<{ZWSP}!"));
    for word in ["@channel", "@here", "@everyone"] {
        out = out.replace(word, &format!("@{ZWSP}{}", &word[1..]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_text_never_pings() {
        let shown = super::one_line(
            "fix <@U123> and <!channel> <!here|here> @here @everyone",
            200,
        );
        for ping in ["<@U", "<!channel>", "<!here", "@here", "@everyone"] {
            assert!(!shown.contains(ping), "{shown}");
        }
        assert_eq!(
            shown.replace('\u{200B}', ""),
            "fix <@U123> and <!channel> <!here|here> @here @everyone"
        );
        assert_eq!(super::one_line("plain text", 200), "plain text");
    }

    use super::*;

    #[test]
    fn a_run_link_ends_the_first_line_once() {
        let url = "https://github.com/acme/web/actions/runs/7";
        assert_eq!(
            with_run_link(
                "train #1 ✔ production deploy passed in 3s".into(),
                Some(url)
            ),
            format!("train #1 ✔ production deploy passed in 3s — {url}")
        );
        assert_eq!(
            with_run_link("✘ failed: timed out\nlog: x".into(), Some(url)),
            format!("✘ failed: timed out — {url}\nlog: x")
        );
        let has = format!("✘ failed: workflow run failure: {url}");
        assert_eq!(with_run_link(has.clone(), Some(url)), has);
        assert_eq!(with_run_link("plain".into(), None), "plain");
    }
}
