//! Billing's rules, from Stripe's Billing documentation: starting a subscription (from a
//! subscription-mode Checkout Session or `POST /v1/subscriptions`), its first invoice, trials,
//! renewals at the end of each period, failed payments and their retries, cancellation, and the
//! time that drives them (the sandbox clock, or a test clock's frozen time).
//!
//! - A subscription's first invoice (`billing_reason=subscription_create`) is finalized and paid
//!   at once; with a trial its recurring lines cost 0 and only one-time items are charged.
//! - `customer.subscription.trial_will_end` fires 3 days before `trial_end` (at once for a
//!   shorter trial); at `trial_end` the subscription turns `active` and its first real invoice
//!   (`subscription_cycle`) is created.
//! - At the end of a period a draft invoice (`subscription_cycle`) is created; an hour later it
//!   is finalized and charged to the saved card, as Stripe does for `auto_advance` invoices.
//! - A failed renewal makes the subscription `past_due`; retries follow [`RETRY_DAYS`] after the
//!   first attempt; after the last one the subscription is canceled (Stripe's default), marked
//!   `unpaid`, or left `past_due`, per the account's setting ([`AfterRetries`]). Paying the open
//!   invoice (API, hosted invoice page) makes it `active` again.
//! - An `incomplete` subscription whose first invoice is not paid within 23 hours becomes
//!   `incomplete_expired` and the invoice is voided.
//! - `cancel_at_period_end` cancels when the period ends; `DELETE` cancels now; either emits
//!   `customer.subscription.deleted`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::Call;
use super::billing::{AfterRetries, Customer, SavedCard, SubItem, SubStatus, Subscription};
use super::cards::{self, Behavior, Decline};
use super::checkout::{self, Ctx, PayInput, PayOutcome};
use super::discounts::{Discount, Line, allocate};
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::money;
use super::sales::{
    BalanceTransaction, CardDetails, Charge, CheckoutSession, FeeDetail, IntentStatus, Invoice,
    InvoiceLine, InvoiceStatus, LineItem, Outcome, PaymentError, PaymentIntent, PendingAuth,
    SessionStatus, SubscriptionData,
};
use super::shapes_billing as sb;
use super::shapes_sales as ss;
use super::state::{PLATFORM, Tx, previous_attributes};

/// Retries of a failed renewal, in days after the first attempt (Stripe's custom retry
/// schedule allows up to three; Smart Retries choose their own times within a window).
pub(crate) const RETRY_DAYS: [i64; 3] = [3, 5, 7];
/// An `incomplete` subscription expires this long after creation.
pub(crate) const INCOMPLETE_TTL: i64 = 23 * 3600;
/// A renewal's draft invoice is finalized and charged this long after it is created.
pub(crate) const FINALIZE_AFTER: i64 = 3600;
/// `customer.subscription.trial_will_end` fires this long before the trial ends.
pub(crate) const TRIAL_WILL_END_BEFORE: i64 = 3 * 86_400;

const DAY: i64 = 86_400;

// ---- checkout ----

/// Checks a subscription-mode session's line items and `subscription_data`.
pub(crate) fn checkout_subscription_data(
    p: &Params<'_>,
    call: &Call<'_>,
    line_items: &[LineItem],
    now: i64,
) -> ApiResult<SubscriptionData> {
    let recurring: Vec<_> = line_items
        .iter()
        .filter_map(|li| li.price.recurring.as_ref())
        .collect();
    let Some(first) = recurring.first() else {
        return Err(ApiError::bad_param(
            "line_items",
            "You must provide at least one recurring price in `subscription` mode when using \
             prices.",
        ));
    };
    if recurring
        .iter()
        .any(|r| r.interval != first.interval || r.interval_count != first.interval_count)
    {
        return Err(ApiError::bad_param(
            "line_items",
            "Checkout does not support multiple prices with different billing intervals.",
        ));
    }
    let mut data = SubscriptionData::default();
    let Some(sd) = p.map(
        "subscription_data",
        &[
            "application_fee_percent",
            "billing_cycle_anchor",
            "billing_mode",
            "default_tax_rates",
            "description",
            "invoice_settings",
            "metadata",
            "on_behalf_of",
            "proration_behavior",
            "transfer_data",
            "trial_end",
            "trial_period_days",
            "trial_settings",
        ],
    )?
    else {
        return Ok(data);
    };
    for k in [
        "billing_cycle_anchor",
        "billing_mode",
        "default_tax_rates",
        "invoice_settings",
        "on_behalf_of",
        "proration_behavior",
        "transfer_data",
        "trial_settings",
    ] {
        if sd.contains(k) {
            return Err(ApiError::bad_param(
                &sd.name(k),
                format!("The chatpay sandbox does not support `subscription_data[{k}]`."),
            ));
        }
    }
    if let Some(days) = sd.int("trial_period_days")? {
        if !(1..=730).contains(&days) {
            return Err(ApiError::bad_param(
                "subscription_data[trial_period_days]",
                "The trial period must be between 1 and 730 days.",
            ));
        }
        data.trial_period_days = Some(days);
    }
    if let Some(end) = sd.int("trial_end")? {
        if data.trial_period_days.is_some() {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: subscription_data[trial_end], \
                 subscription_data[trial_period_days].",
            )
            .code("parameters_exclusive"));
        }
        if end < now + 2 * DAY {
            return Err(ApiError::bad_param(
                "subscription_data[trial_end]",
                "`subscription_data[trial_end]` must be at least 2 days in the future.",
            ));
        }
        data.trial_end = Some(end);
    }
    if let Some(raw) = sd.str("application_fee_percent")? {
        if call.scope.is_none() {
            return Err(ApiError::bad_param(
                "subscription_data[application_fee_percent]",
                "Can only apply an application_fee_percent when the request is made on behalf \
                 of another account (using an OAuth key or the Stripe-Account header).",
            ));
        }
        let pct: f64 = raw
            .parse()
            .ok()
            .filter(|p: &f64| (0.0..=100.0).contains(p))
            .ok_or_else(|| {
                ApiError::bad_param(
                    "subscription_data[application_fee_percent]",
                    "application_fee_percent must be a number between 0 and 100.",
                )
            })?;
        data.application_fee_percent = Some(pct);
    }
    data.description = sd.text("description")?;
    if let Some(m) = sd.metadata("metadata")? {
        m.apply(&mut data.metadata, "subscription_data[metadata]")?;
    }
    Ok(data)
}

