-- Machines (API §3) and agent pairing.
CREATE TABLE machines (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      BYTEA NOT NULL UNIQUE,           -- SHA-256 of the mn_ token
    platform        TEXT,
    hostname        TEXT,
    arch            TEXT,
    node_version    TEXT,
    agent_version   TEXT,
    claude_version  TEXT,
    claude_path     TEXT,
    capabilities    JSONB NOT NULL,                 -- JSON array
    max_sessions    INTEGER NOT NULL,
    mac_addresses   JSONB NOT NULL,                 -- JSON array, reported by the agent
    networks        JSONB NOT NULL,                 -- JSON array of {addr, prefix}
    wol_mac         TEXT,                           -- configured; else the first reported MAC
    wol_broadcast   TEXT NOT NULL,
    wol_port        INTEGER NOT NULL,
    status          TEXT NOT NULL,                  -- online | offline | connecting (as last recorded)
    status_at       TIMESTAMPTZ NOT NULL,                  -- when that status was last confirmed
    connected_at    TIMESTAMPTZ,
    last_seen_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX machines_user_id ON machines(user_id);

CREATE TABLE pairings (
    code_hash   BYTEA PRIMARY KEY,          -- SHA-256 of the short code shown by the agent
    token_hash  BYTEA NOT NULL,                      -- SHA-256 of the token the agent made and keeps
    hostname    TEXT,
    platform    TEXT,
    arch        TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
