//! SQL text both backends share. `$n` placeholders work on SQLite and PostgreSQL alike; a
//! statement lives here unless one dialect needs something the other lacks.

pub const PING: &str = "SELECT 1";

pub const INSERT_USER: &str = "INSERT INTO users \
     (id, name, email, password_hash, avatar_url, email_verified_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const USER_BY_ID: &str = "SELECT * FROM users WHERE id = $1";
pub const USER_BY_EMAIL: &str = "SELECT * FROM users WHERE email = $1";
/// Marks the address verified (keeping an earlier date) and fills a missing avatar.
pub const CONFIRM_USER_EMAIL: &str = "UPDATE users SET \
     email_verified_at = COALESCE(email_verified_at, $2), \
     avatar_url = COALESCE(avatar_url, $3), updated_at = $2 WHERE id = $1";
pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";

pub const TOKEN_BY_ID: &str = "SELECT * FROM api_tokens WHERE id = $1";
pub const INSERT_TOKEN: &str = "INSERT INTO api_tokens \
     (id, user_id, name, token_hash, abilities, last_used_at, expires_at, revoked_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const TOKEN_WITH_OWNER_BY_HASH: &str = "SELECT t.*, \
     u.id AS owner_id, u.name AS owner_name, u.email AS owner_email, \
     u.password_hash AS owner_password_hash, u.avatar_url AS owner_avatar_url, \
     u.email_verified_at AS owner_email_verified_at, u.created_at AS owner_created_at, \
     u.updated_at AS owner_updated_at \
     FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1";
pub const TOUCH_TOKEN: &str = "UPDATE api_tokens SET last_used_at = $2 \
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
pub const TOKENS_OF_USER: &str =
    "SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC";
pub const REVOKE_TOKEN: &str = "UPDATE api_tokens SET revoked_at = $3 \
     WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL";
pub const REVOKE_ALL_TOKENS: &str =
    "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";

pub const INSERT_OAUTH_IDENTITY: &str = "INSERT INTO oauth_identities \
     (id, user_id, provider, subject, created_at) VALUES ($1, $2, $3, $4, $5)";
pub const USER_BY_OAUTH_IDENTITY: &str = "SELECT users.* FROM users \
     JOIN oauth_identities ON oauth_identities.user_id = users.id \
     WHERE oauth_identities.provider = $1 AND oauth_identities.subject = $2";

pub const INSERT_OAUTH_STATE: &str = "INSERT INTO oauth_states \
     (state_hash, provider, pkce_verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
/// Single use: the row is gone once read.
pub const TAKE_OAUTH_STATE: &str = "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING *";
pub const SWEEP_OAUTH_STATES: &str = "DELETE FROM oauth_states WHERE expires_at <= $1";

pub const INSERT_PASSWORD_RESET: &str = "INSERT INTO password_resets \
     (id, user_id, token_hash, expires_at, used_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
/// Marks the user's unused, unexpired reset used and returns it; nothing when not usable.
pub const CONSUME_PASSWORD_RESET: &str = "UPDATE password_resets SET used_at = $3 \
     WHERE user_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3 RETURNING *";

pub const INSERT_MACHINE: &str = "INSERT INTO machines (id, user_id, name, token_hash, \
     platform, hostname, arch, node_version, agent_version, claude_version, claude_path, \
     capabilities, max_sessions, mac_addresses, networks, wol_mac, wol_broadcast, wol_port, \
     status, status_at, connected_at, last_seen_at, created_at, updated_at) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24)";
pub const MACHINE_OF_USER: &str = "SELECT * FROM machines WHERE user_id = $1 AND id = $2";
pub const MACHINE_BY_TOKEN_HASH: &str = "SELECT * FROM machines WHERE token_hash = $1";
/// The settings a user may change.
pub const UPDATE_MACHINE_SETTINGS: &str = "UPDATE machines SET name = $3, max_sessions = $4, \
     capabilities = $5, wol_mac = $6, wol_broadcast = $7, wol_port = $8, updated_at = $9 \
     WHERE user_id = $1 AND id = $2";
pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE user_id = $1 AND id = $2";
pub const DELETE_MACHINE: &str = "DELETE FROM machines WHERE user_id = $1 AND id = $2";
pub const SET_MACHINE_TOKEN: &str =
    "UPDATE machines SET token_hash = $3, updated_at = $4 WHERE user_id = $1 AND id = $2";
/// The agent's `hello`: environment and capabilities (as the domain merged them), online.
/// `max_sessions` stays the user's setting, and so does `claude_path` unless the agent has one
/// of its own (`--claude-path`, which wins on that machine).
pub const RECORD_MACHINE_HELLO: &str = "UPDATE machines SET platform = $2, hostname = $3, \
     arch = $4, node_version = $5, agent_version = $6, claude_version = $7, claude_path = COALESCE($8, claude_path), \
     capabilities = $9, mac_addresses = $10, networks = $11, status = 'online', \
     status_at = $12, connected_at = $12, last_seen_at = $12, updated_at = $12 WHERE id = $1";
pub const RECORD_MACHINE_SEEN: &str =
    "UPDATE machines SET last_seen_at = $2, status_at = $2 WHERE id = $1 AND status = 'online'";
pub const SET_MACHINE_STATUS: &str =
    "UPDATE machines SET status = $2, status_at = $3 WHERE id = $1";

pub const INSERT_PAIRING: &str = "INSERT INTO pairings \
     (code_hash, token_hash, hostname, platform, arch, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const SWEEP_PAIRINGS: &str = "DELETE FROM pairings WHERE expires_at <= $1";
/// Single use: the row is gone once read.
pub const TAKE_PAIRING: &str = "DELETE FROM pairings WHERE code_hash = $1 RETURNING *";

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// --- projects ----------------------------------------------------------------------------------

pub const INSERT_PROJECT: &str = "INSERT INTO projects (id, machine_id, user_id, name, \
     project_path, summary, architecture, conventions, current_focus, recent_changes, \
     task_timeout_minutes, settings, created_at, updated_at) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub const PROJECT_OF_USER: &str = "SELECT * FROM projects WHERE user_id = $1 AND id = $2";
/// `$2` is "now": chunks that expired do not count.
pub const PROJECTS_OF_MACHINE: &str = "SELECT p.*, \
     (SELECT COUNT(*) FROM project_instances i WHERE i.project_id = p.id \
        AND i.status <> 'disconnected') AS active_instances_count, \
     (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = 'pending') \
        AS pending_tasks_count, \
     (SELECT COALESCE(SUM(LENGTH(c.content)), 0) FROM context_chunks c WHERE c.project_id = p.id \
        AND (c.expires_at IS NULL OR c.expires_at > $3)) AS chunk_chars \
     FROM projects p WHERE p.user_id = $1 AND p.machine_id = $2 ORDER BY p.name, p.id";
pub const UPDATE_PROJECT: &str = "UPDATE projects SET name = $3, summary = $4, \
     architecture = $5, conventions = $6, current_focus = $7, recent_changes = $8, \
     task_timeout_minutes = $9, settings = $10, updated_at = $11 WHERE user_id = $1 AND id = $2";
pub const DELETE_PROJECT: &str = "DELETE FROM projects WHERE user_id = $1 AND id = $2";
pub const PROJECT_COUNTS: &str = "SELECT \
     (SELECT COUNT(*) FROM tasks WHERE project_id = $1), \
     (SELECT COUNT(*) FROM tasks WHERE project_id = $1 AND status = 'pending'), \
     (SELECT COUNT(*) FROM tasks WHERE project_id = $1 AND status = 'in_progress'), \
     (SELECT COUNT(*) FROM tasks WHERE project_id = $1 AND status = 'completed'), \
     (SELECT COUNT(*) FROM project_instances WHERE project_id = $1 AND status <> 'disconnected'), \
     (SELECT COUNT(*) FROM file_locks WHERE project_id = $1 AND expires_at > $2), \
     (SELECT COALESCE(SUM(LENGTH(content)), 0) FROM context_chunks WHERE project_id = $1 \
        AND (expires_at IS NULL OR expires_at > $2))";

// --- instances ---------------------------------------------------------------------------------

