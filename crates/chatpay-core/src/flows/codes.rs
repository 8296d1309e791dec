//! Discount codes by talking: "make a code WELCOME15 worth 15% off a first order, 50 uses,
//! until the end of the month", "which codes are active?", "how many times was WELCOME15
//! used?", "turn off WELCOME15".
//!
//! A new code is a coupon (what it takes off, for how long) and its promotion code (what
//! customers type, with its limits), confirmed by a card first; Create is one click, and the
//! Stripe call (`Call::CreateCode`) is stored with its idempotency key like every chat call.
//! The rules a code must meet are `rules::new_code`'s. Checkouts accept codes on Stripe's page
//! (`allow_promotion_codes`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::{Call, CallError, CallOutput, Owner, Pending, Purpose, Turn};
use crate::cards::{Action, CardKind, Fact};
use crate::catalog::{CodeDuration, CodeInfo, NewCode, Off};
use crate::intents::{SlotValue, Slots};
use crate::rules;

/// What a discount-codes request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Create,
    List,
    Usage,
    TurnOff,
}

fn ask_of(slots: &Slots) -> Ask {
    let action = slots
        .get("code_action")
        .and_then(SlotValue::as_text)
        .map(str::to_lowercase);
    let off = slots.contains_key("percent_off") || slots.contains_key("amount");
    match action.as_deref() {
        _ if off => Ask::Create,
        Some(
            "turn off" | "switch off" | "disable" | "deactivate" | "stop" | "kill" | "delete"
            | "remove",
        ) => Ask::TurnOff,
        Some("how many times" | "how often" | "used" | "redeemed") => Ask::Usage,
        Some(_) => Ask::List,
        None if slots.contains_key("code") => Ask::Usage,
        None => Ask::List,
    }
}

/// "three" -> 3.
fn months_of(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    Some(match s.to_lowercase().as_str() {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "twelve" => 12,
        _ => return None,
    })
}

