//! Skills (API §9) on both stores: processing by the built-in SKILL.md rules and by an enabled
//! skill-processor plugin, validation, and two-way sync with a real skill folder through a
//! real agent process (discovery, API → disk, disk → API, deletions both ways, conflicts).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use claudenest_e2e::{AgentProcess, Reply, TestApp, fast_links, on_both_stores, plugin_wasm};
use reqwest::Method;
use serde_json::json;

fn skill_md(name: &str, description: &str, body: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: {description}\ntags: [debugging, rust]\nversion: 1.2\nowner: ops\n---\n\n{body}\n"
    )
}

/// Polls the API path (up to 15 s) until `check` holds.
async fn api_until(
    app: &TestApp,
    token: &str,
    path: &str,
    what: &str,
    check: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = app.get(path, Some(token)).await;
        if check(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the folder (up to 15 s) until `check` holds.
async fn disk_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn conflict_copies(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("SKILL.conflict-")
                })
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

on_both_stores! {
    async fn skills_are_processed_validated_and_managed(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
        let base = format!("/api/machines/{machine}/skills");

        let created = app.post(&base, Some(&token), json!({
            "path": "debugging",
            "content": skill_md("debugging", "Advanced debugging techniques", "# Debugging\n\nBisect first."),
            "priority": 10,
            "metadata": {"team": "platform"},
        })).await;
        created.expect(200);
        let data = &created.body["data"];
        assert_eq!(data["name"], "debugging", "from the frontmatter");
        assert_eq!(data["description"], "Advanced debugging techniques");
        assert_eq!(data["metadata"]["tags"], json!(["debugging", "rust"]));
        assert_eq!(data["metadata"]["version"], "1.2");
        assert_eq!(data["metadata"]["owner"], "ops");
        assert_eq!(data["metadata"]["team"], "platform");
        assert_eq!(data["metadata"]["processor"], "skill-frontmatter (built in)");
        assert_eq!(data["enabled"], true);
        assert_eq!(data["size_bytes"], data["content"].as_str().unwrap().len());
        assert!(data["last_modified"].is_string());

        // Content without frontmatter needs the request's description to make one; nothing stored.
        let refused = app.post(&base, Some(&token), json!({"path": "broken", "content": "# no frontmatter"})).await;
        refused.expect(422);
        assert_eq!(refused.error_code(), "VAL_001");
        let reason = refused.body["error"]["errors"]["description"][0].as_str().unwrap();
        assert!(reason.contains("frontmatter"), "{reason}");
        app.get(&format!("{base}/broken"), Some(&token)).await.expect(404);
        // Refused by the processor: VAL_001 with its reason; nothing stored.
        let refused = app.post(&base, Some(&token), json!({"path": "broken", "content": "---\nname: broken\n---\n\nNo description."})).await;
        refused.expect(422);
        let reason = refused.body["error"]["errors"]["content"][0].as_str().unwrap();
        assert!(reason.contains("description"), "{reason}");
        app.get(&format!("{base}/broken"), Some(&token)).await.expect(404);
        // Bad paths and sizes.
        for path in ["../etc", "a/b", ".hidden", ""] {
            let bad = app.post(&base, Some(&token), json!({"path": path, "content": skill_md("x", "y", "z")})).await;
            bad.expect(422);
            assert!(bad.body["error"]["errors"]["path"].is_array(), "{path}: {}", bad.text);
        }
        let huge = app.post(&base, Some(&token), json!({"path": "huge", "content": "x".repeat(300 * 1024)})).await;
        huge.expect(422);
        assert!(huge.body["error"]["errors"]["content"].is_array());

        // A second skill; list by priority.
        app.post(&base, Some(&token), json!({
            "path": "testing", "content": skill_md("testing", "How we test", "Real parts."), "priority": 20,
        })).await.expect(200);
        let list = app.get(&base, Some(&token)).await;
        list.expect(200);
        let paths: Vec<&str> = list.body["data"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["testing", "debugging"]);
        assert!(list.body["data"][0].get("content").is_none(), "lists leave content out");

        // PATCH content (re-processed), priority; toggle; bulk.
        let patched = app.call(Method::PATCH, &format!("{base}/debugging"), Some(&token), Some(json!({
            "content": skill_md("debugging", "Debugging, revised", "Bisect, then read."), "priority": 30,
        }))).await;
        patched.expect(200);
        assert_eq!(patched.body["data"]["description"], "Debugging, revised");
        assert_eq!(patched.body["data"]["priority"], 30);
        assert_eq!(patched.body["data"]["metadata"]["team"], "platform", "kept");
        let bad_patch = app.call(Method::PATCH, &format!("{base}/debugging"), Some(&token), Some(json!({"content": "---\nname: Bad Name\n---\n"}))).await;
        bad_patch.expect(422);
        let still = app.get(&format!("{base}/debugging"), Some(&token)).await;
        assert_eq!(still.body["data"]["description"], "Debugging, revised", "a refused update changes nothing");
        let toggled = app.post(&format!("{base}/debugging/toggle"), Some(&token), json!({})).await;
        toggled.expect(200);
        assert_eq!(toggled.body["data"], json!({"path": "debugging", "enabled": false}));
        let bulk_bad = app.post(&format!("{base}/bulk"), Some(&token), json!({"updates": [
            {"path": "debugging", "enabled": true}, {"path": "nope", "priority": 1},
        ]})).await;
        bulk_bad.expect(422);
        assert!(bulk_bad.body["error"]["errors"]["updates.1.path"].is_array(), "{}", bulk_bad.text);
        assert_eq!(app.get(&format!("{base}/debugging"), Some(&token)).await.body["data"]["enabled"], false, "all or nothing");
        let bulk = app.post(&format!("{base}/bulk"), Some(&token), json!({"updates": [
            {"path": "debugging", "enabled": true}, {"path": "testing", "priority": 5},
        ]})).await;
        bulk.expect(200);
        assert_eq!(app.get(&format!("{base}/debugging"), Some(&token)).await.body["data"]["enabled"], true);
        assert_eq!(app.get(&format!("{base}/testing"), Some(&token)).await.body["data"]["priority"], 5);

        // An enabled skill-processor plugin takes over from the built-in rules.
        let installed = app.client.post(format!("{}/api/plugins", app.base_url)).bearer_auth(&token)
            .header("content-type", "application/wasm").body(plugin_wasm("skill_frontmatter")).send().await.unwrap();
        assert_eq!(installed.status(), 201);
        app.call(Method::PUT, &format!("/api/machines/{machine}/plugins/skill-frontmatter"), Some(&token), Some(json!({}))).await.expect(200);
        let by_plugin = app.post(&base, Some(&token), json!({
            "path": "review", "content": skill_md("review", "Code review", "Read it twice."),
        })).await;
        by_plugin.expect(200);
        assert_eq!(by_plugin.body["data"]["metadata"]["processor"], "skill-frontmatter");
        let plugin_refused = app.post(&base, Some(&token), json!({"path": "review", "content": "---\nname: review\n---\nno description"})).await;
        plugin_refused.expect(422);
        assert!(plugin_refused.body["error"]["errors"]["content"][0].as_str().unwrap().contains("skill-frontmatter: "), "{}", plugin_refused.text);

        // Delete, ownership.
        app.call(Method::DELETE, &format!("{base}/testing"), Some(&token), None).await.expect(200);
        let gone = app.get(&format!("{base}/testing"), Some(&token)).await;
        gone.expect(404);
        assert_eq!(gone.error_code(), "SKL_001");
        let again = app.call(Method::DELETE, &format!("{base}/testing"), Some(&token), None).await;
        assert_eq!(again.error_code(), "SKL_001");
        let (_, eve) = app.user_with_token("eve@example.com").await;
        let theirs = app.get(&format!("{base}/debugging"), Some(&eve)).await;
        theirs.expect(404);
        assert_eq!(theirs.error_code(), "MCH_001");
    }

    async fn skills_sync_both_ways_with_the_machines_folder(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path().to_owned();
        let base = format!("/api/machines/{machine}/skills");
        let agent_args = ["--skills-dir", dir.to_str().unwrap(), "--skills-poll-ms", "100"];

        // Found on disk before the agent starts: it appears in the API.
        std::fs::create_dir_all(dir.join("local")).unwrap();
        std::fs::write(dir.join("local/SKILL.md"), skill_md("local", "Made on the machine", "Local.")).unwrap();
        let mut agent = AgentProcess::start(&app, &machine_token, &agent_args);
        app.wait_for_status(&token, machine, "online", Duration::from_secs(15)).await;
        let found = api_until(&app, &token, &format!("{base}/local"), "the local skill in the API", |r| r.status == 200).await;
        assert_eq!(found.body["data"]["description"], "Made on the machine");

        // API → disk.
        let content = skill_md("from-api", "Written through the API", "API.");
        app.post(&base, Some(&token), json!({"path": "from-api", "content": content})).await.expect(200);
        assert_eq!(read(&dir.join("from-api/SKILL.md")).as_deref(), Some(content.as_str()), "written at once while linked");

        // Disk → API.
        let edited = skill_md("local", "Edited on the machine", "Local, edited.");
        std::fs::write(dir.join("local/SKILL.md"), &edited).unwrap();
        api_until(&app, &token, &format!("{base}/local"), "the edit in the API", |r| r.body["data"]["description"] == "Edited on the machine").await;

        // Disable → gone from disk; enable → back.
        app.post(&format!("{base}/from-api/toggle"), Some(&token), json!({})).await.expect(200);
        assert!(!dir.join("from-api/SKILL.md").exists());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(app.get(&format!("{base}/from-api"), Some(&token)).await.body["data"]["enabled"], false, "not taken as a deletion");
        app.post(&format!("{base}/from-api/toggle"), Some(&token), json!({})).await.expect(200);
        assert_eq!(read(&dir.join("from-api/SKILL.md")).as_deref(), Some(content.as_str()));

        // Deleted on disk → deleted in the API; deleted in the API → removed from disk.
        std::fs::remove_dir_all(dir.join("local")).unwrap();
        api_until(&app, &token, &format!("{base}/local"), "the deletion in the API", |r| r.status == 404).await;
        app.call(Method::DELETE, &format!("{base}/from-api"), Some(&token), None).await.expect(200);
        assert!(!dir.join("from-api").exists());

        // A skill the processor refuses on disk is not taken, and the file is left alone.
        std::fs::create_dir_all(dir.join("junk")).unwrap();
        std::fs::write(dir.join("junk/SKILL.md"), "no frontmatter here").unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.get(&format!("{base}/junk"), Some(&token)).await.expect(404);
        assert_eq!(read(&dir.join("junk/SKILL.md")).as_deref(), Some("no frontmatter here"));

        // While the agent is away: both sides change the same skill, the API later (it wins; the
        // folder's version is kept as a conflict copy), the folder changes another one alone, and
        // the API deletes a third.
        for name in ["shared", "solo", "doomed"] {
            let body = skill_md(name, "Version one", "One.");
            app.post(&base, Some(&token), json!({"path": name, "content": body})).await.expect(200);
            assert!(dir.join(name).join("SKILL.md").exists());
        }
        agent.kill();
        app.wait_for_status(&token, machine, "offline", Duration::from_secs(15)).await;
        let disk_shared = skill_md("shared", "Changed on disk", "Disk.");
        std::fs::write(dir.join("shared/SKILL.md"), &disk_shared).unwrap();
        std::fs::write(dir.join("solo/SKILL.md"), skill_md("solo", "Changed on disk alone", "Solo.")).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let api_shared = skill_md("shared", "Changed in the API", "API.");
        app.call(Method::PATCH, &format!("{base}/shared"), Some(&token), Some(json!({"content": api_shared}))).await.expect(200);
        app.call(Method::DELETE, &format!("{base}/doomed"), Some(&token), None).await.expect(200);
        app.get(&format!("{base}/doomed"), Some(&token)).await.expect(404);

        let _agent = AgentProcess::start(&app, &machine_token, &agent_args);
        app.wait_for_status(&token, machine, "online", Duration::from_secs(15)).await;
        disk_until("the API's version on disk", || read(&dir.join("shared/SKILL.md")).as_deref() == Some(api_shared.as_str())).await;
        assert_eq!(conflict_copies(&dir.join("shared")), [disk_shared], "the folder's version is kept");
        api_until(&app, &token, &format!("{base}/solo"), "the solo edit in the API", |r| r.body["data"]["description"] == "Changed on disk alone").await;
        disk_until("the deletion on disk", || !dir.join("doomed/SKILL.md").exists()).await;
        app.get(&format!("{base}/doomed"), Some(&token)).await.expect(404);
        let shared = app.get(&format!("{base}/shared"), Some(&token)).await;
        assert_eq!(shared.body["data"]["description"], "Changed in the API");
    }
}
