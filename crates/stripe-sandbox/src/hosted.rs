//! The hosted pages of selling: Checkout (`/checkout/{session}`, a plain HTML form that works
//! without JavaScript, with Stripe Checkout's own field ids), its 3D Secure step
//! (`/checkout/{session}/authenticate`), receipts (`/receipts/{charge}`, always current,
//! refunds included), hosted invoices (`/invoices/{id}`) and their PDF (`/invoices/{id}/pdf`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::cards::{self, Behavior, PAGE_LIST};
use super::checkout::{self, Ctx, PayInput, PayOutcome};
use super::html::{self, escape};
use super::money;
use super::rules;
use super::sales::{Charge, CheckoutSession, Invoice, InvoiceStatus, Refund, SessionStatus};
use super::state::App;
use super::subscriptions;
use crate::Mode;

/// Finds a session in either mode, after applying what the clock says (expiry).
fn find_session(app: &App, id: &str) -> Option<(Mode, CheckoutSession)> {
    let mode = {
        let st = app.lock();
        [Mode::Test, Mode::Live]
            .into_iter()
            .find(|m| st.mode(*m).sales.sessions.get(id).is_some())?
    };
    let session = app.transact(mode, None, |tx| {
        let changed = checkout::settle(tx, Ctx::app(app));
        tx.read_only = !changed;
        tx.ms().sales.sessions.get(id).cloned()
    })?;
    Some((mode, session))
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%B %-d, %Y, %H:%M UTC")
        .to_string()
}

/// Who the customer pays, as Stripe's hosted pages name a connected account: its public
/// business name ([`Account::public_name`](super::model::Account::public_name)).
fn seller_name(app: &App, mode: Mode, account: Option<&str>) -> String {
    let st = app.lock();
    match account {
        None => "Sandbox platform".to_owned(),
        Some(a) => st
            .mode(mode)
            .accounts
            .get(a)
            .map_or_else(|| a.to_owned(), |acc| acc.public_name()),
    }
}

fn test_badge(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => " <span class=\"test\">TEST MODE</span>",
        Mode::Live => "",
    }
}

fn summary(s: &CheckoutSession) -> String {
    let rows: String = s
        .line_items
        .iter()
        .map(|li| {
            let each = if li.quantity > 1 {
                format!(
                    "<br><small>{} × {}</small>",
                    li.quantity,
                    escape(&money::format(li.price.unit_amount, &li.price.currency))
                )
            } else {
                String::new()
            };
            // A recurring price is charged every period, as Stripe's page says ("per month").
            let every = li
                .price
                .recurring
                .as_ref()
                .map(|r| match r.interval_count {
                    1 => format!(" per {}", r.interval),
                    n => format!(" every {n} {}s", r.interval),
                })
                .unwrap_or_default();
            format!(
                "<tr><th scope=\"row\">{}{each}</th><td>{}{}</td></tr>",
                escape(&li.description),
                escape(&money::format(li.amount(), &li.price.currency)),
                escape(&every)
            )
        })
        .collect();
    let (discount, _) = s.discount_shares();
    let discount_rows = match &s.discount {
        Some(d) if discount > 0 => {
            let label = d.label();
            let remove = if d.entered_on_page {
                format!(
                    " <form method=\"post\" action=\"/checkout/{}/promotion_code/remove\" \
                     class=\"inline\"><button class=\"link\" type=\"submit\" \
                     id=\"removePromotionCode\">Remove</button></form>",
                    escape(&s.id)
                )
            } else {
                String::new()
            };
            format!(
                "<tr class=\"subtotal\"><th scope=\"row\">Subtotal</th><td>{}</td></tr>\
                 <tr class=\"discount\" id=\"discount\"><th scope=\"row\">{}<br><small>{}</small>{remove}</th>\
                 <td>−{}</td></tr>",
                escape(&money::format(s.amount_due_now(s.created), &s.currency)),
                escape(&label),
                escape(&d.coupon.describe()),
                escape(&money::format(discount, &s.currency)),
            )
        }
        _ => String::new(),
    };
    // A trial's recurring lines are due later: Stripe's page says what is due today.
    let due_label = if s.is_subscription() {
        "Total due today"
    } else {
        "Total due"
    };
    format!(
        "<table class=\"lines\"><caption>Order summary</caption>{rows}{discount_rows}\
         <tr class=\"total\"><th scope=\"row\">{due_label}</th><td>{}</td></tr></table>",
        escape(&money::format(s.amount_total(), &s.currency))
    )
}

