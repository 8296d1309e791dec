//! Plan changes of a subscription and their prorations, from Stripe's "Change the price of a
//! subscription", "Prorations" and "Preview invoices" pages: `POST /v1/subscriptions/{id}`
//! with `items[]` (`id`, `price`, `quantity`, `deleted`), `proration_behavior` and
//! `proration_date`, and `POST /v1/invoices/create_preview`.
//!
//! - A change inside a period prorates to the second: the unused time of the old item is
//!   credited ("Unused time on … after …", a negative line) and the remaining time of the new
//!   one charged ("Remaining time on … after …"), each rounded to the currency's unit.
//! - `create_prorations` (the default) keeps those lines for the next invoice (Stripe's pending
//!   invoice items); `always_invoice` invoices them now (`billing_reason=subscription_update`),
//!   finalized and charged at once; `none` makes no prorations.
//! - A price with another billing interval (monthly to yearly) resets the billing cycle: the new
//!   period starts now and is invoiced now, with the unused time of the old price credited
//!   (unless `none`).
//! - A credit larger than what is invoiced now goes to the next invoice (Stripe puts it on the
//!   customer's credit balance, which the next invoice uses; the sandbox has no credit balance).
//! - A trialing subscription changes price without prorations (nothing was charged).
//! - The preview is the invoice the change would create now, or else the next renewal invoice
//!   with the prorations and the new prices; nothing is stored.

use serde_json::Value;

use super::api::Call;
use super::billing::{SubItem, Subscription};
use super::checkout::Ctx;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::model::Price;
use super::rules;
use super::sales::InvoiceLine;
use super::shapes_sales as ss;
use super::state::Tx;
use super::subscriptions as subs;

/// `proration_behavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proration {
    Create,
    Always,
    None,
}

impl Proration {
    pub fn parse(param: &str, raw: Option<&str>) -> ApiResult<Proration> {
        Ok(
            match raw
                .map(|r| rules::one_of(param, r, &["always_invoice", "create_prorations", "none"]))
                .transpose()?
            {
                Some("always_invoice") => Proration::Always,
                Some("none") => Proration::None,
                _ => Proration::Create,
            },
        )
    }
}

/// What a plan change does.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// When it takes effect.
    pub at: i64,
    /// The subscription's items afterwards.
    pub items: Vec<SubItem>,
    /// Prorations kept for the next invoice.
    pub pending: Vec<InvoiceLine>,
    /// The new billing period when the interval changed.
    pub new_period: Option<(i64, i64)>,
    /// Lines invoiced now.
    pub invoice_now: Option<Vec<InvoiceLine>>,
}

/// A recurring price of the account, usable on a subscription in `currency`.
pub(crate) fn recurring_price(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    price_id: &str,
    param: &str,
) -> ApiResult<(Price, String)> {
    let catalog = tx.catalog(scope);
    let Some(price) = catalog.prices.get(price_id).cloned() else {
        return Err(ApiError::no_such_param("price", price_id, param));
    };
    if !price.active {
        return Err(ApiError::bad_param(
            param,
            "The price specified is inactive. This field only accepts active prices.",
        ));
    }
    if price.recurring.is_none() {
        return Err(ApiError::bad_param(
            param,
            format!(
                "The price specified is set to `type=one_time` but this field only accepts \
                 prices with `type=recurring`: {price_id}."
            ),
        ));
    }
    let name = catalog
        .products
        .get(&price.product)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| price.product.clone());
    Ok((price, name))
}

