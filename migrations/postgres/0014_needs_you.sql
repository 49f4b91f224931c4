-- "Needs you" (issue 22): why a session waits, why it was stopped, its budget; the permission
-- requests its Claude Code asked and who answered them; where each user is told, and every
-- delivery made.
ALTER TABLE sessions ADD COLUMN waiting_reason TEXT;      -- permission | idle_prompt | turn_finished | …
ALTER TABLE sessions ADD COLUMN waiting_message TEXT;
ALTER TABLE sessions ADD COLUMN stop_reason TEXT;         -- why ClaudeNest stopped it (budget)
ALTER TABLE sessions ADD COLUMN budget_tokens BIGINT;
ALTER TABLE sessions ADD COLUMN budget_cost DOUBLE PRECISION;
ALTER TABLE sessions ADD COLUMN budget_warned BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX sessions_user_created ON sessions(user_id, created_at);

CREATE TABLE permission_requests (
    id             UUID PRIMARY KEY,           -- the agent's request id
    session_id     UUID NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    user_id        UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tool_name      TEXT NOT NULL,
    tool_input     JSONB NOT NULL,                      -- JSON
    message        TEXT NOT NULL,
    status         TEXT NOT NULL,                       -- pending | allowed | denied | expired
    answer_message TEXT,
    answered_by    UUID,                                -- the API token that answered
    answered_at    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX permission_requests_session ON permission_requests(session_id, created_at);

CREATE TABLE notification_targets (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,                     -- webhook | slack | ntfy | web_push
    url              TEXT NOT NULL,
    secret           TEXT,                              -- webhook signing key; never shown again
    push_p256dh      TEXT,
    push_auth        TEXT,
    project_id       UUID REFERENCES projects(id) ON DELETE CASCADE,
    events           JSONB NOT NULL,                    -- JSON array of kinds
    include_terminal BOOLEAN NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX notification_targets_user ON notification_targets(user_id);

CREATE TABLE notification_deliveries (
    id              UUID PRIMARY KEY,
    target_id       UUID NOT NULL REFERENCES notification_targets(id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    session_id      UUID,
    status          TEXT NOT NULL,                      -- pending | delivered | failed
    attempts        INTEGER NOT NULL,
    response_status INTEGER,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX notification_deliveries_user ON notification_deliveries(user_id, created_at);
