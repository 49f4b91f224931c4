//! Machines, the real `claudenest agent`, presence and Wake-on-LAN (API §3), on both stores.
//! Every Wake-on-LAN packet in these tests goes to a UDP listener on 127.0.0.1.

use std::time::Duration;

use claudenest::links::AgentLinks as _;
use claudenest_e2e::{AgentProcess, TestApp, TestDb, fast_links, on_both_stores};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
use uuid::Uuid;

const SOON: Duration = Duration::from_secs(15);

async fn udp_listener() -> (UdpSocket, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

async fn receive_packet(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a magic packet within 5 s")
        .unwrap();
    buf[..n].to_vec()
}

fn magic_packet_for(mac: [u8; 6]) -> Vec<u8> {
    let mut packet = vec![0xFF; 6];
    for _ in 0..16 {
        packet.extend_from_slice(&mac);
    }
    packet
}

/// A raw protocol client, to check the host side of the link message by message.
struct RawLink {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawLink {
    async fn connect(
        app: &TestApp,
        token: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{}/api/agent/link", app.addr);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket })
    }

    async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// The next protocol message, skipping pings (answered) unless `keep_pings`.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.socket.next())
                .await
                .expect("a frame within 5 s")?;
            match frame.ok()? {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "ping" {
                        let nonce = value["nonce"].clone();
                        self.send(json!({"type": "pong", "nonce": nonce})).await;
                        continue;
                    }
                    return Some(value);
                }
                Message::Close(frame) => {
                    return Some(json!({"closed": frame.map(|f| u16::from(f.code))}));
                }
                _ => continue,
            }
        }
    }

    async fn hello(&mut self) -> Value {
        self.send(
            json!({"type": "hello", "protocol_version": claudenest::protocol::PROTOCOL_VERSION, "environment": {
            "platform": "linux", "hostname": "raw", "arch": "x64", "agent_version": "test",
            "node_version": null, "claude_version": null, "claude_path": null,
            "capabilities": ["gpu"], "max_sessions": 3, "mac_addresses": ["02:00:00:00:00:01"],
            "networks": [{"addr": "198.51.100.7", "prefix": 24}]}}),
        )
        .await;
        self.next().await.unwrap()
    }
}

