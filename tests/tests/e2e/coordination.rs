//! Multi-agent coordination (API §5, §6, §8) end to end on both stores: projects, instances,
//! tasks with dependencies and atomic claims, file locks with globs, expiry and stale instances.

use std::{sync::Arc, time::Duration};

use claudenest::{domain, store::LockOutcome};
use claudenest_e2e::{TestApp, on_both_stores};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// A user with a machine and a project on it.
async fn project(app: &TestApp) -> (String, Uuid, Uuid) {
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
    let reply = app
        .post(
            &format!("/api/machines/{machine}/projects"),
            Some(&token),
            json!({"name": "My Project", "project_path": "/home/ada/app", "summary": "A web app"}),
        )
        .await;
    reply.expect(201);
    let id = reply.body["data"]["id"].as_str().unwrap().parse().unwrap();
    (token, machine, id)
}

async fn task(app: &TestApp, token: &str, project: Uuid, body: Value) -> Uuid {
    let reply = app
        .post(&format!("/api/projects/{project}/tasks"), Some(token), body)
        .await;
    reply.expect(201);
    reply.body["data"]["id"].as_str().unwrap().parse().unwrap()
}

fn field_error(reply: &claudenest_e2e::Reply, field: &str) {
    reply.expect(422);
    assert!(
        reply.body["error"]["errors"][field].is_array(),
        "no errors.{field}: {}",
        reply.text
    );
}

