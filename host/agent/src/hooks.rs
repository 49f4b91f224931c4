//! Claude Code hooks for the sessions this agent starts: how the host learns, from Claude Code
//! itself, that a session waits for its person (a permission dialog, an idle prompt, a finished
//! turn), when it works again, and what it has used.
//!
//! A session whose program is `claude` gets `--settings <file>` naming one hook command,
//! `claudenest-agent hook` (never an edit of the user's own settings files). Claude Code runs
//! it with the event's JSON on stdin; it passes the JSON over a Unix socket of the session's own
//! to this agent, with the session's hook token from its environment, and prints the agent's
//! answer. The socket and the settings file live in `<data dir>/hooks/` (0700, ours), one pair
//! per session, gone with it.
//!
//! A `PermissionRequest` waits here for the person's answer (`permission_answer` from the host)
//! up to the answer timeout; after that the hook says nothing and Claude Code's own dialog
//! stands. Usage comes from the transcript Claude Code names in each event, read from where the
//! last read stopped.

use std::{
    collections::HashMap,
    io::{BufRead as _, Read as _, Seek as _, Write as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _},
    sync::{mpsc, oneshot},
};
use uuid::Uuid;

use claudenest_protocol::{AgentMessage, HookReport, PermissionAsk};

/// A session's token use and cost so far.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    pub total_tokens: i64,
    pub total_cost: f64,
}

/// Where a session's usage goes once its hooks found more.
pub type OnUsage = Arc<dyn Fn(Usage) + Send + Sync>;

/// The environment variables a session's hook command reads.
pub const SOCKET_ENV: &str = "CLAUDENEST_HOOK_SOCKET";
pub const TOKEN_ENV: &str = "CLAUDENEST_HOOK_TOKEN";
/// Largest hook event taken (Claude Code's are a few KiB; a file write's input can be large).
const MAX_EVENT_BYTES: u64 = 8 * 1024 * 1024;
/// Hook calls one session may have open at once; more are refused (closed unanswered).
const CALLS_PER_SESSION: usize = 16;
/// A tool's input as the host stores and shows it.
const MAX_TOOL_INPUT_BYTES: usize = 16 * 1024;
/// Transcript read per event at most; the rest waits for the next event.
const MAX_TRANSCRIPT_READ: u64 = 8 * 1024 * 1024;
/// Seconds Claude Code gives the hooks that do not wait for a person.
const QUICK_HOOK_SECS: u64 = 10;
/// Hook events Claude Code is told to report.
const EVENTS: &[&str] = &[
    "Notification",
    "PermissionRequest",
    "PreToolUse",
    "PostToolUse",
    "UserPromptSubmit",
    "Stop",
    "SessionEnd",
];

/// How hooks are set up on this machine.
#[derive(Debug, Clone)]
pub struct HookSettings {
    /// Where sockets and settings files go (made 0700).
    pub dir: PathBuf,
    /// The hook command: this binary and its arguments up to `hook`.
    pub command: Vec<String>,
    /// How long a permission dialog waits for an answer from the host.
    pub answer_timeout: Duration,
}

/// A person's answer to a permission request.
#[derive(Debug)]
struct Answer {
    allow: bool,
    message: Option<String>,
}

struct Inner {
    settings: HookSettings,
    events: mpsc::Sender<AgentMessage>,
    /// Permission requests waiting for an answer: request id → (session, answer).
    waiting: Mutex<HashMap<Uuid, (Uuid, oneshot::Sender<Answer>)>>,
}

/// The hook side of the agent, shared by every session.
#[derive(Clone)]
pub struct Hooks {
    inner: Arc<Inner>,
}

/// What one session has: its `--settings` file and the values of [`SOCKET_ENV`] and
/// [`TOKEN_ENV`]. Dropped when the session ends: the listener stops, the files go.
pub struct SessionHooks {
    pub settings_file: PathBuf,
    pub socket: PathBuf,
    pub token: String,
    listener: tokio::task::AbortHandle,
}

impl Drop for SessionHooks {
    fn drop(&mut self) {
        self.listener.abort();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.settings_file);
    }
}

/// Hooks are installed for Claude Code only: a program named `claude`.
pub fn is_claude(program: &Path) -> bool {
    program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "claude")
}

