//! Everything chatpay asks of Stripe, behind one trait. Module map:
//!
//! * [`Gateway`] (here): the operations (accounts, account links, OAuth, catalog reads, selling,
//!   subscriptions, the balance and payouts) as plain values.
//! * [`client`]: the real implementation on async-stripe 1.0, against api.stripe.com or any base
//!   URL (the built-in sandbox in development and tests). Every POST carries an idempotency key
//!   derived from the operation; 429, 5xx and connection errors are retried with backoff and
//!   jitter within a bound; every call has a timeout. Stripe's OAuth endpoints, which
//!   async-stripe does not cover, go through `chatpay-http-client`.
//! * `billing` (private): subscriptions, invoices, the balance and payouts, from Stripe's objects
//!   to chatpay's plain values.
//! * `plans` (private): the billing portal's configuration and sessions, and plan changes
//!   (the invoice preview, a price updated now, a subscription schedule for the period's end).
//! * `pooled` (private): async-stripe's requests sent over one pooled hyper client.
//! * [`webhook`]: signature verification over the raw body and the event envelope.
//!
//! Types from async-stripe stay inside this crate; the rest of chatpay sees plain values. The
//! Stripe stand-in used in development and tests is its own crate, `stripe-sandbox`, which
//! shares no code with this one.

mod billing;
pub mod client;
mod plans;
mod pooled;
pub mod webhook;

use async_trait::async_trait;

use chatpay_core::account::AccountSnapshot;
use chatpay_core::billing::{Balance, Payout, Subscription};
use chatpay_core::catalog::{
    CatalogProduct, CodeInfo, NewCode, NewProduct, PriceData, ProductData, ProductEdit,
};
use chatpay_core::domain::Mode;
use chatpay_core::flows::{LinkKind, NewAccount};
use chatpay_core::orders::{RefundInfo, StripeOrderRead};

/// One page of a cursor-paged list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// Objects per page when listing (Stripe's maximum).
pub const PAGE_SIZE: i64 = 100;

/// A link to Stripe's hosted onboarding (single use, short-lived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLink {
    pub url: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// Stripe answered with an error (after retries, if it was retryable).
    #[error("Stripe error {status} ({kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Stripe {
        status: u16,
        kind: String,
        code: Option<String>,
        message: String,
    },
    /// Stripe could not be reached (after retries).
    #[error("Stripe unreachable: {0}")]
    Unreachable(String),
    /// This server is not configured for the operation (a missing key).
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// Stripe's answer did not parse.
    #[error("unexpected answer from Stripe: {0}")]
    Protocol(String),
}

