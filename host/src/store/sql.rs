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
pub const DELETE_MACHINE: &str = "DELETE FROM machines WHERE user_id = $1 AND id = $2";
pub const SET_MACHINE_TOKEN: &str =
    "UPDATE machines SET token_hash = $3, updated_at = $4 WHERE user_id = $1 AND id = $2";
/// The agent's `hello`: environment and capabilities (as the domain merged them), online.
/// `max_sessions` stays the user's setting.
pub const RECORD_MACHINE_HELLO: &str = "UPDATE machines SET platform = $2, hostname = $3, \
     arch = $4, node_version = $5, agent_version = $6, claude_version = $7, claude_path = $8, \
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
