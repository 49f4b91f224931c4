//! Sessions on the machine: interactive ones run the configured `claude` (or any command) in a
//! real PTY; headless and oneshot ones run it with pipes (`claude -p …`).
//!
//! Output is read on a thread per stream, numbered per session and kept in the session's
//! journal until the host acknowledges it has been stored. The link sends what is unsent and,
//! after a reconnect, resends from the host's last acknowledged sequence: a dropped link or a
//! host restart loses no byte. The journal is bounded: when it is full the reader waits, so
//! the process is slowed (its writes block), never cut. The exit is sent after the last output
//! and kept until the host acknowledges it too.

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead as _, Read, Write as _},
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Duration,
};

use anyhow::Context as _;
use nix::sys::signal::Signal;
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::Notify;
use uuid::Uuid;

use claudenest_protocol::{AgentMessage, SessionCursor};

use crate::hooks::Usage;

/// Unacknowledged output a session may hold before its reader waits.
pub const JOURNAL_BYTES: usize = 4 * 1024 * 1024;
/// Lines of scrollback the terminal emulator keeps for snapshots (the screen is what counts).
const SNAPSHOT_SCROLLBACK: usize = 0;

/// How to reach a running process.
enum Control {
    Pty {
        master: Box<dyn MasterPty + Send>,
        writer: Box<dyn std::io::Write + Send>,
    },
    /// Headless and oneshot: no terminal, no input.
    Pipes,
}

/// Output numbered but not yet acknowledged by the host.
#[derive(Default)]
struct Journal {
    unacked: VecDeque<(u64, String)>,
    bytes: usize,
    last_seq: u64,
    /// Highest seq sent on the current link.
    sent: u64,
    /// `Some(exit code)` once the process ended and was reaped.
    exit: Option<Option<i32>>,
    exit_sent: bool,
}

impl Journal {
    fn push(&mut self, data: String) {
        self.last_seq += 1;
        self.bytes += data.len();
        self.unacked.push_back((self.last_seq, data));
    }

    fn ack(&mut self, seq: u64) {
        while self.unacked.front().is_some_and(|(s, _)| *s <= seq) {
            let (_, data) = self.unacked.pop_front().expect("front exists");
            self.bytes -= data.len();
        }
    }
}

struct Entry {
    /// `None` once the process exited.
    control: Option<Control>,
    /// Leader of the process's own process group.
    pid: Option<u32>,
    journal: Journal,
    /// Interactive sessions: the terminal as a viewer would see it now.
    screen: Option<vt100::Parser>,
    usage: Option<Usage>,
    usage_sent: bool,
}

struct Inner {
    table: Mutex<HashMap<Uuid, Entry>>,
    /// Readers of a full journal wait here for acknowledgements.
    room: Condvar,
    /// The link waits here for something to send.
    ready: Notify,
    claude_path: Option<PathBuf>,
    kill_grace: Duration,
    /// Claude Code hooks for the sessions that run `claude` (none: no session gets hooks).
    hooks: Mutex<Option<crate::hooks::Hooks>>,
}

/// The sessions this agent runs (and the ended ones whose exit the host has not stored yet).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

/// How a session is started (the host's `session_start` request).
pub struct StartRequest {
    pub session_id: Uuid,
    pub mode: String,
    pub project_path: Option<String>,
    pub initial_prompt: Option<String>,
    pub cols: u16,
    pub rows: u16,
    /// ClaudeNest's MCP server for this session's Claude Code.
    pub mcp: Option<McpAccess>,
    /// The path registered for the machine (used when the agent has none of its own).
    pub claude_path: Option<String>,
}

/// The `--mcp-config` file a session's Claude Code gets (removed when the session ends), and
/// its instance id (also in `CLAUDENEST_INSTANCE_ID`).
pub struct McpAccess {
    pub config: PathBuf,
    pub instance_id: String,
}

/// The token in the file is the session's: gone with it.
impl Drop for McpAccess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

