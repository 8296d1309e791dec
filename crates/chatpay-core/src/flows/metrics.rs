//! Subscription figures and CSV exports in the chat.
//!
//! "how much recurring revenue do I have per month?", "how many subscriptions ended in
//! November?", "what is my churn rate this quarter?": one answer with MRR per currency now, and
//! the subscriptions started, ended and churned in the period asked (this month when none is
//! named), with the definitions on the card. Computed by [`crate::metrics`] from every stored
//! subscription, read through `Call::SubscriptionMetrics`.
//!
//! "export my customers to csv": a link to the export (`Call::ExportLink` asks where the
//! project's exports are), with the period asked as its filter for orders.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::selling::period;
use super::{Call, CallError, CallOutput, Pending, Purpose, Turn};
use crate::billing::Subscription;
use crate::cards::{Action, CardKind, Fact};
use crate::domain::{Currency, Money};
use crate::intents::{SlotValue, Slots};
use crate::metrics::{DEFINITIONS, percent, subscription_metrics};

/// What an export is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportOf {
    Orders,
    Customers,
}

/// "$28.00 + €10.00", or "nothing" for no amounts.
pub(super) fn amounts<'a>(of: impl Iterator<Item = (&'a String, i64)>) -> String {
    let parts: Vec<String> = of
        .map(|(cur, minor)| {
            Currency::parse(cur).map_or_else(
                || format!("{minor} {cur}"),
                |c| Money::new(minor, c).to_string(),
            )
        })
        .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(" + ")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `2026-12-01` for a period bound (milliseconds, at midnight UTC).
fn date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Turn<'_, '_> {
    pub(super) fn metrics_intent(&mut self, slots: &Slots) {
        if !self.billing_ready("work out your subscription figures") {
            return;
        }
        let phrase = slots
            .get("period")
            .and_then(SlotValue::as_text)
            .unwrap_or("this month");
        let period = period(Some(phrase), self.facts.now_ms);
        self.call(Call::SubscriptionMetrics { period }, Purpose::Answer);
    }

    pub(super) fn export_intent(&mut self, slots: &Slots) {
        if !self.billing_ready("export your orders and customers") {
            return;
        }
        let of = if slots.contains_key("export_of") {
            ExportOf::Customers
        } else {
            ExportOf::Orders
        };
        let period = slots
            .get("period")
            .and_then(SlotValue::as_text)
            .map(|p| period(Some(p), self.facts.now_ms));
        self.call(Call::ExportLink { of, period }, Purpose::Answer);
    }

    pub(super) fn metrics_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        match (pending.call, result) {
            (Call::SubscriptionMetrics { period }, Ok(CallOutput::Subscriptions(subs))) => {
                self.metrics_answer(&period, &subs);
            }
            (Call::ExportLink { of, period }, Ok(CallOutput::ExportBase(base))) => {
                self.export_answer(of, period.as_ref(), &base);
            }
            (_, Err(e)) => self.reply(format!(
                "I couldn't read your stored data just now ({}); please ask again.",
                e.message
            )),
            _ => {}
        }
    }

    fn metrics_answer(&mut self, period: &super::Period, subs: &[Subscription]) {
        let m = subscription_metrics(subs, self.facts.now_ms, period.since, period.until);
        let mode = self.mode.as_str();
        let mrr = amounts(m.mrr.iter().map(|(c, a)| (c, *a)));
        let arr = amounts(m.mrr.iter().map(|(c, a)| (c, a * 12)));
        let churn = match m.churn_rate_bps {
            Some(bps) => format!(
                "churn rate {} ({} of the {} live at its start)",
                percent(bps),
                m.churned,
                m.live_at_start
            ),
            None => "no churn rate (no subscription was live at its start)".to_owned(),
        };
        self.reply(format!(
            "Monthly recurring revenue (MRR) now, in {mode} mode: {mrr} from {}{}; {} not counted. {}: {} new, {} ended; {churn}.",
            plural(m.paying, "subscription", "subscriptions"),
            if m.past_due > 0 {
                format!(" ({} past due)", m.past_due)
            } else {
                String::new()
            },
            plural(m.trialing, "free trial", "free trials"),
            capitalized(&period.label),
            m.new,
            m.ended,
        ));
        let mut card = self.new_card(
            CardKind::Info,
            "Subscription figures",
            DEFINITIONS.to_owned(),
        );
        card.facts = vec![
            Fact::new("MRR", mrr),
            Fact::new("ARR (MRR × 12)", arr),
            Fact::new(
                "Counted",
                format!(
                    "{} ({} past due); {} not counted",
                    plural(m.paying, "subscription", "subscriptions"),
                    m.past_due,
                    plural(m.trialing, "free trial", "free trials")
                ),
            ),
            Fact::new("Period", period.label.clone()),
            Fact::new("New", m.new.to_string()),
            Fact::new("Ended", m.ended.to_string()),
            Fact::new(
                "Churn rate",
                m.churn_rate_bps.map_or_else(
                    || "none (nothing live at the start)".to_owned(),
                    |bps| format!("{} ({} of {})", percent(bps), m.churned, m.live_at_start),
                ),
            ),
        ];
        self.show_info(card);
    }

    fn export_answer(&mut self, of: ExportOf, period: Option<&super::Period>, base: &str) {
        let (path, what) = match of {
            ExportOf::Orders => ("orders.csv", "orders"),
            ExportOf::Customers => ("customers.csv", "customers"),
        };
        let mut url = format!("{base}/{path}");
        let mut within = String::new();
        if let (ExportOf::Orders, Some(p)) = (of, period) {
            let mut query = Vec::new();
            if let Some(s) = p.since {
                query.push(format!("since={}", date(s)));
            }
            if let Some(u) = p.until {
                query.push(format!("until={}", date(u)));
            }
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
                within = format!(" {}", p.label);
            }
        }
        self.reply(format!(
            "Here are your {what}{within} as a CSV file ({} mode): {url}",
            self.mode.as_str()
        ));
        let mut card = self.new_card(
            CardKind::Info,
            &format!("Export {what} as CSV"),
            "The link opens in this browser, signed in with your session (the sign-in cookie). \
             A script sends it with \"Authorization: Bearer <api token>\". One row per line; \
             amounts are in the currency's units (12.50) beside a currency column."
                .to_owned(),
        );
        card.actions
            .push(Action::link("download", &format!("Download {path}"), &url));
        self.show_info(card);
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
}
