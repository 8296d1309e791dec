//! The customer portal, from Stripe's "Customer portal" integration guide and the API reference
//! of `billing_portal.configuration` and `billing_portal.session`:
//! `POST/GET /v1/billing_portal/configurations[/{id}]`, `POST /v1/billing_portal/sessions`, and
//! the hosted portal page the session's `url` opens (`/p/session/{secret}`).
//!
//! - A configuration says what customers may do: update their card (`payment_method_update`),
//!   see their invoices (`invoice_history`), cancel (`subscription_cancel`, `mode`
//!   `at_period_end` or `immediately`, optional reasons), switch plan (`subscription_update`,
//!   between the `products[].prices` listed, with its `proration_behavior`). Products and prices
//!   must be the account's, the prices recurring prices of their product.
//! - A session is for one customer of the account; without `configuration` Stripe uses the
//!   account's default configuration, saved in the Dashboard: the sandbox has none, so
//!   `configuration` is needed. `return_url` falls back to the configuration's
//!   `default_return_url`. `flow_data` opens the page on one task.
//! - What the customer does on the page goes through the same rules as the API
//!   (`customer.updated`, `customer.subscription.updated` / `.deleted`, `invoice.*`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::Call;
use super::cards::{self, Behavior};
use super::checkout::{self, Ctx};
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::html::{self, escape};
use super::ids;
use super::money;
use super::plans;
use super::rules;
use super::shapes;
use super::state::{App, PageRequest, Tx, keyed_by_id, previous_attributes};
use super::subscriptions as subs;
use crate::Mode;

