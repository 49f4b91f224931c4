//! Logging through `tracing`, filtered by an EnvFilter (`RUST_LOG` wins over the config).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(default_filter: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // Already installed (tests start many servers in one process): keep the first.
    let _ = result;
}

/// Runs a binary's work on a fresh Tokio runtime; a failure is logged and printed as
/// `<program>: <error>` and becomes a failing exit code. Shared by `claudenest` and
/// `claudenest-agent`, so both end the same way.
pub fn run_to_exit(
    program: &str,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{program}: starting the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{program} failed");
            eprintln!("{program}: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
