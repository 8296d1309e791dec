//! Subscribers' plans: the billing portal's configuration chatpay keeps for a connected account
//! (which plans a subscriber may switch between, how they may cancel), and which price a
//! seller's "move ana@… to yearly" / "upgrade bo@… to Pro" means. Whether a plan change may
//! happen, and when it takes effect, is [`crate::rules::plan_change`].
//!
//! Pure values and functions: the server reads the stored catalog and settings, asks these, and
//! writes to Stripe what they say.

use serde::{Deserialize, Serialize};

use crate::billing::{Subscription, every};
use crate::catalog::{CatalogProduct, PriceData};
use crate::domain::{Currency, Money};

/// How subscribers may cancel in the billing portal (a project setting, chosen in the chat:
/// "let members cancel at the end of the period only").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// The subscription runs to the end of the paid period, then ends (Stripe's `at_period_end`).
    #[default]
    AtPeriodEnd,
    /// The subscription ends at once (Stripe's `immediately`).
    Immediately,
}

impl CancelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelMode::AtPeriodEnd => "at_period_end",
            CancelMode::Immediately => "immediately",
        }
    }

    pub fn parse(s: &str) -> Option<CancelMode> {
        [CancelMode::AtPeriodEnd, CancelMode::Immediately]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    pub fn in_words(self) -> &'static str {
        match self {
            CancelMode::AtPeriodEnd => {
                "at the end of the period they paid for (access stays until then)"
            }
            CancelMode::Immediately => "right away (access ends when they cancel)",
        }
    }
}

/// One product whose prices subscribers may switch between in the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalProduct {
    pub product: String,
    pub prices: Vec<String>,
}

/// The billing portal's configuration as chatpay wants it for one connected account: card
/// updates, invoice history, cancelling as the project's setting says, and switching between
/// the catalog's plans (prorated; a cheaper plan or a shorter interval waits for the period's
/// end, as Stripe's `schedule_at_period_end` conditions say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalConfig {
    pub cancel_mode: CancelMode,
    /// Empty: switching plans is off (no recurring prices to switch between).
    pub products: Vec<PortalProduct>,
}

/// Stripe's limit on a portal configuration's products.
pub const PORTAL_PRODUCTS: usize = 10;

/// Interval length in days, for comparing plans ("shortening the interval").
fn interval_days(interval: &str, count: i64) -> i64 {
    let unit = match interval {
        "day" => 1,
        "week" => 7,
        "month" => 30,
        _ => 365,
    };
    unit * count.max(1)
}

/// A recurring price a subscriber can be moved to: active, licensed (not metered), with an
/// amount and a currency chatpay knows.
fn is_plan(p: &PriceData) -> bool {
    p.active
        && p.unit_amount.is_some()
        && Currency::parse(&p.currency).is_some()
        && p.recurring
            .as_ref()
            .is_some_and(|r| r.usage_type.as_deref().unwrap_or("licensed") == "licensed")
}

/// The configuration for `catalog` (the stored catalog of the account) and the project's
/// cancellation setting: each active product's plans, one price per interval (the default
/// price first), at most [`PORTAL_PRODUCTS`] products, in the catalog's order.
pub fn portal_config(catalog: &[CatalogProduct], cancel_mode: CancelMode) -> PortalConfig {
    let mut products = Vec::new();
    for c in catalog.iter().filter(|c| c.product.active) {
        let mut prices: Vec<&PriceData> = c.prices.iter().filter(|p| is_plan(p)).collect();
        // The default price first, then by id, so the choice is stable.
        prices.sort_by_key(|p| {
            (
                Some(&p.id) != c.product.default_price.as_ref(),
                p.id.clone(),
            )
        });
        let mut seen: Vec<(String, u64)> = Vec::new();
        let mut chosen = Vec::new();
        for p in prices {
            let r = p
                .recurring
                .as_ref()
                .map(|r| (r.interval.clone(), r.interval_count));
            if let Some(r) = r
                && !seen.contains(&r)
            {
                seen.push(r);
                chosen.push(p.id.clone());
            }
        }
        if !chosen.is_empty() {
            chosen.sort();
            products.push(PortalProduct {
                product: c.product.id.clone(),
                prices: chosen,
            });
        }
        if products.len() == PORTAL_PRODUCTS {
            break;
        }
    }
    PortalConfig {
        cancel_mode,
        products,
    }
}

/// The plan a seller asked to move a subscriber to: a product by name, an interval, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWanted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// `day`, `week`, `month` or `year`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

