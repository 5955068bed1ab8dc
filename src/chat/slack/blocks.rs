//! Block Kit rendering: the short status message, the approval request with
//! its buttons, and plain thread messages. Texts come from the engine; here
//! they are only escaped and laid out.

use std::sync::Arc;

use slack_morphism::prelude::*;

use crate::domain::ids::{ChatUser, mention};
use crate::engine::Snapshot;

/// A section's text may hold at most 3000 characters.
const SECTION_MAX: usize = 3000;

/// Escapes `&`, `<` and `>` for Slack, keeping user mentions (`<@U123>`)
/// the engine wrote on purpose.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(len) = mention_len(tail) {
            out.push_str(&tail[..len]);
            rest = &tail[len..];
            continue;
        }
        out.push_str(match tail.as_bytes()[0] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            _ => "&gt;",
        });
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// The length of a `<@U123ABC>` at the start of `s`.
fn mention_len(s: &str) -> Option<usize> {
    let id = s.strip_prefix("<@")?;
    let end = id.find('>')?;
    let ok = end > 0
        && id[..end]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    ok.then_some(end + 3)
}

fn section(text: &str) -> SlackBlock {
    let mut text = escape(text);
    if text.chars().count() > SECTION_MAX {
        text = text.chars().take(SECTION_MAX - 1).collect::<String>() + "…";
    }
    SlackSectionBlock::new()
        .with_text(SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text)))
        .into()
}

fn context(text: String) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(text),
    )])
    .into()
}

/// A plain message: mrkdwn text, no blocks.
pub fn plain(text: &str) -> SlackMessageContent {
    SlackMessageContent::new().with_text(escape(text))
}

/// A reply addressed to someone in the channel.
pub fn reply(to: &ChatUser, text: &str) -> SlackMessageContent {
    plain(&format!("<@{to}> {text}"))
}

/// The train's status message: the line, and a link to its run page.
pub fn status(text: &str, url: &str) -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text(escape(text))
        .with_blocks(vec![
            section(text),
            context(format!("<{url}|run and step logs> · details in the thread")),
        ])
}

/// The approval request: the text, who approved so far, and (while the
/// train waits) Good / Bad buttons whose `value` names the train.
pub fn approval(
    value: &str,
    text: &str,
    approved_by: &[ChatUser],
    open: bool,
) -> SlackMessageContent {
    let who = if approved_by.is_empty() {
        "No approvals yet.".to_string()
    } else {
        let names: Vec<String> = approved_by.iter().map(|u| format!("<@{u}>")).collect();
        format!("Approved by {}.", names.join(", "))
    };
    let mut blocks = vec![section(text), context(who)];
    if open {
        blocks.push(buttons(value));
    }
    SlackMessageContent::new()
        .with_text(escape(text))
        .with_blocks(blocks)
}

/// Good / Bad buttons whose `value` names the train.
fn buttons(value: &str) -> SlackBlock {
    let button = |label: &str, action: &str, style| {
        SlackActionBlockElement::Button(
            SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(label))
                .with_action_id(action.into())
                .with_value(value.to_string())
                .with_style(style),
        )
    };
    SlackActionsBlock::new(vec![
        button("Good", "good", SlackBlockButtonStyle::Primary),
        button("Bad", "bad", SlackBlockButtonStyle::Danger),
    ])
    .into()
}

/// A reminder in someone's DM: the text and the train's Good / Bad buttons
/// (the same values as the channel's approval request).
pub fn reminder(value: &str, text: &str) -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text(escape(text))
        .with_blocks(vec![section(text), buttons(value)])
}

/// A Home tab holds at most 100 blocks.
const HOME_MAX_BLOCKS: usize = 100;

