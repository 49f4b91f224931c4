//! Tasks (API §6).

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, PageQuery, Reply},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::tasks::{self, TaskInput},
    error::Result,
    store::{Task, TaskRow},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks, create_task))
        .routes(routes!(next_available))
        .routes(routes!(claim_next))
        .routes(routes!(get_task, update_task, delete_task))
        .routes(routes!(claim))
        .routes(routes!(release))
        .routes(routes!(complete))
}

/// The priority enum, so an unknown value is a `VAL_001` on `priority`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub description: String,
    pub priority: String,
    /// `pending`, `in_progress` or `completed`.
    pub status: String,
    pub assigned_to: Option<String>,
    pub is_claimed: bool,
    /// An unfinished dependency keeps it from being claimed.
    pub is_blocked: bool,
    pub files: Vec<String>,
    pub dependencies: Vec<Uuid>,
    pub estimated_tokens: Option<i64>,
    pub summary: Option<String>,
    pub files_modified: Vec<String>,
    pub release_reason: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TaskView {
    fn new(t: Task, is_blocked: bool, dependencies: Vec<Uuid>) -> Self {
        Self {
            is_claimed: t.assigned_to.is_some(),
            is_blocked,
            dependencies,
            id: t.id,
            project_id: t.project_id,
            title: t.title,
            description: t.description,
            priority: t.priority,
            status: t.status,
            assigned_to: t.assigned_to,
            files: t.files.0,
            estimated_tokens: t.estimated_tokens,
            summary: t.summary,
            files_modified: t.files_modified.0,
            release_reason: t.release_reason,
            claimed_at: t.claimed_at,
            completed_at: t.completed_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }

    fn from_row(row: TaskRow, deps: &HashMap<Uuid, Vec<Uuid>>) -> Self {
        let d = deps.get(&row.task.id).cloned().unwrap_or_default();
        Self::new(row.task, row.is_blocked, d)
    }

    /// One task with its own dependencies read (not the whole project's).
    async fn load(state: &AppState, task: Task, is_blocked: bool) -> Result<Self> {
        let deps = state.store().dependencies_of(task.id).await?;
        Ok(Self::new(task, is_blocked, deps))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub title: String,
    pub description: Option<String>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    pub files: Option<Vec<String>>,
    /// Ids of tasks of the same project that must be completed first.
    pub dependencies: Option<Vec<Uuid>>,
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub estimated_tokens: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub files: Option<Vec<String>>,
    /// Replaces the dependencies.
    pub dependencies: Option<Vec<Uuid>>,
    pub estimated_tokens: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    /// `pending`, `in_progress` or `completed`.
    pub status: Option<String>,
    pub priority: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceRequest {
    pub instance_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The instance that holds the task; omitted, whichever instance holds it.
    pub instance_id: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The instance that holds the task; omitted, whichever instance holds it.
    pub instance_id: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub files_modified: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimedData {
    pub task: TaskView,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaybeTaskData {
    /// Null when no task is available.
    pub task: Option<TaskView>,
    pub message: String,
}

impl CreateTaskRequest {
    fn into_input(self) -> TaskInput {
        TaskInput {
            title: Some(self.title),
            description: self.description,
            priority: self.priority.map(|p| p.as_str().to_owned()),
            files: self.files,
            dependencies: self.dependencies,
            estimated_tokens: self.estimated_tokens,
        }
    }
}

/// 1, highest priority first, then oldest.
#[utoipa::path(get, path = "/projects/{project}/tasks", tag = "tasks", security(("bearer" = [])),
    params(("project" = Uuid, Path), TaskListQuery),
    responses((status = 200, body = Envelope<Vec<TaskView>>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<TaskListQuery>,
) -> Result<Reply<Vec<TaskView>>> {
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .validate()?;
    let (rows, total) = tasks::list(
        state.store(),
        &principal,
        project,
        query.status,
        query.priority,
        page.per_page,
        page.offset(),
    )
    .await?;
    let deps = tasks::dependency_map(state.store(), project).await?;
    let views = rows
        .into_iter()
        .map(|r| TaskView::from_row(r, &deps))
        .collect();
    Ok(Reply::page(views, total, page))
}

/// Dependencies must be tasks of this project and may not form a cycle.
#[utoipa::path(post, path = "/projects/{project}/tasks", tag = "tasks", security(("bearer" = [])),
    params(("project" = Uuid, Path)), request_body = CreateTaskRequest,
    responses((status = 201, body = Envelope<TaskView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn create_task(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateTaskRequest>,
) -> Result<Reply<TaskView>> {
    let (task, deps) = tasks::create(
        state.store(),
        state.bus(),
        &principal,
        project,
        req.into_input(),
    )
    .await?;
    let row = state
        .store()
        .task(principal.user.id, task.id)
        .await?
        .map(|r| r.is_blocked)
        .unwrap_or(!deps.is_empty());
    Ok(Reply::created(TaskView::new(task, row, deps)))
}

/// The highest-priority, oldest, unclaimed task whose dependencies are done.
#[utoipa::path(get, path = "/projects/{project}/tasks/next-available", tag = "tasks",
    security(("bearer" = [])), params(("project" = Uuid, Path)),
    responses((status = 200, description = "`data` is null when none is available", body = Envelope<Option<TaskView>>),
               (status = 404, body = ErrorEnvelope)))]
pub async fn next_available(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
) -> Result<Reply<Option<TaskView>>> {
    let next = tasks::next_available(state.store(), &principal, project).await?;
    let deps = tasks::dependency_map(state.store(), project).await?;
    Ok(Reply::ok(next.map(|r| TaskView::from_row(r, &deps))))
}

/// Atomically claims the next available task for an instance.
#[utoipa::path(post, path = "/projects/{project}/tasks/claim-next", tag = "tasks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = InstanceRequest,
    responses((status = 200, body = Envelope<MaybeTaskData>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn claim_next(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<InstanceRequest>,
) -> Result<Reply<MaybeTaskData>> {
    let claimed = tasks::claim_next(
        state.store(),
        state.bus(),
        &principal,
        project,
        &req.instance_id,
    )
    .await?;
    let (task, message) = match claimed {
        Some(task) => (
            Some(TaskView::load(&state, task, false).await?),
            "Task claimed successfully",
        ),
        None => (None, "No task is available"),
    };
    Ok(Reply::ok(MaybeTaskData {
        task,
        message: message.into(),
    }))
}

/// One task.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<TaskView>), (status = 404, description = "TSK_001", body = ErrorEnvelope)))]
pub async fn get_task(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<TaskView>> {
    let (row, _) = tasks::get(state.store(), &principal, id).await?;
    Ok(Reply::ok(
        TaskView::load(&state, row.task, row.is_blocked).await?,
    ))
}

/// Status changes go through claim, release and complete.
#[utoipa::path(patch, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateTaskRequest,
    responses((status = 200, body = Envelope<TaskView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn update_task(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateTaskRequest>,
) -> Result<Reply<TaskView>> {
    let input = TaskInput {
        title: req.title,
        description: req.description,
        priority: req.priority.map(|p| p.as_str().to_owned()),
        files: req.files,
        dependencies: req.dependencies,
        estimated_tokens: req.estimated_tokens,
    };
    let row = tasks::update(state.store(), state.bus(), &principal, id, input).await?;
    Ok(Reply::ok(
        TaskView::load(&state, row.task, row.is_blocked).await?,
    ))
}

/// Delete a task.
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_task(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Null>> {
    tasks::delete(state.store(), state.bus(), &principal, id).await?;
    Ok(Reply::ok(Null))
}

/// Atomic; the losers of a race get `TSK_002`.
#[utoipa::path(post, path = "/tasks/{id}/claim", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = InstanceRequest,
    responses(
        (status = 200, body = Envelope<ClaimedData>),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "TSK_002 (already claimed) or TSK_004 (blocked)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn claim(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<InstanceRequest>,
) -> Result<Reply<ClaimedData>> {
    let task = tasks::claim(state.store(), state.bus(), &principal, id, &req.instance_id).await?;
    Ok(Reply::ok(ClaimedData {
        task: TaskView::load(&state, task, false).await?,
        message: "Task claimed successfully".into(),
    }))
}

/// Only by the claiming instance (`TSK_003` otherwise).
#[utoipa::path(post, path = "/tasks/{id}/release", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReleaseRequest,
    responses((status = 200, body = Envelope<TaskView>), (status = 403, description = "TSK_003", body = ErrorEnvelope),
               (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn release(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<Reply<TaskView>> {
    let task = tasks::release(
        state.store(),
        state.bus(),
        &principal,
        id,
        req.instance_id.as_deref(),
        req.reason,
    )
    .await?;
    Ok(Reply::ok(TaskView::load(&state, task, false).await?))
}

/// Only by the claiming instance; unblocks dependents and records a context chunk.
#[utoipa::path(post, path = "/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CompleteRequest,
    responses((status = 200, body = Envelope<TaskView>), (status = 403, description = "TSK_003", body = ErrorEnvelope),
               (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn complete(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Reply<TaskView>> {
    let task = tasks::complete(
        state.store(),
        state.bus(),
        &principal,
        id,
        req.instance_id.as_deref(),
        req.summary,
        req.files_modified,
    )
    .await?;
    Ok(Reply::ok(TaskView::load(&state, task, false).await?))
}
