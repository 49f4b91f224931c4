//! Permission requests of a session's Claude Code, answered from anywhere ("needs you").

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{Envelope, ErrorEnvelope, Reply},
    extract::{ApiJson, ApiPath},
};
use crate::{app::AppState, domain::attention, error::Result, store::PermissionRequest};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_permissions))
        .routes(routes!(answer_permission))
}

/// A tool Claude Code asked permission for, and its answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionView {
    pub id: Uuid,
    pub session_id: Uuid,
    /// As Claude Code names it: `Bash`, `Edit`, `mcp__<server>__<tool>`, …
    pub tool_name: String,
    #[schema(value_type = Object)]
    pub tool_input: serde_json::Value,
    /// e.g. `Bash: rm -rf build`.
    pub message: String,
    /// `pending`, `allowed`, `denied`, or `expired` (answered at the terminal, timed out, or
    /// the session ended).
    pub status: String,
    pub answer_message: Option<String>,
    /// The API token that answered.
    pub answered_by: Option<Uuid>,
    pub answered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<PermissionRequest> for PermissionView {
    fn from(p: PermissionRequest) -> Self {
        Self {
            id: p.id,
            session_id: p.session_id,
            tool_name: p.tool_name,
            tool_input: p.tool_input.0,
            message: p.message,
            status: p.status,
            answer_message: p.answer_message,
            answered_by: p.answered_by,
            answered_at: p.answered_at,
            created_at: p.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub decision: Decision,
    /// Told to Claude with the answer (a denial's reason).
    #[schema(max_length = 1000)]
    pub message: Option<String>,
}

/// The session's permission requests, newest first (the last 100): the audit of who answered
/// what, and when.
#[utoipa::path(get, path = "/sessions/{id}/permissions", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<PermissionView>>), (status = 404, description = "SES_001", body = ErrorEnvelope)))]
pub async fn list_permissions(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Vec<PermissionView>>> {
    let list = attention::list(state.store(), &principal, id).await?;
    Ok(Reply::ok(list.into_iter().map(Into::into).collect()))
}

/// Allow or deny a pending permission request: the waiting dialog gets the answer and the
/// session runs on. Its Claude Code's own prompt stands when nobody answers in time.
#[utoipa::path(post, path = "/sessions/{id}/permissions/{request}", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("request" = Uuid, Path)), request_body = AnswerRequest,
    responses((status = 200, body = Envelope<PermissionView>),
               (status = 400, description = "MCH_002: the session's machine did not take the answer", body = ErrorEnvelope),
               (status = 404, description = "SES_001, SES_004", body = ErrorEnvelope),
               (status = 409, description = "SES_005: no longer pending", body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn answer_permission(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((id, request)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<AnswerRequest>,
) -> Result<Reply<PermissionView>> {
    let answered = attention::answer(
        state.store(),
        state.agent_links(),
        state.bus(),
        &principal,
        id,
        request,
        attention::Answer {
            allow: matches!(req.decision, Decision::Allow),
            message: req.message,
        },
    )
    .await?;
    Ok(Reply::ok(answered.into()))
}
