//! A built-in Stripe sandbox: an HTTP server that speaks the part of Stripe's REST API chatpay
//! uses, in Stripe's real JSON shapes (API version 2026-09-30), so the real `async-stripe` 1.0
//! client can talk to it over plain HTTP on loopback.
//!
//! What it serves, all on one port:
//! - `/v1/accounts`, `/v1/account_links`, `/v1/products`, `/v1/prices`, `/v1/coupons`,
//!   `/v1/promotion_codes`, `/v1/events`: form requests with Stripe's bracket syntax, the key
//!   as `Authorization: Bearer` or HTTP Basic (the test key gives test-mode objects, the live
//!   key live-mode ones, kept apart), `Stripe-Account` scoping, `Idempotency-Key` replay,
//!   cursor paging, `expand[]` on every request, lists included (`expand.rs`), Stripe's error
//!   bodies (an unknown object named in a parameter is a 400 naming it, a 404 only for the
//!   object in the URL), optional rate limits;
//! - `GET /v1/{products,prices,customers,charges,payment_intents,invoices,subscriptions}/search`:
//!   Stripe's Search Query Language (`search.rs`);
//! - selling (one-time payments, on the platform or a connected account):
//!   `POST/GET /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}` (and `/line_items`),
//!   `POST /v1/checkout/sessions/{id}/expire`, `GET /v1/payment_intents/{id}`,
//!   `GET /v1/charges?payment_intent=`, `GET`/`POST /v1/charges/{id}` (a new `receipt_email`
//!   sends the receipt again), `GET /v1/balance_transactions/{id}`, `GET /v1/invoices/{id}`,
//!   `POST`/`GET /v1/refunds`, `GET /v1/refunds/{id}`; sessions expire when the sandbox clock
//!   passes `expires_at` (`checkout.session.expired`);
//! - billing (docs/stripe.md, "The sandbox: billing and payouts"): subscription-mode Checkout,
//!   `/v1/customers`, `/v1/subscriptions`, `/v1/invoices` (list, pay, void,
//!   mark_uncollectible, finalize), `/v1/test_helpers/test_clocks`; renewals, trials, failed
//!   payments with retries at 3, 5 and 7 days, cancellation (`subscriptions.rs`);
//! - discounts (`discounts.rs`): coupons and promotion codes with Stripe's rules,
//!   `discounts[]` / `allow_promotion_codes` on Checkout Sessions, the hosted page's promotion
//!   code field, discounted payments, invoices and subscriptions, redemptions counted once per
//!   completed session;
//! - plan changes: `items[]` with `proration_behavior` / `proration_date` on
//!   `POST /v1/subscriptions/{id}`, `POST /v1/invoices/create_preview` (`plans.rs`);
//! - the customer portal: `/v1/billing_portal/configurations`, `/v1/billing_portal/sessions`,
//!   the hosted portal page `/p/session/{secret}` (`portal.rs`); subscription schedules
//!   `/v1/subscription_schedules` (`schedules.rs`);
//! - disputes and early fraud warnings (`disputes.rs`): `GET /v1/disputes[/{id}]`,
//!   `POST /v1/disputes/{id}` (evidence, `submit`), `POST /v1/disputes/{id}/close`,
//!   `GET /v1/radar/early_fraud_warnings[/{id}]`; Stripe's dispute test cards;
//! - balance and payouts: `GET /v1/balance`, `GET /v1/balance_transactions`, `/v1/payouts`, on
//!   the account's payout schedule with the first-payout hold (`payouts.rs`);
//! - `/checkout/{session}`: the hosted Checkout page (a plain HTML form, no JavaScript, with
//!   Stripe Checkout's field ids `email`, `cardNumber`, `cardExpiry`, `cardCvc`, `billingName`),
//!   `/checkout/{session}/authenticate` (the 3D Secure step), `/receipts/{charge}` (the
//!   `receipt_url`, refunds included), `/invoices/{id}` (pays an open invoice) and
//!   `/invoices/{id}/pdf`;
//! - `/onboarding/{link}`: the hosted onboarding page account links point to;
//! - `/oauth/authorize`, `/oauth/token`, `/oauth/deauthorize`: Connect OAuth;
//! - `/__sandbox/...`: test controls (loopback only), mirrored by methods on [`Sandbox`].
//!
//! Stripe's test cards behave as documented: `4242 4242 4242 4242` succeeds; `…0002`
//! (`generic_decline`), `…9995` (`insufficient_funds`), `…9987` (`lost_card`), `…0069`
//! (`expired_card`), `…0127` (`incorrect_cvc`) decline and the customer may retry;
//! `4000 0025 0000 3155` asks for 3D Secure; `…0077` makes the funds available at once; `…5126`
//! succeeds but its refunds fail 30 s (sandbox clock) later. A payment emits
//! `payment_intent.created`, `charge.succeeded`, `payment_intent.succeeded`, with
//! `invoice_creation` `invoice.created`, `invoice.finalized`, `invoice.paid`,
//! `invoice.payment_succeeded`, then `checkout.session.completed`; a decline `charge.failed`
//! and `payment_intent.payment_failed`; 3D Secure `payment_intent.requires_action`; a refund
//! `refund.created` and `charge.refunded`; a late refund failure `refund.updated`,
//! `charge.refund.updated` and `refund.failed`; an expiry `checkout.session.expired` (and
//! `payment_intent.canceled` if a payment was started). Receipt emails are kept in an outbox.
//!
//! Events are signed like Stripe's (`Stripe-Signature`) and POSTed to the endpoint set with
//! [`Sandbox::set_webhook_endpoint`]: at least once, concurrently, unordered, with retries.
//!
//! With a state file ([`SandboxConfig::state_file`]) every change is written durably (fsync)
//! before the request that made it is answered and before a webhook tells of it, so what the
//! sandbox answered survives `kill -9` (`persist.rs`); with [`SandboxConfig::keep_address`] it
//! listens where it listened last time, so the URLs it gave out keep working.
//!
//! # Examples
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use stripe_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let client = stripe::ClientBuilder::new(&sandbox.config().test_secret_key)
//!     .url(sandbox.base_url())
//!     .build()?;
//! let account = stripe_connect::account::CreateAccount::new().send(&client).await?;
//! assert_eq!(account.details_submitted, Some(false));
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Test controls over HTTP
//! | request | body | answer |
//! | --- | --- | --- |
//! | `POST /__sandbox/webhook_endpoint` | `{"url": "http://127.0.0.1:9/hook", "secret": "whsec_x"}` | `{"url": ...}` |
//! | `DELETE /__sandbox/webhook_endpoint` | | `{"url": null}` |
//! | `POST /__sandbox/deliveries` | `{"paused": true}` | `{"paused": true}` |
//! | `GET /__sandbox/events?type=product.*` | | `[EventSummary]` |
//! | `POST /__sandbox/events/{id}/resend` | | `DeliveryAttempt` |
//! | `POST /__sandbox/events/deliver` | `{"ids": ["evt_2", "evt_1"]}` | `[DeliveryAttempt]` |
//! | `POST /__sandbox/accounts/{id}/verification` | `{"outcome": "rejected", "reason": "rejected.fraud"}` | the account |
//! | `POST /__sandbox/faults` | `{"method": "POST", "path": "/v1/accounts", "status": 500, "count": 1}` | armed faults |
//! | `GET`/`DELETE /__sandbox/faults` | | armed faults |
//! | `POST /__sandbox/catalog` | `{"account": "acct_x", "products": 500, "currencies": ["usd","eur"]}` | `SeedReport` |
//! | `POST /__sandbox/prices/{id}/delete` | | the deleted price (`price.deleted`) |
//! | `POST /__sandbox/oauth/authorize` | `{"client_id": "ca_chatpay_sandbox", "redirect_uri": "http://…/cb", "state": "s"}` | `{"redirect_to": "http://…/cb?scope=read_write&code=ac_…&state=s"}` |
//! | `POST /__sandbox/account_links/follow` | `{"url": "http://…/onboarding/…", "outcome": "verified"}` | `{"redirect_to": return_url, "completed": true}` |
//! | `POST /__sandbox/clock/advance` | `{"seconds": 600}` | `{"offset_seconds": 600}` (sessions expire, late refund failures happen) |
//! | `POST /__sandbox/checkout/{cs}/pay` | `{"card": "4242 4242 4242 4242", "email": "a@b.example", "authenticate": "complete"}` | `PaymentResult` |
//! | `POST /__sandbox/checkout/{cs}/authenticate` | `{"outcome": "complete"}` or `"fail"` | `PaymentResult` |
//! | `POST /__sandbox/checkout/{cs}/promotion_code` | `{"code": "SUMMER25", "email": "a@b.example"}` | the session (a refused code: 400 with the page's message) |
//! | `POST /__sandbox/customers/{cus}/card` | `{"card": "4000000000000341"}` | the customer |
//! | `POST /__sandbox/billing/settings` | `{"account": "acct_x", "after_retries": "unpaid"}` | the setting |
//! | `POST /__sandbox/accounts/{id}/payouts/fail_next` | `{"failure_code": "account_closed"}` | the failure armed |
//! | `POST /__sandbox/charges/{ch}/dispute` | `{"reason": "fraudulent"}` (or `product_not_received`, `inquiry`) | the dispute |
//! | `POST /__sandbox/charges/{ch}/early_fraud_warning` | | the early fraud warning |
//! | `GET /__sandbox/outbox.json` | | `[SentEmail]` |
//! | `GET /__sandbox/outbox` | | the outbox as an HTML page |
//!
//! Errors of the controls use Stripe's error body too:
//! `{"error": {"type": "invalid_request_error", "code": "resource_missing", "message": ...}}`.
//!
//! For people testing in a browser, the Dashboard page `/dashboard/{acct}/products` has the same
//! clock and card controls as forms (loopback clients only, like the controls):
//! `POST /dashboard/{acct}/clock` `advance=day|week|month` (a month is 31 days) and
//! `POST /dashboard/{acct}/failing_card` (the newest subscription's customer gets
//! `4000 0000 0000 0341`); each answers the page with what happened.
//!
//! # Module map
//! Every module is private; what other crates use is re-exported here.
//!
//! - Serving: `server` (the router, faults in front), `api` (`/v1` authentication, rate limits,
//!   `Stripe-Account` scoping, idempotency, the route table), `form` (Stripe's form encoding),
//!   `error` (Stripe's error body), `faults` (fault injection and rate limiting).
//! - The API by resource: `accounts` (accounts and account links), `catalog` (products and
//!   prices), `checkout` (Checkout Sessions and paying them), `payments` (PaymentIntents,
//!   Charges, BalanceTransactions, Invoices, Refunds), `billing_api` (customers, subscriptions,
//!   invoices, test clocks), `payouts` (the balance and payouts), `events` (`/v1/events`),
//!   `disputes` (disputes and Radar's early fraud warnings, their money and their clock),
//!   `plans` (subscription price changes, prorations, invoice previews), `portal` (the
//!   customer portal's configurations, sessions and hosted page), `schedules` (subscription
//!   schedules).
//! - Stripe's rules and objects: `model` (account requirements, products, prices), `sales` (the
//!   objects of selling), `billing` (the objects of billing), `subscriptions` (billing's rules),
//!   `rules` (parameter rules with Stripe's messages), `cards` (test cards), `money` (minor units
//!   per currency), `ids` (Stripe-looking ids).
//! - Stripe's JSON: `shapes`, `shapes_sales`, `shapes_billing`.
//! - State: `state` (per mode, cursor paging, the transaction that records events), `persist`
//!   (the optional state file).
//! - Pages people see: `onboarding` (hosted onboarding), `oauth` (Connect OAuth), `hosted`
//!   (Checkout, 3D Secure, receipts, invoices), `dashboard` (the products page and test tools),
//!   `html` (their shared HTML).
//! - Webhooks: `webhooks` (signed delivery, retries, attempts recorded), `delivery` (the HTTP
//!   client they go out on).
//! - `control`: the test controls, as [`Sandbox`] methods and under `/__sandbox`.

