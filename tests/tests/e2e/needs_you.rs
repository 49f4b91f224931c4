//! "Needs you", on both stores, with a real agent running the hook-calling stand-in `claude`
//! in a real PTY: a permission dialog makes the session `waiting_input` (with the reason, in
//! `session:status`), a signed webhook reaches a receiver on loopback (after a retry), an API
//! approval lets the tool run and a denial blocks it, every answer is audited; a budget
//! crossing warns at 80 % and interrupts the run at 100 %, recording why; runs per hour are
//! capped.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post};
use claudenest_e2e::{AgentProcess, PusherClient, TestApp, fast_links, on_both_stores};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

/// A webhook receiver on loopback: records every request and answers the given statuses in
/// turn (then 200).
struct Receiver {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
}

async fn receiver(statuses: Vec<u16>) -> Receiver {
    type Shared = (
        mpsc::UnboundedSender<(HeaderMap, Bytes)>,
        Arc<Mutex<Vec<u16>>>,
    );
    async fn hook(
        State((tx, statuses)): State<Shared>,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::http::StatusCode {
        let _ = tx.send((headers, body));
        let mut statuses = statuses.lock().await;
        let status = if statuses.is_empty() {
            200
        } else {
            statuses.remove(0)
        };
        axum::http::StatusCode::from_u16(status).unwrap()
    }
    let (tx, requests) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state((tx, Arc::new(Mutex::new(statuses))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { addr, requests }
}

/// Whether `headers` carry a fresh signature of `body` made with `secret`.
fn signed_with(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let timestamp = header("x-claudenest-timestamp");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "a fresh timestamp ({age} s)");
    header("x-claudenest-signature") == expected
}

impl Receiver {
    async fn next(&mut self) -> (HeaderMap, Bytes) {
        tokio::time::timeout(Duration::from_secs(15), self.requests.recv())
            .await
            .expect("a notice within 15 s")
            .unwrap()
    }

    /// The next webhook notice whose `type` is `kind` (others are skipped), checked against
    /// the target's signing secret.
    async fn next_of(&mut self, kind: &str, secret: &str) -> Value {
        loop {
            let (headers, body) = self.next().await;
            assert!(
                signed_with(&headers, &body, secret),
                "the signature covers timestamp and body"
            );
            let notice: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                headers["x-claudenest-event"].to_str().unwrap(),
                notice["type"].as_str().unwrap()
            );
            if notice["type"] == kind {
                return notice;
            }
        }
    }
}

/// Ada, her machine with an agent whose `claude` calls its hooks, and a webhook target.
struct Scene {
    app: TestApp,
    token: String,
    machine: Uuid,
    hooks: Receiver,
    secret: String,
    _agent: AgentProcess,
    _dir: tempfile::TempDir,
}

async fn scene(db: claudenest_e2e::TestDb, statuses: Vec<u16>) -> Scene {
    scene_with(db, statuses, vec![], &[]).await
}

/// [`scene`] where the operator also allows notices to `also` (`host:port`s on loopback) and
/// the agent gets `agent_flags`.
async fn scene_with(
    db: claudenest_e2e::TestDb,
    statuses: Vec<u16>,
    also: Vec<String>,
    agent_flags: &[&str],
) -> Scene {
    let hooks = receiver(statuses).await;
    let mut allowed = also;
    allowed.push(hooks.addr.to_string());
    let app = TestApp::spawn_with(db, |c| {
        fast_links(c);
        c.notifications.allow_hosts = allowed;
        c.notifications.retry_base_ms = 50;
    })
    .await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
    let dir = tempfile::tempdir().unwrap();
    let script = claudenest_e2e::write_stand_in_claude_with_hooks(dir.path());
    let mut flags = vec![
        "--claude-path",
        script.to_str().unwrap(),
        "--kill-grace-secs",
        "1",
    ];
    flags.extend_from_slice(agent_flags);
    let agent = AgentProcess::start(&app, &machine_token, &flags);
    app.wait_for_status(&token, machine, "online", Duration::from_secs(15))
        .await;

    // Targets are checked: a kind we do not know, an internal address nobody allowed.
    let bad = app
        .post("/api/notifications/targets", Some(&token),
            json!({"name": "x", "kind": "pigeon", "url": "http://127.0.0.2/hook", "events": ["lunch"]}))
        .await;
    bad.expect(422);
    for field in ["kind", "url", "events"] {
        assert!(
            bad.body["error"]["errors"][field].is_array(),
            "{field}: {}",
            bad.text
        );
    }
    let created = app
        .post("/api/notifications/targets", Some(&token), json!({
            "name": "pager", "kind": "webhook", "url": format!("http://{}/hook", hooks.addr),
            "events": ["permission", "waiting", "turn_finished", "budget_warning", "budget_stopped"]}))
        .await;
    created.expect(201);
    let secret = created.body["data"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = app.get("/api/notifications/targets", Some(&token)).await;
    listed.expect(200);
    assert_eq!(listed.body["data"][0]["name"], "pager");
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    Scene {
        app,
        token,
        machine,
        hooks,
        secret,
        _agent: agent,
        _dir: dir,
    }
}

impl Scene {
    async fn start(&self, extra: Value) -> Uuid {
        let mut body = json!({"mode": "interactive", "project_path": "/tmp"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let reply = self
            .app
            .post(
                &format!("/api/machines/{}/sessions", self.machine),
                Some(&self.token),
                body,
            )
            .await;
        reply.expect(201);
        let id = reply.body["data"]["session"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.output_contains(id, "stand-in claude ready").await;
        id
    }

    async fn type_line(&self, session: Uuid, line: &str) {
        self.app
            .post(
                &format!("/api/sessions/{session}/input"),
                Some(&self.token),
                json!({"data": format!("{line}\n")}),
            )
            .await
            .expect(200);
    }

    async fn output_contains(&self, session: Uuid, needle: &str) -> String {
        self.app.wait_for_output(&self.token, session, needle).await
    }

    async fn session_where(
        &self,
        session: Uuid,
        what: &str,
        test: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let reply = self
                .app
                .get(&format!("/api/sessions/{session}"), Some(&self.token))
                .await;
            if test(&reply.body["data"]) {
                return reply.body["data"].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the session never was {what}: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delivery_where(&self, what: &str, test: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let reply = self
                .app
                .get("/api/notifications/deliveries", Some(&self.token))
                .await;
            reply.expect(200);
            if let Some(found) = reply.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| test(d))
            {
                return found.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no delivery {what}: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pending_permission(&self, session: Uuid) -> Value {
        let list = self
            .app
            .get(
                &format!("/api/sessions/{session}/permissions"),
                Some(&self.token),
            )
            .await;
        list.expect(200);
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"] == "pending")
            .cloned()
            .unwrap_or_else(|| panic!("no pending permission: {}", list.text))
    }
}

/// Reads the socket until a `session:status` event matches.
async fn status_event(client: &mut PusherClient, test: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, client.next())
            .await
            .expect("a session:status event in time");
        if event["event"] == "session:status" {
            let data: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
            if test(&data) {
                return data;
            }
        }
    }
}

on_both_stores! {
    async fn a_permission_dialog_waits_for_its_person_who_answers_from_anywhere(db: TestDb) {
        // The receiver fails the first delivery: it is retried.
        let mut s = scene(db, vec![500]).await;
        let session = s.start(json!({})).await;
        let mut socket = PusherClient::open(&s.app).await;
        let subscribed = socket.subscribe_authorized(&s.app, &s.token, &format!("private-session.{session}")).await;
        assert_eq!(subscribed["event"], "pusher_internal:subscription_succeeded");

        s.type_line(session, "tool echo approved-$((40+2))").await;
        let waiting = status_event(&mut socket, |d| d["status"] == "waiting_input").await;
        assert_eq!(waiting["waiting_reason"], "permission");
        assert!(waiting["waiting_message"].as_str().unwrap().contains("Bash: echo approved-"), "{waiting}");
        let shown = s.session_where(session, "waiting", |d| d["status"] == "waiting_input").await;
        assert_eq!(shown["waiting_reason"], "permission");

        // The person hears about it, signed; the failed first try was retried and logged.
        let notice = s.hooks.next_of("permission", &s.secret).await;
        assert_eq!(notice["session"]["id"], session.to_string());
        assert!(notice["message"].as_str().unwrap().contains("echo approved-"));
        assert!(notice.get("terminal").is_none(), "no terminal text unless asked for");
        let delivery = s.delivery_where("delivered", |d| d["event"] == "permission" && d["status"] == "delivered").await;
        assert_eq!(delivery["attempts"], 2);
        assert_eq!(delivery["response_status"], 200);

        // Another user sees none of it.
        let (_, bob) = s.app.user_with_token("bob@example.com").await;
        let pending = s.pending_permission(session).await;
        assert_eq!(pending["tool_name"], "Bash");
        let path = format!("/api/sessions/{session}/permissions/{}", pending["id"].as_str().unwrap());
        s.app.get(&format!("/api/sessions/{session}/permissions"), Some(&bob)).await.expect(404);
        s.app.post(&path, Some(&bob), json!({"decision": "allow"})).await.expect(404);
        let bad = s.app.post(&path, Some(&s.token), json!({"decision": "maybe"})).await;
        bad.expect(422);

        // Approved over the API: the dialog gets it and the tool runs.
        let answered = s.app.post(&path, Some(&s.token), json!({"decision": "allow"})).await;
        answered.expect(200);
        assert_eq!(answered.body["data"]["status"], "allowed");
        assert!(answered.body["data"]["answered_by"].is_string() && answered.body["data"]["answered_at"].is_string());
        s.output_contains(session, "approved-42").await;
        s.app.post(&path, Some(&s.token), json!({"decision": "deny"})).await.expect(409);
        // The turn ends: waiting again, for a new prompt this time.
        let finished = status_event(&mut socket, |d| d["waiting_reason"] == "turn_finished").await;
        assert_eq!(finished["status"], "waiting_input");

        // Denied over the API: the tool is blocked and Claude is told why.
        s.type_line(session, "tool echo never-$((6*7))").await;
        status_event(&mut socket, |d| d["waiting_reason"] == "permission").await;
        let pending = s.pending_permission(session).await;
        let path = format!("/api/sessions/{session}/permissions/{}", pending["id"].as_str().unwrap());
        let denied = s.app.post(&path, Some(&s.token), json!({"decision": "deny", "message": "not today"})).await;
        denied.expect(200);
        let text = s.output_contains(session, "denied: not today").await;
        assert!(!text.contains("never-42"), "the denied command did not run");

        // Typing goes on as before: a new prompt makes it run again.
        s.type_line(session, "hello").await;
        s.output_contains(session, "you said: hello").await;
        let audit = s.app.get(&format!("/api/sessions/{session}/permissions"), Some(&s.token)).await;
        let statuses: Vec<&str> = audit.body["data"].as_array().unwrap().iter().map(|p| p["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["denied", "allowed"], "newest first");
        assert_eq!(audit.body["data"][0]["answer_message"], "not today");
    }

    async fn a_budget_crossing_interrupts_the_run_and_records_why(db: TestDb) {
        let mut s = scene(db, vec![]).await;
        let bad = s.app.post(&format!("/api/machines/{}/sessions", s.machine), Some(&s.token),
            json!({"mode": "interactive", "budget_tokens": 0, "budget_cost": -1})).await;
        bad.expect(422);
        assert!(bad.body["error"]["errors"]["budget_tokens"].is_array() && bad.body["error"]["errors"]["budget_cost"].is_array(), "{}", bad.text);

        let session = s.start(json!({"budget_tokens": 1000})).await;
        // 100 input + 700 output tokens: 80 % of the budget.
        s.type_line(session, "spend 700").await;
        let warning = s.hooks.next_of("budget_warning", &s.secret).await;
        assert_eq!(warning["session"]["total_tokens"], 800);
        // The usage and the Stop hook that makes it wait are two reports: whichever lands last.
        let usage = s.session_where(session, "at 800 tokens, waiting for input",
            |d| d["total_tokens"] == 800 && d["status"] == "waiting_input").await;
        assert!(usage["total_cost"].as_f64().unwrap() > 0.0, "cost estimated from the usage");

        // 600 more: over. The agent presses Ctrl-C, then ends what is left.
        s.type_line(session, "spend 500").await;
        let stopped = s.hooks.next_of("budget_stopped", &s.secret).await;
        assert_eq!(stopped["session"]["stop_reason"], "budget");
        s.output_contains(session, "interrupted by Ctrl-C").await;
        let ended = s.session_where(session, "terminated", |d| d["status"] == "terminated").await;
        assert_eq!(ended["stop_reason"], "budget");
        assert_eq!(ended["total_tokens"], 1400);
        let errors = s.app.get(&format!("/api/sessions/{session}/logs?type=error"), Some(&s.token)).await;
        assert!(errors.text.contains("budget is spent"), "{}", errors.text);
    }

    async fn projects_cap_runs_per_hour_and_spent_budgets(db: TestDb) {
        let s = scene(db, vec![]).await;
        let project = s.app.post(&format!("/api/machines/{}/projects", s.machine), Some(&s.token),
            json!({"name": "app", "project_path": "/tmp", "settings": {"runsPerHour": 1, "budgetTokens": 500}})).await;
        project.expect(201);
        let id = project.body["data"]["id"].as_str().unwrap().to_owned();
        let first = s.start(json!({})).await;
        let again = s.app.post(&format!("/api/machines/{}/sessions", s.machine), Some(&s.token),
            json!({"mode": "interactive", "project_path": "/tmp"})).await;
        again.expect(429);
        assert_eq!(again.error_code(), "SES_006");
        // The project's budget counts every session in it: 600 tokens spend its 500.
        s.type_line(first, "spend 500").await;
        let ended = s.session_where(first, "stopped", |d| d["stop_reason"] == "budget").await;
        assert_eq!(ended["total_tokens"], 600);
        let raised = s.app.call(reqwest::Method::PATCH, &format!("/api/projects/{id}"), Some(&s.token),
            Some(json!({"settings": {"runsPerHour": 10}}))).await;
        raised.expect(200);
        let spent = s.app.post(&format!("/api/machines/{}/sessions", s.machine), Some(&s.token),
            json!({"mode": "interactive", "project_path": "/tmp"})).await;
        spent.expect(409);
        assert_eq!(spent.error_code(), "SES_007");
        let stats = s.app.get(&format!("/api/projects/{id}/stats"), Some(&s.token)).await;
        stats.expect(200);
        let spend = &stats.body["data"]["spend"];
        assert_eq!(spend["total_tokens"], 600);
        assert_eq!(spend["budget_tokens"], 500);
        assert_eq!(spend["budget_used_percent"], 120.0);
        assert_eq!(spend["runs_last_hour"], 1);
        assert_eq!(spend["runs_per_hour"], 10);
        assert!(spend["budget_cost"].is_null() && spend["total_cost"].as_f64().unwrap() > 0.0, "{spend}");
    }
}

/// A push service stand-in on loopback: records what is pushed to `/push/{subscription}`.
async fn push_service() -> (SocketAddr, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    async fn push(
        State(tx): State<mpsc::UnboundedSender<(HeaderMap, Bytes)>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::http::StatusCode {
        let _ = tx.send((headers, body));
        axum::http::StatusCode::CREATED
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/push/{subscription}", post(push))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

on_both_stores! {
    async fn web_push_notices_are_encrypted_for_the_browser_and_signed_with_vapid(db: TestDb) {
        use base64::Engine as _;
        use web_push_native::{jwt_simple::prelude::*, p256::{self, elliptic_curve::sec1::ToEncodedPoint as _}};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (push_addr, mut pushed) = push_service().await;
        let s = scene_with(db, vec![], vec![push_addr.to_string()], &[]).await;

        // A browser's subscription: its private key and auth secret never leave it.
        let browser = p256::SecretKey::from_slice(&[0x5a; 32]).unwrap();
        let auth = [0x42u8; 16];
        let p256dh = b64.encode(browser.public_key().to_encoded_point(false).as_bytes());
        let endpoint = format!("http://{push_addr}/push/sub-1");
        let refused = s.app.post("/api/notifications/targets", Some(&s.token), json!({
            "name": "phone", "kind": "web_push", "url": endpoint,
            "keys": {"p256dh": "not-a-key", "auth": b64.encode(auth)}})).await;
        refused.expect(422);
        assert!(refused.body["error"]["errors"]["keys"].is_array(), "{}", refused.text);
        let created = s.app.post("/api/notifications/targets", Some(&s.token), json!({
            "name": "phone", "kind": "web_push", "url": endpoint, "events": ["waiting"],
            "keys": {"p256dh": p256dh, "auth": b64.encode(auth)}})).await;
        created.expect(201);
        assert!(created.body["data"]["secret"].is_null(), "Web Push is signed with VAPID instead");

        let session = s.start(json!({})).await;
        s.type_line(session, "idle").await;
        let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(15), pushed.recv()).await
            .expect("a push within 15 s").unwrap();
        assert_eq!(headers["content-encoding"], "aes128gcm");
        assert!(headers["ttl"].to_str().unwrap().parse::<u64>().unwrap() > 0);

        // Signed with the key the dashboard subscribes browsers with, for this push service.
        let config = s.app.get("/api/client-config", None).await;
        let server_key = config.body["data"]["vapid_public_key"].as_str().unwrap().to_owned();
        let vapid = headers["authorization"].to_str().unwrap().to_owned();
        let (t, k) = vapid.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, server_key);
        let public = ES256PublicKey::from_bytes(&b64.decode(k).unwrap()).unwrap();
        let claims = public.verify_token::<NoCustomClaims>(t, None).expect("a valid VAPID signature");
        assert_eq!(claims.audiences.unwrap().into_string().unwrap(), format!("http://{push_addr}"));

        // Only the browser can read it.
        let plain = web_push_native::decrypt(body.to_vec(), &browser, &auth.into()).expect("decrypts with the browser's key");
        let notice: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(notice["type"], "waiting");
        assert_eq!(notice["message"], "Claude is waiting for your input");
        assert_eq!(notice["session_id"], session.to_string());
        assert!(body.windows(7).all(|w| w != b"waiting"), "the payload is not plain text");
        // The push target's own delivery (the scene's webhook wants `waiting` notices too).
        let push_target = &created.body["data"]["target"]["id"];
        let delivered = s.delivery_where("delivered", |d| &d["target_id"] == push_target && d["status"] == "delivered").await;
        assert_eq!(delivered["response_status"], 201);
    }
}

on_both_stores! {
    async fn slack_and_ntfy_shapes_and_claude_codes_own_dialog_when_nobody_answers(db: TestDb) {
        let mut s = scene_with(db, vec![], vec![], &["--permission-timeout-secs", "1"]).await;
        let url = format!("http://{}/hook", s.hooks.addr);
        let mut secrets = Vec::new();
        for (kind, terminal) in [("slack", true), ("ntfy", false)] {
            let created = s.app.post("/api/notifications/targets", Some(&s.token), json!({
                "name": kind, "kind": kind, "url": url, "events": ["permission"], "include_terminal": terminal})).await;
            created.expect(201);
            secrets.push(created.body["data"]["secret"].as_str().unwrap().to_owned());
        }
        let session = s.start(json!({})).await;
        s.type_line(session, "tool echo typed-$((40+2))").await;

        // Three targets want permission notices: the webhook, Slack's shape and ntfy's.
        let (mut slack, mut ntfy) = (None, None);
        for _ in 0..3 {
            let (headers, body) = s.hooks.next().await;
            if signed_with(&headers, &body, &secrets[0]) {
                slack = Some(serde_json::from_slice::<Value>(&body).unwrap());
            } else if signed_with(&headers, &body, &secrets[1]) {
                ntfy = Some((headers, String::from_utf8(body.to_vec()).unwrap()));
            } else {
                assert!(signed_with(&headers, &body, &s.secret), "every notice is signed by its target's secret");
            }
        }
        let slack = slack.expect("a Slack-shaped notice");
        let text = slack["text"].as_str().unwrap();
        assert!(text.starts_with("*Claude needs your permission*") && text.contains("echo typed-"), "{text}");
        assert!(text.contains("```") && text.contains("tool echo typed-"), "the terminal, as this target asked: {text}");
        let (headers, body) = ntfy.expect("an ntfy-shaped notice");
        assert_eq!(headers["title"], "Claude needs your permission");
        assert_eq!(headers["priority"], "high");
        assert!(headers["click"].to_str().unwrap().ends_with(&format!("/sessions/{session}")));
        assert!(body.starts_with("Bash: echo typed-") && !body.contains("tool echo"), "no terminal text: {body}");

        // Nobody answers within the agent's timeout: Claude Code's own dialog stands, and
        // whoever is at the terminal answers it.
        s.output_contains(session, "Allow Bash: echo typed-$((40+2))? [y/n]").await;
        s.type_line(session, "y").await;
        s.output_contains(session, "typed-42").await;
        let pending = s.pending_permission(session).await;
        let path = format!("/api/sessions/{session}/permissions/{}", pending["id"].as_str().unwrap());
        let late = s.app.post(&path, Some(&s.token), json!({"decision": "deny"})).await;
        late.expect(409);
        assert_eq!(late.error_code(), "SES_005");
        let audit = s.app.get(&format!("/api/sessions/{session}/permissions"), Some(&s.token)).await;
        assert_eq!(audit.body["data"][0]["status"], "expired");
    }
}
