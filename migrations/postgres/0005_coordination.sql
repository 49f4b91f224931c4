-- Projects, their Claude Code instances, tasks, file locks, activity and context chunks
-- (API §5–§8). `user_id` is copied onto projects so every read can be scoped to its owner.
CREATE TABLE projects (
    id             UUID PRIMARY KEY,
    machine_id     UUID NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    user_id        UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    project_path   TEXT NOT NULL,
    summary        TEXT NOT NULL,
    architecture   TEXT NOT NULL,
    conventions    TEXT NOT NULL,
    current_focus  TEXT NOT NULL,
    recent_changes TEXT NOT NULL,
    task_timeout_minutes INTEGER NOT NULL,          -- copied from settings.taskTimeoutMinutes
    settings       JSONB NOT NULL,                  -- JSON object
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (machine_id, project_path)
);
CREATE INDEX projects_user_id ON projects(user_id);

CREATE TABLE project_instances (
    project_id      UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id     TEXT NOT NULL,
    status          TEXT NOT NULL,                  -- idle | busy | disconnected
    current_task_id UUID,
    tasks_completed INTEGER NOT NULL,
    context_usage   DOUBLE PRECISION NOT NULL,
    connected_at    TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, instance_id)
);

CREATE TABLE tasks (
    id               UUID PRIMARY KEY,
    project_id       UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    description      TEXT NOT NULL,
    priority         TEXT NOT NULL,                 -- low | medium | high | critical
    priority_rank    INTEGER NOT NULL,              -- 1 (low) .. 4 (critical), for the claim order
    status           TEXT NOT NULL,                 -- pending | in_progress | completed
    assigned_to      TEXT,
    files            JSONB NOT NULL,                -- JSON array
    estimated_tokens BIGINT,
    summary          TEXT,
    files_modified   JSONB NOT NULL,                -- JSON array
    release_reason   TEXT,
    claim_expires_at TIMESTAMPTZ,                          -- claimed_at + the project's task timeout
    claimed_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
-- The claim order: next-available walks this index and stops at the first unblocked task.
CREATE INDEX tasks_claim_order ON tasks(project_id, status, priority_rank DESC, created_at, id);

CREATE TABLE task_dependencies (
    task_id    UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    depends_on UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_dependencies_depends_on ON task_dependencies(depends_on);

CREATE TABLE file_locks (
    project_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,                       -- normalised; may be a glob
    locked_by  TEXT NOT NULL,
    reason     TEXT,
    locked_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, path)
);
CREATE INDEX file_locks_expires_at ON file_locks(expires_at);

CREATE TABLE project_activity (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT,
    type        TEXT NOT NULL,
    details     JSONB NOT NULL,                     -- JSON object
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX project_activity_project ON project_activity(project_id, created_at);

CREATE TABLE context_chunks (
    id               UUID PRIMARY KEY,
    project_id       UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id      TEXT,
    task_id          UUID,
    type             TEXT NOT NULL,
    content          TEXT NOT NULL,
    files            JSONB NOT NULL,                -- JSON array
    importance_score DOUBLE PRECISION NOT NULL,
    expires_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX context_chunks_project ON context_chunks(project_id, created_at);
