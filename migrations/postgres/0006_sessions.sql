-- Claude Code sessions on machines (API §4) and their logs.
CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    machine_id     UUID NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    user_id        UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mode           TEXT NOT NULL,                   -- interactive | headless | oneshot
    project_path   TEXT,
    initial_prompt TEXT,
    status         TEXT NOT NULL,                   -- created | starting | running | waiting_input | completed | error | terminated
    cols           INTEGER NOT NULL,
    rows           INTEGER NOT NULL,
    exit_code      INTEGER,
    total_tokens   BIGINT NOT NULL,
    total_cost     DOUBLE PRECISION NOT NULL,
    ws_token_hash  BYTEA NOT NULL,                  -- SHA-256 of the session's ws_ token
    last_seq       BIGINT NOT NULL,                 -- highest output sequence stored
    started_at     TIMESTAMPTZ,
    ended_at       TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_machine ON sessions(machine_id, status);
CREATE INDEX sessions_ws_token ON sessions(ws_token_hash);

CREATE TABLE session_logs (
    id         UUID PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    type       TEXT NOT NULL,                       -- input | output | error | status
    seq        BIGINT,                              -- output sequence number from the agent
    data       TEXT NOT NULL,
    metadata   JSONB NOT NULL,                      -- JSON object
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX session_logs_session ON session_logs(session_id, created_at);
