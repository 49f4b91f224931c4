-- WebAssembly plugins installed by a user, and where they are enabled (issue 8).
CREATE TABLE plugins (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    world       TEXT NOT NULL,                      -- mcp-adapter | summarizer | skill-processor
    api_version TEXT NOT NULL,
    description TEXT NOT NULL,
    sha256      TEXT NOT NULL,                      -- of the component bytes
    size_bytes  BIGINT NOT NULL,
    manifest    JSONB NOT NULL,                     -- as embedded in the component
    component   BYTEA NOT NULL,                     -- the component itself (hosts share it)
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE machine_plugins (
    machine_id UUID NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    plugin_id  UUID NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    config     JSONB NOT NULL,                      -- object of strings
    grants     JSONB NOT NULL,                      -- {filesystem: [...], http: [...]}
    enabled_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (machine_id, plugin_id)
);
CREATE INDEX machine_plugins_plugin ON machine_plugins(plugin_id);