/// `'…'` for `sh`: the hook command is run by a shell.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl Hooks {
    pub fn new(settings: HookSettings, events: mpsc::Sender<AgentMessage>) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                events,
                waiting: Mutex::default(),
            }),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Uuid, oneshot::Sender<Answer>)>> {
        self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `hooks` settings Claude Code gets: every reported event runs our hook command.
    fn settings_json(&self) -> Value {
        let command = self
            .inner
            .settings
            .command
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let mut hooks = serde_json::Map::new();
        for event in EVENTS {
            let timeout = if *event == "PermissionRequest" {
                self.inner.settings.answer_timeout.as_secs() + QUICK_HOOK_SECS
            } else {
                QUICK_HOOK_SECS
            };
            hooks.insert(
                (*event).to_owned(),
                json!([{ "hooks": [{ "type": "command", "command": command, "timeout": timeout }] }]),
            );
        }
        json!({ "hooks": hooks })
    }

    /// Sets up a session's hooks: its directory, socket and settings file. `None` (and the
    /// session runs without hooks, as before) when that is not possible here.
    pub fn install(&self, session_id: Uuid, on_usage: OnUsage) -> Option<SessionHooks> {
        match self.try_install(session_id, on_usage) {
            Ok(hooks) => Some(hooks),
            Err(err) => {
                tracing::warn!(%session_id, error = format!("{err:#}"), "the session runs without hooks");
                None
            }
        }
    }

    fn try_install(&self, session_id: Uuid, on_usage: OnUsage) -> anyhow::Result<SessionHooks> {
        let dir = &self.inner.settings.dir;
        private_dir(dir)?;
        let socket = dir.join(format!("{}.sock", session_id.simple()));
        // sun_path holds 108 bytes with its NUL.
        anyhow::ensure!(
            socket.as_os_str().len() < 100,
            "the socket path {} is too long for a Unix socket",
            socket.display()
        );
        let settings_file = dir.join(format!("{session_id}.json"));
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&settings_file);
        claudenest_protocol::files::create_private(
            &settings_file,
            self.settings_json().to_string().as_bytes(),
        )?;
        let listener = tokio::net::UnixListener::bind(&socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        let token = claudenest_protocol::tokens::TokenSecret::generate("hk_").plain;
        let session = Arc::new(SessionSide {
            id: session_id,
            token: token.clone(),
            hooks: self.clone(),
            on_usage,
            transcript: Mutex::default(),
        });
        let calls = Arc::new(tokio::sync::Semaphore::new(CALLS_PER_SESSION));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(permit) = calls.clone().try_acquire_owned() else {
                    tracing::warn!(%session_id, "too many hook calls at once; one was refused");
                    continue;
                };
                let session = session.clone();
                tokio::spawn(async move {
                    session.serve(stream).await;
                    drop(permit);
                });
            }
        });
        Ok(SessionHooks {
            settings_file,
            socket,
            token,
            listener: task.abort_handle(),
        })
    }

    /// The host's answer to permission request `request_id` of `session_id`.
    pub fn answer(
        &self,
        session_id: Uuid,
        request_id: Uuid,
        allow: bool,
        message: Option<String>,
    ) -> anyhow::Result<()> {
        let mut waiting = self.waiting();
        match waiting.get(&request_id) {
            Some((session, _)) if *session == session_id => {}
            _ => anyhow::bail!(
                "no permission request {request_id} waits here (answered at the terminal, or timed out)"
            ),
        }
        let (_, tx) = waiting.remove(&request_id).expect("checked above");
        tx.send(Answer { allow, message })
            .map_err(|_| anyhow::anyhow!("the permission request {request_id} stopped waiting"))
    }

    fn report(&self, session_id: Uuid, hook: HookReport) {
        let message = AgentMessage::SessionHook { session_id, hook };
        if self.inner.events.try_send(message).is_err() {
            tracing::warn!(%session_id, "the host link's queue is full; a hook report was dropped");
        }
    }
}

/// Makes `dir` (0700) and checks it is ours and private: a directory someone else made (or
/// opened) would let them reach the sockets.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    anyhow::ensure!(
        meta.is_dir() && ours && meta.mode() & 0o077 == 0,
        "{} is not a private directory of this user",
        dir.display()
    );
    Ok(())
}

/// One hook call as the hook command sends it.
#[derive(Serialize, Deserialize)]
struct HookCall {
    token: String,
    input: Value,
}

/// What the hook command prints and exits with.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HookReply {
    stdout: String,
    exit: i32,
}

/// Where the session's transcript has been read to, and the usage found so far.
#[derive(Default)]
struct Transcript {
    path: Option<PathBuf>,
    offset: u64,
    last_message: Option<String>,
    usage: Usage,
}

/// One session's end of the hooks.
struct SessionSide {
    id: Uuid,
    token: String,
    hooks: Hooks,
    on_usage: OnUsage,
    transcript: Mutex<Transcript>,
}

