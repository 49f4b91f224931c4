//! What a token may do. `*` is everything; otherwise `<resource>:read` / `<resource>:write`.
//! `write` does not imply `read`. Every token may read its own user (`/api/auth/me`) and log
//! itself out. A token can only mint tokens with abilities it has itself.

/// Every ability a token may carry.
pub const ALL: &[&str] = &[
    "*",
    "tokens:read",
    "tokens:write",
    "machines:read",
    "machines:write",
    "sessions:read",
    "sessions:write",
    "projects:read",
    "projects:write",
    "tasks:read",
    "tasks:write",
    "context:read",
    "context:write",
    "skills:read",
    "skills:write",
    "mcp:read",
    "mcp:write",
    "plugins:read",
    "plugins:write",
    "notifications:read",
    "notifications:write",
];

pub const TOKENS_READ: &str = "tokens:read";
pub const TOKENS_WRITE: &str = "tokens:write";
pub const MACHINES_READ: &str = "machines:read";
pub const MACHINES_WRITE: &str = "machines:write";
pub const SESSIONS_READ: &str = "sessions:read";
pub const SESSIONS_WRITE: &str = "sessions:write";
pub const PROJECTS_READ: &str = "projects:read";
pub const PROJECTS_WRITE: &str = "projects:write";
pub const TASKS_READ: &str = "tasks:read";
pub const TASKS_WRITE: &str = "tasks:write";
pub const CONTEXT_READ: &str = "context:read";
pub const CONTEXT_WRITE: &str = "context:write";
pub const SKILLS_READ: &str = "skills:read";
pub const SKILLS_WRITE: &str = "skills:write";
pub const MCP_READ: &str = "mcp:read";
pub const MCP_WRITE: &str = "mcp:write";
pub const PLUGINS_READ: &str = "plugins:read";
pub const PLUGINS_WRITE: &str = "plugins:write";
pub const NOTIFICATIONS_READ: &str = "notifications:read";
pub const NOTIFICATIONS_WRITE: &str = "notifications:write";

pub fn is_known(ability: &str) -> bool {
    ALL.contains(&ability)
}

/// Whether a token holding `held` may do `wanted`.
pub fn grants(held: &[String], wanted: &str) -> bool {
    held.iter().any(|a| a == "*" || a == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_grants_everything_and_others_only_themselves() {
        let star = vec!["*".to_owned()];
        let reader = vec!["machines:read".to_owned()];
        assert!(grants(&star, "tasks:write"));
        assert!(grants(&reader, "machines:read"));
        assert!(!grants(&reader, "machines:write"));
        assert!(!grants(&reader, "*"));
        assert!(is_known("mcp:write") && !is_known("mcp:admin"));
    }
}
