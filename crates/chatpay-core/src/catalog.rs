//! The product catalog as the app sells it: products and prices from Stripe, checked against what
//! selling needs, and what changed between two versions. Plain values and pure functions; the
//! sync that fills it lives in `chat::catalog_sync`, the storage in `store`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::{Currency, Money};

/// A product as Stripe has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductData {
    pub id: String,
    pub name: String,
    pub active: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default_price: Option<String>,
    /// Unix seconds, Stripe's `updated`.
    pub updated: i64,
}

/// How often a price charges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// day, week, month or year.
    pub interval: String,
    pub interval_count: u64,
    /// `licensed` or `metered` (metered prices bill by usage reported later).
    #[serde(default)]
    pub usage_type: Option<String>,
}

/// A price as Stripe has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceData {
    pub id: String,
    pub product: String,
    pub active: bool,
    pub currency: String,
    /// In the currency's minor unit; `None` for prices without a fixed amount.
    #[serde(default)]
    pub unit_amount: Option<i64>,
    /// `one_time` or `recurring`.
    pub kind: String,
    #[serde(default)]
    pub recurring: Option<Recurrence>,
    #[serde(default)]
    pub nickname: Option<String>,
}

/// A product with its prices, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogProduct {
    pub product: ProductData,
    pub prices: Vec<PriceData>,
    /// The product has been sellable at some point since chatpay first stored it. Becoming
    /// sellable for the first time (a product created before its price) is not news; selling
    /// again after being pushed as unsellable is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sold: bool,
}

/// Something about a product that stops it selling, or that its owner should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: &'static str,
    /// Says what is wrong and what to do in Stripe.
    pub message: String,
    /// False for warnings: the product still sells.
    pub blocking: bool,
}

impl CatalogProduct {
    pub fn active_prices(&self) -> impl Iterator<Item = &PriceData> {
        self.prices.iter().filter(|p| p.active)
    }

