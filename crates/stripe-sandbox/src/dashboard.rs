//! A small part of Stripe's Dashboard: a connected account's products, and a form to add one
//! with a price (`GET`/`POST /dashboard/{account}/products`), in the mode the account lives in
//! (a live account's page shows and adds to its live catalog, with the live key). People trying
//! chatpay without a Stripe account make their catalog here, by clicking; the form goes through
//! the sandbox's own API (`api::call_as`), so the same rules apply and the same events are
//! sent.
//!
//! Below them, sandbox-only test tools (Stripe's Dashboard has nothing like them): a Clock that
//! moves the sandbox's time on by a day, a week or a month (`POST /dashboard/{account}/clock`,
//! as `POST /__sandbox/clock/advance` does: subscriptions renew, balances become available,
//! payouts are made and arrive), and a button that gives the newest subscription's customer
//! the failing test card 4000 0000 0000 0341 (`POST /dashboard/{account}/failing_card`), so the
//! next renewal is declined. Like every `/__sandbox` control, they serve loopback clients only.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::api;
use super::html::{self, escape};
use super::state::App;

const CURRENCIES: &[(&str, &str)] = &[("usd", "USD"), ("eur", "EUR"), ("gbp", "GBP")];
const BILLING: &[(&str, &str)] = &[
    ("one_time", "One-time"),
    ("month", "Monthly"),
    ("year", "Yearly"),
];

/// `GET /dashboard/{account}/products`
pub(crate) async fn products(State(app): State<App>, Path(account): Path<String>) -> Response {
    page(&app, &account, StatusCode::OK, None, &Entered::default())
}

/// What the form held, to show again after a refusal.
#[derive(Default)]
struct Entered {
    name: String,
    amount: String,
    currency: String,
    billing: String,
}

/// `POST /dashboard/{account}/products`: creates the product, then its price if an amount is
/// given (a product without a price is allowed, as in Stripe; chatpay flags it).
pub(crate) async fn create_product(
    State(app): State<App>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let mut e = Entered::default();
    for (k, v) in form_urlencoded::parse(&body) {
        let v = v.trim().to_owned();
        match &*k {
            "name" => e.name = v,
            "amount" => e.amount = v,
            "currency" => e.currency = v,
            "billing" => e.billing = v,
            _ => {}
        }
    }
    match create(&app, &account, &e) {
        Ok(name) => page(
            &app,
            &account,
            StatusCode::OK,
            Some(Ok(format!(
                "Added {name}. Sync the catalog in chatpay to sell it."
            ))),
            &Entered::default(),
        ),
        Err(message) => page(
            &app,
            &account,
            StatusCode::BAD_REQUEST,
            Some(Err(message)),
            &e,
        ),
    }
}

fn create(app: &App, account: &str, e: &Entered) -> Result<String, String> {
    if e.name.is_empty() {
        return Err("Enter the product's name.".to_owned());
    }
    let amount = if e.amount.is_empty() {
        None
    } else {
        Some(minor_units(&e.amount).ok_or_else(|| {
            "Enter the price like 49 or 49.00 (or leave it empty for no price).".to_owned()
        })?)
    };
    let product = api::call_as(
        app,
        account,
        Method::POST,
        "/v1/products",
        &[("name", &e.name)],
    )
    .map_err(|err| err.message)?;
    if let Some(amount) = amount {
        let id = product["id"].as_str().unwrap_or_default();
        let amount = amount.to_string();
        let currency = if e.currency.is_empty() {
            "usd"
        } else {
            &e.currency
        };
        let mut form = vec![
            ("product", id),
            ("unit_amount", amount.as_str()),
            ("currency", currency),
        ];
        if e.billing == "month" || e.billing == "year" {
            form.push(("recurring[interval]", e.billing.as_str()));
        }
        api::call_as(app, account, Method::POST, "/v1/prices", &form).map_err(|err| {
            format!(
                "The product was created, but not its price: {}",
                err.message
            )
        })?;
    }
    Ok(e.name.clone())
}

