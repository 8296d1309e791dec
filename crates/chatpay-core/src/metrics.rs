//! Subscription figures, computed from the stored subscriptions (Stripe's fresh reads): monthly
//! recurring revenue per currency now, and the subscriptions that started, ended and churned in
//! a period. Nothing is stored for them; the same function answers the chat and the HTTP API.
//!
//! The definitions (also said in every answer, [`DEFINITIONS`]):
//!
//! - **MRR** (monthly recurring revenue), per currency, never added across currencies: the sum,
//!   over subscriptions that are `active` or `past_due` now, of what one period charges (unit
//!   amount × quantity of each item), less the subscription's discount if it still applies to the
//!   coming invoices (a `forever` coupon, or a `repeating` one before its end; a `once` coupon
//!   took only the first invoice), brought to one month: a yearly price counts as a twelfth, a
//!   weekly one as 52/12, a daily one as 365/12, "every 3 months" as a third. Rounded to the
//!   currency's minor unit per subscription. Trials (`trialing`) are not counted: they pay
//!   nothing yet. `past_due` ones are: the subscription goes on while Stripe retries its renewal
//!   (they are also counted apart). `unpaid`, `paused`, `incomplete` and ended ones are not. A
//!   subscription set to cancel at its period's end still counts until it ends. ARR is MRR × 12.
//! - **New**: subscriptions created in the period that started (any status but `incomplete`
//!   and `incomplete_expired`: trials included).
//! - **Ended** (cancelled): subscriptions whose end (`ended_at`) falls in the period.
//! - **Churn rate**: of the subscriptions live at the period's start (created before it and not
//!   ended by then), the share that ended during it. Those that started and ended within the
//!   period are in "ended" but not in the churn rate. None for a period without a start, or with
//!   no subscription live at its start.

use std::collections::BTreeMap;

use crate::billing::{Subscription, SubscriptionStatus};

/// The definitions, as the chat and the documentation say them.
pub const DEFINITIONS: &str = "MRR is what active and past-due subscriptions charge per month \
     now, after discounts that still apply (yearly prices count as a twelfth, weekly ones as \
     52/12); trials are not counted. New: subscriptions started in the period (trials \
     included). Ended: subscriptions that ended in it. Churn rate: of the subscriptions live at \
     the period's start, the share that ended during it.";

/// The figures for one period.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionMetrics {
    /// Monthly recurring revenue now, per currency (ISO code, lowercase), minor units.
    pub mrr: BTreeMap<String, i64>,
    /// Subscriptions counted in MRR (active and past due).
    pub paying: usize,
    /// Of those, past due.
    pub past_due: usize,
    /// In a free trial now (not in MRR).
    pub trialing: usize,
    /// Started in the period.
    pub new: usize,
    /// Ended in the period.
    pub ended: usize,
    /// Live at the period's start (0 without a start).
    pub live_at_start: usize,
    /// Of those, ended in the period.
    pub churned: usize,
    /// `churned / live_at_start` in basis points (12.5% is 1,250), rounded; `None` when nothing
    /// was live at the start.
    pub churn_rate_bps: Option<i64>,
}

/// "12.5%" for 1,250 basis points.
pub fn percent(bps: i64) -> String {
    let whole = bps / 100;
    let tenths = (bps % 100 + 5) / 10;
    match tenths {
        0 => format!("{whole}%"),
        10 => format!("{}%", whole + 1),
        t => format!("{whole}.{t}%"),
    }
}

/// Months per `interval_count` intervals, as a fraction (numerator, denominator).
fn months_per(interval: &str, count: i64) -> (i128, i128) {
    let count = i128::from(count.max(1));
    match interval {
        "day" => (365, 12 * count),
        "week" => (52, 12 * count),
        "year" => (1, 12 * count),
        _ => (1, count),
    }
}

/// Micro-units per minor unit: a subscription's items are summed exactly enough before rounding.
const MICRO: i128 = 1_000_000;

