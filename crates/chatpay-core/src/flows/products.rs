//! Products made by talking: "add a product called Yoga class for $25", "a membership at $12 a
//! month or $120 a year".
//!
//! What was understood comes back as a confirmation card (name, each price with its amount,
//! currency and billing) with Create, Edit and Cancel; nothing is sent to Stripe before Create.
//! Edit turns it into a form; saving the form shows the confirmation again (the old card goes
//! stale, so a Create clicked on it is refused). Create is one click: the card goes stale as it
//! is clicked, and the Stripe call (`Call::CreateProduct`) is part of the stored state with an
//! idempotency key derived from the conversation and the operation, so a double click, a retry
//! or a crash makes one product. Its answer is the product as the catalog now stores it,
//! judged by the same selling rules as a synced one (`CatalogProduct::problems`), with its buy
//! link.
//!
//! The rules a new product must meet (a name, a price above zero in a currency Stripe charges
//! in, at least its minimum charge) are `rules::new_product`'s, asked before the card is shown
//! and again when the form is saved.

use std::collections::BTreeMap;

use super::{Call, CallError, CallOutput, Owner, Pending, Purpose, Refusal, Turn};
use crate::cards::{Action, CardKind, Fact, Field};
use crate::catalog::{Billing, CatalogProduct, NewPrice, NewProduct, PriceData, ProductEdit};
use crate::domain::{Currency, Money};
use crate::intents::{SlotValue, Slots};
use crate::rules;

/// Prices a form edits at most (more are said in the chat, one per request).
const MAX_PRICES: usize = 3;

/// The prices an utterance names: the `prices` slot, or the `amount` with its `interval`.
fn prices_of(slots: &Slots) -> Vec<NewPrice> {
    let billing = |s: &str| Billing::parse(s).unwrap_or(Billing::OneTime);
    match (slots.get("prices"), slots.get("amount")) {
        (Some(SlotValue::Prices(ps)), _) if !ps.is_empty() => ps
            .iter()
            .map(|p| NewPrice {
                amount: p.amount,
                billing: billing(&p.interval),
            })
            .collect(),
        (_, Some(SlotValue::Amount(m))) => vec![NewPrice {
            amount: *m,
            billing: slots
                .get("interval")
                .and_then(SlotValue::as_text)
                .map_or(Billing::OneTime, billing),
        }],
        _ => Vec::new(),
    }
}

/// A product name as said: trimmed, quotes and a trailing "plan"/"product" word kept as written.
fn name_of(slots: &Slots) -> Option<String> {
    let name = slots
        .get("product")
        .and_then(SlotValue::as_text)?
        .trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '“' | '”'))
        .trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// "Beanie $25, Scarf $30 and Gloves $15": several products said in one list, each a name
/// with its price (a symbol or a 3-letter code); `None` unless there are at least two and every
/// item has both.
fn product_list(slots: &Slots) -> Option<Vec<NewProduct>> {
    static ITEM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)^\s*(?:and\s+)?(?P<name>[^\d$€£¥₹][^$€£¥₹]*?)\s*(?:at|for|-|–|—|:)?\s*(?:(?P<sym>[$€£¥₹])\s?(?P<n1>\d+(?:\.\d{1,2})?)|(?P<n2>\d+(?:\.\d{1,2})?)\s?(?P<code>[a-z]{3}|[$€£¥₹]))\s*$",
        )
        .expect("a valid regex")
    });
    let text = slots.get("product_list").and_then(SlotValue::as_text)?;
    // "Beanie, $25, Scarf, $30": a price alone belongs to the name before it.
    let mut parts: Vec<String> = Vec::new();
    for p in text
        .split([',', ';'])
        .flat_map(|p| p.split(" and "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let price_only = p.starts_with(|c: char| c.is_ascii_digit() || "$€£¥₹".contains(c));
        match parts.last_mut() {
            Some(last) if price_only && !ITEM.is_match(last) => {
                last.push(' ');
                last.push_str(p);
            }
            _ => parts.push(p.to_owned()),
        }
    }
    if parts.len() < 2 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            let c = ITEM.captures(p)?;
            let currency = crate::intents::currency_of(c.name("sym").or(c.name("code"))?.as_str())?;
            let number = c.name("n1").or(c.name("n2"))?.as_str();
            Some(NewProduct {
                name: c["name"].trim().to_owned(),
                description: None,
                prices: vec![NewPrice {
                    amount: Money::parse_decimal(number, currency)?,
                    billing: Billing::OneTime,
                }],
            })
        })
        .collect()
}

