//! Stripe's test cards and what each does, plus the checks Checkout makes on what a customer
//! types (number, expiry, CVC) before anything is charged. Pure functions.
//!
//! Numbers and outcomes are those of Stripe's "Testing" documentation; decline codes and the
//! customer-facing messages are those of Stripe's "Decline codes" and "Error codes" pages.

/// What paying with a card does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Behavior {
    /// The charge succeeds; funds become available after the usual delay.
    Succeed,
    /// Succeeds, and the funds go to the available balance at once (`...0077`).
    SucceedAvailable,
    /// Succeeds, but a refund of it fails some time later (`...5126`).
    RefundFailsLater,
    /// 3D Secure authentication is required first (`...3155`).
    Authenticate,
    /// Attaching it to a customer succeeds, but every charge fails (`...0341`).
    ChargeFails,
    /// The issuer declines.
    Decline(Decline),
    /// The charge succeeds, then the issuer disputes it or warns of fraud (Stripe's dispute
    /// test cards: `...0259`, `...2685`, `...1976`, `...5423`).
    Then(AfterCharge),
}

/// What happens to a successful charge of one of Stripe's dispute test cards, right after it
/// (Stripe's "Testing" page, Disputes section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AfterCharge {
    /// Disputed as `fraudulent` (`4000 0000 0000 0259`).
    Fraudulent,
    /// Disputed as `product_not_received` (`4000 0000 0000 2685`).
    ProductNotReceived,
    /// Disputed as an inquiry (`4000 0000 0000 1976`): `warning_needs_response`.
    Inquiry,
    /// An early fraud warning (`4000 0000 0000 5423`).
    EarlyFraudWarning,
}

/// A decline as Stripe reports it: in `last_payment_error`, and on the failed charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decline {
    /// The error `code`: `card_declined`, `expired_card`, `incorrect_cvc`.
    pub code: &'static str,
    /// The issuer's `decline_code`.
    pub decline_code: &'static str,
    /// The message shown to the customer.
    pub message: &'static str,
    /// The parameter the error points at, if any (`exp_month`, `cvc`).
    pub param: Option<&'static str>,
}

impl Decline {
    /// `outcome.seller_message` of the failed charge.
    pub fn seller_message(&self) -> String {
        if self.decline_code == "generic_decline" {
            "The bank did not return any further details with this decline.".to_owned()
        } else {
            format!(
                "The bank returned the decline code `{}`.",
                self.decline_code
            )
        }
    }
}

const DECLINED: &str = "Your card was declined.";

/// The test cards Stripe documents, by number.
const TEST_CARDS: &[(&str, Behavior)] = &[
    ("4242424242424242", Behavior::Succeed),
    ("4000056655665556", Behavior::Succeed),
    ("5555555555554444", Behavior::Succeed),
    ("2223003122003222", Behavior::Succeed),
    ("5200828282828210", Behavior::Succeed),
    ("378282246310005", Behavior::Succeed),
    ("6011111111111117", Behavior::Succeed),
    ("3056930009020004", Behavior::Succeed),
    ("3566002020360505", Behavior::Succeed),
    ("6200000000000005", Behavior::Succeed),
    ("4000000000000077", Behavior::SucceedAvailable),
    ("4000000000005126", Behavior::RefundFailsLater),
    ("4000002500003155", Behavior::Authenticate),
    ("4000000000000341", Behavior::ChargeFails),
    ("4000000000000259", Behavior::Then(AfterCharge::Fraudulent)),
    (
        "4000000000002685",
        Behavior::Then(AfterCharge::ProductNotReceived),
    ),
    ("4000000000001976", Behavior::Then(AfterCharge::Inquiry)),
    (
        "4000000000005423",
        Behavior::Then(AfterCharge::EarlyFraudWarning),
    ),
    (
        "4000000000000002",
        Behavior::Decline(Decline {
            code: "card_declined",
            decline_code: "generic_decline",
            message: DECLINED,
            param: None,
        }),
    ),
    (
        "4000000000009995",
        Behavior::Decline(Decline {
            code: "card_declined",
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
            param: None,
        }),
    ),
    (
        "4000000000009987",
        Behavior::Decline(Decline {
            code: "card_declined",
            decline_code: "lost_card",
            message: DECLINED,
            param: None,
        }),
    ),
    (
        "4000000000009979",
        Behavior::Decline(Decline {
            code: "card_declined",
            decline_code: "stolen_card",
            message: DECLINED,
            param: None,
        }),
    ),
    (
        "4000000000000069",
        Behavior::Decline(Decline {
            code: "expired_card",
            decline_code: "expired_card",
            message: "Your card has expired.",
            param: Some("exp_month"),
        }),
    ),
    (
        "4000000000000127",
        Behavior::Decline(Decline {
            code: "incorrect_cvc",
            decline_code: "incorrect_cvc",
            message: "Your card's security code is incorrect.",
            param: Some("cvc"),
        }),
    ),
    (
        "4000000000000119",
        Behavior::Decline(Decline {
            code: "processing_error",
            decline_code: "processing_error",
            message: "An error occurred while processing your card. Try again in a little bit.",
            param: None,
        }),
    ),
];

