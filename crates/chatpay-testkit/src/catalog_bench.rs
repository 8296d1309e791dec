//! `chatpay bench --catalog N`: syncs an N-product catalog from the built-in sandbox, with
//! Stripe's test-mode rate limit (25 requests/s) enforced by the sandbox, through the real
//! server: the HTTP sync endpoint starts the `catalog_sync` flow and the run ends when the
//! flow's `done` frame reaches a chat client. Reports the time against the rate-limit floor
//! (every page the sync must read, at 25 per second) and the process's peak memory.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use super::transcript::Setup;
use super::{Backend, Run, Transcript};
use chatpay_core::domain::Mode;
use stripe_sandbox::{SeedCatalog, SeedReport};

/// Stripe's test-mode limit, which the sandbox enforces during the run.
const STRIPE_TEST_PER_SECOND: f64 = 25.0;
/// Objects per list page.
const PAGE: u32 = 100;
/// How long the sync may take before the benchmark gives up.
const LIMIT: Duration = Duration::from_secs(600);

/// What one catalog sync measured.
#[derive(Debug, Clone)]
pub struct CatalogBench {
    pub seeded: SeedReport,
    /// From the sync request to the flow's `done` frame.
    pub elapsed: Duration,
    /// Requests the sync made to Stripe (from its report: all attempts, retries included).
    pub requests: u64,
    /// The fewest list requests that can read the catalog: every product page and every price
    /// page.
    pub pages: u64,
    /// `pages` at 25 requests/s.
    pub floor: Duration,
    /// Products ready to sell and products needing attention, per the report.
    pub sellable: usize,
    pub attention: usize,
    /// Resident memory of the whole process (server and sandbox) before the sync, and its peak
    /// during the sync, in KiB.
    pub rss_before_kib: Option<u64>,
    pub peak_kib: Option<u64>,
}

impl std::fmt::Display for CatalogBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.seeded;
        writeln!(
            f,
            "catalog: {} products ({} archived, {} without a price), {} prices",
            s.products, s.archived, s.without_price, s.prices
        )?;
        writeln!(
            f,
            "sync: {:.2} s, {} requests ({} pages); floor at 25 requests/s: {:.2} s ({:.0}% of the floor)",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.pages,
            self.floor.as_secs_f64(),
            100.0 * self.elapsed.as_secs_f64() / self.floor.as_secs_f64().max(f64::EPSILON),
        )?;
        writeln!(
            f,
            "result: {} ready to sell, {} need attention",
            self.sellable, self.attention
        )?;
        match (self.rss_before_kib, self.peak_kib) {
            (Some(before), Some(peak)) => write!(
                f,
                "memory (server and sandbox in one process): {:.1} MiB before the sync, peak {:.1} MiB during it (+{:.1} MiB)",
                before as f64 / 1024.0,
                peak as f64 / 1024.0,
                peak.saturating_sub(before) as f64 / 1024.0
            ),
            _ => write!(f, "memory: not available on this system"),
        }
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resets the process's peak resident memory to its current value (Linux), so that the peak
/// read afterwards belongs to what ran in between.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub async fn catalog_bench(products: u32, backend: &Backend) -> anyhow::Result<CatalogBench> {
    let transcript = Transcript {
        name: format!("catalog bench ({products} products)"),
        description: String::new(),
        setup: Setup {
            connected: true,
            stripe_rate_limit: true,
            ..Setup::default()
        },
        turns: Vec::new(),
    };
    let (mut run, _db) = Run::open(&transcript, backend).await?;
    let result = measure(&mut run, products).await;
    run.close().await;
    result
}

async fn measure(run: &mut Run<'_>, products: u32) -> anyhow::Result<CatalogBench> {
    run.play().await.context("connecting Stripe")?;
    let account = super::stripe_steps::account_id(run).await?;
    let seeded = run
        .sandbox
        .seed_catalog(&SeedCatalog {
            account: Some(account),
            livemode: false,
            products,
            currencies: Vec::new(),
            emit_events: false,
        })
        .map_err(|e| anyhow!("seeding the sandbox: {e:?}"))?;
    // The connect prelude used some of the rate limit's burst; start the sync with a full
    // bucket, as a project would after a quiet second.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let peak_known = reset_peak();
    let rss_before_kib = status_kib("VmRSS:");
    let path = format!(
        "/v1/projects/{}/integrations/stripe/catalog/sync",
        run.project
    );
    let started = Instant::now();
    let (status, body) = run
        .api("POST", &path, Some(&run.token), Some(&json!({})))
        .await?;
    if status != 202 {
        bail!("the sync endpoint answered {status}: {body}");
    }
    let client = &mut run.clients[0];
    loop {
        let remaining = LIMIT
            .checked_sub(started.elapsed())
            .ok_or_else(|| anyhow!("the sync did not finish within {LIMIT:?}"))?;
        let f = client.next(remaining).await?;
        if f["type"] == "flow" && f["flow"] == "catalog_sync" {
            match f["state"].as_str() {
                Some("done") => break,
                Some("failed") => bail!("the sync failed: {f}"),
                _ => {}
            }
        }
    }
    let elapsed = started.elapsed();
    let peak_kib = if peak_known {
        status_kib("VmHWM:")
    } else {
        None
    };

    let store = chatpay_store::connect(&run.config.database_url).await?;
    let project = chatpay_core::domain::ProjectId::parse(&run.project)
        .ok_or_else(|| anyhow!("the server gave a malformed project id {:?}", run.project))?;
    let record = store.catalog(&project, Mode::Test).await?;
    let report: chatpay_core::catalog::SyncReport = serde_json::from_str(
        record
            .report
            .as_deref()
            .ok_or_else(|| anyhow!("the sync stored no report"))?,
    )?;
    let pages = u64::from(seeded.products.div_ceil(PAGE).max(1))
        + u64::from(seeded.prices.div_ceil(PAGE).max(1));
    Ok(CatalogBench {
        elapsed,
        requests: report.requests,
        pages,
        floor: Duration::from_secs_f64(pages as f64 / STRIPE_TEST_PER_SECOND),
        sellable: report.sellable,
        attention: report.attention.len(),
        rss_before_kib,
        peak_kib,
        seeded,
    })
}