fn time_text(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .map(|d| d.format("%-d %b %Y %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `POST /dashboard/{account}/clock` `advance=day|week|month`: the sandbox's time moves on.
pub(crate) async fn clock(
    State(app): State<App>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let by = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "advance")
        .map(|(_, v)| v.into_owned());
    let (days, label) = match by.as_deref() {
        Some("day") => (1, "1 day"),
        Some("week") => (7, "1 week"),
        Some("month") => (31, "1 month (31 days)"),
        _ => {
            let text = "Choose how far to move the clock: a day, a week or a month.";
            return page_with(
                &app,
                &account,
                StatusCode::BAD_REQUEST,
                Some(Err(text.to_owned())),
                &Entered::default(),
                true,
            );
        }
    };
    // The account must exist: the page is refused otherwise, before the clock moves.
    if let Err(err) = api::call_as(&app, &account, Method::GET, "/v1/products?limit=1", &[]) {
        return html::message(
            StatusCode::NOT_FOUND,
            "This account can't be shown",
            &err.message,
        );
    }
    super::control::advance_clock(&app, std::time::Duration::from_secs(days * 86_400));
    let text = format!(
        "Moved the clock on by {label}: it is now {}.",
        time_text(app.now())
    );
    page_with(
        &app,
        &account,
        StatusCode::OK,
        Some(Ok(text)),
        &Entered::default(),
        true,
    )
}

/// `POST /dashboard/{account}/failing_card`: the newest subscription's customer gets the card
/// 4000 0000 0000 0341 (attaches, then declines every charge).
pub(crate) async fn failing_card(State(app): State<App>, Path(account): Path<String>) -> Response {
    let outcome = api::call_as(
        &app,
        &account,
        Method::GET,
        "/v1/subscriptions?limit=1",
        &[],
    )
    .map_err(|err| err.message)
    .and_then(|list| {
        list["data"][0]["customer"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "This account has no subscriptions yet.".to_owned())
    })
    .and_then(|customer| {
        super::control::set_customer_card(&app, &customer, "4000000000000341")
            .map(|_| customer)
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(customer) => page_with(
            &app,
            &account,
            StatusCode::OK,
            Some(Ok(format!(
                "Customer {customer} now pays with 4000 0000 0000 0341: the next renewal is declined."
            ))),
            &Entered::default(),
            true,
        ),
        Err(text) => page_with(
            &app,
            &account,
            StatusCode::BAD_REQUEST,
            Some(Err(text)),
            &Entered::default(),
            true,
        ),
    }
}

/// "49" or "49.5" or "49.00" in a two-decimal currency -> 4900.
fn minor_units(text: &str) -> Option<i64> {
    let text = text.trim_start_matches(['$', '€', '£']);
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let cents = format!("{frac:0<2}").parse::<i64>().ok()?;
    let amount = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)?;
    (amount > 0).then_some(amount)
}

fn price_text(p: &Value) -> String {
    let amount = p["unit_amount"].as_i64().unwrap_or(0);
    let currency = p["currency"].as_str().unwrap_or("").to_uppercase();
    let every = p["recurring"]["interval"]
        .as_str()
        .map(|i| format!(" / {i}"))
        .unwrap_or_default();
    format!("{currency} {}.{:02}{every}", amount / 100, amount % 100)
}

fn page(
    app: &App,
    account: &str,
    status: StatusCode,
    outcome: Option<Result<String, String>>,
    e: &Entered,
) -> Response {
    page_with(app, account, status, outcome, e, false)
}

/// The page; a test tool's outcome (`tools`) shows in the test tools' card, by its buttons.
fn page_with(
    app: &App,
    account: &str,
    status: StatusCode,
    outcome: Option<Result<String, String>>,
    e: &Entered,
    tools: bool,
) -> Response {
    let products = api::call_as(app, account, Method::GET, "/v1/products?limit=100", &[]);
    let prices = api::call_as(app, account, Method::GET, "/v1/prices?limit=100", &[]);
    let (products, prices) = match (products, prices) {
        (Ok(p), Ok(q)) => (p, q),
        (Err(err), _) | (_, Err(err)) => {
            return html::message(
                StatusCode::NOT_FOUND,
                "This account can't be shown",
                &err.message,
            );
        }
    };
    let no_prices = Vec::new();
    let prices = prices["data"].as_array().unwrap_or(&no_prices);
    let rows: String = products["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let id = p["id"].as_str().unwrap_or_default();
            let shown: Vec<String> = prices
                .iter()
                .filter(|q| q["product"] == id && q["active"] == true)
                .map(price_text)
                .collect();
            let shown = if shown.is_empty() {
                "<span class=\"muted\">No price</span>".to_owned()
            } else {
                escape(&shown.join(", "))
            };
            let state = if p["active"] == true {
                "Active"
            } else {
                "Archived"
            };
            format!(
                "<tr><td>{}</td><td>{shown}</td><td>{state}</td></tr>",
                escape(p["name"].as_str().unwrap_or_default())
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p class=\"muted\">No products yet.</p>".to_owned()
    } else {
        format!(
            "<table class=\"list\"><thead><tr><th>Product</th><th>Price</th><th>Status</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let notice = match &outcome {
        Some(Ok(text)) => format!("<div class=\"ok\" role=\"status\">{}</div>", escape(text)),
        Some(Err(message)) => format!(
            "<div class=\"errors\" role=\"alert\">{}</div>",
            escape(message)
        ),
        None => String::new(),
    };
    let options = |list: &[(&str, &str)], chosen: &str| -> String {
        list.iter()
            .map(|(v, label)| {
                let selected = if *v == chosen { " selected" } else { "" };
                format!("<option value=\"{v}\"{selected}>{label}</option>")
            })
            .collect()
    };
    let body = format!(
        r#"<style>table.list{{width:100%;border-collapse:collapse}}table.list th{{text-align:left;font-size:12px;color:#697386;text-transform:uppercase;letter-spacing:.04em;padding:8px 0;border-bottom:1px solid #e3e8ee}}table.list td{{padding:10px 0;border-bottom:1px solid #e3e8ee}}.live{{display:inline-block;background:#d7f7e3;color:#0a6b40;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}}.ok{{background:#e6f6ec;border:1px solid #b7e4c7;color:#0a6b40;border-radius:6px;padding:10px 14px;margin-bottom:16px}}.muted{{color:#697386}}</style>
<div class="card"><h1>Products</h1><p class="muted">{account} {mode_badge} What this account sells.</p>{table}</div>
{product_notice}
<form method="post" class="card" id="add-product">
<h2>Add a product</h2>
<label for="name">Name</label><input type="text" id="name" name="name" required value="{name}">
<div class="row"><div><label for="amount">Price (leave empty for none)</label><input type="text" id="amount" name="amount" inputmode="decimal" placeholder="49.00" value="{amount}"></div>
<div><label for="currency">Currency</label><select id="currency" name="currency">{currencies}</select></div></div>
<label for="billing">Billing</label><select id="billing" name="billing">{billing}</select>
<p><button class="primary" type="submit">Add product</button></p>
</form>
<div class="card" id="test-tools"><h2>Sandbox test tools</h2><p class="muted">Only in chatpay's Stripe sandbox, to see in a browser what happens over time. Sandbox time: <strong id="sandbox-time">{now}</strong>.</p>{tools_notice}
<form method="post" action="/dashboard/{account}/clock" id="clock"><h3>Clock</h3><p class="muted">Move the sandbox's time on (for every account): subscriptions renew (as on Stripe, a renewal's invoice stays a draft for about an hour before it is charged), payments become available, payouts are made and arrive.</p>
<p><button type="submit" name="advance" value="day">Advance 1 day</button> <button type="submit" name="advance" value="week">Advance 1 week</button> <button type="submit" name="advance" value="month">Advance 1 month (31 days)</button></p></form>
<form method="post" action="/dashboard/{account}/failing_card" id="failing-card"><h3>Failing card</h3><p class="muted">Give the newest subscription's customer the test card 4000 0000 0000 0341: it was accepted once, and every later charge is declined, so the next renewal fails.</p>
<p><button type="submit">Use the failing card</button></p></form></div>"#,
        now = escape(&time_text(app.now())),
        mode_badge = match api::account_mode(app, account) {
            crate::Mode::Test => "<span class=\"test\">TEST DATA</span>",
            crate::Mode::Live => "<span class=\"live\">LIVE DATA</span>",
        },
        product_notice = if tools { "" } else { notice.as_str() },
        tools_notice = if tools { notice.as_str() } else { "" },
        account = escape(account),
        name = escape(&e.name),
        amount = escape(&e.amount),
        currencies = options(CURRENCIES, &e.currency),
        billing = options(BILLING, &e.billing),
    );
    html::respond(status, "Products", &body)
}

#[cfg(test)]
mod tests {
    use super::minor_units;

    #[test]
    fn prices_are_read_in_minor_units() {
        assert_eq!(minor_units("49"), Some(4900));
        assert_eq!(minor_units("49.5"), Some(4950));
        assert_eq!(minor_units("$49.05"), Some(4905));
        for bad in ["", "0", "4.999", "a", "-3", "1.2.3", ".5"] {
            assert_eq!(minor_units(bad), None, "{bad:?}");
        }
    }
}
