//! Test controls: the operations behind `Sandbox`'s control methods, and the same operations
//! over HTTP under `/__sandbox/...` (JSON in and out, loopback clients only, no key needed).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::accounts;
use super::billing::AfterRetries;
use super::cards;
use super::catalog::{self, SeedCatalog, SeedReport};
use super::checkout::{self, Ctx, PayInput, PayOutcome};
use super::error::{ApiError, ErrorType};
use super::events::{self, EventSummary};
use super::faults::Fault;
use super::hosted;
use super::model::VerificationOutcome;
use super::oauth::{self, OAuthAuthorize};
use super::onboarding::{self, FollowResult};
use super::sales::SentEmail;
use super::shapes_sales;
use super::state::App;
use super::webhooks::{self, DeliveryAttempt, Endpoint};
use crate::Mode;

/// Why a test control could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No object with that id.
    #[error("{0}")]
    NotFound(String),
    /// The request does not make sense (bad JSON, unknown reason, too many products...).
    #[error("{0}")]
    Invalid(String),
    /// Deliveries need a webhook endpoint; none is set.
    #[error("no webhook endpoint is set")]
    NoEndpoint,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match self {
            ControlError::NotFound(_) => (StatusCode::NOT_FOUND, "resource_missing"),
            ControlError::Invalid(_) => (StatusCode::BAD_REQUEST, "parameter_invalid"),
            ControlError::NoEndpoint => (StatusCode::CONFLICT, "no_webhook_endpoint"),
        };
        ApiError::new(status, ErrorType::InvalidRequest, message)
            .code(code)
            .into_response()
    }
}

pub(crate) fn set_verification(
    app: &App,
    account: &str,
    outcome: VerificationOutcome,
) -> Result<Value, ControlError> {
    outcome.validate().map_err(ControlError::Invalid)?;
    let not_found = || ControlError::NotFound(format!("no such account: {account}"));
    let mode = app
        .lock()
        .find_account(account)
        .map(|(mode, _)| mode)
        .ok_or_else(not_found)?;
    app.transact(mode, None, |tx| {
        accounts::set_outcome(tx, account, outcome, None)
    })
    .ok_or_else(not_found)
}

pub(crate) fn inject_fault(app: &App, fault: Fault) -> Result<(), ControlError> {
    fault.validate().map_err(ControlError::Invalid)?;
    app.faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .add(fault);
    Ok(())
}

