//! ClaudeNest: the host server (REST API, realtime, agent links) and the machine agent.
//!
//! The crate is layered; each floor only uses the floors below it:
//!
//! 1. [`cli`] — the `claudenest` entry points (thin).
//! 2. [`http`] — axum routers, extractors and the response envelope: wire formats only.
//! 3. [`domain`] — the rules (accounts, tokens, ownership, …).
//! 4. [`store`] — the [`store::Store`] trait and its SQLite and PostgreSQL backends.
//!
//! [`server`] wires the floors together into a running service.
#![deny(unsafe_code)]

pub mod app;
pub mod backup;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod embed;
pub mod error;
pub mod events;
pub mod http;
pub mod limits;
pub mod links;
pub mod metrics;
pub mod realtime;
pub mod secrets;
pub mod server;

// The floors below the server, each its own crate, under the names the server's code uses.
pub use claudenest_agent as agent;
pub use claudenest_plugin_host as plugins;
pub use claudenest_protocol as protocol;
pub use claudenest_store as store;

/// The version reported by `/api/health` and the agent protocol.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
