//! The Web API side: tokens, the connector, start-up checks (`auth.test`,
//! the channels), and posting with retries.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use thiserror::Error;

use crate::config::SlackSettings;

/// Why the Slack adapter cannot start. `is_config` ones mean "fix the
/// configuration or the environment" (exit 2).
#[derive(Debug, Error)]
pub enum StartError {
    #[error("the environment variable {0} (the Slack {1} token) is not set or empty")]
    MissingToken(String, &'static str),
    #[error("Slack refused the {1} token from {0}: invalid_auth")]
    InvalidAuth(String, &'static str),
    #[error("Slack channel {0} not found (is the bot a member of it?)")]
    NoSuchChannel(String),
    #[error("cannot talk to Slack at {url}: {error}")]
    Api { url: String, error: String },
}

impl StartError {
    pub fn is_config(&self) -> bool {
        !matches!(self, StartError::Api { .. })
    }
}

/// The two tokens, read from the variables the config names. Their values
/// appear in no `Debug` output (slack-morphism redacts them).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub bot: SlackApiToken,
    pub app: SlackApiToken,
}

impl Tokens {
    pub fn from_env(cfg: &SlackSettings) -> Result<Tokens, StartError> {
        let read = |var: &str, what: &'static str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => {
                // Masked wherever it could appear from now on (SPEC §13).
                crate::secrets::register(&v);
                Ok(SlackApiToken::new(v.trim().to_string().into()))
            }
            _ => Err(StartError::MissingToken(var.to_string(), what)),
        };
        Ok(Tokens {
            bot: read(&cfg.bot_token_env, "bot")?,
            app: read(&cfg.app_token_env, "app")?,
        })
    }
}

/// A connector that also speaks plain http (for a local fake Slack); the
/// stock one is https-only. 429 answers are retried after `Retry-After`.
pub fn connector(api_url: &str) -> std::io::Result<SlackClientHyperHttpsConnector> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(SlackClientHyperConnector::from(https)
        .with_slack_api_url(api_url.trim_end_matches('/'))
        .with_rate_control(SlackApiRateControlConfig::new().with_max_retries(3)))
}

/// Who the bot is in Slack: its user id (its own messages carry a bot id
/// and are dropped anyway; mentions of it are stripped).
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub user: String,
}

/// The Web API with the bot token; every call names its channel.
#[derive(Clone)]
pub struct Web {
    client: Arc<SlackHyperClient>,
    token: SlackApiToken,
}

impl Web {
    /// Checks the bot token (`auth.test`) and finds the channels: each
    /// configured string with its id, in the order given.
    pub async fn connect(
        client: Arc<SlackHyperClient>,
        cfg: &SlackSettings,
        token: SlackApiToken,
        channels: &[String],
    ) -> Result<(Web, BotIdentity, Vec<(String, SlackChannelId)>), StartError> {
        let api_error = |error: SlackClientError| StartError::Api {
            url: cfg.api_url.clone(),
            error: error.to_string(),
        };
        let session = client.open_session(&token);
        let me = match session.auth_test().await {
            Ok(me) => me,
            Err(SlackClientError::ApiError(e)) if is_auth_error(&e.code) => {
                return Err(StartError::InvalidAuth(cfg.bot_token_env.clone(), "bot"));
            }
            Err(e) => return Err(api_error(e)),
        };
        let names: Vec<&str> = channels
            .iter()
            .filter(|c| channel_id(c).is_none())
            .map(|c| c.trim_start_matches('#'))
            .collect();
        let found = if names.is_empty() {
            HashMap::new()
        } else {
            find_channels(&session, &names).await.map_err(api_error)?
        };
        let mut resolved = Vec::with_capacity(channels.len());
        for configured in channels {
            let id = match channel_id(configured) {
                Some(id) => SlackChannelId(id),
                None => found
                    .get(configured.trim_start_matches('#'))
                    .cloned()
                    .ok_or_else(|| StartError::NoSuchChannel(configured.clone()))?,
            };
            tracing::info!(channel = configured, id = %id, "Slack channel found.");
            resolved.push((configured.clone(), id));
        }
        let bot = BotIdentity { user: me.user_id.0 };
        tracing::info!(bot_user = bot.user, "Connected to Slack.");
        Ok((Web { client, token }, bot, resolved))
    }

