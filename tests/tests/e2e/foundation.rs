//! End-to-end checks of the foundation: health, envelope, request ids, token authentication,
//! rate limits and the OpenAPI document, against a real server on a loopback port.

use chrono::Duration;
use claudenest::domain::{accounts, clock};
use claudenest_e2e::{TestApp, TestDb, on_both_stores};
use reqwest::Method;
use serde_json::Value;

on_both_stores! {
    async fn health_answers_as_the_spec_says(db: TestDb) {
        let backend = db.backend;
        let app = TestApp::spawn(db).await;
        let reply = app.get("/api/health", None).await;
        reply.expect(200);
        let body = &reply.body;
        assert_eq!(body["success"], true);
        let data = body["data"].as_object().unwrap();
        let mut keys: Vec<_> = data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["search", "status", "store", "timestamp", "version"]);
        // No model in a fresh data directory: the hashing fallback, and it says so.
        assert_eq!(data["search"], serde_json::json!({"embedder": "hashing-v1", "semantic": false, "dimensions": 384}));
        assert_eq!(data["status"], "ok");
        assert_eq!(data["version"], claudenest::VERSION);
        chrono::DateTime::parse_from_rfc3339(data["timestamp"].as_str().unwrap()).unwrap();
        let kind = match backend {
            claudenest_e2e::Backend::Sqlite => "sqlite",
            claudenest_e2e::Backend::Postgres => "postgres",
        };
        assert_eq!(data["store"], serde_json::json!({"kind": kind, "reachable": true}));
        assert_eq!(body["meta"]["request_id"], reply.header("x-request-id"));
    }

    async fn health_reports_an_unreachable_store_with_503(db: TestDb) {
        let app = TestApp::spawn(db).await;
        app.get("/api/health/ready", None).await.expect(200);
        app.state.store().close().await;
        let reply = app.get("/api/health", None).await;
        reply.expect(503);
        assert_eq!(reply.body["data"]["status"], "degraded");
        assert_eq!(reply.body["data"]["store"]["reachable"], false);
        // Not ready for traffic, yet alive: a database outage gets no host restarted.
        let ready = app.get("/api/health/ready", None).await;
        ready.expect(503);
        assert_eq!(ready.body["data"]["status"], "store unreachable");
        app.get("/api/health/live", None).await.expect(200);
    }

    async fn a_host_shutting_down_is_alive_but_not_ready(db: TestDb) {
        let app = TestApp::spawn(db).await;
        app.get("/api/health/ready", None).await.expect(200);
        app.state.shutdown().cancel();
        let ready = app.get("/api/health/ready", None).await;
        ready.expect(503);
        assert_eq!(ready.body["data"]["status"], "shutting down");
        app.get("/api/health/live", None).await.expect(200);
    }

    async fn tokens_authenticate_and_invalid_ones_get_the_same_401(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (user, token) = app.user_with_token("ada@example.com").await;

        let me = app.get("/api/auth/me", Some(&token)).await;
        me.expect(200);
        let shown = &me.body["data"]["user"];
        assert_eq!(shown["id"], user.id.to_string());
        assert_eq!(shown["email"], "ada@example.com");
        assert_eq!(shown["name"], "Test User");
        assert!(shown.get("email_verified_at").is_some() && shown.get("avatar_url").is_some());
        assert!(shown.get("password_hash").is_none());

        let store = app.state.store();
        let (_, expired_secret) = accounts::issue_token(
            store,
            user.id,
            "expired",
            vec!["*".into()],
            Some(clock::now() - Duration::seconds(1)),
        )
        .await
        .unwrap();
        let (revoked, revoked_secret) =
            accounts::issue_token(store, user.id, "revoked", vec!["*".into()], None)
                .await
                .unwrap();
        assert!(store.revoke_token(user.id, revoked.id, clock::now()).await.unwrap());

        let wrong = format!("{}x", &token[..token.len() - 1]);
        for bad in [None, Some("cn_nope"), Some("mn_abc"), Some(wrong.as_str()),
                    Some(expired_secret.as_str()), Some(revoked_secret.as_str())] {
            let reply = app.get("/api/auth/me", bad).await;
            reply.expect(401);
            assert_eq!(reply.error_code(), "AUTH_005", "{bad:?}");
            assert_eq!(reply.body["error"]["message"], "Unauthenticated");
        }
    }

    async fn authenticated_requests_are_rate_limited_per_token(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| c.rate_limits.api_per_minute = 3).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (_, bob) = app.user_with_token("bob@example.com").await;
        for remaining in ["2", "1", "0"] {
            let reply = app.get("/api/auth/me", Some(&ada)).await;
            reply.expect(200);
            assert_eq!(reply.header("x-ratelimit-limit"), "3");
            assert_eq!(reply.header("x-ratelimit-remaining"), remaining);
            let reset: u64 = reply.header("x-ratelimit-reset").parse().unwrap();
            let now = chrono::Utc::now().timestamp() as u64;
            assert!(reset > now && reset <= now + 61, "reset {reset} vs now {now}");
        }
        let limited = app.get("/api/auth/me", Some(&ada)).await;
        limited.expect(429);
        assert_eq!(limited.error_code(), "RTE_001");
        let retry: u64 = limited.header("retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(limited.header("x-ratelimit-remaining"), "0");
        // Another token has its own budget; public routes are not in the group.
        app.get("/api/auth/me", Some(&bob)).await.expect(200);
        let health = app.get("/api/health", None).await;
        health.expect(200);
        assert!(health.headers.get("x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_replaced_otherwise() {
    let app = TestApp::spawn(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await;
    let url = format!("{}/api/health", app.base_url);
    let sent = app
        .client
        .get(&url)
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.headers()["x-request-id"], "trace-42.a_b:c");
    let body: Value = sent.json().await.unwrap();
    assert_eq!(body["meta"]["request_id"], "trace-42.a_b:c");

    let bad = app
        .client
        .get(&url)
        .header("x-request-id", "has space")
        .send()
        .await
        .unwrap();
    let replaced = bad.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        replaced.starts_with("req_") && replaced.len() == 28,
        "{replaced}"
    );

    let a = app.get("/api/health", None).await;
    let b = app.get("/api/health", None).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn unknown_routes_answer_404_in_the_envelope() {
    let app = TestApp::spawn(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await;
    let reply = app.get("/api/does-not-exist", None).await;
    reply.expect(404);
    assert_eq!(reply.error_code(), "HTTP_404");
    assert!(
        reply.body["meta"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    let reply = app.call(Method::DELETE, "/api/health", None, None).await;
    reply.expect(405);
    assert_eq!(reply.error_code(), "HTTP_405");
}

/// Every operation in the document is routed, and every route registered is documented: the
/// document and the router come from the same registrations, and this checks it from outside.
#[tokio::test]
async fn openapi_document_lists_every_route_and_only_real_ones() {
    let app = TestApp::spawn(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let doc = app.get("/api/openapi.json", None).await;
    doc.expect(200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert_eq!(doc.body["info"]["version"], claudenest::VERSION);
    let paths = doc.body["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // Fill path parameters with a syntactically valid id.
            let concrete = path
                .replace(['{', '}'], "")
                .split('/')
                .map(|seg| {
                    let param = item[method]["parameters"]
                        .as_array()
                        .and_then(|ps| ps.iter().find(|p| p["name"] == seg && p["in"] == "path"));
                    match param {
                        // The document's own example where it gives one.
                        Some(p) if p["example"].is_string() => {
                            p["example"].as_str().unwrap().to_owned()
                        }
                        Some(_) => "0190b3c2-7c4e-7abc-8def-0123456789ab".to_owned(),
                        None => seg.to_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let reply = app
                .call(
                    method.to_uppercase().parse().unwrap(),
                    &concrete,
                    None,
                    None,
                )
                .await;
            let code = reply.body["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "HTTP_404" && code != "HTTP_405",
                "{method} {path} is documented but not routed"
            );
            // What it answers is what the document says it can answer: without a token, and
            // with one (unknown ids, no body) — logout would end the token, so it is left out.
            let documented = |reply: &claudenest_e2e::Reply| {
                assert!(
                    op["responses"].get(reply.status.as_str()).is_some(),
                    "{method} {path} answered {} without documenting it: {}",
                    reply.status,
                    reply.text
                );
            };
            documented(&reply);
            if path != "/api/auth/logout" {
                let with_token = app
                    .call(
                        method.to_uppercase().parse().unwrap(),
                        &concrete,
                        Some(&token),
                        None,
                    )
                    .await;
                documented(&with_token);
            }
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    for expected in [
        "GET /api/health",
        "GET /api/openapi.json",
        "GET /api/auth/me",
    ] {
        assert!(
            operations.iter().any(|o| o == expected),
            "{expected} missing from {operations:?}"
        );
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    assert!(
        schemas.contains_key("ErrorEnvelope"),
        "error responses are described"
    );
}

/// The data directory and the SQLite files are private to the host's user: they hold the
/// database (sealed MCP secrets among it), the Pusher secret, the sealing key and compiled
/// plugins.
#[tokio::test]
async fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::spawn(db).await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    app.get("/api/auth/me", Some(&token)).await.expect(200);
    let dir = app.state.config().data_dir.clone();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let url = app.state.config().effective_database_url();
    let file = std::path::PathBuf::from(url.trim_start_matches("sqlite://"));
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    for name in ["pusher-secret", "secret-key"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}

/// The document is browsable at `/api/docs`, from files inside the binary: the pages load their
/// scripts from this server only (no CDN) and the document by a relative URL (sub-paths work).
#[tokio::test]
async fn the_api_reference_is_browsable_without_a_cdn() {
    let app = TestApp::spawn(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await;
    let page = app.get("/api/docs", None).await;
    page.expect(200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    for needle in [
        "src=\"http",
        "href=\"http",
        "//cdn",
        "unpkg.com",
        "jsdelivr",
    ] {
        assert!(
            !page.text.contains(needle),
            "the page loads {needle}…: {}",
            page.text
        );
    }
    let init = app.get("/api/docs/swagger-initializer.js", None).await;
    init.expect(200);
    assert!(init.text.contains("\"../openapi.json\""), "{}", init.text);
    let bundle = app.get("/api/docs/swagger-ui-bundle.js", None).await;
    bundle.expect(200);
    assert!(bundle.text.len() > 100_000, "the whole bundle is served");
    let missing = app.get("/api/docs/nothing.js", None).await;
    assert_eq!(missing.error_code(), "HTTP_404");
}
