//! Where Stripe sends people back: the onboarding return and refresh URLs and the OAuth callback.
//! These answer a browser, so they answer small HTML pages (and a redirect for refresh).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::html::page;
use super::{ApiError, ApiQuery, AppState};
use crate::chat::ChatError;
use chatpay_core::flows::Outside;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// The conversation the link was made in (`cnv_…`).
    conversation: String,
    /// The link's one-time nonce.
    nonce: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OauthQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The page for a link whose query is not one chatpay made.
fn not_our_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This link is not right",
        "It is not a link chatpay made. Go back to the chat and ask for a new link.",
    )
}

/// Stripe's onboarding sends the person here when they leave its page. That does not mean
/// onboarding is complete: the flow re-reads the account.
#[utoipa::path(get, operation_id = "stripe_pages_onboarding_return", path = "/v1/stripe/onboarding/return", tag = "pages",
    params(LinkQuery),
    responses(
        (status = 200, description = "Back to the chat: the account is being checked", content_type = "text/html", body = String),
        (status = 400, description = "Not a link chatpay made", content_type = "text/html", body = String),
        (status = 404, description = "The link is no longer valid", content_type = "text/html", body = String),
    ))]
pub async fn onboarding_return(
    State(state): State<AppState>,
    query: Result<ApiQuery<LinkQuery>, ApiError>,
) -> Response {
    let Ok(ApiQuery(q)) = query else {
        return not_our_link();
    };
    let result = async {
        let project = state
            .engine
            .project_of_conversation(&q.conversation)
            .await?;
        state
            .engine
            .outside(
                &project,
                Outside::OnboardingReturned {
                    nonce: q.nonce.clone(),
                },
            )
            .await
    }
    .await;
    match result {
        Ok(_) => page(
            StatusCode::OK,
            "Thanks, you can go back to the chat",
            "We're checking your account with Stripe now; the chat shows the result in a moment.",
        ),
        Err(e) => page(
            StatusCode::NOT_FOUND,
            "This link is no longer valid",
            &format!("Go back to the chat and ask for a new link. ({e})"),
        ),
    }
}

/// An expired or used onboarding link sends the person here: issue a new one and go there.
#[utoipa::path(get, operation_id = "stripe_pages_onboarding_refresh", path = "/v1/stripe/onboarding/refresh", tag = "pages",
    params(LinkQuery),
    responses(
        (status = 303, description = "To a new onboarding link"),
        (status = 400, description = "Not a link chatpay made", content_type = "text/html", body = String),
        (status = 410, description = "Nothing is left to fill in", content_type = "text/html", body = String),
        (status = 502, description = "Stripe did not give a new link", content_type = "text/html", body = String),
    ))]
pub async fn onboarding_refresh(
    State(state): State<AppState>,
    query: Result<ApiQuery<LinkQuery>, ApiError>,
) -> Response {
    let Ok(ApiQuery(q)) = query else {
        return not_our_link();
    };
    match state.engine.refresh_link(&q.conversation, &q.nonce).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(ChatError::NotFound(_)) => page(
            StatusCode::GONE,
            "This link isn't needed any more",
            "There is nothing left to fill in on this link. Go back to the chat and ask \"is my account verified?\" to see where your Stripe account stands.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not refresh an onboarding link");
            page(
                StatusCode::BAD_GATEWAY,
                "We couldn't get a new link",
                "Go back to the chat and press \"Get a new link\".",
            )
        }
    }
}

/// Stripe's OAuth page sends the person here with a code (or an error) and our state.
#[utoipa::path(get, operation_id = "stripe_pages_oauth_callback", path = "/v1/stripe/oauth/callback", tag = "pages",
    params(OauthQuery),
    responses(
        (status = 200, description = "Back to the chat", content_type = "text/html", body = String),
        (status = 400, description = "Not a connection request chatpay made", content_type = "text/html", body = String),
        (status = 404, description = "An unknown connection request", content_type = "text/html", body = String),
    ))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    query: Result<ApiQuery<OauthQuery>, ApiError>,
) -> Response {
    let Ok(ApiQuery(q)) = query else {
        return not_our_link();
    };
    let Some((conversation, nonce)) = q.state.as_deref().and_then(|s| s.split_once('.')) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown connection request",
            "Start again from the chat.",
        );
    };
    let result = match (&q.code, &q.error) {
        (Some(code), None) => Ok(code.clone()),
        (_, Some(err)) => Err(q.error_description.clone().unwrap_or_else(|| err.clone())),
        (None, None) => Err("Stripe sent neither a code nor an error".to_owned()),
    };
    let ok = result.is_ok();
    let outcome = async {
        let project = state.engine.project_of_conversation(conversation).await?;
        state
            .engine
            .outside(
                &project,
                Outside::OauthReturned {
                    nonce: nonce.to_owned(),
                    result,
                },
            )
            .await
    }
    .await;
    match (outcome, ok) {
        (Ok(_), true) => page(
            StatusCode::OK,
            "Stripe is connecting",
            "You can go back to the chat.",
        ),
        (Ok(_), false) => page(
            StatusCode::OK,
            "Stripe was not connected",
            "You can go back to the chat and try again.",
        ),
        (Err(e), _) => page(
            StatusCode::NOT_FOUND,
            "Unknown connection request",
            &format!("Start again from the chat. ({e})"),
        ),
    }
}
