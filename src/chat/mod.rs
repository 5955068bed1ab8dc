//! Chat adapters: the console and Slack, behind the same trait.

pub mod console;
pub mod slack;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::ids::{ChatUser, TrainId};

/// What a status message and a thread belong to: a train or a branch build
/// (the same ids as their run pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Run {
    Train(TrainId),
    Build(u64),
}

/// Something the bot says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The answer to a command. `private`: the command came from a button,
    /// so the answer is shown to that user only where the chat can.
    Reply {
        to: ChatUser,
        text: String,
        private: bool,
        /// The thread the command was typed in (Slack's `thread_ts`): the
        /// answer goes there. None on the console and for top-level commands.
        thread: Option<String>,
    },
    /// An event in the channel; with a run, it belongs in that run's thread.
    Notice { run: Option<Run>, text: String },
    /// The run's one status message, updated in place where the chat can;
    /// `url` is its run page.
    Status { run: Run, text: String, url: String },
    /// The approval request: the same text the console prints; Slack adds
    /// Good / Bad buttons.
    Approval { train: TrainId, text: String },
    /// Who has approved so far; `open` is false once the train no longer
    /// waits for approval (the buttons go away). Said in words by a notice too.
    ApprovalProgress {
        train: TrainId,
        approved_by: Vec<ChatUser>,
        open: bool,
    },
    /// A nudge to one person about one train (SPEC §14): Slack sends it as a direct
    /// message with that train's Good/Bad buttons; the console prints it as a line
    /// that mentions them.
    ///
    /// `text` does not name `to`: the adapter addresses it (the console
    /// prints `@to: text`).
    Remind {
        to: ChatUser,
        train: TrainId,
        text: String,
    },
}

impl Message {
    /// The text people read, where the message has one of its own
    /// (approval progress has none).
    pub fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            Message::Reply { text, .. }
            | Message::Notice { text, .. }
            | Message::Status { text, .. }
            | Message::Approval { text, .. }
            | Message::Remind { text, .. } => Some(text),
            Message::ApprovalProgress { .. } => None,
        }
    }
}

/// A chat message addressed to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub user: ChatUser,
    pub text: String,
    /// A button click rather than typed text: refusals go back privately.
    pub button: bool,
    /// The train a clicked button belongs to: the click counts for that
    /// train only (SPEC §11 "train identity"). None for typed text.
    pub train: Option<TrainId>,
    /// Where it was said, as configured (the `chat.slack.channel` string of
    /// the pipeline(s) whose channel it is, e.g. "#deploys" or "C123"); None
    /// on the console.
    pub channel: Option<String>,
    /// The pipeline a clicked button belongs to; None for typed text (and
    /// for buttons of a single-pipeline bot, whose values stay as they were).
    pub pipeline: Option<String>,
    /// The thread it was typed in (Slack's `thread_ts`); the answer goes
    /// there. None on the console and for top-level messages.
    pub thread: Option<String>,
}

/// Where one pipeline's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub pipeline: String,
    /// The configured channel (name or id) of this pipeline.
    pub channel: String,
    /// Several pipelines are configured: buttons and message refs carry the
    /// pipeline.
    pub multi: bool,
    /// Several pipelines share this channel (or the console): texts get a
    /// `[NAME] ` prefix.
    pub shared: bool,
}

#[async_trait]
pub trait Chat: Send + Sync {
    /// Delivers a message; a failing delivery is the adapter's to retry and
    /// log, never the train's problem.
    async fn send(&self, msg: Message);

    /// Delivers a message of one pipeline to its channel. Chats with one
    /// place to speak (the console) just `send`.
    async fn send_in(&self, scope: &Scope, msg: Message) {
        let _ = scope;
        self.send(msg).await
    }

    /// SPEC §3 rule 2: the chat user with this commit email, where the chat
    /// can look it up.
    async fn lookup_email(&self, _email: &str) -> Option<ChatUser> {
        None
    }
}

/// The chat every message goes through on its way out (main wraps the
/// adapter in it): every known secret in a text becomes `***` (SPEC §13).
pub struct MaskedChat {
    inner: Arc<dyn Chat>,
}

impl MaskedChat {
    pub fn new(inner: Arc<dyn Chat>) -> MaskedChat {
        MaskedChat { inner }
    }
}

/// `text` with every known secret masked.
pub fn masked_text(text: &str) -> String {
    crate::secrets::mask(text).into_owned()
}

/// `msg` with every known secret in its texts masked.
pub fn masked(mut msg: Message) -> Message {
    let hide = |text: &mut String| {
        if let std::borrow::Cow::Owned(masked) = crate::secrets::mask(text) {
            *text = masked;
        }
    };
    if let Some(text) = msg.text_mut() {
        hide(text);
    }
    if let Message::Status { url, .. } = &mut msg {
        hide(url);
    }
    msg
}

#[async_trait]
impl Chat for MaskedChat {
    async fn send(&self, msg: Message) {
        self.inner.send(masked(msg)).await
    }

    async fn send_in(&self, scope: &Scope, msg: Message) {
        self.inner.send_in(scope, masked(msg)).await
    }

    async fn lookup_email(&self, email: &str) -> Option<ChatUser> {
        self.inner.lookup_email(email).await
    }
}

/// One pipeline's view of the shared chat: what the engine of that pipeline
/// holds, so the engine never needs to know how many pipelines there are.
pub struct ScopedChat {
    inner: Arc<dyn Chat>,
    scope: Scope,
}

impl ScopedChat {
    pub fn new(inner: Arc<dyn Chat>, scope: Scope) -> ScopedChat {
        ScopedChat { inner, scope }
    }
}

/// `[NAME] ` before the text of what people read; progress updates carry no
/// text of their own.
fn prefixed(pipeline: &str, mut msg: Message) -> Message {
    if let Some(text) = msg.text_mut() {
        text.insert_str(0, &format!("[{pipeline}] "));
    }
    msg
}

#[async_trait]
impl Chat for ScopedChat {
    async fn send(&self, msg: Message) {
        let msg = if self.scope.shared {
            prefixed(&self.scope.pipeline, msg)
        } else {
            msg
        };
        self.inner.send_in(&self.scope, msg).await
    }

    async fn lookup_email(&self, email: &str) -> Option<ChatUser> {
        self.inner.lookup_email(email).await
    }
}
