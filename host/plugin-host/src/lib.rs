//! WebAssembly plugins (wit/plugin.wit): reading a component's manifest before compiling it
//! (`manifest`), the sandboxed wasmtime host that runs them (`runtime`), its authenticated
//! compile cache (`cache`), what a plugin may reach and who consents to it (`grants`, with
//! `hosts` for how hosts are written) and its outbound HTTP (`net`). The registry and
//! per-machine enablement are domain code (`domain::plugins`); where each world runs (the
//! host or the machine's agent) is decided there.

pub mod bindings;
pub mod cache;
pub mod grants;
pub mod hosts;
pub mod manifest;
pub mod net;
pub mod runtime;
pub mod types;
