//! `/v1/payment_intents/{id}`, `/v1/charges`, `/v1/balance_transactions/{id}`,
//! `/v1/invoices/{id}` and `/v1/refunds`, all scoped by `Stripe-Account` and mode.
//!
//! Refund rules, from Stripe's documentation: only a succeeded charge can be refunded; the
//! amount defaults to what remains and may not exceed it (`amount_too_large`); a fully refunded
//! charge answers `charge_already_refunded`. A refund of a card payment succeeds at once, except
//! with the 5126 test card, whose refunds start `succeeded` and fail some time later
//! (`failure_reason`, `refund.updated`, `refund.failed`), putting the amount back on the charge.

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::Call;
use super::checkout::{self, Ctx};
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::money;
use super::rules;
use super::sales::{BalanceTransaction, Charge, Refund};
use super::shapes;
use super::shapes_sales as ss;
use super::state::{PageRequest, Tx, previous_attributes};

/// Seconds after creation at which a refund of the 5126 card fails (sandbox clock).
pub(crate) const REFUND_FAILS_AFTER: i64 = 30;

fn visible<'a, T>(
    item: Option<&'a T>,
    account: impl Fn(&T) -> Option<&str>,
    scope: Option<&str>,
) -> Option<&'a T> {
    item.filter(|i| account(i) == scope)
}

/// The charge as the API shows it, with its refunds.
pub(crate) fn charge_json(tx: &mut Tx<'_>, ctx: Ctx<'_>, c: &Charge) -> Value {
    let live = tx.livemode();
    let refunds: Vec<Value> = tx
        .ms()
        .sales
        .refunds
        .iter()
        .rev()
        .filter(|r| r.charge == c.id)
        .map(|r| ss::refund(r, live))
        .collect();
    ss::charge(c, live, ctx.base_url, ctx.client_id, refunds)
}

pub(crate) fn retrieve_payment_intent(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["client_secret", "expand"])?;
    let live = tx.livemode();
    let pi = visible(
        tx.ms().sales.intents.get(id),
        |pi| pi.account.as_deref(),
        call.scope,
    )
    .ok_or_else(|| ApiError::no_such("payment_intent", id, "intent"))?;
    Ok(ss::payment_intent(pi, live, &call.app.base_url))
}

pub(crate) fn retrieve_charge(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let c = visible(
        tx.ms().sales.charges.get(id),
        |c| c.account.as_deref(),
        call.scope,
    )
    .cloned()
    .ok_or_else(|| ApiError::no_such("charge", id, "charge"))?;
    Ok(charge_json(tx, Ctx::of(call), &c))
}

pub(crate) fn list_charges(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "created",
        "customer",
        "ending_before",
        "expand",
        "limit",
        "payment_intent",
        "starting_after",
        "transfer_group",
    ])?;
    let req = PageRequest::parse(p)?;
    // The sandbox lists charges of one PaymentIntent only; listing every charge of an account
    // is not served (answered like an unserved URL).
    let Some(pi) = p.str("payment_intent")? else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            super::error::ErrorType::InvalidRequest,
            "The chatpay sandbox lists charges only by PaymentIntent: pass `payment_intent` \
             (GET /v1/charges?payment_intent=pi_...).",
        ));
    };
    let pi = Some(pi);
    let (items, has_more) = {
        let page = tx.ms().sales.charges.page(&req, "charge", |c| {
            c.account.as_deref() == call.scope && pi.is_none_or(|pi| c.payment_intent == pi)
        })?;
        let items: Vec<Charge> = page.items.into_iter().cloned().collect();
        (items, page.has_more)
    };
    let ctx = Ctx::of(call);
    let data = items.iter().map(|c| charge_json(tx, ctx, c)).collect();
    Ok(shapes::list("/v1/charges", data, has_more))
}

/// `POST /v1/charges/{id}`: `receipt_email` (updating it sends the receipt again, as Stripe
/// documents), `description`, `metadata`.
pub(crate) fn update_charge(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "customer",
        "description",
        "expand",
        "fraud_details",
        "metadata",
        "receipt_email",
        "shipping",
        "transfer_group",
    ])?;
    for k in ["customer", "fraud_details", "shipping", "transfer_group"] {
        if p.contains(k) {
            return Err(ApiError::bad_param(
                k,
                format!("The chatpay sandbox does not support updating `{k}` on a charge."),
            ));
        }
    }
    let ctx = Ctx::of(call);
    let current = visible(
        tx.ms().sales.charges.get(id),
        |c| c.account.as_deref(),
        call.scope,
    )
    .cloned()
    .ok_or_else(|| ApiError::no_such("charge", id, "charge"))?;
    let mut next = current.clone();
    let receipt_to = p
        .text("receipt_email")?
        .map(|e| rules::email("receipt_email", &e))
        .transpose()?;
    if let Some(to) = &receipt_to {
        next.receipt_email = Some(to.clone());
        if next.receipt_number.is_none() {
            next.receipt_number = Some(format!("{}-{}", &ids::random(4), &ids::random(4)));
        }
    }
    p.patch_text("description")?.apply(&mut next.description);
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    if let Some(to) = &receipt_to
        && next.succeeded
    {
        checkout::send_receipt(tx, ctx, &next, to);
    }
    let before = charge_json(tx, ctx, &current);
    let after = charge_json(tx, ctx, &next);
    if let Some(slot) = tx.ms().sales.charges.get_mut(id) {
        *slot = next;
    }
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        tx.emit("charge.updated", call.scope, after.clone(), Some(prev));
    }
    Ok(after)
}

