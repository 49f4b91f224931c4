//! Spending limits that stop runs: a session's own budget (tokens and/or US dollars, set when
//! it is created) and its project's (`budgetTokens`, `budgetCostCents` over all its sessions),
//! checked whenever usage arrives — from Claude Code's hooks, so subscription runs count too.
//! At 80 % a warning goes out once; at 100 % the agent interrupts the run (Ctrl-C, then
//! terminate after its grace) and the session records why (`stop_reason: budget`). Projects
//! may also cap how many sessions start per hour (`runsPerHour`).

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{
    clock,
    notify::{Notice, Notifier},
    projects,
};
use crate::{
    error::{ApiError, ErrorCode, Result},
    events::{Event, EventBus},
    links::AgentLinks,
    protocol::AgentRequest,
    store::{Project, Session, SessionLog, Store},
};

/// The share of a budget at which the warning goes out.
pub const WARN_AT: f64 = 0.8;
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a limit is used: the larger of the token and the cost share (0 without limits).
fn share(limit_tokens: Option<i64>, limit_cost: Option<f64>, tokens: i64, cost: f64) -> f64 {
    let by_tokens = limit_tokens
        .filter(|l| *l > 0)
        .map_or(0.0, |l| tokens as f64 / l as f64);
    let by_cost = limit_cost.filter(|l| *l > 0.0).map_or(0.0, |l| cost / l);
    by_tokens.max(by_cost)
}

/// The project's limits: (tokens, dollars), `None` where unset (0).
fn project_limits(project: &Project) -> (Option<i64>, Option<f64>) {
    let tokens = projects::setting(project, "budgetTokens");
    let cents = projects::setting(project, "budgetCostCents");
    (
        (tokens > 0).then_some(tokens),
        (cents > 0).then(|| cents as f64 / 100.0),
    )
}

/// How much of the project's budget its sessions used.
async fn project_share(store: &dyn Store, project: &Project) -> Result<f64> {
    let (limit_tokens, limit_cost) = project_limits(project);
    if limit_tokens.is_none() && limit_cost.is_none() {
        return Ok(0.0);
    }
    let (tokens, cost) = store
        .project_usage(project.machine_id, &project.project_path)
        .await?;
    Ok(share(limit_tokens, limit_cost, tokens, cost))
}

/// What a project's sessions spent, against its limits (its stats show it as `spend`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Spend {
    /// Every session in the project, together.
    pub total_tokens: i64,
    /// US dollars (estimated from Claude Code's usage at list prices).
    pub total_cost: f64,
    /// `settings.budgetTokens`; null: none.
    pub budget_tokens: Option<i64>,
    /// `settings.budgetCostCents` in dollars; null: none.
    pub budget_cost: Option<f64>,
    /// Of the budget's larger share, tokens or cost (0 without a budget).
    pub budget_used_percent: f64,
    /// Sessions its owner started in it in the last hour.
    pub runs_last_hour: i64,
    /// `settings.runsPerHour`; null: none.
    pub runs_per_hour: Option<i64>,
}

pub async fn spend(store: &dyn Store, project: &Project) -> Result<Spend> {
    let (budget_tokens, budget_cost) = project_limits(project);
    let (total_tokens, total_cost) = store
        .project_usage(project.machine_id, &project.project_path)
        .await?;
    let since = clock::now() - chrono::Duration::hours(1);
    let runs_last_hour = store
        .sessions_started_since(
            project.user_id,
            project.machine_id,
            &project.project_path,
            since,
        )
        .await?;
    let used = share(budget_tokens, budget_cost, total_tokens, total_cost);
    let per_hour = projects::setting(project, "runsPerHour");
    Ok(Spend {
        total_tokens,
        total_cost,
        budget_tokens,
        budget_cost,
        budget_used_percent: (used * 1000.0).round() / 10.0,
        runs_last_hour,
        runs_per_hour: (per_hour > 0).then_some(per_hour),
    })
}

