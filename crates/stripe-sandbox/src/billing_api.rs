//! `/v1/customers`, `/v1/subscriptions`, `/v1/invoices` (list, pay, void, mark_uncollectible,
//! finalize) and `/v1/test_helpers/test_clocks`, scoped by `Stripe-Account` and mode. The rules
//! they apply are in `subscriptions.rs`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::api::Call;
use super::billing::{PauseCollection, SavedCard, SubItem, SubStatus, Subscription, TestClock};
use super::cards::{self, Decline};
use super::checkout::{self, Ctx};
use super::discounts::{Line, Order};
use super::discounts_api;
use super::error::{ApiError, ApiResult, ErrorType};
use super::form::Params;
use super::ids;
use super::plans;
use super::rules;
use super::sales::InvoiceStatus;
use super::shapes;
use super::shapes_billing as sb;
use super::shapes_sales as ss;
use super::state::{PageRequest, Tx};
use super::subscriptions::{self as subs, Start};

/// A card error as Stripe answers a payment that failed (402).
pub(crate) fn card_error(d: &Decline, payment_intent: Option<&str>) -> ApiError {
    let mut e = ApiError::new(StatusCode::PAYMENT_REQUIRED, ErrorType::Card, d.message);
    e.code = Some(d.code);
    let mut extra = json!({ "decline_code": d.decline_code });
    if let Some(pi) = payment_intent {
        extra["payment_intent"] = json!({ "id": pi, "object": "payment_intent" });
    }
    e.extra = Some(extra);
    e
}

/// A test PaymentMethod id (`pm_card_visa`, ...) as a saved card.
fn test_payment_method(tx: &mut Tx<'_>, param: &str, id: &str) -> ApiResult<SavedCard> {
    let Some((_, number)) = cards::TEST_PAYMENT_METHODS.iter().find(|(pm, _)| *pm == id) else {
        return Err(ApiError::no_such_param("PaymentMethod", id, param));
    };
    let card = cards::check(number, "12 / 34", "123", tx.now)
        .map_err(|m| ApiError::bad_param(param, m))?;
    if let cards::Behavior::Decline(d) = cards::behavior_in(&card, tx.livemode()) {
        // Stripe checks a card when it is attached: a declining card cannot be saved.
        return Err(card_error(&d, None).param(param));
    }
    let behavior = cards::behavior_in(&card, tx.livemode());
    Ok(subs::saved_card(
        ids::payment_method(),
        checkout::card_details(&card),
        &behavior,
        tx.now,
    ))
}

// ---- customers ----

fn scoped_customer<'t>(
    tx: &'t mut Tx<'_>,
    scope: Option<&str>,
    id: &str,
    param: &str,
) -> ApiResult<&'t super::billing::Customer> {
    tx.ms()
        .billing
        .customers
        .get(id)
        .filter(|c| c.account.as_deref() == scope)
        .ok_or_else(|| {
            // 404 only for the customer in the URL; one named in a parameter is a 400.
            if param == "id" {
                ApiError::no_such("customer", id, param)
            } else {
                ApiError::no_such_param("customer", id, param)
            }
        })
}

fn default_pm_param(p: &Params<'_>) -> ApiResult<Option<(String, String)>> {
    if let Some(pm) = p.text("payment_method")? {
        return Ok(Some(("payment_method".into(), pm)));
    }
    if let Some(is) = p.map(
        "invoice_settings",
        &[
            "custom_fields",
            "default_payment_method",
            "footer",
            "rendering_options",
        ],
    )? && let Some(pm) = is.text("default_payment_method")?
    {
        return Ok(Some((
            "invoice_settings[default_payment_method]".into(),
            pm,
        )));
    }
    Ok(None)
}

