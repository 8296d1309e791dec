//! What one Stripe event's payload says about an order, used for one decision only: whether the
//! stored order already shows all of it, so that re-reading the order from Stripe would learn
//! nothing.
//!
//! An order's state is never taken from a payload: it is derived from a fresh read of Stripe
//! ([`crate::orders::Order::with_read`]). But Stripe sends several events for one change (a paid
//! checkout brings `checkout.session.completed`, `payment_intent.succeeded`, `charge.succeeded`,
//! `invoice.finalized` and `invoice.paid`), and redelivers each, so most re-reads found nothing
//! new. [`Evidence`] holds the fields of the event's object that the order stores; when every
//! one of them equals what is stored ([`Order::already_shows`]), the re-read is skipped.
//!
//! Why that is safe, whatever the order of arrival: every change to a stored field comes with an
//! event whose object carries the field's new value. While that event is not yet handled, it is
//! still to come, and it differs from what is stored, so it causes a re-read. A stale event (an
//! `updated` older than what was read) differs too, and only costs the read it always cost. The
//! conversation decides (`flows::selling`), against the stored order the server hands it with the
//! event, or against the order a read just stored for the events that joined that read; and only
//! when no other re-read of the order is running, since a read started earlier may store an
//! older state.
//!
//! Anything the comparison does not know (a failed payment, a refund's first sight, a status it
//! has no rule for) is not evidence of "nothing new": the order is read.

use serde::{Deserialize, Serialize};

use crate::orders::{Order, OrderStatus};

/// The order's fields that one event object states, by the object's type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Evidence {
    /// A Checkout Session (`checkout.session.*`).
    CheckoutSession {
        id: String,
        /// open, complete or expired.
        status: String,
        /// paid, unpaid or no_payment_required.
        payment_status: String,
        #[serde(default)]
        amount_total: Option<i64>,
        #[serde(default)]
        customer_email: Option<String>,
        #[serde(default)]
        subscription: Option<String>,
    },
    /// A PaymentIntent (`payment_intent.*`).
    PaymentIntent { id: String, status: String },
    /// A charge (`charge.*`).
    Charge {
        id: String,
        status: String,
        amount_captured: i64,
        amount_refunded: i64,
        #[serde(default)]
        receipt_url: Option<String>,
        #[serde(default)]
        receipt_email: Option<String>,
        /// Whether the charge names its balance transaction yet.
        balance_transaction: bool,
    },
    /// A refund (`refund.*`, `charge.refund.*`).
    Refund {
        id: String,
        status: String,
        amount: i64,
    },
    /// An invoice (`invoice.*`, for an order's invoice).
    Invoice { id: String, status: String },
    /// A dispute of the order's charge (`charge.dispute.*`): its status and the fees its
    /// balance transactions withdrew so far.
    Dispute {
        id: String,
        status: String,
        fee: i64,
    },
    /// An early fraud warning on the order's charge (`radar.early_fraud_warning.*`).
    FraudWarning { id: String, actionable: bool },
}