/// What `s` brings in per month at `now` (Unix seconds), in its currency's minor unit: its
/// items brought to a month, less a discount that still applies. Whatever its status.
pub fn monthly_amount(s: &Subscription, now: i64) -> i64 {
    let monthly_micro = |amount: i64, interval: &str, count: i64| {
        let (num, den) = months_per(interval, count);
        i128::from(amount) * num * MICRO / den
    };
    let mut total: i128 = s
        .items
        .iter()
        .map(|i| {
            monthly_micro(
                i.unit_amount.unwrap_or(0) * i.quantity,
                &i.interval,
                i.interval_count,
            )
        })
        .sum();
    let applies = |d: &crate::billing::SubscriptionDiscount| match d.duration.as_str() {
        "forever" => true,
        "repeating" => d.end.is_none_or(|end| end > now),
        _ => false,
    };
    if let Some(d) = s.discount.as_ref().filter(|d| applies(d)) {
        if let Some(h) = d.percent_off_hundredths {
            total = total * i128::from(10_000 - h.clamp(0, 10_000)) / 10_000;
        }
        if let (Some(off), Some(first)) = (d.amount_off, s.items.first()) {
            // Off each invoice: brought to a month like the prices.
            total = (total - monthly_micro(off, &first.interval, first.interval_count)).max(0);
        }
    }
    i64::try_from((total + MICRO / 2) / MICRO).unwrap_or(i64::MAX)
}

/// Whether `s` counts in MRR: active or past due.
pub fn in_mrr(status: SubscriptionStatus) -> bool {
    matches!(
        status,
        SubscriptionStatus::Active | SubscriptionStatus::PastDue
    )
}

