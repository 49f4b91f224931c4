//! MCP servers (API §10) run by a real agent process: the reference servers from npm
//! (`@modelcontextprotocol/server-everything`, `server-filesystem`, installed in tests/mcp by
//! `.ci/run`) and `mcp-server-time` from PyPI, plus a wasm-backed server from the example
//! mcp-adapter plugin — all through the same endpoints, on both stores.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use claudenest_e2e::{AgentProcess, Reply, TestApp, fast_links, on_both_stores, plugin_wasm};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// `tests/mcp/node_modules/@modelcontextprotocol/<name>/dist/index.js`.
fn npm_server(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mcp/node_modules/@modelcontextprotocol")
        .join(name)
        .join("dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp` (.ci/run does)",
        path.display()
    );
    path
}

/// The server's entry under a path unique to this test, so `pgrep -f` finds only its process.
fn unique_entry(dir: &Path, name: &str) -> String {
    let link = dir.join(format!("{name}-{}.js", Uuid::now_v7().simple()));
    std::os::unix::fs::symlink(npm_server(name), &link).unwrap();
    link.to_str().unwrap().to_owned()
}

fn pids_of(pattern: &str) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A user with a machine whose agent is running (and linked).
async fn machine_with_agent(app: &TestApp) -> (String, Uuid, String, AgentProcess) {
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
    let agent = AgentProcess::start(app, &machine_token, &[]);
    app.wait_for_status(&token, machine, "online", Duration::from_secs(15))
        .await;
    (token, machine, machine_token, agent)
}

async fn server_status(app: &TestApp, token: &str, machine: Uuid, name: &str) -> Value {
    let reply = app
        .get(&format!("/api/machines/{machine}/mcp/{name}"), Some(token))
        .await;
    reply.expect(200);
    reply.body["data"].clone()
}

