//! `/v1/checkout/sessions` (payment mode, on the platform or a connected account) and what
//! happens when the customer pays on the hosted page: the PaymentIntent, its Charge, the
//! BalanceTransaction, the optional Invoice, the receipt email, and their events.
//!
//! Stripe's rules, from its documentation: prices must exist on the account and be active and
//! one-time in payment mode, one currency for the whole session, quantities 1 to 999 999,
//! `expires_at` 30 minutes to 24 hours ahead (24 hours by default); only an open session can be
//! expired. A decline leaves the PaymentIntent in `requires_payment_method` with
//! `last_payment_error`, and the customer may try again on the same session.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::api::Call;
use super::cards::{self, Behavior, Card};
use super::discounts::{Discount, Line, Order, Refusal, allocate};
use super::discounts_api;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::money;
use super::payments;
use super::rules;
use super::sales::{
    BalanceTransaction, CardDetails, Charge, CheckoutSession, FeeDetail, IntentStatus, Invoice,
    InvoiceLine, InvoiceStatus, LineItem, Outcome, PaymentError, PaymentIntent, PendingAuth,
    SentEmail, SessionStatus,
};
use super::shapes;
use super::shapes_sales as ss;
use super::state::{App, PageRequest, Tx};

/// Default and bounds of `expires_at`, seconds from creation.
const DEFAULT_TTL: i64 = 24 * 3600;
const MIN_TTL: i64 = 30 * 60;
const MAX_QUANTITY: i64 = 999_999;

fn no_such_session(id: &str) -> ApiError {
    ApiError::no_such("checkout.session", id, "session")
}

/// What rendering needs besides the object: the base URL and the Connect client id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub base_url: &'a str,
    pub client_id: &'a str,
}

impl<'a> Ctx<'a> {
    pub fn of(call: &'a Call<'a>) -> Ctx<'a> {
        Ctx::app(call.app)
    }

    pub fn app(app: &'a App) -> Ctx<'a> {
        Ctx {
            base_url: &app.base_url,
            client_id: &app.config.connect_client_id,
        }
    }
}

