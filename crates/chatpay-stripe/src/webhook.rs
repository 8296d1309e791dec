//! Stripe webhook signatures and the event envelope.
//!
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, where each `v1` is
//! hex(HMAC-SHA256(secret, "<t>.<raw body>")). The raw bytes are verified before anything is
//! parsed; any `v1` matching any configured secret passes (secret rotation sends several), in
//! constant time; a timestamp more than `tolerance` away from now fails (replays).

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use chatpay_core::account::AccountSnapshot;
use chatpay_core::domain::Secret;
use chatpay_core::evidence::Evidence;
use chatpay_core::flows::{OrderRef, Outside};

/// Stripe's default tolerance for a signature's timestamp.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("signature timestamp outside the tolerance")]
    Expired,
    #[error("no signature matches")]
    Mismatch,
}

/// Signs a payload the way Stripe does (for the sandbox and tests).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Verifies `header` over the raw `payload` against any of `secrets` at time `now` (unix secs).
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[Secret],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do.
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    for secret in secrets {
        for sig in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes any key");
            mac.update(t.to_string().as_bytes());
            mac.update(b".");
            mac.update(payload);
            // verify_slice compares in constant time.
            if mac.verify_slice(sig).is_ok() {
                return if (now - t).abs() > tolerance {
                    Err(SignatureError::Expired)
                } else {
                    Ok(())
                };
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The parts of an event chatpay routes on; the object itself is re-read from Stripe where order
/// matters.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    pub id: String,
    pub event_type: String,
    /// The connected account the event is about (Connect events).
    pub account: Option<String>,
    pub livemode: bool,
    /// Unix seconds.
    pub created: i64,
    pub object: serde_json::Value,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    account: Option<String>,
    livemode: bool,
    created: i64,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: serde_json::Value,
}

impl EventEnvelope {
    pub fn parse(payload: &[u8]) -> Result<EventEnvelope, String> {
        let raw: Raw = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if !raw.id.starts_with("evt_") {
            return Err(format!("{:?} is not an event id", raw.id));
        }
        Ok(EventEnvelope {
            id: raw.id,
            event_type: raw.event_type,
            account: raw.account,
            livemode: raw.livemode,
            created: raw.created,
            object: raw.data.object,
        })
    }
}

impl EventEnvelope {
    fn text(&self, field: &str) -> Option<String> {
        self.object.get(field)?.as_str().map(str::to_owned)
    }

    /// The subscription an invoice belongs to: `parent.subscription_details.subscription` in
    /// Stripe's current API, `subscription` in older versions.
    fn invoice_subscription(&self) -> Option<String> {
        let nested = self
            .object
            .get("parent")
            .and_then(|p| p.get("subscription_details"))
            .and_then(|d| d.get("subscription"));
        nested
            .or_else(|| self.object.get("subscription"))
            .and_then(|v| v.as_str().or_else(|| v.get("id").and_then(|i| i.as_str())))
            .map(str::to_owned)
    }

    /// The order an event of `metadata.chatpay_order` names (set on every checkout, its
    /// PaymentIntent, its invoice and chatpay's refunds).
    fn chatpay_order(&self) -> Option<String> {
        self.object
            .get("metadata")?
            .get("chatpay_order")?
            .as_str()
            .map(str::to_owned)
    }

    /// The event's object as evidence about an order (see `chatpay_core::evidence`); `None`
    /// for an object of another type, or one missing a field the evidence needs.
    pub fn evidence(&self) -> Option<Evidence> {
        let o = &self.object;
        let text = |field: &str| self.text(field);
        // An expandable field: an id, or the object itself when expanded.
        let id_of = |field: &str| match o.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => m.get("id")?.as_str().map(str::to_owned),
            _ => None,
        };
        let int = |field: &str| o.get(field)?.as_i64();
        Some(match o.get("object")?.as_str()? {
            "checkout.session" => Evidence::CheckoutSession {
                id: text("id")?,
                status: text("status")?,
                payment_status: text("payment_status")?,
                amount_total: int("amount_total"),
                customer_email: o
                    .get("customer_details")
                    .and_then(|d| d.get("email"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| text("customer_email")),
                subscription: id_of("subscription"),
            },
            "payment_intent" => Evidence::PaymentIntent {
                id: text("id")?,
                status: text("status")?,
            },
            "charge" => Evidence::Charge {
                id: text("id")?,
                status: text("status")?,
                amount_captured: int("amount_captured")?,
                amount_refunded: int("amount_refunded")?,
                receipt_url: text("receipt_url"),
                receipt_email: text("receipt_email"),
                balance_transaction: id_of("balance_transaction").is_some(),
            },
            "refund" => Evidence::Refund {
                id: text("id")?,
                status: text("status")?,
                amount: int("amount")?,
            },
            "invoice" => Evidence::Invoice {
                id: text("id")?,
                status: text("status")?,
            },
            "dispute" => Evidence::Dispute {
                id: text("id")?,
                status: text("status")?,
                fee: o
                    .get("balance_transactions")?
                    .as_array()?
                    .iter()
                    .map(|t| t.get("fee").and_then(Value::as_i64))
                    .sum::<Option<i64>>()?,
            },
            "radar.early_fraud_warning" => Evidence::FraudWarning {
                id: text("id")?,
                actionable: o.get("actionable")?.as_bool()?,
            },
            _ => return None,
        })
    }

    /// An `account.updated` event's account as chatpay keeps it (the same reading of Stripe's
    /// Account as a fresh read's), if the payload is that account.
    fn account_evidence(&self, account: &str) -> Option<Box<AccountSnapshot>> {
        if self.object.get("object")?.as_str()? != "account" || self.text("id")? != account {
            return None;
        }
        let json = serde_json::to_string(&self.object).ok()?;
        let parsed: stripe_shared::Account = miniserde::json::from_str(&json).ok()?;
        Some(Box::new(crate::client::snapshot(&parsed)))
    }

    /// What the event means to chatpay, by its type: which account, product or order to re-read
    /// (`None`: a type chatpay doesn't act on; it is recorded and acknowledged all the same).
    /// Payloads are not trusted for state: the named object is read again from Stripe.
    pub fn input(&self) -> Option<Outside> {
        let kind = self.event_type.as_str();
        let (family, _) = kind.rsplit_once('.').unwrap_or((kind, ""));
        let order = |fallback: Option<OrderRef>| {
            self.chatpay_order()
                .map(OrderRef::Order)
                .or(fallback)
                .map(|order| Outside::OrderChanged {
                    order,
                    event: Some(self.id.clone()),
                    evidence: self.evidence(),
                    known: None,
                })
        };
        match (family, kind) {
            (_, "account.updated") => self.account.clone().map(|account| Outside::AccountChanged {
                evidence: self.account_evidence(&account),
                account,
            }),
            (_, "account.application.deauthorized") => self
                .account
                .clone()
                .map(|account| Outside::Deauthorized { account }),
            ("product", "product.created" | "product.updated" | "product.deleted") => self
                .text("id")
                .map(|product| Outside::CatalogChanged { product }),
            ("price", "price.created" | "price.updated" | "price.deleted") => self
                .text("product")
                .map(|product| Outside::CatalogChanged { product }),
            ("checkout.session", _) => order(self.text("id").map(OrderRef::Session)),
            ("payment_intent", _) => order(self.text("id").map(OrderRef::PaymentIntent)),
            ("charge", _) | ("refund", _) | ("charge.refund", _) => {
                order(self.text("payment_intent").map(OrderRef::PaymentIntent))
            }
            // A dispute or an early fraud warning: the order of its PaymentIntent is read
            // again, its dispute with it.
            ("charge.dispute", _) | ("radar.early_fraud_warning", _) => {
                order(self.text("payment_intent").map(OrderRef::PaymentIntent))
            }
            ("customer.subscription", _) => {
                self.text("id")
                    .map(|subscription| Outside::SubscriptionChanged {
                        subscription,
                        event: Some(self.id.clone()),
                        trial_ending: kind == "customer.subscription.trial_will_end",
                    })
            }
            // A subscription's invoice (a renewal, a retry, its payment): the subscription is
            // read again with its invoices.
            ("invoice", _) if self.invoice_subscription().is_some() => self
                .invoice_subscription()
                .map(|subscription| Outside::SubscriptionChanged {
                    subscription,
                    event: Some(self.id.clone()),
                    trial_ending: kind == "customer.subscription.trial_will_end",
                }),
            (
                "invoice",
                "invoice.paid"
                | "invoice.finalized"
                | "invoice.payment_succeeded"
                | "invoice.updated",
            ) => order(None),
            ("payout", _) => self.text("id").map(|payout| Outside::PayoutChanged {
                payout,
                event: Some(self.id.clone()),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_route_by_type_to_what_they_name() {
        let event = |kind: &str, object: serde_json::Value| EventEnvelope {
            id: "evt_1".into(),
            event_type: kind.into(),
            account: Some("acct_1".into()),
            livemode: false,
            created: 1,
            object,
        };
        let order = |o: OrderRef| {
            Some(Outside::OrderChanged {
                order: o,
                event: Some("evt_1".into()),
                evidence: None,
                known: None,
            })
        };
        let cases = [
            (
                event("account.updated", json_obj("acct_1")),
                Some(Outside::AccountChanged {
                    account: "acct_1".into(),
                    evidence: None,
                }),
            ),
            (
                event(
                    "price.updated",
                    serde_json::json!({"id": "price_1", "product": "prod_1"}),
                ),
                Some(Outside::CatalogChanged {
                    product: "prod_1".into(),
                }),
            ),
            (
                event(
                    "checkout.session.completed",
                    serde_json::json!({"id": "cs_1", "metadata": {"chatpay_order": "ord_1"}}),
                ),
                order(OrderRef::Order("ord_1".into())),
            ),
            (
                event(
                    "checkout.session.expired",
                    serde_json::json!({"id": "cs_1"}),
                ),
                order(OrderRef::Session("cs_1".into())),
            ),
            (
                event(
                    "charge.refunded",
                    serde_json::json!({"id": "ch_1", "payment_intent": "pi_1"}),
                ),
                order(OrderRef::PaymentIntent("pi_1".into())),
            ),
            (
                event(
                    "refund.updated",
                    serde_json::json!({"id": "re_1", "payment_intent": "pi_1"}),
                ),
                order(OrderRef::PaymentIntent("pi_1".into())),
            ),
            (
                event(
                    "payment_intent.payment_failed",
                    serde_json::json!({"id": "pi_1", "metadata": {}}),
                ),
                order(OrderRef::PaymentIntent("pi_1".into())),
            ),
            (
                event(
                    "invoice.paid",
                    serde_json::json!({"id": "in_1", "metadata": {"chatpay_order": "ord_1"}}),
                ),
                order(OrderRef::Order("ord_1".into())),
            ),
            (
                event("invoice.paid", serde_json::json!({"id": "in_1"})),
                None,
            ),
            (
                event(
                    "charge.dispute.created",
                    serde_json::json!({"id": "dp_1", "payment_intent": "pi_1", "charge": "ch_1"}),
                ),
                order(OrderRef::PaymentIntent("pi_1".into())),
            ),
            (
                event(
                    "radar.early_fraud_warning.created",
                    serde_json::json!({"id": "issfr_1", "payment_intent": "pi_1"}),
                ),
                order(OrderRef::PaymentIntent("pi_1".into())),
            ),
            (
                event("customer.created", serde_json::json!({"id": "cus_1"})),
                None,
            ),
            (
                event(
                    "customer.subscription.updated",
                    serde_json::json!({"id": "sub_1", "object": "subscription"}),
                ),
                Some(Outside::SubscriptionChanged {
                    subscription: "sub_1".into(),
                    event: Some("evt_1".into()),
                    trial_ending: false,
                }),
            ),
            (
                event(
                    "invoice.payment_failed",
                    serde_json::json!({"id": "in_2", "parent": {"type": "subscription_details",
                        "subscription_details": {"subscription": "sub_1"}}}),
                ),
                Some(Outside::SubscriptionChanged {
                    subscription: "sub_1".into(),
                    event: Some("evt_1".into()),
                    trial_ending: false,
                }),
            ),
            (
                event(
                    "invoice.paid",
                    serde_json::json!({"id": "in_3", "subscription": "sub_2",
                        "metadata": {"chatpay_order": "ord_1"}}),
                ),
                Some(Outside::SubscriptionChanged {
                    subscription: "sub_2".into(),
                    event: Some("evt_1".into()),
                    trial_ending: false,
                }),
            ),
            (
                event("payout.failed", serde_json::json!({"id": "po_1"})),
                Some(Outside::PayoutChanged {
                    payout: "po_1".into(),
                    event: Some("evt_1".into()),
                }),
            ),
            (
                event(
                    "balance.available",
                    serde_json::json!({"object": "balance"}),
                ),
                None,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.input(), want, "{}", e.event_type);
        }
    }

    fn json_obj(id: &str) -> serde_json::Value {
        serde_json::json!({ "id": id })
    }

    /// The evidence is read from the object's own type and fields (an expanded field counts by
    /// its id); an object missing a field it needs is no evidence at all.
    #[test]
    fn evidence_comes_from_the_events_object() {
        let event = |object: serde_json::Value| EventEnvelope {
            id: "evt_1".into(),
            event_type: "charge.refunded".into(),
            account: Some("acct_1".into()),
            livemode: false,
            created: 1,
            object,
        };
        let charge = event(serde_json::json!({
            "id": "ch_1", "object": "charge", "status": "succeeded",
            "amount_captured": 4900, "amount_refunded": 500,
            "receipt_url": "https://r/ch_1", "receipt_email": null,
            "balance_transaction": {"id": "txn_1", "object": "balance_transaction"},
            "payment_intent": "pi_1"
        }));
        assert_eq!(
            charge.evidence(),
            Some(Evidence::Charge {
                id: "ch_1".into(),
                status: "succeeded".into(),
                amount_captured: 4900,
                amount_refunded: 500,
                receipt_url: Some("https://r/ch_1".into()),
                receipt_email: None,
                balance_transaction: true,
            })
        );
        let session = event(serde_json::json!({
            "id": "cs_1", "object": "checkout.session", "status": "complete",
            "payment_status": "paid", "amount_total": 4900,
            "customer_details": {"email": "ana@example.com"}, "customer_email": null,
            "subscription": null
        }));
        assert_eq!(
            session.evidence(),
            Some(Evidence::CheckoutSession {
                id: "cs_1".into(),
                status: "complete".into(),
                payment_status: "paid".into(),
                amount_total: Some(4900),
                customer_email: Some("ana@example.com".into()),
                subscription: None,
            })
        );
        let no_amounts =
            event(serde_json::json!({"id": "ch_1", "object": "charge", "status": "succeeded"}));
        assert_eq!(no_amounts.evidence(), None);
        assert_eq!(
            event(serde_json::json!({"id": "dp_1", "object": "dispute"})).evidence(),
            None,
            "a dispute without its balance transactions is no evidence"
        );
        assert_eq!(
            event(serde_json::json!({"id": "dp_1", "object": "dispute",
                "status": "needs_response",
                "balance_transactions": [{"id": "txn_1", "fee": 1500}]}))
            .evidence(),
            Some(Evidence::Dispute {
                id: "dp_1".into(),
                status: "needs_response".into(),
                fee: 1500
            })
        );
        assert_eq!(
            event(
                serde_json::json!({"id": "issfr_1", "object": "radar.early_fraud_warning",
                "actionable": true})
            )
            .evidence(),
            Some(Evidence::FraudWarning {
                id: "issfr_1".into(),
                actionable: true
            })
        );
    }

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn accepts_any_matching_v1_and_any_secret() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, SECRET, 1_000);
        let secrets = [Secret::new("whsec_old"), Secret::new(SECRET)];
        assert_eq!(verify(body, Some(&header), &secrets, 1_100, 300), Ok(()));
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(body, Some(&rotated), &secrets, 1_100, 300), Ok(()));
        let other_first = format!(
            "t=1000,v1={},{}",
            "ab".repeat(32),
            header.split_once(',').unwrap().1
        );
        assert_eq!(
            verify(body, Some(&other_first), &secrets, 1_100, 300),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampering_staleness_and_junk() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, SECRET, 1_000);
        let secrets = [Secret::new(SECRET)];
        assert_eq!(
            verify(b"{\"id\":\"evt_2\"}", Some(&header), &secrets, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(body, Some(&header), &secrets, 1_301, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(body, Some(&header), &secrets, 699, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(body, None, &secrets, 1_000, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(body, Some("garbage"), &secrets, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(body, Some("t=1000"), &secrets, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(body, Some("t=x,v1=00"), &secrets, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(
                body,
                Some(&header),
                &[Secret::new("whsec_other")],
                1_000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn agrees_with_async_stripe() {
        let body = r#"{"id":"evt_1"}"#;
        let ts = chrono::Utc::now().timestamp();
        let header = sign(body.as_bytes(), SECRET, ts);
        let theirs = stripe_webhook::Webhook::generate_test_header(body, SECRET, Some(ts));
        assert_eq!(header, theirs);
    }
}
