-- Projects, their Claude Code instances, tasks, file locks, activity and context chunks
-- (API §5–§8). `user_id` is copied onto projects so every read can be scoped to its owner.
CREATE TABLE projects (
    id             BLOB PRIMARY KEY NOT NULL,
    machine_id     BLOB NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    user_id        BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    project_path   TEXT NOT NULL,
    summary        TEXT NOT NULL,
    architecture   TEXT NOT NULL,
    conventions    TEXT NOT NULL,
    current_focus  TEXT NOT NULL,
    recent_changes TEXT NOT NULL,
    task_timeout_minutes INTEGER NOT NULL,          -- copied from settings.taskTimeoutMinutes
    settings       TEXT NOT NULL,                   -- JSON object
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (machine_id, project_path)
);
CREATE INDEX projects_user_id ON projects(user_id);

CREATE TABLE project_instances (
    project_id      BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id     TEXT NOT NULL,
    status          TEXT NOT NULL,                  -- idle | busy | disconnected
    current_task_id BLOB,
    tasks_completed INTEGER NOT NULL,
    context_usage   REAL NOT NULL,
    connected_at    TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    PRIMARY KEY (project_id, instance_id)
);

CREATE TABLE tasks (
    id               BLOB PRIMARY KEY NOT NULL,
    project_id       BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    description      TEXT NOT NULL,
    priority         TEXT NOT NULL,                 -- low | medium | high | critical
    priority_rank    INTEGER NOT NULL,              -- 1 (low) .. 4 (critical), for the claim order
    status           TEXT NOT NULL,                 -- pending | in_progress | completed
    assigned_to      TEXT,
    files            TEXT NOT NULL,                 -- JSON array
    estimated_tokens INTEGER,
    summary          TEXT,
    files_modified   TEXT NOT NULL,                 -- JSON array
    release_reason   TEXT,
    claim_expires_at TEXT,                          -- claimed_at + the project's task timeout
    claimed_at       TEXT,
    completed_at     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- The claim order: next-available walks this index and stops at the first unblocked task.
CREATE INDEX tasks_claim_order ON tasks(project_id, status, priority_rank DESC, created_at, id);

CREATE TABLE task_dependencies (
    task_id    BLOB NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    depends_on BLOB NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_dependencies_depends_on ON task_dependencies(depends_on);

CREATE TABLE file_locks (
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,                       -- normalised; may be a glob
    locked_by  TEXT NOT NULL,
    reason     TEXT,
    locked_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (project_id, path)
);
CREATE INDEX file_locks_expires_at ON file_locks(expires_at);

CREATE TABLE project_activity (
    id          BLOB PRIMARY KEY NOT NULL,
    project_id  BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT,
    type        TEXT NOT NULL,
    details     TEXT NOT NULL,                      -- JSON object
    created_at  TEXT NOT NULL
);
CREATE INDEX project_activity_project ON project_activity(project_id, created_at);

CREATE TABLE context_chunks (
    id               BLOB PRIMARY KEY NOT NULL,
    project_id       BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id      TEXT,
    task_id          BLOB,
    type             TEXT NOT NULL,
    content          TEXT NOT NULL,
    files            TEXT NOT NULL,                 -- JSON array
    importance_score REAL NOT NULL,
    expires_at       TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX context_chunks_project ON context_chunks(project_id, created_at);
