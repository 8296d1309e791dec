//! `/v1/...`: authentication, rate limiting, `Stripe-Account` scoping, idempotency, and the
//! route table. Handlers are synchronous functions over one locked transaction.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult, ErrorType};
use super::form::{Form, Params};
use super::shapes::API_VERSION;
use super::state::{App, IdempotencyRecord, RequestInfo, Tx};
use super::{
    accounts, billing_api, catalog, checkout, discounts_api, disputes, events, ids, payments,
    payouts, portal, schedules,
};
use crate::Mode;

/// Who is calling: the mode of the key, and the account an OAuth access token is bound to.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub mode: Mode,
    pub account: Option<String>,
    /// The key as Stripe shows it in errors: `sk_test_****abcd`.
    pub key_hint: String,
}

/// What a handler needs besides the transaction and the parameters.
pub(crate) struct Call<'a> {
    /// The connected account the request acts on (`Stripe-Account`), if any.
    pub scope: Option<&'a str>,
    pub app: &'a App,
    /// The caller's key as errors show it.
    pub key_hint: &'a str,
}

/// `sk_test_abcdef1234` -> `sk_test_****1234`.
pub(crate) fn redact(key: &str) -> String {
    let prefix_len = key
        .match_indices('_')
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap_or(0)
        .min(key.len());
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}****{tail}", &key[..prefix_len])
}

/// The key a request authenticates with: `Authorization: Bearer sk_…`, or HTTP Basic with the
/// key as the user name and no password (`curl -u sk_test_…:`, as Stripe's docs do).
pub(crate) fn api_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        token.to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(base64_decode(token)?).ok()?;
        let (user, _password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        user.to_owned()
    } else {
        return None;
    };
    (!key.is_empty()).then_some(key)
}

/// Standard base64 (with or without padding); `None` if it is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Maps a secret key (or an OAuth access token) to a mode.
pub(crate) fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Auth> {
    let Some(key) = api_key(headers) else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
             YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or \
             we can help at https://support.stripe.com/.",
        ));
    };
    let key = key.as_str();
    let key_hint = redact(key);
    let config = &app.config;
    if key == config.test_secret_key {
        return Ok(Auth {
            mode: Mode::Test,
            account: None,
            key_hint,
        });
    }
    if key == config.live_secret_key {
        return Ok(Auth {
            mode: Mode::Live,
            account: None,
            key_hint,
        });
    }
    if let Some(grant) = app.lock().access_tokens.get(key) {
        return Ok(Auth {
            mode: grant.mode,
            account: Some(grant.account.clone()),
            key_hint,
        });
    }
    Err(ApiError::unauthorized(format!(
        "Invalid API Key provided: {key_hint}"
    )))
}

/// The API's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    ListAccounts,
    CreateAccount,
    RetrieveAccount(String),
    UpdateAccount(String),
    DeleteAccount(String),
    CreateAccountLink,
    ListProducts,
    CreateProduct,
    RetrieveProduct(String),
    UpdateProduct(String),
    DeleteProduct(String),
    ListPrices,
    CreatePrice,
    RetrievePrice(String),
    UpdatePrice(String),
    ListCoupons,
    CreateCoupon,
    RetrieveCoupon(String),
    UpdateCoupon(String),
    DeleteCoupon(String),
    ListPromotionCodes,
    CreatePromotionCode,
    RetrievePromotionCode(String),
    UpdatePromotionCode(String),
    ListEvents,
    RetrieveEvent(String),
    CreateCheckoutSession,
    ListCheckoutSessions,
    RetrieveCheckoutSession(String),
    ListCheckoutSessionLineItems(String),
    ExpireCheckoutSession(String),
    RetrievePaymentIntent(String),
    ListCharges,
    RetrieveCharge(String),
    UpdateCharge(String),
    RetrieveBalanceTransaction(String),
    ListBalanceTransactions,
    RetrieveBalance,
    ListPayouts,
    CreatePayout,
    RetrievePayout(String),
    CancelPayout(String),
    RetrieveInvoice(String),
    ListInvoices,
    PayInvoice(String),
    VoidInvoice(String),
    MarkInvoiceUncollectible(String),
    FinalizeInvoice(String),
    CreateCustomer,
    ListCustomers,
    RetrieveCustomer(String),
    UpdateCustomer(String),
    CreateSubscription,
    ListSubscriptions,
    RetrieveSubscription(String),
    UpdateSubscription(String),
    CancelSubscription(String),
    CreateTestClock,
    ListTestClocks,
    RetrieveTestClock(String),
    AdvanceTestClock(String),
    DeleteTestClock(String),
    CreateRefund,
    ListRefunds,
    RetrieveRefund(String),
    CreatePreviewInvoice,
    CreatePortalConfiguration,
    ListPortalConfigurations,
    RetrievePortalConfiguration(String),
    UpdatePortalConfiguration(String),
    CreatePortalSession,
    CreateSchedule,
    ListSchedules,
    RetrieveSchedule(String),
    UpdateSchedule(String),
    ReleaseSchedule(String),
    CancelSchedule(String),
    ListDisputes,
    RetrieveDispute(String),
    UpdateDispute(String),
    CloseDispute(String),
    ListEarlyFraudWarnings,
    RetrieveEarlyFraudWarning(String),
    Search(super::search::Searchable),
}

