//! `/v1/products` and `/v1/prices`, one catalog per connected account and mode; plus the bulk
//! seeding test control.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::Call;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::model::{Price, Product, Recurring};
use super::rules;
use super::shapes;
use super::state::{PageRequest, Tx, previous_attributes};

const MAX_AMOUNT: i64 = 99_999_999;

fn no_such_product(id: &str) -> ApiError {
    ApiError::no_such("product", id, "id")
}

fn no_such_price(id: &str) -> ApiError {
    ApiError::no_such("price", id, "price")
}

/// The fields of a new price, validated; shared by `POST /v1/prices` and `default_price_data`.
struct PriceSpec {
    currency: String,
    unit_amount: i64,
    recurring: Option<Recurring>,
    tax_behavior: String,
}

fn price_spec(p: &Params<'_>, prefix: &str) -> ApiResult<PriceSpec> {
    let name = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}[{k}]")
        }
    };
    for unsupported in [
        "currency_options",
        "custom_unit_amount",
        "tiers",
        "transform_quantity",
    ] {
        if p.contains(unsupported) {
            return Err(ApiError::bad_param(
                &name(unsupported),
                format!(
                    "The chatpay sandbox does not support `{}`.",
                    name(unsupported)
                ),
            ));
        }
    }
    if let Some(scheme) = p.str("billing_scheme")?
        && scheme != "per_unit"
    {
        return Err(ApiError::bad_param(
            &name("billing_scheme"),
            "The chatpay sandbox supports only `per_unit` prices.",
        ));
    }
    let currency = rules::currency(&name("currency"), p.required("currency")?)?;
    let unit_amount = match (p.int("unit_amount")?, p.str("unit_amount_decimal")?) {
        (Some(a), _) => a,
        (None, Some(d)) => d.parse::<i64>().map_err(|_| {
            ApiError::bad_param(
                &name("unit_amount_decimal"),
                "The chatpay sandbox supports only whole-number `unit_amount_decimal` values.",
            )
        })?,
        (None, None) => return Err(ApiError::missing(&name("unit_amount"))),
    };
    if !(0..=MAX_AMOUNT).contains(&unit_amount) {
        return Err(ApiError::bad_param(
            &name("unit_amount"),
            format!("Invalid integer: unit_amount must be between 0 and {MAX_AMOUNT}"),
        ));
    }
    let recurring = match p.map(
        "recurring",
        &[
            "interval",
            "interval_count",
            "meter",
            "trial_period_days",
            "usage_type",
        ],
    )? {
        None => None,
        Some(r) => {
            let interval = rules::one_of(
                &name("recurring[interval]"),
                r.required("interval")?,
                &["day", "month", "week", "year"],
            )?;
            let count = r.int("interval_count")?.unwrap_or(1);
            let max = match interval {
                "day" => 365,
                "week" => 52,
                "month" => 12,
                _ => 1,
            };
            if !(1..=max).contains(&count) {
                return Err(ApiError::bad_param(
                    &name("recurring[interval_count]"),
                    "The maximum billing interval is one year (1 year, 12 months, 52 weeks or \
                     365 days).",
                ));
            }
            if let Some(usage) = r.str("usage_type")?
                && usage != "licensed"
            {
                return Err(ApiError::bad_param(
                    &name("recurring[usage_type]"),
                    "The chatpay sandbox supports only `licensed` recurring prices.",
                ));
            }
            let trial_period_days = match r.int("trial_period_days")? {
                None => None,
                Some(d @ 1..=730) => Some(u32::try_from(d).unwrap_or(1)),
                Some(_) => {
                    return Err(ApiError::bad_param(
                        &name("recurring[trial_period_days]"),
                        "Invalid integer: trial_period_days must be between 1 and 730.",
                    ));
                }
            };
            Some(Recurring {
                interval: interval.to_owned(),
                interval_count: u32::try_from(count).unwrap_or(1),
                trial_period_days,
            })
        }
    };
    let tax_behavior = match p.str("tax_behavior")? {
        Some(t) => rules::one_of(
            &name("tax_behavior"),
            t,
            &["exclusive", "inclusive", "unspecified"],
        )?
        .to_owned(),
        None => "unspecified".to_owned(),
    };
    Ok(PriceSpec {
        currency,
        unit_amount,
        recurring,
        tax_behavior,
    })
}