impl SessionSide {
    async fn serve(self: Arc<Self>, stream: tokio::net::UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(read.take(MAX_EVENT_BYTES));
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            return;
        }
        let Ok(call) = serde_json::from_str::<HookCall>(&line) else {
            return;
        };
        if !constant_time_eq(call.token.as_bytes(), self.token.as_bytes()) {
            tracing::warn!(session_id = %self.id, "a hook call with a wrong token; ignored");
            return;
        }
        let reply = self.handle(call.input).await;
        let mut text = serde_json::to_string(&reply).unwrap_or_default();
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }

    /// Reads the event: usage first, then where the session stands.
    async fn handle(self: &Arc<Self>, input: Value) -> HookReply {
        if let Some(path) = input["transcript_path"].as_str().map(PathBuf::from) {
            // Files are read off the async threads (8 MiB at most per event).
            let side = self.clone();
            let usage = tokio::task::spawn_blocking(move || {
                let mut transcript = side.transcript.lock().unwrap_or_else(|p| p.into_inner());
                read_transcript(&mut transcript, &path)
            })
            .await
            .ok()
            .flatten();
            if let Some(usage) = usage {
                (self.on_usage)(usage);
            }
        }
        let event = input["hook_event_name"].as_str().unwrap_or_default();
        let text = |key: &str| input[key].as_str().map(str::to_owned);
        let report = |waiting, reason: Option<String>, message| HookReport {
            event: event.to_owned(),
            waiting,
            reason,
            message,
            permission: None,
        };
        match event {
            "Notification" => {
                let reason = text("notification_type").unwrap_or_else(|| "notification".into());
                self.hooks
                    .report(self.id, report(Some(true), Some(reason), text("message")));
            }
            "PermissionRequest" => return self.ask_permission(&input).await,
            "PreToolUse" | "PostToolUse" | "UserPromptSubmit" => {
                self.hooks.report(self.id, report(Some(false), None, None));
            }
            // A stop hook that itself continued the turn is not the end of it.
            "Stop" if input["stop_hook_active"] != json!(true) => {
                let message = Some("Claude finished its turn.".to_owned());
                self.hooks.report(
                    self.id,
                    report(Some(true), Some("turn_finished".into()), message),
                );
            }
            _ => {}
        }
        HookReply::default()
    }

    async fn ask_permission(&self, input: &Value) -> HookReply {
        let tool_name = input["tool_name"].as_str().unwrap_or("tool").to_owned();
        let mut tool_input = input["tool_input"].clone();
        if tool_input.to_string().len() > MAX_TOOL_INPUT_BYTES {
            tool_input = json!({ "truncated": true });
        }
        let request_id = Uuid::now_v7();
        let (tx, rx) = oneshot::channel();
        self.hooks.waiting().insert(request_id, (self.id, tx));
        let message = format!("{tool_name}: {}", describe(&tool_input));
        self.hooks.report(
            self.id,
            HookReport {
                event: "PermissionRequest".into(),
                waiting: Some(true),
                reason: Some("permission".into()),
                message: Some(message),
                permission: Some(PermissionAsk {
                    request_id,
                    tool_name,
                    tool_input,
                }),
            },
        );
        let answer = tokio::time::timeout(self.hooks.inner.settings.answer_timeout, rx).await;
        self.hooks.waiting().remove(&request_id);
        match answer {
            Ok(Ok(answer)) => {
                let mut decision =
                    json!({ "behavior": if answer.allow { "allow" } else { "deny" } });
                if let Some(message) = answer.message.filter(|m| !m.is_empty()) {
                    decision["message"] = json!(message);
                }
                let output = json!({
                    "hookSpecificOutput": { "hookEventName": "PermissionRequest", "decision": decision }
                });
                HookReply {
                    stdout: output.to_string(),
                    exit: 0,
                }
            }
            // No answer: Claude Code's own dialog stands.
            _ => HookReply::default(),
        }
    }
}