/// Registers or refreshes an instance; a disconnected one comes back idle.
pub const TOUCH_INSTANCE: &str = "INSERT INTO project_instances (project_id, instance_id, \
     status, current_task_id, tasks_completed, context_usage, connected_at, last_seen_at) \
     VALUES ($1, $2, 'idle', NULL, 0, 0, $3, $3) \
     ON CONFLICT (project_id, instance_id) DO UPDATE SET last_seen_at = $3, \
     status = CASE WHEN project_instances.status = 'disconnected' THEN 'idle' \
                   ELSE project_instances.status END, \
     connected_at = CASE WHEN project_instances.status = 'disconnected' THEN $3 \
                   ELSE project_instances.connected_at END";
pub const REPORT_INSTANCE: &str = "UPDATE project_instances SET \
     status = COALESCE($3, status), context_usage = COALESCE($4, context_usage) \
     WHERE project_id = $1 AND instance_id = $2";
pub const INSTANCE_TOOK_TASK: &str = "UPDATE project_instances SET status = 'busy', \
     current_task_id = $3 WHERE project_id = $1 AND instance_id = $2";
pub const INSTANCE_DROPPED_TASK: &str = "UPDATE project_instances SET status = 'idle', \
     current_task_id = NULL, tasks_completed = tasks_completed + $4 \
     WHERE project_id = $1 AND instance_id = $2 AND current_task_id = $3";
pub const INSTANCES_OF_PROJECT: &str =
    "SELECT * FROM project_instances WHERE project_id = $1 ORDER BY connected_at, instance_id";
pub const DISCONNECT_STALE_INSTANCES: &str = "UPDATE project_instances SET \
     status = 'disconnected', current_task_id = NULL \
     WHERE status <> 'disconnected' AND last_seen_at < $1 RETURNING *";

// --- tasks -------------------------------------------------------------------------------------

/// `tasks.*` plus whether an unfinished dependency blocks it.
pub const TASK_COLUMNS: &str = "SELECT t.*, EXISTS (SELECT 1 FROM task_dependencies d \
     JOIN tasks dep ON dep.id = d.depends_on WHERE d.task_id = t.id \
     AND dep.status <> 'completed') AS is_blocked FROM tasks t";
pub const INSERT_TASK: &str = "INSERT INTO tasks (id, project_id, title, description, priority, \
     status, assigned_to, files, estimated_tokens, summary, files_modified, release_reason, \
     claim_expires_at, claimed_at, completed_at, created_at, updated_at, priority_rank) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
pub const INSERT_DEPENDENCY: &str =
    "INSERT INTO task_dependencies (task_id, depends_on) VALUES ($1, $2)";
pub const DELETE_DEPENDENCIES: &str = "DELETE FROM task_dependencies WHERE task_id = $1";
pub const TASK_IDS_OF_PROJECT: &str = "SELECT id FROM tasks WHERE project_id = $1";
pub const DEPENDENCIES_OF_TASK: &str =
    "SELECT depends_on FROM task_dependencies WHERE task_id = $1 ORDER BY depends_on";
pub const DEPENDENCIES_OF_PROJECT: &str = "SELECT d.task_id, d.depends_on \
     FROM task_dependencies d JOIN tasks t ON t.id = d.task_id WHERE t.project_id = $1";
pub const UPDATE_TASK: &str = "UPDATE tasks SET title = $2, description = $3, priority = $4, \
     files = $5, estimated_tokens = $6, updated_at = $7, priority_rank = $8 WHERE id = $1";
pub const DELETE_TASK: &str = "DELETE FROM tasks WHERE project_id = $1 AND id = $2";
/// Highest priority first, then oldest: the order of the `tasks_claim_order` index.
pub const PRIORITY_ORDER: &str = "t.priority_rank DESC, t.created_at, t.id";
/// The one claim statement: wins only while the task is pending and unblocked.
pub const CLAIM_TASK: &str = "UPDATE tasks SET status = 'in_progress', assigned_to = $2, \
     claimed_at = $3, claim_expires_at = $4, release_reason = NULL, updated_at = $3 \
     WHERE id = $1 AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM task_dependencies d \
     JOIN tasks dep ON dep.id = d.depends_on WHERE d.task_id = tasks.id \
     AND dep.status <> 'completed') RETURNING *";
