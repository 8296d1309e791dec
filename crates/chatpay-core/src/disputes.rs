//! Disputes (chargebacks and inquiries) of an order's charge, as Stripe holds them.
//!
//! A dispute is part of an order's fresh read (`orders::StripeOrderRead::dispute`): Stripe's
//! `charge.dispute.*` events name the order (by its PaymentIntent) and the order is read again,
//! so a dispute is followed with the same deduplication and the same order-safety as payments
//! and refunds, and a change is told once, on the transition the store commits
//! (`orders::changes`). What may be done about one is decided in `crate::rules`
//! ([`crate::rules::dispute_response`]).
//!
//! The evidence chatpay pre-fills ([`prefill`]) comes only from what it stores: the receipt, the
//! customer's email, what was bought at what price, and when access was granted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A dispute of the order's charge (Stripe's Dispute object, the fields chatpay uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeInfo {
    /// `dp_…`.
    pub id: String,
    /// The disputed amount, in the order's currency's minor unit.
    pub amount: i64,
    /// Stripe's reason code: `fraudulent`, `product_not_received`, `duplicate`, …
    pub reason: String,
    /// Stripe's status: `warning_needs_response`, `warning_under_review`, `warning_closed`,
    /// `needs_response`, `under_review`, `won`, `lost`.
    pub status: String,
    /// When evidence is due (Unix seconds), while a response is awaited.
    #[serde(default)]
    pub due_by: Option<i64>,
    /// Dispute fees withdrawn from the balance (minor units, positive), net of any returned.
    #[serde(default)]
    pub fee: i64,
    /// Evidence submissions so far.
    #[serde(default)]
    pub submission_count: i64,
    /// Unix seconds.
    pub created: i64,
}

/// Where a dispute stands, in chatpay's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    /// Open: waiting for the seller's response or the bank's decision.
    Disputed,
    Won,
    Lost,
}

impl DisputeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeOutcome::Disputed => "disputed",
            DisputeOutcome::Won => "won",
            DisputeOutcome::Lost => "lost",
        }
    }
}

impl DisputeInfo {
    /// An inquiry (a "retrieval"): no money moved yet.
    pub fn inquiry(&self) -> bool {
        self.status.starts_with("warning_")
    }

    pub fn outcome(&self) -> DisputeOutcome {
        match self.status.as_str() {
            "won" | "warning_closed" => DisputeOutcome::Won,
            "lost" => DisputeOutcome::Lost,
            _ => DisputeOutcome::Disputed,
        }
    }

    /// Whether Stripe waits for the seller's response (evidence or acceptance).
    pub fn awaits_response(&self) -> bool {
        matches!(
            self.status.as_str(),
            "needs_response" | "warning_needs_response"
        )
    }

    /// Stripe's reason in plain words.
    pub fn reason_in_plain_words(&self) -> &'static str {
        match self.reason.as_str() {
            "fraudulent" => "the cardholder says they didn't make this payment",
            "product_not_received" => "the customer says they didn't receive what they paid for",
            "product_unacceptable" => {
                "the customer says what they received was defective or not as described"
            }
            "duplicate" => "the customer says they were charged twice for the same thing",
            "subscription_canceled" => {
                "the customer says they cancelled the subscription before this charge"
            }
            "credit_not_processed" => "the customer says a promised refund or credit never came",
            "unrecognized" => "the customer doesn't recognise the charge",
            "bank_cannot_process"
            | "debit_not_authorized"
            | "incorrect_account_details"
            | "insufficient_funds" => "the bank reported a problem with the payment",
            "customer_initiated" => "the customer asked their bank to reverse the payment",
            _ => "the bank gave a general reason",
        }
    }
}

/// A Radar early fraud warning on the order's charge: the issuer reported the payment as
/// possibly fraudulent; a dispute may follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudWarningInfo {
    /// `issfr_…`.
    pub id: String,
    pub fraud_type: String,
    /// Whether a refund would still prevent a dispute (Stripe's `actionable`).
    pub actionable: bool,
    /// Unix seconds.
    pub created: i64,
}

