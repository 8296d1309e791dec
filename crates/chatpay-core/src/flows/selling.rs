//! Selling in the chat: orders pushed as they are paid, fail or are refunded; questions about
//! orders, payments and revenue answered from the stored orders; refunds through a
//! confirmation card.
//!
//! Everything here reads through calls, never through state the chat prepared: a question
//! becomes `Call::FindOrder` / `Call::ListOrders` (the server reads its store), a Stripe event
//! becomes `Call::RefreshOrder` (the server re-reads the order's objects from Stripe and hands
//! back the order before and after), a confirmed refund `Call::CreateRefund` (with a key derived
//! from this conversation's operation number, so a retry or a crash never refunds twice). The
//! answer to a question carries the question's `reply_to`.
//!
//! Order-safety: an order's state is derived from a fresh read of Stripe, and its change is
//! stored with the version it was computed from, in the same transaction as the news it makes
//! and the webhook events it applies. Two re-reads of one order that race both compute from the
//! same version; the second's write is refused and it runs again on the newer version, so news
//! ("New order #1042") is told exactly once.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{Call, CallError, CallOutput, Effect, Owner, Pending, Purpose, Turn};
use crate::billing::order_access;
use crate::cards::{Action, Card, CardKind, Fact, Style};
use crate::domain::{Currency, Money};
use crate::evidence::Evidence;
use crate::intents::{Intent, SlotValue, Slots};
use crate::orders::{Order, OrderNews, OrderStatus, RefundInfo, changes};
use crate::rules::{self, RefundSize};

/// Which order an event or a question is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum OrderRef {
    /// chatpay's id.
    Order(String),
    /// Its Checkout Session (`cs_…`).
    Session(String),
    /// Its PaymentIntent (`pi_…`); unknown ones are resolved through the intent's metadata.
    PaymentIntent(String),
    /// Its number in this project (#1042).
    Number(i64),
    /// The project's newest order ("the last order").
    Latest,
}

impl OrderRef {
    /// Whether `self` and `other` certainly name different orders (the same kind of reference
    /// with different values). A payment and an order id may name the same order.
    fn surely_differs(&self, other: &OrderRef) -> bool {
        match (self, other) {
            (OrderRef::Order(a), OrderRef::Order(b))
            | (OrderRef::Session(a), OrderRef::Session(b))
            | (OrderRef::PaymentIntent(a), OrderRef::PaymentIntent(b)) => a != b,
            (OrderRef::Number(a), OrderRef::Number(b)) => a != b,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            OrderRef::Number(n) => format!("order {n}"),
            OrderRef::PaymentIntent(pi) => format!("payment {pi}"),
            OrderRef::Session(cs) => format!("checkout {cs}"),
            OrderRef::Order(id) => format!("order {id}"),
            OrderRef::Latest => "your latest order".to_owned(),
        }
    }
}

/// "50", "12.5" (a percentage, from "50%") or a fraction word as basis points of the payment;
/// `None` for a share that is not one (0, over 100%).
fn share_in_bps(text: &str) -> Option<u32> {
    let bps = match text.to_ascii_lowercase().as_str() {
        "half" => 5_000,
        "a third" | "one third" => 3_333,
        "two thirds" => 6_666,
        "a quarter" | "one quarter" => 2_500,
        "three quarters" => 7_500,
        number => {
            let percent: f64 = number.parse().ok()?;
            (percent * 100.0).round() as u32
        }
    };
    (1..=10_000).contains(&bps).then_some(bps)
}

/// What a question about one order wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub enum OrderAsk {
    Status,
    /// Refund this much (minor units of `currency`), or this share of what was paid (in
    /// basis points: "half" is 5,000), or everything left.
    Refund {
        amount: Option<i64>,
        currency: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share_bps: Option<u32>,
    },
    Receipt,
    Invoice,
    ResendReceipt,
    /// Confirm accepting the order's dispute (a dispute card's `accept`).
    AcceptDispute,
    /// The order's dispute evidence form, pre-filled (a dispute card's `evidence`).
    DisputeEvidence,
}

/// What a question about many orders wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListAsk {
    Recent,
    Count,
    Revenue,
    /// Orders with a dispute or an early fraud warning.
    Disputes,
}

/// A span of time a question names, in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// "today (Dec 1, 2026, UTC)".
    pub label: String,
    /// Milliseconds, inclusive.
    pub since: Option<i64>,
    /// Milliseconds, exclusive.
    pub until: Option<i64>,
}

/// Recent orders shown on a card.
const RECENT: usize = 10;
/// How often a failed re-read of an order is tried again before its events are let go.
const REFRESH_ATTEMPTS: u32 = 5;

fn ms(d: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .timestamp_millis()
}

fn day(d: NaiveDate) -> String {
    d.format("%b %-d, %Y").to_string()
}