/// A card as saved on a customer: its details and what charging it will do.
pub(crate) fn saved_card(
    pm: String,
    details: CardDetails,
    behavior: &Behavior,
    now: i64,
) -> SavedCard {
    let fails_with = match behavior {
        Behavior::ChargeFails => Some(cards::CHARGE_FAILS),
        Behavior::Decline(d) => Some(d.clone()),
        _ => None,
    };
    let after_charge = match behavior {
        Behavior::Then(after) => Some(*after),
        _ => None,
    };
    SavedCard {
        id: pm,
        card: details,
        fails_with: fails_with.map(|d| d.decline_code.to_owned()),
        created: now,
        after_charge,
    }
}

/// The decline a saved card answers with (the decline code it was saved with).
fn saved_decline(code: &str) -> Decline {
    match code {
        "insufficient_funds" => Decline {
            code: "card_declined",
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
            param: None,
        },
        "live_mode_test_card" => cards::TEST_CARD_IN_LIVE_MODE,
        "expired_card" => Decline {
            code: "expired_card",
            decline_code: "expired_card",
            message: "Your card has expired.",
            param: Some("exp_month"),
        },
        _ => cards::CHARGE_FAILS,
    }
}

/// Paying a subscription-mode session on the hosted page (or the pay control).
pub(crate) fn checkout_pay(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session: &CheckoutSession,
    input: PayInput,
    pm: String,
    details: CardDetails,
) -> PayOutcome {
    if session.pending_auth.is_some() {
        return PayOutcome::RequiresAction;
    }
    let behavior = cards::behavior_in(&input.card, tx.livemode());
    let due_now = session.amount_due_now(tx.now) > 0;
    let decline = match &behavior {
        Behavior::Decline(d) => Some(d.clone()),
        Behavior::ChargeFails if due_now => Some(cards::CHARGE_FAILS),
        _ => None,
    };
    if let Some(d) = decline {
        if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
            s.last_error = Some(d.message.to_owned());
        }
        return PayOutcome::Declined {
            code: d.decline_code.to_owned(),
            message: d.message.to_owned(),
        };
    }
    if behavior == Behavior::Authenticate {
        if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
            s.pending_auth = Some(PendingAuth {
                card: details,
                email: input.email,
                name: input.name,
                payment_method: pm,
            });
        }
        return PayOutcome::RequiresAction;
    }
    let card = saved_card(pm, details, &behavior, tx.now);
    complete_checkout(tx, ctx, session, card, &input.email, &input.name)
}

/// The 3D Secure step of a subscription-mode session.
pub(crate) fn checkout_authenticate(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session: &CheckoutSession,
    complete: bool,
) -> PayOutcome {
    let Some(pending) = session.pending_auth.clone() else {
        return PayOutcome::Declined {
            code: "payment_intent_unexpected_state".into(),
            message: "Nothing is waiting for authentication.".into(),
        };
    };
    if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
        s.pending_auth = None;
    }
    if !complete {
        let message = "We are unable to authenticate your payment method. Please choose a \
                       different payment method and try again.";
        if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
            s.last_error = Some(message.into());
        }
        return PayOutcome::Declined {
            code: "payment_intent_authentication_failure".into(),
            message: message.into(),
        };
    }
    // Authenticated once, the card is set up for the renewals (off-session) too.
    let card = saved_card(
        pending.payment_method,
        pending.card,
        &Behavior::Succeed,
        tx.now,
    );
    complete_checkout(tx, ctx, session, card, &pending.email, &pending.name)
}

fn complete_checkout(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session: &CheckoutSession,
    card: SavedCard,
    email: &str,
    name: &str,
) -> PayOutcome {
    let live = tx.livemode();
    let account = session.account.clone();
    let customer = match &session.customer {
        Some(c) => {
            set_default_card(tx, c, card.clone());
            c.clone()
        }
        None => create_customer(
            tx,
            account.as_deref(),
            Some(email.to_owned()),
            Some(name.to_owned()),
            None,
            Some(card.clone()),
            BTreeMap::new(),
        ),
    };
    let data = session.subscription_data.clone().unwrap_or_default();
    let clock = customer_clock(tx, &customer);
    let t = clock_now(tx, clock.as_deref());
    let items: Vec<SubItem> = session
        .line_items
        .iter()
        .filter(|li| li.price.recurring.is_some())
        .map(|li| SubItem {
            id: ids::subscription_item(),
            created: t,
            price: li.price.clone(),
            quantity: li.quantity,
            product_name: li.description.clone(),
        })
        .collect();
    let one_time: Vec<LineItem> = session
        .line_items
        .iter()
        .filter(|li| li.price.recurring.is_none())
        .cloned()
        .collect();
    let trial_end = session.trial_end(t);
    let start = Start {
        account: account.clone(),
        customer: customer.clone(),
        items,
        one_time,
        trial_end,
        card: Some(card.clone()),
        metadata: data.metadata,
        description: data.description,
        application_fee_percent: data.application_fee_percent,
        attempt: true,
        discount: session.discount.clone(),
    };
    let started = start_subscription(tx, ctx, start);
    let paid = matches!(started.paid, Some(true)) && started.amount > 0;
    let redirect_to = {
        let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) else {
            return PayOutcome::NotOpen(SessionStatus::Expired);
        };
        s.status = SessionStatus::Complete;
        s.paid = paid;
        s.customer = Some(customer);
        s.subscription = Some(started.subscription);
        s.invoice = Some(started.invoice);
        s.customer_details_email = Some(email.to_owned());
        s.customer_name = Some(name.to_owned());
        s.last_error = None;
        let s = s.clone();
        let out = ss::checkout_session(&s, live, ctx.base_url);
        tx.emit("checkout.session.completed", account.as_deref(), out, None);
        if let Some(d) = &s.discount {
            super::discounts_api::redeem(tx, account.as_deref(), d);
        }
        s.success_url
            .unwrap_or_default()
            .replace("{CHECKOUT_SESSION_ID}", &s.id)
    };
    PayOutcome::Succeeded { redirect_to }
}

