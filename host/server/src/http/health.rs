//! `GET /api/health` (API §14), plus the store's kind and whether it answers; and the two
//! probes load balancers and orchestrators want apart: liveness (the process serves) and
//! readiness (it should get traffic: the store answers and it is not shutting down).

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
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
        .routes(routes!(ready))
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
    let reachable = store_answers(&state).await;
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

async fn store_answers(state: &AppState) -> bool {
    matches!(
        tokio::time::timeout(STORE_PING_TIMEOUT, state.store().ping()).await,
        Ok(Ok(()))
    )
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// `ok`, or why not: `store unreachable`, `shutting down`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: 200 while the process serves requests at all (restart it when this fails). It
/// checks nothing else, so a database outage never gets healthy hosts restarted.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process serves", body = Envelope<Probe>)))]
pub async fn live() -> Reply<Probe> {
    Reply::ok(Probe { status: "ok" })
}

/// Readiness: 200 when this host should get traffic — its database answers within 2 s and it
/// is not shutting down; 503 otherwise. A host does not listen before its migrations ran, so
/// it is never ready while migrating.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready for traffic", body = Envelope<Probe>),
              (status = 503, description = "Not ready: the store does not answer, or shutting down", body = Envelope<Probe>)))]
pub async fn ready(State(state): State<AppState>) -> Reply<Probe> {
    let status = if state.shutdown().is_cancelled() {
        "shutting down"
    } else if !store_answers(&state).await {
        "store unreachable"
    } else {
        return Reply::ok(Probe { status: "ok" });
    };
    Reply::ok(Probe { status }).with_status(StatusCode::SERVICE_UNAVAILABLE)
}
