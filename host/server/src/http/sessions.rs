//! Sessions (API §4).

use axum::{Extension, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, PageQuery, Reply},
    exists::PathSession,
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::{
        clock,
        sessions::{self, NewSession},
    },
    error::{Result, Validator},
    store::{LogFilter, Session, SessionLog},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(terminate_session))
        .routes(routes!(logs))
        .routes(routes!(attach))
        .routes(routes!(input))
        .routes(routes!(resize))
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, Copy)]
pub struct PtySize {
    #[schema(minimum = 10, maximum = 1000)]
    pub cols: i64,
    #[schema(minimum = 2, maximum = 500)]
    pub rows: i64,
}

/// A session as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub machine_id: Uuid,
    /// `interactive`, `headless` or `oneshot`.
    pub mode: String,
    pub project_path: Option<String>,
    /// created → starting → running ⇄ waiting_input → completed | error | terminated.
    pub status: String,
    /// Why it waits for its person: `permission`, `permission_prompt`, `idle_prompt`,
    /// `turn_finished` (from Claude Code's hooks).
    pub waiting_reason: Option<String>,
    /// What Claude Code said: the permission asked, the notification's text.
    pub waiting_message: Option<String>,
    /// Why ClaudeNest stopped it: `budget`.
    pub stop_reason: Option<String>,
    pub budget_tokens: Option<i64>,
    pub budget_cost: Option<f64>,
    pub pty_size: PtySize,
    pub exit_code: Option<i32>,
    pub total_tokens: i64,
    pub total_cost: f64,
    /// Highest output sequence number logged.
    pub last_seq: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from start to end (or now).
    pub duration: i64,
    /// e.g. `1h 0m`.
    pub formatted_duration: String,
    pub created_at: DateTime<Utc>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        let (duration, formatted_duration) = sessions::duration(&s, clock::now());
        Self {
            duration,
            formatted_duration,
            id: s.id,
            machine_id: s.machine_id,
            mode: s.mode,
            project_path: s.project_path,
            status: s.status.as_str().into(),
            waiting_reason: s.waiting_reason,
            waiting_message: s.waiting_message,
            stop_reason: s.stop_reason,
            budget_tokens: s.budget_tokens,
            budget_cost: s.budget_cost,
            pty_size: PtySize {
                cols: s.cols.into(),
                rows: s.rows.into(),
            },
            exit_code: s.exit_code,
            total_tokens: s.total_tokens,
            total_cost: s.total_cost,
            last_seq: s.last_seq,
            started_at: s.started_at,
            ended_at: s.ended_at,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionWithToken {
    pub session: SessionView,
    /// `ws_…`: authorizes `private-session.{id}` at `/api/broadcasting/auth`, and nothing else.
    pub websocket_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachView {
    pub session: SessionView,
    /// `ws_…`: authorizes `private-session.{id}` at `/api/broadcasting/auth`, and nothing else.
    pub websocket_token: String,
    /// A live interactive session's screen now: `{seq, rows, cols, text, ansi}`. Draw `ansi`,
    /// then apply `session:output` events whose `seq` is higher. Null when the session ended
    /// or its machine did not answer.
    #[schema(value_type = Option<Object>)]
    pub snapshot: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogView {
    pub id: Uuid,
    /// `input`, `output`, `error` (or `status`, for those who asked for it).
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: Option<i64>,
    pub data: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<SessionLog> for LogView {
    fn from(l: SessionLog) -> Self {
        Self {
            id: l.id,
            kind: l.kind,
            seq: l.seq,
            data: l.data,
            metadata: l.metadata.0,
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Interactive,
    Headless,
    Oneshot,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub mode: Mode,
    pub project_path: Option<String>,
    /// Typed into interactive sessions once started; the prompt of headless/oneshot ones.
    pub initial_prompt: Option<String>,
    /// Default 120×40.
    pub pty_size: Option<PtySize>,
    /// Tokens this session may use; at 80 % a `session:budget` warning, at 100 % the run is
    /// interrupted (`stop_reason: budget`).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub budget_tokens: Option<i64>,
    /// US dollars this session may spend (estimated from Claude Code's usage at list prices).
    #[schema(minimum = 0.01, maximum = 1_000_000)]
    pub budget_cost: Option<f64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    pub status: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// 1..=10000, default 1000: the most recent entries, oldest first.
    pub limit: Option<u64>,
    /// `input`, `output` or `error`; without it, all three. `status` (opt-in) lists
    /// the session's status changes instead.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Output after this sequence number, oldest first (for catching up after a snapshot or a
    /// dropped connection). Without it: the most recent entries.
    pub since_seq: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    pub data: String,
}

/// 1, newest first.
#[utoipa::path(get, path = "/machines/{machine}/sessions", tag = "sessions", security(("bearer" = [])),
    params(("machine" = Uuid, Path), SessionListQuery),
    responses((status = 200, body = Envelope<Vec<SessionView>>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<SessionListQuery>,
) -> Result<Reply<Vec<SessionView>>> {
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .validate()?;
    let (rows, total) = sessions::list(
        state.store(),
        &principal,
        machine,
        query.status,
        page.per_page,
        page.offset(),
    )
    .await?;
    let views = rows.into_iter().map(SessionView::from).collect();
    Ok(Reply::page(views, total, page))
}

/// Starts the session on the machine's agent.
#[utoipa::path(post, path = "/machines/{machine}/sessions", tag = "sessions", security(("bearer" = [])),
    params(("machine" = Uuid, Path)), request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "`status` is `error` if the agent could not start it", body = Envelope<SessionWithToken>),
        (status = 400, description = "MCH_002: machine offline", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "SES_003: the machine runs its maximum of sessions; SES_007: the project's budget is spent", body = ErrorEnvelope),
        (status = 429, description = "SES_006: the project's runs-per-hour limit is reached (or RTE_001)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateSessionRequest>,
) -> Result<Reply<SessionWithToken>> {
    let size = req.pty_size.unwrap_or(PtySize {
        cols: 120,
        rows: 40,
    });
    let mode = match req.mode {
        Mode::Interactive => "interactive",
        Mode::Headless => "headless",
        Mode::Oneshot => "oneshot",
    };
    let new = NewSession {
        mode: mode.into(),
        project_path: req.project_path,
        initial_prompt: req.initial_prompt,
        cols: size.cols,
        rows: size.rows,
        budget_tokens: req.budget_tokens,
        budget_cost: req.budget_cost,
    };
    let (session, token) = sessions::create(
        state.store(),
        state.agent_links(),
        state.bus(),
        state.presence(),
        &principal,
        machine,
        new,
    )
    .await?;
    Ok(Reply::created(SessionWithToken {
        session: session.into(),
        websocket_token: token,
    }))
}

/// One of your sessions.
#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<SessionView>), (status = 404, description = "SES_001", body = ErrorEnvelope)))]
pub async fn get_session(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<SessionView>> {
    Ok(Reply::ok(
        sessions::get(state.store(), &principal, id).await?.into(),
    ))
}

/// Ends the session if it still runs (its process is stopped on the machine), then
/// removes it with its logs; a later GET is `SES_001`.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "SES_001", body = ErrorEnvelope)))]
pub async fn delete_session(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Null>> {
    sessions::delete(
        state.store(),
        state.agent_links(),
        state.bus(),
        &principal,
        id,
    )
    .await?;
    Ok(Reply::ok(Null))
}

/// Ends a running session and keeps it with its logs (`DELETE` ends it and removes it).
#[utoipa::path(post, path = "/sessions/{id}/terminate", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<SessionView>),
               (status = 400, description = "SES_002: the session has already ended", body = ErrorEnvelope),
               (status = 404, description = "SES_001", body = ErrorEnvelope)))]
pub async fn terminate_session(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<SessionView>> {
    let session = sessions::terminate(
        state.store(),
        state.agent_links(),
        state.bus(),
        &principal,
        id,
    )
    .await?;
    Ok(Reply::ok(session.into()))
}

/// The session's log: input, output and errors in order (`?type=status` for status changes).
#[utoipa::path(get, path = "/sessions/{id}/logs", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path), LogQuery),
    responses((status = 200, body = Envelope<Vec<LogView>>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn logs(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Reply<Vec<LogView>>> {
    let limit = query.limit.unwrap_or(1000);
    let mut v = Validator::new();
    v.check(
        (1..=10_000).contains(&limit),
        "limit",
        "The limit must be between 1 and 10000.",
    );
    if let Some(since) = query.since_seq {
        v.check(since >= 0, "since_seq", "The since_seq must be 0 or more.");
    }
    if let Some(kind) = &query.kind {
        v.check(
            ["input", "output", "error", "status"].contains(&kind.as_str()),
            "type",
            "The type must be one of: input, output, error, status.",
        );
    }
    v.finish()?;
    let session = sessions::get(state.store(), &principal, id).await?;
    let rows = state
        .store()
        .session_logs(
            session.id,
            &LogFilter {
                kind: query.kind,
                limit,
                after_seq: query.since_seq,
            },
        )
        .await?;
    Ok(Reply::ok(rows.into_iter().map(LogView::from).collect()))
}

/// A new `ws_` token (the previous one stops working).
#[utoipa::path(post, path = "/sessions/{id}/attach", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<AttachView>), (status = 404, body = ErrorEnvelope)))]
pub async fn attach(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<AttachView>> {
    let attached = sessions::attach(state.store(), state.agent_links(), &principal, id).await?;
    Ok(Reply::ok(AttachView {
        session: attached.session.into(),
        websocket_token: attached.token,
        snapshot: attached.snapshot,
    }))
}

/// Typed into the session's terminal.
#[utoipa::path(post, path = "/sessions/{id}/input", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = InputRequest,
    responses((status = 200, body = Envelope<Null>), (status = 400, body = ErrorEnvelope),
               (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn input(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    read: Option<Extension<PathSession>>,
    ApiJson(req): ApiJson<InputRequest>,
) -> Result<Reply<Null>> {
    let read = read.map(|Extension(PathSession(session))| session);
    sessions::input(
        state.store(),
        state.agent_links(),
        &principal,
        id,
        read,
        req.data,
    )
    .await?;
    Ok(Reply::ok(Null))
}

/// Resize the session's terminal.
#[utoipa::path(post, path = "/sessions/{id}/resize", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PtySize,
    responses((status = 200, body = Envelope<SessionView>), (status = 400, body = ErrorEnvelope),
               (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn resize(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PtySize>,
) -> Result<Reply<SessionView>> {
    let session = sessions::resize(
        state.store(),
        state.agent_links(),
        &principal,
        id,
        req.cols,
        req.rows,
    )
    .await?;
    Ok(Reply::ok(session.into()))
}
