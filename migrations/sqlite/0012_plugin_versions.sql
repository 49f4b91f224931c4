-- Upgrades in place (issue 16): an installed plugin's earlier version is kept while machines
-- still run it (the newer one asked for more than they granted); `machine_plugins.pinned_sha256`
-- names it (NULL: the plugin's current version).
CREATE TABLE plugin_versions (
    plugin_id  BLOB NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    sha256     TEXT NOT NULL,
    version    TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    component  BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (plugin_id, sha256)
);
ALTER TABLE machine_plugins ADD COLUMN pinned_sha256 TEXT;
