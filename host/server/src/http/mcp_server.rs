//! ClaudeNest as an MCP server (issue 11): `/mcp`, Streamable HTTP, served by `rmcp` in both
//! protocol eras (2026-07-28 stateless, and 2025-11-25 and earlier with `initialize`).
//!
//! Every tool is one REST endpoint of the coordination API, called in-process through the same
//! router with the caller already authenticated: the same validation, ownership rules, events
//! and answers — no second implementation. A tool's input schema is the endpoint's path,
//! query and body schemas from the OpenAPI document (with `project_id` / `instance_id` filled
//! from the caller's identity), its output schema is `{data: <the endpoint's data>}` or
//! `{error: {code, message, errors}}`: an API error comes back as a tool error (`isError`)
//! with the REST code (`TSK_002`, `LCK_001`, …).

use std::sync::Arc;

use axum::{
    Extension, Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::never::NeverSessionManager,
    },
};
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;
use utoipa::openapi::OpenApi;

use super::{
    credentials::{Preauthenticated, bearer_token},
    envelope::ErrorEnvelope,
};
use crate::{
    app::AppState,
    domain::mcp_access::{self, Caller, INSTANCE_HEADER, PROJECT_HEADER},
    error::{ApiError, ErrorCode},
};

/// Where a path parameter of the endpoint comes from.
#[derive(Clone, Copy)]
enum Param {
    /// The caller's project (session token or header), else the `project_id` argument.
    Project,
    /// The caller's instance, else the `instance_id` argument.
    Instance,
    /// A required argument of this name.
    Arg(&'static str),
}

/// A tool: one REST endpoint.
struct ToolSpec {
    name: &'static str,
    description: &'static str,
    method: Method,
    /// OpenAPI path, e.g. `/api/tasks/{id}/claim`.
    path: &'static str,
    params: &'static [(&'static str, Param)],
    /// Keeps only broadcasts addressed to the caller (all, or its instance).
    broadcasts_only: bool,
}

const fn tool(
    name: &'static str,
    description: &'static str,
    method: Method,
    path: &'static str,
    params: &'static [(&'static str, Param)],
) -> ToolSpec {
    ToolSpec {
        name,
        description,
        method,
        path,
        params,
        broadcasts_only: false,
    }
}

const PROJECT: &[(&str, Param)] = &[("project", Param::Project)];
const PROJECT_BY_ID: &[(&str, Param)] = &[("id", Param::Project)];
const TASK: &[(&str, Param)] = &[("id", Param::Arg("task_id"))];

fn catalog() -> Vec<ToolSpec> {
    vec![
        tool(
            "get_context",
            "The project's compiled shared context (summary, architecture, conventions, recent decisions), cut to its token budget.",
            Method::GET,
            "/api/projects/{project}/context",
            PROJECT,
        ),
        tool(
            "query_context",
            "Searches the project's shared context chunks by meaning (RAG); filters by type and files.",
            Method::POST,
            "/api/projects/{project}/context/query",
            PROJECT,
        ),
        tool(
            "add_context",
            "Adds a chunk to the project's shared context (a decision, a file change, a task completion…).",
            Method::POST,
            "/api/projects/{project}/context/chunks",
            PROJECT,
        ),
        tool(
            "list_tasks",
            "The project's tasks, filtered by status and priority.",
            Method::GET,
            "/api/projects/{project}/tasks",
            PROJECT,
        ),
        tool(
            "next_task",
            "The next task an instance could claim (highest priority, unblocked), without claiming it.",
            Method::GET,
            "/api/projects/{project}/tasks/next-available",
            PROJECT,
        ),
        tool(
            "claim_next_task",
            "Claims the next available task for this instance.",
            Method::POST,
            "/api/projects/{project}/tasks/claim-next",
            PROJECT,
        ),
        tool(
            "claim_task",
            "Claims one task for this instance (TSK_002 when another holds it).",
            Method::POST,
            "/api/tasks/{id}/claim",
            TASK,
        ),
        tool(
            "release_task",
            "Gives a claimed task back, with a reason.",
            Method::POST,
            "/api/tasks/{id}/release",
            TASK,
        ),
        tool(
            "complete_task",
            "Completes a task this instance holds, with a summary and the files modified; tasks depending on it unblock.",
            Method::POST,
            "/api/tasks/{id}/complete",
            TASK,
        ),
        tool(
            "acquire_lock",
            "Locks a file or a glob (`src/auth/**`) for this instance, with a reason and a duration (LCK_001 when another instance holds an overlapping lock).",
            Method::POST,
            "/api/projects/{project}/locks",
            PROJECT,
        ),
        tool(
            "check_lock",
            "Whether a path is locked, and by whom.",
            Method::POST,
            "/api/projects/{project}/locks/check",
            PROJECT,
        ),
        tool(
            "extend_lock",
            "Extends a lock this instance holds.",
            Method::POST,
            "/api/projects/{project}/locks/extend",
            PROJECT,
        ),
        tool(
            "release_lock",
            "Releases a lock this instance holds.",
            Method::POST,
            "/api/projects/{project}/locks/release",
            PROJECT,
        ),
        tool(
            "list_locks",
            "The project's active file locks.",
            Method::GET,
            "/api/projects/{project}/locks",
            PROJECT,
        ),
        tool(
            "heartbeat",
            "Reports this instance alive, with its status (idle, busy) and context usage (percent).",
            Method::POST,
            "/api/projects/{id}/instances/{instance_id}/heartbeat",
            &[("id", Param::Project), ("instance_id", Param::Instance)],
        ),
        tool(
            "list_instances",
            "The project's instances and what they are doing.",
            Method::GET,
            "/api/projects/{id}/instances",
            PROJECT_BY_ID,
        ),
        ToolSpec {
            broadcasts_only: true,
            ..tool(
                "read_broadcasts",
                "Recent broadcasts to this project addressed to everyone or to this instance, newest first.",
                Method::GET,
                "/api/projects/{id}/activity",
                PROJECT_BY_ID,
            )
        },
        tool(
            "broadcast",
            "Sends a message to the project's other instances (all, or a list of instance ids).",
            Method::POST,
            "/api/projects/{id}/broadcast",
            PROJECT_BY_ID,
        ),
    ]
}

