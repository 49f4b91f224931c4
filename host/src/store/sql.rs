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
