//! Coupons, promotion codes and the discounts they become, with Stripe's rules from its
//! documentation ("Coupons and promotion codes", the Coupon, Promotion Code and Discount API
//! references). Pure data and functions; the endpoints are in `discounts_api.rs`, the JSON shapes
//! in `shapes_discounts.rs`.
//!
//! - A coupon takes `percent_off` (0 < p <= 100) or `amount_off` with its `currency`, never
//!   both; `duration` is `once` (the first invoice, or the one payment of a Checkout Session),
//!   `repeating` (every invoice for `duration_in_months` months from when it is applied) or
//!   `forever`. It stops being `valid` after `redeem_by` or once `times_redeemed` reaches
//!   `max_redemptions`. `applies_to.products` limits it to those products' lines.
//! - A promotion code is a customer-facing `code` for a coupon (`promotion[coupon]`), unique
//!   regardless of case among active codes for the same customer; it can be redeemed while it
//!   is active, its coupon is valid, before `expires_at` and fewer than `max_redemptions` times,
//!   for a customer without earlier successful payments or invoices when
//!   `restrictions.first_time_transaction` is set, and for an order of at least
//!   `restrictions.minimum_amount` in `minimum_amount_currency`.
//! - A discount is the coupon applied: one per Checkout Session or subscription here (Stripe
//!   allows one on a Checkout Session). Its amount is taken from the lines it applies to, in
//!   proportion to their amounts; percentages are rounded to the currency's smallest unit.
//! - A redemption is counted once, when a Checkout Session completes (or a subscription is
//!   created) with the discount.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `duration` of a coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CouponDuration {
    Once,
    Repeating,
    Forever,
}

impl CouponDuration {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponDuration::Once => "once",
            CouponDuration::Repeating => "repeating",
            CouponDuration::Forever => "forever",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Coupon {
    pub id: String,
    pub created: i64,
    pub name: Option<String>,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    /// With `amount_off`.
    pub currency: Option<String>,
    pub duration: CouponDuration,
    pub duration_in_months: Option<u32>,
    pub max_redemptions: Option<u64>,
    pub redeem_by: Option<i64>,
    /// `applies_to.products`; `None` applies to everything.
    pub applies_to: Option<Vec<String>>,
    pub times_redeemed: u64,
    pub metadata: BTreeMap<String, String>,
}

impl Coupon {
    /// Whether it can still be applied: before `redeem_by`, under `max_redemptions`.
    pub fn valid(&self, now: i64) -> bool {
        self.redeem_by.is_none_or(|r| now < r)
            && self.max_redemptions.is_none_or(|m| self.times_redeemed < m)
    }

    /// Whether it discounts lines of `product`.
    pub fn applies_to_product(&self, product: &str) -> bool {
        self.applies_to
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p == product))
    }

    /// "25% off", "$5.00 off".
    pub fn describe(&self) -> String {
        match (self.percent_off, self.amount_off, &self.currency) {
            (Some(p), _, _) => format!("{} off", percent_text(p)),
            (None, Some(a), Some(c)) => format!("{} off", super::money::format(a, c)),
            _ => "discount".to_owned(),
        }
    }
}

/// `25` -> `25%`, `12.5` -> `12.5%`.
fn percent_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PromotionCode {
    /// `promo_...`
    pub id: String,
    pub created: i64,
    /// As given; compared regardless of case.
    pub code: String,
    pub coupon: String,
    pub active: bool,
    pub customer: Option<String>,
    pub max_redemptions: Option<u64>,
    pub expires_at: Option<i64>,
    pub first_time_transaction: bool,
    pub minimum_amount: Option<i64>,
    pub minimum_amount_currency: Option<String>,
    pub times_redeemed: u64,
    pub metadata: BTreeMap<String, String>,
}

impl PromotionCode {
    pub fn same_code(&self, code: &str) -> bool {
        self.code.eq_ignore_ascii_case(code.trim())
    }
}

super::state::keyed_by_id!(Coupon, PromotionCode);

