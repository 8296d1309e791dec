//! The objects of selling on an account: Checkout Sessions, PaymentIntents, Charges, Refunds,
//! BalanceTransactions, Invoices, and the receipt emails "sent". Each belongs to the platform
//! (`account: None`) or to one connected account, and is only visible with that scope. Pure data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::discounts::{Discount, Line, allocate};
use super::model::Price;
use super::state::Collection;

/// `status` of a Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Complete => "complete",
            SessionStatus::Expired => "expired",
        }
    }
}

/// One line of a session: the price as it was when the session was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LineItem {
    /// `li_...`
    pub id: String,
    pub price: Price,
    /// The product's name (Checkout shows it; `description` of the item).
    pub description: String,
    pub quantity: u64,
}

impl LineItem {
    pub fn amount(&self) -> i64 {
        self.price
            .unit_amount
            .saturating_mul(i64::try_from(self.quantity).unwrap_or(i64::MAX))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckoutSession {
    /// `cs_test_...` / `cs_live_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub expires_at: i64,
    pub status: SessionStatus,
    pub paid: bool,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub customer_email: Option<String>,
    pub client_reference_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub line_items: Vec<LineItem>,
    pub currency: String,
    pub application_fee_amount: Option<i64>,
    pub payment_intent_metadata: BTreeMap<String, String>,
    pub payment_intent_description: Option<String>,
    pub invoice_creation: bool,
    pub invoice_description: Option<String>,
    pub invoice_metadata: BTreeMap<String, String>,
    pub payment_intent: Option<String>,
    pub invoice: Option<String>,
    /// Filled in when the customer pays.
    pub customer_name: Option<String>,
    pub customer_details_email: Option<String>,
    /// The message the hosted page shows after a failed attempt.
    pub last_error: Option<String>,
    /// `payment` or `subscription`.
    #[serde(default = "payment_mode")]
    pub mode: String,
    /// Subscription mode: what `subscription_data` asked for.
    #[serde(default)]
    pub subscription_data: Option<SubscriptionData>,
    /// The Customer the session was created for (`customer=`), or created on payment.
    #[serde(default)]
    pub customer: Option<String>,
    /// The subscription created on payment.
    #[serde(default)]
    pub subscription: Option<String>,
    /// Subscription mode: a 3D Secure step waiting (no PaymentIntent exists yet).
    #[serde(default)]
    pub pending_auth: Option<PendingAuth>,
    /// `allow_promotion_codes`: the hosted page has a promotion code field.
    #[serde(default)]
    pub allow_promotion_codes: bool,
    /// The discount: from `discounts[]`, or a code typed on the hosted page.
    #[serde(default)]
    pub discount: Option<Discount>,
}

fn payment_mode() -> String {
    "payment".to_owned()
}

/// `subscription_data` of a subscription-mode session.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct SubscriptionData {
    pub trial_period_days: Option<i64>,
    pub trial_end: Option<i64>,
    pub application_fee_percent: Option<f64>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl CheckoutSession {
    pub fn is_subscription(&self) -> bool {
        self.mode == "subscription"
    }

    /// The trial a subscription-mode session gives: `subscription_data[trial_end]`, else
    /// `subscription_data[trial_period_days]`, else the first recurring price's own trial.
    pub fn trial_end(&self, now: i64) -> Option<i64> {
        let data = self.subscription_data.as_ref();
        if let Some(end) = data.and_then(|d| d.trial_end) {
            return Some(end);
        }
        let days = data.and_then(|d| d.trial_period_days).or_else(|| {
            self.line_items
                .iter()
                .find_map(|li| {
                    li.price
                        .recurring
                        .as_ref()
                        .and_then(|r| r.trial_period_days)
                })
                .map(i64::from)
        })?;
        (days > 0).then(|| now + days * 86_400)
    }

    /// What the customer pays today: everything, or with a trial only the one-time items.
    pub fn amount_due_now(&self, now: i64) -> i64 {
        if self.is_subscription() && self.trial_end(now).is_some() {
            self.line_items
                .iter()
                .filter(|li| li.price.recurring.is_none())
                .map(LineItem::amount)
                .sum()
        } else {
            self.amount_subtotal()
        }
    }

    pub fn amount_subtotal(&self) -> i64 {
        self.line_items.iter().map(LineItem::amount).sum()
    }

    /// Each line's amount due now (a trial's recurring lines are free).
    fn amounts_due_now(&self) -> Vec<i64> {
        let trial = self.is_subscription() && self.trial_end(self.created).is_some();
        self.line_items
            .iter()
            .map(|li| {
                if trial && li.price.recurring.is_some() {
                    0
                } else {
                    li.amount()
                }
            })
            .collect()
    }

    /// What the discount takes off what is due now: the total and each line's share.
    pub fn discount_shares(&self) -> (i64, Vec<i64>) {
        let due = self.amounts_due_now();
        let Some(d) = &self.discount else {
            return (0, vec![0; due.len()]);
        };
        let lines: Vec<Line<'_>> = self
            .line_items
            .iter()
            .zip(&due)
            .map(|(li, amount)| Line {
                product: &li.price.product,
                amount: *amount,
            })
            .collect();
        allocate(&d.coupon, &self.currency, &lines)
    }

    /// What the customer pays now, after the discount.
    pub fn amount_total(&self) -> i64 {
        self.amount_due_now(self.created) - self.discount_shares().0
    }

    /// The lines a promotion code's conditions are checked against (full amounts).
    pub fn order_lines(&self) -> Vec<Line<'_>> {
        self.line_items
            .iter()
            .map(|li| Line {
                product: &li.price.product,
                amount: li.amount(),
            })
            .collect()
    }
}

/// `status` of a PaymentIntent (the ones the sandbox reaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IntentStatus {
    RequiresPaymentMethod,
    RequiresAction,
    Succeeded,
    Canceled,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Canceled => "canceled",
        }
    }
}

