//! Recurring billing: subscriptions with their invoices, what a customer may access
//! (entitlements), payouts, and Stripe's codes for them in plain words.
//!
//! Plain values and pure functions, like [`crate::orders`]: a subscription's stored state is a
//! fresh read of Stripe's objects (the subscription, its items, its invoices), never an event's
//! payload, so duplicates and any order of arrival end in the state Stripe holds. [`changes`]
//! says what a builder should hear about a transition; [`entitlements`] says who may access what
//! at a given moment, from subscriptions and one-time orders.

use serde::{Deserialize, Serialize};

use crate::domain::{Currency, Money};
use crate::orders::{Order, OrderStatus};

/// Stripe's subscription statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
    Paused,
}

impl SubscriptionStatus {
    pub const ALL: [SubscriptionStatus; 8] = [
        SubscriptionStatus::Incomplete,
        SubscriptionStatus::IncompleteExpired,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Unpaid,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<SubscriptionStatus> {
        SubscriptionStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// Over for good: Stripe never moves it again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
        )
    }

    /// What it means, for a person.
    pub fn in_words(self) -> &'static str {
        match self {
            SubscriptionStatus::Incomplete => "waiting for its first payment",
            SubscriptionStatus::IncompleteExpired => "expired before its first payment",
            SubscriptionStatus::Trialing => "in its free trial",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past due (a renewal payment failed; Stripe retries)",
            SubscriptionStatus::Unpaid => "unpaid (the retries failed; access is suspended)",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Paused => "paused",
        }
    }
}

/// One price on a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionItem {
    /// Stripe's subscription item (`si_…`), which a plan change updates; `None` in
    /// subscriptions stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub price: String,
    pub product: String,
    /// The product's name from the synced catalog, when known.
    #[serde(default)]
    pub name: Option<String>,
    pub quantity: i64,
    /// Per unit and interval, in the currency's minor unit.
    #[serde(default)]
    pub unit_amount: Option<i64>,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    pub interval_count: i64,
    /// The item's current period (Stripe keeps periods on items), Unix seconds.
    pub current_period_start: i64,
    pub current_period_end: i64,
}

impl SubscriptionItem {
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.product.clone())
    }
}

/// Stripe's invoice statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
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

    pub fn parse(s: &str) -> Option<InvoiceStatus> {
        [
            InvoiceStatus::Draft,
            InvoiceStatus::Open,
            InvoiceStatus::Paid,
            InvoiceStatus::Uncollectible,
            InvoiceStatus::Void,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One of a subscription's invoices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(default)]
    pub number: Option<String>,
    pub status: InvoiceStatus,
    pub currency: Currency,
    pub amount_due: i64,
    pub amount_paid: i64,
    /// `subscription_create`, `subscription_cycle`, `subscription_update`, `manual`, …
    #[serde(default)]
    pub billing_reason: Option<String>,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    #[serde(default)]
    pub invoice_pdf: Option<String>,
    pub attempt_count: i64,
    /// Unix seconds; the next automatic retry of an open invoice.
    #[serde(default)]
    pub next_payment_attempt: Option<i64>,
    /// Unix seconds.
    pub created: i64,
    /// When it was paid (Unix seconds).
    #[serde(default)]
    pub paid_at: Option<i64>,
}

impl Invoice {
    pub fn amount(&self) -> Money {
        Money::new(self.amount_due, self.currency)
    }
}

/// A subscription as Stripe holds it now, with its invoices (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    #[serde(default)]
    pub customer_email: Option<String>,
    pub status: SubscriptionStatus,
    pub currency: Currency,
    pub items: Vec<SubscriptionItem>,
    /// Unix seconds.
    pub created: i64,
    #[serde(default)]
    pub trial_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// When it is set to end (Unix seconds), if it is.
    #[serde(default)]
    pub cancel_at: Option<i64>,
    #[serde(default)]
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// chatpay's order for the checkout that started it (the subscription's metadata).
    #[serde(default)]
    pub order: Option<String>,
    /// That order's number, when it is stored.
    #[serde(default)]
    pub order_number: Option<i64>,
    #[serde(default)]
    pub invoices: Vec<Invoice>,
    /// The subscription schedule managing it (`sub_sched_…`): a plan change waiting for the
    /// period's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The discount its invoices get (Stripe's `discounts`: its coupon), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<SubscriptionDiscount>,
}

/// A subscription's discount: its coupon's terms, as Stripe says them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDiscount {
    /// The coupon's id.
    pub coupon: String,
    /// A percentage off, in hundredths of a percent (15% is 1,500).
    #[serde(default)]
    pub percent_off_hundredths: Option<i64>,
    /// An amount off each invoice, in the subscription currency's minor unit.
    #[serde(default)]
    pub amount_off: Option<i64>,
    /// `once` (the first invoice only), `repeating` (until `end`) or `forever`.
    pub duration: String,
    /// When a repeating discount stops applying (Unix seconds).
    #[serde(default)]
    pub end: Option<i64>,
}

