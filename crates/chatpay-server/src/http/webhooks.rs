//! `POST /v1/webhooks/stripe`: verify the signature over the raw body, record the event in the
//! ledger, answer 2xx only once it is stored, and hand it to the conversations it concerns.
//! Stripe delivers at least once: a second delivery of an event already applied is acknowledged
//! and ignored; one recorded but not yet applied (a crash in between) is applied now.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::BodyRefusals;
use super::{ApiError, AppState, RawBody};
use crate::chat::Received;
use chatpay_stripe::webhook::{EventEnvelope, TOLERANCE_SECS, verify};

/// A Stripe event acknowledged: recorded (and applied, or refused and recorded as such).
#[derive(Serialize, ToSchema)]
pub struct WebhookReceived {
    received: bool,
    /// The event was already applied: nothing was done again.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    /// What handling it did, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
}

/// Stripe's webhook endpoint: the signature (`Stripe-Signature`) over the raw body, not a token.
#[utoipa::path(post, operation_id = "webhooks_stripe", path = "/v1/webhooks/stripe", tag = "stripe",
    request_body(content = Object, description = "A Stripe event, as Stripe sends it"),
    responses(
        (status = 200, body = WebhookReceived),
        (status = 400, description = "`bad_signature`, or `bad_request`: not a Stripe event", body = ErrorBody),
        (status = 500, description = "`internal`: not recorded; Stripe delivers it again", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        BodyRefusals,
    ),
    security(("stripe_signature" = [])))]
pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WebhookReceived>, ApiError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = verify(
        &body,
        signature,
        &state.webhook_secrets,
        now,
        TOLERANCE_SECS,
    ) {
        tracing::warn!(error = %e, "webhook refused");
        return Err(ApiError::BadSignature(format!(
            "webhook signature check failed: {e}"
        )));
    }
    let event = EventEnvelope::parse(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a Stripe event: {e}")))?;
    // The span covers the handling, across its awaits (a span entered with `enter` would stay
    // entered on this thread while the task is suspended, and tag whatever runs there).
    let span = tracing::info_span!("webhook", event = %event.id, kind = %event.event_type);
    let outcome = match state
        .engine
        .receive_event(&event, &body)
        .instrument(span.clone())
        .await?
    {
        Received::Duplicate => {
            span.in_scope(|| tracing::info!("duplicate webhook ignored"));
            return Ok(Json(WebhookReceived {
                received: true,
                duplicate: Some(true),
                outcome: None,
            }));
        }
        Received::Handled(outcome) => outcome,
    };
    span.in_scope(|| tracing::info!(%outcome, "webhook handled"));
    Ok(Json(WebhookReceived {
        received: true,
        duplicate: None,
        outcome: Some(outcome),
    }))
}
