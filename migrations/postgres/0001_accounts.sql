-- Users and their API tokens. Ids are UUIDv7 and timestamps UTC, both made in Rust.
-- pgvector is needed by later migrations (context embeddings); create it up front so a database
-- without the extension fails at the first start, not weeks later.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id                UUID PRIMARY KEY,
    name              TEXT NOT NULL,
    email             TEXT NOT NULL UNIQUE,          -- stored trimmed and lower-cased
    password_hash     TEXT,                          -- argon2id PHC string; NULL for OAuth-only users
    avatar_url        TEXT,
    email_verified_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,              -- SHA-256 of the secret; the secret is never stored
    abilities    JSONB NOT NULL,                     -- JSON array of ability strings
    last_used_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_tokens_user_id ON api_tokens(user_id);
