//! Operating a host: `claudenest backup` while the server runs and `claudenest restore` into a
//! fresh data directory bring back the same accounts, tokens, machines, projects and keys —
//! as of the backup, not after it.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use claudenest_e2e::{ServerProcess, TEST_PASSWORD, http_client, server_command};
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
    let reply = request.send().await.unwrap();
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {body}");
    body["data"].clone()
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
    call(
        &base,
        &token,
        Method::POST,
        &tasks,
        Some(json!({"title": "before the backup"})),
    )
    .await;
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
    call(
        &base,
        &token,
        Method::POST,
        &tasks,
        Some(json!({"title": "after the backup"})),
    )
    .await;
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
    }

    async fn without_a_metrics_token_the_main_address_serves_no_metrics(db: TestDb) {
        let app = claudenest_e2e::TestApp::spawn(db).await;
        let reply = app.get("/metrics", Some("anything")).await;
        reply.expect(404);
        assert_eq!(reply.error_code(), "HTTP_404");
    }
}