/// How a charge of the `...0341` card fails (it attached fine).
pub(crate) const CHARGE_FAILS: Decline = Decline {
    code: "card_declined",
    decline_code: "generic_decline",
    message: DECLINED,
    param: None,
};

/// What Stripe answers in live mode to one of its test cards.
pub(crate) const TEST_CARD_IN_LIVE_MODE: Decline = Decline {
    code: "card_declined",
    decline_code: "live_mode_test_card",
    message: "Your card was declined. Your request was in live mode, but used a known test card.",
    param: None,
};

/// What a card does in a mode: live mode refuses Stripe's test cards, and any other valid
/// number goes through.
pub(crate) fn behavior_in(card: &Card, live: bool) -> Behavior {
    if !live {
        return card.behavior.clone();
    }
    match &card.behavior {
        Behavior::Decline(d) if d.decline_code == "test_mode_live_card" => Behavior::Succeed,
        _ => Behavior::Decline(TEST_CARD_IN_LIVE_MODE),
    }
}

/// What Stripe answers in test mode to a real (non-test) card number.
pub(crate) const LIVE_CARD_IN_TEST_MODE: Decline = Decline {
    code: "card_declined",
    decline_code: "test_mode_live_card",
    message: "Your card was declined. Your request was in test mode, but used a non test card. \
              For a list of valid test cards, visit: https://stripe.com/docs/testing.",
    param: None,
};

/// The card as typed, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Card {
    pub number: String,
    pub brand: &'static str,
    pub funding: &'static str,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub behavior: Behavior,
}

/// Removes the spaces and dashes people type in card numbers.
pub(crate) fn normalize(number: &str) -> String {
    number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

/// The card brand Stripe shows (`visa`, `mastercard`, `amex`, ...), from the number's prefix.
pub(crate) fn brand(number: &str) -> &'static str {
    let prefix = |n: usize| number.get(..n).and_then(|p| p.parse::<u32>().ok());
    if number.starts_with('4') {
        "visa"
    } else if prefix(2).is_some_and(|p| (51..=55).contains(&p))
        || prefix(4).is_some_and(|p| (2221..=2720).contains(&p))
    {
        "mastercard"
    } else if number.starts_with("34") || number.starts_with("37") {
        "amex"
    } else if number.starts_with("6011") || number.starts_with("65") {
        "discover"
    } else if number.starts_with("35") {
        "jcb"
    } else if number.starts_with("30") || number.starts_with("36") || number.starts_with("38") {
        "diners"
    } else if number.starts_with("62") {
        "unionpay"
    } else {
        "unknown"
    }
}