impl PlanWanted {
    /// What a plan change asks for, as a caller said it: an interval Stripe bills by, and a
    /// product or an interval at least. `Err((field, why))` otherwise.
    pub fn new(
        product: Option<String>,
        interval: Option<String>,
    ) -> Result<PlanWanted, (&'static str, &'static str)> {
        if interval
            .as_deref()
            .is_some_and(|i| !["day", "week", "month", "year"].contains(&i))
        {
            return Err(("interval", "must be day, week, month or year"));
        }
        if product.is_none() && interval.is_none() {
            return Err(("product", "name a product or an interval"));
        }
        Ok(PlanWanted { product, interval })
    }
}

/// A price of the catalog, with its product's name, as a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub price: String,
    pub product: String,
    pub name: String,
    pub amount: i64,
    pub currency: Currency,
    pub interval: String,
    pub interval_count: i64,
}

impl Plan {
    fn of(c: &CatalogProduct, p: &PriceData) -> Option<Plan> {
        let r = p.recurring.as_ref()?;
        Some(Plan {
            price: p.id.clone(),
            product: c.product.id.clone(),
            name: c.product.name.clone(),
            amount: p.unit_amount?,
            currency: Currency::parse(&p.currency)?,
            interval: r.interval.clone(),
            interval_count: i64::try_from(r.interval_count).unwrap_or(1),
        })
    }

    pub fn money(&self) -> Money {
        Money::new(self.amount, self.currency)
    }

    /// "Pro (yearly)".
    pub fn label(&self) -> String {
        format!(
            "{} ({})",
            self.name,
            every(&self.interval, self.interval_count)
        )
    }

    pub fn days(&self) -> i64 {
        interval_days(&self.interval, self.interval_count)
    }
}

fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.to_lowercase()
            .trim()
            .trim_end_matches(" plan")
            .trim_end_matches(" tier")
            .trim()
            .to_owned()
    };
    norm(a) == norm(b)
}

/// The price `wanted` names for subscription `sub`: the named product's plan of the same
/// interval as now (or of the wanted interval, or its default), or the current product's plan
/// of the wanted interval. `None`: the catalog has no such plan.
pub fn wanted_plan(
    catalog: &[CatalogProduct],
    sub: &Subscription,
    wanted: &PlanWanted,
) -> Option<Plan> {
    let current = sub.items.first()?;
    let product = match &wanted.product {
        Some(name) => catalog
            .iter()
            .find(|c| c.product.active && same_name(&c.product.name, name))?,
        None => catalog.iter().find(|c| c.product.id == current.product)?,
    };
    let interval = wanted
        .interval
        .clone()
        .unwrap_or_else(|| current.interval.clone());
    let plans: Vec<Plan> = product
        .prices
        .iter()
        .filter(|p| is_plan(p) && p.currency == sub.currency.as_str())
        .filter_map(|p| Plan::of(product, p))
        .collect();
    let default = product.product.default_price.as_deref();
    let pick = |ps: Vec<&Plan>| {
        ps.iter()
            .find(|p| Some(p.price.as_str()) == default)
            .or(ps.first())
            .map(|p| (*p).clone())
    };
    pick(plans.iter().filter(|p| p.interval == interval).collect()).or_else(|| {
        // A named product without a plan of that interval: its default plan, unless an
        // interval was asked for.
        if wanted.interval.is_some() {
            None
        } else {
            pick(plans.iter().collect())
        }
    })
}

/// When a plan change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanTiming {
    /// Now, prorated: the difference is invoiced and charged at once.
    Now,
    /// At the end of the current period (a subscription schedule); nothing is charged now.
    AtPeriodEnd,
}

/// A plan change that may be made: what [`crate::rules::plan_change`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    pub subscription: String,
    /// The subscription item whose price changes (`si_…`).
    pub item: String,
    pub quantity: i64,
    pub from: Plan,
    pub to: Plan,
    pub timing: PlanTiming,
    /// The current period's end (Unix seconds): when an `AtPeriodEnd` change happens.
    pub period_end: i64,
    pub period_start: i64,
}

/// What Stripe's invoice preview says a change now costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPreview {
    /// Charged now: the prorated difference (or the new interval's price, less the unused
    /// time), Stripe's `amount_due`.
    pub charged_now: Money,
    /// When the next renewal is, after the change (Unix seconds).
    pub renews_on: i64,
    /// The proration date the preview used; the change is made with the same one, so Stripe
    /// charges what the card said.
    pub proration_date: i64,
}