    /// Whether a price can be charged as is: an amount, a currency, a billing type.
    fn price_problem(p: &PriceData) -> Option<&'static str> {
        if Currency::parse(&p.currency).is_none() {
            return Some("no currency");
        }
        if p.unit_amount.is_none() {
            return Some("no fixed amount");
        }
        match (p.kind.as_str(), &p.recurring) {
            ("one_time", None) => None,
            ("recurring", Some(r)) if !r.interval.is_empty() => {
                if r.usage_type.as_deref() == Some("metered") {
                    Some("metered billing")
                } else {
                    None
                }
            }
            ("recurring", _) => Some("no billing interval"),
            _ => Some("no billing type"),
        }
    }

    /// Every rule for selling, in plain words.
    pub fn problems(&self) -> Vec<Problem> {
        let name = if self.product.name.trim().is_empty() {
            self.product.id.as_str()
        } else {
            self.product.name.as_str()
        };
        let mut out = Vec::new();
        let mut add = |code, blocking, message: String| {
            out.push(Problem {
                code,
                message,
                blocking,
            })
        };
        if self.product.name.trim().is_empty() {
            add(
                "no_name",
                true,
                format!(
                    "Product {name} has no name: give it one in the Stripe Dashboard, then sync again."
                ),
            );
        }
        if !self.product.active {
            add(
                "archived",
                true,
                format!(
                    "'{name}' is archived in Stripe: unarchive it in the Stripe Dashboard to sell it, then sync again."
                ),
            );
        }
        let usable: Vec<&PriceData> = self
            .active_prices()
            .filter(|p| Self::price_problem(p).is_none())
            .collect();
        if self.active_prices().next().is_none() {
            add(
                "no_active_price",
                true,
                format!(
                    "'{name}' has no active price: add a price in the Stripe Dashboard, then sync again."
                ),
            );
        } else if usable.is_empty() {
            let why: BTreeSet<&str> = self
                .active_prices()
                .filter_map(Self::price_problem)
                .collect();
            add(
                "no_usable_price",
                true,
                format!(
                    "'{name}' has no price chatpay can charge ({}): add a one-time or recurring price with a fixed amount in the Stripe Dashboard, then sync again.",
                    why.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let currencies: BTreeSet<&str> =
            self.active_prices().map(|p| p.currency.as_str()).collect();
        if currencies.len() > 1 {
            add(
                "mixed_currencies",
                false,
                format!(
                    "'{name}' has active prices in several currencies ({}): customers see the one of their checkout; make sure that is what you want.",
                    currencies.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if let Some(default) = &self.product.default_price {
            match self.prices.iter().find(|p| &p.id == default) {
                Some(p) if !p.active => add(
                    "default_price_archived",
                    usable.is_empty(),
                    format!(
                        "'{name}''s default price is archived: set an active price as the default in the Stripe Dashboard."
                    ),
                ),
                None => add(
                    "default_price_missing",
                    false,
                    format!(
                        "'{name}''s default price {default} was not found: set the default price again in the Stripe Dashboard."
                    ),
                ),
                _ => {}
            }
        }
        let archived = self.prices.iter().filter(|p| !p.active).count();
        if archived > 0 && self.product.active && !usable.is_empty() {
            add(
                "archived_prices",
                false,
                format!("'{name}' has {archived} archived price(s), which are not offered."),
            );
        }
        out
    }

    pub fn sellable(&self) -> bool {
        !self.problems().iter().any(|p| p.blocking)
    }

    /// The price to show first: the default if it is usable, else the first usable one.
    pub fn main_price(&self) -> Option<&PriceData> {
        let usable = |p: &&PriceData| p.active && Self::price_problem(p).is_none();
        self.product
            .default_price
            .as_ref()
            .and_then(|d| self.prices.iter().filter(usable).find(|p| &p.id == d))
            .or_else(|| self.prices.iter().find(usable))
    }
}

impl PriceData {
    pub fn money(&self) -> Option<Money> {
        Some(Money::new(
            self.unit_amount?,
            Currency::parse(&self.currency)?,
        ))
    }

    /// "$25.00", "$9.00 / month", "€90.00 every 3 months".
    pub fn display(&self) -> String {
        let amount = self
            .money()
            .map_or_else(|| "no fixed amount".to_owned(), |m| m.to_string());
        match &self.recurring {
            Some(r) if r.interval_count > 1 => {
                format!("{amount} every {} {}s", r.interval_count, r.interval)
            }
            Some(r) => format!("{amount} / {}", r.interval),
            None => amount,
        }
    }
}

/// What changed between two versions of a catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Names of products added, changed or removed from `before` to `after` (by product id).
pub fn diff(
    before: &BTreeMap<String, CatalogProduct>,
    after: &BTreeMap<String, CatalogProduct>,
) -> CatalogDiff {
    let mut d = CatalogDiff::default();
    for (id, p) in after {
        match before.get(id) {
            None => d.added.push(p.product.name.clone()),
            Some(old) if old.product != p.product || old.prices != p.prices => {
                d.changed.push(p.product.name.clone())
            }
            _ => {}
        }
    }
    for (id, p) in before {
        if !after.contains_key(id) {
            d.removed.push(p.product.name.clone());
        }
    }
    d
}

/// The outcome of a sync, for the result card and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub products: usize,
    pub sellable: usize,
    pub diff: CatalogDiff,
    /// Products that need attention, with why.
    pub attention: Vec<(String, Vec<String>)>,
    /// Requests made to Stripe by this run (all its attempts).
    pub requests: u64,
    /// Where products are added (the Stripe Dashboard's products page, or the sandbox's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products_url: Option<String>,
}

/// Builds the report of a new catalog against the previous one.
pub fn report(
    before: &BTreeMap<String, CatalogProduct>,
    after: &BTreeMap<String, CatalogProduct>,
    requests: u64,
) -> SyncReport {
    let mut attention = Vec::new();
    let mut sellable = 0;
    for p in after.values() {
        let problems = p.problems();
        if !problems.iter().any(|p| p.blocking) {
            sellable += 1;
        }
        if !problems.is_empty() {
            attention.push((
                p.product.name.clone(),
                problems.into_iter().map(|p| p.message).collect(),
            ));
        }
    }
    SyncReport {
        products: after.len(),
        sellable,
        diff: diff(before, after),
        attention,
        requests,
        products_url: None,
    }
}

/// Groups prices under their products (prices of unknown products are dropped).
pub fn assemble(
    products: Vec<ProductData>,
    prices: Vec<PriceData>,
) -> BTreeMap<String, CatalogProduct> {
    let mut out: BTreeMap<String, CatalogProduct> = products
        .into_iter()
        .map(|p| {
            (
                p.id.clone(),
                CatalogProduct {
                    product: p,
                    prices: Vec::new(),
                    sold: false,
                },
            )
        })
        .collect();
    for price in prices {
        if let Some(p) = out.get_mut(&price.product) {
            p.prices.push(price);
        }
    }
    for p in out.values_mut() {
        p.prices.sort_by(|a, b| a.id.cmp(&b.id));
    }
    out
}

/// The product whose name best matches what a person typed ("the pro plan" → "Pro").
pub fn find_by_name<'a>(
    products: impl IntoIterator<Item = &'a CatalogProduct>,
    wanted: &str,
) -> Option<&'a CatalogProduct> {
    let norm = |s: &str| -> String {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| {
                !w.is_empty()
                    && !matches!(
                        *w,
                        "the"
                            | "plan"
                            | "product"
                            | "tier"
                            | "package"
                            | "subscription"
                            | "a"
                            | "an"
                            | "my"
                    )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let wanted = norm(wanted);
    if wanted.is_empty() {
        return None;
    }
    let mut best: Option<(&CatalogProduct, usize)> = None;
    for p in products {
        let name = norm(&p.product.name);
        let score = if name == wanted {
            3
        } else if name.split(' ').any(|w| w == wanted) || wanted.split(' ').any(|w| w == name) {
            2
        } else if name.contains(&wanted) || wanted.contains(&name) && !name.is_empty() {
            1
        } else {
            0
        };
        if score > 0 && best.is_none_or(|(_, s)| score > s) {
            best = Some((p, score));
        }
    }
    best.map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, name: &str, active: bool, default: Option<&str>) -> ProductData {
        ProductData {
            id: id.into(),
            name: name.into(),
            active,
            description: None,
            default_price: default.map(Into::into),
            updated: 1,
        }
    }

    fn price(
        id: &str,
        product: &str,
        active: bool,
        currency: &str,
        amount: Option<i64>,
        interval: Option<&str>,
    ) -> PriceData {
        PriceData {
            id: id.into(),
            product: product.into(),
            active,
            currency: currency.into(),
            unit_amount: amount,
            kind: if interval.is_some() {
                "recurring".into()
            } else {
                "one_time".into()
            },
            recurring: interval.map(|i| Recurrence {
                interval: i.into(),
                interval_count: 1,
                usage_type: Some("licensed".into()),
            }),
            nickname: None,
        }
    }

    #[test]
    fn copy_plan_copies_sellable_test_products_once_default_price_first() {
        let cp = |p: ProductData, prices: Vec<PriceData>| CatalogProduct {
            product: p,
            prices,
            sold: true,
        };
        let test = vec![
            cp(
                product("prod_t1", "Membership", true, Some("price_y")),
                vec![
                    price("price_m", "prod_t1", true, "usd", Some(1200), Some("month")),
                    price("price_y", "prod_t1", true, "usd", Some(12000), Some("year")),
                    price(
                        "price_old",
                        "prod_t1",
                        false,
                        "usd",
                        Some(900),
                        Some("month"),
                    ),
                ],
            ),
            cp(
                product("prod_t2", "Mug", true, Some("price_mug")),
                vec![price("price_mug", "prod_t2", true, "eur", Some(1800), None)],
            ),
            cp(product("prod_t3", "Draft", true, None), vec![]),
            cp(
                product("prod_t4", "Gone", false, Some("price_g")),
                vec![price("price_g", "prod_t4", true, "usd", Some(100), None)],
            ),
        ];
        let live = vec![cp(
            product("prod_l2", "mug", true, Some("price_lm")),
            vec![price("price_lm", "prod_l2", true, "eur", Some(1800), None)],
        )];
        let plan = copy_plan(&test, &live);
        assert_eq!(
            plan.len(),
            2,
            "unsellable and archived products stay behind"
        );
        let new = plan[0].new.as_ref().expect("made in live");
        assert_eq!(plan[0].test, "prod_t1");
        assert_eq!(new.prices.len(), 2, "archived prices stay behind");
        assert_eq!(new.prices[0].billing, Billing::Year, "the default first");
        assert_eq!(new.prices[0].amount.minor, 12000);
        assert_eq!(plan[1].live.as_deref(), Some("prod_l2"), "same name: kept");
        assert!(plan[1].new.is_none());
    }

    #[test]
    fn a_code_is_copied_only_while_it_can_be_used() {
        let code = CodeInfo {
            id: "promo_t".into(),
            code: "WELCOME15".into(),
            active: true,
            times_redeemed: 2,
            max_redemptions: Some(50),
            expires_at: Some(2_000),
            off: "15% off".into(),
            first_time: true,
            discount: Some(Off::Percent { basis_points: 1500 }),
            duration: Some(CodeDuration::Repeating { months: 3 }),
            products: vec!["prod_t1".into(), "prod_t9".into()],
        };
        let live_of = |p: &str| (p == "prod_t1").then(|| "prod_l1".to_owned());
        let new = code_copy(&code, 1_000, live_of).expect("copied");
        assert_eq!(new.products, ["prod_l1"]);
        assert_eq!(new.duration, CodeDuration::Repeating { months: 3 });
        assert!(new.first_time);
        assert_eq!(new.max_redemptions, Some(50));
        assert!(code_copy(&code, 2_000, live_of).is_none(), "expired");
        let used = CodeInfo {
            times_redeemed: 50,
            ..code.clone()
        };
        assert!(code_copy(&used, 1_000, live_of).is_none(), "used up");
        assert!(
            code_copy(&code, 1_000, |_| None).is_none(),
            "its products stayed behind"
        );
    }

    #[test]
    fn a_code_for_a_plan_finds_its_product_by_name_or_by_billing() {
        let cp = |p: ProductData, prices: Vec<PriceData>| CatalogProduct {
            product: p,
            prices,
            sold: true,
        };
        let catalog = vec![
            cp(
                product("prod_m", "Membership", true, Some("price_m")),
                vec![
                    price("price_m", "prod_m", true, "usd", Some(1200), Some("month")),
                    price("price_y", "prod_m", true, "usd", Some(12000), Some("year")),
                ],
            ),
            cp(
                product("prod_y", "Yoga class", true, Some("price_c")),
                vec![price("price_c", "prod_y", true, "usd", Some(2000), None)],
            ),
        ];
        assert_eq!(code_products(&catalog, "yoga class"), ["prod_y"]);
        assert_eq!(code_products(&catalog, "yearly plan"), ["prod_m"]);
        assert_eq!(code_products(&catalog, "annual subscription"), ["prod_m"]);
        assert!(code_products(&catalog, "gold plan").is_empty());
    }

    fn codes(p: &CatalogProduct) -> Vec<&'static str> {
        p.problems().iter().map(|p| p.code).collect()
    }

    #[test]
    fn each_rule_says_what_is_missing() {
        let ok = CatalogProduct {
            product: product("prod_1", "Pro", true, Some("price_1")),
            sold: false,
            prices: vec![price(
                "price_1",
                "prod_1",
                true,
                "usd",
                Some(900),
                Some("month"),
            )],
        };
        assert!(ok.sellable());
        assert!(codes(&ok).is_empty());
        assert_eq!(ok.main_price().unwrap().display(), "$9.00 / month");

        let no_price = CatalogProduct {
            product: product("prod_2", "Masterclass", true, None),
            sold: false,
            prices: vec![],
        };
        assert_eq!(codes(&no_price), vec!["no_active_price"]);
        assert_eq!(
            no_price.problems()[0].message,
            "'Masterclass' has no active price: add a price in the Stripe Dashboard, then sync again."
        );
        assert!(!no_price.sellable());

        let archived = CatalogProduct {
            product: product("prod_3", "Old", false, None),
            sold: false,
            prices: vec![price("price_3", "prod_3", true, "usd", Some(100), None)],
        };
        assert_eq!(codes(&archived), vec!["archived"]);

        let mixed = CatalogProduct {
            product: product("prod_4", "Global", true, Some("price_4a")),
            sold: false,
            prices: vec![
                price("price_4a", "prod_4", false, "usd", Some(100), None),
                price("price_4b", "prod_4", true, "usd", Some(100), None),
                price("price_4c", "prod_4", true, "eur", Some(90), None),
            ],
        };
        assert_eq!(
            codes(&mixed),
            vec![
                "mixed_currencies",
                "default_price_archived",
                "archived_prices"
            ]
        );
        assert!(mixed.sellable(), "warnings do not stop selling");

        let metered = CatalogProduct {
            product: product("prod_5", "API", true, None),
            sold: false,
            prices: vec![PriceData {
                recurring: Some(Recurrence {
                    interval: "month".into(),
                    interval_count: 1,
                    usage_type: Some("metered".into()),
                }),
                ..price("price_5", "prod_5", true, "usd", Some(1), Some("month"))
            }],
        };
        assert_eq!(codes(&metered), vec!["no_usable_price"]);
        let unnamed = CatalogProduct {
            product: product("prod_6", " ", true, None),
            sold: false,
            prices: vec![price("price_6", "prod_6", true, "usd", Some(1), None)],
        };
        assert_eq!(codes(&unnamed), vec!["no_name"]);
    }

    #[test]
    fn diffs_name_what_changed() {
        let a = assemble(
            vec![
                product("p1", "One", true, None),
                product("p2", "Two", true, None),
            ],
            vec![price("x1", "p1", true, "usd", Some(1), None)],
        );
        let b = assemble(
            vec![
                product("p1", "One", true, None),
                product("p3", "Three", true, None),
            ],
            vec![price("x1", "p1", true, "usd", Some(2), None)],
        );
        let d = diff(&a, &b);
        assert_eq!(d.added, vec!["Three"]);
        assert_eq!(d.changed, vec!["One"]);
        assert_eq!(d.removed, vec!["Two"]);
        let r = report(&a, &b, 3);
        assert_eq!((r.products, r.sellable, r.requests), (2, 1, 3));
    }

    #[test]
    fn finds_products_by_what_people_call_them() {
        let c = assemble(
            vec![
                product("p1", "Pro", true, None),
                product("p2", "Starter", true, None),
                product("p3", "Pro Max", true, None),
            ],
            vec![],
        );
        assert_eq!(
            find_by_name(c.values(), "the pro plan").unwrap().product.id,
            "p1"
        );
        assert_eq!(
            find_by_name(c.values(), "starter").unwrap().product.id,
            "p2"
        );
        assert_eq!(
            find_by_name(c.values(), "pro max").unwrap().product.id,
            "p3"
        );
        assert!(find_by_name(c.values(), "enterprise").is_none());
        assert!(find_by_name(c.values(), "the plan").is_none());
    }
}

/// A product to create in Stripe, as the builder confirmed it: its name, an optional
/// description and its prices (the first becomes the default price).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProduct {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub prices: Vec<NewPrice>,
}

/// A price to create: an amount in minor units and how often it charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPrice {
    pub amount: Money,
    pub billing: Billing,
}

