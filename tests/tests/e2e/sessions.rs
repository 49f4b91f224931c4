//! Sessions (API §4) with a real agent process running a stand-in `claude` in a real PTY,
//! on both stores: typing and reading back, resize reaching the PTY, exit codes, terminate,
//! logs, and terminal input through the Pusher socket (`client-session:input`).

use std::time::Duration;

use claudenest_e2e::{AgentProcess, TestApp, fast_links, on_both_stores};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// A user, a machine with a running agent whose `claude` is the stand-in.
async fn machine_with_agent(
    app: &TestApp,
    max_sessions: u32,
) -> (String, Uuid, AgentProcess, tempfile::TempDir) {
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, machine_token) = app
        .register_machine(&token, json!({"name": "box", "max_sessions": max_sessions}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let script = claudenest_e2e::write_stand_in_claude(dir.path());
    let agent = AgentProcess::start(
        app,
        &machine_token,
        &[
            "--claude-path",
            script.to_str().unwrap(),
            "--kill-grace-secs",
            "1",
        ],
    );
    app.wait_for_status(&token, machine, "online", Duration::from_secs(15))
        .await;
    (token, machine, agent, dir)
}

async fn wait_for_status(app: &TestApp, token: &str, session: Uuid, want: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = app
            .get(&format!("/api/sessions/{session}"), Some(token))
            .await;
        if reply.body["data"]["status"] == want {
            return reply.body["data"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session is {}, not {want}",
            reply.body["data"]["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every output entry after `since`, in sequence order (the `since_seq` reader).
async fn output_since(app: &TestApp, token: &str, session: Uuid, since: i64) -> Vec<(i64, String)> {
    let logs = app
        .get(
            &format!("/api/sessions/{session}/logs?since_seq={since}&limit=10000"),
            Some(token),
        )
        .await;
    logs.expect(200);
    logs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["seq"].as_i64().unwrap(),
                l["data"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Another writer holding the database, as a long transaction or a slow disk does: the host's
/// session-log writes wait until [`LogWritesHeld::release`] while reads go on. SQLite is held
/// whole (`BEGIN IMMEDIATE`; WAL readers are not blocked); PostgreSQL has `session_logs` locked
/// against writes only.
enum LogWritesHeld {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl LogWritesHeld {
    async fn hold(db: &claudenest_e2e::TestDb) -> Self {
        use sqlx::Connection as _;
        match db.backend {
            claudenest_e2e::Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Sqlite(conn)
            }
            claudenest_e2e::Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN; LOCK TABLE session_logs IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        // Dropping the connection would end the transaction too, but only once it is closed.
        match self {
            Self::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            Self::Postgres(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            }
        }
    }
}

/// The numbers of the `line N` lines in `text`, in order.
fn counted_lines(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("line ")?.parse().ok())
        .collect()
}

async fn create(app: &TestApp, token: &str, machine: Uuid, cols: u16, rows: u16) -> (Uuid, String) {
    let reply = app
        .post(
            &format!("/api/machines/{machine}/sessions"),
            Some(token),
            json!({
        "mode": "interactive", "project_path": "/tmp", "pty_size": {"cols": cols, "rows": rows}}),
        )
        .await;
    reply.expect(201);
    // Answered as created (API §4.2); the agent has started it by then.
    assert_eq!(
        reply.body["data"]["session"]["status"], "created",
        "{}",
        reply.text
    );
    let id = reply.body["data"]["session"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ws = reply.body["data"]["websocket_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ws.starts_with("ws_"));
    (id, ws)
}

on_both_stores! {
    async fn typing_reading_resizing_and_exit_codes_through_a_real_pty(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;

        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "hello\n"})).await.expect(200);
        app.wait_for_output(&token, session, "you said: hello").await;
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "size\n"})).await.expect(200);
        app.wait_for_output(&token, session, "24 80").await;
        let resized = app.post(&format!("/api/sessions/{session}/resize"), Some(&token), json!({"cols": 100, "rows": 30})).await;
        resized.expect(200);
        assert_eq!(resized.body["data"]["pty_size"], json!({"cols": 100, "rows": 30}));
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "size\n"})).await.expect(200);
        app.wait_for_output(&token, session, "30 100").await;

        let machine_view = app.get(&format!("/api/machines/{machine}"), Some(&token)).await;
        assert_eq!(machine_view.body["data"]["active_sessions_count"], 1);

        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "exit 3\n"})).await.expect(200);
        let ended = wait_for_status(&app, &token, session, "error").await;
        assert_eq!(ended["exit_code"], 3);
        assert!(ended["ended_at"].is_string() && ended["duration"].is_number());
        let late = app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "x\n"})).await;
        late.expect(400);
        assert_eq!(late.error_code(), "SES_002");
        let again = app.post(&format!("/api/sessions/{session}/terminate"), Some(&token), json!({})).await;
        again.expect(400);
        assert_eq!(again.error_code(), "SES_002");

        // The log keeps output in sequence order and filters by type.
        let logs = app.get(&format!("/api/sessions/{session}/logs"), Some(&token)).await;
        let seqs: Vec<i64> = logs.body["data"].as_array().unwrap().iter().filter_map(|l| l["seq"].as_i64()).collect();
        assert!(!seqs.is_empty() && seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let inputs = app.get(&format!("/api/sessions/{session}/logs?type=input"), Some(&token)).await;
        let typed: Vec<&str> = inputs.body["data"].as_array().unwrap().iter().map(|l| l["data"].as_str().unwrap()).collect();
        assert_eq!(typed, ["hello\n", "size\n", "size\n", "exit 3\n"]);
        app.get(&format!("/api/sessions/{session}/logs?type=noise"), Some(&token)).await.expect(422);

        // An ended session can be removed, with its logs.
        app.call(Method::DELETE, &format!("/api/sessions/{session}"), Some(&token), None).await.expect(200);
        let gone = app.get(&format!("/api/sessions/{session}"), Some(&token)).await;
        assert_eq!(gone.error_code(), "SES_001", "{}", gone.text);
        let logs = app.get(&format!("/api/sessions/{session}/logs"), Some(&token)).await;
        assert_eq!(logs.error_code(), "SES_001", "{}", logs.text);
    }

    async fn sessions_are_terminated_limited_and_validated(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, dir) = machine_with_agent(&app, 1).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        let full = app.post(&format!("/api/machines/{machine}/sessions"), Some(&token), json!({"mode": "interactive"})).await;
        full.expect(409);
        assert_eq!(full.error_code(), "SES_003");

        let ended = app.post(&format!("/api/sessions/{session}/terminate"), Some(&token), json!({})).await;
        ended.expect(200);
        assert_eq!(ended.body["data"]["status"], "terminated");
        let list = app.get(&format!("/api/machines/{machine}/sessions?status=terminated"), Some(&token)).await;
        assert_eq!(list.body["meta"]["pagination"]["total"], 1);
        // The slot is free again.
        create(&app, &token, machine, 80, 24).await;

        let url = format!("/api/machines/{machine}/sessions");
        for (body, field) in [
            (json!({"mode": "telepathic"}), "mode"),
            (json!({"mode": "interactive", "pty_size": {"cols": 1, "rows": 24}}), "cols"),
            (json!({"mode": "oneshot"}), "initial_prompt"),
        ] {
            let reply = app.post(&url, Some(&token), body.clone()).await;
            reply.expect(422);
            assert!(reply.body["error"]["errors"][field].is_array(), "{body}: {}", reply.text);
        }
        let (_, bob) = app.user_with_token("bob@example.com").await;
        let foreign = app.get(&format!("/api/sessions/{session}"), Some(&bob)).await;
        foreign.expect(404);
        assert_eq!(foreign.error_code(), "SES_001");
        // Typing into someone else's session: the same 404, and nothing reaches it or its log.
        let typed = app.post(&format!("/api/sessions/{session}/input"), Some(&bob), json!({"data": "not yours\n"})).await;
        typed.expect(404);
        assert_eq!(typed.error_code(), "SES_001");
        let logged = app.get(&format!("/api/sessions/{session}/logs?type=input"), Some(&token)).await;
        assert!(!logged.text.contains("not yours"), "{}", logged.text);
        let (offline, _) = app.register_machine(&token, json!({"name": "asleep"})).await;
        let refused = app.post(&format!("/api/machines/{offline}/sessions"), Some(&token), json!({"mode": "interactive"})).await;
        refused.expect(400);
        assert_eq!(refused.error_code(), "MCH_002");

        // Deleting the machine ends its sessions' processes and drops their records.
        let list = app.get(&format!("/api/machines/{machine}/sessions?status=running"), Some(&token)).await;
        let live = list.body["data"][0]["id"].as_str().unwrap().to_owned();
        let script = dir.path().join("claude");
        // The stand-in runs as `/bin/sh <script>` (the agent's own command line names it too).
        let pattern = format!("^/bin/sh {}", script.display());
        let running = || {
            std::process::Command::new("pgrep").arg("-f").arg(&pattern).output()
                .map(|o| !o.stdout.is_empty()).unwrap_or(false)
        };
        assert!(running(), "the stand-in runs before the delete");
        app.call(Method::DELETE, &format!("/api/machines/{machine}"), Some(&token), None).await.expect(200);
        app.get(&format!("/api/sessions/{live}"), Some(&token)).await.expect(404);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while running() {
            assert!(std::time::Instant::now() < deadline, "the session's process outlived its machine");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sessions_whose_agent_died_end_as_errors_when_it_comes_back(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, mut agent, dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        agent.kill();
        app.wait_for_status(&token, machine, "offline", Duration::from_secs(15)).await;
        // Typed while no agent listens: refused, and the log says the input did not arrive.
        let typed = app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "into the void\n"})).await;
        typed.expect(400);
        assert_eq!(typed.error_code(), "MCH_002", "{}", typed.text);
        let logs = app.get(&format!("/api/sessions/{session}/logs"), Some(&token)).await;
        let entries = logs.body["data"].as_array().unwrap();
        let at = entries.iter().position(|e| e["type"] == "input" && e["data"] == "into the void\n").expect("the input is logged");
        assert_eq!(entries[at + 1]["type"], "error", "{}", logs.text);
        assert!(entries[at + 1]["data"].as_str().unwrap().starts_with("input not delivered"), "{}", logs.text);
        let machine_token = {
            let reply = app.post(&format!("/api/machines/{machine}/regenerate-token"), Some(&token), json!({})).await;
            reply.body["data"]["token"].as_str().unwrap().to_owned()
        };
        let script = dir.path().join("claude");
        let _again = AgentProcess::start(&app, &machine_token, &["--claude-path", script.to_str().unwrap()]);
        let ended = wait_for_status(&app, &token, session, "error").await;
        assert!(ended["ended_at"].is_string());
        let errors = app.get(&format!("/api/sessions/{session}/logs?type=error"), Some(&token)).await;
        let errors = errors.body["data"].as_array().unwrap();
        assert!(errors.iter().any(|e| e["data"].as_str().unwrap().contains("agent restarted")), "{errors:?}");
    }

    async fn terminal_io_through_the_pusher_socket_with_a_session_token(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let (session, ws_token) = create(&app, &token, machine, 80, 24).await;
        // Typed once the stand-in reads its terminal (keys before that may be flushed by it).
        app.wait_for_output(&token, session, "stand-in claude ready").await;

        let url = format!("ws://{}/app/{}", app.addr, app.state.pusher().key);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        let established: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
        let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
        let socket_id = data["socket_id"].as_str().unwrap().to_owned();
        let channel = format!("private-session.{session}");

        // The ws_ token opens this session's channel, and no other.
        let auth = |channel: String| {
            app.client.post(format!("{}/api/broadcasting/auth", app.base_url)).bearer_auth(&ws_token)
                .form(&[("socket_id", socket_id.clone()), ("channel_name", channel)]).send()
        };
        assert_eq!(auth(format!("private-machine.{machine}")).await.unwrap().status(), 403);
        let signed: Value = auth(channel.clone()).await.unwrap().json().await.unwrap();
        ws.send(Message::Text(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": signed["auth"]}}).to_string().into())).await.unwrap();

        let mut subscribed = false;
        let mut sent = false;
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !seen.contains("you said: over the socket") {
            let frame = tokio::time::timeout_at(deadline, ws.next()).await.expect("output in time").unwrap().unwrap();
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            match value["event"].as_str().unwrap() {
                "pusher_internal:subscription_succeeded" => subscribed = true,
                "session:output" => {
                    let payload: Value = serde_json::from_str(value["data"].as_str().unwrap()).unwrap();
                    assert!(payload["seq"].as_u64().unwrap() >= 1);
                    seen.push_str(payload["data"].as_str().unwrap());
                }
                _ => {}
            }
            if subscribed && !sent {
                sent = true;
                ws.send(Message::Text(json!({"event": "client-session:input", "channel": channel,
                    "data": {"data": "over the socket\n"}}).to_string().into())).await.unwrap();
            }
        }
        // Typed keys are logged beside the typing (they wait for the machine, not the log).
        let typed = app.wait_for_log(&token, session, "input", "over the socket").await;
        assert_eq!(typed, "over the socket\n");
    }

    async fn watching_needs_read_typing_needs_write_and_child_tokens_die_with_their_parent(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        let store = app.state.store();
        let ada = store.user_by_email("ada@example.com").await.unwrap().unwrap();
        let issue = async |abilities: &[&str]| {
            let abilities = abilities.iter().map(|a| (*a).to_owned()).collect();
            claudenest::domain::accounts::issue_token(store, ada.id, "t", abilities, None).await.unwrap().1
        };
        let channel = format!("private-session.{session}");
        let auth = async |bearer: &str, socket_id: &str| {
            let reply = app.client.post(format!("{}/api/broadcasting/auth", app.base_url)).bearer_auth(bearer)
                .form(&[("socket_id", socket_id), ("channel_name", channel.as_str())]).send().await.unwrap();
            let status = reply.status().as_u16();
            (status, reply.json::<Value>().await.unwrap_or_default())
        };

        // A token that cannot read sessions gets no signature at all.
        let tokens_only = issue(&["tokens:read"]).await;
        let mut watcher = claudenest_e2e::PusherClient::open(&app).await;
        assert_eq!(auth(&tokens_only, &watcher.socket_id).await.0, 403);

        // Read-only: it watches, but what it types is refused and never reaches the terminal;
        // so does the ws_ token it gets from attach.
        let reader = issue(&["sessions:read"]).await;
        let attached = app.post(&format!("/api/sessions/{session}/attach"), Some(&reader), json!({})).await;
        attached.expect(200);
        let reader_ws = attached.body["data"]["websocket_token"].as_str().unwrap().to_owned();
        for bearer in [reader.as_str(), reader_ws.as_str()] {
            let (status, signed) = auth(bearer, &watcher.socket_id).await;
            assert_eq!(status, 200, "{signed}");
            watcher.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": signed["auth"]}})).await;
            loop {
                let frame = watcher.next().await;
                if frame["event"] == "pusher_internal:subscription_succeeded" {
                    break;
                }
            }
            watcher.send(json!({"event": "client-session:input", "channel": channel, "data": {"data": "rm -rf ~\n"}})).await;
            let refused = loop {
                let frame = watcher.next().await;
                if frame["event"] == "pusher:error" {
                    break frame;
                }
            };
            let data: Value = match &refused["data"] {
                Value::String(text) => serde_json::from_str(text).unwrap(),
                other => other.clone(),
            };
            assert_eq!(data["code"], 4301, "{refused}");
            watcher.send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}})).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let inputs = app.get(&format!("/api/sessions/{session}/logs?type=input"), Some(&token)).await;
        assert_eq!(inputs.body["data"], json!([]), "a watcher typed: {}", inputs.text);

        // A ws_ token dies with the token that minted it.
        let parent = issue(&["*"]).await;
        let attached = app.post(&format!("/api/sessions/{session}/attach"), Some(&parent), json!({})).await;
        let child = attached.body["data"]["websocket_token"].as_str().unwrap().to_owned();
        assert_eq!(auth(&child, &watcher.socket_id).await.0, 200);
        app.post("/api/auth/logout", Some(&parent), json!({})).await.expect(200);
        assert_eq!(auth(&child, &watcher.socket_id).await.0, 401);
    }

    async fn output_keeps_flowing_through_a_host_restart_with_no_gap(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "count 3000\n"})).await.expect(200);
        let before = app.wait_for_output(&token, session, "line 100\r\n").await;
        assert!(!before.contains("line 3000"), "the restart comes mid-stream");
        // The host goes away mid-stream; the agent keeps the output until the new host has it.
        let app = app.restart(fast_links).await;
        app.wait_for_output(&token, session, "line 3000\r\n").await;
        let entries = output_since(&app, &token, session, 0).await;
        let seqs: Vec<i64> = entries.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "sequence has a gap or a repeat");
        let text: String = entries.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(counted_lines(&text), (1..=3000).collect::<Vec<u32>>());
        let view = app.get(&format!("/api/sessions/{session}"), Some(&token)).await;
        assert_eq!(view.body["data"]["last_seq"], *seqs.last().unwrap());
        assert_eq!(view.body["data"]["status"], "running");
        // Catching up from a position: the next entries in order.
        let tail = output_since(&app, &token, session, 2).await;
        assert_eq!(tail[0].0, 3);
        app.get(&format!("/api/sessions/{session}/logs?since_seq=-1"), Some(&token)).await.expect(422);
    }

    async fn a_watcher_subscribing_between_output_and_its_log_entry_still_sees_it(db: TestDb) {
        // The host publishes output before it logs it (an echo does not wait for the database).
        // A watcher subscribing in between neither hears it live nor finds it in the log on its
        // first catch-up, and when the session then says nothing, no later event shows the gap:
        // the dashboard's follower asks the log again until an event arrives.
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        let held = LogWritesHeld::hold(&app.db).await;
        // Typed on a socket (a REST input is answered once logged, and the log is held).
        let channel = format!("private-session.{session}");
        let mut typist = claudenest_e2e::PusherClient::open(&app).await;
        let answer = typist.subscribe_authorized(&app, &token, &channel).await;
        assert_eq!(answer["event"], "pusher_internal:subscription_succeeded", "{answer}");
        typist.send(json!({"event": "client-session:input", "channel": channel, "data": {"data": "while unlogged\n"}})).await;
        loop {
            let frame = typist.next().await;
            if frame["event"] == "session:output" && frame["data"].as_str().unwrap().contains("you said: while unlogged") {
                break;
            }
        }
        let logged = output_since(&app, &token, session, 0).await;
        assert!(!logged.iter().any(|(_, d)| d.contains("while unlogged")), "published, not yet logged: {logged:?}");

        let mut watcher = tokio::process::Command::new("node")
            .arg("late_subscriber.mjs")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/pusher"))
            .env("BASE_URL", &app.base_url)
            .env("WS_PORT", app.addr.port().to_string())
            .env("APP_KEY", &app.state.pusher().key)
            .env("TOKEN", &token)
            .env("SESSION", session.to_string())
            .env("NEEDLE", "you said: while unlogged")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(watcher.stdout.take().unwrap()));
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
            .expect("the watcher subscribed in time").unwrap().unwrap_or_default();
        assert!(first.starts_with("caught up: ") && !first.contains("while unlogged"),
            "the first catch-up cannot have it yet: {first}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        held.release().await;
        let said = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await
            .expect("the watcher finished in time").unwrap().unwrap_or_default();
        assert_eq!(said, "seen");
        assert!(watcher.wait().await.unwrap().success());
    }

    async fn headless_sessions_report_usage_and_oneshot_sessions_their_exit(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let url = format!("/api/machines/{machine}/sessions");
        let headless = app.post(&url, Some(&token), json!({"mode": "headless", "initial_prompt": "fix the bug"})).await;
        headless.expect(201);
        let id: Uuid = headless.body["data"]["session"]["id"].as_str().unwrap().parse().unwrap();
        let ended = wait_for_status(&app, &token, id, "completed").await;
        assert_eq!(ended["total_tokens"], 2000);
        assert!((ended["total_cost"].as_f64().unwrap() - 0.0425).abs() < 1e-9, "{ended}");
        assert_eq!(ended["exit_code"], 0);
        let text = app.wait_for_output(&token, id, "\"type\":\"result\"").await;
        assert!(text.contains("working on it"));

        let oneshot = app.post(&url, Some(&token), json!({"mode": "oneshot", "initial_prompt": "fail"})).await;
        oneshot.expect(201);
        let id: Uuid = oneshot.body["data"]["session"]["id"].as_str().unwrap().parse().unwrap();
        let ended = wait_for_status(&app, &token, id, "error").await;
        assert_eq!(ended["exit_code"], 2);
        let text = app.wait_for_output(&token, id, "answer to: fail").await;
        assert!(text.contains("to stderr"), "stderr is logged too: {text:?}");

        // A prompt that looks like an option is the prompt.
        let dashed = app.post(&url, Some(&token), json!({"mode": "oneshot", "initial_prompt": "--dangerously-skip-permissions"})).await;
        dashed.expect(201);
        let id: Uuid = dashed.body["data"]["session"]["id"].as_str().unwrap().parse().unwrap();
        app.wait_for_output(&token, id, "answer to: --dangerously-skip-permissions").await;
        assert_eq!(wait_for_status(&app, &token, id, "completed").await["exit_code"], 0);

        // No terminal, no input.
        let running = app.post(&url, Some(&token), json!({"mode": "oneshot", "initial_prompt": "ok"})).await;
        let id = running.body["data"]["session"]["id"].as_str().unwrap().to_owned();
        let refused = app.post(&format!("/api/sessions/{id}/input"), Some(&token), json!({"data": "x"})).await;
        refused.expect(422);
        assert!(refused.body["error"]["errors"]["data"].is_array());
    }

    async fn terminate_hangs_up_then_kills_what_ignores_it(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        let pid_file = dir.path().join("stubborn.pid");
        let line = format!("stubborn {}\n", pid_file.display());
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": line})).await.expect(200);
        app.wait_for_output(&token, session, "stubborn now").await;
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
        let alive = || std::process::Command::new("kill").args(["-0", &pid]).stderr(std::process::Stdio::null())
            .status().unwrap().success();
        assert!(alive());
        let ended = app.post(&format!("/api/sessions/{session}/terminate"), Some(&token), json!({})).await;
        ended.expect(200);
        assert_eq!(ended.body["data"]["status"], "terminated");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(alive(), "the hang-up is ignored, the grace period (1 s) has not passed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive() {
            assert!(std::time::Instant::now() < deadline, "the process outlived its grace period");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Terminated stays terminated: the exit the kill caused does not turn it into an error.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let view = app.get(&format!("/api/sessions/{session}"), Some(&token)).await;
        assert_eq!(view.body["data"]["status"], "terminated");
    }

    async fn the_client_cli_signs_in_lists_pairs_and_attaches_through_a_real_pty(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let home = tempfile::tempdir().unwrap();
        let cli = |args: &[&str], stdin: &str| {
            use std::io::Write as _;
            let mut child = std::process::Command::new(claudenest_e2e::claudenest_binary())
                .env_clear()
                .env("HOME", home.path())
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), said)
        };

        // Not signed in yet: a clear message, not a crash.
        let (ok, said) = cli(&["machines"], "");
        assert!(!ok && said.contains("claudenest login"), "{said}");
        let (ok, said) = cli(&["login", "--server", &app.base_url, "--email", "ada@example.com"], "wrong password\n");
        assert!(!ok && said.contains("AUTH_002"), "{said}");
        let (ok, said) = cli(&["login", "--server", &app.base_url, "--email", "ada@example.com"], &format!("{}\n", claudenest_e2e::TEST_PASSWORD));
        assert!(ok, "{said}");
        use std::os::unix::fs::PermissionsExt as _;
        let kept = home.path().join(".config/claudenest/client.toml");
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);

        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        let (ok, said) = cli(&["machines"], "");
        assert!(ok && said.contains("box") && said.contains("online"), "{said}");
        let (ok, said) = cli(&["sessions"], "");
        assert!(ok && said.contains(&session.to_string()) && said.contains("running"), "{said}");
        let project = app.post(&format!("/api/machines/{machine}/projects"), Some(&token), json!({"name": "p", "project_path": "/srv/p"})).await;
        let project = project.body["data"]["id"].as_str().unwrap().to_owned();
        app.post(&format!("/api/projects/{project}/tasks"), Some(&token), json!({"title": "Write the parser", "priority": "high"})).await.expect(201);
        let (ok, said) = cli(&["tasks", "--project", &project], "");
        assert!(ok && said.contains("Write the parser") && said.contains("high"), "{said}");

        // Pairing with the code an agent shows.
        let (_paired, code) = AgentProcess::pair(&app, &[]);
        let (ok, said) = cli(&["pair", &code, "--name", "laptop"], "");
        assert!(ok && said.contains("laptop"), "{said}");
        let (ok, said) = cli(&["pair", &code], "");
        assert!(!ok && said.contains("MCH_005"), "a used code: {said}");

        // Attach in a real terminal: the screen, typing, resizing, detaching.
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        let pty = native_pty_system().openpty(PtySize { rows: 30, cols: 100, pixel_width: 0, pixel_height: 0 }).unwrap();
        let mut command = CommandBuilder::new(claudenest_e2e::claudenest_binary());
        command.env_clear();
        command.env("HOME", home.path());
        command.env("TERM", "xterm");
        command.args(["attach", &session.to_string()]);
        let mut child = pty.slave.spawn_command(command).unwrap();
        drop(pty.slave);
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut reader = pty.master.try_clone_reader().unwrap();
        let filled = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 { break; }
                filled.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut keys = pty.master.take_writer().unwrap();
        let shows = |needle: &str| {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                if screen.lock().unwrap().contains(needle) { return; }
                assert!(std::time::Instant::now() < deadline, "the terminal never showed {needle:?}: {:?}", screen.lock().unwrap());
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        shows("stand-in claude ready");
        std::io::Write::write_all(&mut keys, b"hello there\r").unwrap();
        shows("you said: hello there");
        // The session took this terminal's size on attach, and follows it.
        std::io::Write::write_all(&mut keys, b"size\r").unwrap();
        shows("30 100");
        pty.master.resize(PtySize { rows: 40, cols: 120, pixel_width: 0, pixel_height: 0 }).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        std::io::Write::write_all(&mut keys, b"size\r").unwrap();
        shows("40 120");

        // The host restarts under the attached terminal: it reconnects, and output written
        // while it was away arrives once, nothing doubled.
        let app = app.restart(fast_links).await;
        app.wait_for_status(&token, machine, "online", Duration::from_secs(15)).await;
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "while away\n"})).await.expect(200);
        shows("you said: while away");
        assert!(screen.lock().unwrap().contains("reconnecting"), "the socket dropped and was opened again");
        std::io::Write::write_all(&mut keys, b"after the restart\r").unwrap();
        shows("you said: after the restart");
        let seen = screen.lock().unwrap().clone();
        for line in ["you said: hello there", "you said: while away", "you said: after the restart"] {
            assert_eq!(seen.matches(line).count(), 1, "{line:?} in {seen:?}");
        }
        std::io::Write::write_all(&mut keys, &[0x1d]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() { break status; }
            assert!(std::time::Instant::now() < deadline, "Ctrl-] did not detach");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
        let view = app.get(&format!("/api/sessions/{session}"), Some(&token)).await;
        assert_eq!(view.body["data"]["status"], "running", "detaching leaves the session running");
    }

    async fn attach_gives_the_current_screen_and_old_output_leaves_the_log(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| {
            fast_links(c);
            c.sessions.log_retention_chunks = 5;
        }).await;
        let (token, machine, _agent, _dir) = machine_with_agent(&app, 5).await;
        let (session, _) = create(&app, &token, machine, 80, 24).await;
        app.wait_for_output(&token, session, "stand-in claude ready").await;
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "count 400\n"})).await.expect(200);
        app.wait_for_output(&token, session, "line 400\r\n").await;
        app.post(&format!("/api/sessions/{session}/input"), Some(&token), json!({"data": "draw\n"})).await.expect(200);
        app.wait_for_output(&token, session, "drawn at row 5").await;

        let attached = app.post(&format!("/api/sessions/{session}/attach"), Some(&token), json!({})).await;
        attached.expect(200);
        let snapshot = &attached.body["data"]["snapshot"];
        let rows: Vec<&str> = snapshot["text"].as_str().unwrap().split('\n').collect();
        assert_eq!(rows[4].trim_end(), format!("{}drawn at row 5", " ".repeat(9)), "{snapshot}");
        assert!(!snapshot["text"].as_str().unwrap().contains("line 399"), "the screen was cleared");
        assert_eq!((snapshot["rows"].as_u64(), snapshot["cols"].as_u64()), (Some(24), Some(80)));
        let last_seq = app.get(&format!("/api/sessions/{session}"), Some(&token)).await.body["data"]["last_seq"].as_i64().unwrap();
        assert_eq!(snapshot["seq"].as_i64().unwrap(), last_seq);

        // Retention keeps the newest 5 output chunks.
        let kept = output_since(&app, &token, session, 0).await;
        assert!(last_seq > 5, "the count came in more than 5 chunks");
        let seqs: Vec<i64> = kept.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, ((last_seq - 4)..=last_seq).collect::<Vec<_>>());
        let inputs = app.get(&format!("/api/sessions/{session}/logs?type=input"), Some(&token)).await;
        assert_eq!(inputs.body["data"].as_array().unwrap().len(), 2, "input entries are kept");
    }
}