// ---- customers ----

fn invoice_prefix() -> String {
    ids::random(8)
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Creates a customer (`customer.created`); returns its id.
pub(crate) fn create_customer(
    tx: &mut Tx<'_>,
    account: Option<&str>,
    email: Option<String>,
    name: Option<String>,
    test_clock: Option<String>,
    card: Option<SavedCard>,
    metadata: BTreeMap<String, String>,
) -> String {
    let live = tx.livemode();
    let created = clock_now(tx, test_clock.as_deref());
    let customer = Customer {
        id: ids::customer(),
        account: account.map(str::to_owned),
        created,
        email,
        name,
        description: None,
        metadata,
        default_card: card,
        test_clock,
        invoice_prefix: invoice_prefix(),
    };
    let out = sb::customer(&customer, live);
    let id = customer.id.clone();
    let seq = tx.st.seq();
    tx.ms().billing.customers.insert(seq, customer);
    tx.emit("customer.created", account, out, None);
    id
}

/// Replaces a customer's default card (`customer.updated`).
pub(crate) fn set_default_card(tx: &mut Tx<'_>, customer: &str, card: SavedCard) {
    let live = tx.livemode();
    let Some(c) = tx.ms().billing.customers.get_mut(customer) else {
        return;
    };
    let before = sb::customer(c, live);
    c.default_card = Some(card);
    let after = sb::customer(c, live);
    let account = c.account.clone();
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        tx.emit("customer.updated", account.as_deref(), after, Some(prev));
    }
}

fn customer_clock(tx: &mut Tx<'_>, customer: &str) -> Option<String> {
    tx.ms()
        .billing
        .customers
        .get(customer)
        .and_then(|c| c.test_clock.clone())
}

/// The time of a timeline: a test clock's frozen time, or the sandbox clock.
pub(crate) fn clock_now(tx: &mut Tx<'_>, clock: Option<&str>) -> i64 {
    let now = tx.now;
    match clock {
        None => now,
        Some(id) => tx
            .ms()
            .billing
            .clocks
            .get(id)
            .map_or(now, |c| c.frozen_time),
    }
}

// ---- starting ----

/// What a new subscription is made of.
pub(crate) struct Start {
    pub account: Option<String>,
    pub customer: String,
    pub items: Vec<SubItem>,
    /// One-time items for the first invoice.
    pub one_time: Vec<LineItem>,
    pub trial_end: Option<i64>,
    /// The card to charge (else the customer's default).
    pub card: Option<SavedCard>,
    pub metadata: BTreeMap<String, String>,
    pub description: Option<String>,
    pub application_fee_percent: Option<f64>,
    /// Charge the first invoice now (`payment_behavior=default_incomplete` leaves it open).
    pub attempt: bool,
    /// A coupon or promotion code applied to the subscription (and its invoices, per its
    /// duration).
    pub discount: Option<Discount>,
}

pub(crate) struct Started {
    pub subscription: String,
    pub invoice: String,
    pub amount: i64,
    /// `Some(true)` paid, `Some(false)` the attempt failed, `None` not attempted.
    pub paid: Option<bool>,
    pub decline: Option<Decline>,
}

pub(crate) fn item_description(item: &SubItem) -> String {
    let r = item.price.recurring.as_ref();
    let every = match r {
        Some(r) if r.interval_count > 1 => format!("every {} {}s", r.interval_count, r.interval),
        Some(r) => r.interval.clone(),
        None => "month".into(),
    };
    format!(
        "{} × {} (at {} / {every})",
        item.quantity,
        item.product_name,
        money::format(item.price.unit_amount, &item.price.currency)
    )
}

