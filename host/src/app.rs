//! The application's services, shared by every request: the store, the configuration and the
//! rate limiters. Transports get an [`AppState`]; domain functions get the pieces they need.

use std::sync::Arc;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    domain::{machines::PresenceSettings, mail::Mailer, oauth::OAuth},
    http::rate_limit::RateLimiter,
    links::LinkRegistry,
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
    mailer: Mailer,
    oauth: OAuth,
    links: Arc<LinkRegistry>,
    presence: PresenceSettings,
    /// Cancelled when the server shuts down: long-lived connections close on it.
    shutdown: CancellationToken,
    /// Long-lived connection tasks (agent links), waited for on shutdown.
    tasks: TaskTracker,
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
        Self::new(config, store)
    }

    /// Builds the state around an open store; fails on unusable mail or OAuth settings.
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let limits = &config.rate_limits;
        let auth_limiter = RateLimiter::new(limits.auth_per_minute);
        let login_limiter = RateLimiter::new(limits.login_per_account_per_minute);
        let api_limiter = RateLimiter::new(limits.api_per_minute);
        let mailer = Mailer::from_settings(&config.mail)?;
        let oauth = OAuth::new(config.oauth.clone(), config.public_url())?;
        let presence = PresenceSettings::from_settings(&config.agent_link);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                auth_limiter,
                login_limiter,
                api_limiter,
                mailer,
                oauth,
                links: LinkRegistry::new(),
                presence,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
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

    /// The agent links this process holds.
    pub fn links(&self) -> &Arc<LinkRegistry> {
        &self.inner.links
    }

    pub fn presence(&self) -> &PresenceSettings {
        &self.inner.presence
    }

    /// Cancelled when the server starts shutting down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Where long-lived connection tasks are spawned, so shutdown can wait for them.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }
}
