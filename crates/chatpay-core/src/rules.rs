//! The business rules, each decided once: may this project sell, may this order be refunded and
//! how much, may this subscription be cancelled or resumed, may this checkout have a trial.
//!
//! The chat's flows and the HTTP API ask the same function and get the same answer: a plan to
//! carry out, or a [`Refused`] with one code and one wording, which the chat says as it is and
//! the API sends as `{"code", "message"}` (with the status its [`RefusalKind`] gives). A rule is
//! a pure function of the values it judges; nothing here reads or writes anything.

use crate::account::{AccountSnapshot, AccountState};
use crate::billing::{Subscription, SubscriptionChange};
use crate::catalog::{CodeDuration, CodeInfo, NewCode, NewProduct, Off};
use crate::domain::{Currency, Money};
use crate::orders::Order;
use crate::plans::{Plan, PlanChange, PlanTiming, current_plan};

/// Why a request can't be carried out, said once for every caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub kind: RefusalKind,
    /// A stable snake_case code (documented with the API).
    pub code: &'static str,
    /// What to tell the person, and what they can do instead.
    pub message: String,
}

/// What kind of refusal it is, which the HTTP API turns into a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// This request breaks a rule about what it asks for (an over-refund, an unpaid order, a
    /// subscription that ended, a bad trial): 422.
    Rejected,
    /// The project isn't ready for it (Stripe not connected, charges not enabled yet): 409.
    NotReady,
    /// The project was created without the backend: payments can never be used in it.
    BackendRequired,
}

fn rejected(code: &'static str, message: String) -> Refused {
    Refused {
        kind: RefusalKind::Rejected,
        code,
        message,
    }
}

fn not_ready(code: &'static str, message: String) -> Refused {
    Refused {
        kind: RefusalKind::NotReady,
        code,
        message,
    }
}

/// Why payments are unavailable in a project created without the backend.
pub const BACKEND_REQUIRED: &str = "Payments need a project created with the backend turned on, \
    because payments are handled on the server. The backend can only be chosen when a project is \
    created and can't be switched on later. To take payments, create a new project with the \
    backend on (New project -> Backend: on), then ask me to add payments there.";

/// Payments of any kind (connecting Stripe, selling, billing) need the backend.
pub fn payments_allowed(backend: bool) -> Result<(), Refused> {
    if backend {
        Ok(())
    } else {
        Err(Refused {
            kind: RefusalKind::BackendRequired,
            code: "backend_required",
            message: BACKEND_REQUIRED.to_owned(),
        })
    }
}

/// The connected account a project sells through, if it can take payments now.
pub fn selling_account(
    backend: bool,
    account: Option<&AccountSnapshot>,
) -> Result<&AccountSnapshot, Refused> {
    payments_allowed(backend)?;
    let Some(account) = account else {
        return Err(not_ready(
            "stripe_not_connected",
            "Connect Stripe first: payments are paid into the connected Stripe account. Say \"add payments\" in the chat, or use Integrations -> Stripe -> Connect.".to_owned(),
        ));
    };
    if !account.charges_enabled {
        let why = match account.state() {
            AccountState::Onboarding => "its onboarding on Stripe isn't finished".to_owned(),
            AccountState::VerificationPending => "Stripe is still verifying it".to_owned(),
            AccountState::Rejected => "Stripe rejected it".to_owned(),
            _ => {
                let needs = account.needs_in_plain_words();
                if needs.is_empty() {
                    "Stripe hasn't enabled charges yet".to_owned()
                } else {
                    format!("Stripe still needs: {}", needs.join("; "))
                }
            }
        };
        return Err(not_ready(
            "charges_disabled",
            format!(
                "The connected Stripe account can't take payments yet: {why}. Ask \"is my account verified?\" in the chat for what to do."
            ),
        ));
    }
    Ok(account)
}

/// How much of an order to refund, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundSize {
    /// All that is left.
    Rest,
    /// An amount in minor units; in `currency` when the asker named one.
    Amount {
        minor: i64,
        currency: Option<Currency>,
    },
    /// A share of what was paid, in basis points (5000: half).
    Share { bps: u32 },
}

/// A refund that may be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    pub payment_intent: String,
    pub amount: i64,
    /// What stays refundable after it.
    pub left_after: i64,
}

