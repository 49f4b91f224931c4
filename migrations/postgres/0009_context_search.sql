-- Search over context chunks (API §7): embeddings per model and a full-text index.

-- One embedding per chunk for the deployment's current model (384 dimensions, fixed per
-- deployment); a chunk whose row is missing or names another model is (re-)embedded by the
-- background worker.
CREATE TABLE chunk_embeddings (
    chunk_id   UUID PRIMARY KEY REFERENCES context_chunks(id) ON DELETE CASCADE,
    project_id UUID NOT NULL,
    model      TEXT NOT NULL,
    embedding  vector(384) NOT NULL
);
CREATE INDEX chunk_embeddings_project ON chunk_embeddings(project_id, model);
-- For large projects; small ones are searched exactly (see docs/context.md).
CREATE INDEX chunk_embeddings_hnsw ON chunk_embeddings USING hnsw (embedding vector_cosine_ops);

ALTER TABLE context_chunks
    ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED;
CREATE INDEX context_chunks_tsv ON context_chunks USING gin (content_tsv);
CREATE INDEX context_chunks_expiry ON context_chunks(expires_at) WHERE expires_at IS NOT NULL;
