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

pub mod agent;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod embed;
pub mod error;
pub mod events;
pub mod http;
pub mod links;
pub mod plugins;
pub mod protocol;
pub mod realtime;
pub mod secrets;
pub mod server;
pub mod store;
pub mod telemetry;

/// The version reported by `/api/health` and the agent protocol.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
