//! File locks (API §8).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Reply},
    extract::{ApiJson, ApiPath},
};
use crate::{
    app::AppState,
    domain::locks::{self, LockRequest},
    error::Result,
    store::FileLock,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, acquire))
        .routes(routes!(check))
        .routes(routes!(extend))
        .routes(routes!(bulk))
        .routes(routes!(release))
        .routes(routes!(force_release))
        .routes(routes!(release_by_instance))
}

/// A lock as the lock list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockView {
    pub path: String,
    pub locked_by: String,
    pub reason: Option<String>,
    pub locked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub remaining_seconds: i64,
}

impl LockView {
    fn new(lock: FileLock, now: DateTime<Utc>) -> Self {
        Self {
            remaining_seconds: (lock.expires_at - now).num_seconds().max(0),
            path: lock.path,
            locked_by: lock.locked_by,
            reason: lock.reason,
            locked_at: lock.locked_at,
            expires_at: lock.expires_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    /// Relative to the project (or inside its directory); may be a glob like `src/auth/**`.
    pub path: String,
    pub instance_id: String,
    pub reason: Option<String>,
    /// Default: the project's `lockTimeoutMinutes` (30).
    pub duration_minutes: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub paths: Vec<String>,
    pub instance_id: String,
    pub reason: Option<String>,
    pub duration_minutes: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRequest {
    pub path: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderRequest {
    pub path: String,
    pub instance_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    pub path: String,
    pub instance_id: String,
    pub additional_minutes: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceOnly {
    pub instance_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub locked: bool,
    pub locked_by: Option<String>,
    pub reason: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The held path or glob that covers the asked path.
    pub lock_path: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedDetail {
    pub locked_by: String,
    pub reason: Option<String>,
    /// The held path or glob in the way.
    pub lock_path: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkView {
    pub acquired: Vec<String>,
    pub failed: Vec<String>,
    pub failed_details: BTreeMap<String, FailedDetail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasedView {
    pub released: Vec<String>,
    pub count: usize,
}

/// Live locks, with seconds left.
#[utoipa::path(get, path = "/projects/{project}/locks", tag = "locks", security(("bearer" = [])),
    params(("project" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<LockView>>), (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
) -> Result<Reply<Vec<LockView>>> {
    let (rows, at) = locks::list(state.store(), &principal, project).await?;
    Ok(Reply::ok(
        rows.into_iter().map(|l| LockView::new(l, at)).collect(),
    ))
}

/// The holder re-acquiring extends; another instance gets `LCK_001` with who holds it.
#[utoipa::path(post, path = "/projects/{project}/locks", tag = "locks", security(("bearer" = [])),
    params(("project" = Uuid, Path)), request_body = AcquireRequest,
    responses((status = 201, body = Envelope<LockView>), (status = 404, body = ErrorEnvelope),
               (status = 409, description = "LCK_001, with `error.details`", body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn acquire(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AcquireRequest>,
) -> Result<Reply<LockView>> {
    let request = LockRequest {
        paths: vec![req.path],
        instance_id: req.instance_id,
        reason: req.reason,
        duration_minutes: req.duration_minutes,
    };
    let lock =
        locks::acquire_one(state.store(), state.bus(), &principal, project, &request).await?;
    Ok(Reply::created(LockView::new(
        lock,
        crate::domain::clock::now(),
    )))
}

/// Whether any live lock (path or glob) covers the path.
#[utoipa::path(post, path = "/projects/{project}/locks/check", tag = "locks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = PathRequest,
    responses((status = 200, body = Envelope<CheckView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn check(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PathRequest>,
) -> Result<Reply<CheckView>> {
    let held = locks::check(state.store(), &principal, project, &req.path).await?;
    Ok(Reply::ok(match held {
        Some(l) => CheckView {
            locked: true,
            locked_by: Some(l.locked_by),
            reason: l.reason,
            expires_at: Some(l.expires_at),
            lock_path: Some(l.path),
        },
        None => CheckView {
            locked: false,
            locked_by: None,
            reason: None,
            expires_at: None,
            lock_path: None,
        },
    }))
}

/// Only by the holder.
#[utoipa::path(post, path = "/projects/{project}/locks/extend", tag = "locks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = ExtendRequest,
    responses((status = 200, body = Envelope<LockView>), (status = 404, description = "LCK_002", body = ErrorEnvelope),
               (status = 409, description = "LCK_001", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn extend(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ExtendRequest>,
) -> Result<Reply<LockView>> {
    let lock = locks::extend(
        state.store(),
        &principal,
        project,
        &req.path,
        &req.instance_id,
        req.additional_minutes,
    )
    .await?;
    Ok(Reply::ok(LockView::new(lock, crate::domain::clock::now())))
}

/// Partial — every free path is taken, the rest reported, in one transaction.
#[utoipa::path(post, path = "/projects/{project}/locks/bulk", tag = "locks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = BulkRequest,
    responses((status = 200, body = Envelope<BulkView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn bulk(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Reply<BulkView>> {
    let request = LockRequest {
        paths: req.paths,
        instance_id: req.instance_id,
        reason: req.reason,
        duration_minutes: req.duration_minutes,
    };
    let outcome = locks::acquire(state.store(), state.bus(), &principal, project, &request).await?;
    let failed_details = outcome
        .failed
        .iter()
        .map(|(path, held)| {
            let detail = FailedDetail {
                locked_by: held.locked_by.clone(),
                reason: held.reason.clone(),
                lock_path: held.path.clone(),
                expires_at: held.expires_at,
            };
            (path.clone(), detail)
        })
        .collect();
    Ok(Reply::ok(BulkView {
        acquired: outcome.acquired.into_iter().map(|l| l.path).collect(),
        failed: outcome.failed.into_iter().map(|(p, _)| p).collect(),
        failed_details,
    }))
}

/// Only by the holder.
#[utoipa::path(post, path = "/projects/{project}/locks/release", tag = "locks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = HolderRequest,
    responses((status = 200, body = Envelope<LockView>), (status = 404, description = "LCK_002", body = ErrorEnvelope),
               (status = 409, description = "LCK_001", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn release(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<HolderRequest>,
) -> Result<Reply<LockView>> {
    let lock = locks::release(
        state.store(),
        state.bus(),
        &principal,
        project,
        &req.path,
        Some(&req.instance_id),
    )
    .await?;
    Ok(Reply::ok(LockView::new(lock, crate::domain::clock::now())))
}

/// The project's owner releases whoever holds it.
#[utoipa::path(post, path = "/projects/{project}/locks/force-release", tag = "locks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = PathRequest,
    responses((status = 200, body = Envelope<LockView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn force_release(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PathRequest>,
) -> Result<Reply<LockView>> {
    let lock = locks::release(
        state.store(),
        state.bus(),
        &principal,
        project,
        &req.path,
        None,
    )
    .await?;
    Ok(Reply::ok(LockView::new(lock, crate::domain::clock::now())))
}

/// Release every lock an instance holds.
#[utoipa::path(post, path = "/projects/{project}/locks/release-by-instance", tag = "locks",
    security(("bearer" = [])), params(("project" = Uuid, Path)), request_body = InstanceOnly,
    responses((status = 200, body = Envelope<ReleasedView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn release_by_instance(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<InstanceOnly>,
) -> Result<Reply<ReleasedView>> {
    let released = locks::release_by_instance(
        state.store(),
        state.bus(),
        &principal,
        project,
        &req.instance_id,
    )
    .await?;
    let paths: Vec<String> = released.into_iter().map(|l| l.path).collect();
    Ok(Reply::ok(ReleasedView {
        count: paths.len(),
        released: paths,
    }))
}
