//! The project's app webhook endpoint over HTTP (chatpay's own signed events to the builder's
//! app when a customer's access changes). Handlers translate; the engine decides.
//!
//! - `PUT /v1/projects/{id}/app_webhook` `{"url": "https://…", "rotate_secret"?: true}` → the
//!   endpoint, with its signing secret when it is new (created, or rotated): shown once;
//! - `GET /v1/projects/{id}/app_webhook` → the endpoint, its secret masked;
//! - `DELETE /v1/projects/{id}/app_webhook` → 204; undelivered events are dropped.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::{BodyRefusals, Refusals};
use super::projects::owned;
use super::types::Timestamp;
use super::{ApiError, ApiJson, ApiPath, AppState, Caller};
use crate::chat::app_webhooks::{SECRET_PREFIX, SIGNATURE_HEADER};

/// The project's app webhook endpoint.
#[derive(Serialize, ToSchema)]
pub struct AppWebhook {
    /// `app_webhook`.
    object: String,
    url: String,
    /// The signing secret (`whsec_…`): only when it is new (created or rotated), null after.
    secret: Option<String>,
    /// The secret's last characters (`whsec_…abcd`).
    secret_hint: String,
    /// The header each delivery's signature is in.
    signature_header: String,
    /// The events delivered.
    events: Vec<String>,
    created: Timestamp,
    updated: Timestamp,
}

impl AppWebhook {
    fn new(h: &chatpay_store::AppWebhook, secret_shown: bool) -> AppWebhook {
        let tail: String = h
            .secret
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        AppWebhook {
            object: "app_webhook".to_owned(),
            url: h.url.clone(),
            secret: secret_shown.then(|| h.secret.clone()),
            secret_hint: format!("{SECRET_PREFIX}…{tail}"),
            signature_header: SIGNATURE_HEADER.to_owned(),
            events: vec![
                "entitlement.granted".to_owned(),
                "entitlement.revoked".to_owned(),
            ],
            created: Timestamp::from_millis(h.created_at),
            updated: Timestamp::from_millis(h.updated_at),
        }
    }
}

/// `PUT /v1/projects/{id}/app_webhook`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAppWebhook {
    /// `http://` or `https://`, a host (no credentials), at most 2048 characters.
    #[schema(
        example = "https://app.example/hooks/chatpay",
        max_length = 2048,
        pattern = r"^https?://[^\s/?#@\x00-\x1f\x7f-\x9f]+([/?#][^\s\x00-\x1f\x7f-\x9f]*)?$"
    )]
    url: String,
    /// Make a new signing secret (shown once, in the answer).
    #[serde(default)]
    rotate_secret: bool,
}

/// Sets the project's app webhook endpoint (backend projects only).
#[utoipa::path(put, operation_id = "app_webhooks_put", path = "/v1/projects/{id}/app_webhook", tag = "app webhooks",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    request_body = PutAppWebhook,
    responses(
        (status = 200, description = "The endpoint, with `secret` when it is new", body = AppWebhook),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        (status = 422, description = "`invalid_url`", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PutAppWebhook>,
) -> Result<Json<AppWebhook>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let (hook, new_secret) = state
        .engine
        .put_app_webhook(&project, &body.url, body.rotate_secret)
        .await?;
    Ok(Json(AppWebhook::new(&hook, new_secret)))
}

/// The project's app webhook endpoint, its secret masked; 404 if none.
#[utoipa::path(get, operation_id = "app_webhooks_show", path = "/v1/projects/{id}/app_webhook", tag = "app webhooks",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, body = AppWebhook), Refusals),
    security(("api_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AppWebhook>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    match state.engine.app_webhook(&project).await? {
        Some(h) => Ok(Json(AppWebhook::new(&h, false))),
        None => Err(ApiError::NotFound(
            "this project has no app webhook endpoint: PUT one with {\"url\": \"https://…\"}"
                .to_owned(),
        )),
    }
}

/// Removes the endpoint; the events not yet delivered are dropped.
#[utoipa::path(delete, operation_id = "app_webhooks_delete", path = "/v1/projects/{id}/app_webhook", tag = "app webhooks",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 204, description = "Removed"), Refusals),
    security(("api_token" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    state.engine.delete_app_webhook(&project).await?;
    Ok(StatusCode::NO_CONTENT)
}
