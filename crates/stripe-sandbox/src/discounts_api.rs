//! `/v1/coupons` and `/v1/promotion_codes` (create, retrieve, update, delete a coupon, list),
//! scoped like the catalog by `Stripe-Account` and mode, with `coupon.*` and
//! `promotion_code.*` events; and the checks a Checkout Session or subscription makes when a
//! `discounts[]` entry or a typed code is applied. The rules are in `discounts.rs`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::Call;
use super::discounts::{
    self, Coupon, CouponDuration, Discount, Order, PromotionCode, Refusal, check_code, check_coupon,
};
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::rules;
use super::shapes;
use super::shapes_discounts as sd;
use super::state::{PageRequest, Tx, previous_attributes};

/// Stripe's largest amount (in the smallest currency unit).
const MAX_AMOUNT: i64 = 99_999_999;

fn no_such_coupon(id: &str) -> ApiError {
    ApiError::no_such("coupon", id, "coupon")
}

fn no_such_code(id: &str) -> ApiError {
    ApiError::no_such("promotion code", id, "promotion_code")
}

fn wants(p: &Params<'_>, path: &str) -> ApiResult<bool> {
    Ok(p.strings("expand")?
        .unwrap_or_default()
        .iter()
        .any(|x| x == path))
}

fn coupon_json(tx: &Tx<'_>, c: &Coupon, with_applies_to: bool) -> Value {
    sd::coupon(c, tx.livemode(), tx.now, with_applies_to)
}

/// A promotion code as the API shows it (inactive once its coupon is gone or invalid).
pub(crate) fn code_json(tx: &mut Tx<'_>, scope: Option<&str>, p: &PromotionCode) -> Value {
    let now = tx.now;
    let live = tx.livemode();
    let valid = tx
        .catalog(scope)
        .coupons
        .get(&p.coupon)
        .is_some_and(|c| c.valid(now));
    sd::promotion_code(p, valid, live)
}

fn positive(p: &Params<'_>, key: &str) -> ApiResult<Option<u64>> {
    match p.int(key)? {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(u64::try_from(n).unwrap_or(u64::MAX))),
        Some(_) => Err(ApiError::bad_param(
            &p.name(key),
            format!(
                "Invalid positive integer: {} must be at least 1.",
                p.name(key)
            ),
        )),
    }
}

// ---- coupons ----