/// Users as mentions, joined.
fn users(list: &[String]) -> String {
    let shown: Vec<String> = list.iter().map(|u| mention(u)).collect();
    shown.join(", ")
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// The Home tab: per pipeline its train and stage, who must approve, the
/// SHAs waiting for the next train, locks, the next departure and what is
/// in production.
pub fn home(pipelines: &[(String, Arc<Snapshot>)]) -> Vec<SlackBlock> {
    let mut blocks = vec![section("*trainbot* — the deploy radiator")];
    for (name, snap) in pipelines {
        let mut lines = vec![format!("*{name}*")];
        match &snap.train {
            Some(t) => {
                lines.push(format!(
                    "🚂 train #{} ({}) — {}",
                    t.id,
                    short(&t.sha),
                    t.stage_detail
                ));
                if !t.waiting_for.is_empty() {
                    lines.push(format!("✋ must approve: {}", users(&t.waiting_for)));
                }
                if !t.approved_by.is_empty() {
                    lines.push(format!("👍 approved by: {}", users(&t.approved_by)));
                }
                if let Some(held) = &t.held {
                    lines.push(format!("⏸ held: {held}"));
                }
            }
            None => lines.push("🚉 no train running".to_string()),
        }
        if snap.waiting.is_empty() {
            lines.push("📥 nothing waits for the next train".to_string());
        } else {
            let shas: Vec<&str> = snap.waiting.iter().take(10).map(|s| short(s)).collect();
            let more = snap.waiting.len().saturating_sub(shas.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            lines.push(format!("📥 waiting: {}{more}", shas.join(", ")));
        }
        for l in &snap.locks {
            let until = l
                .until
                .as_ref()
                .map(|u| format!(" until {u}"))
                .unwrap_or_default();
            lines.push(format!(
                "🔒 {} locked by {}{until}: {}",
                l.env,
                mention(&l.by),
                l.reason
            ));
        }
        if let Some(f) = &snap.frozen {
            let why = f
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            lines.push(format!("🧊 departures frozen by {}{why}", mention(&f.by)));
        }
        lines.push(match &snap.next_departure {
            Some(at) => format!("🕐 next departure: {at}"),
            None => "🕐 no departure scheduled".to_string(),
        });
        lines.push(match &snap.production_sha {
            Some(sha) => format!("🏭 production: {}", short(sha)),
            None => "🏭 production: nothing deployed yet".to_string(),
        });
        if blocks.len() + 3 > HOME_MAX_BLOCKS {
            blocks.push(section("… more pipelines than fit here"));
            break;
        }
        blocks.push(SlackDividerBlock::new().into());
        blocks.push(section(&lines.join("\n")));
        if let Some(t) = &snap.train {
            blocks.push(context(format!("<{}|run and step logs>", t.url)));
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_user_mentions() {
        assert_eq!(
            escape("Ann <ann@x.com> & <@U0ANN>: a<b>c"),
            "Ann &lt;ann@x.com&gt; &amp; <@U0ANN>: a&lt;b&gt;c"
        );
        assert_eq!(escape("<@lower>"), "&lt;@lower&gt;");
    }

    #[test]
    fn the_approval_message_has_buttons_only_while_open() {
        let open = serde_json::to_value(approval("web#3", "ok?", &[], true)).unwrap();
        let actions = &open["blocks"][2];
        assert_eq!(actions["type"], "actions");
        assert_eq!(actions["elements"][0]["action_id"], "good");
        assert_eq!(actions["elements"][0]["value"], "web#3");
        assert_eq!(actions["elements"][1]["value"], "web#3");
        assert_eq!(actions["elements"][1]["action_id"], "bad");
        assert_eq!(
            open["blocks"][1]["elements"][0]["text"],
            "No approvals yet."
        );

        let closed =
            serde_json::to_value(approval("3", "ok?", &[ChatUser::new("U1")], false)).unwrap();
        assert_eq!(closed["blocks"].as_array().unwrap().len(), 2);
        assert_eq!(
            closed["blocks"][1]["elements"][0]["text"],
            "Approved by <@U1>."
        );
    }

    #[test]
    fn the_home_tab_shows_each_pipeline_in_short() {
        use crate::engine::{LockView, TrainView};
        let snap = Snapshot {
            train: Some(TrainView {
                kind: "scheduled",
                id: 3,
                sha: "abcdef0123456789".into(),
                stage: "approval".into(),
                stage_detail: "awaiting approval".into(),
                authors: vec!["U0ANN".into(), "U0BOB".into()],
                approved_by: vec!["U0ANN".into()],
                waiting_for: vec!["U0BOB".into()],
                stage_since: "2026-01-01T10:00:00Z".into(),
                url: "http://bot/runs/train-3".into(),
                held: None,
                verifying: None,
            }),
            production_sha: Some("1234567890abcdef".into()),
            waiting: vec!["fedcba9876543210".into()],
            next_departure: Some("2026-01-01T14:00:00+00:00".into()),
            locks: vec![LockView {
                env: "staging".into(),
                by: "U0OPS".into(),
                reason: "db <migration>".into(),
                since: "2026-01-01T09:00:00Z".into(),
                until: None,
            }],
            ..Snapshot::default()
        };
        let blocks = home(&[
            ("web".into(), Arc::new(snap)),
            ("api".into(), Arc::new(Snapshot::default())),
        ]);
        let v = serde_json::to_value(&blocks).unwrap();
        let web = v[2]["text"]["text"].as_str().unwrap();
        for want in [
            "*web*",
            "train #3 (abcdef0) — awaiting approval",
            "must approve: <@U0BOB>",
            "approved by: <@U0ANN>",
            "waiting: fedcba9",
            "staging locked by <@U0OPS>: db &lt;migration&gt;",
            "next departure: 2026-01-01T14:00:00+00:00",
            "production: 1234567",
        ] {
            assert!(web.contains(want), "{want:?} in {web}");
        }
        assert_eq!(
            v[3]["elements"][0]["text"],
            "<http://bot/runs/train-3|run and step logs>"
        );
        let api = v[5]["text"]["text"].as_str().unwrap();
        assert!(
            api.contains("*api*") && api.contains("no train running"),
            "{api}"
        );
        assert!(api.contains("nothing deployed yet"), "{api}");
    }

    #[test]
    fn a_reminder_carries_the_train_s_buttons() {
        let v = serde_json::to_value(reminder("web#3", "train #3 waits for you")).unwrap();
        assert_eq!(v["blocks"][0]["text"]["text"], "train #3 waits for you");
        assert_eq!(v["blocks"][1]["elements"][0]["action_id"], "good");
        assert_eq!(v["blocks"][1]["elements"][0]["value"], "web#3");
        assert_eq!(v["blocks"][1]["elements"][1]["action_id"], "bad");
    }

    #[test]
    fn the_status_links_to_the_run() {
        let v = serde_json::to_value(status("🚂 train #1", "http://bot/runs/train-1")).unwrap();
        assert_eq!(v["blocks"][0]["text"]["text"], "🚂 train #1");
        let link = v["blocks"][1]["elements"][0]["text"].as_str().unwrap();
        assert!(link.starts_with("<http://bot/runs/train-1|"), "{link}");
    }
}
