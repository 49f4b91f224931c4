-- Event payloads too large for a NOTIFY (8000 bytes), referenced by id from the notification.
-- Rows older than a few minutes are swept by the publishing node.
CREATE TABLE relayed_events (
    id         UUID PRIMARY KEY,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX relayed_events_created_at ON relayed_events(created_at);
