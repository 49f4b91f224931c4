//! The application's services, shared by every request: the store, the configuration and the
//! rate limiters. Transports get an [`AppState`]; domain functions get the pieces they need.

use std::sync::Arc;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    domain::{machines::PresenceSettings, mail::Mailer, oauth::OAuth},
    events::EventBus,
    limits::RateLimiter,
    links::{ClusterLinks, LinkRegistry},
    realtime::Hub,
    store::{self, Store},
};

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    auth_limiter: Arc<RateLimiter>,
    login_limiter: Arc<RateLimiter>,
    api_limiter: Arc<RateLimiter>,
    websocket_limiter: Arc<RateLimiter>,
    mailer: Mailer,
    oauth: OAuth,
    links: Arc<LinkRegistry>,
    agent_links: Arc<ClusterLinks>,
    presence: PresenceSettings,
    /// Cancelled when the server shuts down: long-lived connections close on it.
    shutdown: CancellationToken,
    /// Long-lived connection tasks (agent links), waited for on shutdown.
    tasks: TaskTracker,
    bus: Arc<EventBus>,
    hub: Arc<Hub>,
    pusher: PusherApp,
    secrets: Arc<crate::secrets::SecretBox>,
    notifier: crate::domain::notify::Notifier,
    vapid: Arc<crate::domain::notify::Vapid>,
    embedder: crate::embed::SharedEmbedder,
    embed_worker: crate::domain::context::EmbedWorker,
    /// Made on first use: most hosts never run a plugin, and its engine reserves address space.
    plugins: tokio::sync::OnceCell<Arc<crate::plugins::runtime::PluginRuntime>>,
}

/// The one Pusher app this host serves.
#[derive(Clone)]
pub struct PusherApp {
    pub id: String,
    pub key: String,
    pub secret: String,
}

/// Makes `dir` (and its parents) if needed and keeps it readable by its owner only: it holds
/// the database, keys and compiled plugins.
pub fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| anyhow::anyhow!("making {} private: {e}", dir.display()))?;
    Ok(())
}

