-- Child tokens die with their parents and carry no more than they (issue 17): the API token
-- that minted a session's ws_ token or an mcs_ token, and whether the ws_ token may type.
-- Tokens minted before this have no parent and stop working (attach again for a new one).
ALTER TABLE sessions ADD COLUMN ws_token_parent BLOB;
ALTER TABLE sessions ADD COLUMN ws_token_write INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mcp_session_tokens ADD COLUMN parent_token_id BLOB;
