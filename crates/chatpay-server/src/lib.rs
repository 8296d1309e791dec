//! chatpay: add payments to a chat-built app by talking to it.
//!
//! A WebSocket chat server that recognizes what an app builder wants ("I want to add payments"),
//! answers with action cards, and drives the guided flows (connecting Stripe, onboarding) as a
//! persistent state machine. Module map, outside in:
//!
//! - [`app`]: `Application::build(config)` wires everything and binds; `run_until_stopped`.
//! - [`config`]: layered configuration (defaults, TOML file, environment, flags).
//! - [`telemetry`]: logging set-up.
//! - [`wire`]: the error body both transports send.
//! - [`ws`]: the WebSocket transport and protocol v1 framing (`ws::protocol`).
//! - [`http`]: the REST API, health, the Stripe webhook endpoint, Stripe's return pages, the web
//!   chat view's embedded files (`http::web`, files in `web/`).
//! - [`chat`]: the orchestrator: commands in, flows run, effects carried out, frames stored and
//!   broadcast; one actor per conversation.
//! - [`intents`]: the intent file format, loader and matcher (Aho-Corasick + `RegexSet`).
//! - [`flows`]: the guided flows as pure transitions returning effects.
//! - [`cards`]: the action cards clients render.
//! - [`account`]: a connected account's state, and Stripe's codes in plain language.
//! - [`stripe`]: the `Gateway` trait, the async-stripe client, webhook signatures, the sandbox.
//! - [`store`]: all SQL, SQLite and PostgreSQL behind one `Store` trait, group commit.
//! - [`domain`]: values with rules (ids, money, currency, statement descriptor, email, country).
//! - [`auth`]: API tokens (stored hashed).
//! - [`signin`]: the one-time sign-in link a fresh database offers.
//! - [`httpc`]: a small HTTP client (webhook delivery, OAuth, tests).
//! - [`replay`]: transcript replay against a real server (tests and `chatpay replay`).
//! - [`bench`]: the load client (`chatpay bench`).
pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod http;
pub mod signin;
pub mod telemetry;
pub mod wire;
pub mod ws;