// The big `json!` literals of Stripe's shapes (a Checkout Session, an Invoice) nest deeply.
#![recursion_limit = "256"]

mod accounts;
mod api;
mod billing;
mod billing_api;
mod cards;
mod catalog;
mod checkout;
mod control;
mod dashboard;
mod delivery;
mod discounts;
mod discounts_api;
mod disputes;
mod error;
mod events;
mod expand;
mod faults;
mod form;
mod hosted;
mod html;
mod ids;
mod model;
mod money;
mod oauth;
mod onboarding;
mod payments;
mod payouts;
mod persist;
mod plans;
mod portal;
mod rules;
mod sales;
mod schedules;
mod search;
mod server;
mod shapes;
mod shapes_billing;
mod shapes_discounts;
mod shapes_sales;
mod state;
mod subscriptions;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use billing::AfterRetries;
pub use catalog::{SeedCatalog, SeedReport};
pub use control::{Authenticate, ControlError, PaymentResult, TestPayment};
pub use events::EventSummary;
pub use faults::{Fault, FaultAction, RateLimit};
pub use model::{DISABLED_REASONS, REJECT_REASONS, VerificationOutcome};
pub use oauth::OAuthAuthorize;
pub use onboarding::FollowResult;
pub use payouts::PAYOUT_FAILURES;
pub use sales::SentEmail;
pub use shapes::API_VERSION;
pub use webhooks::{DeliveryAttempt, DeliveryConfig, DeliveryState, signature_header};