/// Creates the subscription and its first invoice, and pays the invoice when asked.
pub(crate) fn start_subscription(tx: &mut Tx<'_>, ctx: Ctx<'_>, start: Start) -> Started {
    let live = tx.livemode();
    let clock = customer_clock(tx, &start.customer);
    let t = clock_now(tx, clock.as_deref());
    let saved_now = tx.now;
    tx.now = t;
    if clock.is_some() {
        tx.event_time = Some(saved_now);
    }
    let recurring = start
        .items
        .first()
        .and_then(|i| i.price.recurring.clone())
        .unwrap_or(super::model::Recurring {
            interval: "month".into(),
            interval_count: 1,
            trial_period_days: None,
        });
    let trial_end = start.trial_end.filter(|e| *e > t);
    let period_end = trial_end.unwrap_or_else(|| recurring.period_end(t));
    let currency = start
        .items
        .first()
        .map(|i| i.price.currency.clone())
        .unwrap_or_else(|| "usd".into());
    let card = start.card.clone().or_else(|| {
        tx.ms()
            .billing
            .customers
            .get(&start.customer)
            .and_then(|c| c.default_card.clone())
    });
    let sub_id = ids::subscription();
    let invoice_id = ids::invoice();
    let sub = Subscription {
        id: sub_id.clone(),
        account: start.account.clone(),
        created: t,
        customer: start.customer.clone(),
        status: if trial_end.is_some() {
            SubStatus::Trialing
        } else {
            SubStatus::Incomplete
        },
        items: start.items.clone(),
        currency: currency.clone(),
        start_date: t,
        billing_cycle_anchor: period_end,
        current_period_start: t,
        current_period_end: period_end,
        trial_start: trial_end.map(|_| t),
        trial_end,
        trial_will_end_sent: false,
        cancel_at_period_end: false,
        cancel_at: None,
        canceled_at: None,
        ended_at: None,
        cancellation_reason: None,
        latest_invoice: Some(invoice_id.clone()),
        default_payment_method: card.as_ref().map(|c| c.id.clone()),
        description: start.description.clone(),
        metadata: start.metadata.clone(),
        application_fee_percent: start.application_fee_percent,
        pause_collection: None,
        test_clock: clock.clone(),
        incomplete_expires_at: trial_end.is_none().then_some(t + INCOMPLETE_TTL),
        pending_prorations: Vec::new(),
        cancellation_feedback: None,
        schedule: None,
        discount: start.discount.clone().map(|mut d| {
            d.subscription = Some(sub_id.clone());
            d.customer = Some(start.customer.clone());
            d.checkout_session = None;
            d
        }),
    };
    // First invoice: the recurring items (free during a trial), then one-time items.
    let mut lines: Vec<InvoiceLine> = start
        .items
        .iter()
        .map(|i| {
            let (description, amount) = if trial_end.is_some() {
                (format!("Trial period for {}", i.product_name), 0)
            } else {
                (item_description(i), i.amount())
            };
            InvoiceLine {
                id: ids::invoice_line(),
                description,
                quantity: i.quantity,
                amount,
                price: i.price.id.clone(),
                product: i.price.product.clone(),
                unit_amount: if trial_end.is_some() {
                    0
                } else {
                    i.price.unit_amount
                },
                period: Some((t, period_end)),
                subscription_item: Some(i.id.clone()),
                discount_amount: 0,
                proration: false,
            }
        })
        .collect();
    lines.extend(start.one_time.iter().map(|li| InvoiceLine {
        id: ids::invoice_line(),
        description: li.description.clone(),
        quantity: li.quantity,
        amount: li.amount(),
        price: li.price.id.clone(),
        product: li.price.product.clone(),
        unit_amount: li.price.unit_amount,
        period: Some((t, t)),
        subscription_item: None,
        discount_amount: 0,
        proration: false,
    }));
    let invoice = new_invoice(
        tx,
        &sub,
        invoice_id.clone(),
        "subscription_create",
        lines,
        (t, t),
    );
    let amount = invoice.total;
    let account = start.account.clone();
    let out = sb::subscription(&sub, live);
    let seq = tx.st.seq();
    tx.ms().billing.subscriptions.insert(seq, sub);
    tx.emit(
        "customer.subscription.created",
        account.as_deref(),
        out,
        None,
    );
    let seq = tx.st.seq();
    let draft = ss::invoice(&invoice, live, ctx.base_url);
    tx.ms().sales.invoices.insert(seq, invoice);
    tx.emit("invoice.created", account.as_deref(), draft, None);
    finalize(tx, ctx, &invoice_id);
    let mut result = Started {
        subscription: sub_id.clone(),
        invoice: invoice_id.clone(),
        amount,
        paid: None,
        decline: None,
    };
    if amount == 0 {
        mark_paid_without_charge(tx, ctx, &invoice_id);
        result.paid = Some(true);
    } else if start.attempt {
        match card {
            Some(card) => match charge_invoice(tx, ctx, &invoice_id, &card) {
                Ok(()) => result.paid = Some(true),
                Err(d) => {
                    // The first invoice of an incomplete subscription is not retried.
                    payment_failed(tx, ctx, &invoice_id, None);
                    result.paid = Some(false);
                    result.decline = Some(d);
                }
            },
            None => result.paid = None,
        }
    }
    if result.paid == Some(true) {
        after_paid(tx, ctx, &invoice_id);
    }
    tx.now = saved_now;
    tx.event_time = None;
    result
}

/// A new draft invoice of a subscription (not stored).
pub(crate) fn new_invoice(
    tx: &mut Tx<'_>,
    sub: &Subscription,
    id: String,
    reason: &str,
    lines: Vec<InvoiceLine>,
    period: (i64, i64),
) -> Invoice {
    let number = checkout::next_invoice_number(tx, sub.account.as_deref());
    let (email, name) = tx
        .ms()
        .billing
        .customers
        .get(&sub.customer)
        .map(|c| (c.email.clone(), c.name.clone()))
        .unwrap_or_default();
    let mut lines = lines;
    let discount = sub
        .discount
        .clone()
        .filter(|d| d.applies_to_invoice(tx.now, reason == "subscription_create"));
    let discount_amount = match &discount {
        None => 0,
        Some(d) => {
            let products: Vec<Line<'_>> = lines
                .iter()
                .map(|l| Line {
                    product: &l.product,
                    amount: l.amount,
                })
                .collect();
            let (total, shares) = allocate(&d.coupon, &sub.currency, &products);
            for (line, share) in lines.iter_mut().zip(shares) {
                line.discount_amount = share;
            }
            total
        }
    };
    Invoice {
        id,
        account: sub.account.clone(),
        created: tx.now,
        number,
        currency: sub.currency.clone(),
        total: lines.iter().map(|l| l.amount).sum::<i64>() - discount_amount,
        lines,
        customer_email: email,
        customer_name: name,
        description: None,
        metadata: BTreeMap::new(),
        payment_intent: String::new(),
        charge: String::new(),
        paid_at: None,
        status: InvoiceStatus::Draft,
        customer: Some(sub.customer.clone()),
        subscription: Some(sub.id.clone()),
        billing_reason: reason.to_owned(),
        period: Some(period),
        attempt_count: 0,
        next_payment_attempt: None,
        finalize_at: None,
        finalized_at: None,
        voided_at: None,
        marked_uncollectible_at: None,
        test_clock: sub.test_clock.clone(),
        subscription_metadata: sub.metadata.clone(),
        application_fee_percent: sub.application_fee_percent,
        discount: discount.filter(|_| discount_amount > 0),
        discount_amount,
    }
}

// ---- invoices ----

pub(crate) fn emit_invoice(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    kind: &str,
    id: &str,
    prev: Option<Value>,
) {
    let live = tx.livemode();
    let Some(i) = tx.ms().sales.invoices.get(id).cloned() else {
        return;
    };
    let out = ss::invoice(&i, live, ctx.base_url);
    tx.emit(kind, i.account.as_deref(), out, prev);
}

