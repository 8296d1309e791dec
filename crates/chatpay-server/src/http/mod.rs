//! The HTTP API: projects, the Stripe integration, the Stripe webhook endpoint, the pages Stripe
//! sends people back to, health, signing in (the first-run link, email and password, the session
//! cookie: `session`), the workspace's API tokens (`tokens`), the app-builder platform's calls
//! (`platform`), and the web chat view's files. Handlers
//! translate HTTP to engine calls and back; decisions are the engine's.
//!
//! Each handler's request and response bodies are typed beside it (serde and utoipa, converted
//! from the core's types; shared values such as `Timestamp` in `types`); requests are
//! read through `extract`, so every refusal is the one error body; the router is built from one
//! route table ([`route_table`]), and `openapi` serves the document made from all of it.

mod app_webhooks;
mod billing;
mod customers;
mod error;
mod export;
mod extract;
mod html;
mod metrics;
pub mod openapi;
mod orders;
mod plans;
mod platform;
mod projects;
mod public;
mod session;
mod signin;
mod stripe_pages;
mod tokens;
mod types;
pub mod web;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, on};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::chat::Engine;
use crate::config::{ChatConfig, Secret};
pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery, MAX_BODY, OptionalJson, RawBody};

/// What every handler and connection shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub chat: Arc<ChatConfig>,
    /// Webhook signing secrets (several during a rotation).
    pub webhook_secrets: Arc<Vec<Secret>>,
    /// Flips to true when the server is stopping.
    pub shutdown: watch::Receiver<bool>,
    /// Rate limits of the public checkout paths (publishable keys, buy links).
    pub limits: Arc<public::Limits>,
    /// The one-time sign-in code of a fresh database (`POST /v1/signin`).
    pub signin: Arc<crate::signin::SignInCode>,
    /// Sign-in attempts per email and per client address.
    pub signin_limits: Arc<session::SignInLimits>,
    /// The SHA-256 of the platform key, when one is configured.
    pub platform_key_hash: Option<Arc<String>>,
}

/// The WebSocket transport's share of the state.
impl FromRef<AppState> for crate::ws::WsState {
    fn from_ref(state: &AppState) -> crate::ws::WsState {
        crate::ws::WsState {
            page_session: session::page_session,
            engine: state.engine.clone(),
            chat: state.chat.clone(),
            shutdown: state.shutdown.clone(),
        }
    }
}

/// A list's `limit` parameter: 1 to 100, `default` when absent.
pub(super) fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(
            "`limit` must be from 1 to 100".to_owned(),
        ))
    }
}

/// One route: a method and a path template (`/v1/projects/{id}`), as axum and OpenAPI write it.
pub type Route = (Method, &'static str);

/// The router as it is built, with the list of its routes: each route is added here once, so
/// the list is the router's (the OpenAPI test compares it with the document).
struct Routes {
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }
}