/// Polls the server until `check` holds.
async fn wait_for_server(
    app: &TestApp,
    token: &str,
    machine: Uuid,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = server_status(app, token, machine, name).await;
        if check(&data) {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {what}: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn execute(
    app: &TestApp,
    token: &str,
    machine: Uuid,
    name: &str,
    tool: &str,
    parameters: Value,
) -> Reply {
    app.post(
        &format!("/api/machines/{machine}/mcp/{name}/execute"),
        Some(token),
        json!({"tool": tool, "parameters": parameters}),
    )
    .await
}

fn tool_names(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

on_both_stores! {
    async fn stdio_servers_start_list_execute_crash_restart_and_stop(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _, _agent) = machine_with_agent(&app).await;
        let dir = tempfile::tempdir().unwrap();
        let entry = unique_entry(dir.path(), "server-everything");
        let base = format!("/api/machines/{machine}/mcp");

        // Add: env is write-only.
        let added = app
            .post(&base, Some(&token), json!({
                "name": "everything",
                "display_name": "Everything",
                "command": "node",
                "args": [entry, "stdio"],
                "env": {"CLAUDENEST_TEST_SECRET": "s3cret-value"},
            }))
            .await;
        added.expect(201);
        assert_eq!(added.body["data"]["transport"], "stdio");
        assert_eq!(added.body["data"]["status"], "stopped");
        assert_eq!(added.body["data"]["env_keys"], json!(["CLAUDENEST_TEST_SECRET"]));
        assert!(!added.text.contains("s3cret-value"), "{}", added.text);
        // Sealed in the database: someone who reads it does not read the value.
        let stored = app.state.store().mcp_server(machine, "everything").await.unwrap().unwrap();
        let value = &stored.env.0["CLAUDENEST_TEST_SECRET"];
        assert!(value.starts_with("enc1:") && !value.contains("s3cret"), "{value}");
        let dup = app.post(&base, Some(&token), json!({"name": "everything", "command": "node"})).await;
        dup.expect(422);
        assert!(dup.body["error"]["errors"]["name"].is_array());
        let bad = app.post(&base, Some(&token), json!({"name": "Bad Name!", "command": "node"})).await;
        bad.expect(422);
        assert_eq!(bad.error_code(), "VAL_001");
        let no_url = app.post(&base, Some(&token), json!({"name": "web", "transport": "http", "url": "ftp://x"})).await;
        no_url.expect(422);
        assert!(no_url.body["error"]["errors"]["url"].is_array(), "{}", no_url.text);
        let bad_env = app.post(&base, Some(&token), json!({"name": "e2", "command": "node", "env": {"1BAD": "x"}})).await;
        bad_env.expect(422);

        // Start: the tools come from the server itself.
        let started = app.post(&format!("{base}/everything/start"), Some(&token), json!({})).await;
        started.expect(200);
        assert_eq!(started.body["data"]["status"], "running", "{}", started.text);
        assert!(started.body["data"]["tools_count"].as_u64().unwrap() >= 10, "{}", started.text);
        assert!(started.body["data"]["last_started_at"].is_string());
        let tools = app.get(&format!("{base}/everything/tools"), Some(&token)).await;
        tools.expect(200);
        let names = tool_names(&tools);
        assert!(names.contains(&"echo".to_owned()) && names.contains(&"get-sum".to_owned()), "{names:?}");
        let echo = tools.body["data"].as_array().unwrap().iter().find(|t| t["name"] == "echo").unwrap();
        assert_eq!(echo["parameters"]["type"], "object");
        assert!(echo["parameters"]["properties"]["message"].is_object(), "{echo}");

        // Execute.
        let said = execute(&app, &token, machine, "everything", "echo", json!({"message": "hello there"})).await;
        said.expect(200);
        assert_eq!(said.body["data"]["mimeType"], "text/plain");
        assert!(said.body["data"]["content"].as_str().unwrap().contains("hello there"), "{}", said.text);
        let sum = execute(&app, &token, machine, "everything", "get-sum", json!({"a": 2, "b": 40})).await;
        sum.expect(200);
        assert!(sum.body["data"]["content"].as_str().unwrap().contains("42"), "{}", sum.text);
        let weather = execute(&app, &token, machine, "everything", "get-structured-content", json!({"location": "Chicago"})).await;
        weather.expect(200);
        assert_eq!(weather.body["data"]["structuredContent"]["temperature"], 36, "{}", weather.text);
        let env = execute(&app, &token, machine, "everything", "get-env", json!({})).await;
        env.expect(200);
        assert!(env.body["data"]["content"].as_str().unwrap().contains("s3cret-value"), "the server gets its env");
        let unknown = execute(&app, &token, machine, "everything", "no-such-tool", json!({})).await;
        assert_eq!(unknown.error_code(), "MCP_003", "{}", unknown.text);
        assert!(unknown.body["error"]["message"].as_str().unwrap().contains("no-such-tool"), "{}", unknown.text);
        let bad_args = execute(&app, &token, machine, "everything", "get-sum", json!({"a": "two"})).await;
        assert_eq!(bad_args.error_code(), "MCP_003", "{}", bad_args.text);

        // A call past its timeout is MCP_003, and the server keeps serving.
        let slow = app
            .post(
                &format!("{base}/everything/execute"),
                Some(&token),
                json!({"tool": "trigger-long-running-operation", "parameters": {"duration": 5, "steps": 5}, "timeout_ms": 300}),
            )
            .await;
        assert_eq!(slow.error_code(), "MCP_003", "{}", slow.text);
        assert!(slow.body["error"]["message"].as_str().unwrap().contains("300 ms"), "{}", slow.text);
        execute(&app, &token, machine, "everything", "echo", json!({"message": "still here"})).await.expect(200);

        // All tools, qualified by server.
        let all = app.get(&format!("{base}/all-tools"), Some(&token)).await;
        all.expect(200);
        assert!(all.body["data"].as_array().unwrap().iter().any(|t| t["qualified_name"] == "everything__echo" && t["server"] == "everything"));

        // A crash: the agent restarts it and the tools work again.
        let pids = pids_of(&entry);
        assert_eq!(pids.len(), 1, "one server process: {pids:?}");
        std::process::Command::new("kill").args(["-KILL", &pids[0].to_string()]).status().unwrap();
        wait_for_server(&app, &token, machine, "everything", "restarting", |d| d["status"] != "running").await;
        let back = wait_for_server(&app, &token, machine, "everything", "running again", |d| d["status"] == "running").await;
        assert!(back["last_error"].is_null(), "{back}");
        let new_pids = pids_of(&entry);
        assert_eq!(new_pids.len(), 1);
        assert_ne!(new_pids, pids, "a new process");
        let again = execute(&app, &token, machine, "everything", "echo", json!({"message": "after the crash"})).await;
        again.expect(200);

        // Stop: the process (group) is gone.
        let stopped = app.post(&format!("{base}/everything/stop"), Some(&token), json!({})).await;
        stopped.expect(200);
        assert_eq!(stopped.body["data"]["status"], "stopped");
        assert!(pids_of(&entry).is_empty(), "the server process ended");
        let not_running = execute(&app, &token, machine, "everything", "echo", json!({"message": "x"})).await;
        not_running.expect(422);
        let none = app.get(&format!("{base}/all-tools"), Some(&token)).await;
        assert_eq!(none.body["data"], json!([]));

        // A server that cannot start: MCP_002 with its own words.
        let broken = app.post(&base, Some(&token), json!({
            "name": "broken", "command": "node",
            "args": ["-e", "console.error('boom: no config file at /etc/broken.toml'); process.exit(3)"],
        })).await;
        broken.expect(201);
        let failed = app.post(&format!("{base}/broken/start"), Some(&token), json!({})).await;
        failed.expect(500);
        assert_eq!(failed.error_code(), "MCP_002");
        assert!(failed.body["error"]["message"].as_str().unwrap().contains("no config file at /etc/broken.toml"), "{}", failed.text);
        let state = server_status(&app, &token, machine, "broken").await;
        assert_eq!(state["status"], "error");
        assert!(state["last_error"].as_str().unwrap().contains("boom"));

        // Ownership and deletion.
        let (_, other) = app.user_with_token("eve@example.com").await;
        let theirs = app.get(&base, Some(&other)).await;
        theirs.expect(404);
        assert_eq!(theirs.error_code(), "MCH_001");
        let gone = app.call(Method::DELETE, &format!("{base}/everything"), Some(&token), None).await;
        gone.expect(200);
        let missing = app.get(&format!("{base}/everything"), Some(&token)).await;
        missing.expect(404);
        assert_eq!(missing.error_code(), "MCP_001");
    }

    async fn python_and_filesystem_servers_and_is_error_mapping(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, machine_token, mut agent) = machine_with_agent(&app).await;
        let base = format!("/api/machines/{machine}/mcp");
        let files = tempfile::tempdir().unwrap();
        let root = files.path().canonicalize().unwrap();
        std::fs::write(root.join("hello.txt"), "hello from the filesystem").unwrap();

        // mcp-server-time (PyPI), auto-started whenever the agent links.
        let time = app.post(&base, Some(&token), json!({
            "name": "time", "command": "mcp-server-time", "args": ["--local-timezone", "UTC"],
            "auto_start": true,
        })).await;
        time.expect(201);
        let started = app.post(&format!("{base}/time/start"), Some(&token), json!({})).await;
        started.expect(200);
        let tools = app.get(&format!("{base}/time/tools"), Some(&token)).await;
        assert!(tool_names(&tools).contains(&"get_current_time".to_owned()), "{}", tools.text);
        let now = execute(&app, &token, machine, "time", "get_current_time", json!({"timezone": "UTC"})).await;
        now.expect(200);
        assert!(now.body["data"]["content"].as_str().unwrap().contains("UTC"), "{}", now.text);
        let bad_zone = execute(&app, &token, machine, "time", "get_current_time", json!({"timezone": "Mars/Olympus"})).await;
        assert_eq!(bad_zone.error_code(), "MCP_003", "{}", bad_zone.text);

        // server-filesystem (npm), a legacy-era server: reading works, a refused read is isError.
        let fs = app.post(&base, Some(&token), json!({
            "name": "files", "command": "node",
            "args": [npm_server("server-filesystem").to_str().unwrap(), root.to_str().unwrap()],
        })).await;
        fs.expect(201);
        app.post(&format!("{base}/files/start"), Some(&token), json!({})).await.expect(200);
        let read = execute(&app, &token, machine, "files", "read_text_file", json!({"path": root.join("hello.txt")})).await;
        read.expect(200);
        assert_eq!(read.body["data"]["content"], "hello from the filesystem");
        let outside = execute(&app, &token, machine, "files", "read_text_file", json!({"path": "/etc/hostname"})).await;
        outside.expect(500);
        assert_eq!(outside.error_code(), "MCP_003");
        let message = outside.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("denied") || message.contains("outside"), "the tool's own message: {message}");

        // The agent restarts: the auto-start server (and the one that was running) come back.
        agent.kill();
        app.wait_for_status(&token, machine, "offline", Duration::from_secs(15)).await;
        wait_for_server(&app, &token, machine, "time", "offline", |d| d["status"] == "offline").await;
        let offline = app.post(&format!("{base}/time/start"), Some(&token), json!({})).await;
        offline.expect(400);
        assert_eq!(offline.error_code(), "MCH_002");
        let _agent = AgentProcess::start(&app, &machine_token, &[]);
        app.wait_for_status(&token, machine, "online", Duration::from_secs(15)).await;
        wait_for_server(&app, &token, machine, "time", "running", |d| d["status"] == "running").await;
        let again = execute(&app, &token, machine, "time", "get_current_time", json!({"timezone": "UTC"})).await;
        again.expect(200);
        wait_for_server(&app, &token, machine, "files", "running", |d| d["status"] == "running").await;
    }

    async fn a_wasm_server_from_the_example_plugin_answers_the_same_endpoints(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(workspace.path().join("notes.md"), "# Notes\nwasm-backed").unwrap();
        // The plugin runs on the machine's agent, mounting only under the roots it allows.
        let mut agent = AgentProcess::start(&app, &machine_token, &["--plugin-root", workspace.path().to_str().unwrap()]);
        app.wait_for_status(&token, machine, "online", Duration::from_secs(15)).await;
        let installed = app
            .client
            .post(format!("{}/api/plugins", app.base_url))
            .bearer_auth(&token)
            .header("content-type", "application/wasm")
            .body(plugin_wasm("fs_tools"))
            .send()
            .await
            .unwrap();
        assert_eq!(installed.status(), 201);
        let base = format!("/api/machines/{machine}/mcp");
        // Not an mcp-adapter (or not installed): refused.
        let unknown = app.post(&base, Some(&token), json!({"name": "ws", "transport": "wasm", "plugin": "nope"})).await;
        unknown.expect(422);
        assert!(unknown.body["error"]["errors"]["plugin"].is_array());
        app.post(&base, Some(&token), json!({"name": "ws", "transport": "wasm", "plugin": "fs-tools"}))
            .await
            .expect(201);
        // Not enabled on the machine yet: the start fails with the reason.
        let not_enabled = app.post(&format!("{base}/ws/start"), Some(&token), json!({})).await;
        assert_eq!(not_enabled.error_code(), "MCP_002", "{}", not_enabled.text);
        app.call(
            Method::PUT,
            &format!("/api/machines/{machine}/plugins/fs-tools"),
            Some(&token),
            Some(json!({"grants": {"filesystem": [{"name": "workspace", "path": workspace.path(), "access": "read"}]}})),
        )
        .await
        .expect(200);
        let started = app.post(&format!("{base}/ws/start"), Some(&token), json!({})).await;
        started.expect(200);
        assert_eq!(started.body["data"]["status"], "running");
        let tools = app.get(&format!("{base}/ws/tools"), Some(&token)).await;
        assert_eq!(tool_names(&tools), ["list_files", "read_file", "search_files"]);
        let read = execute(&app, &token, machine, "ws", "read_file", json!({"path": "notes.md"})).await;
        read.expect(200);
        assert!(read.body["data"]["content"].as_str().unwrap().contains("wasm-backed"), "{}", read.text);
        let all = app.get(&format!("{base}/all-tools"), Some(&token)).await;
        assert!(all.body["data"].as_array().unwrap().iter().any(|t| t["qualified_name"] == "ws__read_file"));
        // Offline, a call answers MCH_002 at once.
        agent.kill();
        app.wait_for_status(&token, machine, "offline", Duration::from_secs(15)).await;
        let offline = execute(&app, &token, machine, "ws", "read_file", json!({"path": "notes.md"})).await;
        offline.expect(400);
        assert_eq!(offline.error_code(), "MCH_002", "{}", offline.text);
        app.post(&format!("{base}/ws/stop"), Some(&token), json!({})).await.expect(200);
        assert_eq!(server_status(&app, &token, machine, "ws").await["status"], "stopped");
    }

    async fn an_http_server_is_reached_by_the_agent(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _, _agent) = machine_with_agent(&app).await;
        let port = claudenest_e2e::free_port();
        // server-everything in its Streamable HTTP mode, on loopback.
        let mut server = std::process::Command::new("node")
            .arg(npm_server("server-everything"))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server-everything did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let base = format!("/api/machines/{machine}/mcp");
        let added = app.post(&base, Some(&token), json!({"name": "remote", "url": format!("http://127.0.0.1:{port}/mcp")})).await;
        added.expect(201);
        assert_eq!(added.body["data"]["transport"], "http");
        let started = app.post(&format!("{base}/remote/start"), Some(&token), json!({})).await;
        started.expect(200);
        assert!(started.body["data"]["tools_count"].as_u64().unwrap() >= 10, "{}", started.text);
        let said = execute(&app, &token, machine, "remote", "echo", json!({"message": "over http"})).await;
        said.expect(200);
        assert!(said.body["data"]["content"].as_str().unwrap().contains("over http"), "{}", said.text);
        app.post(&format!("{base}/remote/stop"), Some(&token), json!({})).await.expect(200);
        let _ = server.kill();
        let _ = server.wait();
        // Nothing listens there now: a bad gateway, said plainly (no library type names).
        let gone = app.post(&format!("{base}/remote/start"), Some(&token), json!({})).await;
        gone.expect(502);
        assert_eq!(gone.error_code(), "MCP_004", "{}", gone.text);
        let message = gone.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("could not reach the MCP server at http://127.0.0.1:{port}/mcp: ")), "{message}");
        assert!(!message.contains("::") && !message.contains("Error {") && !message.contains("Error("), "{message}");
        let status = server_status(&app, &token, machine, "remote").await;
        assert_eq!(status["status"], "error", "{status}");
    }

    async fn a_changed_tool_list_reaches_the_api(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _, _agent) = machine_with_agent(&app).await;
        let base = format!("/api/machines/{machine}/mcp");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/mcp/growing_server.py");
        app.post(&base, Some(&token), json!({"name": "growing", "command": "python3", "args": [script]}))
            .await
            .expect(201);
        app.post(&format!("{base}/growing/start"), Some(&token), json!({})).await.expect(200);
        let tools = app.get(&format!("{base}/growing/tools"), Some(&token)).await;
        assert_eq!(tool_names(&tools), ["grow"]);
        let grown = execute(&app, &token, machine, "growing", "grow", json!({"name": "fresh"})).await;
        grown.expect(200);
        // notifications/tools/list_changed → the agent re-reads the list → the API has it.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let tools = app.get(&format!("{base}/growing/tools"), Some(&token)).await;
            if tool_names(&tools).contains(&"fresh".to_owned()) {
                break;
            }
            assert!(Instant::now() < deadline, "the new tool never showed: {}", tools.text);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let fresh = execute(&app, &token, machine, "growing", "fresh", json!({})).await;
        fresh.expect(200);
        assert!(fresh.body["data"]["content"].as_str().unwrap().contains("I am fresh"), "{}", fresh.text);
    }
}
