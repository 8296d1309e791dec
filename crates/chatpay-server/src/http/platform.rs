//! The app-builder platform's calls, with the deployment's platform key (`CHATPAY_PLATFORM_KEY`,
//! configured, never shown in a page): a workspace per builder, and short-lived tokens scoped to
//! one workspace or one project, which the platform's own front end uses to open the chat (the
//! way Stripe's account links and ephemeral keys let a platform act for its accounts). The
//! builder's projects are then made and used with such a token, like any other client.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::BodyRefusals;
use super::types::Timestamp;
use super::{ApiError, ApiJson, AppState, ErrorBody, bearer};

/// The caller holds the platform key.
pub struct Platform;

impl FromRequestParts<AppState> for Platform {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.platform_key_hash else {
            return Err(ApiError::Unauthorized(
                "This deployment has no platform key (CHATPAY_PLATFORM_KEY).".to_owned(),
            ));
        };
        let sent = crate::auth::hash(bearer(&parts.headers)?);
        // Hashes of the secrets are compared, so the comparison's time says nothing of the key.
        if sent == **expected {
            Ok(Platform)
        } else {
            Err(ApiError::Unauthorized(
                "send Authorization: Bearer <platform key>".to_owned(),
            ))
        }
    }
}

/// `POST /v1/platform/workspaces`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// The builder's name, as the platform knows them.
    name: String,
}

/// A workspace.
#[derive(Serialize, ToSchema)]
pub struct Workspace {
    /// `wsp_…`.
    id: String,
    name: String,
    created_at: Timestamp,
}

/// `POST /v1/platform/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    /// The workspace (`wsp_…`).
    workspace: String,
    /// Only this project of it (`prj_…`); absent: the whole workspace.
    #[serde(default)]
    project: Option<String>,
    /// Seconds it works, 60 to 3600 (default 900).
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A scoped token: `Authorization: Bearer` for the API, `token` in the chat's `hello`.
#[derive(Serialize, ToSchema)]
pub struct ScopedToken {
    /// `cpt_…`.
    token: String,
    workspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    expires_at: Timestamp,
}

/// Creates a workspace for one of the platform's builders.
#[utoipa::path(post, operation_id = "platform_create_workspace", path = "/v1/platform/workspaces", tag = "platform",
    request_body = CreateWorkspace,
    responses((status = 201, body = Workspace),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: not the platform key", body = ErrorBody),
        (status = 422, description = "`invalid_name`", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        BodyRefusals),
    security(("platform_key" = [])))]
pub async fn create_workspace(
    State(state): State<AppState>,
    _: Platform,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    let w = state.engine.platform_workspace(&body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(Workspace {
            id: w.id.to_string(),
            name: w.name,
            created_at: Timestamp::from_millis(w.created_at),
        }),
    ))
}

/// Mints a short-lived token for a workspace or one of its projects.
#[utoipa::path(post, operation_id = "platform_mint_token", path = "/v1/platform/tokens", tag = "platform",
    request_body = MintToken,
    responses((status = 201, body = ScopedToken),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: not the platform key", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workspace, or no such project in it", body = ErrorBody),
        (status = 422, description = "`invalid_expiry`", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        BodyRefusals),
    security(("platform_key" = [])))]
pub async fn mint_token(
    State(state): State<AppState>,
    _: Platform,
    ApiJson(body): ApiJson<MintToken>,
) -> Result<(StatusCode, Json<ScopedToken>), ApiError> {
    let (minted, expires_at) = state
        .engine
        .platform_token(
            &body.workspace,
            body.project.as_deref(),
            body.expires_in.unwrap_or(15 * 60),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ScopedToken {
            token: minted.secret,
            workspace: minted.workspace.to_string(),
            project: body.project,
            expires_at: Timestamp::from_millis(expires_at),
        }),
    ))
}
