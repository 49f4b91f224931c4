//! The HTTP transport: routers per resource, the envelope, extractors and middleware.
//!
//! Routes are registered only through `utoipa_axum`'s `OpenApiRouter`, so the OpenAPI document
//! served at `/api/openapi.json` is generated from the same registrations the router uses.

pub mod agent_link;
pub mod auth;
pub mod context;
pub mod envelope;
pub mod exists;
pub mod extract;
pub mod health;
pub mod locks;
pub mod machines;
pub mod mcp;
pub mod mcp_server;
pub mod plugins;
pub mod projects;
pub mod pusher;
pub mod rate_limit;
pub mod request_id;
pub mod sessions;
pub mod skills;
pub mod tasks;

use std::{any::Any, sync::Arc};

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::header,
    middleware,
    response::{IntoResponse, Response},
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    error::{ApiError, ErrorCode},
};
use request_id::RequestId;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ClaudeNest API",
        description = "Control plane for fleets of Claude Code agents. Every response is an \
                       envelope: `{success, data, meta}` or `{success: false, error, meta}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness"),
        (name = "auth", description = "Accounts and tokens (API §2)"),
        (name = "machines", description = "Machines, pairing and Wake-on-LAN (API §3)"),
        (name = "agent", description = "What machine agents call with their `mn_` token"),
        (name = "realtime", description = "Pusher Channels protocol v7 (API §11)"),
        (name = "sessions", description = "Claude Code sessions (API §4)"),
        (name = "projects", description = "Projects, instances, activity (API §5)"),
        (name = "tasks", description = "Tasks (API §6)"),
        (name = "locks", description = "File locks (API §8)"),
        (name = "context", description = "Shared context and search (API §7)"),
        (name = "skills", description = "Skills per machine, synced with its skill folder (API §9)"),
        (name = "mcp", description = "MCP servers per machine: stdio, http, wasm (API §10)"),
        (name = "mcp-server", description = "ClaudeNest's own MCP server for Claude Code instances (docs/mcp-server.md)"),
        (name = "plugins", description = "WebAssembly plugins: registry, per-machine enablement, tool calls"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cn_…")
                    .build(),
            ),
        );
    }
}

/// Every route of the service with its OpenAPI description, before splitting.
fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let public = health::router().routes(routes!(openapi_json));
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
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(mcp_server)
        .nest(
            "/api",
            OpenApiRouter::new()
                .merge(public)
                .merge(sign_in)
                .merge(authenticated),
        )
        .merge(pusher::root_router(state))
}

/// The generated OpenAPI document.
pub fn openapi(state: &AppState) -> openapi::OpenApi {
    with_version(api_routes(state).split_for_parts().1)
}

fn with_version(mut doc: openapi::OpenApi) -> openapi::OpenApi {
    doc.info.version = crate::VERSION.to_owned();
    doc
}

/// The document, serialized once when the router is built.
#[derive(Clone)]
struct OpenApiJson(Arc<str>);

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api_routes(&state).split_for_parts();
    // `/mcp` tools call the API in-process, through these same routes.
    let api = routes
        .clone()
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound) })
        .with_state(state.clone());
    let mcp = mcp_server::McpEndpoint::new(&state, api, &doc);
    let doc = OpenApiJson(Arc::from(
        serde_json::to_string(&with_version(doc)).expect("the OpenAPI document serializes"),
    ));
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

/// This OpenAPI document (3.1), generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