impl Turn<'_, '_> {
    /// "Create 3 products: Beanie $25, Scarf $30, Gloves $15": one card lists them; one Create
    /// makes each (a call, and so a stored operation with its own key, per product).
    fn confirm_products(&mut self, drafts: Vec<NewProduct>) {
        if let Some(refused) = drafts.iter().find_map(|d| rules::new_product(d).err()) {
            self.reply(format!("{} Nothing was created.", refused.message));
            return;
        }
        self.drop_cards(|c| {
            !matches!(
                c.owner,
                Owner::ConfirmProduct { .. }
                    | Owner::EditProduct { .. }
                    | Owner::ConfirmProducts { .. }
            )
        });
        let mut card = self.new_card(
            CardKind::ConfirmProduct,
            &format!("Create these {} products?", drafts.len()),
            format!(
                "I'll create {} products, each with its price, in your Stripe account ({} mode); each can be sold at once and gets a buy link. Nothing is created until you click Create.",
                drafts.len(),
                self.mode.as_str()
            ),
        );
        for d in &drafts {
            let p = &d.prices[0];
            card.facts.push(Fact::new(
                d.name.trim(),
                format!(
                    "{} {}, {} ({} minor units)",
                    p.amount,
                    p.amount.currency.as_str().to_ascii_uppercase(),
                    p.billing.label(),
                    p.amount.minor
                ),
            ));
        }
        card.actions = vec![
            Action::primary("create", "Create"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.show(card, Owner::ConfirmProducts { drafts });
    }

    pub(super) fn products_click(&mut self, drafts: Vec<NewProduct>, action: &str) {
        if action != "create" {
            self.reply("OK, nothing was created.");
            return;
        }
        // One after the other: each is stored in the catalog as it is made.
        let mut drafts = drafts.into_iter();
        if let Some(product) = drafts.next() {
            self.call(
                Call::CreateProduct {
                    product,
                    then: drafts.collect(),
                },
                Purpose::Answer,
            );
        }
    }

    /// "Add a product called Yoga class for $25": a confirmation card, or the question that
    /// is missing (how much).
    pub(super) fn create_product_intent(&mut self, slots: &Slots) {
        if !self.facts.backend {
            self.backend_required();
            return;
        }
        if let Some(drafts) = product_list(slots) {
            if self.connection.is_none() {
                self.reply(
                    "Once Stripe is connected I can add these products to your catalog: they are made in your Stripe account. Connect it first, then say it again.",
                );
                if self.state.flow.is_none() {
                    self.offer_connect();
                }
                return;
            }
            self.confirm_products(drafts);
            return;
        }
        let name = name_of(slots);
        let mut prices = prices_of(slots);
        let mut note = None;
        if prices.is_empty()
            && let Some(bare) = slots.get("bare_amount").and_then(SlotValue::as_text)
        {
            // "Yoga class for 25": the project's currency, asked once when nothing says it.
            let said = slots
                .get("currency")
                .and_then(SlotValue::as_text)
                .map(|w| (w, crate::intents::currency_of(w.trim())));
            let currency = match said {
                Some((w, None)) => {
                    self.await_answer("create_product", slots, &["currency", "amount", "prices"]);
                    self.reply(format!(
                        "\"{w}\" isn't a currency I know. Which currency is {bare} in? Say USD, EUR, GBP…"
                    ));
                    return;
                }
                Some((_, Some(c))) => {
                    if let Err(refused) = rules::currency_supported(c) {
                        self.await_answer(
                            "create_product",
                            slots,
                            &["currency", "amount", "prices"],
                        );
                        self.reply(format!("{} Which currency is {bare} in?", refused.message));
                        return;
                    }
                    self.state.currency = Some(c);
                    note = Some(format!(
                        " This project's prices are in {} from now on, unless you say another currency.",
                        c.as_str().to_ascii_uppercase()
                    ));
                    c
                }
                None => match self.state.currency {
                    Some(c) => {
                        note = Some(format!(
                            " The price is in {}, this project's currency: Edit changes it.",
                            c.as_str().to_ascii_uppercase()
                        ));
                        c
                    }
                    None => {
                        self.await_answer(
                            "create_product",
                            slots,
                            &["currency", "amount", "prices"],
                        );
                        self.reply(format!(
                            "{bare} in which currency? Say USD, EUR, GBP… (or the price with it, like ${bare} or {bare} EUR). I'll remember it for this project's next products."
                        ));
                        return;
                    }
                },
            };
            let Some(amount) = Money::parse_decimal(&bare.replace(',', "."), currency) else {
                self.await_answer("create_product", slots, &["amount", "prices"]);
                self.reply(format!(
                    "I couldn't read \"{bare}\" as an amount in {}: say it like 25 or 9.99.",
                    currency.as_str().to_ascii_uppercase()
                ));
                return;
            };
            prices.push(NewPrice {
                amount,
                billing: slots
                    .get("interval")
                    .and_then(SlotValue::as_text)
                    .and_then(Billing::parse)
                    .unwrap_or(Billing::OneTime),
            });
        }
        if prices.is_empty() {
            // "How much is it?": the next "$25 a month" (or "monthly", then the amount)
            // answers it; a bare "25" is asked its currency, never guessed.
            let what = name
                .as_deref()
                .map_or("it".to_owned(), |p| format!("\"{p}\""));
            let how_often = match slots.get("interval").and_then(SlotValue::as_text) {
                Some("one_time") | None => ", and is it one-time or monthly/yearly",
                Some(_) => "",
            };
            self.await_answer("create_product", slots, &["amount", "interval", "prices"]);
            self.reply(format!(
                "How much is {what}{how_often}? Say it with the currency, like $25 or €18 a month."
            ));
            return;
        }
        if self.connection.is_none() {
            // Products are made in the connected Stripe account: what was understood is said
            // back, and connecting comes first.
            let what = name
                .as_deref()
                .map_or("the product".to_owned(), |n| format!("\"{n}\""));
            let prices: Vec<String> = prices.iter().map(NewPrice::display).collect();
            self.reply(format!(
                "Once Stripe is connected I can add {what} at {} to your catalog: products are \
                 made in your Stripe account. Connect it first, then say it again.",
                prices.join(" or ")
            ));
            if self.state.flow.is_none() {
                self.offer_connect();
            }
            return;
        }
        let draft = NewProduct {
            name: name.unwrap_or_default(),
            description: None,
            prices,
        };
        self.confirm_product(draft, note.as_deref());
    }

    /// Shows what will be created, or says what can't be (nothing is sent to Stripe); `note`
    /// adds a sentence (where the currency came from).
    fn confirm_product(&mut self, draft: NewProduct, note: Option<&str>) {
        // Only the newest draft is actionable.
        self.drop_cards(|c| {
            !matches!(
                c.owner,
                Owner::ConfirmProduct { .. } | Owner::EditProduct { .. }
            )
        });
        let priced = draft
            .prices
            .iter()
            .try_for_each(|p| rules::new_price(p.amount));
        if let Err(refused) = priced {
            self.reply(format!(
                "{} Nothing was created. Tell me the price again, or edit it here:",
                refused.message
            ));
            self.edit_product(draft);
            return;
        }
        let named = !draft.name.trim().is_empty();
        let title = if named {
            format!("Create \"{}\"?", draft.name.trim())
        } else {
            "Create this product?".to_owned()
        };
        let n = draft.prices.len();
        let body = format!(
            "I'll create this product with {} in your Stripe account ({} mode). It can be sold \
             at once and gets a buy link. Nothing is created until you click Create.{}",
            if n == 1 {
                "its price".to_owned()
            } else {
                format!("{n} prices (the first is its default)")
            },
            self.mode.as_str(),
            if named {
                ""
            } else {
                " What's it called? Fill in its name."
            }
        ) + note.unwrap_or("");
        let mut card = self.new_card(CardKind::ConfirmProduct, &title, body);
        card.facts.push(Fact::new(
            "Name",
            if named {
                draft.name.trim()
            } else {
                "(not given)"
            },
        ));
        for (i, p) in draft.prices.iter().enumerate() {
            let label = if n == 1 {
                "Price".to_owned()
            } else {
                format!("Price {}", i + 1)
            };
            card.facts.push(Fact::new(
                &label,
                format!(
                    "{} {}, {} ({} minor units)",
                    p.amount,
                    p.amount.currency.as_str().to_ascii_uppercase(),
                    p.billing.label(),
                    p.amount.minor
                ),
            ));
        }
        if !named {
            card.fields = vec![Field::text("name", "Product name")];
        }
        card.actions = vec![
            Action::primary("create", "Create"),
            Action::secondary("edit", "Edit"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.show(card, Owner::ConfirmProduct { draft });
    }

    /// The draft as a form: name, description, currency and each price.
    fn edit_product(&mut self, draft: NewProduct) {
        self.drop_cards(|c| {
            !matches!(
                c.owner,
                Owner::ConfirmProduct { .. } | Owner::EditProduct { .. }
            )
        });
        let currency = draft
            .prices
            .first()
            .map(|p| p.amount.currency.as_str().to_ascii_uppercase());
        let mut fields = vec![
            Field::text("name", "Name").with_value(Some(draft.name.trim())),
            Field {
                required: false,
                ..Field::text("description", "Description")
            }
            .with_value(draft.description.as_deref()),
            Field::text("currency", "Currency")
                .with_value(currency.as_deref())
                .with_help("A 3-letter code: USD, EUR, GBP…"),
        ];
        let billing = [
            ("one_time", "One-time"),
            ("week", "Weekly"),
            ("month", "Monthly"),
            ("year", "Yearly"),
        ];
        let shown = draft.prices.len().clamp(1, MAX_PRICES);
        for i in 0..shown {
            let p = draft.prices.get(i);
            let amount = p.map(|p| decimal(p.amount));
            fields.push(
                Field {
                    required: i == 0,
                    ..Field::text(&format!("amount_{}", i + 1), &format!("Price {}", i + 1))
                }
                .with_value(amount.as_deref())
                .with_help("The amount, like 25 or 9.99"),
            );
            fields.push(
                Field::text(&format!("billing_{}", i + 1), &format!("Billing {}", i + 1))
                    .with_options(billing)
                    .with_value(Some(p.map_or("one_time", |p| p.billing.as_str()))),
            );
        }
        let mut card = self.form(
            CardKind::EditProduct,
            "Edit the product",
            "Change what you need, then Review to see it before it's created.".to_owned(),
            fields,
        );
        card.actions = vec![
            Action::primary("review", "Review"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.show(card, Owner::EditProduct { draft });
    }

    pub(super) fn product_click(
        &mut self,
        owner: &Owner,
        action: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        match (owner, action) {
            (Owner::ConfirmProduct { draft }, "create") => {
                let mut draft = draft.clone();
                if draft.name.trim().is_empty() {
                    match values
                        .get("name")
                        .map(|n| n.trim())
                        .filter(|n| !n.is_empty())
                    {
                        Some(name) => draft.name = name.to_owned(),
                        None => {
                            return Err(Refusal::InvalidValues(BTreeMap::from([(
                                "name".to_owned(),
                                "A product needs a name.".to_owned(),
                            )])));
                        }
                    }
                }
                if let Err(refused) = rules::new_product(&draft) {
                    return Err(Refusal::InvalidValues(BTreeMap::from([(
                        "name".to_owned(),
                        refused.message,
                    )])));
                }
                self.drop_cards(|c| !matches!(c.owner, Owner::ConfirmProduct { .. }));
                self.call(
                    Call::CreateProduct {
                        product: draft,
                        then: Vec::new(),
                    },
                    Purpose::Answer,
                );
            }
            (Owner::ConfirmProduct { draft }, "edit") => self.edit_product(draft.clone()),
            (Owner::EditProduct { draft }, "review") => {
                let next = draft_from_form(draft, values)?;
                self.confirm_product(next, None);
            }
            (Owner::ConfirmProduct { .. } | Owner::EditProduct { .. }, _) => {
                self.drop_cards(|c| {
                    !matches!(
                        c.owner,
                        Owner::ConfirmProduct { .. } | Owner::EditProduct { .. }
                    )
                });
                self.reply("OK, nothing was created.");
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn product_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        if let Call::CreateProduct { then, .. } = &pending.call
            && let Some((next, rest)) = then.split_first()
        {
            self.call(
                Call::CreateProduct {
                    product: next.clone(),
                    then: rest.to_vec(),
                },
                Purpose::Answer,
            );
        }
        match (pending.call, result) {
            (Call::CreateProduct { .. }, Ok(CallOutput::ProductWritten { product, buy_base })) => {
                self.product_card(&product, &buy_base, None)
            }
            (Call::CreateProduct { product: draft, .. }, Err(e)) => self.reply(format!(
                "Stripe didn't create \"{}\": {}. Say it again to retry, or \"sync my products\" \
                 to see what your Stripe account has.",
                draft.name, e.message
            )),
            (Call::FindProduct { wanted, edit }, Ok(CallOutput::ProductFound(found))) => {
                match &found.product {
                    Some(p) => self.confirm_change(p, edit, &found),
                    None => self.reply(format!(
                        "I couldn't find a product called \"{wanted}\" in your catalog. Say \
                         \"what products do I have?\" to see them, or \"sync my products\" if \
                         it was just made in Stripe."
                    )),
                }
            }
            (Call::FindProduct { .. }, _) => {
                self.reply("I couldn't read your catalog just now; please ask again.")
            }
            (
                Call::ChangeProduct { edit, .. },
                Ok(CallOutput::ProductWritten { product, buy_base }),
            ) => self.product_card(&product, &buy_base, Some(&edit)),
            (Call::ChangeProduct { name, .. }, Err(e)) => self.reply(format!(
                "Stripe didn't change \"{name}\": {}. Nothing else changed; say it again to retry.",
                e.message
            )),
            _ => {}
        }
    }

    /// "Raise the Pro plan to $19 a month", "rename the mug to Coffee mug", "archive the Gold
    /// membership": the product is looked up in the stored catalog first, then confirmed.
    pub(super) fn update_product_intent(&mut self, slots: &Slots) {
        if !self.catalog_ready() {
            return;
        }
        let text = |k: &str| {
            slots
                .get(k)
                .and_then(SlotValue::as_text)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(wanted) = name_of(slots) else {
            self.reply(
                "Which product? Say it with what should change, like \"raise the Pro plan to $19 \
                 a month\", \"rename the mug to Coffee mug\" or \"archive the Gold membership\".",
            );
            return;
        };
        let edit = if let Some(name) = text("new_name") {
            ProductEdit::Rename {
                name: name.to_owned(),
            }
        } else if let Some(state) = text("product_state") {
            let s = state.to_lowercase();
            if [
                "unarchive",
                "restore",
                "bring back",
                "start selling",
                "reactivate",
            ]
            .iter()
            .any(|w| s.contains(w))
            {
                ProductEdit::Restore
            } else {
                ProductEdit::Archive
            }
        } else if let Some(description) = text("description") {
            ProductEdit::Describe {
                description: description.to_owned(),
            }
        } else if let Some(price) = prices_of(slots).into_iter().next() {
            if let Err(refused) = rules::new_price(price.amount) {
                self.reply(format!("{} Nothing was changed.", refused.message));
                return;
            }
            ProductEdit::Reprice { price, old: None }
        } else {
            self.await_answer("update_product", slots, &["amount", "prices", "new_name"]);
            self.reply(format!(
                "What should change about \"{wanted}\"? Its price (say it with the currency, like \
                 $19 a month), its name (\"rename it to …\"), its description, or archive it."
            ));
            return;
        };
        self.call(Call::FindProduct { wanted, edit }, Purpose::Answer);
    }

    /// Confirms a change to a found product, saying what it means for who already pays.
    fn confirm_change(
        &mut self,
        p: &CatalogProduct,
        edit: ProductEdit,
        found: &super::FoundProduct,
    ) {
        let name = p.product.name.clone();
        let mut facts = vec![Fact::new("Product", format!("{name} ({})", p.product.id))];
        let (title, body, label, edit) = match edit {
            ProductEdit::Reprice { price, .. } => {
                let old = same_billing(p, price.billing);
                let mut body = format!(
                    "Stripe's prices can't be edited, so I'll create a new price of {}, make it \
                     \"{name}\"'s default, and ",
                    price.display()
                );
                match old {
                    Some(o) => {
                        facts.push(Fact::new("Now", format!("{} ({})", o.display(), o.id)));
                        body.push_str(&format!(
                            "archive the old one ({}). Current subscribers stay on their price \
                             until you move them; new checkouts and buy links use the new one \
                             (a buy link shared for the old price stops working: share the new \
                             one).",
                            o.display()
                        ));
                    }
                    None => body.push_str(
                        "keep its other prices. Current subscribers stay on their price.",
                    ),
                }
                if found.subscribers > 0 {
                    body.push_str(&format!(
                        " {} active subscription{} keep{} paying the price {} now.",
                        found.subscribers,
                        if found.subscribers == 1 { "" } else { "s" },
                        if found.subscribers == 1 { "s" } else { "" },
                        if found.subscribers == 1 {
                            "it has"
                        } else {
                            "they have"
                        },
                    ));
                }
                facts.push(Fact::new(
                    "New price",
                    format!(
                        "{} {}, {} ({} minor units)",
                        price.amount,
                        price.amount.currency.as_str().to_ascii_uppercase(),
                        price.billing.label(),
                        price.amount.minor
                    ),
                ));
                (
                    format!("Change \"{name}\" to {}?", price.display()),
                    body,
                    "Change price",
                    ProductEdit::Reprice {
                        price,
                        old: old.map(|o| o.id.clone()),
                    },
                )
            }
            ProductEdit::Rename { name: new } => (
                format!("Rename \"{name}\" to \"{new}\"?"),
                "Its prices, buy links and subscriptions stay as they are; checkouts and \
                 receipts show the new name."
                    .to_owned(),
                "Rename",
                ProductEdit::Rename { name: new },
            ),
            ProductEdit::Describe { description } => {
                facts.push(Fact::new("Description", description.clone()));
                (
                    format!("Change \"{name}\"'s description?"),
                    "Customers see it on the checkout page.".to_owned(),
                    "Save description",
                    ProductEdit::Describe { description },
                )
            }
            ProductEdit::Archive if !p.product.active => {
                self.reply(format!("\"{name}\" is archived already."));
                return;
            }
            ProductEdit::Archive => {
                let mut body = format!(
                    "\"{name}\" stops selling: its buy links and new checkouts are refused. \
                     Nothing is deleted, and you can restore it any time."
                );
                if found.open_checkouts > 0 {
                    body.push_str(&format!(
                        " {} checkout{} already open can still be paid.",
                        found.open_checkouts,
                        if found.open_checkouts == 1 { "" } else { "s" }
                    ));
                }
                if found.subscribers > 0 {
                    body.push_str(&format!(
                        " {} active subscription{} keep{} renewing at {} price until cancelled.",
                        found.subscribers,
                        if found.subscribers == 1 { "" } else { "s" },
                        if found.subscribers == 1 { "s" } else { "" },
                        if found.subscribers == 1 {
                            "its"
                        } else {
                            "their"
                        },
                    ));
                }
                facts.push(Fact::new(
                    "Open checkouts",
                    found.open_checkouts.to_string(),
                ));
                facts.push(Fact::new(
                    "Active subscriptions",
                    found.subscribers.to_string(),
                ));
                (
                    format!("Archive \"{name}\"?"),
                    body,
                    "Archive",
                    ProductEdit::Archive,
                )
            }
            ProductEdit::Restore if p.product.active => {
                self.reply(format!("\"{name}\" is on sale already."));
                return;
            }
            ProductEdit::Restore => (
                format!("Sell \"{name}\" again?"),
                "It's restored with its prices; its buy links work again.".to_owned(),
                "Restore",
                ProductEdit::Restore,
            ),
        };
        let mut card = self.new_card(CardKind::ConfirmProductChange, &title, body);
        card.facts = facts;
        card.actions = vec![
            Action::primary("apply", label),
            Action::secondary("keep", "Keep as is"),
        ];
        self.drop_cards(|c| !matches!(c.owner, Owner::ConfirmProductChange { .. }));
        self.show(
            card,
            Owner::ConfirmProductChange {
                product: p.product.id.clone(),
                name,
                edit,
            },
        );
    }

    pub(super) fn product_change_click(&mut self, owner: &Owner, action: &str) {
        let Owner::ConfirmProductChange {
            product,
            name,
            edit,
        } = owner
        else {
            return;
        };
        if action == "apply" {
            self.call(
                Call::ChangeProduct {
                    product: product.clone(),
                    name: name.clone(),
                    edit: edit.clone(),
                },
                Purpose::Answer,
            );
        } else {
            self.reply(format!("OK, \"{name}\" stays as it is."));
        }
    }

    /// A product as the catalog stores it, with its buy link when it sells; `edit` is the
    /// change just made (`None`: it was created).
    fn product_card(&mut self, p: &CatalogProduct, buy_base: &str, edit: Option<&ProductEdit>) {
        let sellable = p.sellable();
        let name = &p.product.name;
        let title = match (edit, sellable) {
            (None, true) => format!("\"{name}\" is ready to sell"),
            (None, false) => format!("\"{name}\" was created but can't be sold yet"),
            (Some(ProductEdit::Archive), _) => format!("\"{name}\" is archived"),
            (Some(ProductEdit::Reprice { price, .. }), true) => {
                format!("\"{name}\" now sells at {}", price.display())
            }
            (Some(_), true) => format!("\"{name}\" is updated"),
            (Some(_), false) => format!("\"{name}\" is updated but can't be sold"),
        };
        let url = p
            .main_price()
            .filter(|_| sellable)
            .map(|price| format!("{buy_base}/{}", price.id));
        let mut body = match &url {
            Some(url) => format!(
                "It's in your catalog ({} mode). Its buy link, to share or put behind a Buy \
                 button (each visit opens a fresh checkout): {url}",
                self.mode.as_str()
            ),
            None => format!("It's in your catalog ({} mode).", self.mode.as_str()),
        };
        if matches!(edit, Some(ProductEdit::Reprice { .. })) {
            body.push_str(" Current subscribers stay on the price they have.");
        }
        if !matches!(edit, Some(ProductEdit::Archive)) {
            for problem in p.problems().iter().filter(|x| x.blocking) {
                body.push(' ');
                body.push_str(&problem.message);
            }
        }
        let mut card = self.new_card(CardKind::Product, &title, body);
        card.facts.push(Fact::new("Product", p.product.id.clone()));
        for price in p.active_prices() {
            let default = p.product.default_price.as_deref() == Some(price.id.as_str());
            card.facts.push(Fact::new(
                if default { "Default price" } else { "Price" },
                format!("{} ({})", price.display(), price.id),
            ));
        }
        card.facts.push(Fact::new(
            "Status",
            if sellable {
                "ready to sell"
            } else {
                "needs attention"
            },
        ));
        if let Some(url) = &url {
            card.actions.push(Action::link("buy_link", "Buy link", url));
        }
        card.actions
            .push(Action::secondary("show_catalog", "Show products"));
        self.show(card, Owner::Catalog);
    }
}

/// The active price of a product that charges as `billing` does: the default one if it does.
fn same_billing(p: &CatalogProduct, billing: Billing) -> Option<&PriceData> {
    let same = |x: &&PriceData| {
        x.active && x.recurring.as_ref().map(|r| r.interval.as_str()) == billing.interval()
    };
    p.product
        .default_price
        .as_deref()
        .and_then(|d| p.prices.iter().filter(same).find(|x| x.id == d))
        .or_else(|| p.prices.iter().find(same))
}

/// `25.00` for $25: the amount as a person types it, without the symbol.
fn decimal(m: Money) -> String {
    let exp = m.currency.exponent();
    if exp == 0 {
        return m.minor.to_string();
    }
    let scale = 10i64.pow(exp);
    format!(
        "{}.{:0width$}",
        m.minor / scale,
        (m.minor % scale).abs(),
        width = exp as usize
    )
}

/// The edit form's values as a draft, or what is wrong with each field.
fn draft_from_form(
    before: &NewProduct,
    values: &BTreeMap<String, String>,
) -> Result<NewProduct, Refusal> {
    let mut wrong = BTreeMap::new();
    let get = |k: &str| values.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let name = get("name").map(str::to_owned).unwrap_or_default();
    if name.is_empty() {
        wrong.insert("name".to_owned(), "A product needs a name.".to_owned());
    } else if name.chars().count() > 250 {
        wrong.insert("name".to_owned(), "At most 250 characters.".to_owned());
    }
    let description = get("description").map(str::to_owned);
    let currency = match get("currency") {
        None => before.prices.first().map(|p| p.amount.currency),
        Some(c) => match Currency::parse(c) {
            Some(c) if rules::currency_supported(c).is_ok() => Some(c),
            _ => {
                wrong.insert(
                    "currency".to_owned(),
                    format!(
                        "{c} isn't a currency Stripe charges in: use a 3-letter code such as USD, EUR or GBP."
                    ),
                );
                None
            }
        },
    };
    if currency.is_none() && !wrong.contains_key("currency") {
        wrong.insert(
            "currency".to_owned(),
            "Which currency? A 3-letter code such as USD.".to_owned(),
        );
    }
    let mut prices = Vec::new();
    for i in 1..=MAX_PRICES {
        let field = format!("amount_{i}");
        let Some(raw) = get(&field) else {
            if i == 1 {
                wrong.insert(field, "A product needs a price.".to_owned());
            }
            continue;
        };
        let billing = get(&format!("billing_{i}"))
            .and_then(Billing::parse)
            .unwrap_or(Billing::OneTime);
        let Some(currency) = currency else { continue };
        let raw = raw.trim_start_matches(['$', '€', '£', '¥', '₹']);
        match Money::parse_decimal(raw, currency) {
            None => {
                wrong.insert(
                    field,
                    format!(
                        "\"{raw}\" isn't an amount in {}: write it like 25 or 9.99.",
                        currency.as_str().to_ascii_uppercase()
                    ),
                );
            }
            Some(amount) => match rules::new_price(amount) {
                Ok(()) => prices.push(NewPrice { amount, billing }),
                Err(refused) => {
                    wrong.insert(field, refused.message);
                }
            },
        }
    }
    if !wrong.is_empty() {
        return Err(Refusal::InvalidValues(wrong));
    }
    Ok(NewProduct {
        name,
        description,
        prices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("usd").expect("usd"))
    }

    #[test]
    fn a_list_of_products_is_read_as_several() {
        let list = |t: &str| {
            product_list(&Slots::from([(
                "product_list".to_owned(),
                SlotValue::Text(t.to_owned()),
            )]))
        };
        let three = list("Beanie $25, Scarf $30, Gloves $15").expect("three");
        let names: Vec<&str> = three.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Beanie", "Scarf", "Gloves"]);
        assert_eq!(three[2].prices[0].amount.minor, 1500);
        let paired = list("Beanie, $25, Scarf, $30, Gloves, $20").expect("paired");
        assert_eq!(paired[1].name, "Scarf");
        assert_eq!(paired[1].prices[0].amount.minor, 3000);
        let boxes = list("Small box $10 and Large box 18 EUR").expect("two");
        assert_eq!(boxes[1].prices[0].amount.currency.as_str(), "eur");
        assert!(list("Ceramic mug, €18").is_none(), "one product");
        assert!(
            list("Beanie $25, Scarf").is_none(),
            "every item needs a price"
        );
    }

    #[test]
    fn the_form_reads_amounts_as_minor_units() {
        let before = NewProduct {
            name: "Mug".to_owned(),
            description: None,
            prices: vec![NewPrice {
                amount: usd(1800),
                billing: Billing::OneTime,
            }],
        };
        let values = BTreeMap::from([
            ("name".to_owned(), "Big mug".to_owned()),
            ("currency".to_owned(), "eur".to_owned()),
            ("amount_1".to_owned(), "15.5".to_owned()),
            ("billing_1".to_owned(), "month".to_owned()),
        ]);
        let d = draft_from_form(&before, &values).expect("valid");
        assert_eq!(d.name, "Big mug");
        assert_eq!(d.prices[0].amount.minor, 1550);
        assert_eq!(d.prices[0].amount.currency.as_str(), "eur");
        assert_eq!(d.prices[0].billing, Billing::Month);
        assert_eq!(decimal(d.prices[0].amount), "15.50");
    }

    #[test]
    fn the_form_says_what_is_wrong_with_each_field() {
        let before = NewProduct {
            name: "Mug".to_owned(),
            description: None,
            prices: vec![],
        };
        let values = BTreeMap::from([
            ("name".to_owned(), " ".to_owned()),
            ("currency".to_owned(), "xyz".to_owned()),
            ("amount_1".to_owned(), "0".to_owned()),
        ]);
        let Err(Refusal::InvalidValues(wrong)) = draft_from_form(&before, &values) else {
            panic!("refused");
        };
        assert!(wrong.contains_key("name"));
        assert!(wrong.contains_key("currency"));
        let values = BTreeMap::from([
            ("name".to_owned(), "Mug".to_owned()),
            ("currency".to_owned(), "usd".to_owned()),
            ("amount_1".to_owned(), "0".to_owned()),
        ]);
        let Err(Refusal::InvalidValues(wrong)) = draft_from_form(&before, &values) else {
            panic!("refused");
        };
        assert!(wrong["amount_1"].contains("more than zero"));
    }
}