on_both_stores! {
    async fn projects_are_created_listed_updated_and_deleted(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (token, machine, id) = project(&app).await;
        let (_, bob) = app.user_with_token("bob@example.com").await;

        let got = app.get(&format!("/api/projects/{id}"), Some(&token)).await;
        got.expect(200);
        let data = &got.body["data"];
        assert_eq!(data["settings"], json!({"maxContextTokens": 8000, "taskTimeoutMinutes": 60, "lockTimeoutMinutes": 30}));
        assert_eq!(data["project_path"], "/home/ada/app");
        let stats = app.get(&format!("/api/projects/{id}/stats"), Some(&token)).await;
        assert_eq!(stats.body["data"]["total_tokens"], 3, "\"A web app\": 9 characters, 3 tokens");
        assert_eq!(stats.body["data"]["max_tokens"], 8000);
        assert_eq!(data["token_usage_percent"], 0.0, "3 of 8000 rounds to 0.0 %");

        let dup = app.post(&format!("/api/machines/{machine}/projects"), Some(&token),
            json!({"name": "Again", "project_path": "/home/ada/app/"})).await;
        dup.expect(409);
        assert_eq!(dup.error_code(), "PRJ_002");
        let (other_machine, _) = app.register_machine(&token, json!({"name": "other"})).await;
        app.post(&format!("/api/machines/{other_machine}/projects"), Some(&token),
            json!({"name": "Same path elsewhere", "project_path": "/home/ada/app"})).await.expect(201);

        for (body, field) in [
            (json!({"name": "", "project_path": "/x"}), "name"),
            (json!({"name": "x"}), "project_path"),
            (json!({"name": "x", "project_path": "/y", "settings": {"maxContextTokens": -1}}), "settings.maxContextTokens"),
            (json!({"name": "x", "project_path": "/y", "settings": {"colour": 1}}), "settings.colour"),
        ] {
            field_error(&app.post(&format!("/api/machines/{machine}/projects"), Some(&token), body).await, field);
        }

        let updated = app.call(Method::PATCH, &format!("/api/projects/{id}"), Some(&token), Some(json!({
            "current_focus": "Implementing auth", "recent_changes": "Added JWT",
            "settings": {"taskTimeoutMinutes": 5}}))).await;
        updated.expect(200);
        assert_eq!(updated.body["data"]["current_focus"], "Implementing auth");
        assert_eq!(updated.body["data"]["settings"]["taskTimeoutMinutes"], 5);
        assert_eq!(updated.body["data"]["settings"]["maxContextTokens"], 8000, "settings merge");

        let list = app.get(&format!("/api/machines/{machine}/projects"), Some(&token)).await;
        list.expect(200);
        assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
        assert_eq!(list.body["data"][0]["pending_tasks_count"], 0);

        for (method, path) in [
            (Method::GET, format!("/api/projects/{id}")),
            (Method::PATCH, format!("/api/projects/{id}")),
            (Method::DELETE, format!("/api/projects/{id}")),
            (Method::GET, format!("/api/projects/{id}/tasks")),
            (Method::GET, format!("/api/projects/{id}/locks")),
            (Method::GET, format!("/api/projects/{id}/stats")),
        ] {
            let reply = app.call(method.clone(), &path, Some(&bob), Some(json!({}))).await;
            reply.expect(404);
            assert_eq!(reply.error_code(), "PRJ_001", "{method} {path}");
        }
        app.get(&format!("/api/machines/{machine}/projects"), Some(&bob)).await.expect(404);

        let t = task(&app, &token, id, json!({"title": "Doomed"})).await;
        app.call(Method::DELETE, &format!("/api/projects/{id}"), Some(&token), None).await.expect(200);
        app.get(&format!("/api/projects/{id}"), Some(&token)).await.expect(404);
        app.get(&format!("/api/tasks/{t}"), Some(&token)).await.expect(404);
    }

    async fn tasks_are_ordered_gated_by_dependencies_and_validated(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (token, _, project) = project(&app).await;
        let low = task(&app, &token, project, json!({"title": "low", "priority": "low"})).await;
        let high_old = task(&app, &token, project, json!({"title": "high old", "priority": "high"})).await;
        let high_new = task(&app, &token, project, json!({"title": "high new", "priority": "high"})).await;
        let critical = task(&app, &token, project, json!({"title": "blocked critical",
            "priority": "critical", "dependencies": [low], "files": ["auth.php"], "estimated_tokens": 2000})).await;

        let next = app.get(&format!("/api/projects/{project}/tasks/next-available"), Some(&token)).await;
        assert_eq!(next.body["data"]["id"], high_old.to_string(), "critical is blocked; oldest high next");
        let blocked = app.get(&format!("/api/tasks/{critical}"), Some(&token)).await;
        assert_eq!(blocked.body["data"]["is_blocked"], true);
        assert_eq!(blocked.body["data"]["dependencies"], json!([low.to_string()]));
        let refused = app.post(&format!("/api/tasks/{critical}/claim"), Some(&token), json!({"instance_id": "i1"})).await;
        refused.expect(409);
        assert_eq!(refused.error_code(), "TSK_004");

        // Finish the dependency: the critical task becomes next.
        app.post(&format!("/api/tasks/{low}/claim"), Some(&token), json!({"instance_id": "i1"})).await.expect(200);
        app.post(&format!("/api/tasks/{low}/complete"), Some(&token),
            json!({"instance_id": "i1", "summary": "done", "files_modified": ["a.rs"]})).await.expect(200);
        let next = app.get(&format!("/api/projects/{project}/tasks/next-available"), Some(&token)).await;
        assert_eq!(next.body["data"]["id"], critical.to_string());
        assert_eq!(next.body["data"]["is_blocked"], false);

        // Validation, cycles and foreign dependencies.
        let tasks_url = format!("/api/projects/{project}/tasks");
        field_error(&app.post(&tasks_url, Some(&token), json!({"title": "x", "priority": "urgent"})).await, "priority");
        field_error(&app.post(&tasks_url, Some(&token), json!({"priority": "low"})).await, "title");
        field_error(&app.post(&tasks_url, Some(&token), json!({"title": "x", "dependencies": [Uuid::now_v7()]})).await, "dependencies");
        field_error(&app.post(&tasks_url, Some(&token), json!({"title": "x", "dependencies": ["nope"]})).await, "dependencies[0]");
        let cycle = app.call(Method::PATCH, &format!("/api/tasks/{low}"), Some(&token), Some(json!({"dependencies": [critical]}))).await;
        field_error(&cycle, "dependencies");
        let own = app.call(Method::PATCH, &format!("/api/tasks/{high_new}"), Some(&token), Some(json!({"dependencies": [high_new]}))).await;
        field_error(&own, "dependencies");
        // The same dependency twice (on create and on update): a validation error, not a 500,
        // and the task keeps what it had.
        field_error(&app.post(&tasks_url, Some(&token), json!({"title": "x", "dependencies": [low, low]})).await, "dependencies");
        let twice = app.call(Method::PATCH, &format!("/api/tasks/{high_new}"), Some(&token), Some(json!({"dependencies": [low, low]}))).await;
        field_error(&twice, "dependencies");
        let many: Vec<Uuid> = (0..101).map(|_| Uuid::now_v7()).collect();
        field_error(&app.post(&tasks_url, Some(&token), json!({"title": "x", "dependencies": many})).await, "dependencies");
        let renamed = app.call(Method::PATCH, &format!("/api/tasks/{high_new}"), Some(&token),
            Some(json!({"title": "renamed", "priority": "critical"}))).await;
        renamed.expect(200);
        assert_eq!(renamed.body["data"]["priority"], "critical");

        let filtered = app.get(&format!("{tasks_url}?status=completed"), Some(&token)).await;
        assert_eq!(filtered.body["meta"]["pagination"]["total"], 1);
        let critical_list = app.get(&format!("{tasks_url}?priority=critical"), Some(&token)).await;
        assert_eq!(critical_list.body["meta"]["pagination"]["total"], 2);
        app.get(&format!("{tasks_url}?status=sleeping"), Some(&token)).await.expect(422);
        let all = app.get(&tasks_url, Some(&token)).await;
        let order: Vec<&str> = all.body["data"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
        // Both critical now: the older one ("renamed", made before "blocked critical") first.
        assert_eq!(order, ["renamed", "blocked critical", "high old", "low"]);

        app.call(Method::DELETE, &format!("/api/tasks/{high_old}"), Some(&token), None).await.expect(200);
        let gone = app.get(&format!("/api/tasks/{high_old}"), Some(&token)).await;
        gone.expect(404);
        assert_eq!(gone.error_code(), "TSK_001");
    }

    async fn only_the_claiming_instance_releases_or_completes(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (token, _, project) = project(&app).await;
        let t = task(&app, &token, project, json!({"title": "Implement auth", "priority": "high"})).await;
        let claim = app.post(&format!("/api/tasks/{t}/claim"), Some(&token), json!({"instance_id": "instance_1"})).await;
        claim.expect(200);
        assert_eq!(claim.body["data"]["message"], "Task claimed successfully");
        assert_eq!(claim.body["data"]["task"]["assigned_to"], "instance_1");
        assert_eq!(claim.body["data"]["task"]["is_claimed"], true);
        let second = app.post(&format!("/api/tasks/{t}/claim"), Some(&token), json!({"instance_id": "instance_2"})).await;
        second.expect(409);
        assert_eq!(second.error_code(), "TSK_002");

        for (action, body) in [
            ("release", json!({"instance_id": "instance_2"})),
            ("complete", json!({"instance_id": "instance_2", "summary": "stolen"})),
        ] {
            let reply = app.post(&format!("/api/tasks/{t}/{action}"), Some(&token), body).await;
            reply.expect(403);
            assert_eq!(reply.error_code(), "TSK_003");
        }
        let released = app.post(&format!("/api/tasks/{t}/release"), Some(&token),
            json!({"instance_id": "instance_1", "reason": "Blocked by dependency"})).await;
        released.expect(200);
        assert_eq!(released.body["data"]["status"], "pending");
        assert_eq!(released.body["data"]["release_reason"], "Blocked by dependency");

        app.post(&format!("/api/tasks/{t}/claim"), Some(&token), json!({"instance_id": "instance_2"})).await.expect(200);
        let done = app.post(&format!("/api/tasks/{t}/complete"), Some(&token), json!({"instance_id": "instance_2",
            "summary": "Implemented JWT auth with refresh tokens", "files_modified": ["auth.php", "User.php"]})).await;
        done.expect(200);
        assert_eq!(done.body["data"]["status"], "completed");
        assert_eq!(done.body["data"]["files_modified"], json!(["auth.php", "User.php"]));
        let again = app.post(&format!("/api/tasks/{t}/complete"), Some(&token), json!({"instance_id": "instance_2", "summary": "x"})).await;
        again.expect(403);

        let instances = app.get(&format!("/api/projects/{project}/instances"), Some(&token)).await;
        let by_id = |id: &str| instances.body["data"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
        assert_eq!(by_id("instance_2")["tasks_completed"], 1);
        assert_eq!(by_id("instance_2")["status"], "idle");
        assert_eq!(by_id("instance_1")["tasks_completed"], 0);

        let stats = app.get(&format!("/api/projects/{project}/stats"), Some(&token)).await;
        let s = &stats.body["data"];
        assert_eq!((s["total_tasks"].as_i64(), s["completed_tasks"].as_i64(), s["pending_tasks"].as_i64()), (Some(1), Some(1), Some(0)));
        assert_eq!(s["active_instances"], 2);
        assert!(s["total_tokens"].as_i64().unwrap() > 10, "the completion chunk counts: {s}");

        let activity = app.get(&format!("/api/projects/{project}/activity?limit=3"), Some(&token)).await;
        let types: Vec<&str> = activity.body["data"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["task_completed", "task_claimed", "task_released"]);
        assert_eq!(activity.body["data"][0]["instance_id"], "instance_2");
        app.get(&format!("/api/projects/{project}/activity?limit=0"), Some(&token)).await.expect(422);
    }

    async fn two_hundred_fifty_six_concurrent_claimers_one_winner(db: TestDb) {
        let app = Arc::new(TestApp::spawn(db).await);
        let (token, _, project) = project(&app).await;
        let t = task(&app, &token, project, json!({"title": "Contended"})).await;
        let mut racers = Vec::new();
        for i in 0..256 {
            let (app, token) = (app.clone(), token.clone());
            racers.push(tokio::spawn(async move {
                app.post(&format!("/api/tasks/{t}/claim"), Some(&token), json!({"instance_id": format!("racer-{i}")})).await
            }));
        }
        let mut winners = 0;
        for racer in racers {
            let reply = racer.await.unwrap();
            match reply.status.as_u16() {
                200 => winners += 1,
                409 => assert_eq!(reply.error_code(), "TSK_002"),
                other => panic!("unexpected {other}: {}", reply.text),
            }
        }
        assert_eq!(winners, 1);

        // claim-next: as many winners as tasks, each with a different task.
        for i in 0..8 {
            task(&app, &token, project, json!({"title": format!("batch {i}")})).await;
        }
        let mut racers = Vec::new();
        for i in 0..64 {
            let (app, token) = (app.clone(), token.clone());
            racers.push(tokio::spawn(async move {
                app.post(&format!("/api/projects/{project}/tasks/claim-next"), Some(&token), json!({"instance_id": format!("n-{i}")})).await
            }));
        }
        let mut taken = std::collections::HashSet::new();
        for racer in racers {
            let reply = racer.await.unwrap();
            reply.expect(200);
            if let Some(id) = reply.body["data"]["task"]["id"].as_str() {
                assert!(taken.insert(id.to_owned()), "task {id} claimed twice");
            }
        }
        assert_eq!(taken.len(), 8);
    }

    async fn file_locks_are_exclusive_globbed_extended_and_released(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (token, _, project) = project(&app).await;
        let url = |suffix: &str| format!("/api/projects/{project}/locks{suffix}");

        let lock = app.post(&url(""), Some(&token), json!({"path": "./src\\auth.php", "instance_id": "instance_1",
            "reason": "Refactoring authentication", "duration_minutes": 30})).await;
        lock.expect(201);
        assert_eq!(lock.body["data"]["path"], "src/auth.php");
        let remaining = lock.body["data"]["remaining_seconds"].as_i64().unwrap();
        assert!((1790..=1800).contains(&remaining), "{remaining}");

        let taken = app.post(&url(""), Some(&token), json!({"path": "/home/ada/app/src/auth.php", "instance_id": "instance_2"})).await;
        taken.expect(409);
        assert_eq!(taken.error_code(), "LCK_001");
        assert_eq!(taken.body["error"]["details"]["locked_by"], "instance_1");
        assert_eq!(taken.body["error"]["details"]["reason"], "Refactoring authentication");

        // A pattern built to make a backtracking matcher explode is answered at once (it held
        // the write lock for seconds); one with too many wildcards is refused.
        app.post(&url(""), Some(&token), json!({"path": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "instance_id": "instance_4"})).await.expect(201);
        let starred = app.post(&url(""), Some(&token), json!({"path": "****************b", "instance_id": "instance_5"})).await;
        starred.expect(201);
        let checked = app.post(&url("/check"), Some(&token), json!({"path": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"})).await;
        assert_eq!(checked.body["data"]["locked"], true, "{}", checked.text);
        let wild = app.post(&url(""), Some(&token), json!({"path": "*****************b", "instance_id": "instance_6"})).await;
        field_error(&wild, "path");
        app.post(&url("/release"), Some(&token), json!({"path": "****************b", "instance_id": "instance_5"})).await.expect(200);
        app.post(&url("/release"), Some(&token), json!({"path": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "instance_id": "instance_4"})).await.expect(200);

        // Globs conflict with what they overlap, in both directions.
        let glob = app.post(&url(""), Some(&token), json!({"path": "src/**", "instance_id": "instance_2"})).await;
        glob.expect(409);
        app.post(&url(""), Some(&token), json!({"path": "docs/**", "instance_id": "instance_2"})).await.expect(201);
        app.post(&url(""), Some(&token), json!({"path": "docs/guide/intro.md", "instance_id": "instance_3"})).await.expect(409);
        app.post(&url(""), Some(&token), json!({"path": "docs/guide/intro.md", "instance_id": "instance_2"})).await.expect(201);

        let check = app.post(&url("/check"), Some(&token), json!({"path": "docs/a/b.md"})).await;
        check.expect(200);
        assert_eq!(check.body["data"]["locked"], true);
        assert_eq!(check.body["data"]["locked_by"], "instance_2");
        assert_eq!(check.body["data"]["lock_path"], "docs/**");
        let free = app.post(&url("/check"), Some(&token), json!({"path": "README.md"})).await;
        assert_eq!(free.body["data"]["locked"], false);

        for bad in ["../etc/passwd", "/etc/passwd", ""] {
            field_error(&app.post(&url(""), Some(&token), json!({"path": bad, "instance_id": "instance_1"})).await, "path");
        }
        field_error(&app.post(&url(""), Some(&token), json!({"path": "a", "instance_id": "instance_1", "duration_minutes": 0})).await, "duration_minutes");
        field_error(&app.post(&url(""), Some(&token), json!({"path": "a", "instance_id": "has space"})).await, "instance_id");

        // The holder re-acquiring or extending moves the expiry.
        let again = app.post(&url(""), Some(&token), json!({"path": "src/auth.php", "instance_id": "instance_1", "duration_minutes": 60})).await;
        again.expect(201);
        assert!(again.body["data"]["remaining_seconds"].as_i64().unwrap() > 3500);
        let extended = app.post(&url("/extend"), Some(&token), json!({"path": "src/auth.php", "instance_id": "instance_1", "additional_minutes": 15})).await;
        extended.expect(200);
        assert!(extended.body["data"]["remaining_seconds"].as_i64().unwrap() > 4400);
        let not_holder = app.post(&url("/extend"), Some(&token), json!({"path": "src/auth.php", "instance_id": "instance_2", "additional_minutes": 15})).await;
        not_holder.expect(409);

        let bulk = app.post(&url("/bulk"), Some(&token), json!({"paths": ["src/User.php", "src/auth.php", "lib/x.rs"],
            "instance_id": "instance_2", "reason": "Auth refactor", "duration_minutes": 30})).await;
        bulk.expect(200);
        assert_eq!(bulk.body["data"]["acquired"], json!(["src/User.php", "lib/x.rs"]));
        assert_eq!(bulk.body["data"]["failed"], json!(["src/auth.php"]));
        assert_eq!(bulk.body["data"]["failed_details"]["src/auth.php"]["locked_by"], "instance_1");

        let list = app.get(&url(""), Some(&token)).await;
        assert_eq!(list.body["data"].as_array().unwrap().len(), 5);

        let wrong = app.post(&url("/release"), Some(&token), json!({"path": "src/auth.php", "instance_id": "instance_2"})).await;
        wrong.expect(409);
        assert_eq!(wrong.error_code(), "LCK_001");
        app.post(&url("/release"), Some(&token), json!({"path": "src/auth.php", "instance_id": "instance_1"})).await.expect(200);
        let none = app.post(&url("/release"), Some(&token), json!({"path": "src/auth.php", "instance_id": "instance_1"})).await;
        none.expect(404);
        assert_eq!(none.error_code(), "LCK_002");
        app.post(&url("/force-release"), Some(&token), json!({"path": "docs/**"})).await.expect(200);
        let by_instance = app.post(&url("/release-by-instance"), Some(&token), json!({"instance_id": "instance_2"})).await;
        by_instance.expect(200);
        assert_eq!(by_instance.body["data"]["count"], 3);
        assert!(app.get(&url(""), Some(&token)).await.body["data"].as_array().unwrap().is_empty());

        let activity = app.get(&format!("/api/projects/{project}/activity?limit=500"), Some(&token)).await;
        let unlocked = activity.body["data"].as_array().unwrap().iter().filter(|a| a["type"] == "file_unlocked").count();
        assert_eq!(unlocked, 7, "every release is logged (two of them after the pattern checks)");
    }

    async fn two_hundred_fifty_six_concurrent_lockers_one_holder(db: TestDb) {
        let app = Arc::new(TestApp::spawn(db).await);
        let (token, _, project) = project(&app).await;
        let mut racers = Vec::new();
        for i in 0..256 {
            let (app, token) = (app.clone(), token.clone());
            // Half ask for the file, half for a glob over it: all overlap.
            let path = if i % 2 == 0 { "src/contended.rs" } else { "src/**" };
            racers.push(tokio::spawn(async move {
                app.post(&format!("/api/projects/{project}/locks"), Some(&token),
                    json!({"path": path, "instance_id": format!("racer-{i}")})).await
            }));
        }
        let mut holders = 0;
        for racer in racers {
            let reply = racer.await.unwrap();
            match reply.status.as_u16() {
                201 => holders += 1,
                409 => assert_eq!(reply.error_code(), "LCK_001"),
                other => panic!("unexpected {other}: {}", reply.text),
            }
        }
        assert_eq!(holders, 1);
    }

    async fn expired_locks_and_claims_are_free_again(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (token, _, project) = project(&app).await;
        let store = app.state.store();
        let now = domain::clock::now();
        // A lock that lapsed a minute ago, made through the store.
        let old = store.acquire_locks(project, "gone", &["src/a.rs".into()], None,
            now - chrono::Duration::minutes(2), now - chrono::Duration::minutes(1), domain::locks::overlaps).await.unwrap();
        assert!(matches!(old[0], LockOutcome::Acquired(_)));
        assert!(app.get(&format!("/api/projects/{project}/locks"), Some(&token)).await.body["data"].as_array().unwrap().is_empty());
        app.post(&format!("/api/projects/{project}/locks"), Some(&token), json!({"path": "src/a.rs", "instance_id": "fresh"})).await.expect(201);
        let gone = app.post(&format!("/api/projects/{project}/locks/release"), Some(&token), json!({"path": "src/a.rs", "instance_id": "gone"})).await;
        gone.expect(409);

        // A claim past its deadline goes back to pending at the next sweep.
        let t = task(&app, &token, project, json!({"title": "Slow"})).await;
        let claimed = store.claim_task(t, "sleepy", now - chrono::Duration::hours(2), now - chrono::Duration::hours(1)).await.unwrap();
        assert!(claimed.is_ok());
        let swept = domain::sweeper::sweep(store, app.state.bus(), chrono::Duration::hours(24), domain::clock::now()).await.unwrap();
        assert_eq!(swept.requeued_claims, 1);
        let back = app.get(&format!("/api/tasks/{t}"), Some(&token)).await;
        assert_eq!(back.body["data"]["status"], "pending");
        assert_eq!(back.body["data"]["release_reason"], "claim timed out");
    }

    async fn a_silent_instance_is_disconnected_and_its_work_released(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| {
            c.coordination.instance_timeout_secs = 1;
            c.coordination.sweep_interval_secs = 1;
        }).await;
        let (token, _, project) = project(&app).await;
        let t = task(&app, &token, project, json!({"title": "Abandoned"})).await;
        app.post(&format!("/api/tasks/{t}/claim"), Some(&token), json!({"instance_id": "ghost"})).await.expect(200);
        app.post(&format!("/api/projects/{project}/locks"), Some(&token), json!({"path": "src/**", "instance_id": "ghost"})).await.expect(201);
        let hb = app.post(&format!("/api/projects/{project}/instances/ghost/heartbeat"), Some(&token),
            json!({"status": "busy", "context_usage": 65.5})).await;
        hb.expect(200);
        assert_eq!(hb.body["data"][0]["context_usage"], 65.5);
        field_error(&app.post(&format!("/api/projects/{project}/instances/ghost/heartbeat"), Some(&token),
            json!({"context_usage": 101})).await, "context_usage");

        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let instances = app.get(&format!("/api/projects/{project}/instances"), Some(&token)).await;
            if instances.body["data"][0]["status"] == "disconnected" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never disconnected: {}", instances.text);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let back = app.get(&format!("/api/tasks/{t}"), Some(&token)).await;
        assert_eq!(back.body["data"]["status"], "pending");
        assert_eq!(back.body["data"]["release_reason"], "instance disconnected");
        assert!(app.get(&format!("/api/projects/{project}/locks"), Some(&token)).await.body["data"].as_array().unwrap().is_empty());
        let activity = app.get(&format!("/api/projects/{project}/activity"), Some(&token)).await;
        let types: Vec<&str> = activity.body["data"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
        for expected in ["instance_disconnected", "task_released", "file_unlocked"] {
            assert!(types.contains(&expected), "{expected} missing from {types:?}");
        }
        // It can come back.
        app.post(&format!("/api/tasks/{t}/claim"), Some(&token), json!({"instance_id": "ghost"})).await.expect(200);
        let instances = app.get(&format!("/api/projects/{project}/instances"), Some(&token)).await;
        assert_eq!(instances.body["data"][0]["status"], "busy");
    }

    async fn broadcasts_are_stored_logged_and_validated(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (token, _, project) = project(&app).await;
        let url = format!("/api/projects/{project}/broadcast");
        let sent = app.post(&url, Some(&token), json!({"type": "announcement",
            "content": "Restarting server in 5 minutes", "target": "all"})).await;
        sent.expect(201);
        assert_eq!(sent.body["data"]["target"], "all");
        app.post(&url, Some(&token), json!({"type": "note", "content": "x", "target": ["instance_1"]})).await.expect(201);
        field_error(&app.post(&url, Some(&token), json!({"type": "note", "content": ""})).await, "content");
        field_error(&app.post(&url, Some(&token), json!({"type": "note", "content": "x", "target": 5})).await, "target");
        let activity = app.get(&format!("/api/projects/{project}/activity"), Some(&token)).await;
        assert_eq!(activity.body["data"][1]["type"], "broadcast");
        assert_eq!(activity.body["data"][1]["details"]["content"], "Restarting server in 5 minutes");
    }
}