/// A coupon applied (`di_...`): to a Checkout Session, or to a subscription and its invoices.
/// It keeps the coupon as it was when applied, so deleting the coupon later changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Discount {
    pub id: String,
    pub coupon: Coupon,
    pub promotion_code: Option<String>,
    /// The promotion code's customer-facing text, for the hosted pages.
    #[serde(default)]
    pub code: Option<String>,
    /// Typed by the customer on the hosted page (so removable there).
    #[serde(default)]
    pub entered_on_page: bool,
    pub start: i64,
    /// `repeating`: when it stops applying.
    pub end: Option<i64>,
    pub checkout_session: Option<String>,
    pub customer: Option<String>,
    pub subscription: Option<String>,
}

impl Discount {
    /// What the hosted pages call it: the code, else the coupon's name.
    pub fn label(&self) -> String {
        self.code
            .clone()
            .or_else(|| self.coupon.name.clone())
            .unwrap_or_else(|| "Discount".to_owned())
    }

    pub fn new(id: String, coupon: Coupon, promotion_code: Option<String>, start: i64) -> Discount {
        let end = match (coupon.duration, coupon.duration_in_months) {
            (CouponDuration::Repeating, Some(months)) => Some(add_months(start, months)),
            _ => None,
        };
        Discount {
            id,
            coupon,
            promotion_code,
            code: None,
            entered_on_page: false,
            start,
            end,
            checkout_session: None,
            customer: None,
            subscription: None,
        }
    }

    /// Whether it discounts an invoice created at `at`; `first` is the subscription's first
    /// invoice. `once` applies to the first invoice only, `repeating` until `end`.
    pub fn applies_to_invoice(&self, at: i64, first: bool) -> bool {
        match self.coupon.duration {
            CouponDuration::Once => first,
            CouponDuration::Repeating => self.end.is_none_or(|end| at < end),
            CouponDuration::Forever => true,
        }
    }
}

/// `start` plus `months` calendar months (Jan 31 + 1 month = Feb 28/29).
pub(crate) fn add_months(start: i64, months: u32) -> i64 {
    chrono::DateTime::from_timestamp(start, 0)
        .and_then(|d| d.checked_add_months(chrono::Months::new(months)))
        .map_or(start, |d| d.timestamp())
}

/// One line a discount may reduce: its product and its amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub product: &'a str,
    pub amount: i64,
}

/// What `coupon` takes off `lines` in `currency`: the total and each line's share (same order).
/// Lines of other products than `applies_to` get nothing; an `amount_off` coupon in another
/// currency takes nothing; the discount never exceeds what it applies to.
pub(crate) fn allocate(coupon: &Coupon, currency: &str, lines: &[Line<'_>]) -> (i64, Vec<i64>) {
    let eligible: Vec<bool> = lines
        .iter()
        .map(|l| l.amount > 0 && coupon.applies_to_product(l.product))
        .collect();
    let base: i64 = lines
        .iter()
        .zip(&eligible)
        .filter(|(_, e)| **e)
        .map(|(l, _)| l.amount)
        .sum();
    let total = match (coupon.percent_off, coupon.amount_off, &coupon.currency) {
        (Some(p), _, _) => ((base as f64) * p / 100.0).round() as i64,
        (None, Some(a), Some(c)) if c == currency => a,
        _ => 0,
    }
    .clamp(0, base.max(0));
    let mut shares = vec![0; lines.len()];
    if total == 0 {
        return (0, shares);
    }
    let last = eligible.iter().rposition(|e| *e).unwrap_or(0);
    let mut given = 0;
    for (i, line) in lines.iter().enumerate() {
        if !eligible[i] {
            continue;
        }
        let share = if i == last {
            total - given
        } else {
            // i128: amounts up to Stripe's largest times a total never overflow.
            i64::try_from(i128::from(total) * i128::from(line.amount) / i128::from(base))
                .unwrap_or(0)
        };
        shares[i] = share;
        given += share;
    }
    (total, shares)
}

/// Why a promotion code (or coupon) cannot be redeemed now. Each has Stripe's API message
/// (`api_message`) and the hosted checkout page's (`page_message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No active code with that text (or it belongs to another customer).
    Unknown,
    Inactive,
    Expired,
    UsedUp,
    /// `restrictions.first_time_transaction` and the customer has paid before.
    NotFirstTime,
    /// The order is under `restrictions.minimum_amount` (in `minimum_amount_currency`).
    Minimum {
        amount: i64,
        currency: String,
    },
    /// The code's minimum is in another currency than the order.
    Currency,
    /// The coupon is no longer valid (past `redeem_by`, or used up).
    CouponInvalid,
    /// The coupon discounts none of the order's products.
    NoProducts,
}

