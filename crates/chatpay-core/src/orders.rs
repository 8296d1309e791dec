//! Selling: carts checked against the catalog, orders and what Stripe says about them.
//!
//! Plain values and pure functions. An order is created with its Checkout Session (the server
//! does that); from then on its state is *derived* from a fresh read of Stripe's objects (the
//! session, its PaymentIntent, the charge, its refunds, the invoice): [`Order::with_read`]. Events
//! only say *which* order to re-read, never what its state is, so duplicates and any order of
//! arrival end in the state Stripe holds. [`changes`] says what a builder should hear about a
//! transition (a new paid order, a failed payment, a refund), so a push happens on the
//! transition, which the store commits once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogProduct;
use crate::disputes::{DisputeInfo, DisputeOutcome, FraudWarningInfo};
use crate::domain::{Currency, Money};

/// Stripe's largest amount for a card charge in most currencies (99,999,999 minor units).
pub const MAX_AMOUNT: i64 = 99_999_999;
/// The most of one price a cart may hold.
pub const MAX_QUANTITY: i64 = 999;
/// The most lines a cart may hold (Stripe Checkout's limit for payment mode is 100).
pub const MAX_LINES: usize = 100;

/// One requested cart line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartItem {
    pub price: String,
    #[serde(default = "one")]
    pub quantity: i64,
}

fn one() -> i64 {
    1
}

/// Why a cart can't be checked out; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartError {
    /// `empty_cart`, `unknown_price`, `not_sellable`, `mixed_currencies`, `invalid_quantity`,
    /// `mixed_intervals`, `too_many_items`, `amount_too_large`.
    pub code: &'static str,
    pub message: String,
}

fn cart_error(code: &'static str, message: String) -> CartError {
    CartError { code, message }
}

/// A line of an order: what was bought, at what price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub price: String,
    pub product: String,
    pub name: String,
    pub quantity: i64,
    /// Per unit, in the currency's minor unit.
    pub unit_amount: i64,
    /// `unit_amount × quantity`.
    pub amount: i64,
    /// For a recurring price, its billing interval (`month`, `year`, …, with a count if not 1:
    /// `3 month`); the line is charged every interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// A cart that can be checked out: its lines, currency and total (the first payment's, for a
/// cart with recurring prices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCart {
    pub lines: Vec<OrderLine>,
    pub currency: Currency,
    pub total: i64,
}

impl CheckedCart {
    /// A cart with a recurring price starts a subscription (Checkout's subscription mode).
    pub fn recurring(&self) -> bool {
        self.lines.iter().any(|l| l.interval.is_some())
    }
}

