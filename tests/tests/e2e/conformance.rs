//! The API as a client written from its document uses it, on both stores: every request example
//! of the API document (its bodies copied here verbatim) sent exactly as written —
//! only ids, and the paths that name places on a machine (`/home/user/…`, `claude_path`), are
//! replaced — against a real agent, and each answer checked for the documented shape. Then the
//! order of checks (a missing resource is its 404 before the body is read) and one `VAL_001`
//! naming every invalid field.

use std::time::{Duration, Instant};

use claudenest_e2e::{AgentProcess, Reply, TestApp, fast_links, on_both_stores};
use reqwest::Method;
use serde_json::{Value, json};

/// A stand-in `claude`: says it is ready, then echoes lines and answers `size` with `stty size`.
const STAND_IN: &str = r#"#!/bin/sh
echo "stand-in claude ready"
while IFS= read -r line; do
  case "$line" in
    size) stty size ;;
    *) echo "you said: $line" ;;
  esac
done
"#;

/// Sends `body` as written (raw JSON text), or no body at all when the document shows none.
async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<&str>) -> Reply {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base_url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    claudenest_e2e::into_reply(request.send().await.expect("request")).await
}

/// Asserts a 2xx success envelope and returns its `data`.
#[track_caller]
fn ok(reply: &Reply, what: &str) -> Value {
    assert!(
        reply.status.is_success() && reply.body["success"] == true,
        "{what}: {} {}",
        reply.status,
        reply.text
    );
    reply.body["data"].clone()
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Polls the session's output (as the document's log listing shows it) until it has `needle`.
async fn output_with(app: &TestApp, token: &str, session: &str, needle: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let logs = app
            .get(&format!("/api/sessions/{session}/logs"), Some(token))
            .await;
        let entries = ok(&logs, "§4.5 logs").as_array().unwrap().clone();
        let text: String = entries
            .iter()
            .filter(|e| e["type"] == "output")
            .filter_map(|e| e["data"].as_str())
            .collect();
        if text.contains(needle) {
            return entries;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_stores! {
    async fn every_request_example_of_the_document_works_as_written(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let here = tempfile::tempdir().unwrap();
        let project_dir = here.path().join("project");
        std::fs::create_dir(&project_dir).unwrap();
        let project_path = project_dir.to_str().unwrap();
        let claude = here.path().join("claude");
        std::fs::write(&claude, STAND_IN).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();

        // §2 accounts: register, sign in, who am I, tokens.
        let registered = app.post_raw("/api/auth/register", None, r#"{
  "name": "John Doe",
  "email": "user@example.com",
  "password": "securepassword",
  "password_confirmation": "securepassword"
}"#).await;
        let data = ok(&registered, "§2.3 register");
        assert_eq!(data["user"]["email"], "user@example.com");
        assert_eq!(data["user"]["name"], "John Doe");
        assert!(data["token"].as_str().unwrap().starts_with("cn_"), "{}", registered.text);
        let login = app.post_raw("/api/auth/login", None, r#"{
  "email": "user@example.com",
  "password": "securepassword",
  "remember": false
}"#).await;
        let data = ok(&login, "§2.2 login");
        let token = data["token"].as_str().unwrap().to_owned();
        assert!(data["expires_at"].is_string(), "{}", login.text);
        let t = token.as_str();
        let me = send(&app, Method::GET, "/api/auth/me", t, None).await;
        assert_eq!(ok(&me, "§2.5 me")["user"]["email"], "user@example.com");
        let created = send(&app, Method::POST, "/api/auth/tokens", t, Some(r#"{
  "name": "Mobile App Token",
  "abilities": ["*"],
  "expires_in_days": 90
}"#)).await;
        let data = ok(&created, "§2.6 create token");
        assert!(data["token"].as_str().unwrap().starts_with("cn_"), "{}", created.text);
        let tokens = send(&app, Method::GET, "/api/auth/tokens", t, None).await;
        let listed = ok(&tokens, "§2.6 list tokens");
        let mobile = listed.as_array().unwrap().iter()
            .find(|k| k["name"] == "Mobile App Token").expect("the new token is listed");
        let revoked = send(&app, Method::DELETE, &format!("/api/auth/tokens/{}", id_of(mobile)), t, None).await;
        ok(&revoked, "§2.6 revoke token");

        // §3 machines: the registration example, with `claude_path` naming the stand-in. The
        // agent gets no `--claude-path`: the machine's registered one is what runs.
        let registered = send(&app, Method::POST, "/api/machines", t, Some(&r#"{
  "name": "MacBook Pro",
  "platform": "darwin",
  "hostname": "macbook.local",
  "arch": "arm64",
  "node_version": "20.11.0",
  "agent_version": "1.0.0",
  "claude_version": "1.0.0",
  "claude_path": "/usr/local/bin/claude",
  "capabilities": ["wake_on_lan", "gpu"],
  "max_sessions": 10
}"#.replace("/usr/local/bin/claude", claude.to_str().unwrap()))).await;
        let data = ok(&registered, "§3.2 register machine");
        let machine = id_of(&data["machine"]);
        assert!(data["token"].as_str().unwrap().starts_with("mn_"), "{}", registered.text);
        let machine_token = data["token"].as_str().unwrap().to_owned();
        let _agent = AgentProcess::start(&app, &machine_token, &[]);
        app.wait_for_status(t, machine.parse().unwrap(), "online", Duration::from_secs(15)).await;
        let list = send(&app, Method::GET, "/api/machines", t, None).await;
        assert_eq!(ok(&list, "§3.1 list machines").as_array().unwrap().len(), 1);
        let one = send(&app, Method::GET, &format!("/api/machines/{machine}"), t, None).await;
        assert_eq!(ok(&one, "§3.3 get machine")["name"], "MacBook Pro");
        let patched = send(&app, Method::PATCH, &format!("/api/machines/{machine}"), t, Some(r#"{
  "name": "MacBook Pro Work",
  "max_sessions": 15,
  "capabilities": ["wake_on_lan", "gpu", "mcp"]
}"#)).await;
        let data = ok(&patched, "§3.4 update machine");
        assert_eq!(data["name"], "MacBook Pro Work");
        assert_eq!(data["max_sessions"], 15);
        let environment = send(&app, Method::GET, &format!("/api/machines/{machine}/environment"), t, None).await;
        ok(&environment, "§3.7 environment");
        // §3.8 (wake) needs a loopback target in the server's settings: machines.rs replays it.

        // §4 sessions.
        let created = send(&app, Method::POST, &format!("/api/machines/{machine}/sessions"), t, Some(&r#"{
  "mode": "interactive",
  "project_path": "/home/user/project",
  "initial_prompt": "Refactor the auth module",
  "pty_size": {"cols": 120, "rows": 40}
}"#.replace("/home/user/project", project_path))).await;
        let data = ok(&created, "§4.2 create session");
        assert_eq!(data["session"]["status"], "created", "{}", created.text);
        assert_eq!(data["session"]["mode"], "interactive");
        assert!(data["websocket_token"].as_str().unwrap().starts_with("ws_"), "{}", created.text);
        let session = id_of(&data["session"]);
        output_with(&app, t, &session, "stand-in claude ready").await;
        let input = send(&app, Method::POST, &format!("/api/sessions/{session}/input"), t, Some(r#"{
  "data": "ls -la\n"
}"#)).await;
        ok(&input, "§4.7 input");
        output_with(&app, t, &session, "you said: ls -la").await;
        let resized = send(&app, Method::POST, &format!("/api/sessions/{session}/resize"), t, Some(r#"{
  "cols": 160,
  "rows": 50
}"#)).await;
        ok(&resized, "§4.8 resize");
        send(&app, Method::POST, &format!("/api/sessions/{session}/input"), t, Some(r#"{"data": "size\n"}"#)).await;
        let logs = output_with(&app, t, &session, "50 160").await;
        for entry in &logs {
            let kind = entry["type"].as_str().unwrap();
            assert!(["input", "output", "error"].contains(&kind), "log type {kind} is not in the document's list");
            for key in ["id", "data", "metadata", "created_at"] {
                assert!(entry.get(key).is_some(), "log entry without {key}: {entry}");
            }
        }
        let got = send(&app, Method::GET, &format!("/api/sessions/{session}"), t, None).await;
        assert_eq!(ok(&got, "§4.3 get session")["status"], "running");
        let sessions = send(&app, Method::GET, &format!("/api/machines/{machine}/sessions"), t, None).await;
        assert_eq!(ok(&sessions, "§4.1 list sessions").as_array().unwrap().len(), 1);
        let attached = send(&app, Method::POST, &format!("/api/sessions/{session}/attach"), t, None).await;
        ok(&attached, "§4.6 attach");
        let deleted = send(&app, Method::DELETE, &format!("/api/sessions/{session}"), t, None).await;
        ok(&deleted, "§4.4 delete session");
        let gone = send(&app, Method::GET, &format!("/api/sessions/{session}"), t, None).await;
        assert_eq!(gone.error_code(), "SES_001", "{}", gone.text);

        // §5 projects.
        let created = send(&app, Method::POST, &format!("/api/machines/{machine}/projects"), t, Some(r#"{
  "name": "My Project",
  "project_path": "/home/user/project",
  "summary": "Initial project description",
  "architecture": "MVC pattern with Laravel",
  "conventions": "PSR-12 coding standards",
  "settings": {
    "maxContextTokens": 8000,
    "taskTimeoutMinutes": 60
  }
}"#)).await;
        let project = id_of(&ok(&created, "§5.2 create project"));
        let projects = send(&app, Method::GET, &format!("/api/machines/{machine}/projects"), t, None).await;
        assert_eq!(ok(&projects, "§5.1 list projects").as_array().unwrap().len(), 1);
        let got = send(&app, Method::GET, &format!("/api/projects/{project}"), t, None).await;
        assert_eq!(ok(&got, "§5.3 get project")["name"], "My Project");
        let patched = send(&app, Method::PATCH, &format!("/api/projects/{project}"), t, Some(r#"{
  "summary": "Updated description",
  "current_focus": "Implementing auth",
  "recent_changes": "Added JWT authentication"
}"#)).await;
        assert_eq!(ok(&patched, "§5.4 update project")["current_focus"], "Implementing auth");
        for (section, path) in [("§5.6 stats", "stats"), ("§5.7 instances", "instances"), ("§5.8 activity", "activity")] {
            let reply = send(&app, Method::GET, &format!("/api/projects/{project}/{path}"), t, None).await;
            ok(&reply, section);
        }
        let broadcast = send(&app, Method::POST, &format!("/api/projects/{project}/broadcast"), t, Some(r#"{
  "type": "announcement",
  "content": "Restarting server in 5 minutes",
  "target": "all"
}"#)).await;
        ok(&broadcast, "§5.9 broadcast");

        // §6 tasks.
        let created = send(&app, Method::POST, &format!("/api/projects/{project}/tasks"), t, Some(r#"{
  "title": "Implement authentication",
  "description": "Add JWT-based authentication system",
  "priority": "high",
  "files": ["auth.php", "User.php"],
  "dependencies": [],
  "estimated_tokens": 2000
}"#)).await;
        let task = id_of(&ok(&created, "§6.2 create task"));
        let tasks = send(&app, Method::GET, &format!("/api/projects/{project}/tasks"), t, None).await;
        assert_eq!(ok(&tasks, "§6.1 list tasks").as_array().unwrap().len(), 1);
        let next = send(&app, Method::GET, &format!("/api/projects/{project}/tasks/next-available"), t, None).await;
        let next = ok(&next, "§6.3 next available");
        assert!(next.to_string().contains(&task), "the only task is next: {next}");
        let got = send(&app, Method::GET, &format!("/api/tasks/{task}"), t, None).await;
        assert_eq!(ok(&got, "§6.4 get task")["title"], "Implement authentication");
        let patched = send(&app, Method::PATCH, &format!("/api/tasks/{task}"), t, Some(r#"{"priority": "critical"}"#)).await;
        assert_eq!(ok(&patched, "§6.5 update task")["priority"], "critical");
        let claim = r#"{
  "instance_id": "instance_1"
}"#;
        let claimed = send(&app, Method::POST, &format!("/api/tasks/{task}/claim"), t, Some(claim)).await;
        let data = ok(&claimed, "§6.7 claim");
        assert_eq!(data["message"], "Task claimed successfully");
        assert_eq!(id_of(&data["task"]), task);
        let again = send(&app, Method::POST, &format!("/api/tasks/{task}/claim"), t, Some(r#"{"instance_id": "instance_2"}"#)).await;
        assert_eq!(again.error_code(), "TSK_002", "{}", again.text);
        let released = send(&app, Method::POST, &format!("/api/tasks/{task}/release"), t, Some(r#"{
  "reason": "Blocked by dependency"
}"#)).await;
        ok(&released, "§6.8 release");
        ok(&send(&app, Method::POST, &format!("/api/tasks/{task}/claim"), t, Some(claim)).await, "§6.7 claim again");
        let completed = send(&app, Method::POST, &format!("/api/tasks/{task}/complete"), t, Some(r#"{
  "summary": "Implemented JWT auth with refresh tokens",
  "files_modified": ["auth.php", "User.php", "config/auth.php"]
}"#)).await;
        ok(&completed, "§6.9 complete");

        // §7 context. The chunk example's `task_id` ("uuid") names the task above; its
        // `expires_at` lies in the past by now, which makes an already expired chunk.
        let context = send(&app, Method::GET, &format!("/api/projects/{project}/context"), t, None).await;
        ok(&context, "§7.1 context");
        let updated = send(&app, Method::PATCH, &format!("/api/projects/{project}/context"), t, Some(r#"{
  "summary": "Updated summary",
  "architecture": "Updated architecture",
  "conventions": "Updated conventions",
  "current_focus": "New focus",
  "recent_changes": "Latest changes"
}"#)).await;
        ok(&updated, "§7.3 update context");
        let chunk = send(&app, Method::POST, &format!("/api/projects/{project}/context/chunks"), t, Some(&r#"{
  "content": "Important decision: Using JWT for auth",
  "type": "decision",
  "instance_id": "instance_1",
  "task_id": "uuid",
  "files": ["auth.php"],
  "importance_score": 0.9,
  "expires_at": "2026-03-02T00:00:00Z"
}"#.replace("\"uuid\"", &format!("\"{task}\"")))).await;
        let chunk = id_of(&ok(&chunk, "§7.6 add chunk"));
        let live = send(&app, Method::POST, &format!("/api/projects/{project}/context/chunks"), t, Some(
            r#"{"content": "Authentication uses JWT access tokens with refresh tokens.", "type": "decision"}"#)).await;
        ok(&live, "§7.6 add a chunk that does not expire");
        let query = send(&app, Method::POST, &format!("/api/projects/{project}/context/query"), t, Some(r#"{
  "query": "How is authentication implemented?",
  "limit": 10,
  "min_similarity": 0.7
}"#)).await;
        let data = ok(&query, "§7.2 query");
        assert_eq!(data["query"], "How is authentication implemented?");
        assert!(data["results"].is_array() && data["total_results"].is_number() && data["search_method"].is_string(), "{}", query.text);
        assert!(!data["results"].as_array().unwrap().iter().any(|r| id_of(r) == chunk), "an expired chunk is not found: {}", query.text);
        let summarized = send(&app, Method::POST, &format!("/api/projects/{project}/context/summarize"), t, None).await;
        ok(&summarized, "§7.4 summarize");
        let chunks = send(&app, Method::GET, &format!("/api/projects/{project}/context/chunks"), t, None).await;
        ok(&chunks, "§7.5 list chunks");
        let deleted = send(&app, Method::DELETE, &format!("/api/projects/{project}/context/chunks/{chunk}"), t, None).await;
        ok(&deleted, "§7.7 delete chunk");

        // §8 locks.
        let locks = format!("/api/projects/{project}/locks");
        let acquired = send(&app, Method::POST, &locks, t, Some(r#"{
  "path": "src/auth.php",
  "instance_id": "instance_1",
  "reason": "Refactoring authentication",
  "duration_minutes": 30
}"#)).await;
        ok(&acquired, "§8.2 acquire");
        let checked = send(&app, Method::POST, &format!("{locks}/check"), t, Some(r#"{
  "path": "src/auth.php"
}"#)).await;
        let data = ok(&checked, "§8.3 check");
        assert_eq!(data["locked"], true);
        assert_eq!(data["locked_by"], "instance_1");
        assert_eq!(data["reason"], "Refactoring authentication");
        assert!(data["expires_at"].is_string(), "{}", checked.text);
        let extended = send(&app, Method::POST, &format!("{locks}/extend"), t, Some(r#"{
  "path": "src/auth.php",
  "instance_id": "instance_1",
  "additional_minutes": 15
}"#)).await;
        ok(&extended, "§8.4 extend");
        let held = send(&app, Method::POST, &locks, t, Some(r#"{"path": "src/User.php", "instance_id": "instance_2", "reason": "Adding fields"}"#)).await;
        ok(&held, "§8.2 another instance's lock");
        let bulk = send(&app, Method::POST, &format!("{locks}/bulk"), t, Some(r#"{
  "paths": ["src/auth.php", "src/User.php"],
  "instance_id": "instance_1",
  "reason": "Auth refactor",
  "duration_minutes": 30
}"#)).await;
        let data = ok(&bulk, "§8.5 bulk");
        assert_eq!(data["acquired"], json!(["src/auth.php"]), "{}", bulk.text);
        assert_eq!(data["failed"], json!(["src/User.php"]), "{}", bulk.text);
        let detail = &data["failed_details"]["src/User.php"];
        assert_eq!((&detail["locked_by"], &detail["reason"]), (&json!("instance_2"), &json!("Adding fields")), "{}", bulk.text);
        let listed = send(&app, Method::GET, &locks, t, None).await;
        assert_eq!(ok(&listed, "§8.1 list locks").as_array().unwrap().len(), 2);
        let released = send(&app, Method::POST, &format!("{locks}/release"), t, Some(r#"{
  "path": "src/auth.php",
  "instance_id": "instance_1"
}"#)).await;
        ok(&released, "§8.6 release");
        let forced = send(&app, Method::POST, &format!("{locks}/force-release"), t, Some(r#"{
  "path": "src/auth.php"
}"#)).await;
        // Nothing holds it any more: the document's example still answers in its shape.
        assert!(forced.status.is_success() || forced.error_code() == "LCK_002", "§8.7 force release: {}", forced.text);
        ok(&send(&app, Method::POST, &locks, t, Some(r#"{"path": "src/auth.php", "instance_id": "instance_1"}"#)).await, "§8.2 again");
        let by_instance = send(&app, Method::POST, &format!("{locks}/release-by-instance"), t, Some(r#"{
  "instance_id": "instance_1"
}"#)).await;
        ok(&by_instance, "§8.8 release by instance");
        let checked = send(&app, Method::POST, &format!("{locks}/check"), t, Some(r#"{"path": "src/auth.php"}"#)).await;
        assert_eq!(ok(&checked, "§8.3 check")["locked"], false);

        // §9 skills: the example's content has no frontmatter; the request's name and
        // description make it, and the file the agent writes carries it.
        let skills = format!("/api/machines/{machine}/skills");
        let created = send(&app, Method::POST, &skills, t, Some(r##"{
  "path": "custom-skill",
  "name": "Custom Skill",
  "content": "# Custom Skill\n\nInstructions...",
  "description": "Description of the skill",
  "priority": 5,
  "metadata": {
    "tags": ["custom"]
  }
}"##)).await;
        let data = ok(&created, "§9.3 create skill");
        assert_eq!(data["name"], "Custom Skill", "{}", created.text);
        assert_eq!(data["description"], "Description of the skill", "{}", created.text);
        let on_disk = _agent.home.path().join(".claude/skills/custom-skill/SKILL.md");
        let deadline = Instant::now() + Duration::from_secs(15);
        let written = loop {
            if let Ok(text) = std::fs::read_to_string(&on_disk) {
                break text;
            }
            assert!(Instant::now() < deadline, "the agent never wrote {}", on_disk.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(written.starts_with("---\n") && written.contains("description:") && written.contains("# Custom Skill\n\nInstructions..."), "{written}");
        for (path, priority) in [("debugging", 1), ("testing", 2)] {
            let body = json!({"path": path, "name": path, "description": format!("{path} helper"), "content": "Steps.", "priority": priority});
            ok(&send(&app, Method::POST, &skills, t, Some(&body.to_string())).await, "§9.3 create skill");
        }
        let bulk = send(&app, Method::POST, &format!("{skills}/bulk"), t, Some(r#"{
  "updates": [
    {"path": "debugging", "enabled": false},
    {"path": "testing", "priority": 20}
  ]
}"#)).await;
        ok(&bulk, "§9.7 bulk");
        let testing = send(&app, Method::GET, &format!("{skills}/testing"), t, None).await;
        assert_eq!(ok(&testing, "§9.2 get skill")["priority"], 20);
        let listed = send(&app, Method::GET, &skills, t, None).await;
        assert_eq!(ok(&listed, "§9.1 list skills").as_array().unwrap().len(), 3);
        let patched = send(&app, Method::PATCH, &format!("{skills}/custom-skill"), t, Some(r#"{"priority": 7}"#)).await;
        assert_eq!(ok(&patched, "§9.4 update skill")["priority"], 7);
        let toggled = send(&app, Method::POST, &format!("{skills}/custom-skill/toggle"), t, None).await;
        ok(&toggled, "§9.5 toggle");
        let deleted = send(&app, Method::DELETE, &format!("{skills}/custom-skill"), t, None).await;
        ok(&deleted, "§9.6 delete skill");

        // §10 MCP: the example server as written (its command need not exist to be stored), then
        // the execute example against a real filesystem server, its path naming a real file.
        let mcp = format!("/api/machines/{machine}/mcp");
        let added = send(&app, Method::POST, &mcp, t, Some(r#"{
  "name": "fetch",
  "display_name": "Web Fetch",
  "command": "uvx",
  "args": ["mcp-server-fetch"],
  "env": {
    "HTTP_PROXY": "..."
  },
  "auto_start": true
}"#)).await;
        let data = ok(&added, "§10.3 add MCP server");
        assert_eq!(data["name"], "fetch");
        assert!(!added.text.contains("\"...\""), "env values are secrets, never returned: {}", added.text);
        let got = send(&app, Method::GET, &format!("{mcp}/fetch"), t, None).await;
        assert_eq!(ok(&got, "§10.2 get MCP server")["display_name"], "Web Fetch");
        let patched = send(&app, Method::PATCH, &format!("{mcp}/fetch"), t, Some(r#"{"auto_start": false}"#)).await;
        ok(&patched, "§10.4 update MCP server");
        let file = here.path().join("file.txt");
        std::fs::write(&file, "hello from the file").unwrap();
        let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mcp/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
        let files = json!({"name": "files", "command": "node", "args": [server, here.path().canonicalize().unwrap()]});
        ok(&send(&app, Method::POST, &mcp, t, Some(&files.to_string())).await, "§10.3 add MCP server");
        let started = send(&app, Method::POST, &format!("{mcp}/files/start"), t, None).await;
        ok(&started, "§10.5 start");
        let tools = send(&app, Method::GET, &format!("{mcp}/files/tools"), t, None).await;
        ok(&tools, "§10.7 tools");
        let executed = send(&app, Method::POST, &format!("{mcp}/files/execute"), t, Some(&r#"{
  "tool": "read_file",
  "parameters": {
    "path": "/home/user/file.txt"
  }
}"#.replace("/home/user/file.txt", here.path().canonicalize().unwrap().join("file.txt").to_str().unwrap()))).await;
        let data = ok(&executed, "§10.8 execute");
        assert_eq!(data["content"], "hello from the file", "{}", executed.text);
        let all = send(&app, Method::GET, &format!("{mcp}/all-tools"), t, None).await;
        ok(&all, "§10.9 all tools");
        let listed = send(&app, Method::GET, &mcp, t, None).await;
        assert_eq!(ok(&listed, "§10.1 list").as_array().unwrap().len(), 2);
        let stopped = send(&app, Method::POST, &format!("{mcp}/files/stop"), t, None).await;
        ok(&stopped, "§10.6 stop");
        let deleted = send(&app, Method::DELETE, &format!("{mcp}/fetch"), t, None).await;
        ok(&deleted, "§10.10 delete");

        // The rest of §3 and §5, §6 that remove things, then §2.4.
        let extra = send(&app, Method::POST, &format!("/api/projects/{project}/tasks"), t, Some(r#"{"title": "Throwaway"}"#)).await;
        let extra = id_of(&ok(&extra, "§6.2 create task"));
        ok(&send(&app, Method::DELETE, &format!("/api/tasks/{extra}"), t, None).await, "§6.6 delete task");
        ok(&send(&app, Method::DELETE, &format!("/api/projects/{project}"), t, None).await, "§5.5 delete project");
        let regenerated = send(&app, Method::POST, &format!("/api/machines/{machine}/regenerate-token"), t, None).await;
        assert!(ok(&regenerated, "§3.6 regenerate token")["token"].as_str().unwrap().starts_with("mn_"));
        ok(&send(&app, Method::DELETE, &format!("/api/machines/{machine}"), t, None).await, "§3.5 delete machine");
        let health = app.get("/api/health", None).await;
        ok(&health, "§14 health");
        ok(&send(&app, Method::POST, "/api/auth/logout", t, None).await, "§2.4 logout");
        let after = send(&app, Method::GET, "/api/auth/me", t, None).await;
        assert_eq!(after.status, 401, "{}", after.text);
    }

    async fn a_missing_resource_is_said_before_the_body_is_read(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let (_, other) = app.user_with_token("eve@example.com").await;
        let t = token.as_str();
        let (machine, _) = app.register_machine(t, json!({"name": "box"})).await;
        let unknown = uuid::Uuid::now_v7();
        let cases = [
            (format!("/api/tasks/{unknown}/release"), "{}", "TSK_001"),
            (format!("/api/tasks/{unknown}/claim"), "[1]", "TSK_001"),
            (format!("/api/sessions/{unknown}/input"), "{\"data\": 5}", "SES_001"),
            (format!("/api/projects/{unknown}/locks"), "{}", "PRJ_001"),
            (format!("/api/machines/{unknown}/sessions"), "{\"mode\": \"nope\"}", "MCH_001"),
            (format!("/api/machines/{machine}/skills/nothing-here/toggle"), "{}", "SKL_001"),
            (format!("/api/machines/{machine}/mcp/nothing-here/execute"), "{}", "MCP_001"),
        ];
        for (path, body, code) in &cases {
            let reply = send(&app, Method::POST, path, t, Some(body)).await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
            assert_eq!(reply.error_code(), *code, "{path}: {}", reply.text);
        }
        // Someone else's machine is as missing as one that never was.
        let foreign = send(&app, Method::POST, &format!("/api/machines/{machine}/sessions"), &other, Some("{}")).await;
        assert_eq!(foreign.error_code(), "MCH_001", "{}", foreign.text);
        // With the resource there, the body is what is wrong.
        let bad = send(&app, Method::POST, &format!("/api/machines/{machine}/sessions"), t, Some("{\"mode\": \"nope\"}")).await;
        assert_eq!(bad.error_code(), "VAL_001", "{}", bad.text);
        // The callback of a provider that does not exist, without `code` or `state`.
        let provider = app.get("/api/auth/myspace/callback", None).await;
        assert_eq!(provider.error_code(), "AUTH_001", "{}", provider.text);
    }

    async fn one_refusal_names_every_invalid_field(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let register = app.post_raw("/api/auth/register", None, "{}").await;
        assert_eq!(register.error_code(), "VAL_001", "{}", register.text);
        let mut fields: Vec<&String> = register.body["error"]["errors"].as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["email", "name", "password", "password_confirmation"], "{}", register.text);

        let (_, token) = app.user_with_token("ada@example.com").await;
        let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
        let project = app.post(&format!("/api/machines/{machine}/projects"), Some(&token), json!({"name": "p", "project_path": "/srv/p"})).await;
        let project = id_of(&ok(&project, "create project"));
        let task = send(&app, Method::POST, &format!("/api/projects/{project}/tasks"), &token, Some(r#"{"priority": "urgent-ish", "estimated_tokens": "lots"}"#)).await;
        assert_eq!(task.error_code(), "VAL_001", "{}", task.text);
        let errors = task.body["error"]["errors"].as_object().unwrap();
        for field in ["title", "priority", "estimated_tokens"] {
            assert!(errors[field].as_array().is_some_and(|m| !m.is_empty()), "no message for {field}: {}", task.text);
        }
        // Nothing was stored by the refused request.
        let tasks = app.get(&format!("/api/projects/{project}/tasks"), Some(&token)).await;
        assert_eq!(ok(&tasks, "list tasks").as_array().unwrap().len(), 0);
    }
}
