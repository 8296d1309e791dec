//! Disputes in the chat: one card when an order's charge is disputed (amount, reason in plain
//! words, evidence due date, fee withdrawn) with two confirmed actions, accept or submit
//! evidence pre-filled from what chatpay stores; a card when it is won or lost; a card when the
//! issuer sends an early fraud warning, suggesting a refund; and "are any payments disputed
//! right now?".
//!
//! The news comes from the order's re-read (`orders::changes`), so it is told once whatever the
//! order and repetition of Stripe's events. A response is `Call::RespondToDispute`, made with an
//! idempotency key derived from the dispute and the response, after
//! [`rules::dispute_response`] said it may be made, against the stored order read afresh when
//! the button is clicked. The response's outcome comes back as the dispute's own events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::selling::{ListAsk, OrderAsk, OrderRef, Period};
use super::{Call, CallError, CallOutput, Owner, Pending, Purpose, Refusal, Turn};
use crate::cards::{Action, Card, CardKind, Fact, Field, Style};
use crate::disputes::{
    DisputeInfo, DisputeOutcome, EVIDENCE_FIELDS, EvidenceFacts, FraudWarningInfo, prefill,
};
use crate::orders::Order;
use crate::rules::{self, DisputeResponse};

/// How far back "disputed right now" looks: a customer may dispute up to 120 days after paying,
/// and a dispute is decided within about 75 days of its evidence.
const DISPUTE_WINDOW_MS: i64 = 200 * 86_400_000;

fn day(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|d| d.format("%b %-d, %Y").to_string())
        .unwrap_or_default()
}

fn email_of(order: &Order) -> String {
    order
        .customer_email
        .clone()
        .unwrap_or_else(|| "the customer".to_owned())
}

impl Turn<'_, '_> {
    /// "are any payments disputed right now?"
    pub(super) fn disputes_intent(&mut self) {
        let now = self.facts.now_ms;
        self.call(
            Call::ListOrders {
                period: Period {
                    label: "in the last 200 days".to_owned(),
                    since: Some(now - DISPUTE_WINDOW_MS),
                    until: None,
                },
                ask: ListAsk::Disputes,
            },
            Purpose::Answer,
        );
    }

    /// The answer to "are any payments disputed?" from the stored orders.
    pub(super) fn answer_disputes(&mut self, orders: &[Order]) {
        let disputed: Vec<&Order> = orders.iter().filter(|o| o.dispute.is_some()).collect();
        let open: Vec<&Order> = disputed
            .iter()
            .copied()
            .filter(|o| {
                o.dispute
                    .as_ref()
                    .is_some_and(|d| d.outcome() == DisputeOutcome::Disputed)
            })
            .collect();
        let warned: Vec<&Order> = orders
            .iter()
            .filter(|o| {
                o.dispute.is_none() && o.fraud_warning.as_ref().is_some_and(|w| w.actionable)
            })
            .collect();
        let mut text = match open.len() {
            0 => "No payments are disputed right now.".to_owned(),
            1 => "One payment is disputed right now.".to_owned(),
            n => format!("{n} payments are disputed right now."),
        };
        let closed = disputed.len() - open.len();
        if closed > 0 {
            text.push_str(&format!(
                " {closed} dispute{} decided in the last 200 days.",
                if closed == 1 { " was" } else { "s were" }
            ));
        }
        if !warned.is_empty() {
            text.push_str(&format!(
                " {} with an early fraud warning and no dispute yet (a refund now avoids one).",
                if warned.len() == 1 {
                    "One order has".to_owned()
                } else {
                    format!("{} orders have", warned.len())
                }
            ));
        }
        self.reply(text);
        if disputed.is_empty() && warned.is_empty() {
            return;
        }
        let mut card = self.new_card(CardKind::Info, "Disputes", "Newest first.".to_owned());
        for o in disputed.iter().chain(warned.iter()) {
            let value = match &o.dispute {
                Some(d) => format!(
                    "{} · {} · {}{}",
                    o.money(d.amount),
                    email_of(o),
                    d.reason.replace('_', " "),
                    match (d.outcome(), d.due_by) {
                        (DisputeOutcome::Disputed, Some(due)) if d.awaits_response() =>
                            format!(" · evidence due {} (UTC)", day(due)),
                        (DisputeOutcome::Disputed, _) => " · under review".to_owned(),
                        (outcome, _) => format!(" · {}", outcome.as_str()),
                    }
                ),
                None => format!("{} · {} · early fraud warning", o.total(), email_of(o)),
            };
            card.facts.push(Fact::new(&format!("#{}", o.number), value));
        }
        self.show_info(card);
    }

