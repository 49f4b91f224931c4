//! Operating a host: `claudenest backup` while the server runs and `claudenest restore` into a
//! fresh data directory bring back the same accounts, tokens, machines, projects and keys —
//! as of the backup, not after it.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use claudenest_e2e::{ServerProcess, TEST_PASSWORD, http_client, into_reply, server_command};
use serde_json::{Value, json};

/// `claudenest ARGS` with `HOME` at `home`: its exit status and what it printed.
fn claudenest(home: &Path, args: &[&str]) -> (bool, String) {
    let out = server_command(home)
        .args(args)
        .output()
        .expect("run claudenest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http_client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = into_reply(request.send().await.unwrap()).await;
    assert!(
        reply.status.is_success(),
        "{path}: {} {}",
        reply.status,
        reply.text
    );
    reply.body["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_into_a_fresh_host() {
    let work = tempfile::tempdir().unwrap();
    let (old_data, new_data) = (work.path().join("old"), work.path().join("new"));
    let backup = work.path().join("backup");
    let server =
        ServerProcess::start_logged(&["serve", "--data-dir", old_data.to_str().unwrap()]).await;
    let base = server.base_url.clone();
    let registered: Value = http_client()
        .post(format!("{base}/api/auth/register"))
        .json(
            &json!({"name": "Ada", "email": "ada@example.com", "password": TEST_PASSWORD,
            "password_confirmation": TEST_PASSWORD}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["data"]["token"].as_str().unwrap().to_owned();
    use reqwest::Method;
    let machine = call(
        &base,
        &token,
        Method::POST,
        "/api/machines",
        Some(json!({"name": "box"})),
    )
    .await;
    let machine_id = machine["machine"]["id"]
        .as_str()
        .or(machine["id"].as_str())
        .unwrap()
        .to_owned();
    let project = call(
        &base,
        &token,
        Method::POST,
        &format!("/api/machines/{machine_id}/projects"),
        Some(json!({"name": "app", "project_path": "/srv/app"})),
    )
    .await;
    let project_id = project["id"].as_str().unwrap().to_owned();
    let tasks = format!("/api/projects/{project_id}/tasks");
    let add_task = async |title: &str| {
        let body = json!({ "title": title });
        call(&base, &token, Method::POST, &tasks, Some(body)).await
    };
    add_task("before the backup").await;
    let config_before = call(&base, &token, Method::GET, "/api/client-config", None).await;

    // Taken while the server serves.
    let (ok, said) = claudenest(
        server.home.path(),
        &[
            "backup",
            backup.to_str().unwrap(),
            "--data-dir",
            old_data.to_str().unwrap(),
        ],
    );
    assert!(ok, "{said}");
    for name in [
        "manifest.json",
        "claudenest.sqlite3",
        "secret-key",
        "pusher-secret",
        "vapid-key",
    ] {
        let mode = std::fs::metadata(backup.join(name))
            .unwrap_or_else(|_| panic!("{name} in the backup"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} is private");
    }
    let (ok, said) = claudenest(
        server.home.path(),
        &[
            "backup",
            backup.to_str().unwrap(),
            "--data-dir",
            old_data.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && said.contains("not empty"),
        "a backup never writes over another: {said}"
    );
    add_task("after the backup").await;
    drop(server);

    // Restored into a fresh data directory, by a later run.
    let home = tempfile::tempdir().unwrap();
    let new_dir = new_data.to_str().unwrap();
    let (ok, said) = claudenest(
        home.path(),
        &["restore", backup.to_str().unwrap(), "--data-dir", new_dir],
    );
    assert!(ok, "{said}");
    for name in ["secret-key", "pusher-secret", "vapid-key"] {
        assert_eq!(
            std::fs::read(old_data.join(name)).unwrap(),
            std::fs::read(new_data.join(name)).unwrap(),
            "{name}"
        );
    }
    let (ok, said) = claudenest(
        home.path(),
        &["restore", backup.to_str().unwrap(), "--data-dir", new_dir],
    );
    assert!(
        !ok && said.contains("--force"),
        "a database in place is not replaced unasked: {said}"
    );

    let server = ServerProcess::start_logged(&["serve", "--data-dir", new_dir]).await;
    let base = server.base_url.clone();
    let me = call(&base, &token, Method::GET, "/api/auth/me", None).await;
    assert_eq!(
        me["user"]["email"], "ada@example.com",
        "the same token works"
    );
    let titles: Vec<String> = call(&base, &token, Method::GET, &tasks, None)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["before the backup"], "as of the backup");
    let machines = call(&base, &token, Method::GET, "/api/machines", None).await;
    assert_eq!(machines[0]["name"], "box");
    let config_after = call(&base, &token, Method::GET, "/api/client-config", None).await;
    assert_eq!(
        config_after["vapid_public_key"], config_before["vapid_public_key"],
        "browsers' subscriptions still match"
    );
}

claudenest_e2e::on_both_stores! {
    async fn metrics_are_the_operators_and_count_what_happens(db: TestDb) {
        let token = "op-metrics-secret";
        let app = claudenest_e2e::TestApp::spawn_with(db, |c| {
            c.metrics.token = Some(claudenest::config::Secret::new(token));
        })
        .await;
        let (_, user_token) = app.user_with_token("ada@example.com").await;
        app.get("/api/health", None).await.expect(200);
        app.get("/metrics", None).await.expect(401);
        let refused = app.get("/metrics", Some(&user_token)).await;
        refused.expect(401);
        assert_eq!(refused.error_code(), "AUTH_005", "a user's token is not the operator's");
        let scraped = app.get("/metrics", Some(token)).await;
        scraped.expect(200);
        assert!(scraped.header("content-type").starts_with("text/plain"));
        let text = &scraped.text;
        for needle in [
            "claudenest_http_requests_total{",
            "route=\"/api/health\"",
            "claudenest_http_request_duration_seconds_bucket{",
            "claudenest_db_pool_connections ",
            "claudenest_sessions_live ",
            "claudenest_agent_links ",
            "claudenest_embedding_queue_depth ",
            "claudenest_rate_limited_total",
        ] {
            assert!(text.contains(needle), "no {needle} in:\n{text}");
        }
        assert!(!text.contains(&user_token) && !text.contains("/api/auth/me/"), "routes by pattern, no secrets");
        let doc = app.get("/api/openapi.json", None).await;
        assert!(doc.body["paths"]["/metrics"]["get"].is_object(), "served here, so documented here");
    }

    async fn without_a_metrics_token_the_main_address_serves_no_metrics(db: TestDb) {
        let app = claudenest_e2e::TestApp::spawn(db).await;
        let reply = app.get("/metrics", Some("anything")).await;
        reply.expect(404);
        assert_eq!(reply.error_code(), "HTTP_404");
        let doc = app.get("/api/openapi.json", None).await;
        assert!(doc.body["paths"].get("/metrics").is_none(), "not served here, not documented here");
    }
}

claudenest_e2e::on_both_stores! {
    async fn retention_prunes_by_age_and_count_in_bounded_batches(db: TestDb) {
        use claudenest::{config::RetentionSettings, domain::{clock, retention}, store::{Activity, NotificationDelivery, NotificationTarget}};
        let app = claudenest_e2e::TestApp::spawn(db).await;
        let (user, token) = app.user_with_token("ada@example.com").await;
        let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
        let project = app.post(&format!("/api/machines/{machine}/projects"), Some(&token),
            json!({"name": "app", "project_path": "/srv/app"})).await;
        project.expect(201);
        let project_id: uuid::Uuid = project.body["data"]["id"].as_str().unwrap().parse().unwrap();
        let store = app.state.store();
        let now = clock::now();
        let activity = |age_days: i64, n: i64| Activity {
            id: uuid::Uuid::now_v7(),
            project_id,
            instance_id: None,
            kind: "broadcast".into(),
            details: sqlx::types::Json(json!({"n": n})),
            created_at: now - chrono::Duration::days(age_days) - chrono::Duration::seconds(n),
        };
        // 25 entries from long ago, 5 recent ones.
        for n in 0..25 { store.insert_activity(&activity(100, n)).await.unwrap(); }
        for n in 0..5 { store.insert_activity(&activity(0, n)).await.unwrap(); }
        let target = NotificationTarget {
            id: uuid::Uuid::now_v7(), user_id: user.id, name: "t".into(), kind: "webhook".into(),
            url: "https://hooks.example.com/x".into(), secret: None, push_p256dh: None, push_auth: None,
            project_id: None, events: sqlx::types::Json(vec!["permission".into()]), include_terminal: false,
            created_at: now,
        };
        store.insert_notification_target(&target).await.unwrap();
        for age in [60, 1] {
            let at = now - chrono::Duration::days(age);
            store.insert_delivery(&NotificationDelivery {
                id: uuid::Uuid::now_v7(), target_id: target.id, user_id: user.id, event: "permission".into(),
                session_id: None, status: "delivered".into(), attempts: 1, response_status: Some(200),
                error: None, created_at: at, updated_at: at,
            }).await.unwrap();
        }
        let by_age = RetentionSettings { activity_days: 30, activity_per_project: 0, delivery_days: 30, batch: 1, ..Default::default() };

        // One row a statement, 20 statements a kind: a sweep leaves the rest for the next.
        let first = retention::sweep(store, &by_age, now).await.unwrap();
        assert_eq!(first.activity, 20, "bounded");
        assert_eq!(first.deliveries, 1);
        let second = retention::sweep(store, &by_age, now).await.unwrap();
        assert_eq!(second.activity, 5, "the old ones left over");
        assert_eq!(retention::sweep(store, &by_age, now).await.unwrap(), retention::Pruned::default());
        // By count: the newest three per project stay.
        let by_count = RetentionSettings { activity_per_project: 3, ..by_age };
        assert_eq!(retention::sweep(store, &by_count, now).await.unwrap().activity, 2);

        let kept = app.get(&format!("/api/projects/{project_id}/activity?limit=500"), Some(&token)).await;
        kept.expect(200);
        let ns: Vec<i64> = kept.body["data"].as_array().unwrap().iter()
            .filter(|a| a["type"] == "broadcast")
            .map(|a| a["details"]["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, [0, 1, 2], "the newest three recent entries stay");
        let deliveries = app.get("/api/notifications/deliveries", Some(&token)).await;
        assert_eq!(deliveries.body["data"].as_array().unwrap().len(), 1, "the recent delivery stays");
    }
}

/// Every kept fixture (a backup an earlier release made, tests/fixtures/upgrade/) restores
/// and migrates to this release with its data intact: the token still signs in, the project's
/// task and the notification target are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_made_by_earlier_releases_migrate_with_their_data() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upgrade");
    let mut versions: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    assert!(!versions.is_empty(), "no fixture in {}", fixtures.display());
    for fixture in versions {
        let home = tempfile::tempdir().unwrap();
        let data = home.path().join("data");
        let (ok, said) = claudenest(
            home.path(),
            &[
                "restore",
                fixture.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        assert!(ok, "{}: {said}", fixture.display());
        let server =
            ServerProcess::start_logged(&["serve", "--data-dir", data.to_str().unwrap()]).await;
        let base = server.base_url.clone();
        let token = std::fs::read_to_string(fixture.join("token"))
            .unwrap()
            .trim()
            .to_owned();
        use reqwest::Method;
        let me = call(&base, &token, Method::GET, "/api/auth/me", None).await;
        assert_eq!(
            me["user"]["email"],
            "ada@example.com",
            "{}",
            fixture.display()
        );
        let machines = call(&base, &token, Method::GET, "/api/machines", None).await;
        let machine = machines[0]["id"].as_str().unwrap().to_owned();
        let projects = call(
            &base,
            &token,
            Method::GET,
            &format!("/api/machines/{machine}/projects"),
            None,
        )
        .await;
        let project = projects[0]["id"].as_str().unwrap().to_owned();
        let tasks = call(
            &base,
            &token,
            Method::GET,
            &format!("/api/projects/{project}/tasks"),
            None,
        )
        .await;
        assert_eq!(
            tasks[0]["title"],
            "made by an older release",
            "{}",
            fixture.display()
        );
        let targets = call(
            &base,
            &token,
            Method::GET,
            "/api/notifications/targets",
            None,
        )
        .await;
        assert_eq!(targets[0]["name"], "pager");
    }
}
