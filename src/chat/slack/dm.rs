//! Direct messages: a reminder to one person, in their DM with the bot
//! (`conversations.open` with the user, then `chat.postMessage` there),
//! with the train's Good / Bad buttons. The buttons carry the same value as
//! the channel's approval request, so a click counts for that train the
//! same way (the listener accepts clicks from the DM: see `Pump::check`).

use slack_morphism::prelude::*;

use super::blocks;
use super::client::{Web, retrying};
use crate::domain::ids::ChatUser;

/// Opens (or finds) the DM with `to`; its channel id.
pub async fn open(web: &Web, to: &ChatUser) -> Option<SlackChannelId> {
    let req = SlackApiConversationsOpenRequest::new()
        .with_users(vec![SlackUserId(to.as_str().to_string())]);
    let session = web.session();
    let opened = retrying("conversations.open", || session.conversations_open(&req)).await?;
    Some(opened.channel.id)
}

/// Sends `text` to `to` privately, with Good / Bad buttons whose value is
/// `button_value` (`Keys::button_value` of the train). The DM's channel id,
/// or None when Slack refused (logged by the call).
pub async fn remind(
    web: &Web,
    to: &ChatUser,
    button_value: &str,
    text: &str,
) -> Option<SlackChannelId> {
    let channel = open(web, to).await?;
    let content = blocks::reminder(button_value, text);
    web.post(&channel, content, None, false).await?;
    Some(channel)
}
