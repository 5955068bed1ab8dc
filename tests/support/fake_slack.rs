//! A fake Slack on 127.0.0.1: the Web API methods trainbot uses (an axum
//! app under `/api`) and a Socket Mode websocket, both speaking the real
//! wire format. It records every call and every ack; tests wait on those
//! records with a deadline, and flip faults (a 429, a dropped socket).
//! The including test crate defines `TIMEOUT`, the upper bound of every wait.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub const TEAM: &str = "T0TEAM";
pub const BOT_USER: &str = "U0BOT";
pub const CHANNEL_ID: &str = "C0DEPLOY";
pub const CHANNEL_NAME: &str = "deploys";
/// A second channel the bot is in, for a pipeline of its own.
pub const CHANNEL2_ID: &str = "C0WEBDEPLOY";
pub const CHANNEL2_NAME: &str = "web-deploys";
/// A third channel the bot is in, for another pipeline of its own.
pub const CHANNEL3_ID: &str = "C0APIDEPLOY";
pub const CHANNEL3_NAME: &str = "api-deploys";

/// One Web API call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The bearer token the call carried.
    pub token: Option<String>,
    /// JSON body, form fields or query parameters, whichever it had.
    pub args: Value,
    /// What the fake answered.
    pub status: u16,
    pub ts: Option<String>,
}

impl Call {
    pub fn text(&self) -> &str {
        self.args["text"].as_str().unwrap_or_default()
    }
    pub fn thread_ts(&self) -> Option<&str> {
        self.args["thread_ts"].as_str()
    }
    pub fn has_buttons(&self) -> bool {
        self.args["blocks"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
    }
}

#[derive(Default)]
pub struct State {
    pub calls: Vec<Call>,
    /// Envelope ids the bot acknowledged, in order.
    pub acks: Vec<String>,
    /// The whole ack frames (a slash command's may carry a payload), with
    /// the time from the envelope's sending to its ack.
    pub ack_frames: Vec<(Value, std::time::Duration)>,
    /// When each envelope was sent, by id.
    sent_at: HashMap<String, std::time::Instant>,
    /// Websocket connections accepted so far.
    pub connections: usize,
    pub emails: HashMap<String, String>,
    /// Method -> how many of its next calls get a 429 with Retry-After: 1.
    pub rate_limit: HashMap<String, usize>,
    pub invalid_auth: bool,
    next_ts: u64,
    socket: Option<mpsc::UnboundedSender<SocketCmd>>,
}

impl State {
    pub fn calls_to(&self, method: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.method == method && c.status == 200)
            .collect()
    }
}