pub(crate) fn create_customer(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "description",
        "email",
        "expand",
        "invoice_settings",
        "metadata",
        "name",
        "payment_method",
        "test_clock",
    ])?;
    let email = p
        .text("email")?
        .map(|e| rules::email("email", &e))
        .transpose()?;
    let name = p.text("name")?;
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let clock = p.text("test_clock")?;
    if let Some(c) = &clock {
        if tx.livemode() {
            return Err(ApiError::bad_param(
                "test_clock",
                "Test clocks are only available in test mode.",
            ));
        }
        let ok = tx
            .ms()
            .billing
            .clocks
            .get(c)
            .is_some_and(|k| k.account.as_deref() == call.scope && !k.deleted);
        if !ok {
            return Err(ApiError::no_such_param(
                "test_helpers.test_clock",
                c,
                "test_clock",
            ));
        }
    }
    let card = match default_pm_param(p)? {
        Some((param, pm)) => Some(test_payment_method(tx, &param, &pm)?),
        None => None,
    };
    let description = p.text("description")?;
    let id = subs::create_customer(tx, call.scope, email, name, clock, card, metadata);
    let live = tx.livemode();
    let c = tx
        .ms()
        .billing
        .customers
        .get_mut(&id)
        .ok_or_else(ApiError::internal)?;
    c.description = description;
    Ok(sb::customer(c, live))
}

pub(crate) fn retrieve_customer(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let c = scoped_customer(tx, call.scope, id, "id")?;
    Ok(sb::customer(c, live))
}

pub(crate) fn update_customer(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "description",
        "email",
        "expand",
        "invoice_settings",
        "metadata",
        "name",
    ])?;
    let live = tx.livemode();
    let mut next = scoped_customer(tx, call.scope, id, "id")?.clone();
    let before = sb::customer(&next, live);
    p.patch_text("email")?
        .try_map(|e| rules::email("email", &e))?
        .apply(&mut next.email);
    p.patch_text("name")?.apply(&mut next.name);
    p.patch_text("description")?.apply(&mut next.description);
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    if let Some((param, pm)) = default_pm_param(p)? {
        next.default_card = Some(test_payment_method(tx, &param, &pm)?);
    }
    let after = sb::customer(&next, live);
    if let Some(slot) = tx.ms().billing.customers.get_mut(id) {
        *slot = next;
    }
    if let Some(prev) = super::state::previous_attributes(&before, &after, &[]) {
        tx.emit("customer.updated", call.scope, after.clone(), Some(prev));
    }
    Ok(after)
}

pub(crate) fn list_customers(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "created",
        "email",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
        "test_clock",
    ])?;
    let req = PageRequest::parse(p)?;
    let email = p.str("email")?;
    let clock = p.str("test_clock")?;
    let live = tx.livemode();
    let page = tx.ms().billing.customers.page(&req, "customer", |c| {
        c.account.as_deref() == call.scope
            && email.is_none_or(|e| c.email.as_deref() == Some(e))
            && clock.is_none_or(|k| c.test_clock.as_deref() == Some(k))
    })?;
    let data = page.items.iter().map(|c| sb::customer(c, live)).collect();
    Ok(shapes::list("/v1/customers", data, page.has_more))
}

// ---- subscriptions ----

fn scoped_subscription<'t>(
    tx: &'t mut Tx<'_>,
    scope: Option<&str>,
    id: &str,
) -> ApiResult<&'t super::billing::Subscription> {
    tx.ms()
        .billing
        .subscriptions
        .get(id)
        .filter(|s| s.account.as_deref() == scope)
        .ok_or_else(|| ApiError::no_such("subscription", id, "id"))
}