pub(crate) fn create_session(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    const ACCEPTED: &[&str] = &[
        "allow_promotion_codes",
        "cancel_url",
        "client_reference_id",
        "customer_creation",
        "customer_email",
        "discounts",
        "expand",
        "expires_at",
        "invoice_creation",
        "line_items",
        "locale",
        "metadata",
        "mode",
        "payment_intent_data",
        "payment_method_types",
        "submit_type",
        "subscription_data",
        "success_url",
        "ui_mode",
        "customer",
    ];
    const KNOWN_UNSUPPORTED: &[&str] = &[
        "adaptive_pricing",
        "after_expiration",
        "automatic_tax",
        "billing_address_collection",
        "consent_collection",
        "currency",
        "custom_fields",
        "custom_text",
        "customer_update",
        "optional_items",
        "payment_method_collection",
        "payment_method_configuration",
        "payment_method_options",
        "phone_number_collection",
        "redirect_on_completion",
        "return_url",
        "saved_payment_method_options",
        "setup_intent_data",
        "shipping_address_collection",
        "shipping_options",
        "tax_id_collection",
    ];
    if let Some(k) = KNOWN_UNSUPPORTED.iter().find(|k| p.contains(k)) {
        return Err(ApiError::bad_param(
            k,
            format!("The chatpay sandbox does not support `{k}` on Checkout Sessions yet."),
        ));
    }
    let all: Vec<&str> = ACCEPTED.iter().chain(KNOWN_UNSUPPORTED).copied().collect();
    p.only(&all)?;
    let allow_promotion_codes = p.bool("allow_promotion_codes")?.unwrap_or(false);
    let discount_items = p.items("discounts")?.unwrap_or_default();
    if p.contains("allow_promotion_codes") && !discount_items.is_empty() {
        return Err(ApiError::invalid(
            "You may only specify one of these parameters: allow_promotion_codes, discounts.",
        )
        .code("parameters_exclusive")
        .param("allow_promotion_codes"));
    }
    if discount_items.len() > 1 {
        return Err(ApiError::bad_param(
            "discounts",
            "You can only apply one discount to a Checkout Session.",
        ));
    }
    let mode = rules::one_of(
        "mode",
        p.required("mode")?,
        &["payment", "setup", "subscription"],
    )?;
    if mode == "setup" {
        return Err(ApiError::bad_param(
            "mode",
            "The chatpay sandbox supports `mode=payment` and `mode=subscription` Checkout \
             Sessions; `mode=setup` is not available yet.",
        ));
    }
    let subscription_mode = mode == "subscription";
    if subscription_mode {
        for k in ["payment_intent_data", "invoice_creation"] {
            if p.contains(k) {
                return Err(ApiError::bad_param(
                    k,
                    format!("You can not pass `{k}` in `subscription` mode."),
                ));
            }
        }
    } else if p.contains("subscription_data") {
        return Err(ApiError::bad_param(
            "subscription_data",
            "You can only pass `subscription_data` in `subscription` mode.",
        ));
    }
    // API version 2026-09-30 calls Stripe's hosted page `hosted_page` (formerly `hosted`).
    if let Some(ui) = p.str("ui_mode")?
        && ui != "hosted_page"
        && ui != "hosted"
    {
        return Err(ApiError::bad_param(
            "ui_mode",
            "The chatpay sandbox supports only `ui_mode=hosted_page`.",
        ));
    }
    if let Some(types) = p.strings("payment_method_types")?
        && types.iter().any(|t| t != "card")
    {
        return Err(ApiError::bad_param(
            "payment_method_types",
            "The chatpay sandbox supports only the `card` payment method.",
        ));
    }
    let success_url = p
        .text("success_url")?
        .map(|u| rules::url("success_url", &u))
        .transpose()?;
    let Some(success_url) = success_url else {
        return Err(ApiError::missing("success_url"));
    };
    let cancel_url = p
        .text("cancel_url")?
        .map(|u| rules::url("cancel_url", &u))
        .transpose()?;
    let customer_email = p
        .text("customer_email")?
        .map(|e| rules::email("customer_email", &e))
        .transpose()?;
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
        if customer_email.is_some() {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: customer, customer_email.",
            )
            .code("parameters_exclusive"));
        }
        let known = tx
            .ms()
            .billing
            .customers
            .get(c)
            .is_some_and(|cus| cus.account.as_deref() == call.scope);
        if !known {
            return Err(ApiError::no_such_param("customer", c, "customer"));
        }
    }
    let client_reference_id = p.text("client_reference_id")?;
    if client_reference_id
        .as_ref()
        .is_some_and(|c| c.chars().count() > 200)
    {
        return Err(ApiError::bad_param(
            "client_reference_id",
            "client_reference_id must be at most 200 characters.",
        ));
    }
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let now = tx.now;
    let expires_at = match p.int("expires_at")? {
        None => now + DEFAULT_TTL,
        Some(t) if t < now + MIN_TTL || t > now + DEFAULT_TTL => {
            return Err(ApiError::bad_param(
                "expires_at",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from \
                 Checkout Session creation.",
            ));
        }
        Some(t) => t,
    };
    // Line items: prices of this account, active, one-time, one currency.
    let Some(items) = p.items("line_items")?.filter(|i| !i.is_empty()) else {
        return Err(ApiError::missing("line_items"));
    };
    let mut line_items = Vec::with_capacity(items.len());
    let mut currency: Option<String> = None;
    for (i, item) in items.iter().enumerate() {
        item.only(&[
            "adjustable_quantity",
            "dynamic_tax_rates",
            "price",
            "price_data",
            "quantity",
            "tax_rates",
        ])?;
        let at = |k: &str| format!("line_items[{i}][{k}]");
        if item.contains("price_data") || item.contains("adjustable_quantity") {
            return Err(ApiError::bad_param(
                &at("price_data"),
                "The chatpay sandbox supports line items with `price` and `quantity` only.",
            ));
        }
        let Some(price_id) = item.text("price")? else {
            return Err(ApiError::missing(&at("price")));
        };
        let quantity = match item.int("quantity")? {
            None => {
                return Err(ApiError::bad_param(
                    &format!("line_items[{i}]"),
                    format!("Quantity is required. Add `quantity` to `line_items[{i}]`"),
                ));
            }
            Some(q) if q < 1 => {
                return Err(ApiError::bad_param(
                    &at("quantity"),
                    "This value must be greater than or equal to 1.",
                ));
            }
            Some(q) if q > MAX_QUANTITY => {
                return Err(ApiError::bad_param(
                    &at("quantity"),
                    format!("This value must be less than or equal to {MAX_QUANTITY}."),
                ));
            }
            Some(q) => u64::try_from(q).unwrap_or(1),
        };
        let catalog = tx.catalog(call.scope);
        let Some(price) = catalog.prices.get(&price_id).cloned() else {
            return Err(ApiError::no_such_param("price", &price_id, &at("price")));
        };
        if !price.active {
            return Err(ApiError::bad_param(
                &at("price"),
                "The price specified is inactive. This field only accepts active prices.",
            ));
        }
        let product = catalog.products.get(&price.product).cloned();
        let Some(product) = product else {
            return Err(ApiError::no_such_param(
                "product",
                &price.product,
                &at("price"),
            ));
        };
        if !product.active {
            return Err(ApiError::bad_param(
                &at("price"),
                format!(
                    "The price specified is for the product `{}`, which is not active. This \
                     field only accepts prices of active products.",
                    product.id
                ),
            ));
        }
        if price.recurring.is_some() && !subscription_mode {
            return Err(ApiError::bad_param(
                &format!("line_items[{i}]"),
                "You specified `payment` mode but passed a recurring price. Either switch to \
                 `subscription` mode or use only one-time prices.",
            ));
        }
        match &currency {
            None => currency = Some(price.currency.clone()),
            Some(c) if *c != price.currency => {
                return Err(ApiError::bad_param(
                    &at("price"),
                    format!(
                        "All prices on a Checkout Session must have the same currency; \
                         `line_items[0]` is in {c} but `line_items[{i}]` is in {}.",
                        price.currency
                    ),
                ));
            }
            Some(_) => {}
        }
        line_items.push(LineItem {
            id: ids::line_item(),
            description: product.name.clone(),
            price,
            quantity,
        });
    }
    let currency = currency.unwrap_or_else(|| "usd".into());
    let live = tx.livemode();
    let session_id = ids::checkout_session(live);
    let discount = match discount_items.first() {
        None => None,
        Some(item) => {
            let lines: Vec<Line<'_>> = line_items
                .iter()
                .map(|li| Line {
                    product: &li.price.product,
                    amount: li.amount(),
                })
                .collect();
            let paid_before = match (&customer, &customer_email) {
                (None, None) => None,
                (c, e) => Some(discounts_api::paid_before(
                    tx,
                    call.scope,
                    c.as_deref(),
                    e.as_deref(),
                )),
            };
            let order = Order {
                currency: &currency,
                lines: &lines,
                customer: customer.as_deref(),
                paid_before,
                now,
            };
            let mut d = discounts_api::from_param(tx, call.scope, item, "discounts[0]", &order)?;
            if !subscription_mode {
                d.checkout_session = Some(session_id.clone());
            }
            Some(d)
        }
    };
    let (discount_total, _) = match &discount {
        None => (0, Vec::new()),
        Some(d) => {
            let lines: Vec<Line<'_>> = line_items
                .iter()
                .map(|li| Line {
                    product: &li.price.product,
                    amount: li.amount(),
                })
                .collect();
            allocate(&d.coupon, &currency, &lines)
        }
    };
    let total: i64 = line_items.iter().map(LineItem::amount).sum::<i64>() - discount_total;
    let subscription_data = if subscription_mode {
        Some(super::subscriptions::checkout_subscription_data(
            p,
            call,
            &line_items,
            now,
        )?)
    } else {
        None
    };
    // payment_intent_data
    let mut application_fee_amount = None;
    let mut pi_metadata = BTreeMap::new();
    let mut pi_description = None;
    if let Some(pid) = p.map(
        "payment_intent_data",
        &[
            "application_fee_amount",
            "capture_method",
            "description",
            "metadata",
            "on_behalf_of",
            "receipt_email",
            "setup_future_usage",
            "shipping",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "transfer_data",
            "transfer_group",
        ],
    )? {
        for k in [
            "capture_method",
            "on_behalf_of",
            "setup_future_usage",
            "shipping",
            "transfer_data",
            "transfer_group",
        ] {
            if pid.contains(k) {
                return Err(ApiError::bad_param(
                    &pid.name(k),
                    format!("The chatpay sandbox does not support `payment_intent_data[{k}]`."),
                ));
            }
        }
        if let Some(fee) = pid.int("application_fee_amount")? {
            if call.scope.is_none() {
                return Err(ApiError::bad_param(
                    "payment_intent_data[application_fee_amount]",
                    "Can only apply an application_fee_amount when the PaymentIntent is \
                     attempting a direct payment (using an OAuth key or Stripe-Account header) \
                     or destination payment (using `transfer_data[destination]`).",
                ));
            }
            if fee < 0 {
                return Err(ApiError::bad_param(
                    "payment_intent_data[application_fee_amount]",
                    "Invalid non-negative integer",
                ));
            }
            if fee > total {
                return Err(ApiError::bad_param(
                    "payment_intent_data[application_fee_amount]",
                    "The application fee amount must be less than or equal to the total amount \
                     of the Checkout Session.",
                ));
            }
            application_fee_amount = Some(fee);
        }
        if let Some(m) = pid.metadata("metadata")? {
            m.apply(&mut pi_metadata, "payment_intent_data[metadata]")?;
        }
        pi_description = pid.text("description")?;
    }
    let mut invoice_creation = false;
    let mut invoice_description = None;
    let mut invoice_metadata = BTreeMap::new();
    if let Some(ic) = p.map("invoice_creation", &["enabled", "invoice_data"])? {
        invoice_creation = match ic.bool("enabled")? {
            Some(e) => e,
            None => return Err(ApiError::missing("invoice_creation[enabled]")),
        };
        if let Some(data) = ic.map(
            "invoice_data",
            &[
                "account_tax_ids",
                "custom_fields",
                "description",
                "footer",
                "issuer",
                "metadata",
                "rendering_options",
            ],
        )? {
            invoice_description = data.text("description")?;
            if let Some(m) = data.metadata("metadata")? {
                m.apply(
                    &mut invoice_metadata,
                    "invoice_creation[invoice_data][metadata]",
                )?;
            }
        }
    }
    let session = CheckoutSession {
        id: session_id,
        account: call.scope.map(str::to_owned),
        created: now,
        expires_at,
        status: SessionStatus::Open,
        paid: false,
        success_url: Some(success_url),
        cancel_url,
        customer_email,
        client_reference_id,
        metadata,
        line_items,
        currency,
        application_fee_amount,
        payment_intent_metadata: pi_metadata,
        payment_intent_description: pi_description,
        invoice_creation,
        invoice_description,
        invoice_metadata,
        payment_intent: None,
        invoice: None,
        customer_name: None,
        customer_details_email: None,
        last_error: None,
        mode: mode.to_owned(),
        subscription_data,
        customer,
        subscription: None,
        pending_auth: None,
        allow_promotion_codes,
        discount,
    };
    let out = ss::checkout_session(&session, live, &call.app.base_url);
    let seq = tx.st.seq();
    tx.ms().sales.sessions.insert(seq, session);
    Ok(out)
}

