//! Orders and customers as CSV (RFC 4180): one header line, then one line per order, or per
//! customer and currency. Amounts are decimals in the currency's units (`12.50`, `500` for yen)
//! beside an ISO currency column; times are RFC 3339 in UTC.
//!
//! Every cell is safe to open in a spreadsheet: a cell that starts with `=`, `+`, `-`, `@`, a
//! tab or a carriage return (which a spreadsheet would run as a formula) is prefixed with `'`,
//! and a cell with a comma, a quote or a line break is quoted, its quotes doubled. The server
//! streams the lines a page of orders at a time; this module only makes them.

use chrono::DateTime;

use crate::customers::Customer;
use crate::domain::{Currency, Money};
use crate::orders::Order;

/// The orders export's columns.
pub const ORDER_COLUMNS: [&str; 14] = [
    "number",
    "id",
    "status",
    "created_at",
    "paid_at",
    "customer_email",
    "currency",
    "total",
    "discount",
    "refunded",
    "items",
    "payment_intent",
    "subscription",
    "dispute",
];

/// The customers export's columns.
pub const CUSTOMER_COLUMNS: [&str; 8] = [
    "email",
    "currency",
    "lifetime_value",
    "orders",
    "order_numbers",
    "first_paid_at",
    "last_paid_at",
    "disputes",
];

/// One cell, made safe for spreadsheets and quoted when it must be.
///
/// # Examples
/// ```
/// use chatpay_core::export::cell;
/// assert_eq!(cell("ana@example.com"), "ana@example.com");
/// assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
/// assert_eq!(cell("1 × Mug, 2 × Tea"), "\"1 × Mug, 2 × Tea\"");
/// ```
pub fn cell(raw: &str) -> String {
    let safe = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

/// One line of cells, ending in CRLF.
pub fn line<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = cells
        .iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// An order's line.
pub fn order_line(o: &Order) -> String {
    let units = |minor: i64| Money::new(minor, o.currency).units();
    line(&[
        o.number.to_string(),
        o.id.clone(),
        o.status.as_str().to_owned(),
        time(Some(o.created_at)),
        time(o.paid_at),
        o.customer_email.clone().unwrap_or_default(),
        o.currency.as_str().to_ascii_uppercase(),
        units(o.amount_total),
        units(o.discount()),
        units(o.refunded()),
        o.lines
            .iter()
            .map(|l| format!("{} × {}", l.quantity, l.name))
            .collect::<Vec<_>>()
            .join("; "),
        o.payment_intent.clone().unwrap_or_default(),
        o.subscription.clone().unwrap_or_default(),
        o.dispute
            .as_ref()
            .map(|d| d.outcome().as_str().to_owned())
            .unwrap_or_default(),
    ])
}

/// A customer's lines: one per currency they paid in.
pub fn customer_lines(c: &Customer) -> String {
    c.spent
        .iter()
        .map(|(cur, minor)| {
            let value = Currency::parse(cur)
                .map_or_else(|| minor.to_string(), |c| Money::new(*minor, c).units());
            line(&[
                c.email.clone(),
                cur.to_ascii_uppercase(),
                value,
                c.orders.len().to_string(),
                c.orders
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                time(Some(c.first_paid_at)),
                time(Some(c.last_paid_at)),
                c.disputes.to_string(),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customers::{customers, paid_order};
    use crate::orders::OrderLine;

    fn order(n: i64, email: &str, cur: &str, amount: i64) -> Order {
        let mut o = paid_order(n, email, cur, amount, 1_796_083_260_000);
        o.created_at = 1_796_083_200_000;
        o
    }

    #[test]
    fn cells_are_quoted_and_formula_safe() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        for risky in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            let c = cell(risky);
            let inner = c.trim_start_matches('"');
            assert!(inner.starts_with('\''), "{risky:?} became {c:?}");
        }
        assert_eq!(line(&["a", "b,c", ""]), "a,\"b,c\",\r\n");
    }

    #[test]
    fn orders_have_amounts_in_units_and_a_currency() {
        let mut o = order(1001, "=cmd@example.com", "usd", 11_300);
        o.lines = vec![OrderLine {
            price: "price_1".into(),
            product: "prod_1".into(),
            name: "Mug, large".into(),
            quantity: 2,
            unit_amount: 5_650,
            amount: 11_300,
            interval: None,
        }];
        assert_eq!(
            order_line(&o),
            "1001,ord_1001,paid,2026-12-01T00:00:00Z,2026-12-01T00:01:00Z,'=cmd@example.com,USD,113.00,0.00,0.00,\"2 × Mug, large\",,,\r\n"
        );
        let yen = order(1002, "bo@example.com", "jpy", 500);
        assert!(order_line(&yen).contains(",JPY,500,0,0,"));
        assert_eq!(ORDER_COLUMNS.len(), order_line(&yen).split(',').count());
    }

    #[test]
    fn a_customer_has_a_line_per_currency() {
        let orders = [
            order(1001, "ana@example.com", "usd", 4_900),
            order(1002, "ana@example.com", "eur", 2_000),
        ];
        let text = customer_lines(&customers(&orders)[0]);
        assert_eq!(
            text,
            "ana@example.com,EUR,20.00,2,1002 1001,2026-12-01T00:01:00Z,2026-12-01T00:01:00Z,0\r\n\
             ana@example.com,USD,49.00,2,1002 1001,2026-12-01T00:01:00Z,2026-12-01T00:01:00Z,0\r\n"
        );
    }
}