impl Route {
    fn parse(method: &Method, path: &str) -> ApiResult<Route> {
        let segments: Vec<&str> = path
            .trim_start_matches("/v1")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let id = |s: &str| s.to_owned();
        let unrecognized = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorType::InvalidRequest,
                format!(
                    "Unrecognized request URL ({method}: {path}). Please see \
                     https://stripe.com/docs or we can help at https://support.stripe.com/."
                ),
            )
        };
        // `/v1/products/search` is Stripe's search, not a product named "search".
        if let [resource, "search"] = segments.as_slice()
            && let Some(searchable) = super::search::Searchable::from_path(resource)
        {
            return match method.as_str() {
                "GET" => Ok(Route::Search(searchable)),
                _ => Err(unrecognized()),
            };
        }
        let route = match (method.as_str(), segments.as_slice()) {
            ("GET", ["accounts"]) => Route::ListAccounts,
            ("POST", ["accounts"]) => Route::CreateAccount,
            ("GET", ["accounts", a]) => Route::RetrieveAccount(id(a)),
            ("POST", ["accounts", a]) => Route::UpdateAccount(id(a)),
            ("DELETE", ["accounts", a]) => Route::DeleteAccount(id(a)),
            ("POST", ["account_links"]) => Route::CreateAccountLink,
            ("GET", ["products"]) => Route::ListProducts,
            ("POST", ["products"]) => Route::CreateProduct,
            ("GET", ["products", p]) => Route::RetrieveProduct(id(p)),
            ("POST", ["products", p]) => Route::UpdateProduct(id(p)),
            ("DELETE", ["products", p]) => Route::DeleteProduct(id(p)),
            ("GET", ["prices"]) => Route::ListPrices,
            ("POST", ["prices"]) => Route::CreatePrice,
            ("GET", ["prices", p]) => Route::RetrievePrice(id(p)),
            ("POST", ["prices", p]) => Route::UpdatePrice(id(p)),
            ("GET", ["coupons"]) => Route::ListCoupons,
            ("POST", ["coupons"]) => Route::CreateCoupon,
            ("GET", ["coupons", c]) => Route::RetrieveCoupon(id(c)),
            ("POST", ["coupons", c]) => Route::UpdateCoupon(id(c)),
            ("DELETE", ["coupons", c]) => Route::DeleteCoupon(id(c)),
            ("GET", ["promotion_codes"]) => Route::ListPromotionCodes,
            ("POST", ["promotion_codes"]) => Route::CreatePromotionCode,
            ("GET", ["promotion_codes", c]) => Route::RetrievePromotionCode(id(c)),
            ("POST", ["promotion_codes", c]) => Route::UpdatePromotionCode(id(c)),
            ("GET", ["events"]) => Route::ListEvents,
            ("GET", ["events", e]) => Route::RetrieveEvent(id(e)),
            ("POST", ["checkout", "sessions"]) => Route::CreateCheckoutSession,
            ("GET", ["checkout", "sessions"]) => Route::ListCheckoutSessions,
            ("GET", ["checkout", "sessions", s]) => Route::RetrieveCheckoutSession(id(s)),
            ("GET", ["checkout", "sessions", s, "line_items"]) => {
                Route::ListCheckoutSessionLineItems(id(s))
            }
            ("POST", ["checkout", "sessions", s, "expire"]) => Route::ExpireCheckoutSession(id(s)),
            ("GET", ["payment_intents", pi]) => Route::RetrievePaymentIntent(id(pi)),
            ("GET", ["charges"]) => Route::ListCharges,
            ("GET", ["charges", c]) => Route::RetrieveCharge(id(c)),
            ("POST", ["charges", c]) => Route::UpdateCharge(id(c)),
            ("GET", ["balance_transactions", t]) => Route::RetrieveBalanceTransaction(id(t)),
            ("GET", ["balance_transactions"]) => Route::ListBalanceTransactions,
            ("GET", ["balance"]) => Route::RetrieveBalance,
            ("GET", ["payouts"]) => Route::ListPayouts,
            ("POST", ["payouts"]) => Route::CreatePayout,
            ("GET", ["payouts", po]) => Route::RetrievePayout(id(po)),
            ("POST", ["payouts", po, "cancel"]) => Route::CancelPayout(id(po)),
            ("GET", ["invoices"]) => Route::ListInvoices,
            ("POST", ["invoices", "create_preview"]) => Route::CreatePreviewInvoice,
            ("GET", ["invoices", i]) => Route::RetrieveInvoice(id(i)),
            ("POST", ["invoices", i, "pay"]) => Route::PayInvoice(id(i)),
            ("POST", ["invoices", i, "void"]) => Route::VoidInvoice(id(i)),
            ("POST", ["invoices", i, "mark_uncollectible"]) => {
                Route::MarkInvoiceUncollectible(id(i))
            }
            ("POST", ["invoices", i, "finalize"]) => Route::FinalizeInvoice(id(i)),
            ("POST", ["customers"]) => Route::CreateCustomer,
            ("GET", ["customers"]) => Route::ListCustomers,
            ("GET", ["customers", c]) => Route::RetrieveCustomer(id(c)),
            ("POST", ["customers", c]) => Route::UpdateCustomer(id(c)),
            ("POST", ["subscriptions"]) => Route::CreateSubscription,
            ("GET", ["subscriptions"]) => Route::ListSubscriptions,
            ("GET", ["subscriptions", s]) => Route::RetrieveSubscription(id(s)),
            ("POST", ["subscriptions", s]) => Route::UpdateSubscription(id(s)),
            ("DELETE", ["subscriptions", s]) => Route::CancelSubscription(id(s)),
            ("POST", ["test_helpers", "test_clocks"]) => Route::CreateTestClock,
            ("GET", ["test_helpers", "test_clocks"]) => Route::ListTestClocks,
            ("GET", ["test_helpers", "test_clocks", c]) => Route::RetrieveTestClock(id(c)),
            ("POST", ["test_helpers", "test_clocks", c, "advance"]) => {
                Route::AdvanceTestClock(id(c))
            }
            ("DELETE", ["test_helpers", "test_clocks", c]) => Route::DeleteTestClock(id(c)),
            ("POST", ["refunds"]) => Route::CreateRefund,
            ("GET", ["refunds"]) => Route::ListRefunds,
            ("GET", ["refunds", r]) => Route::RetrieveRefund(id(r)),
            ("POST", ["billing_portal", "configurations"]) => Route::CreatePortalConfiguration,
            ("GET", ["billing_portal", "configurations"]) => Route::ListPortalConfigurations,
            ("GET", ["billing_portal", "configurations", c]) => {
                Route::RetrievePortalConfiguration(id(c))
            }
            ("POST", ["billing_portal", "configurations", c]) => {
                Route::UpdatePortalConfiguration(id(c))
            }
            ("POST", ["billing_portal", "sessions"]) => Route::CreatePortalSession,
            ("POST", ["subscription_schedules"]) => Route::CreateSchedule,
            ("GET", ["subscription_schedules"]) => Route::ListSchedules,
            ("GET", ["subscription_schedules", s]) => Route::RetrieveSchedule(id(s)),
            ("POST", ["subscription_schedules", s]) => Route::UpdateSchedule(id(s)),
            ("POST", ["subscription_schedules", s, "release"]) => Route::ReleaseSchedule(id(s)),
            ("POST", ["subscription_schedules", s, "cancel"]) => Route::CancelSchedule(id(s)),
            ("GET", ["disputes"]) => Route::ListDisputes,
            ("GET", ["disputes", d]) => Route::RetrieveDispute(id(d)),
            ("POST", ["disputes", d]) => Route::UpdateDispute(id(d)),
            ("POST", ["disputes", d, "close"]) => Route::CloseDispute(id(d)),
            ("GET", ["radar", "early_fraud_warnings"]) => Route::ListEarlyFraudWarnings,
            ("GET", ["radar", "early_fraud_warnings", w]) => {
                Route::RetrieveEarlyFraudWarning(id(w))
            }
            _ => return Err(unrecognized()),
        };
        Ok(route)
    }

    /// Connect endpoints act for the platform; a connected account cannot call them, except
    /// to read or update itself.
    fn allows_scope(&self, scope: &str) -> bool {
        match self {
            Route::RetrieveAccount(a) | Route::UpdateAccount(a) => a == scope,
            Route::ListAccounts
            | Route::CreateAccount
            | Route::DeleteAccount(_)
            | Route::CreateAccountLink => false,
            _ => true,
        }
    }

    fn run(&self, tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
        match self {
            Route::ListAccounts => accounts::list(tx, call, p),
            Route::CreateAccount => accounts::create(tx, call, p),
            Route::RetrieveAccount(id) => accounts::retrieve(tx, call, id, p),
            Route::UpdateAccount(id) => accounts::update(tx, call, id, p),
            Route::DeleteAccount(id) => accounts::delete(tx, call, id, p),
            Route::CreateAccountLink => accounts::create_link(tx, call, p),
            Route::ListProducts => catalog::list_products(tx, call, p),
            Route::CreateProduct => catalog::create_product(tx, call, p),
            Route::RetrieveProduct(id) => catalog::retrieve_product(tx, call, id, p),
            Route::UpdateProduct(id) => catalog::update_product(tx, call, id, p),
            Route::DeleteProduct(id) => catalog::delete_product(tx, call, id, p),
            Route::ListPrices => catalog::list_prices(tx, call, p),
            Route::CreatePrice => catalog::create_price(tx, call, p),
            Route::RetrievePrice(id) => catalog::retrieve_price(tx, call, id, p),
            Route::UpdatePrice(id) => catalog::update_price(tx, call, id, p),
            Route::ListCoupons => discounts_api::list_coupons(tx, call, p),
            Route::CreateCoupon => discounts_api::create_coupon(tx, call, p),
            Route::RetrieveCoupon(id) => discounts_api::retrieve_coupon(tx, call, id, p),
            Route::UpdateCoupon(id) => discounts_api::update_coupon(tx, call, id, p),
            Route::DeleteCoupon(id) => discounts_api::delete_coupon(tx, call, id, p),
            Route::ListPromotionCodes => discounts_api::list_promotion_codes(tx, call, p),
            Route::CreatePromotionCode => discounts_api::create_promotion_code(tx, call, p),
            Route::RetrievePromotionCode(id) => {
                discounts_api::retrieve_promotion_code(tx, call, id, p)
            }
            Route::UpdatePromotionCode(id) => discounts_api::update_promotion_code(tx, call, id, p),
            Route::ListEvents => events::list(tx, call, p),
            Route::RetrieveEvent(id) => events::retrieve(tx, call, id, p),
            Route::CreateCheckoutSession => checkout::create_session(tx, call, p),
            Route::ListCheckoutSessions => checkout::list_sessions(tx, call, p),
            Route::RetrieveCheckoutSession(id) => checkout::retrieve_session(tx, call, id, p),
            Route::ListCheckoutSessionLineItems(id) => checkout::list_line_items(tx, call, id, p),
            Route::ExpireCheckoutSession(id) => checkout::expire_session(tx, call, id, p),
            Route::RetrievePaymentIntent(id) => payments::retrieve_payment_intent(tx, call, id, p),
            Route::ListCharges => payments::list_charges(tx, call, p),
            Route::RetrieveCharge(id) => payments::retrieve_charge(tx, call, id, p),
            Route::UpdateCharge(id) => payments::update_charge(tx, call, id, p),
            Route::RetrieveBalanceTransaction(id) => {
                payments::retrieve_balance_transaction(tx, call, id, p)
            }
            Route::ListBalanceTransactions => payouts::list_balance_transactions(tx, call, p),
            Route::RetrieveBalance => payouts::retrieve_balance(tx, call, p),
            Route::ListPayouts => payouts::list_payouts(tx, call, p),
            Route::CreatePayout => payouts::create_payout(tx, call, p),
            Route::RetrievePayout(id) => payouts::retrieve_payout(tx, call, id, p),
            Route::CancelPayout(id) => payouts::cancel_payout(tx, call, id, p),
            Route::RetrieveInvoice(id) => billing_api::retrieve_invoice(tx, call, id, p),
            Route::ListInvoices => billing_api::list_invoices(tx, call, p),
            Route::PayInvoice(id) => billing_api::pay_invoice(tx, call, id, p),
            Route::VoidInvoice(id) => billing_api::void_invoice(tx, call, id, p),
            Route::MarkInvoiceUncollectible(id) => billing_api::mark_uncollectible(tx, call, id, p),
            Route::FinalizeInvoice(id) => billing_api::finalize_invoice(tx, call, id, p),
            Route::CreateCustomer => billing_api::create_customer(tx, call, p),
            Route::ListCustomers => billing_api::list_customers(tx, call, p),
            Route::RetrieveCustomer(id) => billing_api::retrieve_customer(tx, call, id, p),
            Route::UpdateCustomer(id) => billing_api::update_customer(tx, call, id, p),
            Route::CreateSubscription => billing_api::create_subscription(tx, call, p),
            Route::ListSubscriptions => billing_api::list_subscriptions(tx, call, p),
            Route::RetrieveSubscription(id) => billing_api::retrieve_subscription(tx, call, id, p),
            Route::UpdateSubscription(id) => billing_api::update_subscription(tx, call, id, p),
            Route::CancelSubscription(id) => billing_api::cancel_subscription(tx, call, id, p),
            Route::CreateTestClock => billing_api::create_clock(tx, call, p),
            Route::ListTestClocks => billing_api::list_clocks(tx, call, p),
            Route::RetrieveTestClock(id) => billing_api::retrieve_clock(tx, call, id, p),
            Route::AdvanceTestClock(id) => billing_api::advance_clock(tx, call, id, p),
            Route::DeleteTestClock(id) => billing_api::delete_clock(tx, call, id, p),
            Route::CreateRefund => payments::create_refund(tx, call, p),
            Route::ListRefunds => payments::list_refunds(tx, call, p),
            Route::RetrieveRefund(id) => payments::retrieve_refund(tx, call, id, p),
            Route::CreatePreviewInvoice => billing_api::create_preview(tx, call, p),
            Route::CreatePortalConfiguration => portal::create_configuration(tx, call, p),
            Route::ListPortalConfigurations => portal::list_configurations(tx, call, p),
            Route::RetrievePortalConfiguration(id) => {
                portal::retrieve_configuration(tx, call, id, p)
            }
            Route::UpdatePortalConfiguration(id) => portal::update_configuration(tx, call, id, p),
            Route::CreatePortalSession => portal::create_session(tx, call, p),
            Route::CreateSchedule => schedules::create(tx, call, p),
            Route::ListSchedules => schedules::list(tx, call, p),
            Route::RetrieveSchedule(id) => schedules::retrieve(tx, call, id, p),
            Route::UpdateSchedule(id) => schedules::update(tx, call, id, p),
            Route::ReleaseSchedule(id) => schedules::release_api(tx, call, id, p),
            Route::CancelSchedule(id) => schedules::cancel_api(tx, call, id, p),
            Route::ListDisputes => disputes::list_disputes(tx, call, p),
            Route::RetrieveDispute(id) => disputes::retrieve_dispute(tx, call, id, p),
            Route::UpdateDispute(id) => disputes::update_dispute(tx, call, id, p),
            Route::CloseDispute(id) => disputes::close_dispute(tx, call, id, p),
            Route::ListEarlyFraudWarnings => disputes::list_warnings(tx, call, p),
            Route::RetrieveEarlyFraudWarning(id) => disputes::retrieve_warning(tx, call, id, p),
            Route::Search(resource) => super::search::search(tx, call, *resource, p),
        }
    }
}

