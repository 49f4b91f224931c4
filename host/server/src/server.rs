//! Running the host server: bind, serve, and shut down gracefully.
//!
//! Shutdown: the first SIGINT/SIGTERM stops accepting connections and lets in-flight requests
//! finish for up to `shutdown_timeout`; then the store is closed. A second signal exits at once.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{app::AppState, config::Config, http};

/// A server bound to its address, ready to run. Tests bind `127.0.0.1:0` and read `local_addr`.
pub struct Server {
    state: AppState,
    listener: TcpListener,
    /// `metrics.bind`: `/metrics` alone, on its own address.
    metrics: Option<TcpListener>,
}

impl Server {
    /// Opens the store (running migrations) and binds `config.bind`.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let bind = config.bind;
        let state = AppState::open(config).await?;
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        let metrics = match state.config().metrics.bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics.bind {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            state,
            listener,
            metrics,
        })
    }

    /// Serves an existing state on an existing listener.
    pub fn from_parts(state: AppState, listener: TcpListener) -> Self {
        Self {
            state,
            listener,
            metrics: None,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then drains and closes the store.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            state,
            listener,
            metrics,
        } = self;
        if let Some(metrics) = metrics {
            let app = http::metrics::separate_router(state.clone());
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let served = axum::serve(metrics, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            });
        }
        let drain = state.config().shutdown_timeout();
        let store = state.store_arc();
        let app_shutdown = state.shutdown().clone();
        let tracker = state.tasks().clone();
        let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let graceful = shutdown.clone();
        let serving = tokio::spawn(async move {
            use axum::serve::ListenerExt as _;
            // Terminal keystrokes and link frames are tiny: Nagle would hold them back for the
            // peer's delayed ACK (tens of ms).
            let listener = listener.tap_io(|tcp| {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %err, "TCP_NODELAY");
                }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful.cancelled_owned())
                .await
        });
        tokio::pin!(serving);
        // The serving task also watches `shutdown`, so it may finish first: either way the
        // long-lived connections are stopped and waited for below, before the store closes.
        let served = tokio::select! {
            finished = &mut serving => Some(finished),
            () = shutdown.cancelled() => None,
        };
        tracing::info!(drain_timeout = ?drain, "draining in-flight requests and links");
        // WebSocket tasks outlive their HTTP request: tell them to close, and wait for them as
        // for requests (axum's graceful shutdown does not).
        app_shutdown.cancel();
        tracker.close();
        let drained = tokio::time::timeout(drain, async {
            let served = match served {
                Some(finished) => finished,
                None => (&mut serving).await,
            };
            tracker.wait().await;
            served
        })
        .await;
        match drained {
            Ok(finished) => finished.context("server task")??,
            Err(_) => {
                tracing::warn!("drain timeout reached; dropping remaining connections");
                serving.abort();
            }
        }
        store.close().await;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Runs the server for `claudenest serve` until a signal stops it.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    let addr = server.local_addr()?;
    tracing::info!(
        %addr,
        store = ?server.state().store().kind(),
        version = crate::VERSION,
        "ClaudeNest host listening"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    server.run(shutdown).await
}

/// First signal: graceful shutdown. Second signal: exit immediately.
async fn watch_signals(shutdown: CancellationToken) {
    if wait_for_signal().await.is_err() {
        return;
    }
    tracing::info!("shutdown signal received; send another to exit immediately");
    shutdown.cancel();
    if wait_for_signal().await.is_ok() {
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
