//! The production store: PostgreSQL with pgvector, shareable by several host processes.

use std::time::Duration;

use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};

use super::{
    StoreError, StoreKind,
    shared::{prelude::*, store_impl},
};

/// The NOTIFY channel events travel on between host processes.
const EVENT_CHANNEL: &str = "claudenest_events";
/// NOTIFY payloads must stay under 8000 bytes; larger events go through `relayed_events`.
const MAX_NOTIFY_BYTES: usize = 7900;
/// A notification that carries a `relayed_events` id instead of the event.
const REF_PREFIX: &str = "ref:";

/// Concurrent claimers each take a different task instead of queueing on the same row.
const CLAIM_NEXT_LOCKING: &str = " FOR UPDATE OF t SKIP LOCKED";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// For the event listener, which holds a connection of its own (outside the pool, so
    /// closing the pool never waits for it).
    url: String,
}

impl PgStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }
}

impl PgStore {
    /// A transaction holding the project row's lock: lock changes within one project are
    /// serialised, other projects are not held up.
    async fn begin_project_write(
        &self,
        project_id: Uuid,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl super::Backend for PgStore {
    type Db = sqlx::Postgres;
}

store_impl!(PgStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }

    async fn backup_into(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Unsupported(
            "PostgreSQL databases are backed up with pg_dump (docs/operations.md)",
        ))
    }

    /// sqlx holds an advisory lock around the run, so hosts starting together do not race.
    async fn migrate(&self) -> StoreResult<()> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn send_event(&self, payload: &str) -> StoreResult<()> {
        let notification = if payload.len() <= MAX_NOTIFY_BYTES {
            payload.to_owned()
        } else {
            let id = Uuid::now_v7();
            let now = crate::clock::now();
            sqlx::query("DELETE FROM relayed_events WHERE created_at < $1")
                .bind(now - chrono::Duration::minutes(5))
                .execute(&self.pool)
                .await?;
            sqlx::query("INSERT INTO relayed_events (id, payload, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(payload)
                .bind(now)
                .execute(&self.pool)
                .await?;
            format!("{REF_PREFIX}{id}")
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENT_CHANNEL)
            .bind(notification)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen_events(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<String>>> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(EVENT_CHANNEL).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                // `recv` reconnects by itself after a lost connection. When nobody listens
                // any more (shutdown), the listener and its connection are dropped.
                let received = tokio::select! {
                    received = listener.recv() => received,
                    () = tx.closed() => return,
                };
                let notification = match received {
                    Ok(n) => n,
                    Err(err) => {
                        tracing::warn!(error = %err, "event listener error; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let payload = notification.payload();
                let payload = match payload.strip_prefix(REF_PREFIX).map(Uuid::parse_str) {
                    Some(Ok(id)) => {
                        let row: Result<Option<(String,)>, _> =
                            sqlx::query_as("SELECT payload FROM relayed_events WHERE id = $1")
                                .bind(id)
                                .fetch_optional(&pool)
                                .await;
                        match row {
                            Ok(Some((payload,))) => payload,
                            _ => continue,
                        }
                    }
                    _ => payload.to_owned(),
                };
                if tx.send(payload).await.is_err() {
                    return;
                }
            }
        });
        Ok(Some(rx))
    }


    async fn put_embeddings(&self, model: &str, rows: &[(Uuid, Uuid, Vec<f32>)]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for (chunk, project, vector) in rows {
            sqlx::query(sql::PUT_EMBEDDING)
                .bind(chunk)
                .bind(project)
                .bind(model)
                .bind(pgvector::Vector::from(vector.clone()))
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx.commit().await?)
    }

    /// pgvector's cosine distance. The planner scans the project's rows exactly when that is
    /// cheaper, else walks the HNSW index; iterative scans keep the project filter from
    /// starving the index walk of results.
    async fn nearest_chunks(
        &self,
        project_id: Uuid,
        search: &ChunkSearch<'_>,
        query: &[f32],
    ) -> StoreResult<Vec<(ContextChunk, f64)>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
            .execute(&mut *tx)
            .await?;
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT * FROM (SELECT c.*, (e.embedding <=> ",
        );
        q.push_bind(pgvector::Vector::from(query.to_vec()));
        q.push(")::float8 AS distance FROM chunk_embeddings e JOIN context_chunks c ON c.id = e.chunk_id WHERE e.project_id = ")
            .push_bind(project_id)
            .push(" AND e.model = ")
            .push_bind(search.model.to_owned())
            .push(" AND (c.expires_at IS NULL OR c.expires_at > ")
            .push_bind(search.now)
            .push(")");
        if let Some(kind) = search.kind {
            q.push(" AND c.type = ").push_bind(kind.to_owned());
        }
        q.push(" ORDER BY distance LIMIT ")
            .push_bind(search.limit as i64)
            .push(") nearest ORDER BY distance, id");
        let rows: Vec<ScoredChunk> = q.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| (r.chunk, 1.0 - r.distance)).collect())
    }

    /// `tsvector` (english stemming), any of the words, best `ts_rank` first; score =
    /// `ts_rank` with normalisation 32 (rank / (rank + 1)).
    async fn text_matches(
        &self,
        project_id: Uuid,
        search: &ChunkSearch<'_>,
        words: &[String],
        pending_only: bool,
    ) -> StoreResult<Vec<(ContextChunk, f64)>> {
        let words = sql::search_words(words);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT c.*, (1.0 - ts_rank(c.content_tsv, query, 32))::float8 AS distance \
             FROM context_chunks c LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id AND e.model = ",
        );
        q.push_bind(search.model.to_owned())
            .push(", to_tsquery('english', ")
            .push_bind(words.join(" | "))
            .push(") query WHERE c.content_tsv @@ query AND c.project_id = ")
            .push_bind(project_id)
            .push(" AND (c.expires_at IS NULL OR c.expires_at > ")
            .push_bind(search.now)
            .push(")");
        if pending_only {
            q.push(" AND e.chunk_id IS NULL");
        }
        if let Some(kind) = search.kind {
            q.push(" AND c.type = ").push_bind(kind.to_owned());
        }
        q.push(" ORDER BY distance, c.id LIMIT ")
            .push_bind(search.limit as i64);
        let rows: Vec<ScoredChunk> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| (r.chunk, 1.0 - r.distance)).collect())
    }
});
