//! The billing portal and plan changes over HTTP. Handlers translate; the engine decides.
//!
//! - `GET /v1/projects/{id}/portal`, `PATCH …/portal` `{"cancel_mode"}` → the portal setting,
//!   the plans offered there, and the secret that signs customer proofs;
//! - `POST /v1/projects/{id}/portal_sessions` `{"customer_email", "return_url"?}` → a portal
//!   URL for a subscriber: with an API token, or with the publishable key and a customer proof
//!   (`proof`, `expires`) from the builder's server (from an allowed origin: CORS);
//! - `POST /v1/projects/{id}/subscriptions/{sub}/plan_preview` `{"product"?, "interval"?}` →
//!   what the change would do and charge now; `POST …/subscriptions/{sub}/plan` (same body,
//!   `proration_date`?, optional `Idempotency-Key`) makes it.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::{BodyRefusals, Refusals};
use super::orders::idempotency_key;
use super::projects::owned;
use super::public::{page_response, token_or_publishable};
use super::types::{Amount, Timestamp};
use super::{ApiError, ApiJson, ApiPath, AppState, Caller};
use chatpay_core::domain::Email;
use chatpay_core::flows::PlanOffer;
use chatpay_core::plans::{CancelMode, Plan as CorePlan, PlanTiming, PlanWanted};

/// The project's billing portal in its current mode.
#[derive(Serialize, ToSchema)]
pub struct Portal {
    /// How members cancel in the portal: `at_period_end` (the default) or `immediately`.
    cancel_mode: String,
    /// Prices subscribers can switch between there (the catalog's recurring prices).
    plans: usize,
    /// `cps_…`: the secret your server signs customer proofs with (keep it on the server).
    proof_secret: String,
}

/// `PATCH …/portal`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalUpdate {
    /// `at_period_end` or `immediately`.
    cancel_mode: String,
}

async fn portal_body(
    state: &AppState,
    p: &chatpay_store::ProjectRecord,
    set: Option<CancelMode>,
) -> Result<Json<Portal>, ApiError> {
    let answer = state.engine.portal_answer(&p.id, p.mode, set).await?;
    let settings = state.engine.portal_settings(&p.id, p.mode).await?;
    Ok(Json(Portal {
        cancel_mode: answer.cancel_mode.as_str().to_owned(),
        plans: answer.plans,
        proof_secret: settings.proof_secret,
    }))
}

