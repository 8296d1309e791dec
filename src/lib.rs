//! chatpay: add payments to a chat-built app by talking to it.
pub mod config;
pub mod domain;
pub mod httpc;
pub mod intents;
pub mod store;
pub mod stripe;
pub mod telemetry;
