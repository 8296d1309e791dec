//! Selling over HTTP: checkouts, orders and refunds. Handlers translate; the engine decides.
//!
//! - `POST /v1/projects/{id}/checkout` `{"items": [{"price", "quantity"}], "customer_email"?,
//!   "success_url"?, "cancel_url"?}` (optional `Idempotency-Key`) → 201 the order with its
//!   hosted checkout `url`;
//! - `GET /v1/projects/{id}/orders?status=&since=&until=&starting_after=&limit=` → newest first;
//! - `GET /v1/projects/{id}/orders/{number}`;
//! - `POST /v1/projects/{id}/orders/{number}/refunds` `{"amount"?}` (optional
//!   `Idempotency-Key`) → 201 the refund and the order;
//! - `GET /checkout/complete`: where a checkout without a `success_url` lands.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::html::{escape, page_html};
use super::projects::{iso, owned};
use super::public::allow_origin;
use super::{ApiError, ApiJson, AppState, Caller, bearer};
use crate::chat::{CheckoutInput, PUBLISHABLE_PREFIX};
use chatpay_core::orders::{Order, OrderStatus};
use chatpay_store::OrderFilter;

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::BadRequest("Idempotency-Key must be text".to_owned()))?
                .trim();
            if k.is_empty() || k.len() > 200 {
                return Err(ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 200 characters".to_owned(),
                ));
            }
            Ok(Some(k.to_owned()))
        }
    }
}

/// An order as the API shows it: amounts in minor units with the currency, and formatted.
pub(super) fn order_json(o: &Order) -> Value {
    let money = |minor: i64| o.money(minor).to_string();
    json!({
        "id": o.id,
        "number": o.number,
        "status": o.status,
        "currency": o.currency.as_str(),
        "amount_total": o.amount_total,
        "amount_refunded": o.refunded(),
        "amount_refundable": o.refundable(),
        "display": { "total": money(o.amount_total), "refunded": money(o.refunded()) },
        "lines": o.lines.iter().map(|l| json!({
            "price": l.price, "product": l.product, "name": l.name, "quantity": l.quantity,
            "unit_amount": l.unit_amount, "amount": l.amount, "interval": l.interval,
        })).collect::<Vec<_>>(),
        "customer_email": o.customer_email,
        "subscription": o.subscription,
        "url": (o.status == OrderStatus::Open || o.status == OrderStatus::PaymentFailed).then(|| o.checkout_url.clone()).flatten(),
        "checkout_session": o.checkout_session,
        "expires_at": iso(o.expires_at * 1000),
        "payment_intent": o.payment_intent,
        "last_payment_error": o.last_payment_error,
        "receipt_url": o.charge.as_ref().and_then(|c| c.receipt_url.clone()),
        "funds_available_on": o.charge.as_ref().and_then(|c| c.available_on).map(|s| iso(s * 1000)),
        "invoice": o.invoice.as_ref().map(|i| json!({
            "id": i.id, "number": i.number, "status": i.status,
            "hosted_invoice_url": i.hosted_invoice_url, "invoice_pdf": i.invoice_pdf,
        })),
        "refunds": o.refunds.iter().map(|r| json!({
            "id": r.id, "amount": r.amount, "status": r.status, "failure_reason": r.failure_reason,
            "created_at": iso(r.created * 1000),
        })).collect::<Vec<_>>(),
        "created_at": iso(o.created_at),
        "paid_at": o.paid_at.map(iso),
    })
}

/// `POST /v1/projects/{id}/checkout` with an API token, or with the project's publishable key
/// (from a page on an allowed origin, which then may read the answer: CORS).
pub async fn checkout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<CheckoutInput>, ApiError>,
) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut cors = None;
    let result = async {
        let token = bearer(&headers)?;
        let project = if token.starts_with(PUBLISHABLE_PREFIX) {
            let project = state
                .engine
                .publishable_checkout_project(token, &id, origin.as_deref())
                .await?;
            cors = origin.clone();
            if !state.limits.allow(Some(token), peer.ip()) {
                return Err(ApiError::RateLimited(
                    "too many checkouts just now; retry in a moment".to_owned(),
                ));
            }
            project
        } else {
            let caller = Caller(state.engine.authenticate(token).await?);
            owned(&state, &caller, &id).await?
        };
        let ApiJson(body) = body?;
        let key = idempotency_key(&headers)?;
        let order = state
            .engine
            .checkout(&project, body, key.as_deref())
            .await?;
        Ok::<_, ApiError>((StatusCode::CREATED, Json(order_json(&order))))
    }
    .await;
    let mut response = match result {
        Ok(ok) => ok.into_response(),
        Err(e) => e.into_response(),
    };
    if let Some(o) = &cors {
        allow_origin(&mut response, o);
    }
    response
}

/// `GET /v1/projects/{id}/publishable_key`: the key a web page ships (made on first use), the
/// origins allowed to use it, and where it posts.
pub async fn publishable_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let key = state.engine.publishable_key(&project).await?;
    Ok(Json(key_json(&state, &key)))
}