use state::{App, Shared};

/// Applies the clock once a second (sessions expiring, late refund failures), so they happen
/// even when nobody calls the API.
fn spawn_ticker(app: App) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = app.shutdown.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => control::settle(&app),
                _ = shutdown.changed() => break,
            }
        }
    })
}

/// Stripe's two modes: every object is a test-mode or a live-mode one, chosen by the secret key
/// of the request that made it, and never visible from the other mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }
}

/// How to run a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The test-mode secret key (default `sk_test_chatpay_sandbox`).
    pub test_secret_key: String,
    /// The live-mode secret key (default `sk_live_chatpay_sandbox`).
    pub live_secret_key: String,
    /// The Connect OAuth client id (default `ca_chatpay_sandbox`).
    pub connect_client_id: String,
    /// How long an account link stays valid (default 300 s, as Stripe's).
    pub link_ttl: Duration,
    /// `None`: unlimited; `Some`: a token bucket per mode (Stripe: [`RateLimit::stripe`]).
    pub rate_limit: Option<RateLimit>,
    /// Webhook retry schedule.
    pub delivery: DeliveryConfig,
    /// Load the state from here at start and write it durably after each change, before the
    /// request that made it is answered.
    pub state_file: Option<PathBuf>,
    /// With a state file and `listen` on port 0: listen where the sandbox listened last time
    /// (recorded in the state file), so the URLs it gave out (hosted checkout pages, invoices)
    /// still work after a restart; a free port the first time, or when that one is taken.
    /// Off by default: tests want a fresh port each time.
    pub keep_address: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            test_secret_key: "sk_test_chatpay_sandbox".into(),
            live_secret_key: "sk_live_chatpay_sandbox".into(),
            connect_client_id: "ca_chatpay_sandbox".into(),
            link_ttl: Duration::from_secs(300),
            rate_limit: None,
            delivery: DeliveryConfig::default(),
            state_file: None,
            keep_address: false,
        }
    }
}

