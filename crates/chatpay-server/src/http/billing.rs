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
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::{BodyRefusals, Refusals};
use super::orders::idempotency_key;
use super::projects::owned;
use super::types::{Amount, InvoiceStatus, Mode, PayoutStatus, SubscriptionStatus, Timestamp};
use super::{ApiError, ApiPath, ApiQuery, AppState, Caller, OptionalJson};
use chatpay_core::billing::{
    self as core_billing, Entitlement as CoreEntitlement, Grant, Payout as CorePayout,
    Subscription as CoreSubscription, SubscriptionChange,
};
use chatpay_core::domain::Email;

/// A subscription's plan and amount as people read them.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionDisplay {
    /// `Pro (monthly)`.
    plan: String,
    /// `$19.00`.
    amount: String,
}

/// One price of a subscription.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionItem {
    price: String,
    product: String,
    name: Option<String>,
    quantity: i64,
    /// In the currency's minor unit.
    unit_amount: Option<i64>,
    /// `day`, `week`, `month` or `year`.
    interval: String,
    interval_count: i64,
}

/// An amount's display.
#[derive(Serialize, ToSchema)]
pub struct AmountDisplay {
    amount: String,
}

/// One invoice of a subscription.
#[derive(Serialize, ToSchema)]
pub struct Invoice {
    /// `in_…`.
    id: String,
    number: Option<String>,
    status: InvoiceStatus,
    amount_due: i64,
    amount_paid: i64,
    currency: String,
    display: AmountDisplay,
    /// `subscription_create`, `subscription_cycle`, …
    billing_reason: Option<String>,
    attempt_count: i64,
    next_payment_attempt: Option<Timestamp>,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
    created: Timestamp,
    paid_at: Option<Timestamp>,
}

/// A subscription: amounts in minor units with the currency.
#[derive(Serialize, ToSchema)]
pub struct Subscription {
    /// `sub_…`.
    id: String,
    status: SubscriptionStatus,
    /// `cus_…`.
    customer: String,
    customer_email: Option<String>,
    currency: String,
    amount_per_period: i64,
    display: SubscriptionDisplay,
    items: Vec<SubscriptionItem>,
    current_period_end: Option<Timestamp>,
    trial_end: Option<Timestamp>,
    cancel_at_period_end: bool,
    cancel_at: Option<Timestamp>,
    canceled_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    created: Timestamp,
    /// The order that started it (`ord_…`) and its number.
    order: Option<String>,
    order_number: Option<i64>,
    /// Newest first.
    invoices: Vec<Invoice>,
}

