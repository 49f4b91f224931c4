//! Storage: one domain-level trait, two backends.
//!
//! [`Store`] speaks in what the service does (`insert_user`, `token_with_owner`), never in SQL.
//! [`SqliteStore`] is the embedded default; [`PgStore`] is the production store that several host
//! processes can share. Both run the same migrations (`migrations/sqlite`, `migrations/postgres`,
//! same file names) and the same test suite (`tests/tests/e2e/storage.rs`).
//!
//! Every method that reads a user-owned row by id also takes the owner's id, so a forgotten
//! ownership check cannot leak another user's row.

pub mod clock;
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
/// The claim-next statement, for benchmarks that run it outside the store (pgbench).
pub use sql::claim_next as claim_next_statement;

use claudenest_protocol::Environment;
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
    /// What this backend leaves to its own tools (a PostgreSQL backup: `pg_dump`).
    #[error("{0}")]
    Unsupported(&'static str),
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

/// What grows with use and is pruned by retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    Activity,
    /// Project activity beyond this many entries per project (the date is not used).
    ActivityBeyond(i64),
    SessionLogs,
    Deliveries,
    /// Answered or expired requests only: a pending one is never pruned.
    Permissions,
    RelayedEvents,
}

/// The storage contract every backend fulfils.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn kind(&self) -> StoreKind;

    /// A consistent copy of the whole database in a new file at `path`, taken while the
    /// store serves (SQLite: `VACUUM INTO`). PostgreSQL answers `Unsupported`: use `pg_dump`.
    async fn backup_into(&self, path: &std::path::Path) -> StoreResult<()>;

    /// Connections the pool holds, and how many of them are idle (for metrics).
    fn pool_stats(&self) -> (u32, usize);
    /// Sessions not ended yet, every user's (for metrics).
    async fn count_live_sessions(&self) -> StoreResult<i64>;
    /// Chunks waiting for an embedding by `model` (the embedding worker's queue).
    async fn count_unembedded_chunks(&self, model: &str) -> StoreResult<i64>;

    /// Deletes at most `limit` rows of `what` older than `before` (for `ActivityBeyond`, beyond
    /// that many per project, oldest first); how many went.
    async fn prune(&self, what: Prune, before: DateTime<Utc>, limit: i64) -> StoreResult<u64>;

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
    /// Replaces the password hash (`None`: no password) and revokes every token of the user,
    /// atomically.
    async fn reset_password(
        &self,
        user_id: Uuid,
        password_hash: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn insert_token(&self, token: &ApiToken) -> StoreResult<()>;
    /// The token with this SHA-256 hash (revoked or not: the caller judges validity) and its
    /// owner, in one round trip: this is the authentication path.
    async fn token_with_owner(&self, hash: &[u8]) -> StoreResult<Option<(ApiToken, User)>>;
    /// A token by id (to check the parent of a child token).
    async fn token(&self, id: Uuid) -> StoreResult<Option<ApiToken>>;
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

    // --- projects ---------------------------------------------------------------------------

    /// `Conflict` when the machine already has a project at that path.
    async fn insert_project(&self, project: &Project) -> StoreResult<()>;
    async fn project(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<Project>>;
    async fn projects_of_machine(
        &self,
        user_id: Uuid,
        machine_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ProjectListing>>;
    /// Saves the editable fields (owner-scoped).
    async fn update_project(&self, project: &Project) -> StoreResult<bool>;
    /// Deletes the project and everything in it.
    async fn delete_project(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool>;
    async fn project_counts(
        &self,
        project_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<ProjectCounts>;

    // --- instances --------------------------------------------------------------------------

    /// Registers or refreshes an instance (a disconnected one comes back idle).
    async fn touch_instance(
        &self,
        project_id: Uuid,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn report_instance(
        &self,
        project_id: Uuid,
        instance_id: &str,
        report: &InstanceReport,
    ) -> StoreResult<()>;
    /// The instance is now busy with `task_id`.
    async fn instance_took_task(
        &self,
        project_id: Uuid,
        instance_id: &str,
        task_id: Uuid,
    ) -> StoreResult<()>;
    /// The instance is done with `task_id` (`completed` adds to its count).
    async fn instance_dropped_task(
        &self,
        project_id: Uuid,
        instance_id: &str,
        task_id: Uuid,
        completed: bool,
    ) -> StoreResult<()>;
    async fn instances(&self, project_id: Uuid) -> StoreResult<Vec<Instance>>;
    /// Marks instances silent since before `cutoff` disconnected; returns them.
    async fn disconnect_stale_instances(&self, cutoff: DateTime<Utc>)
    -> StoreResult<Vec<Instance>>;

    // --- tasks ------------------------------------------------------------------------------

    /// Inserts a task and its dependencies together.
    async fn insert_task(&self, task: &Task, dependencies: &[Uuid]) -> StoreResult<()>;
    /// A task of one of the user's projects.
    async fn task(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<TaskRow>>;
    async fn tasks_page(
        &self,
        project_id: Uuid,
        status: Option<&str>,
        priority: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<(Vec<TaskRow>, u64)>;
    /// The ids of the project's tasks (for checking dependencies).
    async fn task_ids(&self, project_id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// What one task depends on.
    async fn dependencies_of(&self, task_id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Every `(task, depends_on)` edge in the project.
    async fn task_dependencies(&self, project_id: Uuid) -> StoreResult<Vec<(Uuid, Uuid)>>;
    /// Saves the editable fields; replaces the dependencies when given.
    async fn update_task(&self, task: &Task, dependencies: Option<&[Uuid]>) -> StoreResult<()>;
    async fn delete_task(&self, project_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// The task `claim_next_task` would take, without taking it.
    async fn next_available_task(&self, project_id: Uuid) -> StoreResult<Option<TaskRow>>;
    /// Atomically claims a pending, unblocked task; under any concurrency one caller wins.
    async fn claim_task(
        &self,
        id: Uuid,
        instance_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, ClaimRefusal>>;
    /// Atomically claims the next available task of the project, if any.
    async fn claim_next_task(
        &self,
        project_id: Uuid,
        instance_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Option<Task>>;
    /// Back to pending, if `instance_id` holds it.
    async fn release_task(
        &self,
        id: Uuid,
        instance_id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Task>>;
    /// Completed, if `instance_id` holds it.
    async fn complete_task(
        &self,
        id: Uuid,
        instance_id: &str,
        summary: &str,
        files_modified: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Task>>;
    /// Claims past their deadline go back to pending; returns them.
    async fn requeue_expired_claims(&self, now: DateTime<Utc>) -> StoreResult<Vec<Task>>;
    async fn requeue_tasks_of_instance(
        &self,
        project_id: Uuid,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Task>>;

    // --- file locks -------------------------------------------------------------------------

    /// Takes every path it can for `instance_id`, in one transaction serialised per project:
    /// a path overlapping (by `overlaps`) an unexpired lock of another instance is a
    /// `Conflict`; everything else is `Acquired` (a holder's own lock is extended).
    #[allow(clippy::too_many_arguments)]
    async fn acquire_locks(
        &self,
        project_id: Uuid,
        instance_id: &str,
        paths: &[String],
        reason: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        overlaps: PathOverlap,
    ) -> StoreResult<Vec<LockOutcome>>;
    async fn live_locks(&self, project_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<FileLock>>;
    /// Removes an unexpired lock: only the holder's when `holder` is given.
    async fn delete_lock(
        &self,
        project_id: Uuid,
        path: &str,
        holder: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<FileLock>>;
    async fn delete_locks_of_instance(
        &self,
        project_id: Uuid,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<FileLock>>;
    async fn extend_lock(
        &self,
        project_id: Uuid,
        path: &str,
        holder: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<FileLock>>;
    /// Deletes expired locks everywhere (a periodic sweep, not per request).
    async fn sweep_expired_locks(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // --- activity and context chunks ----------------------------------------------------------

    async fn insert_activity(&self, activity: &Activity) -> StoreResult<()>;
    async fn recent_activity(&self, project_id: Uuid, limit: u64) -> StoreResult<Vec<Activity>>;
    async fn insert_chunk(&self, chunk: &ContextChunk) -> StoreResult<()>;
    /// Live (unexpired at `now`) chunks of a project, newest first, with the total matching.
    async fn context_chunks(
        &self,
        project_id: Uuid,
        filter: &ChunkFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<(Vec<ContextChunk>, u64)>;
    async fn delete_context_chunk(&self, project_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// Removes chunks that expired by `now`; returns how many.
    async fn delete_expired_chunks(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Chunks (any project) with no embedding from `model`, oldest first.
    async fn chunks_to_embed(&self, model: &str, limit: u64) -> StoreResult<Vec<ContextChunk>>;
    /// Stores (or replaces) embeddings: `(chunk id, project id, vector)`.
    async fn put_embeddings(&self, model: &str, rows: &[(Uuid, Uuid, Vec<f32>)])
    -> StoreResult<()>;
    /// The live chunks of the project nearest to `query` among those embedded by `model`,
    /// with cosine similarity, most similar first.
    async fn nearest_chunks(
        &self,
        project_id: Uuid,
        search: &ChunkSearch<'_>,
        query: &[f32],
    ) -> StoreResult<Vec<(ContextChunk, f64)>>;
    /// Live chunks of the project whose text matches any of `words` (full-text index, with
    /// stemming), best first, with a text score in [0, 1). `pending_only`: only chunks not
    /// embedded by `search.model` yet.
    async fn text_matches(
        &self,
        project_id: Uuid,
        search: &ChunkSearch<'_>,
        words: &[String],
        pending_only: bool,
    ) -> StoreResult<Vec<(ContextChunk, f64)>>;

    // --- sessions ---------------------------------------------------------------------------

    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    async fn session(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<Session>>;
    /// For the agent link, which acts for the machine, not a user.
    async fn session_by_id(&self, id: Uuid) -> StoreResult<Option<Session>>;
    /// Removes the user's session with its logs and tokens; `false` when there was none.
    async fn delete_session(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool>;
    async fn session_by_ws_token(&self, hash: &[u8]) -> StoreResult<Option<Session>>;
    async fn sessions_page(
        &self,
        machine_id: Uuid,
        status: Option<SessionStatus>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<(Vec<Session>, u64)>;
    /// Sessions holding a slot on the machine (not ended).
    async fn active_sessions(&self, machine_id: Uuid) -> StoreResult<i64>;
    /// Moves a live session to `status` (an ended one stays ended); returns it when it moved.
    /// When that ends it, its pending permission requests expire with it.
    async fn set_session_status(
        &self,
        id: Uuid,
        status: SessionStatus,
        exit_code: Option<i32>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
    async fn set_session_size(
        &self,
        id: Uuid,
        cols: i32,
        rows: i32,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// A new `ws_` token for the session, minted by the API token `parent`.
    async fn set_session_ws_token(
        &self,
        id: Uuid,
        hash: &[u8],
        parent: Uuid,
        write: bool,
    ) -> StoreResult<()>;
    /// Appends log entries in one transaction and moves `last_seq` to the highest output seq.
    /// An output entry whose `seq` is already logged is skipped (a resend after a reconnect).
    async fn append_session_logs(&self, session_id: Uuid, logs: &[SessionLog]) -> StoreResult<()>;
    /// Removes the session's output entries up to `through_seq`; returns how many.
    async fn trim_session_output(&self, session_id: Uuid, through_seq: i64) -> StoreResult<u64>;
    /// The session with its new usage; `None` when it is gone.
    async fn set_session_usage(
        &self,
        id: Uuid,
        total_tokens: i64,
        total_cost: f64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
    /// `running` or `waiting_input` with why; `None` when the session is not live.
    async fn set_session_waiting(
        &self,
        id: Uuid,
        status: SessionStatus,
        reason: Option<&str>,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
    /// Back to `running` when the session still waits for `reason` (`None`: it moved on).
    async fn end_session_wait(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
    async fn set_session_stop_reason(&self, id: Uuid, reason: &str) -> StoreResult<()>;
    /// True for the one caller that marked the 80 % warning sent.
    async fn mark_budget_warned(&self, id: Uuid) -> StoreResult<bool>;
    /// Sessions the user started in a project (machine and path) since `since`.
    async fn sessions_started_since(
        &self,
        user_id: Uuid,
        machine_id: Uuid,
        project_path: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Tokens and cost of every session in a project (machine and path).
    async fn project_usage(&self, machine_id: Uuid, project_path: &str) -> StoreResult<(i64, f64)>;

    async fn insert_permission_request(&self, p: &PermissionRequest) -> StoreResult<()>;
    async fn permission_request(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<PermissionRequest>>;
    async fn permission_requests_of_session(
        &self,
        session_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<PermissionRequest>>;
    /// The request answered, when it was still pending.
    async fn answer_permission_request(
        &self,
        id: Uuid,
        status: &str,
        message: Option<&str>,
        answered_by: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PermissionRequest>>;
    /// The session's pending requests, now expired.
    async fn expire_permission_requests(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PermissionRequest>>;

    async fn insert_notification_target(&self, t: &NotificationTarget) -> StoreResult<()>;
    async fn notification_targets(&self, user_id: Uuid) -> StoreResult<Vec<NotificationTarget>>;
    async fn count_notification_targets(&self, user_id: Uuid) -> StoreResult<i64>;
    async fn delete_notification_target(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool>;
    async fn insert_delivery(&self, d: &NotificationDelivery) -> StoreResult<()>;
    async fn update_delivery(&self, d: &NotificationDelivery) -> StoreResult<()>;
    async fn deliveries(&self, user_id: Uuid, limit: i64)
    -> StoreResult<Vec<NotificationDelivery>>;
    async fn session_logs(
        &self,
        session_id: Uuid,
        filter: &LogFilter,
    ) -> StoreResult<Vec<SessionLog>>;

    // --- plugins ------------------------------------------------------------------------------

    /// `Conflict` when the user already has a plugin of that name.
    async fn insert_plugin(&self, plugin: &PluginRow, component: &[u8]) -> StoreResult<()>;
    async fn plugins(&self, user_id: Uuid) -> StoreResult<Vec<PluginRow>>;
    async fn plugin(&self, user_id: Uuid, name: &str) -> StoreResult<Option<PluginRow>>;
    async fn plugin_component(&self, id: Uuid) -> StoreResult<Option<Vec<u8>>>;
    /// Also disables it everywhere.
    async fn delete_plugin(&self, user_id: Uuid, name: &str) -> StoreResult<bool>;
    async fn enable_plugin(&self, enabled: &MachinePlugin) -> StoreResult<()>;
    async fn machine_plugins(&self, machine_id: Uuid) -> StoreResult<Vec<MachinePlugin>>;
    async fn machine_plugin(
        &self,
        machine_id: Uuid,
        plugin_id: Uuid,
    ) -> StoreResult<Option<MachinePlugin>>;
    async fn disable_plugin(&self, machine_id: Uuid, plugin_id: Uuid) -> StoreResult<bool>;
    /// Every machine the plugin is enabled on.
    async fn plugin_enablements(&self, plugin_id: Uuid) -> StoreResult<Vec<MachinePlugin>>;
    /// Replaces the plugin's component with a new version, in one transaction: machines in
    /// `pinned_machines` stay on the old version (kept in `plugin_versions`), the others move;
    /// versions no machine runs any more are dropped.
    async fn upgrade_plugin(&self, upgrade: &PluginUpgrade<'_>) -> StoreResult<()>;
    /// An earlier version of the plugin a machine still runs: its manifest and component.
    async fn plugin_version(
        &self,
        plugin_id: Uuid,
        sha256: &str,
    ) -> StoreResult<Option<(sqlx::types::Json<serde_json::Value>, Vec<u8>)>>;

    // --- skills and MCP servers ----------------------------------------------------------------

    /// The machine's skills by path, tombstones included.
    async fn skills(&self, machine_id: Uuid) -> StoreResult<Vec<SkillRow>>;
    async fn skill(&self, machine_id: Uuid, path: &str) -> StoreResult<Option<SkillRow>>;
    /// Inserts or replaces the skill at `(machine_id, path)` (its id and creation stay).
    async fn upsert_skill(&self, skill: &SkillRow) -> StoreResult<()>;
    async fn delete_skill(&self, machine_id: Uuid, path: &str) -> StoreResult<bool>;
    async fn set_skill_synced(
        &self,
        machine_id: Uuid,
        path: &str,
        synced_hash: &str,
    ) -> StoreResult<()>;

    /// `Conflict` when the machine already has a server of that name.
    async fn insert_mcp_server(&self, server: &McpServerRow) -> StoreResult<()>;
    async fn mcp_servers(&self, machine_id: Uuid) -> StoreResult<Vec<McpServerRow>>;
    async fn mcp_server(&self, machine_id: Uuid, name: &str) -> StoreResult<Option<McpServerRow>>;
    /// Writes the configuration columns (not the run state).
    async fn update_mcp_server(&self, server: &McpServerRow) -> StoreResult<()>;
    async fn set_mcp_status(
        &self,
        machine_id: Uuid,
        name: &str,
        update: &McpStatusUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn delete_mcp_server(&self, machine_id: Uuid, name: &str) -> StoreResult<bool>;

    async fn insert_mcp_session_token(&self, token: &McpSessionToken) -> StoreResult<()>;
    async fn mcp_session_token(&self, token_hash: &[u8]) -> StoreResult<Option<McpSessionToken>>;

    // --- events across host processes -------------------------------------------------------

    /// Sends an event payload to every host process sharing this database (PostgreSQL:
    /// `NOTIFY`). A no-op where there is nobody else (SQLite).
    async fn send_event(&self, payload: &str) -> StoreResult<()>;
    /// Payloads other processes sent, or `None` when this store has no such channel (SQLite).
    async fn listen_events(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<String>>>;
}

/// Which chunks to list (API §7.5).
#[derive(Debug, Clone, Default)]
pub struct ChunkFilter {
    pub kind: Option<String>,
    pub instance_id: Option<String>,
    pub limit: u64,
    pub offset: u64,
}

/// A search over a project's chunks.
#[derive(Debug, Clone)]
pub struct ChunkSearch<'a> {
    pub model: &'a str,
    pub kind: Option<&'a str>,
    pub limit: u64,
    pub now: DateTime<Utc>,
}

/// Which log entries to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// One type; `None` means the terminal's (`input`, `output`, `error`), without `status`.
    pub kind: Option<String>,
    pub limit: u64,
    /// Output after this sequence, oldest first; otherwise the last `limit` entries, oldest
    /// first.
    pub after_seq: Option<i64>,
}

/// Whether two lock paths (or globs) overlap; supplied by the domain to `acquire_locks`.
/// An alias, so `async_trait` leaves its higher-ranked lifetimes alone.
pub type PathOverlap = fn(&str, &str) -> bool;

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
