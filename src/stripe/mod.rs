//! Everything that talks Stripe. For now only the built-in sandbox lives here.
pub mod sandbox;
