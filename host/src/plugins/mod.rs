//! WebAssembly plugins (wit/plugin.wit): reading a component's manifest before compiling it
//! (`manifest`), and the sandboxed wasmtime host that runs them (`runtime`). The registry and
//! per-machine enablement are domain code (`domain::plugins`).

pub mod manifest;
pub mod runtime;