/// The "Add promotion code" field of a session with `allow_promotion_codes` (its own form, as
/// on Stripe's page; a code already applied shows in the summary with "Remove").
fn promotion_form(s: &CheckoutSession, typed: &str, error: Option<&str>) -> String {
    if !s.allow_promotion_codes || s.discount.is_some() {
        return String::new();
    }
    let (error_html, described) = match error {
        Some(m) => (
            format!(
                "<p class=\"field-error\" role=\"alert\" id=\"promotionCode-error\">{}</p>",
                escape(m)
            ),
            " aria-describedby=\"promotionCode-error\" aria-invalid=\"true\"",
        ),
        None => (String::new(), ""),
    };
    format!(
        r#"<form method="post" action="/checkout/{id}/promotion_code" class="promo" id="promotion-code-form" novalidate>
<label for="promotionCode">Add promotion code</label>
<div class="row"><div><input type="text" id="promotionCode" name="promotionCode" autocomplete="off" autocapitalize="characters" value="{typed}"{described}></div>
<div class="apply"><button class="secondary" type="submit" id="applyPromotionCode">Apply</button></div></div>
{error_html}</form>"#,
        id = escape(&s.id),
        typed = escape(typed),
    )
}

/// What the form held, to show it again after an error.
#[derive(Debug, Default, Clone)]
struct Entered {
    email: String,
    card_number: String,
    card_expiry: String,
    card_cvc: String,
    billing_name: String,
}

impl Entered {
    fn parse(body: &[u8]) -> Entered {
        let mut e = Entered::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            match k.as_ref() {
                "email" => e.email = v,
                "cardNumber" => e.card_number = v,
                "cardExpiry" => e.card_expiry = v,
                "cardCvc" => e.card_cvc = v,
                "billingName" => e.billing_name = v,
                _ => {}
            }
        }
        e
    }
}

/// What the promotion code field shows: the code as typed, and why it was refused.
#[derive(Debug, Default, Clone)]
struct Promo {
    typed: String,
    error: Option<String>,
}

fn checkout_page(
    app: &App,
    mode: Mode,
    s: &CheckoutSession,
    e: &Entered,
    error: Option<&str>,
    promo: &Promo,
) -> String {
    let seller = seller_name(app, mode, s.account.as_deref());
    let total = money::format(s.amount_total(), &s.currency);
    let error = error
        .map(|m| {
            format!(
                "<div class=\"errors\" role=\"alert\" id=\"payment-error\">{}</div>",
                escape(m)
            )
        })
        .unwrap_or_default();
    let email = if e.email.is_empty() {
        s.customer_email.clone().unwrap_or_default()
    } else {
        e.email.clone()
    };
    let cards: String = PAGE_LIST
        .iter()
        .map(|(n, what)| format!("<li><code>{n}</code> {}</li>", escape(what)))
        .collect();
    let test_note = if mode == Mode::Test {
        format!(
            "<div class=\"card\"><h2>Test cards</h2><p class=\"muted\">This is a test payment: \
             no real money moves. Use any future expiry date (e.g. 12 / 34), any 3-digit CVC \
             and any name.</p><ul class=\"cards\">{cards}</ul></div>"
        )
    } else {
        String::new()
    };
    let cancel = s
        .cancel_url
        .as_deref()
        .map(|u| format!("<p><a href=\"{}\">Cancel and go back</a></p>", escape(u)))
        .unwrap_or_default();
    // Stripe's page says "Subscribe" for a checkout that starts a subscription.
    let pay_label = if s.mode == "subscription" {
        "Subscribe".to_owned()
    } else {
        format!("Pay {total}")
    };
    format!(
        r#"<div class="split"><div class="summary"><div class="card"><p class="muted">Pay {seller}{badge}</p><h1>{total}</h1>{summary}{promo}{cancel}</div>
{test_note}</div><div class="payment">
{error}
<form method="post" action="/checkout/{id}" class="card" novalidate>
<h2>Pay with card</h2>
<label for="email">Email</label>
<input type="email" id="email" name="email" autocomplete="email" required value="{email}">
<label for="cardNumber">Card number</label>
<input type="text" id="cardNumber" name="cardNumber" inputmode="numeric" autocomplete="cc-number" placeholder="1234 1234 1234 1234" required value="{number}">
<div class="row"><div><label for="cardExpiry">Expiration (MM / YY)</label>
<input type="text" id="cardExpiry" name="cardExpiry" inputmode="numeric" autocomplete="cc-exp" placeholder="MM / YY" required value="{expiry}"></div>
<div><label for="cardCvc">CVC</label>
<input type="text" id="cardCvc" name="cardCvc" inputmode="numeric" autocomplete="cc-csc" placeholder="CVC" required value="{cvc}"></div></div>
<label for="billingName">Cardholder name</label>
<input type="text" id="billingName" name="billingName" autocomplete="cc-name" required value="{name}">
<button class="primary pay" type="submit" id="submitButton">{pay_label}</button>
<p class="secure">Payments are processed by Stripe (sandbox).</p>
</form></div></div>"#,
        seller = escape(&seller),
        badge = test_badge(mode),
        total = escape(&total),
        summary = summary(s),
        promo = promotion_form(s, &promo.typed, promo.error.as_deref()),
        id = escape(&s.id),
        email = escape(&email),
        number = escape(&e.card_number),
        expiry = escape(&e.card_expiry),
        cvc = escape(&e.card_cvc),
        name = escape(&e.billing_name),
    )
}

