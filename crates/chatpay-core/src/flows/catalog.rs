//! `catalog_sync`, and the catalog answers ("what products do I have?", "how much is Pro?").
//!
//! A sync is one long call (`Call::SyncCatalog`) that pages through Stripe within its rate limit
//! and applies the result atomically; the flow shows its progress and its result. A second
//! request while a sync runs joins it (one run per project). Product and price webhooks refresh
//! single products and tell the chat when one stops (or starts) being sellable.

use serde::{Deserialize, Serialize};

use super::answers::format_deadline;
use super::{
    ActiveFlow, Call, CallError, CallOutput, CatalogAnswer, Entry, FlowKind, FlowStep, Owner,
    Pending, Purpose, Turn,
};
use crate::account::AccountState;
use crate::cards::{Action, CardKind, Fact, Style};
use crate::catalog::{CatalogProduct, SyncReport};
use crate::intents::{SlotValue, Slots};

/// The product a "how much is …?" asks about, if any.
pub fn wanted_product(slots: &Slots) -> Option<&str> {
    slots.get("product").and_then(SlotValue::as_text)
}

/// The steps of `catalog_sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum CatalogStep {
    Syncing,
}

impl CatalogStep {
    pub fn name(&self) -> &'static str {
        match self {
            CatalogStep::Syncing => "syncing",
        }
    }
}

/// Products listed in full on a catalog card; the rest are counted.
const LISTED: usize = 10;

impl Turn<'_, '_> {
    fn sync_running(&self) -> bool {
        self.state
            .flow
            .as_ref()
            .is_some_and(|f| f.kind == FlowKind::CatalogSync)
    }

    /// Whether a catalog can be had at all; says why not otherwise.
    pub(super) fn catalog_ready(&mut self) -> bool {
        if !self.facts.backend {
            self.backend_required();
            return false;
        }
        if self.connection.is_none() {
            self.reply(
                "Your products come from your Stripe account, and Stripe isn't connected to this project yet. Connect it first:",
            );
            if self.state.flow.is_none() {
                self.offer_connect();
            } else {
                self.present_step();
            }
            return false;
        }
        true
    }

    /// "Sync my products", the Integrations panel's Sync button, or a retry.
    pub(super) fn start_sync(&mut self, entry: Entry) {
        if self.sync_running() {
            if entry == Entry::Chat {
                self.reply("A sync is already running; its result will appear here.");
            }
            self.present_step();
            return;
        }
        if !self.catalog_ready() {
            return;
        }
        if let Some(flow) = &self.state.flow
            && flow.kind == FlowKind::StripeConnect
        {
            self.reply("Let's finish connecting Stripe first, or say \"cancel\".");
            self.present_step();
            return;
        }
        let state = self.connection.as_ref().map(|c| c.account.state());
        if state == Some(AccountState::Rejected) {
            self.reply("Heads up: Stripe rejected this account, so its products can't be sold even once synced.");
        }
        self.state.next_flow += 1;
        let instance = self.state.next_flow;
        let mut card = self.new_card(
            CardKind::CatalogSync,
            "Syncing your products",
            "Reading your products and prices from Stripe, within Stripe's rate limits. The result appears here when it's done.".to_owned(),
        );
        card.facts = vec![Fact::new("Mode", self.mode.as_str())];
        self.state.flow = Some(ActiveFlow {
            instance,
            kind: FlowKind::CatalogSync,
            step: FlowStep::CatalogSync(CatalogStep::Syncing),
            card: Some(card.clone()),
            mode: Some(self.mode),
        });
        self.flow_frame(FlowKind::CatalogSync, CatalogStep::Syncing.name());
        self.show_info(card);
        self.call(Call::SyncCatalog, Purpose::Flow(instance));
    }

    /// "What products do I have?" / "How much is the Pro plan?", answered from the stored
    /// catalog, which the server reads for it (`Call::ReadCatalog`).
    pub(super) fn show_catalog(&mut self, wanted: Option<String>, links: bool) {
        if !self.catalog_ready() {
            return;
        }
        self.call(Call::ReadCatalog { wanted, links }, Purpose::Answer);
    }

    pub(super) fn catalog_click(&mut self, action: &str) {
        match action {
            "sync_catalog" | "retry" => self.start_sync(Entry::Chat),
            _ => self.show_catalog(None, false),
        }
    }

    /// A product or price webhook.
    pub(super) fn catalog_changed(&mut self, product: String) {
        if self.connection.is_some() {
            self.call(Call::RefreshProduct { product }, Purpose::Catalog);
        }
    }

