//! `expand[]` on every request: each dotted path names an id in the answer to replace with its
//! object, as the object's own retrieve shows it; `data.` walks into a list's items
//! (`expand[]=data.default_price` on `GET /v1/products`), an array of ids expands each
//! (`discounts`), and an already expanded object is walked into (`payment_intent.latest_charge`).
//! Stripe allows at most four levels.
//!
//! Which object an id is comes from the field that holds it (`default_price` and `price` are
//! prices, `product` a product, `latest_charge` a charge...). Includable fields (a session's
//! `line_items`, an invoice's `payments`, `total_details.breakdown`, a coupon's `applies_to`)
//! are added by their handlers; a path through a field that is absent or null expands nothing.

use serde_json::Value;

use super::api::Call;
use super::error::{ApiError, ApiResult};
use super::form::Form;
use super::shapes_discounts as sd;
use super::state::Tx;
use super::{billing_api, catalog, checkout, discounts_api, payments, payouts};

/// Stripe's limit on the depth of one path.
const MAX_DEPTH: usize = 4;

/// Expands every path of `paths` in `value`.
pub(crate) fn apply(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    value: &mut Value,
    paths: &[String],
) -> ApiResult<()> {
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        if segments.len() > MAX_DEPTH || segments.iter().any(|s| s.is_empty()) {
            return Err(ApiError::bad_param(
                "expand",
                format!(
                    "You cannot expand more than {MAX_DEPTH} levels of a property. Property: \
                     {path}"
                ),
            ));
        }
        walk(tx, call, value, &segments)?;
    }
    Ok(())
}

fn walk(tx: &mut Tx<'_>, call: &Call<'_>, value: &mut Value, segments: &[&str]) -> ApiResult<()> {
    let Some((field, rest)) = segments.split_first() else {
        return Ok(());
    };
    // A list's items: `data.x`.
    if *field == "data" && value.get("object").and_then(Value::as_str) == Some("list") {
        if let Some(items) = value.get_mut("data").and_then(Value::as_array_mut) {
            for item in items {
                walk(tx, call, item, rest)?;
            }
        }
        return Ok(());
    }
    let Some(slot) = value.get_mut(*field) else {
        return Ok(());
    };
    match slot {
        Value::String(id) => {
            let id = id.clone();
            if let Some(object) = resolve(tx, call, field, &id)? {
                *slot = object;
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::String(id) = item {
                    let id = id.clone();
                    if let Some(object) = resolve(tx, call, field, &id)? {
                        *item = object;
                    }
                }
            }
        }
        _ => {}
    }
    let Some(slot) = value.get_mut(*field) else {
        return Ok(());
    };
    match slot {
        Value::Array(items) => {
            for item in items {
                walk(tx, call, item, rest)?;
            }
            Ok(())
        }
        Value::Object(_) => walk(tx, call, slot, rest),
        _ => Ok(()),
    }
}

/// The object an id in `field` names, as its retrieve shows it (`None`: not an expandable
/// field the sandbox knows, or nothing by that id).
fn resolve(tx: &mut Tx<'_>, call: &Call<'_>, field: &str, id: &str) -> ApiResult<Option<Value>> {
    let form = Form::parse(b"")?;
    let p = form.params();
    let found = match field {
        "default_price" | "price" => catalog::retrieve_price(tx, call, id, &p),
        "product" => catalog::retrieve_product(tx, call, id, &p),
        "customer" => billing_api::retrieve_customer(tx, call, id, &p),
        "payment_intent" => payments::retrieve_payment_intent(tx, call, id, &p),
        "latest_charge" | "charge" => payments::retrieve_charge(tx, call, id, &p),
        "balance_transaction" => payments::retrieve_balance_transaction(tx, call, id, &p),
        "refund" => payments::retrieve_refund(tx, call, id, &p),
        "invoice" | "latest_invoice" => billing_api::retrieve_invoice(tx, call, id, &p),
        "subscription" => billing_api::retrieve_subscription(tx, call, id, &p),
        "checkout_session" => checkout::retrieve_session(tx, call, id, &p),
        "payout" => payouts::retrieve_payout(tx, call, id, &p),
        "coupon" => discounts_api::retrieve_coupon(tx, call, id, &p),
        "promotion_code" => discounts_api::retrieve_promotion_code(tx, call, id, &p),
        "discounts" => return Ok(discount(tx, call.scope, id)),
        _ => return Ok(None),
    };
    Ok(found.ok())
}

/// A discount by id, from what holds it: a subscription's (the latest view of a discount a
/// subscription took over from its Checkout Session), an invoice's, a session's.
fn discount(tx: &mut Tx<'_>, scope: Option<&str>, id: &str) -> Option<Value> {
    let ms = tx.ms();
    let of_id = |d: &Option<super::discounts::Discount>| d.as_ref().filter(|d| d.id == id).cloned();
    ms.billing
        .subscriptions
        .iter()
        .filter(|s| s.account.as_deref() == scope)
        .find_map(|s| of_id(&s.discount))
        .or_else(|| {
            ms.sales
                .invoices
                .iter()
                .filter(|i| i.account.as_deref() == scope)
                .find_map(|i| of_id(&i.discount))
        })
        .or_else(|| {
            ms.sales
                .sessions
                .iter()
                .filter(|s| s.account.as_deref() == scope)
                .find_map(|s| of_id(&s.discount))
        })
        .map(|d| sd::discount(&d))
}