fn scoped_session<'t>(
    tx: &'t mut Tx<'_>,
    scope: Option<&str>,
    id: &str,
) -> ApiResult<&'t CheckoutSession> {
    tx.ms()
        .sales
        .sessions
        .get(id)
        .filter(|s| s.account.as_deref() == scope)
        .ok_or_else(|| no_such_session(id))
}

pub(crate) fn retrieve_session(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let s = scoped_session(tx, call.scope, id)?;
    let mut out = ss::checkout_session(s, live, &call.app.base_url);
    let expand = p.strings("expand")?.unwrap_or_default();
    // Stripe expands a path and every path it leads through (`a.b` expands `a`, then its `b`).
    let wants = |path: &str| {
        expand
            .iter()
            .any(|x| x == path || x.strip_prefix(path).is_some_and(|r| r.starts_with('.')))
    };
    if wants("line_items") {
        let data = ss::line_items(s, live);
        out["line_items"] = shapes::list(
            &format!("/v1/checkout/sessions/{id}/line_items"),
            data,
            false,
        );
    }
    if wants("total_details.breakdown") {
        out["total_details"]["breakdown"] = ss::total_breakdown(s);
    }
    // The objects as their own retrieve shows them, nested where their ids were.
    if wants("payment_intent")
        && let Some(pi) = out["payment_intent"].as_str().map(str::to_owned)
    {
        let mut intent = payments::retrieve_payment_intent(tx, call, &pi, p)?;
        if wants("payment_intent.latest_charge")
            && let Some(ch) = intent["latest_charge"].as_str().map(str::to_owned)
        {
            let mut charge = payments::retrieve_charge(tx, call, &ch, p)?;
            if wants("payment_intent.latest_charge.balance_transaction")
                && let Some(bt) = charge["balance_transaction"].as_str().map(str::to_owned)
            {
                charge["balance_transaction"] =
                    payments::retrieve_balance_transaction(tx, call, &bt, p)?;
            }
            intent["latest_charge"] = charge;
        }
        out["payment_intent"] = intent;
    }
    if wants("invoice")
        && let Some(inv) = out["invoice"].as_str().map(str::to_owned)
    {
        out["invoice"] = crate::billing_api::retrieve_invoice(tx, call, &inv, p)?;
        if wants("invoice.payments")
            && let Some(i) = tx.ms().sales.invoices.get(&inv)
        {
            out["invoice"]["payments"] = ss::invoice_payments(i, live);
        }
    }
    Ok(out)
}

