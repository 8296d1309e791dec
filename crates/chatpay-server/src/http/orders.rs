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
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{objects, whole};
use super::html::{escape, page_html};
use super::openapi::{BodyRefusals, Refusals};
use super::projects::owned;
use super::public::{page_response, token_or_publishable};
use super::types::{Mode, OrderStatus, Timestamp};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Caller, OptionalJson};
use crate::chat::CheckoutInput;
use chatpay_core::domain::Email;
use chatpay_core::orders::{self as core_orders, CartItem, Order as CoreOrder};
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

/// An order's totals as people read them.
#[derive(Serialize, ToSchema)]
pub struct OrderDisplay {
    /// `$113.00`.
    total: String,
    refunded: String,
}

/// One line of an order.
#[derive(Serialize, ToSchema)]
pub struct OrderLine {
    /// `price_…`.
    price: String,
    /// `prod_…`.
    product: String,
    name: String,
    quantity: i64,
    /// Per unit, in the currency's minor unit.
    unit_amount: i64,
    /// `unit_amount × quantity`.
    amount: i64,
    /// For a recurring price: its interval (`month`, `3 month`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
}

/// Why the last payment attempt failed.
#[derive(Serialize, ToSchema)]
pub struct PaymentError {
    code: Option<String>,
    decline_code: Option<String>,
    message: String,
}

/// An order's invoice (hosted page and PDF).
#[derive(Serialize, ToSchema)]
pub struct OrderInvoice {
    /// `in_…`.
    id: String,
    number: Option<String>,
    status: String,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
}

/// A refund of an order.
#[derive(Serialize, ToSchema)]
pub struct Refund {
    /// `re_…`.
    id: String,
    /// In the currency's minor unit.
    amount: i64,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    status: String,
    failure_reason: Option<String>,
    created_at: Timestamp,
}

impl From<&core_orders::RefundInfo> for Refund {
    fn from(r: &core_orders::RefundInfo) -> Refund {
        Refund {
            id: r.id.clone(),
            amount: r.amount,
            status: r.status.clone(),
            failure_reason: r.failure_reason.clone(),
            created_at: Timestamp::from_secs(r.created),
        }
    }
}

/// The dispute of an order's charge.
#[derive(Serialize, ToSchema)]
pub struct OrderDispute {
    /// `dp_…`.
    id: String,
    /// `disputed` (open), `won` or `lost`.
    #[schema(example = "disputed")]
    outcome: String,
    /// Stripe's status: `needs_response`, `under_review`, `warning_needs_response`, … `won`, `lost`.
    status: String,
    /// Stripe's reason code (`fraudulent`, `product_not_received`, …).
    reason: String,
    /// The reason in plain words.
    reason_text: String,
    /// Disputed, in the currency's minor unit.
    amount: i64,
    /// Dispute fees withdrawn, net of any returned, in the currency's minor unit.
    fee: i64,
    /// When evidence is due, while a response is awaited.
    evidence_due_by: Option<Timestamp>,
    /// Whether Stripe waits for a response (evidence, or accepting it).
    awaits_response: bool,
    created_at: Timestamp,
}

impl From<&chatpay_core::disputes::DisputeInfo> for OrderDispute {
    fn from(d: &chatpay_core::disputes::DisputeInfo) -> OrderDispute {
        OrderDispute {
            id: d.id.clone(),
            outcome: d.outcome().as_str().to_owned(),
            status: d.status.clone(),
            reason: d.reason.clone(),
            reason_text: d.reason_in_plain_words().to_owned(),
            amount: d.amount,
            fee: d.fee,
            evidence_due_by: d
                .due_by
                .filter(|_| d.awaits_response())
                .map(Timestamp::from_secs),
            awaits_response: d.awaits_response(),
            created_at: Timestamp::from_secs(d.created),
        }
    }
}

