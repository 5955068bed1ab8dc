//! The outbox's two lanes. Slack paces posts to about one a second per
//! channel, so a running train can queue up a dozen notices; an answer to a
//! command goes ahead of them rather than arriving seconds late. Each lane
//! keeps its own order (a status message still comes before its thread).

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::chat::{Message, Scope};

/// A message and the pipeline it belongs to (None: unscoped, the first
/// channel).
pub type Outgoing = (Option<Scope>, Message);

pub struct LaneSenders {
    urgent: mpsc::Sender<Outgoing>,
    normal: mpsc::Sender<Outgoing>,
}

pub struct Lanes {
    urgent: mpsc::Receiver<Outgoing>,
    normal: mpsc::Receiver<Outgoing>,
}

/// Two lanes of `capacity` messages each.
pub fn lanes(capacity: usize) -> (LaneSenders, Lanes) {
    let (urgent_tx, urgent) = mpsc::channel(capacity);
    let (normal_tx, normal) = mpsc::channel(capacity);
    (
        LaneSenders {
            urgent: urgent_tx,
            normal: normal_tx,
        },
        Lanes { urgent, normal },
    )
}

impl LaneSenders {
    /// Answers to commands take the urgent lane; everything else the normal
    /// one. A refused message is dropped (the caller only logs why).
    pub fn try_send(&self, out: Outgoing) -> Result<(), TrySendError<()>> {
        let sent = match out.1 {
            Message::Reply { .. } => self.urgent.try_send(out),
            _ => self.normal.try_send(out),
        };
        sent.map_err(|e| match e {
            TrySendError::Full(_) => TrySendError::Full(()),
            TrySendError::Closed(_) => TrySendError::Closed(()),
        })
    }
}

impl Lanes {
    /// The next message, urgent first; None once both lanes are closed and
    /// empty.
    pub async fn next(&mut self) -> Option<Outgoing> {
        tokio::select! {
            biased;
            Some(msg) = self.urgent.recv() => Some(msg),
            Some(msg) = self.normal.recv() => Some(msg),
            else => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ChatUser;

    fn notice(text: &str) -> Message {
        Message::Notice {
            run: None,
            text: text.into(),
        }
    }

    fn reply(text: &str) -> Message {
        Message::Reply {
            to: ChatUser::new("alice"),
            text: text.into(),
            private: false,
            thread: None,
        }
    }

    fn text(m: &Message) -> &str {
        match m {
            Message::Notice { text, .. } | Message::Reply { text, .. } => text,
            _ => "",
        }
    }

    #[tokio::test]
    async fn answers_overtake_queued_notices_and_each_lane_keeps_its_order() {
        let (tx, mut lanes) = lanes(8);
        for m in [
            notice("n1"),
            notice("n2"),
            reply("r1"),
            notice("n3"),
            reply("r2"),
        ] {
            tx.try_send((None, m)).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        while let Some(m) = lanes.next().await {
            got.push(text(&m.1).to_string());
        }
        assert_eq!(got, ["r1", "r2", "n1", "n2", "n3"]);
    }
}
