//! Tasks (API §6): validation, dependency gating and cycles, atomic claims, release and
//! completion by the claiming instance only.

use std::collections::{HashMap, HashSet};

use chrono::Duration;
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    abilities,
    accounts::Principal,
    clock,
    instances::{record, touch_instance, validate_instance_id},
    projects,
};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    events::EventBus,
    store::{ClaimRefusal, ContextChunk, Project, Store, Task, TaskRow},
};

pub const PRIORITIES: &[&str] = &["low", "medium", "high", "critical"];

/// 1 (low) to 4 (critical), the order claims take.
pub fn priority_rank(priority: &str) -> i32 {
    PRIORITIES
        .iter()
        .position(|p| *p == priority)
        .map_or(1, |i| i as i32 + 1)
}
pub const STATUSES: &[&str] = &["pending", "in_progress", "completed"];

/// The task as events carry it.
pub fn event_view(task: &Task) -> Value {
    json!({
        "id": task.id,
        "project_id": task.project_id,
        "title": task.title,
        "priority": task.priority,
        "status": task.status,
        "assigned_to": task.assigned_to,
    })
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::TaskNotFound)
}

/// What create and update take; `None` leaves a field as it is (or defaults on create).
#[derive(Default)]
pub struct TaskInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub files: Option<Vec<String>>,
    pub dependencies: Option<Vec<Uuid>>,
    pub estimated_tokens: Option<i64>,
}

fn validate_input(v: &mut Validator, input: &TaskInput, creating: bool) {
    match &input.title {
        Some(title) => {
            v.check_length(
                title,
                1,
                255,
                "title",
                "The title must be between 1 and 255 characters.",
            );
        }
        None if creating => {
            v.add("title", "The title field is required.");
        }
        None => {}
    }
    if let Some(description) = &input.description {
        v.check(
            description.chars().count() <= 10_000,
            "description",
            "The description may not be longer than 10000 characters.",
        );
    }
    if let Some(priority) = &input.priority {
        v.check(
            PRIORITIES.contains(&priority.as_str()),
            "priority",
            "The priority must be one of: low, medium, high, critical.",
        );
    }
    if let Some(files) = &input.files {
        v.check(files.len() <= 200, "files", "At most 200 files.");
        v.check(
            files.iter().all(|f| (1..=1024).contains(&f.len())),
            "files",
            "Each file must be 1 to 1024 characters.",
        );
    }
    if let Some(tokens) = input.estimated_tokens {
        v.check(
            (0..=100_000_000).contains(&tokens),
            "estimated_tokens",
            "The estimated tokens must be between 0 and 100000000.",
        );
    }
}

/// Dependencies a task may have.
const MAX_DEPENDENCIES: usize = 100;

/// Dependencies must be distinct other tasks of the same project, and must not close a cycle.
async fn check_dependencies(
    store: &dyn Store,
    v: &mut Validator,
    project_id: Uuid,
    task_id: Uuid,
    dependencies: &[Uuid],
) -> Result<()> {
    if dependencies.len() > MAX_DEPENDENCIES {
        v.add(
            "dependencies",
            format!("A task may depend on at most {MAX_DEPENDENCIES} tasks."),
        );
        return Ok(());
    }
    // Each edge is stored once: a repeated id would break the store's key.
    let mut distinct = HashSet::new();
    if dependencies.iter().any(|d| !distinct.insert(*d)) {
        v.add("dependencies", "Each dependency may be listed once.");
    }
    let edges = store.task_dependencies(project_id).await?;
    let known: HashSet<Uuid> = store.task_ids(project_id).await?.into_iter().collect();
    for dep in dependencies {
        if *dep == task_id {
            v.add("dependencies", "A task cannot depend on itself.");
        } else if !known.contains(dep) {
            v.add(
                "dependencies",
                format!("{dep} is not a task of this project."),
            );
        }
    }
    // The graph with this task's edges replaced: is the task reachable from a dependency?
    let mut graph: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (from, to) in edges.into_iter().filter(|(from, _)| *from != task_id) {
        graph.entry(from).or_default().push(to);
    }
    graph.insert(task_id, dependencies.to_vec());
    let mut stack: Vec<Uuid> = dependencies.to_vec();
    let mut seen = HashSet::new();
    while let Some(node) = stack.pop() {
        if node == task_id {
            v.add("dependencies", "These dependencies would create a cycle.");
            break;
        }
        if seen.insert(node) {
            stack.extend(graph.get(&node).into_iter().flatten());
        }
    }
    Ok(())
}

