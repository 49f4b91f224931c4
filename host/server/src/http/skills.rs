//! Skills (API §9). Thin: the rules, processing and folder sync are in `domain::skills`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, Reply},
    extract::{ApiJson, ApiPath},
};
use crate::{
    app::AppState,
    domain::skills::{self, BulkItem, SkillInput, SkillPatch},
    error::Result,
    store::SkillRow,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_skills, create_skill))
        .routes(routes!(bulk_update))
        .routes(routes!(get_skill, update_skill, delete_skill))
        .routes(routes!(toggle_skill))
}

/// A skill in lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillSummary {
    pub id: Uuid,
    pub path: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub priority: i64,
    pub size_bytes: i64,
    pub last_modified: DateTime<Utc>,
}

/// A skill with its content and metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillView {
    #[serde(flatten)]
    pub summary: SkillSummary,
    pub content: String,
    /// The processor's metadata (tags, version, other frontmatter keys, `processor`,
    /// `warnings`) with the caller's laid over it.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

impl From<&SkillRow> for SkillSummary {
    fn from(s: &SkillRow) -> Self {
        Self {
            id: s.id,
            path: s.path.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            enabled: s.enabled,
            priority: s.priority,
            size_bytes: s.size_bytes,
            last_modified: s.last_modified,
        }
    }
}

impl From<SkillRow> for SkillView {
    fn from(s: SkillRow) -> Self {
        Self {
            summary: (&s).into(),
            content: s.content,
            metadata: s.metadata.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Toggled {
    pub path: String,
    pub enabled: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub updates: Vec<BulkItem>,
}

/// The machine's skills, highest priority first.
#[utoipa::path(get, path = "/machines/{machine}/skills", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<SkillSummary>>), (status = 404, description = "MCH_001", body = ErrorEnvelope)))]
pub async fn list_skills(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
) -> Result<Reply<Vec<SkillSummary>>> {
    let rows = skills::list(state.store(), &principal, machine).await?;
    Ok(Reply::ok(rows.iter().map(SkillSummary::from).collect()))
}

/// Creates or replaces the skill at `path`; the machine's skill processors check it first
/// (their refusal is `VAL_001` on `content`), and the agent writes it to the skill folder.
#[utoipa::path(post, path = "/machines/{machine}/skills", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path)), request_body = SkillInput,
    responses((status = 200, body = Envelope<SkillView>), (status = 404, body = ErrorEnvelope),
               (status = 422, description = "VAL_001", body = ErrorEnvelope)))]
pub async fn create_skill(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
    ApiJson(input): ApiJson<SkillInput>,
) -> Result<Reply<SkillView>> {
    let deps = state.deps().await?;
    let row = skills::create_or_update(deps, &principal, machine, input).await?;
    Ok(Reply::ok(row.into()))
}

/// One skill of the machine, with its content.
#[utoipa::path(get, path = "/machines/{machine}/skills/{path}", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("path" = String, Path)),
    responses((status = 200, body = Envelope<SkillView>), (status = 404, description = "SKL_001", body = ErrorEnvelope)))]
pub async fn get_skill(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, path)): ApiPath<(Uuid, String)>,
) -> Result<Reply<SkillView>> {
    let row = skills::get(state.store(), &principal, machine, &path).await?;
    Ok(Reply::ok(row.into()))
}

/// Change a skill: the fields given change; new content is processed again.
#[utoipa::path(patch, path = "/machines/{machine}/skills/{path}", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("path" = String, Path)), request_body = SkillPatch,
    responses((status = 200, body = Envelope<SkillView>), (status = 404, description = "SKL_001", body = ErrorEnvelope),
               (status = 422, description = "VAL_001", body = ErrorEnvelope)))]
pub async fn update_skill(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, path)): ApiPath<(Uuid, String)>,
    ApiJson(patch): ApiJson<SkillPatch>,
) -> Result<Reply<SkillView>> {
    let deps = state.deps().await?;
    let row = skills::update(deps, &principal, machine, &path, patch).await?;
    Ok(Reply::ok(row.into()))
}

/// Deletes the skill here and (now, or when the agent next links) from the skill folder.
#[utoipa::path(delete, path = "/machines/{machine}/skills/{path}", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("path" = String, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "SKL_001", body = ErrorEnvelope)))]
pub async fn delete_skill(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, path)): ApiPath<(Uuid, String)>,
) -> Result<Reply<Null>> {
    let deps = state.deps().await?;
    skills::delete(deps, &principal, machine, &path).await?;
    Ok(Reply::ok(Null))
}

/// Enables or disables the skill (a disabled skill is kept here, not in the skill folder).
#[utoipa::path(post, path = "/machines/{machine}/skills/{path}/toggle", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("path" = String, Path)),
    responses((status = 200, body = Envelope<Toggled>), (status = 404, description = "SKL_001", body = ErrorEnvelope)))]
pub async fn toggle_skill(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, path)): ApiPath<(Uuid, String)>,
) -> Result<Reply<Toggled>> {
    let deps = state.deps().await?;
    let row = skills::toggle(deps, &principal, machine, &path).await?;
    Ok(Reply::ok(Toggled {
        path: row.path,
        enabled: row.enabled,
    }))
}

/// Changes `enabled` and `priority` of several skills: all or none (every path must exist).
#[utoipa::path(post, path = "/machines/{machine}/skills/bulk", tag = "skills", security(("bearer" = [])),
    params(("machine" = Uuid, Path)), request_body = BulkRequest,
    responses((status = 200, body = Envelope<Vec<SkillSummary>>), (status = 404, body = ErrorEnvelope),
               (status = 422, description = "VAL_001", body = ErrorEnvelope)))]
pub async fn bulk_update(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Reply<Vec<SkillSummary>>> {
    let deps = state.deps().await?;
    let rows = skills::bulk(deps, &principal, machine, req.updates).await?;
    Ok(Reply::ok(rows.iter().map(SkillSummary::from).collect()))
}
