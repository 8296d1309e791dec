//! Slots: values pulled out of an utterance (order number, payment id, amount, date, product,
//! discount code, …).
//!
//! Slot patterns run on the original text, because Stripe ids are case-sensitive. The patterns
//! are data (`intents/_slots.toml`); turning captures into values is code (amounts become exact
//! minor units, months become numbers). A pattern may be limited to some intents (`intents`):
//! slots are read once the utterance's intent is known.
//!
//! Prices are read from the amounts: every amount in the text, in order, with the billing
//! interval written right after it ("$12 a month or $120 a year"). They become `prices` (a
//! list of `{minor, currency, interval}`) and `interval` (the first price's) when an interval is
//! written, or when the request is about a product (then an amount with no interval is
//! `one_time`); `amount` is then the first price's.

use std::collections::BTreeMap;

use regex::Captures;
use serde::{Deserialize, Serialize};

use super::format::{SlotDef, SlotKind};
use super::set::{MultiRegex, SetScratch};
use crate::domain::{Currency, Money};

/// A slot's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SlotValue {
    Text(String),
    Amount(Money),
    /// `YYYY-MM-DD`, `--MM-DD` (no year given) or a relative word (`today`, `yesterday`).
    Date(String),
    /// A number as written ("15" for "15% off").
    Number(serde_json::Number),
    /// Every price of a product, in the order written.
    Prices(Vec<Price>),
}

/// One price of a product: an amount and how often it is charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    #[serde(flatten)]
    pub amount: Money,
    /// `one_time`, `week`, `month` or `year`.
    pub interval: String,
}

/// Intents whose amounts are a product's prices: an amount with no interval written is a
/// one-time price there.
const PRICE_INTENTS: &[&str] = &["create_product", "update_product"];

impl SlotValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SlotValue::Text(s) | SlotValue::Date(s) => Some(s),
            SlotValue::Amount(_) | SlotValue::Number(_) | SlotValue::Prices(_) => None,
        }
    }
}

pub type Slots = BTreeMap<String, SlotValue>;

#[derive(Debug)]
pub struct SlotExtractor {
    set: MultiRegex,
    /// Per pattern: slot name, kind, and the intents it is limited to (empty: all).
    defs: Vec<(String, SlotKind, Vec<String>)>,
    /// The billing interval written right after an amount.
    interval: regex::Regex,
}

impl SlotExtractor {
    pub fn new(defs: &[SlotDef]) -> Result<SlotExtractor, String> {
        let patterns: Vec<String> = defs.iter().map(|d| d.regex.clone()).collect();
        let set = MultiRegex::new(&patterns).map_err(|e| format!("slot patterns: {e}"))?;
        for (i, d) in defs.iter().enumerate() {
            let names: Vec<&str> = set.get(i).capture_names().flatten().collect();
            let needs: &[&[&str]] = match d.kind {
                SlotKind::Text | SlotKind::Number | SlotKind::Interval => &[&["value"]],
                SlotKind::Amount => &[&["number"], &["symbol", "code", "mult"]],
                SlotKind::Date => &[&["month", "rel"]],
            };
            for any_of in needs {
                if !any_of.iter().any(|n| names.contains(n)) {
                    return Err(format!(
                        "slot {}: a {:?} pattern needs a capture named {}",
                        d.name,
                        d.kind,
                        any_of.join(" or ")
                    ));
                }
            }
        }
        Ok(SlotExtractor {
            set,
            defs: defs
                .iter()
                .map(|d| (d.name.clone(), d.kind, d.intents.clone()))
                .collect(),
            interval: regex::Regex::new(
                r"^(?i)\s*(?:(?:/|per|a|an|each|every|billed)\s*)?(?:(?P<month>months?|mo|mth|monthly)|(?P<year>years?|yr|annum|yearly|annually|annual)|(?P<week>weeks?|wk|weekly)|(?P<once>one[- ]?time|once))\b",
            )
            .expect("the interval pattern compiles"),
        })
    }