/// The answer to one API request, before headers.
enum Answer {
    Fresh { status: u16, body: String },
    Replay(IdempotencyRecord),
}

/// The mode a connected account lives in (test when there is no such account: the call then
/// fails as Stripe's would).
pub(crate) fn account_mode(app: &App, account: &str) -> Mode {
    app.lock()
        .find_account(account)
        .map_or(Mode::Test, |(mode, _)| mode)
}

/// Calls the API as the platform acting on `account` (`Stripe-Account`), with the secret key
/// of the mode the account lives in, the way the sandbox's own Dashboard pages do: the same
/// rules, events and answers as over HTTP.
pub(crate) fn call_as(
    app: &App,
    account: &str,
    method: Method,
    path_and_query: &str,
    pairs: &[(&str, &str)],
) -> ApiResult<Value> {
    let mut headers = HeaderMap::new();
    let key = match account_mode(app, account) {
        Mode::Test => &app.config.test_secret_key,
        Mode::Live => &app.config.live_secret_key,
    };
    let auth = format!("Bearer {key}");
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&auth).map_err(|_| ApiError::invalid("Invalid API key"))?,
    );
    headers.insert(
        "stripe-account",
        HeaderValue::from_str(account)
            .map_err(|_| ApiError::invalid("Invalid Stripe-Account header"))?,
    );
    let uri: Uri = path_and_query
        .parse()
        .map_err(|_| ApiError::invalid("Invalid request path"))?;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let text = match serve(
        app,
        &method,
        &uri,
        &headers,
        body.as_bytes(),
        &ids::request(),
    )? {
        Answer::Fresh { body, .. } => body,
        Answer::Replay(record) => record.body,
    };
    serde_json::from_str(&text).map_err(|_| ApiError::invalid("Unreadable answer"))
}