const CANCEL_REASONS: &[&str] = &[
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct PortalProduct {
    pub product: String,
    pub prices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Features {
    pub customer_update: bool,
    pub customer_update_allowed: Vec<String>,
    pub invoice_history: bool,
    pub payment_method_update: bool,
    pub cancel: bool,
    /// `at_period_end` or `immediately`.
    pub cancel_mode: String,
    pub cancel_proration: String,
    pub cancel_reasons: bool,
    pub cancel_reason_options: Vec<String>,
    pub update: bool,
    pub update_allowed: Vec<String>,
    pub update_products: Vec<PortalProduct>,
    pub update_proration: String,
    /// `decreasing_item_amount`, `shortening_interval`: such changes wait for the period's end.
    pub schedule_at_period_end: Vec<String>,
}

impl Default for Features {
    fn default() -> Features {
        Features {
            customer_update: false,
            customer_update_allowed: Vec::new(),
            invoice_history: false,
            payment_method_update: false,
            cancel: false,
            cancel_mode: "at_period_end".into(),
            cancel_proration: "none".into(),
            cancel_reasons: false,
            cancel_reason_options: Vec::new(),
            update: false,
            update_allowed: Vec::new(),
            update_products: Vec::new(),
            update_proration: "none".into(),
            schedule_at_period_end: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PortalConfiguration {
    /// `bpc_…`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub active: bool,
    pub name: Option<String>,
    pub headline: Option<String>,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    pub default_return_url: Option<String>,
    pub login_page: bool,
    pub metadata: BTreeMap<String, String>,
    pub features: Features,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PortalSession {
    /// `bps_…`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub customer: String,
    pub configuration: String,
    pub return_url: Option<String>,
    /// The secret in the session's URL.
    pub secret: String,
    /// `flow_data`: its type and subscription, and the confirm flow's items (`id`, `price`).
    pub flow: Option<(String, Option<String>)>,
    #[serde(default)]
    pub flow_items: Vec<(Option<String>, Option<String>)>,
    pub locale: Option<String>,
}

keyed_by_id!(PortalConfiguration, PortalSession);

// ---- shapes ----

pub(crate) fn configuration_json(c: &PortalConfiguration, live: bool) -> Value {
    let f = &c.features;
    json!({
        "id": c.id,
        "object": "billing_portal.configuration",
        "active": c.active,
        "application": null,
        "business_profile": {
            "headline": c.headline,
            "privacy_policy_url": c.privacy_policy_url,
            "terms_of_service_url": c.terms_of_service_url,
        },
        "created": c.created,
        "default_return_url": c.default_return_url,
        "features": {
            "customer_update": {
                "allowed_updates": f.customer_update_allowed,
                "enabled": f.customer_update,
            },
            "invoice_history": { "enabled": f.invoice_history },
            "payment_method_update": {
                "enabled": f.payment_method_update,
                "payment_method_configuration": null,
            },
            "subscription_cancel": {
                "cancellation_reason": {
                    "enabled": f.cancel_reasons,
                    "options": f.cancel_reason_options,
                },
                "enabled": f.cancel,
                "mode": f.cancel_mode,
                "proration_behavior": f.cancel_proration,
            },
            "subscription_update": {
                "billing_cycle_anchor": null,
                "default_allowed_updates": f.update_allowed,
                "enabled": f.update,
                "products": f.update_products.iter().map(|p| json!({
                    "adjustable_quantity": { "enabled": false, "maximum": null, "minimum": 1 },
                    "prices": p.prices,
                    "product": p.product,
                })).collect::<Vec<_>>(),
                "proration_behavior": f.update_proration,
                "schedule_at_period_end": {
                    "conditions": f.schedule_at_period_end.iter()
                        .map(|t| json!({ "type": t })).collect::<Vec<_>>(),
                },
                "trial_update_behavior": "end_trial",
            },
        },
        "is_default": false,
        "livemode": live,
        "login_page": {
            "enabled": c.login_page,
            "url": null,
        },
        "metadata": c.metadata,
        "name": c.name,
        "updated": c.updated,
    })
}

fn session_url(base_url: &str, s: &PortalSession) -> String {
    format!("{base_url}p/session/{}", s.secret)
}

pub(crate) fn session_json(s: &PortalSession, live: bool, base_url: &str) -> Value {
    let flow = s.flow.as_ref().map(|(kind, sub)| {
        let mut f = json!({
            "after_completion": {
                "hosted_confirmation": null,
                "redirect": null,
                "type": "portal_homepage",
            },
            "customer_update": null,
            "subscription_cancel": null,
            "subscription_update": null,
            "subscription_update_confirm": null,
            "type": kind,
        });
        match kind.as_str() {
            "subscription_cancel" => {
                f["subscription_cancel"] = json!({ "retention": null, "subscription": sub });
            }
            "subscription_update" => {
                f["subscription_update"] = json!({ "subscription": sub });
            }
            "subscription_update_confirm" => {
                let items: Vec<Value> = s
                    .flow_items
                    .iter()
                    .map(|(id, price)| json!({ "id": id, "price": price, "quantity": null }))
                    .collect();
                f["subscription_update_confirm"] =
                    json!({ "discounts": null, "items": items, "subscription": sub });
            }
            _ => {}
        }
        f
    });
    json!({
        "id": s.id,
        "object": "billing_portal.session",
        "configuration": s.configuration,
        "created": s.created,
        "customer": s.customer,
        "customer_account": null,
        "flow": flow,
        "livemode": live,
        "locale": s.locale,
        "on_behalf_of": null,
        "return_url": s.return_url,
        "url": session_url(base_url, s),
    })
}

// ---- parameters ----

fn enabled(m: &Params<'_>) -> ApiResult<bool> {
    m.bool("enabled")?
        .ok_or_else(|| ApiError::missing(&m.name("enabled")))
}

fn subset(param: &str, values: Vec<String>, allowed: &[&str]) -> ApiResult<Vec<String>> {
    for v in &values {
        rules::one_of(param, v, allowed)?;
    }
    Ok(values)
}

/// Reads `features[…]` onto `f` (create: all of them; update: the ones sent).
fn read_features(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    p: &Params<'_>,
    f: &mut Features,
) -> ApiResult<()> {
    let Some(features) = p.map(
        "features",
        &[
            "customer_update",
            "invoice_history",
            "payment_method_update",
            "subscription_cancel",
            "subscription_update",
        ],
    )?
    else {
        return Ok(());
    };
    if let Some(m) = features.map("customer_update", &["allowed_updates", "enabled"])? {
        if let Some(e) = m.bool("enabled")? {
            f.customer_update = e;
        }
        if let Some(a) = m.strings("allowed_updates")? {
            f.customer_update_allowed = subset(
                &m.name("allowed_updates"),
                a,
                &["address", "email", "name", "phone", "shipping", "tax_id"],
            )?;
        }
    }
    if let Some(m) = features.map("invoice_history", &["enabled"])? {
        f.invoice_history = enabled(&m)?;
    }
    if let Some(m) = features.map(
        "payment_method_update",
        &["enabled", "payment_method_configuration"],
    )? {
        if m.contains("payment_method_configuration") {
            return Err(ApiError::bad_param(
                &m.name("payment_method_configuration"),
                "The chatpay sandbox does not model payment method configurations.",
            ));
        }
        f.payment_method_update = enabled(&m)?;
    }
    if let Some(m) = features.map(
        "subscription_cancel",
        &[
            "cancellation_reason",
            "enabled",
            "mode",
            "proration_behavior",
        ],
    )? {
        if let Some(e) = m.bool("enabled")? {
            f.cancel = e;
        }
        if let Some(mode) = m.str("mode")? {
            f.cancel_mode =
                rules::one_of(&m.name("mode"), mode, &["at_period_end", "immediately"])?.to_owned();
        }
        if let Some(pb) = m.str("proration_behavior")? {
            f.cancel_proration = rules::one_of(
                &m.name("proration_behavior"),
                pb,
                &["always_invoice", "create_prorations", "none"],
            )?
            .to_owned();
        }
        if let Some(r) = m.map("cancellation_reason", &["enabled", "options"])? {
            f.cancel_reasons = enabled(&r)?;
            if let Some(o) = r.strings("options")? {
                f.cancel_reason_options = subset(&r.name("options"), o, CANCEL_REASONS)?;
            }
        }
    }
    if let Some(m) = features.map(
        "subscription_update",
        &[
            "billing_cycle_anchor",
            "default_allowed_updates",
            "enabled",
            "products",
            "proration_behavior",
            "schedule_at_period_end",
            "trial_update_behavior",
        ],
    )? {
        if let Some(e) = m.bool("enabled")? {
            f.update = e;
        }
        if let Some(a) = m.strings("default_allowed_updates")? {
            f.update_allowed = subset(
                &m.name("default_allowed_updates"),
                a,
                &["price", "promotion_code", "quantity"],
            )?;
        }
        if let Some(pb) = m.str("proration_behavior")? {
            f.update_proration = rules::one_of(
                &m.name("proration_behavior"),
                pb,
                &["always_invoice", "create_prorations", "none"],
            )?
            .to_owned();
        }
        if let Some(s) = m.map("schedule_at_period_end", &["conditions"])? {
            let mut conditions = Vec::new();
            for c in s.items("conditions")?.unwrap_or_default() {
                c.only(&["type"])?;
                let t = c.required("type")?;
                conditions.push(
                    rules::one_of(
                        &c.name("type"),
                        t,
                        &["decreasing_item_amount", "shortening_interval"],
                    )?
                    .to_owned(),
                );
            }
            f.schedule_at_period_end = conditions;
        }
        if let Some(products) = m.items("products")? {
            if products.len() > 10 {
                return Err(ApiError::bad_param(
                    &m.name("products"),
                    "You can specify at most 10 products.",
                ));
            }
            let mut out = Vec::new();
            for pp in products {
                pp.only(&["adjustable_quantity", "prices", "product"])?;
                let product = pp.required("product")?.to_owned();
                if tx.catalog(scope).products.get(&product).is_none() {
                    return Err(ApiError::no_such_param(
                        "product",
                        &product,
                        &pp.name("product"),
                    ));
                }
                let prices = pp
                    .strings("prices")?
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| ApiError::missing(&pp.name("prices")))?;
                let mut intervals = Vec::new();
                for price in &prices {
                    let Some(pr) = tx.catalog(scope).prices.get(price).cloned() else {
                        return Err(ApiError::no_such_param("price", price, &pp.name("prices")));
                    };
                    if pr.product != product {
                        return Err(ApiError::bad_param(
                            &pp.name("prices"),
                            format!("The price {price} does not belong to the product {product}."),
                        ));
                    }
                    let Some(r) = &pr.recurring else {
                        return Err(ApiError::bad_param(
                            &pp.name("prices"),
                            format!("The price {price} is not a recurring price."),
                        ));
                    };
                    let key = (r.interval.clone(), r.interval_count, pr.currency.clone());
                    if intervals.contains(&key) {
                        return Err(ApiError::bad_param(
                            &pp.name("prices"),
                            "A product can only have one price per currency and billing interval.",
                        ));
                    }
                    intervals.push(key);
                }
                out.push(PortalProduct { product, prices });
            }
            f.update_products = out;
        }
        for k in ["billing_cycle_anchor", "trial_update_behavior"] {
            if m.contains(k) {
                return Err(ApiError::bad_param(
                    &m.name(k),
                    format!("The chatpay sandbox does not model `{k}` in the portal."),
                ));
            }
        }
    }
    if f.update && f.update_products.is_empty() {
        return Err(ApiError::bad_param(
            "features[subscription_update][products]",
            "To enable subscription updates, you must provide at least one product and its \
             prices.",
        ));
    }
    Ok(())
}

fn read_common(p: &Params<'_>, c: &mut PortalConfiguration) -> ApiResult<()> {
    if let Some(b) = p.map(
        "business_profile",
        &["headline", "privacy_policy_url", "terms_of_service_url"],
    )? {
        if let Some(h) = b.text("headline")? {
            if h.chars().count() > 60 {
                return Err(ApiError::bad_param(
                    &b.name("headline"),
                    "The headline can be at most 60 characters.",
                ));
            }
            c.headline = Some(h).filter(|h| !h.is_empty());
        }
        for (k, slot) in [
            ("privacy_policy_url", &mut c.privacy_policy_url),
            ("terms_of_service_url", &mut c.terms_of_service_url),
        ] {
            if let Some(u) = b.str(k)? {
                *slot = if u.is_empty() {
                    None
                } else {
                    Some(rules::url(&b.name(k), u)?)
                };
            }
        }
    }
    if let Some(u) = p.str("default_return_url")? {
        c.default_return_url = if u.is_empty() {
            None
        } else {
            Some(rules::url("default_return_url", u)?)
        };
    }
    if let Some(l) = p.map("login_page", &["enabled"])? {
        c.login_page = enabled(&l)?;
    }
    if let Some(n) = p.text("name")? {
        c.name = Some(n).filter(|n| !n.is_empty());
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut c.metadata, "metadata")?;
    }
    Ok(())
}

// ---- the API ----

pub(crate) fn create_configuration(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "business_profile",
        "default_return_url",
        "expand",
        "features",
        "login_page",
        "metadata",
        "name",
    ])?;
    if !p.contains("features") {
        return Err(ApiError::missing("features"));
    }
    let now = tx.now;
    let mut c = PortalConfiguration {
        id: format!("bpc_1{}", ids::random(23)),
        account: call.scope.map(str::to_owned),
        created: now,
        updated: now,
        active: true,
        name: None,
        headline: None,
        privacy_policy_url: None,
        terms_of_service_url: None,
        default_return_url: None,
        login_page: false,
        metadata: BTreeMap::new(),
        features: Features::default(),
    };
    read_common(p, &mut c)?;
    read_features(tx, call.scope, p, &mut c.features)?;
    let live = tx.livemode();
    let out = configuration_json(&c, live);
    let seq = tx.st.seq();
    tx.ms().billing.portal_configurations.insert(seq, c);
    tx.emit(
        "billing_portal.configuration.created",
        call.scope,
        out.clone(),
        None,
    );
    Ok(out)
}

fn scoped_configuration(
    tx: &mut Tx<'_>,
    scope: Option<&str>,
    id: &str,
    param: Option<&str>,
) -> ApiResult<PortalConfiguration> {
    tx.ms()
        .billing
        .portal_configurations
        .get(id)
        .filter(|c| c.account.as_deref() == scope)
        .cloned()
        .ok_or_else(|| match param {
            Some(param) => ApiError::no_such_param("billing_portal.configuration", id, param),
            None => ApiError::no_such("billing_portal.configuration", id, "configuration"),
        })
}

pub(crate) fn update_configuration(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "active",
        "business_profile",
        "default_return_url",
        "expand",
        "features",
        "login_page",
        "metadata",
        "name",
    ])?;
    let current = scoped_configuration(tx, call.scope, id, None)?;
    let mut next = current.clone();
    read_common(p, &mut next)?;
    read_features(tx, call.scope, p, &mut next.features)?;
    if let Some(a) = p.bool("active")? {
        next.active = a;
    }
    let live = tx.livemode();
    let before = configuration_json(&current, live);
    if configuration_json(&next, live) != before {
        next.updated = tx.now;
    }
    let after = configuration_json(&next, live);
    if let Some(slot) = tx.ms().billing.portal_configurations.get_mut(id) {
        *slot = next;
    }
    if let Some(prev) = previous_attributes(&before, &after, &["updated"]) {
        tx.emit(
            "billing_portal.configuration.updated",
            call.scope,
            after.clone(),
            Some(prev),
        );
    }
    Ok(after)
}

