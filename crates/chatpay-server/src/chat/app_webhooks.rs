//! chatpay's own webhooks to a builder's app: who gained or lost access to what.
//!
//! The flows say it (`Effect::Notify`) in the turn that tells the builder in the chat; the turn
//! (`super::turn::plan`) makes each an outbox row committed with its frames
//! (`ExtraWrite::EnqueueAppEvent`), so an event exists exactly when its turn was stored: a crash
//! before the commit loses the turn and its events together, and a replayed turn that lost its
//! race stores neither. The
//! store keeps the row only if the project has an endpoint when the turn commits.
//!
//! [`Engine::deliver_app_events`] is the one task that sends them: each project's events in
//! order, `POST`ed with `Chatpay-Signature: t=…,v1=…` (Stripe's scheme, over `t.body`, with the
//! endpoint's secret), retried with exponential backoff and jitter until a 2xx or until they
//! are `give_up_after` old. Delivery is at least once (an answer lost after the receiver acted
//! is sent again, with the same event id and body): receivers dedupe by `id`. A stop or crash
//! leaves undelivered rows in the store; the next server resumes them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::{ChatError, Engine};
use chatpay_core::billing::{AccessChange, Grant};
use chatpay_core::domain::{Mode, ProjectId, now_millis, random_hex};
use chatpay_http_client::HttpClient;
use chatpay_store::{AppWebhook, DueAppEvent, NewAppEvent, ProjectRecord};
use chatpay_stripe::webhook::sign;

/// The prefix of chatpay's own event ids (Stripe's are `evt_…`).
pub const EVENT_PREFIX: &str = "evt_cp_";
/// The prefix of an app webhook's signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Chatpay-Signature";

/// Events sent at once (each project's oldest due one).
const BATCH: i64 = 32;
/// How long the task sleeps at most before looking again (a turn that enqueues wakes it).
const IDLE: Duration = Duration::from_secs(5);
/// The longest wait between two attempts, as a multiple of the first.
const MAX_BACKOFF_FACTOR: u32 = 256;
/// A receiver's answer is kept this long in `last_error` (bytes).
const ERROR_BODY: usize = 200;

/// When delivery retries and gives up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failure; each failure doubles it (up to 256 times it).
    pub first_retry: Duration,
    /// An event this old is not tried again.
    pub give_up_after: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts: doubling from `first_retry`, capped, with
    /// "equal jitter" (half fixed, half random) so that receivers coming back are not stampeded.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let factor = 2u32
            .saturating_pow(u32::try_from(attempts.max(1) - 1).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF_FACTOR);
        let full = self.first_retry.saturating_mul(factor);
        let half = full / 2;
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("the operating system's random source is available");
        let unit = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
        half + half.mul_f64(unit)
    }
}

/// Orders a project's events: increasing across turns and restarts (milliseconds × 1000, one
/// more than the last when two come in the same millisecond).
#[derive(Debug, Default)]
pub(crate) struct EventSeq(AtomicI64);

impl EventSeq {
    pub(crate) fn next(&self, now_ms: i64) -> i64 {
        let floor = now_ms.saturating_mul(1000);
        let prev = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(floor.max(last + 1))
            })
            .unwrap_or(0);
        floor.max(prev + 1)
    }
}