pub(crate) fn create_subscription(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "application_fee_percent",
        "cancel_at_period_end",
        "customer",
        "default_payment_method",
        "description",
        "discounts",
        "expand",
        "items",
        "metadata",
        "off_session",
        "payment_behavior",
        "trial_end",
        "trial_from_plan",
        "trial_period_days",
    ])?;
    let customer = p.required("customer")?.to_owned();
    let cus = scoped_customer(tx, call.scope, &customer, "customer")?.clone();
    let behavior = p
        .str("payment_behavior")?
        .map(|b| {
            rules::one_of(
                "payment_behavior",
                b,
                &[
                    "allow_incomplete",
                    "default_incomplete",
                    "error_if_incomplete",
                    "pending_if_incomplete",
                ],
            )
        })
        .transpose()?
        .unwrap_or("allow_incomplete");
    if behavior == "pending_if_incomplete" {
        return Err(ApiError::bad_param(
            "payment_behavior",
            "The chatpay sandbox does not support `payment_behavior=pending_if_incomplete`.",
        ));
    }
    let Some(items) = p.items("items")?.filter(|i| !i.is_empty()) else {
        return Err(ApiError::missing("items"));
    };
    let now = subs::clock_now(tx, cus.test_clock.as_deref());
    let mut sub_items = Vec::new();
    for (i, item) in items.iter().enumerate() {
        item.only(&["metadata", "price", "quantity"])?;
        let at = |k: &str| format!("items[{i}][{k}]");
        let price_id = item.required("price")?.to_owned();
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
        let Some(r) = &price.recurring else {
            return Err(ApiError::bad_param(
                &at("price"),
                format!(
                    "The price specified is set to `type=one_time` but this field only accepts \
                     prices with `type=recurring`: {price_id}."
                ),
            ));
        };
        if let Some(first) = sub_items.first().map(|s: &SubItem| s.price.clone())
            && (first.currency != price.currency
                || first.recurring.as_ref().is_some_and(|f| {
                    f.interval != r.interval || f.interval_count != r.interval_count
                }))
        {
            return Err(ApiError::bad_param(
                &at("price"),
                "All prices on a subscription must have the same currency and billing interval.",
            ));
        }
        let quantity = match item.int("quantity")? {
            None => 1,
            Some(q) if q >= 1 => u64::try_from(q).unwrap_or(1),
            Some(_) => {
                return Err(ApiError::bad_param(
                    &at("quantity"),
                    "This value must be greater than or equal to 1.",
                ));
            }
        };
        let product_name = catalog
            .products
            .get(&price.product)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| price.product.clone());
        sub_items.push(SubItem {
            id: ids::subscription_item(),
            created: now,
            price,
            quantity,
            product_name,
        });
    }
    let mut trial_end = None;
    if let Some(days) = p.int("trial_period_days")? {
        if !(0..=730).contains(&days) {
            return Err(ApiError::bad_param(
                "trial_period_days",
                "The trial period must be between 0 and 730 days.",
            ));
        }
        trial_end = (days > 0).then_some(now + days * 86_400);
    }
    if let Some(raw) = p.str("trial_end")? {
        trial_end = if raw == "now" {
            None
        } else {
            let t: i64 = raw.parse().map_err(|_| {
                ApiError::bad_param(
                    "trial_end",
                    "Invalid timestamp: must be an integer or `now`.",
                )
            })?;
            if t <= now {
                return Err(ApiError::bad_param(
                    "trial_end",
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                ));
            }
            Some(t)
        };
    }
    if p.bool("trial_from_plan")? == Some(true) && trial_end.is_none() {
        trial_end = sub_items
            .first()
            .and_then(|i| i.price.recurring.as_ref())
            .and_then(|r| r.trial_period_days)
            .map(|d| now + i64::from(d) * 86_400);
    }
    let card = match p.text("default_payment_method")? {
        Some(pm) if cus.default_card.as_ref().is_some_and(|c| c.id == pm) => {
            cus.default_card.clone()
        }
        Some(pm) => Some(test_payment_method(tx, "default_payment_method", &pm)?),
        None => None,
    };
    let application_fee_percent = match p.str("application_fee_percent")? {
        None => None,
        Some(_) if call.scope.is_none() => {
            return Err(ApiError::bad_param(
                "application_fee_percent",
                "Can only apply an application_fee_percent when the request is made on behalf \
                 of another account (using an OAuth key or the Stripe-Account header).",
            ));
        }
        Some(raw) => Some(
            raw.parse::<f64>()
                .ok()
                .filter(|v| (0.0..=100.0).contains(v))
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "application_fee_percent",
                        "application_fee_percent must be a number between 0 and 100.",
                    )
                })?,
        ),
    };
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    if card.is_none()
        && cus.default_card.is_none()
        && trial_end.is_none()
        && behavior != "default_incomplete"
    {
        return Err(ApiError::invalid(
            "This customer has no attached payment source or default payment method. Please \
             consider adding a default payment method.",
        )
        .code("resource_missing"));
    }
    if behavior == "error_if_incomplete"
        && let Some(c) = card.as_ref().or(cus.default_card.as_ref())
        && let Some(code) = &c.fails_with
        && trial_end.is_none()
    {
        // Stripe answers 402 and creates nothing.
        let d = match code.as_str() {
            "generic_decline" => cards::CHARGE_FAILS,
            _ => cards::CHARGE_FAILS,
        };
        return Err(card_error(&d, None));
    }
    let discount_items = p.items("discounts")?.unwrap_or_default();
    if discount_items.len() > 1 {
        return Err(ApiError::bad_param(
            "discounts",
            "The chatpay sandbox supports one discount per subscription.",
        ));
    }
    let discount = match discount_items.first() {
        None => None,
        Some(item) => {
            let lines: Vec<Line<'_>> = sub_items
                .iter()
                .map(|i| Line {
                    product: &i.price.product,
                    amount: i.amount(),
                })
                .collect();
            let paid_before =
                discounts_api::paid_before(tx, call.scope, Some(&customer), cus.email.as_deref());
            let currency = sub_items
                .first()
                .map(|i| i.price.currency.clone())
                .unwrap_or_default();
            let order = Order {
                currency: &currency,
                lines: &lines,
                customer: Some(&customer),
                paid_before: Some(paid_before),
                now,
            };
            Some(discounts_api::from_param(
                tx,
                call.scope,
                item,
                "discounts[0]",
                &order,
            )?)
        }
    };
    let ctx = Ctx::of(call);
    let started = subs::start_subscription(
        tx,
        ctx,
        Start {
            account: call.scope.map(str::to_owned),
            customer,
            items: sub_items,
            one_time: Vec::new(),
            trial_end,
            card,
            metadata,
            description: p.text("description")?,
            application_fee_percent,
            attempt: behavior != "default_incomplete",
            discount: discount.clone(),
        },
    );
    if let Some(d) = &discount {
        discounts_api::redeem(tx, call.scope, d);
    }
    if p.bool("cancel_at_period_end")? == Some(true) {
        subs::update_subscription(tx, ctx, &started.subscription, |s| {
            s.cancel_at_period_end = true;
            s.cancel_at = Some(s.current_period_end);
        });
    }
    let live = tx.livemode();
    let s = tx
        .ms()
        .billing
        .subscriptions
        .get(&started.subscription)
        .ok_or_else(ApiError::internal)?;
    Ok(sb::subscription(s, live))
}

