//! Retention: what grows with use (project activity and broadcasts, session logs, the
//! notification delivery log, answered permission requests, relayed event payloads) is kept by
//! age and, for activity, by count per project — deleted in bounded batches so a sweep never
//! holds the database for long; what is left waits for the next sweep.

use chrono::{DateTime, Duration, Utc};

use super::clock;
use crate::{
    config::RetentionSettings,
    error::Result,
    store::{Prune, Store},
};

/// Statements per kind per sweep, at most.
const ROUNDS: usize = 20;

/// What one sweep removed, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub activity: u64,
    pub session_logs: u64,
    pub deliveries: u64,
    pub permissions: u64,
    pub relayed_events: u64,
}

/// Deletes `what` before `before`, `batch` rows a statement, until a statement finds fewer
/// or [`ROUNDS`] ran.
async fn prune(store: &dyn Store, what: Prune, before: DateTime<Utc>, batch: i64) -> Result<u64> {
    let mut total = 0;
    for _ in 0..ROUNDS {
        let n = store.prune(what, before, batch).await?;
        total += n;
        if n < batch as u64 {
            break;
        }
    }
    Ok(total)
}

/// One sweep as `settings` say, at `now`. Safe on several hosts at once.
pub async fn sweep(
    store: &dyn Store,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Pruned> {
    let batch = settings.batch.clamp(1, 100_000) as i64;
    let days = |n: u64| (n > 0).then(|| now - Duration::days(n.min(100_000) as i64));
    let mut pruned = Pruned::default();
    if let Some(before) = days(settings.activity_days) {
        pruned.activity += prune(store, Prune::Activity, before, batch).await?;
    }
    if settings.activity_per_project > 0 {
        let kept = settings.activity_per_project.min(i64::MAX as u64) as i64;
        pruned.activity += prune(store, Prune::ActivityBeyond(kept), now, batch).await?;
    }
    if let Some(before) = days(settings.session_log_days) {
        pruned.session_logs = prune(store, Prune::SessionLogs, before, batch).await?;
    }
    if let Some(before) = days(settings.delivery_days) {
        pruned.deliveries = prune(store, Prune::Deliveries, before, batch).await?;
    }
    if let Some(before) = days(settings.permission_days) {
        pruned.permissions = prune(store, Prune::Permissions, before, batch).await?;
    }
    if settings.relayed_event_secs > 0 {
        let before = now - Duration::seconds(settings.relayed_event_secs.min(1 << 40) as i64);
        pruned.relayed_events = prune(store, Prune::RelayedEvents, before, batch).await?;
    }
    Ok(pruned)
}

/// Runs [`sweep`] every `interval_secs` until `shutdown`.
pub fn spawn(
    store: std::sync::Arc<dyn Store>,
    settings: RetentionSettings,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let interval = std::time::Duration::from_secs(settings.interval_secs.max(1));
    let settings = std::sync::Arc::new(settings);
    super::every(interval, shutdown, "retention sweep", move || {
        let (store, settings) = (store.clone(), settings.clone());
        async move { sweep(store.as_ref(), &settings, clock::now()).await }
    });
}