impl From<&CoreSubscription> for Subscription {
    fn from(s: &CoreSubscription) -> Subscription {
        let at = |t: Option<i64>| t.map(Timestamp::from_secs);
        Subscription {
            id: s.id.clone(),
            status: s.status.into(),
            customer: s.customer.clone(),
            customer_email: s.customer_email.clone(),
            currency: s.currency.as_str().to_owned(),
            amount_per_period: s.amount_per_period().minor,
            display: SubscriptionDisplay {
                plan: s.summary(),
                amount: s.amount_per_period().to_string(),
            },
            items: s
                .items
                .iter()
                .map(|i| SubscriptionItem {
                    price: i.price.clone(),
                    product: i.product.clone(),
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit_amount: i.unit_amount,
                    interval: i.interval.clone(),
                    interval_count: i.interval_count,
                })
                .collect(),
            current_period_end: at(s.current_period_end()),
            trial_end: at(s.trial_end),
            cancel_at_period_end: s.cancel_at_period_end,
            cancel_at: at(s.cancel_at),
            canceled_at: at(s.canceled_at),
            ended_at: at(s.ended_at),
            created: Timestamp::from_secs(s.created),
            order: s.order.clone(),
            order_number: s.order_number,
            invoices: s
                .invoices
                .iter()
                .map(|i| Invoice {
                    id: i.id.clone(),
                    number: i.number.clone(),
                    status: i.status.into(),
                    amount_due: i.amount_due,
                    amount_paid: i.amount_paid,
                    currency: i.currency.as_str().to_owned(),
                    display: AmountDisplay {
                        amount: i.amount().to_string(),
                    },
                    billing_reason: i.billing_reason.clone(),
                    attempt_count: i.attempt_count,
                    next_payment_attempt: at(i.next_payment_attempt),
                    hosted_invoice_url: i.hosted_invoice_url.clone(),
                    invoice_pdf: i.invoice_pdf.clone(),
                    created: Timestamp::from_secs(i.created),
                    paid_at: at(i.paid_at),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only subscriptions in this status.
    status: Option<SubscriptionStatus>,
    /// A customer's email: only theirs.
    customer: Option<String>,
    /// A subscription id: the page after it (older ones).
    starting_after: Option<String>,
    /// 1 to 100 (20 when absent).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A page of subscriptions, newest first.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    data: Vec<Subscription>,
    has_more: bool,
}

/// The project's subscriptions in its mode, newest first, each with its invoices.
#[utoipa::path(get, operation_id = "billing_list", path = "/v1/projects/{id}/subscriptions", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)"), ListQuery),
    responses(
        (status = 200, body = SubscriptionList),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let limit = super::page_limit(q.limit, 20)?;
    let page = state
        .engine
        .subscriptions(
            &project,
            q.status.map(Into::into),
            q.customer.as_deref(),
            limit,
            q.starting_after.as_deref(),
        )
        .await?;
    Ok(Json(SubscriptionList {
        data: page.items.iter().map(Subscription::from).collect(),
        has_more: page.has_more,
    }))
}

/// One subscription (another project's or mode's is 404).
#[utoipa::path(get, operation_id = "billing_show", path = "/v1/projects/{id}/subscriptions/{sub}", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("sub" = String, Path, description = "The subscription (`sub_…`)"),
    ),
    responses(
        (status = 200, body = Subscription),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, sub)): ApiPath<(String, String)>,
) -> Result<Json<Subscription>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    Ok(Json(Subscription::from(
        &state.engine.subscription(&project, &sub).await?,
    )))
}

/// `POST …/subscriptions/{sub}/cancel`; no body cancels at the period's end.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Cancel at the current period's end (the default) rather than now.
    #[schema(default = true)]
    at_period_end: Option<bool>,
}