    /// Cards for an order's dispute news (from `orders::changes`).
    pub(super) fn dispute_opened(&mut self, order: &Order, d: &DisputeInfo) -> Card {
        let n = order.number;
        let amount = order.money(d.amount);
        let mut body = if d.inquiry() {
            format!(
                "{}'s bank is asking about the payment of order #{n} ({}): {}. No money has moved yet; if it isn't answered, it may become a chargeback.",
                email_of(order),
                order.summary(),
                d.reason_in_plain_words()
            )
        } else {
            format!(
                "{} disputed the payment of order #{n} ({}): {}. Stripe took {amount} and a {} dispute fee from your balance.",
                email_of(order),
                order.summary(),
                d.reason_in_plain_words(),
                order.money(d.fee)
            )
        };
        if let Some(due) = d.due_by {
            body.push_str(&format!(
                " Respond by {} (UTC): submit evidence, or accept the dispute.",
                day(due)
            ));
        }
        let mut card = self.new_card(CardKind::Dispute, &format!("Dispute of order #{n}"), body);
        card.facts = dispute_facts(order, d);
        if d.awaits_response() {
            card.actions = vec![
                Action::new("evidence", "Submit evidence", Style::Primary),
                Action::new("accept", "Accept the dispute", Style::Secondary),
            ];
        }
        card
    }

    pub(super) fn dispute_closed(&mut self, order: &Order, d: &DisputeInfo) -> Card {
        let n = order.number;
        let body = match (d.outcome(), d.inquiry()) {
            (DisputeOutcome::Won, true) => format!(
                "The bank's inquiry about order #{n} is closed in your favour; nothing was taken."
            ),
            (DisputeOutcome::Won, false) => format!(
                "You won the dispute of order #{n}: {} is back in your balance (the {} dispute fee isn't returned).",
                order.money(d.amount),
                order.money(d.fee)
            ),
            _ => {
                let mut body = format!(
                    "The dispute of order #{n} was lost: {} stays with {}.",
                    order.money(d.amount),
                    email_of(order)
                );
                if order.subscription.is_none() {
                    let names: Vec<&str> = order.lines.iter().map(|l| l.name.as_str()).collect();
                    body.push_str(&format!(
                        " {} no longer has access to {}.",
                        email_of(order),
                        names.join(", ")
                    ));
                }
                body
            }
        };
        let title = format!("Dispute of order #{n} {}", d.outcome().as_str());
        let mut card = self.new_card(CardKind::Dispute, &title, body);
        card.facts = dispute_facts(order, d);
        card
    }

    pub(super) fn fraud_warning(&mut self, order: &Order, w: &FraudWarningInfo) -> Card {
        let n = order.number;
        let mut card = self.new_card(
            CardKind::Dispute,
            &format!("Early fraud warning on order #{n}"),
            format!(
                "The card issuer reported the payment of order #{n} ({}, {}) as possibly fraudulent ({}). {}",
                order.total(),
                email_of(order),
                w.fraud_type.replace('_', " "),
                if w.actionable && order.refundable() > 0 {
                    "A dispute often follows, with a fee; refunding now avoids it."
                } else {
                    "Nothing needs doing now."
                }
            ),
        );
        card.facts = vec![
            Fact::new("Order", format!("#{n}")),
            Fact::new("Total", order.total().to_string()),
        ];
        if w.actionable && order.refundable() > 0 {
            card.actions
                .push(Action::new("refund", "Refund", Style::Danger));
        }
        card
    }