pub(crate) fn list_sessions(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "created",
        "customer",
        "ending_before",
        "expand",
        "limit",
        "payment_intent",
        "starting_after",
        "status",
    ])?;
    let req = PageRequest::parse(p)?;
    let pi = p.str("payment_intent")?;
    let status = p
        .str("status")?
        .map(|s| rules::one_of("status", s, &["complete", "expired", "open"]))
        .transpose()?;
    let live = tx.livemode();
    let base = &call.app.base_url;
    let page = tx.ms().sales.sessions.page(&req, "checkout.session", |s| {
        s.account.as_deref() == call.scope
            && pi.is_none_or(|pi| s.payment_intent.as_deref() == Some(pi))
            && status.is_none_or(|st| s.status.as_str() == st)
    })?;
    let data = page
        .items
        .iter()
        .map(|s| ss::checkout_session(s, live, base))
        .collect();
    Ok(shapes::list("/v1/checkout/sessions", data, page.has_more))
}

pub(crate) fn list_line_items(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["ending_before", "expand", "limit", "starting_after"])?;
    let req = PageRequest::parse(p)?;
    let live = tx.livemode();
    let s = scoped_session(tx, call.scope, id)?;
    let start = match &req.cursor {
        None => 0,
        Some(super::state::Cursor::StartingAfter(after)) => s
            .line_items
            .iter()
            .position(|li| li.id == *after)
            .map(|i| i + 1)
            .ok_or_else(|| {
                ApiError::no_such("line item", after, "starting_after")
                    .status(axum::http::StatusCode::BAD_REQUEST)
            })?,
        Some(super::state::Cursor::EndingBefore(_)) => 0,
    };
    let all = ss::line_items(s, live);
    let rest = &all[start.min(all.len())..];
    let data = rest.iter().take(req.limit).cloned().collect();
    Ok(shapes::list(
        &format!("/v1/checkout/sessions/{id}/line_items"),
        data,
        rest.len() > req.limit,
    ))
}

pub(crate) fn expire_session(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let status = scoped_session(tx, call.scope, id)?.status;
    if status != SessionStatus::Open {
        return Err(ApiError::invalid(format!(
            "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout \
             Session has a status of \"{}\".",
            status.as_str()
        ))
        .code("checkout_session_not_open")
        .param("session"));
    }
    let ctx = Ctx::of(call);
    Ok(expire(tx, ctx, id))
}

/// Expires an open session (explicitly or because `expires_at` passed): cancels its
/// PaymentIntent if one was started, emits `checkout.session.expired`.
fn expire(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) -> Value {
    let live = tx.livemode();
    let now = tx.now;
    let Some(s) = tx.ms().sales.sessions.get_mut(id) else {
        return Value::Null;
    };
    s.status = SessionStatus::Expired;
    s.expires_at = s.expires_at.min(now);
    let s = s.clone();
    if let Some(pi_id) = &s.payment_intent
        && let Some(pi) = tx.ms().sales.intents.get_mut(pi_id)
        && pi.status != IntentStatus::Succeeded
    {
        pi.status = IntentStatus::Canceled;
        pi.canceled_at = Some(now);
        pi.pending_auth = None;
        let out = ss::payment_intent(pi, live, ctx.base_url);
        tx.emit("payment_intent.canceled", s.account.as_deref(), out, None);
    }
    let out = ss::checkout_session(&s, live, ctx.base_url);
    tx.emit(
        "checkout.session.expired",
        s.account.as_deref(),
        out.clone(),
        None,
    );
    out
}

/// Lazy time-driven changes of one mode: sessions past `expires_at` expire, refunds of the
/// 5126 card fail. Returns true if anything changed.
pub(crate) fn settle(tx: &mut Tx<'_>, ctx: Ctx<'_>) -> bool {
    // Nobody's request causes these: their events carry no `request`.
    let request = tx.request.take();
    let changed = settle_inner(tx, ctx);
    tx.request = request;
    changed
}

fn settle_inner(tx: &mut Tx<'_>, ctx: Ctx<'_>) -> bool {
    let now = tx.now;
    let due: Vec<String> = tx
        .ms()
        .sales
        .sessions
        .iter()
        .filter(|s| s.status == SessionStatus::Open && now >= s.expires_at)
        .map(|s| s.id.clone())
        .collect();
    for id in &due {
        expire(tx, ctx, id);
    }
    let failed = super::payments::fail_due_refunds(tx, ctx);
    let billed = super::subscriptions::settle(tx, ctx);
    let disputed = super::disputes::settle(tx, ctx);
    let paid_out = super::payouts::settle(tx, ctx);
    !due.is_empty() || failed || billed || disputed || paid_out
}

// ---- paying ----

