//! Sessions on the machine: each runs the configured `claude` (or any command) in a real PTY.
//!
//! Output is read on a thread per session and sent, numbered, through the agent's outbound
//! queue. That queue outlives any one link and is bounded: while the host is unreachable the
//! output waits in it and, once it is full, the PTY reader blocks — the process is slowed, no
//! byte is dropped. The exit is sent after the last output.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::protocol::AgentMessage;

struct Running {
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn std::io::Write + Send>,
    killer: Box<dyn ChildKiller + Send + Sync>,
}

/// The sessions this agent runs.
#[derive(Clone)]
pub struct Sessions {
    running: Arc<Mutex<HashMap<Uuid, Running>>>,
    outbound: mpsc::Sender<AgentMessage>,
    claude_path: Option<PathBuf>,
}

/// How a session is started (the host's `session_start` request).
pub struct StartRequest {
    pub session_id: Uuid,
    pub mode: String,
    pub project_path: Option<String>,
    pub initial_prompt: Option<String>,
    pub cols: u16,
    pub rows: u16,
}

impl Sessions {
    pub fn new(outbound: mpsc::Sender<AgentMessage>, claude_path: Option<PathBuf>) -> Self {
        Self {
            running: Arc::default(),
            outbound,
            claude_path,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The command for a mode: interactive runs `claude`; headless and oneshot pass the prompt
    /// with `-p` (headless asks for stream-json output).
    fn command(&self, req: &StartRequest) -> CommandBuilder {
        let program = self
            .claude_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("claude"));
        let mut cmd = CommandBuilder::new(program);
        if req.mode != "interactive" {
            cmd.arg("-p");
            cmd.arg(req.initial_prompt.clone().unwrap_or_default());
            if req.mode == "headless" {
                cmd.args(["--output-format", "stream-json", "--verbose"]);
            }
        }
        if let Some(dir) = &req.project_path {
            cmd.cwd(dir);
        }
        cmd.env("TERM", "xterm-256color");
        cmd
    }

    pub fn start(&self, req: StartRequest) -> anyhow::Result<()> {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: req.rows,
                cols: req.cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .context("opening a PTY")?;
        let mut child = pair
            .slave
            .spawn_command(self.command(&req))
            .context("starting the session's command")?;
        // The child holds the slave side; ours must close so EOF arrives when it exits.
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader()?;
        let mut writer = pair.master.take_writer()?;
        let killer = child.clone_killer();
        if req.mode == "interactive"
            && let Some(prompt) = req.initial_prompt.as_deref().filter(|p| !p.is_empty())
        {
            // Typed once the program had a moment to draw its prompt.
            let prompt = format!("{prompt}\r");
            std::thread::sleep(Duration::from_millis(300));
            writer.write_all(prompt.as_bytes())?;
        }
        self.lock().insert(
            req.session_id,
            Running {
                master: pair.master,
                writer,
                killer,
            },
        );
        let (sessions, id) = (self.clone(), req.session_id);
        std::thread::spawn(move || {
            let mut seq = 0u64;
            let mut buf = [0u8; 8192];
            // Bytes of a UTF-8 character split across reads wait for the rest.
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => pending.len(),
                };
                let data = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                if data.is_empty() {
                    continue;
                }
                seq += 1;
                let message = AgentMessage::SessionOutput {
                    session_id: id,
                    seq,
                    data,
                };
                if sessions.outbound.blocking_send(message).is_err() {
                    break;
                }
            }
            let exit_code = child.wait().ok().map(|status| status.exit_code() as i32);
            sessions.lock().remove(&id);
            let _ = sessions.outbound.blocking_send(AgentMessage::SessionExit {
                session_id: id,
                exit_code,
            });
        });
        Ok(())
    }

    /// The sessions running here now.
    pub fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    pub fn input(&self, id: Uuid, data: &str) -> anyhow::Result<()> {
        let mut running = self.lock();
        let session = running
            .get_mut(&id)
            .context("no such session on this machine")?;
        session.writer.write_all(data.as_bytes())?;
        session.writer.flush()?;
        Ok(())
    }

    pub fn resize(&self, id: Uuid, cols: u16, rows: u16) -> anyhow::Result<()> {
        let running = self.lock();
        let session = running
            .get(&id)
            .context("no such session on this machine")?;
        session.master.resize(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
    }

    pub fn terminate(&self, id: Uuid) -> anyhow::Result<()> {
        let mut running = self.lock();
        let session = running
            .get_mut(&id)
            .context("no such session on this machine")?;
        session.killer.kill()?;
        Ok(())
    }
}