impl Refusal {
    /// What Stripe's API answers (400).
    pub fn api_message(&self, what: &str) -> String {
        match self {
            Refusal::Unknown => format!("No such promotion code: '{what}'"),
            Refusal::Inactive => format!("This promotion code is inactive: '{what}'."),
            Refusal::Expired => format!("This promotion code has expired: '{what}'."),
            Refusal::UsedUp => format!(
                "This promotion code has been redeemed the maximum number of times: '{what}'."
            ),
            Refusal::NotFirstTime => "This promotion code cannot be redeemed because the \
                                      associated customer has prior transactions."
                .to_owned(),
            Refusal::Minimum { amount, currency } => format!(
                "This promotion code requires a minimum order amount of {}.",
                super::money::format(*amount, currency)
            ),
            Refusal::Currency => format!(
                "This promotion code cannot be applied because its minimum amount is in another \
                 currency: '{what}'."
            ),
            Refusal::CouponInvalid => format!("Coupon expired: {what}"),
            Refusal::NoProducts => format!(
                "This coupon cannot be applied because it does not apply to any of the products \
                 in this order: '{what}'."
            ),
        }
    }

    /// What the hosted checkout page says under its promotion code field.
    pub fn page_message(&self) -> String {
        match self {
            Refusal::Unknown | Refusal::Inactive => "This code is invalid.".to_owned(),
            Refusal::Expired | Refusal::CouponInvalid => "This code has expired.".to_owned(),
            Refusal::UsedUp => {
                "This code has already been used the maximum number of times.".to_owned()
            }
            Refusal::NotFirstTime => {
                "This code is only valid for customers making their first purchase.".to_owned()
            }
            Refusal::Minimum { amount, currency } => format!(
                "This code requires a minimum order of {}.",
                super::money::format(*amount, currency)
            ),
            Refusal::Currency | Refusal::NoProducts => {
                "This code isn't valid for the items in your order.".to_owned()
            }
        }
    }

    /// Stripe's error code for the API answer.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unknown => "resource_missing",
            Refusal::CouponInvalid => "coupon_expired",
            _ => "promotion_code_invalid",
        }
    }
}

/// What a redemption is checked against: the order's lines and currency, the customer, and
/// whether the customer has paid this account before (`None`: not known yet; checked again
/// when the customer pays).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order<'a> {
    pub currency: &'a str,
    pub lines: &'a [Line<'a>],
    pub customer: Option<&'a str>,
    pub paid_before: Option<bool>,
    pub now: i64,
}

/// Whether `coupon` can be applied to `order`.
pub(crate) fn check_coupon(coupon: &Coupon, order: &Order<'_>) -> Result<(), Refusal> {
    if !coupon.valid(order.now) {
        return Err(Refusal::CouponInvalid);
    }
    if coupon.applies_to.is_some()
        && !order
            .lines
            .iter()
            .any(|l| coupon.applies_to_product(l.product))
    {
        return Err(Refusal::NoProducts);
    }
    Ok(())
}