pub(crate) fn retrieve_balance_transaction(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let now = tx.now;
    let t = visible(
        tx.ms().sales.balance_transactions.get(id),
        |t| t.account.as_deref(),
        call.scope,
    )
    .ok_or_else(|| ApiError::no_such("balance_transaction", id, "id"))?;
    Ok(ss::balance_transaction(
        t,
        live,
        now,
        &call.app.config.connect_client_id,
    ))
}

// ---- refunds ----

pub(crate) fn create_refund(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "amount",
        "charge",
        "currency",
        "customer",
        "expand",
        "instructions_email",
        "metadata",
        "origin",
        "payment_intent",
        "reason",
        "refund_application_fee",
        "reverse_transfer",
    ])?;
    for k in ["currency", "customer", "origin", "reverse_transfer"] {
        if p.contains(k) {
            return Err(ApiError::bad_param(
                k,
                format!("The chatpay sandbox does not support `{k}` on refunds."),
            ));
        }
    }
    let ctx = Ctx::of(call);
    let live = tx.livemode();
    let now = tx.now;
    let charge_param = p.text("charge")?;
    let pi_param = p.text("payment_intent")?;
    let charge_id = match (&charge_param, &pi_param) {
        (None, None) => {
            return Err(ApiError::invalid(
                "One of the following params should be provided for this request: \
                 payment_intent or charge.",
            ));
        }
        (Some(c), _) => {
            let charge = visible(
                tx.ms().sales.charges.get(c),
                |c| c.account.as_deref(),
                call.scope,
            )
            .ok_or_else(|| ApiError::no_such_param("charge", c, "charge"))?;
            if let Some(pi) = &pi_param
                && charge.payment_intent != *pi
            {
                return Err(ApiError::bad_param(
                    "payment_intent",
                    format!("The charge {c} does not belong to the PaymentIntent {pi}."),
                ));
            }
            c.clone()
        }
        (None, Some(pi_id)) => {
            let pi = visible(
                tx.ms().sales.intents.get(pi_id),
                |pi| pi.account.as_deref(),
                call.scope,
            )
            .ok_or_else(|| ApiError::no_such_param("payment_intent", pi_id, "payment_intent"))?;
            match (&pi.status, &pi.latest_charge) {
                (super::sales::IntentStatus::Succeeded, Some(c)) => c.clone(),
                _ => {
                    return Err(ApiError::bad_param(
                        "payment_intent",
                        format!(
                            "This PaymentIntent ({pi_id}) does not have a successful charge to \
                             refund."
                        ),
                    )
                    .code("charge_not_refundable"));
                }
            }
        }
    };
    let charge = tx
        .ms()
        .sales
        .charges
        .get(&charge_id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("charge", &charge_id, "charge"))?;
    if !charge.succeeded {
        return Err(ApiError::bad_param(
            "charge",
            format!("Charge {charge_id} has failed and cannot be refunded."),
        )
        .code("charge_not_refundable"));
    }
    if let Some(e) = super::disputes::refund_blocked(tx, &charge_id) {
        return Err(e);
    }
    let remaining = charge.amount - charge.amount_refunded;
    if remaining <= 0 {
        return Err(
            ApiError::invalid(format!("Charge {charge_id} has already been refunded."))
                .code("charge_already_refunded"),
        );
    }
    let amount = match p.int("amount")? {
        None => remaining,
        Some(a) if a <= 0 => {
            return Err(ApiError::bad_param("amount", "Invalid positive integer")
                .code("parameter_invalid_integer"));
        }
        Some(a) if a > remaining => {
            let message = if charge.amount_refunded == 0 {
                format!(
                    "Refund amount ({}) is greater than charge amount ({})",
                    money::format(a, &charge.currency),
                    money::format(charge.amount, &charge.currency)
                )
            } else {
                format!(
                    "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                    money::format(a, &charge.currency),
                    money::format(remaining, &charge.currency)
                )
            };
            return Err(ApiError::bad_param("amount", message).code("amount_too_large"));
        }
        Some(a) => a,
    };
    let reason = p
        .str("reason")?
        .map(|r| {
            rules::one_of(
                "reason",
                r,
                &["duplicate", "fraudulent", "requested_by_customer"],
            )
        })
        .transpose()?
        .map(str::to_owned);
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let refund_id = ids::refund();
    let txn = BalanceTransaction {
        id: ids::balance_transaction(),
        account: charge.account.clone(),
        created: now,
        amount: -amount,
        currency: charge.currency.clone(),
        fee_details: Vec::new(),
        available_on: now,
        kind: "refund".into(),
        reporting_category: "refund".into(),
        source: refund_id.clone(),
        description: Some("REFUND FOR CHARGE".into()),
        payout: None,
    };
    let refund = Refund {
        id: refund_id,
        account: charge.account.clone(),
        created: now,
        amount,
        currency: charge.currency.clone(),
        charge: charge.id.clone(),
        payment_intent: charge.payment_intent.clone(),
        status: "succeeded".into(),
        reason,
        metadata,
        balance_transaction: Some(txn.id.clone()),
        failure_reason: None,
        failure_balance_transaction: None,
        fails_at: charge.refunds_fail.then_some(now + REFUND_FAILS_AFTER),
    };
    let seq = tx.st.seq();
    tx.ms().sales.balance_transactions.insert(seq, txn);
    let refund_json = ss::refund(&refund, live);
    let seq = tx.st.seq();
    tx.ms().sales.refunds.insert(seq, refund);
    let before = charge_json(tx, ctx, &charge);
    let mut updated = charge.clone();
    updated.amount_refunded += amount;
    if let Some(slot) = tx.ms().sales.charges.get_mut(&charge_id) {
        *slot = updated.clone();
    }
    let after = charge_json(tx, ctx, &updated);
    let account = charge.account.as_deref();
    tx.emit("refund.created", account, refund_json.clone(), None);
    let prev = previous_attributes(&before, &after, &["refunds"]);
    tx.emit("charge.refunded", account, after, prev);
    super::disputes::refresh_warnings(tx, &charge_id);
    Ok(refund_json)
}

