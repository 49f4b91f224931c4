//! Who may subscribe to which realtime channel (API §11). Public channels are open to every
//! connection; `private-` and `presence-` channels need a signature from
//! `POST /api/broadcasting/auth`, which this module decides.

use uuid::Uuid;

use super::{abilities, accounts::Principal};
use crate::{
    error::{ApiError, ErrorCode, Result},
    store::Store,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Public,
    Private,
    Presence,
}

impl ChannelKind {
    pub fn of(channel: &str) -> Self {
        if channel.starts_with("presence-") {
            ChannelKind::Presence
        } else if channel.starts_with("private-") {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        }
    }
}

/// Pusher's channel-name alphabet, bounded in length.
pub fn is_valid_name(channel: &str) -> bool {
    (1..=164).contains(&channel.len())
        && channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
}

pub fn user_channel(user_id: Uuid) -> String {
    format!("private-user.{user_id}")
}

pub fn machine_channel(machine_id: Uuid) -> String {
    format!("private-machine.{machine_id}")
}

/// What a subscriber may do on a channel it joined: watch, or also send client events
/// (typing, resizing and terminating on a session's channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub writable: bool,
}

/// The abilities a channel family asks for: to join, and to send client events on it.
fn abilities_of(family: &str) -> Option<(&'static str, &'static str)> {
    Some(match family {
        "user" | "machine" => (abilities::MACHINES_READ, abilities::MACHINES_WRITE),
        "project" => (abilities::PROJECTS_READ, abilities::PROJECTS_WRITE),
        "session" => (abilities::SESSIONS_READ, abilities::SESSIONS_WRITE),
        _ => return None,
    })
}

/// Succeeds when `principal` may join `channel` — it is theirs and their token holds the
/// family's read ability — and says whether it may also send client events (the write
/// ability); otherwise `AUTH_006` (403). Every channel not listed here is refused.
pub async fn authorize(store: &dyn Store, principal: &Principal, channel: &str) -> Result<Access> {
    let forbidden = || {
        ApiError::new(ErrorCode::Forbidden)
            .with_message(format!("You may not subscribe to `{channel}`."))
    };
    let (kind, rest) = channel
        .strip_prefix("private-")
        .or_else(|| channel.strip_prefix("presence-"))
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(forbidden)?;
    let id: Uuid = rest.parse().map_err(|_| forbidden())?;
    let (read, write) = abilities_of(kind).ok_or_else(forbidden)?;
    principal.require(read)?;
    let allowed = match kind {
        "user" => id == principal.user.id,
        "machine" => store.machine(principal.user.id, id).await?.is_some(),
        "project" => store.project(principal.user.id, id).await?.is_some(),
        "session" => store.session(principal.user.id, id).await?.is_some(),
        _ => false,
    };
    if !allowed {
        return Err(forbidden());
    }
    Ok(Access {
        writable: principal.can(write),
    })
}