/// The configured secret, else the one kept in `<data_dir>/pusher-secret` (made on first run).
fn pusher_secret(config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = &config.pusher_app_secret {
        return Ok(secret.expose().to_owned());
    }
    let path = config.data_dir.join("pusher-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_owned());
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let secret = crate::domain::accounts::TokenSecret::generate("").plain;
    crate::secrets::create_private(&path, secret.as_bytes())?;
    Ok(secret)
}

impl AppState {
    /// Opens the configured store (running migrations) and builds the state around it.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let url = config.effective_database_url();
        let store = store::open(&url).await.map_err(|err| {
            anyhow::anyhow!(
                "opening the store at {}: {err}",
                crate::config::redact_url(&url)
            )
        })?;
        let state = Self::new(config, store.clone())?;
        let relaying = state
            .inner
            .bus
            .start_relay(store, state.inner.shutdown.clone())
            .await?;
        if relaying {
            tracing::info!("relaying realtime events between host processes (LISTEN/NOTIFY)");
        }
        crate::domain::retention::spawn(
            state.store_arc(),
            state.config().retention.clone(),
            state.inner.shutdown.clone(),
        );
        crate::domain::sweeper::spawn_sweeper(
            state.store_arc(),
            state.inner.bus.clone(),
            state.config().coordination.clone(),
            state.inner.shutdown.clone(),
        );
        Ok(state)
    }

    /// Builds the state around an open store; fails on unusable mail or OAuth settings.
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        private_dir(&config.data_dir)?;
        if config.metrics.bind.is_some() || config.metrics.token.is_some() {
            // Recording starts now, not at the first scrape.
            crate::metrics::handle();
        }
        let limits = &config.rate_limits;
        let proxies = crate::limits::TrustedProxies::parse(&limits.trusted_proxies)?;
        let limiter = |limit| RateLimiter::with_proxies(limit, proxies.clone());
        let auth_limiter = limiter(limits.auth_per_minute);
        let login_limiter = limiter(limits.login_per_account_per_minute);
        let api_limiter = limiter(limits.api_per_minute);
        let websocket_limiter = limiter(limits.websocket_per_minute);
        let mailer = Mailer::from_settings(&config.mail)?;
        let oauth = OAuth::new(config.oauth.clone(), config.public_url())?;
        let presence = PresenceSettings::from_settings(&config.agent_link);
        let pusher = PusherApp {
            id: config.pusher_app_id.clone(),
            key: config.pusher_app_key.clone(),
            secret: pusher_secret(&config)?,
        };
        let secrets = Arc::new(crate::secrets::SecretBox::load(
            config.secret_key.as_ref().map(|s| s.expose()),
            &config.data_dir,
        )?);
        let bus = EventBus::new();
        let hub = Hub::new();
        let shutdown = CancellationToken::new();
        spawn_dispatcher(&bus, &hub, &shutdown);
        let embedder = crate::embed::from_config(&config)?;
        let embed_worker = crate::domain::context::spawn_embedder(
            store.clone(),
            embedder.clone(),
            config.embeddings.batch_size,
            shutdown.clone(),
        );
        let links = LinkRegistry::new();
        let agent_links = ClusterLinks::start(links.clone(), bus.clone(), shutdown.clone());
        let vapid = Arc::new(crate::domain::notify::Vapid::load(
            &config.notifications,
            &config.data_dir,
            &config.public_url(),
        )?);
        let notifier = crate::domain::notify::Notifier::start(
            store.clone(),
            agent_links.clone(),
            secrets.clone(),
            vapid.clone(),
            config.notifications.clone(),
            config.public_url(),
            shutdown.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                auth_limiter,
                login_limiter,
                api_limiter,
                websocket_limiter,
                mailer,
                oauth,
                links,
                agent_links,
                presence,
                shutdown,
                tasks: TaskTracker::new(),
                bus,
                hub,
                pusher,
                secrets,
                notifier,
                vapid,
                plugins: tokio::sync::OnceCell::new(),
                embedder,
                embed_worker,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn store_arc(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    pub fn auth_limiter(&self) -> Arc<RateLimiter> {
        self.inner.auth_limiter.clone()
    }

    pub fn api_limiter(&self) -> Arc<RateLimiter> {
        self.inner.api_limiter.clone()
    }

    /// New realtime WebSocket connections per client IP.
    pub fn websocket_limiter(&self) -> Arc<RateLimiter> {
        self.inner.websocket_limiter.clone()
    }

    /// Login attempts per account, on top of the per-IP auth limit.
    pub fn login_limiter(&self) -> &RateLimiter {
        &self.inner.login_limiter
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    pub fn oauth(&self) -> &OAuth {
        &self.inner.oauth
    }

    /// The agent links this process holds (the WebSocket transport registers them here).
    pub fn links(&self) -> &Arc<LinkRegistry> {
        &self.inner.links
    }

    /// Agent links wherever they are held: what domain code talks to agents through.
    pub fn agent_links(&self) -> &ClusterLinks {
        &self.inner.agent_links
    }

    pub fn embedder(&self) -> &crate::embed::SharedEmbedder {
        &self.inner.embedder
    }

    pub fn embed_worker(&self) -> &crate::domain::context::EmbedWorker {
        &self.inner.embed_worker
    }

    /// The plugin runtime (compiled components cached under `<data_dir>/plugin-cache`).
    pub async fn plugins(
        &self,
    ) -> crate::error::Result<&Arc<crate::plugins::runtime::PluginRuntime>> {
        self.inner
            .plugins
            .get_or_try_init(|| async {
                use crate::plugins::{grants::NetPolicy, runtime};
                let settings = &self.inner.config.plugins;
                let limits = runtime::Limits {
                    timeout: std::time::Duration::from_millis(settings.call_timeout_ms),
                    memory_bytes: (settings.memory_mib * 1024 * 1024) as usize,
                    output_bytes: settings.max_output_bytes,
                    total_memory_bytes: (settings.total_memory_mib * 1024 * 1024) as usize,
                    calls_per_owner: settings.calls_per_user,
                    compile_timeout: std::time::Duration::from_secs(settings.compile_timeout_secs),
                    max_functions: settings.max_functions,
                    max_code_bytes: settings.max_code_mib * 1024 * 1024,
                    ..Default::default()
                };
                let options = runtime::Options {
                    cache_dir: Some(self.inner.config.data_dir.join("plugin-cache")),
                    limits,
                    // The operator decides what plugins in the host process may reach.
                    net: NetPolicy::operator(&settings.http_allow),
                    pooling: true,
                };
                runtime::PluginRuntime::new(options).map_err(|err| {
                    tracing::error!(error = %err, "starting the plugin runtime failed");
                    crate::error::ApiError::new(crate::error::ErrorCode::Internal)
                })
            })
            .await
    }

    /// The store, agent links and plugin runtime, for domain code that reaches machines.
    pub async fn deps(&self) -> crate::error::Result<crate::domain::Deps<'_>> {
        Ok(crate::domain::Deps {
            store: self.store(),
            links: self.agent_links(),
            plugins: self.plugins().await?,
            presence: *self.presence(),
            secrets: &self.inner.secrets,
        })
    }

    pub fn secrets(&self) -> &crate::secrets::SecretBox {
        &self.inner.secrets
    }

    pub fn notifier(&self) -> &crate::domain::notify::Notifier {
        &self.inner.notifier
    }

    pub fn vapid(&self) -> &crate::domain::notify::Vapid {
        &self.inner.vapid
    }

    pub fn presence(&self) -> &PresenceSettings {
        &self.inner.presence
    }

    /// Cancelled when the server starts shutting down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Where domain events are published.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// Realtime channel membership.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    pub fn pusher(&self) -> &PusherApp {
        &self.inner.pusher
    }

    /// Where long-lived connection tasks are spawned, so shutdown can wait for them.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }
}

/// Delivers bus events to this process's WebSocket subscribers.
fn spawn_dispatcher(bus: &EventBus, hub: &Arc<Hub>, shutdown: &CancellationToken) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = bus.subscribe();
    let (hub, shutdown) = (hub.clone(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = events.recv() => next,
                () = shutdown.cancelled() => return,
            };
            match next {
                Ok(event) => hub.dispatch(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "realtime dispatcher fell behind; events dropped");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}
