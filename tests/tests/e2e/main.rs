//! Every end-to-end test, in one binary (one link of wasmtime, candle and sqlx instead of one per
//! area), one module per area. Each drives the built `claudenest` and `claudenest-agent`
//! binaries or the server library over real sockets, on SQLite and on PostgreSQL.
//!
//! Run one area with `cargo test -p claudenest-e2e --test e2e sessions::`.

mod accounts;
mod binary;
mod conformance;
mod context;
mod coordination;
mod dashboard;
mod foundation;
mod machines;
mod mcp;
mod mcp_server;
mod needs_you;
mod operations;
mod plugins;
mod realtime;
mod scale_out;
mod sessions;
mod skills;
mod storage;