/// Whether `code` (of `coupon`) can be redeemed for `order`.
pub(crate) fn check_code(
    code: &PromotionCode,
    coupon: Option<&Coupon>,
    order: &Order<'_>,
) -> Result<(), Refusal> {
    if code
        .customer
        .as_deref()
        .is_some_and(|c| order.customer != Some(c))
    {
        return Err(Refusal::Unknown);
    }
    let Some(coupon) = coupon else {
        return Err(Refusal::Inactive);
    };
    if !code.active {
        return Err(Refusal::Inactive);
    }
    if code.expires_at.is_some_and(|e| order.now >= e) {
        return Err(Refusal::Expired);
    }
    if code
        .max_redemptions
        .is_some_and(|m| code.times_redeemed >= m)
    {
        return Err(Refusal::UsedUp);
    }
    if coupon
        .max_redemptions
        .is_some_and(|m| coupon.times_redeemed >= m)
    {
        return Err(Refusal::UsedUp);
    }
    check_coupon(coupon, order)?;
    if let (Some(min), Some(currency)) = (code.minimum_amount, &code.minimum_amount_currency) {
        if currency != order.currency {
            return Err(Refusal::Currency);
        }
        let subtotal: i64 = order.lines.iter().map(|l| l.amount).sum();
        if subtotal < min {
            return Err(Refusal::Minimum {
                amount: min,
                currency: currency.clone(),
            });
        }
    }
    if code.first_time_transaction && order.paid_before == Some(true) {
        return Err(Refusal::NotFirstTime);
    }
    Ok(())
}