/// A tool with its schemas, ready to list.
struct Entry {
    spec: ToolSpec,
    tool: Tool,
    /// Query parameters (GET) the endpoint takes.
    query: Vec<String>,
    /// The body has an `instance_id` field to fill.
    body_instance: bool,
}

/// The tool catalogue and the API router tools are dispatched to.
#[derive(Clone)]
pub struct McpEndpoint {
    service: StreamableHttpService<Tools, NeverSessionManager>,
}

#[derive(Clone)]
struct Tools {
    entries: Arc<Vec<Entry>>,
    api: Router,
}

impl McpEndpoint {
    /// `api`: the service's own router; `doc`: its OpenAPI document (for the schemas).
    pub fn new(state: &AppState, api: Router, doc: &OpenApi) -> Self {
        let doc = serde_json::to_value(doc).expect("the OpenAPI document serializes");
        let entries: Vec<Entry> = catalog()
            .into_iter()
            .map(|spec| entry(spec, &doc))
            .collect();
        let tools = Tools {
            entries: Arc::new(entries),
            api,
        };
        let settings = &state.config().mcp;
        // Stateless in both eras: any host process can answer any request (no session
        // affinity), and simple calls answer with plain JSON. The MCP spec asks servers to check
        // Host and Origin: with no origins listed, any browser origin is refused (clients that
        // send none, like Claude Code, pass).
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(settings.allowed_hosts.clone())
            .with_allowed_origins(settings.allowed_origins.clone())
            .enforce_origin_validation()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_cancellation_token(state.shutdown().child_token());
        let service = StreamableHttpService::new(
            move || Ok(tools.clone()),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        Self { service }
    }
}

/// Inlines `$ref`s against the document's components.
fn resolve(schema: &Value, doc: &Value, depth: usize) -> Value {
    if depth > 12 {
        return json!({});
    }
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference.rsplit('/').next().unwrap_or_default();
                let target = &doc["components"]["schemas"][name];
                return resolve(target, doc, depth + 1);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolve(v, doc, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve(v, doc, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

fn entry(spec: ToolSpec, doc: &Value) -> Entry {
    let method = spec.method.as_str().to_ascii_lowercase();
    let op = &doc["paths"][spec.path][&method];
    assert!(
        op.is_object(),
        "tool {}: no {} {} in the API",
        spec.name,
        method,
        spec.path
    );
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let mut query = Vec::new();
    for (name, source) in spec.params {
        match source {
            Param::Project => {
                properties.insert("project_id".into(), json!({
                    "type": "string", "format": "uuid",
                    "description": "The project. Default: the session's, or the X-ClaudeNest-Project header."
                }));
            }
            Param::Instance => {}
            Param::Arg(arg) => {
                let schema = op["parameters"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == *name))
                    .map(|p| resolve(&p["schema"], doc, 0))
                    .unwrap_or_else(|| json!({"type": "string"}));
                properties.insert((*arg).into(), schema);
                required.push(json!(arg));
            }
        }
    }
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "query" {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let mut schema = resolve(&p["schema"], doc, 0);
            if let Some(description) = p.get("description") {
                schema["description"] = description.clone();
            }
            properties.insert(name.clone(), schema);
            query.push(name);
        }
    }
    let body = resolve(
        &op["requestBody"]["content"]["application/json"]["schema"],
        doc,
        0,
    );
    let mut body_instance = false;
    if let Some(fields) = body["properties"].as_object() {
        for (name, schema) in fields {
            if name == "instance_id" {
                body_instance = true;
            }
            properties.insert(name.clone(), schema.clone());
        }
        for name in body["required"].as_array().into_iter().flatten() {
            if name != "instance_id" {
                required.push(name.clone());
            }
        }
    }
    let uses_instance = body_instance
        || spec
            .params
            .iter()
            .any(|(_, p)| matches!(p, Param::Instance));
    if uses_instance {
        properties.insert("instance_id".into(), json!({
            "type": "string",
            "description": "This instance. Default: the session's, or the X-ClaudeNest-Instance header."
        }));
    }
    let input = json!({"type": "object", "properties": properties, "required": required});
    let responses = &op["responses"];
    let ok = if responses["200"].is_object() {
        &responses["200"]
    } else {
        &responses["201"]
    };
    let envelope = resolve(&ok["content"]["application/json"]["schema"], doc, 0);
    let mut data = envelope["properties"]["data"].clone();
    if data.is_null() {
        data = json!({});
    }
    // One of the two: `data` (success) or `error` (a tool error with the API's code).
    let output = json!({
        "type": "object",
        "properties": {
            "data": data,
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "The REST error code (TSK_002, LCK_001, VAL_001, …)."},
                    "message": {"type": "string"},
                    "errors": {"type": "object", "description": "VAL_001: messages per field."},
                },
            },
        },
    });
    let object = |v: Value| -> Arc<JsonObject> {
        match v {
            Value::Object(map) => Arc::new(map),
            _ => Arc::new(JsonObject::new()),
        }
    };
    let tool = Tool::new(spec.name, spec.description, object(input))
        .with_raw_output_schema(object(output));
    Entry {
        spec,
        tool,
        query,
        body_instance,
    }
}