/// Draft -> open (`invoice.finalized`); a `$0` invoice is paid at once.
pub(crate) fn finalize(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let now = tx.now;
    let Some(i) = tx.ms().sales.invoices.get_mut(id) else {
        return;
    };
    if i.status != InvoiceStatus::Draft {
        return;
    }
    i.status = InvoiceStatus::Open;
    i.finalized_at = Some(now);
    i.finalize_at = None;
    emit_invoice(tx, ctx, "invoice.finalized", id, None);
}

fn mark_paid_without_charge(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let now = tx.now;
    if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
        i.status = InvoiceStatus::Paid;
        i.paid_at = Some(now);
        i.next_payment_attempt = None;
    }
    emit_invoice(tx, ctx, "invoice.paid", id, None);
    emit_invoice(tx, ctx, "invoice.payment_succeeded", id, None);
}

/// One payment attempt of an open (or uncollectible) invoice with `card`: the invoice's
/// PaymentIntent (created on the first attempt), a charge, and on success the balance
/// transaction and `invoice.paid`. The caller handles what a failure means.
pub(crate) fn charge_invoice(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    id: &str,
    card: &SavedCard,
) -> Result<(), Decline> {
    let live = tx.livemode();
    let now = tx.now;
    let Some(inv) = tx.ms().sales.invoices.get(id).cloned() else {
        return Err(cards::CHARGE_FAILS);
    };
    let account = inv.account.clone();
    let fee = inv
        .application_fee_percent
        .filter(|_| account.is_some())
        .map(|pct| ((inv.total as f64) * pct / 100.0).round() as i64)
        .filter(|f| *f > 0);
    let description = match inv.billing_reason.as_str() {
        "subscription_create" => "Subscription creation",
        "subscription_cycle" => "Subscription update",
        _ => "Payment for Invoice",
    };
    // The invoice's PaymentIntent, one for all its attempts.
    let pi_id = if inv.payment_intent.is_empty() {
        let pi_id = ids::payment_intent();
        let pi = PaymentIntent {
            client_secret: format!("{pi_id}_secret_{}", ids::random(25)),
            id: pi_id.clone(),
            account: account.clone(),
            created: now,
            amount: inv.total,
            currency: inv.currency.clone(),
            status: IntentStatus::RequiresPaymentMethod,
            amount_received: 0,
            latest_charge: None,
            application_fee_amount: fee,
            metadata: BTreeMap::new(),
            description: Some(description.to_owned()),
            receipt_email: None,
            payment_method: None,
            last_payment_error: None,
            pending_auth: None,
            session: String::new(),
            canceled_at: None,
            customer: inv.customer.clone(),
        };
        let out = ss::payment_intent(&pi, live, ctx.base_url);
        let seq = tx.st.seq();
        tx.ms().sales.intents.insert(seq, pi);
        tx.emit("payment_intent.created", account.as_deref(), out, None);
        if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
            i.payment_intent = pi_id.clone();
        }
        pi_id
    } else {
        inv.payment_intent.clone()
    };
    let decline = card.fails_with.as_deref().map(saved_decline);
    let charge_id = ids::charge();
    let available_on = now + super::payouts::available_after(tx, account.as_deref());
    let (txn, outcome) = match &decline {
        None => {
            let mut fee_details = vec![FeeDetail {
                kind: "stripe_fee".into(),
                amount: money::stripe_fee(inv.total, &inv.currency).min(inv.total),
                description: "Stripe processing fees".into(),
            }];
            if let Some(f) = fee {
                fee_details.push(FeeDetail {
                    kind: "application_fee".into(),
                    amount: f,
                    description: "Application fee".into(),
                });
            }
            let txn = BalanceTransaction {
                id: ids::balance_transaction(),
                account: account.clone(),
                created: now,
                amount: inv.total,
                currency: inv.currency.clone(),
                fee_details,
                available_on,
                kind: "charge".into(),
                reporting_category: "charge".into(),
                source: charge_id.clone(),
                description: Some(description.to_owned()),
                payout: None,
            };
            let outcome = Outcome {
                kind: "authorized".into(),
                network_status: "approved_by_network".into(),
                reason: None,
                risk_level: "normal".into(),
                risk_score: 32,
                seller_message: "Payment complete.".into(),
            };
            (Some(txn), outcome)
        }
        Some(d) => (
            None,
            Outcome {
                kind: "issuer_declined".into(),
                network_status: "declined_by_network".into(),
                reason: Some(d.decline_code.to_owned()),
                risk_level: "normal".into(),
                risk_score: 24,
                seller_message: d.seller_message(),
            },
        ),
    };
    let charge = Charge {
        id: charge_id.clone(),
        account: account.clone(),
        created: now,
        amount: inv.total,
        currency: inv.currency.clone(),
        succeeded: decline.is_none(),
        amount_refunded: 0,
        payment_intent: pi_id.clone(),
        payment_method: card.id.clone(),
        balance_transaction: txn.as_ref().map(|t| t.id.clone()),
        billing_name: inv.customer_name.clone(),
        billing_email: inv.customer_email.clone(),
        card: card.card.clone(),
        failure_code: decline.as_ref().map(|d| d.code.to_owned()),
        failure_message: decline.as_ref().map(|d| d.message.to_owned()),
        outcome,
        receipt_email: None,
        receipt_number: None,
        application_fee: fee
            .filter(|_| decline.is_none())
            .map(|_| ids::application_fee()),
        application_fee_amount: fee,
        metadata: BTreeMap::new(),
        description: Some(description.to_owned()),
        refunds_fail: false,
        session: String::new(),
        customer: inv.customer.clone(),
        disputed: false,
    };
    if let Some(txn) = txn {
        let seq = tx.st.seq();
        tx.ms().sales.balance_transactions.insert(seq, txn);
    }
    let charge_json = ss::charge(&charge, live, ctx.base_url, ctx.client_id, Vec::new());
    let seq = tx.st.seq();
    tx.ms().sales.charges.insert(seq, charge);
    let succeeded = decline.is_none();
    tx.emit(
        if succeeded {
            "charge.succeeded"
        } else {
            "charge.failed"
        },
        account.as_deref(),
        charge_json,
        None,
    );
    if let Some(pi) = tx.ms().sales.intents.get_mut(&pi_id) {
        pi.latest_charge = Some(charge_id.clone());
        match &decline {
            None => {
                pi.status = IntentStatus::Succeeded;
                pi.amount_received = inv.total;
                pi.payment_method = Some(card.id.clone());
                pi.last_payment_error = None;
            }
            Some(d) => {
                pi.status = IntentStatus::RequiresPaymentMethod;
                pi.payment_method = None;
                pi.last_payment_error = Some(PaymentError {
                    kind: "card_error".into(),
                    code: d.code.to_owned(),
                    decline_code: Some(d.decline_code.to_owned()),
                    message: d.message.to_owned(),
                    param: d.param.map(str::to_owned),
                    charge: Some(charge_id.clone()),
                });
            }
        }
        let out = ss::payment_intent(pi, live, ctx.base_url);
        tx.emit(
            if succeeded {
                "payment_intent.succeeded"
            } else {
                "payment_intent.payment_failed"
            },
            account.as_deref(),
            out,
            None,
        );
    }
    if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
        i.attempt_count += 1;
        i.charge = charge_id.clone();
        if succeeded {
            i.status = InvoiceStatus::Paid;
            i.paid_at = Some(now);
            i.next_payment_attempt = None;
        }
    }
    match decline {
        None => {
            emit_invoice(tx, ctx, "invoice.paid", id, None);
            emit_invoice(tx, ctx, "invoice.payment_succeeded", id, None);
            if let Some(after) = card.after_charge {
                super::disputes::after_charge(tx, ctx, &charge_id, after);
            }
            Ok(())
        }
        Some(d) => Err(d),
    }
}

