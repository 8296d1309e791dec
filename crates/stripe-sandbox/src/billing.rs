//! The objects of billing on an account: Customers with their saved card, Subscriptions and
//! their items, test clocks, and the account's billing and payout settings. Pure data; the rules
//! that move them are in `subscriptions.rs` (billing) and `payouts.rs` (balance and payouts).
//!
//! Invoices live beside the one-time payments' invoices in `sales.invoices`: a subscription's
//! invoice is the same object with a `subscription` and a `billing_reason`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Price;
use super::sales::CardDetails;
use super::state::Collection;

/// A saved card and what charging it does: Stripe's test cards keep their behaviour once
/// attached, so `4000 0000 0000 0341` attaches fine and every later charge fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedCard {
    /// `pm_...`
    pub id: String,
    pub card: CardDetails,
    /// `None`: charges succeed; `Some(decline_code)`: every charge fails with it.
    pub fails_with: Option<String>,
    pub created: i64,
    /// A dispute test card: what follows each successful charge.
    #[serde(default)]
    pub after_charge: Option<super::cards::AfterCharge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Customer {
    /// `cus_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// `invoice_settings.default_payment_method`.
    pub default_card: Option<SavedCard>,
    pub test_clock: Option<String>,
    pub invoice_prefix: String,
}

/// `status` of a subscription (all of Stripe's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SubStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
    Paused,
}

impl SubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Incomplete => "incomplete",
            SubStatus::IncompleteExpired => "incomplete_expired",
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Unpaid => "unpaid",
            SubStatus::Canceled => "canceled",
            SubStatus::Paused => "paused",
        }
    }

    pub const ALL: &'static [&'static str] = &[
        "active",
        "canceled",
        "incomplete",
        "incomplete_expired",
        "past_due",
        "paused",
        "trialing",
        "unpaid",
    ];

    /// A subscription that ended: nothing more happens to it.
    pub fn ended(self) -> bool {
        matches!(self, SubStatus::Canceled | SubStatus::IncompleteExpired)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SubItem {
    /// `si_...`
    pub id: String,
    pub created: i64,
    pub price: Price,
    pub quantity: u64,
    /// The product's name, for invoice lines.
    pub product_name: String,
}

impl SubItem {
    pub fn amount(&self) -> i64 {
        self.price
            .unit_amount
            .saturating_mul(i64::try_from(self.quantity).unwrap_or(i64::MAX))
    }
}

/// `pause_collection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PauseCollection {
    /// `keep_as_draft`, `mark_uncollectible` or `void`.
    pub behavior: String,
    pub resumes_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    /// `sub_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub customer: String,
    pub status: SubStatus,
    pub items: Vec<SubItem>,
    pub currency: String,
    pub start_date: i64,
    pub billing_cycle_anchor: i64,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    /// `customer.subscription.trial_will_end` was sent for this trial.
    pub trial_will_end_sent: bool,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// `cancellation_details.reason`: `cancellation_requested`, `payment_failed`.
    pub cancellation_reason: Option<String>,
    pub latest_invoice: Option<String>,
    pub default_payment_method: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub application_fee_percent: Option<f64>,
    pub pause_collection: Option<PauseCollection>,
    pub test_clock: Option<String>,
    /// When an `incomplete` subscription expires (23 hours after creation, as Stripe's).
    pub incomplete_expires_at: Option<i64>,
    /// The discount its invoices get while it applies (`discounts`).
    #[serde(default)]
    pub discount: Option<super::discounts::Discount>,
    /// Prorations of changes made with `proration_behavior=create_prorations`, waiting for the
    /// next invoice (Stripe's pending invoice items).
    #[serde(default)]
    pub pending_prorations: Vec<super::sales::InvoiceLine>,
    /// `cancellation_details.feedback` (the portal's cancellation reasons).
    #[serde(default)]
    pub cancellation_feedback: Option<String>,
    /// The subscription schedule managing it (`sub_sched_…`).
    #[serde(default)]
    pub schedule: Option<String>,
}

impl Subscription {
    /// The recurring interval of its first item (all items share one interval).
    pub fn recurring(&self) -> Option<&super::model::Recurring> {
        self.items.first().and_then(|i| i.price.recurring.as_ref())
    }
}

/// A test clock: objects of the customers attached to it live at its `frozen_time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TestClock {
    /// `clock_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub frozen_time: i64,
    pub name: Option<String>,
    /// `ready` or `advancing` (the sandbox advances at once, so only ever `ready` outside a
    /// request).
    pub status: String,
    pub deleted: bool,
}

/// What happens after the last retry of a renewal fails (Stripe's "Manage failed payments"
/// setting of the subscriptions: cancel, mark unpaid, or leave past due).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterRetries {
    /// Cancel the subscription (Stripe's default).
    #[default]
    Cancel,
    /// Mark it `unpaid`: it stays, invoices are still created but not charged.
    Unpaid,
    /// Leave it `past_due`.
    PastDue,
}

/// An account's billing settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct BillingSettings {
    pub after_retries: AfterRetries,
}

super::state::keyed_by_id!(Customer, Subscription, TestClock);

/// Everything billed in one mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Billing {
    pub customers: Collection<Customer>,
    pub subscriptions: Collection<Subscription>,
    pub clocks: Collection<TestClock>,
    /// The customer portal's configurations and sessions.
    #[serde(default)]
    pub portal_configurations: Collection<super::portal::PortalConfiguration>,
    #[serde(default)]
    pub portal_sessions: Collection<super::portal::PortalSession>,
    /// Subscription schedules.
    #[serde(default)]
    pub schedules: Collection<super::schedules::Schedule>,
    /// Keyed by account id, or `platform`.
    pub settings: BTreeMap<String, BillingSettings>,
}
