//! The guided flows as pure transitions: `(state, input) -> (state, effects)`.
//!
//! [`ConversationState::handle`] is the only entry. It reads nothing but its arguments and writes
//! nothing but `self`: saving, calling Stripe and pushing frames come back as [`Effect`] values that
//! `chat/` carries out. That is why a transcript replays the same way every time, and why a crash
//! loses nothing: the new state and the frames it emits are stored in one transaction, and a Stripe
//! call in flight is part of the state (with its idempotency key), so it is simply re-issued.
//!
//! One flow is active per conversation at most. Questions asked in the middle of a flow are
//! answered and the current step is shown again; `cancel` ends the flow and its cards go stale.

mod answers;
mod billing;
mod catalog;
mod codes;
mod connect;
mod context;
mod customers;
mod disputes;
mod golive;
mod metrics;
mod plans;
mod products;
mod selling;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::account::AccountSnapshot;
use crate::billing::{AccessChange, Payout, Subscription, SubscriptionChange};
use crate::cards::{Action, Card, CardKind, Fact, Field};
use crate::catalog::{CatalogProduct, CodeInfo, NewCode, NewProduct, ProductEdit, SyncReport};
use crate::domain::{
    BusinessType, ConversationId, Country, Email, Mode, Origin, StatementDescriptor,
};
use crate::evidence::Evidence;
use crate::intents::{Classification, Intent, Outcome, SlotValue, Slots};
use crate::orders::{Order, RefundInfo};

pub use answers::BACKEND_REQUIRED;
pub use billing::{PayoutAsk, PayoutsAnswer, SubscriptionAsk};
pub use catalog::{CatalogStep, wanted_product};
pub use connect::ConnectStep;
pub use context::Awaiting;
pub use golive::{CheckCode, CheckItem, LiveFacts, action_label, checklist};
pub use metrics::ExportOf;
pub use plans::{PlanOffer, PortalAnswer};
pub use selling::{ListAsk, OrderAsk, OrderRef, Period, period};

/// Every state a `flow` frame can carry, per flow (steps, then how a flow ends).
pub const FLOW_STATES: &[(&str, &str)] = &[
    ("stripe_connect", "choose_account"),
    ("stripe_connect", "connect_existing"),
    ("stripe_connect", "exchanging_code"),
    ("stripe_connect", "register"),
    ("stripe_connect", "business_profile"),
    ("stripe_connect", "creating_account"),
    ("stripe_connect", "onboarding"),
    ("stripe_connect", "verification_pending"),
    ("stripe_connect", "restricted"),
    ("stripe_connect", "rejected"),
    ("stripe_connect", "active"),
    ("stripe_connect", "cancelled"),
    ("stripe_connect", "disconnected"),
    ("catalog_sync", "syncing"),
    ("catalog_sync", "done"),
    ("catalog_sync", "failed"),
    ("go_live", "checking"),
    ("go_live", "not_ready"),
    ("go_live", "live"),
];

/// The guided flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    StripeConnect,
    CatalogSync,
    /// The go-live checklist (runs beside the other flows: it is one read, never a step).
    GoLive,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::StripeConnect => "stripe_connect",
            FlowKind::CatalogSync => "catalog_sync",
            FlowKind::GoLive => "go_live",
        }
    }
}

/// Where a flow was started from; all entries run the same flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    Chat,
    ProjectCreation,
    Integrations,
}

/// A Stripe connection as the flows see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub account: AccountSnapshot,
    pub origin: Origin,
}

/// Addresses the flows put in cards and Stripe calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// This server's public base URL, without a trailing slash.
    pub public: String,
    /// Stripe's OAuth authorize URL up to and including `client_id=…`, if OAuth is configured.
    pub oauth_authorize: Option<String>,
}

impl Links {
    pub fn onboarding_return(&self, conversation: &ConversationId, nonce: &str) -> String {
        format!(
            "{}/v1/stripe/onboarding/return?conversation={conversation}&nonce={nonce}",
            self.public
        )
    }

    pub fn onboarding_refresh(&self, conversation: &ConversationId, nonce: &str) -> String {
        format!(
            "{}/v1/stripe/onboarding/refresh?conversation={conversation}&nonce={nonce}",
            self.public
        )
    }

    pub fn oauth_redirect(&self) -> String {
        format!("{}/v1/stripe/oauth/callback", self.public)
    }

    pub fn oauth_url(&self, conversation: &ConversationId, nonce: &str) -> Option<String> {
        self.oauth_authorize.as_ref().map(|base| {
            let redirect: String =
                form_urlencoded::byte_serialize(self.oauth_redirect().as_bytes()).collect();
            format!(
                "{base}&response_type=code&scope=read_write&state={conversation}.{nonce}&redirect_uri={redirect}"
            )
        })
    }
}

/// Everything a transition may read besides the state itself.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub conversation: &'a ConversationId,
    pub backend: bool,
    /// The mode this input is about: the working mode for what the person does (the project's
    /// mode, or the mode being set up, see `ConversationState::setup`), the event's mode for a
    /// Stripe event, the mode a call was asked in for its result.
    pub mode: Mode,
    /// The project's connection in `mode`.
    pub connection: Option<&'a Connection>,
    /// The mode the project takes payments in (`projects.mode`).
    pub project_mode: Mode,
    /// The project's connection in the other mode (for switching the working mode mid-turn).
    pub other_connection: Option<&'a Connection>,
    /// Milliseconds since the Unix epoch, UTC.
    pub now_ms: i64,
    pub links: &'a Links,
    /// Button labels of intents, from the intent files.
    pub labels: &'a BTreeMap<String, String>,
    /// A fresh random token for this input (nonces for links); inputs, not side effects.
    pub fresh: &'a str,
    /// Who this input answers (a `say` or `click`, or the question a call's result answers),
    /// for answers that come later with a call's result.
    pub asked: Option<&'a Asked>,
}

/// Who asked for an answer that comes back with a call's result: the client frame, and the
/// intent its `say` matched. The answer's frames carry both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asked {
    pub reply_to: String,
    #[serde(default)]
    pub intent: Option<(String, f32)>,
}

/// What happens to a conversation.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    Say(&'a Classification),
    Click {
        card: &'a str,
        action: &'a str,
        values: &'a BTreeMap<String, String>,
    },
    Outside(Outside),
    /// A Stripe call finished.
    Done {
        op: u64,
        result: Result<CallOutput, CallError>,
    },
}