fn routes() -> Routes {
    use Method as M;
    Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .add(M::GET, "/healthz", health)
    .add(M::GET, "/readyz", ready)
    .add(M::GET, "/metrics", metrics_text)
    .add(M::GET, "/openapi.json", openapi::document)
    .add(M::GET, "/", web::index)
    .add(M::GET, "/favicon.ico", web::favicon)
    .add(M::GET, "/assets/{version}/{file}", web::asset)
    .add(M::POST, "/v1/signin", signin::exchange)
    .add(M::POST, "/v1/session/owner", session::create_owner)
    .add(M::POST, "/v1/session/invite", session::accept_invite)
    .add(M::POST, "/v1/invites", session::create_invite)
    .add(M::POST, "/v1/session", session::sign_in)
    .add(M::GET, "/v1/session", session::show)
    .add(M::DELETE, "/v1/session", session::sign_out)
    .add(M::GET, "/v1/tokens", tokens::list)
    .add(M::POST, "/v1/tokens", tokens::create)
    .add(M::DELETE, "/v1/tokens/{id}", tokens::revoke)
    .add(
        M::POST,
        "/v1/platform/workspaces",
        platform::create_workspace,
    )
    .add(M::POST, "/v1/platform/tokens", platform::mint_token)
    .add(M::GET, "/v1/chat", crate::ws::upgrade)
    .add(M::POST, "/v1/projects", projects::create)
    .add(M::GET, "/v1/projects", projects::list)
    .add(M::GET, "/v1/projects/{id}", projects::show)
    .add(M::PATCH, "/v1/projects/{id}", projects::update)
    .add(
        M::GET,
        "/v1/projects/{id}/integrations/stripe",
        projects::stripe_status,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/integrations/stripe/connect",
        projects::stripe_connect,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/integrations/stripe/catalog/sync",
        projects::catalog_sync,
    )
    .add(M::POST, "/v1/projects/{id}/mode", projects::set_mode)
    .add(M::GET, "/v1/projects/{id}/catalog", projects::catalog)
    .add(M::POST, "/v1/projects/{id}/checkout", orders::checkout)
    .add(M::OPTIONS, "/v1/projects/{id}/checkout", public::preflight)
    .add(
        M::GET,
        "/v1/projects/{id}/publishable_key",
        orders::publishable_key,
    )
    .add(
        M::PATCH,
        "/v1/projects/{id}/publishable_key",
        orders::allow_origins,
    )
    .add(M::GET, "/buy/{project}/{price}", public::buy)
    .add(M::GET, "/v1/projects/{id}/customers", customers::list)
    .add(M::GET, "/v1/projects/{id}/customers.csv", export::customers)
    .add(M::GET, "/v1/projects/{id}/orders.csv", export::orders)
    .add(
        M::GET,
        "/v1/projects/{id}/customers/{customer}",
        customers::show,
    )
    .add(M::GET, "/v1/projects/{id}/orders", orders::list)
    .add(M::GET, "/v1/projects/{id}/orders/{number}", orders::show)
    .add(
        M::POST,
        "/v1/projects/{id}/orders/{number}/refunds",
        orders::refund,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/orders/{number}/receipt",
        orders::resend_receipt,
    )
    .add(
        M::GET,
        "/v1/projects/{id}/metrics/subscriptions",
        metrics::subscriptions,
    )
    .add(M::GET, "/v1/projects/{id}/subscriptions", billing::list)
    .add(
        M::GET,
        "/v1/projects/{id}/subscriptions/{sub}",
        billing::show,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/subscriptions/{sub}/cancel",
        billing::cancel,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/subscriptions/{sub}/resume",
        billing::resume,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/subscriptions/{sub}/plan_preview",
        plans::preview,
    )
    .add(
        M::POST,
        "/v1/projects/{id}/subscriptions/{sub}/plan",
        plans::change,
    )
    .add(M::GET, "/v1/projects/{id}/portal", plans::show)
    .add(M::PATCH, "/v1/projects/{id}/portal", plans::update)
    .add(M::POST, "/v1/projects/{id}/portal_sessions", plans::session)
    .add(
        M::OPTIONS,
        "/v1/projects/{id}/portal_sessions",
        plans::preflight,
    )
    .add(
        M::GET,
        "/v1/projects/{id}/entitlements",
        billing::entitlements,
    )
    .add(M::GET, "/v1/projects/{id}/app_webhook", app_webhooks::show)
    .add(M::PUT, "/v1/projects/{id}/app_webhook", app_webhooks::put)
    .add(
        M::DELETE,
        "/v1/projects/{id}/app_webhook",
        app_webhooks::delete,
    )
    .add(M::GET, "/v1/projects/{id}/balance", billing::balance)
    .add(M::GET, "/v1/projects/{id}/payouts", billing::payouts)
    .add(M::GET, "/checkout/complete", orders::complete)
    .add(M::POST, "/v1/webhooks/stripe", webhooks::stripe)
    .add(
        M::GET,
        "/v1/stripe/onboarding/return",
        stripe_pages::onboarding_return,
    )
    .add(
        M::GET,
        "/v1/stripe/onboarding/refresh",
        stripe_pages::onboarding_refresh,
    )
    .add(
        M::GET,
        "/v1/stripe/oauth/callback",
        stripe_pages::oauth_callback,
    )
}

/// Every route the router serves (method and path template), for checks against the OpenAPI
/// document.
pub fn route_table() -> Vec<Route> {
    routes().table
}

pub fn router(state: AppState) -> Router {
    routes()
        .router
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The server is up.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: String,
}

/// Liveness.
#[utoipa::path(get, operation_id = "health_health", path = "/healthz", tag = "health",
    responses((status = 200, body = Health)))]
async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".to_owned(),
    })
}

/// The server's figures in Prometheus' text format (turns, conflicts between instances,
/// notifications, catch-ups, webhooks, background work claimed). Labels are low-cardinality:
/// never a conversation or project id.
#[utoipa::path(get, operation_id = "health_metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn metrics_text() -> axum::response::Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics_text(),
    )
        .into_response()
}

/// The database answers.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    status: String,
    /// `sqlite` or `postgres`.
    database: String,
}

/// Readiness: the database is reachable.
#[utoipa::path(get, operation_id = "health_ready", path = "/readyz", tag = "health",
    responses(
        (status = 200, body = Ready),
        (status = 503, description = "`unavailable`: the database is not reachable", body = ErrorBody),
    ))]
async fn ready(State(state): State<AppState>) -> axum::response::Response {
    match state.engine.ready().await {
        Ok(backend) => (
            StatusCode::OK,
            axum::Json(Ready {
                status: "ready".to_owned(),
                database: backend.to_string(),
            }),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            ApiError::Unavailable(format!("not ready: {e}")).into_response()
        }
    }
}

/// The token of `Authorization: Bearer …`.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <api token>".to_owned())
        })?;
    header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be Bearer <api token>".to_owned())
        })
}

/// Who is calling: an API token or a platform's scoped token from `Authorization: Bearer …`,
/// or else a browser session's cookie (a write with the cookie only from the page's own
/// origin: see `session::same_origin`).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .is_none()
            && let Some(secret) = session::cookie(&parts.headers)
        {
            session::same_origin(&parts.method, &parts.headers)?;
            return Ok(Caller(state.engine.authenticate_session(secret).await?));
        }
        let token = bearer(&parts.headers)?;
        if token.starts_with(crate::chat::PUBLISHABLE_PREFIX) {
            return Err(ApiError::Unauthorized(
                "a publishable key (cpub_…) can only create checkouts; use an API token (cpk_…) for this".to_owned(),
            ));
        }
        Ok(Caller(state.engine.authenticate(token).await?))
    }
}