impl Subscription {
    /// The current period's end: the latest of the items' (Unix seconds).
    pub fn current_period_end(&self) -> Option<i64> {
        self.items.iter().map(|i| i.current_period_end).max()
    }

    /// The amount charged per period, before tax and discounts.
    pub fn amount_per_period(&self) -> Money {
        let minor = self
            .items
            .iter()
            .map(|i| i.unit_amount.unwrap_or(0) * i.quantity)
            .sum();
        Money::new(minor, self.currency)
    }

    /// "Pro (monthly)" or "Pro, Extra seat × 3 (monthly)".
    pub fn summary(&self) -> String {
        let names = self
            .items
            .iter()
            .map(|i| {
                if i.quantity == 1 {
                    i.label()
                } else {
                    format!("{} × {}", i.label(), i.quantity)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        match self.items.first() {
            Some(i) => format!("{names} ({})", every(&i.interval, i.interval_count)),
            None => names,
        }
    }

    /// The open invoice whose payment failed (the one Stripe retries), newest first.
    pub fn failing_invoice(&self) -> Option<&Invoice> {
        self.invoices
            .iter()
            .find(|i| i.status == InvoiceStatus::Open && i.attempt_count > 0)
    }

    pub fn email_or_customer(&self) -> &str {
        self.customer_email.as_deref().unwrap_or(&self.customer)
    }
}

/// "monthly", "every 3 months", "yearly".
pub fn every(interval: &str, count: i64) -> String {
    match (interval, count) {
        ("day", 1) => "daily".to_owned(),
        ("week", 1) => "weekly".to_owned(),
        ("month", 1) => "monthly".to_owned(),
        ("year", 1) => "yearly".to_owned(),
        (i, n) => format!("every {n} {i}s"),
    }
}

/// What a builder hears about a subscription's transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionNews {
    /// New, and paid or trialing.
    Started,
    TrialStarted,
    /// The trial ended and the first real payment was made.
    TrialConverted,
    /// A renewal invoice was paid.
    Renewed(Invoice),
    /// A payment failed; Stripe retries (or the subscription is now unpaid).
    PaymentFailed(Invoice),
    /// Past due (or unpaid) and now active again.
    Recovered,
    /// Set to cancel at the period's end.
    CancelScheduled,
    /// A scheduled cancellation was taken back.
    Resumed,
    Ended,
    Paused,
    /// The plan (the items' prices) changed: by the subscriber in the billing portal, by the
    /// seller, or when a change scheduled for the period's end took effect. Carries the plan
    /// before ("Basic (monthly)").
    PlanChanged {
        from: String,
    },
}

/// What changed between two reads of a subscription (`before` is `None` for the first read).
pub fn changes(before: Option<&Subscription>, after: &Subscription) -> Vec<SubscriptionNews> {
    use SubscriptionStatus as S;
    let mut out = Vec::new();
    let was = before.map(|b| b.status);
    let granted = |s: S| matches!(s, S::Active | S::Trialing);
    match (was, after.status) {
        (None | Some(S::Incomplete), S::Active) => out.push(SubscriptionNews::Started),
        (None | Some(S::Incomplete), S::Trialing) => out.push(SubscriptionNews::TrialStarted),
        (Some(S::PastDue | S::Unpaid | S::Paused), S::Active) => {
            out.push(SubscriptionNews::Recovered)
        }
        (Some(S::Trialing), S::Active) => out.push(SubscriptionNews::TrialConverted),
        (Some(w), S::Canceled | S::IncompleteExpired) if !w.is_final() => {
            out.push(SubscriptionNews::Ended)
        }
        (Some(w), S::Paused) if w != S::Paused => out.push(SubscriptionNews::Paused),
        _ => {}
    }
    if let Some(b) = before {
        for inv in &after.invoices {
            let old = b.invoices.iter().find(|o| o.id == inv.id);
            let newly_paid =
                inv.status == InvoiceStatus::Paid && old.is_none_or(|o| o.status != inv.status);
            // A renewal paid while recovering (or ending a trial) is told once, as that.
            let recovering = out.contains(&SubscriptionNews::Recovered)
                || out.contains(&SubscriptionNews::TrialConverted);
            if newly_paid
                && !recovering
                && inv.billing_reason.as_deref() == Some("subscription_cycle")
            {
                out.push(SubscriptionNews::Renewed(inv.clone()));
            }
            let failed_again = inv.status == InvoiceStatus::Open
                && inv.attempt_count > old.map_or(0, |o| o.attempt_count);
            if failed_again {
                out.push(SubscriptionNews::PaymentFailed(inv.clone()));
            }
        }
        fn prices(s: &Subscription) -> Vec<(&str, i64)> {
            let mut p: Vec<(&str, i64)> = s
                .items
                .iter()
                .map(|i| (i.price.as_str(), i.quantity))
                .collect();
            p.sort_unstable();
            p
        }
        if !after.status.is_final() && !b.items.is_empty() && prices(b) != prices(after) {
            out.push(SubscriptionNews::PlanChanged { from: b.summary() });
        }
        if !after.status.is_final() && granted(after.status) || after.status == S::PastDue {
            match (b.cancel_at_period_end, after.cancel_at_period_end) {
                (false, true) => out.push(SubscriptionNews::CancelScheduled),
                (true, false) => out.push(SubscriptionNews::Resumed),
                _ => {}
            }
        }
    }
    out
}

/// Where a customer's access comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Grant {
    Subscription {
        subscription: String,
        status: SubscriptionStatus,
    },
    Order {
        order: i64,
    },
}

/// One product a customer may access now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlement {
    pub product: String,
    pub name: String,
    #[serde(flatten)]
    pub grant: Grant,
    /// Unix seconds.
    pub since: i64,
    /// Unix seconds; `None`: for good (a one-time purchase).
    pub until: Option<i64>,
}

