//! `POST /v1/signin {"code": "cps_…"}`: the web page exchanges the one-time code of the link a
//! fresh server printed for a real API token (201 `{"token": "cpk_…"}`). The code works once;
//! a wrong, used or expired one is 401 with what to do instead.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::BodyRefusals;
use super::{ApiError, ApiJson, AppState};

/// `POST /v1/signin`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The one-time code of the sign-in link (`cps_…`).
    code: String,
}

/// A new API token.
#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    /// `cpk_…`: send it as `Authorization: Bearer`.
    token: String,
    /// The name it is stored under.
    name: String,
}

/// The name the token made from a sign-in link is stored under.
const TOKEN_NAME: &str = "web sign-in link";

/// Exchanges the one-time code of the sign-in link a fresh server prints for a new API token.
#[utoipa::path(post, operation_id = "signin_exchange", path = "/v1/signin", tag = "sign-in",
    request_body = SignIn,
    responses(
        (status = 201, body = SignedIn),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: a wrong, used or expired code", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        BodyRefusals,
    ))]
pub async fn exchange(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<(StatusCode, Json<SignedIn>), ApiError> {
    if !state.signin.redeem(&body.code) {
        return Err(ApiError::Unauthorized(
            "This sign-in link is not valid: it works once, for an hour, on the server that printed it. Sign in with an API token from `chatpay token create --name NAME`.".to_owned(),
        ));
    }
    // A storage failure here has used the code up; the server prints a new one when it starts
    // again on a database that still has no token.
    let token = state.engine.create_token(TOKEN_NAME).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignedIn {
            token,
            name: TOKEN_NAME.to_owned(),
        }),
    ))
}
