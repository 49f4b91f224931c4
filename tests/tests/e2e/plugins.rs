//! Plugins: real WebAssembly components built from `plugins/` (wit-bindgen, wasm32-wasip2),
//! installed over HTTP and enabled per machine with grants. mcp-adapters run on a real agent
//! process (`claudenest agent --plugin-root …`), summarizers and skill processors in the host.
//! Every attack of issue 16 is reproduced here and shown refused.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use claudenest::{
    domain::plugins,
    plugins::{
        manifest::{Manifest, append_manifest},
        runtime::{Chunk, PluginRuntime, SummarizeOptions},
    },
};
use claudenest_e2e::{
    AgentProcess, Reply, TestApp, TestDb, fast_links, on_both_stores, plugin_wasm,
};
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

async fn enable(app: &TestApp, token: &str, machine: Uuid, plugin: &str, body: Value) -> Reply {
    app.call(
        Method::PUT,
        &format!("/api/machines/{machine}/plugins/{plugin}"),
        Some(token),
        Some(body),
    )
    .await
}

fn text_of(reply: &Reply) -> String {
    reply.body["data"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn field_error(reply: &Reply, field: &str) -> String {
    reply.body["error"]["errors"][field][0]
        .as_str()
        .unwrap_or_else(|| panic!("no error for {field}: {}", reply.text))
        .to_owned()
}

/// The Python skill processor (plugins/python-skill, built by scripts/test.sh) with `manifest`
/// changed by `edit`, packed as `claudenest plugin pack` does.
fn python_skill(edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let component = std::fs::read(root.join("target/python/python_skill.wasm"))
        .expect("build it first: plugins/python-skill/build.sh (scripts/test.sh does)");
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(root.join("python-skill/manifest.json")).unwrap())
            .unwrap();
    edit(&mut manifest);
    append_manifest(&component, &manifest)
}

/// `plugins/bare-skill` (the frontmatter rules, no embedded manifest) packed with a manifest
/// changed by `edit`: new versions and capabilities without compiling anything large.
fn bare_skill(edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let mut manifest: Manifest = serde_json::from_value(json!({
        "name": "bare-skill", "version": "0.1.0", "world": "skill-processor",
        "api_version": "0.1.0", "description": "SKILL.md frontmatter rules, packed by the tests",
    }))
    .unwrap();
    edit(&mut manifest);
    append_manifest(&plugin_wasm("bare_skill"), &manifest)
}

/// A user, a machine, and its agent allowing plugin mounts under `root` (its data directory
/// inside `root` too, to show it can never be granted).
async fn machine_with_agent(
    app: &TestApp,
    email: &str,
    root: &Path,
    extra: &[&str],
) -> (String, Uuid, AgentProcess) {
    let (_, token) = app.user_with_token(email).await;
    let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
    let data = root.join("agent-data");
    let mut args = vec![
        "--plugin-root",
        root.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let agent = AgentProcess::start(app, &machine_token, &args);
    app.wait_for_status(&token, machine, "online", Duration::from_secs(15))
        .await;
    (token, machine, agent)
}

on_both_stores! {
    async fn example_plugins_install_enable_and_run_where_they_belong(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        // A root the machine's owner allows, a workspace inside it, a secret beside it.
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("workspace");
        std::fs::create_dir_all(workspace.join("docs")).unwrap();
        std::fs::write(workspace.join("docs/notes.md"), "alpha\nthe needle is here\n").unwrap();
        std::fs::write(root.path().join("secret.txt"), "top secret").unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("etc-link")).unwrap();
        let (token, machine, mut agent) = machine_with_agent(&app, "ada@example.com", root.path(), &[]).await;
        let user = app.state.store().user_by_email("ada@example.com").await.unwrap().unwrap();

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

        // Grants are checked against the manifest, then on the machine against its owner's
        // roots: `/`, a symlink out of the root, and the agent's own data are refused.
        let agent_data = root.path().join("agent-data");
        std::fs::create_dir_all(&agent_data).unwrap();
        for (grants, field, reason) in [
            (json!({"filesystem": [{"name": "home", "path": workspace}]}), "grants.filesystem[0].name", "does not request"),
            (json!({"filesystem": [{"name": "workspace", "path": workspace, "access": "read_write"}]}), "grants.filesystem[0].access", "read access only"),
            (json!({"filesystem": [{"name": "workspace", "path": "relative/dir"}]}), "grants.filesystem[0].path", "absolute"),
            (json!({"http": ["example.com"]}), "grants.http[0]", "does not request"),
            (json!({"filesystem": [{"name": "workspace", "path": "/"}]}), "grants.filesystem[0].path", "outside the roots"),
            (json!({"filesystem": [{"name": "workspace", "path": root.path().join("etc-link")}]}), "grants.filesystem[0].path", "outside the roots"),
            (json!({"filesystem": [{"name": "workspace", "path": root.path()}]}), "grants.filesystem[0].path", "agent's own data"),
            (json!({"filesystem": [{"name": "workspace", "path": agent_data}]}), "grants.filesystem[0].path", "agent's own data"),
        ] {
            let reply = enable(&app, &token, machine, "fs-tools", json!({"grants": grants})).await;
            reply.expect(422);
            let message = field_error(&reply, field);
            assert!(message.contains(reason), "{field}: {message}");
        }
        let enabled = enable(&app, &token, machine, "fs-tools",
            json!({"grants": {"filesystem": [{"name": "workspace", "path": workspace}]}})).await;
        enabled.expect(200);
        assert_eq!(enabled.body["data"]["grants"]["filesystem"][0]["access"], "read");
        let on_machine = app.get(&format!("/api/machines/{machine}/plugins"), Some(&token)).await;
        assert_eq!(on_machine.body["data"][0]["plugin"]["name"], "fs-tools");

        // The tools run on the agent and see the machine's workspace.
        let url = format!("/api/machines/{machine}/plugins/fs-tools");
        let tools = app.get(&format!("{url}/tools"), Some(&token)).await;
        tools.expect(200);
        let names: Vec<&str> = tools.body["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["list_files", "read_file", "search_files"]);
        assert_eq!(tools.body["data"][1]["inputSchema"]["required"][0], "path");
        assert!(agent_data.join("plugin-cache").read_dir().unwrap().next().is_some(), "the agent compiled it into its own cache");

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

        // The machine goes offline: calls and grant changes answer MCH_002, not a hang.
        agent.kill();
        app.wait_for_status(&token, machine, "offline", Duration::from_secs(15)).await;
        let offline = call_tool(&app, &token, machine, "fs-tools", "list_files", json!({})).await;
        offline.expect(400);
        assert_eq!(offline.error_code(), "MCH_002");
        let offline = enable(&app, &token, machine, "fs-tools",
            json!({"grants": {"filesystem": [{"name": "workspace", "path": workspace}]}})).await;
        offline.expect(400);
        assert_eq!(offline.error_code(), "MCH_002");

        // Disabled: no more calls.
        app.call(Method::DELETE, &url, Some(&token), None).await.expect(200);
        call_tool(&app, &token, machine, "fs-tools", "list_files", json!({})).await.expect(404);

        // The summarizer and the skill processor run in the host (no grants: no agent needed).
        for wasm in ["summarizer", "skill_frontmatter"] {
            install(&app, &token, plugin_wasm(wasm)).await.expect(201);
        }
        for name in ["textrank-summarizer", "skill-frontmatter"] {
            enable(&app, &token, machine, name, json!({})).await.expect(200);
        }
        let no_tools = app.get(&format!("/api/machines/{machine}/plugins/textrank-summarizer/tools"), Some(&token)).await;
        no_tools.expect(422);
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

        // Deleting a plugin drops its compiled code from memory and disk.
        let sha = PluginRuntime::sha256(&plugin_wasm("summarizer"));
        let cached = runtime.cache_path(&sha).unwrap();
        assert!(cached.exists());
        app.call(Method::DELETE, "/api/plugins/textrank-summarizer", Some(&token), None).await.expect(200);
        assert!(runtime.get(&sha).is_none());
        assert!(!cached.exists());
    }

    async fn a_new_version_installs_in_place(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (user, token) = app.user_with_token("ada@example.com").await;
        let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
        let (other, _) = app.register_machine(&token, json!({"name": "other"})).await;
        let v1 = bare_skill(|_| {});
        install(&app, &token, v1.clone()).await.expect(201);
        for m in [machine, other] {
            enable(&app, &token, m, "bare-skill", json!({"config": {"team": "ops"}})).await.expect(200);
        }
        let running = async |m: Uuid| {
            let reply = app.get(&format!("/api/machines/{m}/plugins"), Some(&token)).await;
            reply.expect(200);
            reply.body["data"][0].clone()
        };
        let runtime = app.state.plugins().await.unwrap();
        let loaded_sha = async |m: Uuid| {
            plugins::ready(app.state.store(), runtime, user.id, m, "bare-skill").await.unwrap().loaded.sha256.clone()
        };

        // The same capabilities: every machine moves, its config and grants kept.
        let v2 = bare_skill(|m| m.version = "0.2.0".into());
        let upgraded = install(&app, &token, v2.clone()).await;
        upgraded.expect(200);
        let upgrade = &upgraded.body["data"]["upgrade"];
        assert_eq!(upgrade["from_version"], "0.1.0");
        assert_eq!(upgrade["machines_moved"].as_array().unwrap().len(), 2, "{}", upgraded.text);
        assert_eq!(upgrade["machines_kept"], json!([]));
        let now = running(machine).await;
        assert_eq!(now["running_version"], "0.2.0");
        assert_eq!(now["upgrade_pending"], false);
        assert_eq!(now["config"]["team"], "ops");
        assert_eq!(loaded_sha(machine).await, PluginRuntime::sha256(&v2));
        assert_eq!(app.get("/api/plugins", Some(&token)).await.body["data"].as_array().unwrap().len(), 1);

        // It asks for more (an HTTP host): the machines stay on 0.2.0 until granted again.
        let v3 = bare_skill(|m| {
            m.version = "0.3.0".into();
            m.capabilities.http = vec!["api.example.com".into()];
        });
        let upgraded = install(&app, &token, v3.clone()).await;
        upgraded.expect(200);
        assert_eq!(upgraded.body["data"]["upgrade"]["machines_kept"].as_array().unwrap().len(), 2);
        assert_eq!(app.get("/api/plugins/bare-skill", Some(&token)).await.body["data"]["version"], "0.3.0");
        let kept = running(machine).await;
        assert_eq!(kept["running_version"], "0.2.0");
        assert_eq!(kept["running_sha256"], PluginRuntime::sha256(&v2));
        assert_eq!(kept["upgrade_pending"], true);
        assert_eq!(loaded_sha(machine).await, PluginRuntime::sha256(&v2));
        // Skills on that machine still go through the version it runs.
        let skill = "---\nname: deploy\ndescription: Ships it\ntags: [ops]\n---\nSteps.\n";
        app.post(&format!("/api/machines/{machine}/skills"), Some(&token), json!({"path": "deploy", "content": skill}))
            .await
            .expect(200);

        // Enabling again moves a machine; the other stays until it is enabled too, and the
        // earlier version is dropped once no machine runs it.
        enable(&app, &token, machine, "bare-skill", json!({"config": {"team": "ops"}})).await.expect(200);
        assert_eq!(running(machine).await["running_version"], "0.3.0");
        assert_eq!(loaded_sha(machine).await, PluginRuntime::sha256(&v3));
        assert_eq!(running(other).await["running_version"], "0.2.0");
        let plugin_id: Uuid = serde_json::from_value(running(machine).await["plugin"]["id"].clone()).unwrap();
        let store = app.state.store();
        assert!(store.plugin_version(plugin_id, &PluginRuntime::sha256(&v2)).await.unwrap().is_some());
        enable(&app, &token, other, "bare-skill", json!({})).await.expect(200);
        assert!(store.plugin_version(plugin_id, &PluginRuntime::sha256(&v2)).await.unwrap().is_none());

        // The very same bytes again: refused.
        let again = install(&app, &token, v3).await;
        again.expect(409);
        assert_eq!(again.error_code(), "PLG_002");
    }

    async fn no_tenant_plugin_reaches_the_host(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, token) = app.user_with_token("mallory@example.com").await;
        let (machine, _) = app.register_machine(&token, json!({"name": "laptop"})).await;

        // A host-run world asking for a mount (`root`, read-write) is refused at install.
        let rooted = install(&app, &token, python_skill(|m| {
            m.capabilities.filesystem = vec![claudenest::plugins::manifest::FsRequest {
                name: "root".into(),
                access: claudenest::plugins::manifest::Access::ReadWrite,
            }];
        })).await;
        rooted.expect(422);
        assert_eq!(rooted.error_code(), "PLG_003");
        assert!(rooted.body["error"]["message"].as_str().unwrap().contains("no filesystem"), "{}", rooted.text);

        // A host-run plugin asking for any host gets none the operator did not list: internal
        // addresses in every spelling, names, cloud metadata.
        install(&app, &token, bare_skill(|m| m.capabilities.http = vec!["*".into()])).await.expect(201);
        for host in ["127.1", "0x7f000001", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "localhost",
                     "169.254.169.254", "10.0.0.5:8080", "example.com"] {
            let reply = enable(&app, &token, machine, "bare-skill", json!({"grants": {"http": [host]}})).await;
            reply.expect(422);
            let message = field_error(&reply, "grants.http[0]");
            assert!(message.contains("plugins.http_allow"), "{host}: {message}");
        }
        // An mcp-adapter's mounts need the machine: offline, nothing can be granted.
        install(&app, &token, plugin_wasm("fs_tools")).await.expect(201);
        let offline = enable(&app, &token, machine, "fs-tools",
            json!({"grants": {"filesystem": [{"name": "workspace", "path": "/"}]}})).await;
        offline.expect(400);
        assert_eq!(offline.error_code(), "MCH_002");

        // A planted compile cache is never loaded: a compiled form of another component, put
        // where the summarizer's would be, is ignored and replaced by a fresh compile.
        let runtime = app.state.plugins().await.unwrap();
        let summarizer = plugin_wasm("summarizer");
        let path = runtime.cache_path(&PluginRuntime::sha256(&summarizer)).unwrap();
        let planted = runtime.precompile(&plugin_wasm("skill_frontmatter")).unwrap();
        std::fs::write(&path, &planted).unwrap();
        install(&app, &token, summarizer).await.expect(201);
        let rewritten = std::fs::read(&path).unwrap();
        assert_ne!(rewritten, planted);
        enable(&app, &token, machine, "textrank-summarizer", json!({})).await.expect(200);
        let user = app.state.store().user_by_email("mallory@example.com").await.unwrap().unwrap();
        let ready = plugins::ready(app.state.store(), runtime, user.id, machine, "textrank-summarizer").await.unwrap();
        assert_eq!(ready.loaded.manifest.name, "textrank-summarizer");
        let chunk = Chunk { content: "One sentence. Another one.".into(), chunk_type: "decision".into(), importance: 0.5, created_at: "2026-11-28T10:00:00Z".into() };
        runtime.summarize(&ready.loaded, &ready.grants, &[chunk], SummarizeOptions { max_length: 100 }).await.unwrap().unwrap();
        // The cache's key is private to the host's user.
        use std::os::unix::fs::PermissionsExt as _;
        let key = app.state.config().data_dir.join("plugin-cache.key");
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);

    }
}

