//! The skill rules both ends apply: the host before it stores a skill, the agent before it
//! writes one into `~/.claude/skills` (a host could be wrong or compromised; the agent checks
//! again).

use sha2::{Digest as _, Sha256};

/// Largest SKILL.md accepted (Claude Code reads skills into its context: keep them small).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;

/// A skill's folder name: 1–64 of letters, digits, `-`, `_`, `.`, not starting with `.` —
/// one path segment, so it cannot climb out of the skills folder.
pub fn valid_path(path: &str) -> bool {
    (1..=64).contains(&path.len())
        && !path.starts_with('.')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// How both ends tell whether a machine's copy is the one the host has.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}
