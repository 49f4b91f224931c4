//! The `claudenest` binary as a user runs it: no configuration, signals, migrations.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use claudenest_e2e::{ServerProcess, http_client, server_command as command};

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "claudenest did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a connection and sends half a request, so the server has one in flight.
fn half_request(base_url: &str) -> TcpStream {
    let mut stream = TcpStream::connect(base_url.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    stream
}

#[tokio::test]
async fn starts_with_no_configuration_on_embedded_sqlite_and_stops_on_sigterm() {
    let mut running = ServerProcess::start(&[]).await;
    let health: serde_json::Value = http_client()
        .get(format!("{}/api/health", running.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["data"]["store"]["kind"], "sqlite");
    let db = running
        .home
        .path()
        .join(".local/share/claudenest/claudenest.sqlite3");
    assert!(db.exists(), "the default data directory holds the database");

    signal(&running.child, "TERM");
    let status = wait_exit(&mut running.child, Duration::from_secs(10));
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let mut log = String::new();
    BufReader::new(running.child.stderr.take().unwrap())
        .lines()
        .for_each(|l| {
            log.push_str(&l.unwrap());
            log.push('\n');
        });
    assert!(log.contains("server stopped"), "{log}");
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_requests_up_to_the_drain_timeout() {
    let mut running = ServerProcess::start(&["--shutdown-timeout-secs", "1"]).await;
    let _stream = half_request(&running.base_url);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = Instant::now();
    signal(&running.child, "TERM");
    let status = wait_exit(&mut running.child, Duration::from_secs(10));
    let waited = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        waited >= Duration::from_millis(900),
        "drained for {waited:?}, expected ~1 s"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut running = ServerProcess::start(&["--shutdown-timeout-secs", "60"]).await;
    let _stream = half_request(&running.base_url);
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&running.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "still draining after the first signal"
    );
    let sent = Instant::now();
    signal(&running.child, "INT");
    let status = wait_exit(&mut running.child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(sent.elapsed() < Duration::from_secs(5));
}

#[test]
fn migrate_applies_the_schema_and_bad_configuration_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = command(home.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));

    let config = home.path().join("bad.toml");
    std::fs::write(&config, "bindd = \"127.0.0.1:1\"\n").unwrap();
    let out = command(home.path())
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field: found `bindd`"));

    let out = command(home.path())
        .env("CLAUDENEST_DATABASE_URL", "mysql://x")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database url"));
}

#[test]
fn operators_can_create_a_user_and_a_token_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let mut create = command(home.path())
        .args([
            "user",
            "create",
            "--email",
            "Op@Example.com",
            "--name",
            "Operator",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"long enough password\n")
        .unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<op@example.com>"));

    let out = command(home.path())
        .args([
            "token",
            "create",
            "--email",
            "op@example.com",
            "--name",
            "ci",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("cn_") && token.len() >= 43, "{token}");

    let out = command(home.path())
        .args([
            "token",
            "create",
            "--email",
            "nobody@example.com",
            "--name",
            "ci",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The agent's help offers the agent's flags, not the server's; the agent's flags work after
/// `pair` as well as before it (machines.rs pairs with `agent pair --server URL`). Both ways to
/// run it say the same: `claudenest-agent` (what machines install) and `claudenest agent` (the
/// server's binary delegating to it).
#[test]
fn the_agent_help_shows_only_what_an_agent_uses() {
    let home = tempfile::tempdir().unwrap();
    let agent = |args: &[&str]| {
        let mut cmd = Command::new(claudenest_e2e::agent_binary());
        cmd.env_clear()
            .env("HOME", home.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let runs = [
        (agent(&["--help"]), "claudenest-agent --help"),
        (agent(&["pair", "--help"]), "claudenest-agent pair --help"),
        (
            {
                let mut c = command(home.path());
                c.args(["agent", "--help"]);
                c
            },
            "claudenest agent --help",
        ),
        (
            {
                let mut c = command(home.path());
                c.args(["agent", "pair", "--help"]);
                c
            },
            "claudenest agent pair --help",
        ),
    ];
    for (mut cmd, args) in runs {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args}");
        let help = String::from_utf8(out.stdout).unwrap();
        for own in ["--server", "--token", "--claude-path", "--data-dir"] {
            assert!(help.contains(own), "{args} lacks {own}: {help}");
        }
        for server_only in [
            "--database-url",
            "--bind",
            "--public-url",
            "--shutdown-timeout-secs",
        ] {
            assert!(
                !help.contains(server_only),
                "{args} offers {server_only}: {help}"
            );
        }
    }
    let serve = command(home.path())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(serve.stdout).unwrap();
    assert!(
        help.contains("--database-url") && help.contains("--bind"),
        "{help}"
    );
    // Flags after `pair` are parsed as the agent's: this one fails reaching the host, not parsing.
    let out = command(home.path())
        .args([
            "agent",
            "pair",
            "--server",
            "http://127.0.0.1:9",
            "--no-run",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("reaching the host"),
        "{said}"
    );
}

/// `--log-format json`: one JSON object per line, and the lines a request writes carry its id.
#[tokio::test]
async fn json_logs_carry_each_requests_id() {
    let running =
        ServerProcess::start_logged(&["--log-format", "json", "--log", "info,tower_http=debug"])
            .await;
    let reply = http_client()
        .get(format!("{}/api/health/live", running.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = running.log();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        if lines.iter().any(|l| l["span"]["request_id"] == id.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "no line with {id}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `metrics.bind`: `/metrics` alone on its own address, without a token; the main address
/// serves none.
#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let port = claudenest_e2e::free_port();
    let config = dir.path().join("claudenest.toml");
    std::fs::write(&config, format!("[metrics]\nbind = \"127.0.0.1:{port}\"\n")).unwrap();
    let running = ServerProcess::start(&["--config", config.to_str().unwrap()]).await;
    let client = http_client();
    client
        .get(format!("{}/api/health", running.base_url))
        .send()
        .await
        .unwrap();
    let scraped = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(text.contains("claudenest_http_requests_total{"), "{text}");
    let main = client
        .get(format!("{}/metrics", running.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let other = client
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "the metrics address serves nothing else"
    );
}

/// The systemd units in docs/deploy/ are valid (`systemd-analyze verify`), with their
/// `ExecStart` pointed at the binaries just built.
#[test]
fn the_service_files_pass_systemd_analyze_verify() {
    let Ok(analyze) = Command::new("systemd-analyze").arg("--version").output() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing; CI checks the service files with it (apt install systemd)"
        );
        eprintln!("*** service files NOT CHECKED: no systemd-analyze here ***");
        return;
    };
    assert!(analyze.status.success());
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy");
    let dir = tempfile::tempdir().unwrap();
    let server = claudenest_e2e::claudenest_binary();
    let agent = claudenest_e2e::agent_binary();
    for (unit, installed, built) in [
        ("claudenest.service", "/usr/local/bin/claudenest", &server),
        (
            "claudenest-agent.service",
            "%h/.local/bin/claudenest-agent",
            &agent,
        ),
    ] {
        let text = std::fs::read_to_string(deploy.join(unit)).unwrap();
        assert!(text.contains(installed), "{unit} runs {installed}");
        let copy = dir.path().join(unit);
        std::fs::write(&copy, text.replace(installed, built.to_str().unwrap())).unwrap();
        let verified = Command::new("systemd-analyze")
            .args(["verify", copy.to_str().unwrap()])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&verified.stderr);
        // Complaints about units this one names (postgresql.service) are the host's business.
        let own: Vec<&str> = said.lines().filter(|l| l.contains(unit)).collect();
        assert!(
            verified.status.success() && own.is_empty(),
            "{unit}:\n{said}"
        );
    }
}
