//! What the go-live checklist needs, gathered for the pure flow (`Call::CheckLive`): the live
//! connection's account read again from Stripe with the live key (a stored snapshot may be
//! days old), the stored live catalog, whether the webhook ledger holds a signed live event
//! about that account, and whether a live key is configured. The flow's `checklist` decides
//! what passes; this only reads. And the checklist's fix for the catalog: copying the test
//! catalog to live (`copy_catalog`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chatpay_core::catalog;
use chatpay_core::domain::{Mode, ProjectId};
use chatpay_core::flows::{CallError, CopiedItem, CopyReport, LiveFacts};
use chatpay_store::DynStore;
use chatpay_stripe::Gateway;

use super::catalog_sync::{Ctx, Pacer};

pub(super) async fn check(
    store: &DynStore,
    gateway: &dyn Gateway,
    project: &ProjectId,
) -> Result<LiveFacts, CallError> {
    let storage = |e: chatpay_store::StoreError| {
        tracing::error!(error = %e, "reading the go-live checklist's rows failed");
        CallError {
            message: "the stored data couldn't be read".to_owned(),
            code: None,
        }
    };
    let connection = store
        .connection(project, Mode::Live)
        .await
        .map_err(storage)?;
    let account = match &connection {
        None => None,
        Some(c) => Some(
            gateway
                .retrieve_account(Mode::Live, &c.account_id)
                .await
                .map_err(|e| {
                    tracing::warn!(account = %c.account_id, error = %e, "go-live: reading the live account failed");
                    e.user_message()
                }),
        ),
    };
    let catalog = super::catalog_sync::read(store, project, Mode::Live, None).await?;
    let catalog = catalog.synced_at.map(|_| (catalog.total, catalog.sellable));
    let test_sellable = super::catalog_sync::read(store, project, Mode::Test, None)
        .await?
        .sellable;
    let signed_live_event = match &connection {
        Some(c) => store
            .has_event_for(&c.account_id, true)
            .await
            .map_err(storage)?,
        None => false,
    };
    Ok(LiveFacts {
        account,
        catalog,
        signed_live_event,
        live_key: gateway.has_key(Mode::Live),
        test_sellable,
    })
}

