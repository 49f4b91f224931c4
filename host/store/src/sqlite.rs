//! The embedded default store: one SQLite file, WAL, foreign keys on, sqlite-vec loaded.

use std::{str::FromStr, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{
    StoreError, StoreKind,
    shared::{prelude::*, store_impl},
    sqlite_vec,
};

/// SQLite runs one write at a time, so the claim's subquery and update cannot interleave with
/// another claim: no row locking clause is needed.
const CLAIM_NEXT_LOCKING: &str = "";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`), creating parent
    /// directories too, so a first run needs no set-up.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlite_vec::register();
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL makes NORMAL durable against application crashes; only power loss can drop
            // the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename().to_owned();
        if let Some(parent) = file.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        private_file(&file)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a file in this process cannot go stale, and the ping sqlx sends
            // otherwise on every acquire is a round trip to the connection's worker thread
            // before each query.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

/// The database file readable by its owner only (it holds secrets). SQLite gives its `-wal`
/// and `-shm` files the database file's mode, so making the file first, 0600, covers them.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// A transaction that holds the database's write lock from its first statement
    /// (`BEGIN IMMEDIATE`), so two lock acquirers never both read "free".
    async fn begin_project_write(
        &self,
        _project_id: Uuid,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl super::Backend for SqliteStore {
    type Db = sqlx::Sqlite;
}

store_impl!(SqliteStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Sqlite
    }

    async fn backup_into(&self, path: &std::path::Path) -> StoreResult<()> {
        let target = path.to_str().ok_or(StoreError::Unsupported("the backup path is not UTF-8"))?;
        // One statement, one snapshot: writers go on meanwhile (WAL).
        sqlx::query("VACUUM INTO $1").bind(target).execute(&self.pool).await?;
        private_file(path)?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    /// One process owns an SQLite file: events stay in-process.
    async fn send_event(&self, _payload: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn listen_events(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<String>>> {
        Ok(None)
    }

    async fn put_embeddings(&self, model: &str, rows: &[(Uuid, Uuid, Vec<f32>)]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for (chunk, project, vector) in rows {
            sqlx::query(sql::PUT_EMBEDDING)
                .bind(chunk)
                .bind(project)
                .bind(model)
                .bind(super::sqlite_vec::to_bytes(vector))
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx.commit().await?)
    }

    /// sqlite-vec's `vec_distance_cosine` over the project's embeddings (an exact scan).
    async fn nearest_chunks(
        &self,
        project_id: Uuid,
        search: &ChunkSearch<'_>,
        query: &[f32],
    ) -> StoreResult<Vec<(ContextChunk, f64)>> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT c.*, vec_distance_cosine(e.embedding, ",
        );
        q.push_bind(super::sqlite_vec::to_bytes(query));
        q.push(") AS distance FROM chunk_embeddings e JOIN context_chunks c ON c.id = e.chunk_id WHERE e.project_id = ")
            .push_bind(project_id)
            .push(" AND e.model = ")
            .push_bind(search.model.to_owned())
            .push(" AND (c.expires_at IS NULL OR c.expires_at > ")
            .push_bind(search.now)
            .push(")");
        if let Some(kind) = search.kind {
            q.push(" AND c.type = ").push_bind(kind.to_owned());
        }
        q.push(" ORDER BY distance, c.id LIMIT ").push_bind(search.limit as i64);
        let rows: Vec<ScoredChunk> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| (r.chunk, 1.0 - r.distance)).collect())
    }

    /// FTS5 (porter stemming), any of the words, best bm25 first; score = x / (1 + x) with
    /// x = -bm25 (bm25 is negative, lower is better).
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
        let matcher = words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" OR ");
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT c.*, 1.0 / (1.0 - bm25(context_chunks_fts)) AS distance \
             FROM context_chunks_fts f JOIN context_chunks c ON c.rowid = f.rowid \
             LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id AND e.model = ",
        );
        q.push_bind(search.model.to_owned())
            .push(" WHERE context_chunks_fts MATCH ")
            .push_bind(matcher)
            .push(" AND c.project_id = ")
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
        q.push(" ORDER BY bm25(context_chunks_fts), c.id LIMIT ").push_bind(search.limit as i64);
        let rows: Vec<ScoredChunk> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| (r.chunk, 1.0 - r.distance)).collect())
    }
});