/// Whether `order` may be refunded by `size`, and by how much. `in_flight` is what refunds
/// already asked of Stripe but not yet seen on the order will take (so two refunds asked at
/// once can't add up to more than was paid).
pub fn refund(order: &Order, size: RefundSize, in_flight: i64) -> Result<RefundPlan, Refused> {
    let n = order.number;
    if !order.status.was_paid() {
        return Err(rejected(
            "order_not_paid",
            format!(
                "Order #{n} can't be refunded: it is {}, so no money was taken.",
                order.status.label()
            ),
        ));
    }
    let Some(payment_intent) = order.payment_intent.clone() else {
        return Err(rejected(
            "nothing_charged",
            format!(
                "Order #{n} has no payment to refund: nothing was charged at checkout (a free trial, or a total of 0)."
            ),
        ));
    };
    if let RefundSize::Amount {
        currency: Some(c), ..
    } = size
        && c != order.currency
    {
        let paid = order.currency.as_str().to_ascii_uppercase();
        return Err(rejected(
            "currency_mismatch",
            format!(
                "Order #{n} was paid in {paid}, not {}: give the amount in {paid}.",
                c.as_str().to_ascii_uppercase()
            ),
        ));
    }
    let left = (order.refundable() - in_flight).max(0);
    if left == 0 {
        return Err(rejected(
            "already_refunded",
            if in_flight > 0 {
                format!("Order #{n} is being refunded in full already.")
            } else {
                format!("Order #{n} is already fully refunded.")
            },
        ));
    }
    let paid = order
        .charge
        .as_ref()
        .map_or(order.amount_total, |c| c.amount_captured);
    let amount = match size {
        RefundSize::Rest => left,
        RefundSize::Amount { minor, .. } => minor,
        RefundSize::Share { bps } => paid.saturating_mul(i64::from(bps)) / 10_000,
    };
    if amount <= 0 {
        return Err(rejected(
            "invalid_amount",
            format!(
                "A refund must be more than zero; order #{n} has {} left to refund.",
                order.money(left)
            ),
        ));
    }
    if amount > left {
        return Err(rejected(
            "amount_too_large",
            format!(
                "Order #{n} has {} left to refund; {} is more than that.",
                order.money(left),
                order.money(amount)
            ),
        ));
    }
    Ok(RefundPlan {
        payment_intent,
        amount,
        left_after: left - amount,
    })
}

/// Whether `subscription` may be changed so.
pub fn subscription_change(
    subscription: &Subscription,
    change: SubscriptionChange,
) -> Result<(), Refused> {
    let who = subscription
        .customer_email
        .clone()
        .unwrap_or_else(|| "the customer".to_owned());
    if subscription.status.is_final() {
        return Err(rejected(
            "subscription_ended",
            format!(
                "{who}'s {} has ended ({}): there is nothing to {}.",
                subscription.summary(),
                subscription.status.as_str(),
                if change == SubscriptionChange::Resume {
                    "resume"
                } else {
                    "cancel"
                }
            ),
        ));
    }
    if change == SubscriptionChange::Resume && !subscription.cancel_at_period_end {
        return Err(rejected(
            "not_canceling",
            format!(
                "{who}'s {} isn't set to cancel, so there is nothing to resume.",
                subscription.summary()
            ),
        ));
    }
    Ok(())
}

