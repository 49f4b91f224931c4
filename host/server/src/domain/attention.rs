//! "Needs you": what a session's Claude Code reports through its hooks (relayed by the agent)
//! moves the session between `running` and `waiting_input` — with the reason and Claude's
//! words — and a permission dialog becomes a request its person can answer from anywhere. Each
//! answer is kept: who (the API token), when, what.

use std::time::Duration;

use serde_json::json;
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    abilities,
    accounts::Principal,
    clock,
    notify::{Notice, Notifier},
    sessions,
};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    events::EventBus,
    links::{AgentLinks, LinkError},
    protocol::{AgentRequest, HookReport},
    store::{PermissionRequest, Session, SessionStatus, Store},
};

const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a session waits while a permission dialog shows.
pub const PERMISSION: &str = "permission";

/// A hook report from the agent of `machine_id`.
pub async fn on_hook(
    store: &dyn Store,
    bus: &EventBus,
    notifier: &Notifier,
    machine_id: Uuid,
    session_id: Uuid,
    report: HookReport,
) -> Result<()> {
    tracing::debug!(%session_id, event = report.event, waiting = ?report.waiting, "hook report");
    let Some(session) = store
        .session_by_id(session_id)
        .await?
        .filter(|s| s.machine_id == machine_id && !s.status.is_ended())
    else {
        return Ok(());
    };
    let mut permission_id = None;
    if let Some(ask) = &report.permission {
        let request = PermissionRequest {
            id: ask.request_id,
            session_id,
            user_id: session.user_id,
            tool_name: ask.tool_name.chars().take(200).collect(),
            tool_input: Json(ask.tool_input.clone()),
            message: report.message.clone().unwrap_or_default(),
            status: "pending".into(),
            answer_message: None,
            answered_by: None,
            answered_at: None,
            created_at: clock::now(),
        };
        store.insert_permission_request(&request).await?;
        publish_permission(bus, &request);
        permission_id = Some(request.id);
    }
    match report.waiting {
        Some(true) => {
            let reason = report.reason.as_deref().unwrap_or("waiting");
            let message: Option<String> = report.message.map(|m| m.chars().take(2000).collect());
            let showing_permission = session.status == SessionStatus::WaitingInput
                && session.waiting_reason.as_deref() == Some(PERMISSION);
            // Claude Code also sends a `permission_prompt` notification for the dialog a
            // `PermissionRequest` already announced: one notice per dialog.
            let repeat = (showing_permission && reason == "permission_prompt")
                || (session.status == SessionStatus::WaitingInput
                    && session.waiting_reason.as_deref() == Some(reason)
                    && session.waiting_message == message
                    && permission_id.is_none());
            if repeat {
                return Ok(());
            }
            let Some(moved) = move_to(
                store,
                bus,
                session_id,
                SessionStatus::WaitingInput,
                Some(reason),
                message.as_deref(),
            )
            .await?
            else {
                return Ok(());
            };
            let (kind, title) = match reason {
                PERMISSION => ("permission", "Claude needs your permission"),
                "turn_finished" => ("turn_finished", "Claude finished its turn"),
                _ => ("waiting", "Claude is waiting for you"),
            };
            notifier.notify(Notice {
                kind,
                title: title.into(),
                message: message.unwrap_or_else(|| title.into()),
                session: moved,
                permission_id,
            });
        }
        Some(false) => {
            if session.status == SessionStatus::WaitingInput {
                move_to(store, bus, session_id, SessionStatus::Running, None, None).await?;
            }
            // A new prompt or the turn's end: a dialog still pending was answered at the
            // terminal.
            if report.event == "UserPromptSubmit" {
                expire_pending(store, bus, session_id).await?;
            }
        }
        None => {}
    }
    Ok(())
}

/// Moves a live session between running and waiting, and says so.
async fn move_to(
    store: &dyn Store,
    bus: &EventBus,
    id: Uuid,
    status: SessionStatus,
    reason: Option<&str>,
    message: Option<&str>,
) -> Result<Option<Session>> {
    let moved = store
        .set_session_waiting(id, status, reason, message, clock::now())
        .await?;
    announce_moved(store, bus, moved).await
}

