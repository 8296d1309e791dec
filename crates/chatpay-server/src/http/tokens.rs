//! Settings → API tokens: the workspace's named API tokens, created (the secret shown once),
//! listed with their last use, and revoked (at once: open chats using one close).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{BodyRefusals, Refusals};
use super::types::Timestamp;
use super::{ApiError, ApiJson, ApiPath, AppState, Caller};
use chatpay_store::TokenRecord;

/// `POST /v1/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What will use it (1 to 100 characters).
    name: String,
}

/// An API token, without its secret.
#[derive(Serialize, ToSchema)]
pub struct ApiToken {
    /// `tok_…`.
    id: String,
    name: String,
    created_at: Timestamp,
    /// When it was last used (to the minute); absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<Timestamp>,
    /// When it was revoked; absent while it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<Timestamp>,
}

impl From<&TokenRecord> for ApiToken {
    fn from(t: &TokenRecord) -> ApiToken {
        ApiToken {
            id: t.id.to_string(),
            name: t.name.clone(),
            created_at: Timestamp::from_millis(t.created_at),
            last_used_at: t.last_used_at.map(Timestamp::from_millis),
            revoked_at: t.revoked_at.map(Timestamp::from_millis),
        }
    }
}

/// A new API token: its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewApiToken {
    /// `tok_…`.
    id: String,
    name: String,
    /// `cpk_…`: send it as `Authorization: Bearer`. Stored only as a hash: copy it now.
    token: String,
}

/// The workspace's API tokens.
#[derive(Serialize, ToSchema)]
pub struct ApiTokenList {
    data: Vec<ApiToken>,
}

/// Lists the workspace's API tokens, oldest first (revoked ones marked).
#[utoipa::path(get, operation_id = "tokens_list", path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = ApiTokenList), Refusals,
        (status = 403, description = "`scoped_token`: a platform's token cannot manage tokens", body = super::ErrorBody)),
    security(("api_token" = []), ("session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ApiTokenList>, ApiError> {
    let tokens = state.engine.api_tokens(&caller.0).await?;
    Ok(Json(ApiTokenList {
        data: tokens.iter().map(ApiToken::from).collect(),
    }))
}

/// Creates an API token of the caller's workspace; its secret is in this answer only.
#[utoipa::path(post, operation_id = "tokens_create", path = "/v1/tokens", tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, body = NewApiToken), Refusals, BodyRefusals,
        (status = 403, description = "`scoped_token`, or `cross_site`: a cookie from another site", body = super::ErrorBody),
        (status = 422, description = "`invalid_name`", body = super::ErrorBody)),
    security(("api_token" = []), ("session" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewApiToken>), ApiError> {
    let name = body.name.trim().to_owned();
    let minted = state.engine.create_api_token(&caller.0, &name).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiToken {
            id: minted.id.to_string(),
            name,
            token: minted.secret,
        }),
    ))
}

/// Revokes an API token: it stops working at once, and chats open with it close.
#[utoipa::path(delete, operation_id = "tokens_revoke", path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token (`tok_…`)")),
    responses((status = 204, description = "Revoked"), Refusals,
        (status = 403, description = "`scoped_token`, or `cross_site`: a cookie from another site", body = super::ErrorBody)),
    security(("api_token" = []), ("session" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.revoke_api_token(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
