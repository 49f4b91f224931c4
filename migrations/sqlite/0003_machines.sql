-- Machines (API §3) and agent pairing.
CREATE TABLE machines (
    id              BLOB PRIMARY KEY NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE,           -- SHA-256 of the mn_ token
    platform        TEXT,
    hostname        TEXT,
    arch            TEXT,
    node_version    TEXT,
    agent_version   TEXT,
    claude_version  TEXT,
    claude_path     TEXT,
    capabilities    TEXT NOT NULL,                  -- JSON array
    max_sessions    INTEGER NOT NULL,
    mac_addresses   TEXT NOT NULL,                  -- JSON array, reported by the agent
    networks        TEXT NOT NULL,                  -- JSON array of {addr, prefix}
    wol_mac         TEXT,                           -- configured; else the first reported MAC
    wol_broadcast   TEXT NOT NULL,
    wol_port        INTEGER NOT NULL,
    status          TEXT NOT NULL,                  -- online | offline | connecting (as last recorded)
    status_at       TEXT NOT NULL,                  -- when that status was last confirmed
    connected_at    TEXT,
    last_seen_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX machines_user_id ON machines(user_id);

CREATE TABLE pairings (
    code_hash   BLOB PRIMARY KEY NOT NULL,          -- SHA-256 of the short code shown by the agent
    token_hash  BLOB NOT NULL,                      -- SHA-256 of the token the agent made and keeps
    hostname    TEXT,
    platform    TEXT,
    arch        TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
