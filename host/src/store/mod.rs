//! Storage: one domain-level trait, two backends.
//!
//! [`Store`] speaks in what the service does (`insert_user`, `token_with_owner`), never in SQL.
//! [`SqliteStore`] is the embedded default; [`PgStore`] is the production store that several host
//! processes can share. Both run the same migrations (`migrations/sqlite`, `migrations/postgres`,
//! same file names) and the same test suite (`tests/tests/storage.rs`).
//!
//! Every method that reads a user-owned row by id also takes the owner's id, so a forgotten
//! ownership check cannot leak another user's row.

mod model;
mod postgres;
mod shared;
pub(crate) mod sql;
mod sqlite;
mod sqlite_vec;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use model::*;

use crate::protocol::Environment;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What can go wrong below the domain. Domain code turns these into API errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. an e-mail address already registered).
    #[error("a row with the same unique key already exists")]
    Conflict,
    #[error("unsupported database url (expected sqlite://… or postgres://…)")]
    UnsupportedUrl,
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        // Detected by kind, not by constraint name: SQLite does not report names.
        match err.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend a [`Store`] is, as reported by `/api/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// The storage contract every backend fulfils.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn kind(&self) -> StoreKind;

    /// A cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Applies pending migrations (safe to call from several processes at once on PostgreSQL).
    async fn migrate(&self) -> StoreResult<()>;

    /// Closes the pool, waiting for checked-out connections to come back.
    async fn close(&self);

    // --- accounts -------------------------------------------------------------------------

    /// Fails with [`StoreError::Conflict`] when the e-mail address is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Sets `email_verified_at` unless already set, and `avatar_url` unless already set.
    async fn confirm_user_email(
        &self,
        user_id: Uuid,
        at: DateTime<Utc>,
        avatar_url: Option<&str>,
    ) -> StoreResult<()>;
    /// Replaces the password hash and revokes every token of the user, atomically.
    async fn reset_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn insert_token(&self, token: &ApiToken) -> StoreResult<()>;
    /// The token with this SHA-256 hash (revoked or not: the caller judges validity) and its
    /// owner, in one round trip: this is the authentication path.
    async fn token_with_owner(&self, hash: &[u8]) -> StoreResult<Option<(ApiToken, User)>>;
    /// Records use; only moves `last_used_at` forward.
    async fn touch_token(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    async fn tokens_of_user(&self, user_id: Uuid) -> StoreResult<Vec<ApiToken>>;
    /// Returns false when the user has no such (unrevoked) token.
    async fn revoke_token(
        &self,
        user_id: Uuid,
        token_id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    // --- OAuth -----------------------------------------------------------------------------

    /// Creates an account and its first identity together, or neither.
    async fn insert_user_with_identity(
        &self,
        user: &User,
        identity: &OAuthIdentity,
    ) -> StoreResult<()>;
    async fn insert_oauth_identity(&self, identity: &OAuthIdentity) -> StoreResult<()>;
    async fn user_by_oauth_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<User>>;
    /// Stores a started authorization (and sweeps expired ones).
    async fn insert_oauth_state(&self, state: &OAuthState) -> StoreResult<()>;
    /// Removes and returns the authorization with this state hash: each state works once.
    async fn take_oauth_state(&self, state_hash: &[u8]) -> StoreResult<Option<OAuthState>>;

    // --- password resets --------------------------------------------------------------------

    async fn insert_password_reset(&self, reset: &PasswordReset) -> StoreResult<()>;
    /// Marks the user's reset with this hash used, if it is unused and unexpired at `now`.
    async fn consume_password_reset(
        &self,
        user_id: Uuid,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PasswordReset>>;

    // --- machines ---------------------------------------------------------------------------

    /// Fails with `Conflict` when the user already has a machine of that name.
    async fn insert_machine(&self, machine: &Machine) -> StoreResult<()>;
    async fn machine(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<Machine>>;
    /// The machine an `mn_` token belongs to (the agent link and machine-token calls).
    async fn machine_by_token_hash(&self, hash: &[u8]) -> StoreResult<Option<Machine>>;
    /// One page of the user's machines (by name) and how many match in all.
    async fn machines_page(
        &self,
        user_id: Uuid,
        filter: &MachineFilter,
        limit: u64,
        offset: u64,
    ) -> StoreResult<(Vec<Machine>, u64)>;
    /// Saves the user-editable settings of `machine`; `Conflict` on a taken name.
    async fn update_machine_settings(&self, machine: &Machine) -> StoreResult<bool>;
    async fn delete_machine(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool>;
    async fn set_machine_token(
        &self,
        user_id: Uuid,
        id: Uuid,
        token_hash: &[u8],
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The agent said hello: store its environment and `capabilities`, mark the machine online.
    async fn record_machine_hello(
        &self,
        id: Uuid,
        environment: &Environment,
        capabilities: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The link is alive (a pong came back): move `last_seen_at` and keep `online` fresh.
    async fn record_machine_seen(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    async fn set_machine_status(
        &self,
        id: Uuid,
        status: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Stores a pairing request (and sweeps expired ones).
    async fn insert_pairing(&self, pairing: &Pairing) -> StoreResult<()>;
    /// Removes and returns the pairing with this code hash: each code works once.
    async fn take_pairing(&self, code_hash: &[u8]) -> StoreResult<Option<Pairing>>;

    // --- events across host processes -------------------------------------------------------

    /// Sends an event payload to every host process sharing this database (PostgreSQL:
    /// `NOTIFY`). A no-op where there is nobody else (SQLite).
    async fn send_event(&self, payload: &str) -> StoreResult<()>;
    /// Payloads other processes sent, or `None` when this store has no such channel (SQLite).
    async fn listen_events(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<String>>>;
}

/// Ties a backend to its sqlx database type, for helpers shared through `store_impl!`.
pub trait Backend {
    type Db: sqlx::Database;
}

/// Opens the store a database URL names and runs its migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(url).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(PgStore::connect(url).await?)
    } else {
        return Err(StoreError::UnsupportedUrl);
    };
    store.migrate().await?;
    Ok(store)
}