pub(crate) fn retrieve_configuration(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let c = scoped_configuration(tx, call.scope, id, None)?;
    Ok(configuration_json(&c, tx.livemode()))
}

pub(crate) fn list_configurations(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "active",
        "ending_before",
        "expand",
        "is_default",
        "limit",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let active = p.bool("active")?;
    let is_default = p.bool("is_default")?;
    let live = tx.livemode();
    let page =
        tx.ms()
            .billing
            .portal_configurations
            .page(&req, "billing_portal.configuration", |c| {
                c.account.as_deref() == call.scope
                    && active.is_none_or(|a| c.active == a)
                    && is_default != Some(true)
            })?;
    let data = page
        .items
        .iter()
        .map(|c| configuration_json(c, live))
        .collect();
    Ok(shapes::list(
        "/v1/billing_portal/configurations",
        data,
        page.has_more,
    ))
}

pub(crate) fn create_session(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "configuration",
        "customer",
        "expand",
        "flow_data",
        "locale",
        "on_behalf_of",
        "return_url",
    ])?;
    if p.contains("on_behalf_of") {
        return Err(ApiError::bad_param(
            "on_behalf_of",
            "The chatpay sandbox does not model `on_behalf_of` portal sessions.",
        ));
    }
    let customer = p.required("customer")?.to_owned();
    let known = tx
        .ms()
        .billing
        .customers
        .get(&customer)
        .is_some_and(|c| c.account.as_deref() == call.scope);
    if !known {
        return Err(ApiError::no_such_param("customer", &customer, "customer"));
    }
    let live = tx.livemode();
    let config = match p.str("configuration")? {
        Some(id) => scoped_configuration(tx, call.scope, id, Some("configuration"))?,
        None => {
            let mode = if live { "live" } else { "test" };
            return Err(ApiError::invalid(format!(
                "No configuration provided and your {mode} mode default configuration has not \
                 been created. Provide a configuration or create your default by saving your \
                 customer portal settings in {mode} mode at \
                 https://dashboard.stripe.com/{mode}/settings/billing/portal."
            ))
            .param("configuration"));
        }
    };
    if !config.active {
        return Err(ApiError::bad_param(
            "configuration",
            format!(
                "The configuration {} is inactive and can't be used to create portal sessions.",
                config.id
            ),
        ));
    }
    let return_url = match p.str("return_url")? {
        Some(u) => Some(rules::url("return_url", u)?),
        None => config.default_return_url.clone(),
    };
    let locale = p.text("locale")?;
    let mut flow = None;
    let mut flow_items = Vec::new();
    if let Some(f) = p.map(
        "flow_data",
        &[
            "after_completion",
            "subscription_cancel",
            "subscription_update",
            "subscription_update_confirm",
            "type",
        ],
    )? {
        let kind = rules::one_of(
            &f.name("type"),
            f.required("type")?,
            &[
                "payment_method_update",
                "subscription_cancel",
                "subscription_update",
                "subscription_update_confirm",
            ],
        )?
        .to_owned();
        let feature_on = match kind.as_str() {
            "payment_method_update" => config.features.payment_method_update,
            "subscription_cancel" => config.features.cancel,
            _ => config.features.update,
        };
        if !feature_on {
            return Err(ApiError::bad_param(
                &f.name("type"),
                format!(
                    "The `{kind}` flow can only be used when the matching feature is enabled in \
                     the portal configuration {}.",
                    config.id
                ),
            ));
        }
        let sub = if kind == "payment_method_update" {
            None
        } else {
            let m = f
                .map(&kind, &["items", "discounts", "retention", "subscription"])?
                .ok_or_else(|| ApiError::missing(&f.name(&kind)))?;
            let sub = m.required("subscription")?.to_owned();
            let ok = tx.ms().billing.subscriptions.get(&sub).is_some_and(|s| {
                s.account.as_deref() == call.scope && s.customer == customer && !s.status.ended()
            });
            if !ok {
                return Err(ApiError::no_such_param(
                    "subscription",
                    &sub,
                    &m.name("subscription"),
                ));
            }
            if kind == "subscription_update_confirm" {
                for it in m.items("items")?.unwrap_or_default() {
                    it.only(&["id", "price", "quantity"])?;
                    flow_items.push((
                        it.str("id")?.map(str::to_owned),
                        it.str("price")?.map(str::to_owned),
                    ));
                }
                if flow_items.is_empty() {
                    return Err(ApiError::missing(&m.name("items")));
                }
            }
            Some(sub)
        };
        flow = Some((kind, sub));
    }
    let s = PortalSession {
        id: format!("bps_1{}", ids::random(23)),
        account: call.scope.map(str::to_owned),
        created: tx.now,
        customer,
        configuration: config.id.clone(),
        return_url,
        secret: format!("{}_{}", if live { "live" } else { "test" }, ids::random(32)),
        flow,
        flow_items,
        locale,
    };
    let out = session_json(&s, live, Ctx::of(call).base_url);
    let seq = tx.st.seq();
    tx.ms().billing.portal_sessions.insert(seq, s);
    tx.emit(
        "billing_portal.session.created",
        call.scope,
        out.clone(),
        None,
    );
    Ok(out)
}