/// How long a past-due subscription keeps its access (the builder's setting), in days.
pub const DEFAULT_GRACE_DAYS: i64 = 3;

/// When a subscription stops granting access, if it grants access at `now` (Unix seconds):
/// active and trialing ones until their period's end (renewals move it); past-due ones for
/// `grace_days` after their first failed payment, and never past the period's end plus grace.
fn access_until(s: &Subscription, now: i64, grace_days: i64) -> Option<Option<i64>> {
    let end = s.current_period_end();
    match s.status {
        SubscriptionStatus::Active => Some(end),
        SubscriptionStatus::Trialing => Some(s.trial_end.or(end)),
        SubscriptionStatus::PastDue => {
            let since = s
                .failing_invoice()
                .map_or(end.unwrap_or(now), |i| i.created);
            let until = since + grace_days * 86_400;
            (until > now).then_some(Some(until))
        }
        _ => None,
    }
}

/// What `email` may access at `now` (Unix seconds): products of granting subscriptions and
/// products bought once in orders that were paid and not wholly refunded. One entry per
/// product, the one that lasts longest.
pub fn entitlements(
    email: &str,
    subscriptions: &[Subscription],
    orders: &[Order],
    now: i64,
    grace_days: i64,
) -> Vec<Entitlement> {
    let same = |e: Option<&str>| e.is_some_and(|e| e.eq_ignore_ascii_case(email));
    let mut out: Vec<Entitlement> = Vec::new();
    let mut add = |e: Entitlement| match out.iter_mut().find(|o| o.product == e.product) {
        Some(o) => {
            let longer = match (o.until, e.until) {
                (Some(a), Some(b)) => b > a,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if longer {
                *o = e;
            }
        }
        None => out.push(e),
    };
    for s in subscriptions
        .iter()
        .filter(|s| same(s.customer_email.as_deref()))
    {
        let Some(until) = access_until(s, now, grace_days) else {
            continue;
        };
        for item in &s.items {
            add(Entitlement {
                product: item.product.clone(),
                name: item.label(),
                grant: Grant::Subscription {
                    subscription: s.id.clone(),
                    status: s.status,
                },
                since: s.created,
                until,
            });
        }
    }
    for o in orders.iter().filter(|o| same(o.customer_email.as_deref())) {
        if !o.grants_access() || o.subscription.is_some() {
            continue;
        }
        for line in &o.lines {
            add(Entitlement {
                product: line.product.clone(),
                name: line.name.clone(),
                grant: Grant::Order { order: o.number },
                since: o.paid_at.map_or(o.created_at, |p| p) / 1000,
                until: None,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Why a customer's access changed, as the builder's app hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessReason {
    /// A subscription started, paid.
    SubscriptionStarted,
    /// A subscription started with a free trial.
    TrialStarted,
    /// An unpaid or paused subscription is active again.
    SubscriptionRecovered,
    /// The subscription was canceled (now, at its period's end, or after failed retries).
    SubscriptionCanceled,
    /// The retries of a failed renewal ran out: the subscription is unpaid.
    SubscriptionUnpaid,
    SubscriptionPaused,
    /// The subscription moved to another product's plan: the old product is revoked, the new
    /// one granted.
    PlanChanged,
    /// A one-time purchase was paid.
    OrderPaid,
    /// A one-time purchase was wholly refunded.
    OrderRefunded,
    /// A one-time purchase's dispute was lost: the money went back to the customer.
    DisputeLost,
}

impl AccessReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessReason::SubscriptionStarted => "subscription_started",
            AccessReason::TrialStarted => "trial_started",
            AccessReason::SubscriptionRecovered => "subscription_recovered",
            AccessReason::SubscriptionCanceled => "subscription_canceled",
            AccessReason::SubscriptionUnpaid => "subscription_unpaid",
            AccessReason::SubscriptionPaused => "subscription_paused",
            AccessReason::PlanChanged => "plan_changed",
            AccessReason::OrderPaid => "order_paid",
            AccessReason::OrderRefunded => "order_refunded",
            AccessReason::DisputeLost => "dispute_lost",
        }
    }
}

/// A product a customer gained or lost access to (chatpay's `entitlement.granted` and
/// `entitlement.revoked` events to the builder's app), from the same transition that tells the
/// builder in the chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    pub granted: bool,
    pub reason: AccessReason,
    pub customer_email: Option<String>,
    pub product: String,
    pub name: String,
    #[serde(flatten)]
    pub grant: Grant,
    /// Unix seconds.
    pub since: i64,
    /// Unix seconds: until when access holds (granted: the trial's or the period's end, `None`
    /// for a one-time purchase; revoked: when it ended).
    pub until: Option<i64>,
}

impl AccessChange {
    /// `entitlement.granted` or `entitlement.revoked`.
    pub fn event_type(&self) -> &'static str {
        if self.granted {
            "entitlement.granted"
        } else {
            "entitlement.revoked"
        }
    }
}

/// Whether a subscription in `status` grants access (past due: for the grace period, which
/// [`entitlements`] applies).
fn grants(status: SubscriptionStatus) -> bool {
    matches!(
        status,
        SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
    )
}

/// Who gained or lost access between two reads of a subscription (`before` is `None` for the
/// first read), one change per product, at `now` (Unix seconds).
pub fn subscription_access(
    before: Option<&Subscription>,
    after: &Subscription,
    now: i64,
) -> Vec<AccessChange> {
    use SubscriptionStatus as S;
    let was = before.is_some_and(|b| grants(b.status));
    let is = grants(after.status);
    let (granted, reason, until) = match (was, is) {
        (false, true) => {
            let reason = match (before.map(|b| b.status), after.status) {
                (None | Some(S::Incomplete), S::Trialing) => AccessReason::TrialStarted,
                (None | Some(S::Incomplete), _) => AccessReason::SubscriptionStarted,
                _ => AccessReason::SubscriptionRecovered,
            };
            let until = match after.status {
                S::Trialing => after.trial_end.or(after.current_period_end()),
                _ => after.current_period_end(),
            };
            (true, reason, until)
        }
        (true, false) => {
            let reason = match after.status {
                S::Unpaid => AccessReason::SubscriptionUnpaid,
                S::Paused => AccessReason::SubscriptionPaused,
                _ => AccessReason::SubscriptionCanceled,
            };
            (false, reason, Some(after.ended_at.unwrap_or(now)))
        }
        (true, true) => return plan_access(before, after),
        _ => return Vec::new(),
    };
    after
        .items
        .iter()
        .map(|item| AccessChange {
            granted,
            reason,
            customer_email: after.customer_email.clone(),
            product: item.product.clone(),
            name: item.label(),
            grant: Grant::Subscription {
                subscription: after.id.clone(),
                status: after.status,
            },
            since: after.created,
            until,
        })
        .collect()
}

/// A granting subscription whose products changed (a plan switch to another product): the
/// products it no longer has are revoked, the new ones granted.
fn plan_access(before: Option<&Subscription>, after: &Subscription) -> Vec<AccessChange> {
    let Some(b) = before else { return Vec::new() };
    let has = |s: &Subscription, product: &str| s.items.iter().any(|i| i.product == product);
    let change = |item: &SubscriptionItem, granted: bool, until: Option<i64>| AccessChange {
        granted,
        reason: AccessReason::PlanChanged,
        customer_email: after.customer_email.clone(),
        product: item.product.clone(),
        name: item.label(),
        grant: Grant::Subscription {
            subscription: after.id.clone(),
            status: after.status,
        },
        since: after.created,
        until,
    };
    let now = after.items.iter().map(|i| i.current_period_start).max();
    let mut out: Vec<AccessChange> = b
        .items
        .iter()
        .filter(|i| !has(after, &i.product))
        .map(|i| change(i, false, now))
        .collect();
    out.extend(
        after
            .items
            .iter()
            .filter(|i| !has(b, &i.product))
            .map(|i| change(i, true, after.current_period_end())),
    );
    out
}

/// Who gained or lost access between two versions of a one-time order (a subscription's
/// checkout order grants nothing itself: its subscription does), at `now` (Unix seconds).
pub fn order_access(before: &Order, after: &Order, now: i64) -> Vec<AccessChange> {
    let grants = |o: &Order| o.grants_access();
    if after.subscription.is_some() || grants(before) == grants(after) {
        return Vec::new();
    }
    let granted = grants(after);
    let lost = after
        .dispute
        .as_ref()
        .is_some_and(|d| d.outcome() == crate::disputes::DisputeOutcome::Lost);
    // Losing access takes a whole refund or a lost dispute (an expired or failed checkout
    // never granted any).
    if !granted && after.status != OrderStatus::Refunded && !lost {
        return Vec::new();
    }
    let since = after.paid_at.map_or(after.created_at, |p| p) / 1000;
    after
        .lines
        .iter()
        .map(|line| AccessChange {
            granted,
            reason: if granted {
                AccessReason::OrderPaid
            } else if lost {
                AccessReason::DisputeLost
            } else {
                AccessReason::OrderRefunded
            },
            customer_email: after.customer_email.clone(),
            product: line.product.clone(),
            name: line.name.clone(),
            grant: Grant::Order {
                order: after.number,
            },
            since,
            until: (!granted).then_some(now),
        })
        .collect()
}

/// What to do to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionChange {
    CancelNow,
    CancelAtPeriodEnd,
    Resume,
}