/// Cancels a subscription on Stripe, at the period's end (the default) or now; an optional
/// `Idempotency-Key` makes a retry act once.
#[utoipa::path(post, operation_id = "billing_cancel", path = "/v1/projects/{id}/subscriptions/{sub}/cancel", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("sub" = String, Path, description = "The subscription (`sub_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry acts once", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    request_body(content = Option<CancelRequest>, description = "Optional: no body cancels at the period's end"),
    responses(
        (status = 200, description = "The subscription as Stripe holds it after", body = Subscription),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        (status = 422, description = "`subscription_ended`, `stripe_refused`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((id, sub)): ApiPath<(String, String)>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> Result<Json<Subscription>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let change = if body.and_then(|b| b.at_period_end).unwrap_or(true) {
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
    Ok(Json(Subscription::from(&after)))
}

/// Takes a scheduled cancellation back, on Stripe; an optional `Idempotency-Key` makes a
/// retry act once.
#[utoipa::path(post, operation_id = "billing_resume", path = "/v1/projects/{id}/subscriptions/{sub}/resume", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("sub" = String, Path, description = "The subscription (`sub_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry acts once", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    responses(
        (status = 200, description = "The subscription as Stripe holds it after", body = Subscription),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        (status = 422, description = "`subscription_ended`, `not_canceling`, `stripe_refused`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((id, sub)): ApiPath<(String, String)>,
) -> Result<Json<Subscription>, ApiError> {
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
    Ok(Json(Subscription::from(&after)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntitlementsQuery {
    /// The customer's email address (required).
    #[param(
        required = true,
        example = "ana@example.com",
        max_length = 254,
        pattern = r"^[^\s,@]+@[^\s,@.][^\s,@]*\.[^\s,@]*[^\s,@.]$"
    )]
    customer: Option<String>,
}

/// Where access comes from: `subscription` (with `subscription` and `status`) or `order`
/// (with `order`, its number).
#[derive(Serialize, ToSchema)]
pub struct Entitlement {
    /// `prod_…`.
    product: String,
    name: String,
    /// `subscription` or `order`.
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<SubscriptionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<i64>,
    since: Timestamp,
    /// None: for good.
    until: Option<Timestamp>,
}

impl From<&CoreEntitlement> for Entitlement {
    fn from(e: &CoreEntitlement) -> Entitlement {
        let (source, subscription, status, order) = match &e.grant {
            Grant::Subscription {
                subscription,
                status,
            } => (
                "subscription",
                Some(subscription.clone()),
                Some((*status).into()),
                None,
            ),
            Grant::Order { order } => ("order", None, None, Some(*order)),
        };
        Entitlement {
            product: e.product.clone(),
            name: e.name.clone(),
            source: source.to_owned(),
            subscription,
            status,
            order,
            since: Timestamp::from_secs(e.since),
            until: e.until.map(Timestamp::from_secs),
        }
    }
}

/// What a customer may access now.
#[derive(Serialize, ToSchema)]
pub struct Entitlements {
    customer: String,
    mode: Mode,
    data: Vec<Entitlement>,
}

/// What the customer may access now.
#[utoipa::path(get, operation_id = "billing_entitlements", path = "/v1/projects/{id}/entitlements", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)"), EntitlementsQuery),
    responses(
        (status = 200, body = Entitlements),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn entitlements(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EntitlementsQuery>,
) -> Result<Json<Entitlements>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let raw = q.customer.as_deref().map(str::trim).unwrap_or("");
    let email = Email::parse(raw).ok_or_else(|| {
        ApiError::BadRequest(
            "`customer` must be the customer's email address (?customer=ana@example.com)"
                .to_owned(),
        )
    })?;
    let list = state.engine.entitlements(&project, email.as_str()).await?;
    Ok(Json(Entitlements {
        customer: email.as_str().to_owned(),
        mode: project.mode.into(),
        data: list.iter().map(Entitlement::from).collect(),
    }))
}

/// The connected account's balance.
#[derive(Serialize, ToSchema)]
pub struct Balance {
    available: Vec<Amount>,
    pending: Vec<Amount>,
}

/// The connected account's balance, per currency.
#[utoipa::path(get, operation_id = "billing_balance", path = "/v1/projects/{id}/balance", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses(
        (status = 200, body = Balance),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Balance>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let b = state.engine.balance(&project).await?;
    let amounts = |list: &[core_billing::BalanceAmount]| {
        list.iter()
            .map(|a| Amount::new(a.amount, a.currency))
            .collect()
    };
    Ok(Json(Balance {
        available: amounts(&b.available),
        pending: amounts(&b.pending),
    }))
}

/// A payout to the account's bank.
#[derive(Serialize, ToSchema)]
pub struct Payout {
    /// `po_…`.
    id: String,
    amount: i64,
    currency: String,
    display: AmountDisplay,
    status: PayoutStatus,
    arrival_date: Timestamp,
    created: Timestamp,
    failure_code: Option<String>,
    failure_message: Option<String>,
    /// Why it failed, in plain words.
    failure_explained: Option<String>,
    /// The charges it carries (`ch_…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    payments: Vec<String>,
}

impl From<&CorePayout> for Payout {
    fn from(p: &CorePayout) -> Payout {
        Payout {
            id: p.id.clone(),
            amount: p.amount,
            currency: p.currency.as_str().to_owned(),
            display: AmountDisplay {
                amount: p.money().to_string(),
            },
            status: p.status.into(),
            arrival_date: Timestamp::from_secs(p.arrival_date),
            created: Timestamp::from_secs(p.created),
            failure_code: p.failure_code.clone(),
            failure_message: p.failure_message.clone(),
            failure_explained: p
                .failure_code
                .as_deref()
                .map(|c| core_billing::payout_failure_in_words(c).to_string()),
            payments: p.payments.clone(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PayoutsQuery {
    /// 1 to 100 (10 when absent).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// The account's payouts, newest first.
#[derive(Serialize, ToSchema)]
pub struct PayoutList {
    data: Vec<Payout>,
}

/// The account's payouts, newest first.
#[utoipa::path(get, operation_id = "billing_payouts", path = "/v1/projects/{id}/payouts", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)"), PayoutsQuery),
    responses(
        (status = 200, body = PayoutList),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn payouts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PayoutsQuery>,
) -> Result<Json<PayoutList>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let limit = super::page_limit(q.limit, 10)?;
    let list = state.engine.payouts(&project, limit).await?;
    Ok(Json(PayoutList {
        data: list.iter().map(Payout::from).collect(),
    }))
}