// ---- the hosted portal page ----

fn find_session(app: &App, secret: &str) -> Option<(Mode, PortalSession, PortalConfiguration)> {
    let st = app.lock();
    [Mode::Test, Mode::Live].into_iter().find_map(|m| {
        let b = &st.mode(m).billing;
        let s = b
            .portal_sessions
            .iter()
            .find(|s| s.secret == secret)?
            .clone();
        let c = b.portal_configurations.get(&s.configuration)?.clone();
        Some((m, s, c))
    })
}

fn gone() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "This link has expired",
        "Portal sessions are created by the business: ask them for a new link.",
    )
}

fn day(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%B %-d, %Y")
        .to_string()
}

fn portal_page(
    app: &App,
    mode: Mode,
    s: &PortalSession,
    c: &PortalConfiguration,
    note: Option<&str>,
) -> String {
    let st = app.lock();
    let ms = st.mode(mode);
    let f = &c.features;
    let base = format!("/p/session/{}", s.secret);
    let mut body = String::new();
    if let Some(h) = &c.headline {
        body.push_str(&format!("<p class=\"muted\">{}</p>", escape(h)));
    }
    if let Some(n) = note {
        body.push_str(&format!(
            "<div class=\"card\" role=\"status\" id=\"notice\">{}</div>",
            escape(n)
        ));
    }
    let email = ms
        .billing
        .customers
        .get(&s.customer)
        .and_then(|c| c.email.clone())
        .unwrap_or_default();
    body.push_str(&format!(
        "<div class=\"card\"><h1>Manage your billing</h1><p class=\"muted\">{}{}</p></div>",
        escape(&email),
        if mode == Mode::Test {
            " <span class=\"test\">TEST MODE</span>"
        } else {
            ""
        }
    ));
    let only = s.flow.as_ref().map(|(k, _)| k.as_str());
    let flow_sub = s.flow.as_ref().and_then(|(_, sub)| sub.clone());
    let subs: Vec<_> = ms
        .billing
        .subscriptions
        .iter()
        .filter(|x| x.customer == s.customer && !x.status.ended())
        .filter(|x| flow_sub.as_ref().is_none_or(|f| *f == x.id))
        .cloned()
        .collect();
    if only.is_none_or(|k| k != "payment_method_update") {
        for sub in &subs {
            let price = sub.items.first().map(|i| i.price.clone());
            let plan = sub
                .items
                .iter()
                .map(subs::item_description)
                .collect::<Vec<_>>()
                .join(", ");
            let when = if sub.cancel_at_period_end {
                format!("Cancels on {}", day(sub.current_period_end))
            } else {
                format!("Renews on {}", day(sub.current_period_end))
            };
            body.push_str(&format!(
                "<div class=\"card\" id=\"{id}\"><h2>Current plan</h2><p>{plan}</p>\
                 <p class=\"muted\">{status} · {when}</p>",
                id = escape(&sub.id),
                plan = escape(&plan),
                status = escape(sub.status.as_str()),
                when = escape(&when),
            ));
            if f.update && only.is_none_or(|k| k.starts_with("subscription_update")) {
                let mut options = String::new();
                for pp in &f.update_products {
                    for pid in &pp.prices {
                        let Some(p) = ms
                            .catalogs
                            .get(sub.account.as_deref().unwrap_or(super::state::PLATFORM))
                            .and_then(|cat| cat.prices.get(pid).cloned())
                        else {
                            continue;
                        };
                        if price.as_ref().is_some_and(|cur| cur.id == p.id) || !p.active {
                            continue;
                        }
                        let name = ms
                            .catalogs
                            .get(sub.account.as_deref().unwrap_or(super::state::PLATFORM))
                            .and_then(|cat| cat.products.get(&p.product).map(|x| x.name.clone()))
                            .unwrap_or_default();
                        let every = p
                            .recurring
                            .as_ref()
                            .map(|r| r.interval.clone())
                            .unwrap_or_default();
                        options.push_str(&format!(
                            "<option value=\"{}\">{} · {} / {}</option>",
                            escape(&p.id),
                            escape(&name),
                            escape(&money::format(p.unit_amount, &p.currency)),
                            escape(&every)
                        ));
                    }
                }
                if !options.is_empty() {
                    body.push_str(&format!(
                        "<form method=\"post\" action=\"{base}/update\">\
                         <input type=\"hidden\" name=\"subscription\" value=\"{id}\">\
                         <label for=\"price\">Switch plan</label>\
                         <select id=\"price\" name=\"price\">{options}</select>\
                         <p><button class=\"primary\" id=\"update\">Update plan</button></p></form>",
                        id = escape(&sub.id)
                    ));
                }
            }
            if f.cancel
                && !sub.cancel_at_period_end
                && only.is_none_or(|k| k == "subscription_cancel")
            {
                let mut reasons = String::new();
                if f.cancel_reasons {
                    reasons.push_str("<label for=\"reason\">Why are you cancelling?</label><select id=\"reason\" name=\"reason\"><option value=\"\"></option>");
                    for r in &f.cancel_reason_options {
                        reasons.push_str(&format!("<option value=\"{0}\">{0}</option>", escape(r)));
                    }
                    reasons.push_str("</select>");
                }
                body.push_str(&format!(
                    "<form method=\"post\" action=\"{base}/cancel\">\
                     <input type=\"hidden\" name=\"subscription\" value=\"{id}\">{reasons}\
                     <p><button class=\"secondary\" id=\"cancel\">Cancel plan</button></p></form>",
                    id = escape(&sub.id)
                ));
            }
            body.push_str("</div>");
        }
    }
    if f.payment_method_update && only.is_none_or(|k| k == "payment_method_update") {
        let card = ms
            .billing
            .customers
            .get(&s.customer)
            .and_then(|c| c.default_card.clone())
            .map(|c| format!("{} •••• {}", c.card.brand, c.card.last4))
            .unwrap_or_else(|| "No card on file".into());
        body.push_str(&format!(
            "<div class=\"card\"><h2>Payment method</h2><p>{}</p>\
             <form method=\"post\" action=\"{base}/card\">\
             <label for=\"cardNumber\">Card number</label><input type=\"text\" id=\"cardNumber\" name=\"cardNumber\" autocomplete=\"cc-number\">\
             <div class=\"row\"><div><label for=\"cardExpiry\">Expiry (MM / YY)</label><input type=\"text\" id=\"cardExpiry\" name=\"cardExpiry\"></div>\
             <div><label for=\"cardCvc\">CVC</label><input type=\"text\" id=\"cardCvc\" name=\"cardCvc\"></div></div>\
             <label for=\"billingName\">Name on card</label><input type=\"text\" id=\"billingName\" name=\"billingName\">\
             <p><button class=\"primary\" id=\"save-card\">Update card</button></p></form></div>",
            escape(&card)
        ));
    }
    if f.invoice_history && only.is_none() {
        let mut rows = String::new();
        for i in ms
            .sales
            .invoices
            .iter()
            .filter(|i| i.customer.as_deref() == Some(s.customer.as_str()))
            .filter(|i| i.status != super::sales::InvoiceStatus::Draft)
        {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/invoices/{}\">View</a></td></tr>",
                escape(&day(i.created)),
                escape(&money::format(i.total.max(0), &i.currency)),
                escape(i.status.as_str()),
                escape(&i.id)
            ));
        }
        body.push_str(&format!(
            "<div class=\"card\"><h2>Invoice history</h2><table id=\"invoices\">\
             <tr><th>Date</th><th>Amount</th><th>Status</th><th></th></tr>{rows}</table></div>"
        ));
    }
    if let Some(u) = &s.return_url {
        body.push_str(&format!(
            "<p><a id=\"return\" href=\"{}\">← Return to {}</a></p>",
            escape(u),
            escape(
                &s.account
                    .as_deref()
                    .and_then(|a| ms.accounts.get(a).map(|x| x.public_name()))
                    .unwrap_or_else(|| "the business".into())
            )
        ));
    }
    body
}

