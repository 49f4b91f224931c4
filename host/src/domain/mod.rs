//! The rules of the service. Handlers call these functions; these call the [`crate::store::Store`].

pub mod accounts;
pub mod clock;