/// Announces the session's new status when the store moved it.
async fn announce_moved(
    store: &dyn Store,
    bus: &EventBus,
    moved: Option<Session>,
) -> Result<Option<Session>> {
    if let Some(session) = &moved {
        sessions::announce(store, bus, session).await?;
    }
    Ok(moved)
}

/// Pending requests of a session that no longer waits on them (it moved on; those of an
/// ended session expire with its status, in the store).
async fn expire_pending(store: &dyn Store, bus: &EventBus, session_id: Uuid) -> Result<()> {
    for request in store
        .expire_permission_requests(session_id, clock::now())
        .await?
    {
        publish_permission(bus, &request);
    }
    Ok(())
}

/// `session:permission` on the session's channel: a request asked, answered or expired.
fn publish_permission(bus: &EventBus, request: &PermissionRequest) {
    bus.publish(crate::events::Event::new(
        super::channel_names::session_channel(request.session_id),
        "session:permission",
        json!({
            "id": request.id,
            "session_id": request.session_id,
            "tool_name": request.tool_name,
            "message": request.message,
            "status": request.status,
        }),
    ));
}

/// `GET /api/sessions/{id}/permissions`: newest first.
pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    session_id: Uuid,
) -> Result<Vec<PermissionRequest>> {
    let session = sessions::get(store, principal, session_id).await?;
    Ok(store
        .permission_requests_of_session(session.id, 100)
        .await?)
}

/// A person's answer to a permission request.
pub struct Answer {
    pub allow: bool,
    /// Told to Claude with it (a denial's reason).
    pub message: Option<String>,
}

/// `POST /api/sessions/{id}/permissions/{request}`: allow or deny. The agent is asked first:
/// only an answer that reached the waiting dialog is recorded as given.
pub async fn answer(
    store: &dyn Store,
    links: &dyn AgentLinks,
    bus: &EventBus,
    principal: &Principal,
    session_id: Uuid,
    request_id: Uuid,
    Answer { allow, message }: Answer,
) -> Result<PermissionRequest> {
    principal.require(abilities::SESSIONS_WRITE)?;
    let mut v = Validator::new();
    if let Some(m) = &message {
        v.check(
            m.chars().count() <= 1000,
            "message",
            "The message may not be longer than 1000 characters.",
        );
    }
    v.finish()?;
    let session = sessions::get(store, principal, session_id).await?;
    let request = store
        .permission_request(principal.user.id, request_id)
        .await?
        .filter(|r| r.session_id == session.id)
        .ok_or_else(|| ApiError::new(ErrorCode::PermissionNotFound))?;
    let no_longer = || {
        ApiError::new(ErrorCode::PermissionAnswered).with_message(
            "The permission request is no longer pending (answered already, at the terminal, \
             or timed out).",
        )
    };
    if request.status != "pending" || session.status.is_ended() {
        return Err(no_longer());
    }
    let ask = AgentRequest::PermissionAnswer {
        session_id,
        request_id,
        allow,
        message: message.clone(),
    };
    match links.request(session.machine_id, ask, AGENT_TIMEOUT).await {
        Ok(_) => {}
        Err(LinkError::Agent { .. }) => {
            // The dialog stopped waiting: record that, and say so.
            store
                .answer_permission_request(
                    request_id,
                    "expired",
                    None,
                    principal.token_id,
                    clock::now(),
                )
                .await?;
            return Err(no_longer());
        }
        Err(err) => {
            return Err(
                ApiError::new(ErrorCode::MachineOffline).with_message(format!(
                    "The session's machine did not take the answer: {err}"
                )),
            );
        }
    }
    let status = if allow { "allowed" } else { "denied" };
    let answered = store
        .answer_permission_request(
            request_id,
            status,
            message.as_deref(),
            principal.token_id,
            clock::now(),
        )
        .await?
        .ok_or_else(no_longer)?;
    tracing::info!(%session_id, %request_id, status, token_id = %principal.token_id, "permission answered");
    publish_permission(bus, &answered);
    // Claude goes on as soon as the agent has the answer: its next hook (the turn's end, say)
    // may be recorded before this line runs, and then stands.
    let resumed = store
        .end_session_wait(session_id, PERMISSION, clock::now())
        .await?;
    announce_moved(store, bus, resumed).await?;
    Ok(answered)
}
