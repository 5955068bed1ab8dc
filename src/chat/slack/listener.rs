//! Socket Mode. slack-morphism acks an envelope after our callback returns
//! and reads a connection's envelopes one at a time, so the callbacks only
//! hand the input to a channel and return; a pump task does the checks
//! (channel, bots, duplicates) and forwards commands to the engine.
//! Reconnects (socket closed, `disconnect` envelope) are the library's.

use std::sync::Arc;

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tokio::sync::mpsc;

use super::client::BotIdentity;
use super::dedupe::Dedupe;
use super::home::Home;
use super::inbound::{self, Action, Inbound, What};
use super::routing::{Channels, parse_button_value};
use crate::chat::Incoming;
use crate::domain::ids::ChatUser;

/// The callbacks' way out (they are plain `fn`s: state goes through the
/// listener environment).
struct Forward {
    tx: mpsc::UnboundedSender<Inbound>,
    channels: Channels,
}

/// Not an error: how a slash-command callback asks for a bare ack (no
/// payload, so Slack shows nothing until the answer comes).
#[derive(Debug)]
struct BareAck;

impl std::fmt::Display for BareAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bare ack")
    }
}

impl std::error::Error for BareAck {}

/// `/trainbot …`: acked at once (the callback does no I/O, well within
/// Slack's 3 s); in one of our channels it is a command like a typed one,
/// anywhere else the ack itself says, privately, where it works.
async fn on_command(
    ev: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let ours = {
        let states = states.read().await;
        let forward = states.get_user_state::<Forward>();
        forward.map(|f| {
            (
                f.channels.configured(&ev.channel_id.0).is_some(),
                f.channels.names(),
            )
        })
    };
    match ours {
        Some((true, _)) => {
            forward(&states, inbound::from_command(&ev)).await;
            Err(Box::new(BareAck))
        }
        Some((false, names)) => {
            tracing::info!(user = %ev.user_id, channel = %ev.channel_id, "A slash command outside the bot's channels.");
            let text = format!(
                "trainbot only takes commands in its channels: {}",
                names.join(", ")
            );
            Ok(
                SlackCommandEventResponse::new(SlackMessageContent::new().with_text(text))
                    .with_response_type(SlackMessageResponseType::Ephemeral),
            )
        }
        None => Err(Box::new(BareAck)),
    }
}

async fn on_push(
    ev: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    if let Some(input) = inbound::from_push(&ev) {
        forward(&states, input).await;
    }
    Ok(())
}

async fn on_interaction(
    ev: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    if let Some(input) = inbound::from_interaction(&ev) {
        forward(&states, input).await;
    }
    Ok(())
}

async fn forward(states: &SlackClientEventsUserState, input: Inbound) {
    if let Some(f) = states.read().await.get_user_state::<Forward>() {
        let _ = f.tx.send(input);
    }
}

/// Frames that do not parse are logged and still acked (a 2xx here), so
/// Slack does not send them again and again.
fn on_error(
    error: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    if error.downcast_ref::<BareAck>().is_some() {
        return HttpStatusCode::OK;
    }
    let text = error.to_string();
    tracing::warn!(error = %text.lines().next().unwrap_or_default(), "Slack Socket Mode error.");
    HttpStatusCode::OK
}

/// Starts listening with the app token; inputs come out of `pump`.
pub async fn listen(
    client: Arc<SlackHyperClient>,
    app_token: &SlackApiToken,
    channels: Channels,
) -> Result<
    (
        SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
        mpsc::UnboundedReceiver<Inbound>,
    ),
    SlackClientError,
> {
    let (tx, rx) = mpsc::unbounded_channel();
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(client)
            .with_error_handler(on_error)
            .with_user_state(Forward { tx, channels }),
    );
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_push_events(on_push)
        .with_interaction_events(on_interaction)
        .with_command_events(on_command);
    // One connection: a second one would only start after 5 s and adds
    // nothing a reconnect does not (Slack sends each event to one socket).
    let config = SlackClientSocketModeConfig::new().with_max_connections_count(1);
    let listener = SlackClientSocketModeListener::new(&config, env, callbacks);
    listener.listen_for(app_token).await?;
    listener.start().await;
    Ok((listener, rx))
}

/// Checks each input and forwards the ones that are commands.
pub struct Pump {
    pub bot: BotIdentity,
    pub channels: Channels,
    pub dedupe: Dedupe,
    pub prefix: String,
    pub out: mpsc::Sender<Incoming>,
    pub home: Arc<Home>,
}

impl Pump {
    pub async fn run(&self, rx: &mut mpsc::UnboundedReceiver<Inbound>) {
        while let Some(input) = rx.recv().await {
            if let Some(incoming) = self.check(input).await
                && self.out.send(incoming).await.is_err()
            {
                return;
            }
        }
    }

    async fn check(&self, input: Inbound) -> Option<Incoming> {
        if input.what == What::HomeOpened {
            tracing::debug!(user = input.user, "Slack Home tab opened.");
            // Aside: a slow views.publish must not hold up commands.
            let home = self.home.clone();
            tokio::spawn(async move { home.opened(&input.user).await });
            return None;
        }
        // A click in someone's DM with the bot (a reminder's buttons)
        // counts like one in the channel: its value names the train (and
        // the pipeline); no channel, so every pipeline may take it.
        let in_dm = matches!(input.what, What::Click { .. })
            && input.channel.as_deref().is_some_and(|c| c.starts_with('D'));
        let channel = if in_dm {
            None
        } else {
            Some(
                input
                    .channel
                    .as_deref()
                    .and_then(|id| self.channels.configured(id))?
                    .to_string(),
            )
        };
        if input.user == self.bot.user {
            return None;
        }
        if !self.dedupe.first_time(&input.keys) {
            tracing::info!(keys = ?input.keys, "Slack delivered an event again; ignored.");
            return None;
        }
        let user = ChatUser::new(input.user.clone());
        match input.what {
            What::Text(text) => {
                let text = inbound::strip_mention(&text, &self.bot.user).to_string();
                tracing::debug!(user = %user, "Slack message in the channel.");
                Some(Incoming {
                    user,
                    text,
                    button: false,
                    train: None,
                    channel: channel.clone(),
                    pipeline: None,
                    thread: input.thread,
                })
            }
            What::Slash(text) => {
                // `/trainbot` alone asks for help.
                let text = if text.is_empty() {
                    format!("{}help", self.prefix)
                } else {
                    format!("{}{text}", self.prefix)
                };
                tracing::info!(user = %user, command = text, "Slack slash command.");
                Some(Incoming {
                    user,
                    text,
                    button: false,
                    train: None,
                    channel: channel.clone(),
                    pipeline: None,
                    thread: None,
                })
            }
            What::HomeOpened => None,
            What::Click { action, train } => {
                // The button's value is its train's id (and pipeline, when
                // there are several); whether that train still waits is the
                // engine's to say ("train #12 already ended"), so a stale
                // click never counts for another train.
                let Some((pipeline, id)) = parse_button_value(&train) else {
                    tracing::warn!(user = %user, value = %train, "A button without a train id; ignored.");
                    return None;
                };
                let text = match action {
                    Action::Good => format!("{}good {}", self.prefix, id.0),
                    Action::Bad => format!("{}bad", self.prefix),
                };
                tracing::info!(user = %user, command = text, train = id.0, ?pipeline, "Slack button clicked.");
                Some(Incoming {
                    user,
                    text,
                    button: true,
                    train: Some(id),
                    channel: channel.clone(),
                    pipeline,
                    thread: None,
                })
            }
        }
    }
}
