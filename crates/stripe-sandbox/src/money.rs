//! Money as Stripe counts it: integers in the currency's smallest unit. Most currencies have two
//! decimals (`1000` usd is $10.00), Stripe's zero-decimal currencies have none (`1000` jpy is
//! ¥1,000) and a few have three (`1000` kwd is 1.000 KWD). Used by the hosted pages, receipts,
//! invoices and the refund error messages.

/// Stripe's zero-decimal currencies (docs: "Zero-decimal currencies").
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Stripe's three-decimal currencies.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Digits after the decimal point of a currency's major unit.
pub(crate) fn decimals(currency: &str) -> u32 {
    let c = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        "cad" => "CA$",
        "aud" => "A$",
        "nzd" => "NZ$",
        "inr" => "₹",
        "krw" => "₩",
        "brl" => "R$",
        "mxn" => "MX$",
        _ => return None,
    })
}

/// Groups the digits of a whole number by thousands: `1234567` -> `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1050, "usd"` -> `$10.50`; `1000, "jpy"` -> `¥1,000`; `-500, "eur"` -> `-€5.00`;
/// currencies without a symbol here show their code: `1500, "chf"` -> `CHF 15.00`.
pub(crate) fn format(amount: i64, currency: &str) -> String {
    let currency = currency.to_ascii_lowercase();
    let places = decimals(&currency);
    let abs = amount.unsigned_abs();
    let scale = 10u64.pow(places);
    let number = if places == 0 {
        group(abs)
    } else {
        format!(
            "{}.{:0width$}",
            group(abs / scale),
            abs % scale,
            width = places as usize
        )
    };
    let sign = if amount < 0 { "-" } else { "" };
    match symbol(&currency) {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{} {number}", currency.to_ascii_uppercase()),
    }
}

/// Stripe's processing fee the sandbox charges on a card payment: 2.9% plus 30 of the minor
/// unit (a fixed 30 cents) for two-decimal currencies, 3.6% without a fixed part otherwise.
/// Stripe's real pricing varies by country and card; this is the US list price.
pub(crate) fn stripe_fee(amount: i64, currency: &str) -> i64 {
    if decimals(currency) == 2 {
        (amount * 29 + 500) / 1000 + 30
    } else {
        (amount * 36 + 500) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_formatted_by_currency() {
        assert_eq!(format(1050, "usd"), "$10.50");
        assert_eq!(format(5, "usd"), "$0.05");
        assert_eq!(format(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(format(1000, "jpy"), "¥1,000");
        assert_eq!(format(500, "krw"), "₩500");
        assert_eq!(format(1000, "kwd"), "KWD 1.000");
        assert_eq!(format(-500, "eur"), "-€5.00");
        assert_eq!(format(1500, "chf"), "CHF 15.00");
        assert_eq!(format(0, "gbp"), "£0.00");
    }

    #[test]
    fn decimals_follow_stripe_lists() {
        assert_eq!(decimals("jpy"), 0);
        assert_eq!(decimals("vnd"), 0);
        assert_eq!(decimals("usd"), 2);
        assert_eq!(decimals("bhd"), 3);
    }

    #[test]
    fn fees() {
        assert_eq!(stripe_fee(1000, "usd"), 59);
        assert_eq!(stripe_fee(10_000, "usd"), 320);
        assert_eq!(stripe_fee(1000, "jpy"), 36);
    }
}