const EXTRA_STYLE: &str = "<style>table.lines{width:100%;border-collapse:collapse;margin:8px 0}\
table.lines caption{text-align:left;font-weight:600;color:#3c4257;padding-bottom:4px}\
table.lines th{text-align:left;font-weight:400;padding:6px 0}\
table.lines td{text-align:right;padding:6px 0;white-space:nowrap}\
table.lines tr.total th,table.lines tr.total td{font-weight:700;border-top:1px solid #e3e8ee}\
table.lines small{color:#595f6e}\
table.lines tr.discount td{color:#0a6b40}table.lines tr.subtotal th,table.lines tr.subtotal td{border-top:1px solid #e3e8ee}\
form.promo{margin:8px 0 12px}form.promo .row{align-items:flex-end}form.promo .apply{flex:0 0 auto}\
form.inline{display:inline}button.link{background:none;border:0;padding:0 0 0 6px;color:#4b44c8;font-weight:600;cursor:pointer}\
.field-error{color:#a8071a;font-size:13px;margin:6px 0 0}\
button.pay{width:100%;margin-top:16px;font-size:16px}\
ul.cards{padding-left:18px;margin:0}ul.cards code{font-size:13px}\
a{color:#4b44c8}.secure{font-size:12px;color:#595f6e;text-align:center;margin:10px 0 0}h1{font-size:30px;letter-spacing:-.02em}@media (min-width:900px){main:has(.split){max-width:980px}.split{display:grid;grid-template-columns:1fr 1fr;gap:32px;align-items:start}}</style>";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    html::respond(status, title, &format!("{EXTRA_STYLE}{body}"))
}

fn closed_page(app: &App, mode: Mode, s: &CheckoutSession) -> Response {
    let seller = seller_name(app, mode, s.account.as_deref());
    let (title, text) = match s.status {
        SessionStatus::Complete => (
            "This payment is complete",
            format!(
                "You paid {} to {seller}. Thank you!",
                money::format(s.amount_total(), &s.currency)
            ),
        ),
        _ => (
            "This checkout session has expired",
            format!("The payment link from {seller} is no longer valid. Ask for a new one."),
        ),
    };
    page(
        StatusCode::OK,
        title,
        &format!(
            "<div class=\"card\"><h1>{}</h1><p class=\"muted\">{}{}</p></div>",
            escape(title),
            escape(&text),
            test_badge(mode)
        ),
    )
}

fn missing() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "Something went wrong",
        "This checkout page does not exist.",
    )
}