/// An order: amounts in minor units with the currency, and formatted.
#[derive(Serialize, ToSchema)]
pub struct Order {
    /// `ord_…`.
    id: String,
    /// The short number per project and mode (1001, 1002, …).
    number: i64,
    status: OrderStatus,
    /// ISO 4217, lowercase.
    currency: String,
    amount_total: i64,
    /// What a discount code took off (a one-time order's lines less its total; 0 without one).
    amount_discount: i64,
    amount_refunded: i64,
    amount_refundable: i64,
    display: OrderDisplay,
    lines: Vec<OrderLine>,
    customer_email: Option<String>,
    /// The subscription it started (`sub_…`), for a cart with a recurring price, once paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<String>,
    /// The hosted checkout page, while the order can be paid.
    url: Option<String>,
    /// `cs_…`.
    checkout_session: String,
    /// When the checkout page stops taking payment.
    expires_at: Timestamp,
    /// `pi_…`.
    payment_intent: Option<String>,
    last_payment_error: Option<PaymentError>,
    receipt_url: Option<String>,
    /// When the paid money becomes available in the balance.
    funds_available_on: Option<Timestamp>,
    invoice: Option<OrderInvoice>,
    refunds: Vec<Refund>,
    /// The charge's dispute, if the customer disputed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    dispute: Option<OrderDispute>,
    /// Whether the card issuer sent an early fraud warning about the payment.
    early_fraud_warning: bool,
    created_at: Timestamp,
    paid_at: Option<Timestamp>,
}

impl From<&CoreOrder> for Order {
    fn from(o: &CoreOrder) -> Order {
        let money = |minor: i64| o.money(minor).to_string();
        let payable = matches!(
            o.status,
            core_orders::OrderStatus::Open | core_orders::OrderStatus::PaymentFailed
        );
        Order {
            id: o.id.clone(),
            number: o.number,
            status: o.status.into(),
            currency: o.currency.as_str().to_owned(),
            amount_total: o.amount_total,
            amount_discount: o.discount(),
            amount_refunded: o.refunded(),
            amount_refundable: o.refundable(),
            display: OrderDisplay {
                total: money(o.amount_total),
                refunded: money(o.refunded()),
            },
            lines: o
                .lines
                .iter()
                .map(|l| OrderLine {
                    price: l.price.clone(),
                    product: l.product.clone(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_amount: l.unit_amount,
                    amount: l.amount,
                    interval: l.interval.clone(),
                })
                .collect(),
            customer_email: o.customer_email.clone(),
            subscription: o.subscription.clone(),
            url: payable.then(|| o.checkout_url.clone()).flatten(),
            checkout_session: o.checkout_session.clone(),
            expires_at: Timestamp::from_secs(o.expires_at),
            payment_intent: o.payment_intent.clone(),
            last_payment_error: o.last_payment_error.as_ref().map(|e| PaymentError {
                code: e.code.clone(),
                decline_code: e.decline_code.clone(),
                message: e.message.clone(),
            }),
            receipt_url: o.charge.as_ref().and_then(|c| c.receipt_url.clone()),
            funds_available_on: o
                .charge
                .as_ref()
                .and_then(|c| c.available_on)
                .map(Timestamp::from_secs),
            invoice: o.invoice.as_ref().map(|i| OrderInvoice {
                id: i.id.clone(),
                number: i.number.clone(),
                status: i.status.clone(),
                hosted_invoice_url: i.hosted_invoice_url.clone(),
                invoice_pdf: i.invoice_pdf.clone(),
            }),
            refunds: o.refunds.iter().map(Refund::from).collect(),
            dispute: o.dispute.as_ref().map(OrderDispute::from),
            early_fraud_warning: o.fraud_warning.is_some(),
            created_at: Timestamp::from_millis(o.created_at),
            paid_at: o.paid_at.map(Timestamp::from_millis),
        }
    }
}

/// One line of a cart.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartLine {
    /// A price of the synced catalog (`price_…`).
    price: String,
    /// 1 to 999 (1 when absent).
    #[serde(default, deserialize_with = "whole")]
    #[schema(value_type = i64, default = 1, minimum = 1, maximum = 999)]
    quantity: Option<i64>,
}

