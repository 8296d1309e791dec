//! Stripe writes the HTTP API makes, as stored operations: every one is recorded (the
//! `operations` table, with its idempotency key) before Stripe is called, and marked done in the
//! same transaction as its result is applied, so that a crash anywhere in between leaves a
//! record that is finished on the next start, with the same key, without the client asking again.
//!
//! One operation's life:
//!
//! 1. `Engine::stripe_write`: the operation ([`StripeWrite`], its key derived from chatpay's own
//!    ids) is written with whatever change asks for it, in one transaction (`Store::write`);
//!    the same key again (a retried request) records nothing new.
//! 2. It is claimed (`owner`, `lease_until`), so that one instance carries it out; the lease is
//!    renewed while Stripe answers, and another instance may take it over once it lapses.
//! 3. Stripe is called with the key (`carry_out`), so a second call, after a crash or on another
//!    instance, gets the first one's answer and acts once.
//! 4. The answer is applied and the operation marked done together (`apply`): a checkout's order
//!    is inserted in the same transaction; a refund asks the order's conversation to read the
//!    order again (which stores it, and tells the chat) before the operation is marked done, so a
//!    crash in between asks again, harmlessly.
//! 5. A refusal (Stripe's 4xx) marks it failed with Stripe's message, and whoever asks with the
//!    same key gets that answer; a failure that may pass (Stripe unreachable, a 429 or 5xx) gives
//!    it back with a backoff, and after [`MAX_ATTEMPTS`] it is failed too.
//!
//! On start, and every [`POLL`] after, `Engine::run_operations` claims what is pending and not
//! held (left by a crash, or waiting for its next attempt) and carries it out. On PostgreSQL the
//! claim skips rows another instance is claiming (`FOR UPDATE SKIP LOCKED`), so several
//! instances can share the work.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use chatpay_core::billing::SubscriptionChange;
use chatpay_core::domain::{now_millis, random_hex};
use chatpay_core::flows::{OrderRef, Outside};
use chatpay_core::orders::Order;
use chatpay_store::{
    ExtraWrite, NewOperation, NewOrder, OperationRecord, OperationStatus, ProjectRecord,
};
use chatpay_stripe::{CheckoutRequest, CreatedSession, GatewayError, RefundRequest};

use super::orders::gateway_error;
use super::{ChatError, Engine};

/// How long a claim holds an operation without being renewed.
const LEASE: Duration = Duration::from_secs(10);
/// How often a running operation renews its claim.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often the background task looks for operations to finish.
const POLL: Duration = Duration::from_secs(2);
/// Attempts (claims) before a write Stripe keeps failing is given up.
pub(crate) const MAX_ATTEMPTS: i64 = 8;
/// Operations one look of the background task claims.
const CLAIM_BATCH: i64 = 16;

/// The environment variable of the crash test's fault hook: an operation kind (or `any`) whose
/// operations stop, forever, between Stripe's answer and the commit that applies it, after
/// logging `paused between Stripe's answer and the commit`. Unset in production.
pub(crate) const FAULT_PAUSE_ENV: &str = "CHATPAY_FAULT_PAUSE_AFTER_STRIPE";

/// What to ask Stripe: an operation's `request` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StripeWrite {
    /// A Checkout Session for a new order; `order` is the order to store with its session.
    Checkout {
        account: String,
        request: CheckoutRequest,
        order: Box<Order>,
    },
    /// A refund of one of the project's orders.
    Refund {
        account: String,
        request: RefundRequest,
    },
    /// A paid order's receipt sent again.
    Receipt {
        account: String,
        charge: String,
        email: String,
    },
    /// A subscription cancelled (now or at the period's end) or resumed.
    SubscriptionChange {
        account: String,
        subscription: String,
        change: SubscriptionChange,
    },
    /// A billing portal configuration made from `config`, the row's `version`-th.
    PortalConfiguration {
        account: String,
        config: chatpay_core::plans::PortalConfig,
        version: i64,
    },
    /// A billing portal session for a customer.
    PortalSession {
        account: String,
        customer: String,
        configuration: String,
        return_url: Option<String>,
    },
    /// A plan change: now (prorated from `proration_date`) or at the period's end.
    PlanChange {
        account: String,
        change: chatpay_core::plans::PlanChange,
        proration_date: Option<i64>,
    },
}