/// Things that happen outside the chat.
#[derive(Debug, Clone, PartialEq)]
pub enum Outside {
    /// Start (or show) the Stripe connection flow from the project screens.
    StartConnect(Entry),
    /// Stripe says the account changed (a webhook); the fresh account is re-read first.
    AccountChanged {
        account: String,
        /// The event's account as chatpay keeps it, when the payload could be read: if it equals
        /// the connection's and no read of the account runs, there is nothing to read.
        evidence: Option<Box<AccountSnapshot>>,
    },
    /// The user revoked chatpay's access to their account in Stripe.
    Deauthorized { account: String },
    /// The browser came back from Stripe's onboarding page.
    OnboardingReturned { nonce: String },
    /// Someone opened an onboarding link's refresh URL (the link expired or was used): ask
    /// Stripe for a new one for the account that link was for, if it still needs one.
    RefreshLink { nonce: String },
    /// Start (or show) a catalog sync from the Integrations panel.
    StartSync,
    /// Stripe says a product or one of its prices changed.
    CatalogChanged { product: String },
    /// The browser came back from Stripe's OAuth page.
    OauthReturned {
        nonce: String,
        result: Result<String, String>,
    },
    /// Stripe says something about an order changed (a checkout, payment, charge, refund or
    /// invoice event); `event` is the webhook event to mark applied with the order's change.
    OrderChanged {
        order: OrderRef,
        event: Option<String>,
        /// What the event's object says, when the server could read it: a re-read is skipped
        /// if the stored order already shows all of it.
        evidence: Option<Evidence>,
        /// The stored order, when the server looked it up for the evidence (the conversation
        /// then decides without asking for a read).
        known: Option<Box<Order>>,
    },
    /// Stripe says a subscription (or one of its invoices) changed; it is re-read.
    SubscriptionChanged {
        subscription: String,
        event: Option<String>,
        /// Stripe says the free trial ends soon (`customer.subscription.trial_will_end`, three
        /// days before): told once the read shows it still trialing.
        trial_ending: bool,
    },
    /// Stripe says a payout changed; it is re-read.
    PayoutChanged {
        payout: String,
        event: Option<String>,
    },
    /// Switch the project to live mode once the checklist passes (`POST …/mode`).
    GoLive(Entry),
    /// Switch the project (or the conversation setting up live) back to test mode.
    BackToTest(Entry),
}

/// A call to Stripe that a transition asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    CreateAccount(NewAccount),
    RetrieveAccount {
        account: String,
    },
    CreateAccountLink {
        account: String,
        kind: LinkKind,
        refresh_url: String,
        return_url: String,
    },
    /// A new onboarding link for a refresh URL's visit (see `Outside::RefreshLink`).
    RefreshLink {
        nonce: String,
        account: String,
        kind: LinkKind,
        refresh_url: String,
        return_url: String,
    },
    ExchangeOauthCode {
        code: String,
    },
    Deauthorize {
        account: String,
    },
    /// Sync the catalog from Stripe (continues an interrupted run).
    SyncCatalog,
    /// Re-read one product and its prices after Stripe said it changed.
    RefreshProduct {
        product: String,
    },
    /// Read the stored catalog (for an answer), the named product first.
    ReadCatalog {
        wanted: Option<String>,
        /// Someone asked for a link to sell with ("give me a buy link for the yoga class").
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        links: bool,
    },
    /// Re-read an order's objects from Stripe; answers the stored order and its next version.
    RefreshOrder {
        order: OrderRef,
        /// The webhook events this read applies.
        events: Vec<String>,
        #[serde(default)]
        attempt: u32,
        /// One of its events is an early fraud warning: read the charge's warnings too.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        warnings: bool,
    },
    /// Read one stored order.
    FindOrder {
        order: OrderRef,
        ask: OrderAsk,
    },
    /// Read the stored orders of a period, newest first.
    ListOrders {
        period: Period,
        ask: ListAsk,
    },
    CreateRefund {
        order: String,
        number: i64,
        payment_intent: String,
        amount: i64,
        currency: String,
    },
    ResendReceipt {
        order: String,
        number: i64,
        charge: String,
        email: String,
    },
    /// Re-read a subscription and its invoices; answers the stored one and its version.
    RefreshSubscription {
        subscription: String,
        events: Vec<String>,
        #[serde(default)]
        attempt: u32,
        /// One of its events says the trial ends soon.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        trial_ending: bool,
    },
    /// Read the stored subscriptions (for an answer).
    ListSubscriptions {
        ask: SubscriptionAsk,
    },
    /// Cancel or resume a subscription on Stripe.
    ChangeSubscription {
        subscription: String,
        change: SubscriptionChange,
    },
    /// Read the balance, the payouts and when paid orders' money becomes available.
    ReadPayouts {
        ask: PayoutAsk,
    },
    /// Re-read a payout after Stripe said it changed.
    RefreshPayout {
        payout: String,
        events: Vec<String>,
    },
    /// Gather what the go-live checklist needs, in live mode: the live account re-read from
    /// Stripe, the live catalog, the webhook ledger, the configured keys.
    CheckLive,
    /// Copy the test catalog to live mode (going live): every sellable test product with its
    /// prices, and every usable test discount code, made on the live account unless it is there
    /// already; then the live catalog is synced. Answers `CallOutput::CatalogCopied`.
    CopyCatalog,
    /// Create a product and its prices on the connected account (the builder clicked Create),
    /// then store it in the catalog; answers `CallOutput::ProductWritten`.
    CreateProduct {
        product: NewProduct,
        /// The products of the same list still to make, one after the other once this one
        /// is answered (each its own call, and so its own key).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        then: Vec<NewProduct>,
    },
    /// Find a product in the stored catalog by name, with who is buying it (open checkouts,
    /// active subscriptions), to confirm `edit`; answers `CallOutput::ProductFound`.
    FindProduct {
        wanted: String,
        edit: ProductEdit,
    },
    /// Change a product in Stripe as confirmed, then store it; answers `ProductWritten`.
    ChangeProduct {
        product: String,
        name: String,
        edit: ProductEdit,
    },
    /// Create a coupon and its promotion code (refused if an active code is already called
    /// that); answers `Codes` with the new one.
    CreateCode {
        code: NewCode,
    },
    /// The account's promotion codes (the one called `code`, if given); answers `Codes`.
    ListCodes {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// Turn off the active promotion code called `code`; answers `Codes` with it (empty: none).
    TurnOffCode {
        code: String,
    },
    /// Read the stored paid orders for an answer about customers (one customer's, with `email`).
    ListCustomers {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// The period "new customers" counts.
        new_in: Period,
    },
    /// Read every stored subscription, for the subscription figures of `period`; answers
    /// `Subscriptions`.
    SubscriptionMetrics {
        period: Period,
    },
    /// Where the project's CSV exports are, for a link; answers `ExportBase`.
    ExportLink {
        of: ExportOf,
        /// The period asked for (orders are filtered by it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
    },
    /// Accept an order's dispute (`evidence` empty) or submit evidence for it, on Stripe.
    RespondToDispute {
        order: String,
        number: i64,
        dispute: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        evidence: BTreeMap<String, String>,
    },
    /// Read the project's billing portal setting, or set how members cancel there (`set`);
    /// answers `CallOutput::Portal`.
    PortalSettings {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<crate::plans::CancelMode>,
    },
    /// A billing portal session for a subscriber (the configuration made or re-made first, if
    /// the catalog or the setting changed); answers `CallOutput::PortalLink`.
    PortalLink {
        email: String,
    },
    /// Find the subscriber's subscription and the plan asked for, check the change
    /// (`rules::plan_change`) and ask Stripe's invoice preview what it costs now; answers
    /// `CallOutput::PlanOffer`.
    PreviewPlanChange {
        email: String,
        wanted: crate::plans::PlanWanted,
    },
    /// Make a confirmed plan change (now, prorated from the preview's date, or at the period's
    /// end with a subscription schedule).
    ChangePlan {
        change: Box<crate::plans::PlanChange>,
        customer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proration_date: Option<i64>,
    },
}