/// The code a customer typed, among an account's promotion codes (regardless of case).
pub(crate) fn find_code<'a>(
    codes: impl Iterator<Item = &'a PromotionCode>,
    text: &str,
    customer: Option<&str>,
) -> Option<&'a PromotionCode> {
    let mut matching: Vec<&PromotionCode> = codes.filter(|c| c.same_code(text)).collect();
    // An active code for this customer first, then an active code for anyone, then any.
    matching.sort_by_key(|c| {
        let whose = match c.customer.as_deref() {
            Some(owner) if Some(owner) == customer => 0,
            None => 1,
            Some(_) => 2,
        };
        (!c.active, whose)
    });
    matching.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon() -> Coupon {
        Coupon {
            id: "SUMMER".into(),
            created: 0,
            name: None,
            percent_off: Some(25.0),
            amount_off: None,
            currency: None,
            duration: CouponDuration::Once,
            duration_in_months: None,
            max_redemptions: None,
            redeem_by: None,
            applies_to: None,
            times_redeemed: 0,
            metadata: BTreeMap::new(),
        }
    }

    fn code() -> PromotionCode {
        PromotionCode {
            id: "promo_1".into(),
            created: 0,
            code: "Summer25".into(),
            coupon: "SUMMER".into(),
            active: true,
            customer: None,
            max_redemptions: None,
            expires_at: None,
            first_time_transaction: false,
            minimum_amount: None,
            minimum_amount_currency: None,
            times_redeemed: 0,
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn percentages_split_over_lines_in_proportion() {
        let lines = [
            Line {
                product: "prod_a",
                amount: 5000,
            },
            Line {
                product: "prod_b",
                amount: 500,
            },
        ];
        assert_eq!(allocate(&coupon(), "usd", &lines), (1375, vec![1250, 125]));
        let odd = [
            Line {
                product: "a",
                amount: 333,
            },
            Line {
                product: "b",
                amount: 333,
            },
            Line {
                product: "c",
                amount: 334,
            },
        ];
        let (total, shares) = allocate(
            &Coupon {
                percent_off: Some(10.0),
                ..coupon()
            },
            "usd",
            &odd,
        );
        assert_eq!(total, 100);
        assert_eq!(shares.iter().sum::<i64>(), 100);
    }

    #[test]
    fn amounts_off_are_capped_and_currency_bound() {
        let c = Coupon {
            percent_off: None,
            amount_off: Some(1000),
            currency: Some("usd".into()),
            ..coupon()
        };
        let lines = [Line {
            product: "a",
            amount: 600,
        }];
        assert_eq!(allocate(&c, "usd", &lines), (600, vec![600]));
        assert_eq!(allocate(&c, "eur", &lines), (0, vec![0]));
    }

    #[test]
    fn applies_to_limits_the_lines() {
        let c = Coupon {
            applies_to: Some(vec!["prod_b".into()]),
            ..coupon()
        };
        let lines = [
            Line {
                product: "prod_a",
                amount: 1000,
            },
            Line {
                product: "prod_b",
                amount: 2000,
            },
        ];
        assert_eq!(allocate(&c, "usd", &lines), (500, vec![0, 500]));
        let none = [Line {
            product: "prod_a",
            amount: 1000,
        }];
        let order = Order {
            currency: "usd",
            lines: &none,
            customer: None,
            paid_before: None,
            now: 0,
        };
        assert_eq!(check_coupon(&c, &order), Err(Refusal::NoProducts));
    }

    #[test]
    fn codes_are_refused_for_stripes_reasons() {
        let lines = [Line {
            product: "a",
            amount: 4000,
        }];
        let order = Order {
            currency: "usd",
            lines: &lines,
            customer: None,
            paid_before: Some(false),
            now: 100,
        };
        let c = coupon();
        assert_eq!(check_code(&code(), Some(&c), &order), Ok(()));
        let expired = PromotionCode {
            expires_at: Some(100),
            ..code()
        };
        assert_eq!(
            check_code(&expired, Some(&c), &order),
            Err(Refusal::Expired)
        );
        let used = PromotionCode {
            max_redemptions: Some(2),
            times_redeemed: 2,
            ..code()
        };
        assert_eq!(check_code(&used, Some(&c), &order), Err(Refusal::UsedUp));
        let first = PromotionCode {
            first_time_transaction: true,
            ..code()
        };
        let returning = Order {
            paid_before: Some(true),
            ..order
        };
        assert_eq!(
            check_code(&first, Some(&c), &returning),
            Err(Refusal::NotFirstTime)
        );
        let minimum = PromotionCode {
            minimum_amount: Some(5000),
            minimum_amount_currency: Some("usd".into()),
            ..code()
        };
        assert!(matches!(
            check_code(&minimum, Some(&c), &order),
            Err(Refusal::Minimum { amount: 5000, .. })
        ));
        assert_eq!(
            check_code(&code(), None, &order),
            Err(Refusal::Inactive),
            "a deleted coupon's codes are inactive"
        );
        let mine = PromotionCode {
            customer: Some("cus_1".into()),
            ..code()
        };
        assert_eq!(check_code(&mine, Some(&c), &order), Err(Refusal::Unknown));
        let past = Coupon {
            redeem_by: Some(50),
            ..coupon()
        };
        assert_eq!(
            check_code(&code(), Some(&past), &order),
            Err(Refusal::CouponInvalid)
        );
        assert_eq!(
            Refusal::NotFirstTime.api_message("x"),
            "This promotion code cannot be redeemed because the associated customer has prior \
             transactions."
        );
    }

    #[test]
    fn durations_decide_which_invoices_are_discounted() {
        let start = 1_700_000_000;
        let repeating = Discount::new(
            "di_1".into(),
            Coupon {
                duration: CouponDuration::Repeating,
                duration_in_months: Some(3),
                ..coupon()
            },
            None,
            start,
        );
        let end = repeating.end.unwrap();
        assert_eq!(end, add_months(start, 3));
        assert!(repeating.applies_to_invoice(start, true));
        assert!(repeating.applies_to_invoice(add_months(start, 2), false));
        assert!(!repeating.applies_to_invoice(end, false));
        let once = Discount::new("di_2".into(), coupon(), None, start);
        assert!(once.applies_to_invoice(start, true));
        assert!(!once.applies_to_invoice(start + 10, false));
        assert_eq!(once.end, None);
    }

    #[test]
    fn codes_match_regardless_of_case() {
        let codes = [
            PromotionCode {
                active: false,
                id: "promo_old".into(),
                ..code()
            },
            code(),
        ];
        assert_eq!(
            find_code(codes.iter(), "SUMMER25", None).map(|c| c.id.as_str()),
            Some("promo_1")
        );
        assert!(find_code(codes.iter(), "WINTER", None).is_none());
    }
}
