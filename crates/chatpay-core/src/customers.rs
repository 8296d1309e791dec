//! Customers, derived from stored orders: a customer is a buyer's email (case-insensitive)
//! within a project and mode. Nothing is stored for them: who they are, what they bought and
//! what they spent are computed from the orders each time, so they can't drift from the orders.
//!
//! Lifetime value is per currency (amounts in different currencies are never added): what was
//! paid, less what was refunded and what was lost in disputes.

use std::collections::BTreeMap;

use crate::disputes::DisputeOutcome;
use crate::orders::Order;

/// One buyer and what they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Lowercase.
    pub email: String,
    /// Paid orders (refunded ones included), newest first.
    pub orders: Vec<i64>,
    /// Lifetime value per currency (ISO code, lowercase), minor units.
    pub spent: BTreeMap<String, i64>,
    /// When they first and last paid (milliseconds).
    pub first_paid_at: i64,
    pub last_paid_at: i64,
    /// Disputes they opened.
    pub disputes: usize,
}

/// What an order kept of its payment.
fn kept(o: &Order) -> i64 {
    let paid = o
        .charge
        .as_ref()
        .map_or(o.amount_total, |c| c.amount_captured);
    let lost = o
        .dispute
        .as_ref()
        .filter(|d| d.outcome() == DisputeOutcome::Lost)
        .map_or(0, |d| d.amount);
    (paid - o.refunded() - lost).max(0)
}

/// Customers gathered from orders as they come (a page at a time: memory grows with the
/// customers, not the orders).
#[derive(Debug, Default)]
pub struct CustomerBook {
    by: BTreeMap<String, Customer>,
}

impl CustomerBook {
    /// Counts `o` if it was paid and has a buyer's email.
    pub fn add(&mut self, o: &Order) {
        let Some(email) = o.customer_email.as_deref().filter(|_| o.status.was_paid()) else {
            return;
        };
        let email = email.to_lowercase();
        let at = o.paid_at.unwrap_or(o.created_at);
        let c = self.by.entry(email.clone()).or_insert_with(|| Customer {
            email,
            orders: Vec::new(),
            spent: BTreeMap::new(),
            first_paid_at: at,
            last_paid_at: at,
            disputes: 0,
        });
        c.orders.push(o.number);
        *c.spent.entry(o.currency.as_str().to_owned()).or_default() += kept(o);
        c.first_paid_at = c.first_paid_at.min(at);
        c.last_paid_at = c.last_paid_at.max(at);
        c.disputes += usize::from(o.dispute.is_some());
    }

    /// The customers, those who spent most first (by their largest currency amount), then by
    /// email; each one's orders newest first.
    pub fn customers(self) -> Vec<Customer> {
        let mut out: Vec<Customer> = self.by.into_values().collect();
        for c in &mut out {
            c.orders.sort_unstable_by(|a, b| b.cmp(a));
        }
        out.sort_by(|a, b| {
            let top = |c: &Customer| c.spent.values().copied().max().unwrap_or(0);
            top(b).cmp(&top(a)).then_with(|| a.email.cmp(&b.email))
        });
        out
    }
}

/// The customers of `orders` (any order of arrival), as [`CustomerBook::customers`] sorts them.
pub fn customers(orders: &[Order]) -> Vec<Customer> {
    let mut book = CustomerBook::default();
    for o in orders {
        book.add(o);
    }
    book.customers()
}

/// Whether a search (part of an email, any case; empty: everyone) finds `c`.
pub fn matches(c: &Customer, search: &str) -> bool {
    c.email.contains(search.trim().to_lowercase().as_str())
}

/// How many customers first paid in `[since, until)` (milliseconds).
pub fn new_customers(customers: &[Customer], since: Option<i64>, until: Option<i64>) -> usize {
    customers
        .iter()
        .filter(|c| {
            since.is_none_or(|s| c.first_paid_at >= s) && until.is_none_or(|u| c.first_paid_at < u)
        })
        .count()
}

/// A paid order numbered `n` by `email`, for tests.
#[cfg(test)]
pub(crate) fn paid_order(n: i64, email: &str, cur: &str, amount: i64, paid_at: i64) -> Order {
    let mut o = Order::new_for_tests(
        &format!("ord_{n}"),
        n,
        crate::domain::Currency::parse(cur).expect("a currency"),
        amount,
    );
    o.status = crate::orders::OrderStatus::Paid;
    o.customer_email = Some(email.into());
    o.paid_at = Some(paid_at);
    o
}

#[cfg(test)]
mod tests {
    use super::paid_order as order;
    use super::*;
    use crate::orders::{OrderStatus, RefundInfo};

    #[test]
    fn customers_are_emails_with_lifetime_value_per_currency() {
        let mut refunded = order(1003, "ana@example.com", "usd", 1000, 30);
        refunded.status = OrderStatus::PartiallyRefunded;
        refunded.refunds = vec![RefundInfo {
            id: "re_1".into(),
            amount: 400,
            status: "succeeded".into(),
            failure_reason: None,
            created: 1,
            request: None,
        }];
        let mut open = order(1005, "cy@example.com", "usd", 9900, 50);
        open.status = OrderStatus::Open;
        let orders = vec![
            order(1001, "Ana@Example.com", "usd", 4900, 10),
            order(1002, "ben@example.com", "usd", 9000, 20),
            refunded,
            order(1004, "ana@example.com", "eur", 2000, 40),
            open,
        ];
        let cs = customers(&orders);
        assert_eq!(cs.len(), 2, "an open checkout makes no customer");
        assert_eq!(cs[0].email, "ben@example.com", "the biggest spender first");
        let ana = &cs[1];
        assert_eq!(ana.orders, vec![1004, 1003, 1001]);
        assert_eq!(ana.spent["usd"], 4900 + 600);
        assert_eq!(ana.spent["eur"], 2000);
        assert_eq!((ana.first_paid_at, ana.last_paid_at), (10, 40));
        assert_eq!(new_customers(&cs, Some(15), None), 1);
        assert_eq!(new_customers(&cs, None, Some(15)), 1);
        assert_eq!(new_customers(&cs, None, None), 2);
        assert!(matches(ana, "ANA@"));
        assert!(matches(ana, " "));
        assert!(!matches(ana, "ben"));
    }
}