/// A tool error carrying the REST error: `{error: {code, message, errors}}`.
fn tool_error(code: &str, message: &str, errors: Option<&Value>) -> CallToolResult {
    let mut error = json!({"code": code, "message": message});
    if let Some(errors) = errors.filter(|e| !e.is_null()) {
        error["errors"] = errors.clone();
    }
    CallToolResult::structured_error(json!({ "error": error }))
}

fn invalid(field: &str, message: &str) -> CallToolResult {
    tool_error(
        "VAL_001",
        "The given data was invalid.",
        Some(&json!({ field: [message] })),
    )
}

impl Tools {
    async fn call(
        &self,
        caller: &Caller,
        entry: &Entry,
        mut args: Map<String, Value>,
    ) -> CallToolResult {
        let spec = &entry.spec;
        // Identity: fixed by a session token, else header, else argument.
        let project_arg = args.remove("project_id");
        let project = match (
            &caller.project,
            project_arg.as_ref().and_then(Value::as_str),
        ) {
            (Some(fixed), Some(arg)) if caller.fixed && arg != fixed.to_string() => {
                return invalid(
                    "project_id",
                    "This token works on its session's project only.",
                );
            }
            (Some(p), None) => Some(p.to_string()),
            (_, Some(arg)) => Some(arg.to_owned()),
            (None, None) => None,
        };
        let instance_arg = args.remove("instance_id");
        let instance = match (
            &caller.instance,
            instance_arg.as_ref().and_then(Value::as_str),
        ) {
            (Some(fixed), Some(arg)) if caller.fixed && arg != fixed => {
                return invalid(
                    "instance_id",
                    "This token acts as its session's instance only.",
                );
            }
            (Some(i), None) => Some(i.clone()),
            (_, Some(arg)) => Some(arg.to_owned()),
            (None, None) => None,
        };
        let mut path = spec.path.to_owned();
        for (name, source) in spec.params {
            let value = match source {
                Param::Project => project.clone().ok_or((
                    "project_id",
                    "Give the project (or the X-ClaudeNest-Project header).",
                )),
                Param::Instance => instance.clone().ok_or((
                    "instance_id",
                    "Give the instance id (or the X-ClaudeNest-Instance header).",
                )),
                Param::Arg(arg) => args
                    .remove(*arg)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .ok_or((*arg, "This field is required.")),
            };
            match value {
                Ok(value) => {
                    let encoded: String =
                        form_urlencoded::byte_serialize(value.as_bytes()).collect();
                    path = path.replace(&format!("{{{name}}}"), &encoded);
                }
                Err((field, message)) => return invalid(field, message),
            }
        }
        // A session token works in its project: a task of another project is not found.
        if caller.fixed && spec.path.starts_with("/api/tasks/") {
            // `/api/tasks/{id}` of `/api/tasks/{id}/claim` and the like.
            let task_path = path.split('/').take(4).collect::<Vec<_>>().join("/");
            let task = self.dispatch(caller, Method::GET, &task_path, None).await;
            match task {
                Ok(task) if task["project_id"].as_str() == project.as_deref() => {}
                Ok(_) => return tool_error("TSK_001", "Task not found", None),
                Err(error) => return error,
            }
        }
        let mut body = None;
        if spec.method == Method::GET {
            let mut pairs = form_urlencoded::Serializer::new(String::new());
            for name in &entry.query {
                match args.remove(name) {
                    Some(Value::String(s)) => pairs.append_pair(name, &s),
                    Some(Value::Null) | None => continue,
                    Some(other) => pairs.append_pair(name, &other.to_string()),
                };
            }
            if let Some((key, _)) = args.iter().next() {
                return invalid(key, "Unknown field.");
            }
            let query = pairs.finish();
            if !query.is_empty() {
                path = format!("{path}?{query}");
            }
        } else {
            if entry.body_instance {
                match instance {
                    Some(instance) => {
                        args.insert("instance_id".into(), Value::String(instance));
                    }
                    None => {
                        return invalid(
                            "instance_id",
                            "Give the instance id (or the X-ClaudeNest-Instance header).",
                        );
                    }
                }
            }
            body = Some(Value::Object(args));
        }
        match self
            .dispatch(caller, spec.method.clone(), &path, body)
            .await
        {
            Ok(mut data) => {
                if spec.broadcasts_only {
                    data = addressed_to(
                        data,
                        caller
                            .instance
                            .as_deref()
                            .or(instance_arg.as_ref().and_then(Value::as_str)),
                    );
                }
                CallToolResult::structured(json!({ "data": data }))
            }
            Err(error) => error,
        }
    }

