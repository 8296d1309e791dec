//! Stripe's JSON shapes of Coupon, PromotionCode and Discount (API version 2026-09-30: a
//! promotion code names its coupon in `promotion`, a discount in `source`), and the discount
//! amounts of line items. `tests/sandbox_contract.rs` parses each with async-stripe's types.

use serde_json::{Value, json};

use super::discounts::{Coupon, Discount, PromotionCode};

/// A coupon; `applies_to` is includable (only with `expand[]=applies_to`).
pub(crate) fn coupon(c: &Coupon, live: bool, now: i64, with_applies_to: bool) -> Value {
    let mut out = json!({
        "id": c.id,
        "object": "coupon",
        "amount_off": c.amount_off,
        "created": c.created,
        "currency": c.currency,
        "duration": c.duration.as_str(),
        "duration_in_months": c.duration_in_months,
        "livemode": live,
        "max_redemptions": c.max_redemptions,
        "metadata": c.metadata,
        "name": c.name,
        "percent_off": c.percent_off,
        "redeem_by": c.redeem_by,
        "times_redeemed": c.times_redeemed,
        "valid": c.valid(now),
    });
    if with_applies_to {
        out["applies_to"] = json!({ "products": c.applies_to.clone().unwrap_or_default() });
    }
    out
}

/// A promotion code; it is only `active` while its coupon exists and is valid.
pub(crate) fn promotion_code(p: &PromotionCode, coupon_valid: bool, live: bool) -> Value {
    json!({
        "id": p.id,
        "object": "promotion_code",
        "active": p.active && coupon_valid,
        "code": p.code,
        "created": p.created,
        "customer": p.customer,
        "customer_account": null,
        "expires_at": p.expires_at,
        "livemode": live,
        "max_redemptions": p.max_redemptions,
        "metadata": p.metadata,
        "promotion": { "coupon": p.coupon, "type": "coupon" },
        "restrictions": {
            "first_time_transaction": p.first_time_transaction,
            "minimum_amount": p.minimum_amount,
            "minimum_amount_currency": p.minimum_amount_currency,
        },
        "times_redeemed": p.times_redeemed,
    })
}

/// A discount (there is no endpoint for it: it appears nested or expanded).
pub(crate) fn discount(d: &Discount) -> Value {
    json!({
        "id": d.id,
        "object": "discount",
        "checkout_session": d.checkout_session,
        "customer": d.customer,
        "customer_account": null,
        "end": d.end,
        "invoice": null,
        "invoice_item": null,
        "promotion_code": d.promotion_code,
        "source": { "coupon": d.coupon.id, "type": "coupon" },
        "start": d.start,
        "subscription": d.subscription,
        "subscription_item": null,
    })
}

/// `[{"amount": n, "discount": {...}}]` of a Checkout line item (the discount in full), or
/// `[]` when it takes nothing off the line.
pub(crate) fn line_discounts(d: Option<&Discount>, amount: i64) -> Value {
    match d {
        Some(d) if amount > 0 => json!([{ "amount": amount, "discount": discount(d) }]),
        _ => json!([]),
    }
}
