//! Stripe's JSON shapes of the selling objects (API version 2026-09-30): Checkout Session and
//! its line items, PaymentIntent, Charge, Refund, BalanceTransaction, Invoice. Every field
//! async-stripe 1.0.0-rc.10 requires is present; `tests/sandbox_selling.rs` parses each shape
//! with async-stripe's own types.

use serde_json::{Value, json};

use super::discounts::Discount;
use super::sales::{
    BalanceTransaction, Charge, CheckoutSession, IntentStatus, Invoice, InvoiceStatus, LineItem,
    PaymentIntent, Refund, SessionStatus,
};
use super::shapes;
use super::shapes_discounts as sd;

/// Where a hosted Checkout page lives.
pub(crate) fn checkout_url(base_url: &str, id: &str) -> String {
    format!("{base_url}checkout/{id}")
}

pub(crate) fn receipt_url(base_url: &str, charge: &str) -> String {
    format!("{base_url}receipts/{charge}")
}

pub(crate) fn invoice_url(base_url: &str, invoice: &str) -> String {
    format!("{base_url}invoices/{invoice}")
}

/// A session's line items with what its discount takes off each.
pub(crate) fn line_items(s: &CheckoutSession, live: bool) -> Vec<Value> {
    let (_, shares) = s.discount_shares();
    s.line_items
        .iter()
        .zip(shares)
        .map(|(li, share)| line_item(li, live, s.discount.as_ref(), share))
        .collect()
}

fn line_item(li: &LineItem, live: bool, discount: Option<&Discount>, share: i64) -> Value {
    let amount = li.amount();
    json!({
        "id": li.id,
        "object": "item",
        "adjustable_quantity": null,
        "amount_discount": share,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount - share,
        "currency": li.price.currency,
        "description": li.description,
        "discounts": sd::line_discounts(discount, share),
        "metadata": {},
        "price": shapes::price(&li.price, live),
        "quantity": li.quantity,
        "taxes": [],
    })
}

/// `total_details.breakdown` (includable: `expand[]=total_details.breakdown`).
pub(crate) fn total_breakdown(s: &CheckoutSession) -> Value {
    let (amount, _) = s.discount_shares();
    json!({
        "discounts": sd::line_discounts(s.discount.as_ref(), amount),
        "taxes": [],
    })
}

pub(crate) fn checkout_session(s: &CheckoutSession, live: bool, base_url: &str) -> Value {
    let subtotal = s.amount_due_now(s.created);
    let (discount, _) = s.discount_shares();
    let discounts: Vec<Value> = s
        .discount
        .iter()
        .map(|d| json!({ "coupon": d.coupon.id, "promotion_code": d.promotion_code }))
        .collect();
    let payment_status = if s.paid {
        "paid"
    } else if s.is_subscription() && s.status == SessionStatus::Complete {
        "no_payment_required"
    } else {
        "unpaid"
    };
    let customer_details = (s.status == SessionStatus::Complete).then(|| {
        json!({
            "address": null,
            "business_name": null,
            "email": s.customer_details_email,
            "individual_name": null,
            "name": s.customer_name,
            "phone": null,
            "tax_exempt": "none",
            "tax_ids": [],
        })
    });
    json!({
        "id": s.id,
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "after_expiration": null,
        "allow_promotion_codes": s.allow_promotion_codes.then_some(true),
        "amount_subtotal": subtotal,
        "amount_total": subtotal - discount,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null,
        "cancel_url": s.cancel_url,
        "client_reference_id": s.client_reference_id,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": s.created,
        "currency": s.currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null,
        },
        "customer": s.customer,
        "customer_creation": if s.is_subscription() { "always" } else { "if_required" },
        "customer_details": customer_details,
        "customer_email": s.customer_email,
        "discounts": discounts,
        "expires_at": s.expires_at,
        "invoice": s.invoice,
        "invoice_creation": {
            "enabled": s.invoice_creation,
            "invoice_data": {
                "account_tax_ids": null,
                "custom_fields": null,
                "description": s.invoice_description,
                "footer": null,
                "issuer": null,
                "metadata": s.invoice_metadata,
                "rendering_options": null,
            },
        },
        "livemode": live,
        "locale": null,
        "metadata": s.metadata,
        "mode": s.mode,
        "payment_intent": s.payment_intent,
        "payment_link": null,
        "payment_method_collection": if s.is_subscription() { "always" } else { "if_required" },
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": s.status.as_str(),
        "submit_type": null,
        "subscription": s.subscription,
        "success_url": s.success_url,
        "total_details": { "amount_discount": discount, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted_page",
        "url": (s.status == SessionStatus::Open).then(|| checkout_url(base_url, &s.id)),
        "wallet_options": null,
    })
}