pub(crate) fn create_coupon(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "amount_off",
        "applies_to",
        "currency",
        "currency_options",
        "duration",
        "duration_in_months",
        "expand",
        "id",
        "max_redemptions",
        "metadata",
        "name",
        "percent_off",
        "redeem_by",
    ])?;
    if p.contains("currency_options") {
        return Err(ApiError::bad_param(
            "currency_options",
            "The chatpay sandbox does not support `currency_options`.",
        ));
    }
    let percent_off = match p.str("percent_off")? {
        None => None,
        Some(raw) => Some(
            raw.parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && *v <= 100.0)
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "percent_off",
                        "Invalid decimal: percent_off must be greater than 0 and at most 100.",
                    )
                })?,
        ),
    };
    let amount_off = p.int("amount_off")?;
    let currency = p
        .str("currency")?
        .map(|c| rules::currency("currency", c))
        .transpose()?;
    match (percent_off, amount_off) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: amount_off, percent_off.",
            )
            .code("parameters_exclusive")
            .param("amount_off"));
        }
        (None, None) => {
            return Err(ApiError::missing("percent_off").message_with(
                "You must pass either `percent_off` or `amount_off` (with `currency`).",
            ));
        }
        (None, Some(a)) => {
            if !(1..=MAX_AMOUNT).contains(&a) {
                return Err(ApiError::bad_param(
                    "amount_off",
                    format!("Invalid integer: amount_off must be between 1 and {MAX_AMOUNT}."),
                ));
            }
            if currency.is_none() {
                return Err(ApiError::missing("currency")
                    .message_with("You must pass `currency` when passing `amount_off`."));
            }
        }
        (Some(_), None) => {
            if currency.is_some() {
                return Err(ApiError::bad_param(
                    "currency",
                    "`currency` can only be passed with `amount_off`.",
                ));
            }
        }
    }
    let duration = match p.str("duration")? {
        None => CouponDuration::Once,
        Some(d) => match rules::one_of("duration", d, &["forever", "once", "repeating"])? {
            "forever" => CouponDuration::Forever,
            "repeating" => CouponDuration::Repeating,
            _ => CouponDuration::Once,
        },
    };
    let duration_in_months = match (duration, positive(p, "duration_in_months")?) {
        (CouponDuration::Repeating, Some(m)) => Some(u32::try_from(m).unwrap_or(u32::MAX)),
        (CouponDuration::Repeating, None) => {
            return Err(ApiError::missing("duration_in_months")
                .message_with("`duration_in_months` is required when `duration` is `repeating`."));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_param(
                "duration_in_months",
                "`duration_in_months` can only be passed when `duration` is `repeating`.",
            ));
        }
        (_, None) => None,
    };
    let redeem_by = p.int("redeem_by")?;
    if redeem_by.is_some_and(|r| r <= tx.now) {
        return Err(ApiError::bad_param(
            "redeem_by",
            "Invalid timestamp: `redeem_by` must be in the future.",
        ));
    }
    let name = p.text("name")?;
    if name.as_ref().is_some_and(|n| n.chars().count() > 40) {
        return Err(ApiError::bad_param(
            "name",
            "Invalid string: name must be at most 40 characters.",
        ));
    }
    let applies_to = match p.map("applies_to", &["products"])? {
        None => None,
        Some(a) => {
            let products = a.strings("products")?.unwrap_or_default();
            for (i, id) in products.iter().enumerate() {
                if tx.catalog(call.scope).products.get(id).is_none() {
                    return Err(ApiError::no_such_param(
                        "product",
                        id,
                        &format!("applies_to[products][{i}]"),
                    ));
                }
            }
            Some(products)
        }
    };
    let id = match p.text("id")? {
        Some(id) => {
            if tx.catalog(call.scope).coupons.get(&id).is_some() {
                return Err(ApiError::bad_param("id", "Coupon already exists.")
                    .code("resource_already_exists"));
            }
            id
        }
        None => ids::coupon(),
    };
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let coupon = Coupon {
        id,
        created: tx.now,
        name,
        percent_off,
        amount_off,
        currency,
        duration,
        duration_in_months,
        max_redemptions: positive(p, "max_redemptions")?,
        redeem_by,
        applies_to,
        times_redeemed: 0,
        metadata,
    };
    let out = coupon_json(tx, &coupon, wants(p, "applies_to")?);
    let event = coupon_json(tx, &coupon, false);
    let seq = tx.st.seq();
    tx.catalog(call.scope).coupons.insert(seq, coupon);
    tx.emit("coupon.created", call.scope, event, None);
    Ok(out)
}

fn scoped_coupon(tx: &mut Tx<'_>, scope: Option<&str>, id: &str) -> ApiResult<Coupon> {
    tx.catalog(scope)
        .coupons
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_coupon(id))
}

pub(crate) fn retrieve_coupon(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let c = scoped_coupon(tx, call.scope, id)?;
    Ok(coupon_json(tx, &c, wants(p, "applies_to")?))
}

/// Only `name` and `metadata` of a coupon change: its terms are fixed once created.
pub(crate) fn update_coupon(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["currency_options", "expand", "metadata", "name"])?;
    if p.contains("currency_options") {
        return Err(ApiError::bad_param(
            "currency_options",
            "The chatpay sandbox does not support `currency_options`.",
        ));
    }
    let current = scoped_coupon(tx, call.scope, id)?;
    let mut next = current.clone();
    p.patch_text("name")?.apply(&mut next.name);
    if next.name.as_ref().is_some_and(|n| n.chars().count() > 40) {
        return Err(ApiError::bad_param(
            "name",
            "Invalid string: name must be at most 40 characters.",
        ));
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    let before = coupon_json(tx, &current, false);
    let after = coupon_json(tx, &next, false);
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        if let Some(slot) = tx.catalog(call.scope).coupons.get_mut(id) {
            *slot = next.clone();
        }
        tx.emit("coupon.updated", call.scope, after, Some(prev));
    }
    Ok(coupon_json(tx, &next, wants(p, "applies_to")?))
}