/// What the customer entered on the hosted page (or a test control sent).
#[derive(Debug, Clone)]
pub(crate) struct PayInput {
    pub email: String,
    pub name: String,
    pub card: Card,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayOutcome {
    /// Paid; the browser goes to this URL (`success_url` with the session id).
    Succeeded { redirect_to: String },
    /// Declined (or authentication failed); the page shows the message.
    Declined { code: String, message: String },
    /// 3D Secure is required: the customer goes to the authentication page.
    RequiresAction,
    /// The session is not open any more.
    NotOpen(SessionStatus),
}

pub(crate) fn fingerprint(number: &str) -> String {
    let digest = Sha256::digest(format!("sandbox-card:{number}").as_bytes());
    let hex = hex::encode(digest);
    hex[..16].to_owned()
}

pub(crate) fn card_details(card: &Card) -> CardDetails {
    CardDetails {
        brand: card.brand.to_owned(),
        funding: card.funding.to_owned(),
        last4: card.last4.clone(),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        fingerprint: fingerprint(&card.number),
    }
}

/// The session's PaymentIntent, created (with `payment_intent.created`) on the first attempt.
fn ensure_intent(tx: &mut Tx<'_>, ctx: Ctx<'_>, session: &CheckoutSession) -> String {
    if let Some(id) = &session.payment_intent {
        return id.clone();
    }
    let live = tx.livemode();
    let id = ids::payment_intent();
    let pi = PaymentIntent {
        client_secret: format!("{id}_secret_{}", ids::random(25)),
        id: id.clone(),
        account: session.account.clone(),
        created: tx.now,
        amount: session.amount_total(),
        currency: session.currency.clone(),
        status: IntentStatus::RequiresPaymentMethod,
        amount_received: 0,
        latest_charge: None,
        application_fee_amount: session.application_fee_amount,
        metadata: session.payment_intent_metadata.clone(),
        description: session.payment_intent_description.clone(),
        receipt_email: None,
        payment_method: None,
        last_payment_error: None,
        pending_auth: None,
        session: session.id.clone(),
        canceled_at: None,
        customer: None,
    };
    let out = ss::payment_intent(&pi, live, ctx.base_url);
    let seq = tx.st.seq();
    tx.ms().sales.intents.insert(seq, pi);
    if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
        s.payment_intent = Some(id.clone());
    }
    tx.emit(
        "payment_intent.created",
        session.account.as_deref(),
        out,
        None,
    );
    id
}

pub(crate) fn open_session(tx: &mut Tx<'_>, id: &str) -> Result<CheckoutSession, PayOutcome> {
    match tx.ms().sales.sessions.get(id) {
        Some(s) if s.status == SessionStatus::Open => Ok(s.clone()),
        Some(s) => Err(PayOutcome::NotOpen(s.status)),
        None => Err(PayOutcome::NotOpen(SessionStatus::Expired)),
    }
}

// ---- promotion codes on the hosted page ----

/// Sets (or removes) a session's discount; a PaymentIntent already started charges the new total.
fn set_discount(tx: &mut Tx<'_>, session_id: &str, discount: Option<Discount>) {
    let Some(s) = tx.ms().sales.sessions.get_mut(session_id) else {
        return;
    };
    s.discount = discount;
    let (total, pi) = (s.amount_total(), s.payment_intent.clone());
    if let Some(pi) = pi.and_then(|pi| tx.ms().sales.intents.get_mut(&pi))
        && pi.status != IntentStatus::Succeeded
    {
        pi.amount = total;
    }
}

/// The email a redemption is checked with: the one typed, else the session's.
fn known_email(tx: &mut Tx<'_>, s: &CheckoutSession, typed: Option<&str>) -> Option<String> {
    typed
        .filter(|e| !e.trim().is_empty())
        .map(str::to_owned)
        .or_else(|| s.customer_email.clone())
        .or_else(|| {
            s.customer.as_deref().and_then(|c| {
                tx.ms()
                    .billing
                    .customers
                    .get(c)
                    .and_then(|cus| cus.email.clone())
            })
        })
}

/// The order a redemption is checked against, and whether the customer has paid before (when
/// the email or customer is known).
fn paid_before(tx: &mut Tx<'_>, s: &CheckoutSession, email: Option<&str>) -> Option<bool> {
    let email = known_email(tx, s, email);
    if email.is_none() && s.customer.is_none() {
        return None;
    }
    Some(discounts_api::paid_before(
        tx,
        s.account.as_deref(),
        s.customer.as_deref(),
        email.as_deref(),
    ))
}

/// The customer typed a promotion code on the hosted page (`allow_promotion_codes`). On a
/// refusal, the message the page shows under the field.
pub(crate) fn apply_code(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session_id: &str,
    text: &str,
    email: Option<&str>,
) -> Result<(), String> {
    settle(tx, ctx);
    let s = open_session(tx, session_id)
        .map_err(|_| "This checkout session is no longer open.".to_owned())?;
    if !s.allow_promotion_codes {
        return Err("Promotion codes can't be used for this purchase.".to_owned());
    }
    if text.trim().is_empty() {
        return Err("Enter a promotion code.".to_owned());
    }
    let paid_before = paid_before(tx, &s, email);
    let lines = s.order_lines();
    let order = Order {
        currency: &s.currency,
        lines: &lines,
        customer: s.customer.as_deref(),
        paid_before,
        now: tx.now,
    };
    let mut d = discounts_api::from_typed_code(tx, s.account.as_deref(), text, &order)
        .map_err(|r| r.page_message())?;
    if !s.is_subscription() {
        d.checkout_session = Some(s.id.clone());
    }
    let discounted = CheckoutSession {
        discount: Some(d.clone()),
        ..s.clone()
    };
    if discounted.amount_total() == s.amount_total() {
        return Err(Refusal::NoProducts.page_message());
    }
    if s.application_fee_amount
        .is_some_and(|fee| fee > discounted.amount_total())
    {
        return Err("This code can't be applied to this order.".to_owned());
    }
    set_discount(tx, session_id, Some(d));
    if let Some(s) = tx.ms().sales.sessions.get_mut(session_id) {
        s.last_error = None;
    }
    Ok(())
}

/// The customer removed the code they typed ("Remove" by the discount).
pub(crate) fn remove_code(tx: &mut Tx<'_>, ctx: Ctx<'_>, session_id: &str) {
    settle(tx, ctx);
    if let Ok(s) = open_session(tx, session_id)
        && s.discount.as_ref().is_some_and(|d| d.entered_on_page)
    {
        set_discount(tx, session_id, None);
    }
}

