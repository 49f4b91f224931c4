//! The realtime channel each resource broadcasts on: names only, so every room can publish to a
//! channel without depending on who may subscribe to it (that is `channels`).

use uuid::Uuid;

/// `private-machine.{id}`: a machine's presence, sessions and MCP servers.
pub fn machine_channel(machine_id: Uuid) -> String {
    format!("private-machine.{machine_id}")
}

/// `private-session.{id}`: a session's terminal output and status.
pub fn session_channel(id: Uuid) -> String {
    format!("private-session.{id}")
}

/// `private-project.{id}`: where a project's events go.
pub fn project_channel(project_id: Uuid) -> String {
    format!("private-project.{project_id}")
}
