//! `POST /v1/signin {"code": "cps_…"}`: the web page exchanges the one-time code of the link a
//! fresh server printed for a real API token (201 `{"token": "cpk_…"}`). The code works once;
//! a wrong, used or expired one is 401 with what to do instead.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    code: String,
}

/// The name the token made from a sign-in link is stored under.
const TOKEN_NAME: &str = "web sign-in link";

pub async fn exchange(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Exchange>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(json!({ "token": token, "name": TOKEN_NAME })),
    ))
}
