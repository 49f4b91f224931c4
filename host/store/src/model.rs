//! Rows as the domain sees them. Both backends decode into these same types.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use claudenest_protocol::Ipv4Network;

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

/// A codebase on a machine that Claude Code instances work on together (API §5).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub project_path: String,
    pub summary: String,
    pub architecture: String,
    pub conventions: String,
    pub current_focus: String,
    pub recent_changes: String,
    /// Copied from `settings.taskTimeoutMinutes` so claims can expire in SQL.
    pub task_timeout_minutes: i32,
    pub settings: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A project with the counts its list shows.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProjectListing {
    #[sqlx(flatten)]
    pub project: Project,
    pub active_instances_count: i64,
    pub pending_tasks_count: i64,
    /// Characters of unexpired context chunks (for the token estimate).
    pub chunk_chars: i64,
}

/// Numbers behind `GET /api/projects/{id}/stats`, counted from rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectCounts {
    pub total_tasks: i64,
    pub pending_tasks: i64,
    pub in_progress_tasks: i64,
    pub completed_tasks: i64,
    pub active_instances: i64,
    pub active_locks: i64,
    pub chunk_chars: i64,
}

/// A Claude Code process working on a project, named by the instance itself.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Instance {
    pub project_id: Uuid,
    pub instance_id: String,
    /// `idle`, `busy` or `disconnected`.
    pub status: String,
    pub current_task_id: Option<Uuid>,
    pub tasks_completed: i32,
    pub context_usage: f64,
    pub connected_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// What an instance reports about itself (every field optional).
#[derive(Debug, Clone, Default)]
pub struct InstanceReport {
    pub status: Option<String>,
    pub context_usage: Option<f64>,
}

/// A unit of work (API §6).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub description: String,
    pub priority: String,
    /// 1 (low) to 4 (critical): what the claim order sorts by.
    pub priority_rank: i32,
    pub status: String,
    pub assigned_to: Option<String>,
    pub files: Json<Vec<String>>,
    pub estimated_tokens: Option<i64>,
    pub summary: Option<String>,
    pub files_modified: Json<Vec<String>>,
    pub release_reason: Option<String>,
    pub claim_expires_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A task as read, with whether unfinished dependencies block it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRow {
    #[sqlx(flatten)]
    pub task: Task,
    pub is_blocked: bool,
}

/// Why a claim did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefusal {
    NotFound,
    AlreadyClaimed,
    Blocked,
}

/// A held lock on a path or glob within a project (API §8).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FileLock {
    pub project_id: Uuid,
    pub path: String,
    pub locked_by: String,
    pub reason: Option<String>,
    pub locked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One path's outcome in an acquire.
#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    /// Now held (new, taken over from an expired lock, or extended by its holder).
    Acquired(FileLock),
    /// Another instance holds an overlapping lock.
    Conflict(FileLock),
}

/// An entry in a project's activity log (API §5.8).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Activity {
    pub id: Uuid,
    pub project_id: Uuid,
    pub instance_id: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub details: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Shared knowledge an instance recorded (API §7); embeddings come with the RAG issue.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ContextChunk {
    pub id: Uuid,
    pub project_id: Uuid,
    pub instance_id: Option<String>,
    pub task_id: Option<Uuid>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub content: String,
    pub files: Json<Vec<String>>,
    pub importance_score: f64,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Where a session is in its life. Stored as its snake_case name (a TEXT column on both stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    Created,
    Starting,
    Running,
    WaitingInput,
    Completed,
    Error,
    Terminated,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 7] = [
        Self::Created,
        Self::Starting,
        Self::Running,
        Self::WaitingInput,
        Self::Completed,
        Self::Error,
        Self::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::WaitingInput => "waiting_input",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Terminated => "terminated",
        }
    }

    /// `None` for a name that is not a status.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// An ended session stays ended: it holds no slot on its machine and takes no input.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Completed | Self::Error | Self::Terminated)
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Stored as text on both backends: the column stays TEXT, so no migration and no database enum
// type to keep in step.
impl<DB: sqlx::Database> sqlx::Type<DB> for SessionStatus
where
    str: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for SessionStatus
where
    &'static str: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&'static str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for SessionStatus
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let name = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
        Self::parse(name).ok_or_else(|| format!("unknown session status `{name}`").into())
    }
}

/// A Claude Code run on a machine (API §4).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub user_id: Uuid,
    pub mode: String,
    pub project_path: Option<String>,
    pub initial_prompt: Option<String>,
    pub status: SessionStatus,
    pub cols: i32,
    pub rows: i32,
    pub exit_code: Option<i32>,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub ws_token_hash: Vec<u8>,
    pub last_seq: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The API token that minted the `ws_` token: it dies with it.
    pub ws_token_parent: Option<Uuid>,
    /// Whether the `ws_` token may type, resize and terminate (its parent had
    /// `sessions:write`), or only watch.
    pub ws_token_write: bool,
    /// Why it waits for its person (`waiting_input`): `permission`, `idle_prompt`, …
    pub waiting_reason: Option<String>,
    /// What Claude Code said (the permission asked, the notification's text).
    pub waiting_message: Option<String>,
    /// Why ClaudeNest stopped it (`budget`).
    pub stop_reason: Option<String>,
    pub budget_tokens: Option<i64>,
    /// US dollars.
    pub budget_cost: Option<f64>,
    /// The 80 % warning went out.
    pub budget_warned: bool,
}