impl Call {
    pub fn name(&self) -> &'static str {
        match self {
            Call::CreateAccount(_) => "create_account",
            Call::RetrieveAccount { .. } => "retrieve_account",
            Call::CreateAccountLink { .. } => "create_account_link",
            Call::RefreshLink { .. } => "refresh_link",
            Call::ExchangeOauthCode { .. } => "exchange_oauth_code",
            Call::Deauthorize { .. } => "deauthorize",
            Call::SyncCatalog => "sync_catalog",
            Call::RefreshProduct { .. } => "refresh_product",
            Call::ReadCatalog { .. } => "read_catalog",
            Call::RefreshOrder { .. } => "refresh_order",
            Call::FindOrder { .. } => "find_order",
            Call::ListOrders { .. } => "list_orders",
            Call::CreateRefund { .. } => "create_refund",
            Call::ResendReceipt { .. } => "resend_receipt",
            Call::RefreshSubscription { .. } => "refresh_subscription",
            Call::ListSubscriptions { .. } => "list_subscriptions",
            Call::ChangeSubscription { .. } => "change_subscription",
            Call::ReadPayouts { .. } => "read_payouts",
            Call::RefreshPayout { .. } => "refresh_payout",
            Call::CheckLive => "check_live",
            Call::CopyCatalog => "copy_catalog",
            Call::CreateProduct { .. } => "create_product",
            Call::FindProduct { .. } => "find_product",
            Call::ChangeProduct { .. } => "change_product",
            Call::CreateCode { .. } => "create_code",
            Call::ListCodes { .. } => "list_codes",
            Call::TurnOffCode { .. } => "turn_off_code",
            Call::RespondToDispute { .. } => "respond_to_dispute",
            Call::ListCustomers { .. } => "list_customers",
            Call::PortalSettings { .. } => "portal_settings",
            Call::PortalLink { .. } => "portal_link",
            Call::PreviewPlanChange { .. } => "preview_plan_change",
            Call::ChangePlan { .. } => "change_plan",
            Call::SubscriptionMetrics { .. } => "subscription_metrics",
            Call::ExportLink { .. } => "export_link",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub legal_name: String,
    /// The customer-facing name (Stripe's `business_profile.name`); empty in a call stored
    /// before it existed, when the legal name stands in.
    #[serde(default)]
    pub business_name: String,
    pub country: Country,
    pub email: Email,
    pub business_type: BusinessType,
    pub statement_descriptor: StatementDescriptor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    AccountOnboarding,
    AccountUpdate,
}

/// What a finished call produced.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutput {
    Account(Box<AccountSnapshot>),
    Link {
        url: String,
        expires_at: i64,
    },
    Connected {
        account: String,
    },
    Done,
    Synced(Box<SyncReport>),
    /// A product before and after a refresh (`None`: it does not exist).
    ProductRefreshed {
        before: Option<Box<CatalogProduct>>,
        after: Option<Box<CatalogProduct>>,
    },
    Catalog(Box<CatalogAnswer>),
    /// An order as stored (at `version`) and as Stripe's fresh read makes it (`None`: not one
    /// of this project's orders).
    OrderRefreshed {
        before: Option<Box<Order>>,
        after: Option<Box<Order>>,
        version: i64,
    },
    OrderFound(Option<Box<Order>>),
    Orders(Vec<Order>),
    Refunded(RefundInfo),
    /// A subscription as stored (at `version`, 0: not yet) and as Stripe's fresh read makes it
    /// (`None`: Stripe doesn't know it, or it is not this project's).
    SubscriptionRefreshed {
        before: Option<Box<Subscription>>,
        after: Option<Box<Subscription>>,
        version: i64,
    },
    Subscriptions(Vec<Subscription>),
    Payouts(Box<PayoutsAnswer>),
    PayoutRefreshed(Option<Box<Payout>>),
    LiveChecked(Box<LiveFacts>),
    CatalogCopied(Box<CopyReport>),
    /// A product as Stripe now has it and the catalog stores it, with where its buy links
    /// start (`{public}/buy/{project}`).
    ProductWritten {
        product: Box<CatalogProduct>,
        buy_base: String,
    },
    ProductFound(Box<FoundProduct>),
    Codes(Vec<CodeInfo>),
    /// A dispute as Stripe answered a response to it.
    Dispute(Box<crate::disputes::DisputeInfo>),
    Portal(Box<PortalAnswer>),
    /// A billing portal session's URL.
    PortalLink {
        url: String,
    },
    PlanOffer(Box<PlanOffer>),
    /// Where the project's API paths start (`{public}/v1/projects/{project}`): its CSV exports
    /// are there.
    ExportBase(String),
}