pub(crate) fn clear_faults(app: &App) {
    app.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

pub(crate) fn faults(app: &App) -> Vec<Fault> {
    app.faults.lock().unwrap_or_else(|e| e.into_inner()).list()
}

pub(crate) fn seed_catalog(app: &App, spec: &SeedCatalog) -> Result<SeedReport, ControlError> {
    let mode = if spec.livemode {
        Mode::Live
    } else {
        Mode::Test
    };
    app.transact(mode, None, |tx| catalog::seed(tx, spec))
        .map_err(ControlError::Invalid)
}

pub(crate) fn delete_price(app: &App, id: &str) -> Result<Value, ControlError> {
    let found = {
        let st = app.lock();
        [Mode::Test, Mode::Live].into_iter().find_map(|mode| {
            st.mode(mode)
                .catalogs
                .iter()
                .find(|(_, c)| c.prices.get(id).is_some())
                .map(|(key, _)| (mode, key.clone()))
        })
    };
    let (mode, key) =
        found.ok_or_else(|| ControlError::NotFound(format!("no such price: {id}")))?;
    let scope = (key != super::state::PLATFORM).then_some(key);
    app.transact(mode, None, |tx| {
        catalog::delete_price(tx, scope.as_deref(), id)
    })
    .map_err(ControlError::Invalid)
}

pub(crate) fn event_summaries(app: &App, kind: Option<&str>) -> Vec<EventSummary> {
    let active = app.webhooks.has_active_endpoint();
    events::summaries(&app.lock(), kind, active)
}

fn manual_endpoint(app: &App) -> Result<Endpoint, ControlError> {
    app.webhooks.endpoint().ok_or(ControlError::NoEndpoint)
}

pub(crate) async fn resend_event(app: &App, id: &str) -> Result<DeliveryAttempt, ControlError> {
    let endpoint = manual_endpoint(app)?;
    webhooks::attempt_once(app, id, &endpoint, true)
        .await
        .ok_or_else(|| ControlError::NotFound(format!("no such event: {id}")))
}

pub(crate) async fn deliver_events(
    app: &App,
    ids: &[String],
) -> Result<Vec<DeliveryAttempt>, ControlError> {
    let endpoint = manual_endpoint(app)?;
    {
        let st = app.lock();
        if let Some(missing) = ids.iter().find(|id| st.find_event(id).is_none()) {
            return Err(ControlError::NotFound(format!("no such event: {missing}")));
        }
    }
    let mut attempts = Vec::with_capacity(ids.len());
    for id in ids {
        let attempt = webhooks::attempt_once(app, id, &endpoint, true)
            .await
            .ok_or_else(|| ControlError::NotFound(format!("no such event: {id}")))?;
        attempts.push(attempt);
    }
    Ok(attempts)
}

pub(crate) fn authorize_oauth(app: &App, req: OAuthAuthorize) -> Result<String, ControlError> {
    oauth::authorize(app, req).map_err(ControlError::Invalid)
}

pub(crate) fn follow_account_link(
    app: &App,
    url: &str,
    outcome: VerificationOutcome,
) -> Result<FollowResult, ControlError> {
    outcome.validate().map_err(ControlError::Invalid)?;
    onboarding::follow(app, url, outcome)
        .ok_or_else(|| ControlError::NotFound(format!("no such account link: {url}")))
}

/// Moves the sandbox clock forward; returns the total offset in seconds.
pub(crate) fn advance_clock(app: &App, by: Duration) -> i64 {
    // A century per call at most; the offset itself saturates.
    let secs = i64::try_from(by.as_secs())
        .unwrap_or(i64::MAX)
        .min(100 * 365 * 86_400);
    let offset = &app.clock_offset;
    let mut current = offset.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = current.saturating_add(secs);
        match offset.compare_exchange_weak(
            current,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => {
                // What the new time means: sessions expire, late refund failures happen.
                settle(app);
                return next;
            }
            Err(actual) => current = actual,
        }
    }
}

// ---- HTTP ----

/// The `/__sandbox` routes; only loopback clients are served.
pub(crate) fn router() -> Router<App> {
    Router::new()
        .route(
            "/__sandbox/webhook_endpoint",
            post(http_set_endpoint).delete(http_clear_endpoint),
        )
        .route("/__sandbox/deliveries", post(http_deliveries))
        .route("/__sandbox/events", get(http_events))
        .route("/__sandbox/events/deliver", post(http_deliver))
        .route("/__sandbox/events/{id}/resend", post(http_resend))
        .route(
            "/__sandbox/accounts/{id}/verification",
            post(http_verification),
        )
        .route(
            "/__sandbox/faults",
            get(http_faults)
                .post(http_add_fault)
                .delete(http_clear_faults),
        )
        .route("/__sandbox/catalog", post(http_seed))
        .route("/__sandbox/prices/{id}/delete", post(http_delete_price))
        .route("/__sandbox/oauth/authorize", post(http_oauth))
        .route("/__sandbox/account_links/follow", post(http_follow))
        .route("/__sandbox/clock/advance", post(http_clock))
        .route("/__sandbox/checkout/{id}/pay", post(http_pay))
        .route(
            "/__sandbox/checkout/{id}/promotion_code",
            post(http_promotion_code),
        )
        .route(
            "/__sandbox/checkout/{id}/authenticate",
            post(http_authenticate),
        )
        .route("/__sandbox/customers/{id}/card", post(http_customer_card))
        .route("/__sandbox/billing/settings", post(http_billing_settings))
        .route(
            "/__sandbox/accounts/{id}/payouts/fail_next",
            post(http_fail_next_payout),
        )
        .route("/__sandbox/charges/{id}/dispute", post(http_dispute_charge))
        .route(
            "/__sandbox/charges/{id}/early_fraud_warning",
            post(http_warn_charge),
        )
        .route("/__sandbox/outbox", get(http_outbox_page))
        .route("/__sandbox/outbox.json", get(http_outbox_json))
        .route_layer(middleware::from_fn(loopback_only))
}