fn show_page(app: &App, secret: &str, status: StatusCode, note: Option<&str>) -> Response {
    match find_session(app, secret) {
        Some((mode, s, c)) => html::respond(
            status,
            "Billing portal",
            &portal_page(app, mode, &s, &c, note),
        ),
        None => gone(),
    }
}

pub(crate) async fn show(State(app): State<App>, Path(secret): Path<String>) -> Response {
    show_page(&app, &secret, StatusCode::OK, None)
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A subscription of the session's customer that the page may act on.
fn own_sub(app: &App, mode: Mode, s: &PortalSession, id: &str) -> bool {
    let st = app.lock();
    st.mode(mode)
        .billing
        .subscriptions
        .get(id)
        .is_some_and(|x| x.customer == s.customer && x.account == s.account && !x.status.ended())
        && s.flow
            .as_ref()
            .and_then(|(_, f)| f.as_deref())
            .is_none_or(|f| f == id)
}

pub(crate) async fn update_card(
    State(app): State<App>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, s, c)) = find_session(&app, &secret) else {
        return gone();
    };
    if !c.features.payment_method_update {
        return show_page(
            &app,
            &secret,
            StatusCode::FORBIDDEN,
            Some("Updating the card is not enabled."),
        );
    }
    let f = form(&body);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let checked = cards::check(
        &get("cardNumber"),
        &get("cardExpiry"),
        &get("cardCvc"),
        app.now(),
    )
    .and_then(|card| {
        if get("billingName").trim().is_empty() {
            Err("Your cardholder name is incomplete.")
        } else {
            Ok(card)
        }
    });
    let card = match checked {
        Ok(card) => card,
        Err(m) => return show_page(&app, &secret, StatusCode::BAD_REQUEST, Some(m)),
    };
    let result = app.transact(mode, None, |tx| {
        let ctx = Ctx::app(&app);
        let behavior = cards::behavior_in(&card, tx.livemode());
        if let Behavior::Decline(d) = &behavior {
            return Err(d.message.to_owned());
        }
        let saved = subs::saved_card(
            ids::payment_method(),
            checkout::card_details(&card),
            &behavior,
            tx.now,
        );
        subs::set_default_card(tx, &s.customer, saved.clone());
        let theirs: Vec<String> = tx
            .ms()
            .billing
            .subscriptions
            .iter()
            .filter(|x| x.customer == s.customer && !x.status.ended())
            .map(|x| x.id.clone())
            .collect();
        for id in theirs {
            let pm = saved.id.clone();
            subs::update_subscription(tx, ctx, &id, |x| x.default_payment_method = Some(pm));
        }
        Ok(())
    });
    match result {
        Ok(()) => show_page(
            &app,
            &secret,
            StatusCode::OK,
            Some("Your card was updated."),
        ),
        Err(m) => show_page(&app, &secret, StatusCode::PAYMENT_REQUIRED, Some(&m)),
    }
}

