//! The HTTP API: projects, the Stripe integration, the Stripe webhook endpoint, the pages Stripe
//! sends people back to, health, the sign-in exchange, and the web chat view's files. Handlers
//! translate HTTP to engine calls and back; decisions are the engine's.

mod app_webhooks;
mod billing;
mod error;
mod html;
mod orders;
mod projects;
mod public;
mod signin;
mod stripe_pages;
pub mod web;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::watch;

use crate::chat::Engine;
use crate::config::{ChatConfig, Secret};
use chatpay_core::domain::TokenId;
pub use error::{ApiError, ApiJson};

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
}

/// The WebSocket endpoint's share of the state (`ws` knows nothing of HTTP's).
impl FromRef<AppState> for crate::ws::WsState {
    fn from_ref(state: &AppState) -> Self {
        crate::ws::WsState {
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

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/", get(web::index))
        .route("/favicon.ico", get(web::favicon))
        .route("/assets/{version}/{file}", get(web::asset))
        .route("/v1/signin", post(signin::exchange))
        .route("/v1/chat", get(crate::ws::upgrade))
        .route("/v1/projects", post(projects::create).get(projects::list))
        .route(
            "/v1/projects/{id}",
            get(projects::show).patch(projects::update),
        )
        .route(
            "/v1/projects/{id}/integrations/stripe",
            get(projects::stripe_status),
        )
        .route(
            "/v1/projects/{id}/integrations/stripe/connect",
            post(projects::stripe_connect),
        )
        .route(
            "/v1/projects/{id}/integrations/stripe/catalog/sync",
            post(projects::catalog_sync),
        )
        .route("/v1/projects/{id}/mode", post(projects::set_mode))
        .route("/v1/projects/{id}/catalog", get(projects::catalog))
        .route(
            "/v1/projects/{id}/checkout",
            post(orders::checkout).options(public::preflight),
        )
        .route(
            "/v1/projects/{id}/publishable_key",
            get(orders::publishable_key).patch(orders::allow_origins),
        )
        .route("/buy/{project}/{price}", get(public::buy))
        .route("/v1/projects/{id}/orders", get(orders::list))
        .route("/v1/projects/{id}/orders/{number}", get(orders::show))
        .route(
            "/v1/projects/{id}/orders/{number}/refunds",
            post(orders::refund),
        )
        .route("/v1/projects/{id}/subscriptions", get(billing::list))
        .route("/v1/projects/{id}/subscriptions/{sub}", get(billing::show))
        .route(
            "/v1/projects/{id}/subscriptions/{sub}/cancel",
            post(billing::cancel),
        )
        .route(
            "/v1/projects/{id}/subscriptions/{sub}/resume",
            post(billing::resume),
        )
        .route("/v1/projects/{id}/entitlements", get(billing::entitlements))
        .route(
            "/v1/projects/{id}/app_webhook",
            get(app_webhooks::show)
                .put(app_webhooks::put)
                .delete(app_webhooks::delete),
        )
        .route("/v1/projects/{id}/balance", get(billing::balance))
        .route("/v1/projects/{id}/payouts", get(billing::payouts))
        .route(
            "/v1/projects/{id}/orders/{number}/receipt",
            post(orders::resend_receipt),
        )
        .route("/checkout/complete", get(orders::complete))
        .route("/v1/webhooks/stripe", post(webhooks::stripe))
        .route(
            "/v1/stripe/onboarding/return",
            get(stripe_pages::onboarding_return),
        )
        .route(
            "/v1/stripe/onboarding/refresh",
            get(stripe_pages::onboarding_refresh),
        )
        .route(
            "/v1/stripe/oauth/callback",
            get(stripe_pages::oauth_callback),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.engine.ready().await {
        Ok(backend) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "database": backend })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({ "code": "unavailable", "message": "the database is not reachable" }),
                ),
            )
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

/// The caller's token, from `Authorization: Bearer …`.
pub struct Caller(pub TokenId);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        if token.starts_with(crate::chat::PUBLISHABLE_PREFIX) {
            return Err(ApiError::Unauthorized(
                "a publishable key (cpub_…) can only create checkouts; use an API token (cpk_…) for this".to_owned(),
            ));
        }
        Ok(Caller(state.engine.authenticate(token).await?))
    }
}