/// `POST /v1/projects/{id}/checkout`: a cart of the synced catalog.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// 1 to 100 lines.
    #[serde(default, deserialize_with = "objects")]
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<CartLine>,
    /// Prefills the checkout page and receives the receipt.
    #[serde(default)]
    #[schema(format = Email, example = "ana@example.com", max_length = 254, pattern = r"^[^\s,@]+@[^\s,@.][^\s,@]*\.[^\s,@]*[^\s,@.]$")]
    customer_email: Option<String>,
    /// Where the customer lands after paying (`http://` or `https://`); chatpay's thank-you
    /// page when absent.
    #[serde(default)]
    #[schema(pattern = r"^https?://[^\s/?#]+\S*$", max_length = 2000)]
    success_url: Option<String>,
    /// Where the checkout page's back link goes.
    #[serde(default)]
    #[schema(pattern = r"^https?://[^\s/?#]+\S*$", max_length = 2000)]
    cancel_url: Option<String>,
    /// Days of free trial for a cart with a recurring price, 1 to 730.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 730)]
    trial_period_days: Option<u32>,
    /// A discount code to apply, as customers type it (`WELCOME15`). Without one, customers
    /// may enter a code on the checkout page.
    #[serde(default)]
    #[schema(example = "WELCOME15", max_length = 50)]
    promotion_code: Option<String>,
}

impl CheckoutRequest {
    /// The checkout as the engine takes it: the email parsed (422 `invalid_email`).
    fn parse(self) -> Result<CheckoutInput, ApiError> {
        let customer_email = match self.customer_email.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(Email::parse(raw).ok_or_else(|| ApiError::Rejected {
                code: "invalid_email",
                message: format!("`customer_email` is not an email address: {raw}"),
            })?),
        };
        Ok(CheckoutInput {
            items: self
                .items
                .into_iter()
                .map(|l| CartItem {
                    price: l.price,
                    quantity: l.quantity.unwrap_or(1),
                })
                .collect(),
            customer_email,
            success_url: self.success_url,
            cancel_url: self.cancel_url,
            trial_period_days: self.trial_period_days,
            promotion_code: self.promotion_code,
        })
    }
}

/// Creates an order and its hosted checkout page for a cart of the synced catalog, with an
/// API token, or with the project's publishable key (from a page on an allowed origin, which
/// then may read the answer: CORS). An optional `Idempotency-Key` makes a retry answer the
/// same order.
#[utoipa::path(post, operation_id = "orders_checkout", path = "/v1/projects/{id}/checkout", tag = "selling",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry answers the same order", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "The order, with `url`: the hosted checkout page", body = Order),
        (status = 403, description = "`origin_not_allowed` (publishable key from another origin)", body = ErrorBody),
        (status = 409, description = "`backend_required`, `stripe_not_connected`, `charges_disabled`, `idempotency_key_reused`", body = ErrorBody),
        (status = 422, description = "`empty_cart`, `unknown_price`, `not_sellable`, `mixed_currencies`, `mixed_intervals`, `invalid_trial`, `invalid_quantity`, `too_many_items`, `amount_too_large`, `invalid_email`, `invalid_url`, `catalog_not_synced`, `unknown_code`, `code_inactive`, `code_expired`, `code_used_up`, `code_not_applicable`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (publishable key)", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = []), ("publishable_key" = [])))]
pub async fn checkout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<ApiJson<CheckoutRequest>, ApiError>,
) -> Response {
    let mut cors = None;
    let result = async {
        let project = token_or_publishable(&state, &headers, &id, peer.ip(), &mut cors)
            .await?
            .project;
        let ApiJson(body) = body?;
        let input = body.parse()?;
        let key = idempotency_key(&headers)?;
        let order = state
            .engine
            .checkout(&project, input, key.as_deref())
            .await?;
        Ok::<_, ApiError>((StatusCode::CREATED, Json(Order::from(&order))))
    }
    .await;
    page_response(result, cors.as_deref())
}

/// The key a web page ships, and where it posts.
#[derive(Serialize, ToSchema)]
pub struct PublishableKey {
    /// `cpub_…`: only creates checkouts, from the allowed origins.
    key: String,
    /// Origins (`https://shop.example`) whose pages may use the key.
    allowed_origins: Vec<String>,
    /// Where the page posts its checkouts.
    checkout_url: String,
}

fn key_body(state: &AppState, key: &chatpay_store::PublishableKey) -> PublishableKey {
    PublishableKey {
        key: key.key.clone(),
        allowed_origins: key.allowed_origins.clone(),
        checkout_url: format!(
            "{}/v1/projects/{}/checkout",
            state.engine.public_url(),
            key.project_id
        ),
    }
}