/// After a failed attempt: the next automatic attempt (`next`), and `invoice.payment_failed`.
fn payment_failed(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str, next: Option<i64>) {
    if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
        i.next_payment_attempt = next;
    }
    emit_invoice(tx, ctx, "invoice.payment_failed", id, None);
}

/// The next automatic attempt after `attempts` failed ones ([`RETRY_DAYS`] after the first).
fn next_attempt(inv: &Invoice) -> Option<i64> {
    let first = inv.finalized_at.unwrap_or(inv.created);
    let n = usize::try_from(inv.attempt_count).unwrap_or(usize::MAX);
    RETRY_DAYS
        .get(n.checked_sub(1)?)
        .map(|days| first + days * DAY)
}

/// An invoice was paid: its subscription, if it waited for it, is `active` again.
fn after_paid(tx: &mut Tx<'_>, ctx: Ctx<'_>, invoice_id: &str) {
    let Some(sub_id) = tx
        .ms()
        .sales
        .invoices
        .get(invoice_id)
        .and_then(|i| i.subscription.clone())
    else {
        return;
    };
    update_subscription(tx, ctx, &sub_id, |s| {
        if s.latest_invoice.as_deref() == Some(invoice_id)
            && matches!(
                s.status,
                SubStatus::Incomplete | SubStatus::PastDue | SubStatus::Unpaid
            )
        {
            s.status = SubStatus::Active;
            s.incomplete_expires_at = None;
        }
    });
}

/// How an automatic attempt (renewal or retry) failed: the subscription becomes `past_due`;
/// after the last retry the account's setting decides.
fn after_automatic_failure(tx: &mut Tx<'_>, ctx: Ctx<'_>, invoice_id: &str) {
    let Some(inv) = tx.ms().sales.invoices.get(invoice_id).cloned() else {
        return;
    };
    let next = next_attempt(&inv);
    payment_failed(tx, ctx, invoice_id, next);
    let Some(sub_id) = inv.subscription.clone() else {
        return;
    };
    update_subscription(tx, ctx, &sub_id, |s| {
        if matches!(s.status, SubStatus::Active | SubStatus::Trialing) {
            s.status = SubStatus::PastDue;
        }
    });
    if next.is_none() {
        match after_retries(tx, inv.account.as_deref()) {
            AfterRetries::Cancel => cancel_now(tx, ctx, &sub_id, "payment_failed"),
            AfterRetries::Unpaid => {
                update_subscription(tx, ctx, &sub_id, |s| {
                    if s.status == SubStatus::PastDue {
                        s.status = SubStatus::Unpaid;
                    }
                });
            }
            AfterRetries::PastDue => {}
        }
    }
}

fn after_retries(tx: &mut Tx<'_>, account: Option<&str>) -> AfterRetries {
    tx.ms()
        .billing
        .settings
        .get(account.unwrap_or(PLATFORM))
        .map(|s| s.after_retries)
        .unwrap_or_default()
}

/// A manual payment of an open invoice (`POST /v1/invoices/{id}/pay`, the hosted invoice
/// page): with `card` (else the subscription's or customer's default card).
pub(crate) fn pay_now(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    invoice_id: &str,
    card: Option<SavedCard>,
) -> Result<(), Decline> {
    let card = card.or_else(|| default_card_for(tx, invoice_id));
    let Some(card) = card else {
        return Err(Decline {
            code: "invoice_no_payment_method_types",
            decline_code: "generic_decline",
            message: "This invoice has no payment method to charge: the customer has no \
                      default payment method.",
            param: None,
        });
    };
    let total = tx
        .ms()
        .sales
        .invoices
        .get(invoice_id)
        .map_or(0, |i| i.total);
    let outcome = if total <= 0 {
        mark_paid_without_charge(tx, ctx, invoice_id);
        Ok(())
    } else {
        charge_invoice(tx, ctx, invoice_id, &card)
    };
    match &outcome {
        Ok(()) => after_paid(tx, ctx, invoice_id),
        Err(_) => {
            // A manual attempt keeps the automatic schedule as it was.
            let next = tx
                .ms()
                .sales
                .invoices
                .get(invoice_id)
                .and_then(|i| i.next_payment_attempt);
            payment_failed(tx, ctx, invoice_id, next);
        }
    }
    outcome
}