/// A short line for a tool's input: its command, file or description, else its JSON.
fn describe(tool_input: &Value) -> String {
    let text = ["command", "file_path", "url", "description"]
        .iter()
        .find_map(|k| tool_input[k].as_str().map(str::to_owned))
        .unwrap_or_else(|| tool_input.to_string());
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the transcript's new complete lines and adds the assistant messages' usage; the
/// session's totals when anything was added. A message written as several lines (one per
/// content block, same id and usage) counts once.
fn read_transcript(t: &mut Transcript, path: &Path) -> Option<Usage> {
    if t.path.as_deref() != Some(path) {
        // A new transcript (a resumed or cleared conversation) adds to what was counted.
        t.path = Some(path.to_owned());
        t.offset = 0;
        t.last_message = None;
    }
    // A regular file only: opening a FIFO the event names would wait for a writer forever,
    // and a device never ends.
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(std::io::SeekFrom::Start(t.offset)).ok()?;
    let mut chunk = Vec::new();
    file.take(MAX_TRANSCRIPT_READ)
        .read_to_end(&mut chunk)
        .ok()?;
    // Only whole lines: a line being written waits for the next event.
    let complete = chunk.iter().rposition(|b| *b == b'\n').map(|i| i + 1)?;
    t.offset += complete as u64;
    let before = t.usage;
    for line in chunk[..complete].split(|b| *b == b'\n') {
        let Ok(entry) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let message = &entry["message"];
        if entry["type"] != "assistant" || !message["usage"].is_object() {
            continue;
        }
        let id = message["id"].as_str().map(str::to_owned);
        if id.is_some() && id == t.last_message {
            continue;
        }
        t.last_message = id;
        let usage = &message["usage"];
        let tokens = |k: &str| usage[k].as_i64().unwrap_or(0).max(0);
        let (input, output) = (tokens("input_tokens"), tokens("output_tokens"));
        let (cache_write, cache_read) = (
            tokens("cache_creation_input_tokens"),
            tokens("cache_read_input_tokens"),
        );
        t.usage.total_tokens += input + output + cache_write + cache_read;
        let (per_in, per_out) = price(message["model"].as_str().unwrap_or_default());
        t.usage.total_cost += (input as f64 * per_in
            + output as f64 * per_out
            + cache_write as f64 * per_in * 1.25
            + cache_read as f64 * per_in * 0.1)
            / 1_000_000.0;
    }
    (t.usage != before).then_some(t.usage)
}

/// List prices in USD per million input and output tokens (cache writes cost 1.25× input,
/// cache reads 0.1×): an estimate that works for subscription runs too, which report no cost.
fn price(model: &str) -> (f64, f64) {
    let model = model.to_ascii_lowercase();
    if model.contains("opus-4-5") || model.contains("opus-4.5") {
        (5.0, 25.0)
    } else if model.contains("opus") {
        (15.0, 75.0)
    } else if model.contains("haiku-4") {
        (1.0, 5.0)
    } else if model.contains("haiku") {
        (0.8, 4.0)
    } else {
        // Sonnet, and models this table does not know yet.
        (3.0, 15.0)
    }
}

/// `claudenest-agent hook`: what Claude Code runs for each event. Passes the event to the
/// agent and prints its answer; says nothing (exit 0) when there is no agent to ask, so a
/// session outlives its agent's hooks.
pub fn run_hook_command() -> std::process::ExitCode {
    let reply = ask_agent().unwrap_or_default();
    print!("{}", reply.stdout);
    let _ = std::io::stdout().flush();
    std::process::ExitCode::from(u8::try_from(reply.exit).unwrap_or(0))
}

fn ask_agent() -> Option<HookReply> {
    let socket = std::env::var_os(SOCKET_ENV)?;
    let token = std::env::var(TOKEN_ENV).ok()?;
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_EVENT_BYTES)
        .read_to_end(&mut input)
        .ok()?;
    let input: Value = serde_json::from_slice(&input).ok()?;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    let mut call = serde_json::to_vec(&HookCall { token, input }).ok()?;
    call.push(b'\n');
    stream.write_all(&call).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_written_as_several_lines_counts_once_and_reads_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let line = |id: &str, out: i64| {
            json!({"type": "assistant", "message": {"id": id, "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 1000, "output_tokens": out}}})
            .to_string()
                + "\n"
        };
        std::fs::write(
            &path,
            line("m1", 100) + &line("m1", 100) + "{\"type\":\"user\"}\n",
        )
        .unwrap();
        let mut t = Transcript::default();
        let usage = read_transcript(&mut t, &path).unwrap();
        assert_eq!(usage.total_tokens, 1100);
        assert!((usage.total_cost - (3000.0 + 1500.0) / 1e6).abs() < 1e-12);
        assert!(read_transcript(&mut t, &path).is_none(), "nothing new");
        // A half-written line waits; once whole it counts.
        let next = line("m2", 10);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&next.as_bytes()[..20]).unwrap();
        assert!(read_transcript(&mut t, &path).is_none());
        file.write_all(&next.as_bytes()[20..]).unwrap();
        assert_eq!(read_transcript(&mut t, &path).unwrap().total_tokens, 2110);
        // What an event names is read only when it is a regular file.
        let mut other = Transcript::default();
        assert!(read_transcript(&mut other, Path::new("/dev/zero")).is_none());
        assert!(read_transcript(&mut other, dir.path()).is_none());
    }

    #[test]
    fn hook_commands_are_quoted_for_the_shell() {
        assert_eq!(
            shell_quote("/opt/it's here/agent"),
            r"'/opt/it'\''s here/agent'"
        );
        assert!(is_claude(Path::new("/usr/local/bin/claude")));
        assert!(!is_claude(Path::new("/bin/bash")));
        assert!(!is_claude(Path::new("/usr/bin/claudenest")));
    }
}
