//! Webhook delivery: signed POSTs to the configured endpoint, at least once, concurrently and
//! in no particular order, retried with exponential backoff and jitter; every attempt recorded.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::shapes;
use super::state::App;
use crate::delivery::HttpClient;

/// How webhook deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Attempts per event, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles after each failure (with jitter).
    pub first_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
    /// Time allowed for the endpoint to answer.
    pub timeout: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    /// Production-like: 6 attempts over about five minutes.
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 6,
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
            concurrency: 8,
        }
    }
}

impl DeliveryConfig {
    /// The wait after failed attempt `attempt` (1-based): `first * 2^(attempt-1)`, capped, then
    /// scaled by a random factor in `[0.5, 1.0)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff);
        exp.mul_f64(0.5 + super::ids::unit_random() / 2.0)
    }
}

/// Where an event stands with the webhook endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not attempted yet (no endpoint, deliveries paused, or queued).
    Pending,
    /// At least one attempt failed; more will follow.
    Retrying,
    /// An attempt got a 2xx answer.
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// One POST of an event to the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// 1-based number among this event's attempts.
    pub attempt: u32,
    /// Unix seconds.
    pub at: i64,
    pub url: String,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why the attempt failed without a status (connection refused, timeout).
    pub error: Option<String>,
    /// True for 2xx.
    pub ok: bool,
    /// Sent by a test control (resend, ordered delivery) rather than the retry loop.
    pub manual: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub url: String,
    pub secret: String,
}

/// The delivery machinery shared by the server.
pub(crate) struct Webhooks {
    endpoint: Mutex<Option<Endpoint>>,
    paused: AtomicBool,
    /// Events a delivery task currently owns.
    scheduled: Mutex<HashSet<String>>,
    permits: Arc<Semaphore>,
    http: HttpClient,
    config: DeliveryConfig,
}

impl Webhooks {
    pub fn new(config: DeliveryConfig) -> Webhooks {
        Webhooks {
            endpoint: Mutex::new(None),
            paused: AtomicBool::new(false),
            scheduled: Mutex::new(HashSet::new()),
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            http: HttpClient::new(config.timeout),
            config,
        }
    }

    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The endpoint automatic delivery should use now, if any.
    fn active_endpoint(&self) -> Option<Endpoint> {
        if self.paused.load(Ordering::SeqCst) {
            None
        } else {
            self.endpoint()
        }
    }

    pub fn has_active_endpoint(&self) -> bool {
        self.active_endpoint().is_some()
    }
}