/// Deleting a coupon stops new redemptions; discounts already applied keep it (they hold a copy),
/// and its promotion codes become inactive.
pub(crate) fn delete_coupon(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[])?;
    let c = scoped_coupon(tx, call.scope, id)?;
    let out = coupon_json(tx, &c, false);
    tx.catalog(call.scope).coupons.remove(id);
    tx.emit("coupon.deleted", call.scope, out, None);
    Ok(shapes::deleted(id, "coupon"))
}

pub(crate) fn list_coupons(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "created",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let with = wants(p, "data.applies_to")?;
    let (live, now) = (tx.livemode(), tx.now);
    let page = tx
        .catalog(call.scope)
        .coupons
        .page(&req, "coupon", |_| true)?;
    let data = page
        .items
        .iter()
        .map(|c| sd::coupon(c, live, now, with))
        .collect();
    Ok(shapes::list("/v1/coupons", data, page.has_more))
}

// ---- promotion codes ----

/// `A-Z a-z 0-9 -`, as Stripe allows in a code.
fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 500
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn generated_code() -> String {
    ids::random(8).to_ascii_uppercase()
}

/// Another active code with the same text (regardless of case) for the same customer.
fn clashing_code(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    code: &str,
    customer: Option<&str>,
    except: Option<&str>,
) -> bool {
    tx.catalog(scope).promotion_codes.iter().any(|c| {
        c.active
            && c.same_code(code)
            && c.customer.as_deref() == customer
            && Some(c.id.as_str()) != except
    })
}