/// How often a new price charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Billing {
    OneTime,
    Week,
    Month,
    Year,
}

impl Billing {
    /// From the matcher's interval (`one_time`, `week`, `month`, `year`).
    pub fn parse(s: &str) -> Option<Billing> {
        Some(match s {
            "one_time" | "once" => Billing::OneTime,
            "week" | "weekly" => Billing::Week,
            "month" | "monthly" => Billing::Month,
            "year" | "yearly" => Billing::Year,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Billing::OneTime => "one_time",
            Billing::Week => "week",
            Billing::Month => "month",
            Billing::Year => "year",
        }
    }

    /// Stripe's `recurring[interval]`; `None` for a one-time price.
    pub fn interval(self) -> Option<&'static str> {
        match self {
            Billing::OneTime => None,
            Billing::Week => Some("week"),
            Billing::Month => Some("month"),
            Billing::Year => Some("year"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Billing::OneTime => "one-time",
            Billing::Week => "weekly",
            Billing::Month => "monthly",
            Billing::Year => "yearly",
        }
    }
}

impl NewPrice {
    /// `$12.00 / month`, `€18.00 one-time`.
    pub fn display(&self) -> String {
        match self.billing.interval() {
            Some(unit) => format!("{} / {unit}", self.amount),
            None => format!("{} one-time", self.amount),
        }
    }
}

/// A change to a product chatpay makes in Stripe, as the builder confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum ProductEdit {
    /// Stripe's prices are immutable: a new price becomes the default, and the old one (of the
    /// same billing, if any) is archived. Subscribers stay on the price they have.
    Reprice {
        price: NewPrice,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old: Option<String>,
    },
    Rename {
        name: String,
    },
    Describe {
        description: String,
    },
    /// Stop selling it (`active=false`): buy links and new checkouts stop.
    Archive,
    /// Sell it again (`active=true`).
    Restore,
}