/// Before a session starts in `project`: its hourly run limit and its budget.
pub async fn check_start(store: &dyn Store, user_id: Uuid, project: &Project) -> Result<()> {
    let per_hour = projects::setting(project, "runsPerHour");
    if per_hour > 0 {
        let since = clock::now() - chrono::Duration::hours(1);
        let started = store
            .sessions_started_since(user_id, project.machine_id, &project.project_path, since)
            .await?;
        if started >= per_hour {
            return Err(ApiError::new(ErrorCode::RunLimitReached).with_message(format!(
                "The project allows {per_hour} sessions an hour; {started} started in the last hour."
            )));
        }
    }
    if project_share(store, project).await? >= 1.0 {
        return Err(ApiError::new(ErrorCode::BudgetSpent));
    }
    Ok(())
}

/// After new usage of `session`: warn once at 80 %, stop the run at 100 %.
pub async fn check(
    store: &dyn Store,
    bus: &EventBus,
    links: &dyn AgentLinks,
    notifier: &Notifier,
    session: &Session,
) -> Result<()> {
    if session.status.is_ended() || session.stop_reason.is_some() {
        return Ok(());
    }
    let own = share(
        session.budget_tokens,
        session.budget_cost,
        session.total_tokens,
        session.total_cost,
    );
    let project = super::mcp_access::project_of_session(store, session).await?;
    let of_project = match &project {
        Some(project) => project_share(store, project).await?,
        None => 0.0,
    };
    let (used, scope) = if own >= of_project {
        (own, "session")
    } else {
        (of_project, "project")
    };
    let data = |state: &str| {
        json!({
            "session_id": session.id,
            "state": state,
            "scope": scope,
            "used": (used * 1000.0).round() / 1000.0,
            "total_tokens": session.total_tokens,
            "total_cost": session.total_cost,
            "budget_tokens": session.budget_tokens,
            "budget_cost": session.budget_cost,
        })
    };
    if used >= 1.0 {
        store.set_session_stop_reason(session.id, "budget").await?;
        let why = format!(
            "ClaudeNest stopped the run: the {scope}'s budget is spent ({} tokens, ${:.4}).",
            session.total_tokens, session.total_cost
        );
        let entry = SessionLog {
            id: Uuid::now_v7(),
            session_id: session.id,
            kind: "error".into(),
            seq: None,
            data: why.clone(),
            metadata: sqlx::types::Json(json!({ "stop_reason": "budget", "scope": scope })),
            created_at: clock::now(),
        };
        store.append_session_logs(session.id, &[entry]).await?;
        publish(bus, session, data("exceeded"));
        let interrupt = AgentRequest::SessionInterrupt {
            session_id: session.id,
        };
        if let Err(err) = links
            .request(session.machine_id, interrupt, AGENT_TIMEOUT)
            .await
        {
            tracing::warn!(session_id = %session.id, error = %err, "could not interrupt a session over budget");
        }
        let mut stopped = session.clone();
        stopped.stop_reason = Some("budget".into());
        notifier.notify(Notice {
            kind: "budget_stopped",
            title: "A session's budget is spent".into(),
            message: why,
            session: stopped,
            permission_id: None,
        });
    } else if used >= WARN_AT && store.mark_budget_warned(session.id).await? {
        publish(bus, session, data("warning"));
        notifier.notify(Notice {
            kind: "budget_warning",
            title: "A session used 80 % of its budget".into(),
            message: format!(
                "{:.0} % of the {scope}'s budget is used ({} tokens, ${:.4}).",
                used * 100.0,
                session.total_tokens,
                session.total_cost
            ),
            session: session.clone(),
            permission_id: None,
        });
    }
    Ok(())
}

/// `session:budget` on the session's and its machine's channels.
fn publish(bus: &EventBus, session: &Session, data: serde_json::Value) {
    for channel in [
        super::channel_names::session_channel(session.id),
        super::channel_names::machine_channel(session.machine_id),
    ] {
        bus.publish(Event::new(channel, "session:budget", data.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_larger_share_counts_and_unset_limits_do_not() {
        assert_eq!(share(None, None, 10_000, 5.0), 0.0);
        assert_eq!(share(Some(1000), None, 800, 0.0), 0.8);
        assert_eq!(share(Some(1000), Some(1.0), 100, 0.5), 0.5);
        assert_eq!(share(Some(0), Some(0.0), 100, 0.5), 0.0);
    }
}
