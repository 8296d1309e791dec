//! What the builder's public web pages may call, with no server of their own: checkouts with the
//! project's publishable key (from the origins the builder allows, with CORS), and buy links
//! (`/buy/{project}/{price}`) that open a fresh checkout from a plain link. Both are limited per
//! key and per client address; neither can read or refund anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ErrorBody;
use super::html::page;
use super::{ApiError, ApiPath, ApiQuery, AppState};
use crate::chat::{CheckoutInput, TokenBucket};
use chatpay_core::orders::CartItem;

/// Checkouts a second one publishable key may create (bursts of twice that).
const PER_KEY: u32 = 20;
/// Checkouts a second one client address may create, with a key or a buy link.
const PER_ADDRESS: u32 = 5;
/// Buckets kept before the idle ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// Token buckets per publishable key and per client address.
#[derive(Default)]
pub struct Limits {
    keys: Mutex<HashMap<String, TokenBucket>>,
    addresses: Mutex<HashMap<IpAddr, TokenBucket>>,
}

fn take<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, TokenBucket>>, key: K, rate: u32) -> bool {
    let now = Instant::now();
    // A poisoned lock only means another request panicked mid-update: the buckets are fine.
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_BUCKETS {
        map.clear();
    }
    map.entry(key)
        .or_insert_with(|| TokenBucket::new(rate, now))
        .take(now)
}

impl Limits {
    /// Whether one more checkout may go ahead for `key` (if any) from `address`.
    pub fn allow(&self, key: Option<&str>, address: IpAddr) -> bool {
        let by_key = key.is_none_or(|k| take(&self.keys, k.to_owned(), PER_KEY));
        by_key && take(&self.addresses, address, PER_ADDRESS)
    }
}

/// The CORS headers that let a page on `origin` read the answer.
pub(super) fn allow_origin(response: &mut Response, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Who may call a route that pages reach too (a checkout, a portal link): the project `id`
/// for an API token, or for the project's publishable key from an allowed origin and within
/// the key's rate. `public` is true for the key; `cors` the origin to answer with CORS.
pub(super) struct PageCaller {
    pub project: chatpay_store::ProjectRecord,
    pub public: bool,
}

pub(super) async fn token_or_publishable(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    peer: IpAddr,
    cors: &mut Option<String>,
) -> Result<PageCaller, ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let token = super::bearer(headers)?;
    if token.starts_with(crate::chat::PUBLISHABLE_PREFIX) {
        let project = state
            .engine
            .publishable_checkout_project(token, id, origin.as_deref())
            .await?;
        cors.clone_from(&origin);
        if !state.limits.allow(Some(token), peer) {
            return Err(ApiError::RateLimited(
                "too many requests just now; retry in a moment".to_owned(),
            ));
        }
        return Ok(PageCaller {
            project,
            public: true,
        });
    }
    let caller = super::Caller(state.engine.authenticate(token).await?);
    Ok(PageCaller {
        project: super::projects::owned(state, &caller, id).await?,
        public: false,
    })
}

/// The answer, with CORS for the origin a publishable key was used from.
pub(super) fn page_response<T: IntoResponse>(
    result: Result<T, ApiError>,
    cors: Option<&str>,
) -> Response {
    let mut response = match result {
        Ok(ok) => ok.into_response(),
        Err(e) => e.into_response(),
    };
    if let Some(o) = cors {
        allow_origin(&mut response, o);
    }
    response
}

/// `OPTIONS /v1/projects/{id}/checkout`: a browser asks whether a page on its origin may post a
/// checkout with the project's publishable key.
#[utoipa::path(options, operation_id = "public_preflight", path = "/v1/projects/{id}/checkout", tag = "selling",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("Origin" = String, Header, description = "The page's origin"),
    ),
    responses(
        (status = 204, description = "The origin may post checkouts (CORS headers)"),
        (status = 400, description = "`bad_request`: no Origin header", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such project", body = ErrorBody),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
    ))]
pub async fn preflight(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::BadRequest("a preflight request needs an Origin header".to_owned())
        })?;
    let project = state.engine.public_project(&id).await?;
    state.engine.check_origin(&project, origin).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    allow_origin(&mut response, origin);
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, idempotency-key"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BuyQuery {
    /// 1 to 999 (1 when absent).
    #[param(minimum = 1, maximum = 999)]
    quantity: Option<i64>,
    /// A discount code the checkout applies (`?code=WELCOME15`); without one, customers may
    /// type a code on the checkout page.
    #[param(max_length = 50)]
    code: Option<String>,
}

/// `GET /buy/{project}/{price}`: a fresh checkout for one price (`?quantity=N`, `?code=CODE`
/// to apply a discount code), then off to the hosted checkout page.
#[utoipa::path(get, operation_id = "public_buy", path = "/buy/{project}/{price}", tag = "pages",
    params(
        ("project" = String, Path, description = "The project (`prj_…`)"),
        ("price" = String, Path, description = "A sellable price of its catalog (`price_…`)"),
        BuyQuery,
    ),
    responses(
        (status = 303, description = "To the hosted checkout page"),
        (status = 400, description = "A wrong quantity", content_type = "text/html", body = String),
        (status = 404, description = "No such shop", content_type = "text/html", body = String),
        (status = 409, description = "The shop can't sell now", content_type = "text/html", body = String),
        (status = 422, description = "The price can't be bought", content_type = "text/html", body = String),
        (status = 429, description = "Too many checkouts from here", content_type = "text/html", body = String),
    ))]
pub async fn buy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    path: Result<ApiPath<(String, String)>, ApiError>,
    query: Result<ApiQuery<BuyQuery>, ApiError>,
) -> Response {
    let Ok(ApiPath((project, price))) = path else {
        return page(
            StatusCode::NOT_FOUND,
            "This link doesn't lead anywhere",
            "The link is not one chatpay made.",
        );
    };
    let (quantity, code) = match query {
        Ok(ApiQuery(q)) => (q.quantity.unwrap_or(1), q.code),
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This link is not right",
                "The link's quantity must be a whole number.",
            );
        }
    };
    if !state.limits.allow(None, peer.ip()) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many checkouts",
            "Too many checkouts were opened from here just now; wait a moment and try again.",
        );
    }
    let project = match state.engine.public_project(&project).await {
        Ok(p) => p,
        Err(_) => {
            return page(
                StatusCode::NOT_FOUND,
                "This link doesn't lead anywhere",
                "The shop this link belongs to doesn't exist.",
            );
        }
    };
    let input = CheckoutInput {
        items: vec![CartItem { price, quantity }],
        customer_email: None,
        success_url: None,
        cancel_url: None,
        trial_period_days: None,
        promotion_code: code,
    };
    match state.engine.checkout(&project, input, None).await {
        Ok(order) => match order.checkout_url {
            Some(url) => Redirect::to(&url).into_response(),
            None => page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Checkout unavailable",
                "The checkout could not be opened; please try again.",
            ),
        },
        Err(e) => {
            let e = ApiError::from(e);
            let status = e.status();
            let message = match &e {
                ApiError::Internal(_) => {
                    "Something went wrong on our side; please try again.".to_owned()
                }
                other => other.to_string(),
            };
            if let ApiError::Internal(err) = &e {
                tracing::error!(error = ?err, "buy link failed");
            }
            page(status, "This item can't be bought right now", &message)
        }
    }
}
