//! MCP tool calls through the API (`POST …/mcp/{name}/execute`), p50/p99, next to baselines
//! measured in the same run:
//!
//! - direct: an rmcp client calling the same stdio server (`server-everything`'s `echo`) in
//!   this process — what the API adds on top is host → agent → server and back;
//! - REST floor: `GET …/mcp/{name}` (authentication, one row read, no agent);
//! - stdio via the API: the agent's rmcp client calls the server (`echo`);
//! - wasm via the API: the example `fs-tools` mcp-adapter plugin's `list_files` in the host's
//!   plugin runtime.
//!
//! Needs `npm ci --prefix tests/mcp` and the plugins built (`scripts/test.sh` does both).
//! Real processes throughout: the `claudenest` host binary on SQLite and a `claudenest agent`.

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::percentile;
use rmcp::{
    ServiceExt as _,
    model::CallToolRequestParams,
    transport::{ConfigureCommandExt as _, TokioChildProcess},
};
use serde_json::{Value, json};

const CALLS: usize = 1000;
const WARMUP: usize = 50;

fn everything() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "{path} missing: npm ci --prefix tests/mcp"
    );
    path.to_owned()
}

fn report(name: &str, times: &mut [Duration], baseline: Option<Duration>) -> Duration {
    times.sort_unstable();
    let (p50, p99) = (percentile(times, 50), percentile(times, 99));
    let ratio = |d: Duration, b: Duration| d.as_secs_f64() / b.as_secs_f64();
    match baseline {
        Some(b) => println!(
            "{name:<44} p50 {:>8.0} µs  p99 {:>8.0} µs  p50 {:>5.2}× direct",
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

    let url = format!(
        "sqlite://{}",
        dir.path().join("claudenest.sqlite3").display()
    );
    let setup = common::HostAndAgent::start(&url, &[], |_| {}).await;
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
        "/../plugins/target/wasm32-wasip2/release/fs_tools.wasm"
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

    println!("MCP tools/call, {CALLS} calls each after {WARMUP} warm-up, sequential");
    let base = report(
        "direct: rmcp → stdio server-everything echo",
        &mut direct,
        None,
    );
    report(
        "REST floor: GET …/mcp/{name} (no agent)",
        &mut floor,
        Some(base),
    );
    report(
        "API → agent → stdio server-everything echo",
        &mut stdio,
        Some(base),
    );
    report("API → wasm fs-tools list_files", &mut wasm, Some(base));
}