/// When "until the end of the month" ends (the last second of that day, UTC).
fn expiry(word: &str, now_ms: i64) -> Option<i64> {
    let today = DateTime::<Utc>::from_timestamp_millis(now_ms)?.date_naive();
    let day: NaiveDate = match word.to_lowercase().as_str() {
        "today" => today,
        "tomorrow" => today.succ_opt()?,
        "end of the month" | "end of this month" => {
            let (y, m) = if today.month() == 12 {
                (today.year() + 1, 1)
            } else {
                (today.year(), today.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()?
        }
        "end of the week" | "this weekend" => {
            let to_sunday = 6 - i64::from(today.weekday().num_days_from_monday());
            today + Duration::days(to_sunday)
        }
        "end of the year" => NaiveDate::from_ymd_opt(today.year(), 12, 31)?,
        _ => return None,
    };
    Some(day.and_hms_opt(23, 59, 59)?.and_utc().timestamp())
}

fn day_of(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|d| d.format("%b %-d, %Y %H:%M UTC").to_string())
        .unwrap_or_default()
}

impl Turn<'_, '_> {
    pub(super) fn discount_intent(&mut self, slots: &Slots) {
        if !self.catalog_ready() {
            return;
        }
        let code = slots
            .get("code")
            .and_then(SlotValue::as_text)
            .map(str::to_owned);
        match (ask_of(slots), code) {
            (Ask::Create, code) => self.draft_code(slots, code),
            (Ask::List, _) => {
                self.call(Call::ListCodes { code: None }, Purpose::Answer);
            }
            (Ask::Usage, Some(code)) => {
                self.call(Call::ListCodes { code: Some(code) }, Purpose::Answer);
            }
            (Ask::TurnOff, Some(code)) => {
                self.call(Call::TurnOffCode { code }, Purpose::Answer);
            }
            (Ask::Usage | Ask::TurnOff, None) => {
                self.await_answer("discount_codes", slots, &["code"]);
                self.reply("Which code? Say it as customers type it, like WELCOME15.");
            }
        }
    }

    fn draft_code(&mut self, slots: &Slots, code: Option<String>) {
        let off = match (slots.get("percent_off"), slots.get("amount")) {
            (Some(SlotValue::Number(n)), _) => n
                .as_f64()
                .map(|p| (p * 100.0).round())
                .filter(|bp| *bp >= 0.0 && *bp <= 1_000_000.0)
                .map(|bp| Off::Percent {
                    basis_points: bp as u32,
                }),
            (_, Some(SlotValue::Amount(m))) => Some(Off::Amount { amount: *m }),
            _ => None,
        };
        let Some(off) = off else {
            self.await_answer("discount_codes", slots, &["percent_off", "amount"]);
            self.reply("How much off? Say it like 15% off or $5 off.");
            return;
        };
        let Some(code) = code else {
            self.await_answer("discount_codes", slots, &["code"]);
            self.reply(format!(
                "What should customers type for {}? Say the code, like WELCOME15.",
                off.display()
            ));
            return;
        };
        let text = |k: &str| slots.get(k).and_then(SlotValue::as_text);
        let duration = match (text("months").and_then(months_of), text("code_duration")) {
            (Some(months), _) => CodeDuration::Repeating { months },
            (None, Some(_)) => CodeDuration::Forever,
            (None, None) => CodeDuration::Once,
        };
        let max_redemptions = match slots.get("max_uses") {
            Some(SlotValue::Number(n)) => n.as_i64(),
            _ => None,
        };
        let expires_at = text("expires").and_then(|w| expiry(w, self.facts.now_ms));
        let new = NewCode {
            code,
            off,
            duration,
            max_redemptions,
            expires_at,
            first_time: slots.contains_key("first_time"),
            products: Vec::new(),
            for_product: text("product").map(|p| p.trim().to_owned()),
        };
        if let Err(refused) = rules::new_code(&new) {
            self.reply(format!("{} Nothing was created.", refused.message));
            return;
        }
        let mut card = self.new_card(
            CardKind::ConfirmCode,
            &format!("Create the code {}?", new.code),
            format!(
                "Customers type {} on the checkout page to get {}. Buy links and checkouts \
                 accept codes. Nothing is created until you click Create.",
                new.code,
                new.off.display()
            ),
        );
        card.facts = vec![
            Fact::new("Code", new.code.clone()),
            Fact::new("Discount", new.off.display()),
            Fact::new("On subscriptions", new.duration.display()),
            Fact::new(
                "Uses",
                new.max_redemptions
                    .map_or("unlimited".to_owned(), |m| format!("at most {m}")),
            ),
            Fact::new("Expires", new.expires_at.map_or("never".to_owned(), day_of)),
            Fact::new(
                "Who",
                if new.first_time {
                    "first-time customers only"
                } else {
                    "everyone"
                },
            ),
            Fact::new(
                "Applies to",
                new.for_product.as_deref().map_or_else(
                    || "everything".to_owned(),
                    |p| format!("{p} (found in your catalog when it's created)"),
                ),
            ),
        ];
        card.actions = vec![
            Action::primary("create", "Create"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.drop_cards(|c| !matches!(c.owner, Owner::ConfirmCode { .. }));
        self.show(card, Owner::ConfirmCode { code: new });
    }

    pub(super) fn code_click(&mut self, owner: &Owner, action: &str) {
        let Owner::ConfirmCode { code } = owner else {
            return;
        };
        if action == "create" {
            self.call(Call::CreateCode { code: code.clone() }, Purpose::Answer);
        } else {
            self.reply(format!("OK, {} was not created.", code.code));
        }
    }

    pub(super) fn code_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        match (pending.call, result) {
            (Call::CreateCode { .. }, Ok(CallOutput::Codes(codes))) => {
                if let Some(c) = codes.first() {
                    let mut card = self.new_card(
                        CardKind::Code,
                        &format!("{} is active", c.code),
                        format!(
                            "Customers type {} on the checkout page for {}.",
                            c.code, c.off
                        ),
                    );
                    card.facts = code_facts(c);
                    self.show_info(card);
                }
            }
            (Call::CreateCode { code }, Err(e)) => self.reply(format!(
                "Stripe didn't create {}: {}. Nothing was created.",
                code.code, e.message
            )),
            (Call::ListCodes { code: Some(wanted) }, Ok(CallOutput::Codes(codes))) => {
                match codes.first() {
                    Some(c) => {
                        let times = if c.times_redeemed == 1 {
                            "1 time".to_owned()
                        } else {
                            format!("{} times", c.times_redeemed)
                        };
                        let limit = c
                            .max_redemptions
                            .map_or(String::new(), |m| format!(" of at most {m}"));
                        let state = if c.active { "active" } else { "turned off" };
                        self.reply(format!(
                            "{} ({}) was used {times}{limit}; it is {state}.",
                            c.code, c.off
                        ));
                    }
                    None => self.reply(format!("There is no code called {wanted}.")),
                }
            }
            (Call::ListCodes { code: None }, Ok(CallOutput::Codes(codes))) => {
                let active: Vec<&CodeInfo> = codes.iter().filter(|c| c.active).collect();
                if active.is_empty() {
                    self.reply(
                        "No discount codes are active. Say \"make a code WELCOME15 worth 15% off\" \
                         to create one.",
                    );
                    return;
                }
                let mut card = self.new_card(
                    CardKind::Codes,
                    "Active discount codes",
                    format!(
                        "{} active code{}.",
                        active.len(),
                        if active.len() == 1 { "" } else { "s" }
                    ),
                );
                card.facts = active
                    .iter()
                    .map(|c| {
                        let mut v = format!("{}, used {}", c.off, c.times_redeemed);
                        if let Some(m) = c.max_redemptions {
                            v.push_str(&format!(" of {m}"));
                        }
                        if let Some(e) = c.expires_at {
                            v.push_str(&format!(", until {}", day_of(e)));
                        }
                        if c.first_time {
                            v.push_str(", first orders only");
                        }
                        Fact::new(&c.code, v)
                    })
                    .collect();
                self.show_info(card);
            }
            (Call::TurnOffCode { code }, Ok(CallOutput::Codes(codes))) => match codes.first() {
                Some(c) => self.reply(format!(
                    "{} is turned off: checkouts no longer accept it (it was used {} time{}).",
                    c.code,
                    c.times_redeemed,
                    if c.times_redeemed == 1 { "" } else { "s" }
                )),
                None => self.reply(format!("There is no active code called {code}.")),
            },
            (_, Err(e)) => self.reply(format!("I couldn't reach Stripe for that: {}.", e.message)),
            _ => {}
        }
    }
}

fn code_facts(c: &CodeInfo) -> Vec<Fact> {
    vec![
        Fact::new("Code", c.code.clone()),
        Fact::new("Discount", c.off.clone()),
        Fact::new(
            "Uses",
            c.max_redemptions.map_or_else(
                || format!("{} so far, unlimited", c.times_redeemed),
                |m| format!("{} of at most {m}", c.times_redeemed),
            ),
        ),
        Fact::new("Expires", c.expires_at.map_or("never".to_owned(), day_of)),
        Fact::new(
            "On subscriptions",
            c.duration
                .map_or_else(|| "once".to_owned(), |d| d.display()),
        ),
        Fact::new(
            "Applies to",
            if c.products.is_empty() {
                "everything".to_owned()
            } else {
                c.products.join(", ")
            },
        ),
        Fact::new("Promotion code", c.id.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_the_month_is_its_last_second() {
        // Dec 7, 2026.
        let now = 1_796_601_600_000;
        assert_eq!(
            expiry("end of the month", now).map(day_of).as_deref(),
            Some("Dec 31, 2026 23:59 UTC")
        );
        assert_eq!(months_of("three"), Some(3));
        assert_eq!(months_of("12"), Some(12));
    }
}
