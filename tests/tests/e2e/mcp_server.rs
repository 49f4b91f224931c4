//! ClaudeNest's own MCP server (`/mcp`, issue 11) driven by real MCP clients: rmcp in both
//! protocol eras (2026-07-28 `server/discover`, 2025-11-25 `initialize`) and the official
//! TypeScript SDK (tests/mcp, node) — with REST and a Pusher WebSocket watching the same
//! events; and a session whose stand-in `claude` reaches `/mcp` through the `--mcp-config` file
//! the agent wrote for it.

use std::{collections::HashMap, time::Duration};

use claudenest_e2e::{AgentProcess, PusherClient, TestApp, fast_links, on_both_stores};
use reqwest::{
    Method,
    header::{HeaderName, HeaderValue},
};
use rmcp::{
    RoleClient,
    model::{CallToolRequestParams, CallToolResult, ProtocolVersion},
    service::{ClientLifecycleMode, ClientServiceExt as _, RunningService},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use uuid::Uuid;

type Client = RunningService<RoleClient, ()>;

/// An rmcp client of `/mcp` as `instance` of `project`, in the given era.
async fn connect(
    app: &TestApp,
    token: &str,
    project: Uuid,
    instance: &str,
    modern: bool,
) -> Client {
    let mut headers = HashMap::new();
    headers.insert(
        HeaderName::from_static("x-claudenest-project"),
        HeaderValue::from_str(&project.to_string()).unwrap(),
    );
    headers.insert(
        HeaderName::from_static("x-claudenest-instance"),
        HeaderValue::from_str(instance).unwrap(),
    );
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base_url))
        .auth_header(token.to_owned())
        .custom_headers(headers);
    let transport = StreamableHttpClientTransport::from_config(config);
    let lifecycle = if modern {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        }
    } else {
        ClientLifecycleMode::Initialize
    };
    ().serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("MCP client connects")
}

async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// The structured `data` of a successful call.
fn data(result: &CallToolResult) -> Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "tool error: {:?}",
        result.structured_content
    );
    result
        .structured_content
        .as_ref()
        .expect("structured content")["data"]
        .clone()
}

