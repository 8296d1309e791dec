//! Slots: values pulled out of an utterance (order number, payment id, amount, date).
//!
//! Slot patterns run on the original text, because Stripe ids are case-sensitive. The patterns
//! are data (`intents/_slots.toml`); turning captures into values is code (amounts become exact
//! minor units, months become numbers).

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
}

impl SlotValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SlotValue::Text(s) | SlotValue::Date(s) => Some(s),
            SlotValue::Amount(_) => None,
        }
    }
}

pub type Slots = BTreeMap<String, SlotValue>;

#[derive(Debug)]
pub struct SlotExtractor {
    set: MultiRegex,
    defs: Vec<(String, SlotKind)>,
}

impl SlotExtractor {
    pub fn new(defs: &[SlotDef]) -> Result<SlotExtractor, String> {
        let patterns: Vec<String> = defs.iter().map(|d| d.regex.clone()).collect();
        let set = MultiRegex::new(&patterns).map_err(|e| format!("slot patterns: {e}"))?;
        for (i, d) in defs.iter().enumerate() {
            let names: Vec<&str> = set.get(i).capture_names().flatten().collect();
            let needs: &[&[&str]] = match d.kind {
                SlotKind::Text => &[&["value"]],
                SlotKind::Amount => &[&["number"], &["symbol", "code"]],
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
            defs: defs.iter().map(|d| (d.name.clone(), d.kind)).collect(),
        })
    }

    /// Every slot found in `text`; for a slot with several patterns the first that yields a
    /// value wins.
    pub fn extract(
        &self,
        text: &str,
        scratch: &mut SetScratch,
        hits: &mut Vec<usize>,
        into: &mut Slots,
    ) {
        hits.clear();
        self.set.matches(text, scratch, hits);
        for &i in hits.iter() {
            let (name, kind) = &self.defs[i];
            if into.contains_key(name) {
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
                });
            if let Some(v) = value {
                into.insert(name.clone(), v);
            }
        }
    }
}

fn currency_of(word: &str) -> Option<Currency> {
    let code = match word.to_lowercase().as_str() {
        "$" | "dollar" | "dollars" | "buck" | "bucks" | "usd" | "us$" => "usd",
        "€" | "euro" | "euros" | "eur" => "eur",
        "£" | "pound" | "pounds" | "quid" | "gbp" => "gbp",
        "¥" | "yen" | "jpy" => "jpy",
        "₹" | "rupee" | "rupees" | "inr" => "inr",
        other if other.len() == 3 => return Currency::parse(other),
        _ => return None,
    };
    Currency::parse(code)
}

fn amount(caps: &Captures<'_>) -> Option<Money> {
    let currency = caps
        .name("symbol")
        .or_else(|| caps.name("code"))
        .and_then(|m| currency_of(m.as_str()))?;
    let raw = caps.name("number")?.as_str();
    // "10,50" with a single comma and two digits after it is a decimal comma.
    let decimal_comma = !raw.contains('.')
        && raw.matches(',').count() == 1
        && raw.rsplit(',').next().is_some_and(|f| f.len() == 2);
    let number = if decimal_comma {
        raw.replace(',', ".")
    } else {
        raw.to_owned()
    };
    Money::parse_decimal(&number, currency)
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