/// Checks a cart against the synced catalog: every price known, active, one-time, of a product
/// that sells; one currency; quantities in range. Lines of the same price are merged.
pub fn check_cart(
    catalog: &[CatalogProduct],
    items: &[CartItem],
) -> Result<CheckedCart, CartError> {
    if items.is_empty() {
        return Err(cart_error(
            "empty_cart",
            "The cart is empty: add at least one item ({\"price\": \"price_…\", \"quantity\": 1})."
                .to_owned(),
        ));
    }
    if items.len() > MAX_LINES {
        return Err(cart_error(
            "too_many_items",
            format!(
                "A cart holds at most {MAX_LINES} lines; this one has {}.",
                items.len()
            ),
        ));
    }
    let mut merged: BTreeMap<&str, i64> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for item in items {
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(cart_error(
                "invalid_quantity",
                format!(
                    "The quantity of {} is {}: it must be a whole number from 1 to {MAX_QUANTITY}.",
                    item.price, item.quantity
                ),
            ));
        }
        let q = merged.entry(item.price.as_str()).or_insert_with(|| {
            order.push(item.price.as_str());
            0
        });
        *q += item.quantity;
        if *q > MAX_QUANTITY {
            return Err(cart_error(
                "invalid_quantity",
                format!(
                    "The cart holds {q} of {}: at most {MAX_QUANTITY}.",
                    item.price
                ),
            ));
        }
    }
    let mut lines = Vec::with_capacity(order.len());
    let mut currency: Option<(Currency, String)> = None;
    let mut total: i64 = 0;
    for price_id in order {
        let quantity = merged[price_id];
        let Some((product, price)) = catalog.iter().find_map(|p| {
            p.prices
                .iter()
                .find(|pr| pr.id == price_id)
                .map(|pr| (p, pr))
        }) else {
            return Err(cart_error(
                "unknown_price",
                format!(
                    "There is no price {price_id} in the synced catalog: check the id, or sync the catalog if you just added it in Stripe."
                ),
            ));
        };
        let name = if product.product.name.trim().is_empty() {
            product.product.id.clone()
        } else {
            product.product.name.clone()
        };
        if let Some(problem) = product.problems().into_iter().find(|p| p.blocking) {
            return Err(cart_error(
                "not_sellable",
                format!("'{name}' can't be sold: {}", problem.message),
            ));
        }
        if !price.active {
            return Err(cart_error(
                "not_sellable",
                format!(
                    "Price {price_id} of '{name}' is archived in Stripe: use one of its active prices."
                ),
            ));
        }
        let interval = price.recurring.as_ref().map(|r| {
            if r.interval_count == 1 {
                r.interval.clone()
            } else {
                format!("{} {}", r.interval_count, r.interval)
            }
        });
        if let Some(i) = &interval
            && let Some(other) = lines
                .iter()
                .find_map(|l: &OrderLine| l.interval.as_ref().filter(|o| *o != i))
        {
            // Stripe bills one subscription on one schedule.
            return Err(cart_error(
                "mixed_intervals",
                format!(
                    "The cart mixes billing intervals ({other} and {i}): one subscription renews on one schedule. Split it into two checkouts."
                ),
            ));
        }
        let (Some(unit_amount), Some(cur)) = (price.unit_amount, Currency::parse(&price.currency))
        else {
            return Err(cart_error(
                "not_sellable",
                format!("Price {price_id} of '{name}' has no fixed amount: it can't be charged."),
            ));
        };
        match &currency {
            None => currency = Some((cur, name.clone())),
            Some((c, first)) if *c != cur => {
                return Err(cart_error(
                    "mixed_currencies",
                    format!(
                        "The cart mixes currencies: '{first}' is in {} and '{name}' in {}. One checkout charges one currency: split it into two checkouts.",
                        c.as_str().to_ascii_uppercase(),
                        cur.as_str().to_ascii_uppercase()
                    ),
                ));
            }
            Some(_) => {}
        }
        let amount = unit_amount
            .checked_mul(quantity)
            .filter(|a| *a <= MAX_AMOUNT);
        total = match amount
            .and_then(|a| total.checked_add(a))
            .filter(|t| *t <= MAX_AMOUNT)
        {
            Some(t) => t,
            None => {
                return Err(cart_error(
                    "amount_too_large",
                    format!(
                        "The cart's total is more than Stripe charges at once ({}): split it into several checkouts.",
                        Money::new(MAX_AMOUNT, cur)
                    ),
                ));
            }
        };
        lines.push(OrderLine {
            price: price_id.to_owned(),
            product: product.product.id.clone(),
            name,
            quantity,
            unit_amount,
            amount: unit_amount * quantity,
            interval,
        });
    }
    let (currency, _) = currency.expect("a non-empty cart has a currency");
    Ok(CheckedCart {
        lines,
        currency,
        total,
    })
}

/// An order's status, following Stripe's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for the customer on the checkout page.
    Open,
    Paid,
    /// The last attempt was declined; the customer may still retry on the same page.
    PaymentFailed,
    /// The checkout expired unpaid.
    Expired,
    PartiallyRefunded,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Open,
        OrderStatus::Paid,
        OrderStatus::PaymentFailed,
        OrderStatus::Expired,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Paid => "paid",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Expired => "expired",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Money was received (whatever was refunded since).
    pub fn was_paid(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        )
    }

    /// In plain words.
    pub fn label(self) -> &'static str {
        match self {
            OrderStatus::Open => "waiting for payment",
            OrderStatus::Paid => "paid",
            OrderStatus::PaymentFailed => "payment failed",
            OrderStatus::Expired => "checkout expired",
            OrderStatus::PartiallyRefunded => "partially refunded",
            OrderStatus::Refunded => "refunded",
        }
    }
}

/// Why the last payment attempt failed, as Stripe said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    pub message: String,
}

