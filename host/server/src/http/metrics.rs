//! `/metrics` (Prometheus text) and the middleware that counts and times every request.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::credentials::bearer_token;
use crate::{
    app::AppState,
    error::{ApiError, ErrorCode},
    metrics::{
        AGENT_LINKS, EMBEDDING_QUEUE, HTTP_DURATION, HTTP_REQUESTS, LIVE_SESSIONS,
        POOL_CONNECTIONS, POOL_IDLE, handle,
    },
};

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counts and times each request by route (its pattern, never the raw path: ids would make
/// every request its own series), method and status.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    ::metrics::histogram!(HTTP_DURATION, &labels[..2]).record(start.elapsed().as_secs_f64());
    ::metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    response
}

/// The scrape answer.
pub async fn text(state: &AppState) -> Response {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], render(state).await).into_response()
}

/// Prometheus metrics of this host process, for `Authorization: Bearer <metrics.token>`.
/// Routed (and in this document) only when `metrics.token` is configured.
#[utoipa::path(get, path = "/metrics", tag = "meta", security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "AUTH_005: not the operator's metrics token", body = super::envelope::ErrorEnvelope),
    ))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.config().metrics.token else {
        return ApiError::new(ErrorCode::RouteNotFound).into_response();
    };
    let given = bearer_token(&headers).unwrap_or_default();
    if !super::credentials::same_secret(given, token.expose()) {
        return ApiError::new(ErrorCode::Unauthenticated).into_response();
    }
    text(&state).await
}

/// The router of `metrics.bind`: `/metrics` alone, unauthenticated.
pub fn separate_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move { text(&state).await }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// The text a scrape gets, with the read-when-scraped gauges brought up to date.
async fn render(state: &AppState) -> String {
    let recorded = handle();
    ::metrics::gauge!(AGENT_LINKS).set(state.links().len() as f64);
    let (size, idle) = state.store().pool_stats();
    ::metrics::gauge!(POOL_CONNECTIONS).set(f64::from(size));
    ::metrics::gauge!(POOL_IDLE).set(idle as f64);
    match state.store().count_live_sessions().await {
        Ok(n) => ::metrics::gauge!(LIVE_SESSIONS).set(n as f64),
        Err(err) => tracing::warn!(error = %err, "counting live sessions for /metrics failed"),
    }
    match state
        .store()
        .count_unembedded_chunks(state.embedder().model())
        .await
    {
        Ok(n) => ::metrics::gauge!(EMBEDDING_QUEUE).set(n as f64),
        Err(err) => {
            tracing::warn!(error = %err, "counting the embedding queue for /metrics failed")
        }
    }
    recorded.run_upkeep();
    recorded.render()
}
