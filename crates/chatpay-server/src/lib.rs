//! The chatpay server: add payments to a chat-built app by talking to it.
//!
//! A WebSocket chat server that recognizes what an app builder wants ("I want to add payments"),
//! answers with action cards, and drives the guided flows (connecting Stripe, onboarding,
//! selling) as a persistent state machine, with an HTTP API beside it. The rules and flows are
//! `chatpay-core`'s, the SQL `chatpay-store`'s, the Stripe calls `chatpay-stripe`'s; which
//! Stripe (real, or the sandbox) is the caller's choice, handed to [`app::Application::build`].
//! Module map, outside in:
//!
//! - [`app`]: `Application::build(config, stripe)` wires the rest and binds;
//!   `run_until_stopped`.
//! - [`config`]: layered configuration (defaults, TOML file, environment, flags).
//! - [`telemetry`]: logging set-up.
//! - [`http`]: the REST API, health, the Stripe webhook endpoint, Stripe's return pages, the
//!   sign-in exchange, the web chat view's embedded files (`http::web`, files in `web/`), and
//!   the route of the WebSocket upgrade.
//! - `wire`: the error body both transports send.
//! - `ws`: the WebSocket transport and protocol v1 framing (`ws::protocol`).
//! - `chat`: the engine: commands in, flows run, effects carried out, frames stored and
//!   broadcast; one actor per conversation; catalog syncs, orders, subscriptions and payouts,
//!   going live, webhooks to builders' apps.
//! - [`auth`]: credentials of a workspace (API tokens, sessions, scoped tokens; stored hashed),
//!   principals (what a credential reaches), Argon2id passwords.
//! - `signin`: the one-time link a first run offers (it makes the owner's sign-in).
//!
//! Public are the modules another crate uses (the `chatpay` binary, the test kit, this crate's
//! integration tests); `ws`, `chat` and `signin` are private. Dependencies between them point
//! one way: `app` → `http` → `ws` → `chat` → `auth`.
pub mod app;
pub mod auth;
mod chat;
pub mod config;
pub mod http;
mod signin;
pub mod telemetry;
mod wire;
mod ws;