impl StripeWrite {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            StripeWrite::Checkout { .. } => "checkout",
            StripeWrite::Refund { .. } => "refund",
            StripeWrite::Receipt { .. } => "receipt",
            StripeWrite::SubscriptionChange { .. } => "subscription_change",
            StripeWrite::PortalConfiguration { .. } => "portal_configuration",
            StripeWrite::PortalSession { .. } => "portal_session",
            StripeWrite::PlanChange { .. } => "plan_change",
        }
    }
}

/// Why an operation failed: its `result` once `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Refusal {
    /// Stripe's HTTP status when Stripe refused; `None` when it could not be made at all.
    status: Option<u16>,
    code: Option<String>,
    message: String,
}

impl Refusal {
    fn error(&self) -> ChatError {
        match self.status {
            Some(_) => ChatError::Rejected {
                code: "stripe_refused",
                message: format!("Stripe refused: {}", self.message),
            },
            None => ChatError::Conflict {
                code: "stripe_write_failed",
                message: format!(
                    "Stripe could not be reached after {MAX_ATTEMPTS} attempts ({}); nothing was changed",
                    self.message
                ),
            },
        }
    }
}

/// Whether a failed call may succeed if made again (the same key: Stripe acts once).
fn may_pass(e: &GatewayError) -> bool {
    match e {
        GatewayError::Stripe { status, .. } => *status == 429 || *status >= 500,
        GatewayError::Unreachable(_) | GatewayError::Protocol(_) => true,
        GatewayError::NotConfigured(_) => false,
    }
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s, … up to a minute, with jitter.
fn backoff(attempts: i64) -> Duration {
    let base = 1000u64 << attempts.clamp(0, 6);
    let jitter = u64::from_str_radix(&random_hex(2), 16).unwrap_or(0) % (base / 4 + 1);
    Duration::from_millis((base + jitter).min(60_000))
}

pub(super) fn lease_until(now: i64) -> i64 {
    now + LEASE.as_millis() as i64
}

/// What an operation's stored end answers: Stripe's answer, or the refusal.
fn outcome(op: &OperationRecord) -> Result<serde_json::Value, ChatError> {
    let result = op.result.as_deref().unwrap_or("null");
    match op.status {
        OperationStatus::Done => serde_json::from_str(result)
            .map_err(|e| ChatError::Internal(anyhow::Error::new(e).context("a stored answer"))),
        OperationStatus::Failed => {
            let refusal: Refusal = serde_json::from_str(result).map_err(|e| {
                ChatError::Internal(anyhow::Error::new(e).context("a stored refusal"))
            })?;
            Err(refusal.error())
        }
        // Another request or instance is making it now: the caller asks again shortly (the
        // same key) and gets the answer.
        OperationStatus::Pending => Err(ChatError::Unavailable),
    }
}

impl Engine {
    /// Records the Stripe write `write` under `key` for `project` (with `rows`, the change that
    /// asks for it, in the same transaction), makes it, and returns Stripe's answer as stored.
    /// The same key again answers what the first made (or refused), without a second write.
    pub(crate) async fn stripe_write(
        &self,
        project: &ProjectRecord,
        key: &str,
        write: &StripeWrite,
        mut rows: Vec<ExtraWrite>,
    ) -> Result<serde_json::Value, ChatError> {
        let new = NewOperation {
            key: key.to_owned(),
            project_id: project.id.clone(),
            mode: project.mode,
            conversation_id: None,
            kind: write.kind().to_owned(),
            request: serde_json::to_string(write).map_err(anyhow::Error::new)?,
            created_at: now_millis(),
            held: None,
        };
        rows.insert(0, ExtraWrite::RecordOperation(new));
        self.inner.store.write(rows).await?;
        self.settle_operation(key).await
    }

    /// An operation already recorded: carried out now if nobody holds it, or its stored end.
    pub(crate) async fn settle_operation(&self, key: &str) -> Result<serde_json::Value, ChatError> {
        let now = now_millis();
        let claimed = self
            .inner
            .store
            .claim_operation(key, &self.inner.instance, now, lease_until(now))
            .await?;
        match claimed {
            Some(op) => self.carry_out(op).await,
            None => match self.inner.store.operation(key).await? {
                Some(op) => outcome(&op),
                None => Err(ChatError::NotFound(format!("no operation {key}"))),
            },
        }
    }

    /// Makes a claimed operation's call (renewing the claim meanwhile), then applies Stripe's
    /// answer and marks it done, or records the refusal, or gives it back for a later attempt.
    async fn carry_out(&self, op: OperationRecord) -> Result<serde_json::Value, ChatError> {
        let write: StripeWrite = serde_json::from_str(&op.request).map_err(|e| {
            ChatError::Internal(anyhow::Error::new(e).context("an unreadable stored operation"))
        })?;
        let store = &self.inner.store;
        let renew = async {
            #[allow(clippy::infinite_loop)]
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                match store
                    .renew_operation(&op.key, &self.inner.instance, lease_until(now_millis()))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(key = %op.key, "lost the claim on a Stripe write; finishing it (same key)");
                    }
                    Err(e) => tracing::warn!(key = %op.key, error = %e, "could not renew a claim"),
                }
            }
        };
        let answer = tokio::select! {
            answer = self.call_stripe(&op, &write) => answer,
            _ = renew => unreachable!("the renewal never ends"),
        };
        match answer {
            Ok(result) => {
                if let Some(kind) = &self.inner.fault_pause
                    && (kind == "any" || kind == write.kind())
                {
                    tracing::warn!(key = %op.key, "fault injection: paused between Stripe's answer and the commit");
                    std::future::pending::<()>().await;
                }
                self.apply(&op, &write, &result).await?;
                tracing::info!(key = %op.key, kind = write.kind(), attempts = op.attempts, "stored Stripe write done");
                Ok(result)
            }
            Err(e) if may_pass(&e) && op.attempts < MAX_ATTEMPTS => {
                let wait = backoff(op.attempts);
                tracing::warn!(key = %op.key, error = %e, attempts = op.attempts, retry_in = ?wait, "a stored Stripe write failed; it will be tried again");
                store
                    .retry_operation(
                        &op.key,
                        &self.inner.instance,
                        now_millis() + wait.as_millis() as i64,
                        &e.to_string(),
                    )
                    .await?;
                self.inner.operations_due.notify_one();
                Err(gateway_error(e))
            }
            Err(e) => {
                let refusal = match &e {
                    GatewayError::Stripe {
                        status,
                        code,
                        message,
                        ..
                    } if !may_pass(&e) => Refusal {
                        status: Some(*status),
                        code: code.clone(),
                        message: message.clone(),
                    },
                    other => Refusal {
                        status: None,
                        code: None,
                        message: other.user_message(),
                    },
                };
                tracing::warn!(key = %op.key, error = %e, attempts = op.attempts, "a stored Stripe write failed for good");
                store
                    .write(vec![ExtraWrite::FinishOperation {
                        key: op.key.clone(),
                        status: OperationStatus::Failed,
                        result: serde_json::to_string(&refusal).map_err(anyhow::Error::new)?,
                    }])
                    .await?;
                Err(refusal.error())
            }
        }
    }

    /// The call itself, with the operation's key; Stripe's answer as the operation stores it.
    async fn call_stripe(
        &self,
        op: &OperationRecord,
        write: &StripeWrite,
    ) -> Result<serde_json::Value, GatewayError> {
        let (gateway, mode, key) = (&self.inner.gateway, op.mode, op.key.as_str());
        let json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| GatewayError::Protocol(e.to_string()))
        };
        match write {
            StripeWrite::Checkout {
                account, request, ..
            } => {
                let session = gateway
                    .create_checkout_session(mode, account, request, key)
                    .await?;
                json(serde_json::to_value(session))
            }
            StripeWrite::Refund { account, request } => {
                let refund = gateway.create_refund(mode, account, request, key).await?;
                json(serde_json::to_value(refund))
            }
            StripeWrite::Receipt {
                account,
                charge,
                email,
            } => {
                gateway
                    .resend_receipt(mode, account, charge, email, key)
                    .await?;
                Ok(serde_json::json!({ "email": email }))
            }
            StripeWrite::SubscriptionChange {
                account,
                subscription,
                change,
            } => {
                gateway
                    .change_subscription(mode, account, subscription, *change, key)
                    .await?;
                Ok(serde_json::json!({ "subscription": subscription }))
            }
            StripeWrite::PortalConfiguration {
                account, config, ..
            } => {
                let id = gateway
                    .create_portal_configuration(mode, account, config, key)
                    .await?;
                Ok(serde_json::json!({ "configuration": id }))
            }
            StripeWrite::PortalSession {
                account,
                customer,
                configuration,
                return_url,
            } => {
                let url = gateway
                    .create_portal_session(
                        mode,
                        account,
                        customer,
                        configuration,
                        return_url.as_deref(),
                        key,
                    )
                    .await?;
                Ok(serde_json::json!({ "url": url, "customer": customer }))
            }
            StripeWrite::PlanChange {
                account,
                change,
                proration_date,
            } => {
                gateway
                    .change_plan(mode, account, change, *proration_date, key)
                    .await?;
                Ok(serde_json::json!({ "subscription": change.subscription }))
            }
        }
    }

    /// Applies Stripe's answer and marks the operation done.
    async fn apply(
        &self,
        op: &OperationRecord,
        write: &StripeWrite,
        result: &serde_json::Value,
    ) -> Result<(), ChatError> {
        let done = ExtraWrite::FinishOperation {
            key: op.key.clone(),
            status: OperationStatus::Done,
            result: result.to_string(),
        };
        let mut rows = Vec::with_capacity(2);
        match write {
            StripeWrite::Checkout { order, request, .. } => {
                let session: CreatedSession = serde_json::from_value(result.clone())
                    .map_err(|e| ChatError::Internal(anyhow::Error::new(e)))?;
                let mut order = (**order).clone();
                // A code the checkout applied: the order charges what Stripe's session does.
                if let (Some(_), Some(total)) = (&request.promotion_code, session.amount_total) {
                    order.amount_total = total;
                }
                order.checkout_session = session.id.clone();
                order.checkout_url = Some(session.url);
                order.expires_at = session.expires_at;
                rows.push(ExtraWrite::InsertOrder(NewOrder {
                    id: order.id.clone(),
                    project_id: op.project_id.clone(),
                    mode: op.mode,
                    status: order.status.as_str().to_owned(),
                    session_id: session.id,
                    created_at: order.created_at,
                    data: serde_json::to_string(&order).map_err(anyhow::Error::new)?,
                    customer_email: order.customer_email.clone(),
                }));
            }
            StripeWrite::Refund { request, .. } => {
                // The order learns of it by reading Stripe again, as for a refund from the
                // Dashboard: its conversation stores the change and pushes its card. Asked
                // before the operation is done, so a crash in between asks again.
                let project = self
                    .inner
                    .store
                    .project(&op.project_id)
                    .await?
                    .ok_or_else(|| ChatError::NotFound(format!("no project {}", op.project_id)))?;
                self.outside(
                    &project,
                    Outside::OrderChanged {
                        order: OrderRef::Order(request.order_id.clone()),
                        event: None,
                        evidence: None,
                        known: None,
                    },
                )
                .await?;
            }
            // Stripe's own events bring the change to the stored subscription; a receipt
            // changes nothing of ours.
            StripeWrite::Receipt { .. }
            | StripeWrite::SubscriptionChange { .. }
            | StripeWrite::PortalSession { .. }
            | StripeWrite::PlanChange { .. } => {}
            // The configuration made is the one the next sessions use (unless a later one is
            // stored already).
            StripeWrite::PortalConfiguration {
                account,
                config,
                version,
            } => rows.push(ExtraWrite::PortalConfigured {
                project_id: op.project_id.clone(),
                mode: op.mode,
                account_id: account.clone(),
                configuration_id: result["configuration"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                configuration: serde_json::to_string(config).map_err(anyhow::Error::new)?,
                version: *version,
            }),
        }
        rows.push(done);
        self.inner.store.write(rows).await?;
        Ok(())
    }

    /// Wakes the conversation of a Stripe write its turn's instance stopped making (claimed by
    /// `run_operations` once the lease lapsed): it makes the call again, with the same key.
    async fn take_over_call(&self, op: &OperationRecord) -> Result<(), ChatError> {
        let handle = self.handle_for_id(&op.project_id).await?;
        handle
            .send(super::actor::Msg::TakeOver {
                key: op.key.clone(),
            })
            .await
    }

    /// Renews the leases of the conversations' Stripe writes this instance is making.
    async fn renew_calls_in_flight(&self) {
        let keys: Vec<String> = self.inner.calls_in_flight().iter().cloned().collect();
        let until = lease_until(now_millis());
        for key in keys {
            if let Err(e) = self
                .inner
                .store
                .renew_operation(&key, &self.inner.instance, until)
                .await
            {
                tracing::warn!(key, error = %e, "could not renew a Stripe write's lease");
            }
        }
    }

    /// Finishes stored Stripe writes nobody holds: those left by a crash (on start), those
    /// waiting for another attempt, and conversations' calls whose instance stopped renewing
    /// them (their conversation is woken to make them again), until `shutdown`. Renews the
    /// leases of the calls this instance is making.
    pub async fn run_operations(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            self.renew_calls_in_flight().await;
            let now = now_millis();
            match self
                .inner
                .store
                .claim_operations(&self.inner.instance, now, lease_until(now), CLAIM_BATCH)
                .await
            {
                Ok(ops) => {
                    for op in ops {
                        let engine = self.clone();
                        if let Some(conversation) = op.conversation_id.clone() {
                            // A conversation's call whose instance stopped renewing it.
                            tokio::spawn(async move {
                                tracing::info!(key = op.key, %conversation, "taking over a Stripe write a stopped instance was making");
                                if let Err(e) = engine.take_over_call(&op).await {
                                    tracing::warn!(key = op.key, error = %e, "could not wake the conversation of a Stripe write");
                                }
                            });
                            continue;
                        }
                        tokio::spawn(async move {
                            let (key, attempts) = (op.key.clone(), op.attempts);
                            tracing::info!(key, attempts, "finishing a stored Stripe write");
                            if let Err(e) = engine.carry_out(op).await {
                                tracing::warn!(key, error = %e, "a stored Stripe write did not finish");
                            }
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not claim stored Stripe writes"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.inner.operations_due.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_stored_as_tagged_json_and_read_back() {
        let write = StripeWrite::SubscriptionChange {
            account: "acct_1".into(),
            subscription: "sub_1".into(),
            change: SubscriptionChange::Resume,
        };
        let json = serde_json::to_string(&write).unwrap();
        assert!(json.contains(r#""kind":"subscription_change""#), "{json}");
        assert_eq!(serde_json::from_str::<StripeWrite>(&json).unwrap(), write);
        assert_eq!(write.kind(), "subscription_change");
    }

    #[test]
    fn only_failures_that_may_pass_are_tried_again() {
        let stripe = |status| GatewayError::Stripe {
            status,
            kind: "api_error".into(),
            code: None,
            message: "no".into(),
        };
        assert!(may_pass(&stripe(429)));
        assert!(may_pass(&stripe(503)));
        assert!(!may_pass(&stripe(400)));
        assert!(!may_pass(&stripe(402)));
        assert!(may_pass(&GatewayError::Unreachable("timeout".into())));
        assert!(!may_pass(&GatewayError::NotConfigured("live".into())));
    }

    #[test]
    fn backoff_grows_to_a_minute() {
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(0) < Duration::from_secs(2));
        assert!(backoff(3) >= Duration::from_secs(8));
        assert_eq!(backoff(20), Duration::from_secs(60));
    }

    #[test]
    fn a_stored_refusal_answers_as_the_first_did() {
        let mut op = OperationRecord {
            key: "k".into(),
            project_id: chatpay_core::domain::ProjectId::generate(),
            mode: chatpay_core::domain::Mode::Test,
            conversation_id: None,
            kind: "refund".into(),
            request: "{}".into(),
            status: OperationStatus::Failed,
            result: Some(
                r#"{"status":400,"code":"charge_already_refunded","message":"already refunded"}"#
                    .into(),
            ),
            owner: None,
            lease_until: None,
            attempts: 1,
            created_at: 1,
            updated_at: 1,
        };
        let err = outcome(&op).unwrap_err();
        assert_eq!(err.to_string(), "Stripe refused: already refunded");
        op.status = OperationStatus::Pending;
        assert!(matches!(outcome(&op), Err(ChatError::Unavailable)));
        op.status = OperationStatus::Done;
        op.result = Some(r#"{"id":"re_1"}"#.into());
        assert_eq!(outcome(&op).unwrap()["id"], "re_1");
    }
}
