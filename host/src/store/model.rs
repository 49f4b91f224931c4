//! Rows as the domain sees them. Both backends decode into these same types.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::protocol::Ipv4Network;

/// A person with an account.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    /// Trimmed and lower-cased.
    pub email: String,
    /// argon2id PHC string; `None` for accounts that only sign in through OAuth.
    pub password_hash: Option<String>,
    pub avatar_url: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A personal API token (`cn_…`). Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub abilities: Json<Vec<String>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiToken {
    /// Not revoked and not past its expiry at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A token and the user it belongs to, read in one round trip (every authenticated request).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenWithOwner {
    #[sqlx(flatten)]
    pub token: ApiToken,
    #[sqlx(flatten)]
    owner: OwnerColumns,
}

impl TokenWithOwner {
    pub fn into_parts(self) -> (ApiToken, User) {
        let o = self.owner;
        let user = User {
            id: o.owner_id,
            name: o.owner_name,
            email: o.owner_email,
            password_hash: o.owner_password_hash,
            avatar_url: o.owner_avatar_url,
            email_verified_at: o.owner_email_verified_at,
            created_at: o.owner_created_at,
            updated_at: o.owner_updated_at,
        };
        (self.token, user)
    }
}

/// The `users` columns of [`TokenWithOwner`], prefixed so they do not clash with the token's.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct OwnerColumns {
    owner_id: Uuid,
    owner_name: String,
    owner_email: String,
    owner_password_hash: Option<String>,
    owner_avatar_url: Option<String>,
    owner_email_verified_at: Option<DateTime<Utc>>,
    owner_created_at: DateTime<Utc>,
    owner_updated_at: DateTime<Utc>,
}

/// A user's account at an OAuth provider.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OAuthIdentity {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `github` or `google`.
    pub provider: String,
    /// The provider's stable id for the user.
    pub subject: String,
    pub created_at: DateTime<Utc>,
}

/// A started OAuth authorization, waiting for its callback.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OAuthState {
    pub state_hash: Vec<u8>,
    pub provider: String,
    pub pkce_verifier: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A password-reset link that was sent. Only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PasswordReset {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A computer where Claude Code runs (API §3). Settings come from the user; the environment
/// fields from the agent's `hello`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Machine {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// SHA-256 of the `mn_` token.
    pub token_hash: Vec<u8>,
    pub platform: Option<String>,
    pub hostname: Option<String>,
    pub arch: Option<String>,
    pub node_version: Option<String>,
    pub agent_version: Option<String>,
    pub claude_version: Option<String>,
    pub claude_path: Option<String>,
    pub capabilities: Json<Vec<String>>,
    pub max_sessions: i32,
    pub mac_addresses: Json<Vec<String>>,
    pub networks: Json<Vec<Ipv4Network>>,
    pub wol_mac: Option<String>,
    pub wol_broadcast: String,
    pub wol_port: i32,
    /// As last recorded; see `domain::machines::MachineStatus::of` for what it means now.
    pub status: String,
    pub status_at: DateTime<Utc>,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which machines a list shows.
#[derive(Debug, Clone, Default)]
pub struct MachineFilter {
    /// Case-insensitive substring of the name or hostname.
    pub search: Option<String>,
    /// `online`, `offline` or `connecting`, judged with the cut-offs below.
    pub status: Option<String>,
    /// An `online` record older than this is offline (its host stopped confirming it).
    pub online_after: DateTime<Utc>,
    /// A `connecting` record older than this is offline (the wake did not work).
    pub connecting_after: DateTime<Utc>,
}

/// An agent waiting for its user to enter the code it shows.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Pairing {
    pub code_hash: Vec<u8>,
    /// SHA-256 of the `mn_` token the agent generated and keeps; the host never sees it.
    pub token_hash: Vec<u8>,
    pub hostname: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