/// Whose billing portal a link for `email` opens: Stripe's customer of their newest
/// subscription in the project (`subscriptions`: theirs, newest first). Someone who never
/// subscribed has no portal here.
pub fn portal_customer(email: &str, subscriptions: &[Subscription]) -> Result<String, Refused> {
    subscriptions
        .iter()
        .find(|s| {
            s.customer_email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .map(|s| s.customer.clone())
        .ok_or_else(|| {
            rejected(
                "not_a_subscriber",
                format!(
                    "{email} has no subscription in this project, so there is no billing portal to open for them. The portal is for subscribers: their card, invoices and plan."
                ),
            )
        })
}

/// Whether `sub` may be moved to plan `to`, and when it would take effect: a longer interval,
/// or a dearer plan of the same interval, now (prorated, the difference charged at once); a
/// shorter interval or a cheaper plan at the end of the period already paid for (Stripe's
/// `schedule_at_period_end` conditions `shortening_interval` and `decreasing_item_amount`), so
/// the customer keeps what they paid for. A past-due (or unpaid) subscription is refused: its
/// renewal must be paid first (a change would add a prorated charge on top of an invoice the
/// card already failed, or let a downgrade skip what is owed).
pub fn plan_change(sub: &Subscription, to: &Plan) -> Result<PlanChange, Refused> {
    use crate::billing::SubscriptionStatus as S;
    let who = sub
        .customer_email
        .clone()
        .unwrap_or_else(|| "the customer".to_owned());
    let plan = sub.summary();
    match sub.status {
        S::Canceled | S::IncompleteExpired => {
            return Err(rejected(
                "subscription_ended",
                format!("{who}'s {plan} has ended: there is no plan to change."),
            ));
        }
        S::PastDue | S::Unpaid => {
            let owed = sub
                .failing_invoice()
                .map(|i| format!(" ({} is open)", i.amount()))
                .unwrap_or_default();
            return Err(rejected(
                "subscription_past_due",
                format!(
                    "{who}'s {plan} is {}: its renewal hasn't been paid{owed}. Change the plan once it is paid: {who} can pay the open invoice from its link, or update the card in the billing portal (\"give {who} the billing portal link\").",
                    sub.status.as_str().replace('_', " ")
                ),
            ));
        }
        S::Incomplete | S::Paused => {
            return Err(rejected(
                "subscription_not_active",
                format!(
                    "{who}'s {plan} is {}: only an active subscription (or one in its trial) can change plan.",
                    sub.status.in_words()
                ),
            ));
        }
        S::Active | S::Trialing => {}
    }
    if sub.cancel_at_period_end {
        return Err(rejected(
            "subscription_canceling",
            format!(
                "{who}'s {plan} is set to cancel at the end of the period. Resume it first (\"resume {who}'s subscription\"), then change the plan."
            ),
        ));
    }
    if let Some(s) = &sub.schedule {
        return Err(rejected(
            "plan_change_scheduled",
            format!(
                "{who}'s {plan} already has a change waiting for the end of the period (schedule {s}). It happens then; change it again after."
            ),
        ));
    }
    let [item] = sub.items.as_slice() else {
        return Err(rejected(
            "several_items",
            format!(
                "{who}'s subscription has {} items ({plan}); I change plans of one-item subscriptions only. Change it in the Stripe Dashboard.",
                sub.items.len()
            ),
        ));
    };
    let Some(from) = current_plan(sub) else {
        return Err(rejected(
            "several_items",
            format!("{who}'s {plan} has no fixed price; change it in the Stripe Dashboard."),
        ));
    };
    if from.price == to.price {
        return Err(rejected(
            "same_plan",
            format!("{who} is already on {}.", to.label()),
        ));
    }
    if to.currency != sub.currency {
        return Err(rejected(
            "currency_mismatch",
            format!(
                "{} is charged in {}, and {who}'s subscription in {}: a subscription keeps its currency.",
                to.label(),
                to.currency.as_str().to_uppercase(),
                sub.currency.as_str().to_uppercase()
            ),
        ));
    }
    let (old, new) = (from.days(), to.days());
    let per_day = |p: &Plan| p.amount as i128 * 365 / p.days().max(1) as i128;
    let timing = if new < old || (new == old && per_day(to) < per_day(&from)) {
        PlanTiming::AtPeriodEnd
    } else {
        PlanTiming::Now
    };
    Ok(PlanChange {
        subscription: sub.id.clone(),
        item: item.id.clone().unwrap_or_default(),
        quantity: item.quantity,
        from,
        to: to.clone(),
        timing,
        period_end: item.current_period_end,
        period_start: item.current_period_start,
    })
}

/// Stripe's longest free trial, in days.
pub const MAX_TRIAL_DAYS: u32 = 730;

/// Whether a checkout may have a free trial of `days` (`recurring`: its cart starts a
/// subscription).
pub fn trial(days: Option<u32>, recurring: bool) -> Result<(), Refused> {
    let Some(days) = days else { return Ok(()) };
    if !(1..=MAX_TRIAL_DAYS).contains(&days) {
        return Err(rejected(
            "invalid_trial",
            format!(
                "trial_period_days is {days}: it must be from 1 to {MAX_TRIAL_DAYS} (Stripe's limit)."
            ),
        ));
    }
    if !recurring {
        return Err(rejected(
            "trial_needs_subscription",
            "A free trial needs a recurring price in the cart: one-time items are charged at checkout.".to_owned(),
        ));
    }
    Ok(())
}

/// Which of the promotion codes called `code` a checkout applies (`found`: the account's codes
/// of that name, any case), at `now` (Unix seconds), for a cart of `products`: the active one,
/// unless it has expired, run out, or is limited to products the cart doesn't have. Each
/// refusal has its own code, for the API and the chat alike.
pub fn code_for_checkout<'a>(
    code: &str,
    found: &'a [CodeInfo],
    now: i64,
    products: &[String],
) -> Result<&'a CodeInfo, Refused> {
    let named: Vec<&CodeInfo> = found
        .iter()
        .filter(|c| c.code.eq_ignore_ascii_case(code.trim()))
        .collect();
    let Some(c) = named
        .iter()
        .find(|c| c.active)
        .or_else(|| named.first())
        .copied()
    else {
        return Err(rejected(
            "unknown_code",
            format!("There is no discount code called {code}."),
        ));
    };
    if c.max_redemptions.is_some_and(|m| c.times_redeemed >= m) {
        return Err(rejected(
            "code_used_up",
            format!(
                "{} has been used {} times, its limit: it can't be used again.",
                c.code, c.times_redeemed
            ),
        ));
    }
    if c.expires_at.is_some_and(|e| e <= now) {
        return Err(rejected("code_expired", format!("{} has expired.", c.code)));
    }
    if !c.active {
        return Err(rejected(
            "code_inactive",
            format!("{} is turned off.", c.code),
        ));
    }
    if !c.products.is_empty() && !c.products.iter().any(|p| products.contains(p)) {
        return Err(rejected(
            "code_not_applicable",
            format!("{} doesn't apply to anything in this cart.", c.code),
        ));
    }
    Ok(c)
}

