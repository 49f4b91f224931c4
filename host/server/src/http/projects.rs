//! Projects, instances, activity and broadcasts (API §5).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, Reply},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::{
        budgets, clock, instances,
        projects::{self, NewProject, ProjectChanges, Stats, estimate_tokens, settings_of},
    },
    error::{Result, Validator},
    store::{Activity, Instance, InstanceReport, Project, ProjectListing},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(stats))
        .routes(routes!(instances))
        .routes(routes!(heartbeat))
        .routes(routes!(activity))
        .routes(routes!(broadcast))
}

/// A project as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub name: String,
    pub project_path: String,
    pub summary: String,
    pub architecture: String,
    pub conventions: String,
    pub current_focus: String,
    pub recent_changes: String,
    /// With defaults filled in: maxContextTokens, taskTimeoutMinutes, lockTimeoutMinutes; and
    /// budgetTokens, budgetCostCents, runsPerHour when set (0 or unset: none).
    #[schema(value_type = Object)]
    pub settings: Value,
    pub token_usage_percent: f64,
    pub active_instances_count: i64,
    pub pending_tasks_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProjectView {
    fn new(p: Project, instances: i64, pending: i64, chunk_chars: i64) -> Self {
        let max = projects::setting(&p, "maxContextTokens");
        let used = estimate_tokens(projects::field_chars(&p) + chunk_chars);
        let stats = Stats {
            counts: Default::default(),
            total_tokens: used,
            max_tokens: max,
        };
        Self {
            token_usage_percent: stats.usage_percent(),
            settings: Value::Object(settings_of(&p)),
            id: p.id,
            machine_id: p.machine_id,
            name: p.name,
            project_path: p.project_path,
            summary: p.summary,
            architecture: p.architecture,
            conventions: p.conventions,
            current_focus: p.current_focus,
            recent_changes: p.recent_changes,
            active_instances_count: instances,
            pending_tasks_count: pending,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    async fn load(state: &AppState, p: Project) -> Result<Self> {
        let stats = projects::stats(state.store(), &p).await?;
        let c = &stats.counts;
        let (instances, pending, chunks) = (c.active_instances, c.pending_tasks, c.chunk_chars);
        Ok(Self::new(p, instances, pending, chunks))
    }
}

impl From<ProjectListing> for ProjectView {
    fn from(l: ProjectListing) -> Self {
        Self::new(
            l.project,
            l.active_instances_count,
            l.pending_tasks_count,
            l.chunk_chars,
        )
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(min_length = 1)]
    pub project_path: String,
    pub summary: Option<String>,
    pub architecture: Option<String>,
    pub conventions: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    pub name: Option<String>,
    pub summary: Option<String>,
    pub architecture: Option<String>,
    pub conventions: Option<String>,
    pub current_focus: Option<String>,
    pub recent_changes: Option<String>,
    /// Merged into the current settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

impl From<UpdateProjectRequest> for ProjectChanges {
    fn from(r: UpdateProjectRequest) -> Self {
        Self {
            name: r.name,
            summary: r.summary,
            architecture: r.architecture,
            conventions: r.conventions,
            current_focus: r.current_focus,
            recent_changes: r.recent_changes,
            settings: r.settings,
        }
    }
}

/// The machine's projects.
#[utoipa::path(get, path = "/machines/{machine}/projects", tag = "projects",
    security(("bearer" = [])), params(("machine" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<ProjectView>>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_projects(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
) -> Result<Reply<Vec<ProjectView>>> {
    let rows = projects::list(state.store(), &principal, machine).await?;
    Ok(Reply::ok(rows.into_iter().map(ProjectView::from).collect()))
}

/// Create a project on a machine. The path is unique per machine (`PRJ_002`).
#[utoipa::path(post, path = "/machines/{machine}/projects", tag = "projects",
    security(("bearer" = [])), params(("machine" = Uuid, Path)), request_body = CreateProjectRequest,
    responses(
        (status = 201, body = Envelope<ProjectView>),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "PRJ_002", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn create_project(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> Result<Reply<ProjectView>> {
    let new = NewProject {
        name: req.name,
        project_path: req.project_path,
        summary: req.summary,
        architecture: req.architecture,
        conventions: req.conventions,
        settings: req.settings,
    };
    let project = projects::create(state.store(), &principal, machine, new).await?;
    Ok(Reply::created(ProjectView::new(project, 0, 0, 0)))
}

/// One project.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<ProjectView>), (status = 404, description = "PRJ_001", body = ErrorEnvelope)))]
pub async fn get_project(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<ProjectView>> {
    let project = projects::get(state.store(), &principal, id).await?;
    Ok(Reply::ok(ProjectView::load(&state, project).await?))
}

/// 4 (settings are merged).
#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateProjectRequest,
    responses((status = 200, body = Envelope<ProjectView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn update_project(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateProjectRequest>,
) -> Result<Reply<ProjectView>> {
    let project = projects::update(state.store(), state.bus(), &principal, id, req.into()).await?;
    Ok(Reply::ok(ProjectView::load(&state, project).await?))
}

/// The project and everything in it.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_project(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Null>> {
    projects::delete(state.store(), &principal, id).await?;
    Ok(Reply::ok(Null))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub total_tokens: i64,
    pub max_tokens: i64,
    pub token_usage_percent: f64,
    pub active_instances: i64,
    pub total_tasks: i64,
    pub completed_tasks: i64,
    pub pending_tasks: i64,
    pub in_progress_tasks: i64,
    pub active_locks: i64,
    /// What the project's sessions spent against its budget and run limit.
    pub spend: budgets::Spend,
}

/// 6, counted from rows (tokens ≈ characters / 4).
#[utoipa::path(get, path = "/projects/{id}/stats", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<StatsView>), (status = 404, body = ErrorEnvelope)))]
pub async fn stats(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<StatsView>> {
    let project = projects::get(state.store(), &principal, id).await?;
    let s = projects::stats(state.store(), &project).await?;
    Ok(Reply::ok(StatsView {
        spend: budgets::spend(state.store(), &project).await?,
        token_usage_percent: s.usage_percent(),
        total_tokens: s.total_tokens,
        max_tokens: s.max_tokens,
        active_instances: s.counts.active_instances,
        total_tasks: s.counts.total_tasks,
        completed_tasks: s.counts.completed_tasks,
        pending_tasks: s.counts.pending_tasks,
        in_progress_tasks: s.counts.in_progress_tasks,
        active_locks: s.counts.active_locks,
    }))
}

/// An instance as the instance list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    /// The instance's own name.
    pub id: String,
    /// `idle`, `busy` or `disconnected`.
    pub status: String,
    pub context_usage: f64,
    pub tasks_completed: i32,
    pub current_task_id: Option<Uuid>,
    /// Seconds since it (re)connected.
    pub uptime: i64,
    pub last_seen_at: DateTime<Utc>,
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Self {
            uptime: (clock::now() - i.connected_at).num_seconds().max(0),
            id: i.instance_id,
            status: i.status,
            context_usage: i.context_usage,
            tasks_completed: i.tasks_completed,
            current_task_id: i.current_task_id,
            last_seen_at: i.last_seen_at,
        }
    }
}

/// The Claude Code instances working on the project.
#[utoipa::path(get, path = "/projects/{id}/instances", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<InstanceView>>), (status = 404, body = ErrorEnvelope)))]
pub async fn instances(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Vec<InstanceView>>> {
    let project = projects::get(state.store(), &principal, id).await?;
    let rows = state.store().instances(project.id).await?;
    Ok(Reply::ok(
        rows.into_iter().map(InstanceView::from).collect(),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// `idle` or `busy`.
    pub status: Option<String>,
    /// Percent of its context window the instance uses, 0..=100.
    pub context_usage: Option<f64>,
}

/// An instance says it is alive (and how it is); any call naming an instance does too.
#[utoipa::path(post, path = "/projects/{id}/instances/{instance_id}/heartbeat", tag = "projects",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("instance_id" = String, Path)),
    request_body = HeartbeatRequest,
    responses((status = 200, body = Envelope<Vec<InstanceView>>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((id, instance_id)): ApiPath<(Uuid, String)>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Reply<Vec<InstanceView>>> {
    let report = InstanceReport {
        status: req.status,
        context_usage: req.context_usage,
    };
    let rows = instances::heartbeat(
        state.store(),
        state.bus(),
        &principal,
        id,
        &instance_id,
        report,
    )
    .await?;
    Ok(Reply::ok(
        rows.into_iter().map(InstanceView::from).collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityView {
    pub id: Uuid,
    pub instance_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            id: a.id,
            instance_id: a.instance_id,
            kind: a.kind,
            details: a.details.0,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// 1..=500, default 50; newest first.
    pub limit: Option<u64>,
}

/// The project's activity log, newest first.
#[utoipa::path(get, path = "/projects/{id}/activity", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ActivityQuery),
    responses((status = 200, body = Envelope<Vec<ActivityView>>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn activity(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ActivityQuery>,
) -> Result<Reply<Vec<ActivityView>>> {
    let limit = query.limit.unwrap_or(50);
    Validator::new()
        .check(
            (1..=500).contains(&limit),
            "limit",
            "The limit must be between 1 and 500.",
        )
        .finish()?;
    let project = projects::get(state.store(), &principal, id).await?;
    let rows = state.store().recent_activity(project.id, limit).await?;
    Ok(Reply::ok(
        rows.into_iter().map(ActivityView::from).collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
    /// `"all"` (default) or a list of instance ids.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub target: Value,
}

/// Stored, logged and sent as `project:broadcast` on `private-project.{id}`.
#[utoipa::path(post, path = "/projects/{id}/broadcast", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = BroadcastRequest,
    responses((status = 201, body = Envelope<serde_json::Value>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn broadcast(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<BroadcastRequest>,
) -> Result<Reply<Value>> {
    let message = instances::broadcast(
        state.store(),
        state.bus(),
        &principal,
        id,
        &req.kind,
        &req.content,
        &req.target,
    )
    .await?;
    Ok(Reply::created(message))
}
