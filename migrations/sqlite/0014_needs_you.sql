-- "Needs you" (issue 22): why a session waits, why it was stopped, its budget; the permission
-- requests its Claude Code asked and who answered them; where each user is told, and every
-- delivery made.
ALTER TABLE sessions ADD COLUMN waiting_reason TEXT;      -- permission | idle_prompt | turn_finished | …
ALTER TABLE sessions ADD COLUMN waiting_message TEXT;
ALTER TABLE sessions ADD COLUMN stop_reason TEXT;         -- why ClaudeNest stopped it (budget)
ALTER TABLE sessions ADD COLUMN budget_tokens INTEGER;
ALTER TABLE sessions ADD COLUMN budget_cost REAL;
ALTER TABLE sessions ADD COLUMN budget_warned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_user_created ON sessions(user_id, created_at);

CREATE TABLE permission_requests (
    id             BLOB PRIMARY KEY NOT NULL,           -- the agent's request id
    session_id     BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    user_id        BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tool_name      TEXT NOT NULL,
    tool_input     TEXT NOT NULL,                       -- JSON
    message        TEXT NOT NULL,
    status         TEXT NOT NULL,                       -- pending | allowed | denied | expired
    answer_message TEXT,
    answered_by    BLOB,                                -- the API token that answered
    answered_at    TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX permission_requests_session ON permission_requests(session_id, created_at);

CREATE TABLE notification_targets (
    id               BLOB PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,                     -- webhook | slack | ntfy | web_push
    url              TEXT NOT NULL,
    secret           TEXT,                              -- webhook signing key; never shown again
    push_p256dh      TEXT,
    push_auth        TEXT,
    project_id       BLOB REFERENCES projects(id) ON DELETE CASCADE,
    events           TEXT NOT NULL,                     -- JSON array of kinds
    include_terminal INTEGER NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX notification_targets_user ON notification_targets(user_id);

CREATE TABLE notification_deliveries (
    id              BLOB PRIMARY KEY NOT NULL,
    target_id       BLOB NOT NULL REFERENCES notification_targets(id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    session_id      BLOB,
    status          TEXT NOT NULL,                      -- pending | delivered | failed
    attempts        INTEGER NOT NULL,
    response_status INTEGER,
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX notification_deliveries_user ON notification_deliveries(user_id, created_at);