impl PaymentError {
    /// What happened, for the builder: Stripe's message for the customer where it is plain,
    /// a plain sentence where Stripe's is written for developers.
    pub fn in_plain_words(&self) -> String {
        let code = self.decline_code.as_deref().or(self.code.as_deref());
        match code {
            Some("payment_intent_authentication_failure") => {
                "The customer's bank couldn't confirm the payment: 3D Secure authentication failed or was cancelled.".to_owned()
            }
            Some("insufficient_funds") => "The card has insufficient funds.".to_owned(),
            Some("lost_card") | Some("stolen_card") => {
                "The card was declined (the bank reported it lost or stolen).".to_owned()
            }
            Some("expired_card") => "The card has expired.".to_owned(),
            Some("incorrect_cvc") => "The card's security code (CVC) was wrong.".to_owned(),
            Some("incorrect_number") => "The card number was wrong.".to_owned(),
            Some("processing_error") => {
                "The card couldn't be processed; trying again usually works.".to_owned()
            }
            Some("generic_decline") | Some("card_declined") | Some("do_not_honor") => {
                "The card was declined by the customer's bank.".to_owned()
            }
            _ => self.message.clone(),
        }
    }
}

/// A refund of an order, as Stripe holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundInfo {
    pub id: String,
    pub amount: i64,
    /// pending, requires_action, succeeded, failed or canceled.
    pub status: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// The idempotency key chatpay made it with (its `chatpay_request` metadata); `None` for a
    /// refund made elsewhere (the Stripe Dashboard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl RefundInfo {
    /// Whether the money is (or is on its way) back with the customer.
    pub fn counts(&self) -> bool {
        matches!(
            self.status.as_str(),
            "pending" | "succeeded" | "requires_action"
        )
    }
}

/// An order's invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceInfo {
    pub id: String,
    #[serde(default)]
    pub number: Option<String>,
    pub status: String,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    #[serde(default)]
    pub invoice_pdf: Option<String>,
}

/// The successful charge of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeInfo {
    pub id: String,
    #[serde(default)]
    pub receipt_url: Option<String>,
    #[serde(default)]
    pub receipt_email: Option<String>,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    /// Unix seconds.
    pub created: i64,
    /// When the net funds become available (the balance transaction's `available_on`), seconds.
    #[serde(default)]
    pub available_on: Option<i64>,
    /// What reaches the balance after Stripe's fees (the balance transaction's `net`).
    #[serde(default)]
    pub net: Option<i64>,
}

/// What Stripe holds about an order right now, read in one go (the gateway's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeOrderRead {
    /// The session's `status`: open, complete, expired.
    pub session_status: String,
    /// The session's `payment_status`: paid, unpaid, no_payment_required.
    pub payment_status: String,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// The PaymentIntent's status.
    #[serde(default)]
    pub payment_intent_status: Option<String>,
    #[serde(default)]
    pub last_payment_error: Option<PaymentError>,
    #[serde(default)]
    pub charge: Option<ChargeInfo>,
    #[serde(default)]
    pub refunds: Vec<RefundInfo>,
    #[serde(default)]
    pub invoice: Option<InvoiceInfo>,
    /// The subscription a subscription-mode checkout started.
    #[serde(default)]
    pub subscription: Option<String>,
    /// The session's `amount_total` (what the customer paid or pays at checkout: 0 for a
    /// subscription that starts with a free trial).
    #[serde(default)]
    pub amount_total: Option<i64>,
    /// The charge's dispute (the newest), when it is disputed.
    #[serde(default)]
    pub dispute: Option<DisputeInfo>,
    /// The charge's early fraud warning (the newest), when the issuer sent one.
    #[serde(default)]
    pub fraud_warning: Option<FraudWarningInfo>,
}

/// An order: a checkout and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// chatpay's id (`ord_…`); idempotency keys derive from it.
    pub id: String,
    /// The short number per project and mode (#1001, #1002, …); 0 until stored.
    pub number: i64,
    pub status: OrderStatus,
    pub currency: Currency,
    pub amount_total: i64,
    pub lines: Vec<OrderLine>,
    #[serde(default)]
    pub customer_email: Option<String>,
    pub checkout_session: String,
    #[serde(default)]
    pub checkout_url: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub last_payment_error: Option<PaymentError>,
    #[serde(default)]
    pub charge: Option<ChargeInfo>,
    #[serde(default)]
    pub refunds: Vec<RefundInfo>,
    #[serde(default)]
    pub invoice: Option<InvoiceInfo>,
    /// The subscription it started, for a checkout with recurring prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    #[serde(default)]
    pub paid_at: Option<i64>,
    pub updated_at: i64,
    /// The charge's dispute, once there is one (its outcome: [`DisputeInfo::outcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<DisputeInfo>,
    /// The issuer's early fraud warning, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraud_warning: Option<FraudWarningInfo>,
}