/// The plan a subscription is on now, as a [`Plan`] (its first item).
pub fn current_plan(sub: &Subscription) -> Option<Plan> {
    let i = sub.items.first()?;
    Some(Plan {
        price: i.price.clone(),
        product: i.product.clone(),
        name: i.label(),
        amount: i.unit_amount?,
        currency: sub.currency,
        interval: i.interval.clone(),
        interval_count: i.interval_count,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::billing::{SubscriptionItem, SubscriptionStatus};

    #[test]
    fn a_plan_asked_for_names_a_product_or_a_billing_interval() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            PlanWanted::new(some("Pro"), None),
            Ok(PlanWanted {
                product: some("Pro"),
                interval: None
            })
        );
        assert!(PlanWanted::new(None, some("year")).is_ok());
        assert_eq!(
            PlanWanted::new(None, some("fortnight")),
            Err(("interval", "must be day, week, month or year"))
        );
        assert_eq!(
            PlanWanted::new(None, None),
            Err(("product", "name a product or an interval"))
        );
    }
    use crate::catalog::{ProductData, Recurrence};

    fn price(id: &str, product: &str, amount: i64, interval: &str) -> PriceData {
        PriceData {
            id: id.into(),
            product: product.into(),
            active: true,
            currency: "usd".into(),
            unit_amount: Some(amount),
            kind: "recurring".into(),
            recurring: Some(Recurrence {
                interval: interval.into(),
                interval_count: 1,
                usage_type: None,
            }),
            nickname: None,
        }
    }

    fn product(id: &str, name: &str, prices: Vec<PriceData>) -> CatalogProduct {
        CatalogProduct {
            product: ProductData {
                id: id.into(),
                name: name.into(),
                active: true,
                description: None,
                default_price: prices.first().map(|p| p.id.clone()),
                updated: 0,
            },
            prices,
            sold: false,
        }
    }

    pub(crate) fn catalog() -> Vec<CatalogProduct> {
        let mut one_time = price("price_book", "prod_book", 1500, "month");
        one_time.kind = "one_time".into();
        one_time.recurring = None;
        let mut metered = price("price_meter", "prod_basic", 1, "month");
        metered.recurring.as_mut().unwrap().usage_type = Some("metered".into());
        vec![
            product(
                "prod_basic",
                "Basic",
                vec![
                    price("price_basic_m", "prod_basic", 900, "month"),
                    price("price_basic_y", "prod_basic", 9000, "year"),
                    price("price_basic_m2", "prod_basic", 1000, "month"),
                    metered,
                ],
            ),
            product(
                "prod_pro",
                "Pro",
                vec![
                    price("price_pro_m", "prod_pro", 2900, "month"),
                    price("price_pro_y", "prod_pro", 29000, "year"),
                ],
            ),
            product("prod_book", "Book", vec![one_time]),
        ]
    }

    pub(crate) fn sub_on(price: &str, product: &str, amount: i64, interval: &str) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            customer: "cus_1".into(),
            customer_email: Some("ana@example.com".into()),
            status: SubscriptionStatus::Active,
            currency: Currency::parse("usd").unwrap(),
            items: vec![SubscriptionItem {
                id: Some("si_1".into()),
                price: price.into(),
                product: product.into(),
                name: Some("Basic".into()),
                quantity: 1,
                unit_amount: Some(amount),
                interval: interval.into(),
                interval_count: 1,
                current_period_start: 1_000,
                current_period_end: 2_000,
            }],
            created: 1_000,
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

    #[test]
    fn the_portal_offers_each_products_plans_once_per_interval() {
        let c = portal_config(&catalog(), CancelMode::AtPeriodEnd);
        assert_eq!(
            c.products,
            vec![
                PortalProduct {
                    product: "prod_basic".into(),
                    prices: vec!["price_basic_m".into(), "price_basic_y".into()],
                },
                PortalProduct {
                    product: "prod_pro".into(),
                    prices: vec!["price_pro_m".into(), "price_pro_y".into()],
                },
            ]
        );
        let empty = portal_config(&[], CancelMode::Immediately);
        assert!(empty.products.is_empty());
        assert_eq!(empty.cancel_mode, CancelMode::Immediately);
    }

    #[test]
    fn a_wanted_plan_is_found_by_interval_product_or_both() {
        let cat = catalog();
        let sub = sub_on("price_basic_m", "prod_basic", 900, "month");
        let want = |product: Option<&str>, interval: Option<&str>| {
            wanted_plan(
                &cat,
                &sub,
                &PlanWanted {
                    product: product.map(str::to_owned),
                    interval: interval.map(str::to_owned),
                },
            )
            .map(|p| p.price)
        };
        assert_eq!(want(None, Some("year")).as_deref(), Some("price_basic_y"));
        assert_eq!(want(Some("pro"), None).as_deref(), Some("price_pro_m"));
        assert_eq!(
            want(Some("Pro plan"), Some("year")).as_deref(),
            Some("price_pro_y")
        );
        assert_eq!(want(Some("Gold"), None), None);
        assert_eq!(want(None, Some("week")), None);
        assert_eq!(
            want(Some("Book"), None),
            None,
            "a one-time price is no plan"
        );
    }
}
