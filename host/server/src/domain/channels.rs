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

/// Who asks to join a channel: a user's API token, or a session's `ws_` token.
pub enum Caller {
    User(Principal),
    Session(Box<crate::store::Session>),
}

impl Caller {
    /// Whoever `token` (a bearer, without `Bearer `) belongs to; `AUTH_005` when nobody.
    pub async fn from_token(store: &dyn Store, token: &str) -> Result<Self> {
        if token.starts_with(super::sessions::WS_TOKEN_PREFIX) {
            let session = super::sessions::by_ws_token(store, token).await?;
            Ok(Caller::Session(Box::new(session)))
        } else {
            Ok(Caller::User(
                super::accounts::authenticate(store, token).await?,
            ))
        }
    }
}

/// A subscription decided: what the caller may do there, and who they are to presence members
/// (`{user_id, user_info}`).
pub struct Admission {
    pub access: Access,
    pub member: serde_json::Value,
}

/// Decides whether `caller` may join `channel` — the one rule behind both doors, the signing
/// endpoint (`POST /api/broadcasting/auth`) and a token given inside `pusher:subscribe`. A
/// session's `ws_` token opens that session's channel and nothing else, typing only if the
/// token that minted it could.
pub async fn admit(store: &dyn Store, caller: &Caller, channel: &str) -> Result<Admission> {
    match caller {
        Caller::User(principal) => {
            let access = authorize(store, principal, channel).await?;
            Ok(Admission {
                access,
                member: serde_json::json!({
                    "user_id": principal.user.id.to_string(),
                    "user_info": { "name": principal.user.name },
                }),
            })
        }
        Caller::Session(session) => {
            if channel != super::channel_names::session_channel(session.id) {
                return Err(ApiError::new(ErrorCode::Forbidden)
                    .with_message("This token only opens its session's channel."));
            }
            Ok(Admission {
                access: Access {
                    writable: session.ws_token_write,
                },
                member: serde_json::json!({ "user_id": session.user_id.to_string(), "user_info": {} }),
            })
        }
    }
}