/// The Luhn checksum every card number carries.
pub(crate) fn luhn(number: &str) -> bool {
    if number.len() < 12 || number.len() > 19 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `MM / YY`, `MM/YY`, `MMYY` or `MM/YYYY` -> (month, four-digit year).
pub(crate) fn parse_expiry(raw: &str) -> Option<(u32, i32)> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let (m, y) = match digits.len() {
        4 => (&digits[..2], &digits[2..]),
        6 => (&digits[..2], &digits[2..]),
        _ => return None,
    };
    let month: u32 = m.parse().ok()?;
    let mut year: i32 = y.parse().ok()?;
    if year < 100 {
        year += 2000;
    }
    (1..=12).contains(&month).then_some((month, year))
}

/// Checks what the customer typed, as Checkout does before submitting; the error is the
/// message Checkout shows under the field. `now` is the sandbox clock (Unix seconds).
pub(crate) fn check(number: &str, expiry: &str, cvc: &str, now: i64) -> Result<Card, &'static str> {
    let number = normalize(number);
    if number.is_empty() {
        return Err("Your card number is incomplete.");
    }
    if !luhn(&number) {
        return Err("Your card number is invalid.");
    }
    let Some((exp_month, exp_year)) = parse_expiry(expiry) else {
        return Err("Your card's expiration date is incomplete.");
    };
    let today = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    let (year, month) = (
        chrono::Datelike::year(&today),
        chrono::Datelike::month(&today),
    );
    if exp_year < year || (exp_year == year && exp_month < month) {
        return Err("Your card's expiration date is in the past.");
    }
    if exp_year > year + 50 {
        return Err("Your card's expiration year is invalid.");
    }
    let brand = brand(&number);
    let cvc_len = if brand == "amex" { 4 } else { 3 };
    let cvc = cvc.trim();
    if cvc.len() != cvc_len || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Your card's security code is incomplete.");
    }
    let behavior = TEST_CARDS
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, b)| b.clone())
        .unwrap_or(Behavior::Decline(LIVE_CARD_IN_TEST_MODE));
    let funding = if number == "4000056655665556" || number == "5200828282828210" {
        "debit"
    } else {
        "credit"
    };
    Ok(Card {
        last4: number[number.len() - 4..].to_owned(),
        number,
        brand,
        funding,
        exp_month,
        exp_year,
        behavior,
    })
}

/// The test cards a hosted page lists for the customer, with what they do.
pub(crate) const PAGE_LIST: &[(&str, &str)] = &[
    ("4242 4242 4242 4242", "succeeds"),
    ("4000 0025 0000 3155", "asks for authentication (3D Secure)"),
    ("4000 0000 0000 0002", "declined (generic_decline)"),
    ("4000 0000 0000 9995", "declined (insufficient_funds)"),
    ("4000 0000 0000 9987", "declined (lost_card)"),
    ("4000 0000 0000 0069", "declined (expired_card)"),
    ("4000 0000 0000 0127", "declined (incorrect_cvc)"),
    ("4000 0000 0000 0077", "succeeds, funds available at once"),
    (
        "4000 0000 0000 5126",
        "succeeds; a refund of it fails later",
    ),
    (
        "4000 0000 0000 0341",
        "saved for a subscription, but every charge fails",
    ),
    (
        "4000 0000 0000 0259",
        "succeeds, then disputed as fraudulent",
    ),
    (
        "4000 0000 0000 2685",
        "succeeds, then disputed as product not received",
    ),
    (
        "4000 0000 0000 1976",
        "succeeds, then disputed as an inquiry",
    ),
    (
        "4000 0000 0000 5423",
        "succeeds, then an early fraud warning",
    ),
];

/// Stripe's test PaymentMethod ids (`pm_card_visa`...) and the card number each stands for.
pub(crate) const TEST_PAYMENT_METHODS: &[(&str, &str)] = &[
    ("pm_card_visa", "4242424242424242"),
    ("pm_card_mastercard", "5555555555554444"),
    ("pm_card_amex", "378282246310005"),
    ("pm_card_chargeCustomerFail", "4000000000000341"),
    ("pm_card_visa_chargeDeclined", "4000000000000002"),
    (
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "4000000000009995",
    ),
    ("pm_card_authenticationRequired", "4000002500003155"),
    ("pm_card_createDispute", "4000000000000259"),
    (
        "pm_card_createDisputeProductNotReceived",
        "4000000000002685",
    ),
    ("pm_card_createDisputeInquiry", "4000000000001976"),
];