fn new_price(spec: PriceSpec, product: &str, now: i64) -> Price {
    Price {
        id: ids::price(),
        created: now,
        product: product.to_owned(),
        currency: spec.currency,
        unit_amount: spec.unit_amount,
        recurring: spec.recurring,
        active: true,
        nickname: None,
        lookup_key: None,
        metadata: BTreeMap::new(),
        tax_behavior: spec.tax_behavior,
    }
}

fn images(p: &Params<'_>) -> ApiResult<Option<Vec<String>>> {
    let Some(images) = p.strings("images")? else {
        return Ok(None);
    };
    if images.len() > 8 {
        return Err(ApiError::bad_param(
            "images",
            "A product can have at most 8 images.",
        ));
    }
    images
        .iter()
        .map(|u| rules::url("images", u))
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

pub(crate) fn create_product(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "active",
        "default_price_data",
        "description",
        "expand",
        "id",
        "images",
        "marketing_features",
        "metadata",
        "name",
        "package_dimensions",
        "shippable",
        "statement_descriptor",
        "tax_code",
        "tax_details",
        "type",
        "unit_label",
        "url",
    ])?;
    let name = p.required("name")?.to_owned();
    let id = match p.text("id")? {
        Some(id) => {
            if tx.catalog(call.scope).products.get(&id).is_some() {
                return Err(ApiError::bad_param("id", "Product already exists.")
                    .code("resource_already_exists"));
            }
            id
        }
        None => ids::product(),
    };
    let default_price_data = p.map(
        "default_price_data",
        &[
            "currency",
            "currency_options",
            "custom_unit_amount",
            "metadata",
            "recurring",
            "tax_behavior",
            "unit_amount",
            "unit_amount_decimal",
        ],
    )?;
    let default_price = match &default_price_data {
        None => None,
        Some(d) => {
            let spec = price_spec(d, "default_price_data")?;
            let mut metadata = BTreeMap::new();
            if let Some(m) = d.metadata("metadata")? {
                m.apply(&mut metadata, "default_price_data[metadata]")?;
            }
            Some((spec, metadata))
        }
    };
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let kind = match p.str("type")? {
        Some(t) => rules::one_of("type", t, &["good", "service"])?.to_owned(),
        None => "service".to_owned(),
    };
    let mut product = Product {
        id,
        created: tx.now,
        updated: tx.now,
        name,
        active: p.bool("active")?.unwrap_or(true),
        description: p.text("description")?,
        default_price: None,
        images: images(p)?.unwrap_or_default(),
        metadata,
        shippable: p.bool("shippable")?,
        statement_descriptor: p
            .text("statement_descriptor")?
            .map(|s| rules::statement_descriptor("statement_descriptor", &s))
            .transpose()?,
        unit_label: p.text("unit_label")?,
        url: p.text("url")?.map(|u| rules::url("url", &u)).transpose()?,
        tax_code: p.text("tax_code")?,
        kind,
    };
    let price = default_price.map(|(spec, metadata)| Price {
        metadata,
        ..new_price(spec, &product.id, tx.now)
    });
    product.default_price = price.as_ref().map(|p| p.id.clone());
    Ok(insert_product(tx, call.scope, product, price, true))
}

/// Stores a product (and its first price), emitting the `*.created` events when asked.
fn insert_product(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    product: Product,
    price: Option<Price>,
    emit: bool,
) -> Value {
    let live = tx.livemode();
    let product_json = shapes::product(&product, live);
    let seq = tx.st.seq();
    tx.catalog(scope).products.insert(seq, product);
    if emit {
        tx.emit("product.created", scope, product_json.clone(), None);
    }
    if let Some(price) = price {
        let price_json = shapes::price(&price, live);
        let seq = tx.st.seq();
        tx.catalog(scope).prices.insert(seq, price);
        if emit {
            tx.emit("price.created", scope, price_json, None);
        }
    }
    product_json
}

pub(crate) fn retrieve_product(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    tx.catalog(call.scope)
        .products
        .get(id)
        .map(|prod| shapes::product(prod, live))
        .ok_or_else(|| no_such_product(id))
}