    /// Every slot found in `text` for an utterance read as `intent`; for a slot with several
    /// patterns the first that yields a value wins. Then the prices (see the module's doc).
    pub fn extract(
        &self,
        text: &str,
        intent: Option<&str>,
        scratch: &mut SetScratch,
        hits: &mut Vec<usize>,
        into: &mut Slots,
    ) {
        hits.clear();
        self.set.matches(text, scratch, hits);
        let mut amounts = 0;
        for &i in hits.iter() {
            let (name, kind, only) = &self.defs[i];
            if *kind == SlotKind::Amount {
                amounts += 1;
            }
            if into.contains_key(name)
                || (!only.is_empty() && !intent.is_some_and(|x| only.iter().any(|o| o == x)))
            {
                continue;
            }
            let value = self
                .set
                .get(i)
                .captures_iter(text)
                .find_map(|caps| match kind {
                    SlotKind::Text => caps
                        .name("value")
                        .map(|m| SlotValue::Text(m.as_str().to_owned())),
                    SlotKind::Amount => amount(&caps).map(SlotValue::Amount),
                    SlotKind::Date => date(&caps).map(SlotValue::Date),
                    SlotKind::Interval => caps
                        .name("value")
                        .and_then(|m| interval_unit(m.as_str()))
                        .map(|u| SlotValue::Text(u.to_owned())),
                    SlotKind::Number => caps
                        .name("value")
                        .and_then(|m| number(m.as_str()))
                        .map(SlotValue::Number),
                });
            if let Some(v) = value {
                into.insert(name.clone(), v);
            }
        }
        if amounts > 0 {
            self.prices(text, intent, hits, into);
        }
    }

    /// Every amount in `text` (from the amount patterns among `hits`), in order, with the
    /// interval written after it; into `prices`, `interval` and `amount` (see the module's doc).
    fn prices(&self, text: &str, intent: Option<&str>, hits: &[usize], into: &mut Slots) {
        let mut found: Vec<(usize, usize, Money)> = Vec::new();
        for &i in hits {
            if self.defs[i].1 != SlotKind::Amount {
                continue;
            }
            for caps in self.set.get(i).captures_iter(text) {
                let whole = caps.get(0).expect("group 0 always matches");
                if let Some(m) = amount(&caps) {
                    found.push((whole.start(), whole.end(), m));
                }
            }
        }
        // In order; of overlapping readings ("$ 5" and "5 bucks"), the one that starts first.
        found.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
        let mut prices: Vec<Price> = Vec::new();
        let mut had_interval: Vec<bool> = Vec::new();
        let mut written = false;
        let mut last_end = 0;
        for (start, end, m) in found {
            if start < last_end {
                continue;
            }
            last_end = end;
            let interval = self.interval.captures(&text[end..]).and_then(|c| {
                ["month", "year", "week", "once"]
                    .into_iter()
                    .find(|n| c.name(n).is_some())
            });
            written |= interval.is_some();
            had_interval.push(interval.is_some());
            let interval = match interval {
                Some("once") | None => "one_time",
                Some(unit) => unit,
            };
            prices.push(Price {
                amount: m,
                interval: interval.to_owned(),
            });
        }
        let product = intent.is_some_and(|i| PRICE_INTENTS.contains(&i));
        if prices.is_empty() || !(written || product) {
            return;
        }
        // A product's interval in words ("a yearly plan for $99") is that of the prices that
        // have none written.
        if product && let Some(SlotValue::Text(unit)) = into.get("interval") {
            for (p, &w) in prices.iter_mut().zip(&had_interval) {
                if !w {
                    p.interval = unit.clone();
                }
            }
        }
        into.insert("amount".to_owned(), SlotValue::Amount(prices[0].amount));
        into.entry("interval".to_owned())
            .or_insert_with(|| SlotValue::Text(prices[0].interval.clone()));
        into.insert("prices".to_owned(), SlotValue::Prices(prices));
    }
}