fn key_json(state: &AppState, key: &chatpay_store::PublishableKey) -> Value {
    json!({
        "key": key.key,
        "allowed_origins": key.allowed_origins,
        "checkout_url": format!("{}/v1/projects/{}/checkout", state.engine.public_url(), key.project_id),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origins {
    allowed_origins: Vec<String>,
}

/// `PATCH /v1/projects/{id}/publishable_key` `{"allowed_origins": ["https://shop.example"]}`.
pub async fn allow_origins(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Origins>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let key = state
        .engine
        .allow_origins(&project, &body.allowed_origins)
        .await?;
    Ok(Json(key_json(&state, &key)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    /// A date (`2026-12-01`, UTC) or an RFC 3339 time; inclusive.
    since: Option<String>,
    /// Exclusive.
    until: Option<String>,
    /// An order number: the page after it (older orders).
    starting_after: Option<i64>,
    limit: Option<i64>,
    /// A customer's email: only their orders.
    customer: Option<String>,
}

fn time_param(name: &str, raw: &str) -> Result<i64, ApiError> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be a date (2026-12-01) or an RFC 3339 time"
            ))
        })
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    if let Some(s) = &q.status
        && OrderStatus::parse(s).is_none()
    {
        let all: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::BadRequest(format!(
            "`status` must be one of {}",
            all.join(", ")
        )));
    }
    let limit = super::page_limit(q.limit, 20)?;
    let filter = OrderFilter {
        status: q.status.clone(),
        since: q
            .since
            .as_deref()
            .map(|s| time_param("since", s))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|s| time_param("until", s))
            .transpose()?,
        before: q.starting_after,
        limit: limit + 1,
        customer_email: q.customer.clone(),
    };
    let mut orders = state.engine.orders(&project, &filter).await?;
    let has_more = orders.len() as i64 > limit;
    orders.truncate(limit as usize);
    Ok(Json(json!({
        "project": project.id,
        "mode": project.mode,
        "data": orders.iter().map(order_json).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_starting_after": if has_more { orders.last().map(|o| o.number) } else { None },
    })))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, number)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let number = parse_number(&number)?;
    Ok(Json(order_json(
        &state.engine.order(&project, number).await?,
    )))
}

fn parse_number(raw: &str) -> Result<i64, ApiError> {
    raw.trim_start_matches('#').parse().map_err(|_| {
        ApiError::NotFound(format!(
            "no order {raw:?}: orders are numbered (1001, 1002, …)"
        ))
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units; everything left when absent.
    amount: Option<i64>,
}

pub async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let number = parse_number(&number)?;
    let key = idempotency_key(&headers)?;
    // The body is optional: no body refunds everything left.
    let body: RefundBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefundBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body must be {{\"amount\": <minor units>}}: {e}"
            ))
        })?
    };
    let amount = body.amount;
    let outcome = state
        .engine
        .refund(&project, number, amount, key.as_deref())
        .await?;
    let r = &outcome.refund;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "refund": {
                "id": r.id, "amount": r.amount, "status": r.status,
                "failure_reason": r.failure_reason, "created_at": iso(r.created * 1000),
            },
            "order": order_json(&outcome.order),
        })),
    ))
}

/// `POST /v1/projects/{id}/orders/{number}/receipt`: e-mails the receipt again.
pub async fn resend_receipt(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let number = parse_number(&number)?;
    let key = idempotency_key(&headers)?;
    let email = state
        .engine
        .resend_receipt(&project, number, key.as_deref())
        .await?;
    Ok(Json(json!({ "number": number, "sent_to": email })))
}

#[derive(Debug, Deserialize)]
pub struct CompleteQuery {
    order: Option<String>,
}

/// Where a checkout without its own `success_url` lands: what was bought and whether the
/// payment is confirmed yet (Stripe's event may arrive a moment after the customer does).
pub async fn complete(State(state): State<AppState>, Query(q): Query<CompleteQuery>) -> Response {
    let order = match q.order.as_deref() {
        Some(id) => state.engine.order_by_id(id).await.ok().flatten(),
        None => None,
    };
    let detail = match &order {
        Some(o) if o.status.was_paid() => format!(
            "<p>Order <strong>#{}</strong>: {}, <strong>{}</strong>. Paid{}.</p><p>A receipt is on its way to your email.</p>",
            o.number,
            escape(&o.summary()),
            escape(&o.total().to_string()),
            o.customer_email
                .as_deref()
                .map(|e| format!(" by {}", escape(e)))
                .unwrap_or_default()
        ),
        Some(o) => format!(
            "<p>Order <strong>#{}</strong>: {}, <strong>{}</strong>. Your payment is being confirmed; a receipt will follow by email.</p>",
            o.number,
            escape(&o.summary()),
            escape(&o.total().to_string())
        ),
        None => {
            "<p>Your payment was received. A receipt is on its way to your email.</p>".to_owned()
        }
    };
    page_html(
        StatusCode::OK,
        "Thank you!",
        &format!("{detail}<p>You can close this page.</p>"),
    )
}