/// The period a phrase names ("today", "this week", "last month", …), relative to `now_ms`.
pub fn period(phrase: Option<&str>, now_ms: i64) -> Period {
    let today = DateTime::<Utc>::from_timestamp_millis(now_ms)
        .map(|d| d.date_naive())
        .unwrap_or_default();
    let span = |label: &str, from: NaiveDate, to: NaiveDate| Period {
        label: format!(
            "{label} ({} – {}, UTC)",
            day(from),
            day(to - Duration::days(1))
        ),
        since: Some(ms(from)),
        until: Some(ms(to)),
    };
    let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let month_start = today.with_day(1).unwrap_or(today);
    let next_month = if month_start.month() == 12 {
        NaiveDate::from_ymd_opt(month_start.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(month_start.year(), month_start.month() + 1, 1)
    }
    .unwrap_or(today);
    let phrase = phrase.map(|p| p.trim().to_ascii_lowercase());
    match phrase.as_deref() {
        Some("today") => Period {
            label: format!("today ({}, UTC)", day(today)),
            since: Some(ms(today)),
            until: Some(ms(today + Duration::days(1))),
        },
        Some("yesterday") => {
            let y = today - Duration::days(1);
            Period {
                label: format!("yesterday ({}, UTC)", day(y)),
                since: Some(ms(y)),
                until: Some(ms(today)),
            }
        }
        Some("this week") => span("this week", week_start, week_start + Duration::days(7)),
        Some("last week") => span("last week", week_start - Duration::days(7), week_start),
        Some("this month") => span("this month", month_start, next_month),
        Some("last month") => {
            let prev = (month_start - Duration::days(1))
                .with_day(1)
                .unwrap_or(month_start);
            span("last month", prev, month_start)
        }
        Some("this year") => {
            let start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
            let end = NaiveDate::from_ymd_opt(today.year() + 1, 1, 1).unwrap_or(today);
            span("this year", start, end)
        }
        Some("all time") | Some("ever") | Some("so far") | Some("to date") => Period {
            label: "so far".to_owned(),
            since: None,
            until: None,
        },
        Some("last year") => {
            let start = NaiveDate::from_ymd_opt(today.year() - 1, 1, 1).unwrap_or(today);
            let end = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
            span("last year", start, end)
        }
        Some("year to date") | Some("ytd") => {
            let start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
            span("this year so far", start, today + Duration::days(1))
        }
        Some(p) => other_period(p, today).map_or_else(
            || {
                span(
                    "in the last 30 days",
                    today - Duration::days(29),
                    today + Duration::days(1),
                )
            },
            |(label, from, to)| span(&label, from, to),
        ),
        None => span(
            "in the last 30 days",
            today - Duration::days(29),
            today + Duration::days(1),
        ),
    }
}

/// The first day of `year`'s `month` (1-12; months past 12 roll into the next years).
fn month_start_of(year: i32, month: u32) -> Option<NaiveDate> {
    let months = year * 12 + i32::try_from(month).ok()? - 1;
    NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Quarters, named months, "q3 2026" and "the last 3 days/weeks/months": a label and the days
/// `[from, to)`; `None` for a phrase that names none of them.
fn other_period(p: &str, today: NaiveDate) -> Option<(String, NaiveDate, NaiveDate)> {
    let quarter_of = |year: i32, q: u32| {
        let from = month_start_of(year, (q - 1) * 3 + 1)?;
        Some((from, month_start_of(year, q * 3 + 1)?))
    };
    let this_q = (today.month() - 1) / 3 + 1;
    if p == "this quarter" {
        let (from, to) = quarter_of(today.year(), this_q)?;
        return Some(("this quarter".to_owned(), from, to));
    }
    if p == "last quarter" {
        let (y, q) = if this_q == 1 {
            (today.year() - 1, 4)
        } else {
            (today.year(), this_q - 1)
        };
        let (from, to) = quarter_of(y, q)?;
        return Some(("last quarter".to_owned(), from, to));
    }
    if let Some(rest) = p.strip_prefix('q') {
        let mut parts = rest.split_whitespace();
        let q: u32 = parts.next()?.parse().ok().filter(|q| (1..=4).contains(q))?;
        let year = match parts.next() {
            Some(y) => y.parse().ok()?,
            // The latest such quarter that has begun.
            None if q <= this_q => today.year(),
            None => today.year() - 1,
        };
        let (from, to) = quarter_of(year, q)?;
        return Some((format!("Q{q} {year}"), from, to));
    }
    if let Some(m) = MONTHS.iter().position(|m| *m == p) {
        let m = u32::try_from(m).ok()? + 1;
        // The latest such month that has begun.
        let year = if m <= today.month() {
            today.year()
        } else {
            today.year() - 1
        };
        let from = month_start_of(year, m)?;
        let name = from.format("%B %Y").to_string();
        return Some((name, from, month_start_of(year, m + 1)?));
    }
    let words: Vec<&str> = p.split_whitespace().collect();
    let (n, unit) = match words.as_slice() {
        ["last" | "past" | "previous", n, unit] => (n.parse::<i64>().ok()?, *unit),
        ["last" | "past" | "this past", unit] => (1, *unit),
        _ => return None,
    };
    let end = today + Duration::days(1);
    let months = |m: i64| today.checked_sub_months(Months::new(u32::try_from(m).ok()?));
    let from = match unit.trim_end_matches('s') {
        "hour" => end - Duration::days(((n + 23) / 24).max(1)),
        "day" => end - Duration::days(n),
        "week" => end - Duration::days(7 * n),
        "month" => months(n)? + Duration::days(1),
        "quarter" => months(3 * n)? + Duration::days(1),
        "year" => months(12 * n)? + Duration::days(1),
        _ => return None,
    };
    if n == 1 {
        return Some((
            format!("in the past {}", unit.trim_end_matches('s')),
            from,
            end,
        ));
    }
    Some((format!("in the last {n} {unit}"), from, end))
}

/// The order a turn's slots name, if any: `pi_…` or an order number.
fn target(slots: &Slots) -> Option<OrderRef> {
    if let Some(pi) = slots.get("payment_id").and_then(SlotValue::as_text)
        && pi.starts_with("pi_")
    {
        return Some(OrderRef::PaymentIntent(pi.to_owned()));
    }
    let Some(raw) = slots.get("order_number").and_then(SlotValue::as_text) else {
        return slots
            .get("order_ref")
            .and_then(SlotValue::as_text)
            .map(|_| OrderRef::Latest);
    };
    let digits: String = raw
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok().map(OrderRef::Number)
}

fn email_of(order: &Order) -> String {
    order
        .customer_email
        .clone()
        .unwrap_or_else(|| "the customer".to_owned())
}

impl Turn<'_, '_> {
    /// What the refunds of order `id` asked of Stripe and not answered yet will take.
    fn refunds_in_flight(&self, id: &str) -> i64 {
        self.state
            .pending
            .iter()
            .filter_map(|p| match &p.call {
                Call::CreateRefund { order, amount, .. } if order == id => Some(*amount),
                _ => None,
            })
            .sum()
    }

    /// Whether the project can sell at all; says why not otherwise (`what` names what was asked).
    fn selling_ready(&mut self, doing: &str) -> bool {
        if !self.facts.backend {
            self.backend_required();
            return false;
        }
        if self.connection.is_none() {
            self.reply(format!(
                "I can {doing} once Stripe is connected to this project: orders come from checkouts on your Stripe account. Say \"add payments\" to connect it."
            ));
            return false;
        }
        true
    }

    /// "did order 1042 go through?", "refund $5 of order 1042", "receipt for order 12", …
    pub(super) fn selling_intent(&mut self, intent: Intent, topic: Option<&str>, slots: &Slots) {
        let target = target(slots);
        let what = target
            .as_ref()
            .map_or_else(|| "your orders".to_owned(), OrderRef::describe);
        if let Some(id) = slots.get("payment_id").and_then(SlotValue::as_text)
            && !id.starts_with("pi_")
            && target.is_none()
        {
            self.reply(format!(
                "I look payments up by order number or by PaymentIntent (pi_…); {id} is a charge id. Find its payment or order in the Stripe Dashboard, or ask about the order number."
            ));
            return;
        }
        match intent {
            Intent::PaymentStatus => match target {
                Some(order) => {
                    if self.selling_ready(&format!("look up {what}")) {
                        self.ask_order(order, OrderAsk::Status);
                    }
                }
                None => {
                    if self.selling_ready(&format!("look up {what}")) {
                        let ask = match topic {
                            Some("revenue") => ListAsk::Revenue,
                            Some("count") => ListAsk::Count,
                            _ => ListAsk::Recent,
                        };
                        let phrase = slots.get("period").and_then(SlotValue::as_text);
                        let period = match (ask, phrase) {
                            (ListAsk::Recent, None) => Period {
                                label: "recently".to_owned(),
                                since: None,
                                until: None,
                            },
                            _ => period(phrase, self.facts.now_ms),
                        };
                        self.call(Call::ListOrders { period, ask }, Purpose::Answer);
                    }
                }
            },
            Intent::Refund if topic == Some("undo") => self.reply(
                "A refund can't be undone: once Stripe has sent it, the money is on its way back to the customer. If they should pay again, send them the product's buy link (\"buy link for <product>\").",
            ),
            Intent::Refund => {
                let Some(order) = target else {
                    let text = match slots.get("amount") {
                        Some(SlotValue::Amount(m)) => format!(
                            "Yes, a partial refund of {m} is fine (up to what's left of the payment). Which order? Say \"refund {m} of order 1042\" (or name its pi_… payment)."
                        ),
                        _ => "Which order should I refund? Say \"refund order 1042\" (or name its pi_… payment); add an amount for a partial refund: \"refund $5 of order 1042\". You confirm before anything is refunded.".to_owned(),
                    };
                    self.reply(text);
                    return;
                };
                if !self.selling_ready(&format!("refund {what}")) {
                    return;
                }
                let (amount, currency) = match slots.get("amount") {
                    Some(SlotValue::Amount(m)) => {
                        (Some(m.minor), Some(m.currency.as_str().to_owned()))
                    }
                    _ => (None, None),
                };
                let share = slots.get("share").and_then(SlotValue::as_text);
                let share_bps = match (amount, share) {
                    (None, Some(text)) => match share_in_bps(text) {
                        Some(bps) => Some(bps),
                        None => {
                            // Never a full refund for a share that can't be read.
                            self.reply(format!(
                                "I can't read \"{text}\" as a share of the payment. Say the amount instead: \"refund $5 of {what}\"."
                            ));
                            return;
                        }
                    },
                    _ => None,
                };
                self.ask_order(
                    order,
                    OrderAsk::Refund {
                        amount,
                        currency,
                        share_bps,
                    },
                );
            }
            Intent::ReceiptsInvoices => {
                let Some(order) = target else {
                    super::answers::answer(self, intent, topic, slots);
                    return;
                };
                if self.selling_ready(&format!("find the receipt of {what}")) {
                    let ask = match topic {
                        Some("resend") => OrderAsk::ResendReceipt,
                        Some("invoice") => OrderAsk::Invoice,
                        _ => OrderAsk::Receipt,
                    };
                    self.ask_order(order, ask);
                }
            }
            _ => {}
        }
    }

    fn ask_order(&mut self, order: OrderRef, ask: OrderAsk) {
        self.call(Call::FindOrder { order, ask }, Purpose::Answer);
    }

    /// A Stripe event about an order: re-read it (joining a re-read already running).
    pub(super) fn order_changed(
        &mut self,
        order: OrderRef,
        event: Option<String>,
        evidence: Option<Evidence>,
        known: Option<&Order>,
    ) {
        let same = |c: &Call| matches!(c, Call::RefreshOrder { order: o, .. } if *o == order);
        if let Some(p) = self.join_reread(same, event.clone()) {
            // The read after the running one applies it; its evidence goes with it.
            p.queued_evidence = p.queued_evidence.take().zip(evidence).map(|(mut list, e)| {
                list.push(e);
                list
            });
            return;
        }
        self.apply_or_read(
            order,
            event.into_iter().collect(),
            known,
            evidence.as_slice(),
        );
    }

    /// Applies `events` at once when `shown` (the order as stored) already shows all their
    /// `evidence` and no re-read that may be of this order runs (one started earlier may store
    /// an older state; one under another kind of reference might be of this order). Otherwise
    /// the order is read from Stripe. The one place the evidence decides (`crate::evidence`).
    fn apply_or_read(
        &mut self,
        order: OrderRef,
        events: Vec<String>,
        shown: Option<&Order>,
        evidence: &[Evidence],
    ) {
        let nothing_new = !evidence.is_empty()
            && shown.is_some_and(|o| evidence.iter().all(|e| o.already_shows(e)));
        let warnings = evidence
            .iter()
            .any(|e| matches!(e, Evidence::FraudWarning { .. }));
        if nothing_new && self.no_read_of(&order) {
            self.events_applied(events, "applied");
        } else {
            self.read_order(order, events, 0, warnings);
        }
    }

    /// Whether no re-read runs that may be of `order` (one under another kind of reference
    /// might be).
    fn no_read_of(&self, order: &OrderRef) -> bool {
        !self.state.pending.iter().any(
            |p| matches!(&p.call, Call::RefreshOrder { order: o, .. } if !o.surely_differs(order)),
        )
    }

    /// Asks for an order's re-read from Stripe.
    fn read_order(&mut self, order: OrderRef, events: Vec<String>, attempt: u32, warnings: bool) {
        let op = self.call(
            Call::RefreshOrder {
                order,
                events,
                attempt,
                warnings,
            },
            Purpose::Orders,
        );
        // Events that join it bring their evidence for the read after it.
        if let Some(p) = self.state.pending.iter_mut().find(|p| p.op == op) {
            p.queued_evidence = Some(Vec::new());
        }
    }

    pub(super) fn selling_click(&mut self, owner: &Owner, action: &str) {
        match (owner, action) {
            (
                Owner::ConfirmRefund {
                    order,
                    number,
                    payment_intent,
                    amount,
                    currency,
                },
                "refund",
            ) => {
                self.call(
                    Call::CreateRefund {
                        order: order.clone(),
                        number: *number,
                        payment_intent: payment_intent.clone(),
                        amount: *amount,
                        currency: currency.clone(),
                    },
                    Purpose::Answer,
                );
            }
            (Owner::ConfirmRefund { number, .. }, _) => {
                self.reply(format!("OK, order #{number} is not refunded."));
            }
            (Owner::Order { number }, "refund") => self.ask_order(
                OrderRef::Number(*number),
                OrderAsk::Refund {
                    amount: None,
                    currency: None,
                    share_bps: None,
                },
            ),
            (Owner::Order { number }, _) => {
                self.ask_order(OrderRef::Number(*number), OrderAsk::Status)
            }
            _ => {}
        }
    }

    pub(super) fn selling_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        let said_before = self.effects.len();
        match (pending.call, result) {
            (
                Call::RefreshOrder {
                    order,
                    events,
                    attempt,
                    warnings,
                },
                result,
            ) => {
                let mut queued = pending.queued;
                // The order as this turn stores it, for the evidence of events that came meanwhile.
                let mut stored = None;
                match result {
                    Ok(CallOutput::OrderRefreshed {
                        before,
                        after,
                        version,
                    }) => {
                        if let (Some(before), Some(after)) = (before, after) {
                            self.order_news(&before, &after);
                            if after != before {
                                self.effects.push(Effect::SaveOrder {
                                    order: after.clone(),
                                    expected_version: version,
                                });
                            }
                            stored = Some(after);
                        }
                        self.events_applied(events, "applied");
                    }
                    Ok(_) => self.events_applied(events, "applied"),
                    Err(e) if e.code.is_none() && attempt + 1 < REFRESH_ATTEMPTS => {
                        // Stripe could not be reached: read again later, events kept.
                        queued.extend(events);
                        return self.read_order(order, queued, attempt + 1, warnings);
                    }
                    Err(e) => {
                        let outcome =
                            format!("ignored: the order could not be read ({})", e.message);
                        self.events_applied(events, &outcome);
                    }
                }
                if pending.again || !queued.is_empty() {
                    let evidence = pending.queued_evidence.unwrap_or_default();
                    self.apply_or_read(order, queued, stored.as_deref(), &evidence);
                }
            }
            (Call::FindOrder { order, ask }, Ok(CallOutput::OrderFound(found))) => match found {
                None => self.reply(format!(
                    "I can't find {} in this project's {} mode orders.",
                    order.describe(),
                    self.mode.as_str()
                )),
                Some(found) => self.answer_order(&found, ask),
            },
            (
                Call::ListOrders {
                    ask: ListAsk::Disputes,
                    ..
                },
                Ok(CallOutput::Orders(orders)),
            ) => self.answer_disputes(&orders),
            (Call::ListOrders { period, ask }, Ok(CallOutput::Orders(orders))) => {
                self.answer_orders(&period, ask, &orders)
            }
            (
                Call::CreateRefund {
                    number, currency, ..
                },
                Ok(CallOutput::Refunded(refund)),
            ) => {
                let amount = crate::domain::Currency::parse(&currency).map_or_else(
                    || refund.amount.to_string(),
                    |c| Money::new(refund.amount, c).to_string(),
                );
                let text = match refund.status.as_str() {
                    "succeeded" => format!(
                        "Refunded {amount} of order #{number}. The money reaches the customer's card in 5-10 business days."
                    ),
                    "failed" | "canceled" => format!(
                        "Stripe couldn't refund {amount} of order #{number} (the refund {}); nothing was refunded.",
                        refund.status
                    ),
                    other => format!(
                        "Asked Stripe to refund {amount} of order #{number}; the refund is {}. I'll tell you when it's done.",
                        other.replace('_', " ")
                    ),
                };
                self.reply(text);
            }
            (Call::CreateRefund { number, .. }, Err(e)) => self.reply(format!(
                "Stripe didn't refund order #{number}: {} Nothing was refunded.",
                e.message
            )),
            (Call::ResendReceipt { number, email, .. }, Ok(_)) => self.reply(format!(
                "Sent the receipt for order #{number} to {email} again."
            )),
            (Call::ResendReceipt { number, .. }, Err(e)) => self.reply(format!(
                "Stripe didn't send the receipt for order #{number}: {}",
                e.message
            )),
            (_, Err(e)) => self.reply(format!(
                "I couldn't look that up just now ({}); please ask again.",
                e.message
            )),
            _ => {}
        }
        if self.effects.len() > said_before && pending.purpose == Purpose::Orders {
            // News pushed in the middle of a flow brings its step back.
            self.present_step();
        }
    }

    fn events_applied(&mut self, events: Vec<String>, outcome: &str) {
        for id in events {
            self.effects.push(Effect::EventApplied {
                id,
                outcome: outcome.to_owned(),
            });
        }
    }

    /// Cards for what changed in an order.
    fn order_news(&mut self, before: &Order, after: &Order) {
        for news in changes(before, after) {
            let n = after.number;
            let card = match news {
                // A subscription's checkout is told by the subscription's own card ("New
                // subscriber", "New trial"), once.
                OrderNews::Paid if after.subscription.is_some() => continue,
                OrderNews::Paid => {
                    let mut card = self.order_card(
                        after,
                        &format!("New order #{n}"),
                        format!(
                            "{}, {}, paid by {}.",
                            after.summary(),
                            after.total(),
                            email_of(after)
                        ),
                    );
                    if let Some(url) = after.charge.as_ref().and_then(|c| c.receipt_url.as_deref())
                    {
                        card.actions.push(Action::link("receipt", "Receipt", url));
                    }
                    if let Some(url) = after
                        .invoice
                        .as_ref()
                        .and_then(|i| i.hosted_invoice_url.as_deref())
                    {
                        card.actions.push(Action::link("invoice", "Invoice", url));
                    }
                    card.actions
                        .push(Action::new("refund", "Refund", Style::Secondary));
                    card
                }
                OrderNews::PaymentFailed(err) => self.order_card(
                    after,
                    &format!("Payment failed for order #{n}"),
                    format!(
                        "{} The customer can try again on the same checkout page.",
                        err.in_plain_words()
                    ),
                ),
                OrderNews::Refund(r) => self.refund_card(after, &r),
                OrderNews::Disputed(d) => {
                    let card = self.dispute_opened(after, &d);
                    self.show_dispute(card, n);
                    continue;
                }
                OrderNews::DisputeClosed(d) => {
                    let card = self.dispute_closed(after, &d);
                    self.show_dispute(card, n);
                    continue;
                }
                OrderNews::FraudWarning(w) => {
                    let card = self.fraud_warning(after, &w);
                    self.show_dispute(card, n);
                    continue;
                }
            };
            self.drop_cards(|c| c.owner != Owner::Order { number: n });
            self.show(card, Owner::Order { number: n });
        }
        // The builder's app hears who gained or lost access, with the same turn.
        for change in order_access(before, after, self.facts.now_ms / 1000) {
            self.effects.push(Effect::Notify(change));
        }
    }

    /// Shows the order's newest dispute card (the older one's actions end).
    fn show_dispute(&mut self, card: Card, n: i64) {
        self.drop_cards(|c| c.owner != Owner::Dispute { number: n });
        if card.actions.is_empty() {
            self.show_info(card);
        } else {
            self.show(card, Owner::Dispute { number: n });
        }
    }

    fn refund_card(&mut self, order: &Order, r: &RefundInfo) -> Card {
        let n = order.number;
        let amount = order.money(r.amount);
        let left = order.money(order.refundable());
        let body = match r.status.as_str() {
            "failed" | "canceled" => format!(
                "The refund of {amount} to {} {}{}. The money stays in your Stripe balance; you can refund again.",
                email_of(order),
                if r.status == "failed" {
                    "failed"
                } else {
                    "was canceled"
                },
                r.failure_reason
                    .as_deref()
                    .map(|f| format!(" ({})", f.replace('_', " ")))
                    .unwrap_or_default()
            ),
            status => format!(
                "{amount} refunded to {} ({}). Order #{n} is {}; {left} can still be refunded.",
                email_of(order),
                if status == "succeeded" {
                    "done"
                } else {
                    status
                },
                order.status.label()
            ),
        };
        let mut body = body;
        if order.status == OrderStatus::Refunded
            && r.status == "succeeded"
            && order.subscription.is_none()
        {
            // Wholly refunded: what it bought is no longer the customer's (entitlements).
            let names: Vec<&str> = order.lines.iter().map(|l| l.name.as_str()).collect();
            body.push_str(&format!(
                " {} no longer has access to {}.",
                email_of(order),
                names.join(", ")
            ));
        }
        self.order_card(order, &format!("Refund for order #{n}"), body)
    }

    fn order_card(&mut self, order: &Order, title: &str, body: String) -> Card {
        let mut facts = vec![
            Fact::new("Order", format!("#{}", order.number)),
            Fact::new("Status", order.status.label()),
            Fact::new("Total", order.total().to_string()),
        ];
        if order.discount() > 0 {
            facts.push(Fact::new(
                "Discount",
                format!("{} off with a code", order.money(order.discount())),
            ));
        }
        if order.refunded() > 0 {
            facts.push(Fact::new(
                "Refunded",
                order.money(order.refunded()).to_string(),
            ));
        }
        if let Some(email) = &order.customer_email {
            facts.push(Fact::new("Customer", email.clone()));
        }
        if let Some(when) = order.charge.as_ref().and_then(|c| c.available_on) {
            facts.push(Fact::new(
                "Funds available",
                format!("{} (UTC)", fmt_day(when * 1000)),
            ));
        }
        let mut card = self.new_card(CardKind::Order, title, body);
        card.facts = facts;
        card
    }

    fn answer_order(&mut self, order: &Order, ask: OrderAsk) {
        let n = order.number;
        match ask {
            OrderAsk::Status => {
                let when = order
                    .paid_at
                    .map(|t| format!(" on {} (UTC)", fmt_day(t)))
                    .unwrap_or_default();
                let text = match order.status {
                    OrderStatus::Open => format!(
                        "Order #{n} ({}, {}) is waiting for payment: the checkout is open until {}.",
                        order.summary(),
                        order.total(),
                        super::answers::format_deadline(order.expires_at * 1000)
                    ),
                    OrderStatus::PaymentFailed => format!(
                        "Order #{n} isn't paid: the last attempt failed. {} The customer can retry on the same checkout page.",
                        order.last_payment_error.as_ref().map_or_else(
                            || "The card was declined.".to_owned(),
                            |e| e.in_plain_words()
                        )
                    ),
                    OrderStatus::Expired => format!(
                        "Order #{n} was never paid: its checkout expired. Create a new checkout to sell it again."
                    ),
                    s => format!(
                        "Yes, order #{n} went through: {}, {}, paid by {}{when}. It's {}.",
                        order.summary(),
                        order.total(),
                        email_of(order),
                        s.label()
                    ),
                };
                self.reply(text);
                let mut card = self.order_card(order, &format!("Order #{n}"), order.summary());
                if let Some(url) = order.charge.as_ref().and_then(|c| c.receipt_url.as_deref()) {
                    card.actions.push(Action::link("receipt", "Receipt", url));
                }
                if let Some(url) = order
                    .invoice
                    .as_ref()
                    .and_then(|i| i.hosted_invoice_url.as_deref())
                {
                    card.actions.push(Action::link("invoice", "Invoice", url));
                }
                self.show_info(card);
            }
            OrderAsk::Refund {
                amount,
                currency,
                share_bps,
            } => {
                let size = match (share_bps, amount) {
                    (Some(bps), _) => RefundSize::Share { bps },
                    (None, Some(minor)) => RefundSize::Amount {
                        minor,
                        currency: currency.as_deref().and_then(Currency::parse),
                    },
                    (None, None) => RefundSize::Rest,
                };
                if let (Some(c), None) = (&currency, currency.as_deref().and_then(Currency::parse))
                {
                    self.reply(format!(
                        "I don't know the currency {c:?}; say the amount in {}.",
                        order.currency.as_str().to_ascii_uppercase()
                    ));
                    return;
                }
                let plan = match rules::refund(order, size, self.refunds_in_flight(&order.id)) {
                    Ok(plan) => plan,
                    Err(refused) => {
                        self.reply(refused.message);
                        return;
                    }
                };
                let (pi, amount, after) = (plan.payment_intent, plan.amount, plan.left_after);
                let mut card = self.new_card(
                    CardKind::ConfirmRefund,
                    &format!("Refund {} of order #{n}?", order.money(amount)),
                    format!(
                        "{} goes back to {} ({}). {}",
                        order.money(amount),
                        email_of(order),
                        order.summary(),
                        if after == 0 {
                            "That refunds the order in full.".to_owned()
                        } else {
                            format!(
                                "{} stays paid and can be refunded later.",
                                order.money(after)
                            )
                        }
                    ),
                );
                card.facts = vec![
                    Fact::new("Order", format!("#{n}")),
                    Fact::new("Paid", order.total().to_string()),
                ];
                if order.refunded() > 0 {
                    card.facts.push(Fact::new(
                        "Already refunded",
                        order.money(order.refunded()).to_string(),
                    ));
                }
                card.facts
                    .push(Fact::new("Refund", order.money(amount).to_string()));
                card.facts
                    .push(Fact::new("Remaining after", order.money(after).to_string()));
                card.actions = vec![
                    Action::new(
                        "refund",
                        &format!("Refund {}", order.money(amount)),
                        Style::Danger,
                    ),
                    Action::secondary("keep", "Don't refund"),
                ];
                self.drop_cards(
                    |c| !matches!(&c.owner, Owner::ConfirmRefund { number, .. } if *number == n),
                );
                self.show(
                    card,
                    Owner::ConfirmRefund {
                        order: order.id.clone(),
                        number: n,
                        payment_intent: pi,
                        amount,
                        currency: order.currency.as_str().to_owned(),
                    },
                );
            }
            OrderAsk::Invoice if order.subscription.is_some() => {
                // A subscription's order: its invoices are the subscription's, renewals too.
                let subscription = order.subscription.clone().unwrap_or_default();
                self.call(
                    Call::ListSubscriptions {
                        ask: super::SubscriptionAsk::Invoices {
                            subscription,
                            order: n,
                        },
                    },
                    Purpose::Answer,
                );
            }
            OrderAsk::Receipt | OrderAsk::Invoice => {
                let receipt = order.charge.as_ref().and_then(|c| c.receipt_url.clone());
                let invoice = order.invoice.as_ref();
                if receipt.is_none() && invoice.is_none() {
                    self.reply(format!(
                        "Order #{n} has no receipt or invoice yet: it is {}.",
                        order.status.label()
                    ));
                    return;
                }
                let mut card = self.order_card(
                    order,
                    &format!("Receipt and invoice for order #{n}"),
                    format!(
                        "The receipt stays current (refunds included).{}",
                        invoice
                            .and_then(|i| i.number.as_deref())
                            .map(|num| format!(" Invoice {num}."))
                            .unwrap_or_default()
                    ),
                );
                if let Some(url) = &receipt {
                    card.actions.push(Action::link("receipt", "Receipt", url));
                }
                if let Some(i) = invoice {
                    if let Some(url) = &i.hosted_invoice_url {
                        card.actions.push(Action::link("invoice", "Invoice", url));
                    }
                    if let Some(url) = &i.invoice_pdf {
                        card.actions
                            .push(Action::link("invoice_pdf", "Invoice PDF", url));
                    }
                }
                self.reply(format!("Here are the links for order #{n}."));
                self.show_info(card);
            }
            OrderAsk::AcceptDispute => self.answer_dispute(order, rules::DisputeResponse::Accept),
            OrderAsk::DisputeEvidence => {
                self.answer_dispute(order, rules::DisputeResponse::SubmitEvidence)
            }
            OrderAsk::ResendReceipt => {
                match (order.charge.as_ref(), order.customer_email.as_ref()) {
                    (Some(charge), Some(email)) => {
                        self.call(
                            Call::ResendReceipt {
                                order: order.id.clone(),
                                number: n,
                                charge: charge.id.clone(),
                                email: email.clone(),
                            },
                            Purpose::Answer,
                        );
                    }
                    (None, _) => self.reply(format!(
                        "Order #{n} has no receipt to send: it is {}.",
                        order.status.label()
                    )),
                    (_, None) => self.reply(format!(
                        "Order #{n} has no customer email to send the receipt to."
                    )),
                }
            }
        }
    }

    fn answer_orders(&mut self, period: &Period, ask: ListAsk, orders: &[Order]) {
        let paid: Vec<&Order> = orders.iter().filter(|o| o.status.was_paid()).collect();
        match ask {
            ListAsk::Disputes => self.answer_disputes(orders),
            ListAsk::Recent => {
                if orders.is_empty() {
                    self.reply(format!(
                        "No orders {} in {} mode yet.",
                        period.label,
                        self.mode.as_str()
                    ));
                    return;
                }
                let shown = orders.len().min(RECENT);
                let mut card = self.new_card(
                    CardKind::Info,
                    "Recent orders",
                    if shown == 1 {
                        "Your only order so far.".to_owned()
                    } else {
                        format!("Your latest {shown} orders, newest first.")
                    },
                );
                card.facts = orders
                    .iter()
                    .take(RECENT)
                    .map(|o| {
                        Fact::new(
                            &format!("#{}", o.number),
                            format!(
                                "{} · {}{} · {} · {}",
                                o.status.label(),
                                o.total(),
                                if o.refunded() > 0 {
                                    format!(" ({} refunded)", o.money(o.refunded()))
                                } else {
                                    String::new()
                                },
                                o.customer_email.as_deref().unwrap_or("no email yet"),
                                fmt_day(o.created_at)
                            ),
                        )
                    })
                    .collect();
                let paid_shown = orders
                    .iter()
                    .take(RECENT)
                    .filter(|o| o.status.was_paid())
                    .count();
                self.reply(if shown == 1 {
                    format!(
                        "One order so far: #{}, {}.",
                        orders[0].number,
                        orders[0].status.label()
                    )
                } else {
                    let refunded = orders
                        .iter()
                        .take(RECENT)
                        .filter(|o| o.status == OrderStatus::Refunded)
                        .count();
                    format!(
                        "{paid_shown} of your latest {shown} orders are paid{}.",
                        in_full(refunded, "of them ")
                    )
                });
                self.show_info(card);
            }
            ListAsk::Count => {
                let open = orders
                    .iter()
                    .filter(|o| o.status == OrderStatus::Open)
                    .count();
                let refunded = paid
                    .iter()
                    .filter(|o| o.status == OrderStatus::Refunded)
                    .count();
                self.reply(format!(
                    "{} paid order{} {}{}{}.",
                    paid.len(),
                    if paid.len() == 1 { "" } else { "s" },
                    period.label,
                    in_full(refunded, ""),
                    if open > 0 {
                        format!(
                            ", and {open} checkout{} still open",
                            if open == 1 { "" } else { "s" }
                        )
                    } else {
                        String::new()
                    }
                ));
            }
            ListAsk::Revenue => {
                if paid.is_empty() {
                    self.reply(format!("No revenue {}: no paid orders.", period.label));
                    return;
                }
                let mut by_currency: std::collections::BTreeMap<&str, (i64, i64, usize, usize)> =
                    Default::default();
                for o in &paid {
                    let e = by_currency.entry(o.currency.as_str()).or_default();
                    e.0 += o
                        .charge
                        .as_ref()
                        .map_or(o.amount_total, |c| c.amount_captured);
                    e.1 += o.refunded();
                    e.2 += 1;
                    e.3 += usize::from(o.status == OrderStatus::Refunded);
                }
                let parts: Vec<String> = paid
                    .iter()
                    .map(|o| o.currency)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|c| {
                        let (gross, refunded, count, in_whole) = by_currency[c.as_str()];
                        let refunds = if refunded > 0 {
                            format!(
                                ", after {} refunded{}",
                                Money::new(refunded, c),
                                in_full(in_whole, "")
                            )
                        } else {
                            String::new()
                        };
                        format!(
                            "{} from {count} paid order{}{refunds}",
                            Money::new(gross - refunded, c),
                            if count == 1 { "" } else { "s" }
                        )
                    })
                    .collect();
                self.reply(format!(
                    "Revenue {}: {}. (Before Stripe's fees.)",
                    period.label,
                    parts.join("; ")
                ));
            }
        }
    }
}