/// The project's billing portal setting (how members cancel), the plans offered there and
/// the customer proof secret.
#[utoipa::path(get, operation_id = "portal_show", path = "/v1/projects/{id}/portal", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, body = Portal), Refusals),
    security(("api_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Portal>, ApiError> {
    let p = owned(&state, &caller, &id).await?;
    portal_body(&state, &p, None).await
}

/// Sets how members cancel in the billing portal; the portal's configuration on Stripe is
/// made again before the next portal session.
#[utoipa::path(patch, operation_id = "portal_update", path = "/v1/projects/{id}/portal", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    request_body = PortalUpdate,
    responses(
        (status = 200, body = Portal),
        (status = 422, description = "`invalid_values`: `cancel_mode` is not `at_period_end` or `immediately`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PortalUpdate>,
) -> Result<Json<Portal>, ApiError> {
    let p = owned(&state, &caller, &id).await?;
    let mode = CancelMode::parse(&body.cancel_mode).ok_or_else(|| {
        ApiError::InvalidValues(
            [(
                "cancel_mode".to_owned(),
                "must be at_period_end or immediately".to_owned(),
            )]
            .into(),
        )
    })?;
    portal_body(&state, &p, Some(mode)).await
}

/// `POST …/portal_sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionRequest {
    /// The subscriber's email.
    #[schema(example = "ana@example.com")]
    customer_email: String,
    /// Where the portal's "Return" link goes (your app's page).
    return_url: Option<String>,
    /// With the publishable key: hex(HMAC-SHA256(proof secret, "{expires}.{project}.{email}")),
    /// signed by your server for the signed-in customer (email lowercase).
    proof: Option<String>,
    /// With `proof`: when it stops being valid (Unix seconds, at most 30 days ahead).
    expires: Option<i64>,
}

/// A portal session's link.
#[derive(Serialize, ToSchema)]
pub struct PortalSession {
    /// Stripe's hosted billing portal for the customer; short-lived: open it now.
    url: String,
    customer_email: String,
}

/// A billing portal link for a subscriber: with an API token, or with the publishable key and a
/// customer proof signed by the builder's server (from an allowed origin).
#[utoipa::path(post, operation_id = "portal_session", path = "/v1/projects/{id}/portal_sessions", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry answers the same session", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    request_body = PortalSessionRequest,
    responses(
        (status = 201, body = PortalSession),
        (status = 403, description = "`bad_customer_proof`, `origin_not_allowed`", body = ErrorBody),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        (status = 422, description = "`not_a_subscriber`, `invalid_email`, `stripe_refused`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = []), ("publishable_key" = [])))]
pub async fn session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<ApiJson<PortalSessionRequest>, ApiError>,
) -> Response {
    let mut cors = None;
    let result = async {
        let caller = token_or_publishable(&state, &headers, &id, peer.ip(), &mut cors).await?;
        let (project, public) = (caller.project, caller.public);
        let ApiJson(body) = body?;
        let email = Email::parse(&body.customer_email).ok_or_else(|| ApiError::Rejected {
            code: "invalid_email",
            message: format!("{:?} is not an email address", body.customer_email),
        })?;
        let proof = match (public, body.proof.as_deref(), body.expires) {
            (false, _, _) => None,
            (true, Some(p), Some(e)) => Some((p, e)),
            (true, _, _) => {
                return Err(ApiError::Forbidden {
                    code: "bad_customer_proof",
                    message: "with the publishable key, send `proof` and `expires` signed by your server for this customer".to_owned(),
                });
            }
        };
        let key = idempotency_key(&headers)?;
        let url = state
            .engine
            .portal_session(
                &project,
                email.as_str(),
                body.return_url.as_deref(),
                proof,
                key.as_deref(),
            )
            .await?;
        Ok::<_, ApiError>((
            StatusCode::CREATED,
            Json(PortalSession {
                url,
                customer_email: email.as_str().to_lowercase(),
            }),
        ))
    }
    .await;
    page_response(result, cors.as_deref())
}

/// `OPTIONS /v1/projects/{id}/portal_sessions`: a browser asks whether a page on its origin may
/// ask for a portal link with the project's publishable key (the checkout's origins).
#[utoipa::path(options, operation_id = "portal_preflight", path = "/v1/projects/{id}/portal_sessions", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("Origin" = String, Header, description = "The page's origin"),
    ),
    responses(
        (status = 204, description = "The origin may post (CORS headers)"),
        (status = 400, description = "`bad_request`: no Origin header", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such project", body = ErrorBody),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
    ))]
pub async fn preflight(
    state: State<AppState>,
    path: ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    super::public::preflight(state, path, headers).await
}

/// The plan to move to: a product by name, an interval, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// A product's name (`Pro`); the current product when absent.
    product: Option<String>,
    /// `day`, `week`, `month` or `year`; the current interval when absent.
    interval: Option<String>,
    /// The preview's `proration_date` (with `…/plan`), so Stripe charges what it showed.
    proration_date: Option<i64>,
}

impl PlanRequest {
    fn wanted(&self) -> Result<PlanWanted, ApiError> {
        PlanWanted::new(self.product.clone(), self.interval.clone()).map_err(|(field, why)| {
            ApiError::InvalidValues([(field.to_owned(), why.to_owned())].into())
        })
    }
}

/// A plan of the catalog.
#[derive(Serialize, ToSchema)]
pub struct Plan {
    price: String,
    product: String,
    /// `Pro (yearly)`.
    label: String,
    amount: Amount,
    interval: String,
    interval_count: i64,
}

impl From<&CorePlan> for Plan {
    fn from(p: &CorePlan) -> Plan {
        Plan {
            price: p.price.clone(),
            product: p.product.clone(),
            label: p.label(),
            amount: Amount::new(p.amount, p.currency),
            interval: p.interval.clone(),
            interval_count: p.interval_count,
        }
    }
}