/// What copying the test catalog to live made: each test item and the live item it became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyReport {
    pub items: Vec<CopiedItem>,
    /// Test items not copied, with why ("WELCOME15: expired").
    pub skipped: Vec<String>,
    /// Live products ready to sell after the copy (the live catalog synced).
    pub live_sellable: usize,
}

/// One test item and its live counterpart.
#[derive(Debug, Clone, PartialEq)]
pub struct CopiedItem {
    /// `product`, `price` or `code`.
    pub kind: &'static str,
    /// The product's name, the price as shown, or the code.
    pub name: String,
    pub test: String,
    pub live: String,
    /// Live mode had it already (same name): nothing was made for it.
    pub existed: bool,
}

/// A product looked up by name to be changed, with who is buying it now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoundProduct {
    pub product: Option<CatalogProduct>,
    /// Checkouts of it still open (they can still be paid).
    pub open_checkouts: usize,
    /// Active (or trialing, or past due) subscriptions to one of its prices.
    pub subscribers: usize,
}

/// What the stored catalog says, for an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogAnswer {
    /// Milliseconds; `None` if it was never synced.
    pub synced_at: Option<i64>,
    pub total: usize,
    pub sellable: usize,
    /// The products to show, by name (the matched one when something was asked for by name).
    pub shown: Vec<CatalogProduct>,
    pub wanted: Option<String>,
    /// The last sync's report.
    pub report: Option<SyncReport>,
    /// Where the project's buy links start (`{public}/buy/{project}`): a price's link is this,
    /// `/`, its id, and opens a fresh checkout.
    pub buy_base: Option<String>,
}

/// Why a call failed, after the gateway's retries.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// Safe to show to the user.
    pub message: String,
    /// Stripe's error code, if any.
    pub code: Option<String>,
}

/// What a transition asks the chat to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Reply(String),
    Card(Card),
    Flow {
        flow: FlowKind,
        state: String,
    },
    /// Call Stripe; the result comes back as `Input::Done { op, .. }`.
    Call {
        op: u64,
        call: Call,
    },
    /// Store the project's connection in `mode` (with this turn).
    SaveConnection {
        mode: Mode,
        connection: Box<Connection>,
    },
    /// The project has no connection in `mode` any more (with this turn).
    DropConnection {
        mode: Mode,
    },
    /// The project takes payments in `mode` from this turn on (the go-live switch, or back).
    SetMode(Mode),
    /// Store the order's next version (with this turn), if it is still at `expected_version`;
    /// otherwise the whole turn is refused and the read runs again.
    SaveOrder {
        order: Box<Order>,
        expected_version: i64,
    },
    /// Store the subscription's next version (0: its first), with the same rule as orders.
    SaveSubscription {
        subscription: Box<Subscription>,
        expected_version: i64,
    },
    /// A webhook event's effects are part of this turn.
    EventApplied {
        id: String,
        outcome: String,
    },
    /// Tell the builder's app (its app webhook, if it has one) that a customer's access
    /// changed, with this turn: the event exists exactly when the turn is stored.
    Notify(AccessChange),
}

/// Why an input was refused; becomes an `error` frame, nothing is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    StaleCard(String),
    NotFound(String),
    InvalidValues(BTreeMap<String, String>),
}

/// A card whose actions may still be clicked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveCard {
    pub id: String,
    pub kind: CardKind,
    pub actions: Vec<String>,
    pub owner: Owner,
}

/// What a live card belongs to, which decides what its actions do and when it goes stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
pub enum Owner {
    /// A step of the active flow.
    Flow { instance: u64 },
    /// The offer to connect Stripe.
    Offer,
    /// Pick one of several intents; the slots of the original utterance come along, and the
    /// fixed answers of data-only candidates.
    Clarify {
        slots: Slots,
        #[serde(default)]
        answers: BTreeMap<String, String>,
        /// The finer topic of each candidate that has one.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        topics: BTreeMap<String, String>,
    },
    /// Buttons that say an intent; repeatable.
    Help,
    /// The latest account status card (its fix action); repeatable while it is the latest.
    Status,
    /// Confirm disconnecting.
    Disconnect,
    /// Catalog buttons (show the catalog, sync again); repeatable.
    Catalog,
    /// Confirm a refund; one click acts.
    ConfirmRefund {
        order: String,
        number: i64,
        payment_intent: String,
        amount: i64,
        currency: String,
    },
    /// An order's card (refund, status); repeatable while it is the order's newest card.
    Order { number: i64 },
    /// Confirm cancelling (or resuming) a subscription; one click acts.
    ConfirmSubscription {
        subscription: String,
        customer: String,
    },
    /// The go-live checklist's fix buttons; repeatable while it is the newest checklist.
    GoLive,
    /// Confirm a new product (Create, Edit, Cancel); one click acts.
    ConfirmProduct { draft: NewProduct },
    /// Confirm several new products said in one list (Create, Cancel); one click makes each.
    ConfirmProducts { drafts: Vec<NewProduct> },
    /// The form that edits a new product before it is confirmed.
    EditProduct { draft: NewProduct },
    /// Confirm a change to a product (new price, name, description, archive, restore).
    ConfirmProductChange {
        product: String,
        name: String,
        edit: ProductEdit,
    },
    /// Confirm a new discount code; one click acts.
    ConfirmCode { code: NewCode },
    /// A dispute's card (accept, evidence) or an early fraud warning's (refund); repeatable
    /// while it is the order's newest dispute card.
    Dispute { number: i64 },
    /// Confirm accepting a dispute; one click acts.
    ConfirmDispute {
        order: String,
        number: i64,
        dispute: String,
    },
    /// The evidence form of a dispute; one submission acts.
    DisputeEvidence {
        order: String,
        number: i64,
        dispute: String,
    },
    /// Confirm a plan change (with the preview's proration date); one click acts.
    ConfirmPlanChange {
        change: Box<crate::plans::PlanChange>,
        customer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proration_date: Option<i64>,
    },
}

