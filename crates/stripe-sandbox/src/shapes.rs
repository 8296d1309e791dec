//! Stripe's JSON shapes, as of API version 2026-09-30 (what async-stripe 1.0.0-rc.10 pins).
//!
//! async-stripe deserializes strictly: every non-`Option` field of its generated types must be
//! present. The contract test (`tests/sandbox_contract.rs`) parses every shape produced here
//! with async-stripe's own types, so drift fails loudly.

use serde_json::{Value, json};

use super::model::{Account, Price, Product, Requirements};
use super::state::{AccountLink, EventRecord};

/// The API version events are rendered with (`stripe_shared::version::VERSION`).
pub const API_VERSION: &str = "2026-09-30.endive";

/// A list object: `{"object": "list", "data": [...], "has_more": .., "url": ..}`.
pub(crate) fn list(url: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": url,
    })
}

/// `{"id": .., "object": .., "deleted": true}`.
pub(crate) fn deleted(id: &str, object: &str) -> Value {
    json!({ "id": id, "object": object, "deleted": true })
}

fn requirements(r: &Requirements) -> Value {
    json!({
        "alternatives": [],
        "current_deadline": r.current_deadline,
        "currently_due": r.currently_due,
        "disabled_reason": r.disabled_reason,
        "errors": r.errors.iter().map(|e| json!({
            "code": e.code,
            "reason": e.reason,
            "requirement": e.requirement,
        })).collect::<Vec<_>>(),
        "eventually_due": r.eventually_due,
        "past_due": r.past_due,
        "pending_verification": r.pending_verification,
    })
}

pub(crate) fn account(a: &Account) -> Value {
    let status = a.capability_status();
    let capabilities: serde_json::Map<String, Value> = a
        .capabilities
        .iter()
        .map(|c| (c.clone(), json!(status)))
        .collect();
    let c = &a.controller;
    let mut controller = json!({
        "fees": { "payer": c.fees_payer },
        "is_controller": c.platform_controls,
        "losses": { "payments": c.losses_payments },
        "requirement_collection": c.requirement_collection,
        "stripe_dashboard": { "type": c.dashboard },
        "type": if c.platform_controls { "application" } else { "account" },
    });
    if !c.platform_controls {
        // Stripe shows an account-controlled account's controller without the platform's view.
        controller = json!({ "is_controller": false, "type": "account" });
    }
    let p = &a.profile;
    let mut out = json!({
        "id": a.id,
        "object": "account",
        "business_profile": {
            "annual_revenue": null,
            "estimated_worker_count": null,
            "mcc": p.mcc,
            "minority_owned_business_designation": null,
            "name": p.name,
            "product_description": p.product_description,
            "support_address": null,
            "support_email": p.support_email,
            "support_phone": p.support_phone,
            "support_url": p.support_url,
            "url": p.url,
        },
        "business_type": a.business_type,
        "capabilities": capabilities,
        "charges_enabled": a.charges_enabled(),
        "controller": controller,
        "country": a.country,
        "created": a.created,
        "default_currency": a.default_currency,
        "details_submitted": a.details_submitted(),
        "email": a.email,
        "future_requirements": requirements(&Requirements::default()),
        "metadata": a.metadata,
        "payouts_enabled": a.payouts_enabled(),
        "requirements": requirements(&a.requirements()),
        "settings": {
            "branding": {
                "icon": null,
                "logo": null,
                "primary_color": null,
                "secondary_color": null,
            },
            "card_payments": {
                "decline_on": { "avs_failure": false, "cvc_failure": false },
                "statement_descriptor_prefix": null,
                "statement_descriptor_prefix_kana": null,
                "statement_descriptor_prefix_kanji": null,
            },
            "dashboard": {
                "display_name": p.name,
                "timezone": "Etc/UTC",
            },
            "payments": {
                "statement_descriptor": a.statement_descriptor,
                "statement_descriptor_kana": null,
                "statement_descriptor_kanji": null,
                "statement_descriptor_prefix_kana": null,
                "statement_descriptor_prefix_kanji": null,
            },
            "payouts": {
                "debit_negative_balances": true,
                "schedule": payout_schedule(a),
                "statement_descriptor": null,
            },
        },
        "tos_acceptance": {
            "date": a.tos.as_ref().map(|t| t.date),
            "ip": a.tos.as_ref().map(|t| t.ip.clone()),
            "user_agent": a.tos.as_ref().and_then(|t| t.user_agent.clone()),
        },
        "type": a.kind,
    });
    // External accounts are only returned to the account's controller.
    if c.platform_controls {
        let banks: Vec<Value> = a.bank.iter().map(|_| bank_account(a)).collect();
        out["external_accounts"] = json!({
            "object": "list",
            "data": banks,
            "has_more": false,
            "total_count": banks.len(),
            "url": format!("/v1/accounts/{}/external_accounts", a.id),
        });
    }
    if a.is_company() {
        out["company"] = json!({
            "name": a.company_name,
            "directors_provided": a.details_submitted(),
            "executives_provided": a.details_submitted(),
            "owners_provided": a.details_submitted(),
            "tax_id_provided": a.details_submitted(),
        });
    } else if let Some(person) = &a.individual {
        out["individual"] = json!({
            "id": person.id,
            "object": "person",
            "account": a.id,
            "created": person.created,
            "dob": {
                "day": person.dob.map(|d| d.day),
                "month": person.dob.map(|d| d.month),
                "year": person.dob.map(|d| d.year),
            },
            "email": person.email,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "metadata": {},
            "verification": {
                "details": null,
                "details_code": null,
                "status": a.person_verification(),
            },
        });
    }
    out
}

