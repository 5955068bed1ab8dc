//! The console: stdin lines are messages, stdout carries only chat.

use std::io::Write;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::{Chat, Incoming, Message};
use crate::domain::ids::ChatUser;

pub struct Console {
    user: ChatUser,
}

impl Console {
    /// `user`: who a line without `@name ` is from.
    pub fn new(user: &str) -> Self {
        Console {
            user: ChatUser::new(user),
        }
    }

    /// Reads stdin until it ends; end of input does not stop the bot.
    pub fn read_stdin(&self, inbox: mpsc::Sender<Incoming>) -> tokio::task::JoinHandle<()> {
        let default_user = self.user.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(msg) = parse_line(&line, &default_user)
                    && inbox.send(msg).await.is_err()
                {
                    return;
                }
            }
            tracing::info!("Console input ended; the bot keeps running.");
        })
    }
}

/// `@bob !good` is bob saying `!good`; other lines are from the console user.
pub fn parse_line(line: &str, default_user: &ChatUser) -> Option<Incoming> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (name, text) = rest.split_once(char::is_whitespace)?;
        if name.is_empty() {
            return None;
        }
        return Some(Incoming {
            user: ChatUser::new(name),
            text: text.trim().to_string(),
            button: false,
            train: None,
            channel: None,
            pipeline: None,
            thread: None,
        });
    }
    Some(Incoming {
        user: default_user.clone(),
        text: line.to_string(),
        button: false,
        train: None,
        channel: None,
        pipeline: None,
        thread: None,
    })
}

/// `trainbot> ` and the first line; further lines indented two spaces.
pub fn render(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str("trainbot> ");
        } else {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("trainbot>\n");
    }
    out
}

#[async_trait]
impl Chat for Console {
    async fn send(&self, msg: Message) {
        let text = match msg {
            Message::Reply { to, text, .. } if to != self.user => format!("@{to}: {text}"),
            Message::Remind { to, text, .. } => format!("@{to}: {text}"),
            Message::Reply { text, .. }
            | Message::Notice { text, .. }
            | Message::Approval { text, .. } => text,
            // Every stage change and approval is also a notice; the console
            // has no place to update in place.
            Message::Status { .. } | Message::ApprovalProgress { .. } => return,
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(render(&text).as_bytes());
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_a_mention_come_from_that_user() {
        let local = ChatUser::new("local");
        assert_eq!(
            parse_line("@bob !good", &local),
            Some(Incoming {
                user: ChatUser::new("bob"),
                text: "!good".into(),
                button: false,
                train: None,
                channel: None,
                pipeline: None,
                thread: None,
            })
        );
        assert_eq!(
            parse_line("!status", &local),
            Some(Incoming {
                user: local.clone(),
                text: "!status".into(),
                button: false,
                train: None,
                channel: None,
                pipeline: None,
                thread: None,
            })
        );
        assert_eq!(parse_line("   ", &local), None);
        assert_eq!(parse_line("@bob", &local), None);
    }

    #[test]
    fn output_is_prefixed_then_indented() {
        assert_eq!(render("one\ntwo"), "trainbot> one\n  two\n");
    }
}