    pub(super) fn catalog_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        let said_before = self.effects.len();
        let refresh = matches!(pending.call, Call::RefreshProduct { .. });
        match (pending.call, result) {
            (Call::ReadCatalog { links, .. }, Ok(CallOutput::Catalog(answer))) => {
                self.catalog_answer(&answer, links)
            }
            (Call::ReadCatalog { .. }, _) => {
                self.reply("I couldn't read your catalog just now; please ask again.")
            }
            (Call::SyncCatalog, result) => {
                if self
                    .state
                    .flow
                    .take_if(|f| f.kind == FlowKind::CatalogSync)
                    .is_none()
                {
                    return;
                }
                match result {
                    Ok(CallOutput::Synced(report)) => {
                        self.flow_frame(FlowKind::CatalogSync, "done");
                        self.sync_result(&report);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.flow_frame(FlowKind::CatalogSync, "failed");
                        let mut card = self.new_card(
                            CardKind::CatalogSync,
                            "The sync stopped",
                            format!(
                                "{} Nothing was half-changed: your catalog is as it was. Retrying continues from where it stopped.",
                                e.message
                            ),
                        );
                        card.actions = vec![Action::primary("retry", "Retry")];
                        self.drop_cards(|c| c.owner != Owner::Catalog);
                        self.show(card, Owner::Catalog);
                    }
                }
            }
            (
                Call::RefreshProduct { product },
                Ok(CallOutput::ProductRefreshed { before, after }),
            ) => {
                // A change chatpay is making to this product is told by its own card when it
                // is done; the webhooks it causes are not news.
                let ours = self.state.pending.iter().any(
                    |p| matches!(&p.call, Call::ChangeProduct { product: id, .. } if *id == product),
                );
                if !ours {
                    self.product_changed(before.as_deref(), after.as_deref())
                }
            }
            _ => {}
        }
        // A message pushed in the middle of a flow brings its step back.
        if refresh && self.effects.len() > said_before {
            self.present_step();
        }
    }

    fn sync_result(&mut self, r: &SyncReport) {
        let mut body = if r.products == 1 {
            format!("{} of 1 product is ready to sell.", r.sellable)
        } else {
            format!(
                "{} of {} products are ready to sell.",
                r.sellable, r.products
            )
        };
        let list = |names: &[String]| -> String {
            let mut s = names
                .iter()
                .take(LISTED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > LISTED {
                s.push_str(&format!(" and {} more", names.len() - LISTED));
            }
            s
        };
        let d = &r.diff;
        // An empty catalog says so below; "nothing changed" would be wrong on a first sync
        // (a project's first live sync finds no products and has no last sync).
        if d.added.is_empty() && d.changed.is_empty() && d.removed.is_empty() && r.products > 0 {
            body.push_str(" Nothing changed since the last sync.");
        }
        if !d.added.is_empty() {
            body.push_str(&format!(" Added: {}.", list(&d.added)));
        }
        if !d.changed.is_empty() {
            body.push_str(&format!(" Changed: {}.", list(&d.changed)));
        }
        if !d.removed.is_empty() {
            body.push_str(&format!(" Removed: {}.", list(&d.removed)));
        }
        if r.products == 0 {
            body.push_str(" Your Stripe account has no products yet: add them in the Stripe Dashboard (Products), then sync again.");
        }
        if r.products > 0 && !r.diff.added.is_empty() {
            body.push_str(" Say \"send me the buy links\" for links that sell them.");
        }
        let mut facts = vec![
            Fact::new("Mode", self.mode.as_str()),
            Fact::new("Products", r.products.to_string()),
            Fact::new("Ready to sell", r.sellable.to_string()),
            Fact::new("Need attention", r.attention.len().to_string()),
        ];
        for (name, problems) in r.attention.iter().take(LISTED) {
            facts.push(Fact::new(name, problems.join(" ")));
        }
        if r.attention.len() > LISTED {
            facts.push(Fact::new(
                "…",
                format!("{} more need attention", r.attention.len() - LISTED),
            ));
        }
        let mut card = self.facts_card(CardKind::CatalogSync, "Catalog synced", body, facts);
        card.actions = vec![
            Action::secondary("show_catalog", "Show products"),
            Action::secondary("sync_catalog", "Sync again"),
        ];
        if let Some(url) = &r.products_url {
            let add = Action::link("add_products", "Add products in Stripe", url);
            if r.products == 0 {
                card.actions.insert(0, add);
            } else {
                card.actions.push(Action {
                    style: Style::Secondary,
                    ..add
                });
            }
        }
        self.drop_cards(|c| c.owner != Owner::Catalog);
        self.show(card, Owner::Catalog);
    }

    fn catalog_answer(&mut self, a: &CatalogAnswer, links: bool) {
        // A sellable product's link to its main price: a fresh checkout for whoever opens it.
        let buy_url = |p: &CatalogProduct| -> Option<String> {
            let base = a.buy_base.as_deref()?;
            let price = p.main_price().filter(|_| p.sellable())?;
            Some(format!("{base}/{}", price.id))
        };
        let Some(synced_at) = a.synced_at else {
            let mut card = self.new_card(
                CardKind::Catalog,
                "No products synced yet",
                "Sync your products from Stripe to see them here.".to_owned(),
            );
            card.actions = vec![Action::primary("sync_catalog", "Sync products")];
            self.drop_cards(|c| c.owner != Owner::Catalog);
            self.show(card, Owner::Catalog);
            return;
        };
        if let Some(wanted) = &a.wanted {
            match a.shown.first() {
                Some(p) => {
                    let prices: Vec<String> = p.active_prices().map(|price| price.display()).collect();
                    let main = p.main_price().map(|m| m.display());
                    let mut text = match main {
                        Some(m) => format!("'{}' costs {m}", p.product.name),
                        None => format!("'{}' has no price it can be sold at", p.product.name),
                    };
                    if prices.len() > 1 {
                        text.push_str(&format!(" (all prices: {})", prices.join(", ")));
                    }
                    text.push('.');
                    if let Some(blocking) = p.problems().into_iter().find(|p| p.blocking) {
                        text.push(' ');
                        text.push_str(&blocking.message);
                    }
                    if let Some(url) = buy_url(p) {
                        text.push_str(&format!(
                            " Its buy link, to share or put behind a Buy button (each visit opens a fresh checkout): {url}"
                        ));
                    } else if links {
                        text.push_str(" It has no buy link until it can be sold.");
                    }
                    self.reply(text);
                }
                None => self.reply(format!(
                    "I couldn't find a product called \"{wanted}\" among your {} products. Say \"what products do I have?\" to see them.",
                    a.total
                )),
            }
            return;
        }
        let mut facts: Vec<Fact> = a
            .shown
            .iter()
            .take(LISTED)
            .map(|p| {
                let price = p
                    .main_price()
                    .map_or_else(|| "no price".to_owned(), |m| m.display());
                let state = if p.sellable() {
                    ""
                } else {
                    " (needs attention)"
                };
                Fact::new(&p.product.name, format!("{price}{state}"))
            })
            .collect();
        if a.total > LISTED {
            facts.push(Fact::new("…", format!("{} more", a.total - LISTED)));
        }
        let mut card = self.facts_card(
            CardKind::Catalog,
            "Your products",
            format!(
                "{} product{}, {} ready to sell ({} mode; synced {}).",
                a.total,
                if a.total == 1 { "" } else { "s" },
                a.sellable,
                self.mode.as_str(),
                format_deadline(synced_at)
            ),
            facts,
        );
        card.actions = vec![Action::secondary("sync_catalog", "Sync again")];
        if links {
            // The links themselves, for the first few sellable products.
            for (i, (p, url)) in a
                .shown
                .iter()
                .filter_map(|p| Some((p, buy_url(p)?)))
                .take(LISTED)
                .enumerate()
            {
                card.actions.insert(
                    i,
                    Action::link(
                        &format!("buy_{}", i + 1),
                        &format!("Buy link: {}", p.product.name),
                        &url,
                    ),
                );
            }
            card.body.push_str(
                " Each product's buy link opens a fresh checkout: share it, or put it behind a Buy button. Ask \"buy link for <product>\" for one.",
            );
        }
        self.drop_cards(|c| c.owner != Owner::Catalog);
        self.show(card, Owner::Catalog);
    }

    /// Tells the chat when a product stops or starts being sellable.
    fn product_changed(&mut self, before: Option<&CatalogProduct>, after: Option<&CatalogProduct>) {
        let was = before.is_some_and(CatalogProduct::sellable);
        match after {
            Some(p) if was && !p.sellable() => {
                let why: Vec<String> = p
                    .problems()
                    .into_iter()
                    .filter(|x| x.blocking)
                    .map(|x| x.message)
                    .collect();
                self.reply(format!(
                    "'{}' can't be sold any more. {}",
                    p.product.name,
                    why.join(" ")
                ));
            }
            // Only news for a product that sold before (not one created before its price).
            Some(p) if !was && p.sellable() && before.is_some_and(|b| b.sold) => {
                self.reply(format!("'{}' can be sold again.", p.product.name));
            }
            None if was => {
                let name = before
                    .map(|b| b.product.name.as_str())
                    .unwrap_or("A product");
                self.reply(format!(
                    "'{name}' was deleted in Stripe and can't be sold any more."
                ));
            }
            _ => {}
        }
    }
}