/// The currencies Stripe charges in (its presentment currencies), lowercase.
pub const STRIPE_CURRENCIES: &[&str] = &[
    "usd", "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd",
    "bdt", "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp",
    "etb", "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl",
    "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf",
    "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd",
    "mmk", "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok",
    "npr", "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd",
    "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl",
    "thb", "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "uyu", "uzs", "vnd",
    "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Stripe's minimum charge per currency (minor units), where it publishes one: a price below
/// it could never be paid.
const MINIMUM_CHARGE: &[(&str, i64)] = &[
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

/// The largest amount a Stripe price takes (eight digits in minor units).
pub const MAX_PRICE_AMOUNT: i64 = 99_999_999;

/// Whether Stripe charges in `currency`.
pub fn currency_supported(currency: Currency) -> Result<(), Refused> {
    if STRIPE_CURRENCIES.contains(&currency.as_str()) {
        Ok(())
    } else {
        Err(rejected(
            "unsupported_currency",
            format!(
                "{} isn't a currency Stripe charges in. Use a 3-letter code such as USD, EUR or GBP.",
                currency.as_str().to_ascii_uppercase()
            ),
        ))
    }
}

/// Whether a new price can be created and paid: a supported currency, more than zero, at
/// least Stripe's minimum charge, at most its maximum.
pub fn new_price(amount: Money) -> Result<(), Refused> {
    currency_supported(amount.currency)?;
    if amount.minor <= 0 {
        return Err(rejected(
            "invalid_amount",
            format!(
                "A price must be more than zero ({amount} was asked). Free products aren't sold through Stripe Checkout."
            ),
        ));
    }
    if let Some((_, min)) = MINIMUM_CHARGE
        .iter()
        .find(|(c, _)| *c == amount.currency.as_str())
        && amount.minor < *min
    {
        return Err(rejected(
            "amount_too_small",
            format!(
                "{amount} is below Stripe's minimum charge of {} in {}.",
                Money::new(*min, amount.currency),
                amount.currency.as_str().to_ascii_uppercase()
            ),
        ));
    }
    if amount.minor > MAX_PRICE_AMOUNT {
        return Err(rejected(
            "amount_too_large",
            format!(
                "{amount} is more than a Stripe price can be ({}).",
                Money::new(MAX_PRICE_AMOUNT, amount.currency)
            ),
        ));
    }
    Ok(())
}

/// Whether a product can be created as described: a name, at least one price, each valid.
pub fn new_product(p: &NewProduct) -> Result<(), Refused> {
    let name = p.name.trim();
    if name.is_empty() {
        return Err(rejected(
            "name_required",
            "A product needs a name.".to_owned(),
        ));
    }
    if name.chars().count() > 250 {
        return Err(rejected(
            "name_too_long",
            "A product's name can be at most 250 characters.".to_owned(),
        ));
    }
    if p.prices.is_empty() {
        return Err(rejected(
            "price_required",
            "A product needs a price to be sold.".to_owned(),
        ));
    }
    for price in &p.prices {
        new_price(price.amount)?;
    }
    Ok(())
}

/// Whether a discount code can be created: a code customers can type (3 to 50 letters, digits,
/// `-` or `_`), 0-100% or an amount above zero in a currency Stripe charges in, 1 to 36 months
/// when repeating, at least one redemption.
pub fn new_code(c: &NewCode) -> Result<(), Refused> {
    let len = c.code.chars().count();
    if !(3..=50).contains(&len)
        || !c
            .code
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        return Err(rejected(
            "invalid_code",
            format!(
                "\"{}\" can't be a code: use 3 to 50 letters, digits, - or _ (like WELCOME15).",
                c.code
            ),
        ));
    }
    match c.off {
        Off::Percent { basis_points } if !(1..=10_000).contains(&basis_points) => {
            return Err(rejected(
                "invalid_discount",
                "A percentage off must be more than 0 and at most 100.".to_owned(),
            ));
        }
        Off::Amount { amount } => {
            currency_supported(amount.currency)?;
            if amount.minor <= 0 || amount.minor > MAX_PRICE_AMOUNT {
                return Err(rejected(
                    "invalid_discount",
                    format!("An amount off must be more than zero ({amount} was asked)."),
                ));
            }
        }
        Off::Percent { .. } => {}
    }
    if let CodeDuration::Repeating { months } = c.duration
        && !(1..=36).contains(&months)
    {
        return Err(rejected(
            "invalid_duration",
            "A repeating discount lasts 1 to 36 months.".to_owned(),
        ));
    }
    if c.max_redemptions.is_some_and(|m| m < 1) {
        return Err(rejected(
            "invalid_limit",
            "A code must be usable at least once.".to_owned(),
        ));
    }
    Ok(())
}

/// What a seller may do about a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeResponse {
    /// Accept it: the customer keeps the money (the dispute is lost, irreversibly).
    Accept,
    /// Submit evidence (final: Stripe takes one submission).
    SubmitEvidence,
}