pub(crate) fn payment_intent(pi: &PaymentIntent, live: bool, base_url: &str) -> Value {
    let last_error = pi.last_payment_error.as_ref().map(|e| {
        let mut out = json!({
            "type": e.kind,
            "code": e.code,
            "message": e.message,
            "doc_url": format!("https://stripe.com/docs/error-codes/{}", e.code.replace('_', "-")),
        });
        if let Some(d) = &e.decline_code {
            out["decline_code"] = json!(d);
        }
        if let Some(p) = &e.param {
            out["param"] = json!(p);
        }
        if let Some(c) = &e.charge {
            out["charge"] = json!(c);
        }
        out
    });
    let next_action =
        (pi.status == IntentStatus::RequiresAction && !pi.session.is_empty()).then(|| {
            json!({
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "return_url": checkout_url(base_url, &pi.session),
                    "url": format!("{}/authenticate", checkout_url(base_url, &pi.session)),
                },
            })
        });
    json!({
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": pi.amount_received,
        "application": null,
        "application_fee_amount": pi.application_fee_amount,
        "automatic_payment_methods": null,
        "canceled_at": pi.canceled_at,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": pi.client_secret,
        "confirmation_method": "automatic",
        "created": pi.created,
        "currency": pi.currency,
        "customer": pi.customer,
        "description": pi.description,
        "excluded_payment_method_types": null,
        "last_payment_error": last_error,
        "latest_charge": pi.latest_charge,
        "livemode": live,
        "metadata": pi.metadata,
        "next_action": next_action,
        "on_behalf_of": null,
        "payment_method": pi.payment_method,
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": pi.receipt_email,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": pi.status.as_str(),
        "transfer_data": null,
        "transfer_group": null,
    })
}

pub(crate) fn charge(
    c: &Charge,
    live: bool,
    base_url: &str,
    client_id: &str,
    refunds: Vec<Value>,
) -> Value {
    let refunds_url = format!("/v1/charges/{}/refunds", c.id);
    json!({
        "id": c.id,
        "object": "charge",
        "amount": c.amount,
        "amount_captured": if c.succeeded { c.amount } else { 0 },
        "amount_refunded": c.amount_refunded,
        "application": c.application_fee_amount.map(|_| client_id),
        "application_fee": c.application_fee,
        "application_fee_amount": c.application_fee_amount,
        "balance_transaction": c.balance_transaction,
        "billing_details": {
            "address": {
                "city": null, "country": null, "line1": null, "line2": null,
                "postal_code": null, "state": null,
            },
            "email": c.billing_email,
            "name": c.billing_name,
            "phone": null,
            "tax_id": null,
        },
        "calculated_statement_descriptor": "SANDBOX",
        "captured": c.succeeded,
        "created": c.created,
        "currency": c.currency,
        "customer": c.customer,
        "description": c.description,
        "disputed": c.disputed,
        "failure_balance_transaction": null,
        "failure_code": c.failure_code,
        "failure_message": c.failure_message,
        "fraud_details": {},
        "livemode": live,
        "metadata": c.metadata,
        "on_behalf_of": null,
        "outcome": {
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": c.outcome.network_status,
            "reason": c.outcome.reason,
            "risk_level": c.outcome.risk_level,
            "risk_score": c.outcome.risk_score,
            "seller_message": c.outcome.seller_message,
            "type": c.outcome.kind,
        },
        "paid": c.succeeded,
        "payment_intent": c.payment_intent,
        "payment_method": c.payment_method,
        "payment_method_details": {
            "type": "card",
            "card": {
                "amount_authorized": if c.succeeded { Some(c.amount) } else { None },
                "authorization_code": null,
                "brand": c.card.brand,
                "checks": {
                    "address_line1_check": null,
                    "address_postal_code_check": null,
                    "cvc_check": if c.failure_code.as_deref() == Some("incorrect_cvc") { "fail" } else { "pass" },
                },
                "country": "US",
                "exp_month": c.card.exp_month,
                "exp_year": c.card.exp_year,
                "fingerprint": c.card.fingerprint,
                "funding": c.card.funding,
                "last4": c.card.last4,
                "network": c.card.brand,
                "network_token": { "used": false },
                "three_d_secure": null,
                "wallet": null,
            },
        },
        "radar_options": {},
        "receipt_email": c.receipt_email,
        "receipt_number": c.receipt_number,
        "receipt_url": receipt_url(base_url, &c.id),
        "refunded": c.succeeded && c.amount_refunded >= c.amount,
        "refunds": shapes::list(&refunds_url, refunds, false),
        "review": null,
        "shipping": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": if c.succeeded { "succeeded" } else { "failed" },
        "transfer_data": null,
        "transfer_group": null,
    })
}