/// A plan change: what it moves between, and when.
#[derive(Serialize, ToSchema)]
pub struct PlanChange {
    subscription: String,
    from: Plan,
    to: Plan,
    /// `now` (prorated, the difference invoiced at once) or `at_period_end` (a subscription
    /// schedule; nothing charged now).
    timing: String,
    /// When it takes effect.
    effective_at: Timestamp,
    /// For `now`: what Stripe's invoice preview charges today.
    #[serde(skip_serializing_if = "Option::is_none")]
    charged_now: Option<Amount>,
    /// For `now`: the proration date the preview used (send it with `…/plan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    proration_date: Option<i64>,
}

fn change_body(
    change: &chatpay_core::plans::PlanChange,
    preview: Option<&chatpay_core::plans::PlanPreview>,
    now: i64,
) -> PlanChange {
    PlanChange {
        subscription: change.subscription.clone(),
        from: Plan::from(&change.from),
        to: Plan::from(&change.to),
        timing: match change.timing {
            PlanTiming::Now => "now",
            PlanTiming::AtPeriodEnd => "at_period_end",
        }
        .to_owned(),
        effective_at: Timestamp::from_secs(match change.timing {
            PlanTiming::Now => now,
            PlanTiming::AtPeriodEnd => change.period_end,
        }),
        charged_now: preview.map(|p| Amount::new(p.charged_now.minor, p.charged_now.currency)),
        proration_date: preview.map(|p| p.proration_date),
    }
}

/// What moving the subscription to another plan would do: when it takes effect and, for a
/// change made now, what Stripe's invoice preview charges today.
#[utoipa::path(post, operation_id = "billing_plan_preview", path = "/v1/projects/{id}/subscriptions/{sub}/plan_preview", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("sub" = String, Path, description = "The subscription (`sub_…`)"),
    ),
    request_body = PlanRequest,
    responses(
        (status = 200, body = PlanChange),
        (status = 422, description = "`no_such_plan`, `same_plan`, `subscription_past_due`, `subscription_canceling`, `plan_change_scheduled`, `subscription_ended`, `subscription_not_active`, `several_items`, `currency_mismatch`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, sub)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PlanRequest>,
) -> Result<Json<PlanChange>, ApiError> {
    let p = owned(&state, &caller, &id).await?;
    let PlanOffer {
        change, preview, ..
    } = state.engine.plan_preview(&p, &sub, &body.wanted()?).await?;
    let now = chatpay_core::domain::now_millis() / 1000;
    Ok(Json(change_body(&change, preview.as_ref(), now)))
}

/// Moves the subscription to another plan: a longer interval or a dearer plan now (prorated,
/// invoiced at once), a shorter interval or a cheaper plan at the period's end (a subscription
/// schedule). An optional `Idempotency-Key` makes a retry act once.
#[utoipa::path(post, operation_id = "billing_plan", path = "/v1/projects/{id}/subscriptions/{sub}/plan", tag = "billing",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("sub" = String, Path, description = "The subscription (`sub_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 characters: a retry acts once", pattern = "^[!-~]([ -~]{0,198}[!-~])?$"),
    ),
    request_body = PlanRequest,
    responses(
        (status = 200, body = PlanChange),
        (status = 422, description = "`no_such_plan`, `same_plan`, `subscription_past_due`, `subscription_canceling`, `plan_change_scheduled`, `subscription_ended`, `subscription_not_active`, `several_items`, `currency_mismatch`, `stripe_refused`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((id, sub)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PlanRequest>,
) -> Result<Json<PlanChange>, ApiError> {
    let p = owned(&state, &caller, &id).await?;
    let change = state
        .engine
        .change_plan_http(
            &p,
            &sub,
            &body.wanted()?,
            body.proration_date,
            idempotency_key(&headers)?.as_deref(),
        )
        .await?;
    let now = chatpay_core::domain::now_millis() / 1000;
    Ok(Json(change_body(&change, None, now)))
}