/// The project's publishable key (made on first use) and the origins allowed to use it.
#[utoipa::path(get, operation_id = "orders_publishable_key", path = "/v1/projects/{id}/publishable_key", tag = "selling",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, body = PublishableKey), Refusals),
    security(("api_token" = [])))]
pub async fn publishable_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PublishableKey>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let key = state.engine.publishable_key(&project).await?;
    Ok(Json(key_body(&state, &key)))
}

/// `PATCH /v1/projects/{id}/publishable_key`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Origins {
    /// `https://shop.example` (scheme, host, optional port).
    #[schema(schema_with = origin_list)]
    allowed_origins: Vec<String>,
}

/// `allowed_origins`' schema: web origins as browsers send them.
fn origin_list() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/?$"))
                .examples([serde_json::json!("https://shop.example")]),
        )
        .description(Some(
            "Origins (scheme, host, optional port; no path) whose pages may use the key",
        ))
        .build()
}

/// Sets the origins whose pages may use the publishable key.
#[utoipa::path(patch, operation_id = "orders_allow_origins", path = "/v1/projects/{id}/publishable_key", tag = "selling",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    request_body = Origins,
    responses(
        (status = 200, body = PublishableKey),
        (status = 422, description = "`invalid_origin`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn allow_origins(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Origins>,
) -> Result<Json<PublishableKey>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let key = state
        .engine
        .allow_origins(&project, &body.allowed_origins)
        .await?;
    Ok(Json(key_body(&state, &key)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only orders in this status.
    status: Option<OrderStatus>,
    /// A date (`2026-12-01`, UTC) or an RFC 3339 time; inclusive.
    #[param(schema_with = date_or_time)]
    since: Option<String>,
    /// A date or an RFC 3339 time; exclusive.
    #[param(schema_with = date_or_time)]
    until: Option<String>,
    /// An order number: the page after it (older orders).
    starting_after: Option<i64>,
    /// 1 to 100 (20 when absent).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// A customer's email: only their orders.
    customer: Option<String>,
}

/// A date (`2026-12-01`) or an RFC 3339 time, as a query parameter's schema.
pub(super) fn date_or_time() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    OneOfBuilder::new()
        .item(string(KnownFormat::Date))
        .item(string(KnownFormat::DateTime))
        .description(Some("A date (UTC) or an RFC 3339 time"))
        .into()
}

pub(super) fn time_param(name: &str, raw: &str) -> Result<i64, ApiError> {
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

/// The orders a list or an export keeps: `status`, `since`, `until` (dates or RFC 3339 times)
/// and `customer`, as the query gave them.
pub(super) fn order_filter(
    status: Option<OrderStatus>,
    since: Option<&str>,
    until: Option<&str>,
    customer: Option<String>,
) -> Result<OrderFilter, ApiError> {
    Ok(OrderFilter {
        status: status.map(Into::into),
        since: since.map(|s| time_param("since", s)).transpose()?,
        until: until.map(|s| time_param("until", s)).transpose()?,
        customer_email: customer,
        ..OrderFilter::default()
    })
}

/// A page of orders, newest first.
#[derive(Serialize, ToSchema)]
pub struct OrderList {
    project: String,
    mode: Mode,
    data: Vec<Order>,
    has_more: bool,
    /// The order number to pass as `starting_after` for the next page.
    next_starting_after: Option<i64>,
}

/// The project's orders in its mode, newest first.
#[utoipa::path(get, operation_id = "orders_list", path = "/v1/projects/{id}/orders", tag = "selling",
    params(("id" = String, Path, description = "The project (`prj_…`)"), ListQuery),
    responses((status = 200, body = OrderList), Refusals),
    security(("api_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<OrderList>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let limit = super::page_limit(q.limit, 20)?;
    let filter = OrderFilter {
        before: q.starting_after,
        limit: limit + 1,
        ..order_filter(q.status, q.since.as_deref(), q.until.as_deref(), q.customer)?
    };
    let mut orders = state.engine.orders(&project, &filter).await?;
    let has_more = orders.len() as i64 > limit;
    orders.truncate(limit as usize);
    Ok(Json(OrderList {
        project: project.id.to_string(),
        mode: project.mode.into(),
        data: orders.iter().map(Order::from).collect(),
        has_more,
        next_starting_after: if has_more {
            orders.last().map(|o| o.number)
        } else {
            None
        },
    }))
}

/// One order of the project, in its mode.
#[utoipa::path(get, operation_id = "orders_show", path = "/v1/projects/{id}/orders/{number}", tag = "selling",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("number" = i64, Path, description = "The order's number (1001, …)"),
    ),
    responses((status = 200, body = Order), Refusals),
    security(("api_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, number)): ApiPath<(String, String)>,
) -> Result<Json<Order>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let number = parse_number(&number)?;
    Ok(Json(Order::from(
        &state.engine.order(&project, number).await?,
    )))
}

fn parse_number(raw: &str) -> Result<i64, ApiError> {
    raw.trim_start_matches('#').parse().map_err(|_| {
        ApiError::NotFound(format!(
            "no order \"{}\": orders are numbered (1001, 1002, …)",
            raw.escape_default()
        ))
    })
}

/// `POST /v1/projects/{id}/orders/{number}/refunds`; no body refunds everything left.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// In the currency's minor unit; everything left when absent.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1)]
    amount: Option<i64>,
}

/// A refund made, and the order after it.
#[derive(Serialize, ToSchema)]
pub struct RefundCreated {
    refund: Refund,
    order: Order,
}

/// Refunds an order, in full or in part. An optional `Idempotency-Key` makes a retry refund
/// once.
#[utoipa::path(post, operation_id = "orders_refund", path = "/v1/projects/{id}/orders/{number}/refunds", tag = "selling",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("number" = i64, Path, description = "The order's number (1001, …)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry refunds once", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    request_body(content = Option<RefundRequest>, description = "Optional: no body refunds everything left"),
    responses(
        (status = 201, body = RefundCreated),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        (status = 422, description = "`order_not_paid`, `already_refunded`, `amount_too_large` (says what is left), `invalid_amount`, `stripe_refused`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, number)): ApiPath<(String, String)>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefundRequest>,
) -> Result<(StatusCode, Json<RefundCreated>), ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let number = parse_number(&number)?;
    let key = idempotency_key(&headers)?;
    let amount = body.and_then(|b| b.amount);
    let outcome = state
        .engine
        .refund(&project, number, amount, key.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RefundCreated {
            refund: Refund::from(&outcome.refund),
            order: Order::from(&outcome.order),
        }),
    ))
}