impl McpAccess {
    /// Writes `{"mcpServers": {"claudenest": {"type": "http", url, headers}}}`, readable by
    /// the agent's user only (it holds the session's token).
    pub fn write(
        server: &str,
        session_id: Uuid,
        access: &claudenest_protocol::SessionMcp,
    ) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let config = std::env::temp_dir().join(format!("claudenest-mcp-{session_id}.json"));
        let body = serde_json::json!({
            "mcpServers": {
                "claudenest": {
                    "type": "http",
                    "url": format!("{}/mcp", server.trim_end_matches('/')),
                    "headers": { "Authorization": format!("Bearer {}", access.token) },
                }
            }
        });
        let _ = std::fs::remove_file(&config);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .with_context(|| format!("writing {}", config.display()))?;
        std::io::Write::write_all(&mut file, body.to_string().as_bytes())?;
        Ok(Self {
            config,
            instance_id: access.instance_id.clone(),
        })
    }
}

impl Sessions {
    /// `kill_grace`: how long a terminated process has between the polite signal and SIGKILL.
    pub fn new(claude_path: Option<PathBuf>, kill_grace: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::default(),
                room: Condvar::new(),
                ready: Notify::new(),
                claude_path,
                kill_grace,
                hooks: Mutex::new(None),
            }),
        }
    }

    /// Sessions that run `claude` from now on get these hooks.
    pub fn set_hooks(&self, hooks: crate::hooks::Hooks) {
        *self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner()) = Some(hooks);
    }

    /// The session's hooks, when its program is Claude Code and this agent has hooks.
    fn install_hooks(&self, req: &StartRequest) -> Option<crate::hooks::SessionHooks> {
        if !crate::hooks::is_claude(&self.program(req)) {
            return None;
        }
        let hooks = self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let (sessions, id) = (self.clone(), req.session_id);
        hooks.install(id, Arc::new(move |usage| sessions.report_usage(id, usage)))
    }

    /// Usage the session's hooks found: sent to the host (again after a reconnect).
    pub fn report_usage(&self, id: Uuid, usage: Usage) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.usage = Some(usage);
            entry.usage_sent = false;
        }
        self.inner.ready.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agent's own `--claude-path`, else the machine's registered one, else `claude` on the
    /// agent's PATH.
    fn program(&self, req: &StartRequest) -> PathBuf {
        self.inner
            .claude_path
            .clone()
            .or_else(|| req.claude_path.as_ref().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("claude"))
    }

    /// The arguments for a mode: interactive runs `claude` as is; headless and oneshot pass the
    /// prompt with `-p` (headless asks for stream-json output).
    fn arguments(req: &StartRequest, hooks: Option<&crate::hooks::SessionHooks>) -> Vec<String> {
        let mut args = Vec::new();
        if req.mode != "interactive" {
            args.push("-p".to_owned());
            if req.mode == "headless" {
                args.extend(["--output-format", "stream-json", "--verbose"].map(String::from));
            }
        }
        if let Some(mcp) = &req.mcp {
            args.push("--mcp-config".to_owned());
            args.push(mcp.config.display().to_string());
        }
        if let Some(hooks) = hooks {
            args.push("--settings".to_owned());
            args.push(hooks.settings_file.display().to_string());
        }
        if req.mode != "interactive" {
            // Last, after the end of options: a prompt like `--dangerously-skip-permissions`
            // is the prompt, never an option.
            args.push("--".to_owned());
            args.push(req.initial_prompt.clone().unwrap_or_default());
        }
        args
    }

    pub fn start(&self, req: StartRequest) -> anyhow::Result<()> {
        if self.lock().contains_key(&req.session_id) {
            anyhow::bail!("the session is already running here");
        }
        if req.mode == "interactive" {
            self.start_pty(req)
        } else {
            self.start_piped(req)
        }
    }

    fn insert(&self, id: Uuid, control: Control, pid: Option<u32>, screen: Option<vt100::Parser>) {
        self.lock().insert(
            id,
            Entry {
                control: Some(control),
                pid,
                journal: Journal::default(),
                screen,
                usage: None,
                usage_sent: false,
            },
        );
    }

    fn start_pty(&self, req: StartRequest) -> anyhow::Result<()> {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: req.rows,
                cols: req.cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .context("opening a PTY")?;
        let hooks = self.install_hooks(&req);
        let mut cmd = CommandBuilder::new(self.program(&req));
        cmd.args(Self::arguments(&req, hooks.as_ref()));
        for name in super::private_env() {
            cmd.env_remove(name);
        }
        if let Some(dir) = &req.project_path {
            cmd.cwd(dir);
        }
        cmd.env("TERM", "xterm-256color");
        if let Some(mcp) = &req.mcp {
            cmd.env("CLAUDENEST_INSTANCE_ID", &mcp.instance_id);
        }
        if let Some(hooks) = &hooks {
            cmd.env(crate::hooks::SOCKET_ENV, &hooks.socket);
            cmd.env(crate::hooks::TOKEN_ENV, &hooks.token);
        }
        // portable-pty makes the child a session (and process group) leader.
        let mut child = pair
            .slave
            .spawn_command(cmd)
            .context("starting the session's command")?;
        // The child holds the slave side; ours must close so EOF arrives when it exits.
        drop(pair.slave);
        let reader = pair.master.try_clone_reader()?;
        let mut writer = pair.master.take_writer()?;
        if let Some(prompt) = req.initial_prompt.as_deref().filter(|p| !p.is_empty()) {
            // Typed once the program had a moment to draw its prompt.
            std::thread::sleep(Duration::from_millis(300));
            writer.write_all(format!("{prompt}\r").as_bytes())?;
        }
        let screen = vt100::Parser::new(req.rows, req.cols, SNAPSHOT_SCROLLBACK);
        let control = Control::Pty {
            master: pair.master,
            writer,
        };
        self.insert(req.session_id, control, child.process_id(), Some(screen));
        let (sessions, id) = (self.clone(), req.session_id);
        let mcp = req.mcp;
        std::thread::spawn(move || {
            sessions.pump(id, reader);
            let exit_code = child.wait().ok().map(|status| status.exit_code() as i32);
            drop((mcp, hooks));
            sessions.exited(id, exit_code);
        });
        Ok(())
    }

    fn start_piped(&self, req: StartRequest) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt as _;
        let hooks = self.install_hooks(&req);
        let mut cmd = std::process::Command::new(self.program(&req));
        for name in super::private_env() {
            cmd.env_remove(name);
        }
        if let Some(hooks) = &hooks {
            cmd.env(crate::hooks::SOCKET_ENV, &hooks.socket);
            cmd.env(crate::hooks::TOKEN_ENV, &hooks.token);
        }
        cmd.args(Self::arguments(&req, hooks.as_ref()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so terminate reaches whatever it starts.
            .process_group(0);
        if let Some(dir) = &req.project_path {
            cmd.current_dir(dir);
        }
        if let Some(mcp) = &req.mcp {
            cmd.env("CLAUDENEST_INSTANCE_ID", &mcp.instance_id);
        }
        let mut child = cmd.spawn().context("starting the session's command")?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        self.insert(req.session_id, Control::Pipes, Some(child.id()), None);
        let (sessions, id) = (self.clone(), req.session_id);
        let headless = req.mode == "headless";
        let mcp = req.mcp;
        std::thread::spawn(move || {
            let errors = {
                let sessions = sessions.clone();
                std::thread::spawn(move || sessions.pump(id, stderr))
            };
            if headless {
                sessions.pump_stream_json(id, stdout);
            } else {
                sessions.pump(id, stdout);
            }
            let _ = errors.join();
            let exit_code = child.wait().ok().and_then(|status| status.code());
            drop((mcp, hooks));
            sessions.exited(id, exit_code);
        });
        Ok(())
    }

    /// Reads a stream to its end into the session's journal.
    fn pump(&self, id: Uuid, mut reader: impl Read) {
        let mut buf = vec![0u8; 16 * 1024];
        let mut utf8 = Utf8Joiner::default();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(data) = utf8.push(&buf[..n]) {
                self.output(id, data);
            }
        }
    }

    /// Headless stdout: Claude Code's stream-json, one JSON object a line. Logged as is; the
    /// final `result` line also gives the session's token use and cost.
    fn pump_stream_json(&self, id: Uuid, reader: impl Read) {
        let mut lines = std::io::BufReader::with_capacity(64 * 1024, reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(usage) = stream_json_usage(&text) {
                self.report_usage(id, usage);
            }
            self.output(id, text);
        }
    }

    /// Journals a chunk, waiting while the journal is full.
    fn output(&self, id: Uuid, data: String) {
        let mut table = self.lock();
        loop {
            match table.get(&id) {
                // Forgotten (the host does not know the session): drain and drop.
                None => return,
                Some(entry) if entry.journal.bytes < JOURNAL_BYTES => break,
                Some(_) => {
                    table = self
                        .inner
                        .room
                        .wait(table)
                        .unwrap_or_else(|p| p.into_inner())
                }
            }
        }
        let entry = table.get_mut(&id).expect("checked above");
        if let Some(screen) = &mut entry.screen {
            screen.process(data.as_bytes());
        }
        entry.journal.push(data);
        drop(table);
        self.inner.ready.notify_one();
    }

    fn exited(&self, id: Uuid, exit_code: Option<i32>) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.control = None;
            entry.journal.exit = Some(exit_code);
        }
        self.inner.ready.notify_one();
    }

    /// Wakes when there may be something to send.
    pub fn ready(&self) -> &Notify {
        &self.inner.ready
    }

    /// Up to `max` messages not yet sent on this link, in order per session: output, usage,
    /// then the exit once all output went out.
    pub fn pending(&self, max: usize) -> Vec<AgentMessage> {
        let mut out = Vec::new();
        let mut table = self.lock();
        for (&session_id, entry) in table.iter_mut() {
            let journal = &mut entry.journal;
            let first = journal.unacked.partition_point(|(s, _)| *s <= journal.sent);
            let mut sent = journal.sent;
            for (seq, data) in journal.unacked.range(first..) {
                if out.len() >= max {
                    break;
                }
                out.push(AgentMessage::SessionOutput {
                    session_id,
                    seq: *seq,
                    data: data.clone(),
                });
                sent = *seq;
            }
            journal.sent = sent;
            if out.len() >= max {
                break;
            }
            if let Some(usage) = entry.usage.filter(|_| !entry.usage_sent) {
                entry.usage_sent = true;
                out.push(AgentMessage::SessionUsage {
                    session_id,
                    total_tokens: usage.total_tokens,
                    total_cost: usage.total_cost,
                });
            }
            if let Some(exit_code) = journal.exit
                && !journal.exit_sent
                && journal.sent == journal.last_seq
            {
                journal.exit_sent = true;
                out.push(AgentMessage::SessionExit {
                    session_id,
                    exit_code,
                });
            }
        }
        out
    }

    /// The host stored output up to `seq` (and the exit, when `exit_recorded`).
    pub fn ack(&self, id: Uuid, seq: u64, exit_recorded: bool) {
        let mut table = self.lock();
        if let Some(entry) = table.get_mut(&id) {
            entry.journal.ack(seq);
            if exit_recorded && entry.control.is_none() {
                table.remove(&id);
            }
        }
        drop(table);
        self.inner.room.notify_all();
    }

    /// A new link: resend from the host's cursors. Sessions the host does not know are ended
    /// and forgotten; those it already ended are terminated.
    pub fn resume(&self, cursors: &[SessionCursor]) {
        let mut ended = Vec::new();
        let mut table = self.lock();
        table.retain(|id, entry| {
            let Some(cursor) = cursors.iter().find(|c| c.session_id == *id) else {
                tracing::warn!(session_id = %id, "the host does not know this session; ending it");
                signal_group(entry.pid, Signal::SIGKILL);
                return false;
            };
            let journal = &mut entry.journal;
            journal.ack(cursor.acked_seq);
            journal.sent = cursor.acked_seq.min(journal.last_seq);
            journal.exit_sent = false;
            entry.usage_sent = false;
            if cursor.ended && entry.control.is_some() {
                ended.push(*id);
            }
            true
        });
        drop(table);
        self.inner.room.notify_all();
        self.inner.ready.notify_one();
        for id in ended {
            let _ = self.terminate(id);
        }
    }

    /// Every session this agent holds (running, or ended with the exit not yet stored).
    pub fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    /// Typed input, written by the link's loop itself when that cannot wait: small, the table
    /// free, the PTY with room for it now. Then the answer goes back at once, with no task and
    /// no channel in between, which is most of a keystroke's time in the agent. `None` sends it
    /// the long way ([`Self::input`] on a task of its own): a paste, or a program not reading
    /// its input, whose PTY write waits until it does, must not stop the loop (and its pongs).
    pub fn input_at_once(&self, id: Uuid, data: &str) -> Option<anyhow::Result<()>> {
        if data.len() > INPUT_AT_ONCE_BYTES {
            return None;
        }
        // Held by a write that waits for room, or by a reader: the long way.
        let mut table = self.inner.table.try_lock().ok()?;
        let Some(Control::Pty { writer, master }) =
            table.get_mut(&id).and_then(|e| e.control.as_mut())
        else {
            return None;
        };
        if !has_room(master.as_ref()) {
            return None;
        }
        Some(type_into(writer, data))
    }

    pub fn input(&self, id: Uuid, data: &str) -> anyhow::Result<()> {
        let mut table = self.lock();
        match table.get_mut(&id).and_then(|e| e.control.as_mut()) {
            Some(Control::Pty { writer, .. }) => type_into(writer, data),
            Some(Control::Pipes) => anyhow::bail!("headless and oneshot sessions take no input"),
            None => anyhow::bail!("no such session running on this machine"),
        }
    }

    pub fn resize(&self, id: Uuid, cols: u16, rows: u16) -> anyhow::Result<()> {
        let mut table = self.lock();
        let entry = table
            .get_mut(&id)
            .filter(|e| e.control.is_some())
            .context("no such session running on this machine")?;
        if let Some(screen) = &mut entry.screen {
            screen.screen_mut().set_size(rows, cols);
        }
        match &entry.control {
            Some(Control::Pty { master, .. }) => master.resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            }),
            _ => Ok(()),
        }
    }

    /// Hang-up (PTY) or SIGTERM (pipes) now; SIGKILL to the whole process group if it is still
    /// there after the grace period.
    pub fn terminate(&self, id: Uuid) -> anyhow::Result<()> {
        let (pid, polite) = {
            let table = self.lock();
            let entry = table
                .get(&id)
                .filter(|e| e.control.is_some())
                .context("no such session running on this machine")?;
            let polite = match entry.control {
                Some(Control::Pty { .. }) => Signal::SIGHUP,
                _ => Signal::SIGTERM,
            };
            (entry.pid, polite)
        };
        signal_group(pid, polite);
        self.after_grace(id, pid, move |_| {
            tracing::info!(session_id = %id, "the session ignored its hang-up; killing it");
            signal_group(pid, Signal::SIGKILL);
        });
        Ok(())
    }

    /// Runs `then` after the grace period if the process `pid` of session `id` still runs.
    fn after_grace(&self, id: Uuid, pid: Option<u32>, then: impl FnOnce(&Self) + Send + 'static) {
        let (sessions, grace) = (self.clone(), self.inner.kill_grace);
        std::thread::spawn(move || {
            std::thread::sleep(grace);
            let still_running = sessions
                .lock()
                .get(&id)
                .is_some_and(|e| e.control.is_some() && e.pid == pid);
            if still_running {
                then(&sessions);
            }
        });
    }

    /// Stops the current run: Ctrl-C into the terminal (SIGINT to the process group for
    /// pipes), then [`Self::terminate`] when it is still running after the grace period.
    pub fn interrupt(&self, id: Uuid) -> anyhow::Result<()> {
        let pid = {
            let mut table = self.lock();
            let entry = table
                .get_mut(&id)
                .filter(|e| e.control.is_some())
                .context("no such session running on this machine")?;
            if let Some(Control::Pty { writer, .. }) = &mut entry.control {
                writer.write_all(b"\x03")?;
                writer.flush()?;
            } else {
                signal_group(entry.pid, Signal::SIGINT);
            }
            entry.pid
        };
        self.after_grace(id, pid, move |sessions| {
            let _ = sessions.terminate(id);
        });
        Ok(())
    }

    /// The screen of an interactive session now, with the sequence it reflects.
    pub fn snapshot(&self, id: Uuid) -> anyhow::Result<serde_json::Value> {
        let table = self.lock();
        let entry = table.get(&id).context("no such session on this machine")?;
        let screen = entry
            .screen
            .as_ref()
            .context("only interactive sessions have a screen")?
            .screen();
        let (rows, cols) = screen.size();
        Ok(serde_json::json!({
            "seq": entry.journal.last_seq,
            "rows": rows,
            "cols": cols,
            "text": screen.contents(),
            "ansi": String::from_utf8_lossy(&screen.state_formatted()),
        }))
    }

    /// Agent shutdown: ends every session (politely, then by force after the grace period).
    pub async fn end_all(&self) {
        let ids: Vec<Uuid> = self.ids();
        for id in &ids {
            let _ = self.terminate(*id);
        }
        let deadline = tokio::time::Instant::now() + self.inner.kill_grace + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline
            && self.lock().values().any(|e| e.control.is_some())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `signal` to the process group led by `pid`.
fn signal_group(pid: Option<u32>, signal: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Joins reads into valid UTF-8: a character split across reads waits for its rest; bytes
/// that can never be UTF-8 become U+FFFD.
#[derive(Default)]
struct Utf8Joiner {
    pending: Vec<u8>,
}

impl Utf8Joiner {
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let data = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        (!data.is_empty()).then_some(data)
    }
}

/// Token use and cost from a stream-json `result` line (Claude Code's `--output-format
/// stream-json`): input + output + cache tokens, and `total_cost_usd`.
fn stream_json_usage(line: &str) -> Option<Usage> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if value["type"] != "result" {
        return None;
    }
    let usage = &value["usage"];
    let total_tokens = [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| usage[k].as_i64())
    .sum();
    Some(Usage {
        total_tokens,
        total_cost: value["total_cost_usd"].as_f64().unwrap_or(0.0),
    })
}

