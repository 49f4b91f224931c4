//! The Claude Code instances working on a project (named by themselves, refreshed by every call
//! that names one), the project's activity log, and broadcasts between instances.

use chrono::Duration;
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{accounts::Principal, clock};
use crate::{
    error::{Result, Validator},
    events::{Event, EventBus},
    store::{Activity, Instance, InstanceReport, Store},
};

use super::{channel_names::project_channel, projects::get_for_write};

/// Instance ids are chosen by the instances: short, printable, no spaces.
pub fn validate_instance_id(v: &mut Validator, field: &str, id: &str) {
    v.check(
        (1..=100).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-@".contains(&b)),
        field,
        "The instance id must be 1 to 100 characters of letters, digits and _ . : - @.",
    );
}

/// Registers or refreshes `instance_id` on the project (any call that names an instance).
pub async fn touch_instance(store: &dyn Store, project_id: Uuid, instance_id: &str) -> Result<()> {
    Ok(store
        .touch_instance(project_id, instance_id, clock::now())
        .await?)
}

/// `POST /api/projects/{id}/instances/{instance}/heartbeat`.
pub async fn heartbeat(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    instance_id: &str,
    report: InstanceReport,
) -> Result<Vec<Instance>> {
    let project = get_for_write(store, principal, project_id).await?;
    let mut v = Validator::new();
    validate_instance_id(&mut v, "instance_id", instance_id);
    if let Some(status) = &report.status {
        v.check(
            status == "idle" || status == "busy",
            "status",
            "The status must be idle or busy.",
        );
    }
    if let Some(usage) = report.context_usage {
        v.check(
            (0.0..=100.0).contains(&usage),
            "context_usage",
            "The context usage must be between 0 and 100.",
        );
    }
    v.finish()?;
    touch_instance(store, project.id, instance_id).await?;
    store
        .report_instance(project.id, instance_id, &report)
        .await?;
    // Watchers see status and context usage move without asking.
    bus.publish(Event::new(
        project_channel(project.id),
        "instance:heartbeat",
        json!({
            "instance_id": instance_id,
            "status": report.status,
            "context_usage": report.context_usage,
        }),
    ));
    Ok(store.instances(project.id).await?)
}

/// Writes an activity entry and, with `event`, tells the project channel.
pub async fn record(
    store: &dyn Store,
    bus: &EventBus,
    project_id: Uuid,
    instance_id: Option<&str>,
    kind: &str,
    details: Value,
    event: Option<(&str, Value)>,
) -> Result<()> {
    store
        .insert_activity(&Activity {
            id: Uuid::now_v7(),
            project_id,
            instance_id: instance_id.map(str::to_owned),
            kind: kind.to_owned(),
            details: Json(details),
            created_at: clock::now(),
        })
        .await?;
    if let Some((name, data)) = event {
        bus.publish(Event::new(project_channel(project_id), name, data));
    }
    Ok(())
}

/// `POST /api/projects/{id}/broadcast` (§5.9): stored, logged, and sent on the project channel.
pub async fn broadcast(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    kind: &str,
    content: &str,
    target: &Value,
) -> Result<Value> {
    let project = get_for_write(store, principal, project_id).await?;
    let mut v = Validator::new();
    v.check(
        (1..=50).contains(&kind.len()),
        "type",
        "The type must be 1 to 50 characters.",
    )
    .check(
        (1..=10_000).contains(&content.chars().count()),
        "content",
        "The content must be 1 to 10000 characters.",
    );
    let target = match target {
        Value::Null => json!("all"),
        Value::String(s) if s == "all" => json!("all"),
        Value::Array(ids) => {
            for id in ids {
                match id.as_str() {
                    Some(id) => validate_instance_id(&mut v, "target", id),
                    None => {
                        v.add(
                            "target",
                            "The target must be \"all\" or a list of instance ids.",
                        );
                    }
                }
            }
            target.clone()
        }
        _ => {
            v.add(
                "target",
                "The target must be \"all\" or a list of instance ids.",
            );
            Value::Null
        }
    };
    v.finish()?;
    let message = json!({
        "id": Uuid::now_v7(),
        "type": kind,
        "content": content,
        "target": target,
        "created_at": clock::now(),
    });
    store
        .insert_chunk(&crate::store::ContextChunk {
            id: Uuid::now_v7(),
            project_id: project.id,
            instance_id: None,
            task_id: None,
            kind: "broadcast".into(),
            content: content.to_owned(),
            files: Json(vec![]),
            importance_score: 0.5,
            expires_at: Some(clock::now() + Duration::days(1)),
            created_at: clock::now(),
        })
        .await?;
    record(
        store,
        bus,
        project.id,
        None,
        "broadcast",
        message.clone(),
        Some(("project:broadcast", message.clone())),
    )
    .await?;
    Ok(message)
}
