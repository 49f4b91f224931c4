//! The rules of the service. Handlers call these functions; these call the [`crate::store::Store`].

pub mod abilities;
pub mod accounts;
pub mod attention;
pub mod budgets;
pub mod channel_names;
pub mod channels;
pub use claudenest_store::clock;
pub mod context;
pub mod instances;
pub mod locks;
pub mod machines;
pub mod mail;
pub mod mcp;
pub mod mcp_access;
pub mod notify;
pub mod oauth;
pub mod password_reset;
pub mod plugins;
pub mod projects;
pub mod retention;
pub mod sessions;
pub mod skills;
pub mod sweeper;
pub mod tasks;

/// What domain code that reaches a machine works with: the store, the machine's agent (over
/// its link, wherever it is held), and the plugin runtime.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub store: &'a dyn crate::store::Store,
    pub links: &'a dyn crate::links::AgentLinks,
    pub plugins: &'a std::sync::Arc<crate::plugins::runtime::PluginRuntime>,
    pub presence: machines::PresenceSettings,
    /// Seals secrets stored in the database.
    pub secrets: &'a crate::secrets::SecretBox,
}

impl Deps<'_> {
    /// Whether the machine's agent is linked (to this host process or another), by its stored
    /// presence: asking a link registry would wait out a relay timeout for an offline machine
    /// when several hosts share the database.
    pub fn is_online(&self, machine: &crate::store::Machine) -> bool {
        machines::MachineStatus::of(machine, &self.presence, clock::now())
            == machines::MachineStatus::Online
    }
}

/// Runs `work` every `interval` until `shutdown` (the sweepers): what a round did is logged as
/// `what` when it did anything, a failure as a warning; the next round comes either way.
pub fn every<T, F, Fut>(
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
    what: &'static str,
    mut work: F,
) where
    T: Default + PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::error::Result<T>> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
            match work().await {
                Ok(done) if done != T::default() => tracing::info!(?done, "{what}"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "{what} failed"),
            }
        }
    });
}
