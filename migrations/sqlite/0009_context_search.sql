-- Search over context chunks (API §7): embeddings per model and a full-text index.

-- One embedding per chunk for the deployment's current model; a chunk whose row is missing or
-- names another model is (re-)embedded by the background worker. `embedding` is 384 float32
-- values, little-endian (the layout sqlite-vec's functions read).
CREATE TABLE chunk_embeddings (
    chunk_id   BLOB PRIMARY KEY NOT NULL REFERENCES context_chunks(id) ON DELETE CASCADE,
    project_id BLOB NOT NULL,
    model      TEXT NOT NULL,
    embedding  BLOB NOT NULL
);
CREATE INDEX chunk_embeddings_project ON chunk_embeddings(project_id, model);

-- FTS5 over the chunks' content, kept in step by triggers (chunks are never updated).
CREATE VIRTUAL TABLE context_chunks_fts USING fts5(
    content, content = 'context_chunks', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
INSERT INTO context_chunks_fts(rowid, content) SELECT rowid, content FROM context_chunks;
CREATE TRIGGER context_chunks_fts_insert AFTER INSERT ON context_chunks BEGIN
    INSERT INTO context_chunks_fts(rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER context_chunks_fts_delete AFTER DELETE ON context_chunks BEGIN
    INSERT INTO context_chunks_fts(context_chunks_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
END;
CREATE INDEX context_chunks_expiry ON context_chunks(expires_at) WHERE expires_at IS NOT NULL;
