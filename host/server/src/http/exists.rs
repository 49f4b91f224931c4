//! The resources a path names are looked up before anything else about the request: a missing
//! (or someone else's) machine, session, project, task, skill or MCP server answers its 404 code
//! before the body or the query is validated — release of an unknown task is `TSK_001`, never
//! `VAL_001` on a field of a body that could not have mattered.
//!
//! One guard for every authenticated route, reading the matched route's template: the handlers
//! still look their resources up (and check abilities) as before; this only fixes the order.
//! The one exception is a path's session, the terminal's hot path (`POST …/input` per key):
//! it is read beside the caller's token (by id, then held to the caller) and handed on as
//! [`PathSession`], so the handler reads it neither after the token nor again.

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use super::credentials::{Preauthenticated, bearer_token};
use crate::{
    app::AppState,
    domain::accounts,
    error::{ApiError, ErrorCode, Result},
    store::Session,
};

/// Middleware: 404 with the resource's code when a resource in the path does not exist for the
/// caller. Runs inside the rate limiter and before the handler's extractors; the caller it
/// authenticates is handed on (`Preauthenticated`), so the handler does not look it up again.
pub async fn path_resources(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(matched) = matched.filter(|m| names_a_resource(m.as_str())) else {
        // Other routes (and other kinds of tokens, like an agent's on `/agent/...`) pass as is.
        return next.run(request).await;
    };
    let params = path_params(matched.as_str(), request.uri().path());
    let session_id = params
        .iter()
        .find(|(collection, _)| *collection == "sessions")
        .and_then(|(_, value)| value.parse::<Uuid>().ok());
    let store = state.store();
    let read_session = async {
        match session_id {
            Some(id) => store.session_by_id(id).await,
            None => Ok(None),
        }
    };
    let (principal, session) = match request.extensions().get::<Preauthenticated>() {
        Some(Preauthenticated(principal)) => (principal.clone(), read_session.await),
        None => {
            let token = bearer_token(request.headers()).map(str::to_owned);
            match token {
                Some(token) if token.starts_with(accounts::USER_TOKEN_PREFIX) => {
                    match tokio::join!(accounts::authenticate(store, &token), read_session) {
                        (Ok(principal), session) => (principal, session),
                        (Err(err), _) => return err.into_response(),
                    }
                }
                // No user token (none, or a machine's own on `GET /machines/{id}`): the
                // handler's extractor decides.
                _ => return next.run(request).await,
            }
        }
    };
    let user = principal.user.id;
    // Read by id only: it is the caller's, or as good as missing.
    let session = match session {
        Ok(session) => session.filter(|s| s.user_id == user),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let found = Found {
        session_id,
        session,
    };
    if let Err(err) = check(&state, user, &params, &found).await {
        return err.into_response();
    }
    if let Some(session) = found.session {
        request.extensions_mut().insert(PathSession(session));
    }
    request.extensions_mut().insert(Preauthenticated(principal));
    next.run(request).await
}

/// The caller's session a path names (`…/sessions/{id}…`), as read just before the handler
/// (its extractor: `Option<Extension<PathSession>>`).
#[derive(Clone)]
pub struct PathSession(pub Session);

/// What was read ahead of [`check`]: the path's session id, and the caller's session with it.
struct Found {
    session_id: Option<Uuid>,
    session: Option<Session>,
}

/// The path's parameters that follow a collection (`machines/{id}` gives `("machines", id)`),
/// percent-decoded, in order.
fn path_params<'t>(template: &'t str, path: &str) -> Vec<(&'t str, String)> {
    let template: Vec<&str> = template.split('/').collect();
    // Inside a nested router the path has lost its prefix (`/api`) while the template keeps it:
    // the two line up from their ends.
    let actual: Vec<&str> = path.split('/').collect();
    let Some(offset) = template.len().checked_sub(actual.len()) else {
        return Vec::new();
    };
    template
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[1].starts_with('{') && pair[1].ends_with('}'))
        .filter_map(|(i, pair)| {
            let raw = actual.get((i + 1).checked_sub(offset)?)?;
            Some((pair[0], percent_decode(raw)))
        })
        .collect()
}

/// The collections whose members this guard looks up.
const COLLECTIONS: [&str; 4] = ["machines", "sessions", "projects", "tasks"];

fn names_a_resource(template: &str) -> bool {
    let segments: Vec<&str> = template.split('/').collect();
    segments
        .windows(2)
        .any(|pair| COLLECTIONS.contains(&pair[0]) && pair[1].starts_with('{'))
}

async fn check(
    state: &AppState,
    user: Uuid,
    params: &[(&str, String)],
    found: &Found,
) -> Result<()> {
    let store = state.store();
    let missing = |code| Err(ApiError::new(code));
    let mut machine = None;
    for (collection, value) in params {
        // A malformed id is left to the handler's extractor (`VAL_001` on that parameter).
        let id = value.parse::<Uuid>().ok();
        match (*collection, id) {
            ("machines", Some(id)) => {
                if store.machine(user, id).await?.is_none() {
                    return missing(ErrorCode::MachineNotFound);
                }
                machine = Some(id);
            }
            ("sessions", Some(id)) => {
                let known = found.session_id == Some(id);
                let exists = if known {
                    found.session.is_some()
                } else {
                    store.session(user, id).await?.is_some()
                };
                if !exists {
                    return missing(ErrorCode::SessionNotFound);
                }
            }
            ("projects", Some(id)) if store.project(user, id).await?.is_none() => {
                return missing(ErrorCode::ProjectNotFound);
            }
            ("tasks", Some(id)) if store.task(user, id).await?.is_none() => {
                return missing(ErrorCode::TaskNotFound);
            }
            ("skills", _) => {
                if let Some(machine) = machine {
                    let live = store.skill(machine, value).await?.filter(|s| !s.deleted);
                    if live.is_none() {
                        return missing(ErrorCode::SkillNotFound);
                    }
                }
            }
            ("mcp", _) => {
                if let Some(machine) = machine
                    && store.mcp_server(machine, value).await?.is_none()
                {
                    return missing(ErrorCode::McpServerNotFound);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}
