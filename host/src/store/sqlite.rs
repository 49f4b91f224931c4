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

/// SQLite runs one write at a time, so the claim's subquery and update cannot interleave with
/// another claim: no row locking clause is needed.
const CLAIM_NEXT_LOCKING: &str = "";

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
});
