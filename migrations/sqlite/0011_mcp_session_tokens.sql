-- Tokens minted for the Claude Code of one session, to use ClaudeNest's MCP server (/mcp) as
-- one instance of one project (issue 11). Only the SHA-256 of the token is kept.
CREATE TABLE mcp_session_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    session_id  BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id  BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX mcp_session_tokens_session ON mcp_session_tokens(session_id);