pub(crate) async fn cancel(
    State(app): State<App>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, s, c)) = find_session(&app, &secret) else {
        return gone();
    };
    let f = form(&body);
    let sub = f.get("subscription").cloned().unwrap_or_default();
    if !c.features.cancel || !own_sub(&app, mode, &s, &sub) {
        return show_page(
            &app,
            &secret,
            StatusCode::FORBIDDEN,
            Some("This plan can't be cancelled here."),
        );
    }
    let reason = f
        .get("reason")
        .filter(|r| c.features.cancel_reason_options.contains(r))
        .cloned();
    let immediately = c.features.cancel_mode == "immediately";
    let _ = app.transact(mode, None, |tx| -> Result<(), ()> {
        let ctx = Ctx::app(&app);
        if immediately {
            subs::cancel_now(tx, ctx, &sub, "cancellation_requested");
        } else {
            let now = tx.now;
            subs::update_subscription(tx, ctx, &sub, |x| {
                x.cancel_at_period_end = true;
                x.cancel_at = Some(x.current_period_end);
                x.canceled_at = Some(now);
                x.cancellation_reason = Some("cancellation_requested".into());
                x.cancellation_feedback = reason.clone();
            });
        }
        Ok(())
    });
    let note = if immediately {
        "Your plan was cancelled."
    } else {
        "Your plan will be cancelled at the end of the billing period."
    };
    show_page(&app, &secret, StatusCode::OK, Some(note))
}