pub(crate) async fn show(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some((mode, s)) = find_session(&app, &id) else {
        return missing();
    };
    if s.status != SessionStatus::Open {
        return closed_page(&app, mode, &s);
    }
    if waiting_for_auth(&app, mode, &s) {
        return html::redirect(
            StatusCode::SEE_OTHER,
            &format!("/checkout/{id}/authenticate"),
        );
    }
    let error = s.last_error.clone();
    page(
        StatusCode::OK,
        "Checkout",
        &checkout_page(
            &app,
            mode,
            &s,
            &Entered::default(),
            error.as_deref(),
            &Promo::default(),
        ),
    )
}

fn waiting_for_auth(app: &App, mode: Mode, s: &CheckoutSession) -> bool {
    let st = app.lock();
    s.payment_intent
        .as_ref()
        .and_then(|pi| st.mode(mode).sales.intents.get(pi))
        .is_some_and(|pi| pi.pending_auth.is_some())
        || s.pending_auth.is_some()
}

/// Checks the form and turns it into a payment attempt's input.
fn validate(e: &Entered, now: i64) -> Result<PayInput, &'static str> {
    let email = rules::email("email", &e.email).map_err(|_| "Your email is incomplete.")?;
    let card = cards::check(&e.card_number, &e.card_expiry, &e.card_cvc, now)?;
    let name = e.billing_name.trim();
    if name.is_empty() {
        return Err("Your cardholder name is incomplete.");
    }
    Ok(PayInput {
        email,
        name: name.to_owned(),
        card,
    })
}

pub(crate) async fn submit(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, s)) = find_session(&app, &id) else {
        return missing();
    };
    if s.status != SessionStatus::Open {
        return closed_page(&app, mode, &s);
    }
    let entered = Entered::parse(&body);
    let input = match validate(&entered, app.now()) {
        Ok(input) => input,
        Err(message) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Checkout",
                &checkout_page(&app, mode, &s, &entered, Some(message), &Promo::default()),
            );
        }
    };
    let outcome = app.transact(mode, None, |tx| {
        checkout::pay(tx, Ctx::app(&app), &id, input)
    });
    respond(&app, mode, &id, outcome, &entered)
}

fn respond(app: &App, mode: Mode, id: &str, outcome: PayOutcome, entered: &Entered) -> Response {
    match outcome {
        PayOutcome::Succeeded { redirect_to } => {
            html::redirect(StatusCode::SEE_OTHER, &redirect_to)
        }
        PayOutcome::RequiresAction => html::redirect(
            StatusCode::SEE_OTHER,
            &format!("/checkout/{id}/authenticate"),
        ),
        PayOutcome::Declined { message, .. } => match find_session(app, id) {
            Some((mode, s)) => {
                // The card number is not shown again after a decline.
                let keep = Entered {
                    card_number: String::new(),
                    card_cvc: String::new(),
                    ..entered.clone()
                };
                page(
                    StatusCode::PAYMENT_REQUIRED,
                    "Checkout",
                    &checkout_page(app, mode, &s, &keep, Some(&message), &Promo::default()),
                )
            }
            None => missing(),
        },
        PayOutcome::NotOpen(_) => match find_session(app, id) {
            Some((_, s)) => closed_page(app, mode, &s),
            None => missing(),
        },
    }
}

fn promotion_code_text(body: &[u8]) -> String {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "promotionCode")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// `POST /checkout/{id}/promotion_code`: applies the typed code, or shows the page again with
/// why it was refused under the field.
pub(crate) async fn apply_promotion_code(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, s)) = find_session(&app, &id) else {
        return missing();
    };
    if s.status != SessionStatus::Open {
        return closed_page(&app, mode, &s);
    }
    let typed = promotion_code_text(&body);
    let outcome = app.transact(mode, None, |tx| {
        checkout::apply_code(tx, Ctx::app(&app), &id, &typed, None)
    });
    match outcome {
        Ok(()) => html::redirect(StatusCode::SEE_OTHER, &format!("/checkout/{id}")),
        Err(message) => {
            let Some((mode, s)) = find_session(&app, &id) else {
                return missing();
            };
            page(
                StatusCode::BAD_REQUEST,
                "Checkout",
                &checkout_page(
                    &app,
                    mode,
                    &s,
                    &Entered::default(),
                    None,
                    &Promo {
                        typed,
                        error: Some(message),
                    },
                ),
            )
        }
    }
}