/// A running sandbox. Cheap to clone; the server stops on [`Sandbox::shutdown`] or when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Sandbox {
    app: App,
    addr: SocketAddr,
    tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct Tasks {
    stop: watch::Sender<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Sandbox {
    /// Binds `config.listen`, loads the state file if any, and starts serving.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let mut state = match &config.state_file {
            Some(path) => persist::load(path)?.unwrap_or_default(),
            None => state::State::default(),
        };
        state.reset_in_flight();
        let listener = bind(&config, state.address).await?;
        let addr = listener.local_addr()?;
        let moved = state.address != Some(addr);
        state.address = Some(addr);
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let (stop, stopped) = watch::channel(false);
        let app: App = Arc::new(Shared {
            base_url: format!("http://{host}/"),
            state: Mutex::new(state),
            clock_offset: AtomicI64::new(0),
            api_requests: AtomicU64::new(0),
            faults: Mutex::new(faults::Faults::default()),
            limiter: config
                .rate_limit
                .map(|l| Mutex::new(faults::RateLimiter::new(l))),
            webhooks: webhooks::Webhooks::new(config.delivery.clone()),
            dirty: Notify::new(),
            changed: AtomicU64::new(0),
            durable: watch::channel(0).0,
            shutdown: stopped.clone(),
            config,
        });
        // Where it listens is part of the state: recorded before the first answer.
        if moved && let Some(path) = &app.config.state_file {
            persist::save(&app, path).await?;
        }
        let router = server::router(app.clone());
        let mut shutdown = stopped;
        let server = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox: server failed");
            }
        });
        let mut handles = vec![server, spawn_ticker(app.clone())];
        if let Some(path) = app.config.state_file.clone() {
            handles.push(persist::spawn_writer(app.clone(), path));
        }
        tracing::info!(url = %app.base_url, "Stripe sandbox listening");
        Ok(Sandbox {
            app,
            addr,
            tasks: Arc::new(Tasks {
                stop,
                handles: Mutex::new(handles),
            }),
        })
    }

    /// `http://127.0.0.1:PORT/`: what `stripe::ClientBuilder::url` takes.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many API requests (`/v1/…`) it has answered so far.
    pub fn api_requests(&self) -> u64 {
        self.app.api_requests.load(Ordering::Relaxed)
    }

    /// The configuration it runs with (keys, client id).
    pub fn config(&self) -> &SandboxConfig {
        &self.app.config
    }

    /// Where events are POSTed, and the signing secret (`whsec_...`). Events that were waiting
    /// for an endpoint are delivered now.
    pub fn set_webhook_endpoint(&self, url: &str, secret: &str) {
        webhooks::set_endpoint(
            &self.app,
            Some(webhooks::Endpoint {
                url: url.to_owned(),
                secret: secret.to_owned(),
            }),
        );
    }

    /// Stops delivering; new events wait for the next endpoint.
    pub fn clear_webhook_endpoint(&self) {
        webhooks::set_endpoint(&self.app, None);
    }

    /// Pauses (or resumes) automatic delivery, e.g. to deliver events in a chosen order with
    /// [`Sandbox::deliver_events`]. Resuming delivers what waited.
    pub fn pause_deliveries(&self, paused: bool) {
        webhooks::set_paused(&self.app, paused);
    }

    /// Sets an account's verification outcome (emits `account.updated`); returns the account as
    /// the API shows it.
    pub fn set_verification(
        &self,
        account: &str,
        outcome: VerificationOutcome,
    ) -> Result<serde_json::Value, ControlError> {
        control::set_verification(&self.app, account, outcome)
    }

    /// Arms a fault for the next matching requests.
    pub fn inject_fault(&self, fault: Fault) -> Result<(), ControlError> {
        control::inject_fault(&self.app, fault)
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        control::clear_faults(&self.app);
    }

    /// The armed faults with their remaining counts.
    pub fn faults(&self) -> Vec<Fault> {
        control::faults(&self.app)
    }

    /// Creates many products with prices at once (see [`SeedCatalog`] for the mix).
    pub fn seed_catalog(&self, spec: &SeedCatalog) -> Result<SeedReport, ControlError> {
        control::seed_catalog(&self.app, spec)
    }

    /// Deletes a price as the Dashboard can (emits `price.deleted`).
    pub fn delete_price(&self, price: &str) -> Result<serde_json::Value, ControlError> {
        control::delete_price(&self.app, price)
    }

    /// Every event of both modes with its delivery attempts, oldest first; `kind` filters by
    /// type (`product.*` patterns allowed).
    pub fn events(&self, kind: Option<&str>) -> Vec<EventSummary> {
        control::event_summaries(&self.app, kind)
    }

    /// Delivers an event once more (a duplicate, as at-least-once delivery may produce).
    pub async fn resend_event(&self, id: &str) -> Result<DeliveryAttempt, ControlError> {
        control::resend_event(&self.app, id).await
    }

    /// Delivers events one after the other in the given order (one attempt each).
    pub async fn deliver_events(&self, ids: &[&str]) -> Result<Vec<DeliveryAttempt>, ControlError> {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        control::deliver_events(&self.app, &ids).await
    }

    /// Completes an OAuth authorization without a browser; returns the redirect URL (with
    /// `code` and `state`, or `error=access_denied` when denied).
    pub fn authorize_oauth(&self, req: OAuthAuthorize) -> Result<String, ControlError> {
        control::authorize_oauth(&self.app, req)
    }

    /// Follows an account link without a browser, submitting Stripe's test identity and bank
    /// account with `outcome`; returns where the browser would be redirected.
    pub fn follow_account_link(
        &self,
        url: &str,
        outcome: VerificationOutcome,
    ) -> Result<FollowResult, ControlError> {
        control::follow_account_link(&self.app, url, outcome)
    }

    /// Leaves an account link's page without finishing, as a person pressing "Return to the
    /// platform" does; returns where the browser goes (the link's `return_url`).
    pub fn leave_account_link(&self, url: &str) -> Result<String, ControlError> {
        onboarding::leave(&self.app, url)
            .ok_or_else(|| ControlError::NotFound(format!("no such account link: {url}")))
    }

    /// Moves the sandbox clock forward (expires links without waiting); returns the total
    /// offset in seconds.
    pub fn advance_clock(&self, by: Duration) -> i64 {
        control::advance_clock(&self.app, by)
    }

    /// Pays an open Checkout Session without a browser, as the hosted page would with these
    /// card details; a 3D Secure card waits in `requires_action` unless
    /// `payment.authenticate` answers at once.
    pub fn pay_checkout(
        &self,
        session: &str,
        payment: TestPayment,
    ) -> Result<PaymentResult, ControlError> {
        control::pay_checkout(&self.app, session, payment)
    }

    /// Applies a promotion code to an open Checkout Session (`allow_promotion_codes`) as the
    /// customer would in the hosted page's "Add promotion code" field, optionally with the
    /// email the customer typed; returns the session as the API shows it. A refused code is
    /// [`ControlError::Invalid`] with the page's message.
    pub fn apply_promotion_code(
        &self,
        session: &str,
        code: &str,
        email: Option<&str>,
    ) -> Result<serde_json::Value, ControlError> {
        control::apply_promotion_code(&self.app, session, code, email)
    }

    /// Completes or fails the 3D Secure step a session's payment waits in.
    pub fn authenticate_checkout(
        &self,
        session: &str,
        answer: Authenticate,
    ) -> Result<PaymentResult, ControlError> {
        control::authenticate_checkout(&self.app, session, answer)
    }

    /// Replaces a customer's saved card (and its subscriptions' default payment method), as
    /// the customer would in a billing portal; `4000 0000 0000 0341` makes every later charge
    /// fail. Returns the customer as the API shows it.
    pub fn set_customer_card(
        &self,
        customer: &str,
        card: &str,
    ) -> Result<serde_json::Value, ControlError> {
        control::set_customer_card(&self.app, customer, card)
    }

    /// What happens after the last retry of a failed renewal, for `account`'s subscriptions
    /// (`None`: the platform's). Stripe's default is to cancel.
    pub fn set_after_retries(
        &self,
        account: Option<&str>,
        after: AfterRetries,
    ) -> Result<(), ControlError> {
        control::set_after_retries(&self.app, account, after)
    }

    /// Makes the next payout of a connected account fail on its arrival date with a Stripe
    /// failure code (`account_closed`, `insufficient_funds`, `could_not_process`,
    /// `no_account`, `invalid_account_number`, ...; see [`PAYOUT_FAILURES`]).
    pub fn fail_next_payout(&self, account: &str, failure_code: &str) -> Result<(), ControlError> {
        control::fail_next_payout(&self.app, account, failure_code)
    }

    /// Has the cardholder's bank dispute a succeeded charge now, for its full amount (a partly
    /// refunded charge too), as Stripe's dispute test cards do right after paying: `reason` is
    /// `fraudulent`, `product_not_received` or `inquiry`. Returns the dispute as the API shows
    /// it (`charge.dispute.created`, and for a chargeback `charge.dispute.funds_withdrawn`).
    pub fn dispute_charge(
        &self,
        charge: &str,
        reason: &str,
    ) -> Result<serde_json::Value, ControlError> {
        control::dispute_charge(&self.app, charge, reason)
    }

    /// Has the issuer send an early fraud warning about a succeeded charge now
    /// (`radar.early_fraud_warning.created`); returns the warning as the API shows it.
    pub fn early_fraud_warning(&self, charge: &str) -> Result<serde_json::Value, ControlError> {
        control::warn_charge(&self.app, charge)
    }

    /// The receipt emails "sent" so far, oldest first.
    pub fn outbox(&self) -> Vec<SentEmail> {
        control::outbox(&self.app)
    }

    /// Stops the server, the deliveries and the state writer (which saves one last time).
    pub async fn shutdown(self) {
        let _ = self.tasks.stop.send(true);
        let handles =
            std::mem::take(&mut *self.tasks.handles.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.await;
        }
    }
}

