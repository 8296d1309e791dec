//! Customers in the chat: "who are my customers?", "which customer has spent the most?", "how
//! many new customers this month?" (one answer: how many, the biggest spenders with their
//! lifetime value per currency, how many are new in the period), and "what did ben@… buy?".
//! Answered from the stored paid orders (`crate::customers`), read through `Call::ListCustomers`.

use chrono::{DateTime, Utc};

use super::metrics::amounts;
use super::selling::period;
use super::{Call, CallError, CallOutput, Pending, Purpose, Turn};
use crate::cards::{CardKind, Fact};
use crate::customers::{Customer, customers, new_customers};
use crate::intents::{SlotValue, Slots};
use crate::orders::Order;

/// Customers shown on a card.
const SHOWN: usize = 10;

fn day(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%b %-d, %Y").to_string())
        .unwrap_or_default()
}

/// "$98.00 + €20.00".
fn spent(c: &Customer) -> String {
    amounts(c.spent.iter().map(|(cur, minor)| (cur, *minor)))
}

fn orders_count(n: usize) -> String {
    if n == 1 {
        "1 order".to_owned()
    } else {
        format!("{n} orders")
    }
}

impl Turn<'_, '_> {
    pub(super) fn customers_intent(&mut self, slots: &Slots) {
        let email = slots
            .get("email")
            .and_then(SlotValue::as_text)
            .map(str::to_lowercase);
        let phrase = slots
            .get("period")
            .and_then(SlotValue::as_text)
            .unwrap_or("this month");
        let new_in = period(Some(phrase), self.facts.now_ms);
        self.call(Call::ListCustomers { email, new_in }, Purpose::Answer);
    }

    pub(super) fn customers_done(
        &mut self,
        pending: Pending,
        result: Result<CallOutput, CallError>,
    ) {
        let Call::ListCustomers { email, new_in } = pending.call else {
            return;
        };
        let orders: Vec<Order> = match result {
            Ok(CallOutput::Orders(orders)) => orders,
            Ok(_) => Vec::new(),
            Err(e) => {
                return self.reply(format!(
                    "I couldn't read your orders just now ({}); please ask again.",
                    e.message
                ));
            }
        };
        let all = customers(&orders);
        let mode = self.mode.as_str();
        if let Some(email) = email {
            let Some(c) = all.iter().find(|c| c.email == email) else {
                return self.reply(format!("{email} hasn't paid for anything in {mode} mode."));
            };
            self.reply(format!(
                "{email} has paid {} ({}) since {} (UTC), {} in all after refunds{}.",
                orders_count(c.orders.len()),
                c.orders
                    .iter()
                    .map(|n| format!("#{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                day(c.first_paid_at),
                spent(c),
                if c.disputes > 0 {
                    format!("; {} disputed", c.disputes)
                } else {
                    String::new()
                }
            ));
            let mut card = self.new_card(
                CardKind::Info,
                &format!("What {email} bought"),
                String::new(),
            );
            for o in orders.iter().filter(|o| c.orders.contains(&o.number)) {
                card.facts.push(Fact::new(
                    &format!("#{}", o.number),
                    format!("{} · {} · {}", o.summary(), o.total(), o.status.label()),
                ));
            }
            return self.show_info(card);
        }
        if all.is_empty() {
            return self.reply(format!(
                "No customers in {mode} mode yet: nobody has paid an order."
            ));
        }
        let new = new_customers(&all, new_in.since, new_in.until);
        let top = &all[0];
        self.reply(format!(
            "You have {} in {mode} mode (a customer is a buyer's email). The biggest spender is {} with {} ({}). {} new {}. Lifetime value is what was paid, less refunds and lost disputes, per currency.",
            if all.len() == 1 {
                "1 customer".to_owned()
            } else {
                format!("{} customers", all.len())
            },
            top.email,
            spent(top),
            orders_count(top.orders.len()),
            new,
            new_in.label
        ));
        let mut card = self.new_card(
            CardKind::Info,
            "Customers",
            format!("The biggest spenders first (at most {SHOWN})."),
        );
        card.facts = all
            .iter()
            .take(SHOWN)
            .map(|c| {
                Fact::new(
                    &c.email,
                    format!(
                        "{} · {} · since {}",
                        spent(c),
                        orders_count(c.orders.len()),
                        day(c.first_paid_at)
                    ),
                )
            })
            .collect();
        self.show_info(card);
    }
}