#[cfg(test)]
mod tests {
    use super::*;

    // 2030-01-15
    const NOW: i64 = 1_894_665_600;

    fn behavior(number: &str) -> Behavior {
        check(number, "12 / 34", "123", NOW).unwrap().behavior
    }

    #[test]
    fn the_card_table_is_stripes() {
        assert_eq!(behavior("4242 4242 4242 4242"), Behavior::Succeed);
        assert_eq!(behavior("4000002500003155"), Behavior::Authenticate);
        assert_eq!(behavior("4000000000000077"), Behavior::SucceedAvailable);
        assert_eq!(behavior("4000-0000-0000-5126"), Behavior::RefundFailsLater);
        assert_eq!(
            behavior("4000 0000 0000 0259"),
            Behavior::Then(AfterCharge::Fraudulent)
        );
        assert_eq!(
            behavior("4000000000002685"),
            Behavior::Then(AfterCharge::ProductNotReceived)
        );
        assert_eq!(
            behavior("4000000000001976"),
            Behavior::Then(AfterCharge::Inquiry)
        );
        assert_eq!(
            behavior("4000000000005423"),
            Behavior::Then(AfterCharge::EarlyFraudWarning)
        );
        let decline = |n: &str| match behavior(n) {
            Behavior::Decline(d) => (d.code, d.decline_code),
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(
            decline("4000000000000002"),
            ("card_declined", "generic_decline")
        );
        assert_eq!(
            decline("4000000000009995"),
            ("card_declined", "insufficient_funds")
        );
        assert_eq!(decline("4000000000009987"), ("card_declined", "lost_card"));
        assert_eq!(
            decline("4000000000000069"),
            ("expired_card", "expired_card")
        );
        assert_eq!(
            decline("4000000000000127"),
            ("incorrect_cvc", "incorrect_cvc")
        );
        // A real card number in test mode.
        assert_eq!(
            decline("4111111111111111"),
            ("card_declined", "test_mode_live_card")
        );
    }

    #[test]
    fn every_table_number_passes_luhn() {
        for (n, _) in TEST_CARDS {
            assert!(luhn(n), "{n}");
        }
        for (n, _) in PAGE_LIST {
            assert!(luhn(&normalize(n)), "{n}");
        }
        assert!(!luhn("4242424242424241"));
    }

    #[test]
    fn brands_and_inputs() {
        assert_eq!(brand("4242424242424242"), "visa");
        assert_eq!(brand("5555555555554444"), "mastercard");
        assert_eq!(brand("2223003122003222"), "mastercard");
        assert_eq!(brand("378282246310005"), "amex");
        assert_eq!(parse_expiry("04 / 31"), Some((4, 2031)));
        assert_eq!(parse_expiry("4/31"), None);
        assert_eq!(parse_expiry("13/31"), None);
        assert_eq!(parse_expiry("12/2031"), Some((12, 2031)));
        let card = check("4242 4242 4242 4242", "1234", "123", NOW).unwrap();
        assert_eq!((card.last4.as_str(), card.exp_year), ("4242", 2034));
        assert_eq!(
            check("4242424242424242", "12/29", "123", NOW).unwrap_err(),
            "Your card's expiration date is in the past."
        );
        assert!(check("4242424242424242", "12/34", "12", NOW).is_err());
        assert!(check("378282246310005", "12/34", "123", NOW).is_err());
        assert!(check("378282246310005", "12/34", "1234", NOW).is_ok());
        assert_eq!(
            check("1234", "12/34", "123", NOW).unwrap_err(),
            "Your card number is invalid."
        );
    }
}