pub(crate) fn create_promotion_code(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "active",
        "code",
        "customer",
        "customer_account",
        "expand",
        "expires_at",
        "max_redemptions",
        "metadata",
        "promotion",
        "restrictions",
    ])?;
    if p.contains("customer_account") {
        return Err(ApiError::bad_param(
            "customer_account",
            "The chatpay sandbox does not support `customer_account`.",
        ));
    }
    let Some(promotion) = p.map("promotion", &["coupon", "type"])? else {
        return Err(ApiError::missing("promotion"));
    };
    rules::one_of("promotion[type]", promotion.required("type")?, &["coupon"])?;
    let coupon_id = promotion.required("coupon")?.to_owned();
    let coupon = tx
        .catalog(call.scope)
        .coupons
        .get(&coupon_id)
        .cloned()
        .ok_or_else(|| ApiError::no_such_param("coupon", &coupon_id, "promotion[coupon]"))?;
    if !coupon.valid(tx.now) {
        return Err(ApiError::bad_param(
            "promotion[coupon]",
            format!("Coupon expired: {coupon_id}"),
        )
        .code("coupon_expired"));
    }
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
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
    let code = match p.text("code")? {
        Some(code) => {
            if !valid_code(&code) {
                return Err(ApiError::bad_param(
                    "code",
                    "Invalid code: a promotion code can contain only letters (a-z, A-Z), digits \
                     (0-9) and dashes (-).",
                ));
            }
            code
        }
        None => generated_code(),
    };
    let active = p.bool("active")?.unwrap_or(true);
    if active && clashing_code(tx, call.scope, &code, customer.as_deref(), None) {
        return Err(ApiError::bad_param(
            "code",
            format!(
                "An active promotion code with `code: {code}` already exists. Codes must be \
                 unique, regardless of case, among active promotion codes for a customer."
            ),
        )
        .code("resource_already_exists"));
    }
    let max_redemptions = positive(p, "max_redemptions")?;
    if let (Some(m), Some(cm)) = (max_redemptions, coupon.max_redemptions)
        && m > cm
    {
        return Err(ApiError::bad_param(
            "max_redemptions",
            format!(
                "The promotion code's `max_redemptions` ({m}) cannot be greater than its \
                 coupon's `max_redemptions` ({cm})."
            ),
        ));
    }
    let expires_at = p.int("expires_at")?;
    if let Some(e) = expires_at {
        if e <= tx.now {
            return Err(ApiError::bad_param(
                "expires_at",
                "Invalid timestamp: `expires_at` must be in the future.",
            ));
        }
        if coupon.redeem_by.is_some_and(|r| e > r) {
            return Err(ApiError::bad_param(
                "expires_at",
                "The promotion code's `expires_at` cannot be after its coupon's `redeem_by`.",
            ));
        }
    }
    let mut first_time_transaction = false;
    let mut minimum_amount = None;
    let mut minimum_amount_currency = None;
    if let Some(r) = p.map(
        "restrictions",
        &[
            "currency_options",
            "first_time_transaction",
            "minimum_amount",
            "minimum_amount_currency",
        ],
    )? {
        if r.contains("currency_options") {
            return Err(ApiError::bad_param(
                "restrictions[currency_options]",
                "The chatpay sandbox does not support `restrictions[currency_options]`.",
            ));
        }
        first_time_transaction = r.bool("first_time_transaction")?.unwrap_or(false);
        minimum_amount = r.int("minimum_amount")?;
        minimum_amount_currency = r
            .str("minimum_amount_currency")?
            .map(|c| rules::currency("restrictions[minimum_amount_currency]", c))
            .transpose()?;
        match (minimum_amount, &minimum_amount_currency) {
            (Some(a), Some(_)) if !(0..=MAX_AMOUNT).contains(&a) => {
                return Err(ApiError::bad_param(
                    "restrictions[minimum_amount]",
                    format!("Invalid integer: minimum_amount must be between 0 and {MAX_AMOUNT}."),
                ));
            }
            (Some(_), None) => {
                return Err(ApiError::missing("restrictions[minimum_amount_currency]")
                    .message_with(
                        "You must pass `restrictions[minimum_amount_currency]` with \
                         `restrictions[minimum_amount]`.",
                    ));
            }
            (None, Some(_)) => {
                return Err(
                    ApiError::missing("restrictions[minimum_amount]").message_with(
                        "You must pass `restrictions[minimum_amount]` with \
                     `restrictions[minimum_amount_currency]`.",
                    ),
                );
            }
            _ => {}
        }
    }
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let promo = PromotionCode {
        id: ids::promotion_code(),
        created: tx.now,
        code,
        coupon: coupon_id,
        active,
        customer,
        max_redemptions,
        expires_at,
        first_time_transaction,
        minimum_amount,
        minimum_amount_currency,
        times_redeemed: 0,
        metadata,
    };
    let out = code_json(tx, call.scope, &promo);
    let seq = tx.st.seq();
    tx.catalog(call.scope).promotion_codes.insert(seq, promo);
    tx.emit("promotion_code.created", call.scope, out.clone(), None);
    Ok(out)
}

fn scoped_code(tx: &mut Tx<'_>, scope: Option<&str>, id: &str) -> ApiResult<PromotionCode> {
    tx.catalog(scope)
        .promotion_codes
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_code(id))
}

pub(crate) fn retrieve_promotion_code(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let code = scoped_code(tx, call.scope, id)?;
    Ok(code_json(tx, call.scope, &code))
}