on_both_stores! {
    async fn machines_are_registered_listed_updated_and_deleted(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (_, bob) = app.user_with_token("bob@example.com").await;

        let reply = app.post("/api/machines", Some(&ada), json!({
            "name": "MacBook Pro", "platform": "darwin", "hostname": "macbook.local",
            "arch": "arm64", "node_version": "20.11.0", "agent_version": "1.0.0",
            "claude_version": "1.0.0", "claude_path": "/usr/local/bin/claude",
            "capabilities": ["wake_on_lan", "gpu"], "max_sessions": 10})).await;
        reply.expect(201);
        let machine = &reply.body["data"]["machine"];
        assert!(reply.body["data"]["token"].as_str().unwrap().starts_with("mn_"));
        assert_eq!(machine["status"], "offline");
        assert_eq!(machine["active_sessions_count"], 0);
        assert_eq!(machine["capabilities"], json!(["wake_on_lan", "gpu"]));
        let id = machine["id"].as_str().unwrap().to_owned();
        for name in ["Build Box", "desk"] {
            app.register_machine(&ada, json!({"name": name, "hostname": format!("{name}.lan")})).await;
        }
        app.register_machine(&bob, json!({"name": "bob's"})).await;

        let list = app.get("/api/machines?per_page=2", Some(&ada)).await;
        list.expect(200);
        assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
        assert_eq!(list.body["meta"]["pagination"], json!({"current_page": 1, "last_page": 2, "per_page": 2, "total": 3}));
        let found = app.get("/api/machines?search=MACBOOK", Some(&ada)).await;
        assert_eq!(found.body["data"][0]["name"], "MacBook Pro");
        let by_host = app.get("/api/machines?search=desk.lan", Some(&ada)).await;
        assert_eq!(by_host.body["meta"]["pagination"]["total"], 1);
        let literal = app.get("/api/machines?search=%25", Some(&ada)).await;
        assert_eq!(literal.body["meta"]["pagination"]["total"], 0, "% is matched literally");
        let online = app.get("/api/machines?status=online", Some(&ada)).await;
        assert_eq!(online.body["meta"]["pagination"]["total"], 0);
        let offline = app.get("/api/machines?status=offline", Some(&ada)).await;
        assert_eq!(offline.body["meta"]["pagination"]["total"], 3);
        app.get("/api/machines?status=sleeping", Some(&ada)).await.expect(422);

        let updated = app.call(Method::PATCH, &format!("/api/machines/{id}"), Some(&ada), Some(json!({
            "name": "MacBook Pro Work", "max_sessions": 15, "capabilities": ["wake_on_lan", "gpu", "mcp"],
            "wake_on_lan": {"mac": "AA-BB-CC-DD-EE-FF", "broadcast": "127.0.0.1", "port": 4009}}))).await;
        updated.expect(200);
        let data = &updated.body["data"];
        assert_eq!(data["name"], "MacBook Pro Work");
        assert_eq!(data["max_sessions"], 15);
        assert_eq!(data["wake_on_lan"], json!({"mac": "aa:bb:cc:dd:ee:ff", "broadcast": "127.0.0.1", "port": 4009}));

        // Names are unique per user, not across users.
        let taken = app.call(Method::PATCH, &format!("/api/machines/{id}"), Some(&ada), Some(json!({"name": "desk"}))).await;
        taken.expect(422);
        assert!(taken.body["error"]["errors"]["name"].is_array());
        app.post("/api/machines", Some(&ada), json!({"name": "desk"})).await.expect(422);
        app.register_machine(&bob, json!({"name": "desk"})).await;

        for (body, field) in [
            (json!({"name": ""}), "name"),
            (json!({"name": "x", "max_sessions": 0}), "max_sessions"),
            (json!({"name": "x", "capabilities": ["Bad Cap"]}), "capabilities"),
            (json!({"name": "x", "wake_on_lan": {"mac": "nope"}}), "wake_on_lan.mac"),
            (json!({"name": "x", "wake_on_lan": {"broadcast": "x.y"}}), "wake_on_lan.broadcast"),
            (json!({"name": "x", "wake_on_lan": {"port": 70000}}), "wake_on_lan.port"),
            (json!({"name": "x", "max_sessions": "ten"}), "max_sessions"),
            (json!({"name": "x", "colour": "red"}), "colour"),
        ] {
            let reply = app.post("/api/machines", Some(&ada), body.clone()).await;
            reply.expect(422);
            assert!(reply.body["error"]["errors"][field].is_array(), "{body}: {}", reply.text);
        }

        // Another user's machine is "not found" everywhere, and stays untouched.
        for (method, path) in [
            (Method::GET, format!("/api/machines/{id}")),
            (Method::PATCH, format!("/api/machines/{id}")),
            (Method::DELETE, format!("/api/machines/{id}")),
            (Method::GET, format!("/api/machines/{id}/environment")),
            (Method::POST, format!("/api/machines/{id}/regenerate-token")),
            (Method::POST, format!("/api/machines/{id}/wake")),
        ] {
            let reply = app.call(method.clone(), &path, Some(&bob), Some(json!({}))).await;
            reply.expect(404);
            assert_eq!(reply.error_code(), "MCH_001", "{method} {path}");
        }
        app.get(&format!("/api/machines/{id}"), Some(&ada)).await.expect(200);

        // Abilities: a read-only token reads, but cannot change.
        let reader = app.post("/api/auth/tokens", Some(&ada), json!({"name": "ro", "abilities": ["machines:read"]})).await;
        let reader = reader.body["data"]["token"].as_str().unwrap().to_owned();
        app.get("/api/machines", Some(&reader)).await.expect(200);
        let denied = app.post("/api/machines", Some(&reader), json!({"name": "new"})).await;
        denied.expect(403);
        assert_eq!(denied.error_code(), "AUTH_006");

        app.call(Method::DELETE, &format!("/api/machines/{id}"), Some(&ada), None).await.expect(200);
        let gone = app.get(&format!("/api/machines/{id}"), Some(&ada)).await;
        gone.expect(404);
        assert_eq!(gone.error_code(), "MCH_001");
    }

    async fn a_real_agent_links_reports_its_environment_and_presence_follows_the_link(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (id, token) = app.register_machine(&ada, json!({"name": "box", "capabilities": ["wake_on_lan"]})).await;
        let (other_id, other_token) = app.register_machine(&ada, json!({"name": "other"})).await;

        let mut agent = AgentProcess::start(&app, &token, &["--capability", "gpu", "--max-sessions", "4"]);
        app.wait_for_status(&ada, id, "online", SOON).await;
        let machine = app.get(&format!("/api/machines/{id}"), Some(&ada)).await;
        let data = &machine.body["data"];
        assert!(data["connected_at"].is_string() && data["last_seen_at"].is_string());
        assert_eq!(data["capabilities"], json!(["wake_on_lan", "gpu"]), "reported capabilities are added");

        let env = app.get(&format!("/api/machines/{id}/environment"), Some(&ada)).await;
        env.expect(200);
        let env = &env.body["data"];
        assert_eq!(env["platform"], "linux");
        assert_eq!(env["agent_version"], claudenest::VERSION);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(env["hostname"], hostname.trim());
        assert!(env["arch"].is_string() && env["mac_addresses"].is_array());

        // Machine tokens are scoped to their machine.
        app.get(&format!("/api/machines/{id}/environment"), Some(&token)).await.expect(200);
        let foreign = app.get(&format!("/api/machines/{id}/environment"), Some(&other_token)).await;
        foreign.expect(404);
        assert_eq!(foreign.error_code(), "MCH_001");
        app.get(&format!("/api/machines/{other_id}/environment"), Some(&token)).await.expect(404);
        for path in ["/api/machines", "/api/auth/me", "/api/auth/tokens"] {
            app.get(path, Some(&token)).await.expect(401);
        }
        let own = app.get("/api/agent/machine", Some(&token)).await;
        own.expect(200);
        assert_eq!(own.body["data"]["id"], id.to_string());
        app.get("/api/agent/machine", Some(&ada)).await.expect(401);

        // Request/reply over the link.
        let ping = app.post(&format!("/api/machines/{id}/ping"), Some(&ada), json!({})).await;
        ping.expect(200);
        assert!(ping.body["data"]["round_trip_ms"].as_f64().unwrap() > 0.0);

        // The link is the presence: kill the agent, the machine is offline.
        agent.kill();
        app.wait_for_status(&ada, id, "offline", SOON).await;
        let offline = app.post(&format!("/api/machines/{id}/ping"), Some(&ada), json!({})).await;
        offline.expect(400);
        assert_eq!(offline.error_code(), "MCH_002");
    }

    async fn missed_pongs_take_a_machine_offline_and_the_agent_comes_back(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (id, token) = app.register_machine(&ada, json!({"name": "box"})).await;
        let agent = AgentProcess::start(&app, &token, &[]);
        app.wait_for_status(&ada, id, "online", SOON).await;
        // Frozen: the TCP connection stays open, but nothing answers the pings.
        agent.signal("STOP");
        let frozen = std::time::Instant::now();
        app.wait_for_status(&ada, id, "offline", SOON).await;
        let took = frozen.elapsed();
        assert!(took < Duration::from_secs(5), "offline after {took:?}; bound is ping 1 s + pong 1 s");
        agent.signal("CONT");
        app.wait_for_status(&ada, id, "online", SOON).await;
    }

    async fn the_agent_reconnects_after_a_host_restart(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (id, token) = app.register_machine(&ada, json!({"name": "box"})).await;
        let agent = AgentProcess::start(&app, &token, &[]);
        app.wait_for_status(&ada, id, "online", SOON).await;
        let first = app.get(&format!("/api/machines/{id}"), Some(&ada)).await.body["data"]["connected_at"].clone();

        let app = app.restart(fast_links).await;
        app.wait_for_status(&ada, id, "online", Duration::from_secs(40)).await;
        let second = app.get(&format!("/api/machines/{id}"), Some(&ada)).await.body["data"]["connected_at"].clone();
        assert_ne!(first, second, "a new link after the restart");
        assert!(agent.log().contains("reconnecting"), "{}", agent.log());
    }

    async fn regenerating_the_token_drops_the_link_and_the_old_token(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (id, token) = app.register_machine(&ada, json!({"name": "box"})).await;
        let old_agent = AgentProcess::start(&app, &token, &[]);
        app.wait_for_status(&ada, id, "online", SOON).await;

        let reply = app.post(&format!("/api/machines/{id}/regenerate-token"), Some(&ada), json!({})).await;
        reply.expect(200);
        let new_token = reply.body["data"]["token"].as_str().unwrap().to_owned();
        assert_ne!(new_token, token);
        app.wait_for_status(&ada, id, "offline", SOON).await;
        app.get("/api/agent/machine", Some(&token)).await.expect(401);
        // The old agent keeps trying and keeps being refused.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(app.machine_status(&ada, id).await, "offline");
        assert!(old_agent.log().contains("401"), "{}", old_agent.log());

        let _new_agent = AgentProcess::start(&app, &new_token, &[]);
        app.wait_for_status(&ada, id, "online", SOON).await;
    }

    async fn pairing_gives_the_agent_a_token_without_copying_it(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (agent, code) = AgentProcess::pair(&app, &[]);
        assert!(code.len() == 9 && code.as_bytes()[4] == b'-', "{code}");

        let bad = app.post("/api/pairing/ZZZZ-ZZZZ/complete", Some(&ada), json!({})).await;
        bad.expect(404);
        assert_eq!(bad.error_code(), "MCH_005");
        let done = app.post(&format!("/api/pairing/{}/complete", code.to_lowercase()), Some(&ada),
                            json!({"name": "paired box"})).await;
        done.expect(201);
        let id: Uuid = done.body["data"]["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(done.body["data"]["name"], "paired box");
        app.wait_for_status(&ada, id, "online", SOON).await;
        let reused = app.post(&format!("/api/pairing/{code}/complete"), Some(&ada), json!({})).await;
        reused.expect(404);

        use std::os::unix::fs::PermissionsExt as _;
        let file = agent.home.path().join(".config/claudenest/agent.toml");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let saved = std::fs::read_to_string(&file).unwrap();
        let token = saved.lines().find_map(|l| l.strip_prefix("token = ")).unwrap().trim_matches('"').to_owned();
        let own = app.get("/api/agent/machine", Some(&token)).await;
        own.expect(200);
        assert_eq!(own.body["data"]["id"], id.to_string());
        let missing = app.post("/api/pairing", None, json!({"token_hash": "abc"})).await;
        missing.expect(422);
    }

    async fn wake_on_lan_sends_a_magic_packet_to_loopback(db: TestDb) {
        let (listener, port) = udp_listener().await;
        // Loopback is no broadcast address: only because the operator allows this target.
        let allowed = format!("127.0.0.1:{port}");
        let app = TestApp::spawn_with(db, |c| {
            fast_links(c);
            c.wake_on_lan.allowed_targets = vec![allowed];
        }).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        // Anything else but a broadcast address on port 7 or 9 is refused, and nothing is sent.
        let (stray, stray_port) = udp_listener().await;
        // (Loopback only, so even a regression sends nothing off this machine.)
        for (broadcast, target_port) in [("127.0.0.1", stray_port), ("127.0.0.5", 9), ("127.0.0.255", stray_port)] {
            let (id, _) = app.register_machine(&ada, json!({"name": format!("stray-{broadcast}-{target_port}"), "capabilities": ["wake_on_lan"],
                "wake_on_lan": {"mac": "01:23:45:67:89:ab", "broadcast": broadcast, "port": target_port}})).await;
            let refused = app.post(&format!("/api/machines/{id}/wake"), Some(&ada), json!({})).await;
            refused.expect(400);
            assert_eq!(refused.error_code(), "MCH_003");
            assert!(refused.body["error"]["message"].as_str().unwrap().contains("broadcast"), "{}", refused.text);
        }
        let mut buf = [0u8; 256];
        let nothing = tokio::time::timeout(Duration::from_millis(300), stray.recv_from(&mut buf)).await;
        assert!(nothing.is_err(), "a packet reached a target that is not allowed");
        let (id, token) = app.register_machine(&ada, json!({"name": "sleeper", "capabilities": ["wake_on_lan"],
            "wake_on_lan": {"mac": "01:23:45:67:89:ab", "broadcast": "127.0.0.1", "port": port}})).await;

        let reply = app.post(&format!("/api/machines/{id}/wake"), Some(&ada), json!({})).await;
        reply.expect(200);
        assert_eq!(reply.body["data"]["message"], "Wake-on-LAN signal sent");
        assert_eq!(reply.body["data"]["machine"]["status"], "connecting");
        assert_eq!(receive_packet(&listener).await, magic_packet_for([0x01, 0x23, 0x45, 0x67, 0x89, 0xab]));
        let connecting = app.get("/api/machines?status=connecting", Some(&ada)).await;
        assert_eq!(connecting.body["meta"]["pagination"]["total"], 1);

        let (no_cap, _) = app.register_machine(&ada, json!({"name": "no-cap",
            "wake_on_lan": {"mac": "01:23:45:67:89:ab", "broadcast": "127.0.0.1", "port": port}})).await;
        let refused = app.post(&format!("/api/machines/{no_cap}/wake"), Some(&ada), json!({})).await;
        refused.expect(400);
        assert_eq!(refused.error_code(), "MCH_003");
        let (no_mac, _) = app.register_machine(&ada, json!({"name": "no-mac", "capabilities": ["wake_on_lan"],
            "wake_on_lan": {"broadcast": "127.0.0.1", "port": port}})).await;
        let refused = app.post(&format!("/api/machines/{no_mac}/wake"), Some(&ada), json!({})).await;
        refused.expect(400);
        assert_eq!(refused.error_code(), "MCH_003");

        let _agent = AgentProcess::start(&app, &token, &[]);
        app.wait_for_status(&ada, id, "online", SOON).await;
        let awake = app.post(&format!("/api/machines/{id}/wake"), Some(&ada), json!({})).await;
        awake.expect(400);
        assert_eq!(awake.error_code(), "MCH_004");
    }

    async fn wake_on_lan_goes_through_an_online_agent_on_the_same_lan(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| {
            fast_links(c);
            c.wake_on_lan.allowed_targets = vec!["127.0.0.1".into()];
        }).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (listener, port) = udp_listener().await;
        let (sleeper, sleeper_token) = app.register_machine(&ada, json!({"name": "sleeper",
            "capabilities": ["wake_on_lan"],
            "wake_on_lan": {"mac": "02:00:00:00:00:09", "broadcast": "127.0.0.1", "port": port}})).await;
        let (relay, relay_token) = app.register_machine(&ada, json!({"name": "relay"})).await;
        // The sleeper's agent reports its LAN, then the machine goes to sleep.
        let mut sleeper_agent = AgentProcess::start(&app, &sleeper_token, &[]);
        app.wait_for_status(&ada, sleeper, "online", SOON).await;
        sleeper_agent.kill();
        app.wait_for_status(&ada, sleeper, "offline", SOON).await;
        let _relay_agent = AgentProcess::start(&app, &relay_token, &[]);
        app.wait_for_status(&ada, relay, "online", SOON).await;

        let env = app.get(&format!("/api/machines/{sleeper}/environment"), Some(&ada)).await;
        let has_lan = env.body["data"]["networks"].as_array().is_some_and(|n| !n.is_empty());
        let reply = app.post(&format!("/api/machines/{sleeper}/wake"), Some(&ada), json!({})).await;
        reply.expect(200);
        // Both agents run on this machine, so they share its LANs; with no LAN at all the host
        // sends the packet itself. Either way the packet arrives, to loopback only.
        let expected = if has_lan { json!(relay.to_string()) } else { Value::Null };
        assert_eq!(reply.body["data"]["relayed_by"], expected);
        assert_eq!(receive_packet(&listener).await, magic_packet_for([2, 0, 0, 0, 0, 9]));
    }

    async fn the_link_protocol_answers_every_frame_and_one_link_replaces_another(db: TestDb) {
        let app = TestApp::spawn_with(db, fast_links).await;
        let (_, ada) = app.user_with_token("ada@example.com").await;
        let (id, token) = app.register_machine(&ada, json!({"name": "raw"})).await;

        let refused = RawLink::connect(&app, "mn_not_a_real_token").await;
        assert!(refused.is_err(), "an unknown machine token cannot open a link");

        let mut first = RawLink::connect(&app, &token).await.unwrap();
        let welcome = first.hello().await;
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["machine_id"], id.to_string());
        assert_eq!(app.machine_status(&ada, id).await, "online");
        let env = app.get(&format!("/api/machines/{id}/environment"), Some(&ada)).await;
        assert_eq!(env.body["data"]["hostname"], "raw");
        assert_eq!(env.body["data"]["networks"], json!([{"addr": "198.51.100.7", "prefix": 24}]));

        first.send(json!({"type": "skills_discovered", "id": 41})).await;
        let answer = first.next().await.unwrap();
        assert_eq!(answer["type"], "error");
        assert_eq!(answer["code"], "unknown_type");
        assert_eq!(answer["reply_to"], 41);
        first.send(json!({"type": "pong"})).await;
        assert_eq!(first.next().await.unwrap()["code"], "bad_message");
        first.send(json!({"type": "hello", "protocol_version": claudenest::protocol::PROTOCOL_VERSION, "environment": {}})).await;
        assert_eq!(first.next().await.unwrap()["type"], "error");

        let mut second = RawLink::connect(&app, &token).await.unwrap();
        assert_eq!(second.hello().await["type"], "welcome");
        let goodbye = first.next().await.unwrap();
        assert_eq!(goodbye["type"], "goodbye");
        assert_eq!(first.next().await.unwrap()["closed"], 4000);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.machine_status(&ada, id).await, "online", "the newer link keeps it online");

        let mut old = RawLink::connect(&app, &token).await.unwrap();
        old.send(json!({"type": "hello", "protocol_version": 99, "environment": {
            "platform": "", "hostname": "", "arch": "", "agent_version": "", "node_version": null,
            "claude_version": null, "claude_path": null, "capabilities": [], "max_sessions": 1,
            "mac_addresses": [], "networks": []}})).await;
        assert_eq!(old.next().await.unwrap()["type"], "error");
    }
}