    pub fn session(&self) -> SlackClientSession<'_, SlackClientHyperHttpsConnector> {
        self.client.open_session(&self.token)
    }

    /// Posts in `channel` (in a thread with `thread_ts`); the new ts.
    pub async fn post(
        &self,
        channel: &SlackChannelId,
        content: SlackMessageContent,
        thread_ts: Option<SlackTs>,
        broadcast: bool,
    ) -> Option<SlackTs> {
        let mut req =
            SlackApiChatPostMessageRequest::new(channel.clone(), content).opt_thread_ts(thread_ts);
        if broadcast && req.thread_ts.is_some() {
            req = req.with_reply_broadcast(true);
        }
        let session = self.session();
        retrying("chat.postMessage", || session.chat_post_message(&req))
            .await
            .map(|r| r.ts)
    }

    /// Replaces the message at `ts`; false if that did not work.
    pub async fn update(
        &self,
        channel: &SlackChannelId,
        ts: SlackTs,
        content: SlackMessageContent,
    ) -> bool {
        let req = SlackApiChatUpdateRequest::new(channel.clone(), content, ts);
        let session = self.session();
        retrying("chat.update", || session.chat_update(&req))
            .await
            .is_some()
    }

    /// A message only `user` sees.
    pub async fn ephemeral(
        &self,
        channel: &SlackChannelId,
        user: &str,
        content: SlackMessageContent,
        thread_ts: Option<SlackTs>,
    ) {
        let req = SlackApiChatPostEphemeralRequest::new(
            channel.clone(),
            SlackUserId(user.to_string()),
            content,
        )
        .opt_thread_ts(thread_ts);
        let session = self.session();
        retrying("chat.postEphemeral", || session.chat_post_ephemeral(&req)).await;
    }
}

/// Checks the app token before Socket Mode starts: the library would only
/// log a refused one every 30 s. The connection URL it gets is not used.
pub async fn check_app_token(
    client: &SlackHyperClient,
    cfg: &SlackSettings,
    token: &SlackApiToken,
) -> Result<(), StartError> {
    let session = client.open_session(token);
    match session
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
    {
        Ok(_) => Ok(()),
        Err(SlackClientError::ApiError(e)) if is_auth_error(&e.code) => {
            Err(StartError::InvalidAuth(cfg.app_token_env.clone(), "app"))
        }
        Err(e) => Err(StartError::Api {
            url: cfg.api_url.clone(),
            error: e.to_string(),
        }),
    }
}

fn is_auth_error(code: &str) -> bool {
    matches!(
        code,
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired"
    )
}

/// `C0123ABC` / `G…` is an id; `#deploys` or `deploys` is a name.
fn channel_id(channel: &str) -> Option<String> {
    let looks_like_id = channel.len() >= 9
        && channel.starts_with(['C', 'G'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    looks_like_id.then(|| channel.to_string())
}

/// One walk through the channel list finds every name: the first page may
/// already hold them all.
async fn find_channels(
    session: &SlackClientSession<'_, SlackClientHyperHttpsConnector>,
    names: &[&str],
) -> Result<HashMap<String, SlackChannelId>, SlackClientError> {
    let mut found = HashMap::new();
    let mut cursor = None;
    // Bounded: a workspace with more than 100k channels is not expected.
    for _ in 0..100 {
        let req = SlackApiConversationsListRequest::new()
            .with_limit(1000)
            .with_exclude_archived(true)
            .with_types(vec![
                SlackConversationType::Public,
                SlackConversationType::Private,
            ])
            .opt_cursor(cursor);
        let page = session.conversations_list(&req).await?;
        for c in &page.channels {
            if let Some(name) = c.name.as_deref().filter(|n| names.contains(n)) {
                found
                    .entry(name.to_string())
                    .or_insert_with(|| c.id.clone());
            }
        }
        if names.iter().all(|n| found.contains_key(*n)) {
            break;
        }
        cursor = page
            .response_metadata
            .and_then(|m| m.next_cursor)
            .filter(|c| !c.0.is_empty());
        if cursor.is_none() {
            break;
        }
    }
    Ok(found)
}

/// Runs a Web API call, retrying what may pass on a second try (network
/// errors, 5xx, Slack's own hiccups) with backoff. Gives up with a warning:
/// a lost chat message never stops a train.
pub async fn retrying<T, F, Fut>(method: &str, call: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ClientResult<T>>,
{
    const ATTEMPTS: u32 = 4;
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        match call().await {
            Ok(v) => return Some(v),
            Err(error) => {
                let wait = match &error {
                    SlackClientError::RateLimitError(e) => e.retry_after.map(|d| d.max(delay)),
                    e if is_transient(e) => Some(delay),
                    _ => None,
                };
                match wait {
                    Some(wait) if attempt < ATTEMPTS => {
                        tracing::warn!(method, attempt, error = %one_line(&error), "Slack call failed; retrying.");
                        tokio::time::sleep(wait).await;
                        delay *= 2;
                    }
                    _ => {
                        tracing::warn!(method, attempt, error = %one_line(&error), "Slack call failed; giving up.");
                        return None;
                    }
                }
            }
        }
    }
    None
}

fn is_transient(error: &SlackClientError) -> bool {
    match error {
        SlackClientError::HttpError(e) => e.status_code.is_server_error(),
        SlackClientError::HttpProtocolError(_) | SlackClientError::EndOfStream(_) => true,
        SlackClientError::ApiError(e) => matches!(
            e.code.as_str(),
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
        ),
        _ => false,
    }
}

fn one_line(error: &SlackClientError) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_told_from_names() {
        assert_eq!(channel_id("C0123ABCD").as_deref(), Some("C0123ABCD"));
        assert_eq!(channel_id("G0123ABCD").as_deref(), Some("G0123ABCD"));
        assert_eq!(channel_id("#deploys"), None);
        assert_eq!(channel_id("deploys"), None);
        assert_eq!(channel_id("Cats"), None);
    }
}