/// A receipt sent again.
#[derive(Serialize, ToSchema)]
pub struct ReceiptSent {
    number: i64,
    /// The customer's email it went to.
    sent_to: String,
}

/// E-mails a paid order's receipt to its customer again; an optional `Idempotency-Key` makes
/// a retried request send once.
#[utoipa::path(post, operation_id = "orders_resend_receipt", path = "/v1/projects/{id}/orders/{number}/receipt", tag = "selling",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("number" = i64, Path, description = "The order's number (1001, …)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry sends once", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    responses(
        (status = 200, body = ReceiptSent),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        (status = 422, description = "`no_receipt`: not paid, or no customer email", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn resend_receipt(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, number)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ReceiptSent>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let number = parse_number(&number)?;
    let key = idempotency_key(&headers)?;
    let email = state
        .engine
        .resend_receipt(&project, number, key.as_deref())
        .await?;
    Ok(Json(ReceiptSent {
        number,
        sent_to: email,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompleteQuery {
    /// The order (`ord_…`).
    order: Option<String>,
}

/// Where a checkout without its own `success_url` lands: what was bought and whether the
/// payment is confirmed yet (Stripe's event may arrive a moment after the customer does).
#[utoipa::path(get, operation_id = "orders_complete", path = "/checkout/complete", tag = "pages",
    params(CompleteQuery),
    responses((status = 200, description = "A thank-you page", content_type = "text/html", body = String)))]
pub async fn complete(
    State(state): State<AppState>,
    query: Result<ApiQuery<CompleteQuery>, ApiError>,
) -> Response {
    let order_id = query.ok().and_then(|ApiQuery(q)| q.order);
    let order = match order_id.as_deref() {
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