/// Only `active` and `metadata` change ("most fields are, by design, not editable"); a code is
/// reactivated only while its coupon is valid and no other active code has its text.
pub(crate) fn update_promotion_code(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["active", "expand", "metadata", "restrictions"])?;
    if p.contains("restrictions") {
        return Err(ApiError::bad_param(
            "restrictions",
            "The chatpay sandbox does not support `restrictions[currency_options]`.",
        ));
    }
    let current = scoped_code(tx, call.scope, id)?;
    let mut next = current.clone();
    if let Some(active) = p.bool("active")? {
        if active && !current.active {
            let now = tx.now;
            let coupon_valid = tx
                .catalog(call.scope)
                .coupons
                .get(&current.coupon)
                .is_some_and(|c| c.valid(now));
            if !coupon_valid {
                return Err(ApiError::bad_param(
                    "active",
                    "This promotion code cannot be reactivated because its coupon is no longer \
                     valid.",
                ));
            }
            if clashing_code(
                tx,
                call.scope,
                &current.code,
                current.customer.as_deref(),
                Some(id),
            ) {
                return Err(ApiError::bad_param(
                    "active",
                    format!(
                        "This promotion code cannot be reactivated because another active \
                         promotion code has `code: {}`.",
                        current.code
                    ),
                ));
            }
        }
        next.active = active;
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    let before = code_json(tx, call.scope, &current);
    let after = code_json(tx, call.scope, &next);
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        if let Some(slot) = tx.catalog(call.scope).promotion_codes.get_mut(id) {
            *slot = next;
        }
        tx.emit(
            "promotion_code.updated",
            call.scope,
            after.clone(),
            Some(prev),
        );
    }
    Ok(after)
}

pub(crate) fn list_promotion_codes(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "active",
        "code",
        "coupon",
        "created",
        "customer",
        "customer_account",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let active = p.bool("active")?;
    let code = p.str("code")?;
    let coupon = p.str("coupon")?;
    let customer = p.str("customer")?;
    let now = tx.now;
    let live = tx.livemode();
    let catalog = tx.catalog(call.scope);
    let valid = |c: &PromotionCode| catalog.coupons.get(&c.coupon).is_some_and(|k| k.valid(now));
    let page = catalog.promotion_codes.page(&req, "promotion code", |c| {
        active.is_none_or(|a| (c.active && valid(c)) == a)
            && code.is_none_or(|t| c.same_code(t))
            && coupon.is_none_or(|k| c.coupon == k)
            && customer.is_none_or(|k| c.customer.as_deref() == Some(k))
    })?;
    let data = page
        .items
        .iter()
        .map(|c| sd::promotion_code(c, valid(c), live))
        .collect();
    Ok(shapes::list("/v1/promotion_codes", data, page.has_more))
}

// ---- applying ----

/// Whether the customer (by id, or by email for a guest Checkout) has a successful payment or
/// a paid invoice on this account: what `restrictions.first_time_transaction` refuses.
pub(crate) fn paid_before(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    customer: Option<&str>,
    email: Option<&str>,
) -> bool {
    let same_email =
        |e: Option<&str>| matches!((email, e), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
    let customer_email = customer.and_then(|c| {
        tx.ms()
            .billing
            .customers
            .get(c)
            .and_then(|cus| cus.email.clone())
    });
    let sales = &tx.ms().sales;
    let charged = sales.charges.iter().any(|ch| {
        ch.account.as_deref() == scope
            && ch.succeeded
            && ((customer.is_some() && ch.customer.as_deref() == customer)
                || same_email(ch.billing_email.as_deref())
                || (customer_email.is_some()
                    && ch.billing_email.as_deref().is_some_and(|b| {
                        customer_email
                            .as_deref()
                            .is_some_and(|c| c.eq_ignore_ascii_case(b))
                    })))
    });
    charged
        || sales.invoices.iter().any(|i| {
            i.account.as_deref() == scope
                && i.status == super::sales::InvoiceStatus::Paid
                && i.total > 0
                && ((customer.is_some() && i.customer.as_deref() == customer)
                    || same_email(i.customer_email.as_deref()))
        })
}

/// A `discounts[]` entry (`coupon` or `promotion_code`, one of them) checked against `order`
/// and turned into a discount. `at` names the entry in errors (`discounts[0]`).
pub(crate) fn from_param(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    item: &Params<'_>,
    at: &str,
    order: &Order<'_>,
) -> ApiResult<Discount> {
    item.only(&["coupon", "discount", "promotion_code"])?;
    if item.contains("discount") {
        return Err(ApiError::bad_param(
            &format!("{at}[discount]"),
            "The chatpay sandbox does not support `discount` in `discounts[]`.",
        ));
    }
    let coupon_id = item.text("coupon")?;
    let code_id = item.text("promotion_code")?;
    let (coupon, code) = match (coupon_id, code_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "You may only specify one of these parameters: {at}[coupon], \
                 {at}[promotion_code]."
            ))
            .code("parameters_exclusive"));
        }
        (None, None) => return Err(ApiError::missing(&format!("{at}[coupon]"))),
        (Some(c), None) => {
            let param = format!("{at}[coupon]");
            let coupon = tx
                .catalog(scope)
                .coupons
                .get(&c)
                .cloned()
                .ok_or_else(|| ApiError::no_such_param("coupon", &c, &param))?;
            check_coupon(&coupon, order).map_err(|r| refused(&r, &c, &param))?;
            (coupon, None)
        }
        (None, Some(id)) => {
            let param = format!("{at}[promotion_code]");
            let code = tx
                .catalog(scope)
                .promotion_codes
                .get(&id)
                .cloned()
                .ok_or_else(|| ApiError::no_such_param("promotion code", &id, &param))?;
            let coupon = tx.catalog(scope).coupons.get(&code.coupon).cloned();
            check_code(&code, coupon.as_ref(), order).map_err(|r| refused(&r, &id, &param))?;
            (coupon.ok_or_else(ApiError::internal)?, Some(code))
        }
    };
    let mut d = Discount::new(
        ids::discount(),
        coupon,
        code.as_ref().map(|c| c.id.clone()),
        order.now,
    );
    d.code = code.map(|c| c.code);
    Ok(d)
}