pub(crate) fn update_product(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "active",
        "default_price",
        "description",
        "expand",
        "images",
        "marketing_features",
        "metadata",
        "name",
        "package_dimensions",
        "shippable",
        "statement_descriptor",
        "tax_code",
        "tax_details",
        "unit_label",
        "url",
    ])?;
    let live = tx.livemode();
    let catalog = tx.catalog(call.scope);
    let current = catalog
        .products
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_product(id))?;
    let mut next = current.clone();
    if let Some(name) = p.text("name")? {
        next.name = name;
    }
    if let Some(active) = p.bool("active")? {
        next.active = active;
    }
    p.patch_text("description")?.apply(&mut next.description);
    p.patch_text("unit_label")?.apply(&mut next.unit_label);
    p.patch_text("tax_code")?.apply(&mut next.tax_code);
    p.patch_text("url")?
        .try_map(|u| rules::url("url", &u))?
        .apply(&mut next.url);
    p.patch_text("statement_descriptor")?
        .try_map(|s| rules::statement_descriptor("statement_descriptor", &s))?
        .apply(&mut next.statement_descriptor);
    if let Some(shippable) = p.bool("shippable")? {
        next.shippable = Some(shippable);
    }
    if let Some(images) = images(p)? {
        next.images = images;
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    p.patch_text("default_price")?
        .try_map(|price_id| match catalog.prices.get(&price_id) {
            Some(price) if price.product == id && price.active => Ok(price_id),
            Some(price) if price.product == id => Err(ApiError::bad_param(
                "default_price",
                "The default price must be active.",
            )),
            Some(_) => Err(ApiError::bad_param(
                "default_price",
                format!("The price {price_id} does not belong to product {id}."),
            )),
            None => Err(ApiError::no_such_param("price", &price_id, "default_price")),
        })?
        .apply(&mut next.default_price);
    let before = shapes::product(&current, live);
    let mut after = shapes::product(&next, live);
    let Some(prev) = previous_attributes(&before, &after, &["updated"]) else {
        return Ok(before);
    };
    next.updated = tx.now;
    after["updated"] = tx.now.into();
    if let Some(slot) = tx.catalog(call.scope).products.get_mut(id) {
        *slot = next;
    }
    let mut prev = prev;
    prev["updated"] = current.updated.into();
    tx.emit("product.updated", call.scope, after.clone(), Some(prev));
    Ok(after)
}

pub(crate) fn delete_product(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[])?;
    let live = tx.livemode();
    let catalog = tx.catalog(call.scope);
    if catalog.products.get(id).is_none() {
        return Err(no_such_product(id));
    }
    if catalog.prices.iter().any(|price| price.product == id) {
        return Err(ApiError::bad_param(
            "id",
            "This product cannot be deleted because it has one or more user-created prices. \
             Archive it instead (active=false).",
        ));
    }
    let Some(product) = catalog.products.remove(id) else {
        return Err(no_such_product(id));
    };
    tx.emit(
        "product.deleted",
        call.scope,
        shapes::product(&product, live),
        None,
    );
    Ok(shapes::deleted(id, "product"))
}

pub(crate) fn list_products(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "active",
        "created",
        "ending_before",
        "expand",
        "ids",
        "limit",
        "shippable",
        "starting_after",
        "type",
        "url",
    ])?;
    let req = PageRequest::parse(p)?;
    let active = p.bool("active")?;
    let shippable = p.bool("shippable")?;
    let ids = p.strings("ids")?;
    let kind = p.str("type")?;
    let url = p.str("url")?;
    let live = tx.livemode();
    let page = tx
        .catalog(call.scope)
        .products
        .page(&req, "product", |prod| {
            active.is_none_or(|a| prod.active == a)
                && shippable.is_none_or(|s| prod.shippable == Some(s))
                && ids.as_ref().is_none_or(|ids| ids.contains(&prod.id))
                && kind.is_none_or(|k| prod.kind == k)
                && url.is_none_or(|u| prod.url.as_deref() == Some(u))
        })?;
    let data = page
        .items
        .iter()
        .map(|prod| shapes::product(prod, live))
        .collect();
    Ok(shapes::list("/v1/products", data, page.has_more))
}