/// `POST /checkout/{id}/promotion_code/remove`: removes the code the customer applied.
pub(crate) async fn remove_promotion_code(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Response {
    let Some((mode, _)) = find_session(&app, &id) else {
        return missing();
    };
    app.transact(mode, None, |tx| {
        checkout::remove_code(tx, Ctx::app(&app), &id);
    });
    html::redirect(StatusCode::SEE_OTHER, &format!("/checkout/{id}"))
}

pub(crate) async fn show_authenticate(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some((mode, s)) = find_session(&app, &id) else {
        return missing();
    };
    if s.status != SessionStatus::Open {
        return closed_page(&app, mode, &s);
    }
    if !waiting_for_auth(&app, mode, &s) {
        return html::redirect(StatusCode::SEE_OTHER, &format!("/checkout/{id}"));
    }
    let total = money::format(s.amount_total(), &s.currency);
    page(
        StatusCode::OK,
        "Authenticate your payment",
        &format!(
            r#"<div class="card"><h1>3D Secure authentication{badge}</h1>
<p class="muted">Your bank asks you to confirm the payment of <b>{total}</b>. In the sandbox you choose what the bank answers.</p>
<form method="post" action="/checkout/{id}/authenticate" class="row">
<div><button class="primary" type="submit" name="action" value="complete" id="complete">Complete authentication</button></div>
<div><button class="secondary" type="submit" name="action" value="fail" id="fail">Fail authentication</button></div>
</form></div>"#,
            badge = test_badge(mode),
            total = escape(&total),
            id = escape(&id),
        ),
    )
}

pub(crate) async fn submit_authenticate(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, _)) = find_session(&app, &id) else {
        return missing();
    };
    let complete = form_urlencoded::parse(&body).any(|(k, v)| k == "action" && v == "complete");
    let outcome = app.transact(mode, None, |tx| {
        checkout::authenticate(tx, Ctx::app(&app), &id, complete)
    });
    respond(&app, mode, &id, outcome, &Entered::default())
}

// ---- receipts and invoices ----

fn find<T: Clone>(
    app: &App,
    pick: impl Fn(&super::sales::Sales) -> Option<&T>,
) -> Option<(Mode, T)> {
    let st = app.lock();
    [Mode::Test, Mode::Live]
        .into_iter()
        .find_map(|m| pick(&st.mode(m).sales).map(|t| (m, t.clone())))
}

pub(crate) async fn receipt(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some((mode, charge)) = find::<Charge>(&app, |s| s.charges.get(&id)) else {
        return html::message(
            StatusCode::NOT_FOUND,
            "Receipt not found",
            "There is no such receipt.",
        );
    };
    // Late refund failures show up even if nobody asked the API since.
    app.transact(mode, None, |tx| {
        let changed = checkout::settle(tx, Ctx::app(&app));
        tx.read_only = !changed;
    });
    let (refunds, session): (Vec<Refund>, Option<CheckoutSession>) = {
        let st = app.lock();
        let sales = &st.mode(mode).sales;
        (
            sales
                .refunds
                .iter()
                .filter(|r| r.charge == id)
                .cloned()
                .collect(),
            sales.sessions.get(&charge.session).cloned(),
        )
    };
    let charge = find::<Charge>(&app, |s| s.charges.get(&id))
        .map(|(_, c)| c)
        .unwrap_or(charge);
    let seller = seller_name(&app, mode, charge.account.as_deref());
    let fmt = |a: i64| escape(&money::format(a, &charge.currency));
    let lines = session.as_ref().map(summary).unwrap_or_default();
    let refund_rows: String = refunds
        .iter()
        .map(|r| {
            let status = match r.status.as_str() {
                "failed" => " (failed: the refund could not be completed)",
                "pending" => " (pending)",
                _ => "",
            };
            format!(
                "<li>Refund of {} on {}{status}</li>",
                fmt(r.amount),
                escape(&date(r.created))
            )
        })
        .collect();
    let refunded = if charge.amount_refunded > 0 || !refunds.is_empty() {
        format!(
            "<h2>Refunds</h2><ul>{refund_rows}</ul><p><b>Refunded: {}</b>{}</p>",
            fmt(charge.amount_refunded),
            if charge.amount_refunded >= charge.amount {
                " (fully refunded)"
            } else {
                ""
            }
        )
    } else {
        String::new()
    };
    let status = if charge.succeeded {
        "Paid"
    } else {
        "Payment failed"
    };
    page(
        StatusCode::OK,
        "Receipt",
        &format!(
            r#"<div class="card"><p class="muted">Receipt from {seller}{badge}</p>
<h1>{status} {amount}</h1>
<p class="muted">Receipt #{number} · {when} · {brand} ending in {last4}</p>
{lines}
{refunded}
<p class="muted">Questions? Contact {seller}.</p></div>"#,
            seller = escape(&seller),
            badge = test_badge(mode),
            amount = fmt(charge.amount),
            number = escape(charge.receipt_number.as_deref().unwrap_or("-")),
            when = escape(&date(charge.created)),
            brand = escape(&charge.card.brand),
            last4 = escape(&charge.card.last4),
        ),
    )
}