/// Before a payment: the discount is checked again with the email the customer typed (a
/// first-purchase code), and in case it expired or was used up meanwhile. A refused discount
/// is removed and the page says why; the customer may pay the full price.
fn recheck_discount(
    tx: &mut Tx<'_>,
    session: &CheckoutSession,
    email: &str,
) -> Result<(), PayOutcome> {
    let Some(d) = &session.discount else {
        return Ok(());
    };
    let paid_before = paid_before(tx, session, Some(email));
    let lines = session.order_lines();
    let order = Order {
        currency: &session.currency,
        lines: &lines,
        customer: session.customer.as_deref(),
        paid_before,
        now: tx.now,
    };
    let Err(refusal) = discounts_api::still_redeemable(tx, session.account.as_deref(), d, &order)
    else {
        return Ok(());
    };
    let message = refusal.page_message();
    set_discount(tx, &session.id, None);
    if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
        s.last_error = Some(message.clone());
    }
    Err(PayOutcome::Declined {
        code: refusal.code().to_owned(),
        message,
    })
}

/// One payment attempt on an open session.
pub(crate) fn pay(tx: &mut Tx<'_>, ctx: Ctx<'_>, session_id: &str, input: PayInput) -> PayOutcome {
    settle(tx, ctx);
    let session = match open_session(tx, session_id) {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    if let Err(outcome) = recheck_discount(tx, &session, &input.email) {
        return outcome;
    }
    let Ok(session) = open_session(tx, session_id) else {
        return PayOutcome::NotOpen(SessionStatus::Expired);
    };
    if session.is_subscription() {
        let pm = ids::payment_method();
        let details = card_details(&input.card);
        return super::subscriptions::checkout_pay(tx, ctx, &session, input, pm, details);
    }
    let pi_id = ensure_intent(tx, ctx, &session);
    if tx
        .ms()
        .sales
        .intents
        .get(&pi_id)
        .is_some_and(|pi| pi.status == IntentStatus::RequiresAction)
    {
        return PayOutcome::RequiresAction;
    }
    let pm = ids::payment_method();
    let details = card_details(&input.card);
    let behavior = cards::behavior_in(&input.card, tx.livemode());
    match behavior {
        Behavior::Decline(decline) => {
            decline_attempt(tx, ctx, &session, &pi_id, &pm, details, &input, &decline)
        }
        Behavior::ChargeFails => decline_attempt(
            tx,
            ctx,
            &session,
            &pi_id,
            &pm,
            details,
            &input,
            &cards::CHARGE_FAILS,
        ),
        Behavior::Authenticate => {
            let live = tx.livemode();
            let Some(pi) = tx.ms().sales.intents.get_mut(&pi_id) else {
                return PayOutcome::NotOpen(SessionStatus::Expired);
            };
            pi.status = IntentStatus::RequiresAction;
            pi.payment_method = Some(pm.clone());
            pi.pending_auth = Some(PendingAuth {
                card: details,
                email: input.email,
                name: input.name,
                payment_method: pm,
            });
            let out = ss::payment_intent(pi, live, ctx.base_url);
            tx.emit(
                "payment_intent.requires_action",
                session.account.as_deref(),
                out,
                None,
            );
            PayOutcome::RequiresAction
        }
        Behavior::Succeed
        | Behavior::SucceedAvailable
        | Behavior::RefundFailsLater
        | Behavior::Then(_) => {
            let available_now = behavior == Behavior::SucceedAvailable;
            let refunds_fail = behavior == Behavior::RefundFailsLater;
            let outcome = succeed(
                tx,
                ctx,
                &session,
                &pi_id,
                &pm,
                details,
                &input.email,
                &input.name,
                available_now,
                refunds_fail,
            );
            if let Behavior::Then(after) = behavior
                && let Some(charge) = tx
                    .ms()
                    .sales
                    .intents
                    .get(&pi_id)
                    .and_then(|pi| pi.latest_charge.clone())
            {
                super::disputes::after_charge(tx, ctx, &charge, after);
            }
            outcome
        }
    }
}

/// Completes (or fails) the 3D Secure step of a session waiting for it.
pub(crate) fn authenticate(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session_id: &str,
    complete: bool,
) -> PayOutcome {
    settle(tx, ctx);
    let session = match open_session(tx, session_id) {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    if session.is_subscription() {
        return super::subscriptions::checkout_authenticate(tx, ctx, &session, complete);
    }
    let Some(pi_id) = session.payment_intent.clone() else {
        return PayOutcome::Declined {
            code: "payment_intent_unexpected_state".into(),
            message: "Nothing is waiting for authentication.".into(),
        };
    };
    let pending = tx
        .ms()
        .sales
        .intents
        .get(&pi_id)
        .filter(|pi| pi.status == IntentStatus::RequiresAction)
        .and_then(|pi| pi.pending_auth.clone());
    let Some(pending) = pending else {
        return PayOutcome::Declined {
            code: "payment_intent_unexpected_state".into(),
            message: "Nothing is waiting for authentication.".into(),
        };
    };
    if complete {
        return succeed(
            tx,
            ctx,
            &session,
            &pi_id,
            &pending.payment_method,
            pending.card,
            &pending.email,
            &pending.name,
            false,
            false,
        );
    }
    let live = tx.livemode();
    let message = "The provided PaymentMethod has failed authentication. You can provide \
                   payment_method_data or a new PaymentMethod to attempt to fulfill this \
                   PaymentIntent again.";
    let Some(pi) = tx.ms().sales.intents.get_mut(&pi_id) else {
        return PayOutcome::NotOpen(SessionStatus::Expired);
    };
    pi.status = IntentStatus::RequiresPaymentMethod;
    pi.pending_auth = None;
    pi.payment_method = None;
    pi.last_payment_error = Some(PaymentError {
        kind: "invalid_request_error".into(),
        code: "payment_intent_authentication_failure".into(),
        decline_code: None,
        message: message.into(),
        param: None,
        charge: None,
    });
    let out = ss::payment_intent(pi, live, ctx.base_url);
    tx.emit(
        "payment_intent.payment_failed",
        session.account.as_deref(),
        out,
        None,
    );
    let page_message = "We are unable to authenticate your payment method. Please choose a \
                        different payment method and try again.";
    if let Some(s) = tx.ms().sales.sessions.get_mut(session_id) {
        s.last_error = Some(page_message.into());
    }
    PayOutcome::Declined {
        code: "payment_intent_authentication_failure".into(),
        message: page_message.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn decline_attempt(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session: &CheckoutSession,
    pi_id: &str,
    pm: &str,
    card: CardDetails,
    input: &PayInput,
    decline: &cards::Decline,
) -> PayOutcome {
    let live = tx.livemode();
    let now = tx.now;
    let account = session.account.clone();
    let charge = Charge {
        id: ids::charge(),
        account: account.clone(),
        created: now,
        amount: session.amount_total(),
        currency: session.currency.clone(),
        succeeded: false,
        amount_refunded: 0,
        payment_intent: pi_id.to_owned(),
        payment_method: pm.to_owned(),
        balance_transaction: None,
        billing_name: Some(input.name.clone()),
        billing_email: Some(input.email.clone()),
        card,
        failure_code: Some(decline.code.to_owned()),
        failure_message: Some(decline.message.to_owned()),
        outcome: Outcome {
            kind: "issuer_declined".into(),
            network_status: "declined_by_network".into(),
            reason: Some(decline.decline_code.to_owned()),
            risk_level: "normal".into(),
            risk_score: 24,
            seller_message: decline.seller_message(),
        },
        receipt_email: None,
        receipt_number: None,
        application_fee: None,
        application_fee_amount: session.application_fee_amount,
        metadata: session.payment_intent_metadata.clone(),
        description: session.payment_intent_description.clone(),
        refunds_fail: false,
        session: session.id.clone(),
        customer: None,
        disputed: false,
    };
    let charge_json = ss::charge(&charge, live, ctx.base_url, ctx.client_id, Vec::new());
    let charge_id = charge.id.clone();
    let seq = tx.st.seq();
    tx.ms().sales.charges.insert(seq, charge);
    tx.emit("charge.failed", account.as_deref(), charge_json, None);
    if let Some(pi) = tx.ms().sales.intents.get_mut(pi_id) {
        pi.status = IntentStatus::RequiresPaymentMethod;
        pi.latest_charge = Some(charge_id.clone());
        pi.payment_method = None;
        pi.last_payment_error = Some(PaymentError {
            kind: "card_error".into(),
            code: decline.code.to_owned(),
            decline_code: Some(decline.decline_code.to_owned()),
            message: decline.message.to_owned(),
            param: decline.param.map(str::to_owned),
            charge: Some(charge_id),
        });
        let out = ss::payment_intent(pi, live, ctx.base_url);
        tx.emit(
            "payment_intent.payment_failed",
            account.as_deref(),
            out,
            None,
        );
    }
    if let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) {
        s.last_error = Some(decline.message.to_owned());
    }
    PayOutcome::Declined {
        code: decline.decline_code.to_owned(),
        message: decline.message.to_owned(),
    }
}

/// A Stripe-looking receipt number: `1234-5678`.
fn receipt_number() -> String {
    let digits: String = ids::random(16)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(8)
        .collect();
    format!("{}-{}", &digits[..4], &digits[4..])
}

/// Records a receipt email as sent (Stripe emails one when a charge with `receipt_email`
/// succeeds, and again when `receipt_email` is updated).
pub(crate) fn send_receipt(tx: &mut Tx<'_>, ctx: Ctx<'_>, charge: &Charge, to: &str) {
    let subject = format!(
        "Your receipt from {} #{}",
        charge
            .account
            .as_deref()
            .map(|a| tx
                .st
                .mode(tx.mode)
                .accounts
                .get(a)
                .map_or_else(|| a.to_owned(), |acc| acc.public_name()))
            .unwrap_or_else(|| "the platform".to_owned()),
        charge.receipt_number.as_deref().unwrap_or("0000-0000")
    );
    let mail = SentEmail {
        to: to.to_owned(),
        charge: charge.id.clone(),
        account: charge.account.clone(),
        livemode: tx.livemode(),
        subject,
        receipt_url: ss::receipt_url(ctx.base_url, &charge.id),
        at: tx.now,
    };
    tx.st.outbox.push(mail);
}

#[allow(clippy::too_many_arguments)]
fn succeed(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session: &CheckoutSession,
    pi_id: &str,
    pm: &str,
    card: CardDetails,
    email: &str,
    name: &str,
    available_now: bool,
    refunds_fail: bool,
) -> PayOutcome {
    let live = tx.livemode();
    let now = tx.now;
    let account = session.account.clone();
    let amount = session.amount_total();
    let currency = session.currency.clone();
    let charge_id = ids::charge();
    // Balance transaction: Stripe's fee, and the platform's application fee.
    let mut fee_details = vec![FeeDetail {
        kind: "stripe_fee".into(),
        amount: money::stripe_fee(amount, &currency).min(amount),
        description: "Stripe processing fees".into(),
    }];
    if let Some(fee) = session.application_fee_amount.filter(|f| *f > 0) {
        fee_details.push(FeeDetail {
            kind: "application_fee".into(),
            amount: fee,
            description: "Application fee".into(),
        });
    }
    let txn = BalanceTransaction {
        id: ids::balance_transaction(),
        account: account.clone(),
        created: now,
        amount,
        currency: currency.clone(),
        fee_details,
        available_on: if available_now {
            now
        } else {
            now + super::payouts::available_after(tx, account.as_deref())
        },
        kind: "charge".into(),
        reporting_category: "charge".into(),
        source: charge_id.clone(),
        description: session.payment_intent_description.clone(),
        payout: None,
    };
    let txn_id = txn.id.clone();
    let seq = tx.st.seq();
    tx.ms().sales.balance_transactions.insert(seq, txn);
    let charge = Charge {
        id: charge_id.clone(),
        account: account.clone(),
        created: now,
        amount,
        currency: currency.clone(),
        succeeded: true,
        amount_refunded: 0,
        payment_intent: pi_id.to_owned(),
        payment_method: pm.to_owned(),
        balance_transaction: Some(txn_id),
        billing_name: Some(name.to_owned()),
        billing_email: Some(email.to_owned()),
        card,
        failure_code: None,
        failure_message: None,
        outcome: Outcome {
            kind: "authorized".into(),
            network_status: "approved_by_network".into(),
            reason: None,
            risk_level: "normal".into(),
            risk_score: 32,
            seller_message: "Payment complete.".into(),
        },
        receipt_email: Some(email.to_owned()),
        receipt_number: Some(receipt_number()),
        application_fee: session
            .application_fee_amount
            .filter(|f| *f > 0)
            .map(|_| ids::application_fee()),
        application_fee_amount: session.application_fee_amount,
        metadata: session.payment_intent_metadata.clone(),
        description: session.payment_intent_description.clone(),
        refunds_fail,
        session: session.id.clone(),
        customer: None,
        disputed: false,
    };
    let charge_json = ss::charge(&charge, live, ctx.base_url, ctx.client_id, Vec::new());
    send_receipt(tx, ctx, &charge, email);
    let seq = tx.st.seq();
    tx.ms().sales.charges.insert(seq, charge);
    tx.emit("charge.succeeded", account.as_deref(), charge_json, None);
    if let Some(pi) = tx.ms().sales.intents.get_mut(pi_id) {
        pi.status = IntentStatus::Succeeded;
        pi.amount_received = amount;
        pi.latest_charge = Some(charge_id.clone());
        pi.payment_method = Some(pm.to_owned());
        pi.receipt_email = Some(email.to_owned());
        pi.last_payment_error = None;
        pi.pending_auth = None;
        let out = ss::payment_intent(pi, live, ctx.base_url);
        tx.emit("payment_intent.succeeded", account.as_deref(), out, None);
    }
    let invoice_id = session
        .invoice_creation
        .then(|| create_invoice(tx, ctx, session, pi_id, &charge_id, email, name));
    let redirect_to = {
        let Some(s) = tx.ms().sales.sessions.get_mut(&session.id) else {
            return PayOutcome::NotOpen(SessionStatus::Expired);
        };
        s.status = SessionStatus::Complete;
        s.paid = true;
        s.invoice = invoice_id;
        if let Some(d) = &mut s.discount {
            d.customer.clone_from(&s.customer);
        }
        s.customer_details_email = Some(email.to_owned());
        s.customer_name = Some(name.to_owned());
        s.last_error = None;
        let s = s.clone();
        let out = ss::checkout_session(&s, live, ctx.base_url);
        tx.emit("checkout.session.completed", account.as_deref(), out, None);
        if let Some(d) = &s.discount {
            discounts_api::redeem(tx, account.as_deref(), d);
        }
        s.success_url
            .unwrap_or_default()
            .replace("{CHECKOUT_SESSION_ID}", &s.id)
    };
    PayOutcome::Succeeded { redirect_to }
}

fn create_invoice(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    session: &CheckoutSession,
    pi_id: &str,
    charge_id: &str,
    email: &str,
    name: &str,
) -> String {
    let live = tx.livemode();
    let now = tx.now;
    let number = next_invoice_number(tx, session.account.as_deref());
    let (discount_amount, shares) = session.discount_shares();
    let invoice = Invoice {
        id: ids::invoice(),
        account: session.account.clone(),
        created: now,
        number,
        currency: session.currency.clone(),
        total: session.amount_total(),
        lines: session
            .line_items
            .iter()
            .zip(shares)
            .map(|(li, share)| InvoiceLine {
                id: ids::invoice_line(),
                description: li.description.clone(),
                quantity: li.quantity,
                amount: li.amount(),
                price: li.price.id.clone(),
                product: li.price.product.clone(),
                unit_amount: li.price.unit_amount,
                period: None,
                subscription_item: None,
                discount_amount: share,
                proration: false,
            })
            .collect(),
        customer_email: Some(email.to_owned()),
        customer_name: Some(name.to_owned()),
        description: session.invoice_description.clone(),
        metadata: session.invoice_metadata.clone(),
        payment_intent: pi_id.to_owned(),
        charge: charge_id.to_owned(),
        paid_at: Some(now),
        status: InvoiceStatus::Paid,
        customer: None,
        subscription: None,
        billing_reason: "manual".into(),
        period: None,
        attempt_count: 1,
        next_payment_attempt: None,
        finalize_at: None,
        finalized_at: Some(now),
        voided_at: None,
        marked_uncollectible_at: None,
        test_clock: None,
        subscription_metadata: BTreeMap::new(),
        application_fee_percent: None,
        discount: session.discount.clone().filter(|_| discount_amount > 0),
        discount_amount,
    };
    let account = session.account.as_deref();
    for (kind, status) in [
        ("invoice.created", InvoiceStatus::Draft),
        ("invoice.finalized", InvoiceStatus::Open),
        ("invoice.paid", InvoiceStatus::Paid),
        ("invoice.payment_succeeded", InvoiceStatus::Paid),
    ] {
        let stage = Invoice {
            status,
            attempt_count: u32::from(status == InvoiceStatus::Paid),
            ..invoice.clone()
        };
        let out = ss::invoice(&stage, live, ctx.base_url);
        tx.emit(kind, account, out, None);
    }
    let id = invoice.id.clone();
    let seq = tx.st.seq();
    tx.ms().sales.invoices.insert(seq, invoice);
    id
}

/// The next invoice number of an account: `ABCD1234-0001` (Stripe numbers an account's
/// invoices in sequence with a prefix).
pub(crate) fn next_invoice_number(tx: &mut Tx<'_>, account: Option<&str>) -> String {
    let key = account.unwrap_or(super::state::PLATFORM).to_owned();
    let counter = {
        let n = tx
            .ms()
            .sales
            .invoice_numbers
            .entry(key.clone())
            .or_insert(0);
        *n += 1;
        *n
    };
    let prefix: String = key
        .trim_start_matches("acct_")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .rev()
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    format!("{prefix}-{counter:04}")
}