/// Writes typed input into a PTY, all of it, waiting while the PTY is full.
fn type_into(writer: &mut (impl std::io::Write + ?Sized), data: &str) -> anyhow::Result<()> {
    writer.write_all(data.as_bytes())?;
    writer.flush()?;
    Ok(())
}

/// Input the link's loop may write itself ([`Sessions::input_at_once`]); more takes a task.
const INPUT_AT_ONCE_BYTES: usize = 512;

/// Whether the PTY takes input now: `poll` says it is writable, which a PTY says while it has
/// room for far more than [`INPUT_AT_ONCE_BYTES`] (a full one waits for its program to read).
#[allow(unsafe_code)]
fn has_room(master: &dyn MasterPty) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Some(fd) = master.as_raw_fd() else {
        return false;
    };
    // SAFETY: the master's own descriptor, open for as long as `master` is borrowed here.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_rest() {
        let mut joiner = Utf8Joiner::default();
        let bytes = "é!".as_bytes();
        assert_eq!(joiner.push(&bytes[..1]), None);
        assert_eq!(joiner.push(&bytes[1..]).as_deref(), Some("é!"));
        assert_eq!(joiner.push(&[0xff, b'a']).as_deref(), Some("\u{fffd}a"));
    }

    #[test]
    fn the_result_line_gives_tokens_and_cost() {
        let line =
            r#"{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.0123,
            "usage":{"input_tokens":10,"output_tokens":20,"cache_read_input_tokens":5}}"#
                .replace('\n', "");
        let usage = stream_json_usage(&line).unwrap();
        assert_eq!(usage.total_tokens, 35);
        assert!((usage.total_cost - 0.0123).abs() < 1e-12);
        assert!(stream_json_usage(r#"{"type":"assistant","message":{}}"#).is_none());
        assert!(stream_json_usage("not json").is_none());
    }

    #[test]
    fn input_at_once_never_waits_for_a_full_pty() {
        // A program that never reads its input: its PTY fills, and then input must go the long
        // way instead of stopping the link's loop.
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("claude");
        std::fs::write(&script, "#!/bin/sh\nstty raw -echo\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sessions = Sessions::new(Some(script), Duration::from_secs(1));
        let id = Uuid::now_v7();
        sessions
            .start(StartRequest {
                session_id: id,
                mode: "interactive".into(),
                project_path: Some(dir.path().display().to_string()),
                initial_prompt: None,
                cols: 80,
                rows: 24,
                mcp: None,
                claude_path: None,
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            sessions
                .input_at_once(id, &"x".repeat(INPUT_AT_ONCE_BYTES + 1))
                .is_none(),
            "too big"
        );
        let filling = sessions.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let chunk = "x".repeat(INPUT_AT_ONCE_BYTES);
            let mut written = 0;
            while let Some(outcome) = filling.input_at_once(id, &chunk) {
                outcome.unwrap();
                written += chunk.len();
                if written > 16 << 20 {
                    break;
                }
            }
            let _ = done.send(written);
        });
        let written = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("input_at_once waited for the PTY");
        assert!(written > 0, "the PTY had room at first");
        assert!(written < 16 << 20, "a full PTY is declined, not written to");
        sessions.terminate(id).unwrap();
    }

    #[test]
    fn acknowledged_output_leaves_the_journal_and_the_rest_is_resent() {
        let sessions = Sessions::new(None, Duration::from_secs(1));
        let id = Uuid::now_v7();
        sessions.insert(id, Control::Pipes, None, None);
        for chunk in ["a", "b", "c"] {
            sessions.output(id, chunk.into());
        }
        let first = sessions.pending(2);
        assert_eq!(first.len(), 2);
        assert_eq!(sessions.pending(10).len(), 1, "only c is left to send");
        sessions.ack(id, 1, false);
        // A new link whose host stored up to 1: b and c go again.
        let cursor = SessionCursor {
            session_id: id,
            acked_seq: 1,
            ended: false,
        };
        sessions.resume(&[cursor]);
        let again = sessions.pending(10);
        let seqs: Vec<u64> = again
            .iter()
            .map(|m| match m {
                AgentMessage::SessionOutput { seq, .. } => *seq,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(seqs, [2, 3]);
        sessions.exited(id, Some(0));
        assert!(matches!(
            sessions.pending(10).as_slice(),
            [AgentMessage::SessionExit {
                exit_code: Some(0),
                ..
            }]
        ));
        sessions.ack(id, 3, true);
        assert!(sessions.ids().is_empty());
        // A session the host does not know is forgotten on resume.
        sessions.insert(id, Control::Pipes, None, None);
        sessions.resume(&[]);
        assert!(sessions.ids().is_empty());
    }
}
