//! `POST /v1/webhooks/stripe`: verify the signature over the raw body, record the event in the
//! ledger, answer 2xx only once it is stored, and hand it to the conversations it concerns.
//! Stripe delivers at least once: a second delivery of an event already applied is acknowledged
//! and ignored; one recorded but not yet applied (a crash in between) is applied now.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{ApiError, AppState};
use crate::chat::Received;
use chatpay_stripe::webhook::{EventEnvelope, TOLERANCE_SECS, verify};

pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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
            return Ok(Json(json!({ "received": true, "duplicate": true })));
        }
        Received::Handled(outcome) => outcome,
    };
    span.in_scope(|| tracing::info!(%outcome, "webhook handled"));
    Ok(Json(json!({ "received": true, "outcome": outcome })))
}