/// `week`, `month` or `year` for an interval word.
fn interval_unit(word: &str) -> Option<&'static str> {
    let w = word.to_lowercase();
    Some(match w.as_str() {
        "week" | "weekly" => "week",
        "month" | "monthly" => "month",
        "year" | "yearly" | "annual" | "annually" => "year",
        _ => return None,
    })
}

/// "15" or "12.5" (a decimal comma too) as a JSON number.
fn number(raw: &str) -> Option<serde_json::Number> {
    let raw = raw.replace(',', ".");
    if let Ok(n) = raw.parse::<u64>() {
        return Some(n.into());
    }
    raw.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

/// A currency as said: a symbol, a word ("euros") or a 3-letter code.
pub fn currency_of(word: &str) -> Option<Currency> {
    let code = match word.to_lowercase().as_str() {
        "$" | "dollar" | "dollars" | "buck" | "bucks" | "usd" | "us$" => "usd",
        "€" | "euro" | "euros" | "eur" => "eur",
        "£" | "pound" | "pounds" | "quid" | "gbp" => "gbp",
        "¥" | "yen" | "jpy" => "jpy",
        "₹" | "rupee" | "rupees" | "inr" | "rs" | "rs." => "inr",
        "ca$" | "c$" => "cad",
        "a$" | "au$" => "aud",
        "nz$" => "nzd",
        "hk$" => "hkd",
        "s$" => "sgd",
        "r$" => "brl",
        "₦" | "naira" => "ngn",
        "₩" => "krw",
        "₱" => "php",
        "rand" | "r" => "zar",
        "ksh" | "ksh." | "shilling" | "shillings" => "kes",
        other if other.len() == 3 => return Currency::parse(other),
        _ => return None,
    };
    Currency::parse(code)
}

/// A number written in words ("five bucks", "twenty five dollars"), as digits.
fn number_word(raw: &str) -> Option<String> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut total = 0u32;
    for w in raw
        .to_lowercase()
        .split([' ', '-'])
        .filter(|w| !w.is_empty())
    {
        if w == "a" || w == "and" {
            continue;
        }
        if w == "hundred" {
            total = total.max(1) * 100;
        } else if let Some(u) = UNITS.iter().position(|x| *x == w) {
            total += u as u32;
        } else if let Some(t) = TENS.iter().position(|x| *x == w) {
            total += 20 + 10 * t as u32;
        } else {
            return None;
        }
    }
    Some(total.to_string())
}

/// `number` times ten to the `zeros` ("1.2" and 3 give "1200"), as a decimal string.
fn shift(number: &str, zeros: usize) -> String {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let taken = frac.len().min(zeros);
    let mut out = format!("{whole}{}", &frac[..taken]);
    out.extend(std::iter::repeat_n('0', zeros - taken));
    if taken < frac.len() {
        out.push('.');
        out.push_str(&frac[taken..]);
    }
    out
}

fn amount(caps: &Captures<'_>) -> Option<Money> {
    let mult = caps.name("mult").map(|m| m.as_str().trim().to_lowercase());
    // "99p": pence, the minor unit itself. ("50 cents" says no currency: left out.)
    if let Some("p" | "pence") = mult.as_deref() {
        let n = caps.name("number")?.as_str();
        return Money::parse_decimal(&format!("0.{n:0>2}"), Currency::parse("gbp")?);
    }
    let currency = caps
        .name("symbol")
        .or_else(|| caps.name("code"))
        .and_then(|m| currency_of(m.as_str()))
        .or_else(|| {
            // "2 lakh", "1.5 crore": rupees.
            mult.as_deref()
                .filter(|m| m.starts_with("la") || m.starts_with("cr"))
                .and_then(|_| Currency::parse("inr"))
        })?;
    let raw = caps.name("number")?.as_str();
    if raw.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Money::parse_decimal(&number_word(raw)?, currency);
    }
    // "10,50" with a single comma and two digits after it is a decimal comma; so is the comma
    // after points that group thousands ("1.299,00").
    let european = raw.contains('.') && raw.rfind(',') > raw.rfind('.');
    let decimal_comma = !raw.contains('.')
        && raw.matches(',').count() == 1
        && raw.rsplit(',').next().is_some_and(|f| f.len() == 2);
    let number = if european {
        raw.replace('.', "").replace(',', ".")
    } else if decimal_comma {
        raw.replace(',', ".")
    } else {
        raw.replace(',', "")
    };
    let zeros = match mult.as_deref() {
        None => 0,
        Some("k" | "thousand") => 3,
        Some("million" | "mn") => 6,
        Some(m) if m.starts_with("la") => 5,
        Some(m) if m.starts_with("cr") => 7,
        Some(_) => return None,
    };
    Money::parse_decimal(&shift(&number, zeros), currency)
}

