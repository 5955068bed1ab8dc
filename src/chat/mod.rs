//! Chat adapters: the console and Slack, behind the same trait.

pub mod console;
pub mod slack;

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
}

#[async_trait]
pub trait Chat: Send + Sync {
    /// Delivers a message; a failing delivery is the adapter's to retry and
    /// log, never the train's problem.
    async fn send(&self, msg: Message);

    /// SPEC §3 rule 2: the chat user with this commit email, where the chat
    /// can look it up.
    async fn lookup_email(&self, _email: &str) -> Option<ChatUser> {
        None
    }
}