pub(crate) fn create_price(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "active",
        "billing_scheme",
        "currency",
        "currency_options",
        "custom_unit_amount",
        "expand",
        "lookup_key",
        "metadata",
        "nickname",
        "product",
        "product_data",
        "recurring",
        "tax_behavior",
        "tiers",
        "tiers_mode",
        "transfer_lookup_key",
        "transform_quantity",
        "unit_amount",
        "unit_amount_decimal",
    ])?;
    let spec = price_spec(p, "")?;
    let product_data = p.map(
        "product_data",
        &[
            "active",
            "id",
            "metadata",
            "name",
            "statement_descriptor",
            "tax_code",
            "tax_details",
            "unit_label",
        ],
    )?;
    let live = tx.livemode();
    let now = tx.now;
    let (product_id, new_product) = match (p.str("product")?, &product_data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: product, product_data.",
            )
            .code("parameters_exclusive"));
        }
        (Some(id), None) => {
            if tx.catalog(call.scope).products.get(id).is_none() {
                return Err(ApiError::no_such_param("product", id, "product"));
            }
            (id.to_owned(), None)
        }
        (None, Some(data)) => {
            let mut metadata = BTreeMap::new();
            if let Some(m) = data.metadata("metadata")? {
                m.apply(&mut metadata, "product_data[metadata]")?;
            }
            let id = data.text("id")?.unwrap_or_else(ids::product);
            if tx.catalog(call.scope).products.get(&id).is_some() {
                return Err(
                    ApiError::bad_param("product_data[id]", "Product already exists.")
                        .code("resource_already_exists"),
                );
            }
            let product = Product {
                id: id.clone(),
                created: now,
                updated: now,
                name: data.required("name")?.to_owned(),
                active: data.bool("active")?.unwrap_or(true),
                description: None,
                default_price: None,
                images: Vec::new(),
                metadata,
                shippable: None,
                statement_descriptor: data
                    .text("statement_descriptor")?
                    .map(|s| rules::statement_descriptor("product_data[statement_descriptor]", &s))
                    .transpose()?,
                unit_label: data.text("unit_label")?,
                url: None,
                tax_code: data.text("tax_code")?,
                kind: "service".into(),
            };
            (id, Some(product))
        }
        (None, None) => return Err(ApiError::missing("product")),
    };
    let lookup_key = p.text("lookup_key")?;
    let transfer = p.bool("transfer_lookup_key")?.unwrap_or(false);
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let mut price = new_price(spec, &product_id, now);
    price.active = p.bool("active")?.unwrap_or(true);
    price.nickname = p.text("nickname")?;
    price.metadata = metadata;
    if let Some(key) = &lookup_key {
        take_lookup_key(tx, call.scope, key, transfer)?;
        price.lookup_key = Some(key.clone());
    }
    if let Some(prod) = new_product {
        insert_product(tx, call.scope, prod, None, true);
    }
    let out = shapes::price(&price, live);
    let seq = tx.st.seq();
    tx.catalog(call.scope).prices.insert(seq, price);
    tx.emit("price.created", call.scope, out.clone(), None);
    Ok(out)
}

/// A lookup key is unique within a catalog; `transfer_lookup_key` moves it.
fn take_lookup_key(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    key: &str,
    transfer: bool,
) -> ApiResult<()> {
    let live = tx.livemode();
    let holder = tx
        .catalog(scope)
        .prices
        .iter()
        .find(|p| p.lookup_key.as_deref() == Some(key))
        .cloned();
    let Some(holder) = holder else {
        return Ok(());
    };
    if !transfer {
        return Err(ApiError::bad_param(
            "lookup_key",
            format!(
                "A price ({}) already uses that lookup key. Pass `transfer_lookup_key=true` to \
                 move it.",
                holder.id
            ),
        ));
    }
    let mut moved = holder.clone();
    moved.lookup_key = None;
    let before = shapes::price(&holder, live);
    let after = shapes::price(&moved, live);
    if let Some(slot) = tx.catalog(scope).prices.get_mut(&holder.id) {
        *slot = moved;
    }
    let prev = previous_attributes(&before, &after, &[]);
    tx.emit("price.updated", scope, after, prev);
    Ok(())
}

pub(crate) fn retrieve_price(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    tx.catalog(call.scope)
        .prices
        .get(id)
        .map(|price| shapes::price(price, live))
        .ok_or_else(|| no_such_price(id))
}