/// May the seller respond to the order's dispute this way? Only while Stripe waits for a
/// response; evidence only once.
pub fn dispute_response(order: &Order, response: DisputeResponse) -> Result<String, Refused> {
    let n = order.number;
    let Some(d) = &order.dispute else {
        return Err(rejected(
            "not_disputed",
            format!("Order #{n} isn't disputed."),
        ));
    };
    if !d.awaits_response() {
        let why = match d.outcome() {
            crate::disputes::DisputeOutcome::Won => "was won",
            crate::disputes::DisputeOutcome::Lost => "was lost",
            crate::disputes::DisputeOutcome::Disputed => {
                "is under review: evidence was already submitted, and the bank decides now"
            }
        };
        let what = match response {
            DisputeResponse::Accept => "accepted",
            DisputeResponse::SubmitEvidence => "answered with evidence",
        };
        return Err(rejected(
            "dispute_closed",
            format!("The dispute of order #{n} can't be {what} any more: it {why}."),
        ));
    }
    Ok(d.id.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_checkout_code_is_refused_with_its_own_reason() {
        let code = CodeInfo {
            id: "promo_1".into(),
            code: "WELCOME15".into(),
            active: true,
            times_redeemed: 0,
            max_redemptions: Some(2),
            expires_at: Some(2_000),
            off: "15% off".into(),
            first_time: false,
            discount: None,
            duration: None,
            products: vec!["prod_a".into()],
        };
        let cart = ["prod_a".to_owned()];
        let found = [code.clone()];
        let ok = code_for_checkout("welcome15", &found, 1_000, &cart).expect("usable");
        assert_eq!(ok.id, "promo_1");
        let why = |c: CodeInfo, now: i64, cart: &[String]| {
            code_for_checkout("WELCOME15", &[c], now, cart)
                .err()
                .map(|r| r.code)
        };
        assert_eq!(
            code_for_checkout("NOPE", &found, 1_000, &cart)
                .err()
                .map(|r| r.code),
            Some("unknown_code")
        );
        assert_eq!(why(code.clone(), 2_000, &cart), Some("code_expired"));
        let used = CodeInfo {
            times_redeemed: 2,
            ..code.clone()
        };
        assert_eq!(why(used, 1_000, &cart), Some("code_used_up"));
        let off = CodeInfo {
            active: false,
            ..code.clone()
        };
        assert_eq!(why(off, 1_000, &cart), Some("code_inactive"));
        assert_eq!(
            why(code, 1_000, &["prod_b".to_owned()]),
            Some("code_not_applicable")
        );
    }

    use super::*;
    use crate::billing::SubscriptionStatus;
    use crate::orders::{ChargeInfo, OrderStatus, RefundInfo};

    #[test]
    fn a_dispute_may_be_answered_only_while_stripe_waits_for_it() {
        use crate::disputes::DisputeInfo;
        let with = |status: Option<&str>| {
            let mut o = Order::new_for_tests("ord_1", 1001, usd(), 4900);
            o.status = OrderStatus::Paid;
            o.dispute = status.map(|s| DisputeInfo {
                id: "dp_1".into(),
                amount: 4900,
                reason: "fraudulent".into(),
                status: s.into(),
                due_by: Some(1),
                fee: 1500,
                submission_count: 0,
                created: 1,
            });
            o
        };
        let cases = [
            (None, Err("not_disputed")),
            (Some("needs_response"), Ok("dp_1")),
            (Some("warning_needs_response"), Ok("dp_1")),
            (Some("under_review"), Err("dispute_closed")),
            (Some("warning_under_review"), Err("dispute_closed")),
            (Some("won"), Err("dispute_closed")),
            (Some("lost"), Err("dispute_closed")),
            (Some("warning_closed"), Err("dispute_closed")),
        ];
        for (status, want) in cases {
            for response in [DisputeResponse::Accept, DisputeResponse::SubmitEvidence] {
                let got = dispute_response(&with(status), response);
                match want {
                    Ok(id) => assert_eq!(got.as_deref(), Ok(id), "{status:?}"),
                    Err(code) => assert_eq!(got.unwrap_err().code, code, "{status:?}"),
                }
            }
        }
    }

    fn usd() -> Currency {
        Currency::parse("usd").expect("usd")
    }

    fn paid_order(total: i64, refunded: &[i64]) -> Order {
        let mut o = Order::new_for_tests("ord_1", 1001, usd(), total);
        o.status = OrderStatus::Paid;
        o.payment_intent = Some("pi_1".to_owned());
        o.charge = Some(ChargeInfo {
            id: "ch_1".to_owned(),
            receipt_url: None,
            receipt_email: None,
            amount_captured: total,
            amount_refunded: 0,
            created: 0,
            available_on: None,
            net: None,
        });
        o.refunds = refunded
            .iter()
            .enumerate()
            .map(|(i, a)| RefundInfo {
                id: format!("re_{i}"),
                amount: *a,
                status: "succeeded".to_owned(),
                failure_reason: None,
                created: 0,
                request: None,
            })
            .collect();
        o
    }

    #[test]
    fn refund_table() {
        let eur = Currency::parse("eur").expect("eur");
        let mut open = paid_order(1000, &[]);
        open.status = OrderStatus::Open;
        let mut trial = paid_order(0, &[]);
        trial.payment_intent = None;
        // (order, size, in flight, expected amount or refusal code)
        let cases: Vec<(Order, RefundSize, i64, Result<i64, &str>)> = vec![
            (paid_order(1000, &[]), RefundSize::Rest, 0, Ok(1000)),
            (paid_order(1000, &[300]), RefundSize::Rest, 0, Ok(700)),
            (
                paid_order(1000, &[]),
                RefundSize::Amount {
                    minor: 500,
                    currency: None,
                },
                0,
                Ok(500),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Amount {
                    minor: 500,
                    currency: Some(usd()),
                },
                0,
                Ok(500),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Share { bps: 5000 },
                0,
                Ok(500),
            ),
            (paid_order(1000, &[]), RefundSize::Rest, 400, Ok(600)),
            (open, RefundSize::Rest, 0, Err("order_not_paid")),
            (trial, RefundSize::Rest, 0, Err("nothing_charged")),
            (
                paid_order(1000, &[]),
                RefundSize::Amount {
                    minor: 500,
                    currency: Some(eur),
                },
                0,
                Err("currency_mismatch"),
            ),
            (
                paid_order(1000, &[1000]),
                RefundSize::Rest,
                0,
                Err("already_refunded"),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Rest,
                1000,
                Err("already_refunded"),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Amount {
                    minor: 0,
                    currency: None,
                },
                0,
                Err("invalid_amount"),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Amount {
                    minor: -5,
                    currency: None,
                },
                0,
                Err("invalid_amount"),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Share { bps: 0 },
                0,
                Err("invalid_amount"),
            ),
            (
                paid_order(1000, &[600]),
                RefundSize::Amount {
                    minor: 500,
                    currency: None,
                },
                0,
                Err("amount_too_large"),
            ),
            (
                paid_order(1000, &[]),
                RefundSize::Amount {
                    minor: 700,
                    currency: None,
                },
                400,
                Err("amount_too_large"),
            ),
        ];
        for (i, (order, size, in_flight, want)) in cases.into_iter().enumerate() {
            let got = refund(&order, size, in_flight);
            match (got, want) {
                (Ok(plan), Ok(amount)) => {
                    assert_eq!(plan.amount, amount, "case {i}");
                    assert_eq!(plan.payment_intent, "pi_1", "case {i}");
                }
                (Err(r), Err(code)) => {
                    assert_eq!(r.code, code, "case {i}: {}", r.message);
                    assert!(r.message.contains("#1001"), "case {i}: {}", r.message);
                }
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn subscription(status: SubscriptionStatus, canceling: bool) -> Subscription {
        Subscription {
            id: "sub_1".to_owned(),
            customer: "cus_1".to_owned(),
            customer_email: Some("ana@example.com".to_owned()),
            status,
            currency: usd(),
            items: Vec::new(),
            created: 0,
            trial_end: None,
            cancel_at_period_end: canceling,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            order: None,
            order_number: None,
            invoices: Vec::new(),
            schedule: None,
            discount: None,
        }
    }

    #[test]
    fn plan_change_table() {
        use crate::plans::tests::{catalog, sub_on};
        use crate::plans::{PlanTiming, PlanWanted, wanted_plan};
        let cat = catalog();
        let to = |sub: &Subscription, product: Option<&str>, interval: Option<&str>| {
            wanted_plan(
                &cat,
                sub,
                &PlanWanted {
                    product: product.map(str::to_owned),
                    interval: interval.map(str::to_owned),
                },
            )
            .unwrap()
        };
        let basic_m = sub_on("price_basic_m", "prod_basic", 900, "month");
        let timing = |sub: &Subscription, p: Option<&str>, i: Option<&str>| {
            plan_change(sub, &to(sub, p, i)).map(|c| c.timing)
        };
        // Longer interval or dearer: now; shorter interval or cheaper: at the period's end.
        assert_eq!(timing(&basic_m, None, Some("year")), Ok(PlanTiming::Now));
        assert_eq!(timing(&basic_m, Some("Pro"), None), Ok(PlanTiming::Now));
        let pro_y = sub_on("price_pro_y", "prod_pro", 29000, "year");
        assert_eq!(
            timing(&pro_y, None, Some("month")),
            Ok(PlanTiming::AtPeriodEnd)
        );
        assert_eq!(
            timing(&pro_y, Some("Basic"), None),
            Ok(PlanTiming::AtPeriodEnd)
        );
        let pro_m = sub_on("price_pro_m", "prod_pro", 2900, "month");
        let change = plan_change(&pro_m, &to(&pro_m, Some("Basic"), None)).unwrap();
        assert_eq!(change.timing, PlanTiming::AtPeriodEnd);
        assert_eq!((change.item.as_str(), change.period_end), ("si_1", 2_000));

        let code = |sub: &Subscription| {
            plan_change(sub, &to(&basic_m, None, Some("year")))
                .err()
                .map(|r| r.code)
        };
        let mut s = basic_m.clone();
        assert_eq!(
            plan_change(&s, &to(&s, Some("Basic"), None))
                .err()
                .map(|r| r.code),
            Some("same_plan")
        );
        s.status = SubscriptionStatus::PastDue;
        assert_eq!(code(&s), Some("subscription_past_due"));
        s.status = SubscriptionStatus::Unpaid;
        assert_eq!(code(&s), Some("subscription_past_due"));
        s.status = SubscriptionStatus::Canceled;
        assert_eq!(code(&s), Some("subscription_ended"));
        s.status = SubscriptionStatus::Incomplete;
        assert_eq!(code(&s), Some("subscription_not_active"));
        let mut s = basic_m.clone();
        s.cancel_at_period_end = true;
        assert_eq!(code(&s), Some("subscription_canceling"));
        let mut s = basic_m.clone();
        s.schedule = Some("sub_sched_1".into());
        assert_eq!(code(&s), Some("plan_change_scheduled"));
        let mut s = basic_m.clone();
        s.items.push(s.items[0].clone());
        assert_eq!(code(&s), Some("several_items"));
    }

    #[test]
    fn subscription_change_table() {
        use SubscriptionChange::*;
        use SubscriptionStatus::*;
        let cases = [
            (Active, false, CancelAtPeriodEnd, None),
            (Active, false, CancelNow, None),
            (Trialing, false, CancelNow, None),
            (PastDue, false, CancelAtPeriodEnd, None),
            (Active, true, Resume, None),
            (Active, true, CancelNow, None),
            (Active, false, Resume, Some("not_canceling")),
            (Canceled, false, CancelNow, Some("subscription_ended")),
            (Canceled, true, Resume, Some("subscription_ended")),
            (
                IncompleteExpired,
                false,
                CancelAtPeriodEnd,
                Some("subscription_ended"),
            ),
        ];
        for (status, canceling, change, want) in cases {
            let got = subscription_change(&subscription(status, canceling), change)
                .err()
                .map(|r| r.code);
            assert_eq!(got, want, "{status:?} canceling={canceling} {change:?}");
        }
    }

    #[test]
    fn trial_table() {
        let cases = [
            (None, false, None),
            (None, true, None),
            (Some(14), true, None),
            (Some(1), true, None),
            (Some(730), true, None),
            (Some(0), true, Some("invalid_trial")),
            (Some(731), true, Some("invalid_trial")),
            (Some(14), false, Some("trial_needs_subscription")),
        ];
        for (days, recurring, want) in cases {
            assert_eq!(
                trial(days, recurring).err().map(|r| r.code),
                want,
                "{days:?} {recurring}"
            );
        }
    }

    #[test]
    fn selling_needs_backend_connection_and_charges() {
        assert_eq!(
            selling_account(false, None).unwrap_err().kind,
            RefusalKind::BackendRequired
        );
        assert_eq!(
            selling_account(true, None).unwrap_err().code,
            "stripe_not_connected"
        );
        let mut a = AccountSnapshot {
            id: "acct_1".to_owned(),
            ..AccountSnapshot::default()
        };
        a.charges_enabled = false;
        assert_eq!(
            selling_account(true, Some(&a)).unwrap_err().code,
            "charges_disabled"
        );
        a.charges_enabled = true;
        assert_eq!(
            selling_account(true, Some(&a)).map(|a| a.id.as_str()),
            Ok("acct_1")
        );
    }

    #[test]
    fn new_prices_follow_stripe() {
        let eur = Currency::parse("eur").expect("eur");
        assert!(new_price(Money::new(1800, eur)).is_ok());
        assert_eq!(
            new_price(Money::new(0, eur)).unwrap_err().code,
            "invalid_amount"
        );
        assert_eq!(
            new_price(Money::new(-5, eur)).unwrap_err().code,
            "invalid_amount"
        );
        assert_eq!(
            new_price(Money::new(10, usd())).unwrap_err().code,
            "amount_too_small"
        );
        assert_eq!(
            new_price(Money::new(100_000_000, usd())).unwrap_err().code,
            "amount_too_large"
        );
        let xyz = Currency::parse("xyz").expect("three letters");
        assert_eq!(
            new_price(Money::new(1000, xyz)).unwrap_err().code,
            "unsupported_currency"
        );
    }
}
