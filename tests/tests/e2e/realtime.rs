//! The Pusher-protocol WebSocket (API §11): the real pusher-js client, raw protocol details,
//! the signed publishing API, and events crossing host processes on PostgreSQL.

use std::{path::PathBuf, time::Duration};

use claudenest::config::{Config, Secret};
use claudenest_e2e::{Backend, PusherClient as Client, TestApp, TestDb, on_both_stores};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

pub(crate) fn pusher_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pusher");
    assert!(
        dir.join("node_modules/pusher-js").exists(),
        "pusher-js is not installed: run `npm ci --prefix tests/pusher` (.ci/run does)"
    );
    dir
}

on_both_stores! {
    async fn pusher_js_connects_subscribes_and_receives_events(db: TestDb) {
        let dir = pusher_dir();
        // The wake below goes to a loopback listener: the operator allows it.
        let app = TestApp::spawn_with(db, |c| c.wake_on_lan.allowed_targets = vec!["127.0.0.1".into()]).await;
        let (_, token_a) = app.user_with_token("ada@example.com").await;
        let ada = app.state.store().user_by_email("ada@example.com").await.unwrap().unwrap();
        let (_, token_a2) = claudenest::domain::accounts::issue_token(
            app.state.store(), ada.id, "second", vec!["*".into()], None).await.unwrap();
        let (_, token_b) = app.user_with_token("bob@example.com").await;
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        let (machine_a, _) = app.register_machine(&token_a, json!({"name": "a", "capabilities": ["wake_on_lan"],
            "wake_on_lan": {"mac": "02:00:00:00:00:0a", "broadcast": "127.0.0.1", "port": port}})).await;
        let (machine_b, _) = app.register_machine(&token_b, json!({"name": "b"})).await;
        let project = app.post(&format!("/api/machines/{machine_a}/projects"), Some(&token_a),
            json!({"name": "p", "project_path": "/srv/p"})).await;
        project.expect(201);
        let project_a = project.body["data"]["id"].as_str().unwrap().to_owned();
        let task = app.post(&format!("/api/projects/{project_a}/tasks"), Some(&token_a), json!({"title": "t"})).await;
        task.expect(201);
        let task_a = task.body["data"]["id"].as_str().unwrap().to_owned();

        let output = tokio::process::Command::new("node")
            .arg("scenario.mjs")
            .current_dir(&dir)
            .env("BASE_URL", &app.base_url)
            .env("WS_PORT", app.addr.port().to_string())
            .env("APP_KEY", &app.state.pusher().key)
            .env("TOKEN_A", &token_a)
            .env("TOKEN_A2", &token_a2)
            .env("MACHINE_A", machine_a.to_string())
            .env("MACHINE_B", machine_b.to_string())
            .env("PROJECT_A", &project_a)
            .env("TASK_A", &task_a)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output).await.expect("node finished").expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "pusher-js scenario failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("all steps passed"), "{stdout}");
        assert_eq!(stdout.lines().filter(|l| l.starts_with("ok - ")).count(), 10, "{stdout}");
    }

    async fn the_signed_publishing_api_reaches_subscribers(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let mut client = Client::open(&app).await;
        client.send(json!({"event": "pusher:subscribe", "data": {"channel": "news"}})).await;
        assert_eq!(client.next().await["event"], "pusher_internal:subscription_succeeded");

        let pusher = app.state.pusher().clone();
        let body = json!({"name": "headline", "data": "{\"title\":\"hello\"}", "channels": ["news"]}).to_string();
        let url = signed_url(&app, &pusher, "events", &body, chrono::Utc::now().timestamp());
        let reply = app.client.post(&url).header("content-type", "application/json").body(body.clone()).send().await.unwrap();
        assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
        let got = client.next().await;
        assert_eq!(got["event"], "headline");
        assert_eq!(got["channel"], "news");
        assert_eq!(serde_json::from_str::<Value>(got["data"].as_str().unwrap()).unwrap()["title"], "hello");

        // A wrong secret, an old timestamp, or a tampered body are refused.
        let wrong = claudenest::app::PusherApp { secret: "nope".into(), ..pusher.clone() };
        let stale = chrono::Utc::now().timestamp() - 3600;
        for url in [
            signed_url(&app, &wrong, "events", &body, chrono::Utc::now().timestamp()),
            signed_url(&app, &pusher, "events", &body, stale),
        ] {
            let reply = app.client.post(&url).body(body.clone()).send().await.unwrap();
            assert_eq!(reply.status(), 401);
        }
        let url = signed_url(&app, &pusher, "events", &body, chrono::Utc::now().timestamp());
        let tampered = app.client.post(&url).body(body.replace("hello", "HELLO")).send().await.unwrap();
        assert_eq!(tampered.status(), 401);

        let batch = json!({"batch": [{"name": "a", "data": "{}", "channel": "news"}, {"name": "b", "data": "{}", "channel": "news"}]}).to_string();
        let url = signed_url(&app, &pusher, "batch_events", &batch, chrono::Utc::now().timestamp());
        let reply = app.client.post(&url).body(batch).send().await.unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(client.next().await["event"], "a");
        assert_eq!(client.next().await["event"], "b");
    }
}