/// Binds `config.listen`; with `keep_address` and port 0, the address of last time first.
async fn bind(
    config: &SandboxConfig,
    before: Option<SocketAddr>,
) -> anyhow::Result<tokio::net::TcpListener> {
    let reuse = before.filter(|b| {
        config.keep_address
            && config.state_file.is_some()
            && config.listen.port() == 0
            && b.ip() == config.listen.ip()
    });
    if let Some(addr) = reuse {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => tracing::warn!(
                %addr,
                error = %e,
                "the Stripe sandbox's address of last time is taken: listening on another port; \
                 links it gave out before (checkout pages, invoices) point at the old one"
            ),
        }
    }
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the Stripe sandbox to {}", config.listen))
}

/// Runs the sandbox alone until `stop` resolves: prints its address and keys, and delivers
/// webhooks to `webhook` (URL and signing secret) if given. What `stripe-sandbox` and
/// `chatpay stripe-sandbox` run.
pub async fn serve_until(
    config: SandboxConfig,
    webhook: Option<(String, String)>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(config).await?;
    if let Some((url, secret)) = webhook {
        sandbox.set_webhook_endpoint(&url, &secret);
    }
    let c = sandbox.config().clone();
    // A closed stdout (`| head -1`) must not stop the sandbox: what it prints is only news.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "Stripe sandbox at {}", sandbox.base_url());
        let _ = writeln!(
            out,
            "  test key: {}   live key: {}   connect client id: {}",
            c.test_secret_key, c.live_secret_key, c.connect_client_id
        );
        let _ = out.flush();
    }
    stop.await;
    sandbox.shutdown().await;
    Ok(())
}
