//! `GET /api/health` (API §14), plus the store's kind and whether it answers.

use std::time::Duration;

use axum::{extract::State, http::StatusCode};
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::envelope::{Envelope, Reply};
use crate::{app::AppState, store::StoreKind};

/// How long the health check waits for the database before calling it unreachable.
const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the store does not answer.
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "1.0.0")]
    pub version: &'static str,
    /// RFC 3339 UTC.
    pub timestamp: String,
    pub store: StoreHealth,
    pub search: SearchHealth,
}

/// What context search runs on.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHealth {
    /// `all-MiniLM-L6-v2`, `http:<model>` or `hashing-v1`.
    pub embedder: String,
    /// False for the hashing fallback: queries then match words, not meaning
    /// (`search_method: text`).
    pub semantic: bool,
    pub dimensions: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreHealth {
    pub kind: StoreKind,
    pub reachable: bool,
}

/// Liveness and store reachability. Answers 503 (same body, `status: degraded`) when the
/// store does not answer, so load balancers take the node out.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Healthy", body = Envelope<Health>),
        (status = 503, description = "The store does not answer", body = Envelope<Health>),
    )
)]
pub async fn health(State(state): State<AppState>) -> Reply<Health> {
    let store = state.store();
    let reachable = matches!(
        tokio::time::timeout(STORE_PING_TIMEOUT, store.ping()).await,
        Ok(Ok(()))
    );
    let health = Health {
        status: if reachable { "ok" } else { "degraded" },
        version: crate::VERSION,
        timestamp: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        store: StoreHealth {
            kind: store.kind(),
            reachable,
        },
        search: SearchHealth {
            embedder: state.embedder().model().to_owned(),
            semantic: state.embedder().semantic(),
            dimensions: crate::embed::DIMS,
        },
    };
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Reply::ok(health).with_status(status)
}
