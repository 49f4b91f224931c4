//! Who is calling ClaudeNest's own MCP server (`/mcp`, issue 11), as which instance of which
//! project.
//!
//! Two kinds of bearer token open it:
//! - a user token (`cn_…`) with the abilities the tools need; the project and instance come
//!   from the `X-ClaudeNest-Project` / `X-ClaudeNest-Instance` headers, or from the tools'
//!   `project_id` / `instance_id` arguments;
//! - a session token (`mcs_…`), minted for the Claude Code a session runs: it acts for the
//!   session's user on one project as one instance, both fixed by the token (an argument naming
//!   another is refused), with only the coordination abilities, and stops working when the
//!   session ends.

use uuid::Uuid;

use super::{
    abilities,
    accounts::{self, Principal, TokenSecret, hash_token},
    clock,
};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    store::{InstanceReport, McpSessionToken, Project, Session, Store},
};

pub const SESSION_TOKEN_PREFIX: &str = "mcs_";
pub const PROJECT_HEADER: &str = "x-claudenest-project";
pub const INSTANCE_HEADER: &str = "x-claudenest-instance";

/// What a session token may do: coordinate, nothing else.
const SESSION_ABILITIES: &[&str] = &[
    abilities::PROJECTS_READ,
    abilities::PROJECTS_WRITE,
    abilities::TASKS_READ,
    abilities::TASKS_WRITE,
    abilities::CONTEXT_READ,
    abilities::CONTEXT_WRITE,
];

/// An authenticated `/mcp` caller.
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    pub project: Option<Uuid>,
    pub instance: Option<String>,
    /// Project and instance come from a session token and cannot be overridden.
    pub fixed: bool,
}

fn unauthenticated(why: &str) -> ApiError {
    tracing::debug!(reason = why, "MCP token rejected");
    ApiError::new(ErrorCode::Unauthenticated)
}

/// Authenticates the bearer and reads the identity headers.
pub async fn authenticate(
    store: &dyn Store,
    bearer: &str,
    project_header: Option<&str>,
    instance_header: Option<&str>,
) -> Result<Caller> {
    if bearer.starts_with(SESSION_TOKEN_PREFIX) {
        let row = store
            .mcp_session_token(&hash_token(bearer))
            .await?
            .ok_or_else(|| unauthenticated("no such session token"))?;
        let session = store
            .session(row.user_id, row.session_id)
            .await?
            .ok_or_else(|| unauthenticated("session gone"))?;
        if session.status.is_ended() {
            return Err(unauthenticated("session ended"));
        }
        if !accounts::parent_is_live(store, row.parent_token_id).await? {
            return Err(unauthenticated(
                "the token that started the session is gone",
            ));
        }
        let parent = match row.parent_token_id {
            Some(id) => store.token(id).await?,
            None => None,
        }
        .ok_or_else(|| unauthenticated("no parent token"))?;
        let user = store
            .user_by_id(row.user_id)
            .await?
            .ok_or_else(|| unauthenticated("user gone"))?;
        // At most what the token that started the session could do.
        let abilities: Vec<String> = SESSION_ABILITIES
            .iter()
            .filter(|a| abilities::grants(&parent.abilities.0, a))
            .map(|a| (*a).to_owned())
            .collect();
        return Ok(Caller {
            principal: Principal {
                user,
                token_id: row.session_id,
                abilities: abilities.into(),
            },
            project: Some(row.project_id),
            instance: Some(row.instance_id),
            fixed: true,
        });
    }
    let principal = accounts::authenticate(store, bearer).await?;
    let mut v = Validator::new();
    let project = project_header.and_then(|p| {
        let parsed = p.trim().parse::<Uuid>().ok();
        v.check(
            parsed.is_some(),
            PROJECT_HEADER,
            "The project header must be a project id.",
        );
        parsed
    });
    if let Some(instance) = instance_header {
        super::instances::validate_instance_id(&mut v, INSTANCE_HEADER, instance);
    }
    v.finish()?;
    Ok(Caller {
        principal,
        project,
        instance: instance_header.map(str::to_owned),
        fixed: false,
    })
}

/// The project a session works in: the project of its machine at its `project_path`.
pub async fn project_of_session(store: &dyn Store, session: &Session) -> Result<Option<Project>> {
    let Some(path) = session.project_path.as_deref() else {
        return Ok(None);
    };
    project_at(store, session.user_id, session.machine_id, path).await
}

/// The user's project at `path` on the machine (a trailing slash either side is the same path).
pub async fn project_at(
    store: &dyn Store,
    user_id: Uuid,
    machine_id: Uuid,
    path: &str,
) -> Result<Option<Project>> {
    let listings = store
        .projects_of_machine(user_id, machine_id, clock::now())
        .await?;
    Ok(listings
        .into_iter()
        .map(|l| l.project)
        .find(|p| p.project_path.trim_end_matches('/') == path.trim_end_matches('/')))
}

/// What a session's Claude Code is given to reach `/mcp`.
pub struct SessionAccess {
    pub token: String,
    pub instance_id: String,
    pub project_id: Uuid,
}

/// Mints the session's token and registers its instance on the project (so it shows in §5.7
/// before Claude Code does anything).
pub async fn mint_for_session(
    store: &dyn Store,
    bus: &crate::events::EventBus,
    principal: &Principal,
    session: &Session,
    project: &Project,
) -> Result<SessionAccess> {
    let secret = TokenSecret::generate(SESSION_TOKEN_PREFIX);
    let simple = session.id.simple().to_string();
    let instance_id = format!("session-{}", &simple[simple.len() - 12..]);
    store
        .insert_mcp_session_token(&McpSessionToken {
            token_hash: secret.hash.to_vec(),
            session_id: session.id,
            user_id: session.user_id,
            project_id: project.id,
            instance_id: instance_id.clone(),
            created_at: clock::now(),
            parent_token_id: Some(principal.token_id),
        })
        .await?;
    let report = InstanceReport {
        status: Some("idle".into()),
        context_usage: None,
    };
    // As the session token will act: the session's creator may hold no project ability.
    let as_session = Principal {
        user: principal.user.clone(),
        token_id: session.id,
        abilities: SESSION_ABILITIES
            .iter()
            .map(|a| (*a).to_owned())
            .collect::<Vec<_>>()
            .into(),
    };
    super::instances::heartbeat(store, bus, &as_session, project.id, &instance_id, report).await?;
    Ok(SessionAccess {
        token: secret.plain,
        instance_id,
        project_id: project.id,
    })
}
