//! chatpay's pure core: everything that decides, and nothing that does I/O.
//!
//! No tokio, sqlx, axum, hyper or async-stripe among its dependencies (the workspace checks it
//! with `cargo tree -p chatpay-core -e normal`), so "the flows are pure" is a fact the compiler
//! holds. The server feeds it inputs (classified turns, clicks, Stripe results, webhook facts) and
//! carries out the effects it returns. Module map:
//!
//! - [`domain`]: values with rules (ids, money, currency, statement descriptor, email, country,
//!   mode), parsed at the edge; a value that exists is valid.
//! - [`account`]: a connected account's state, and Stripe's codes in plain language.
//! - [`catalog`]: catalog products and prices, the selling rules, sync reports.
//! - [`billing`]: subscriptions and their invoices, entitlements (who may access what), payouts.
//! - [`cards`]: the action cards clients render.
//! - [`error`]: the error codes clients may receive, one list for the protocol, HTTP and tests.
//! - [`intents`]: the intent file format, loader, normalizer and matcher.
//! - [`metrics`]: subscription figures (MRR per currency, new, ended, churn) from stored
//!   subscriptions.
//! - [`orders`]: carts checked against the catalog; orders derived from fresh reads of Stripe.
//! - [`evidence`]: what an event's payload says about an order, to skip a re-read that would
//!   find nothing new.
//! - [`plans`]: the billing portal's configuration (plans to switch between, how to cancel)
//!   and which plan a seller's "move ana@… to yearly" means.
//! - [`rules`]: the business rules, each decided once for the chat and the HTTP API alike
//!   (may this project sell, this order be refunded and by how much, this subscription change).
//! - [`export`]: orders and customers as CSV lines (quoted, safe to open in a spreadsheet).
//! - [`flows`]: the guided flows as pure transitions `(state, input) -> (state, effects)`; the
//!   ports they need (a Stripe call, a catalog read) are types there.
pub mod account;
pub mod billing;
pub mod cards;
pub mod catalog;
pub mod customers;
pub mod disputes;
pub mod domain;
pub mod error;
pub mod evidence;
pub mod export;
pub mod flows;
pub mod intents;
pub mod metrics;
pub mod orders;
pub mod plans;
pub mod rules;