/// The subscription's items after the `items[]` changes (`id` to change or `deleted` an item,
/// no `id` to add one).
pub(crate) fn changed_items(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    sub: &Subscription,
    items: &[Params<'_>],
    now: i64,
) -> ApiResult<Vec<SubItem>> {
    let mut out = sub.items.clone();
    for item in items {
        item.only(&["deleted", "id", "metadata", "price", "quantity"])?;
        let quantity = match item.int("quantity")? {
            None => None,
            Some(q) if q >= 1 => Some(u64::try_from(q).unwrap_or(1)),
            Some(_) => {
                return Err(ApiError::bad_param(
                    &item.name("quantity"),
                    "This value must be greater than or equal to 1.",
                ));
            }
        };
        let price = match item.str("price")? {
            Some(p) => Some(recurring_price(tx, scope, p, &item.name("price"))?),
            None => None,
        };
        match item.str("id")? {
            Some(si) => {
                let Some(pos) = out.iter().position(|i| i.id == si) else {
                    return Err(ApiError::bad_param(
                        &item.name("id"),
                        format!(
                            "Invalid subscription item {si}: it is not an item of subscription \
                             {}.",
                            sub.id
                        ),
                    )
                    .code("resource_missing"));
                };
                if item.bool("deleted")? == Some(true) {
                    out.remove(pos);
                    continue;
                }
                let slot = &mut out[pos];
                if let Some((p, name)) = price {
                    slot.price = p;
                    slot.product_name = name;
                }
                if let Some(q) = quantity {
                    slot.quantity = q;
                }
            }
            None => {
                let Some((p, name)) = price else {
                    return Err(ApiError::missing(&item.name("price")));
                };
                out.push(SubItem {
                    id: ids::subscription_item(),
                    created: now,
                    price: p,
                    quantity: quantity.unwrap_or(1),
                    product_name: name,
                });
            }
        }
    }
    check_items(&out, "items")?;
    Ok(out)
}

/// Stripe's rules for a subscription's items together.
pub(crate) fn check_items(items: &[SubItem], param: &str) -> ApiResult<()> {
    let Some(first) = items.first() else {
        return Err(ApiError::bad_param(
            param,
            "A subscription must have at least one item: to end it, cancel it instead.",
        ));
    };
    for (n, i) in items.iter().enumerate() {
        let (a, b) = (first.price.recurring.as_ref(), i.price.recurring.as_ref());
        let same_interval = match (a, b) {
            (Some(a), Some(b)) => a.interval == b.interval && a.interval_count == b.interval_count,
            _ => false,
        };
        if i.price.currency != first.price.currency || !same_interval {
            return Err(ApiError::bad_param(
                param,
                "All prices on a subscription must have the same currency and billing interval.",
            ));
        }
        if items[..n].iter().any(|o| o.price.id == i.price.id) {
            return Err(ApiError::bad_param(
                param,
                format!(
                    "Cannot add multiple subscription items with the same price: {}.",
                    i.price.id
                ),
            ));
        }
    }
    Ok(())
}

fn day(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%-d %b %Y")
        .to_string()
}

fn label(i: &SubItem) -> String {
    if i.quantity > 1 {
        format!("{} × {}", i.quantity, i.product_name)
    } else {
        i.product_name.clone()
    }
}

/// `amount × left / len`, rounded half away from zero.
fn part(amount: i64, left: i64, len: i64) -> i64 {
    if len <= 0 {
        return 0;
    }
    let (a, l, n) = (i128::from(amount), i128::from(left), i128::from(len));
    let x = a * l;
    let q = (x.abs() * 2 + n) / (2 * n);
    i64::try_from(if x < 0 { -q } else { q }).unwrap_or(0)
}

fn proration_line(i: &SubItem, amount: i64, text: String, period: (i64, i64)) -> InvoiceLine {
    InvoiceLine {
        id: ids::invoice_line(),
        description: text,
        quantity: i.quantity,
        amount,
        price: i.price.id.clone(),
        product: i.price.product.clone(),
        unit_amount: i.price.unit_amount,
        period: Some(period),
        subscription_item: Some(i.id.clone()),
        discount_amount: 0,
        proration: true,
    }
}

/// A full period's line of an item.
pub(crate) fn period_line(i: &SubItem, period: (i64, i64)) -> InvoiceLine {
    InvoiceLine {
        id: ids::invoice_line(),
        description: subs::item_description(i),
        quantity: i.quantity,
        amount: i.amount(),
        price: i.price.id.clone(),
        product: i.price.product.clone(),
        unit_amount: i.price.unit_amount,
        period: Some(period),
        subscription_item: Some(i.id.clone()),
        discount_amount: 0,
        proration: false,
    }
}

/// What changing `sub`'s items to `items` at `at` does.
pub(crate) fn plan(
    sub: &Subscription,
    items: Vec<SubItem>,
    behavior: Proration,
    at: i64,
) -> Change {
    let (start, end) = (sub.current_period_start, sub.current_period_end);
    let at = at.clamp(start, end);
    let mut change = Change {
        at,
        items,
        pending: Vec::new(),
        new_period: None,
        invoice_now: None,
    };
    if sub.status == super::billing::SubStatus::Trialing {
        return change;
    }
    let old_interval = sub
        .recurring()
        .map(|r| (r.interval.clone(), r.interval_count));
    let new_recurring = change.items.first().and_then(|i| i.price.recurring.clone());
    let new_interval = new_recurring
        .as_ref()
        .map(|r| (r.interval.clone(), r.interval_count));
    let len = end - start;
    let left = end - at;
    let credit = |i: &SubItem| {
        proration_line(
            i,
            -part(i.amount(), left, len),
            format!("Unused time on {} after {}", label(i), day(at)),
            (at, end),
        )
    };
    if old_interval != new_interval {
        let Some(r) = new_recurring else {
            return change;
        };
        let period = (at, r.period_end(at));
        let mut lines: Vec<InvoiceLine> = Vec::new();
        if behavior != Proration::None {
            lines.extend(sub.items.iter().filter(|i| i.amount() > 0).map(credit));
        }
        lines.extend(change.items.iter().map(|i| period_line(i, period)));
        if lines.iter().map(|l| l.amount).sum::<i64>() < 0 {
            // A credit larger than the new period's price waits for the next invoice.
            change.pending = lines.into_iter().filter(|l| l.proration).collect();
            let fresh: Vec<InvoiceLine> = change
                .items
                .iter()
                .map(|i| period_line(i, period))
                .collect();
            change.invoice_now = Some(fresh);
        } else {
            change.invoice_now = Some(lines);
        }
        change.new_period = Some(period);
        return change;
    }
    if behavior == Proration::None || left <= 0 {
        return change;
    }
    let mut lines = Vec::new();
    for old in &sub.items {
        let new = change.items.iter().find(|n| n.id == old.id);
        let same = new.is_some_and(|n| n.price.id == old.price.id && n.quantity == old.quantity);
        if !same && old.amount() > 0 {
            lines.push(credit(old));
        }
    }
    for new in &change.items {
        let old = sub.items.iter().find(|o| o.id == new.id);
        let same = old.is_some_and(|o| o.price.id == new.price.id && o.quantity == new.quantity);
        if !same && new.amount() > 0 {
            lines.push(proration_line(
                new,
                part(new.amount(), left, len),
                format!("Remaining time on {} after {}", label(new), day(at)),
                (at, end),
            ));
        }
    }
    let net: i64 = lines.iter().map(|l| l.amount).sum();
    if behavior == Proration::Always && net > 0 {
        change.invoice_now = Some(lines);
    } else {
        change.pending = lines;
    }
    change
}

/// When a subscription's timeline is now: its test clock's frozen time, or the sandbox clock.
pub(crate) fn sub_now(tx: &mut Tx<'_>, sub: &Subscription) -> i64 {
    subs::clock_now(tx, sub.test_clock.as_deref())
}

/// Makes the change: the items, the prorations, the new period, and the invoice made now
/// (finalized and charged). Returns the subscription as the API shows it afterwards.
pub(crate) fn apply(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str, change: Change) -> Option<Value> {
    let real_now = tx.now;
    let saved_event_time = tx.event_time;
    let clocked = tx
        .ms()
        .billing
        .subscriptions
        .get(id)
        .is_some_and(|s| s.test_clock.is_some());
    if clocked {
        tx.event_time = Some(real_now);
    }
    tx.now = change.at;
    let invoice_id = change.invoice_now.as_ref().map(|_| ids::invoice());
    subs::update_subscription(tx, ctx, id, |s| {
        s.items = change.items.clone();
        s.pending_prorations.extend(change.pending.iter().cloned());
        if let Some((a, b)) = change.new_period {
            s.current_period_start = a;
            s.current_period_end = b;
            s.billing_cycle_anchor = a;
        }
        if let Some(inv) = &invoice_id {
            s.latest_invoice = Some(inv.clone());
        }
    });
    if let (Some(inv_id), Some(lines)) = (invoice_id, change.invoice_now)
        && let Some(sub) = tx.ms().billing.subscriptions.get(id).cloned()
    {
        let period = change.new_period.unwrap_or((change.at, change.at));
        let invoice = subs::new_invoice(
            tx,
            &sub,
            inv_id.clone(),
            "subscription_update",
            lines,
            period,
        );
        let live = tx.livemode();
        let draft = ss::invoice(&invoice, live, ctx.base_url);
        let seq = tx.st.seq();
        tx.ms().sales.invoices.insert(seq, invoice);
        tx.emit("invoice.created", sub.account.as_deref(), draft, None);
        subs::finalize_and_charge(tx, ctx, &inv_id);
    }
    tx.now = real_now;
    tx.event_time = saved_event_time;
    let live = tx.livemode();
    tx.ms()
        .billing
        .subscriptions
        .get(id)
        .map(|s| super::shapes_billing::subscription(s, live))
}

/// The invoice a change would make (or the next renewal invoice), as the API shows a preview:
/// no id, nothing stored.
pub(crate) fn preview(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    sub: &Subscription,
    change: Option<Change>,
    proration_date: Option<i64>,
) -> Value {
    let saved_now = tx.now;
    let numbers = tx.ms().sales.invoice_numbers.clone();
    let mut invoice = match change {
        Some(Change {
            at,
            invoice_now: Some(lines),
            new_period,
            ..
        }) => {
            tx.now = at;
            let period = new_period.unwrap_or((at, at));
            subs::new_invoice(tx, sub, String::new(), "subscription_update", lines, period)
        }
        other => {
            let (items, pending) = match other {
                Some(c) => (c.items, c.pending),
                None => (sub.items.clone(), Vec::new()),
            };
            let (start, end) = (sub.current_period_start, sub.current_period_end);
            let next_end = items
                .first()
                .and_then(|i| i.price.recurring.as_ref())
                .map_or(end, |r| r.period_end(end));
            let mut lines = sub.pending_prorations.clone();
            lines.extend(pending);
            lines.extend(items.iter().map(|i| period_line(i, (end, next_end))));
            tx.now = end;
            subs::new_invoice(
                tx,
                sub,
                String::new(),
                "subscription_cycle",
                lines,
                (start, end),
            )
        }
    };
    tx.now = saved_now;
    tx.ms().sales.invoice_numbers = numbers;
    invoice.number = String::new();
    let live = tx.livemode();
    let mut out = ss::invoice(&invoice, live, Ctx::of(call).base_url);
    preview_shape(&mut out, proration_date);
    out
}

/// A preview has no id, and says which proration date it used.
fn preview_shape(out: &mut Value, proration_date: Option<i64>) {
    out["id"] = Value::Null;
    out["webhooks_delivered_at"] = Value::Null;
    if let Some(lines) = out["lines"]["data"].as_array_mut() {
        for l in lines {
            l["invoice"] = Value::Null;
        }
    }
    out["lines"]["url"] = Value::String("/v1/invoices/upcoming/lines".into());
    if let Some(d) = proration_date
        && out["parent"].is_object()
    {
        out["parent"]["subscription_details"]["subscription_proration_date"] = Value::from(d);
    }
}