/// The outbox row for one access change, event `id` (`evt_cp_…`): the JSON body the app
/// receives, fixed now so that every attempt sends the same bytes.
pub(crate) fn outbox_row(
    project: &ProjectId,
    mode: Mode,
    change: &AccessChange,
    now_ms: i64,
    seq: i64,
    id: String,
) -> NewAppEvent {
    let (source, subscription, status, order) = match &change.grant {
        Grant::Subscription {
            subscription,
            status,
        } => (
            "subscription",
            Some(subscription.as_str()),
            Some(status.as_str()),
            None,
        ),
        Grant::Order { order } => ("order", None, None, Some(*order)),
    };
    let body = json!({
        "id": id,
        "object": "event",
        "type": change.event_type(),
        "created": now_ms / 1000,
        "livemode": mode.is_live(),
        "project": project.as_str(),
        "data": { "object": {
            "object": "entitlement",
            "customer_email": change.customer_email,
            "product": change.product,
            "name": change.name,
            "active": change.granted,
            "source": source,
            "subscription": subscription,
            "status": status,
            "order": order,
            "mode": mode.as_str(),
            "since": change.since,
            "until": change.until,
            "reason": change.reason.as_str(),
        }},
    });
    NewAppEvent {
        id,
        project_id: project.clone(),
        event_type: change.event_type().to_owned(),
        payload: body.to_string(),
        seq,
        created_at: now_ms,
    }
}

fn rejected(code: &'static str, message: impl Into<String>) -> ChatError {
    ChatError::Rejected {
        code,
        message: message.into(),
    }
}

/// An endpoint URL the server can `POST` to: `http://` or `https://`, a host, no credentials.
fn check_url(raw: &str) -> Result<String, ChatError> {
    let bad = || {
        rejected(
            "invalid_url",
            format!(
                "\"{raw}\" is not a webhook URL: write it as https://your-app.example/path (http:// is accepted too)"
            ),
        )
    };
    let url = raw.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty()
        || host.contains('@')
        || url.chars().count() > 2048
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    Ok(url.to_owned())
}

impl Engine {
    /// The project's app webhook endpoint, if it has one (backend projects only).
    pub async fn app_webhook(&self, p: &ProjectRecord) -> Result<Option<AppWebhook>, ChatError> {
        Self::require_backend(p)?;
        Ok(self.inner.store.app_webhook(&p.id).await?)
    }