/// A tool Claude Code asked permission for in a session, and its answer (the audit trail).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PermissionRequest {
    pub id: Uuid,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub tool_name: String,
    pub tool_input: Json<serde_json::Value>,
    pub message: String,
    /// `pending`, `allowed`, `denied`, `expired`.
    pub status: String,
    pub answer_message: Option<String>,
    /// The API token that answered.
    pub answered_by: Option<Uuid>,
    pub answered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Where a user is told that a session needs them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NotificationTarget {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// `webhook`, `slack`, `ntfy`, `web_push`.
    pub kind: String,
    pub url: String,
    /// The webhook's signing key (shown once, when created).
    pub secret: Option<String>,
    pub push_p256dh: Option<String>,
    pub push_auth: Option<String>,
    /// Only this project's sessions (none: every session).
    pub project_id: Option<Uuid>,
    /// The kinds of notice wanted.
    pub events: Json<Vec<String>>,
    /// Whether notices may quote the terminal.
    pub include_terminal: bool,
    pub created_at: DateTime<Utc>,
}

/// One notice sent (or being sent) to one target.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NotificationDelivery {
    pub id: Uuid,
    pub target_id: Uuid,
    pub user_id: Uuid,
    pub event: String,
    pub session_id: Option<Uuid>,
    /// `pending`, `delivered`, `failed`.
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a session's log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SessionLog {
    pub id: Uuid,
    pub session_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub seq: Option<i64>,
    pub data: String,
    pub metadata: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// An installed plugin (without its component bytes; see `Store::plugin_component`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PluginRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub version: String,
    pub world: String,
    pub api_version: String,
    pub description: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub manifest: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// A plugin enabled on a machine, with the operator's config and grants.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MachinePlugin {
    pub machine_id: Uuid,
    pub plugin_id: Uuid,
    pub config: Json<serde_json::Value>,
    pub grants: Json<serde_json::Value>,
    pub enabled_at: DateTime<Utc>,
    /// An earlier version the machine stays on (an upgrade asked for more than it granted);
    /// `None`: the plugin's current version. Enabling again moves it to the current one.
    pub pinned_sha256: Option<String>,
}

/// What an upgrade in place changes: the plugin's row (same id, new version) and which
/// machines stay on the version it replaces.
#[derive(Debug, Clone)]
pub struct PluginUpgrade<'a> {
    pub old: &'a PluginRow,
    pub new: &'a PluginRow,
    pub component: &'a [u8],
    pub pinned_machines: &'a [Uuid],
}

/// A skill of a machine (API §9), as the API and the machine's skill folder share it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SkillRow {
    pub id: Uuid,
    pub machine_id: Uuid,
    /// The folder name under the machine's skills directory (`<path>/SKILL.md`).
    pub path: String,
    pub name: String,
    pub description: String,
    pub content: String,
    pub enabled: bool,
    pub priority: i64,
    pub metadata: Json<serde_json::Value>,
    pub size_bytes: i64,
    pub last_modified: DateTime<Utc>,
    /// sha256 of what the folder held when both sides last agreed: `Some("")` agreed absent,
    /// `None` never synced.
    pub synced_hash: Option<String>,
    /// Deleted through the API; kept until the agent has removed the file as well.
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
}

/// An MCP server a machine can run (API §10).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct McpServerRow {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub name: String,
    pub display_name: String,
    /// `stdio`, `http` or `wasm`.
    pub transport: String,
    pub command: Option<String>,
    pub args: Json<Vec<String>>,
    /// Secrets: never returned by the API.
    pub env: Json<std::collections::BTreeMap<String, String>>,
    pub url: Option<String>,
    /// The mcp-adapter plugin behind a `wasm` server.
    pub plugin: Option<String>,
    pub auto_start: bool,
    pub status: String,
    pub last_error: Option<String>,
    /// The server's tools as its `tools/list` last answered.
    pub tools: Json<Vec<serde_json::Value>>,
    pub last_started_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change of an MCP server's run state (tools: `None` keeps the cached list).
#[derive(Debug, Clone, PartialEq)]
pub struct McpStatusUpdate {
    pub status: String,
    pub last_error: Option<String>,
    pub tools: Option<Vec<serde_json::Value>>,
    pub started_at: Option<DateTime<Utc>>,
}

impl McpStatusUpdate {
    /// Just the state: no error, the cached tools and start time kept.
    pub fn to(status: &str) -> Self {
        Self {
            status: status.to_owned(),
            last_error: None,
            tools: None,
            started_at: None,
        }
    }
}

/// A token for one session's Claude Code to use `/mcp` as one instance of one project.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct McpSessionToken {
    pub token_hash: Vec<u8>,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub project_id: Uuid,
    pub instance_id: String,
    pub created_at: DateTime<Utc>,
    /// The API token that started the session: the session token dies with it.
    pub parent_token_id: Option<Uuid>,
}

/// A chunk with its cosine distance to a query (search results).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScoredChunk {
    #[sqlx(flatten)]
    pub chunk: ContextChunk,
    pub distance: f64,
}

#[cfg(test)]
mod tests {
    use super::SessionStatus;

    #[test]
    fn session_statuses_read_back_by_name() {
        for status in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(SessionStatus::parse("Running"), None);
        let ended: Vec<_> = SessionStatus::ALL
            .into_iter()
            .filter(|s| s.is_ended())
            .collect();
        assert_eq!(
            ended,
            [
                SessionStatus::Completed,
                SessionStatus::Error,
                SessionStatus::Terminated
            ]
        );
    }
}