pub(crate) fn retrieve_subscription(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let s = scoped_subscription(tx, call.scope, id)?;
    Ok(sb::subscription(s, live))
}

pub(crate) fn list_subscriptions(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "automatic_tax",
        "collection_method",
        "created",
        "current_period_end",
        "current_period_start",
        "customer",
        "ending_before",
        "expand",
        "limit",
        "price",
        "starting_after",
        "status",
        "test_clock",
    ])?;
    let req = PageRequest::parse(p)?;
    let customer = p.str("customer")?;
    let price = p.str("price")?;
    let clock = p.str("test_clock")?;
    let mut allowed: Vec<&str> = SubStatus::ALL.to_vec();
    allowed.extend(["all", "ended"]);
    let status = p
        .str("status")?
        .map(|s| rules::one_of("status", s, &allowed))
        .transpose()?;
    let live = tx.livemode();
    let page = tx
        .ms()
        .billing
        .subscriptions
        .page(&req, "subscription", |s| {
            s.account.as_deref() == call.scope
                && customer.is_none_or(|c| s.customer == c)
                && price.is_none_or(|pr| s.items.iter().any(|i| i.price.id == pr))
                && clock.is_none_or(|k| s.test_clock.as_deref() == Some(k))
                && match status {
                    None => sb::listed_by_default(s.status),
                    Some("all") => true,
                    Some("ended") => s.status.ended(),
                    Some(st) => s.status.as_str() == st,
                }
        })?;
    let data = page
        .items
        .iter()
        .map(|s| sb::subscription(s, live))
        .collect();
    Ok(shapes::list("/v1/subscriptions", data, page.has_more))
}