fn default_card_for(tx: &mut Tx<'_>, invoice_id: &str) -> Option<SavedCard> {
    let customer = tx
        .ms()
        .sales
        .invoices
        .get(invoice_id)
        .and_then(|i| i.customer.clone())?;
    tx.ms()
        .billing
        .customers
        .get(&customer)
        .and_then(|c| c.default_card.clone())
}

/// Voids an open invoice (`invoice.voided`).
pub(crate) fn void(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let now = tx.now;
    if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
        i.status = InvoiceStatus::Void;
        i.voided_at = Some(now);
        i.next_payment_attempt = None;
    }
    emit_invoice(tx, ctx, "invoice.voided", id, None);
}

/// Marks an open invoice uncollectible (`invoice.marked_uncollectible`).
pub(crate) fn mark_uncollectible(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let now = tx.now;
    if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
        i.status = InvoiceStatus::Uncollectible;
        i.marked_uncollectible_at = Some(now);
        i.next_payment_attempt = None;
    }
    emit_invoice(tx, ctx, "invoice.marked_uncollectible", id, None);
}

// ---- subscription changes ----

/// Applies `f` to a subscription and emits `customer.subscription.updated` with
/// `previous_attributes` when anything changed (or `.deleted` when it ended).
pub(crate) fn update_subscription(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    id: &str,
    f: impl FnOnce(&mut Subscription),
) -> Option<Value> {
    let _ = ctx;
    let live = tx.livemode();
    let s = tx.ms().billing.subscriptions.get_mut(id)?;
    let was_ended = s.status.ended();
    let before = sb::subscription(s, live);
    f(s);
    let after = sb::subscription(s, live);
    let ended = !was_ended && s.status.ended();
    let account = s.account.clone();
    if ended {
        tx.emit(
            "customer.subscription.deleted",
            account.as_deref(),
            after.clone(),
            None,
        );
    } else if let Some(prev) = previous_attributes(&before, &after, &[]) {
        tx.emit(
            "customer.subscription.updated",
            account.as_deref(),
            after.clone(),
            Some(prev),
        );
    }
    Some(after)
}

/// Cancels now: `canceled`, automatic collection of its open invoices stops.
pub(crate) fn cancel_now(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str, reason: &str) {
    let now = tx.now;
    update_subscription(tx, ctx, id, |s| {
        if s.status.ended() {
            return;
        }
        s.status = SubStatus::Canceled;
        s.canceled_at = Some(s.canceled_at.unwrap_or(now));
        s.ended_at = Some(now);
        s.cancellation_reason = Some(reason.to_owned());
        s.incomplete_expires_at = None;
    });
    let open: Vec<String> = tx
        .ms()
        .sales
        .invoices
        .iter()
        .filter(|i| i.subscription.as_deref() == Some(id) && i.status == InvoiceStatus::Open)
        .map(|i| i.id.clone())
        .collect();
    for inv in open {
        if let Some(i) = tx.ms().sales.invoices.get_mut(&inv) {
            i.next_payment_attempt = None;
        }
    }
}

// ---- time ----

/// What is due next on a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Due {
    TrialWillEnd(String),
    IncompleteExpires(String),
    PeriodEnds(String),
    Finalize(String),
    Retry(String),
}

fn next_due(tx: &mut Tx<'_>, clock: Option<&str>) -> Option<(i64, Due)> {
    let mut best: Option<(i64, Due)> = None;
    let mut consider = |t: i64, d: Due| {
        if best.as_ref().is_none_or(|(bt, _)| t < *bt) {
            best = Some((t, d));
        }
    };
    let ms = tx.ms();
    for s in ms.billing.subscriptions.iter() {
        if s.test_clock.as_deref() != clock || s.status.ended() {
            continue;
        }
        if s.status == SubStatus::Incomplete {
            if let Some(t) = s.incomplete_expires_at {
                consider(t, Due::IncompleteExpires(s.id.clone()));
            }
            continue;
        }
        if s.status == SubStatus::Trialing
            && !s.trial_will_end_sent
            && let Some(end) = s.trial_end
        {
            consider(
                (end - TRIAL_WILL_END_BEFORE).max(s.created),
                Due::TrialWillEnd(s.id.clone()),
            );
        }
        consider(s.current_period_end, Due::PeriodEnds(s.id.clone()));
    }
    for i in ms.sales.invoices.iter() {
        if i.subscription.is_none() || i.test_clock.as_deref() != clock {
            continue;
        }
        match i.status {
            InvoiceStatus::Draft => {
                if let Some(t) = i.finalize_at {
                    consider(t, Due::Finalize(i.id.clone()));
                }
            }
            InvoiceStatus::Open => {
                if let Some(t) = i.next_payment_attempt {
                    consider(t, Due::Retry(i.id.clone()));
                }
            }
            _ => {}
        }
    }
    best
}

/// Runs everything due on a timeline (the sandbox clock: `None`) up to `until`, in time
/// order, each at its own time. Returns true if anything happened.
pub(crate) fn run_until(tx: &mut Tx<'_>, ctx: Ctx<'_>, clock: Option<&str>, until: i64) -> bool {
    let saved_now = tx.now;
    let saved_event_time = tx.event_time;
    if clock.is_some() {
        tx.event_time = Some(saved_now);
    }
    let mut changed = false;
    // A safety bound: years of daily renewals for many subscriptions still fit.
    for _ in 0..100_000 {
        let Some((t, due)) = next_due(tx, clock) else {
            break;
        };
        if t > until {
            break;
        }
        tx.now = t.max(0);
        apply(tx, ctx, due);
        changed = true;
    }
    tx.now = saved_now;
    tx.event_time = saved_event_time;
    changed
}

