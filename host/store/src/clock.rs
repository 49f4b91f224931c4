//! Time as the service records it.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: PostgreSQL keeps microseconds, so truncating here makes a
/// timestamp read back from either store equal the one that was written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