pub(crate) fn update_subscription(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "cancel_at_period_end",
        "cancellation_details",
        "default_payment_method",
        "description",
        "expand",
        "metadata",
        "items",
        "pause_collection",
        "proration_behavior",
        "proration_date",
    ])?;
    let current = scoped_subscription(tx, call.scope, id)?.clone();
    if current.status.ended() {
        return Err(ApiError::invalid(format!(
            "A canceled subscription can only update its cancellation_details and metadata. \
             This subscription ({id}) is {}.",
            current.status.as_str()
        )));
    }
    let behavior = plans::Proration::parse("proration_behavior", p.str("proration_behavior")?)?;
    let sub_now = plans::sub_now(tx, &current);
    let at = proration_date(p, "proration_date", &current, sub_now)?;
    let change = match p.items("items")? {
        Some(items) if !items.is_empty() => {
            if current.schedule.is_some() {
                return Err(ApiError::invalid(format!(
                    "The subscription is managed by the subscription schedule `{}`, and \
                     updating any cancelation behavior directly is not allowed. Please update \
                     the schedule instead.",
                    current.schedule.as_deref().unwrap_or_default()
                ))
                .param("items"));
            }
            let next = plans::changed_items(tx, call.scope, &current, &items, sub_now)?;
            Some(plans::plan(&current, next, behavior, at))
        }
        _ => None,
    };
    let cancel = p.bool("cancel_at_period_end")?;
    let pause = match p.str("pause_collection")? {
        Some("") => Some(None),
        Some(_) => {
            return Err(ApiError::bad_param(
                "pause_collection",
                "Invalid object: pause_collection must be a hash or an empty string",
            ));
        }
        None => match p.map("pause_collection", &["behavior", "resumes_at"])? {
            None => None,
            Some(pc) => {
                let behavior = rules::one_of(
                    "pause_collection[behavior]",
                    pc.required("behavior")?,
                    &["keep_as_draft", "mark_uncollectible", "void"],
                )?
                .to_owned();
                Some(Some(PauseCollection {
                    behavior,
                    resumes_at: pc.int("resumes_at")?,
                }))
            }
        },
    };
    let card = match p.text("default_payment_method")? {
        Some(pm) => Some(test_payment_method(tx, "default_payment_method", &pm)?),
        None => None,
    };
    let mut metadata = current.metadata.clone();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let description = p.patch_text("description")?;
    let comment = p
        .map("cancellation_details", &["comment", "feedback"])?
        .map(|c| c.text("comment"))
        .transpose()?
        .flatten();
    let _ = comment;
    if let Some(c) = &card {
        subs::set_default_card(tx, &current.customer, c.clone());
    }
    let ctx = Ctx::of(call);
    let now = tx.now;
    let out = subs::update_subscription(tx, ctx, id, |s| {
        if let Some(cancel) = cancel {
            s.cancel_at_period_end = cancel;
            s.cancel_at = cancel.then_some(s.current_period_end);
            s.canceled_at = cancel.then_some(now);
            s.cancellation_reason = cancel.then(|| "cancellation_requested".to_owned());
        }
        if let Some(p) = pause {
            s.pause_collection = p;
        }
        if let Some(c) = &card {
            s.default_payment_method = Some(c.id.clone());
        }
        s.metadata = metadata;
        description.apply(&mut s.description);
    });
    let out = out.ok_or_else(|| ApiError::no_such("subscription", id, "id"))?;
    match change {
        Some(change) => plans::apply(tx, ctx, id, change)
            .ok_or_else(|| ApiError::no_such("subscription", id, "id")),
        None => Ok(out),
    }
}

/// `proration_date`: when a change is prorated from, within the current period (default: now).
fn proration_date(p: &Params<'_>, param: &str, sub: &Subscription, now: i64) -> ApiResult<i64> {
    match p.int(param)? {
        None => Ok(now.clamp(sub.current_period_start, sub.current_period_end)),
        Some(t) if (sub.current_period_start..=sub.current_period_end).contains(&t) => Ok(t),
        Some(_) => Err(ApiError::bad_param(
            &p.name(param),
            "The proration date must be within the subscription's current billing period.",
        )),
    }
}