/// Stripe's payout statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Pending,
    InTransit,
    Paid,
    Failed,
    Canceled,
}

impl PayoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "pending",
            PayoutStatus::InTransit => "in_transit",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
            PayoutStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<PayoutStatus> {
        [
            PayoutStatus::Pending,
            PayoutStatus::InTransit,
            PayoutStatus::Paid,
            PayoutStatus::Failed,
            PayoutStatus::Canceled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A payout to the connected account's bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub id: String,
    pub amount: i64,
    pub currency: Currency,
    pub status: PayoutStatus,
    /// Unix seconds: when it is expected (or was) in the bank.
    pub arrival_date: i64,
    /// Unix seconds.
    pub created: i64,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    /// The payments it carries (charge ids), when read with its balance transactions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<String>,
}

impl Payout {
    pub fn money(&self) -> Money {
        Money::new(self.amount, self.currency)
    }
}

/// An amount per currency of the account's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAmount {
    pub amount: i64,
    pub currency: Currency,
}

/// The account's balance: what can be paid out now, and what is still settling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub available: Vec<BalanceAmount>,
    pub pending: Vec<BalanceAmount>,
}

/// When paid orders' money becomes available, per UTC day (Unix seconds of the day) and
/// currency, after `now` (Unix seconds), soonest first: each charge's net after Stripe's fees
/// (its balance transaction's `net`), or the paid amount if Stripe didn't say. A refund is
/// taken from the balance when it is made, not from this.
pub fn funds_upcoming(orders: &[Order], now: i64) -> Vec<(i64, Money)> {
    let mut out: Vec<(i64, Money)> = Vec::new();
    for o in orders.iter().filter(|o| o.status.was_paid()) {
        let Some(charge) = &o.charge else { continue };
        let Some(on) = charge.available_on.filter(|on| *on > now) else {
            continue;
        };
        let day = on - on.rem_euclid(86_400);
        let net = o.money(charge.net.unwrap_or(charge.amount_captured));
        match out
            .iter_mut()
            .find(|(d, m)| *d == day && m.currency == net.currency)
        {
            Some((_, m)) => m.minor += net.minor,
            None => out.push((day, net)),
        }
    }
    out.sort_by_key(|(d, _)| *d);
    out
}

