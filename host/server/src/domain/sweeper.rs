//! The sweeper: on a timer, frees what dead instances and timed-out claims hold (tasks back to
//! pending, locks released), with an activity entry and an event for each.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::clock;
use crate::{
    config::CoordinationSettings,
    error::Result,
    events::EventBus,
    store::{Store, Task},
};

use super::instances::record;

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub requeued_claims: usize,
    pub disconnected_instances: usize,
    pub expired_locks: u64,
    pub expired_chunks: u64,
}

/// Frees what nobody is working on any more: claims past their timeout go back to pending,
/// instances silent for `instance_timeout` are disconnected (their tasks and locks released),
/// expired locks are deleted. Idempotent; safe on several hosts at once.
pub async fn sweep(
    store: &dyn Store,
    bus: &EventBus,
    instance_timeout: Duration,
    now: DateTime<Utc>,
) -> Result<Swept> {
    let mut swept = Swept::default();
    for task in store.requeue_expired_claims(now).await? {
        swept.requeued_claims += 1;
        announce_release(store, bus, &task, None, "claim timed out").await?;
    }
    for instance in store
        .disconnect_stale_instances(now - instance_timeout)
        .await?
    {
        swept.disconnected_instances += 1;
        let (project_id, id) = (instance.project_id, instance.instance_id.as_str());
        for task in store.requeue_tasks_of_instance(project_id, id, now).await? {
            announce_release(store, bus, &task, Some(id), "instance disconnected").await?;
        }
        for lock in store.delete_locks_of_instance(project_id, id, now).await? {
            super::locks::announce_unlock(store, bus, project_id, Some(id), &lock.path).await?;
        }
        record(
            store,
            bus,
            project_id,
            Some(id),
            "instance_disconnected",
            json!({ "instance_id": id, "last_seen_at": instance.last_seen_at }),
            Some(("instance:disconnected", json!({ "instanceId": id }))),
        )
        .await?;
    }
    swept.expired_locks = store.sweep_expired_locks(now).await?;
    swept.expired_chunks = store.delete_expired_chunks(now).await?;
    Ok(swept)
}

/// Activity and `task:released` for a task that went back to pending without its instance.
async fn announce_release(
    store: &dyn Store,
    bus: &EventBus,
    task: &Task,
    instance_id: Option<&str>,
    reason: &str,
) -> Result<()> {
    record(
        store,
        bus,
        task.project_id,
        instance_id,
        "task_released",
        json!({ "task_id": task.id, "task_title": task.title, "reason": reason }),
        Some((
            "task:released",
            json!({ "task": super::tasks::event_view(task), "reason": reason }),
        )),
    )
    .await
}

/// Runs [`sweep`] every `interval` until `shutdown`.
pub fn spawn_sweeper(
    store: std::sync::Arc<dyn Store>,
    bus: std::sync::Arc<EventBus>,
    settings: CoordinationSettings,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let interval = StdDuration::from_secs(settings.sweep_interval_secs.max(1));
    let timeout = Duration::seconds(settings.instance_timeout_secs as i64);
    super::every(interval, shutdown, "coordination sweep", move || {
        let (store, bus) = (store.clone(), bus.clone());
        async move { sweep(store.as_ref(), &bus, timeout, clock::now()).await }
    });
}