    /// One API request in-process, as the caller; `Ok(data)` or the API's error as a tool error.
    async fn dispatch(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CallToolResult> {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .map_err(|e| tool_error("SRV_001", &e.to_string(), None))?;
        request
            .extensions_mut()
            .insert(Preauthenticated(caller.principal.clone()));
        let response = self.api.clone().oneshot(request).await.expect("infallible");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| tool_error("SRV_001", &e.to_string(), None))?;
        let envelope: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if envelope["success"] == true {
            return Ok(envelope["data"].clone());
        }
        let error = &envelope["error"];
        Err(tool_error(
            error["code"].as_str().unwrap_or("SRV_001"),
            error["message"].as_str().unwrap_or("Internal server error"),
            error.get("errors"),
        ))
    }
}

/// Broadcast activity entries addressed to everyone or to `instance`.
fn addressed_to(data: Value, instance: Option<&str>) -> Value {
    let Value::Array(entries) = data else {
        return data;
    };
    Value::Array(
        entries
            .into_iter()
            .filter(|e| e["type"] == "broadcast")
            .filter(|e| {
                let target = &e["details"]["target"];
                match target {
                    Value::Array(ids) => instance.is_some_and(|i| ids.iter().any(|t| t == i)),
                    _ => true,
                }
            })
            .collect(),
    )
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("claudenest", crate::VERSION))
            .with_instructions(
                "ClaudeNest coordination: claim tasks, lock files before editing them, share \
                 context, and broadcast to the other Claude Code instances of this project.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.entries.iter().map(|e| e.tool.clone()).collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.entries
            .iter()
            .find(|e| e.spec.name == name)
            .map(|e| e.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(entry) = self.entries.iter().find(|e| e.spec.name == request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {}", request.name),
                None,
            ));
        };
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the caller is not authenticated", None))?;
        let args = request.arguments.unwrap_or_default();
        Ok(self.call(&caller, entry, args).await.into())
    }
}

