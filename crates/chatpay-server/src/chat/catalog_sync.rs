//! Carrying out the catalog calls: the sync (paged, rate-limited, resumable, applied atomically),
//! single-product refreshes after webhooks, and reads of the stored catalog.
//!
//! A sync run reads products, then prices, 100 per page, staging each page with the run's cursor
//! in one transaction. Interrupted (a crash, Stripe failing for too long), the next run picks up
//! the same run at its cursor. When everything is read, the new catalog is computed and swapped
//! in one transaction, on top of the version it was computed from (a webhook that changed the
//! catalog meanwhile makes it recompute). Reads made after the run's own (webhook refreshes) are
//! never overwritten by it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use chatpay_core::catalog::{self, CatalogProduct, PriceData, ProductData, SyncReport};
use chatpay_core::domain::{Mode, ProjectId, random_hex};
use chatpay_core::flows::{CallError, CatalogAnswer, FoundProduct};
use chatpay_store::{
    DynStore, OrderFilter, ProductState, RunPhase, StagedKind, StoreError, StoredProduct,
    SubscriptionFilter,
};
use chatpay_stripe::{Gateway, GatewayError, Page};

/// Microseconds since the epoch, strictly increasing within the process: two reads are never
/// taken at the same instant, so "newer" is always decidable.
fn tick() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_micros();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// How long a sync keeps waiting out a storm of 429s or an unreachable Stripe before it stops
/// (to be continued by the next run).
const PATIENCE: Duration = Duration::from_secs(180);

/// Paces requests to Stripe: at most `per_second`, evenly spaced.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second.max(0.1)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next slot.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// What a catalog call works with.
pub(super) struct Ctx {
    pub store: DynStore,
    pub gateway: Arc<dyn Gateway>,
    pub pacer: Arc<Pacer>,
    pub project: ProjectId,
    pub mode: Mode,
    pub account: String,
}

fn failed(message: impl Into<String>) -> CallError {
    CallError {
        message: message.into(),
        code: None,
    }
}

fn storage(e: StoreError) -> CallError {
    if matches!(e, StoreError::NotFound) {
        return failed("Stripe was disconnected during the sync, so nothing was stored.");
    }
    tracing::error!(error = %e, "catalog storage failed");
    failed("I couldn't store the catalog.")
}