/// `POST /v1/invoices/create_preview`: the invoice a subscription change would make now, or
/// the subscription's next invoice (with `subscription_details[items]` and the prorations).
pub(crate) fn create_preview(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    const UNMODELED: &[&str] = &[
        "automatic_tax",
        "currency",
        "customer_details",
        "discounts",
        "invoice_items",
        "issuer",
        "on_behalf_of",
        "preview_mode",
        "schedule",
        "schedule_details",
    ];
    if let Some(k) = UNMODELED.iter().find(|k| p.contains(k)) {
        return Err(ApiError::bad_param(
            k,
            format!("The chatpay sandbox does not model `{k}` on invoice previews."),
        ));
    }
    p.only(&["customer", "expand", "subscription", "subscription_details"])?;
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
        scoped_customer(tx, call.scope, c, "customer")?;
    }
    let Some(sub_id) = p.text("subscription")? else {
        return Err(match customer {
            Some(c) => ApiError::invalid(format!("No upcoming invoices for customer: {c}"))
                .code("invoice_upcoming_none"),
            None => ApiError::invalid(
                "Missing required param: customer or subscription. The chatpay sandbox \
                 previews the invoices of an existing subscription.",
            )
            .param("subscription")
            .code("parameter_missing"),
        });
    };
    let sub = match scoped_subscription(tx, call.scope, &sub_id) {
        Ok(s) => s.clone(),
        Err(_) => {
            return Err(ApiError::no_such_param(
                "subscription",
                &sub_id,
                "subscription",
            ));
        }
    };
    if let Some(c) = &customer
        && *c != sub.customer
    {
        return Err(ApiError::bad_param(
            "customer",
            format!("The subscription {sub_id} does not belong to the customer {c}."),
        ));
    }
    if sub.status.ended() {
        return Err(
            ApiError::invalid(format!("No upcoming invoices for subscription: {sub_id}"))
                .code("invoice_upcoming_none"),
        );
    }
    let details = p.map(
        "subscription_details",
        &["items", "proration_behavior", "proration_date"],
    )?;
    let now = plans::sub_now(tx, &sub);
    let (change, date) = match &details {
        None => (None, None),
        Some(d) => {
            let behavior = plans::Proration::parse(
                &d.name("proration_behavior"),
                d.str("proration_behavior")?,
            )?;
            let at = proration_date(d, "proration_date", &sub, now)?;
            let given = d.int("proration_date")?;
            match d.items("items")? {
                Some(items) if !items.is_empty() => {
                    let next = plans::changed_items(tx, call.scope, &sub, &items, now)?;
                    (Some(plans::plan(&sub, next, behavior, at)), given)
                }
                _ => (None, given),
            }
        }
    };
    Ok(plans::preview(tx, call, &sub, change, date))
}

pub(crate) fn cancel_subscription(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["cancellation_details", "expand", "invoice_now", "prorate"])?;
    let current = scoped_subscription(tx, call.scope, id)?.clone();
    if current.status.ended() {
        return Err(ApiError::invalid(format!(
            "A canceled subscription can't be canceled again: {id}."
        ))
        .code("resource_missing")
        .status(StatusCode::NOT_FOUND));
    }
    let ctx = Ctx::of(call);
    subs::cancel_now(tx, ctx, id, "cancellation_requested");
    let live = tx.livemode();
    let s = scoped_subscription(tx, call.scope, id)?;
    Ok(sb::subscription(s, live))
}

// ---- invoices ----

fn scoped_invoice<'t>(
    tx: &'t mut Tx<'_>,
    scope: Option<&str>,
    id: &str,
) -> ApiResult<&'t super::sales::Invoice> {
    tx.ms()
        .sales
        .invoices
        .get(id)
        .filter(|i| i.account.as_deref() == scope)
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))
}

pub(crate) fn retrieve_invoice(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    let i = scoped_invoice(tx, call.scope, id)?;
    let mut out = ss::invoice(i, live, &call.app.base_url);
    let expand = p.strings("expand")?.unwrap_or_default();
    if expand.iter().any(|x| x == "payments") {
        out["payments"] = ss::invoice_payments(i, live);
    }
    Ok(out)
}

pub(crate) fn list_invoices(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "collection_method",
        "created",
        "customer",
        "due_date",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
        "status",
        "subscription",
    ])?;
    let req = PageRequest::parse(p)?;
    let customer = p.str("customer")?;
    let subscription = p.str("subscription")?;
    let status = p
        .str("status")?
        .map(|s| {
            rules::one_of(
                "status",
                s,
                &["draft", "open", "paid", "uncollectible", "void"],
            )
        })
        .transpose()?;
    let live = tx.livemode();
    let base = &call.app.base_url;
    let page = tx.ms().sales.invoices.page(&req, "invoice", |i| {
        i.account.as_deref() == call.scope
            && customer.is_none_or(|c| i.customer.as_deref() == Some(c))
            && subscription.is_none_or(|s| i.subscription.as_deref() == Some(s))
            && status.is_none_or(|st| i.status.as_str() == st)
    })?;
    let data = page
        .items
        .iter()
        .map(|i| ss::invoice(i, live, base))
        .collect();
    Ok(shapes::list("/v1/invoices", data, page.has_more))
}

