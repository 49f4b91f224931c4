//! The production store: PostgreSQL with pgvector, shareable by several host processes.

use std::time::Duration;

use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};

use super::{
    StoreKind,
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

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
            let now = crate::domain::clock::now();
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

});