pub(crate) fn update_price(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "active",
        "currency_options",
        "expand",
        "lookup_key",
        "metadata",
        "nickname",
        "tax_behavior",
        "transfer_lookup_key",
    ])?;
    if p.contains("currency_options") {
        return Err(ApiError::bad_param(
            "currency_options",
            "The chatpay sandbox does not support `currency_options`.",
        ));
    }
    let live = tx.livemode();
    let catalog = tx.catalog(call.scope);
    let current = catalog
        .prices
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_price(id))?;
    let mut next = current.clone();
    if let Some(active) = p.bool("active")? {
        let is_default = catalog
            .products
            .get(&current.product)
            .is_some_and(|prod| prod.default_price.as_deref() == Some(id));
        if !active && is_default {
            return Err(ApiError::bad_param(
                "active",
                "This price cannot be archived because it is the default price of its product. \
                 Set another default price on the product first.",
            ));
        }
        next.active = active;
    }
    p.patch_text("nickname")?.apply(&mut next.nickname);
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    if let Some(t) = p.str("tax_behavior")? {
        let t = rules::one_of(
            "tax_behavior",
            t,
            &["exclusive", "inclusive", "unspecified"],
        )?;
        if current.tax_behavior != "unspecified" && t != current.tax_behavior {
            return Err(ApiError::bad_param(
                "tax_behavior",
                "tax_behavior cannot be changed once it is set to inclusive or exclusive.",
            ));
        }
        next.tax_behavior = t.to_owned();
    }
    let lookup = p.patch_text("lookup_key")?;
    let transfer = p.bool("transfer_lookup_key")?.unwrap_or(false);
    if let super::form::Patch::Set(key) = &lookup
        && current.lookup_key.as_deref() != Some(key.as_str())
    {
        take_lookup_key(tx, call.scope, key, transfer)?;
    }
    lookup.apply(&mut next.lookup_key);
    let before = shapes::price(&current, live);
    let after = shapes::price(&next, live);
    let Some(prev) = previous_attributes(&before, &after, &[]) else {
        return Ok(before);
    };
    if let Some(slot) = tx.catalog(call.scope).prices.get_mut(id) {
        *slot = next;
    }
    tx.emit("price.updated", call.scope, after.clone(), Some(prev));
    Ok(after)
}

pub(crate) fn list_prices(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "active",
        "created",
        "currency",
        "ending_before",
        "expand",
        "limit",
        "lookup_keys",
        "product",
        "recurring",
        "starting_after",
        "type",
    ])?;
    let req = PageRequest::parse(p)?;
    let active = p.bool("active")?;
    let product = p.str("product")?;
    let currency = p
        .str("currency")?
        .map(|c| rules::currency("currency", c))
        .transpose()?;
    let kind = p
        .str("type")?
        .map(|t| rules::one_of("type", t, &["one_time", "recurring"]))
        .transpose()?;
    let lookup_keys = p.strings("lookup_keys")?;
    let interval = p
        .map("recurring", &["interval", "meter", "usage_type"])?
        .map(|r| r.str("interval"))
        .transpose()?
        .flatten();
    let live = tx.livemode();
    let page = tx.catalog(call.scope).prices.page(&req, "price", |price| {
        active.is_none_or(|a| price.active == a)
            && product.is_none_or(|id| price.product == id)
            && currency.as_ref().is_none_or(|c| &price.currency == c)
            && kind.is_none_or(|k| (k == "recurring") == price.recurring.is_some())
            && lookup_keys
                .as_ref()
                .is_none_or(|keys| price.lookup_key.as_ref().is_some_and(|k| keys.contains(k)))
            && interval.is_none_or(|i| price.recurring.as_ref().is_some_and(|r| r.interval == i))
    })?;
    let data = page
        .items
        .iter()
        .map(|price| shapes::price(price, live))
        .collect();
    Ok(shapes::list("/v1/prices", data, page.has_more))
}

/// Deletes a price the way the Dashboard can (the API cannot): emits `price.deleted`.
pub(crate) fn delete_price(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    id: &str,
) -> Result<Value, String> {
    let live = tx.livemode();
    let catalog = tx.catalog(scope);
    let price = catalog
        .prices
        .get(id)
        .cloned()
        .ok_or_else(|| format!("no such price: {id}"))?;
    if catalog
        .products
        .get(&price.product)
        .is_some_and(|prod| prod.default_price.as_deref() == Some(id))
    {
        return Err("the price is its product's default price; set another default first".into());
    }
    catalog.prices.remove(id);
    let out = shapes::price(&price, live);
    tx.emit("price.deleted", scope, out.clone(), None);
    Ok(out)
}