enum SocketCmd {
    Send(String),
    /// Drop the TCP connection without a close handshake.
    Drop,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub api_url: String,
    pub state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

pub const BOT_TOKEN: &str = "xoxb-fake-bot-token-3f9a7c";
pub const APP_TOKEN: &str = "xapp-fake-app-token-81d2e4";

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_url = format!("ws://{}/link/", ws.local_addr().unwrap());
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}/api", api.local_addr().unwrap());
        let fake = FakeSlack {
            api_url,
            state,
            changed,
        };
        tokio::spawn(fake.clone().accept_sockets(ws));
        let app = Router::new()
            .route("/api/{method}", axum::routing::any(web_api))
            .with_state((fake.clone(), ws_url));
        tokio::spawn(async move { axum::serve(api, app).await.unwrap() });
        fake
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock().unwrap());
        self.changed.notify_waiters();
        out
    }

    /// Waits until `f` gives a value; panics with the recorded calls after
    /// the deadline.
    pub async fn wait_for<T>(&self, what: &str, f: impl Fn(&State) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + super::TIMEOUT;
        loop {
            // Registered before the state is read: a change in between
            // still wakes this wait (notify_waiters only wakes registered ones).
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f(&self.state.lock().unwrap()) {
                return v;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let st = self.state.lock().unwrap();
                let calls: Vec<String> = st
                    .calls
                    .iter()
                    .map(|c| format!("{} {} {}", c.method, c.status, c.args))
                    .collect();
                panic!(
                    "timed out waiting for {what}\nacks: {:?}\ncalls:\n{}",
                    st.acks,
                    calls.join("\n")
                );
            }
        }
    }

    /// A posted message (chat.postMessage) whose text contains `needle`.
    pub async fn wait_for_post(&self, needle: &str) -> Call {
        let what = format!("a message containing {needle:?}");
        self.wait_for(&what, |s| {
            s.calls_to("chat.postMessage")
                .into_iter()
                .find(|c| c.text().contains(needle))
                .cloned()
        })
        .await
    }

    /// Sends a frame on the current socket, waiting for one to be open.
    pub async fn send_frame(&self, frame: Value) {
        let socket = self.wait_for("an open socket", |s| s.socket.clone()).await;
        if let Some(id) = frame["envelope_id"].as_str() {
            let id = id.to_string();
            self.with(|s| s.sent_at.insert(id, std::time::Instant::now()));
        }
        socket.send(SocketCmd::Send(frame.to_string())).unwrap();
    }

    /// The ack frame of `envelope_id` and how long it took, once acked.
    pub fn ack_of(&self, envelope_id: &str) -> Option<(Value, std::time::Duration)> {
        self.with(|s| {
            s.ack_frames
                .iter()
                .find(|(f, _)| f["envelope_id"] == envelope_id)
                .cloned()
        })
    }

    /// Sends an envelope and waits for its ack.
    pub async fn send_envelope(&self, envelope: Value) {
        let id = envelope["envelope_id"].as_str().unwrap().to_string();
        self.send_frame(envelope).await;
        self.wait_for(&format!("the ack of {id}"), |s| {
            s.acks.contains(&id).then_some(())
        })
        .await;
    }

    /// Cuts the current socket without a close frame.
    pub async fn drop_socket(&self) {
        let socket = self.wait_for("an open socket", |s| s.socket.clone()).await;
        self.with(|s| s.socket = None);
        let _ = socket.send(SocketCmd::Drop);
    }

    async fn accept_sockets(self, listener: TcpListener) {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            let hello = json!({
                "type": "hello", "num_connections": 1,
                "debug_info": {"host": "fake-slack", "build_number": 1,
                               "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0APP"}
            });
            if ws.send(WsMessage::text(hello.to_string())).await.is_err() {
                continue;
            }
            self.with(|s| {
                s.connections += 1;
                s.socket = Some(tx);
            });
            let fake = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        cmd = rx.recv() => match cmd {
                            Some(SocketCmd::Send(text)) => {
                                if ws.send(WsMessage::text(text)).await.is_err() { break; }
                            }
                            Some(SocketCmd::Drop) | None => break,
                        },
                        frame = ws.next() => match frame {
                            Some(Ok(WsMessage::Text(text))) => {
                                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                                if let Some(id) = v["envelope_id"].as_str() {
                                    let id = id.to_string();
                                    fake.with(|s| {
                                        let took = s
                                            .sent_at
                                            .get(&id)
                                            .map(|at| at.elapsed())
                                            .unwrap_or_default();
                                        s.ack_frames.push((v.clone(), took));
                                        s.acks.push(id);
                                    });
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => break,
                        },
                    }
                }
                // Dropping `ws` here closes the TCP connection.
            });
        }
    }
}

async fn web_api(
    AxumState((fake, ws_url)): AxumState<(FakeSlack, String)>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let args: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        let form: HashMap<String, String> = serde_urlencoded_pairs(&String::from_utf8_lossy(&body));
        let mut all = query.clone();
        all.extend(form);
        json!(all)
    });
    let mut st = fake.state.lock().unwrap();
    let limited = st.rate_limit.get_mut(&method).filter(|n| **n > 0);
    let (status, answer) = if let Some(n) = limited {
        *n -= 1;
        (429, json!({"ok": false, "error": "ratelimited"}))
    } else {
        (
            200,
            answer(&mut st, &method, token.as_deref(), &args, &ws_url),
        )
    };
    let ts = answer["ts"].as_str().map(str::to_string);
    st.calls.push(Call {
        method,
        token,
        args,
        status,
        ts,
    });
    drop(st);
    fake.changed.notify_waiters();
    let mut resp = (StatusCode::from_u16(status).unwrap(), axum::Json(answer)).into_response();
    if status == 429 {
        resp.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    }
    resp
}

fn serde_urlencoded_pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace('+', " ")))
        .collect()
}

