-- Users and their API tokens. Ids are UUIDv7 and timestamps RFC 3339 UTC, both made in Rust.
CREATE TABLE users (
    id                BLOB PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    email             TEXT NOT NULL UNIQUE,          -- stored trimmed and lower-cased
    password_hash     TEXT,                          -- argon2id PHC string; NULL for OAuth-only users
    avatar_url        TEXT,
    email_verified_at TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,               -- SHA-256 of the secret; the secret is never stored
    abilities    TEXT NOT NULL,                      -- JSON array of ability strings
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX api_tokens_user_id ON api_tokens(user_id);
