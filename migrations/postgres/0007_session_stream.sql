-- Output sequence numbers are unique per session: a chunk the agent resends after a reconnect
-- is skipped (INSERT … ON CONFLICT DO NOTHING), and `since` reads walk this index.
-- Entries without a seq (input, status, error) are NULL and never conflict.
CREATE UNIQUE INDEX session_logs_seq ON session_logs(session_id, seq);