/// A Stripe call in flight; re-issued with the same idempotency key after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub op: u64,
    pub call: Call,
    pub purpose: Purpose,
    /// An answer's asker, whose frames the result's frames reply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<Asked>,
    /// Webhook events that arrived while this order re-read ran (applied by the next one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<String>,
    /// Read again when done: something changed while it ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
    /// For an order's re-read: the evidence of every event queued behind it, while each one
    /// brought some (`None` once one came without, and in states stored before evidence). The
    /// read after it is spared when the order it stored shows all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_evidence: Option<Vec<Evidence>>,
    /// The mode the call runs in (`None` in states stored before modes were per call: the
    /// project's mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// Who waits for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The active flow (instance) continues with the result.
    Flow(u64),
    /// Re-read the account after Stripe said it changed.
    Refresh,
    /// A fix link for the status card.
    FixLink,
    /// Someone asked for the account's status: show it even if unchanged.
    Check,
    Disconnect,
    /// Catalog reads and refreshes outside a flow.
    Catalog,
    /// A read or action whose result answers someone's question (see `Pending::asked`).
    Answer,
    /// Order re-reads after Stripe events.
    Orders,
    /// Subscription and payout re-reads after Stripe events.
    Billing,
}

/// Where a flow is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub enum FlowStep {
    StripeConnect(ConnectStep),
    CatalogSync(CatalogStep),
}