/// The invoice's lines, then its subtotal and discount when it has one.
fn invoice_lines(i: &Invoice) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = i
        .lines
        .iter()
        .map(|l| {
            (
                format!("{} x {}", l.description, l.quantity),
                money::format(l.amount, &i.currency),
            )
        })
        .collect();
    if let Some(d) = i.discount.as_ref().filter(|_| i.discount_amount > 0) {
        rows.push((
            "Subtotal".to_owned(),
            money::format(i.subtotal(), &i.currency),
        ));
        rows.push((
            format!("{} ({})", d.label(), d.coupon.describe()),
            format!("-{}", money::format(i.discount_amount, &i.currency)),
        ));
    }
    rows
}

fn invoice_missing() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "Invoice not found",
        "There is no such invoice.",
    )
}

/// The invoice after applying what the clock says; drafts have no hosted page.
fn find_invoice(app: &App, id: &str) -> Option<(Mode, Invoice)> {
    let (mode, _) = find::<Invoice>(app, |s| s.invoices.get(id))?;
    let i = app.transact(mode, None, |tx| {
        let changed = checkout::settle(tx, Ctx::app(app));
        tx.read_only = !changed;
        tx.ms().sales.invoices.get(id).cloned()
    })?;
    (i.status != InvoiceStatus::Draft).then_some((mode, i))
}