/// The agent's secrets never reach what it runs: its machine token, given in the environment,
/// is not in a session's environment (nor any other `CLAUDENEST_*` setting of the agent's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_do_not_inherit_the_machine_token() {
    let db = claudenest_e2e::TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::spawn_with(db, fast_links).await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
    let dir = tempfile::tempdir().unwrap();
    let script = claudenest_e2e::write_stand_in_claude(dir.path());
    let _agent = AgentProcess::start_with_env(
        &app,
        &[
            ("CLAUDENEST_AGENT_TOKEN", &machine_token),
            ("CLAUDENEST_AGENT_SKILLS_DIR", dir.path().to_str().unwrap()),
        ],
        &["--claude-path", script.to_str().unwrap()],
    );
    app.wait_for_status(&token, machine, "online", Duration::from_secs(15))
        .await;
    let (session, _) = create(&app, &token, machine, 80, 24).await;
    app.wait_for_output(&token, session, "stand-in claude ready")
        .await;
    app.post(
        &format!("/api/sessions/{session}/input"),
        Some(&token),
        json!({"data": "env\n"}),
    )
    .await
    .expect(200);
    let text = app.wait_for_output(&token, session, "env done").await;
    assert!(text.contains("env: TERM=xterm-256color"), "{text}");
    assert!(
        !text.contains(&machine_token),
        "the machine token leaked: {text}"
    );
    assert!(!text.contains("CLAUDENEST_AGENT"), "{text}");
}