    /// A click on a dispute card, its confirmation, or its evidence form.
    pub(super) fn dispute_click(
        &mut self,
        owner: &Owner,
        action: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        match (owner, action) {
            (Owner::Dispute { number }, "accept") => {
                self.ask_dispute(*number, OrderAsk::AcceptDispute)
            }
            (Owner::Dispute { number }, "evidence") => {
                self.ask_dispute(*number, OrderAsk::DisputeEvidence)
            }
            (Owner::Dispute { number }, "refund") => self.ask_dispute(
                *number,
                OrderAsk::Refund {
                    amount: None,
                    currency: None,
                    share_bps: None,
                },
            ),
            (
                Owner::ConfirmDispute {
                    order,
                    number,
                    dispute,
                },
                "accept",
            ) => {
                self.call(
                    Call::RespondToDispute {
                        order: order.clone(),
                        number: *number,
                        dispute: dispute.clone(),
                        evidence: BTreeMap::new(),
                    },
                    Purpose::Answer,
                );
            }
            (
                Owner::DisputeEvidence {
                    order,
                    number,
                    dispute,
                },
                "submit",
            ) => {
                let evidence = evidence_values(values)?;
                self.call(
                    Call::RespondToDispute {
                        order: order.clone(),
                        number: *number,
                        dispute: dispute.clone(),
                        evidence,
                    },
                    Purpose::Answer,
                );
            }
            (Owner::ConfirmDispute { number, .. } | Owner::DisputeEvidence { number, .. }, _) => {
                self.reply(format!(
                    "OK, nothing was sent about the dispute of order #{number}."
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn ask_dispute(&mut self, number: i64, ask: OrderAsk) {
        self.call(
            Call::FindOrder {
                order: OrderRef::Number(number),
                ask,
            },
            Purpose::Answer,
        );
    }

    /// The confirmation of an acceptance, or the evidence form, for the stored order.
    pub(super) fn answer_dispute(&mut self, order: &Order, response: DisputeResponse) {
        let n = order.number;
        let dispute = match rules::dispute_response(order, response) {
            Ok(id) => id,
            Err(refused) => return self.reply(refused.message),
        };
        let Some(d) = order.dispute.clone() else {
            return;
        };
        let owner_of = |c: &super::LiveCard| match &c.owner {
            Owner::ConfirmDispute { number, .. } | Owner::DisputeEvidence { number, .. } => {
                *number != n
            }
            _ => true,
        };
        self.drop_cards(owner_of);
        match response {
            DisputeResponse::Accept => {
                let mut card = self.new_card(
                    CardKind::ConfirmDispute,
                    &format!("Accept the dispute of order #{n}?"),
                    format!(
                        "{} stays with {} and the {} fee isn't returned. Accepting can't be undone.",
                        order.money(d.amount),
                        email_of(order),
                        order.money(d.fee)
                    ),
                );
                card.facts = dispute_facts(order, &d);
                card.actions = vec![
                    Action::new("accept", "Accept the dispute", Style::Danger),
                    Action::secondary("keep", "Don't accept"),
                ];
                self.show(
                    card,
                    Owner::ConfirmDispute {
                        order: order.id.clone(),
                        number: n,
                        dispute,
                    },
                );
            }
            DisputeResponse::SubmitEvidence => {
                let access_since = order.paid_at.map(|ms| day(ms / 1000));
                let facts = EvidenceFacts {
                    customer_email: order.customer_email.clone(),
                    receipt_url: order.charge.as_ref().and_then(|c| c.receipt_url.clone()),
                    product_description: order
                        .lines
                        .iter()
                        .map(|l| {
                            format!(
                                "{} × {} ({} each)",
                                l.quantity,
                                l.name,
                                order.money(l.unit_amount)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    access_since,
                    access_active: order.refunded() == 0,
                };
                let filled = prefill(&facts);
                let mut card = self.new_card(
                    CardKind::DisputeEvidence,
                    &format!("Evidence for the dispute of order #{n}"),
                    format!(
                        "I filled this in from what chatpay knows about order #{n}. Edit it, then submit: the bank gets it once, and it can't be changed after. Due by {} (UTC).",
                        d.due_by.map_or_else(|| "soon".to_owned(), day)
                    ),
                );
                card.fields = EVIDENCE_FIELDS
                    .iter()
                    .map(|(name, label, _)| {
                        let mut f = Field::text(name, label)
                            .with_value(filled.get(*name).map(String::as_str));
                        f.required = *name == "product_description";
                        f
                    })
                    .collect();
                card.actions = vec![
                    Action::new("submit", "Submit evidence", Style::Primary),
                    Action::secondary("keep", "Not now"),
                ];
                self.show(
                    card,
                    Owner::DisputeEvidence {
                        order: order.id.clone(),
                        number: n,
                        dispute,
                    },
                );
            }
        }
    }

    /// Stripe's answer to an acceptance or an evidence submission.
    pub(super) fn dispute_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        let Call::RespondToDispute {
            number, evidence, ..
        } = pending.call
        else {
            return;
        };
        let accepting = evidence.is_empty();
        match result {
            Ok(CallOutput::Dispute(d)) if accepting => self.reply(format!(
                "Accepted the dispute of order #{number}: it is {} now.",
                d.outcome().as_str()
            )),
            Ok(_) if accepting => {
                self.reply(format!("Accepted the dispute of order #{number}."))
            }
            Ok(_) => self.reply(format!(
                "Submitted the evidence for the dispute of order #{number}. The bank decides now, usually within 60-75 days; I'll tell you the outcome here."
            )),
            Err(e) => self.reply(format!(
                "Stripe didn't take the response to the dispute of order #{number}: {}",
                e.message
            )),
        }
    }
}

/// The evidence form's values, checked against Stripe's limits; empty fields are left out.
fn evidence_values(values: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Refusal> {
    let mut out = BTreeMap::new();
    let mut wrong = BTreeMap::new();
    for (name, label, max) in EVIDENCE_FIELDS {
        let Some(v) = values.get(*name).map(|v| v.trim()) else {
            continue;
        };
        if v.chars().count() > *max {
            wrong.insert(
                (*name).to_owned(),
                format!("{label} is longer than Stripe's {max} characters."),
            );
        } else if !v.is_empty() {
            out.insert((*name).to_owned(), v.to_owned());
        }
    }
    if !out.contains_key("product_description") {
        wrong.insert(
            "product_description".to_owned(),
            "Say what was sold: the bank needs it.".to_owned(),
        );
    }
    if wrong.is_empty() {
        Ok(out)
    } else {
        Err(Refusal::InvalidValues(wrong))
    }
}

fn dispute_facts(order: &Order, d: &DisputeInfo) -> Vec<Fact> {
    let mut facts = vec![
        Fact::new("Order", format!("#{}", order.number)),
        Fact::new("Disputed", order.money(d.amount).to_string()),
        Fact::new("Reason", d.reason_in_plain_words()),
        Fact::new("Status", d.outcome().as_str()),
    ];
    if let Some(email) = &order.customer_email {
        facts.push(Fact::new("Customer", email.clone()));
    }
    if let (Some(due), true) = (d.due_by, d.awaits_response()) {
        facts.push(Fact::new("Evidence due", format!("{} (UTC)", day(due))));
    }
    if d.fee > 0 {
        facts.push(Fact::new("Fee withdrawn", order.money(d.fee).to_string()));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_values_are_checked_and_trimmed() {
        let mut v = BTreeMap::new();
        v.insert("product_description".to_owned(), " 1 × Course ".to_owned());
        v.insert("service_date".to_owned(), String::new());
        v.insert("not_a_field".to_owned(), "x".to_owned());
        let ok = evidence_values(&v).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok["product_description"], "1 × Course");
        v.insert("product_description".to_owned(), "  ".to_owned());
        assert!(matches!(
            evidence_values(&v),
            Err(Refusal::InvalidValues(f)) if f.contains_key("product_description")
        ));
        v.insert("product_description".to_owned(), "x".repeat(20_001));
        assert!(evidence_values(&v).is_err());
    }
}