/// The MCP endpoint (Streamable HTTP; JSON-RPC in the body). Needs a bearer token: a user
/// token (`cn_…`; project and instance from `X-ClaudeNest-Project` / `X-ClaudeNest-Instance`
/// or the tools' arguments) or a session token (`mcs_…`). See docs/mcp-server.md.
#[utoipa::path(post, path = "/mcp", tag = "mcp-server", security(("bearer" = [])),
    request_body(content = Object, description = "A JSON-RPC message (MCP)"),
    responses(
        (status = 200, description = "The JSON-RPC answer (application/json or text/event-stream)"),
        (status = 400, description = "HTTP_400: not a JSON-RPC message", body = ErrorEnvelope),
        (status = 401, description = "AUTH_005: missing or unknown token", body = ErrorEnvelope),
        (status = 403, description = "AUTH_006: the token may not act on that project; or Host/Origin not allowed", body = ErrorEnvelope),
        (status = 406, description = "HTTP_406: `Accept` must name application/json and text/event-stream", body = ErrorEnvelope),
        (status = 415, description = "HTTP_415: the body must be application/json", body = ErrorEnvelope),
        (status = 429, description = "RTE_001", body = ErrorEnvelope),
    ))]
pub async fn mcp_post(
    state: State<AppState>,
    endpoint: Extension<McpEndpoint>,
    request: Request,
) -> Response {
    serve(state, endpoint, request).await
}

/// Legacy-era stream and session endpoints: answered by the MCP transport (this server is
/// stateless, so they say so).
#[utoipa::path(get, path = "/mcp", tag = "mcp-server", security(("bearer" = [])),
    responses((status = 401, description = "AUTH_005", body = ErrorEnvelope),
               (status = 405, description = "HTTP_405: no server-initiated stream (stateless server)", body = ErrorEnvelope),
               (status = 429, description = "RTE_001", body = ErrorEnvelope)))]
pub async fn mcp_get(
    state: State<AppState>,
    endpoint: Extension<McpEndpoint>,
    request: Request,
) -> Response {
    serve(state, endpoint, request).await
}

/// Ending an MCP session: there are none (the server is stateless).
#[utoipa::path(delete, path = "/mcp", tag = "mcp-server", security(("bearer" = [])),
    responses((status = 401, description = "AUTH_005", body = ErrorEnvelope),
               (status = 405, description = "HTTP_405: no sessions to end (stateless server)", body = ErrorEnvelope),
               (status = 429, description = "RTE_001", body = ErrorEnvelope)))]
pub async fn mcp_delete(
    state: State<AppState>,
    endpoint: Extension<McpEndpoint>,
    request: Request,
) -> Response {
    serve(state, endpoint, request).await
}

async fn serve(
    State(state): State<AppState>,
    Extension(endpoint): Extension<McpEndpoint>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(token) = bearer_token(headers) else {
        return unauthorized(ApiError::new(ErrorCode::Unauthenticated));
    };
    let caller = match mcp_access::authenticate(
        state.store(),
        token,
        header(PROJECT_HEADER),
        header(INSTANCE_HEADER),
    )
    .await
    {
        Ok(caller) => caller,
        Err(err) if err.code() == ErrorCode::Unauthenticated => return unauthorized(err),
        Err(err) => return err.into_response(),
    };
    request.extensions_mut().insert(caller);
    let response = endpoint.service.handle(request).await.map(Body::new);
    in_envelope(response).await
}

/// The MCP transport refuses some requests itself (wrong `Accept`, wrong content type, not
/// JSON-RPC) with a plain-text body; like every other refusal of this service they answer in
/// the envelope, with the transport's own words as the message.
async fn in_envelope(response: Response) -> Response {
    let status = response.status();
    let is_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !status.is_client_error() || !is_text {
        return response;
    }
    let code = match status {
        StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        _ => ErrorCode::BadRequest,
    };
    // Bounded: these are the transport's short messages.
    let said = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let mut error = ApiError::new(code);
    if !said.is_empty() {
        error = error.with_message(said);
    }
    let mut answer = error.into_response();
    // The status is the transport's (a code's default could differ, e.g. 403 vs AUTH_006).
    *answer.status_mut() = status;
    answer
}

fn unauthorized(err: ApiError) -> Response {
    let mut response = err.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