/// Copies the test catalog to live mode (`Call::CopyCatalog`): what to copy is the core's
/// rule (`catalog::copy_plan`, `catalog::code_copy`); this reads both modes, makes each item
/// on the live account with a key derived from the project and the test item's id
/// (`chatpay:copy:{project}:{test id}`, each request with a suffix of its own), so a double
/// click, a retry or a crash makes each item once, and then syncs the live catalog.
pub(super) async fn copy_catalog(
    store: &DynStore,
    gateway: &Arc<dyn Gateway>,
    pacer: Arc<Pacer>,
    project: &ProjectId,
) -> Result<CopyReport, CallError> {
    let storage = |e: chatpay_store::StoreError| {
        tracing::error!(error = %e, "reading the connections to copy the catalog failed");
        CallError {
            message: "the stored data couldn't be read".to_owned(),
            code: None,
        }
    };
    let stripe = |e: chatpay_stripe::GatewayError| {
        tracing::warn!(error = %e, "copying the catalog to live mode failed");
        CallError {
            message: e.user_message(),
            code: e.code().map(str::to_owned),
        }
    };
    let (Some(test), Some(live)) = (
        store
            .connection(project, Mode::Test)
            .await
            .map_err(storage)?,
        store
            .connection(project, Mode::Live)
            .await
            .map_err(storage)?,
    ) else {
        return Err(CallError {
            message: "both a test and a live Stripe account must be connected".to_owned(),
            code: None,
        });
    };
    let ctx = Ctx {
        store: Arc::clone(store),
        gateway: Arc::clone(gateway),
        pacer,
        project: project.clone(),
        mode: Mode::Live,
        account: live.account_id.clone(),
    };
    // What live mode has now, read from Stripe (the stored live catalog may be missing).
    super::catalog_sync::sync(&ctx).await?;
    let test_products = super::catalog_sync::read(store, project, Mode::Test, None)
        .await?
        .shown;
    let live_products = super::catalog_sync::read(store, project, Mode::Live, None)
        .await?
        .shown;
    let key = |test_id: &str| format!("chatpay:copy:{project}:{test_id}");
    let mut report = CopyReport::default();
    let mut live_of: BTreeMap<String, String> = BTreeMap::new();
    for item in catalog::copy_plan(&test_products, &live_products) {
        let (live_id, existed) = match (&item.live, &item.new) {
            (Some(id), _) => (id.clone(), true),
            (None, Some(new)) => (
                gateway
                    .create_product(Mode::Live, &live.account_id, new, &key(&item.test))
                    .await
                    .map_err(stripe)?,
                false,
            ),
            (None, None) => continue,
        };
        live_of.insert(item.test.clone(), live_id.clone());
        report.items.push(CopiedItem {
            kind: "product",
            name: item.name.clone(),
            test: item.test.clone(),
            live: live_id.clone(),
            existed,
        });
        // Which live price each test price became: same amount, currency and billing.
        let (Some(t), Some(l)) = (
            test_products.iter().find(|p| p.product.id == item.test),
            gateway
                .product_with_prices(Mode::Live, &live.account_id, &live_id)
                .await
                .map_err(stripe)?,
        ) else {
            continue;
        };
        for tp in t.active_prices() {
            let same = |lp: &&chatpay_core::catalog::PriceData| {
                lp.active
                    && lp.unit_amount == tp.unit_amount
                    && lp.currency == tp.currency
                    && lp
                        .recurring
                        .as_ref()
                        .map(|r| (&r.interval, r.interval_count))
                        == tp
                            .recurring
                            .as_ref()
                            .map(|r| (&r.interval, r.interval_count))
            };
            if let Some(lp) = l.prices.iter().find(same) {
                report.items.push(CopiedItem {
                    kind: "price",
                    name: tp
                        .money()
                        .map_or_else(|| tp.id.clone(), |m| price_label(m, tp)),
                    test: tp.id.clone(),
                    live: lp.id.clone(),
                    existed,
                });
            }
        }
    }
    let now = chrono::Utc::now().timestamp();
    let live_codes = gateway
        .list_codes(Mode::Live, &live.account_id, None)
        .await
        .map_err(stripe)?;
    for code in gateway
        .list_codes(Mode::Test, &test.account_id, None)
        .await
        .map_err(stripe)?
        .into_iter()
        .filter(|c| c.active)
    {
        if let Some(there) = live_codes
            .iter()
            .find(|l| l.active && l.code.eq_ignore_ascii_case(&code.code))
        {
            report.items.push(CopiedItem {
                kind: "code",
                name: code.code.clone(),
                test: code.id.clone(),
                live: there.id.clone(),
                existed: true,
            });
            continue;
        }
        let Some(new) = catalog::code_copy(&code, now, |p| live_of.get(p).cloned()) else {
            report.skipped.push(format!(
                "{} (expired, used up or for products not copied)",
                code.code
            ));
            continue;
        };
        let made = gateway
            .create_code(Mode::Live, &live.account_id, &new, &key(&code.id))
            .await
            .map_err(stripe)?;
        report.items.push(CopiedItem {
            kind: "code",
            name: code.code.clone(),
            test: code.id.clone(),
            live: made.id,
            existed: false,
        });
    }
    report.live_sellable = super::catalog_sync::sync(&ctx).await?.sellable;
    Ok(report)
}

/// `$25.00 one-time`, `$12.00 / month`.
fn price_label(m: chatpay_core::domain::Money, p: &chatpay_core::catalog::PriceData) -> String {
    match &p.recurring {
        Some(r) => format!("{m} / {}", r.interval),
        None => format!("{m} one-time"),
    }
}
