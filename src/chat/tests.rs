use std::sync::Mutex;

use super::*;

/// Records what reaches the shared chat, and through which door.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(Option<Scope>, Message)>>,
}

#[async_trait]
impl Chat for Recorder {
    async fn send(&self, msg: Message) {
        self.got.lock().unwrap().push((None, msg));
    }

    async fn send_in(&self, scope: &Scope, msg: Message) {
        self.got.lock().unwrap().push((Some(scope.clone()), msg));
    }

    async fn lookup_email(&self, email: &str) -> Option<ChatUser> {
        (email == "ann@x.com").then(|| ChatUser::new("U0ANN"))
    }
}

fn scope(shared: bool) -> Scope {
    Scope {
        pipeline: "web".into(),
        channel: "#deploys".into(),
        multi: true,
        shared,
    }
}

fn all_kinds() -> Vec<Message> {
    vec![
        Message::Reply {
            to: ChatUser::new("U1"),
            text: "ok".into(),
            private: true,
            thread: None,
        },
        Message::Notice {
            run: Some(Run::Train(TrainId(3))),
            text: "staging ok".into(),
        },
        Message::Status {
            run: Run::Build(4),
            text: "🚂 train #3".into(),
            url: "http://bot/runs/train-3".into(),
        },
        Message::Approval {
            train: TrainId(3),
            text: "approve?".into(),
        },
        Message::ApprovalProgress {
            train: TrainId(3),
            approved_by: vec![ChatUser::new("U1")],
            open: true,
        },
        Message::Remind {
            to: ChatUser::new("U1"),
            train: TrainId(3),
            text: "train #3 waits for your approval".into(),
        },
    ]
}

fn with_text(msg: &Message, f: impl Fn(&str) -> String) -> Message {
    let mut msg = msg.clone();
    match &mut msg {
        Message::Reply { text, .. }
        | Message::Notice { text, .. }
        | Message::Status { text, .. }
        | Message::Approval { text, .. }
        | Message::Remind { text, .. } => *text = f(text),
        Message::ApprovalProgress { .. } => {}
    }
    msg
}

#[tokio::test]
async fn a_shared_channel_gets_every_text_prefixed_with_the_pipeline() {
    let rec = Arc::new(Recorder::default());
    let chat = ScopedChat::new(rec.clone(), scope(true));
    for msg in all_kinds() {
        chat.send(msg).await;
    }
    let got = rec.got.lock().unwrap().clone();
    let want: Vec<_> = all_kinds()
        .iter()
        .map(|m| (Some(scope(true)), with_text(m, |t| format!("[web] {t}"))))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn an_own_channel_gets_the_texts_unchanged_but_still_scoped() {
    let rec = Arc::new(Recorder::default());
    let chat = ScopedChat::new(rec.clone(), scope(false));
    for msg in all_kinds() {
        chat.send(msg).await;
    }
    let got = rec.got.lock().unwrap().clone();
    let want: Vec<_> = all_kinds()
        .into_iter()
        .map(|m| (Some(scope(false)), m))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn lookups_go_to_the_shared_chat() {
    let chat = ScopedChat::new(Arc::new(Recorder::default()), scope(true));
    assert_eq!(
        chat.lookup_email("ann@x.com").await,
        Some(ChatUser::new("U0ANN"))
    );
    assert_eq!(chat.lookup_email("bob@x.com").await, None);
}

#[tokio::test]
async fn every_text_through_the_masked_chat_loses_known_secrets() {
    crate::secrets::register("chat-secret-x9y8z7");
    let rec = Arc::new(Recorder::default());
    let masked: Arc<dyn Chat> = Arc::new(MaskedChat::new(rec.clone()));
    let chat = ScopedChat::new(masked.clone(), scope(false));
    let secret = |t: &str| format!("{t} chat-secret-x9y8z7");
    for msg in all_kinds() {
        chat.send(with_text(&msg, secret)).await;
        masked.send(with_text(&msg, secret)).await;
    }
    let got = rec.got.lock().unwrap().clone();
    let want: Vec<_> = all_kinds()
        .iter()
        .flat_map(|m| {
            let m = with_text(m, |t| format!("{t} ***"));
            [(Some(scope(false)), m.clone()), (None, m)]
        })
        .collect();
    assert_eq!(got, want);
}
