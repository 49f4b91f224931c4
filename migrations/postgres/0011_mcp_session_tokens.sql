-- Tokens minted for the Claude Code of one session, to use ClaudeNest's MCP server (/mcp) as
-- one instance of one project (issue 11). Only the SHA-256 of the token is kept.
CREATE TABLE mcp_session_tokens (
    token_hash  BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id  UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX mcp_session_tokens_session ON mcp_session_tokens(session_id);
