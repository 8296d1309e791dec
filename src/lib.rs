//! chatpay: add payments to a chat-built app by talking to it.
pub mod account;
pub mod auth;
pub mod cards;
pub mod chat;
pub mod config;
pub mod domain;
pub mod flows;
pub mod httpc;
pub mod intents;
pub mod store;
pub mod stripe;
pub mod telemetry;
