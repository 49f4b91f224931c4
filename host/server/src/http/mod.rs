//! The HTTP transport: routers per resource, the envelope, extractors and middleware.
//!
//! Routes are registered only through `utoipa_axum`'s `OpenApiRouter`, so the OpenAPI document
//! served at `/api/openapi.json` is generated from the same registrations the router uses.

pub mod agent_link;
pub mod auth;
pub mod context;
pub mod credentials;
pub mod docs;
pub mod envelope;
pub mod exists;
pub mod extract;
pub mod health;
pub mod locks;
pub mod machines;
pub mod mcp;
pub mod mcp_server;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod permissions;
pub mod plugins;
pub mod projects;
pub mod pusher;
pub mod rate_limit;
pub mod request_id;
pub mod sessions;
pub mod skills;
pub mod tasks;
pub mod ui;

use std::{any::Any, sync::Arc};

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    middleware,
    response::{IntoResponse, Response},
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    error::{ApiError, ErrorCode},
};
use request_id::RequestId;

/// Every route of the service with its OpenAPI description, before splitting.
fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let public = health::router()
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(docs::docs))
        .routes(routes!(docs::docs_file))
        .merge(ui::api_router());
    let sign_in = auth::public_router()
        .merge(machines::pairing_router())
        .route_layer(middleware::from_fn_with_state(
            state.auth_limiter(),
            rate_limit::per_client_ip,
        ));
    let authenticated = auth::authenticated_router()
        .merge(machines::router())
        .merge(pusher::authenticated_router())
        .merge(sessions::router())
        .merge(permissions::router())
        .merge(notifications::router())
        .merge(projects::router())
        .merge(tasks::router())
        .merge(locks::router())
        .merge(plugins::router(state))
        .merge(context::router())
        .merge(skills::router())
        .merge(mcp::router())
        // Inside the limiter (which authenticates): the path's resources before the body.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            exists::path_resources,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.api_limiter(),
            rate_limit::per_token,
        ));
    let mcp_server = OpenApiRouter::new()
        .routes(routes!(
            mcp_server::mcp_post,
            mcp_server::mcp_get,
            mcp_server::mcp_delete
        ))
        .route_layer(middleware::from_fn_with_state(
            state.api_limiter(),
            rate_limit::per_token,
        ));
    // `/metrics` on this address only when the operator gave it a token (else it is nowhere,
    // or on `metrics.bind`): the document lists what this host serves.
    let metrics = match state.config().metrics.token {
        Some(_) => OpenApiRouter::new().routes(routes!(metrics::metrics)),
        None => OpenApiRouter::new(),
    };
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(mcp_server)
        .merge(metrics)
        .nest(
            "/api",
            OpenApiRouter::new()
                .merge(public)
                .merge(sign_in)
                .merge(authenticated),
        )
        .merge(pusher::root_router(state))
        .merge(ui::page_router())
}

/// The generated OpenAPI document, as served.
pub fn openapi(state: &AppState) -> serde_json::Value {
    openapi::finish(api_routes(state).split_for_parts().1)
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api_routes(&state).split_for_parts();
    // `/mcp` tools call the API in-process, through these same routes.
    let api = routes
        .clone()
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound) })
        .with_state(state.clone());
    let mcp = mcp_server::McpEndpoint::new(&state, api, &doc);
    let doc = openapi::OpenApiJson(Arc::from(openapi::finish(doc).to_string()));
    let max_body = state.config().max_body_bytes;
    with_common_layers(routes.layer(Extension(doc)).layer(Extension(mcp)), max_body)
        .with_state(state)
}

/// What every route shares, outermost first: request id, trace span, panic catcher, body
/// limit, and envelope answers for unknown routes and methods.
pub fn with_common_layers<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    max_body_bytes: usize,
) -> Router<S> {
    routes
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound) })
        .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed) })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(metrics::record))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("<unmatched>", MatchedPath::as_str);
                let id = request
                    .extensions()
                    .get::<RequestId>()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), route, request_id = id)
            }),
        )
        .layer(middleware::from_fn(request_id::assign))
}

/// A handler panicked: log what we can, answer `SRV_001` with no internals.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("<non-string panic>");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::new(ErrorCode::Internal).into_response()
}

#[cfg(test)]
mod tests;
