-- Skills and MCP servers per machine (API §9, §10; issue 10).

-- A skill as the API and the machine's skill folder share it. `synced_hash` is the sha256 of
-- what the folder held when both sides last agreed ('' = agreed absent, NULL = never synced):
-- it tells which side changed since. `deleted` keeps a row deleted through the API until the
-- agent has removed the file too, so an offline machine cannot bring it back unnoticed.
CREATE TABLE skills (
    id            UUID PRIMARY KEY,
    machine_id    UUID NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    content       TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    priority      BIGINT NOT NULL,
    metadata      JSONB NOT NULL,                   -- object
    size_bytes    BIGINT NOT NULL,
    last_modified TIMESTAMPTZ NOT NULL,
    synced_hash   TEXT,
    deleted       BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (machine_id, path)
);

-- An MCP server a machine can run. `env` is write-only through the API (secrets).
CREATE TABLE mcp_servers (
    id              UUID PRIMARY KEY,
    machine_id      UUID NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    transport       TEXT NOT NULL,                  -- stdio | http | wasm
    command         TEXT,
    args            JSONB NOT NULL,                 -- array of strings
    env             JSONB NOT NULL,                 -- object of strings
    url             TEXT,
    plugin          TEXT,
    auto_start      BOOLEAN NOT NULL,
    status          TEXT NOT NULL,                  -- stopped | starting | running | restarting | error
    last_error      TEXT,
    tools           JSONB NOT NULL,                 -- array: the cached tools/list
    last_started_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (machine_id, name)
);