/// Takes the project's next available task in one statement. `locking` is the dialect's row
/// locking clause for the subquery (PostgreSQL: `FOR UPDATE OF t SKIP LOCKED`).
pub fn claim_next(locking: &str) -> String {
    format!(
        "UPDATE tasks SET status = 'in_progress', assigned_to = $2, claimed_at = $3, \
         claim_expires_at = $4, release_reason = NULL, updated_at = $3 \
         WHERE id = (SELECT t.id FROM tasks t WHERE t.project_id = $1 \
         AND t.status = 'pending' AND NOT EXISTS (SELECT 1 FROM task_dependencies d \
         JOIN tasks dep ON dep.id = d.depends_on WHERE d.task_id = t.id \
         AND dep.status <> 'completed') ORDER BY {PRIORITY_ORDER} LIMIT 1{locking}) \
         AND status = 'pending' RETURNING *"
    )
}

pub const RELEASE_TASK: &str = "UPDATE tasks SET status = 'pending', assigned_to = NULL, \
     claimed_at = NULL, claim_expires_at = NULL, release_reason = $3, updated_at = $4 \
     WHERE id = $1 AND status = 'in_progress' AND assigned_to = $2 RETURNING *";
pub const COMPLETE_TASK: &str = "UPDATE tasks SET status = 'completed', summary = $3, \
     files_modified = $4, completed_at = $5, claim_expires_at = NULL, updated_at = $5 \
     WHERE id = $1 AND status = 'in_progress' AND assigned_to = $2 RETURNING *";
/// Claims past their deadline, and claims of instances that went away, go back to pending.
pub const REQUEUE_EXPIRED_CLAIMS: &str = "UPDATE tasks SET status = 'pending', \
     assigned_to = NULL, claimed_at = NULL, claim_expires_at = NULL, \
     release_reason = 'claim timed out', updated_at = $1 \
     WHERE status = 'in_progress' AND claim_expires_at < $1 RETURNING *";
pub const REQUEUE_TASKS_OF_INSTANCE: &str = "UPDATE tasks SET status = 'pending', \
     assigned_to = NULL, claimed_at = NULL, claim_expires_at = NULL, \
     release_reason = 'instance disconnected', updated_at = $3 \
     WHERE project_id = $1 AND assigned_to = $2 AND status = 'in_progress' RETURNING *";

// --- locks -------------------------------------------------------------------------------------

pub const LIVE_LOCKS: &str =
    "SELECT * FROM file_locks WHERE project_id = $1 AND expires_at > $2 ORDER BY path";
/// Takes a path: new, over an expired lock, or the holder's own (which extends it).
pub const UPSERT_LOCK: &str = "INSERT INTO file_locks \
     (project_id, path, locked_by, reason, locked_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (project_id, path) DO UPDATE SET locked_by = $3, reason = $4, \
     locked_at = CASE WHEN file_locks.locked_by = $3 AND file_locks.expires_at > $5 \
                      THEN file_locks.locked_at ELSE $5 END, \
     expires_at = $6 RETURNING *";
/// Only unexpired locks, so a lapsed lock is never reported as released by anyone.
pub const DELETE_LOCK: &str = "DELETE FROM file_locks WHERE project_id = $1 AND path = $2 \
     AND expires_at > $3 RETURNING *";
pub const DELETE_LOCK_OF: &str = "DELETE FROM file_locks WHERE project_id = $1 AND path = $2 \
     AND locked_by = $3 AND expires_at > $4 RETURNING *";
pub const DELETE_LOCKS_OF_INSTANCE: &str = "DELETE FROM file_locks WHERE project_id = $1 \
     AND locked_by = $2 AND expires_at > $3 RETURNING *";
pub const EXTEND_LOCK: &str = "UPDATE file_locks SET expires_at = $4 WHERE project_id = $1 \
     AND path = $2 AND locked_by = $3 AND expires_at > $5 RETURNING *";
