//! Subscriptions, entitlements, the balance and payouts over HTTP. Handlers translate; the
//! engine decides.
//!
//! - `GET /v1/projects/{id}/subscriptions?status=&customer=&starting_after=&limit=` → newest
//!   first, each with its invoices;
//! - `GET /v1/projects/{id}/subscriptions/{sub}`;
//! - `POST /v1/projects/{id}/subscriptions/{sub}/cancel` `{"at_period_end"?: true}` and
//!   `…/resume` (optional `Idempotency-Key`) → the subscription as Stripe holds it after;
//! - `GET /v1/projects/{id}/entitlements?customer=EMAIL` → what the customer may access now;
//! - `GET /v1/projects/{id}/balance`, `GET /v1/projects/{id}/payouts?limit=`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::orders::idempotency_key;
use super::projects::owned;
use super::{ApiError, AppState, Caller};
use chatpay_core::billing::{
    Balance, Entitlement, Payout, Subscription, SubscriptionChange, SubscriptionStatus,
};
use chatpay_core::domain::{Email, Money};

fn day(s: i64) -> Value {
    DateTime::<Utc>::from_timestamp(s, 0)
        .map(|d| Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn opt_day(s: Option<i64>) -> Value {
    s.map_or(Value::Null, day)
}

/// A subscription as the API shows it: amounts in minor units with the currency, times in
/// RFC 3339 (UTC).
pub(super) fn subscription_json(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "status": s.status,
        "customer": s.customer,
        "customer_email": s.customer_email,
        "currency": s.currency.as_str(),
        "amount_per_period": s.amount_per_period().minor,
        "display": { "plan": s.summary(), "amount": s.amount_per_period().to_string() },
        "items": s.items.iter().map(|i| json!({
            "price": i.price, "product": i.product, "name": i.name, "quantity": i.quantity,
            "unit_amount": i.unit_amount, "interval": i.interval,
            "interval_count": i.interval_count,
        })).collect::<Vec<_>>(),
        "current_period_end": opt_day(s.current_period_end()),
        "trial_end": opt_day(s.trial_end),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancel_at": opt_day(s.cancel_at),
        "canceled_at": opt_day(s.canceled_at),
        "ended_at": opt_day(s.ended_at),
        "created": day(s.created),
        "order": s.order,
        "order_number": s.order_number,
        "invoices": s.invoices.iter().map(|i| json!({
            "id": i.id, "number": i.number, "status": i.status.as_str(),
            "amount_due": i.amount_due, "amount_paid": i.amount_paid,
            "currency": i.currency.as_str(), "display": { "amount": i.amount().to_string() },
            "billing_reason": i.billing_reason, "attempt_count": i.attempt_count,
            "next_payment_attempt": opt_day(i.next_payment_attempt),
            "hosted_invoice_url": i.hosted_invoice_url, "invoice_pdf": i.invoice_pdf,
            "created": day(i.created), "paid_at": opt_day(i.paid_at),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    customer: Option<String>,
    /// A subscription id: the page after it (older ones).
    starting_after: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    if let Some(s) = &q.status
        && SubscriptionStatus::parse(s).is_none()
    {
        let all: Vec<&str> = SubscriptionStatus::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::BadRequest(format!(
            "`status` must be one of {}",
            all.join(", ")
        )));
    }
    let limit = super::page_limit(q.limit, 20)?;
    let page = state
        .engine
        .subscriptions(
            &project,
            q.status.as_deref(),
            q.customer.as_deref(),
            limit,
            q.starting_after.as_deref(),
        )
        .await?;
    Ok(Json(json!({
        "data": page.items.iter().map(subscription_json).collect::<Vec<_>>(),
        "has_more": page.has_more,
    })))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sub)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    Ok(Json(subscription_json(
        &state.engine.subscription(&project, &sub).await?,
    )))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Cancel at the current period's end (the default) rather than now.
    #[serde(default)]
    at_period_end: Option<bool>,
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, sub)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    // The body is optional: no body cancels at the period's end.
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body must be {{\"at_period_end\": true|false}}: {e}"
            ))
        })?
    };
    let change = if body.at_period_end.unwrap_or(true) {
        SubscriptionChange::CancelAtPeriodEnd
    } else {
        SubscriptionChange::CancelNow
    };
    let after = state
        .engine
        .change_subscription(
            &project,
            &sub,
            change,
            idempotency_key(&headers)?.as_deref(),
        )
        .await?;
    Ok(Json(subscription_json(&after)))
}

pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, sub)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let after = state
        .engine
        .change_subscription(
            &project,
            &sub,
            SubscriptionChange::Resume,
            idempotency_key(&headers)?.as_deref(),
        )
        .await?;
    Ok(Json(subscription_json(&after)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementsQuery {
    customer: Option<String>,
}

fn entitlement_json(e: &Entitlement) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    v["since"] = day(e.since);
    v["until"] = opt_day(e.until);
    v
}

pub async fn entitlements(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<EntitlementsQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let raw = q.customer.as_deref().map(str::trim).unwrap_or("");
    let email = Email::parse(raw).ok_or_else(|| {
        ApiError::BadRequest(
            "`customer` must be the customer's email address (?customer=ana@example.com)"
                .to_owned(),
        )
    })?;
    let list = state.engine.entitlements(&project, email.as_str()).await?;
    Ok(Json(json!({
        "customer": email.as_str(),
        "mode": project.mode.as_str(),
        "data": list.iter().map(entitlement_json).collect::<Vec<_>>(),
    })))
}

fn amounts(list: &[chatpay_core::billing::BalanceAmount]) -> Vec<Value> {
    list.iter()
        .map(|a| {
            json!({
                "amount": a.amount,
                "currency": a.currency.as_str(),
                "display": Money::new(a.amount, a.currency).to_string(),
            })
        })
        .collect()
}

fn balance_json(b: &Balance) -> Value {
    json!({ "available": amounts(&b.available), "pending": amounts(&b.pending) })
}

pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    Ok(Json(balance_json(&state.engine.balance(&project).await?)))
}

fn payout_json(p: &Payout) -> Value {
    json!({
        "id": p.id,
        "amount": p.amount,
        "currency": p.currency.as_str(),
        "display": { "amount": p.money().to_string() },
        "status": p.status.as_str(),
        "arrival_date": day(p.arrival_date),
        "created": day(p.created),
        "failure_code": p.failure_code,
        "failure_message": p.failure_message,
        "failure_explained": p.failure_code.as_deref().map(chatpay_core::billing::payout_failure_in_words),
        "payments": p.payments,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutsQuery {
    limit: Option<i64>,
}

pub async fn payouts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PayoutsQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let limit = super::page_limit(q.limit, 10)?;
    let list = state.engine.payouts(&project, limit).await?;
    Ok(Json(json!({
        "data": list.iter().map(payout_json).collect::<Vec<_>>(),
    })))
}