pub(crate) async fn loopback_only(req: Request, next: Next) -> Response {
    let loopback = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    if loopback {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorType::InvalidRequest,
            "Sandbox test controls are only served to loopback clients.",
        )
        .into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::Invalid(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct EndpointBody {
    url: String,
    secret: String,
}

async fn http_set_endpoint(
    State(app): State<App>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let b: EndpointBody = parse(&body)?;
    super::rules::url("url", &b.url).map_err(|e| ControlError::Invalid(e.message))?;
    webhooks::set_endpoint(
        &app,
        Some(Endpoint {
            url: b.url.clone(),
            secret: b.secret,
        }),
    );
    Ok(Json(json!({ "url": b.url })))
}

async fn http_clear_endpoint(State(app): State<App>) -> Json<Value> {
    webhooks::set_endpoint(&app, None);
    Json(json!({ "url": null }))
}

#[derive(Deserialize)]
struct PausedBody {
    paused: bool,
}

async fn http_deliveries(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ControlError> {
    let b: PausedBody = parse(&body)?;
    webhooks::set_paused(&app, b.paused);
    Ok(Json(json!({ "paused": b.paused })))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn http_events(
    State(app): State<App>,
    Query(q): Query<EventsQuery>,
) -> Json<Vec<EventSummary>> {
    Json(event_summaries(&app, q.kind.as_deref()))
}

#[derive(Deserialize)]
struct DeliverBody {
    ids: Vec<String>,
}

async fn http_deliver(
    State(app): State<App>,
    body: Bytes,
) -> Result<Json<Vec<DeliveryAttempt>>, ControlError> {
    let b: DeliverBody = parse(&body)?;
    deliver_events(&app, &b.ids).await.map(Json)
}

async fn http_resend(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryAttempt>, ControlError> {
    resend_event(&app, &id).await.map(Json)
}

async fn http_verification(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let outcome: VerificationOutcome = parse(&body)?;
    set_verification(&app, &id, outcome).map(Json)
}

async fn http_faults(State(app): State<App>) -> Json<Vec<Fault>> {
    Json(faults(&app))
}

async fn http_add_fault(
    State(app): State<App>,
    body: Bytes,
) -> Result<Json<Vec<Fault>>, ControlError> {
    let fault: Fault = parse(&body)?;
    inject_fault(&app, fault)?;
    Ok(Json(faults(&app)))
}

async fn http_clear_faults(State(app): State<App>) -> Json<Vec<Fault>> {
    clear_faults(&app);
    Json(Vec::new())
}

async fn http_seed(State(app): State<App>, body: Bytes) -> Result<Json<SeedReport>, ControlError> {
    let spec: SeedCatalog = parse(&body)?;
    seed_catalog(&app, &spec).map(Json)
}

async fn http_delete_price(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    delete_price(&app, &id).map(Json)
}

async fn http_oauth(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ControlError> {
    let req: OAuthAuthorize = parse(&body)?;
    let location = authorize_oauth(&app, req)?;
    Ok(Json(json!({ "redirect_to": location })))
}

#[derive(Deserialize)]
struct FollowBody {
    url: String,
    #[serde(flatten)]
    outcome: VerificationOutcome,
}

async fn http_follow(
    State(app): State<App>,
    body: Bytes,
) -> Result<Json<FollowResult>, ControlError> {
    let b: FollowBody = parse(&body)?;
    follow_account_link(&app, &b.url, b.outcome).map(Json)
}

#[derive(Deserialize)]
struct ClockBody {
    seconds: u64,
}

async fn http_clock(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ControlError> {
    let b: ClockBody = parse(&body)?;
    let offset = advance_clock(&app, Duration::from_secs(b.seconds));
    Ok(Json(json!({ "offset_seconds": offset })))
}

// ---- selling ----

/// How a test payment authenticates when the card asks for 3D Secure (`4000 0025 0000 3155`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authenticate {
    Complete,
    Fail,
}

/// A payment made without a browser (`POST /__sandbox/checkout/{session}/pay`).
///
/// As JSON: `{"card": "4242424242424242", "email": "jenny@example.com", "name": "Jenny Rosen",
/// "expiry": "12/34", "cvc": "123", "authenticate": "complete"}`; all but `card` optional.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct TestPayment {
    /// The card number; spaces allowed.
    pub card: String,
    /// The customer's email (default: the session's `customer_email`, else `customer@example.com`).
    #[serde(default)]
    pub email: Option<String>,
    /// The cardholder name (default `Jenny Rosen`).
    #[serde(default)]
    pub name: Option<String>,
    /// `MM / YY` (default `12 / 34`).
    #[serde(default)]
    pub expiry: Option<String>,
    /// Default `123` (`1234` for American Express).
    #[serde(default)]
    pub cvc: Option<String>,
    /// Answer a 3D Secure request at once; without it the payment waits in `requires_action`.
    #[serde(default)]
    pub authenticate: Option<Authenticate>,
}

impl TestPayment {
    /// A payment with `card` and the defaults.
    pub fn card(card: &str) -> TestPayment {
        TestPayment {
            card: card.to_owned(),
            email: None,
            name: None,
            expiry: None,
            cvc: None,
            authenticate: None,
        }
    }
}

/// What a test payment did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct PaymentResult {
    /// `succeeded`, `declined`, `requires_action` or `not_open`.
    pub outcome: String,
    /// Where the browser would go (`success_url` with the session id) after success.
    pub redirect_to: Option<String>,
    /// The decline code (`generic_decline`, `insufficient_funds`, ...) after a decline.
    pub code: Option<String>,
    /// The message the page shows after a decline.
    pub message: Option<String>,
    /// The Checkout Session as the API shows it now.
    pub session: Value,
    /// Its PaymentIntent as the API shows it now, once one exists.
    pub payment_intent: Option<Value>,
}

fn session_mode(app: &App, id: &str) -> Result<Mode, ControlError> {
    let st = app.lock();
    [Mode::Test, Mode::Live]
        .into_iter()
        .find(|m| st.mode(*m).sales.sessions.get(id).is_some())
        .ok_or_else(|| ControlError::NotFound(format!("no such checkout session: {id}")))
}

fn payment_result(
    tx: &mut super::state::Tx<'_>,
    app: &App,
    id: &str,
    outcome: PayOutcome,
) -> PaymentResult {
    let live = tx.livemode();
    let (kind, redirect_to, code, message) = match outcome {
        PayOutcome::Succeeded { redirect_to } => ("succeeded", Some(redirect_to), None, None),
        PayOutcome::Declined { code, message } => ("declined", None, Some(code), Some(message)),
        PayOutcome::RequiresAction => ("requires_action", None, None, None),
        PayOutcome::NotOpen(status) => (
            "not_open",
            None,
            Some(status.as_str().to_owned()),
            Some(format!("the session is {}", status.as_str())),
        ),
    };
    let session = tx.ms().sales.sessions.get(id).cloned();
    let pi = session
        .as_ref()
        .and_then(|s| s.payment_intent.as_ref())
        .and_then(|pi| tx.ms().sales.intents.get(pi))
        .map(|pi| shapes_sales::payment_intent(pi, live, &app.base_url));
    PaymentResult {
        outcome: kind.to_owned(),
        redirect_to,
        code,
        message,
        session: session
            .map(|s| shapes_sales::checkout_session(&s, live, &app.base_url))
            .unwrap_or(Value::Null),
        payment_intent: pi,
    }
}

pub(crate) fn pay_checkout(
    app: &App,
    session: &str,
    payment: TestPayment,
) -> Result<PaymentResult, ControlError> {
    let mode = session_mode(app, session)?;
    let default_email = app
        .lock()
        .mode(mode)
        .sales
        .sessions
        .get(session)
        .and_then(|s| s.customer_email.clone());
    let number = cards::normalize(&payment.card);
    let cvc = payment.cvc.clone().unwrap_or_else(|| {
        if cards::brand(&number) == "amex" {
            "1234".into()
        } else {
            "123".into()
        }
    });
    let card = cards::check(
        &number,
        payment.expiry.as_deref().unwrap_or("12 / 34"),
        &cvc,
        app.now(),
    )
    .map_err(|e| ControlError::Invalid(e.to_owned()))?;
    let email = payment
        .email
        .or(default_email)
        .unwrap_or_else(|| "customer@example.com".into());
    let email =
        super::rules::email("email", &email).map_err(|e| ControlError::Invalid(e.message))?;
    let input = PayInput {
        email,
        name: payment.name.unwrap_or_else(|| "Jenny Rosen".into()),
        card,
    };
    Ok(app.transact(mode, None, |tx| {
        let ctx = Ctx::app(app);
        let mut outcome = checkout::pay(tx, ctx, session, input);
        if outcome == PayOutcome::RequiresAction
            && let Some(answer) = payment.authenticate
        {
            outcome = checkout::authenticate(tx, ctx, session, answer == Authenticate::Complete);
        }
        payment_result(tx, app, session, outcome)
    }))
}

/// Applies a promotion code to an open session as the customer would on its hosted page;
/// returns the session as the API shows it, or the page's message for a refused code.
pub(crate) fn apply_promotion_code(
    app: &App,
    session: &str,
    code: &str,
    email: Option<&str>,
) -> Result<Value, ControlError> {
    let mode = session_mode(app, session)?;
    app.transact(mode, None, |tx| {
        checkout::apply_code(tx, Ctx::app(app), session, code, email)
            .map_err(ControlError::Invalid)?;
        let live = tx.livemode();
        tx.ms()
            .sales
            .sessions
            .get(session)
            .map(|s| shapes_sales::checkout_session(s, live, &app.base_url))
            .ok_or_else(|| ControlError::NotFound(format!("no such checkout session: {session}")))
    })
}

#[derive(Deserialize)]
struct PromotionCodeBody {
    code: String,
    #[serde(default)]
    email: Option<String>,
}

async fn http_promotion_code(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let req: PromotionCodeBody = parse(&body)?;
    apply_promotion_code(&app, &id, &req.code, req.email.as_deref()).map(Json)
}

pub(crate) fn authenticate_checkout(
    app: &App,
    session: &str,
    answer: Authenticate,
) -> Result<PaymentResult, ControlError> {
    let mode = session_mode(app, session)?;
    Ok(app.transact(mode, None, |tx| {
        let outcome =
            checkout::authenticate(tx, Ctx::app(app), session, answer == Authenticate::Complete);
        payment_result(tx, app, session, outcome)
    }))
}

pub(crate) fn outbox(app: &App) -> Vec<SentEmail> {
    app.lock().outbox.clone()
}

/// Applies what the clock says in both modes (session expiry, late refund failures).
pub(crate) fn settle(app: &App) {
    for mode in [Mode::Test, Mode::Live] {
        app.transact(mode, None, |tx| {
            let changed = checkout::settle(tx, Ctx::app(app));
            tx.read_only = !changed;
        });
    }
}

async fn http_pay(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<PaymentResult>, ControlError> {
    let payment: TestPayment = parse(&body)?;
    pay_checkout(&app, &id, payment).map(Json)
}

#[derive(Deserialize)]
struct AuthBody {
    outcome: Authenticate,
}

async fn http_authenticate(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<PaymentResult>, ControlError> {
    let b: AuthBody = parse(&body)?;
    authenticate_checkout(&app, &id, b.outcome).map(Json)
}

async fn http_outbox_json(State(app): State<App>) -> Json<Vec<SentEmail>> {
    Json(outbox(&app))
}

async fn http_outbox_page(State(app): State<App>) -> Response {
    hosted::outbox_page(&outbox(&app))
}

// ---- billing ----

fn customer_mode(app: &App, id: &str) -> Result<Mode, ControlError> {
    let st = app.lock();
    [Mode::Test, Mode::Live]
        .into_iter()
        .find(|m| st.mode(*m).billing.customers.get(id).is_some())
        .ok_or_else(|| ControlError::NotFound(format!("no such customer: {id}")))
}

/// Replaces a customer's saved card, as the customer would in a billing portal: the card
/// becomes the default payment method of the customer and of its live subscriptions. Use
/// `4000 0000 0000 0341` to make every later charge fail; answers the customer.
pub(crate) fn set_customer_card(
    app: &App,
    customer: &str,
    card: &str,
) -> Result<Value, ControlError> {
    let mode = customer_mode(app, customer)?;
    let checked = cards::check(&cards::normalize(card), "12 / 34", "123", app.now())
        .map_err(|e| ControlError::Invalid(e.to_owned()))?;
    Ok(app.transact(mode, None, |tx| {
        let ctx = Ctx::app(app);
        let behavior = cards::behavior_in(&checked, tx.livemode());
        let saved = super::subscriptions::saved_card(
            super::ids::payment_method(),
            checkout::card_details(&checked),
            &behavior,
            tx.now,
        );
        super::subscriptions::set_default_card(tx, customer, saved.clone());
        let subs: Vec<String> = tx
            .ms()
            .billing
            .subscriptions
            .iter()
            .filter(|s| s.customer == customer && !s.status.ended())
            .map(|s| s.id.clone())
            .collect();
        for sub in subs {
            let pm = saved.id.clone();
            super::subscriptions::update_subscription(tx, ctx, &sub, |s| {
                s.default_payment_method = Some(pm);
            });
        }
        let live = tx.livemode();
        tx.ms()
            .billing
            .customers
            .get(customer)
            .map(|c| super::shapes_billing::customer(c, live))
            .unwrap_or(Value::Null)
    }))
}

/// What happens to a subscription after the last retry of a failed renewal, for the
/// subscriptions of `account` (`None`: the platform's own, in both modes).
pub(crate) fn set_after_retries(
    app: &App,
    account: Option<&str>,
    after: AfterRetries,
) -> Result<(), ControlError> {
    let modes: Vec<Mode> = match account {
        None => vec![Mode::Test, Mode::Live],
        Some(a) => {
            let st = app.lock();
            vec![
                st.find_account(a)
                    .map(|(m, _)| m)
                    .ok_or_else(|| ControlError::NotFound(format!("no such account: {a}")))?,
            ]
        }
    };
    for mode in modes {
        app.transact(mode, None, |tx| {
            tx.ms()
                .billing
                .settings
                .entry(account.unwrap_or(super::state::PLATFORM).to_owned())
                .or_default()
                .after_retries = after;
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct CardBody {
    card: String,
}

async fn http_customer_card(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let b: CardBody = parse(&body)?;
    set_customer_card(&app, &id, &b.card).map(Json)
}

#[derive(Deserialize)]
struct BillingSettingsBody {
    #[serde(default)]
    account: Option<String>,
    after_retries: AfterRetries,
}

async fn http_billing_settings(
    State(app): State<App>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let b: BillingSettingsBody = parse(&body)?;
    set_after_retries(&app, b.account.as_deref(), b.after_retries)?;
    Ok(Json(
        json!({ "account": b.account, "after_retries": b.after_retries }),
    ))
}

/// Makes the next payout of `account` fail on its arrival date with `failure_code`
/// (`account_closed`, `insufficient_funds`, `could_not_process`, `no_account`,
/// `invalid_account_number`, ...).
pub(crate) fn fail_next_payout(app: &App, account: &str, code: &str) -> Result<(), ControlError> {
    let mode = {
        let st = app.lock();
        st.find_account(account)
            .map(|(m, _)| m)
            .ok_or_else(|| ControlError::NotFound(format!("no such account: {account}")))?
    };
    app.transact(mode, None, |tx| {
        super::payouts::fail_next(tx, account, code)
    })
    .map_err(ControlError::Invalid)
}

#[derive(Deserialize)]
struct FailNextBody {
    failure_code: String,
}

async fn http_fail_next_payout(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let b: FailNextBody = parse(&body)?;
    fail_next_payout(&app, &id, &b.failure_code)?;
    Ok(Json(
        json!({ "account": id, "failure_code": b.failure_code }),
    ))
}

// ---- disputes ----

fn charge_mode(app: &App, id: &str) -> Result<Mode, ControlError> {
    let st = app.lock();
    [Mode::Test, Mode::Live]
        .into_iter()
        .find(|m| st.mode(*m).sales.charges.get(id).is_some())
        .ok_or_else(|| ControlError::NotFound(format!("no such charge: {id}")))
}

/// Has the cardholder's bank dispute a succeeded charge now, for its full amount (as the
/// dispute test cards do right after paying): `reason` is `fraudulent`,
/// `product_not_received` or `inquiry`. Answers the dispute as the API shows it.
pub(crate) fn dispute_charge(app: &App, charge: &str, reason: &str) -> Result<Value, ControlError> {
    if !["fraudulent", "product_not_received", "inquiry"].contains(&reason) {
        return Err(ControlError::Invalid(format!(
            "unknown dispute reason {reason:?}: use fraudulent, product_not_received or inquiry"
        )));
    }
    let mode = charge_mode(app, charge)?;
    app.transact(mode, None, |tx| {
        let ctx = Ctx::app(app);
        let id = super::disputes::open(tx, ctx, charge, reason).ok_or_else(|| {
            ControlError::Invalid(format!(
                "charge {charge} did not succeed: nothing to dispute"
            ))
        })?;
        let d = tx
            .ms()
            .sales
            .disputes
            .get(&id)
            .cloned()
            .ok_or_else(|| ControlError::NotFound(format!("no such dispute: {id}")))?;
        Ok(super::disputes::dispute_json(tx, ctx.client_id, &d))
    })
}

/// Has the issuer send an early fraud warning about a succeeded charge now. Answers the
/// warning as the API shows it.
pub(crate) fn warn_charge(app: &App, charge: &str) -> Result<Value, ControlError> {
    let mode = charge_mode(app, charge)?;
    app.transact(mode, None, |tx| {
        let id = super::disputes::open_warning(tx, charge).ok_or_else(|| {
            ControlError::Invalid(format!(
                "charge {charge} did not succeed: nothing to warn of"
            ))
        })?;
        let live = tx.livemode();
        tx.ms()
            .sales
            .early_fraud_warnings
            .get(&id)
            .map(|w| super::disputes::warning_json(w, live))
            .ok_or_else(|| ControlError::NotFound(format!("no such warning: {id}")))
    })
}

#[derive(Deserialize)]
struct DisputeBody {
    reason: String,
}

async fn http_dispute_charge(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let b: DisputeBody = parse(&body)?;
    dispute_charge(&app, &id, &b.reason).map(Json)
}

async fn http_warn_charge(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    warn_charge(&app, &id).map(Json)
}