/// A discount code to create: a coupon (what it takes off, for how long) and the promotion
/// code customers type at checkout (its limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCode {
    /// What customers type, as written (Stripe matches it case-insensitively).
    pub code: String,
    pub off: Off,
    pub duration: CodeDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redemptions: Option<i64>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Only for a customer's first order (`restrictions.first_time_transaction`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_time: bool,
    /// The products it applies to (the coupon's `applies_to.products`); empty: everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
    /// The product it was said to be for ("40% off the yearly plan"), found in the catalog
    /// when it is created (`code_products`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_product: Option<String>,
}

/// The products a code said to be for `wanted` applies to: the product of that name; else,
/// when `wanted` names a billing ("the yearly plan"), every active product with an active
/// price of that billing (Stripe limits a coupon to products, not prices). Empty: none.
pub fn code_products(products: &[CatalogProduct], wanted: &str) -> Vec<String> {
    if let Some(p) = find_by_name(products.iter().filter(|p| p.product.active), wanted) {
        return vec![p.product.id.clone()];
    }
    let w = wanted.to_lowercase();
    let interval = [
        ("year", ["year", "annual"]),
        ("month", ["month", "month"]),
        ("week", ["week", "week"]),
    ]
    .into_iter()
    .find(|(_, words)| words.iter().any(|x| w.contains(x)))
    .map(|(i, _)| i);
    let Some(interval) = interval else {
        return Vec::new();
    };
    products
        .iter()
        .filter(|p| p.product.active)
        .filter(|p| {
            p.active_prices()
                .any(|x| x.recurring.as_ref().is_some_and(|r| r.interval == interval))
        })
        .map(|p| p.product.id.clone())
        .collect()
}