fn payout_schedule(a: &Account) -> Value {
    let s = &a.payouts;
    let mut out = json!({ "delay_days": s.delay_days, "interval": s.interval });
    if let Some(anchor) = &s.weekly_anchor {
        out["weekly_anchor"] = json!(anchor);
    }
    if let Some(anchor) = s.monthly_anchor {
        out["monthly_anchor"] = json!(anchor);
    }
    out
}

/// The account's payout bank account, as in `external_accounts`.
pub(crate) fn bank_account(a: &Account) -> Value {
    let Some(b) = &a.bank else {
        return Value::Null;
    };
    json!({
        "id": b.id,
        "object": "bank_account",
        "account": a.id,
        "account_holder_name": b.holder_name,
        "account_holder_type": if a.is_company() { "company" } else { "individual" },
        "account_type": null,
        "available_payout_methods": ["standard"],
        "bank_name": "STRIPE TEST BANK",
        "country": b.country,
        "currency": b.currency,
        "default_for_currency": true,
        "fingerprint": b.fingerprint,
        "last4": b.last4,
        "metadata": {},
        "routing_number": b.routing_number,
        "status": "new",
    })
}

pub(crate) fn account_link(link: &AccountLink, base_url: &str) -> Value {
    json!({
        "object": "account_link",
        "created": link.created,
        "expires_at": link.expires_at,
        "url": format!("{base_url}onboarding/{}", link.token),
    })
}

pub(crate) fn product(p: &Product, livemode: bool) -> Value {
    json!({
        "id": p.id,
        "object": "product",
        "active": p.active,
        "created": p.created,
        "default_price": p.default_price,
        "description": p.description,
        "images": p.images,
        "livemode": livemode,
        "marketing_features": [],
        "metadata": p.metadata,
        "name": p.name,
        "package_dimensions": null,
        "shippable": p.shippable,
        "statement_descriptor": p.statement_descriptor,
        "tax_code": p.tax_code,
        "type": p.kind,
        "unit_label": p.unit_label,
        "updated": p.updated,
        "url": p.url,
    })
}

pub(crate) fn price(p: &Price, livemode: bool) -> Value {
    json!({
        "id": p.id,
        "object": "price",
        "active": p.active,
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "custom_unit_amount": null,
        "livemode": livemode,
        "lookup_key": p.lookup_key,
        "metadata": p.metadata,
        "nickname": p.nickname,
        "product": p.product,
        "recurring": p.recurring.as_ref().map(|r| json!({
            "interval": r.interval,
            "interval_count": r.interval_count,
            "meter": null,
            "trial_period_days": r.trial_period_days,
            "usage_type": "licensed",
        })),
        "tax_behavior": p.tax_behavior,
        "tiers_mode": null,
        "transform_quantity": null,
        "type": if p.recurring.is_some() { "recurring" } else { "one_time" },
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": p.unit_amount.to_string(),
    })
}

/// The Connect application (`account.application.*` events).
pub(crate) fn application(client_id: &str) -> Value {
    json!({ "id": client_id, "object": "application", "name": "chatpay sandbox" })
}

/// An event; `pending_webhooks` is the number of endpoints still to be reached.
pub(crate) fn event(e: &EventRecord, livemode: bool, pending_webhooks: i64) -> Value {
    let mut data = json!({ "object": e.object });
    if let Some(prev) = &e.previous_attributes {
        data["previous_attributes"] = prev.clone();
    }
    let mut out = json!({
        "id": e.id,
        "object": "event",
        "api_version": API_VERSION,
        "created": e.created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": pending_webhooks,
        "request": {
            "id": e.request.as_ref().map(|r| r.id.clone()),
            "idempotency_key": e.request.as_ref().and_then(|r| r.idempotency_key.clone()),
        },
        "type": e.kind,
    });
    if let Some(account) = &e.account {
        out["account"] = json!(account);
    }
    out
}