impl FlowStep {
    pub fn name(&self) -> &'static str {
        match self {
            FlowStep::StripeConnect(s) => s.name(),
            FlowStep::CatalogSync(s) => s.name(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFlow {
    pub instance: u64,
    pub kind: FlowKind,
    pub step: FlowStep,
    /// The current step's card, shown again after a digression.
    #[serde(default)]
    pub card: Option<Card>,
    /// The mode the flow works in (`None` in states stored before: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// Everything a conversation remembers between turns (stored as JSON with each turn).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    #[serde(default)]
    next_op: u64,
    #[serde(default)]
    next_flow: u64,
    #[serde(default)]
    pub flow: Option<ActiveFlow>,
    #[serde(default)]
    pub cards: Vec<LiveCard>,
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// The newest account read applied (reads are applied in the order they were asked for),
    /// per mode: test, then live.
    #[serde(default)]
    last_account_op: u64,
    #[serde(default)]
    last_live_account_op: u64,
    /// The mode this conversation is setting up while the project still takes payments in
    /// test mode (connecting a live account, syncing the live catalog): what people do in the
    /// chat works in it. Entered from the go-live checklist, left by "back to test" or by the
    /// switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Mode>,
    /// What the last status card showed (state, reason, what was due), so only changes are
    /// pushed.
    #[serde(default)]
    pub last_shown: Option<String>,
    /// Payouts whose end (paid, failed, canceled) was told, newest last: each is told once,
    /// however many of its events arrive (at most `TOLD_PAYOUTS` kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told_payouts: Vec<String>,
    /// A question asked in words ("Which order should I refund?") and what would answer it;
    /// the next utterance either answers it or is a new request (see `context.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Awaiting>,
    /// The project's currency, asked once when a price was said without one ("Yoga class for
    /// 25"): later prices said without a currency use it (a card shows it; Edit changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<crate::domain::Currency>,
}

/// Collects a transition's effects.
pub(crate) struct Turn<'s, 'f> {
    pub state: &'s mut ConversationState,
    pub facts: &'f Facts<'f>,
    pub effects: Vec<Effect>,
    /// The mode the turn works in (starts as `facts.mode`; entering or leaving live setup, or
    /// the switch, moves it).
    pub mode: Mode,
    /// The project's connection in `mode` as this turn leaves it (saved or dropped by its
    /// effects).
    pub connection: Option<Connection>,
    /// The connection in the other mode.
    pub other: Option<Connection>,
    /// The project's mode as this turn leaves it.
    pub project_mode: Mode,
    /// Cards made in this turn (part of their ids).
    cards_made: u32,
    /// Who asked, for calls whose results answer them.
    asked: Option<Asked>,
}

impl ConversationState {
    /// Applies one input. On refusal nothing changed.
    pub fn handle(&mut self, input: Input<'_>, facts: &Facts<'_>) -> Result<Vec<Effect>, Refusal> {
        let mut work = self.clone();
        let mut turn = Turn {
            state: &mut work,
            facts,
            effects: Vec::new(),
            mode: facts.mode,
            connection: facts.connection.cloned(),
            other: facts.other_connection.cloned(),
            project_mode: facts.project_mode,
            cards_made: 0,
            asked: facts.asked.cloned(),
        };
        match input {
            Input::Say(c) => turn.say(c),
            Input::Click {
                card,
                action,
                values,
            } => turn.click(card, action, values)?,
            Input::Outside(o) => turn.outside(o),
            Input::Done { op, result } => turn.done(op, result),
        }
        let effects = turn.effects;
        *self = work;
        Ok(effects)
    }

    /// The name of the active flow's current step, if a flow is active.
    pub fn flow_state(&self) -> Option<(FlowKind, &'static str)> {
        self.flow.as_ref().map(|f| (f.kind, f.step.name()))
    }

    /// Calls to re-issue after a restart.
    pub fn pending_calls(&self) -> impl Iterator<Item = (u64, &Call)> {
        self.pending.iter().map(|p| (p.op, &p.call))
    }

    /// Who waits for the answer of call `op`, if it answers a question.
    pub fn asked_by(&self, op: u64) -> Option<&Asked> {
        self.pending
            .iter()
            .find(|p| p.op == op)
            .and_then(|p| p.asked.as_ref())
    }

    /// Whether a call started by client frame `id` is still to answer it.
    pub fn answers_pending_for(&self, id: &str) -> bool {
        self.pending
            .iter()
            .any(|p| p.asked.as_ref().is_some_and(|a| a.reply_to == id))
    }
}

impl Turn<'_, '_> {
    /// The button label of an intent.
    fn label(&self, intent: &str) -> String {
        self.facts
            .labels
            .get(intent)
            .cloned()
            .unwrap_or_else(|| intent.replace('_', " "))
    }

    /// The project no longer has a connection.
    pub(crate) fn drop_connection(&mut self) {
        self.connection = None;
        self.effects
            .push(Effect::DropConnection { mode: self.mode });
    }

    pub(crate) fn reply(&mut self, text: impl Into<String>) {
        self.effects.push(Effect::Reply(text.into()));
    }

    /// A card id unique to this conversation: the conversation, this input's fresh token and
    /// a count within the turn. (No counter in the state: a turn that only answers leaves the
    /// stored state as it was.)
    pub(crate) fn card_id(&mut self) -> String {
        self.cards_made += 1;
        let conv = self.facts.conversation.as_str();
        let tail = conv.strip_prefix("cnv_").unwrap_or(conv);
        format!("crd_{tail}_{}{}", self.facts.fresh, self.cards_made)
    }

    /// Builds a card in the project's mode.
    pub(crate) fn new_card(&mut self, kind: CardKind, title: &str, body: String) -> Card {
        Card {
            id: self.card_id(),
            kind,
            title: title.to_owned(),
            body,
            mode: self.mode,
            facts: Vec::new(),
            fields: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Shows a card whose actions stay clickable until `owner` says otherwise.
    pub(crate) fn show(&mut self, card: Card, owner: Owner) {
        if !card.actions.iter().all(|a| a.url.is_some()) {
            self.state.cards.push(LiveCard {
                id: card.id.clone(),
                kind: card.kind,
                actions: card
                    .actions
                    .iter()
                    .filter(|a| a.url.is_none())
                    .map(|a| a.id.clone())
                    .collect(),
                owner,
            });
        }
        self.effects.push(Effect::Card(card));
    }

    /// Shows a card that is only information.
    pub(crate) fn show_info(&mut self, card: Card) {
        self.effects.push(Effect::Card(card));
    }

    pub(crate) fn flow_frame(&mut self, flow: FlowKind, state: &str) {
        self.effects.push(Effect::Flow {
            flow,
            state: state.to_owned(),
        });
    }

    /// Asks for a Stripe call and remembers it until it finishes.
    pub(crate) fn call(&mut self, call: Call, purpose: Purpose) -> u64 {
        self.state.next_op += 1;
        let op = self.state.next_op;
        let asked = if purpose == Purpose::Answer {
            self.asked.clone()
        } else {
            None
        };
        self.state.pending.push(Pending {
            op,
            call: call.clone(),
            purpose,
            asked,
            queued: Vec::new(),
            again: false,
            queued_evidence: None,
            mode: Some(self.mode),
        });
        self.effects.push(Effect::Call { op, call });
        op
    }

    /// Joins a Stripe event to the re-read of the same object already running, if one is
    /// (`same` picks it): it may have read Stripe before this event, so it reads again when it
    /// is done and that read applies the event. The joined call, or `None` when none runs.
    pub(crate) fn join_reread(
        &mut self,
        same: impl Fn(&Call) -> bool,
        event: Option<String>,
    ) -> Option<&mut Pending> {
        let p = self.state.pending.iter_mut().find(|p| same(&p.call))?;
        p.queued.extend(event);
        p.again = true;
        Some(p)
    }

    pub(crate) fn drop_cards(&mut self, keep: impl Fn(&LiveCard) -> bool) {
        self.state.cards.retain(keep);
    }

    fn say(&mut self, c: &Classification) {
        if self.answer_in_context(c) {
            return;
        }
        match &c.outcome {
            Outcome::Matched(m) => {
                if let Some(asked) = &mut self.asked {
                    asked.intent = Some((m.intent.to_string(), m.confidence));
                }
                // A regex rule's named captures ("how much is (?P<product>…)") are slots too.
                let mut slots = c.slots.clone();
                slots.extend(m.captures.iter().map(|(k, v)| (k.clone(), v.clone())));
                self.intent(&m.intent, m.topic.as_deref(), &slots, m.answer.as_deref())
            }
            Outcome::Suggest(cand) => {
                // One reading, not sure enough to act on: ask before doing anything.
                let label = self.label(&cand.intent);
                let mut card = self.new_card(
                    CardKind::Clarify,
                    &format!("Did you mean \"{label}\"?"),
                    "I think that's what you mean, but I'm not sure enough to go ahead. Pick it, \
                     or tell me in other words."
                        .to_owned(),
                );
                card.actions.push(Action::secondary(&cand.intent, &label));
                let answers = cand
                    .answer
                    .as_deref()
                    .map(|a| (cand.intent.to_string(), a.to_owned()))
                    .into_iter()
                    .collect();
                let topics = topics_of(std::slice::from_ref(cand));
                self.drop_cards(|c| !matches!(c.owner, Owner::Clarify { .. }));
                self.show(
                    card,
                    Owner::Clarify {
                        slots: with_captures(c, cand),
                        answers,
                        topics,
                    },
                );
            }
            Outcome::Clarify(candidates) => {
                let mut card = self.new_card(
                    CardKind::Clarify,
                    "Which one did you mean?",
                    "I can read that a few ways. Pick one:".to_owned(),
                );
                for cand in candidates {
                    let label = self.label(&cand.intent);
                    card.actions.push(Action::secondary(&cand.intent, &label));
                }
                let answers = candidates
                    .iter()
                    .filter_map(|c| Some((c.intent.to_string(), c.answer.as_deref()?.to_owned())))
                    .collect();
                self.show(
                    card,
                    Owner::Clarify {
                        slots: c.slots.clone(),
                        answers,
                        topics: topics_of(candidates),
                    },
                );
            }
            Outcome::Unsure(_) | Outcome::Nothing => {
                // Small talk and refusals are answered as such; they are not actions.
                let talk = c
                    .small_talk
                    .as_ref()
                    .and_then(|t| answers::small_talk(&t.kind, t.about.as_deref()));
                match talk {
                    Some((text, with_help)) => {
                        self.reply(text);
                        if with_help {
                            self.help_card();
                        }
                    }
                    None => {
                        self.reply(answers::FALLBACK);
                        self.help_card();
                    }
                }
                self.present_step();
            }
        }
    }

    /// Acts on an intent, by name; data-only intents answer their fixed text.
    fn intent(&mut self, name: &str, topic: Option<&str>, slots: &Slots, answer: Option<&str>) {
        let Some(intent) = Intent::parse(name) else {
            self.reply(answer.unwrap_or(answers::FALLBACK));
            self.present_step();
            return;
        };
        match intent {
            Intent::Cancel => self.cancel(),
            Intent::GoLive => self.start_go_live(Entry::Chat),
            Intent::BackToTest => self.back_to_test(Entry::Chat),
            Intent::AddPayments | Intent::ConnectStripe => self.offer_connect(),
            Intent::CreateStripeAccount => self.start_connect(Entry::Chat, true),
            Intent::DisconnectStripe => self.ask_disconnect(),
            Intent::SyncCatalog => self.start_sync(Entry::Chat),
            Intent::ShowCatalog => self.show_catalog(
                wanted_product(slots).map(str::to_owned),
                topic == Some("link"),
            ),
            Intent::Refund
                if !slots.contains_key("order_number")
                    && !slots.contains_key("order_ref")
                    && !slots
                        .get("payment_id")
                        .and_then(SlotValue::as_text)
                        .is_some_and(|p| p.starts_with("pi_")) =>
            {
                // "Which order should I refund?": the next "#1042" answers it.
                self.selling_intent(intent, topic, slots);
                self.await_answer(name, slots, &["order_number", "payment_id", "order_ref"]);
                self.present_step();
            }
            Intent::PaymentStatus | Intent::Refund | Intent::ReceiptsInvoices => {
                self.selling_intent(intent, topic, slots);
                self.present_step();
            }
            Intent::Subscriptions => {
                self.subscriptions_intent(topic, slots);
                self.present_step();
            }
            Intent::Customers if self.facts.backend && self.connection.is_some() => {
                self.customers_intent(slots);
                self.present_step();
            }
            Intent::SubscriptionMetrics => {
                self.metrics_intent(slots);
                self.present_step();
            }
            Intent::ExportData => {
                self.export_intent(slots);
                self.present_step();
            }
            Intent::Disputes if self.facts.backend && self.connection.is_some() => {
                self.disputes_intent();
                self.present_step();
            }
            Intent::PayoutStatus if self.payouts_intent(topic, slots) => self.present_step(),
            Intent::CustomerPortal => {
                self.portal_intent(topic, slots);
                self.present_step();
            }
            Intent::ChangePlan => {
                self.change_plan_intent(slots);
                self.present_step();
            }
            Intent::CreateProduct => {
                self.create_product_intent(slots);
                self.present_step();
            }
            Intent::DiscountCodes => {
                self.discount_intent(slots);
                self.present_step();
            }
            Intent::UpdateProduct => {
                self.update_product_intent(slots);
                self.present_step();
            }
            Intent::Help => {
                self.reply(answers::HELP_INTRO);
                self.help_card();
                self.present_step();
            }
            Intent::AccountStatus => {
                // At the account steps the status card is the step: no need to show it twice.
                if !self.account_status(topic) {
                    self.present_step();
                }
            }
            _ => {
                answers::answer(self, intent, topic, slots);
                self.present_step();
            }
        }
    }

    fn click(
        &mut self,
        card_id: &str,
        action: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        let Some(pos) = self.state.cards.iter().position(|c| c.id == card_id) else {
            return Err(Refusal::StaleCard(format!(
                "Card {card_id} is no longer active: its step is over, its flow was cancelled, or it belongs to another conversation."
            )));
        };
        let live = self.state.cards[pos].clone();
        if !live.actions.iter().any(|a| a == action) {
            return Err(Refusal::NotFound(format!(
                "Card {card_id} has no action {action:?}; its actions are {}.",
                live.actions.join(", ")
            )));
        }
        match &live.owner {
            Owner::Flow { instance } => {
                let current = self.state.flow.as_ref().map(|f| f.instance);
                if current != Some(*instance) {
                    self.state.cards.remove(pos);
                    return Err(Refusal::StaleCard(format!(
                        "Card {card_id} belongs to a flow that has ended."
                    )));
                }
                self.connect_click(action, values)?;
            }
            Owner::Offer => {
                self.drop_cards(|c| c.owner != Owner::Offer);
                match action {
                    "connect" => self.start_connect(Entry::Chat, false),
                    _ => self.reply("No problem. Say \"add payments\" whenever you're ready."),
                }
            }
            Owner::Clarify {
                slots,
                answers,
                topics,
            } => {
                let answer = answers.get(action).cloned();
                let topic = topics.get(action).cloned();
                let slots = slots.clone();
                self.state.cards.remove(pos);
                self.intent(action, topic.as_deref(), &slots, answer.as_deref());
            }
            Owner::Help => self.intent(action, None, &Slots::new(), None),
            Owner::Status => self.status_click(action),
            Owner::Catalog => self.catalog_click(action),
            Owner::ConfirmRefund { .. } => {
                let owner = live.owner.clone();
                self.state.cards.remove(pos);
                self.selling_click(&owner, action);
            }
            Owner::Order { .. } => {
                let owner = live.owner.clone();
                self.selling_click(&owner, action);
            }
            Owner::ConfirmSubscription { .. } => {
                let owner = live.owner.clone();
                self.state.cards.remove(pos);
                self.subscription_click(&owner, action);
            }
            Owner::Disconnect => {
                self.state.cards.remove(pos);
                self.disconnect_click(action);
            }
            Owner::GoLive => self.golive_click(action),
            Owner::ConfirmProduct { .. } | Owner::EditProduct { .. } => {
                let owner = live.owner.clone();
                self.product_click(&owner, action, values)?;
            }
            Owner::ConfirmProducts { drafts } => {
                let drafts = drafts.clone();
                self.state.cards.remove(pos);
                self.products_click(drafts, action);
            }
            Owner::ConfirmCode { .. } => {
                let owner = live.owner.clone();
                self.state.cards.remove(pos);
                self.code_click(&owner, action);
            }
            Owner::ConfirmProductChange { .. } => {
                let owner = live.owner.clone();
                self.state.cards.remove(pos);
                self.product_change_click(&owner, action);
            }
            Owner::Dispute { .. } => {
                let owner = live.owner.clone();
                self.dispute_click(&owner, action, values)?;
            }
            Owner::ConfirmPlanChange { .. } => {
                let owner = live.owner.clone();
                self.state.cards.remove(pos);
                self.plan_click(&owner, action);
            }
            Owner::ConfirmDispute { .. } | Owner::DisputeEvidence { .. } => {
                // Refused values leave the form open; anything else uses the card up.
                let owner = live.owner.clone();
                self.dispute_click(&owner, action, values)?;
                self.state.cards.retain(|c| c.id != live.id);
            }
        }
        Ok(())
    }

    /// Shows the current step of the active flow again (after a digression).
    pub(crate) fn present_step(&mut self) {
        if let Some(flow) = &self.state.flow
            && let Some(card) = flow.card.clone()
        {
            let (kind, step) = (flow.kind, flow.step.name());
            self.reply(format!(
                "Back to {}: we're at the {} step.",
                answers::flow_title(kind),
                step.replace('_', " ")
            ));
            self.flow_frame(kind, step);
            self.effects.push(Effect::Card(card));
        }
    }

    fn cancel(&mut self) {
        if self
            .state
            .flow
            .as_ref()
            .is_some_and(|f| f.kind == FlowKind::CatalogSync)
        {
            // Stopping a sync half-way would leave nothing different from letting it finish:
            // it changes nothing until everything is read, then swaps the catalog in at once.
            self.reply(
                "A sync can't be stopped part-way, and it doesn't need to be: nothing changes until it has read everything, then your catalog is replaced in one go. The result will appear here.",
            );
            self.present_step();
        } else if self.state.flow.is_some() {
            self.cancel_flow();
        } else {
            self.reply("There's nothing in progress to cancel.");
        }
    }

    /// Ends the active flow: its cards go stale and results it waited for no longer matter.
    pub(crate) fn cancel_flow(&mut self) {
        let Some(flow) = self.state.flow.take() else {
            return;
        };
        let instance = flow.instance;
        self.drop_cards(|c| c.owner != Owner::Flow { instance });
        self.state
            .pending
            .retain(|p| p.purpose != Purpose::Flow(instance));
        let what = answers::flow_title(flow.kind);
        self.reply(if self.connection.is_some() && flow.kind == FlowKind::StripeConnect {
            format!("Stopped {what}. Your Stripe account stays connected; ask \"is my account verified?\" any time.")
        } else {
            format!("Cancelled {what}. Nothing else changed; you can start again any time.")
        });
        self.flow_frame(flow.kind, "cancelled");
    }

    fn help_card(&mut self) {
        let mut card = self.new_card(
            CardKind::Help,
            "What I can do",
            "Pick one, or just tell me in your own words.".to_owned(),
        );
        for intent in [
            Intent::AddPayments,
            Intent::AccountStatus,
            Intent::TestMode,
            Intent::PayoutStatus,
            Intent::Refund,
            Intent::ReceiptsInvoices,
            Intent::GoLive,
        ] {
            let label = self.label(intent.name());
            card.actions.push(Action::secondary(intent.name(), &label));
        }
        // Only the newest help card stays clickable.
        self.drop_cards(|c| c.owner != Owner::Help);
        self.show(card, Owner::Help);
    }

    fn outside(&mut self, o: Outside) {
        match o {
            Outside::StartConnect(entry) => self.start_connect(entry, false),
            Outside::StartSync => self.start_sync(Entry::Integrations),
            Outside::CatalogChanged { product } => self.catalog_changed(product),
            Outside::OrderChanged {
                order,
                event,
                evidence,
                known,
            } => self.order_changed(order, event, evidence, known.as_deref()),
            Outside::SubscriptionChanged {
                subscription,
                event,
                trial_ending,
            } => self.subscription_changed(subscription, event, trial_ending),
            Outside::PayoutChanged { payout, event } => self.payout_changed(payout, event),
            Outside::GoLive(entry) => self.start_go_live(entry),
            Outside::BackToTest(entry) => self.back_to_test(entry),
            other => self.connect_outside(other),
        }
    }

    fn done(&mut self, op: u64, result: Result<CallOutput, CallError>) {
        let Some(pos) = self.state.pending.iter().position(|p| p.op == op) else {
            // Cancelled meanwhile, or already handled before a restart.
            return;
        };
        let pending = self.state.pending.remove(pos);
        match pending.call {
            Call::SyncCatalog | Call::RefreshProduct { .. } | Call::ReadCatalog { .. } => {
                self.catalog_done(pending, result)
            }
            Call::RefreshOrder { .. }
            | Call::FindOrder { .. }
            | Call::ListOrders { .. }
            | Call::CreateRefund { .. }
            | Call::ResendReceipt { .. } => self.selling_done(pending, result),
            Call::RefreshSubscription { .. }
            | Call::ListSubscriptions { .. }
            | Call::ChangeSubscription { .. }
            | Call::ReadPayouts { .. }
            | Call::RefreshPayout { .. } => self.billing_done(pending, result),
            Call::CheckLive => self.golive_done(result),
            Call::CopyCatalog => self.copy_done(result),
            Call::CreateProduct { .. } | Call::FindProduct { .. } | Call::ChangeProduct { .. } => {
                self.product_done(pending, result)
            }
            Call::CreateCode { .. } | Call::ListCodes { .. } | Call::TurnOffCode { .. } => {
                self.code_done(pending, result)
            }
            Call::RespondToDispute { .. } => self.dispute_done(pending, result),
            Call::ListCustomers { .. } => self.customers_done(pending, result),
            Call::PortalSettings { .. }
            | Call::PortalLink { .. }
            | Call::PreviewPlanChange { .. }
            | Call::ChangePlan { .. } => self.plans_done(pending, result),
            Call::SubscriptionMetrics { .. } | Call::ExportLink { .. } => {
                self.metrics_done(pending, result)
            }
            _ => self.connect_done(pending, result),
        }
    }

    /// Applies a fresh read of the account if it is newer than the last one applied; pushes a
    /// status card when the state changed. Returns false for a stale read.
    pub(crate) fn apply_account(
        &mut self,
        op: u64,
        account: AccountSnapshot,
        origin: Origin,
    ) -> bool {
        let last = if self.mode.is_live() {
            &mut self.state.last_live_account_op
        } else {
            &mut self.state.last_account_op
        };
        if op <= *last {
            return false;
        }
        *last = op;
        let connection = Connection { account, origin };
        self.connection = Some(connection.clone());
        self.effects.push(Effect::SaveConnection {
            mode: self.mode,
            connection: Box::new(connection),
        });
        true
    }

    pub(crate) fn facts_card(
        &mut self,
        kind: CardKind,
        title: &str,
        body: String,
        facts: Vec<Fact>,
    ) -> Card {
        let mut card = self.new_card(kind, title, body);
        card.facts = facts;
        card
    }

    pub(crate) fn form(
        &mut self,
        kind: CardKind,
        title: &str,
        body: String,
        fields: Vec<Field>,
    ) -> Card {
        let mut card = self.new_card(kind, title, body);
        card.fields = fields;
        card
    }
}

/// Each candidate's topic, by intent, for a clarify card.
fn topics_of(candidates: &[crate::intents::Candidate]) -> BTreeMap<String, String> {
    candidates
        .iter()
        .filter_map(|c| Some((c.intent.to_string(), c.topic.as_deref()?.to_owned())))
        .collect()
}

/// The utterance's slots with the candidate's named captures, as acting on it would see them.
fn with_captures(c: &Classification, cand: &crate::intents::Candidate) -> Slots {
    let mut slots = c.slots.clone();
    slots.extend(cand.captures.iter().map(|(k, v)| (k.clone(), v.clone())));
    slots
}

#[cfg(test)]
mod tests;