/// What a code takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "off", rename_all = "snake_case")]
pub enum Off {
    /// In hundredths of a percent (15% = 1500), so it stays an integer.
    Percent {
        basis_points: u32,
    },
    Amount {
        amount: Money,
    },
}

impl Off {
    pub fn display(&self) -> String {
        match self {
            Off::Percent { basis_points } if basis_points % 100 == 0 => {
                format!("{}% off", basis_points / 100)
            }
            Off::Percent { basis_points } => {
                format!("{}.{:02}% off", basis_points / 100, basis_points % 100)
            }
            Off::Amount { amount } => format!("{amount} off"),
        }
    }
}

/// How long a code's discount lasts on a subscription (one-time orders: once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "duration", rename_all = "snake_case")]
pub enum CodeDuration {
    Once,
    Repeating { months: u32 },
    Forever,
}

impl CodeDuration {
    pub fn display(&self) -> String {
        match self {
            CodeDuration::Once => "once (the first payment)".to_owned(),
            CodeDuration::Repeating { months: 1 } => "for 1 month".to_owned(),
            CodeDuration::Repeating { months } => format!("for {months} months"),
            CodeDuration::Forever => "forever".to_owned(),
        }
    }
}

/// A promotion code as Stripe has it, for answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    pub id: String,
    pub code: String,
    pub active: bool,
    pub times_redeemed: i64,
    #[serde(default)]
    pub max_redemptions: Option<i64>,
    /// Unix seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// "15% off", "$5.00 off".
    pub off: String,
    pub first_time: bool,
    /// What its coupon takes off and for how long, when Stripe said (to copy it to live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Off>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<CodeDuration>,
    /// The products its coupon is limited to (empty: everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
}