impl GatewayError {
    /// Safe to show a user: no keys, no internals.
    pub fn user_message(&self) -> String {
        match self {
            GatewayError::Stripe { message, .. } => message.clone(),
            GatewayError::Unreachable(_) => "Stripe didn't answer in time".to_owned(),
            GatewayError::NotConfigured(what) => format!("this server isn't set up for {what}"),
            GatewayError::Protocol(_) => "Stripe sent an answer I couldn't read".to_owned(),
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            GatewayError::Stripe { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// What chatpay asks of Stripe. `key` arguments are idempotency keys derived from the operation,
/// so a retry (by the gateway, or after a crash) never acts twice.
#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    async fn create_account(
        &self,
        mode: Mode,
        new: &NewAccount,
        key: &str,
    ) -> Result<AccountSnapshot, GatewayError>;

    async fn retrieve_account(
        &self,
        mode: Mode,
        account: &str,
    ) -> Result<AccountSnapshot, GatewayError>;

    async fn create_account_link(
        &self,
        mode: Mode,
        account: &str,
        kind: LinkKind,
        refresh_url: &str,
        return_url: &str,
        key: &str,
    ) -> Result<IssuedLink, GatewayError>;

    /// Whether a secret key for `mode` is configured (the built-in sandbox has both).
    fn has_key(&self, mode: Mode) -> bool;

    /// Stripe's OAuth authorize URL up to `client_id=…`, if OAuth is configured.
    fn oauth_authorize_base(&self) -> Option<String>;

    /// Where a person manages the connected account's products in `mode`: Stripe's Dashboard
    /// (the account owner signs in there), or the sandbox's products page.
    fn dashboard_url(&self, mode: Mode, account: &str) -> String;

    /// Exchanges an OAuth authorization code for the connected account's id.
    async fn exchange_oauth_code(&self, mode: Mode, code: &str) -> Result<String, GatewayError>;

    /// Revokes chatpay's access to an OAuth-connected account.
    async fn deauthorize(&self, mode: Mode, account: &str) -> Result<(), GatewayError>;

    /// A page of the connected account's products, after `starting_after`.
    async fn list_products(
        &self,
        mode: Mode,
        account: &str,
        starting_after: Option<&str>,
    ) -> Result<Page<ProductData>, GatewayError>;

    /// A page of the connected account's prices, after `starting_after`.
    async fn list_prices(
        &self,
        mode: Mode,
        account: &str,
        starting_after: Option<&str>,
    ) -> Result<Page<PriceData>, GatewayError>;

    /// One product with all its prices; `None` if it no longer exists.
    async fn product_with_prices(
        &self,
        mode: Mode,
        account: &str,
        product: &str,
    ) -> Result<Option<CatalogProduct>, GatewayError>;

    /// Creates a product and its prices on the connected account: the product with its first
    /// price as the default (one request), then each other price. Every request's idempotency
    /// key is `key` with a suffix of its own, so a retry (or the same call after a crash)
    /// creates nothing twice. Answers the product's id.
    async fn create_product(
        &self,
        mode: Mode,
        account: &str,
        product: &NewProduct,
        key: &str,
    ) -> Result<String, GatewayError>;

    /// Changes a product as confirmed: a new default price (the old one archived), a new name
    /// or description, archived or restored. Keys as for `create_product`.
    async fn change_product(
        &self,
        mode: Mode,
        account: &str,
        product: &str,
        edit: &ProductEdit,
        key: &str,
    ) -> Result<(), GatewayError>;

    /// Creates a coupon and its promotion code (keys `{key}:coupon`, `{key}:code`).
    async fn create_code(
        &self,
        mode: Mode,
        account: &str,
        code: &NewCode,
        key: &str,
    ) -> Result<CodeInfo, GatewayError>;

    /// The account's promotion codes (the first 100), newest first; only those called `code`
    /// (any case) when given.
    async fn list_codes(
        &self,
        mode: Mode,
        account: &str,
        code: Option<&str>,
    ) -> Result<Vec<CodeInfo>, GatewayError>;

    /// Sets a promotion code's `active`.
    async fn set_code_active(
        &self,
        mode: Mode,
        account: &str,
        promotion_code: &str,
        active: bool,
        key: &str,
    ) -> Result<(), GatewayError>;

    /// Creates a Checkout Session on the connected account (a direct charge).
    async fn create_checkout_session(
        &self,
        mode: Mode,
        account: &str,
        request: &CheckoutRequest,
        key: &str,
    ) -> Result<CreatedSession, GatewayError>;

    /// Everything Stripe holds about an order's checkout now: the session, its PaymentIntent,
    /// the charge with its balance transaction, the refunds, the invoice.
    async fn read_order(
        &self,
        mode: Mode,
        account: &str,
        session: &str,
    ) -> Result<StripeOrderRead, GatewayError>;

    /// The chatpay order a PaymentIntent was created for (its `chatpay_order` metadata).
    async fn payment_intent_order(
        &self,
        mode: Mode,
        account: &str,
        payment_intent: &str,
    ) -> Result<Option<String>, GatewayError>;

    /// Refunds `amount` (everything left when `None`) of a PaymentIntent.
    async fn create_refund(
        &self,
        mode: Mode,
        account: &str,
        refund: &RefundRequest,
        key: &str,
    ) -> Result<RefundInfo, GatewayError>;

    /// Sends the charge's receipt again (Stripe e-mails it when `receipt_email` is set anew).
    async fn resend_receipt(
        &self,
        mode: Mode,
        account: &str,
        charge: &str,
        email: &str,
        key: &str,
    ) -> Result<(), GatewayError>;

    /// Accepts a dispute (`evidence` empty: Stripe's close) or submits evidence for it
    /// (Stripe's text evidence fields by name); answers the dispute as Stripe holds it after.
    async fn respond_to_dispute(
        &self,
        mode: Mode,
        account: &str,
        dispute: &str,
        evidence: &std::collections::BTreeMap<String, String>,
        key: &str,
    ) -> Result<chatpay_core::disputes::DisputeInfo, GatewayError>;

    /// The newest early fraud warning on a charge, if the issuer sent one.
    async fn fraud_warning(
        &self,
        mode: Mode,
        account: &str,
        charge: &str,
    ) -> Result<Option<chatpay_core::disputes::FraudWarningInfo>, GatewayError>;

    /// A subscription with its invoices (newest first) as Stripe holds them now; `None` if
    /// Stripe does not know it.
    async fn read_subscription(
        &self,
        mode: Mode,
        account: &str,
        subscription: &str,
    ) -> Result<Option<Subscription>, GatewayError>;

    /// Cancels now, or at the current period's end (`at_period_end`); `resume` takes a
    /// scheduled cancellation back.
    async fn change_subscription(
        &self,
        mode: Mode,
        account: &str,
        subscription: &str,
        change: SubscriptionChange,
        key: &str,
    ) -> Result<(), GatewayError>;

    /// Creates a billing portal configuration on the account from `config`; answers its id.
    async fn create_portal_configuration(
        &self,
        mode: Mode,
        account: &str,
        config: &chatpay_core::plans::PortalConfig,
        key: &str,
    ) -> Result<String, GatewayError>;

    /// Creates a billing portal session for `customer` with `configuration`; answers its URL.
    async fn create_portal_session(
        &self,
        mode: Mode,
        account: &str,
        customer: &str,
        configuration: &str,
        return_url: Option<&str>,
        key: &str,
    ) -> Result<String, GatewayError>;

    /// What a plan change made now would charge (Stripe's invoice preview, prorated from
    /// `proration_date`).
    async fn preview_plan_change(
        &self,
        mode: Mode,
        account: &str,
        change: &chatpay_core::plans::PlanChange,
        proration_date: i64,
    ) -> Result<chatpay_core::plans::PlanPreview, GatewayError>;

    /// Makes a plan change: now (prorated from `proration_date`, invoiced at once) or at the
    /// period's end (a subscription schedule). Keys derive from `key`.
    async fn change_plan(
        &self,
        mode: Mode,
        account: &str,
        change: &chatpay_core::plans::PlanChange,
        proration_date: Option<i64>,
        key: &str,
    ) -> Result<(), GatewayError>;

    /// The account's balance, available and pending, per currency.
    async fn balance(&self, mode: Mode, account: &str) -> Result<Balance, GatewayError>;

    /// The account's payouts, newest first (at most `limit`).
    async fn payouts(
        &self,
        mode: Mode,
        account: &str,
        limit: i64,
    ) -> Result<Vec<Payout>, GatewayError>;

    /// One payout with the charges it carries; `None` if Stripe does not know it.
    async fn payout(
        &self,
        mode: Mode,
        account: &str,
        payout: &str,
    ) -> Result<Option<Payout>, GatewayError>;
}

pub use chatpay_core::billing::SubscriptionChange;

/// A checkout to create: one-time prices and quantities, for one of chatpay's orders.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckoutRequest {
    pub order_id: String,
    pub lines: Vec<(String, i64)>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub customer_email: Option<String>,
    /// The platform's fee, in the order's minor unit (a one-time checkout).
    pub application_fee_amount: Option<i64>,
    /// A checkout with recurring prices: subscription mode.
    pub subscription: Option<SubscriptionCheckout>,
    /// A promotion code (`promo_…`) applied to the session (`discounts`); without one,
    /// customers may type a code on Stripe's page (`allow_promotion_codes`). Stripe takes one
    /// or the other, never both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_code: Option<String>,
}

/// How a subscription-mode checkout starts its subscription.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionCheckout {
    /// A free trial from the request (the price's own trial applies otherwise).
    pub trial_period_days: Option<u32>,
    /// The platform's fee on each invoice, in percent.
    pub application_fee_percent: Option<f64>,
}

/// A created Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedSession {
    pub id: String,
    pub url: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// What the session charges, discounts included (`None` in answers stored before it was
    /// kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_total: Option<i64>,
}

/// A refund to make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefundRequest {
    pub payment_intent: String,
    pub amount: Option<i64>,
    pub order_id: String,
}