fn invoice_page(app: &App, mode: Mode, i: &Invoice, e: &Entered, error: Option<&str>) -> String {
    let seller = seller_name(app, mode, i.account.as_deref());
    let rows: String = invoice_lines(i)
        .iter()
        .map(|(d, a)| {
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                escape(d),
                escape(a)
            )
        })
        .collect();
    let total = money::format(i.total, &i.currency);
    let to = i
        .customer_email
        .as_deref()
        .map(|e| format!(" · Billed to {}", escape(e)))
        .unwrap_or_default();
    let (title, when, total_label) = match i.status {
        InvoiceStatus::Paid => (
            "Paid",
            format!("Paid {}", date(i.paid_at.unwrap_or(i.created))),
            "Amount paid",
        ),
        InvoiceStatus::Void => (
            "Void",
            format!("Voided {}", date(i.voided_at.unwrap_or(i.created))),
            "Amount (void)",
        ),
        _ => (
            "Due",
            format!("Issued {}", date(i.finalized_at.unwrap_or(i.created))),
            "Amount due",
        ),
    };
    let receipt = if i.charge.is_empty() || i.status != InvoiceStatus::Paid {
        String::new()
    } else {
        format!(" · <a href=\"/receipts/{}\">Receipt</a>", escape(&i.charge))
    };
    let error = error
        .map(|m| {
            format!(
                "<div class=\"errors\" role=\"alert\" id=\"payment-error\">{}</div>",
                escape(m)
            )
        })
        .unwrap_or_default();
    let form = if i.status.payable() {
        let cards: String = PAGE_LIST
            .iter()
            .map(|(n, what)| format!("<li><code>{n}</code> {}</li>", escape(what)))
            .collect();
        let test_note = if mode == Mode::Test {
            format!("<div class=\"card\"><h2>Test cards</h2><ul class=\"cards\">{cards}</ul></div>")
        } else {
            String::new()
        };
        format!(
            r#"{error}
<form method="post" action="/invoices/{id}" class="card" novalidate>
<h2>Pay this invoice with a card</h2>
<p class="muted">The card also becomes the default for future payments of the subscription.</p>
<label for="cardNumber">Card number</label>
<input type="text" id="cardNumber" name="cardNumber" inputmode="numeric" autocomplete="cc-number" placeholder="1234 1234 1234 1234" required value="{number}">
<div class="row"><div><label for="cardExpiry">Expiration (MM / YY)</label>
<input type="text" id="cardExpiry" name="cardExpiry" inputmode="numeric" autocomplete="cc-exp" placeholder="MM / YY" required value="{expiry}"></div>
<div><label for="cardCvc">CVC</label>
<input type="text" id="cardCvc" name="cardCvc" inputmode="numeric" autocomplete="cc-csc" placeholder="CVC" required value="{cvc}"></div></div>
<label for="billingName">Cardholder name</label>
<input type="text" id="billingName" name="billingName" autocomplete="cc-name" required value="{name}">
<button class="primary pay" type="submit" id="submitButton">Pay {total}</button>
</form>
{test_note}"#,
            id = escape(&i.id),
            number = escape(&e.card_number),
            expiry = escape(&e.card_expiry),
            cvc = escape(&e.card_cvc),
            name = escape(&e.billing_name),
            total = escape(&total),
        )
    } else {
        String::new()
    };
    format!(
        r#"<div class="card"><p class="muted">Invoice from {seller}{badge}</p>
<h1>Invoice {number} · {title}</h1>
<p class="muted">{when}{to}</p>
<table class="lines"><caption>Items</caption>{rows}<tr class="total"><th scope="row">{total_label}</th><td>{total}</td></tr></table>
<p><a href="/invoices/{id}/pdf">Download invoice (PDF)</a>{receipt}</p></div>
{form}"#,
        seller = escape(&seller),
        badge = test_badge(mode),
        number = escape(&i.number),
        when = escape(&when),
        total = escape(&total),
        id = escape(&i.id),
    )
}

pub(crate) async fn invoice(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some((mode, i)) = find_invoice(&app, &id) else {
        return invoice_missing();
    };
    page(
        StatusCode::OK,
        "Invoice",
        &invoice_page(&app, mode, &i, &Entered::default(), None),
    )
}

/// Paying an open invoice on its hosted page: the card is charged and saved as the
/// customer's (and the subscription's) default payment method.
pub(crate) async fn pay_invoice(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, i)) = find_invoice(&app, &id) else {
        return invoice_missing();
    };
    if !i.status.payable() {
        return html::redirect(StatusCode::SEE_OTHER, &format!("/invoices/{id}"));
    }
    let entered = Entered::parse(&body);
    let checked = cards::check(
        &entered.card_number,
        &entered.card_expiry,
        &entered.card_cvc,
        app.now(),
    )
    .and_then(|card| {
        if entered.billing_name.trim().is_empty() {
            Err("Your cardholder name is incomplete.")
        } else {
            Ok(card)
        }
    });
    let card = match checked {
        Ok(card) => card,
        Err(message) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invoice",
                &invoice_page(&app, mode, &i, &entered, Some(message)),
            );
        }
    };
    let outcome = app.transact(mode, None, |tx| {
        let ctx = Ctx::app(&app);
        let behavior = cards::behavior_in(&card, tx.livemode());
        if let Behavior::Decline(d) = &behavior {
            return Err(d.message.to_owned());
        }
        if behavior == Behavior::Authenticate {
            return Err(
                "This card asks for 3D Secure authentication, which the sandbox's \
                        invoice page does not do yet: use another card."
                    .to_owned(),
            );
        }
        let saved = subscriptions::saved_card(
            super::ids::payment_method(),
            checkout::card_details(&card),
            &behavior,
            tx.now,
        );
        if let Some(customer) = &i.customer {
            subscriptions::set_default_card(tx, customer, saved.clone());
        }
        if let Some(sub) = &i.subscription {
            let pm = saved.id.clone();
            subscriptions::update_subscription(tx, ctx, sub, |s| {
                s.default_payment_method = Some(pm);
            });
        }
        subscriptions::pay_now(tx, ctx, &id, Some(saved)).map_err(|d| d.message.to_owned())
    });
    match outcome {
        Ok(()) => html::redirect(StatusCode::SEE_OTHER, &format!("/invoices/{id}")),
        Err(message) => {
            let i = find_invoice(&app, &id).map(|(_, i)| i).unwrap_or(i);
            let keep = Entered {
                card_number: String::new(),
                card_cvc: String::new(),
                ..entered
            };
            page(
                StatusCode::PAYMENT_REQUIRED,
                "Invoice",
                &invoice_page(&app, mode, &i, &keep, Some(&message)),
            )
        }
    }
}

