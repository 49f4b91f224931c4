//! The rules of the service. Handlers call these functions; these call the [`crate::store::Store`].

pub mod abilities;
pub mod accounts;
pub mod channels;
pub mod clock;
pub mod context;
pub mod locks;
pub mod machines;
pub mod mail;
pub mod oauth;
pub mod password_reset;
pub mod plugins;
pub mod projects;
pub mod sessions;
pub mod tasks;