impl Order {
    /// An open order with no lines, for tests elsewhere.
    #[doc(hidden)]
    pub fn new_for_tests(id: &str, number: i64, currency: Currency, amount_total: i64) -> Order {
        Order {
            id: id.to_owned(),
            number,
            status: OrderStatus::Open,
            currency,
            amount_total,
            lines: Vec::new(),
            customer_email: None,
            checkout_session: format!("cs_{id}"),
            checkout_url: None,
            expires_at: 0,
            payment_intent: None,
            last_payment_error: None,
            charge: None,
            refunds: Vec::new(),
            invoice: None,
            subscription: None,
            created_at: 0,
            paid_at: None,
            updated_at: 0,
            dispute: None,
            fraud_warning: None,
        }
    }

    /// Whether the order gives its buyer access to what it sold: paid, not wholly refunded,
    /// and not lost in a dispute (a checkout that started a subscription: its subscription does).
    pub fn grants_access(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded
        ) && self
            .dispute
            .as_ref()
            .is_none_or(|d| d.outcome() != DisputeOutcome::Lost)
    }

    pub fn total(&self) -> Money {
        Money::new(self.amount_total, self.currency)
    }

    pub fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency)
    }

    /// What has been refunded, or is being refunded: the refunds as read, not the charge's
    /// `amount_refunded` (read a moment earlier, it may not count a refund the list has), so
    /// that what is told of one read adds up.
    pub fn refunded(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.counts())
            .map(|r| r.amount)
            .sum()
    }

    /// What can still be refunded.
    pub fn refundable(&self) -> i64 {
        if !self.status.was_paid() {
            return 0;
        }
        let paid = self
            .charge
            .as_ref()
            .map_or(self.amount_total, |c| c.amount_captured);
        (paid - self.refunded()).max(0)
    }

    /// "2 × Course, 1 × Ebook".
    /// What a discount code took off a one-time order: its lines' amounts less what the
    /// checkout charged (0 when nothing was taken off; a subscription's first total is its
    /// first invoice, which a trial also lowers, so it is not counted here).
    pub fn discount(&self) -> i64 {
        if self.subscription.is_some() || self.lines.iter().any(|l| l.interval.is_some()) {
            return 0;
        }
        let lines: i64 = self.lines.iter().map(|l| l.amount).sum();
        (lines - self.amount_total).max(0)
    }

    pub fn summary(&self) -> String {
        self.lines
            .iter()
            .map(|l| format!("{} × {}", l.quantity, l.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The order as Stripe's fresh read says it is now. `now_ms` stamps the change.
    pub fn with_read(&self, read: &StripeOrderRead, now_ms: i64) -> Order {
        let mut next = self.clone();
        if read.customer_email.is_some() {
            next.customer_email = read.customer_email.clone();
        }
        next.payment_intent = read.payment_intent.clone().or(next.payment_intent);
        next.charge = read.charge.clone();
        next.refunds = read.refunds.clone();
        next.refunds
            .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        next.invoice = read.invoice.clone();
        // A dispute or a warning, once seen, stays (a read never un-disputes a charge).
        if read.dispute.is_some() {
            next.dispute = read.dispute.clone();
        }
        if read.fraud_warning.is_some() {
            next.fraud_warning = read.fraud_warning.clone();
        }
        if read.subscription.is_some() {
            next.subscription = read.subscription.clone();
        }
        if let Some(total) = read.amount_total {
            next.amount_total = total;
        }
        // A checkout with nothing to pay now (a free trial) is complete without a payment.
        let nothing_due =
            read.session_status == "complete" && read.payment_status == "no_payment_required";
        let paid = read.payment_status == "paid"
            || nothing_due
            || read.payment_intent_status.as_deref() == Some("succeeded");
        next.status = if paid {
            let refunded = next.refunded();
            let captured = next
                .charge
                .as_ref()
                .map_or(next.amount_total, |c| c.amount_captured);
            if refunded >= captured && refunded > 0 {
                OrderStatus::Refunded
            } else if refunded > 0 {
                OrderStatus::PartiallyRefunded
            } else {
                OrderStatus::Paid
            }
        } else if read.session_status == "expired" {
            OrderStatus::Expired
        } else if read.last_payment_error.is_some() {
            OrderStatus::PaymentFailed
        } else {
            OrderStatus::Open
        };
        next.last_payment_error = if paid {
            None
        } else {
            read.last_payment_error.clone()
        };
        if paid && next.paid_at.is_none() {
            next.paid_at = Some(
                next.charge
                    .as_ref()
                    .map_or(now_ms, |c| c.created.saturating_mul(1000)),
            );
        }
        if next != *self {
            next.updated_at = now_ms;
        }
        next
    }
}

/// Something a builder hears about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderNews {
    /// The order was paid (told once, when it first is).
    Paid,
    /// A payment attempt failed; the customer may retry.
    PaymentFailed(PaymentError),
    /// A refund appeared or changed status.
    Refund(RefundInfo),
    /// The charge was disputed (told once, when the dispute first appears).
    Disputed(DisputeInfo),
    /// The dispute was decided: won or lost.
    DisputeClosed(DisputeInfo),
    /// The issuer warned of fraud (told once).
    FraudWarning(FraudWarningInfo),
}

/// What changed between two versions of an order that a builder should be told.
pub fn changes(before: &Order, after: &Order) -> Vec<OrderNews> {
    let mut out = Vec::new();
    if after.status.was_paid() && !before.status.was_paid() {
        out.push(OrderNews::Paid);
    }
    if after.status == OrderStatus::PaymentFailed
        && let Some(err) = &after.last_payment_error
        && before.last_payment_error.as_ref() != Some(err)
    {
        out.push(OrderNews::PaymentFailed(err.clone()));
    }
    for r in &after.refunds {
        let old = before.refunds.iter().find(|b| b.id == r.id);
        if old.is_none_or(|o| o.status != r.status) {
            out.push(OrderNews::Refund(r.clone()));
        }
    }
    if let Some(w) = &after.fraud_warning
        && before.fraud_warning.as_ref().is_none_or(|b| b.id != w.id)
    {
        out.push(OrderNews::FraudWarning(w.clone()));
    }
    if let Some(d) = &after.dispute {
        let old = before.dispute.as_ref().filter(|b| b.id == d.id);
        if old.is_none() {
            out.push(OrderNews::Disputed(d.clone()));
        }
        let was = old.map_or(DisputeOutcome::Disputed, DisputeInfo::outcome);
        if d.outcome() != DisputeOutcome::Disputed && d.outcome() != was {
            out.push(OrderNews::DisputeClosed(d.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{PriceData, ProductData, Recurrence};

    fn product(id: &str, name: &str, prices: Vec<PriceData>) -> CatalogProduct {
        CatalogProduct {
            product: ProductData {
                id: id.into(),
                name: name.into(),
                active: true,
                description: None,
                default_price: None,
                updated: 1,
            },
            prices,
            sold: false,
        }
    }

    fn price(id: &str, product: &str, currency: &str, amount: i64) -> PriceData {
        PriceData {
            id: id.into(),
            product: product.into(),
            active: true,
            currency: currency.into(),
            unit_amount: Some(amount),
            kind: "one_time".into(),
            recurring: None,
            nickname: None,
        }
    }

    fn catalog() -> Vec<CatalogProduct> {
        let mut plan = price("price_plan", "prod_plan", "usd", 900);
        plan.kind = "recurring".into();
        plan.recurring = Some(Recurrence {
            interval: "month".into(),
            interval_count: 1,
            usage_type: None,
        });
        let mut yearly = plan.clone();
        yearly.id = "price_plan_yearly".into();
        yearly.recurring = Some(Recurrence {
            interval: "year".into(),
            interval_count: 1,
            usage_type: None,
        });
        let mut archived = price("price_old", "prod_course", "usd", 3900);
        archived.active = false;
        vec![
            product(
                "prod_course",
                "Course",
                vec![price("price_course", "prod_course", "usd", 4900), archived],
            ),
            product(
                "prod_ebook",
                "Ebook",
                vec![price("price_ebook", "prod_ebook", "usd", 1500)],
            ),
            product(
                "prod_eu",
                "Atelier",
                vec![price("price_eu", "prod_eu", "eur", 2000)],
            ),
            product("prod_plan", "Pro plan", vec![plan, yearly]),
            product("prod_none", "Masterclass", vec![]),
        ]
    }

    fn item(price: &str, quantity: i64) -> CartItem {
        CartItem {
            price: price.into(),
            quantity,
        }
    }

    #[test]
    fn carts_are_checked_against_the_catalog() {
        let c = catalog();
        let ok = check_cart(
            &c,
            &[
                item("price_course", 2),
                item("price_ebook", 1),
                item("price_course", 1),
            ],
        )
        .unwrap();
        assert_eq!(ok.total, 3 * 4900 + 1500);
        assert!(!ok.recurring());
        let sub = check_cart(&c, &[item("price_plan", 1), item("price_ebook", 1)]).unwrap();
        assert!(sub.recurring(), "a recurring price makes a subscription");
        assert_eq!(
            sub.total,
            900 + 1500,
            "the first invoice carries the one-time item"
        );
        assert_eq!(sub.lines[0].interval.as_deref(), Some("month"));
        assert_eq!(ok.lines.len(), 2, "lines of one price merge");
        assert_eq!(ok.lines[0].quantity, 3);
        let cases: &[(&[CartItem], &str)] = &[
            (&[], "empty_cart"),
            (&[item("price_nope", 1)], "unknown_price"),
            (&[item("price_old", 1)], "not_sellable"),
            (
                &[item("price_course", 1), item("price_eu", 1)],
                "mixed_currencies",
            ),
            (&[item("price_course", 0)], "invalid_quantity"),
            (&[item("price_course", 1000)], "invalid_quantity"),
            (
                &[item("price_course", 600), item("price_course", 600)],
                "invalid_quantity",
            ),
            (
                &[item("price_plan", 1), item("price_plan_yearly", 1)],
                "mixed_intervals",
            ),
        ];
        for (items, code) in cases {
            assert_eq!(check_cart(&c, items).unwrap_err().code, *code, "{items:?}");
        }
        let mut big = catalog();
        big[0].prices[0].unit_amount = Some(MAX_AMOUNT);
        assert_eq!(
            check_cart(&big, &[item("price_course", 2)])
                .unwrap_err()
                .code,
            "amount_too_large"
        );
    }

    fn order() -> Order {
        Order {
            id: "ord_1".into(),
            number: 1001,
            status: OrderStatus::Open,
            currency: Currency::parse("usd").unwrap(),
            amount_total: 9800,
            lines: vec![],
            customer_email: None,
            checkout_session: "cs_1".into(),
            checkout_url: None,
            expires_at: 0,
            payment_intent: None,
            last_payment_error: None,
            charge: None,
            refunds: vec![],
            invoice: None,
            subscription: None,
            created_at: 0,
            paid_at: None,
            updated_at: 0,
            dispute: None,
            fraud_warning: None,
        }
    }

    #[test]
    fn a_dispute_is_told_once_opened_and_once_decided() {
        let dispute = |status: &str| DisputeInfo {
            id: "dp_1".into(),
            amount: 9800,
            reason: "fraudulent".into(),
            status: status.into(),
            due_by: Some(100),
            fee: 1500,
            submission_count: 0,
            created: 1,
        };
        let mut paid_read = read("paid");
        let paid = order().with_read(&paid_read, 1);
        assert!(paid.grants_access());
        paid_read.dispute = Some(dispute("needs_response"));
        let disputed = paid.with_read(&paid_read, 2);
        assert_eq!(
            changes(&paid, &disputed),
            vec![OrderNews::Disputed(dispute("needs_response"))]
        );
        assert!(disputed.grants_access(), "access stays while it is open");
        assert!(changes(&disputed, &disputed.with_read(&paid_read, 3)).is_empty());
        paid_read.dispute = Some(dispute("under_review"));
        let review = disputed.with_read(&paid_read, 4);
        assert!(
            changes(&disputed, &review).is_empty(),
            "a review is not news"
        );
        paid_read.dispute = Some(dispute("lost"));
        let lost = review.with_read(&paid_read, 5);
        assert_eq!(
            changes(&review, &lost),
            vec![OrderNews::DisputeClosed(dispute("lost"))]
        );
        assert!(!lost.grants_access(), "a lost dispute ends access");
        assert!(changes(&lost, &lost.with_read(&paid_read, 6)).is_empty());
        // Seen for the first time already decided: opened and decided, in that order.
        assert_eq!(
            changes(&paid, &lost).len(),
            2,
            "a dispute first read when decided is told opened and decided"
        );
        // A later read without the dispute (a stale one) does not forget it.
        paid_read.dispute = None;
        assert_eq!(lost.with_read(&paid_read, 7).dispute, lost.dispute);
    }

    fn read(payment_status: &str) -> StripeOrderRead {
        StripeOrderRead {
            session_status: "open".into(),
            payment_status: payment_status.into(),
            customer_email: Some("ana@example.com".into()),
            payment_intent: Some("pi_1".into()),
            payment_intent_status: None,
            last_payment_error: None,
            charge: None,
            refunds: vec![],
            invoice: None,
            subscription: None,
            amount_total: None,
            dispute: None,
            fraud_warning: None,
        }
    }

    fn charge(refunded: i64) -> ChargeInfo {
        ChargeInfo {
            id: "ch_1".into(),
            receipt_url: None,
            receipt_email: None,
            amount_captured: 9800,
            amount_refunded: refunded,
            created: 100,
            available_on: None,
            net: None,
        }
    }

    fn refund(id: &str, amount: i64, status: &str) -> RefundInfo {
        RefundInfo {
            id: id.into(),
            amount,
            status: status.into(),
            failure_reason: None,
            created: 200,
            request: None,
        }
    }

    #[test]
    fn status_follows_the_read_and_news_is_told_on_transitions() {
        let open = order();
        let mut declined = read("unpaid");
        declined.last_payment_error = Some(PaymentError {
            code: Some("card_declined".into()),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
        });
        let failed = open.with_read(&declined, 5);
        assert_eq!(failed.status, OrderStatus::PaymentFailed);
        assert!(matches!(
            changes(&open, &failed)[..],
            [OrderNews::PaymentFailed(_)]
        ));
        assert!(
            changes(&failed, &failed.with_read(&declined, 6)).is_empty(),
            "same decline again is not news"
        );

        let mut paid_read = read("paid");
        paid_read.charge = Some(charge(0));
        let paid = failed.with_read(&paid_read, 7);
        assert_eq!(paid.status, OrderStatus::Paid);
        assert_eq!(paid.paid_at, Some(100_000));
        assert_eq!(paid.last_payment_error, None);
        assert_eq!(changes(&failed, &paid), vec![OrderNews::Paid]);
        assert!(
            changes(&paid, &paid.with_read(&paid_read, 8)).is_empty(),
            "paid is told once"
        );
        assert_eq!(paid.refundable(), 9800);

        let mut part = paid_read.clone();
        part.charge = Some(charge(500));
        part.refunds = vec![refund("re_1", 500, "succeeded")];
        let partially = paid.with_read(&part, 9);
        assert_eq!(partially.status, OrderStatus::PartiallyRefunded);
        assert_eq!(partially.refundable(), 9300);
        assert_eq!(
            changes(&paid, &partially),
            vec![OrderNews::Refund(refund("re_1", 500, "succeeded"))]
        );

        let mut full = part.clone();
        full.charge = Some(charge(9800));
        full.refunds.push(refund("re_2", 9300, "succeeded"));
        let refunded = partially.with_read(&full, 10);
        assert_eq!(refunded.status, OrderStatus::Refunded);
        assert_eq!(refunded.refundable(), 0);

        // A refund that fails gives the money back to the balance: partially refunded again.
        let mut failed_refund = full.clone();
        failed_refund.charge = Some(charge(500));
        failed_refund.refunds[1].status = "failed".into();
        let back = refunded.with_read(&failed_refund, 11);
        assert_eq!(back.status, OrderStatus::PartiallyRefunded);
        assert!(
            matches!(&changes(&refunded, &back)[..], [OrderNews::Refund(r)] if r.status == "failed")
        );

        // An expired unpaid session; a paid one never turns expired.
        let mut expired = read("unpaid");
        expired.session_status = "expired".into();
        assert_eq!(open.with_read(&expired, 12).status, OrderStatus::Expired);
        assert!(changes(&open, &open.with_read(&expired, 12)).is_empty());
    }
}
