//! MCP tool calls through the API (`POST …/mcp/{name}/execute`), p50/p99, next to baselines
//! measured in the same run:
//!
//! - direct: an rmcp client calling the same stdio server (`server-everything`'s `echo`) in
//!   this process — what the API adds on top is host → agent → server and back;
//! - REST floor: `GET …/mcp/{name}` (authentication, one row read, no agent);
//! - stdio via the API: the agent's rmcp client calls the server (`echo`);
//! - wasm via the API: the example `fs-tools` mcp-adapter plugin's `list_files`, run by the
//!   machine's agent (API → host → agent → wasm and back);
//! - wasm in-process: the same call in a plugin runtime in this process (where the host ran
//!   mcp-adapters before they moved to the agent).
//!
//!
//! And ClaudeNest's own MCP server: `check_lock` through `/mcp` (rmcp client, both protocol
//! eras) next to the same `POST …/locks/check` through REST, in the same run.
//!
//! Needs `npm ci --prefix tests/mcp` and the plugins built (`scripts/test.sh` does both).
//! Real processes throughout: the `claudenest` host binary on SQLite and a `claudenest agent`.

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::percentile;
use rmcp::{
    ServiceExt as _,
    model::{CallToolRequestParams, ProtocolVersion},
    service::{ClientLifecycleMode, ClientServiceExt as _},
    transport::{
        ConfigureCommandExt as _, StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

const CALLS: usize = 1000;
const WARMUP: usize = 50;

fn everything() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "{path} missing: npm ci --prefix tests/mcp"
    );
    path.to_owned()
}

fn report(name: &str, times: &mut [Duration], baseline: Option<(Duration, &str)>) -> Duration {
    times.sort_unstable();
    let (p50, p99) = (percentile(times, 50), percentile(times, 99));
    let ratio = |d: Duration, b: Duration| d.as_secs_f64() / b.as_secs_f64();
    match baseline {
        Some((b, of)) => println!(
            "{name:<44} p50 {:>8.0} µs  p99 {:>8.0} µs  p50 {:>5.2}× {of}",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            ratio(p50, b)
        ),
        None => println!(
            "{name:<44} p50 {:>8.0} µs  p99 {:>8.0} µs  (baseline)",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        ),
    }
    p50
}

async fn time_calls(mut call: impl AsyncFnMut(usize)) -> Vec<Duration> {
    for i in 0..WARMUP {
        call(i).await;
    }
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t0 = Instant::now();
        call(i).await;
        times.push(t0.elapsed());
    }
    times
}

