//! Stripe's JSON shapes of the billing and payout objects (API version 2026-09-30): Customer,
//! Subscription and its items (with the legacy `plan`), TestClock, Payout, Balance. Every field
//! async-stripe 1.0.0-rc.10 requires is present; `tests/sandbox_billing.rs` parses each shape
//! with async-stripe's own types.
//!
//! Since API version 2025-03-31 a subscription's `current_period_start`/`_end` live on its
//! items, and an invoice names its subscription in `parent.subscription_details`.

use serde_json::{Value, json};

use super::billing::{Customer, SubStatus, Subscription, TestClock};
use super::model::Price;
use super::shapes;

/// The legacy Plan every subscription item still carries, from its price.
pub(crate) fn plan(p: &Price, live: bool) -> Value {
    let r = p.recurring.as_ref();
    json!({
        "id": p.id,
        "object": "plan",
        "active": p.active,
        "amount": p.unit_amount,
        "amount_decimal": p.unit_amount.to_string(),
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "interval": r.map_or("month", |r| r.interval.as_str()),
        "interval_count": r.map_or(1, |r| r.interval_count),
        "livemode": live,
        "metadata": p.metadata,
        "meter": null,
        "nickname": p.nickname,
        "product": p.product,
        "tiers_mode": null,
        "transform_usage": null,
        "trial_period_days": r.and_then(|r| r.trial_period_days),
        "usage_type": "licensed",
    })
}

pub(crate) fn customer(c: &Customer, live: bool) -> Value {
    json!({
        "id": c.id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "business_name": null,
        "created": c.created,
        "currency": null,
        "customer_account": null,
        "default_source": null,
        "delinquent": false,
        "description": c.description,
        "discount": null,
        "email": c.email,
        "individual_name": null,
        "invoice_prefix": c.invoice_prefix,
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": c.default_card.as_ref().map(|p| p.id.clone()),
            "footer": null,
            "rendering_options": null,
        },
        "livemode": live,
        "metadata": c.metadata,
        "name": c.name,
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": c.test_clock,
    })
}

pub(crate) fn subscription(s: &Subscription, live: bool) -> Value {
    let items: Vec<Value> = s
        .items
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "object": "subscription_item",
                "billed_until": null,
                "billing_thresholds": null,
                "created": i.created,
                "current_period_end": s.current_period_end,
                "current_period_start": s.current_period_start,
                "current_trial": null,
                "discounts": [],
                "metadata": {},
                "plan": plan(&i.price, live),
                "price": shapes::price(&i.price, live),
                "quantity": i.quantity,
                "subscription": s.id,
                "tax_rates": [],
            })
        })
        .collect();
    let cancellation_details = json!({
        "comment": null,
        "feedback": s.cancellation_feedback,
        "reason": s.cancellation_reason,
    });
    let pause = s
        .pause_collection
        .as_ref()
        .map(|p| json!({ "behavior": p.behavior, "resumes_at": p.resumes_at }));
    json!({
        "id": s.id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": s.application_fee_percent,
        "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
        "billing_cycle_anchor": s.billing_cycle_anchor,
        "billing_cycle_anchor_config": null,
        "billing_mode": {
            "flexible": { "proration_discounts": "included" },
            "type": "flexible",
            "updated_at": s.created,
        },
        "billing_schedules": [],
        "billing_thresholds": null,
        "cancel_at": s.cancel_at,
        "cancel_at_period_end": s.cancel_at_period_end,
        "canceled_at": s.canceled_at,
        "cancellation_details": cancellation_details,
        "collection_method": "charge_automatically",
        "created": s.created,
        "currency": s.currency,
        "customer": s.customer,
        "customer_account": null,
        "days_until_due": null,
        "default_payment_method": s.default_payment_method,
        "default_source": null,
        "default_tax_rates": [],
        "description": s.description,
        "discounts": s.discount.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        "ended_at": s.ended_at,
        "invoice_settings": {
            "account_tax_ids": null,
            "issuer": { "type": "self" },
        },
        "items": shapes::list(&format!("/v1/subscription_items?subscription={}", s.id), items, false),
        "latest_invoice": s.latest_invoice,
        "livemode": live,
        "metadata": s.metadata,
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": pause,
        "payment_settings": {
            "payment_method_options": null,
            "payment_method_types": null,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": s.schedule,
        "start_date": s.start_date,
        "status": s.status.as_str(),
        "test_clock": s.test_clock,
        "transfer_data": null,
        "trial_end": s.trial_end,
        "trial_settings": {
            "end_behavior": { "missing_payment_method": "create_invoice" },
        },
        "trial_start": s.trial_start,
    })
}

pub(crate) fn test_clock(c: &TestClock, live: bool) -> Value {
    if c.deleted {
        return shapes::deleted(&c.id, "test_helpers.test_clock");
    }
    json!({
        "id": c.id,
        "object": "test_helpers.test_clock",
        "created": c.created,
        // Stripe deletes a test clock 30 days after it was created.
        "deletes_after": c.created + 30 * 86_400,
        "frozen_time": c.frozen_time,
        "livemode": live,
        "name": c.name,
        "status": c.status,
        "status_details": {},
    })
}

/// Whether a status counts for the default subscription list (every status but `canceled`).
pub(crate) fn listed_by_default(s: SubStatus) -> bool {
    s != SubStatus::Canceled
}