/// A test product as it is to be copied to live mode: made there (`new`), or already there
/// under the same name (`live`: its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductCopy {
    pub test: String,
    pub name: String,
    pub new: Option<NewProduct>,
    pub live: Option<String>,
}

/// What going live copies of the test catalog: every active, sellable test product with its
/// active one-time and recurring prices (default first), unless live mode has an active
/// product of the same name already (then that one stands for it). Products that can't be sold
/// in test mode are not copied: they would fail the same rules in live.
pub fn copy_plan(test: &[CatalogProduct], live: &[CatalogProduct]) -> Vec<ProductCopy> {
    test.iter()
        .filter(|p| p.product.active && p.sellable())
        .map(|p| {
            let same = live.iter().find(|l| {
                l.product.active
                    && l.product
                        .name
                        .trim()
                        .eq_ignore_ascii_case(p.product.name.trim())
            });
            let main = p.main_price().map(|m| m.id.clone());
            let mut prices: Vec<&PriceData> = p
                .active_prices()
                .filter(|x| CatalogProduct::price_problem(x).is_none())
                .filter(|x| x.recurring.as_ref().is_none_or(|r| r.interval_count == 1))
                .collect();
            prices.sort_by_key(|x| Some(&x.id) != main.as_ref());
            let prices = prices
                .into_iter()
                .filter_map(|x| {
                    let billing = match &x.recurring {
                        None => Billing::OneTime,
                        Some(r) => Billing::parse(&r.interval)?,
                    };
                    Some(NewPrice {
                        amount: x.money()?,
                        billing,
                    })
                })
                .collect::<Vec<_>>();
            ProductCopy {
                test: p.product.id.clone(),
                name: p.product.name.clone(),
                new: (same.is_none() && !prices.is_empty()).then(|| NewProduct {
                    name: p.product.name.clone(),
                    description: p.product.description.clone(),
                    prices,
                }),
                live: same.map(|l| l.product.id.clone()),
            }
        })
        .filter(|c| c.new.is_some() || c.live.is_some())
        .collect()
}

/// A test code as live mode gets it: the same code, discount, duration, limit, expiry and
/// restriction, limited to the live products its test products became (`live_of`). `None`
/// when it can't be copied: inactive, expired at `now` (seconds), used up, its discount
/// unknown, or limited to products none of which were copied.
pub fn code_copy(
    c: &CodeInfo,
    now: i64,
    live_of: impl Fn(&str) -> Option<String>,
) -> Option<NewCode> {
    let used_up = c.max_redemptions.is_some_and(|m| c.times_redeemed >= m);
    if !c.active || used_up || c.expires_at.is_some_and(|e| e <= now) {
        return None;
    }
    let products: Vec<String> = c.products.iter().filter_map(|p| live_of(p)).collect();
    if !c.products.is_empty() && products.is_empty() {
        return None;
    }
    Some(NewCode {
        code: c.code.clone(),
        off: c.discount?,
        duration: c.duration.unwrap_or(CodeDuration::Once),
        max_redemptions: c.max_redemptions,
        expires_at: c.expires_at,
        first_time: c.first_time,
        products,
        for_product: None,
    })
}