pub async fn create(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    input: TaskInput,
) -> Result<(Task, Vec<Uuid>)> {
    principal.require(abilities::TASKS_WRITE)?;
    let project = projects::get(store, principal, project_id).await?;
    let id = Uuid::now_v7();
    let mut v = Validator::new();
    validate_input(&mut v, &input, true);
    let dependencies = input.dependencies.clone().unwrap_or_default();
    check_dependencies(store, &mut v, project.id, id, &dependencies).await?;
    v.finish()?;
    let now = clock::now();
    let priority = input.priority.unwrap_or_else(|| "medium".into());
    let task = Task {
        id,
        project_id: project.id,
        title: input.title.unwrap_or_default().trim().to_owned(),
        description: input.description.unwrap_or_default(),
        priority_rank: priority_rank(&priority),
        priority,
        status: "pending".into(),
        assigned_to: None,
        files: Json(input.files.unwrap_or_default()),
        estimated_tokens: input.estimated_tokens,
        summary: None,
        files_modified: Json(vec![]),
        release_reason: None,
        claim_expires_at: None,
        claimed_at: None,
        completed_at: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_task(&task, &dependencies).await?;
    record(
        store,
        bus,
        project.id,
        None,
        "task_created",
        json!({ "task_id": task.id, "task_title": task.title }),
        Some(("task:created", json!({ "task": event_view(&task) }))),
    )
    .await?;
    Ok((task, dependencies))
}

/// A task of the caller's, with the project it belongs to.
pub async fn get(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<(TaskRow, Project)> {
    principal.require(abilities::TASKS_READ)?;
    let row = store
        .task(principal.user.id, id)
        .await?
        .ok_or_else(not_found)?;
    let project = store
        .project(principal.user.id, row.task.project_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((row, project))
}

/// Each task's dependencies, for showing tasks.
pub async fn dependency_map(
    store: &dyn Store,
    project_id: Uuid,
) -> Result<HashMap<Uuid, Vec<Uuid>>> {
    let mut map: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (task, dep) in store.task_dependencies(project_id).await? {
        map.entry(task).or_default().push(dep);
    }
    Ok(map)
}

pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
    status: Option<String>,
    priority: Option<String>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<TaskRow>, u64)> {
    principal.require(abilities::TASKS_READ)?;
    let project = projects::get(store, principal, project_id).await?;
    let mut v = Validator::new();
    if let Some(s) = &status {
        v.check(
            STATUSES.contains(&s.as_str()),
            "status",
            "The status must be one of: pending, in_progress, completed.",
        );
    }
    if let Some(p) = &priority {
        v.check(
            PRIORITIES.contains(&p.as_str()),
            "priority",
            "The priority must be one of: low, medium, high, critical.",
        );
    }
    v.finish()?;
    Ok(store
        .tasks_page(
            project.id,
            status.as_deref(),
            priority.as_deref(),
            limit,
            offset,
        )
        .await?)
}

pub async fn update(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
    input: TaskInput,
) -> Result<TaskRow> {
    principal.require(abilities::TASKS_WRITE)?;
    let (row, project) = get(store, principal, id).await?;
    let mut v = Validator::new();
    validate_input(&mut v, &input, false);
    if let Some(deps) = &input.dependencies {
        check_dependencies(store, &mut v, project.id, id, deps).await?;
    }
    v.finish()?;
    let mut task = row.task;
    if let Some(title) = input.title {
        task.title = title.trim().to_owned();
    }
    if let Some(description) = input.description {
        task.description = description;
    }
    if let Some(priority) = input.priority {
        task.priority_rank = priority_rank(&priority);
        task.priority = priority;
    }
    if let Some(files) = input.files {
        task.files = Json(files);
    }
    if input.estimated_tokens.is_some() {
        task.estimated_tokens = input.estimated_tokens;
    }
    task.updated_at = clock::now();
    store
        .update_task(&task, input.dependencies.as_deref())
        .await?;
    bus.publish(crate::events::Event::new(
        super::channel_names::project_channel(project.id),
        "task:updated",
        json!({ "task": event_view(&task) }),
    ));
    let (row, _) = get(store, principal, id).await?;
    Ok(row)
}

pub async fn delete(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
) -> Result<()> {
    principal.require(abilities::TASKS_WRITE)?;
    let (row, project) = get(store, principal, id).await?;
    if !store.delete_task(project.id, id).await? {
        return Err(not_found());
    }
    record(
        store,
        bus,
        project.id,
        None,
        "task_deleted",
        json!({ "task_id": id, "task_title": row.task.title }),
        Some(("task:deleted", json!({ "task": event_view(&row.task) }))),
    )
    .await
}

pub async fn next_available(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
) -> Result<Option<TaskRow>> {
    principal.require(abilities::TASKS_READ)?;
    let project = projects::get(store, principal, project_id).await?;
    Ok(store.next_available_task(project.id).await?)
}

fn claim_deadline(project: &Project) -> chrono::DateTime<chrono::Utc> {
    clock::now() + Duration::minutes(project.task_timeout_minutes.max(1).into())
}

/// After a claim: the instance is busy, the log and the channel know.
async fn announce_claim(
    store: &dyn Store,
    bus: &EventBus,
    task: &Task,
    instance_id: &str,
) -> Result<()> {
    store
        .instance_took_task(task.project_id, instance_id, task.id)
        .await?;
    record(
        store,
        bus,
        task.project_id,
        Some(instance_id),
        "task_claimed",
        json!({ "task_id": task.id, "task_title": task.title }),
        Some((
            "task:claimed",
            json!({ "task": event_view(task), "instanceId": instance_id }),
        )),
    )
    .await
}

/// `POST /api/tasks/{id}/claim`: exactly one of any number of concurrent claimers wins.
pub async fn claim(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
    instance_id: &str,
) -> Result<Task> {
    principal.require(abilities::TASKS_WRITE)?;
    let mut v = Validator::new();
    validate_instance_id(&mut v, "instance_id", instance_id);
    v.finish()?;
    let (_, project) = get(store, principal, id).await?;
    touch_instance(store, project.id, instance_id).await?;
    let now = clock::now();
    match store
        .claim_task(id, instance_id, now, claim_deadline(&project))
        .await?
    {
        Ok(task) => {
            announce_claim(store, bus, &task, instance_id).await?;
            Ok(task)
        }
        Err(ClaimRefusal::NotFound) => Err(not_found()),
        Err(ClaimRefusal::AlreadyClaimed) => Err(ApiError::new(ErrorCode::TaskAlreadyClaimed)
            .with_message("Task already claimed by another instance")),
        Err(ClaimRefusal::Blocked) => Err(ApiError::new(ErrorCode::TaskBlocked)),
    }
}

/// `POST /api/projects/{project}/tasks/claim-next`: the next available task, atomically.
pub async fn claim_next(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    instance_id: &str,
) -> Result<Option<Task>> {
    principal.require(abilities::TASKS_WRITE)?;
    let mut v = Validator::new();
    validate_instance_id(&mut v, "instance_id", instance_id);
    v.finish()?;
    let project = projects::get(store, principal, project_id).await?;
    touch_instance(store, project.id, instance_id).await?;
    let claimed = store
        .claim_next_task(
            project.id,
            instance_id,
            clock::now(),
            claim_deadline(&project),
        )
        .await?;
    if let Some(task) = &claimed {
        announce_claim(store, bus, task, instance_id).await?;
    }
    Ok(claimed)
}

/// Why a release or completion by `instance_id` failed.
async fn not_yours(store: &dyn Store, principal: &Principal, id: Uuid) -> ApiError {
    match get(store, principal, id).await {
        Ok(_) => ApiError::new(ErrorCode::TaskNotClaimedByInstance),
        Err(err) => err,
    }
}

/// The instance a release or completion acts for: the one named or, when a person acts on
/// their own project without naming one (the API document's examples do), whichever instance
/// holds the task. The store's conditional update still refuses if that changed meanwhile.
async fn acting_instance(
    store: &dyn Store,
    principal: &Principal,
    id: Uuid,
    named: Option<&str>,
) -> Result<(Project, String)> {
    let (row, project) = get(store, principal, id).await?;
    let instance = match named {
        Some(named) => named.to_owned(),
        None => row.task.assigned_to.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::TaskNotClaimedByInstance)
                .with_message("The task is not claimed by any instance.")
        })?,
    };
    Ok((project, instance))
}