fn apply(tx: &mut Tx<'_>, ctx: Ctx<'_>, due: Due) {
    match due {
        Due::TrialWillEnd(id) => {
            let live = tx.livemode();
            let Some(s) = tx.ms().billing.subscriptions.get_mut(&id) else {
                return;
            };
            s.trial_will_end_sent = true;
            let out = sb::subscription(s, live);
            let account = s.account.clone();
            tx.emit(
                "customer.subscription.trial_will_end",
                account.as_deref(),
                out,
                None,
            );
        }
        Due::IncompleteExpires(id) => {
            let now = tx.now;
            let latest = tx
                .ms()
                .billing
                .subscriptions
                .get(&id)
                .and_then(|s| s.latest_invoice.clone());
            if let Some(inv) = latest
                && tx
                    .ms()
                    .sales
                    .invoices
                    .get(&inv)
                    .is_some_and(|i| i.status == InvoiceStatus::Open)
            {
                void(tx, ctx, &inv);
            }
            update_subscription(tx, ctx, &id, |s| {
                s.status = SubStatus::IncompleteExpired;
                s.ended_at = Some(now);
                s.incomplete_expires_at = None;
            });
        }
        Due::PeriodEnds(id) => period_ends(tx, ctx, &id),
        Due::Finalize(id) => finalize_and_charge(tx, ctx, &id),
        Due::Retry(id) => {
            let card = default_card_for_sub(tx, &id);
            if let Some(i) = tx.ms().sales.invoices.get_mut(&id) {
                i.next_payment_attempt = None;
            }
            match card {
                Some(card) => match charge_invoice(tx, ctx, &id, &card) {
                    Ok(()) => after_paid(tx, ctx, &id),
                    Err(_) => after_automatic_failure(tx, ctx, &id),
                },
                None => {
                    if let Some(i) = tx.ms().sales.invoices.get_mut(&id) {
                        i.attempt_count += 1;
                    }
                    after_automatic_failure(tx, ctx, &id);
                }
            }
        }
    }
}

/// The card an automatic attempt uses: the subscription's default payment method if it is
/// still the customer's card, else the customer's default.
fn default_card_for_sub(tx: &mut Tx<'_>, invoice_id: &str) -> Option<SavedCard> {
    default_card_for(tx, invoice_id)
}

fn period_ends(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let now = tx.now;
    let Some(sub) = tx.ms().billing.subscriptions.get(id).cloned() else {
        return;
    };
    if sub.cancel_at_period_end || sub.cancel_at.is_some_and(|c| c <= now) {
        cancel_now(tx, ctx, id, "cancellation_requested");
        return;
    }
    // A schedule's next phase takes over before the renewal is invoiced.
    if sub.schedule.is_some()
        && super::schedules::at_period_end(tx, ctx, id, sub.current_period_end)
    {
        return;
    }
    let Some(sub) = tx.ms().billing.subscriptions.get(id).cloned() else {
        return;
    };
    let Some(recurring) = sub.recurring().cloned() else {
        return;
    };
    let start = sub.current_period_end;
    let end = recurring.period_end(start);
    // A `once` discount was the first invoice's; a `repeating` one ends after its months.
    let sub = match &sub.discount {
        Some(d) if !d.applies_to_invoice(now, false) => {
            update_subscription(tx, ctx, id, |s| s.discount = None);
            Subscription {
                discount: None,
                ..sub
            }
        }
        _ => sub,
    };
    let invoice_id = ids::invoice();
    // Prorations waiting for this invoice come first, as Stripe's pending invoice items do.
    let mut lines: Vec<InvoiceLine> = sub.pending_prorations.clone();
    lines.extend(sub.items.iter().map(|i| InvoiceLine {
        id: ids::invoice_line(),
        description: item_description(i),
        quantity: i.quantity,
        amount: i.amount(),
        price: i.price.id.clone(),
        product: i.price.product.clone(),
        unit_amount: i.price.unit_amount,
        period: Some((start, end)),
        subscription_item: Some(i.id.clone()),
        discount_amount: 0,
        proration: false,
    }));
    let mut invoice = new_invoice(
        tx,
        &sub,
        invoice_id.clone(),
        "subscription_cycle",
        lines,
        (sub.current_period_start, start),
    );
    invoice.finalize_at = Some(now + FINALIZE_AFTER);
    let live = tx.livemode();
    let draft = ss::invoice(&invoice, live, ctx.base_url);
    let seq = tx.st.seq();
    tx.ms().sales.invoices.insert(seq, invoice);
    tx.emit("invoice.created", sub.account.as_deref(), draft, None);
    update_subscription(tx, ctx, id, |s| {
        s.current_period_start = start;
        s.current_period_end = end;
        s.latest_invoice = Some(invoice_id.clone());
        s.pending_prorations.clear();
        if s.status == SubStatus::Trialing {
            s.status = SubStatus::Active;
        }
    });
}

pub(crate) fn finalize_and_charge(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let Some(inv) = tx.ms().sales.invoices.get(id).cloned() else {
        return;
    };
    let sub = inv
        .subscription
        .as_deref()
        .and_then(|s| tx.ms().billing.subscriptions.get(s).cloned());
    let pause = sub.as_ref().and_then(|s| s.pause_collection.clone());
    if let Some(p) = &pause {
        match p.behavior.as_str() {
            "keep_as_draft" => {
                if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
                    i.finalize_at = None;
                }
                return;
            }
            "void" => {
                finalize(tx, ctx, id);
                void(tx, ctx, id);
                return;
            }
            _ => {
                finalize(tx, ctx, id);
                mark_uncollectible(tx, ctx, id);
                return;
            }
        }
    }
    finalize(tx, ctx, id);
    if inv.total <= 0 {
        mark_paid_without_charge(tx, ctx, id);
        return;
    }
    let unpaid = sub
        .as_ref()
        .is_some_and(|s| s.status == SubStatus::Unpaid || s.status.ended());
    if unpaid {
        // Invoices of an unpaid subscription stay open and are not attempted.
        return;
    }
    match default_card_for_sub(tx, id) {
        Some(card) => match charge_invoice(tx, ctx, id, &card) {
            Ok(()) => after_paid(tx, ctx, id),
            Err(_) => after_automatic_failure(tx, ctx, id),
        },
        None => {
            if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
                i.attempt_count += 1;
            }
            after_automatic_failure(tx, ctx, id);
        }
    }
}

/// Everything due on the sandbox clock.
pub(crate) fn settle(tx: &mut Tx<'_>, ctx: Ctx<'_>) -> bool {
    let now = tx.now;
    run_until(tx, ctx, None, now)
}