/// The card a payment used, as `payment_method_details.card` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CardDetails {
    pub brand: String,
    pub funding: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub fingerprint: String,
}

/// `last_payment_error` of an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PaymentError {
    /// `card_error` or `invalid_request_error`.
    pub kind: String,
    pub code: String,
    pub decline_code: Option<String>,
    pub message: String,
    pub param: Option<String>,
    pub charge: Option<String>,
}

/// What waits while the customer authenticates (3D Secure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingAuth {
    pub card: CardDetails,
    pub email: String,
    pub name: String,
    pub payment_method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PaymentIntent {
    /// `pi_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub status: IntentStatus,
    pub amount_received: i64,
    pub latest_charge: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub description: Option<String>,
    pub receipt_email: Option<String>,
    pub payment_method: Option<String>,
    pub last_payment_error: Option<PaymentError>,
    pub pending_auth: Option<PendingAuth>,
    /// The Checkout Session that made it (empty for an invoice's payment).
    pub session: String,
    pub client_secret: String,
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub customer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub kind: String,
    pub network_status: String,
    pub reason: Option<String>,
    pub risk_level: String,
    pub risk_score: i64,
    pub seller_message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Charge {
    /// `ch_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub succeeded: bool,
    pub amount_refunded: i64,
    pub payment_intent: String,
    pub payment_method: String,
    pub balance_transaction: Option<String>,
    pub billing_name: Option<String>,
    pub billing_email: Option<String>,
    pub card: CardDetails,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub outcome: Outcome,
    pub receipt_email: Option<String>,
    pub receipt_number: Option<String>,
    pub application_fee: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub description: Option<String>,
    /// The 5126 test card: refunds of this charge fail some time later.
    pub refunds_fail: bool,
    /// The Checkout Session paid with it (empty for an invoice's payment).
    pub session: String,
    #[serde(default)]
    pub customer: Option<String>,
    /// A dispute (or inquiry) was opened on it (`disputed`).
    #[serde(default)]
    pub disputed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refund {
    /// `re_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub charge: String,
    pub payment_intent: String,
    /// `pending`, `succeeded`, `failed`, `canceled`.
    pub status: String,
    pub reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub balance_transaction: Option<String>,
    pub failure_reason: Option<String>,
    pub failure_balance_transaction: Option<String>,
    /// When it fails (sandbox clock), for refunds of the 5126 card.
    pub fails_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FeeDetail {
    /// `stripe_fee` or `application_fee`.
    pub kind: String,
    pub amount: i64,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BalanceTransaction {
    /// `txn_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub fee_details: Vec<FeeDetail>,
    pub available_on: i64,
    /// `charge`, `refund`, `payment_failure_refund`...
    pub kind: String,
    pub reporting_category: String,
    /// The charge, refund or payout id.
    pub source: String,
    pub description: Option<String>,
    /// The automatic payout that paid this transaction out (`payout` filter of the list).
    #[serde(default)]
    pub payout: Option<String>,
}

impl BalanceTransaction {
    pub fn fee(&self) -> i64 {
        self.fee_details.iter().map(|f| f.amount).sum()
    }

    pub fn net(&self) -> i64 {
        self.amount - self.fee()
    }

    /// `pending` until `available_on`, then `available`.
    pub fn status(&self, now: i64) -> &'static str {
        if now >= self.available_on {
            "available"
        } else {
            "pending"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InvoiceLine {
    /// `il_...`
    pub id: String,
    pub description: String,
    pub quantity: u64,
    pub amount: i64,
    pub price: String,
    pub product: String,
    pub unit_amount: i64,
    /// `period` of the line (a subscription item's period, or the invoice's date).
    #[serde(default)]
    pub period: Option<(i64, i64)>,
    /// `si_...` for a subscription item's line.
    #[serde(default)]
    pub subscription_item: Option<String>,
    /// What the invoice's discount takes off this line (`discount_amounts`).
    #[serde(default)]
    pub discount_amount: i64,
    /// A proration of a subscription change (`parent.….proration`).
    #[serde(default)]
    pub proration: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Invoice {
    /// `in_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub number: String,
    pub currency: String,
    pub total: i64,
    pub lines: Vec<InvoiceLine>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The PaymentIntent of the latest attempt (empty until one is made).
    pub payment_intent: String,
    /// The charge of the latest attempt (empty until one is made).
    pub charge: String,
    pub paid_at: Option<i64>,
    #[serde(default = "paid_status")]
    pub status: InvoiceStatus,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub subscription: Option<String>,
    /// `manual`, `subscription_create`, `subscription_cycle`.
    #[serde(default = "manual_reason")]
    pub billing_reason: String,
    #[serde(default)]
    pub period: Option<(i64, i64)>,
    #[serde(default)]
    pub attempt_count: u32,
    #[serde(default)]
    pub next_payment_attempt: Option<i64>,
    /// When a draft finalizes and its first payment is attempted (an hour after creation).
    #[serde(default)]
    pub finalize_at: Option<i64>,
    #[serde(default)]
    pub finalized_at: Option<i64>,
    #[serde(default)]
    pub voided_at: Option<i64>,
    #[serde(default)]
    pub marked_uncollectible_at: Option<i64>,
    #[serde(default)]
    pub test_clock: Option<String>,
    /// `subscription_details.metadata`.
    #[serde(default)]
    pub subscription_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub application_fee_percent: Option<f64>,
    /// The discount applied to the whole invoice, and what it took off (`total` is after it).
    #[serde(default)]
    pub discount: Option<Discount>,
    #[serde(default)]
    pub discount_amount: i64,
}

impl Invoice {
    /// The lines' amounts before the discount.
    pub fn subtotal(&self) -> i64 {
        self.lines.iter().map(|l| l.amount).sum()
    }
}

fn paid_status() -> InvoiceStatus {
    InvoiceStatus::Paid
}

fn manual_reason() -> String {
    "manual".to_owned()
}

/// `status` of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Uncollectible,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Uncollectible => "uncollectible",
            InvoiceStatus::Void => "void",
        }
    }

    /// Open and uncollectible invoices can still be paid.
    pub fn payable(self) -> bool {
        matches!(self, InvoiceStatus::Open | InvoiceStatus::Uncollectible)
    }
}

/// A receipt email the sandbox "sent".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentEmail {
    /// The address.
    pub to: String,
    /// `ch_...`
    pub charge: String,
    /// The connected account the charge belongs to.
    pub account: Option<String>,
    pub livemode: bool,
    pub subject: String,
    /// The charge's `receipt_url`.
    pub receipt_url: String,
    /// Unix seconds (sandbox clock).
    pub at: i64,
}

super::state::keyed_by_id!(
    CheckoutSession,
    PaymentIntent,
    Charge,
    Refund,
    BalanceTransaction,
    Invoice
);

/// Everything sold in one mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Sales {
    pub sessions: Collection<CheckoutSession>,
    pub intents: Collection<PaymentIntent>,
    pub charges: Collection<Charge>,
    pub refunds: Collection<Refund>,
    pub balance_transactions: Collection<BalanceTransaction>,
    pub invoices: Collection<Invoice>,
    /// Disputes (chargebacks and inquiries) of charges.
    #[serde(default)]
    pub disputes: Collection<super::disputes::Dispute>,
    /// Radar's early fraud warnings.
    #[serde(default)]
    pub early_fraud_warnings: Collection<super::disputes::EarlyFraudWarning>,
    /// Per-account invoice counters (`ABCD1234-0001`).
    pub invoice_numbers: BTreeMap<String, u64>,
}
