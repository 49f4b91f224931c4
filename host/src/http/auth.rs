//! Authentication extractors and the account endpoints built so far.

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    envelope::{Envelope, Reply},
    rate_limit::bearer_token,
};
use crate::{
    app::AppState,
    domain::accounts::{self, Principal},
    error::{ApiError, ErrorCode, ErrorEnvelope, Result},
    store::User,
};

/// A request made with a valid user token (`Authorization: Bearer cn_…`).
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            tracing::debug!("no bearer token");
            ApiError::new(ErrorCode::Unauthenticated)
        })?;
        accounts::authenticate(state.store(), token)
            .await
            .map(AuthUser)
    }
}

/// Routes that need a user token.
pub fn authenticated_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            avatar_url: user.avatar_url.clone(),
            email_verified_at: user.email_verified_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeData {
    pub user: UserView,
}

/// The signed-in user (API §2.5).
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<MeData>),
        (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorEnvelope),
        (status = 429, description = "Rate limit exceeded", body = ErrorEnvelope),
    )
)]
pub async fn me(AuthUser(principal): AuthUser) -> Reply<MeData> {
    Reply::ok(MeData {
        user: UserView::from(&principal.user),
    })
}