pub(crate) fn refund(r: &Refund, live: bool) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": r.balance_transaction,
        "charge": r.charge,
        "created": r.created,
        "currency": r.currency,
        "description": null,
        "destination_details": null,
        "failure_balance_transaction": r.failure_balance_transaction,
        "failure_reason": r.failure_reason,
        "instructions_email": null,
        "livemode": live,
        "metadata": r.metadata,
        "next_action": null,
        "payment_intent": r.payment_intent,
        "pending_reason": null,
        "reason": r.reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": r.status,
        "transfer_reversal": null,
    })
}

pub(crate) fn balance_transaction(
    t: &BalanceTransaction,
    live: bool,
    now: i64,
    client_id: &str,
) -> Value {
    let fee_details: Vec<Value> = t
        .fee_details
        .iter()
        .map(|f| {
            json!({
                "amount": f.amount,
                "application": (f.kind == "application_fee").then_some(client_id),
                "currency": t.currency,
                "description": f.description,
                "type": f.kind,
            })
        })
        .collect();
    json!({
        "id": t.id,
        "object": "balance_transaction",
        "amount": t.amount,
        "available_on": t.available_on,
        "balance_type": "payments",
        "created": t.created,
        "currency": t.currency,
        "description": t.description,
        "exchange_rate": null,
        "fee": t.fee(),
        "fee_details": fee_details,
        "livemode": live,
        "net": t.net(),
        "reporting_category": t.reporting_category,
        "source": t.source,
        "status": t.status(now),
        "type": t.kind,
    })
}

/// `[{"amount": n, "discount": "di_…"}]` for an invoice or one of its lines (`[]` when the
/// discount takes nothing off it).
fn discount_amounts(i: &Invoice, amount: i64) -> Value {
    match &i.discount {
        Some(d) if amount > 0 => json!([{ "amount": amount, "discount": d.id }]),
        _ => json!([]),
    }
}

/// An invoice as it stands (`status` and its transitions come from the object).
/// An invoice's `payments` (includable: only when expanded): its default InvoicePayment, the
/// PaymentIntent of its latest attempt, once one was made.
pub(crate) fn invoice_payments(i: &Invoice, live: bool) -> Value {
    let paid = i.status == InvoiceStatus::Paid;
    let data: Vec<Value> = if i.payment_intent.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "id": format!("inpay_{}", i.id.trim_start_matches("in_")),
            "object": "invoice_payment",
            "amount_paid": if paid { Some(i.total) } else { None },
            "amount_requested": i.total,
            "created": i.finalized_at.unwrap_or(i.created),
            "currency": i.currency,
            "invoice": i.id,
            "is_default": true,
            "livemode": live,
            "payment": {
                "charge": null,
                "payment_intent": i.payment_intent,
                "payment_record": null,
                "type": "payment_intent",
            },
            "status": if paid { "paid" } else if i.status == InvoiceStatus::Void { "canceled" } else { "open" },
            "status_transitions": { "canceled_at": null, "paid_at": if paid { i.paid_at } else { None } },
        })]
    };
    shapes::list(&format!("/v1/invoices/{}/payments", i.id), data, false)
}

