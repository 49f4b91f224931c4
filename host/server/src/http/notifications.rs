//! Where a user is told that a session needs them, and the log of what was sent.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{Envelope, ErrorEnvelope, Null, Reply},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::notify::{self, NewTarget},
    error::{ApiError, Result},
    store::{NotificationDelivery, NotificationTarget},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_targets, create_target))
        .routes(routes!(delete_target))
        .routes(routes!(list_deliveries))
}

/// A notification target (its signing secret is shown only when it is created).
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub id: Uuid,
    pub name: String,
    /// `webhook` (JSON), `slack` (`{"text"}`), `ntfy` (text body, `Title`/`Click` headers) or
    /// `web_push` (an encrypted JSON payload).
    pub kind: String,
    pub url: String,
    /// Only this project's sessions; null: every session.
    pub project_id: Option<Uuid>,
    /// Kinds of notice sent here.
    pub events: Vec<String>,
    /// Whether notices quote the end of the terminal.
    pub include_terminal: bool,
    pub created_at: DateTime<Utc>,
}

impl From<NotificationTarget> for TargetView {
    fn from(t: NotificationTarget) -> Self {
        Self {
            id: t.id,
            name: t.name,
            kind: t.kind,
            url: t.url,
            project_id: t.project_id,
            events: t.events.0,
            include_terminal: t.include_terminal,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTarget {
    pub target: TargetView,
    /// `whsec_…`: every request carries `X-ClaudeNest-Signature: sha256=<hex HMAC-SHA256 of
    /// "{X-ClaudeNest-Timestamp}.{body}">`. Shown once. Null for `web_push` (signed with the
    /// host's VAPID key, encrypted for the subscription).
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTargetRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `webhook`, `slack`, `ntfy` or `web_push`.
    pub kind: String,
    /// http(s) (for `web_push`, the subscription's `endpoint`); internal addresses only when
    /// the operator allows them (`notifications.allow_hosts`).
    #[schema(max_length = 2048)]
    pub url: String,
    /// `web_push` only: the subscription's `keys` as `PushSubscription.toJSON()` gives them.
    pub keys: Option<PushKeysBody>,
    pub project_id: Option<Uuid>,
    /// Some of `permission`, `waiting`, `turn_finished`, `budget_warning`, `budget_stopped`
    /// [default: all but `turn_finished`].
    pub events: Option<Vec<String>>,
    /// Quote the end of the terminal in notices [default: false].
    #[serde(default)]
    pub include_terminal: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushKeysBody {
    /// The subscriber's P-256 public key, base64url.
    pub p256dh: String,
    /// 16 bytes, base64url.
    pub auth: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub target_id: Uuid,
    pub event: String,
    pub session_id: Option<Uuid>,
    /// `pending` (being tried), `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// The receiver's last HTTP status.
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<NotificationDelivery> for DeliveryView {
    fn from(d: NotificationDelivery) -> Self {
        Self {
            id: d.id,
            target_id: d.target_id,
            event: d.event,
            session_id: d.session_id,
            status: d.status,
            attempts: d.attempts,
            response_status: d.response_status,
            error: d.error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// 1..=500, default 100.
    pub limit: Option<i64>,
}

/// Your notification targets.
#[utoipa::path(get, path = "/notifications/targets", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<TargetView>>)))]
pub async fn list_targets(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Reply<Vec<TargetView>>> {
    let targets = notify::list_targets(state.store(), &principal).await?;
    Ok(Reply::ok(targets.into_iter().map(Into::into).collect()))
}

/// Adds a target: a webhook, Slack-compatible or ntfy-compatible URL.
#[utoipa::path(post, path = "/notifications/targets", tag = "notifications", security(("bearer" = [])),
    request_body = CreateTargetRequest,
    responses((status = 201, body = Envelope<CreatedTarget>),
               (status = 409, description = "NTF_002: you have the most targets allowed", body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn create_target(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiJson(req): ApiJson<CreateTargetRequest>,
) -> Result<Reply<CreatedTarget>> {
    let new = NewTarget {
        name: req.name,
        kind: req.kind,
        url: req.url,
        project_id: req.project_id,
        events: req.events,
        include_terminal: req.include_terminal,
        keys: req.keys.map(|k| notify::PushKeys {
            p256dh: k.p256dh,
            auth: k.auth,
        }),
    };
    let (target, secret) = notify::create_target(
        state.store(),
        state.secrets(),
        &state.config().notifications,
        &principal,
        new,
    )
    .await?;
    Ok(Reply::created(CreatedTarget {
        target: target.into(),
        secret,
    }))
}

#[utoipa::path(delete, path = "/notifications/targets/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "NTF_001", body = ErrorEnvelope)))]
pub async fn delete_target(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Null>> {
    notify::delete_target(state.store(), &principal, id).await?;
    Ok(Reply::ok(Null))
}

/// What was sent to your targets, newest first: each delivery with its attempts and the
/// receiver's last answer.
#[utoipa::path(get, path = "/notifications/deliveries", tag = "notifications", security(("bearer" = [])),
    params(DeliveryQuery),
    responses((status = 200, body = Envelope<Vec<DeliveryView>>), (status = 422, body = ErrorEnvelope)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Reply<Vec<DeliveryView>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "The limit must be between 1 and 500.",
        ));
    }
    let list = notify::deliveries(state.store(), &principal, limit).await?;
    Ok(Reply::ok(list.into_iter().map(Into::into).collect()))
}
