//! The outbox's two lanes. Slack paces posts to about one a second per
//! channel, so a running train can queue up a dozen notices; an answer to a
//! command goes ahead of them rather than arriving seconds late. Each lane
//! keeps its own order (a status message still comes before its thread).

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::chat::Message;

pub struct LaneSenders {
    urgent: mpsc::Sender<Message>,
    normal: mpsc::Sender<Message>,
}

pub struct Lanes {
    urgent: mpsc::Receiver<Message>,
    normal: mpsc::Receiver<Message>,
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
    /// Answers to commands take the urgent lane; everything else the normal one.
    pub fn try_send(&self, msg: Message) -> Result<(), TrySendError<Message>> {
        match msg {
            Message::Reply { .. } => self.urgent.try_send(msg),
            _ => self.normal.try_send(msg),
        }
    }
}

impl Lanes {
    /// The next message, urgent first; None once both lanes are closed and
    /// empty.
    pub async fn next(&mut self) -> Option<Message> {
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
            tx.try_send(m).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        while let Some(m) = lanes.next().await {
            got.push(text(&m).to_string());
        }
        assert_eq!(got, ["r1", "r2", "n1", "n2", "n3"]);
    }
}