pub const SWEEP_EXPIRED_LOCKS: &str = "DELETE FROM file_locks WHERE expires_at <= $1";

// --- activity and chunks -------------------------------------------------------------------------

pub const INSERT_ACTIVITY: &str = "INSERT INTO project_activity \
     (id, project_id, instance_id, type, details, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub const RECENT_ACTIVITY: &str = "SELECT * FROM project_activity WHERE project_id = $1 \
     ORDER BY created_at DESC, id DESC LIMIT $2";
pub const INSERT_CHUNK: &str = "INSERT INTO context_chunks (id, project_id, instance_id, task_id, \
     type, content, files, importance_score, expires_at, created_at) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub const DELETE_CHUNK: &str = "DELETE FROM context_chunks WHERE project_id = $1 AND id = $2";
pub const DELETE_EXPIRED_CHUNKS: &str =
    "DELETE FROM context_chunks WHERE expires_at IS NOT NULL AND expires_at <= $1";
/// Chunks waiting for an embedding by model `$1` (the worker's queue, for metrics).
pub const COUNT_UNEMBEDDED: &str = "SELECT COUNT(*) FROM context_chunks c \
     LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id AND e.model = $1 WHERE e.chunk_id IS NULL";
/// Sessions not ended, every user's (for metrics).
pub const COUNT_LIVE_SESSIONS: &str =
    "SELECT COUNT(*) FROM sessions WHERE status NOT IN ('completed', 'error', 'terminated')";
/// Chunks lacking an embedding from model `$1`.
pub const CHUNKS_TO_EMBED: &str = "SELECT c.* FROM context_chunks c \
     LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id AND e.model = $1 \
     WHERE e.chunk_id IS NULL ORDER BY c.created_at, c.id LIMIT $2";

/// `$1` chunk, `$2` project, `$3` model, `$4` vector; skipped when the chunk was deleted meanwhile.
pub const PUT_EMBEDDING: &str = "INSERT INTO chunk_embeddings (chunk_id, project_id, model, embedding) \
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM context_chunks WHERE id = $1) \
     ON CONFLICT (chunk_id) DO UPDATE SET model = excluded.model, embedding = excluded.embedding";

/// Words for a full-text query: letters and digits only, at most 32 of them.
pub fn search_words(words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .take(32)
        .collect()
}

// --- sessions ----------------------------------------------------------------------------------

pub const INSERT_SESSION: &str = "INSERT INTO sessions (id, machine_id, user_id, mode, \
     project_path, initial_prompt, status, cols, rows, exit_code, total_tokens, total_cost, \
     ws_token_hash, last_seq, started_at, ended_at, created_at, updated_at, ws_token_parent, \
     ws_token_write, budget_tokens, budget_cost) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
     $21, $22)";
pub const SESSION_OF_USER: &str = "SELECT * FROM sessions WHERE user_id = $1 AND id = $2";
pub const SESSION_BY_ID: &str = "SELECT * FROM sessions WHERE id = $1";
pub const SESSION_BY_WS_TOKEN: &str = "SELECT * FROM sessions WHERE ws_token_hash = $1";
/// Sessions that hold a slot on their machine.
pub const ACTIVE_SESSIONS_OF_MACHINE: &str = "SELECT COUNT(*) FROM sessions WHERE machine_id = $1 \
     AND status IN ('created', 'starting', 'running', 'waiting_input')";
/// Moves a session to `status` unless it already ended (an ended session stays ended).
pub const SET_SESSION_STATUS: &str = "UPDATE sessions SET status = $2, updated_at = $3, \
     started_at = CASE WHEN $2 = 'running' AND started_at IS NULL THEN $3 ELSE started_at END, \
     ended_at = CASE WHEN $2 IN ('completed', 'error', 'terminated') THEN $3 ELSE ended_at END, \
     exit_code = COALESCE($4, exit_code) \
     WHERE id = $1 AND status NOT IN ('completed', 'error', 'terminated') RETURNING *";
pub const SET_SESSION_SIZE: &str =
    "UPDATE sessions SET cols = $2, rows = $3, updated_at = $4 WHERE id = $1";
