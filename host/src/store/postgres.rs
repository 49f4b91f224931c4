//! The production store: PostgreSQL with pgvector, shareable by several host processes.

use std::time::Duration;

use sqlx::{PgPool, postgres::PgPoolOptions};

use super::{
    StoreKind,
    shared::{prelude::*, store_impl},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }
}

impl super::Backend for PgStore {
    type Db = sqlx::Postgres;
}

store_impl!(PgStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }

    /// sqlx holds an advisory lock around the run, so hosts starting together do not race.
    async fn migrate(&self) -> StoreResult<()> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

});