pub async fn release(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
    instance_id: Option<&str>,
    reason: Option<String>,
) -> Result<Task> {
    principal.require(abilities::TASKS_WRITE)?;
    let mut v = Validator::new();
    if let Some(instance_id) = instance_id {
        validate_instance_id(&mut v, "instance_id", instance_id);
    }
    if let Some(reason) = &reason {
        v.check(
            reason.chars().count() <= 1000,
            "reason",
            "The reason may not be longer than 1000 characters.",
        );
    }
    v.finish()?;
    let (project, instance_id) = acting_instance(store, principal, id, instance_id).await?;
    let instance_id = instance_id.as_str();
    touch_instance(store, project.id, instance_id).await?;
    let Some(task) = store
        .release_task(id, instance_id, reason.as_deref(), clock::now())
        .await?
    else {
        return Err(not_yours(store, principal, id).await);
    };
    store
        .instance_dropped_task(project.id, instance_id, id, false)
        .await?;
    let reason = reason.unwrap_or_default();
    record(
        store,
        bus,
        project.id,
        Some(instance_id),
        "task_released",
        json!({ "task_id": id, "task_title": task.title, "reason": reason }),
        Some((
            "task:released",
            json!({ "task": event_view(&task), "reason": reason }),
        )),
    )
    .await?;
    Ok(task)
}