pub const SET_SESSION_WS_TOKEN: &str = "UPDATE sessions SET ws_token_hash = $2, \
     ws_token_parent = $3, ws_token_write = $4 WHERE id = $1";
pub const ADVANCE_SESSION_SEQ: &str =
    "UPDATE sessions SET last_seq = $2 WHERE id = $1 AND last_seq < $2";
/// Followed by the rows' `VALUES` (a query builder's `push_values`).
pub const INSERT_SESSION_LOGS: &str =
    "INSERT INTO session_logs (id, session_id, type, seq, data, metadata, created_at) ";
/// Retention: output up to a sequence leaves the log.
pub const TRIM_SESSION_OUTPUT: &str =
    "DELETE FROM session_logs WHERE session_id = $1 AND seq IS NOT NULL AND seq <= $2";
pub const SET_SESSION_USAGE: &str = "UPDATE sessions SET total_tokens = $2, total_cost = $3, \
     updated_at = $4 WHERE id = $1 RETURNING *";
/// Running ⇄ waiting_input, with why; nothing once the session ended.
pub const SET_SESSION_WAITING: &str = "UPDATE sessions SET status = $2, waiting_reason = $3, \
     waiting_message = $4, updated_at = $5 \
     WHERE id = $1 AND status IN ('running', 'waiting_input') RETURNING *";
/// Back to running from a wait on `$2` only: the session may have moved on meanwhile (its turn
/// ended, a newer wait), and that later state stands.
pub const END_SESSION_WAIT: &str = "UPDATE sessions SET status = 'running', \
     waiting_reason = NULL, waiting_message = NULL, updated_at = $3 \
     WHERE id = $1 AND status = 'waiting_input' AND waiting_reason = $2 RETURNING *";
pub const SET_SESSION_STOP_REASON: &str = "UPDATE sessions SET stop_reason = $2 WHERE id = $1";
/// True once: the first caller sends the warning.
pub const MARK_BUDGET_WARNED: &str =
    "UPDATE sessions SET budget_warned = TRUE WHERE id = $1 AND budget_warned = FALSE";
pub const SESSIONS_STARTED_SINCE: &str = "SELECT COUNT(*) FROM sessions \
     WHERE user_id = $1 AND machine_id = $2 AND project_path IN ($3, $3 || '/') \
     AND created_at >= $4";
pub const PROJECT_USAGE: &str = "SELECT CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(total_cost), 0) AS DOUBLE PRECISION) FROM sessions \
     WHERE machine_id = $1 AND project_path IN ($2, $2 || '/')";

// --- permission requests and notifications -----------------------------------------------------

pub const INSERT_PERMISSION_REQUEST: &str = "INSERT INTO permission_requests (id, session_id, \
     user_id, tool_name, tool_input, message, status, answer_message, answered_by, answered_at, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub const PERMISSION_REQUEST_OF_USER: &str =
    "SELECT * FROM permission_requests WHERE user_id = $1 AND id = $2";
pub const PERMISSION_REQUESTS_OF_SESSION: &str = "SELECT * FROM permission_requests \
     WHERE session_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
/// Only a pending request takes an answer: the first answer wins.
pub const ANSWER_PERMISSION_REQUEST: &str = "UPDATE permission_requests SET status = $2, \
     answer_message = $3, answered_by = $4, answered_at = $5 \
     WHERE id = $1 AND status = 'pending' RETURNING *";
pub const EXPIRE_PERMISSION_REQUESTS: &str = "UPDATE permission_requests SET status = 'expired', \
     answered_at = $2 WHERE session_id = $1 AND status = 'pending' RETURNING *";

pub const INSERT_NOTIFICATION_TARGET: &str = "INSERT INTO notification_targets (id, user_id, \
     name, kind, url, secret, push_p256dh, push_auth, project_id, events, include_terminal, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub const NOTIFICATION_TARGETS_OF_USER: &str =
    "SELECT * FROM notification_targets WHERE user_id = $1 ORDER BY created_at, id";
pub const COUNT_NOTIFICATION_TARGETS: &str =
    "SELECT COUNT(*) FROM notification_targets WHERE user_id = $1";
