//! The project's app webhook endpoint over HTTP (chatpay's own signed events to the builder's
//! app when a customer's access changes). Handlers translate; the engine decides.
//!
//! - `PUT /v1/projects/{id}/app_webhook` `{"url": "https://…", "rotate_secret"?: true}` → the
//!   endpoint, with its signing secret when it is new (created, or rotated): shown once;
//! - `GET /v1/projects/{id}/app_webhook` → the endpoint, its secret masked;
//! - `DELETE /v1/projects/{id}/app_webhook` → 204; undelivered events are dropped.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::projects::owned;
use super::{ApiError, ApiJson, AppState, Caller};
use crate::chat::app_webhooks::{SECRET_PREFIX, SIGNATURE_HEADER};
use chatpay_store::AppWebhook;

fn hook_json(h: &AppWebhook, secret_shown: bool) -> Value {
    let tail: String = h
        .secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    json!({
        "object": "app_webhook",
        "url": h.url,
        "secret": if secret_shown { Value::String(h.secret.clone()) } else { Value::Null },
        "secret_hint": format!("{SECRET_PREFIX}…{tail}"),
        "signature_header": SIGNATURE_HEADER,
        "events": ["entitlement.granted", "entitlement.revoked"],
        "created": h.created_at / 1000,
        "updated": h.updated_at / 1000,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutHook {
    url: String,
    #[serde(default)]
    rotate_secret: bool,
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PutHook>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let (hook, new_secret) = state
        .engine
        .put_app_webhook(&project, &body.url, body.rotate_secret)
        .await?;
    Ok(Json(hook_json(&hook, new_secret)))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    match state.engine.app_webhook(&project).await? {
        Some(h) => Ok(Json(hook_json(&h, false))),
        None => Err(crate::chat::ChatError::NotFound(
            "this project has no app webhook endpoint: PUT one with {\"url\": \"https://…\"}"
                .to_owned(),
        )
        .into()),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    state.engine.delete_app_webhook(&project).await?;
    Ok(StatusCode::NO_CONTENT)
}
