//! Block Kit rendering: the short status message, the approval request with
//! its buttons, and plain thread messages. Texts come from the engine; here
//! they are only escaped and laid out.

use slack_morphism::prelude::*;

use crate::domain::ids::ChatUser;

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
        let button = |label: &str, action: &str, style| {
            SlackActionBlockElement::Button(
                SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(label))
                    .with_action_id(action.into())
                    .with_value(value.to_string())
                    .with_style(style),
            )
        };
        blocks.push(
            SlackActionsBlock::new(vec![
                button("Good", "good", SlackBlockButtonStyle::Primary),
                button("Bad", "bad", SlackBlockButtonStyle::Danger),
            ])
            .into(),
        );
    }
    SlackMessageContent::new()
        .with_text(escape(text))
        .with_blocks(blocks)
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
    fn the_status_links_to_the_run() {
        let v = serde_json::to_value(status("🚂 train #1", "http://bot/runs/train-1")).unwrap();
        assert_eq!(v["blocks"][0]["text"]["text"], "🚂 train #1");
        let link = v["blocks"][1]["elements"][0]["text"].as_str().unwrap();
        assert!(link.starts_with("<http://bot/runs/train-1|"), "{link}");
    }
}