/// The REST error code of a failed call.
fn error_code(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error: {:?}",
        result.structured_content
    );
    result
        .structured_content
        .as_ref()
        .expect("structured error")["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits on the socket for an event of `name` about `task_id`.
async fn wait_event(ws: &mut PusherClient, name: &str, task_id: &str) -> Value {
    loop {
        let frame = ws.next().await;
        if frame["event"] == name {
            let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
            if data["task"]["id"] == task_id {
                return data;
            }
        }
    }
}

async fn project_with_tasks(
    app: &TestApp,
    token: &str,
    path: &str,
) -> (Uuid, Uuid, String, String) {
    let (machine, _) = app.register_machine(token, json!({"name": "box"})).await;
    let project = app
        .post(
            &format!("/api/machines/{machine}/projects"),
            Some(token),
            json!({"name": "Nest", "project_path": path}),
        )
        .await;
    project.expect(201);
    let project_id: Uuid = project.body["data"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let a = app
        .post(
            &format!("/api/projects/{project_id}/tasks"),
            Some(token),
            json!({"title": "Auth", "priority": "high", "files": ["src/auth/login.rs"]}),
        )
        .await;
    a.expect(201);
    let a_id = a.body["data"]["id"].as_str().unwrap().to_owned();
    let b = app
        .post(
            &format!("/api/projects/{project_id}/tasks"),
            Some(token),
            json!({"title": "Docs", "dependencies": [a_id]}),
        )
        .await;
    b.expect(201);
    let b_id = b.body["data"]["id"].as_str().unwrap().to_owned();
    (machine, project_id, a_id, b_id)
}

on_both_stores! {
    async fn instances_coordinate_through_mcp_in_both_eras(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let (_, project, task_a, task_b) = project_with_tasks(&app, &token, "/srv/nest").await;
        let mut ws = PusherClient::open(&app).await;
        let subscribed = ws.subscribe_authorized(&app, &token, &format!("private-project.{project}")).await;
        assert_eq!(subscribed["event"], "pusher_internal:subscription_succeeded");

        // The current era (stateless, server/discover).
        let alpha = connect(&app, &token, project, "alpha", true).await;
        let tools = alpha.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        for expected in ["get_context", "query_context", "add_context", "list_tasks", "next_task", "claim_next_task", "claim_task", "release_task", "complete_task", "acquire_lock", "check_lock", "extend_lock", "release_lock", "list_locks", "heartbeat", "read_broadcasts", "broadcast"] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        let complete = tools.iter().find(|t| t.name == "complete_task").unwrap();
        assert_eq!(complete.input_schema["required"], json!(["task_id", "summary"]));
        assert!(complete.input_schema["properties"]["files_modified"].is_object());
        let output = complete.output_schema.as_ref().expect("an output schema");
        assert_eq!(output["properties"]["data"]["properties"]["status"]["type"], "string");

        let claimed = call(&alpha, "claim_next_task", json!({})).await;
        let claimed = data(&claimed);
        assert_eq!(claimed["task"]["id"], task_a.as_str());
        assert_eq!(claimed["task"]["assigned_to"], "alpha");
        let seen = wait_event(&mut ws, "task:claimed", &task_a).await;
        assert_eq!(seen["instanceId"], "alpha");
        let lock = call(&alpha, "acquire_lock", json!({"path": "src/auth/**", "reason": "refactoring auth", "duration_minutes": 30})).await;
        assert_eq!(data(&lock)["locked_by"], "alpha", "{:?}", lock.structured_content);

        // The earlier era (initialize), as another instance: the lock and the claim are refused
        // with the REST codes.
        let beta = connect(&app, &token, project, "beta", false).await;
        let refused = call(&beta, "acquire_lock", json!({"path": "src/auth/login.rs"})).await;
        assert_eq!(error_code(&refused), "LCK_001");
        let taken = call(&beta, "claim_task", json!({"task_id": task_a})).await;
        assert_eq!(error_code(&taken), "TSK_002");
        let bad = call(&beta, "claim_task", json!({})).await;
        assert_eq!(error_code(&bad), "VAL_001");
        assert!(bad.structured_content.as_ref().unwrap()["error"]["errors"]["task_id"].is_array());
        let check = call(&beta, "check_lock", json!({"path": "src/auth/login.rs"})).await;
        assert_eq!(data(&check)["locked"], true, "{:?}", check.structured_content);

        // Shared context: add, then find it.
        let added = call(&alpha, "add_context", json!({"content": "Sessions are signed with Ed25519 keys rotated weekly.", "type": "decision", "files": ["src/auth/keys.rs"]})).await;
        assert_eq!(data(&added)["instance_id"], "alpha");
        let found = call(&beta, "query_context", json!({"query": "Ed25519 keys rotated"})).await;
        let results = data(&found)["results"].as_array().unwrap().clone();
        assert!(results.iter().any(|r| r["content"].as_str().unwrap().contains("Ed25519")), "{results:?}");
        let context = call(&beta, "get_context", json!({})).await;
        assert!(data(&context).is_object());

        // Completing A unblocks B, and REST and the socket see it.
        let done = call(&alpha, "complete_task", json!({"task_id": task_a, "summary": "Auth refactored", "files_modified": ["src/auth/login.rs"]})).await;
        assert_eq!(data(&done)["status"], "completed");
        let completed = wait_event(&mut ws, "task:completed", &task_a).await;
        assert_eq!(completed["task"]["status"], "completed");
        let rest = app.get(&format!("/api/tasks/{task_a}"), Some(&token)).await;
        assert_eq!(rest.body["data"]["status"], "completed");
        assert_eq!(rest.body["data"]["summary"], "Auth refactored");
        let next = call(&beta, "next_task", json!({})).await;
        assert_eq!(data(&next)["id"], task_b.as_str(), "{:?}", next.structured_content);

        // Heartbeat and broadcasts addressed to an instance.
        let beat = call(&beta, "heartbeat", json!({"status": "busy", "context_usage": 37.5})).await;
        data(&beat);
        let instances = app.get(&format!("/api/projects/{project}/instances"), Some(&token)).await;
        let beta_row = instances.body["data"].as_array().unwrap().iter().find(|i| i["id"] == "beta").cloned().unwrap();
        assert_eq!(beta_row["status"], "busy");
        call(&alpha, "broadcast", json!({"type": "info", "content": "for beta only", "target": ["beta"]})).await;
        call(&alpha, "broadcast", json!({"type": "info", "content": "for gamma only", "target": ["gamma"]})).await;
        let inbox = call(&beta, "read_broadcasts", json!({})).await;
        let contents: Vec<String> = data(&inbox).as_array().unwrap().iter().map(|e| e["details"]["content"].as_str().unwrap_or_default().to_owned()).collect();
        assert!(contents.contains(&"for beta only".to_owned()), "{contents:?}");
        assert!(!contents.contains(&"for gamma only".to_owned()), "{contents:?}");
        alpha.cancel().await.unwrap();
        beta.cancel().await.unwrap();

        // The official TypeScript SDK (node), legacy era.
        let plan = json!({
            "url": format!("{}/mcp", app.base_url),
            "headers": {"Authorization": format!("Bearer {token}"), "X-ClaudeNest-Project": project.to_string(), "X-ClaudeNest-Instance": "gamma"},
            "calls": [{"name": "claim_task", "arguments": {"task_id": task_b}}, {"name": "list_tasks", "arguments": {"status": "in_progress"}}, {"name": "claim_task", "arguments": {"task_id": task_a}}],
        });
        let out = std::process::Command::new("node")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/mcp/client.mjs"))
            .arg(plan.to_string())
            .output()
            .expect("node");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ts: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(ts["tools"].as_array().unwrap().iter().any(|t| t == "claim_task"));
        assert_eq!(ts["results"][0]["structuredContent"]["data"]["task"]["assigned_to"], "gamma", "{ts}");
        let listed = ts["results"][1]["structuredContent"]["data"].as_array().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["id"], task_b.as_str());
        assert_eq!(ts["results"][2]["isError"], true);
        assert_eq!(ts["results"][2]["structuredContent"]["error"]["code"], "TSK_002");

        // No token, another user's token, a foreign Origin.
        let anonymous = app.client.post(format!("{}/mcp", app.base_url)).json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(anonymous.headers().contains_key("www-authenticate"));
        let (_, eve) = app.user_with_token("eve@example.com").await;
        let intruder = connect(&app, &eve, project, "eve", true).await;
        let denied = call(&intruder, "list_tasks", json!({})).await;
        assert_eq!(error_code(&denied), "PRJ_001");
        let cross = app
            .client
            .post(format!("{}/mcp", app.base_url))
            .bearer_auth(&token)
            .header("origin", "https://evil.example")
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), 403);
    }

    async fn a_session_in_a_project_gets_a_working_mcp_configuration(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let workdir = tempfile::tempdir().unwrap();
        let path = workdir.path().canonicalize().unwrap();
        let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
        let project = app
            .post(&format!("/api/machines/{machine}/projects"), Some(&token), json!({"name": "Nest", "project_path": path}))
            .await;
        project.expect(201);
        let project_id = project.body["data"]["id"].as_str().unwrap().to_owned();
        let script = workdir.path().join("claude");
        std::fs::write(&script, STAND_IN).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _agent = AgentProcess::start(&app, &machine_token, &["--claude-path", script.to_str().unwrap()]);
        app.wait_for_status(&token, machine, "online", Duration::from_secs(15)).await;

        let created = app
            .post(&format!("/api/machines/{machine}/sessions"), Some(&token), json!({"mode": "interactive", "project_path": path}))
            .await;
        created.expect(201);
        let session = created.body["data"]["session"]["id"].as_str().unwrap().to_owned();
        let instance = format!("session-{}", &session.replace('-', "")[20..]);

        // The stand-in read its --mcp-config and called `heartbeat` through /mcp.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let row = loop {
            let instances = app.get(&format!("/api/projects/{project_id}/instances"), Some(&token)).await;
            let row = instances.body["data"].as_array().unwrap().iter().find(|i| i["id"] == instance.as_str()).cloned();
            if let Some(row) = row.filter(|r| r["status"] == "busy") {
                break row;
            }
            assert!(std::time::Instant::now() < deadline, "the session's instance never reported: {}", instances.text);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(row["context_usage"], 42.0);

        // The token in the file acts as that instance of that project only, and ends with the
        // session (and so does the file).
        let config_file = std::env::temp_dir().join(format!("claudenest-mcp-{session}.json"));
        let config: Value = serde_json::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();
        let server = &config["mcpServers"]["claudenest"];
        assert_eq!(server["type"], "http");
        assert_eq!(server["url"], format!("{}/mcp", app.base_url));
        let session_token = server["headers"]["Authorization"].as_str().unwrap().strip_prefix("Bearer ").unwrap().to_owned();
        assert!(session_token.starts_with("mcs_"));
        let as_session = connect(&app, &session_token, Uuid::nil(), "someone-else", true).await;
        let other = call(&as_session, "list_tasks", json!({"project_id": Uuid::now_v7()})).await;
        assert_eq!(error_code(&other), "VAL_001");
        let own = call(&as_session, "list_tasks", json!({})).await;
        assert_eq!(data(&own), json!([]));
        // It claims, releases, claims again and completes a task of its project, as itself.
        let task = app.post(&format!("/api/projects/{project_id}/tasks"), Some(&token), json!({"title": "via the session"})).await;
        task.expect(201);
        let task_id = task.body["data"]["id"].as_str().unwrap().to_owned();
        let claimed = call(&as_session, "claim_task", json!({"task_id": task_id})).await;
        assert_eq!(data(&claimed)["task"]["assigned_to"], instance.as_str(), "{:?}", claimed.structured_content);
        let released = call(&as_session, "release_task", json!({"task_id": task_id, "reason": "later"})).await;
        assert_eq!(data(&released)["status"], "pending", "{:?}", released.structured_content);
        call(&as_session, "claim_task", json!({"task_id": task_id})).await;
        let done = call(&as_session, "complete_task", json!({"task_id": task_id, "summary": "done"})).await;
        assert_eq!(data(&done)["status"], "completed", "{:?}", done.structured_content);
        as_session.cancel().await.unwrap();
        let rest_with_session_token = app.get(&format!("/api/projects/{project_id}"), Some(&session_token)).await;
        rest_with_session_token.expect(401);
        let list = async |bearer: &str| {
            app.client
                .post(format!("{}/mcp", app.base_url))
                .bearer_auth(bearer)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
                .send()
                .await
                .unwrap()
                .status()
        };
        assert_eq!(list(&session_token).await, 200);
        app.call(Method::DELETE, &format!("/api/sessions/{session}"), Some(&token), None).await.expect(200);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while config_file.exists() {
            assert!(std::time::Instant::now() < deadline, "the config file outlived the session");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(list(&session_token).await, 401);

        // A session started with a token of its own: when that token signs out, the session's
        // token dies with it, though the session runs on.
        let ada = app.state.store().user_by_email("ada@example.com").await.unwrap().unwrap();
        let (_, starter) = claudenest::domain::accounts::issue_token(
            app.state.store(), ada.id, "starter", vec!["*".into()], None).await.unwrap();
        let second = app
            .post(&format!("/api/machines/{machine}/sessions"), Some(&starter), json!({"mode": "interactive", "project_path": path}))
            .await;
        second.expect(201);
        let second = second.body["data"]["session"]["id"].as_str().unwrap().to_owned();
        let second_file = std::env::temp_dir().join(format!("claudenest-mcp-{second}.json"));
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let second_token = loop {
            let config = std::fs::read_to_string(&second_file).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
            if let Some(bearer) = config.as_ref().and_then(|c| c["mcpServers"]["claudenest"]["headers"]["Authorization"].as_str()) {
                break bearer.strip_prefix("Bearer ").unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no configuration for the second session");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(list(&second_token).await, 200);
        app.post("/api/auth/logout", Some(&starter), json!({})).await.expect(200);
        assert_eq!(list(&second_token).await, 401);
        app.call(Method::DELETE, &format!("/api/sessions/{second}"), Some(&token), None).await.expect(200);

        // For people who run Claude Code themselves.
        let printed = std::process::Command::new(claudenest_e2e::claudenest_binary())
            .args(["mcp-config", "--project", &project_id, "--server", &app.base_url, "--instance", "laptop"])
            .output()
            .unwrap();
        let text = String::from_utf8(printed.stdout).unwrap();
        assert!(text.contains(&format!("claude mcp add --transport http --header 'Authorization: Bearer ${{CLAUDENEST_TOKEN}}' --header 'X-ClaudeNest-Project: {project_id}' --header 'X-ClaudeNest-Instance: laptop' claudenest {}/mcp", app.base_url)), "{text}");
        let snippet: Value = serde_json::from_str(&text[text.find("\n{").unwrap()..]).unwrap();
        assert_eq!(snippet["mcpServers"]["claudenest"]["url"], format!("{}/mcp", app.base_url));
    }

    async fn tool_calls_count_once_against_their_own_token(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| c.rate_limits.api_per_minute = 3).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (_, bob) = app.user_with_token("bob@example.com").await;
        let raw = async |token: &str| {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "list_locks", "arguments": {"project_id": Uuid::now_v7()}}});
            let response = app
                .client
                .post(format!("{}/mcp", app.base_url))
                .bearer_auth(token)
                .header("mcp-protocol-version", "2025-11-25")
                .header("accept", "application/json, text/event-stream")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        };
        // Each user's calls reach the API (a project that is not theirs: PRJ_001), never a
        // rate limit shared by every in-process dispatch.
        for token in [&ada, &bob] {
            for _ in 0..3 {
                let (status, answer) = raw(token).await;
                assert_eq!(status, 200);
                assert_eq!(answer["result"]["structuredContent"]["error"]["code"], "PRJ_001", "{answer}");
            }
        }
        let (status, _) = raw(&ada).await;
        assert_eq!(status, 429, "the /mcp request itself counts against the token");
    }
}

/// A stand-in `claude`: finds `--mcp-config FILE`, reads the server from it and calls the
/// `heartbeat` tool over Streamable HTTP (legacy era: initialize, then tools/call), then waits.
const STAND_IN: &str = r#"#!/bin/sh
config=""
while [ $# -gt 0 ]; do
  [ "$1" = "--mcp-config" ] && config="$2"
  shift
done
python3 - "$config" <<'PY'
import json, sys, urllib.request
server = json.load(open(sys.argv[1]))["mcpServers"]["claudenest"]
def rpc(body):
    headers = dict(server["headers"], **{"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"})
    req = urllib.request.Request(server["url"], data=json.dumps(body).encode(), headers=headers)
    return json.load(urllib.request.urlopen(req))
rpc({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "stand-in", "version": "1"}}})
out = rpc({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "heartbeat", "arguments": {"status": "busy", "context_usage": 42}}})
print("heartbeat:", json.dumps(out)[:200])
PY
exec cat
"#;