pub(crate) fn invoice(i: &Invoice, live: bool, base_url: &str) -> Value {
    let finalized = i.status != InvoiceStatus::Draft;
    let paid = i.status == InvoiceStatus::Paid;
    let (period_start, period_end) = i.period.unwrap_or((i.created, i.created));
    let lines: Vec<Value> = i
        .lines
        .iter()
        .map(|l| {
            let (start, end) = l.period.unwrap_or((i.created, i.created));
            let parent = match (&l.subscription_item, &i.subscription) {
                (Some(si), sub) => json!({
                    "invoice_item_details": null,
                    "subscription_item_details": {
                        "invoice_item": null,
                        "proration": l.proration,
                        "proration_details": { "credited_items": null },
                        "subscription": sub,
                        "subscription_item": si,
                    },
                    "type": "subscription_item_details",
                }),
                (None, Some(sub)) => json!({
                    "invoice_item_details": {
                        "invoice_item": format!("ii_{}", l.id.trim_start_matches("il_")),
                        "proration": false,
                        "proration_details": { "credited_items": null },
                        "subscription": sub,
                    },
                    "subscription_item_details": null,
                    "type": "invoice_item_details",
                }),
                (None, None) => Value::Null,
            };
            json!({
                "id": l.id,
                "object": "line_item",
                "amount": l.amount,
                "currency": i.currency,
                "description": l.description,
                "discount_amounts": discount_amounts(i, l.discount_amount),
                "discountable": true,
                "discounts": [],
                "invoice": i.id,
                "livemode": live,
                "metadata": {},
                "parent": parent,
                "period": { "end": end, "start": start },
                "pretax_credit_amounts": [],
                "pricing": {
                    "price_details": { "price": l.price, "product": l.product },
                    "type": "price_details",
                    "unit_amount_decimal": l.unit_amount.to_string(),
                },
                "quantity": l.quantity,
                "subscription": null,
                "subtotal": l.amount,
                "taxes": [],
            })
        })
        .collect();
    let url = invoice_url(base_url, &i.id);
    let parent = i.subscription.as_ref().map(|sub| {
        json!({
            "quote_details": null,
            "subscription_details": {
                "metadata": i.subscription_metadata,
                "subscription": sub,
                "subscription_proration_date": null,
            },
            "type": "subscription_details",
        })
    });
    let finalized_at = i.finalized_at.or(if finalized { i.paid_at } else { None });
    let auto_advance =
        i.subscription.is_some() && matches!(i.status, InvoiceStatus::Draft | InvoiceStatus::Open);
    json!({
        "id": i.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": null,
        "account_tax_ids": null,
        // A credit (negative total) is never due: it would go to the customer's balance.
        "amount_due": i.total.max(0),
        "amount_overpaid": 0,
        "amount_paid": if paid { i.total.max(0) } else { 0 },
        "amount_paid_off_stripe": null,
        "amount_remaining": if paid || i.status == InvoiceStatus::Void { 0 } else { i.total.max(0) },
        "amount_shipping": 0,
        "application": null,
        "attempt_count": i.attempt_count,
        "attempted": i.attempt_count > 0 || paid,
        "auto_advance": auto_advance,
        "automatic_tax": {
            "disabled_reason": null, "enabled": false, "liability": null,
            "provider": null, "status": null,
        },
        "automatically_finalizes_at": if i.status == InvoiceStatus::Draft { i.finalize_at } else { None },
        "billing_reason": i.billing_reason,
        "collection_method": "charge_automatically",
        "confirmation_secret": null,
        "created": i.created,
        "currency": i.currency,
        "custom_fields": null,
        "customer": i.customer,
        "customer_account": null,
        "customer_address": null,
        "customer_email": i.customer_email,
        "customer_name": i.customer_name,
        "customer_phone": null,
        "customer_shipping": null,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": i.description,
        "discounts": i.discount.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        "due_date": null,
        "effective_at": finalized_at,
        "ending_balance": if finalized { Some(i.total.min(0)) } else { None },
        "footer": null,
        "from_invoice": null,
        "hosted_invoice_url": finalized.then(|| url.clone()),
        "invoice_pdf": finalized.then(|| format!("{url}/pdf")),
        "issuer": { "type": "self" },
        "last_finalization_error": null,
        "latest_revision": null,
        "lines": shapes::list(&format!("/v1/invoices/{}/lines", i.id), lines, false),
        "livemode": live,
        "metadata": i.metadata,
        "next_payment_attempt": if i.status == InvoiceStatus::Open { i.next_payment_attempt } else { None },
        "number": finalized.then(|| i.number.clone()),
        "on_behalf_of": null,
        "parent": parent,
        "payment_settings": {
            "default_mandate": null, "payment_method_options": null, "payment_method_types": null,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": null,
        "rendering": null,
        "shipping_cost": null,
        "shipping_details": null,
        "starting_balance": 0,
        "statement_descriptor": null,
        "status": i.status.as_str(),
        "status_details": null,
        "status_transitions": {
            "finalized_at": finalized_at,
            "marked_uncollectible_at": i.marked_uncollectible_at,
            "paid_at": if paid { i.paid_at } else { None },
            "voided_at": i.voided_at,
        },
        "subtotal": i.subtotal(),
        "subtotal_excluding_tax": i.subtotal(),
        "test_clock": i.test_clock,
        "threshold_reason": null,
        "total": i.total,
        "total_discount_amounts": discount_amounts(i, i.discount_amount),
        "total_excluding_tax": i.total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": i.created,
    })
}
