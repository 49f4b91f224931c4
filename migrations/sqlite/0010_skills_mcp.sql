-- Skills and MCP servers per machine (API §9, §10; issue 10).

-- A skill as the API and the machine's skill folder share it. `synced_hash` is the sha256 of
-- what the folder held when both sides last agreed ('' = agreed absent, NULL = never synced):
-- it tells which side changed since. `deleted` keeps a row deleted through the API until the
-- agent has removed the file too, so an offline machine cannot bring it back unnoticed.
CREATE TABLE skills (
    id            BLOB PRIMARY KEY NOT NULL,
    machine_id    BLOB NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    content       TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    priority      INTEGER NOT NULL,
    metadata      TEXT NOT NULL,                    -- JSON object
    size_bytes    INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    synced_hash   TEXT,
    deleted       BOOLEAN NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    UNIQUE (machine_id, path)
);

-- An MCP server a machine can run. `env` is write-only through the API (secrets).
CREATE TABLE mcp_servers (
    id              BLOB PRIMARY KEY NOT NULL,
    machine_id      BLOB NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    transport       TEXT NOT NULL,                  -- stdio | http | wasm
    command         TEXT,
    args            TEXT NOT NULL,                  -- JSON array of strings
    env             TEXT NOT NULL,                  -- JSON object of strings
    url             TEXT,
    plugin          TEXT,
    auto_start      BOOLEAN NOT NULL,
    status          TEXT NOT NULL,                  -- stopped | starting | running | restarting | error
    last_error      TEXT,
    tools           TEXT NOT NULL,                  -- JSON array: the cached tools/list
    last_started_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (machine_id, name)
);