/// The facts chatpay has for a dispute's evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidenceFacts {
    pub customer_email: Option<String>,
    pub receipt_url: Option<String>,
    /// "2 × Course ($49.00 each)".
    pub product_description: String,
    /// When access was granted (the payment), as a date people read (UTC).
    pub access_since: Option<String>,
    /// Access still held (not refunded, not ended).
    pub access_active: bool,
}

/// The evidence fields chatpay fills in from what it knows, for the seller to edit: Stripe's
/// text evidence field names as keys.
pub fn prefill(f: &EvidenceFacts) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(email) = &f.customer_email {
        out.insert("customer_email_address".to_owned(), email.clone());
    }
    out.insert(
        "product_description".to_owned(),
        f.product_description.clone(),
    );
    let mut text = Vec::new();
    if let Some(url) = &f.receipt_url {
        text.push(format!("Receipt: {url}."));
    }
    if let Some(since) = &f.access_since {
        text.push(format!(
            "The customer was given access on {since} (UTC){}.",
            if f.access_active {
                " and still has it"
            } else {
                ""
            }
        ));
        out.insert("service_date".to_owned(), since.clone());
    }
    out.insert("uncategorized_text".to_owned(), text.join(" "));
    out
}

/// The evidence fields a seller may send (Stripe's text fields chatpay offers), with their
/// labels and Stripe's length limit for each.
pub const EVIDENCE_FIELDS: &[(&str, &str, usize)] = &[
    ("customer_email_address", "Customer email", 5000),
    ("product_description", "What was sold", 20_000),
    ("service_date", "Access granted on", 5000),
    (
        "uncategorized_text",
        "Anything else (receipt, usage)",
        20_000,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn dispute(status: &str) -> DisputeInfo {
        DisputeInfo {
            id: "dp_1".into(),
            amount: 4900,
            reason: "fraudulent".into(),
            status: status.into(),
            due_by: Some(1),
            fee: 1500,
            submission_count: 0,
            created: 1,
        }
    }

    #[test]
    fn outcomes_follow_stripe_statuses() {
        let cases = [
            ("needs_response", DisputeOutcome::Disputed, true, false),
            ("under_review", DisputeOutcome::Disputed, false, false),
            (
                "warning_needs_response",
                DisputeOutcome::Disputed,
                true,
                true,
            ),
            (
                "warning_under_review",
                DisputeOutcome::Disputed,
                false,
                true,
            ),
            ("warning_closed", DisputeOutcome::Won, false, true),
            ("won", DisputeOutcome::Won, false, false),
            ("lost", DisputeOutcome::Lost, false, false),
        ];
        for (status, outcome, awaits, inquiry) in cases {
            let d = dispute(status);
            assert_eq!(d.outcome(), outcome, "{status}");
            assert_eq!(d.awaits_response(), awaits, "{status}");
            assert_eq!(d.inquiry(), inquiry, "{status}");
        }
    }

    #[test]
    fn evidence_is_prefilled_from_what_chatpay_knows() {
        let f = EvidenceFacts {
            customer_email: Some("ben@example.com".into()),
            receipt_url: Some("https://r/1".into()),
            product_description: "1 × Course ($49.00 each)".into(),
            access_since: Some("2026-12-01".into()),
            access_active: true,
        };
        let e = prefill(&f);
        assert_eq!(e["customer_email_address"], "ben@example.com");
        assert_eq!(e["service_date"], "2026-12-01");
        assert!(e["uncategorized_text"].contains("https://r/1"));
        assert!(e["uncategorized_text"].contains("still has it"));
        for k in e.keys() {
            assert!(EVIDENCE_FIELDS.iter().any(|(n, _, _)| n == k), "{k}");
        }
    }
}