/// The orders paid on `day` (UTC): when each one's money becomes available (if Stripe said)
/// and its total.
pub fn paid_on_day(orders: &[Order], day: chrono::NaiveDate) -> Vec<(Option<i64>, Money)> {
    let start = day
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis();
    orders
        .iter()
        .filter(|o| o.status.was_paid())
        .filter(|o| {
            o.paid_at
                .is_some_and(|p| p >= start && p < start + 86_400_000)
        })
        .map(|o| (o.charge.as_ref().and_then(|c| c.available_on), o.total()))
        .collect()
}

/// Stripe's payout failure codes in plain words, with what to do.
pub fn payout_failure_in_words(code: &str) -> &'static str {
    match code {
        "account_closed" => {
            "the bank account has been closed. Add a new bank account in Stripe (Settings -> Payouts) and Stripe pays out again."
        }
        "account_frozen" => {
            "the bank account is frozen. Ask your bank why, or add another bank account in Stripe."
        }
        "bank_account_restricted" => {
            "the bank account doesn't accept this kind of payment. Ask your bank, or add another account."
        }
        "bank_ownership_changed" => {
            "the bank account's ownership changed. Add the bank account again in Stripe."
        }
        "could_not_process" | "debit_not_authorized" | "declined" => {
            "the bank couldn't process it. Check the bank details in Stripe, or add another account; Stripe tries again once they change."
        }
        "insufficient_funds" => {
            "the Stripe balance was too low to cover it (refunds or disputes came first). It's paid once the balance covers it."
        }
        "invalid_account_number" | "no_account" => {
            "the bank account number is wrong or the account doesn't exist. Correct the bank details in Stripe (Settings -> Payouts)."
        }
        "invalid_currency" => {
            "the bank account can't receive this currency. Add a bank account in that currency in Stripe."
        }
        "incorrect_account_holder_name" | "incorrect_account_holder_type" => {
            "the account holder's name or type doesn't match the bank's records. Correct it in Stripe."
        }
        _ => "the bank returned it. Check the bank details in Stripe (Settings -> Payouts).",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::OrderLine;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_795_000_000;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    fn invoice(id: &str, status: InvoiceStatus, attempts: i64, created: i64) -> Invoice {
        Invoice {
            id: id.into(),
            number: None,
            status,
            currency: usd(),
            amount_due: 900,
            amount_paid: if status == InvoiceStatus::Paid {
                900
            } else {
                0
            },
            billing_reason: Some("subscription_cycle".into()),
            hosted_invoice_url: None,
            invoice_pdf: None,
            attempt_count: attempts,
            next_payment_attempt: None,
            created,
            paid_at: None,
        }
    }

    fn sub(status: SubscriptionStatus) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            customer: "cus_1".into(),
            customer_email: Some("ana@example.com".into()),
            status,
            currency: usd(),
            items: vec![SubscriptionItem {
                id: None,
                price: "price_pro".into(),
                product: "prod_pro".into(),
                name: Some("Pro".into()),
                quantity: 1,
                unit_amount: Some(900),
                interval: "month".into(),
                interval_count: 1,
                current_period_start: NOW - 10 * DAY,
                current_period_end: NOW + 20 * DAY,
            }],
            created: NOW - 40 * DAY,
            trial_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            order: None,
            order_number: None,
            invoices: Vec::new(),
            schedule: None,
            discount: None,
        }
    }

    fn order(status: OrderStatus) -> Order {
        let mut o = Order::new_for_tests("ord_1", 1001, usd(), 2_500);
        o.status = status;
        o.customer_email = Some("Ana@Example.com".into());
        o.lines = vec![OrderLine {
            price: "price_book".into(),
            product: "prod_book".into(),
            name: "Ebook".into(),
            quantity: 1,
            unit_amount: 2_500,
            amount: 2_500,
            interval: None,
        }];
        o.paid_at = Some((NOW - DAY) * 1000);
        o
    }

    fn products(e: &[Entitlement]) -> Vec<(&str, Option<i64>)> {
        e.iter().map(|e| (e.product.as_str(), e.until)).collect()
    }

    #[test]
    fn a_plan_switch_is_told_once_and_moves_access_between_products() {
        let before = sub(SubscriptionStatus::Active);
        let mut after = before.clone();
        after.items[0].price = "price_basic".into();
        after.items[0].product = "prod_basic".into();
        after.items[0].name = Some("Basic".into());
        assert_eq!(
            changes(Some(&before), &after),
            vec![SubscriptionNews::PlanChanged {
                from: "Pro (monthly)".into()
            }]
        );
        assert_eq!(changes(Some(&after), &after), vec![]);
        let access = subscription_access(Some(&before), &after, NOW);
        let told: Vec<(bool, &str, AccessReason)> = access
            .iter()
            .map(|a| (a.granted, a.product.as_str(), a.reason))
            .collect();
        assert_eq!(
            told,
            vec![
                (false, "prod_pro", AccessReason::PlanChanged),
                (true, "prod_basic", AccessReason::PlanChanged),
            ]
        );
        // Another price of the same product (monthly to yearly) changes no access.
        let mut yearly = before.clone();
        yearly.items[0].price = "price_pro_y".into();
        yearly.items[0].interval = "year".into();
        assert!(subscription_access(Some(&before), &yearly, NOW).is_empty());
        assert_eq!(changes(Some(&before), &yearly).len(), 1);
    }

    #[test]
    fn active_and_trialing_subscriptions_grant_until_their_period_or_trial_ends() {
        let active = sub(SubscriptionStatus::Active);
        let e = entitlements("ana@example.com", &[active], &[], NOW, 3);
        assert_eq!(products(&e), [("prod_pro", Some(NOW + 20 * DAY))]);
        let mut trial = sub(SubscriptionStatus::Trialing);
        trial.trial_end = Some(NOW + 5 * DAY);
        let e = entitlements("ana@example.com", &[trial], &[], NOW, 3);
        assert_eq!(products(&e), [("prod_pro", Some(NOW + 5 * DAY))]);
    }

    #[test]
    fn past_due_keeps_access_for_the_grace_period_only() {
        let mut s = sub(SubscriptionStatus::PastDue);
        s.invoices = vec![invoice("in_2", InvoiceStatus::Open, 1, NOW - 2 * DAY)];
        let e = entitlements("ana@example.com", std::slice::from_ref(&s), &[], NOW, 3);
        assert_eq!(products(&e), [("prod_pro", Some(NOW + DAY))]);
        let e = entitlements("ana@example.com", &[s], &[], NOW + 2 * DAY, 3);
        assert!(e.is_empty(), "grace is over: {e:?}");
    }

    #[test]
    fn ended_unpaid_and_other_customers_grant_nothing() {
        for st in [
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Unpaid,
            SubscriptionStatus::Incomplete,
            SubscriptionStatus::IncompleteExpired,
            SubscriptionStatus::Paused,
        ] {
            assert!(entitlements("ana@example.com", &[sub(st)], &[], NOW, 3).is_empty());
        }
        let e = entitlements(
            "bo@example.com",
            &[sub(SubscriptionStatus::Active)],
            &[],
            NOW,
            3,
        );
        assert!(e.is_empty());
    }

    #[test]
    fn one_time_purchases_grant_for_good_until_wholly_refunded() {
        let e = entitlements("ana@example.com", &[], &[order(OrderStatus::Paid)], NOW, 3);
        assert_eq!(products(&e), [("prod_book", None)]);
        assert_eq!(e[0].grant, Grant::Order { order: 1001 });
        assert_eq!(e[0].since, NOW - DAY);
        let partly = order(OrderStatus::PartiallyRefunded);
        assert_eq!(
            entitlements("ana@example.com", &[], &[partly], NOW, 3).len(),
            1
        );
        for st in [
            OrderStatus::Refunded,
            OrderStatus::Open,
            OrderStatus::Expired,
            OrderStatus::PaymentFailed,
        ] {
            assert!(entitlements("ana@example.com", &[], &[order(st)], NOW, 3).is_empty());
        }
    }

    #[test]
    fn news_follow_transitions_once() {
        use SubscriptionNews as N;
        let active = sub(SubscriptionStatus::Active);
        assert_eq!(changes(None, &active), [N::Started]);
        assert_eq!(changes(Some(&active), &active), []);

        let mut failing = sub(SubscriptionStatus::PastDue);
        failing.invoices = vec![invoice("in_2", InvoiceStatus::Open, 1, NOW)];
        assert_eq!(
            changes(Some(&active), &failing),
            [N::PaymentFailed(failing.invoices[0].clone())]
        );
        let mut again = failing.clone();
        again.invoices[0].attempt_count = 2;
        assert_eq!(
            changes(Some(&failing), &again),
            [N::PaymentFailed(again.invoices[0].clone())]
        );
        assert_eq!(changes(Some(&again), &again), []);

        let mut recovered = sub(SubscriptionStatus::Active);
        recovered.invoices = vec![invoice("in_2", InvoiceStatus::Paid, 2, NOW)];
        assert_eq!(changes(Some(&again), &recovered), [N::Recovered]);
        let mut renewed = recovered.clone();
        renewed
            .invoices
            .insert(0, invoice("in_3", InvoiceStatus::Paid, 1, NOW + DAY));
        assert_eq!(
            changes(Some(&recovered), &renewed),
            [N::Renewed(renewed.invoices[0].clone())]
        );

        let mut ending = active.clone();
        ending.cancel_at_period_end = true;
        assert_eq!(changes(Some(&active), &ending), [N::CancelScheduled]);
        assert_eq!(changes(Some(&ending), &active), [N::Resumed]);
        let mut trial = sub(SubscriptionStatus::Trialing);
        trial.trial_end = Some(NOW);
        assert_eq!(changes(None, &trial), [N::TrialStarted]);
        let mut converted = sub(SubscriptionStatus::Active);
        converted.invoices = vec![invoice("in_9", InvoiceStatus::Paid, 1, NOW)];
        assert_eq!(changes(Some(&trial), &converted), [N::TrialConverted]);
        let ended = sub(SubscriptionStatus::Canceled);
        assert_eq!(changes(Some(&ending), &ended), [N::Ended]);
        assert_eq!(changes(Some(&ended), &ended), []);
    }

    #[test]
    fn access_changes_follow_what_grants_access() {
        let reasons = |v: Vec<AccessChange>| {
            v.into_iter()
                .map(|c| (c.granted, c.reason, c.product))
                .collect::<Vec<_>>()
        };
        let active = sub(SubscriptionStatus::Active);
        assert_eq!(
            reasons(subscription_access(None, &active, NOW)),
            [(
                true,
                AccessReason::SubscriptionStarted,
                "prod_pro".to_owned()
            )]
        );
        assert!(subscription_access(Some(&active), &active, NOW).is_empty());
        let mut trial = sub(SubscriptionStatus::Trialing);
        trial.trial_end = Some(NOW + 5 * DAY);
        let started = subscription_access(None, &trial, NOW);
        assert_eq!(
            (started[0].reason, started[0].until),
            (AccessReason::TrialStarted, Some(NOW + 5 * DAY))
        );
        // Converting, failing a renewal (grace) and recovering change nothing.
        assert!(subscription_access(Some(&trial), &active, NOW).is_empty());
        let past_due = sub(SubscriptionStatus::PastDue);
        assert!(subscription_access(Some(&active), &past_due, NOW).is_empty());
        let unpaid = sub(SubscriptionStatus::Unpaid);
        assert_eq!(
            reasons(subscription_access(Some(&past_due), &unpaid, NOW)),
            [(
                false,
                AccessReason::SubscriptionUnpaid,
                "prod_pro".to_owned()
            )]
        );
        assert_eq!(
            reasons(subscription_access(Some(&unpaid), &active, NOW)),
            [(
                true,
                AccessReason::SubscriptionRecovered,
                "prod_pro".to_owned()
            )]
        );
        let mut ended = sub(SubscriptionStatus::Canceled);
        ended.ended_at = Some(NOW - 1);
        let revoked = subscription_access(Some(&active), &ended, NOW);
        assert_eq!(
            (revoked[0].reason, revoked[0].until),
            (AccessReason::SubscriptionCanceled, Some(NOW - 1))
        );
        assert!(subscription_access(Some(&ended), &ended, NOW).is_empty());
        assert!(subscription_access(None, &ended, NOW).is_empty());

        let open = order(OrderStatus::Open);
        let paid = order(OrderStatus::Paid);
        assert_eq!(
            reasons(order_access(&open, &paid, NOW)),
            [(true, AccessReason::OrderPaid, "prod_book".to_owned())]
        );
        let partly = order(OrderStatus::PartiallyRefunded);
        assert!(order_access(&paid, &partly, NOW).is_empty());
        let refunded = order(OrderStatus::Refunded);
        let revoked = order_access(&partly, &refunded, NOW);
        assert_eq!(
            (revoked[0].reason, revoked[0].until),
            (AccessReason::OrderRefunded, Some(NOW))
        );
        assert!(order_access(&open, &order(OrderStatus::Expired), NOW).is_empty());
        let mut sub_order = paid.clone();
        sub_order.subscription = Some("sub_1".into());
        assert!(order_access(&open, &sub_order, NOW).is_empty());
    }

    #[test]
    fn funds_become_available_per_day_net_of_fees_and_refunds_dont_count() {
        let charge = |available_on: i64, net: Option<i64>| crate::orders::ChargeInfo {
            id: "ch_1".into(),
            receipt_url: None,
            receipt_email: None,
            amount_captured: 4900,
            amount_refunded: 0,
            created: NOW,
            available_on: Some(available_on),
            net,
        };
        let mut a = order(OrderStatus::Paid);
        a.charge = Some(charge(NOW + 7 * DAY + 5, Some(4728)));
        let mut b = order(OrderStatus::PartiallyRefunded);
        b.charge = Some(charge(NOW + 7 * DAY + 99, None));
        let mut past = order(OrderStatus::Paid);
        past.charge = Some(charge(NOW - DAY, Some(100)));
        let up = funds_upcoming(&[a, b.clone(), past], NOW);
        let day = (NOW + 7 * DAY) - (NOW + 7 * DAY).rem_euclid(DAY);
        assert_eq!(up, [(day, Money::new(4728 + 4900, usd()))]);

        let paid_day = chrono::DateTime::from_timestamp(NOW - DAY, 0)
            .unwrap()
            .date_naive();
        let on = paid_on_day(&[b], paid_day);
        assert_eq!(on, [(Some(NOW + 7 * DAY + 99), Money::new(2_500, usd()))]);
    }

    #[test]
    fn payout_failures_say_what_to_fix() {
        assert!(payout_failure_in_words("account_closed").contains("new bank account"));
        assert!(payout_failure_in_words("something_new").contains("bank details"));
    }
}