#[tokio::main]
async fn main() {
    let entry = everything();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.md"), "# Notes\n").unwrap();

    // Baseline: rmcp straight to the stdio server.
    let command = tokio::process::Command::new("node").configure(|c| {
        c.arg(&entry).arg("stdio");
    });
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let mut direct = time_calls(async |i| {
        let mut arguments = serde_json::Map::new();
        arguments.insert("message".into(), json!(format!("hello {i}")));
        let result = client
            .call_tool(CallToolRequestParams::new("echo").with_arguments(arguments))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true));
    })
    .await;
    client.cancel().await.unwrap();

    let url = common::sqlite_url(dir.path());
    let agent_data = tempfile::tempdir().unwrap();
    let setup = common::HostAndAgent::start(&url, &[], |c| {
        c.arg("--plugin-root")
            .arg(dir.path())
            .arg("--data-dir")
            .arg(agent_data.path());
    })
    .await;
    let (client, token) = (&setup.client, &setup.token);
    let mcp = format!("{}/mcp", setup.machine_url());
    let post = async |url: String, body: Value| -> Value {
        let response = client
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        body
    };

    post(
        mcp.clone(),
        json!({"name": "everything", "command": "node", "args": [entry, "stdio"]}),
    )
    .await;
    post(format!("{mcp}/everything/start"), json!({})).await;

    let component = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/target/wasm32-wasip2/release/fs_tools.wasm"
    ))
    .expect("fs_tools.wasm: build the plugins first");
    let installed = client
        .post(format!("{}/api/plugins", setup.base))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(component)
        .send()
        .await
        .unwrap();
    assert!(installed.status().is_success());
    let grants = json!({"grants": {"filesystem": [{"name": "workspace", "path": dir.path(), "access": "read"}]}});
    let enabled = client
        .put(format!("{}/plugins/fs-tools", setup.machine_url()))
        .bearer_auth(token)
        .json(&grants)
        .send()
        .await
        .unwrap();
    assert!(enabled.status().is_success());
    post(
        mcp.clone(),
        json!({"name": "files", "transport": "wasm", "plugin": "fs-tools"}),
    )
    .await;
    post(format!("{mcp}/files/start"), json!({})).await;

    let mut floor = time_calls(async |_| {
        let r = client
            .get(format!("{mcp}/everything"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
    })
    .await;
    let mut stdio = time_calls(async |i| {
        let body = post(
            format!("{mcp}/everything/execute"),
            json!({"tool": "echo", "parameters": {"message": format!("hello {i}")}}),
        )
        .await;
        assert!(body["data"]["content"].as_str().unwrap().contains("hello"));
    })
    .await;
    let mut wasm = time_calls(async |_| {
        let body = post(
            format!("{mcp}/files/execute"),
            json!({"tool": "list_files", "parameters": {}}),
        )
        .await;
        assert!(
            body["data"]["content"]
                .as_str()
                .unwrap()
                .contains("notes.md")
        );
    })
    .await;

    // The same plugin call in a runtime in this process.
    let in_host = {
        use claudenest::plugins::{
            grants::{Grants, Mount},
            runtime::{Options, PluginRuntime},
        };
        let runtime = PluginRuntime::new(Options::default()).unwrap();
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../plugins/target/wasm32-wasip2/release/fs_tools.wasm"
        ))
        .unwrap();
        let loaded = runtime.load(bytes).await.unwrap();
        let grants = Grants {
            owner: "bench".into(),
            mounts: vec![Mount {
                name: "workspace".into(),
                host_path: dir.path().to_path_buf(),
                writable: false,
            }],
            ..Grants::default()
        };
        time_calls(async |_| {
            let result = runtime
                .call_tool(&loaded, &grants, "list_files", "{}")
                .await
                .unwrap()
                .unwrap();
            assert!(!result.is_error);
        })
        .await
    };
    let mut in_host = in_host;

    // ClaudeNest's own /mcp next to REST: the same lock check.
    let project: Value = post(
        format!("{}/projects", setup.machine_url()),
        json!({"name": "Bench", "project_path": "/srv/bench"}),
    )
    .await;
    let project = project["data"]["id"].as_str().unwrap().to_owned();
    let check_url = format!("{}/api/projects/{project}/locks/check", setup.base);
    let mut rest = time_calls(async |_| {
        let body = post(check_url.clone(), json!({"path": "src/main.rs"})).await;
        assert_eq!(body["data"]["locked"], false);
    })
    .await;
    // The same call as a bare JSON-RPC POST (no MCP client library): the server's share.
    let mcp_url = format!("{}/mcp", setup.base);
    let mut raw = time_calls(async |i| {
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "check_lock", "arguments": {"path": "src/main.rs"}}});
        let response = client
            .post(&mcp_url)
            .bearer_auth(token)
            .header("x-claudenest-project", &project)
            .header("mcp-protocol-version", "2025-11-25")
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["result"]["structuredContent"]["data"]["locked"], false,
            "{answer}"
        );
    })
    .await;
    let mut eras = Vec::new();
    let modern = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    for (era, lifecycle) in [
        ("2026-07-28", modern),
        ("2025-11-25", ClientLifecycleMode::Initialize),
    ] {
        let mut headers = std::collections::HashMap::new();
        headers.insert(
            axum::http::HeaderName::from_static("x-claudenest-project"),
            axum::http::HeaderValue::from_str(&project).unwrap(),
        );
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", setup.base))
            .auth_header(token.clone())
            .custom_headers(headers);
        let transport = StreamableHttpClientTransport::from_config(config);
        let mcp_client = ().serve_with_lifecycle(transport, lifecycle).await.unwrap();
        let times = time_calls(async |_| {
            let mut arguments = serde_json::Map::new();
            arguments.insert("path".into(), json!("src/main.rs"));
            let result = mcp_client
                .call_tool(CallToolRequestParams::new("check_lock").with_arguments(arguments))
                .await
                .unwrap();
            assert_eq!(result.structured_content.unwrap()["data"]["locked"], false);
        })
        .await;
        mcp_client.cancel().await.unwrap();
        eras.push((era, times));
    }

    println!("MCP tools/call, {CALLS} calls each after {WARMUP} warm-up, sequential");
    let base = report(
        "direct: rmcp → stdio server-everything echo",
        &mut direct,
        None,
    );
    let direct = Some((base, "direct"));
    report(
        "REST floor: GET …/mcp/{name} (no agent)",
        &mut floor,
        direct,
    );
    report(
        "API → agent → stdio server-everything echo",
        &mut stdio,
        direct,
    );
    report("API → agent → wasm fs-tools list_files", &mut wasm, direct);
    report("in-process wasm fs-tools list_files", &mut in_host, direct);
    println!("ClaudeNest's /mcp vs REST (the same lock check)");
    let rest = report("REST POST …/locks/check", &mut rest, None);
    report(
        "bare JSON-RPC POST /mcp check_lock",
        &mut raw,
        Some((rest, "REST")),
    );
    for (era, mut times) in eras {
        let name = format!("/mcp tools/call check_lock ({era})");
        report(&name, &mut times, Some((rest, "REST")));
    }
}