#[tokio::test]
async fn a_second_agent_with_the_same_token_takes_over_cleanly() {
    let app = TestApp::spawn_with(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
        fast_links,
    )
    .await;
    let (_, ada) = app.user_with_token("ada@example.com").await;
    let (id, token) = app.register_machine(&ada, json!({"name": "box"})).await;
    let mut raw = RawLink::connect(&app, &token).await.unwrap();
    raw.hello().await;
    let _agent = AgentProcess::start(&app, &token, &[]);
    assert_eq!(raw.next().await.unwrap()["type"], "goodbye");
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.wait_for_status(&ada, id, "online", SOON).await;
    let env = app
        .get(&format!("/api/machines/{id}/environment"), Some(&ada))
        .await;
    assert_ne!(
        env.body["data"]["hostname"], "raw",
        "the real agent's hello replaced the raw one"
    );
}

/// Two host processes on one PostgreSQL database: the agent is linked to B; requests and
/// token regeneration made through A reach it.
#[tokio::test]
async fn an_agent_linked_to_another_host_process_is_reached_through_the_relay() {
    let Some(db) = TestDb::create(claudenest_e2e::Backend::Postgres).await else {
        return;
    };
    let shared = db.share();
    let node_a = TestApp::spawn_with(db, fast_links).await;
    let node_b = TestApp::spawn_with(shared, fast_links).await;
    let (_, ada) = node_a.user_with_token("ada@example.com").await;
    let (id, token) = node_a.register_machine(&ada, json!({"name": "box"})).await;
    let agent = AgentProcess::start(&node_b, &token, &[]);
    node_a.wait_for_status(&ada, id, "online", SOON).await;
    assert!(node_b.state.links().is_connected(id) && !node_a.state.links().is_connected(id));

    let ping = node_a
        .post(&format!("/api/machines/{id}/ping"), Some(&ada), json!({}))
        .await;
    ping.expect(200);
    assert!(ping.body["data"]["round_trip_ms"].as_f64().unwrap() > 0.0);

    node_a
        .post(
            &format!("/api/machines/{id}/regenerate-token"),
            Some(&ada),
            json!({}),
        )
        .await
        .expect(200);
    node_a.wait_for_status(&ada, id, "offline", SOON).await;
    assert!(
        !node_b.state.links().is_connected(id),
        "node B dropped the link"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        agent.log().contains("401") || agent.log().contains("token regenerated"),
        "{}",
        agent.log()
    );
}

