//! SQL text both backends share. `$n` placeholders work on SQLite and PostgreSQL alike; a
//! statement lives here unless one dialect needs something the other lacks.

pub const PING: &str = "SELECT 1";

pub const INSERT_USER: &str = "INSERT INTO users \
     (id, name, email, password_hash, avatar_url, email_verified_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const USER_BY_ID: &str = "SELECT * FROM users WHERE id = $1";
pub const USER_BY_EMAIL: &str = "SELECT * FROM users WHERE email = $1";

pub const INSERT_TOKEN: &str = "INSERT INTO api_tokens \
     (id, user_id, name, token_hash, abilities, last_used_at, expires_at, revoked_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const TOKEN_BY_HASH: &str = "SELECT * FROM api_tokens WHERE token_hash = $1";
pub const TOUCH_TOKEN: &str = "UPDATE api_tokens SET last_used_at = $2 \
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
pub const TOKENS_OF_USER: &str =
    "SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC";
pub const REVOKE_TOKEN: &str = "UPDATE api_tokens SET revoked_at = $3 \
     WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL";