/// Calls Stripe (paced) until it answers, waiting out rate limits and outages up to PATIENCE.
async fn patiently<T, F, Fut>(ctx: &Ctx, requests: &mut i64, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
{
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        ctx.pacer.wait().await;
        *requests += 1;
        match call().await {
            Ok(v) => return Ok(v),
            Err(e @ GatewayError::Stripe { status: 429, .. })
            | Err(e @ GatewayError::Unreachable(_))
            | Err(
                e @ GatewayError::Stripe {
                    status: 500..=599, ..
                },
            ) if started.elapsed() < PATIENCE => {
                tracing::warn!(error = %e, ?wait, "Stripe is not answering the sync yet; waiting");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(failed(e.user_message())),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, CallError> {
    serde_json::to_string(v).map_err(|e| failed(format!("could not encode: {e}")))
}

/// Reads every page of one kind, staging each with the run's cursor.
async fn read_all<T, F, Fut>(
    ctx: &Ctx,
    run: &str,
    kind: StagedKind,
    next_phase: RunPhase,
    mut cursor: Option<String>,
    requests: &mut i64,
    list: F,
) -> Result<(), CallError>
where
    T: serde::Serialize + HasId,
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, GatewayError>>,
{
    loop {
        let fetched_at = tick();
        let after = cursor.clone();
        let page = patiently(ctx, requests, || list(after.clone())).await?;
        let items = page
            .items
            .iter()
            .map(|i| Ok((i.id().to_owned(), to_json(i)?)))
            .collect::<Result<Vec<_>, CallError>>()?;
        if let Some(last) = page.items.last() {
            cursor = Some(last.id().to_owned());
        }
        let (phase, cursor_then) = if page.has_more {
            (kind_phase(kind), cursor.as_deref())
        } else {
            (next_phase, None)
        };
        ctx.store
            .catalog_stage(run, kind, &items, fetched_at, phase, cursor_then, *requests)
            .await
            .map_err(storage)?;
        if !page.has_more {
            return Ok(());
        }
    }
}

/// The phase that reads objects of `kind`.
fn kind_phase(kind: StagedKind) -> RunPhase {
    match kind {
        StagedKind::Product => RunPhase::Products,
        StagedKind::Price => RunPhase::Prices,
    }
}

pub(super) trait HasId {
    fn id(&self) -> &str;
}

impl HasId for ProductData {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for PriceData {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Runs (or continues) the project's sync and applies it.
pub(super) async fn sync(ctx: &Ctx) -> Result<SyncReport, CallError> {
    let run_id = format!("sync_{}", random_hex(10));
    let run = ctx
        .store
        .catalog_open_run(&ctx.project, ctx.mode, &run_id)
        .await
        .map_err(storage)?;
    let mut requests = run.requests;
    let outcome = async {
        if run.phase == RunPhase::Products {
            read_all(
                ctx,
                &run.id,
                StagedKind::Product,
                RunPhase::Prices,
                run.cursor.clone(),
                &mut requests,
                |after| {
                    let (gateway, mode, account) =
                        (ctx.gateway.clone(), ctx.mode, ctx.account.clone());
                    async move {
                        gateway
                            .list_products(mode, &account, after.as_deref())
                            .await
                    }
                },
            )
            .await?;
        }
        if matches!(run.phase, RunPhase::Products | RunPhase::Prices) {
            let cursor = if run.phase == RunPhase::Prices {
                run.cursor.clone()
            } else {
                None
            };
            read_all(
                ctx,
                &run.id,
                StagedKind::Price,
                RunPhase::Apply,
                cursor,
                &mut requests,
                |after| {
                    let (gateway, mode, account) =
                        (ctx.gateway.clone(), ctx.mode, ctx.account.clone());
                    async move { gateway.list_prices(mode, &account, after.as_deref()).await }
                },
            )
            .await?;
        }
        // Runs record their start in milliseconds; reads are in microseconds.
        apply(ctx, &run.id, run.started_at * 1000, requests as u64).await
    }
    .await;
    if let Err(e) = &outcome {
        // Kept with its cursor: the next sync continues this run.
        let _ = ctx.store.catalog_fail_run(&run.id, &e.message).await;
    }
    outcome
}

/// The stored product, unless it was deleted (or its JSON is no longer understood).
fn parse_product(data: &ProductState) -> Option<CatalogProduct> {
    serde_json::from_str(data.json()?).ok()
}

/// Builds the new catalog from the run's reads and swaps it in.
async fn apply(
    ctx: &Ctx,
    run: &str,
    started_at: i64,
    requests: u64,
) -> Result<SyncReport, CallError> {
    let staged = ctx.store.catalog_staged(run).await.map_err(storage)?;
    let mut products = Vec::new();
    let mut prices = Vec::new();
    // When each product (with its prices) was last read by this run.
    let mut read_at: HashMap<String, i64> = HashMap::new();
    // Consumed as parsed: each staged text is freed once read.
    for s in staged {
        match s.kind {
            StagedKind::Product => {
                let p: ProductData =
                    serde_json::from_str(&s.data).map_err(|e| failed(e.to_string()))?;
                let t = read_at.entry(p.id.clone()).or_insert(s.fetched_at);
                *t = (*t).max(s.fetched_at);
                products.push(p);
            }
            StagedKind::Price => {
                let p: PriceData =
                    serde_json::from_str(&s.data).map_err(|e| failed(e.to_string()))?;
                let t = read_at.entry(p.product.clone()).or_insert(s.fetched_at);
                *t = (*t).max(s.fetched_at);
                prices.push(p);
            }
        }
    }
    let read = catalog::assemble(products, prices);
    for _ in 0..5 {
        let current = ctx
            .store
            .catalog(&ctx.project, ctx.mode)
            .await
            .map_err(storage)?;
        // Compared with what the last sync showed (nothing, before the first one).
        let before: BTreeMap<String, CatalogProduct> = if current.synced_at.is_some() {
            current
                .products
                .iter()
                .filter_map(|p| Some((p.product_id.clone(), parse_product(&p.data)?)))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut after: BTreeMap<String, (CatalogProduct, i64)> = read
            .iter()
            .map(|(id, p)| {
                (
                    id.clone(),
                    (p.clone(), read_at.get(id).copied().unwrap_or(started_at)),
                )
            })
            .collect();
        // A product read (or deleted) by a webhook after this run read it stays as it is now.
        for stored in &current.products {
            let ours = read_at
                .get(&stored.product_id)
                .copied()
                .unwrap_or(started_at);
            if stored.observed_at > ours {
                match parse_product(&stored.data) {
                    Some(p) => {
                        after.insert(stored.product_id.clone(), (p, stored.observed_at));
                    }
                    None => {
                        after.remove(&stored.product_id);
                    }
                }
            }
        }
        let version = current.version;
        drop(current);
        // "Has been sellable" carries over from the stored catalog.
        let mut observed = HashMap::with_capacity(after.len());
        let new: BTreeMap<String, CatalogProduct> = after
            .into_iter()
            .map(|(id, (mut p, at))| {
                p.sold = p.sellable() || p.sold || before.get(&id).is_some_and(|b| b.sold);
                observed.insert(id.clone(), at);
                (id, p)
            })
            .collect();
        let mut report = catalog::report(&before, &new, requests);
        report.products_url = Some(ctx.gateway.dashboard_url(ctx.mode, &ctx.account));
        drop(before);
        let rows = new
            .iter()
            .map(|(id, p)| {
                Ok(StoredProduct {
                    product_id: id.clone(),
                    data: ProductState::Present(to_json(p)?),
                    observed_at: observed.get(id).copied().unwrap_or(started_at),
                })
            })
            .collect::<Result<Vec<_>, CallError>>()?;
        drop(new);
        match ctx
            .store
            .catalog_replace(
                &ctx.project,
                ctx.mode,
                version,
                &rows,
                run,
                &to_json(&report)?,
            )
            .await
        {
            Ok(()) => return Ok(report),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(storage(e)),
        }
    }
    Err(failed(
        "The catalog kept changing while the sync finished; try again.",
    ))
}

/// Re-reads one product after a webhook; returns it before and after.
pub(super) async fn refresh(
    ctx: &Ctx,
    product: &str,
) -> Result<(Option<CatalogProduct>, Option<CatalogProduct>), CallError> {
    let observed_at = tick();
    let mut requests = 0;
    let mut now = patiently(ctx, &mut requests, || {
        ctx.gateway
            .product_with_prices(ctx.mode, &ctx.account, product)
    })
    .await?;
    // "Has been sellable" carries over from the stored product, decided inside the store's
    // transaction: both encodings are made up front.
    let (fresh, carried) = match now.as_mut() {
        Some(p) => {
            p.sold = p.sellable();
            let fresh = ProductState::Present(to_json(p)?);
            p.sold = true;
            let carried = ProductState::Present(to_json(p)?);
            (fresh, carried)
        }
        None => (ProductState::Deleted, ProductState::Deleted),
    };
    let merge = |previous: Option<&ProductState>| -> ProductState {
        if previous.and_then(parse_product).is_some_and(|b| b.sold) {
            carried.clone()
        } else {
            fresh.clone()
        }
    };
    match ctx
        .store
        .catalog_put_product(
            &ctx.project,
            ctx.mode,
            &ctx.account,
            product,
            &merge,
            observed_at,
        )
        .await
    {
        // Before a first sync there is no catalog the owner knows of: nothing to tell.
        Ok(put) if !put.synced => Ok((None, None)),
        Ok(put) => {
            let before = put.previous.as_ref().and_then(parse_product);
            if let Some(p) = now.as_mut() {
                p.sold = p.sellable() || before.as_ref().is_some_and(|b| b.sold);
            }
            Ok((before, now))
        }
        // A newer read is stored already, or the account is no longer connected: nothing
        // to tell.
        Err(StoreError::Conflict(_) | StoreError::NotFound) => Ok((None, None)),
        Err(e) => Err(storage(e)),
    }
}

/// A product chatpay just wrote to Stripe (created it, changed its prices), stored in the
/// catalog as a webhook refresh would store it, and answered as stored. Before the first sync
/// there is no catalog to put it in: the catalog is synced then, so that it shows at once.
pub(super) async fn written(ctx: &Ctx, product: &str) -> Result<CatalogProduct, CallError> {
    if let (_, Some(p)) = refresh(ctx, product).await? {
        return Ok(p);
    }
    let stored = read(&ctx.store, &ctx.project, ctx.mode, None).await?;
    if stored.synced_at.is_none() {
        sync(ctx).await?;
    }
    // Stored already by a newer read (its webhook), or by the sync: Stripe's view is the answer.
    let mut requests = 0;
    let mut p = patiently(ctx, &mut requests, || {
        ctx.gateway
            .product_with_prices(ctx.mode, &ctx.account, product)
    })
    .await?
    .ok_or_else(|| failed("Stripe no longer has the product."))?;
    p.sold = p.sellable();
    Ok(p)
}

/// A product found by name to be changed, with who is buying it now: its checkouts still
/// open and the subscriptions (active, trialing, past due) to one of its prices.
pub(super) async fn find_for_change(
    store: &DynStore,
    project: &ProjectId,
    mode: Mode,
    wanted: &str,
) -> Result<FoundProduct, CallError> {
    use chatpay_core::billing::SubscriptionStatus;
    use chatpay_core::orders::OrderStatus;
    let answer = read(store, project, mode, Some(wanted)).await?;
    let Some(product) = answer.shown.into_iter().next() else {
        return Ok(FoundProduct::default());
    };
    let id = product.product.id.clone();
    let open = store
        .orders(
            project,
            mode,
            &OrderFilter {
                status: Some(OrderStatus::Open),
                limit: 1000,
                ..OrderFilter::default()
            },
        )
        .await
        .map_err(storage)?;
    let mut open_checkouts = 0;
    for record in &open {
        if super::orders::order_of(record)?
            .lines
            .iter()
            .any(|l| l.product == id)
        {
            open_checkouts += 1;
        }
    }
    let mut subscribers = 0;
    for status in [
        SubscriptionStatus::Active,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::PastDue,
    ] {
        let subs = store
            .subscriptions(
                project,
                mode,
                &SubscriptionFilter {
                    status: Some(status),
                    customer_email: None,
                    before: None,
                    limit: 1000,
                },
            )
            .await
            .map_err(storage)?;
        for record in &subs {
            if super::billing::subscription_of(record)?
                .items
                .iter()
                .any(|i| i.product == id)
            {
                subscribers += 1;
            }
        }
    }
    Ok(FoundProduct {
        product: Some(product),
        open_checkouts,
        subscribers,
    })
}

/// The stored catalog, for an answer.
pub(super) async fn read(
    store: &DynStore,
    project: &ProjectId,
    mode: Mode,
    wanted: Option<&str>,
) -> Result<CatalogAnswer, CallError> {
    let record = store.catalog(project, mode).await.map_err(storage)?;
    let mut products: Vec<CatalogProduct> = record
        .products
        .iter()
        .filter_map(|p| parse_product(&p.data))
        .collect();
    products.sort_by(|a, b| {
        a.product
            .name
            .to_lowercase()
            .cmp(&b.product.name.to_lowercase())
    });
    let total = products.len();
    let sellable = products.iter().filter(|p| p.sellable()).count();
    let shown = match wanted {
        Some(w) => catalog::find_by_name(&products, w)
            .cloned()
            .into_iter()
            .collect(),
        None => products,
    };
    Ok(CatalogAnswer {
        report: record
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        synced_at: record.synced_at,
        total,
        sellable,
        shown,
        wanted: wanted.map(str::to_owned),
        buy_base: None,
    })
}