    /// Sets the endpoint's URL; a new endpoint (or `rotate_secret`) gets a new signing secret,
    /// otherwise the secret stays. Answers the endpoint and whether its secret is new.
    pub async fn put_app_webhook(
        &self,
        p: &ProjectRecord,
        url: &str,
        rotate_secret: bool,
    ) -> Result<(AppWebhook, bool), ChatError> {
        Self::require_backend(p)?;
        let url = check_url(url)?;
        let now = now_millis();
        let existing = self.inner.store.app_webhook(&p.id).await?;
        let new_secret = rotate_secret || existing.is_none();
        let hook = AppWebhook {
            project_id: p.id.clone(),
            url,
            secret: match &existing {
                Some(e) if !new_secret => e.secret.clone(),
                _ => format!("{SECRET_PREFIX}{}", random_hex(24)),
            },
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let stored = self.inner.store.put_app_webhook(&hook).await?;
        self.inner.app_events.notify_one();
        Ok((stored, new_secret))
    }

    /// Removes the endpoint (and drops its undelivered events); `not_found` if there is none.
    pub async fn delete_app_webhook(&self, p: &ProjectRecord) -> Result<(), ChatError> {
        Self::require_backend(p)?;
        if self.inner.store.delete_app_webhook(&p.id).await? {
            Ok(())
        } else {
            Err(ChatError::NotFound(
                "this project has no app webhook endpoint".to_owned(),
            ))
        }
    }

    /// Delivers due app events until `shutdown` says stop; an attempt in flight then is
    /// abandoned (its row stays undelivered and is sent again after the restart).
    pub async fn deliver_app_events(&self, mut shutdown: watch::Receiver<bool>) {
        let policy = self.inner.app_webhooks;
        let client = HttpClient::new(policy.timeout);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.deliver_due(&client, &policy).await {
                Ok(true) => Duration::ZERO,
                Ok(false) => match self.inner.store.next_app_event_at().await {
                    Ok(Some(at)) => {
                        Duration::from_millis(u64::try_from(at - now_millis()).unwrap_or(0))
                            .min(IDLE)
                    }
                    Ok(None) => IDLE,
                    Err(e) => {
                        tracing::error!(error = %e, "could not read the app event outbox");
                        IDLE
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "could not read the app event outbox");
                    IDLE
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.app_events.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Sends what is due now, in parallel across projects; true if anything was sent.
    async fn deliver_due(
        &self,
        client: &HttpClient,
        policy: &RetryPolicy,
    ) -> Result<bool, chatpay_store::StoreError> {
        // Claimed for as long as an attempt may take (and then some): another instance skips
        // these rows, and takes them over if this one dies before recording the outcome.
        let now = now_millis();
        let lease = i64::try_from(policy.timeout.as_millis())
            .unwrap_or(60_000)
            .saturating_mul(2)
            .saturating_add(30_000);
        let due = self
            .inner
            .store
            .claim_app_events(now, now.saturating_add(lease), BATCH)
            .await?;
        if due.is_empty() {
            return Ok(false);
        }
        metrics::counter!("chatpay_job_claims_total", "kind" => "app_event")
            .increment(due.len() as u64);
        let attempts = due.iter().map(|d| self.attempt(client, policy, d));
        futures_util::future::join_all(attempts).await;
        Ok(true)
    }

    async fn attempt(&self, client: &HttpClient, policy: &RetryPolicy, d: &DueAppEvent) {
        let e = &d.event;
        let signature = sign(
            e.payload.as_bytes(),
            &d.secret,
            chrono::Utc::now().timestamp(),
        );
        let headers = [
            ("content-type", "application/json"),
            ("user-agent", "chatpay-webhooks/1"),
            (SIGNATURE_HEADER, signature.as_str()),
        ];
        let sent = client
            .send("POST", &d.url, &headers, e.payload.clone().into_bytes())
            .await;
        let now = now_millis();
        let failure = match sent {
            Ok(r) if (200..300).contains(&r.status) => None,
            Ok(r) => {
                let mut text = r.text();
                text.truncate(text.floor_char_boundary(ERROR_BODY));
                Some(format!("answered {}: {text}", r.status))
            }
            Err(err) => Some(err.to_string()),
        };
        let stored = match &failure {
            None => {
                tracing::info!(event = %e.id, project = %e.project_id, attempts = e.attempts + 1, "app event delivered");
                self.inner.store.app_event_delivered(&e.id, now).await
            }
            Some(why) => {
                let wait = policy.backoff(e.attempts + 1);
                let next = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                let give_up_at = e.created_at
                    + i64::try_from(policy.give_up_after.as_millis()).unwrap_or(i64::MAX / 2);
                let next = (next <= give_up_at).then_some(next);
                match next {
                    Some(_) => {
                        tracing::warn!(event = %e.id, project = %e.project_id, attempts = e.attempts + 1, error = %why, "app event not delivered; retrying")
                    }
                    None => {
                        tracing::error!(event = %e.id, project = %e.project_id, attempts = e.attempts + 1, error = %why, "app event not delivered; giving up")
                    }
                }
                self.inner.store.app_event_failed(&e.id, why, next).await
            }
        };
        if let Err(err) = stored {
            // The row stays due: it is sent again (receivers dedupe by id).
            tracing::error!(event = %e.id, error = %err, "could not record an app event's delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("https://app.example/hooks/chatpay").is_ok());
        assert!(check_url("http://127.0.0.1:8080/h").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https:///path",
            "app.example/h",
            "https://u:p@app.example/",
            "https://app.example/a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            first_retry: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3 * 86_400),
            timeout: Duration::from_secs(10),
        };
        for (attempts, full) in [(1, 60), (2, 120), (5, 960), (40, 60 * 256)] {
            let b = p.backoff(attempts);
            let full = Duration::from_secs(full);
            assert!(b >= full / 2 && b <= full, "{attempts}: {b:?}");
        }
    }

    #[test]
    fn event_order_increases_within_a_millisecond() {
        let seq = EventSeq::default();
        let a = seq.next(5);
        let b = seq.next(5);
        let c = seq.next(4);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(seq.next(9), 9000);
    }
}
