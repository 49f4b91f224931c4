//! The OpenAPI document: its frame (title, tags, the bearer scheme), the statuses every
//! operation shares, and the route that serves it.
//!
//! Operations declare what is particular to them (their success, their resource's 404 code,
//! their conflicts). What follows from the layers every route of a kind runs through is added
//! here once, from the operation's own shape, so no handler can forget it:
//! - a bearer-secured operation can answer 401 (no or a bad token) and 429 (its limiter), and
//!   one acting for a user also 403 (the token lacks the ability);
//! - a path parameter can name nothing (404) or, for an id, be malformed (422);
//! - a body or a query can be invalid (422), and a body too large (413);
//! - the sign-in routes have their own limiter (429).

use std::sync::Arc;

use axum::{
    Extension,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ClaudeNest API",
        description = "Control plane for fleets of Claude Code agents. Every response is an \
                       envelope: `{success, data, meta}` or `{success: false, error, meta}`. \
                       Browse this document at `/api/docs`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness"),
        (name = "auth", description = "Accounts and tokens"),
        (name = "machines", description = "Machines, pairing and Wake-on-LAN"),
        (name = "agent", description = "What machine agents call with their `mn_` token"),
        (name = "realtime", description = "Pusher Channels protocol v7"),
        (name = "sessions", description = "Claude Code sessions"),
        (name = "notifications", description = "Where you are told a session needs you, and what was sent"),
        (name = "projects", description = "Projects, instances, activity"),
        (name = "tasks", description = "Tasks"),
        (name = "locks", description = "File locks"),
        (name = "context", description = "Shared context and search"),
        (name = "skills", description = "Skills per machine, synced with its skill folder"),
        (name = "mcp", description = "MCP servers per machine: stdio, http, wasm"),
        (name = "mcp-server", description = "ClaudeNest's own MCP server for Claude Code instances"),
        (name = "plugins", description = "WebAssembly plugins: registry, per-machine enablement, tool calls"),
        (name = "meta", description = "This document"),
    )
)]
pub(super) struct ApiDoc;

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

/// The document as served: the registrations' own, with this build's version and the shared
/// statuses completed.
pub fn finish(doc: openapi::OpenApi) -> Value {
    let mut value = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    value["info"]["version"] = json!(crate::VERSION);
    complete_responses(&mut value);
    value
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Adds the statuses of the shared layers to every operation that lacks them (see the module
/// comment); an operation's own description of a status is kept.
fn complete_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let shared = shared_statuses(path, op);
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            for (status, description) in shared {
                responses.entry(status.to_string()).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
                    })
                });
            }
        }
    }
}

fn shared_statuses(path: &str, op: &serde_json::Map<String, Value>) -> Vec<(u16, &'static str)> {
    let mut statuses = Vec::new();
    let bearer = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    let tags = op.get("tags").and_then(Value::as_array);
    let for_agents = tags.is_some_and(|t| t.iter().any(|t| t == "agent"));
    if bearer {
        statuses.push((
            401,
            "AUTH_005: no bearer token, or an unknown, revoked or expired one",
        ));
        statuses.push((
            429,
            "RTE_001: over the token's rate limit (see `Retry-After`)",
        ));
        if !for_agents && !path.starts_with("/api/auth/") {
            statuses.push((403, "AUTH_006: the token lacks the ability this needs"));
        }
    } else if path.starts_with("/api/auth/") || path.starts_with("/api/pair") {
        statuses.push((429, "RTE_001: over the address's sign-in rate limit"));
    }
    let parameters = op.get("parameters").and_then(Value::as_array);
    let in_ = |place: &'static str| {
        parameters
            .into_iter()
            .flatten()
            .filter(move |p| p.get("in").and_then(Value::as_str) == Some(place))
    };
    if in_("path").next().is_some() {
        statuses.push((
            404,
            "The resource the path names does not exist (or is not yours)",
        ));
    }
    let id_in_path = in_("path").any(|p| p["schema"]["format"] == "uuid");
    if id_in_path || in_("query").next().is_some() || op.contains_key("requestBody") {
        statuses.push((
            422,
            "VAL_001: invalid fields, with a message per field in `errors`",
        ));
    }
    if op.contains_key("requestBody") {
        statuses.push((413, "VAL_002: the body is larger than the server accepts"));
    }
    statuses
}

/// The document, serialized once when the router is built.
#[derive(Clone)]
pub(super) struct OpenApiJson(pub Arc<str>);

/// This OpenAPI document (3.1), generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(super) async fn openapi_json(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}