/// The `/v1/{*path}` handler.
pub(crate) async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = ids::request();
    app.api_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut response = match serve(&app, &method, &uri, &headers, &body, &request_id) {
        Ok(Answer::Fresh { status, body }) => json_response(status, body),
        Ok(Answer::Replay(record)) => {
            let mut r = json_response(record.status, record.body);
            if let Ok(v) = HeaderValue::from_str(&record.request_id) {
                r.headers_mut().insert("original-request", v);
            }
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            r
        }
        Err(e) => {
            tracing::debug!(%method, path = uri.path(), status = %e.status, message = %e.message, "sandbox: request failed");
            e.into_response()
        }
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    h.insert("stripe-version", HeaderValue::from_static(API_VERSION));
    if let Some(key) = headers.get("idempotency-key") {
        h.insert("idempotency-key", key.clone());
    }
    response
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn serve(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> ApiResult<Answer> {
    let auth = authenticate(app, headers)?;
    if let Some(limiter) = &app.limiter {
        let allowed = limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(auth.mode);
        if !allowed {
            return Err(ApiError::rate_limited());
        }
    }
    let route = Route::parse(method, uri.path())?;
    // POST and DELETE carry their parameters in a form body (async-stripe sends DELETE's
    // that way), GET in the query string.
    let raw = if method == Method::GET || (method == Method::DELETE && body.is_empty()) {
        uri.query().unwrap_or("").as_bytes()
    } else {
        body
    };
    let form = Form::parse(raw)?;
    let header_account = headers
        .get("stripe-account")
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_owned())
                .map_err(|_| ApiError::invalid("Invalid Stripe-Account header"))
        })
        .transpose()?
        .filter(|s| !s.is_empty());
    if let (Some(bound), Some(asked)) = (&auth.account, &header_account)
        && bound != asked
    {
        return Err(ApiError::no_access(&auth.key_hint, asked));
    }
    let scope = header_account.or_else(|| auth.account.clone());
    let idempotency_key = if method == Method::POST {
        headers
            .get("idempotency-key")
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| ApiError::invalid("Invalid Idempotency-Key header"))?
    } else {
        None
    };
    if let Some(key) = &idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(ApiError::invalid(
            "Idempotency-Key must be between 1 and 255 characters long.",
        ));
    }
    let fingerprint = hex::encode(Sha256::digest(
        format!("{method} {} {}", uri.path(), form.canonical()).as_bytes(),
    ));
    let request = RequestInfo {
        id: request_id.to_owned(),
        idempotency_key: idempotency_key.clone(),
    };
    let read_only = method == Method::GET;
    app.transact(auth.mode, Some(request), |tx| {
        tx.read_only = read_only;
        if let Some(account) = scope.as_deref() {
            if !route.allows_scope(account) {
                return Err(ApiError::invalid(
                    "This request can only be made by the platform, without a Stripe-Account \
                     header.",
                ));
            }
            let accessible = tx.ms().accounts.get(account).is_some_and(|a| !a.revoked);
            if !accessible {
                return Err(ApiError::no_access(&auth.key_hint, account));
            }
        }
        // Time-driven changes (session expiry, late refund failures) happen lazily.
        if checkout::settle(tx, checkout::Ctx::app(app)) {
            tx.read_only = false;
        }
        let record_key = idempotency_key.as_ref().map(|k| {
            format!(
                "{}|{}|{k}",
                auth.mode.as_str(),
                scope.as_deref().unwrap_or("")
            )
        });
        if let Some(rk) = &record_key {
            tx.st.expire_idempotency(tx.now);
            if let Some(record) = tx.st.idempotency.get(rk) {
                if record.fingerprint == fingerprint {
                    return Ok(Answer::Replay(record.clone()));
                }
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorType::Idempotency,
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{}' if you \
                         meant to execute a different request.",
                        idempotency_key.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let call = Call {
            scope: scope.as_deref(),
            app,
            key_hint: &auth.key_hint,
        };
        let params = form.params();
        let mut value = route.run(tx, &call, &params)?;
        let expand = params.strings("expand")?.unwrap_or_default();
        super::expand::apply(tx, &call, &mut value, &expand)?;
        let body = serde_json::to_string_pretty(&value).map_err(|_| ApiError::internal())?;
        if let Some(rk) = record_key {
            tx.st.idempotency.insert(
                rk,
                IdempotencyRecord {
                    fingerprint,
                    created: tx.now,
                    status: 200,
                    body: body.clone(),
                    request_id: request_id.to_owned(),
                },
            );
        }
        Ok(Answer::Fresh { status: 200, body })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_bearer_or_basic_auth() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            api_key(&h)
        };
        assert_eq!(with("Bearer sk_test_1").as_deref(), Some("sk_test_1"));
        // `curl -u sk_test_123:` sends base64("sk_test_123:").
        assert_eq!(
            with("Basic c2tfdGVzdF8xMjM6").as_deref(),
            Some("sk_test_123")
        );
        assert_eq!(
            with("basic c2tfdGVzdF8xMjM=").as_deref(),
            Some("sk_test_123")
        );
        assert_eq!(with("Basic !!!"), None);
        assert_eq!(with("Basic Og=="), None, "an empty user name");
        assert_eq!(with("Digest x"), None);
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
    }

    #[test]
    fn keys_are_redacted() {
        assert_eq!(redact("sk_test_abcdef123456"), "sk_test_****3456");
        assert_eq!(redact("weird"), "****eird");
    }

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse(&Method::GET, "/v1/products/prod_1").unwrap(),
            Route::RetrieveProduct("prod_1".into())
        );
        assert_eq!(
            Route::parse(&Method::DELETE, "/v1/accounts/acct_1/").unwrap(),
            Route::DeleteAccount("acct_1".into())
        );
        let e = Route::parse(&Method::PUT, "/v1/products").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            Route::parse(&Method::GET, "/v1/products/search").unwrap(),
            Route::Search(crate::search::Searchable::Products)
        );
        let e = Route::parse(&Method::POST, "/v1/products/search").unwrap_err();
        assert!(e.message.starts_with("Unrecognized request URL"));
        assert_eq!(
            Route::parse(&Method::GET, "/v1/products/prod_search").unwrap(),
            Route::RetrieveProduct("prod_search".into())
        );
        assert!(Route::RetrieveAccount("acct_1".into()).allows_scope("acct_1"));
        assert!(!Route::CreateAccount.allows_scope("acct_1"));
        assert!(Route::ListProducts.allows_scope("acct_1"));
    }
}
