-- Event payloads too large for a PostgreSQL NOTIFY, referenced by id. SQLite hosts deliver
-- events in-process and never use this table; it exists so both stores have the same schema.
CREATE TABLE relayed_events (
    id         BLOB PRIMARY KEY NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