fn month_number(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=12).contains(&n).then_some(n);
    }
    let lower = s.to_lowercase();
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    MONTHS
        .iter()
        .position(|m| lower.starts_with(m))
        .map(|i| i as u32 + 1)
}

fn date(caps: &Captures<'_>) -> Option<String> {
    if let Some(rel) = caps.name("rel") {
        return Some(rel.as_str().to_lowercase());
    }
    let month = month_number(caps.name("month")?.as_str())?;
    let day: u32 = caps.name("day")?.as_str().parse().ok()?;
    if !(1..=31).contains(&day) {
        return None;
    }
    match caps
        .name("year")
        .and_then(|y| y.as_str().parse::<i32>().ok())
    {
        Some(y) => {
            let year = if y < 100 { 2000 + y } else { y };
            chrono::NaiveDate::from_ymd_opt(year, month, day)?;
            Some(format!("{year:04}-{month:02}-{day:02}"))
        }
        None => Some(format!("--{month:02}-{day:02}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// One line per kind of slot the blind rounds missed, each read by the embedded files.
    #[test]
    fn each_kind_of_slot_is_read_as_founders_write_it() {
        let m = crate::intents::load_embedded(0.5, 0.08).unwrap();
        for (text, want) in [
            // Amounts: points grouping thousands before a decimal comma; KSh; R for rand.
            (
                "refund 1.299,00 € to the customer",
                json!({"amount": {"minor": 129900, "currency": "eur"}}),
            ),
            (
                "refund KSh 1,500 to wanjiru",
                json!({"amount": {"minor": 150000, "currency": "kes"}}),
            ),
            (
                "refund R150 to the client",
                json!({"amount": {"minor": 15000, "currency": "zar"}}),
            ),
            (
                "give them back CHF 20",
                json!({"amount": {"minor": 2000, "currency": "chf"}}),
            ),
            // A date with the day first when it can only be a day.
            (
                "what happened to the payment on 14/11",
                json!({"date": "--11-14"}),
            ),
            // Product names: after "new plan" with no colon, put up for sale, as the subject.
            (
                "new plan Starter, 15 euros per month",
                json!({"product": "Starter", "interval": "month"}),
            ),
            (
                "the Starter tier should cost £12 now",
                json!({"product": "Starter", "amount": {"minor": 1200, "currency": "gbp"}}),
            ),
            (
                "add the Beginner Bundle, $49 one time",
                json!({"product": "Beginner Bundle", "interval": "one_time"}),
            ),
            // Codes, percentages, e-mails, periods, shares, intervals.
            (
                "create a discount code SAVE20 for 20% off",
                json!({"code": "SAVE20", "percent_off": 20}),
            ),
            (
                "move jo@site.io to the annual plan",
                json!({"email": "jo@site.io", "interval": "year"}),
            ),
            (
                "how many subscribers did we lose last quarter",
                json!({"period": "last quarter"}),
            ),
            (
                "refund a quarter of order 1200",
                json!({"share": "a quarter", "order_number": "1200"}),
            ),
        ] {
            let got = serde_json::to_value(m.classify(text).slots).unwrap();
            for (k, v) in want.as_object().unwrap() {
                assert_eq!(got.get(k), Some(v), "{text}: {k} in {got}");
            }
        }
    }
}
