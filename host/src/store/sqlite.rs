//! The embedded default store: one SQLite file, WAL, foreign keys on, sqlite-vec loaded.

use std::{str::FromStr, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{
    StoreKind,
    shared::{prelude::*, store_impl},
    sqlite_vec,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

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
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

impl super::Backend for SqliteStore {
    type Db = sqlx::Sqlite;
}

store_impl!(SqliteStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Sqlite
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

    /// SQLite runs one write at a time, so the subquery and the update cannot interleave with
    /// another claim.
    async fn claim_next_task(
        &self,
        project_id: Uuid,
        instance_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Option<Task>> {
        let sql = format!(
            "UPDATE tasks SET status = 'in_progress', assigned_to = $2, claimed_at = $3, \
             claim_expires_at = $4, release_reason = NULL, updated_at = $3 \
             WHERE status = 'pending' AND id = (SELECT t.id FROM tasks t WHERE t.project_id = $1 \
             AND t.status = 'pending' AND NOT EXISTS (SELECT 1 FROM task_dependencies d \
             JOIN tasks dep ON dep.id = d.depends_on WHERE d.task_id = t.id \
             AND dep.status <> 'completed') ORDER BY {} LIMIT 1) RETURNING *",
            sql::PRIORITY_ORDER
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(instance_id)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// `BEGIN IMMEDIATE` takes the write lock first, so two acquirers never both read "free".
    async fn acquire_locks(
        &self,
        project_id: Uuid,
        instance_id: &str,
        paths: &[String],
        reason: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        overlaps: PathOverlap,
    ) -> StoreResult<Vec<LockOutcome>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let outcomes = acquire_locks_in(
            &mut tx, project_id, instance_id, paths, reason, now, expires_at, overlaps,
        )
        .await?;
        tx.commit().await?;
        Ok(outcomes)
    }

});