pub const DELETE_NOTIFICATION_TARGET: &str =
    "DELETE FROM notification_targets WHERE user_id = $1 AND id = $2";
pub const INSERT_DELIVERY: &str = "INSERT INTO notification_deliveries (id, target_id, user_id, \
     event, session_id, status, attempts, response_status, error, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub const UPDATE_DELIVERY: &str = "UPDATE notification_deliveries SET status = $2, attempts = $3, \
     response_status = $4, error = $5, updated_at = $6 WHERE id = $1";
pub const DELIVERIES_OF_USER: &str = "SELECT * FROM notification_deliveries WHERE user_id = $1 \
     ORDER BY created_at DESC, id DESC LIMIT $2";

// --- plugins -----------------------------------------------------------------------------------

/// Every column but the component bytes.
const PLUGIN_COLUMNS: &str = "id, user_id, name, version, world, api_version, description, \
     sha256, size_bytes, manifest, created_at";
pub const INSERT_PLUGIN: &str = "INSERT INTO plugins (id, user_id, name, version, world, \
     api_version, description, sha256, size_bytes, manifest, component, created_at) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub fn plugins_of_user() -> String {
    format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE user_id = $1 ORDER BY name")
}
pub fn plugin_by_name() -> String {
    format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE user_id = $1 AND name = $2")
}
pub const PLUGIN_COMPONENT: &str = "SELECT component FROM plugins WHERE id = $1";
pub const DELETE_PLUGIN: &str = "DELETE FROM plugins WHERE user_id = $1 AND name = $2";
/// Enabling (again) runs the plugin's current version: a pin left by an upgrade goes.
pub const UPSERT_MACHINE_PLUGIN: &str = "INSERT INTO machine_plugins \
     (machine_id, plugin_id, config, grants, enabled_at, pinned_sha256) \
     VALUES ($1, $2, $3, $4, $5, NULL) \
     ON CONFLICT (machine_id, plugin_id) DO UPDATE SET config = excluded.config, \
     grants = excluded.grants, enabled_at = excluded.enabled_at, pinned_sha256 = NULL";
pub const PLUGIN_ENABLEMENTS: &str =
    "SELECT * FROM machine_plugins WHERE plugin_id = $1 ORDER BY enabled_at";
/// Keeps the current version as an earlier one (before the row is replaced).
pub const KEEP_PLUGIN_VERSION: &str = "INSERT INTO plugin_versions \
     (plugin_id, sha256, version, manifest, component, created_at) \
     SELECT id, sha256, version, manifest, component, created_at FROM plugins WHERE id = $1 \
     ON CONFLICT (plugin_id, sha256) DO NOTHING";
pub const PIN_MACHINE_PLUGIN: &str = "UPDATE machine_plugins SET pinned_sha256 = $3 \
     WHERE machine_id = $1 AND plugin_id = $2";
pub const REPLACE_PLUGIN: &str = "UPDATE plugins SET version = $2, world = $3, \
     api_version = $4, description = $5, sha256 = $6, size_bytes = $7, manifest = $8, \
     component = $9, created_at = $10 WHERE id = $1";
/// Earlier versions no machine runs any more.
pub const DROP_UNUSED_PLUGIN_VERSIONS: &str = "DELETE FROM plugin_versions WHERE plugin_id = $1 \
     AND sha256 NOT IN (SELECT pinned_sha256 FROM machine_plugins \
     WHERE plugin_id = $1 AND pinned_sha256 IS NOT NULL)";
pub const PLUGIN_VERSION: &str =
    "SELECT manifest, component FROM plugin_versions WHERE plugin_id = $1 AND sha256 = $2";
pub const MACHINE_PLUGINS: &str =
    "SELECT * FROM machine_plugins WHERE machine_id = $1 ORDER BY enabled_at";
pub const MACHINE_PLUGIN: &str =
    "SELECT * FROM machine_plugins WHERE machine_id = $1 AND plugin_id = $2";
pub const DELETE_MACHINE_PLUGIN: &str =
    "DELETE FROM machine_plugins WHERE machine_id = $1 AND plugin_id = $2";