/// Pusher's request signing, done independently of the server's code.
fn signed_url(
    app: &TestApp,
    pusher: &claudenest::app::PusherApp,
    kind: &str,
    body: &str,
    timestamp: i64,
) -> String {
    use hmac::{Hmac, Mac};
    let md5 = format!("{:x}", md5::compute(body.as_bytes()));
    let path = format!("/apps/{}/{kind}", pusher.id);
    let query = format!(
        "auth_key={}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={md5}",
        pusher.key
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(pusher.secret.as_bytes()).unwrap();
    mac.update(format!("POST\n{path}\n{query}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("{}{path}?{query}&auth_signature={signature}", app.base_url)
}

fn fast_activity(c: &mut Config) {
    c.pusher_activity_timeout_secs = 1;
    c.pusher_max_message_bytes = 1024;
}

#[tokio::test]
async fn the_protocol_answers_mistakes_without_dropping_the_socket() {
    let app = TestApp::spawn_with(
        TestDb::create(Backend::Sqlite).await.unwrap(),
        fast_activity,
    )
    .await;
    let (ws, first) = Client::connect(&app, "wrong-key").await;
    drop(ws);
    assert_eq!(first["event"], "pusher:error");
    let err: Value = first["data"]
        .as_str()
        .map(|s| serde_json::from_str(s).unwrap())
        .unwrap();
    assert_eq!(err["code"], 4001);

    let mut client = Client::open(&app).await;
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(client.next().await["event"], "pusher:pong");
    for bad in [
        json!("not an object"),
        json!({"event": "pusher:teleport", "data": {}}),
    ] {
        client
            .ws
            .send(Message::Text(bad.to_string().into()))
            .await
            .unwrap();
        let reply = client.next().await;
        assert_eq!(reply["event"], "pusher:error");
        assert!(reply["data"].as_str().unwrap().contains("4200"));
    }
    client.ws.send(Message::Text("{{{".into())).await.unwrap();
    assert!(
        client.next().await["data"]
            .as_str()
            .unwrap()
            .contains("4200")
    );

    // A forged signature is refused, and nothing is subscribed; the socket stays (the next
    // answer is to the next message).
    client.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.x", "auth": "claudenest:deadbeef"}})).await;
    let refused = client.next().await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    let said: Value = serde_json::from_str(refused["data"].as_str().unwrap()).unwrap();
    assert_eq!(said["status"], 401, "{refused}");
    assert_eq!(app.state.hub().subscriber_count("private-user.x"), 0);

    // Client events need a private channel the sender is in.
    client
        .send(json!({"event": "client-x", "channel": "news", "data": {}}))
        .await;
    assert!(
        client.next().await["data"]
            .as_str()
            .unwrap()
            .contains("4009")
    );
    client
        .send(json!({"event": "pusher:subscribe", "data": {"channel": "news"}}))
        .await;
    client.next().await;
    client
        .send(json!({"event": "client-x", "channel": "news", "data": {}}))
        .await;
    assert!(
        client.next().await["data"]
            .as_str()
            .unwrap()
            .contains("4301")
    );

    // Still open after all that.
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(client.next().await["event"], "pusher:pong");

    // Over the size limit: 1009.
    let big = json!({"event": "pusher:ping", "data": {"pad": "x".repeat(2000)}});
    client.send(big).await;
    assert_eq!(client.next().await["closed"], 1009);
}

#[tokio::test]
async fn idle_sockets_are_pinged_and_closed_without_a_pong_and_shutdown_says_reconnect() {
    let app = TestApp::spawn_with(
        TestDb::create(Backend::Sqlite).await.unwrap(),
        fast_activity,
    )
    .await;
    let mut silent = Client::open(&app).await;
    assert_eq!(
        silent.next().await["event"],
        "pusher:ping",
        "pinged after 1 s of silence"
    );
    let error = silent.next().await;
    assert!(error["data"].as_str().unwrap().contains("4201"), "{error}");
    assert_eq!(silent.next().await["closed"], 4201);

    let mut polite = Client::open(&app).await;
    assert_eq!(polite.next().await["event"], "pusher:ping");
    polite
        .send(json!({"event": "pusher:pong", "data": {}}))
        .await;
    assert_eq!(
        polite.next().await["event"],
        "pusher:ping",
        "still connected a round later"
    );
    polite
        .send(json!({"event": "pusher:pong", "data": {}}))
        .await;
    app.state.shutdown().cancel();
    assert_eq!(polite.next().await["closed"], 4200);
}

#[tokio::test]
async fn new_websocket_connections_are_rate_limited_per_ip() {
    let app = TestApp::spawn_with(TestDb::create(Backend::Sqlite).await.unwrap(), |c| {
        c.rate_limits.websocket_per_minute = 2;
    })
    .await;
    let _a = Client::open(&app).await;
    let _b = Client::open(&app).await;
    let url = format!("ws://{}/app/{}", app.addr, app.state.pusher().key);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("a third connection within the minute should get 429: {other:?}"),
    }
}

#[tokio::test]
async fn the_auth_endpoint_signs_only_the_callers_channels() {
    let app = TestApp::spawn(TestDb::create(Backend::Sqlite).await.unwrap()).await;
    let (ada, token) = app.user_with_token("ada@example.com").await;
    let (bob, _) = app.user_with_token("bob@example.com").await;
    let mut client = Client::open(&app).await;
    let own = format!("private-user.{}", ada.id);
    let ok = client.subscribe_authorized(&app, &token, &own).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(app.state.hub().subscriber_count(&own), 1);

    let call = |body: Value| {
        app.client
            .post(format!("{}/api/broadcasting/auth", app.base_url))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for channel in [
        format!("private-user.{}", bob.id),
        "private-anything.1".into(),
        "news".into(),
        format!("private-session.{}", uuid::Uuid::now_v7()),
    ] {
        let reply = call(json!({"socket_id": client.socket_id, "channel_name": channel}))
            .await
            .unwrap();
        assert_eq!(reply.status(), 403, "{channel}");
    }
    let bad = call(json!({"socket_id": "abc", "channel_name": own}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let anonymous = app
        .client
        .post(format!("{}/api/broadcasting/auth", app.base_url))
        .form(&[("socket_id", "1.1"), ("channel_name", own.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Two host processes on one PostgreSQL database: an event caused on A reaches a subscriber on B.
#[tokio::test]
async fn events_cross_host_processes_on_postgres() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let secret = Secret::new("shared-secret-for-both-nodes");
    let shared = db.share();
    let s1 = secret.clone();
    // The wake below goes to a loopback listener: the operator allows it.
    let loopback = vec!["127.0.0.1".to_owned()];
    let allowed = loopback.clone();
    let node_a = TestApp::spawn_with(db, move |c| {
        c.pusher_app_secret = Some(s1);
        c.wake_on_lan.allowed_targets = allowed;
    })
    .await;
    let node_b = TestApp::spawn_with(shared, move |c| {
        c.pusher_app_secret = Some(secret);
        c.wake_on_lan.allowed_targets = loopback;
    })
    .await;
    let (_, token) = node_a.user_with_token("ada@example.com").await;
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let (machine, _) = node_a
        .register_machine(
            &token,
            json!({"name": "m", "capabilities": ["wake_on_lan"],
        "wake_on_lan": {"mac": "02:00:00:00:00:0b", "broadcast": "127.0.0.1", "port": port}}),
        )
        .await;

    // The real pusher-js, connected to node B, sees a REST call made on node A.
    let output = tokio::process::Command::new("node")
        .arg("cross_node.mjs")
        .current_dir(pusher_dir())
        .env("NODE_A_URL", &node_a.base_url)
        .env("NODE_B_URL", &node_b.base_url)
        .env("NODE_B_PORT", node_b.addr.port().to_string())
        .env("APP_KEY", &node_b.state.pusher().key)
        .env("TOKEN", &token)
        .env("MACHINE", machine.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let mut on_b = Client::open(&node_b).await;
    let channel = format!("private-machine.{machine}");
    let ok = on_b.subscribe_authorized(&node_b, &token, &channel).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    node_a
        .post(
            &format!("/api/machines/{machine}/wake"),
            Some(&token),
            json!({}),
        )
        .await
        .expect(200);
    let event = on_b.next().await;
    assert_eq!(event["event"], "machine:status", "{event}");
    assert_eq!(event["channel"], channel);

    // A large event goes through the table, not the NOTIFY payload.
    let big = "x".repeat(20_000);
    node_a.state.bus().publish(claudenest::events::Event::new(
        &channel,
        "big",
        json!({"blob": big}),
    ));
    let event = on_b.next().await;
    assert_eq!(event["event"], "big");
    let data: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["blob"].as_str().unwrap().len(), 20_000);
}

/// An office behind one address connects; one socket cannot take the host's memory or CPU:
/// channels per connection, messages and client events per second, and sockets per address
/// are capped, each answered with its Pusher error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_capped_but_an_office_behind_one_address_connects() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let defaults = claudenest::config::RateLimits::default();
    let app = TestApp::spawn_with(db, |c| {
        c.rate_limits.websocket_per_minute = defaults.websocket_per_minute;
        c.rate_limits.websocket_connections_per_address =
            defaults.websocket_connections_per_address;
    })
    .await;
    // A thousand browser tabs from one address within the minute.
    let clients = futures_util::future::join_all((0..1000).map(|_| Client::open(&app))).await;
    assert_eq!(clients.len(), 1000);
    drop(clients);

    let error_code = |frame: &Value| -> Option<u64> {
        let data: Value = match &frame["data"] {
            Value::String(text) => serde_json::from_str(text).ok()?,
            other => other.clone(),
        };
        data["code"].as_u64()
    };
    // Channels: a hundred per connection, then a subscription error (the socket stays).
    let mut client = Client::open(&app).await;
    for i in 0..101 {
        client
            .send(json!({"event": "pusher:subscribe", "data": {"channel": format!("news-{i}")}}))
            .await;
    }
    let mut succeeded = 0;
    let refused = loop {
        let frame = client.next().await;
        match frame["event"].as_str().unwrap() {
            "pusher_internal:subscription_succeeded" => succeeded += 1,
            "pusher:subscription_error" => break frame,
            _ => {}
        }
    };
    assert_eq!(succeeded, 100);
    assert_eq!(refused["channel"], "news-100");

    // Client events: ten a second on a private channel, then 4301.
    let (_, token) = app.user_with_token("ada@example.com").await;
    let user = app
        .state
        .store()
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    let channel = format!("private-user.{}", user.id);
    let mut client = Client::open(&app).await;
    client.subscribe_authorized(&app, &token, &channel).await;
    for _ in 0..30 {
        client
            .send(json!({"event": "client-typing", "channel": channel, "data": {}}))
            .await;
    }
    let limited = loop {
        let frame = client.next().await;
        if frame["event"] == "pusher:error" {
            break frame;
        }
    };
    assert_eq!(error_code(&limited), Some(4301), "{limited}");

    // Messages: a flood is answered with 4302 and dropped.
    for _ in 0..1500 {
        client
            .send(json!({"event": "pusher:ping", "data": {}}))
            .await;
    }
    let flooded = loop {
        let frame = client.next().await;
        if frame["event"] == "pusher:error" && error_code(&frame) == Some(4302) {
            break frame;
        }
    };
    assert_eq!(error_code(&flooded), Some(4302));

    // Sockets per address: over the quota, 4004 and closed.
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let app =
        TestApp::spawn_with(db, |c| c.rate_limits.websocket_connections_per_address = 2).await;
    let _a = Client::open(&app).await;
    let _b = Client::open(&app).await;
    let key = app.state.pusher().key.clone();
    let (_, first) = Client::connect(&app, &key).await;
    assert_eq!(first["event"], "pusher:error");
    assert_eq!(error_code(&first), Some(4004), "{first}");
}
