//! Generated bindings, one module per supported WIT version of `claudenest:plugin`, behind the
//! plugin host's own types (`crate::types`).
//!
//! Today the host speaks 0.1.0 (`v0_1`, generated from `wit/`). A new version goes like this:
//! copy the released `wit/` to `wit/v0.1.0/` and point `v0_1` at it; bump `wit/` to the new
//! version; add `v0_2.rs` with its `bindgen!`s and its conversions to and from `crate::types`;
//! add a [`WitVersion`] variant and a `runtime::Pre` variant per world, and one match arm in
//! each call. Components built for either version then load side by side; the domain and the
//! agent see no change.

pub mod v0_1;

/// The WIT versions this host runs, named by the package version a component's manifest gives
/// (`api_version`) and its exports carry (`claudenest:plugin/tools@0.1.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitVersion {
    V0_1,
}

impl WitVersion {
    pub const SUPPORTED: [WitVersion; 1] = [WitVersion::V0_1];

    pub const fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
        }
    }

    pub fn parse(version: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == version)
    }
}
