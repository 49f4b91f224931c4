-- WebAssembly plugins installed by a user, and where they are enabled (issue 8).
CREATE TABLE plugins (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    world       TEXT NOT NULL,                      -- mcp-adapter | summarizer | skill-processor
    api_version TEXT NOT NULL,
    description TEXT NOT NULL,
    sha256      TEXT NOT NULL,                      -- of the component bytes
    size_bytes  INTEGER NOT NULL,
    manifest    TEXT NOT NULL,                      -- JSON, as embedded in the component
    component   BLOB NOT NULL,                      -- the component itself (hosts share it)
    created_at  TEXT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE machine_plugins (
    machine_id BLOB NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    plugin_id  BLOB NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    config     TEXT NOT NULL,                       -- JSON object of strings
    grants     TEXT NOT NULL,                       -- JSON: {filesystem: [...], http: [...]}
    enabled_at TEXT NOT NULL,
    PRIMARY KEY (machine_id, plugin_id)
);
CREATE INDEX machine_plugins_plugin ON machine_plugins(plugin_id);