fn answer(st: &mut State, method: &str, token: Option<&str>, args: &Value, ws_url: &str) -> Value {
    let bot_ok = token == Some(BOT_TOKEN) && !st.invalid_auth;
    let app_ok = token == Some(APP_TOKEN);
    let bad = json!({"ok": false, "error": "invalid_auth"});
    match method {
        "auth.test" if bot_ok => json!({
            "ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "trainbot",
            "team_id": TEAM, "user_id": BOT_USER, "bot_id": "B0BOT"
        }),
        "apps.connections.open" if app_ok => {
            json!({"ok": true, "url": format!("{ws_url}?ticket={}", st.connections + 1)})
        }
        "conversations.list" if bot_ok => json!({
            "ok": true,
            "channels": [
                {"id": "C0OTHER", "name": "random", "created": 1600000000, "is_channel": true},
                {"id": CHANNEL_ID, "name": CHANNEL_NAME, "created": 1600000000, "is_channel": true},
                {"id": CHANNEL2_ID, "name": CHANNEL2_NAME, "created": 1600000000, "is_channel": true},
                {"id": CHANNEL3_ID, "name": CHANNEL3_NAME, "created": 1600000000, "is_channel": true}
            ],
            "response_metadata": {"next_cursor": ""}
        }),
        "chat.postMessage" if bot_ok => {
            st.next_ts += 1;
            let ts = format!("1700000000.{:06}", st.next_ts);
            json!({
                "ok": true, "channel": args["channel"], "ts": ts,
                "message": {"type": "message", "text": args["text"], "user": BOT_USER,
                            "bot_id": "B0BOT", "ts": ts}
            })
        }
        "chat.update" if bot_ok => json!({
            "ok": true, "channel": args["channel"], "ts": args["ts"], "text": args["text"],
            "message": {"text": args["text"], "user": BOT_USER, "bot_id": "B0BOT"}
        }),
        "chat.postEphemeral" if bot_ok => {
            st.next_ts += 1;
            json!({"ok": true, "message_ts": format!("1700000000.{:06}", st.next_ts)})
        }
        "views.publish" if bot_ok => json!({
            "ok": true,
            "view": {"id": "V0HOME", "team_id": TEAM, "type": "home",
                     "blocks": args["view"]["blocks"], "hash": "h1"}
        }),
        "conversations.open" if bot_ok => {
            // slack-morphism sends `users` as a JSON array; the docs show a
            // comma-separated string.
            let user = match &args["users"] {
                Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default(),
                v => v.as_str().unwrap_or_default(),
            }
            .split(',')
            .next()
            .unwrap_or_default()
            .to_string();
            json!({"ok": true, "no_op": true, "already_open": true,
                   "channel": {"id": dm_of(&user), "created": 1600000000, "is_im": true,
                               "user": user}})
        }
        "users.lookupByEmail" if bot_ok => {
            let email = args["email"].as_str().unwrap_or_default();
            match st.emails.get(email) {
                Some(id) => json!({"ok": true, "user": {"id": id, "team_id": TEAM, "name": email}}),
                None => json!({"ok": false, "error": "users_not_found"}),
            }
        }
        "auth.test"
        | "apps.connections.open"
        | "conversations.list"
        | "chat.postMessage"
        | "chat.update"
        | "chat.postEphemeral"
        | "users.lookupByEmail"
        | "views.publish"
        | "conversations.open" => bad,
        _ => json!({"ok": false, "error": "unknown_method"}),
    }
}

/// The id of `user`'s DM with the bot (`conversations.open`).
pub fn dm_of(user: &str) -> String {
    format!("D{}", user.trim_start_matches(['U', 'W']))
}

/// Real-format envelopes.
pub mod envelope {
    use serde_json::{Value, json};

    use super::{CHANNEL_ID, TEAM};

    /// An `events_api` envelope with a `message` event in our channel.
    pub fn message(envelope_id: &str, event_id: &str, user: &str, text: &str, ts: &str) -> Value {
        message_in(CHANNEL_ID, envelope_id, event_id, user, text, ts)
    }