/// Bulk catalog seeding (test control).
///
/// As JSON: `{"account": "acct_…", "livemode": false, "products": 500,
/// "currencies": ["usd", "eur", "gbp"], "emit_events": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedCatalog {
    /// The connected account whose catalog to fill; the platform's when `None`.
    #[serde(default)]
    pub account: Option<String>,
    /// Seed the live-mode catalog instead of the test-mode one.
    #[serde(default)]
    pub livemode: bool,
    /// How many products (at most 10 000).
    pub products: u32,
    /// Currencies to rotate through; `["usd", "eur", "gbp"]` when empty.
    #[serde(default)]
    pub currencies: Vec<String>,
    /// Emit `product.created` / `price.created` for each object (off by default).
    #[serde(default)]
    pub emit_events: bool,
}

/// What seeding created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedReport {
    /// Products created.
    pub products: u32,
    /// Prices created (active and archived).
    pub prices: u32,
    /// Products created archived (`active: false`).
    pub archived: u32,
    /// Products created without any price.
    pub without_price: u32,
    /// Events emitted (0 unless `emit_events`).
    pub events: u32,
}

/// The deterministic mix: every 10th product has no price, every 3rd is recurring (monthly or
/// yearly), every 4th has a second price in another currency, every 7th is archived, and
/// every 9th has an archived extra price.
pub(crate) fn seed(tx: &mut Tx<'_>, spec: &SeedCatalog) -> Result<SeedReport, String> {
    if spec.products > 10_000 {
        return Err("products must be at most 10000".into());
    }
    let scope = spec.account.as_deref();
    if let Some(account) = scope
        && tx.ms().accounts.get(account).is_none()
    {
        return Err(format!("no such account in this mode: {account}"));
    }
    let currencies: Vec<String> = if spec.currencies.is_empty() {
        vec!["usd".into(), "eur".into(), "gbp".into()]
    } else {
        spec.currencies
            .iter()
            .map(|c| rules::currency("currencies", c).map_err(|e| e.message))
            .collect::<Result<_, _>>()?
    };
    let events_before = tx.events.len();
    let mut report = SeedReport {
        products: 0,
        prices: 0,
        archived: 0,
        without_price: 0,
        events: 0,
    };
    let live = tx.livemode();
    for i in 0..spec.products as usize {
        let now = tx.now;
        let mut product = Product {
            id: ids::product(),
            created: now,
            updated: now,
            name: format!("Sandbox product {}", i + 1),
            active: i % 7 != 3,
            description: (i % 2 == 0).then(|| format!("Seeded product number {}", i + 1)),
            default_price: None,
            images: Vec::new(),
            metadata: BTreeMap::from([("seed_index".to_owned(), i.to_string())]),
            shippable: None,
            statement_descriptor: None,
            unit_label: None,
            url: None,
            tax_code: None,
            kind: "service".into(),
        };
        let mut prices = Vec::new();
        if i % 10 != 9 {
            let recurring = (i % 3 == 1).then(|| Recurring {
                trial_period_days: None,
                interval: if i % 6 == 4 { "year" } else { "month" }.into(),
                interval_count: 1,
            });
            let amount = i64::try_from((i % 20 + 1) * 250).unwrap_or(500);
            let spec_for = |currency: &str, recurring: Option<Recurring>| PriceSpec {
                currency: currency.to_owned(),
                unit_amount: amount,
                recurring,
                tax_behavior: "unspecified".into(),
            };
            let first = new_price(
                spec_for(&currencies[i % currencies.len()], recurring.clone()),
                &product.id,
                now,
            );
            product.default_price = Some(first.id.clone());
            prices.push(first);
            if i % 4 == 0 && currencies.len() > 1 {
                prices.push(new_price(
                    spec_for(&currencies[(i + 1) % currencies.len()], recurring.clone()),
                    &product.id,
                    now,
                ));
            }
            if i % 9 == 0 {
                let mut old = new_price(spec_for(&currencies[0], recurring), &product.id, now);
                old.active = false;
                old.nickname = Some("Old price".into());
                prices.push(old);
            }
        } else {
            report.without_price += 1;
        }
        if !product.active {
            report.archived += 1;
        }
        report.products += 1;
        report.prices += u32::try_from(prices.len()).unwrap_or(0);
        let mut prices = prices.into_iter();
        insert_product(tx, scope, product, prices.next(), spec.emit_events);
        for price in prices {
            let json = shapes::price(&price, live);
            let seq = tx.st.seq();
            tx.catalog(scope).prices.insert(seq, price);
            if spec.emit_events {
                tx.emit("price.created", scope, json, None);
            }
        }
    }
    report.events = u32::try_from(tx.events.len() - events_before).unwrap_or(u32::MAX);
    Ok(report)
}