pub(crate) async fn update_plan(
    State(app): State<App>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Response {
    let Some((mode, s, c)) = find_session(&app, &secret) else {
        return gone();
    };
    let f = form(&body);
    let sub = f.get("subscription").cloned().unwrap_or_default();
    let price = f.get("price").cloned().unwrap_or_default();
    let allowed = c.features.update
        && c.features
            .update_products
            .iter()
            .any(|p| p.prices.contains(&price));
    if !allowed || !own_sub(&app, mode, &s, &sub) {
        return show_page(
            &app,
            &secret,
            StatusCode::FORBIDDEN,
            Some("This plan can't be chosen here."),
        );
    }
    let behavior = c.features.update_proration.clone();
    let conditions = c.features.schedule_at_period_end.clone();
    let result = app.transact(mode, None, |tx| -> ApiResult<&'static str> {
        let ctx = Ctx::app(&app);
        let Some(current) = tx.ms().billing.subscriptions.get(&sub).cloned() else {
            return Err(ApiError::invalid("gone"));
        };
        let Some(first) = current.items.first().cloned() else {
            return Err(ApiError::invalid("no items"));
        };
        let (p, name) = plans::recurring_price(tx, s.account.as_deref(), &price, "price")?;
        let mut items = current.items.clone();
        items[0].price = p;
        items[0].product_name = name;
        plans::check_items(&items, "price")?;
        if super::schedules::waits_for_period_end(&conditions, &first, &items[0]) {
            super::schedules::change_at_period_end(tx, ctx, &sub, items)?;
            return Ok("Your plan will change at the end of the billing period.");
        }
        let now = plans::sub_now(tx, &current);
        let behavior = plans::Proration::parse("proration_behavior", Some(&behavior))?;
        let change = plans::plan(&current, items, behavior, now);
        plans::apply(tx, ctx, &sub, change);
        Ok("Your plan was updated.")
    });
    match result {
        Ok(note) => show_page(&app, &secret, StatusCode::OK, Some(note)),
        Err(e) => show_page(&app, &secret, StatusCode::BAD_REQUEST, Some(&e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_configuration_turns_everything_off() {
        let f = Features::default();
        assert!(!f.cancel && !f.update && !f.invoice_history && !f.payment_method_update);
        assert_eq!(f.cancel_mode, "at_period_end");
    }
}