fn invoice_state_error(id: &str, action: &str, status: InvoiceStatus) -> ApiError {
    ApiError::invalid(format!(
        "You can only {action} an invoice that is open; this invoice ({id}) is {}.",
        status.as_str()
    ))
    .code("invoice_not_editable")
}

pub(crate) fn pay_invoice(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "expand",
        "forgive",
        "mandate",
        "off_session",
        "paid_out_of_band",
        "payment_method",
        "source",
    ])?;
    let inv = scoped_invoice(tx, call.scope, id)?.clone();
    let ctx = Ctx::of(call);
    if inv.status == InvoiceStatus::Paid {
        return Err(ApiError::invalid("Invoice is already paid").code("invoice_already_paid"));
    }
    if inv.status == InvoiceStatus::Draft {
        subs::finalize(tx, ctx, id);
    } else if !inv.status.payable() {
        return Err(invoice_state_error(id, "pay", inv.status));
    }
    if p.bool("paid_out_of_band")? == Some(true) {
        let now = tx.now;
        if let Some(i) = tx.ms().sales.invoices.get_mut(id) {
            i.status = InvoiceStatus::Paid;
            i.paid_at = Some(now);
            i.next_payment_attempt = None;
        }
        let live = tx.livemode();
        let i = scoped_invoice(tx, call.scope, id)?.clone();
        let out = ss::invoice(&i, live, ctx.base_url);
        tx.emit("invoice.paid", call.scope, out.clone(), None);
        return Ok(out);
    }
    let card = match p.text("payment_method")? {
        Some(pm) => Some(test_payment_method(tx, "payment_method", &pm)?),
        None => None,
    };
    if let Err(d) = subs::pay_now(tx, ctx, id, card) {
        let pi = tx
            .ms()
            .sales
            .invoices
            .get(id)
            .map(|i| i.payment_intent.clone())
            .filter(|p| !p.is_empty());
        return Err(card_error(&d, pi.as_deref()));
    }
    let live = tx.livemode();
    let i = scoped_invoice(tx, call.scope, id)?;
    Ok(ss::invoice(i, live, ctx.base_url))
}

pub(crate) fn void_invoice(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let inv = scoped_invoice(tx, call.scope, id)?.clone();
    if !inv.status.payable() {
        return Err(invoice_state_error(id, "void", inv.status));
    }
    let ctx = Ctx::of(call);
    subs::void(tx, ctx, id);
    let live = tx.livemode();
    let i = scoped_invoice(tx, call.scope, id)?;
    Ok(ss::invoice(i, live, ctx.base_url))
}

pub(crate) fn mark_uncollectible(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let inv = scoped_invoice(tx, call.scope, id)?.clone();
    if inv.status != InvoiceStatus::Open {
        return Err(invoice_state_error(id, "mark uncollectible", inv.status));
    }
    let ctx = Ctx::of(call);
    subs::mark_uncollectible(tx, ctx, id);
    let live = tx.livemode();
    let i = scoped_invoice(tx, call.scope, id)?;
    Ok(ss::invoice(i, live, ctx.base_url))
}

pub(crate) fn finalize_invoice(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["auto_advance", "expand"])?;
    let inv = scoped_invoice(tx, call.scope, id)?.clone();
    if inv.status != InvoiceStatus::Draft {
        return Err(ApiError::invalid(format!(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice: {id}."
        ))
        .code("invoice_not_editable"));
    }
    let ctx = Ctx::of(call);
    subs::finalize(tx, ctx, id);
    let live = tx.livemode();
    let i = scoped_invoice(tx, call.scope, id)?;
    Ok(ss::invoice(i, live, ctx.base_url))
}

// ---- test clocks ----

