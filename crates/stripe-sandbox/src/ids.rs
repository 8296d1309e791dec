//! Stripe-looking identifiers: a prefix and random base-62 characters (`acct_1Pq…`, `prod_…`).

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base-62 characters.
pub(crate) fn random(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    // 62 * 4 = 248: rejecting bytes >= 248 keeps the choice uniform.
    let mut out = String::with_capacity(len);
    let mut pool = bytes;
    while out.len() < len {
        for b in pool.iter().copied().filter(|b| *b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(b % 62)] as char);
        }
        pool = vec![0u8; len];
        getrandom::fill(&mut pool).expect("the operating system's random source is available");
    }
    out
}

/// A uniformly random number in `[0, 1)`, for jitter.
pub(crate) fn unit_random() -> f64 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the operating system's random source is available");
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

pub(crate) fn account() -> String {
    format!("acct_1{}", random(15))
}
pub(crate) fn product() -> String {
    format!("prod_{}", random(14))
}
pub(crate) fn price() -> String {
    format!("price_1{}", random(23))
}
pub(crate) fn event() -> String {
    format!("evt_1{}", random(23))
}
pub(crate) fn request() -> String {
    format!("req_{}", random(14))
}
pub(crate) fn bank_account() -> String {
    format!("ba_1{}", random(23))
}
pub(crate) fn person() -> String {
    format!("person_1{}", random(23))
}
/// The secret part of an account link URL.
pub(crate) fn link_token() -> String {
    random(24)
}
pub(crate) fn oauth_code() -> String {
    format!("ac_{}", random(32))
}

/// A Checkout Session: `cs_test_...` or `cs_live_...`.
pub(crate) fn checkout_session(live: bool) -> String {
    format!("cs_{}_a1{}", if live { "live" } else { "test" }, random(56))
}
pub(crate) fn line_item() -> String {
    format!("li_1{}", random(23))
}
pub(crate) fn payment_intent() -> String {
    format!("pi_3{}", random(23))
}
pub(crate) fn charge() -> String {
    format!("ch_3{}", random(23))
}
pub(crate) fn payment_method() -> String {
    format!("pm_1{}", random(23))
}
pub(crate) fn refund() -> String {
    format!("re_3{}", random(23))
}
pub(crate) fn balance_transaction() -> String {
    format!("txn_3{}", random(23))
}
pub(crate) fn invoice() -> String {
    format!("in_1{}", random(23))
}
pub(crate) fn invoice_line() -> String {
    format!("il_1{}", random(23))
}
pub(crate) fn customer() -> String {
    format!("cus_{}", random(14))
}
pub(crate) fn subscription() -> String {
    format!("sub_1{}", random(23))
}
pub(crate) fn subscription_item() -> String {
    format!("si_{}", random(14))
}
pub(crate) fn test_clock() -> String {
    format!("clock_1{}", random(23))
}
pub(crate) fn application_fee() -> String {
    format!("fee_1{}", random(23))
}
/// A coupon's generated id: 8 characters, as Stripe's (`Z4OV52SU`).
pub(crate) fn coupon() -> String {
    random(8).to_ascii_uppercase()
}
pub(crate) fn promotion_code() -> String {
    format!("promo_1{}", random(23))
}
pub(crate) fn discount() -> String {
    format!("di_1{}", random(23))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let a = account();
        assert!(a.starts_with("acct_1") && a.len() == 21);
        assert!(price().starts_with("price_1"));
        assert!(random(40).bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(event(), event());
        let r = unit_random();
        assert!((0.0..1.0).contains(&r));
    }
}