/// The figures of `subs` for the period `[since, until)` (milliseconds; open ends allowed), MRR
/// as of `now_ms`.
pub fn subscription_metrics(
    subs: &[Subscription],
    now_ms: i64,
    since: Option<i64>,
    until: Option<i64>,
) -> SubscriptionMetrics {
    let now = now_ms.div_euclid(1000);
    let in_period =
        |at_ms: i64| since.is_none_or(|s| at_ms >= s) && until.is_none_or(|u| at_ms < u);
    let mut m = SubscriptionMetrics::default();
    for s in subs {
        if matches!(
            s.status,
            SubscriptionStatus::Incomplete | SubscriptionStatus::IncompleteExpired
        ) {
            continue;
        }
        if in_mrr(s.status) {
            m.paying += 1;
            m.past_due += usize::from(s.status == SubscriptionStatus::PastDue);
            *m.mrr.entry(s.currency.as_str().to_owned()).or_default() += monthly_amount(s, now);
        }
        m.trialing += usize::from(s.status == SubscriptionStatus::Trialing);
        let created = s.created * 1000;
        let ended = s
            .ended_at
            .or(s.canceled_at.filter(|_| s.status.is_final()))
            .map(|e| e * 1000);
        m.new += usize::from(in_period(created));
        m.ended += usize::from(ended.is_some_and(in_period));
        if let Some(start) = since
            && created < start
            && ended.is_none_or(|e| e >= start)
        {
            m.live_at_start += 1;
            m.churned += usize::from(ended.is_some_and(in_period));
        }
    }
    m.churn_rate_bps = (m.live_at_start > 0).then(|| {
        let (c, l) = (m.churned as i64, m.live_at_start as i64);
        (c * 10_000 + l / 2) / l
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::{SubscriptionDiscount, SubscriptionItem};
    use crate::domain::Currency;

    const DAY: i64 = 86_400;
    /// Dec 1, 2026 00:00 UTC.
    const NOW: i64 = 1_796_083_200;

    fn sub(id: &str, status: SubscriptionStatus, amount: i64, interval: &str) -> Subscription {
        Subscription {
            id: id.into(),
            customer: format!("cus_{id}"),
            customer_email: Some(format!("{id}@example.com")),
            status,
            currency: Currency::parse("usd").unwrap(),
            items: vec![SubscriptionItem {
                id: Some(format!("si_{id}")),
                price: format!("price_{interval}"),
                product: "prod_pro".into(),
                name: Some("Pro".into()),
                quantity: 1,
                unit_amount: Some(amount),
                interval: interval.into(),
                interval_count: 1,
                current_period_start: NOW - DAY,
                current_period_end: NOW + 20 * DAY,
            }],
            created: NOW - 40 * DAY,
            trial_end: None,
            cancel_at_period_end: false,
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

    fn coupon(duration: &str, percent: Option<i64>, off: Option<i64>) -> SubscriptionDiscount {
        SubscriptionDiscount {
            coupon: "SAVE".into(),
            percent_off_hundredths: percent,
            amount_off: off,
            duration: duration.into(),
            end: None,
        }
    }

    #[test]
    fn mrr_counts_a_yearly_plan_as_twelfths_applies_a_coupon_and_leaves_trials_out() {
        let monthly = sub("ana", SubscriptionStatus::Active, 1000, "month");
        let yearly = sub("bo", SubscriptionStatus::Active, 12_000, "year");
        let mut discounted = sub("cy", SubscriptionStatus::Active, 1000, "month");
        discounted.discount = Some(coupon("forever", Some(2000), None));
        let mut trial = sub("di", SubscriptionStatus::Trialing, 1000, "month");
        trial.trial_end = Some(NOW + 10 * DAY);
        let mut late = sub("ed", SubscriptionStatus::PastDue, 1000, "month");
        late.currency = Currency::parse("eur").unwrap();
        let subs = [monthly, yearly, discounted, trial, late];
        let m = subscription_metrics(&subs, NOW * 1000, None, None);
        // $10 + $120/12 + $10 less 20%: the trial pays nothing yet.
        assert_eq!(m.mrr["usd"], 1000 + 1000 + 800);
        assert_eq!(m.mrr["eur"], 1000, "currencies are never added");
        assert_eq!((m.paying, m.past_due, m.trialing), (4, 1, 1));
    }

    #[test]
    fn monthly_amounts_by_interval_and_discount() {
        let at = |s: &Subscription| monthly_amount(s, NOW);
        assert_eq!(
            at(&sub("a", SubscriptionStatus::Active, 1000, "week")),
            4333
        );
        assert_eq!(at(&sub("a", SubscriptionStatus::Active, 100, "day")), 3042);
        let mut quarterly = sub("a", SubscriptionStatus::Active, 3000, "month");
        quarterly.items[0].interval_count = 3;
        quarterly.items[0].quantity = 2;
        assert_eq!(at(&quarterly), 2000);
        // A yearly $100 is $8.333…: rounded once, per subscription.
        assert_eq!(
            at(&sub("a", SubscriptionStatus::Active, 10_000, "year")),
            833
        );
        let mut off = sub("a", SubscriptionStatus::Active, 12_000, "year");
        off.discount = Some(coupon("forever", None, Some(2400)));
        assert_eq!(at(&off), 800, "$24 off a yearly invoice is $2 a month");
        off.discount = Some(coupon("once", None, Some(2400)));
        assert_eq!(at(&off), 1000, "a once coupon took only the first invoice");
        let mut repeating = coupon("repeating", Some(5000), None);
        repeating.end = Some(NOW + DAY);
        off.discount = Some(repeating.clone());
        assert_eq!(at(&off), 500);
        repeating.end = Some(NOW - DAY);
        off.discount = Some(repeating);
        assert_eq!(at(&off), 1000, "a repeating coupon that ended");
        off.discount = Some(coupon("forever", None, Some(99_999)));
        assert_eq!(at(&off), 0, "never below nothing");
    }

    #[test]
    fn new_ended_and_churn_in_a_period() {
        let since = (NOW - 30 * DAY) * 1000;
        let until = NOW * 1000;
        // Live at the start, still active.
        let stays = sub("a", SubscriptionStatus::Active, 1000, "month");
        // Live at the start, ended in the period: churned.
        let mut left = sub("b", SubscriptionStatus::Canceled, 1000, "month");
        left.ended_at = Some(NOW - 5 * DAY);
        // Started and ended in the period: ended, not churn.
        let mut brief = sub("c", SubscriptionStatus::Canceled, 1000, "month");
        brief.created = NOW - 20 * DAY;
        brief.ended_at = Some(NOW - 10 * DAY);
        // Started in the period, a trial.
        let mut trial = sub("d", SubscriptionStatus::Trialing, 1000, "month");
        trial.created = NOW - 2 * DAY;
        // Ended before the period: in nothing.
        let mut old = sub("e", SubscriptionStatus::Canceled, 1000, "month");
        old.created = NOW - 90 * DAY;
        old.ended_at = Some(NOW - 60 * DAY);
        // Never paid its first invoice: in nothing.
        let mut never = sub("f", SubscriptionStatus::IncompleteExpired, 1000, "month");
        never.created = NOW - 3 * DAY;
        let subs = [stays, left, brief, trial, old, never];
        let m = subscription_metrics(&subs, NOW * 1000, Some(since), Some(until));
        assert_eq!((m.new, m.ended), (2, 2));
        assert_eq!((m.live_at_start, m.churned), (2, 1));
        assert_eq!(m.churn_rate_bps, Some(5000));
        assert_eq!(m.mrr["usd"], 1000);
        let all = subscription_metrics(&subs, NOW * 1000, None, None);
        assert_eq!(all.churn_rate_bps, None, "no start, no churn rate");
    }

    #[test]
    fn percents_read_well() {
        assert_eq!(percent(5000), "50%");
        assert_eq!(percent(1250), "12.5%");
        assert_eq!(percent(3333), "33.3%");
        assert_eq!(percent(996), "10%");
        assert_eq!(percent(0), "0%");
    }
}