pub(crate) fn retrieve_refund(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let r = visible(
        tx.ms().sales.refunds.get(id),
        |r| r.account.as_deref(),
        call.scope,
    )
    .ok_or_else(|| ApiError::no_such("refund", id, "refund"))?;
    Ok(ss::refund(r, live))
}

pub(crate) fn list_refunds(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "charge",
        "created",
        "ending_before",
        "expand",
        "limit",
        "payment_intent",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let charge = p.str("charge")?;
    let pi = p.str("payment_intent")?;
    let live = tx.livemode();
    let page = tx.ms().sales.refunds.page(&req, "refund", |r| {
        r.account.as_deref() == call.scope
            && charge.is_none_or(|c| r.charge == c)
            && pi.is_none_or(|pi| r.payment_intent == pi)
    })?;
    let data = page.items.iter().map(|r| ss::refund(r, live)).collect();
    Ok(shapes::list("/v1/refunds", data, page.has_more))
}

/// Fails the refunds whose time has come (5126 card); true if any did.
pub(crate) fn fail_due_refunds(tx: &mut Tx<'_>, ctx: Ctx<'_>) -> bool {
    let now = tx.now;
    let live = tx.livemode();
    let due: Vec<Refund> = tx
        .ms()
        .sales
        .refunds
        .iter()
        .filter(|r| r.status == "succeeded" && r.fails_at.is_some_and(|t| now >= t))
        .cloned()
        .collect();
    for refund in &due {
        let txn = BalanceTransaction {
            id: ids::balance_transaction(),
            account: refund.account.clone(),
            created: now,
            amount: refund.amount,
            currency: refund.currency.clone(),
            fee_details: Vec::new(),
            available_on: now,
            kind: "refund_failure".into(),
            reporting_category: "refund_failure".into(),
            source: refund.id.clone(),
            description: Some("REFUND FAILURE".into()),
            payout: None,
        };
        let mut failed = refund.clone();
        failed.status = "failed".into();
        failed.failure_reason = Some("expired_or_canceled_card".into());
        failed.failure_balance_transaction = Some(txn.id.clone());
        failed.fails_at = None;
        let seq = tx.st.seq();
        tx.ms().sales.balance_transactions.insert(seq, txn);
        if let Some(slot) = tx.ms().sales.refunds.get_mut(&refund.id) {
            *slot = failed.clone();
        }
        if let Some(c) = tx.ms().sales.charges.get_mut(&refund.charge) {
            c.amount_refunded = (c.amount_refunded - refund.amount).max(0);
        }
        let before = ss::refund(refund, live);
        let after = ss::refund(&failed, live);
        let prev = previous_attributes(&before, &after, &[]);
        let account = refund.account.as_deref();
        tx.emit("refund.updated", account, after.clone(), prev.clone());
        tx.emit("charge.refund.updated", account, after.clone(), prev);
        tx.emit("refund.failed", account, after, None);
    }
    let _ = ctx;
    !due.is_empty()
}