/// A one-page PDF with the invoice as text lines (Helvetica, WinAnsi: non-Latin-1 characters
/// are replaced by `?`).
pub(crate) fn pdf(lines: &[String]) -> Vec<u8> {
    let esc = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '(' => "\\(".to_owned(),
                ')' => "\\)".to_owned(),
                '\\' => "\\\\".to_owned(),
                c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
                _ => "?".to_owned(),
            })
            .collect()
    };
    let mut content = String::from("BT /F1 12 Tf 56 780 Td 16 TL\n");
    for line in lines {
        content.push_str(&format!("({}) Tj T*\n", esc(line)));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", n + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

pub(crate) async fn invoice_pdf(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some((mode, i)) = find_invoice(&app, &id) else {
        return invoice_missing();
    };
    let seller = seller_name(&app, mode, i.account.as_deref());
    let mut lines = vec![
        format!("Invoice {}", i.number),
        format!("From: {seller}"),
        format!("Billed to: {}", i.customer_email.as_deref().unwrap_or("-")),
        match i.status {
            InvoiceStatus::Paid => format!("Paid: {}", date(i.paid_at.unwrap_or(i.created))),
            InvoiceStatus::Void => "Void".to_owned(),
            _ => format!("Amount due: {}", money::format(i.total, &i.currency)),
        },
        if mode == Mode::Test {
            "TEST MODE".to_owned()
        } else {
            String::new()
        },
        String::new(),
    ];
    for (d, a) in invoice_lines(&i) {
        lines.push(format!("{d}    {a}"));
    }
    lines.push(String::new());
    lines.push(format!(
        "{}: {}",
        if i.status == InvoiceStatus::Paid {
            "Amount paid"
        } else {
            "Total"
        },
        money::format(i.total, &i.currency)
    ));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"Invoice-{}.pdf\"", i.number),
            ),
        ],
        pdf(&lines),
    )
        .into_response()
}

/// The outbox page (`/__sandbox/outbox`).
pub(crate) fn outbox_page(mails: &[super::sales::SentEmail]) -> Response {
    let rows: String = mails
        .iter()
        .rev()
        .map(|m| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
                escape(&date(m.at)),
                escape(&m.to),
                escape(&m.subject),
                escape(&m.receipt_url),
                escape(&m.charge),
                if m.livemode { "live" } else { "test" },
            )
        })
        .collect();
    let body = if mails.is_empty() {
        "<p class=\"muted\">No emails sent yet.</p>".to_owned()
    } else {
        format!(
            "<table class=\"lines\"><caption>Sent emails, newest first</caption><tr><th scope=\"col\">When</th>\
             <th scope=\"col\">To</th><th scope=\"col\">Subject</th><th scope=\"col\">Charge</th><th scope=\"col\">Mode</th></tr>{rows}</table>"
        )
    };
    page(
        StatusCode::OK,
        "Outbox",
        &format!("<div class=\"card\"><h1>Outbox</h1>{body}</div>"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_is_well_formed() {
        let bytes = pdf(&["Invoice (1)".into(), "Total: €5".into()]);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.ends_with("%%EOF\n"));
        assert!(text.contains("(Invoice \\(1\\)) Tj"));
        assert!(text.contains("Total: ?5"));
        // The xref offset points at the xref table.
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(text[start..].starts_with("xref"));
    }
}