fn refused(r: &Refusal, what: &str, param: &str) -> ApiError {
    ApiError::bad_param(param, r.api_message(what)).code(r.code())
}

/// A code the customer typed on a hosted page, checked against `order`.
pub(crate) fn from_typed_code(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    text: &str,
    order: &Order<'_>,
) -> Result<Discount, Refusal> {
    let catalog = tx.catalog(scope);
    let code = discounts::find_code(catalog.promotion_codes.iter(), text, order.customer)
        .cloned()
        .ok_or(Refusal::Unknown)?;
    let coupon = catalog.coupons.get(&code.coupon).cloned();
    check_code(&code, coupon.as_ref(), order)?;
    let coupon = coupon.ok_or(Refusal::Inactive)?;
    let mut d = Discount::new(ids::discount(), coupon, Some(code.id), order.now);
    d.code = Some(code.code);
    d.entered_on_page = true;
    Ok(d)
}

/// Checks an applied discount again when the customer pays (it may have expired, been used up
/// meanwhile, or the customer's email shows earlier payments).
pub(crate) fn still_redeemable(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    d: &Discount,
    order: &Order<'_>,
) -> Result<(), Refusal> {
    match &d.promotion_code {
        Some(id) => {
            let catalog = tx.catalog(scope);
            let Some(code) = catalog.promotion_codes.get(id).cloned() else {
                return Err(Refusal::Inactive);
            };
            let coupon = catalog.coupons.get(&code.coupon).cloned();
            // A code applied before its coupon was deleted stays applied (the discount keeps a
            // copy of the coupon); its other conditions still hold.
            check_code(&code, Some(coupon.as_ref().unwrap_or(&d.coupon)), order)
        }
        None => {
            let current = tx.catalog(scope).coupons.get(&d.coupon.id).cloned();
            check_coupon(current.as_ref().unwrap_or(&d.coupon), order)
        }
    }
}

/// Counts one redemption of the discount's coupon and promotion code.
pub(crate) fn redeem(tx: &mut Tx<'_>, scope: Option<&str>, d: &Discount) {
    let catalog = tx.catalog(scope);
    if let Some(c) = catalog.coupons.get_mut(&d.coupon.id) {
        c.times_redeemed += 1;
    }
    if let Some(code) = d.promotion_code.as_ref()
        && let Some(c) = catalog.promotion_codes.get_mut(code)
    {
        c.times_redeemed += 1;
    }
}