// --- skills and MCP servers (API §9, §10) --------------------------------------------------------

pub const SKILLS_OF_MACHINE: &str = "SELECT * FROM skills WHERE machine_id = $1 ORDER BY path";
pub const SKILL_BY_PATH: &str = "SELECT * FROM skills WHERE machine_id = $1 AND path = $2";
pub const UPSERT_SKILL: &str = "INSERT INTO skills (id, machine_id, path, name, description, \
     content, enabled, priority, metadata, size_bytes, last_modified, synced_hash, deleted, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (machine_id, path) DO UPDATE SET name = excluded.name, \
     description = excluded.description, content = excluded.content, \
     enabled = excluded.enabled, priority = excluded.priority, metadata = excluded.metadata, \
     size_bytes = excluded.size_bytes, last_modified = excluded.last_modified, \
     synced_hash = excluded.synced_hash, deleted = excluded.deleted";
pub const DELETE_SKILL: &str = "DELETE FROM skills WHERE machine_id = $1 AND path = $2";
pub const SET_SKILL_SYNCED: &str =
    "UPDATE skills SET synced_hash = $3 WHERE machine_id = $1 AND path = $2";

pub const INSERT_MCP_SERVER: &str = "INSERT INTO mcp_servers (id, machine_id, name, \
     display_name, transport, command, args, env, url, plugin, auto_start, status, last_error, \
     tools, last_started_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
pub const MCP_SERVERS_OF_MACHINE: &str =
    "SELECT * FROM mcp_servers WHERE machine_id = $1 ORDER BY name";
pub const MCP_SERVER_BY_NAME: &str =
    "SELECT * FROM mcp_servers WHERE machine_id = $1 AND name = $2";
pub const UPDATE_MCP_SERVER: &str = "UPDATE mcp_servers SET display_name = $2, transport = $3, \
     command = $4, args = $5, env = $6, url = $7, plugin = $8, auto_start = $9, updated_at = $10 \
     WHERE id = $1";
pub const SET_MCP_STATUS: &str = "UPDATE mcp_servers SET status = $3, last_error = $4, \
     tools = COALESCE($5, tools), last_started_at = COALESCE($6, last_started_at), \
     updated_at = $7 WHERE machine_id = $1 AND name = $2";
pub const DELETE_MCP_SERVER: &str = "DELETE FROM mcp_servers WHERE machine_id = $1 AND name = $2";

pub const INSERT_MCP_SESSION_TOKEN: &str = "INSERT INTO mcp_session_tokens \
     (token_hash, session_id, user_id, project_id, instance_id, created_at, parent_token_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const MCP_SESSION_TOKEN: &str = "SELECT * FROM mcp_session_tokens WHERE token_hash = $1";

// --- retention: each deletes at most `$2` rows; `$1` is the cut-off date (or the count kept) ---

pub const PRUNE_ACTIVITY: &str = "DELETE FROM project_activity WHERE id IN \
     (SELECT id FROM project_activity WHERE created_at < $1 LIMIT $2)";
pub const PRUNE_ACTIVITY_BEYOND: &str = "DELETE FROM project_activity WHERE id IN \
     (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
     (PARTITION BY project_id ORDER BY created_at DESC, id DESC) AS n FROM project_activity) ranked \
     WHERE n > $1 LIMIT $2)";
pub const PRUNE_SESSION_LOGS: &str = "DELETE FROM session_logs WHERE id IN \
     (SELECT id FROM session_logs WHERE created_at < $1 LIMIT $2)";
pub const PRUNE_DELIVERIES: &str = "DELETE FROM notification_deliveries WHERE id IN \
     (SELECT id FROM notification_deliveries WHERE created_at < $1 LIMIT $2)";
pub const PRUNE_PERMISSIONS: &str = "DELETE FROM permission_requests WHERE id IN \
     (SELECT id FROM permission_requests WHERE status <> 'pending' AND created_at < $1 LIMIT $2)";
pub const PRUNE_RELAYED_EVENTS: &str = "DELETE FROM relayed_events WHERE id IN \
     (SELECT id FROM relayed_events WHERE created_at < $1 LIMIT $2)";