    /// The same in `channel`.
    pub fn message_in(
        channel: &str,
        envelope_id: &str,
        event_id: &str,
        user: &str,
        text: &str,
        ts: &str,
    ) -> Value {
        events_api(
            envelope_id,
            event_id,
            0,
            json!({
                "type": "message", "channel": channel, "user": user, "text": text,
                "ts": ts, "event_ts": ts, "channel_type": "channel"
            }),
        )
    }

    /// A message typed in the thread of the message at `thread_ts`.
    pub fn thread_message(
        envelope_id: &str,
        event_id: &str,
        user: &str,
        text: &str,
        ts: &str,
        thread_ts: &str,
    ) -> Value {
        let mut env = message(envelope_id, event_id, user, text, ts);
        env["payload"]["event"]["thread_ts"] = json!(thread_ts);
        env["payload"]["event"]["parent_user_id"] = json!(super::BOT_USER);
        env
    }

    /// `/trainbot <text>` typed in `channel` (a `slash_commands` envelope,
    /// the payload as Slack sends it).
    pub fn slash(envelope_id: &str, channel: &str, user: &str, text: &str) -> Value {
        json!({
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "accepts_response_payload": true,
            "payload": {
                "token": "verification-token", "team_id": TEAM, "team_domain": "fake",
                "channel_id": channel, "channel_name": super::CHANNEL_NAME,
                "user_id": user, "user_name": user.to_lowercase(),
                "command": "/trainbot", "text": text, "api_app_id": "A0APP",
                "is_enterprise_install": "false",
                "response_url": "https://hooks.slack.invalid/commands/T0/1/x",
                "trigger_id": format!("trigger-{envelope_id}")
            }
        })
    }

    /// `user` opened the app's Home tab.
    pub fn home_opened(envelope_id: &str, event_id: &str, user: &str) -> Value {
        events_api(
            envelope_id,
            event_id,
            0,
            json!({
                "type": "app_home_opened", "user": user, "channel": super::dm_of(user),
                "tab": "home", "event_ts": "1700000000.000900"
            }),
        )
    }

    /// The same event delivered again (`retry_attempt` 1).
    pub fn redelivery(envelope_id: &str, first: &Value) -> Value {
        let mut again = first.clone();
        again["envelope_id"] = json!(envelope_id);
        again["retry_attempt"] = json!(1);
        again["retry_reason"] = json!("timeout");
        again
    }

    pub fn events_api(envelope_id: &str, event_id: &str, retry: u32, event: Value) -> Value {
        json!({
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": retry,
            "retry_reason": "",
            "payload": {
                "token": "verification-token", "team_id": TEAM, "api_app_id": "A0APP",
                "event": event, "type": "event_callback", "event_id": event_id,
                "event_time": 1700000000, "authorizations": [], "is_ext_shared_channel": false
            }
        })
    }

    /// A click on a button of the message at `message_ts`.
    pub fn click(
        envelope_id: &str,
        user: &str,
        action: &str,
        value: &str,
        message_ts: &str,
    ) -> Value {
        click_in(
            (CHANNEL_ID, super::CHANNEL_NAME),
            envelope_id,
            user,
            action,
            value,
            message_ts,
        )
    }

    /// The same in `channel` (id, name).
    pub fn click_in(
        (channel, name): (&str, &str),
        envelope_id: &str,
        user: &str,
        action: &str,
        value: &str,
        message_ts: &str,
    ) -> Value {
        json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": false,
            "payload": {
                "type": "block_actions",
                "team": {"id": TEAM, "domain": "fake"},
                "user": {"id": user, "username": user.to_lowercase(), "team_id": TEAM},
                "api_app_id": "A0APP",
                "token": "verification-token",
                "container": {"type": "message", "message_ts": message_ts,
                              "channel_id": channel, "is_ephemeral": false},
                "trigger_id": format!("trigger-{envelope_id}"),
                "channel": {"id": channel, "name": name},
                "message": {"type": "message", "user": super::BOT_USER, "bot_id": "B0BOT",
                            "text": "approve?", "ts": message_ts},
                "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
                "actions": [{"type": "button", "action_id": action, "block_id": "b1",
                             "text": {"type": "plain_text", "text": action},
                             "value": value, "action_ts": "1700000100.000001"}]
            }
        })
    }

    pub fn disconnect() -> Value {
        json!({"type": "disconnect", "reason": "refresh_requested",
               "debug_info": {"host": "fake-slack"}})
    }
}