pub async fn complete(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
    instance_id: Option<&str>,
    summary: String,
    files_modified: Vec<String>,
) -> Result<Task> {
    principal.require(abilities::TASKS_WRITE)?;
    let mut v = Validator::new();
    if let Some(instance_id) = instance_id {
        validate_instance_id(&mut v, "instance_id", instance_id);
    }
    v.check(
        (1..=10_000).contains(&summary.chars().count()),
        "summary",
        "The summary must be 1 to 10000 characters.",
    )
    .check(
        files_modified.len() <= 500,
        "files_modified",
        "At most 500 files.",
    );
    v.finish()?;
    let (project, instance_id) = acting_instance(store, principal, id, instance_id).await?;
    let instance_id = instance_id.as_str();
    touch_instance(store, project.id, instance_id).await?;
    let now = clock::now();
    let Some(task) = store
        .complete_task(id, instance_id, &summary, &files_modified, now)
        .await?
    else {
        return Err(not_yours(store, principal, id).await);
    };
    store
        .instance_dropped_task(project.id, instance_id, id, true)
        .await?;
    store
        .insert_chunk(&ContextChunk {
            id: Uuid::now_v7(),
            project_id: project.id,
            instance_id: Some(instance_id.to_owned()),
            task_id: Some(id),
            kind: "task_completion".into(),
            content: format!("Completed task \"{}\": {summary}", task.title),
            files: Json(files_modified.clone()),
            importance_score: 0.8,
            expires_at: None,
            created_at: now,
        })
        .await?;
    record(
        store,
        bus,
        project.id,
        Some(instance_id),
        "task_completed",
        json!({ "task_id": id, "task_title": task.title, "files_modified": files_modified }),
        Some((
            "task:completed",
            json!({ "task": event_view(&task), "summary": summary }),
        )),
    )
    .await?;
    Ok(task)
}
