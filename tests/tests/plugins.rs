//! Plugins: real WebAssembly components built from `plugins/` (wit-bindgen, wasm32-wasip2),
//! installed over HTTP, enabled per machine with grants, and run by the wasmtime host.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use claudenest::{
    domain::plugins,
    plugins::runtime::{Chunk, SummarizeOptions},
};
use claudenest_e2e::{Reply, TestApp, TestDb, on_both_stores, plugin_wasm};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;

async fn install(app: &TestApp, token: &str, component: Vec<u8>) -> Reply {
    let response = app
        .client
        .post(format!("{}/api/plugins", app.base_url))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(component)
        .send()
        .await
        .unwrap();
    claudenest_e2e::into_reply(response).await
}

async fn call_tool(
    app: &TestApp,
    token: &str,
    machine: Uuid,
    plugin: &str,
    tool: &str,
    args: Value,
) -> Reply {
    app.post(
        &format!("/api/machines/{machine}/plugins/{plugin}/tools/{tool}"),
        Some(token),
        args,
    )
    .await
}

fn text_of(reply: &Reply) -> String {
    reply.body["data"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

on_both_stores! {
    async fn example_plugins_install_enable_and_run_within_their_grants(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (user, token) = app.user_with_token("ada@example.com").await;
        let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;

        let component = plugin_wasm("fs_tools");
        let installed = install(&app, &token, component.clone()).await;
        installed.expect(201);
        let data = &installed.body["data"];
        assert_eq!(data["name"], "fs-tools");
        assert_eq!(data["world"], "mcp-adapter");
        assert_eq!(data["api_version"], "0.1.0");
        assert_eq!(data["manifest"]["capabilities"]["filesystem"][0]["name"], "workspace");
        use sha2::Digest as _;
        assert_eq!(data["sha256"], hex::encode(sha2::Sha256::digest(&component)));
        let again = install(&app, &token, component).await;
        again.expect(409);
        assert_eq!(again.error_code(), "PLG_002");
        let junk = install(&app, &token, b"\0asm\x01\0\0\0".to_vec()).await;
        junk.expect(422);
        assert_eq!(junk.error_code(), "PLG_003");
        assert!(junk.body["error"]["message"].as_str().unwrap().contains("core WebAssembly module"), "{}", junk.text);
        let listed = app.get("/api/plugins", Some(&token)).await;
        assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
        let (_, bob) = app.user_with_token("bob@example.com").await;
        let foreign = app.get("/api/plugins/fs-tools", Some(&bob)).await;
        foreign.expect(404);
        assert_eq!(foreign.error_code(), "PLG_001");

        // Not enabled yet.
        let refused = app.get(&format!("/api/machines/{machine}/plugins/fs-tools/tools"), Some(&token)).await;
        refused.expect(404);
        assert_eq!(refused.error_code(), "PLG_005");

        // A directory with a file inside the grant and a secret beside it.
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("workspace");
        std::fs::create_dir_all(workspace.join("docs")).unwrap();
        std::fs::write(workspace.join("docs/notes.md"), "alpha\nthe needle is here\n").unwrap();
        std::fs::write(root.path().join("secret.txt"), "top secret").unwrap();
        let url = format!("/api/machines/{machine}/plugins/fs-tools");
        for (grants, field) in [
            (json!({"filesystem": [{"name": "home", "path": workspace}]}), "grants.filesystem[0].name"),
            (json!({"filesystem": [{"name": "workspace", "path": workspace, "access": "read_write"}]}), "grants.filesystem[0].access"),
            (json!({"filesystem": [{"name": "workspace", "path": "relative/dir"}]}), "grants.filesystem[0].path"),
            (json!({"http": ["example.com"]}), "grants.http[0]"),
        ] {
            let reply = app.call(Method::PUT, &url, Some(&token), Some(json!({"grants": grants}))).await;
            reply.expect(422);
            assert!(reply.body["error"]["errors"][field].is_array(), "{field}: {}", reply.text);
        }
        let enabled = app.call(Method::PUT, &url, Some(&token),
            Some(json!({"grants": {"filesystem": [{"name": "workspace", "path": workspace}]}}))).await;
        enabled.expect(200);
        assert_eq!(enabled.body["data"]["grants"]["filesystem"][0]["access"], "read");
        let on_machine = app.get(&format!("/api/machines/{machine}/plugins"), Some(&token)).await;
        assert_eq!(on_machine.body["data"][0]["plugin"]["name"], "fs-tools");

        let tools = app.get(&format!("{url}/tools"), Some(&token)).await;
        tools.expect(200);
        let names: Vec<&str> = tools.body["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["list_files", "read_file", "search_files"]);
        assert_eq!(tools.body["data"][1]["inputSchema"]["required"][0], "path");

        let listed = call_tool(&app, &token, machine, "fs-tools", "list_files", json!({})).await;
        listed.expect(200);
        assert_eq!(listed.body["data"]["content"][0]["json"], json!(["docs/notes.md"]));
        let read = call_tool(&app, &token, machine, "fs-tools", "read_file", json!({"path": "docs/notes.md"})).await;
        assert_eq!(text_of(&read), "alpha\nthe needle is here\n");
        assert_eq!(read.body["data"]["isError"], false);
        let found = call_tool(&app, &token, machine, "fs-tools", "search_files", json!({"query": "needle"})).await;
        assert_eq!(found.body["data"]["content"][0]["json"][0]["line"], 2);
        // Outside the grant: the sandbox refuses, the tool reports an error.
        let escape = call_tool(&app, &token, machine, "fs-tools", "read_file", json!({"path": "../secret.txt"})).await;
        escape.expect(200);
        assert_eq!(escape.body["data"]["isError"], true, "{}", escape.text);
        assert!(!text_of(&escape).contains("top secret"));
        let unknown = call_tool(&app, &token, machine, "fs-tools", "format_disk", json!({})).await;
        unknown.expect(422);
        assert!(unknown.body["error"]["errors"]["tool"][0].as_str().unwrap().contains("unknown tool"));

        // Disabled: no more calls.
        app.call(Method::DELETE, &url, Some(&token), None).await.expect(200);
        call_tool(&app, &token, machine, "fs-tools", "list_files", json!({})).await.expect(404);

        // The summarizer and the skill processor, through the runtime the API uses.
        for wasm in ["summarizer", "skill_frontmatter"] {
            install(&app, &token, plugin_wasm(wasm)).await.expect(201);
        }
        for name in ["textrank-summarizer", "skill-frontmatter"] {
            app.call(Method::PUT, &format!("/api/machines/{machine}/plugins/{name}"), Some(&token), Some(json!({}))).await.expect(200);
        }
        let runtime = app.state.plugins().await.unwrap();
        let store = app.state.store();
        let ready = plugins::ready(store, runtime, user.id, machine, "textrank-summarizer").await.unwrap();
        let chunk = |content: &str, importance: f32| Chunk {
            content: content.into(),
            chunk_type: "decision".into(),
            importance,
            created_at: "2026-11-28T10:00:00Z".into(),
        };
        let chunks = [
            chunk("We chose PostgreSQL for the task store. PostgreSQL gives us row locks for task claims.", 0.9),
            chunk("The cafeteria serves soup on Fridays.", 0.1),
            chunk("Task claims use SKIP LOCKED in PostgreSQL so claimers never wait.", 0.8),
        ];
        let summary = runtime
            .summarize(&ready.loaded, &ready.grants, &chunks, SummarizeOptions { max_length: 160 })
            .await.unwrap().unwrap();
        assert!(summary.text.contains("PostgreSQL") && !summary.text.contains("soup"), "{}", summary.text);
        assert!(summary.text.chars().count() <= 160);
        assert!(summary.used.contains(&0) && !summary.used.contains(&1));
        assert_eq!(summary.token_estimate as usize, summary.text.chars().count().div_ceil(4));

        let ready = plugins::ready(store, runtime, user.id, machine, "skill-frontmatter").await.unwrap();
        let good = "---\nname: deploy\ndescription: Ships the service\ntags: [ops, release]\nversion: 1.2\n---\nRun the pipeline.\n";
        let processed = runtime.process_skill(&ready.loaded, &ready.grants, "skills/deploy/SKILL.md", good).await.unwrap().unwrap();
        assert_eq!(processed.metadata.name, "deploy");
        assert_eq!(processed.metadata.tags, ["ops", "release"]);
        assert_eq!(processed.metadata.version.as_deref(), Some("1.2"));
        assert!(processed.warnings.is_empty(), "{:?}", processed.warnings);
        let rejected = runtime.process_skill(&ready.loaded, &ready.grants, "skills/x/SKILL.md", "---\nname: Bad Name\ndescription: x\n---\n").await.unwrap();
        assert!(rejected.unwrap_err().contains("lowercase"));
    }
}

/// A loopback HTTP server answering `hello`, counting connections.
async fn http_stub() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    (port, hits)
}

#[tokio::test]
async fn hostile_plugins_are_contained_and_the_host_keeps_serving() {
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    // This test's runtime has one thread, and the server runs on it: the health check below
    // is answered during the spin because plugin calls run on the plugin executor's threads.
    let app = TestApp::spawn_with(db, |c| c.plugins.call_timeout_ms = 3000).await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
    install(&app, &token, plugin_wasm("hostile"))
        .await
        .expect(201);
    let workspace = tempfile::tempdir().unwrap();
    let (granted_port, granted_hits) = http_stub().await;
    let (other_port, other_hits) = http_stub().await;
    app.call(Method::PUT, &format!("/api/machines/{machine}/plugins/hostile"), Some(&token), Some(json!({
        "config": {"greeting": "hi"},
        "grants": {"filesystem": [{"name": "workspace", "path": workspace.path()}], "http": [format!("127.0.0.1:{granted_port}")]},
    }))).await.expect(200);

    let healthy = async || {
        let echo = call_tool(&app, &token, machine, "hostile", "echo", json!({"n": 1})).await;
        echo.expect(200);
        assert_eq!(text_of(&echo), r#"{"n":1}"#);
    };
    let contained = async |tool: &str, args: Value, reason: &str| {
        let reply = call_tool(&app, &token, machine, "hostile", tool, args).await;
        reply.expect(502);
        assert_eq!(reply.error_code(), "PLG_004");
        let message = reply.body["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(reason), "{tool}: {message}");
        healthy().await;
    };

    // A spinning plugin is stopped at its deadline, and the host answers meanwhile.
    let started = Instant::now();
    let (spun, health) = tokio::join!(
        call_tool(&app, &token, machine, "hostile", "spin", json!({})),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let t = Instant::now();
            app.get("/api/health", None).await.expect(200);
            t.elapsed()
        }
    );
    spun.expect(502);
    assert!(
        spun.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{}",
        spun.text
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // Blocked, it would have waited for the 3 s deadline.
    assert!(
        health < Duration::from_millis(1500),
        "health took {health:?} during the spin"
    );
    healthy().await;

    contained("alloc", json!({}), "memory limit").await;
    contained("recurse", json!({}), "stack").await;
    contained("flood", json!({"mib": 100}), "memory limit").await;
    contained("flood", json!({"mib": 4}), "bytes").await;
    contained("trap", json!({}), "trapped").await;

    // Log floods are cut, not fatal.
    let logged = call_tool(&app, &token, machine, "hostile", "log_flood", json!({})).await;
    logged.expect(200);

    // Filesystem: nothing outside the grant, nothing written to a read-only grant.
    for path in ["/etc/passwd", "/workspace/../../../etc/passwd"] {
        let escape = call_tool(
            &app,
            &token,
            machine,
            "hostile",
            "escape",
            json!({"path": path}),
        )
        .await;
        assert_eq!(
            escape.body["data"]["isError"], true,
            "{path}: {}",
            escape.text
        );
        assert!(!text_of(&escape).contains("root:"));
    }
    let write = call_tool(
        &app,
        &token,
        machine,
        "hostile",
        "write",
        json!({"path": "/workspace/new.txt"}),
    )
    .await;
    assert_eq!(write.body["data"]["isError"], true, "{}", write.text);
    assert!(!workspace.path().join("new.txt").exists());

    // HTTP: the granted host answers; another one is refused before any connection.
    let fetched = call_tool(
        &app,
        &token,
        machine,
        "hostile",
        "fetch",
        json!({"url": format!("http://127.0.0.1:{granted_port}/")}),
    )
    .await;
    assert_eq!(text_of(&fetched), "200 hello", "{}", fetched.text);
    assert_eq!(granted_hits.load(Ordering::SeqCst), 1);
    let refused = call_tool(
        &app,
        &token,
        machine,
        "hostile",
        "fetch",
        json!({"url": format!("http://127.0.0.1:{other_port}/")}),
    )
    .await;
    assert_eq!(refused.body["data"]["isError"], true);
    assert!(
        text_of(&refused).contains("not granted"),
        "{}",
        refused.text
    );
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);

    // Config values reach the plugin.
    let config = call_tool(
        &app,
        &token,
        machine,
        "hostile",
        "config",
        json!({"key": "greeting"}),
    )
    .await;
    assert_eq!(text_of(&config), "hi");
    healthy().await;
}

#[tokio::test]
async fn the_cli_inspects_and_installs_components() {
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::spawn(db).await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("summarizer.wasm");
    std::fs::write(&file, plugin_wasm("summarizer")).unwrap();
    // The server runs on this test's runtime: the CLI runs as an async child.
    let run = async |args: &[&str]| {
        tokio::process::Command::new(claudenest_e2e::claudenest_binary())
            .args(args)
            .env("CLAUDENEST_TOKEN", &token)
            .env("CLAUDENEST_SERVER", &app.base_url)
            .output()
            .await
            .unwrap()
    };
    let inspected = run(&["plugin", "inspect", file.to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&inspected.stdout);
    assert!(inspected.status.success(), "{text}");
    assert!(
        text.contains("world:        summarizer")
            && text.contains("claudenest:plugin/summarize@0.1.0"),
        "{text}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let rejected = run(&["plugin", "inspect", junk.to_str().unwrap()]).await;
    assert!(!rejected.status.success());
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("not a WebAssembly component"));
    let installed = run(&["plugin", "install", file.to_str().unwrap()]).await;
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stdout)
    );
    let listed = app
        .get("/api/plugins/textrank-summarizer", Some(&token))
        .await;
    listed.expect(200);
}

/// A component from another language: a Python skill processor built with componentize-py
/// (plugins/python-skill/build.sh, run by scripts/test.sh), its manifest added as
/// `claudenest plugin pack` does.
#[tokio::test]
async fn a_python_component_runs_like_a_rust_one() {
    use claudenest::plugins::manifest::{Manifest, append_manifest};
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::spawn(db).await;
    let (user, token) = app.user_with_token("ada@example.com").await;
    let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let component = std::fs::read(root.join("target/python/python_skill.wasm"))
        .expect("build it first: plugins/python-skill/build.sh (scripts/test.sh does)");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(root.join("python-skill/manifest.json")).unwrap())
            .unwrap();
    let unpacked = install(&app, &token, component.clone()).await;
    unpacked.expect(422);
    assert!(
        unpacked.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no `claudenest:manifest`")
    );
    let installed = install(&app, &token, append_manifest(&component, &manifest)).await;
    installed.expect(201);
    assert_eq!(installed.body["data"]["world"], "skill-processor");
    app.call(
        Method::PUT,
        &format!("/api/machines/{machine}/plugins/python-skill"),
        Some(&token),
        Some(json!({})),
    )
    .await
    .expect(200);

    let runtime = app.state.plugins().await.unwrap();
    let ready = plugins::ready(app.state.store(), runtime, user.id, machine, "python-skill")
        .await
        .unwrap();
    let skill = "---\nname: deploy\ndescription: Ships it\ntags: [ops]\nowner: ada\n---\nSteps.\n";
    let processed = runtime
        .process_skill(
            &ready.loaded,
            &ready.grants,
            "skills/deploy/SKILL.md",
            skill,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(processed.metadata.name, "deploy");
    assert_eq!(processed.metadata.tags, ["ops"]);
    assert_eq!(
        processed.metadata.extra,
        [("owner".to_owned(), "ada".to_owned())]
    );
    assert_eq!(processed.warnings, ["checked by python-skill"]);
    let untagged = "---\nname: deploy\ndescription: Ships it\n---\n";
    let rejected = runtime
        .process_skill(&ready.loaded, &ready.grants, "SKILL.md", untagged)
        .await
        .unwrap();
    assert!(rejected.unwrap_err().contains("house rule"));
}
