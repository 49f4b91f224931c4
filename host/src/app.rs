//! The application's services, shared by every request: the store, the configuration and the
//! rate limiters. Transports get an [`AppState`]; domain functions get the pieces they need.

use std::sync::Arc;

use crate::{
    config::Config,
    http::rate_limit::RateLimiter,
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
    api_limiter: Arc<RateLimiter>,
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
        Ok(Self::new(config, store))
    }

    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let auth_limiter = RateLimiter::new(config.rate_limits.auth_per_minute);
        let api_limiter = RateLimiter::new(config.rate_limits.api_per_minute);
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                auth_limiter,
                api_limiter,
            }),
        }
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
}