/// " (2 since refunded in full)", or nothing.
fn in_full(n: usize, of: &str) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} {of}since refunded in full)")
    }
}

fn fmt_day(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%b %-d, %Y").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_weeks_and_months() {
        // Tue Dec 1, 2026 10:00 UTC.
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        let at = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        };
        let p = period(Some("today"), now);
        assert_eq!(
            (p.since, p.until),
            (Some(at(2026, 12, 1)), Some(at(2026, 12, 2)))
        );
        let p = period(Some("this week"), now);
        assert_eq!(
            (p.since, p.until),
            (Some(at(2026, 11, 30)), Some(at(2026, 12, 7)))
        );
        assert!(
            p.label.contains("Nov 30, 2026 – Dec 6, 2026"),
            "{}",
            p.label
        );
        let p = period(Some("last month"), now);
        assert_eq!(
            (p.since, p.until),
            (Some(at(2026, 11, 1)), Some(at(2026, 12, 1)))
        );
        let p = period(Some("this month"), now);
        assert_eq!(
            (p.since, p.until),
            (Some(at(2026, 12, 1)), Some(at(2027, 1, 1)))
        );
        let p = period(None, now);
        assert_eq!(p.since, Some(at(2026, 11, 2)));
    }

    #[test]
    fn periods_name_quarters_months_and_spans() {
        // Tue Dec 1, 2026 10:00 UTC.
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        let at = |y, m, d| {
            Some(
                Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
                    .unwrap()
                    .timestamp_millis(),
            )
        };
        let span = |phrase: &str| {
            let p = period(Some(phrase), now);
            (p.since, p.until)
        };
        assert_eq!(span("this quarter"), (at(2026, 10, 1), at(2027, 1, 1)));
        assert_eq!(span("last quarter"), (at(2026, 7, 1), at(2026, 10, 1)));
        assert_eq!(span("q1"), (at(2026, 1, 1), at(2026, 4, 1)));
        assert_eq!(span("q4 2025"), (at(2025, 10, 1), at(2026, 1, 1)));
        assert_eq!(span("november"), (at(2026, 11, 1), at(2026, 12, 1)));
        // A month still to come this year is last year's.
        assert_eq!(span("december"), (at(2026, 12, 1), at(2027, 1, 1)));
        assert_eq!(span("january"), (at(2026, 1, 1), at(2026, 2, 1)));
        assert!(
            period(Some("November"), now)
                .label
                .starts_with("November 2026")
        );
        assert_eq!(span("last year"), (at(2025, 1, 1), at(2026, 1, 1)));
        assert_eq!(span("year to date"), (at(2026, 1, 1), at(2026, 12, 2)));
        assert_eq!(span("last 7 days"), (at(2026, 11, 25), at(2026, 12, 2)));
        assert_eq!(span("past 3 months"), (at(2026, 9, 2), at(2026, 12, 2)));
        assert_eq!(span("past week"), (at(2026, 11, 25), at(2026, 12, 2)));
        // Something no rule reads: the last 30 days, as before.
        assert_eq!(span("someday"), (at(2026, 11, 2), at(2026, 12, 2)));
    }

    #[test]
    fn targets_come_from_slots() {
        let mut slots = Slots::new();
        slots.insert("order_number".into(), SlotValue::Text("1042".into()));
        assert_eq!(target(&slots), Some(OrderRef::Number(1042)));
        slots.insert("order_number".into(), SlotValue::Text("ORD-77".into()));
        assert_eq!(target(&slots), Some(OrderRef::Number(77)));
        slots.insert("payment_id".into(), SlotValue::Text("pi_123456789".into()));
        assert_eq!(
            target(&slots),
            Some(OrderRef::PaymentIntent("pi_123456789".into()))
        );
    }
}

#[cfg(test)]
mod share_tests {
    use super::share_in_bps;

    #[test]
    fn shares_read_as_basis_points_and_nothing_else() {
        for (text, bps) in [
            ("half", Some(5_000)),
            ("A Quarter", Some(2_500)),
            ("two thirds", Some(6_666)),
            ("50", Some(5_000)),
            ("12.5", Some(1_250)),
            ("100", Some(10_000)),
            ("0", None),
            ("150", None),
            ("lots", None),
        ] {
            assert_eq!(share_in_bps(text), bps, "{text}");
        }
    }
}