/// `t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<payload>")>`, Stripe's `Stripe-Signature`.
///
/// # Examples
/// ```
/// use stripe_sandbox::signature_header;
/// let header = signature_header(b"{}", "whsec_test", 1_700_000_000);
/// assert!(header.starts_with("t=1700000000,v1="));
/// ```
pub fn signature_header(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Sets (or clears) the endpoint; events waiting for one are then delivered.
pub(crate) fn set_endpoint(app: &App, endpoint: Option<Endpoint>) {
    *app.webhooks
        .endpoint
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = endpoint;
    flush(app);
}

/// Pauses or resumes automatic delivery (ordered-delivery tests pause it).
pub(crate) fn set_paused(app: &App, paused: bool) {
    app.webhooks.paused.store(paused, Ordering::SeqCst);
    flush(app);
}

/// Schedules every event that waits for an endpoint.
fn flush(app: &App) {
    if app.webhooks.has_active_endpoint() {
        let pending = app.lock().undelivered();
        schedule(app, pending);
    }
}

/// Starts a delivery task for each event not already owned by one. Without an active endpoint
/// the events stay pending until one is set.
pub(crate) fn schedule(app: &App, ids: Vec<String>) {
    if !app.webhooks.has_active_endpoint() {
        return;
    }
    let fresh: Vec<String> = {
        let mut scheduled = app
            .webhooks
            .scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        ids.into_iter()
            .filter(|id| scheduled.insert(id.clone()))
            .collect()
    };
    // An event is sent only once the state file holds what it is about.
    let written = app.changed.load(Ordering::SeqCst);
    for id in fresh {
        let app = app.clone();
        tokio::spawn(async move {
            app.wait_durable(written).await;
            deliver_with_retries(&app, &id).await;
            app.webhooks
                .scheduled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }
}

async fn deliver_with_retries(app: &App, id: &str) {
    let config = &app.webhooks.config;
    let mut shutdown = app.shutdown.clone();
    for attempt in 1..=config.max_attempts.max(1) {
        if *shutdown.borrow() {
            return;
        }
        let Ok(permit) = app.webhooks.permits.clone().acquire_owned().await else {
            return;
        };
        let Some(endpoint) = app.webhooks.active_endpoint() else {
            // Paused or removed: the event waits for the next endpoint.
            set_state(app, id, |s| {
                if s == DeliveryState::Retrying {
                    DeliveryState::Pending
                } else {
                    s
                }
            });
            return;
        };
        // Another path (a manual delivery) may have delivered it meanwhile.
        let Some(result) = attempt_once(app, id, &endpoint, false).await else {
            return;
        };
        if result.ok {
            return;
        }
        if attempt == config.max_attempts.max(1) {
            set_state(app, id, |s| match s {
                DeliveryState::Delivered => s,
                _ => DeliveryState::Failed,
            });
            app.mark_changed();
            return;
        }
        drop(permit);
        let wait = config.backoff(attempt);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn set_state(app: &App, id: &str, f: impl FnOnce(DeliveryState) -> DeliveryState) {
    let mut st = app.lock();
    if let Some(e) = st.find_event_mut(id) {
        e.delivery = f(e.delivery);
    }
}

/// POSTs the event once and records the attempt. `None` if the event does not exist or was
/// already delivered (automatic attempts only).
pub(crate) async fn attempt_once(
    app: &App,
    id: &str,
    endpoint: &Endpoint,
    manual: bool,
) -> Option<DeliveryAttempt> {
    let body = {
        let st = app.lock();
        let (mode, event) = st.find_event(id)?;
        if !manual && event.delivery == DeliveryState::Delivered {
            return None;
        }
        serde_json::to_vec_pretty(&shapes::event(event, mode.is_live(), 1)).ok()?
    };
    let signature = signature_header(&body, &endpoint.secret, chrono::Utc::now().timestamp());
    let headers = [
        ("content-type", "application/json; charset=utf-8"),
        ("stripe-signature", signature.as_str()),
        (
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        ),
    ];
    let outcome = app.webhooks.http.post(&endpoint.url, &headers, body).await;
    let (status, error) = match outcome {
        Ok(response) => (Some(response.status), None),
        Err(e) => (None, Some(e)),
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let mut st = app.lock();
    let at = app.now();
    let event = st.find_event_mut(id)?;
    let attempt = DeliveryAttempt {
        attempt: u32::try_from(event.attempts.len()).unwrap_or(u32::MAX - 1) + 1,
        at,
        url: endpoint.url.clone(),
        status,
        error,
        ok,
        manual,
    };
    event.attempts.push(attempt.clone());
    if ok {
        event.delivery = DeliveryState::Delivered;
    } else if event.delivery != DeliveryState::Delivered && !manual {
        event.delivery = DeliveryState::Retrying;
    }
    tracing::debug!(event = id, ?status, ok, "sandbox: webhook attempt");
    drop(st);
    app.mark_changed();
    Some(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_async_stripe() {
        let payload = r#"{"id":"evt_1","object":"event","api_version":"2026-09-30.endive","created":1,"data":{"object":{"id":"prod_1","object":"product","active":true,"created":1,"images":[],"livemode":false,"marketing_features":[],"metadata":{},"name":"Tea","type":"service","updated":1}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"product.created"}"#;
        let now = chrono::Utc::now().timestamp();
        let header = signature_header(payload.as_bytes(), "whsec_abc", now);
        assert_eq!(
            header,
            stripe_webhook::Webhook::generate_test_header(payload, "whsec_abc", Some(now))
        );
        let event = stripe_webhook::Webhook::construct_event(payload, &header, "whsec_abc")
            .expect("valid signature and shape");
        assert_eq!(event.id.as_str(), "evt_1");
        assert!(stripe_webhook::Webhook::construct_event(payload, &header, "whsec_other").is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let c = DeliveryConfig {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..DeliveryConfig::default()
        };
        for _ in 0..20 {
            let first = c.backoff(1);
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(100));
            let second = c.backoff(2);
            assert!(second >= Duration::from_millis(100) && second < Duration::from_millis(200));
            let capped = c.backoff(10);
            assert!(capped < Duration::from_millis(350));
        }
    }
}
