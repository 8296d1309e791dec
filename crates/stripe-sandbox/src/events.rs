//! `/v1/events`: events of the platform, or of one connected account with `Stripe-Account`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::Call;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::shapes;
use super::state::{EventRecord, PageRequest, State, Tx};
use super::webhooks::{DeliveryAttempt, DeliveryState};
use crate::Mode;

/// Number of endpoints still to reach, as `pending_webhooks` shows it.
pub(crate) fn pending_webhooks(e: &EventRecord, endpoint_active: bool) -> i64 {
    match e.delivery {
        DeliveryState::Delivered | DeliveryState::Failed => 0,
        DeliveryState::Retrying => 1,
        DeliveryState::Pending => i64::from(endpoint_active),
    }
}

/// `type=product.*` matches every product event.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

pub(crate) fn list(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "created",
        "delivery_success",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
        "type",
        "types",
    ])?;
    let req = PageRequest::parse(p)?;
    let kind = p.str("type")?;
    let types = p.strings("types")?;
    if kind.is_some() && types.is_some() {
        return Err(ApiError::invalid(
            "You may only specify one of these parameters: type, types.",
        )
        .code("parameters_exclusive"));
    }
    let delivered = p.bool("delivery_success")?;
    let live = tx.livemode();
    let active = call.app.webhooks.has_active_endpoint();
    let page = tx.ms().events.page(&req, "event", |e| {
        e.account.as_deref() == call.scope
            && kind.is_none_or(|k| type_matches(k, &e.kind))
            && types
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| type_matches(t, &e.kind)))
            && delivered.is_none_or(|d| (e.delivery == DeliveryState::Delivered) == d)
    })?;
    let data = page
        .items
        .iter()
        .map(|e| shapes::event(e, live, pending_webhooks(e, active)))
        .collect();
    Ok(shapes::list("/v1/events", data, page.has_more))
}

pub(crate) fn retrieve(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let active = call.app.webhooks.has_active_endpoint();
    tx.ms()
        .events
        .get(id)
        .filter(|e| e.account.as_deref() == call.scope)
        .map(|e| shapes::event(e, live, pending_webhooks(e, active)))
        .ok_or_else(|| ApiError::no_such("event", id, "id"))
}

/// An event with its delivery history (test control `GET /__sandbox/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSummary {
    /// `evt_...`
    pub id: String,
    /// The event `type`.
    #[serde(rename = "type")]
    pub kind: String,
    pub livemode: bool,
    /// The connected account the event belongs to.
    pub account: Option<String>,
    /// Unix seconds (sandbox clock).
    pub created: i64,
    /// Where delivery stands.
    pub delivery: DeliveryState,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// The event as the API and webhooks show it.
    pub event: Value,
}

/// Every event of both modes, oldest first, optionally only those of one type (`product.*`
/// patterns allowed).
pub(crate) fn summaries(
    st: &State,
    kind: Option<&str>,
    endpoint_active: bool,
) -> Vec<EventSummary> {
    let mut out: Vec<(u64, EventSummary)> = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        for (seq, e) in st.mode(mode).events.iter_seq() {
            if kind.is_some_and(|k| !type_matches(k, &e.kind)) {
                continue;
            }
            out.push((
                seq,
                EventSummary {
                    id: e.id.clone(),
                    kind: e.kind.clone(),
                    livemode: mode.is_live(),
                    account: e.account.clone(),
                    created: e.created,
                    delivery: e.delivery,
                    attempts: e.attempts.clone(),
                    event: shapes::event(e, mode.is_live(), pending_webhooks(e, endpoint_active)),
                },
            ));
        }
    }
    // The sequence is shared by both modes: this is creation order.
    out.sort_by_key(|(seq, _)| *seq);
    out.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        assert!(type_matches("product.*", "product.updated"));
        assert!(!type_matches("product.*", "price.updated"));
        assert!(type_matches("account.updated", "account.updated"));
        assert!(!type_matches(
            "account.updated",
            "account.application.deauthorized"
        ));
    }
}