/// An agent that floods skill reports is cut off once they arrive faster than they are applied
/// (the host's queue is bounded), and a folder cannot grow a machine past its skill cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skill_report_floods_are_bounded() {
    let db = TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::spawn_with(db, fast_links).await;
    let (_, ada) = app.user_with_token("ada@example.com").await;
    let (id, token) = app.register_machine(&ada, json!({"name": "raw"})).await;
    let mut link = RawLink::connect(&app, &token).await.unwrap();
    assert_eq!(link.hello().await["type"], "welcome");
    let skill = |n: usize| {
        json!({"path": format!("s{n}"), "modified": "2026-12-01T00:00:00Z",
               "content": format!("---\nname: s{n}\ndescription: skill {n}\n---\nDo {n}.\n")})
    };
    // 600 new skills in one report: only the cap is taken.
    let many: Vec<Value> = (0..600).map(skill).collect();
    link.send(json!({"type": "skills_report", "skills": many}))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let count = app.state.store().skills(id).await.unwrap().len();
        if count >= claudenest::domain::skills::MAX_SKILLS_PER_MACHINE {
            assert_eq!(count, claudenest::domain::skills::MAX_SKILLS_PER_MACHINE);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {count} skills applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A flood of reports: the link is closed with 1008, the host keeps answering.
    let frames: Vec<Value> = (0..2000)
        .map(|i| json!({"type": "skills_report", "skills": [skill(i % 50)]}))
        .collect();
    let mut closed = None;
    for frame in frames {
        if link
            .socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(10), link.socket.next()).await
    {
        if let Message::Close(frame) = frame {
            closed = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(closed, Some(1008));
    app.get("/api/health", None).await.expect(200);
}