fn scoped_clock<'t>(tx: &'t mut Tx<'_>, scope: Option<&str>, id: &str) -> ApiResult<&'t TestClock> {
    tx.ms()
        .billing
        .clocks
        .get(id)
        .filter(|c| c.account.as_deref() == scope && !c.deleted)
        .ok_or_else(|| ApiError::no_such("test_helpers.test_clock", id, "test_clock"))
}

fn test_mode_only(tx: &Tx<'_>) -> ApiResult<()> {
    if tx.livemode() {
        Err(ApiError::invalid(
            "Test clocks are only available in test mode. Use a test mode API key.",
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn create_clock(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&["expand", "frozen_time", "name"])?;
    test_mode_only(tx)?;
    let Some(frozen_time) = p.int("frozen_time")? else {
        return Err(ApiError::missing("frozen_time"));
    };
    let clock = TestClock {
        id: ids::test_clock(),
        account: call.scope.map(str::to_owned),
        created: tx.now,
        frozen_time,
        name: p.text("name")?,
        status: "ready".into(),
        deleted: false,
    };
    let out = sb::test_clock(&clock, false);
    let seq = tx.st.seq();
    tx.ms().billing.clocks.insert(seq, clock);
    tx.emit(
        "test_helpers.test_clock.created",
        call.scope,
        out.clone(),
        None,
    );
    Ok(out)
}

pub(crate) fn retrieve_clock(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    test_mode_only(tx)?;
    Ok(sb::test_clock(scoped_clock(tx, call.scope, id)?, false))
}

pub(crate) fn list_clocks(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&["ending_before", "expand", "limit", "starting_after"])?;
    test_mode_only(tx)?;
    let req = PageRequest::parse(p)?;
    let page = tx
        .ms()
        .billing
        .clocks
        .page(&req, "test_helpers.test_clock", |c| {
            c.account.as_deref() == call.scope && !c.deleted
        })?;
    let data = page
        .items
        .iter()
        .map(|c| sb::test_clock(c, false))
        .collect();
    Ok(shapes::list(
        "/v1/test_helpers/test_clocks",
        data,
        page.has_more,
    ))
}

/// `POST /v1/test_helpers/test_clocks/{id}/advance`: moves the frozen time forward and runs
/// everything due on the clock's customers in order. Stripe answers `advancing` and finishes
/// in the background; the sandbox finishes before answering (`test_helpers.test_clock.ready`
/// is already emitted), so the answer says `advancing` and the next read says `ready`.
pub(crate) fn advance_clock(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand", "frozen_time"])?;
    test_mode_only(tx)?;
    let Some(to) = p.int("frozen_time")? else {
        return Err(ApiError::missing("frozen_time"));
    };
    let current = scoped_clock(tx, call.scope, id)?.clone();
    if to <= current.frozen_time {
        return Err(ApiError::bad_param(
            "frozen_time",
            format!(
                "The test clock's frozen_time can only move forward: {to} is not after {}.",
                current.frozen_time
            ),
        ));
    }
    let ctx = Ctx::of(call);
    let advancing = TestClock {
        status: "advancing".into(),
        ..current.clone()
    };
    tx.emit(
        "test_helpers.test_clock.advancing",
        call.scope,
        sb::test_clock(&advancing, false),
        None,
    );
    // Each step moves the frozen time to the moment of what is due, so objects created on the
    // way carry their own time.
    subs::run_until(tx, ctx, Some(id), to);
    let ready = {
        let c = tx
            .ms()
            .billing
            .clocks
            .get_mut(id)
            .ok_or_else(ApiError::internal)?;
        c.frozen_time = to;
        c.status = "ready".into();
        c.clone()
    };
    tx.emit(
        "test_helpers.test_clock.ready",
        call.scope,
        sb::test_clock(&ready, false),
        None,
    );
    Ok(sb::test_clock(
        &TestClock {
            frozen_time: to,
            ..advancing
        },
        false,
    ))
}

pub(crate) fn delete_clock(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[])?;
    test_mode_only(tx)?;
    let out = sb::test_clock(scoped_clock(tx, call.scope, id)?, false);
    if let Some(c) = tx.ms().billing.clocks.get_mut(id) {
        c.deleted = true;
    }
    tx.emit("test_helpers.test_clock.deleted", call.scope, out, None);
    Ok(shapes::deleted(id, "test_helpers.test_clock"))
}