#[tokio::test]
async fn installs_are_bounded_per_user_and_by_compile_budgets() {
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let fs_tools = plugin_wasm("fs_tools");
    let app = TestApp::spawn_with(db, |c| {
        c.plugins.max_plugins_per_user = 2;
        c.plugins.max_bytes_per_user = 600_000;
        c.plugins.max_functions = 350;
    })
    .await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    // Too many functions to compile here (fs-tools defines 381): refused before compiling.
    let big = install(&app, &token, fs_tools.clone()).await;
    big.expect(422);
    assert_eq!(big.error_code(), "PLG_003");
    assert!(
        big.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("functions"),
        "{}",
        big.text
    );
    let runtime = app.state.plugins().await.unwrap();
    assert!(
        !runtime
            .cache_path(&PluginRuntime::sha256(&fs_tools))
            .unwrap()
            .exists()
    );

    install(&app, &token, plugin_wasm("summarizer"))
        .await
        .expect(201);
    // A name already taken is refused before compiling (the 18 MB Python component is not
    // compiled: nothing of it reaches the cache).
    let taken = python_skill(|m| m.name = "textrank-summarizer".into());
    let conflict = install(&app, &token, taken.clone()).await;
    conflict.expect(409);
    assert!(
        !runtime
            .cache_path(&PluginRuntime::sha256(&taken))
            .unwrap()
            .exists()
    );
    // Bytes: the Python component alone is over the user's 600 kB.
    let heavy = install(&app, &token, python_skill(|_| {})).await;
    heavy.expect(422);
    assert_eq!(heavy.error_code(), "PLG_006");
    assert!(
        heavy.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bytes"),
        "{}",
        heavy.text
    );
    // Count: two plugins at most.
    install(&app, &token, plugin_wasm("skill_frontmatter"))
        .await
        .expect(201);
    let third = install(&app, &token, plugin_wasm("hostile")).await;
    third.expect(422);
    assert_eq!(third.error_code(), "PLG_006");
    // Another user has a quota of their own.
    let (_, bob) = app.user_with_token("bob@example.com").await;
    install(&app, &bob, plugin_wasm("hostile"))
        .await
        .expect(201);

    // A compile over its time budget is refused.
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::spawn_with(db, |c| c.plugins.compile_timeout_secs = 0).await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let slow = install(&app, &token, plugin_wasm("hostile")).await;
    slow.expect(422);
    assert!(
        slow.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("compiling took longer"),
        "{}",
        slow.text
    );
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

/// A loopback listener that accepts connections and never answers (a host call that blocks).
async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn hostile_plugins_are_contained_on_the_agent() {
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    // This test's runtime has one thread, and the server runs on it.
    let app = TestApp::spawn_with(db, fast_links).await;
    let root = tempfile::tempdir().unwrap();
    let workspace = root.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("notes.md"), "kept\n").unwrap();
    let (granted_port, granted_hits) = http_stub().await;
    let (other_port, other_hits) = http_stub().await;
    let hole_port = black_hole().await;
    // The machine's owner lets plugins reach two loopback services; nothing else internal.
    let allow_granted = format!("127.0.0.1:{granted_port}");
    let allow_hole = format!("127.0.0.1:{hole_port}");
    let (token, machine, agent) = machine_with_agent(
        &app,
        "ada@example.com",
        root.path(),
        // Its `claude` is `cat`: a session that echoes what is typed, to show sessions go on.
        &[
            "--plugin-allow-host",
            &allow_granted,
            "--plugin-allow-host",
            &allow_hole,
            "--claude-path",
            "/bin/cat",
        ],
    )
    .await;
    let session = app
        .post(
            &format!("/api/machines/{machine}/sessions"),
            Some(&token),
            json!({"mode": "interactive"}),
        )
        .await;
    session.expect(201);
    let session = session.body["data"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let typed = AtomicUsize::new(0);
    let session_echoes = async || {
        let word = format!("still-here-{}", typed.fetch_add(1, Ordering::SeqCst));
        app.post(
            &format!("/api/sessions/{session}/input"),
            Some(&token),
            json!({"data": format!("{word}\n")}),
        )
        .await
        .expect(200);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = app
                .get(
                    &format!("/api/sessions/{session}/logs?type=output"),
                    Some(&token),
                )
                .await;
            if logs.text.contains(&word) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the session stopped echoing: {}",
                logs.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    install(&app, &token, plugin_wasm("hostile"))
        .await
        .expect(201);
    install(&app, &token, plugin_wasm("fs_tools"))
        .await
        .expect(201);
    // A loopback host the owner did not allow is refused at enable time, in any spelling.
    for host in [
        format!("127.1:{other_port}"),
        format!("[::ffff:127.0.0.1]:{other_port}"),
        "169.254.169.254".into(),
    ] {
        let reply = enable(
            &app,
            &token,
            machine,
            "hostile",
            json!({"grants": {"http": [host]}}),
        )
        .await;
        reply.expect(422);
        assert!(
            field_error(&reply, "grants.http[0]").contains("--plugin-allow-host"),
            "{}",
            reply.text
        );
    }
    enable(
        &app,
        &token,
        machine,
        "hostile",
        json!({
            "config": {"greeting": "hi"},
            "grants": {"filesystem": [{"name": "workspace", "path": workspace}],
                       "http": [allow_granted, format!("127.1:{hole_port}")]},
        }),
    )
    .await
    .expect(200);
    enable(
        &app,
        &token,
        machine,
        "fs-tools",
        json!({
            "grants": {"filesystem": [{"name": "workspace", "path": workspace}]},
        }),
    )
    .await
    .expect(200);

    let healthy = async || {
        let echo = call_tool(&app, &token, machine, "hostile", "echo", json!({"n": 1})).await;
        echo.expect(200);
        assert_eq!(text_of(&echo), r#"{"n":1}"#);
        let listed = call_tool(&app, &token, machine, "fs-tools", "list_files", json!({})).await;
        assert_eq!(
            listed.body["data"]["content"][0]["json"],
            json!(["notes.md"]),
            "{}",
            listed.text
        );
        assert_eq!(app.machine_status(&token, machine).await, "online");
        session_echoes().await;
    };
    let contained = async |tool: &str, args: Value, reason: &str| {
        let reply = call_tool(&app, &token, machine, "hostile", tool, args).await;
        reply.expect(502);
        assert_eq!(reply.error_code(), "PLG_004");
        let message = reply.body["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(reason), "{tool}: {message}");
        healthy().await;
    };

    // A spinning plugin is stopped at its deadline; meanwhile the host answers and the same
    // agent runs another plugin and answers its link.
    let started = Instant::now();
    let (spun, during) = tokio::join!(
        call_tool(&app, &token, machine, "hostile", "spin", json!({})),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t = Instant::now();
            app.get("/api/health", None).await.expect(200);
            let listed =
                call_tool(&app, &token, machine, "fs-tools", "list_files", json!({})).await;
            listed.expect(200);
            session_echoes().await;
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
    assert!(started.elapsed() < Duration::from_secs(10));
    // Blocked, it would have waited for the 5 s deadline.
    assert!(
        during < Duration::from_millis(2500),
        "another plugin took {during:?} during the spin"
    );
    healthy().await;

    contained("alloc", json!({}), "memory limit").await;
    contained("recurse", json!({}), "stack").await;
    contained("flood", json!({"mib": 100}), "memory limit").await;
    contained("flood", json!({"mib": 4}), "bytes").await;
    contained("trap", json!({}), "trapped").await;
    // A host call that never returns (a server that accepts and stays silent).
    contained(
        "fetch",
        json!({"url": format!("http://127.0.0.1:{hole_port}/")}),
        "deadline",
    )
    .await;

    // Log floods are cut, not fatal.
    call_tool(&app, &token, machine, "hostile", "log_flood", json!({}))
        .await
        .expect(200);

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
    assert!(!workspace.join("new.txt").exists());

    // HTTP: the granted host answers; another loopback port is refused before any connection.
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
    for url in [
        format!("http://127.0.0.1:{other_port}/"),
        format!("http://2130706433:{other_port}/"),
        format!("http://localhost:{other_port}/"),
    ] {
        let refused = call_tool(
            &app,
            &token,
            machine,
            "hostile",
            "fetch",
            json!({"url": url}),
        )
        .await;
        assert_eq!(refused.body["data"]["isError"], true, "{url}");
        assert!(
            text_of(&refused).contains("not granted"),
            "{url}: {}",
            refused.text
        );
    }
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
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
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

    // A plugin's output obeys the rules a user's input does: a skill processor returning a
    // 300-character name is a plugin failure, and nothing is stored.
    let long_name = "a".repeat(300);
    let skill = format!("---\nname: {long_name}\ndescription: x\ntags: [ops]\n---\nSteps.\n");
    let refused = app
        .post(
            &format!("/api/machines/{machine}/skills"),
            Some(&token),
            json!({"path": "long", "content": skill}),
        )
        .await;
    refused.expect(502);
    assert_eq!(refused.error_code(), "PLG_004");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("breaks the rules"),
        "{}",
        refused.text
    );
    app.get(
        &format!("/api/machines/{machine}/skills/long"),
        Some(&token),
    )
    .await
    .expect(404);
}