impl Order {
    /// Whether this stored order already shows everything `e` says (then a re-read of Stripe
    /// would find nothing new). False whenever in doubt.
    pub fn already_shows(&self, e: &Evidence) -> bool {
        let paid = self.status.was_paid();
        match e {
            Evidence::CheckoutSession {
                id,
                status,
                payment_status,
                amount_total,
                customer_email,
                subscription,
            } => {
                let state = match (status.as_str(), payment_status.as_str()) {
                    ("complete", "paid" | "no_payment_required") => paid,
                    ("expired", _) => self.status == OrderStatus::Expired,
                    _ => false,
                };
                state
                    && *id == self.checkout_session
                    && amount_total.is_none_or(|a| a == self.amount_total)
                    && (customer_email.is_none() || *customer_email == self.customer_email)
                    && (subscription.is_none() || *subscription == self.subscription)
            }
            Evidence::PaymentIntent { id, status } => {
                status == "succeeded" && paid && self.payment_intent.as_ref() == Some(id)
            }
            Evidence::Charge {
                id,
                status,
                amount_captured,
                amount_refunded,
                receipt_url,
                receipt_email,
                balance_transaction,
            } => {
                status == "succeeded"
                    && paid
                    && self.charge.as_ref().is_some_and(|c| {
                        c.id == *id
                            && c.amount_captured == *amount_captured
                            && c.amount_refunded == *amount_refunded
                            && (receipt_url.is_none() || c.receipt_url == *receipt_url)
                            && c.receipt_email == *receipt_email
                            && c.available_on.is_some() == *balance_transaction
                    })
            }
            Evidence::Refund { id, status, amount } => self
                .refunds
                .iter()
                .any(|r| r.id == *id && r.status == *status && r.amount == *amount),
            Evidence::Invoice { id, status } => self
                .invoice
                .as_ref()
                .is_some_and(|i| i.id == *id && i.status == *status),
            Evidence::Dispute { id, status, fee } => self
                .dispute
                .as_ref()
                .is_some_and(|d| d.id == *id && d.status == *status && d.fee == *fee),
            Evidence::FraudWarning { id, actionable } => self
                .fraud_warning
                .as_ref()
                .is_some_and(|w| w.id == *id && w.actionable == *actionable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;
    use crate::orders::{ChargeInfo, InvoiceInfo, RefundInfo};

    /// A paid order of 4,900 with its charge, one pending refund of 500 and a paid invoice.
    fn stored() -> Order {
        let mut o = Order::new_for_tests("ord_1", 1001, Currency::parse("usd").unwrap(), 4900);
        o.status = OrderStatus::PartiallyRefunded;
        o.customer_email = Some("ana@example.com".into());
        o.payment_intent = Some("pi_1".into());
        o.charge = Some(ChargeInfo {
            id: "ch_1".into(),
            receipt_url: Some("https://pay.example/receipts/ch_1".into()),
            receipt_email: Some("ana@example.com".into()),
            amount_captured: 4900,
            amount_refunded: 500,
            created: 1,
            available_on: Some(8),
            net: Some(4700),
        });
        o.refunds = vec![RefundInfo {
            id: "re_1".into(),
            amount: 500,
            status: "pending".into(),
            failure_reason: None,
            created: 2,
            request: None,
        }];
        o.invoice = Some(InvoiceInfo {
            id: "in_1".into(),
            number: Some("A-0001".into()),
            status: "paid".into(),
            hosted_invoice_url: None,
            invoice_pdf: None,
        });
        o
    }

    fn session(status: &str, payment_status: &str) -> Evidence {
        Evidence::CheckoutSession {
            id: "cs_ord_1".into(),
            status: status.into(),
            payment_status: payment_status.into(),
            amount_total: Some(4900),
            customer_email: Some("ana@example.com".into()),
            subscription: None,
        }
    }

    fn charge(amount_refunded: i64) -> Evidence {
        Evidence::Charge {
            id: "ch_1".into(),
            status: "succeeded".into(),
            amount_captured: 4900,
            amount_refunded,
            receipt_url: Some("https://pay.example/receipts/ch_1".into()),
            receipt_email: Some("ana@example.com".into()),
            balance_transaction: true,
        }
    }

    fn refund(status: &str, amount: i64) -> Evidence {
        Evidence::Refund {
            id: "re_1".into(),
            status: status.into(),
            amount,
        }
    }

    #[test]
    fn only_evidence_equal_to_the_stored_order_is_nothing_new() {
        let other = |f: &dyn Fn(&mut Evidence)| {
            let mut e = charge(500);
            f(&mut e);
            e
        };
        let cases: Vec<(&str, Evidence, bool)> = vec![
            ("the paid session again", session("complete", "paid"), true),
            ("a session still open", session("open", "unpaid"), false),
            ("an expired session", session("expired", "unpaid"), false),
            (
                "another session",
                Evidence::CheckoutSession {
                    id: "cs_other".into(),
                    status: "complete".into(),
                    payment_status: "paid".into(),
                    amount_total: None,
                    customer_email: None,
                    subscription: None,
                },
                false,
            ),
            (
                "a session naming a subscription the order lacks",
                Evidence::CheckoutSession {
                    id: "cs_ord_1".into(),
                    status: "complete".into(),
                    payment_status: "paid".into(),
                    amount_total: Some(4900),
                    customer_email: None,
                    subscription: Some("sub_1".into()),
                },
                false,
            ),
            (
                "the PaymentIntent succeeded",
                Evidence::PaymentIntent {
                    id: "pi_1".into(),
                    status: "succeeded".into(),
                },
                true,
            ),
            (
                "a PaymentIntent that failed (a decline to tell)",
                Evidence::PaymentIntent {
                    id: "pi_1".into(),
                    status: "requires_payment_method".into(),
                },
                false,
            ),
            ("the charge as stored", charge(500), true),
            ("the charge refunded further", charge(4900), false),
            (
                "the charge refunded less (a refund failed)",
                charge(0),
                false,
            ),
            (
                "the charge without its balance transaction",
                other(&|e| {
                    if let Evidence::Charge {
                        balance_transaction,
                        ..
                    } = e
                    {
                        *balance_transaction = false;
                    }
                }),
                false,
            ),
            (
                "the receipt sent to another address",
                other(&|e| {
                    if let Evidence::Charge { receipt_email, .. } = e {
                        *receipt_email = Some("bo@example.com".into());
                    }
                }),
                false,
            ),
            (
                "a failed charge",
                other(&|e| {
                    if let Evidence::Charge { status, .. } = e {
                        *status = "failed".into();
                    }
                }),
                false,
            ),
            ("the refund as stored", refund("pending", 500), true),
            ("the refund succeeded", refund("succeeded", 500), false),
            ("the refund failed", refund("failed", 500), false),
            (
                "a refund not seen yet",
                Evidence::Refund {
                    id: "re_2".into(),
                    status: "pending".into(),
                    amount: 100,
                },
                false,
            ),
            (
                "the invoice as stored",
                Evidence::Invoice {
                    id: "in_1".into(),
                    status: "paid".into(),
                },
                true,
            ),
            (
                "the invoice in another status",
                Evidence::Invoice {
                    id: "in_1".into(),
                    status: "void".into(),
                },
                false,
            ),
        ];
        let order = stored();
        for (what, evidence, nothing_new) in cases {
            assert_eq!(order.already_shows(&evidence), nothing_new, "{what}");
        }
    }

    #[test]
    fn an_order_not_yet_paid_learns_from_every_payment_event() {
        let mut open = stored();
        open.status = OrderStatus::Open;
        open.charge = None;
        open.refunds.clear();
        open.invoice = None;
        for e in [
            session("complete", "paid"),
            Evidence::PaymentIntent {
                id: "pi_1".into(),
                status: "succeeded".into(),
            },
            charge(0),
        ] {
            assert!(!open.already_shows(&e), "{e:?}");
        }
        let mut expired = open.clone();
        expired.status = OrderStatus::Expired;
        assert!(expired.already_shows(&session("expired", "unpaid")));
        assert!(!expired.already_shows(&session("complete", "paid")));
    }
}
