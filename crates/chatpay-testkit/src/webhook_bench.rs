//! `chatpay bench --webhooks N`: webhook ingestion through the real server. It sets up P
//! projects, each connected to its own Stripe account in the built-in sandbox (OAuth, as the
//! transcripts' `connected = true` does), with a one-product synced catalog and a few paid
//! orders (some refunded) that the server has not heard about yet (webhook delivery is off while
//! they are paid). Then it POSTs N signed events to `/v1/webhooks/stripe` over loopback HTTP
//! from C connections: mostly selling events for those orders, some `account.updated`, some
//! types chatpay doesn't act on, and a share of exact redeliveries of earlier events. It reports
//! events/s until every response is 2xx, the latency of each POST, how long until the ledger
//! holds no unapplied event, and the machine's floors measured in the same run.
//!
//! Each order event makes the project's conversation re-read the order from the sandbox, so the
//! sandbox (in this process, on the same cores) is part of what is measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use super::client::Client;
use super::transcript::{Setup, StripeStep};
use super::{Backend, Run, Transcript};
use chatpay_http_client::HttpClient;
use stripe_sandbox::TestPayment;

/// What the benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Events to POST, redeliveries included.
    pub events: usize,
    pub projects: usize,
    /// Paid orders per project.
    pub orders: usize,
    /// Concurrent HTTP connections.
    pub concurrency: usize,
    /// The share of events that are exact redeliveries of earlier ones.
    pub duplicates: f64,
}

/// A selling event as Stripe would send it: its type, account and object (as the API shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub kind: String,
    pub account: String,
    pub object: Value,
}

/// An event as it is POSTed.
#[derive(Debug, Clone)]
pub struct BenchEvent {
    pub id: String,
    pub kind: String,
    pub body: String,
    /// An exact redelivery (same id and body) of an event earlier in the stream.
    pub duplicate: bool,
}

/// Event types chatpay records and acknowledges without acting on them.
const UNHANDLED: &[&str] = &["customer.created", "payout.paid", "balance.available"];

/// Small deterministic generator (xorshift64*), so a run can be repeated exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The event stream: `n` events, `round(n × duplicate_share)` of them exact redeliveries spread
/// evenly through the stream, each repeating an event sent at least `lag` new events earlier
/// when there are that many (a redelivery comes after the first attempt, not beside it). Of the
/// new events, eight in ten are the selling `templates` in turn (each time with a fresh id),
/// one `account.updated` for one of `accounts`, one a type chatpay doesn't act on.
pub fn event_mix(
    templates: &[Template],
    accounts: &[(String, Value)],
    n: usize,
    duplicate_share: f64,
    lag: usize,
    created: i64,
    seed: u64,
) -> Vec<BenchEvent> {
    let dups = ((n as f64) * duplicate_share.clamp(0.0, 1.0)).round() as usize;
    let mut rng = Rng(seed | 1);
    let mut out: Vec<BenchEvent> = Vec::with_capacity(n);
    let mut fresh: Vec<usize> = Vec::new();
    let mut selling = 0usize;
    for i in 0..n {
        // Bresenham: position i is a redelivery when the running quota steps up there.
        let duplicate = n > 0 && (i + 1) * dups / n > i * dups / n && !fresh.is_empty();
        if duplicate {
            let pool = if fresh.len() > lag {
                fresh.len() - lag
            } else {
                fresh.len()
            };
            let mut event = out[fresh[rng.below(pool)]].clone();
            event.duplicate = true;
            out.push(event);
            continue;
        }
        let u = fresh.len();
        let id = format!("evt_bench{u:08}{:08x}", rng.next() as u32);
        let (kind, account, object) = match u % 10 {
            8 if !accounts.is_empty() => {
                let (account, object) = accounts[(u / 10) % accounts.len()].clone();
                ("account.updated".to_owned(), account, object)
            }
            9 if !accounts.is_empty() => (
                UNHANDLED[(u / 10) % UNHANDLED.len()].to_owned(),
                accounts[(u / 10) % accounts.len()].0.clone(),
                json!({ "id": format!("obj_{u}"), "object": "unknown" }),
            ),
            _ if !templates.is_empty() => {
                let t = &templates[selling % templates.len()];
                selling += 1;
                (t.kind.clone(), t.account.clone(), t.object.clone())
            }
            _ => (
                UNHANDLED[0].to_owned(),
                String::new(),
                json!({ "id": format!("obj_{u}") }),
            ),
        };
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
            "account": account,
            "data": { "object": object },
        })
        .to_string();
        fresh.push(out.len());
        out.push(BenchEvent {
            id,
            kind,
            body,
            duplicate: false,
        });
    }
    out
}

/// A rate and the median time of one operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floor {
    pub per_second: f64,
    pub p50_ms: f64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct WebhookBench {
    pub backend: String,
    pub projects: usize,
    pub orders: usize,
    pub concurrency: usize,
    pub events: usize,
    pub duplicates_sent: usize,
    pub kinds: Vec<(String, usize)>,
    /// From the first POST to the last 2xx.
    pub ingest: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first POST until the ledger holds no unapplied event.
    pub applied: Duration,
    /// Responses that said `duplicate: true`.
    pub duplicates_acknowledged: usize,
    /// Frames the projects' chat clients received during the run.
    pub frames_pushed: u64,
    /// Orders the server holds as paid or refunded afterwards, of those made.
    pub orders_settled: usize,
    /// One-row durable commits, one after another, on the benchmark's database.
    pub commit_floor: Floor,
    /// `GET /healthz` on the same server from the same C connections.
    pub http_floor: Floor,
    /// The same, one connection, one request at a time.
    pub http_serial: Floor,
    /// `GET /v1/checkout/sessions/{id}` on the sandbox from C connections (a refresh makes
    /// several such reads).
    pub sandbox_floor: Floor,
    /// Requests the sandbox (Stripe) answered from the first POST until every event was
    /// applied: the re-reads the events caused.
    pub stripe_requests: u64,
    /// CPU time this process (server, sandbox, load client, SQLite writer) used from the first
    /// POST until every event was applied, when the system reports it; with a machine shared
    /// with other work, CPU per event says more than events per second.
    pub cpu: Option<Duration>,
}

impl std::fmt::Display for WebhookBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.ingest.as_secs_f64().max(f64::EPSILON);
        writeln!(
            f,
            "setup: {} ({} projects, each its own connected account, {} paid orders each, some refunded)",
            self.backend, self.projects, self.orders
        )?;
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            f,
            "events: {} over {} connections, {} redeliveries ({:.1}%); {}",
            self.events,
            self.concurrency,
            self.duplicates_sent,
            100.0 * self.duplicates_sent as f64 / self.events.max(1) as f64,
            kinds.join(", ")
        )?;
        writeln!(
            f,
            "ingestion: {:.2} s, {:.0} events/s (every response 2xx); latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            secs,
            self.events as f64 / secs,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )?;
        writeln!(
            f,
            "applied: every event applied {:.2} s after the first POST ({:.0} events/s); {} redeliveries acknowledged as duplicates; {} frames pushed to the chats; {} of {} orders paid or refunded in the server",
            self.applied.as_secs_f64(),
            self.events as f64 / self.applied.as_secs_f64().max(f64::EPSILON),
            self.duplicates_acknowledged,
            self.frames_pushed,
            self.orders_settled,
            self.projects * self.orders
        )?;
        writeln!(
            f,
            "stripe: {} API requests while applying them (re-reads of orders and accounts; the other events showed nothing the server did not hold)",
            self.stripe_requests
        )?;
        if let Some(cpu) = self.cpu {
            writeln!(
                f,
                "cpu: {:.2} s of this process's CPU over the events ({:.0} µs per event; {:.0} events/s if it had 2 cores to itself)",
                cpu.as_secs_f64(),
                1e6 * cpu.as_secs_f64() / self.events.max(1) as f64,
                2.0 * self.events as f64 / cpu.as_secs_f64().max(f64::EPSILON)
            )?;
        }
        write!(
            f,
            "floors: one-row durable commit {:.0}/s (p50 {:.3} ms); empty HTTP round trip {:.0}/s over {} connections (p50 {:.3} ms), {:.0}/s on one (p50 {:.3} ms); sandbox GET of a checkout {:.0}/s over {} connections (p50 {:.3} ms)",
            self.commit_floor.per_second,
            self.commit_floor.p50_ms,
            self.http_floor.per_second,
            self.concurrency,
            self.http_floor.p50_ms,
            self.http_serial.per_second,
            self.http_serial.p50_ms,
            self.sandbox_floor.per_second,
            self.concurrency,
            self.sandbox_floor.p50_ms,
        )
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

/// A project of the set-up: its id, its account, its chat client, its orders' checkouts.
struct Shop {
    project: String,
    account: String,
    client: Client,
    sessions: Vec<String>,
}

pub async fn webhook_bench(
    opts: &WebhookOptions,
    backend: &Backend,
) -> anyhow::Result<WebhookBench> {
    let transcript = Transcript {
        name: format!("webhook bench ({} events)", opts.events),
        description: String::new(),
        setup: Setup {
            connected: true,
            ..Setup::default()
        },
        turns: Vec::new(),
    };
    let (mut run, _db) = Run::open(&transcript, backend).await?;
    let result = measure(&mut run, opts, backend).await;
    run.close().await;
    result
}

/// Connects the next project: the first is the one `Run::play` made, the others are created
/// here and connected through the same OAuth prelude.
async fn connect_shop(run: &mut Run<'_>, i: usize) -> anyhow::Result<Shop> {
    if i > 0 {
        let (status, created) = run
            .api(
                "POST",
                "/v1/projects",
                Some(&run.token),
                Some(&json!({ "name": format!("shop {i}"), "backend": true })),
            )
            .await?;
        if status != 201 {
            bail!("creating a project answered {status}: {created}");
        }
        run.project = created["id"].as_str().unwrap_or_default().to_owned();
        let mut c = Client::new();
        c.connect(&run.server().ws_url(), &run.token, &run.project, 0)
            .await?;
        run.clients = vec![c];
        run.connect_stripe().await?;
    }
    let account = super::stripe_steps::account_id(run).await?;
    super::stripe_steps::run(
        run,
        &StripeStep {
            action: "create_product".to_owned(),
            name: Some("Course".to_owned()),
            amount: Some(4900),
            currency: Some("usd".to_owned()),
            ..StripeStep::default()
        },
    )
    .await?;
    let path = format!(
        "/v1/projects/{}/integrations/stripe/catalog/sync",
        run.project
    );
    let (status, body) = run
        .api("POST", &path, Some(&run.token), Some(&json!({})))
        .await?;
    if status != 202 {
        bail!("the sync endpoint answered {status}: {body}");
    }
    let mut client = run.clients.pop().ok_or_else(|| anyhow!("no client"))?;
    loop {
        let f = client.next(Duration::from_secs(30)).await?;
        if f["type"] == "flow" && f["flow"] == "catalog_sync" {
            match f["state"].as_str() {
                Some("done") => break,
                Some("failed") => bail!("the sync failed: {f}"),
                _ => {}
            }
        }
    }
    Ok(Shop {
        project: run.project.clone(),
        account,
        client,
        sessions: Vec::new(),
    })
}

/// Calls the sandbox's API as `account`.
async fn sandbox_api(
    run: &Run<'_>,
    account: &str,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let auth = format!("Bearer {}", run.sandbox.config().test_secret_key);
    let url = format!("{}{path}", run.sandbox.base_url());
    let headers = [
        ("authorization", auth.as_str()),
        ("stripe-account", account),
    ];
    let res = if method == "GET" {
        run.http.get(&url, &headers).await?
    } else {
        run.http.post_form(&url, &headers, form).await?
    };
    if !(200..300).contains(&res.status) {
        bail!("{method} {path} answered {}: {}", res.status, res.text());
    }
    Ok(res.json()?)
}

/// Makes and pays a shop's orders (every fourth refunded from the Dashboard) while webhooks
/// are off, and returns the events Stripe would have sent about them.
async fn sell(run: &mut Run<'_>, shop: &mut Shop, orders: usize) -> anyhow::Result<Vec<Template>> {
    run.project = shop.project.clone();
    let cart = super::stripe_steps::fill_prices(
        run,
        json!({ "items": [{ "price": "{price:Course}", "quantity": 1 }], "customer_email": "bo@example.com" }),
    )
    .await?;
    let path = format!("/v1/projects/{}/checkout", shop.project);
    let mut templates = Vec::new();
    let event = |kind: &str, object: &Value| Template {
        kind: kind.to_owned(),
        account: shop.account.clone(),
        object: object.clone(),
    };
    for k in 0..orders {
        let (status, order) = run
            .api("POST", &path, Some(&run.token), Some(&cart))
            .await?;
        if status != 201 {
            bail!("checkout answered {status}: {order}");
        }
        let session = order["checkout_session"]
            .as_str()
            .ok_or_else(|| anyhow!("the checkout has no session: {order}"))?
            .to_owned();
        let paid = run
            .sandbox
            .pay_checkout(&session, TestPayment::card("4242424242424242"))?;
        if paid.outcome != "succeeded" {
            bail!("paying {session}: {}", paid.outcome);
        }
        let pi = paid
            .payment_intent
            .clone()
            .ok_or_else(|| anyhow!("the paid checkout has no PaymentIntent"))?;
        let pi_id = pi["id"].as_str().unwrap_or_default().to_owned();
        let charge_id = pi["latest_charge"].as_str().unwrap_or_default().to_owned();
        let charge = sandbox_api(
            run,
            &shop.account,
            "GET",
            &format!("v1/charges/{charge_id}"),
            &[],
        )
        .await?;
        templates.push(event("checkout.session.completed", &paid.session));
        templates.push(event("payment_intent.succeeded", &pi));
        templates.push(event("charge.succeeded", &charge));
        if k % 4 == 3 {
            sandbox_api(
                run,
                &shop.account,
                "POST",
                "v1/refunds",
                &[("payment_intent", pi_id.as_str())],
            )
            .await?;
            let refunded = sandbox_api(
                run,
                &shop.account,
                "GET",
                &format!("v1/charges/{charge_id}"),
                &[],
            )
            .await?;
            templates.push(event("charge.refunded", &refunded));
        }
        shop.sessions.push(session);
    }
    Ok(templates)
}

async fn measure(
    run: &mut Run<'_>,
    opts: &WebhookOptions,
    backend: &Backend,
) -> anyhow::Result<WebhookBench> {
    let started_setup = Instant::now();
    run.play().await.context("connecting Stripe")?;
    let mut shops = Vec::with_capacity(opts.projects);
    for i in 0..opts.projects.max(1) {
        shops.push(
            connect_shop(run, i)
                .await
                .with_context(|| format!("setting up project {}", i + 1))?,
        );
    }
    // The orders are paid while nothing is delivered: the benchmark's events bring the news.
    run.sandbox.clear_webhook_endpoint();
    // Orders interleaved across shops, so that each project's events are spread through the
    // stream as with many shops selling at once.
    let mut per_shop = Vec::with_capacity(shops.len());
    for shop in &mut shops {
        per_shop.push(sell(run, shop, opts.orders).await?);
    }
    let mut templates = Vec::new();
    let longest = per_shop.iter().map(Vec::len).max().unwrap_or(0);
    for j in 0..longest {
        for list in &per_shop {
            if let Some(t) = list.get(j) {
                templates.push(t.clone());
            }
        }
    }
    // Each account as the sandbox's API shows it: an `account.updated` carries the whole
    // account, as Stripe's do.
    let mut accounts: Vec<(String, Value)> = Vec::with_capacity(shops.len());
    for shop in &shops {
        let path = format!("v1/accounts/{}", shop.account);
        let object = sandbox_api(run, &shop.account, "GET", &path, &[]).await?;
        accounts.push((shop.account.clone(), object));
    }
    eprintln!(
        "set up {} projects with {} orders each in {:.1} s; {} selling events",
        shops.len(),
        opts.orders,
        started_setup.elapsed().as_secs_f64(),
        templates.len()
    );

    let url = run.server().url();
    let concurrency = opts.concurrency.max(1);
    let now = chrono::Utc::now().timestamp();
    let events = event_mix(
        &templates,
        &accounts,
        opts.events,
        opts.duplicates,
        2 * concurrency,
        now,
        0x5eed,
    );
    // Signed before the clock starts; the signatures stay within Stripe's five minutes.
    let signed: Arc<Vec<(String, String)>> = Arc::new(
        events
            .iter()
            .map(|e| {
                let header = chatpay_stripe::webhook::sign(
                    e.body.as_bytes(),
                    &run.webhook_secret,
                    chrono::Utc::now().timestamp(),
                );
                (header, e.body.clone())
            })
            .collect(),
    );

    // Floors, on the same server, sandbox and disk, before the run.
    let http_floor = round_trips(&format!("{url}/healthz"), &[], concurrency).await?;
    let http_serial = http_floor_serial(&format!("{url}/healthz")).await?;
    let sandbox_auth = format!("Bearer {}", run.sandbox.config().test_secret_key);
    let sandbox_floor = round_trips(
        &format!(
            "{}v1/checkout/sessions/{}",
            run.sandbox.base_url(),
            shops[0].sessions.first().cloned().unwrap_or_default()
        ),
        &[
            ("authorization".to_owned(), sandbox_auth),
            ("stripe-account".to_owned(), shops[0].account.clone()),
        ],
        concurrency,
    )
    .await?;
    let commit_floor = commit_floor(backend, &run.config.database_url).await?;

    // Each project's chat client reads what is pushed during the run.
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for shop in &mut shops {
        let mut client = std::mem::take(&mut shop.client);
        let (stop, frames) = (stop.clone(), frames.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match client.next(Duration::from_millis(200)).await {
                    Ok(_) => {
                        frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if !client.connected() => break,
                    Err(_) => {}
                }
            }
        }));
    }

    let store = chatpay_store::connect(&run.config.database_url).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let hook = format!("{url}/v1/webhooks/stripe");
    let cpu_before = process_cpu();
    let requests_before = run.sandbox.api_requests();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (signed, next, hook) = (signed.clone(), next.clone(), hook.clone());
        senders.push(tokio::spawn(async move {
            let http = HttpClient::new(Duration::from_secs(60));
            let mut latencies = Vec::new();
            let mut duplicates = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((header, body)) = signed.get(i) else {
                    break;
                };
                let headers = [
                    ("stripe-signature", header.as_str()),
                    ("content-type", "application/json"),
                ];
                let t0 = Instant::now();
                let res = http.send("POST", &hook, &headers, body.clone()).await?;
                latencies.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !(200..300).contains(&res.status) {
                    bail!("event {i} was answered {}: {}", res.status, res.text());
                }
                if res.json().is_ok_and(|v| v["duplicate"] == true) {
                    duplicates += 1;
                }
            }
            Ok::<_, anyhow::Error>((latencies, duplicates))
        }));
    }
    let mut latencies = Vec::with_capacity(events.len());
    let mut duplicates_acknowledged = 0;
    for s in senders {
        let (l, d) = s.await??;
        latencies.extend(l);
        duplicates_acknowledged += d;
    }
    let ingest = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if store.unprocessed_events(1).await?.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("events were still unapplied 600 s after the last response");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let applied = started.elapsed();
    let stripe_requests = run.sandbox.api_requests() - requests_before;
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    // Pushes follow the commits that apply them; give the readers a moment to count them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        let _ = r.await;
    }

    let mut orders_settled = 0;
    for shop in &shops {
        let (_, list) = run
            .api(
                "GET",
                &format!("/v1/projects/{}/orders", shop.project),
                Some(&run.token),
                None,
            )
            .await?;
        let items = list["data"]
            .as_array()
            .or_else(|| list["orders"].as_array())
            .or_else(|| list.as_array())
            .cloned()
            .unwrap_or_default();
        orders_settled += items
            .iter()
            .filter(|o| {
                o["status"] == "paid" || o["status"].as_str().is_some_and(|s| s.contains("refund"))
            })
            .count();
    }

    latencies.sort_unstable();
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for e in &events {
        match kinds.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((e.kind.clone(), 1)),
        }
    }
    Ok(WebhookBench {
        backend: match backend {
            Backend::Sqlite => "SQLite file".to_owned(),
            Backend::Postgres(_) => "PostgreSQL".to_owned(),
        },
        projects: shops.len(),
        orders: opts.orders,
        concurrency,
        events: events.len(),
        duplicates_sent: events.iter().filter(|e| e.duplicate).count(),
        kinds,
        ingest,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
        applied,
        duplicates_acknowledged,
        frames_pushed: frames.load(Ordering::Relaxed),
        orders_settled,
        commit_floor,
        http_floor,
        http_serial,
        sandbox_floor,
        stripe_requests,
        cpu,
    })
}

/// User and system CPU time of this process so far, from `/proc/self/stat` (Linux; in
/// `USER_HZ` ticks, 100 a second on the platforms Linux runs on here). `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

const FLOOR_RUN: Duration = Duration::from_secs(2);

/// Requests to `url` from `concurrency` connections for two seconds.
async fn round_trips(
    url: &str,
    headers: &[(String, String)],
    concurrency: usize,
) -> anyhow::Result<Floor> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (url, headers) = (url.to_owned(), headers.to_vec());
        tasks.push(tokio::spawn(async move {
            let http = HttpClient::new(Duration::from_secs(30));
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut latencies = Vec::new();
            while started.elapsed() < FLOOR_RUN {
                let t0 = Instant::now();
                let res = http.get(&url, &h).await?;
                latencies.push(t0.elapsed().as_micros() as u32);
                if res.status != 200 {
                    bail!("{url} answered {}", res.status);
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(Floor {
        per_second: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.5),
    })
}

async fn http_floor_serial(url: &str) -> anyhow::Result<Floor> {
    round_trips(url, &[], 1).await
}

/// One-row commits, one after another, for two seconds: what the disk's sync allows a lone
/// writer (SQLite: a fresh file beside the benchmark's, WAL, `synchronous = FULL`, as the
/// server's; PostgreSQL: a table in the benchmark's database).
async fn commit_floor(backend: &Backend, database_url: &str) -> anyhow::Result<Floor> {
    match backend {
        Backend::Sqlite => {
            let path = database_url
                .strip_prefix("sqlite://")
                .ok_or_else(|| anyhow!("not a SQLite URL: {database_url}"))?;
            let path = std::path::Path::new(path)
                .with_file_name("floor.db")
                .to_path_buf();
            tokio::task::spawn_blocking(move || sqlite_floor(&path)).await?
        }
        Backend::Postgres(_) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(database_url).await?;
            sqlx::raw_sql("CREATE TABLE bench_floor (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
                .execute(&mut conn)
                .await?;
            let started = Instant::now();
            let mut latencies = Vec::new();
            while started.elapsed() < FLOOR_RUN {
                let t0 = Instant::now();
                sqlx::query("INSERT INTO bench_floor (v) VALUES ($1)")
                    .bind("x".repeat(200))
                    .execute(&mut conn)
                    .await?;
                latencies.push(t0.elapsed().as_micros() as u32);
            }
            sqlx::raw_sql("DROP TABLE bench_floor")
                .execute(&mut conn)
                .await?;
            let elapsed = started.elapsed().as_secs_f64();
            latencies.sort_unstable();
            Ok(Floor {
                per_second: latencies.len() as f64 / elapsed,
                p50_ms: percentile(&latencies, 0.5),
            })
        }
    }
}

fn sqlite_floor(path: &std::path::Path) -> anyhow::Result<Floor> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.execute_batch("CREATE TABLE floor (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
    let mut insert = conn.prepare("INSERT INTO floor (v) VALUES (?1)")?;
    let value = "x".repeat(200);
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < FLOOR_RUN {
        let t0 = Instant::now();
        insert.execute([&value])?;
        latencies.push(t0.elapsed().as_micros() as u32);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    drop(insert);
    drop(conn);
    let _ = std::fs::remove_file(path);
    Ok(Floor {
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Vec<Template> {
        ["checkout.session.completed", "payment_intent.succeeded"]
            .iter()
            .map(|k| Template {
                kind: (*k).to_owned(),
                account: "acct_1".to_owned(),
                object: json!({ "id": "cs_1" }),
            })
            .collect()
    }

    #[test]
    fn thirty_percent_are_exact_redeliveries_of_earlier_events() {
        let accounts = vec![
            (
                "acct_1".to_owned(),
                json!({ "id": "acct_1", "object": "account" }),
            ),
            (
                "acct_2".to_owned(),
                json!({ "id": "acct_2", "object": "account" }),
            ),
        ];
        for n in [1, 7, 10, 333, 1000, 20_001] {
            let events = event_mix(&templates(), &accounts, n, 0.3, 64, 1_700_000_000, 9);
            assert_eq!(events.len(), n);
            let dups = events.iter().filter(|e| e.duplicate).count();
            let want = (n as f64 * 0.3).round() as usize;
            assert!(
                dups.abs_diff(want) <= 1,
                "n={n}: {dups} duplicates, want {want}"
            );
            let mut seen = std::collections::HashMap::new();
            for e in &events {
                if e.duplicate {
                    assert_eq!(
                        seen.get(&e.id),
                        Some(&e.body),
                        "a redelivery repeats an earlier event exactly"
                    );
                } else {
                    assert!(
                        seen.insert(e.id.clone(), e.body.clone()).is_none(),
                        "fresh ids are unique"
                    );
                }
            }
        }
    }

    #[test]
    fn the_new_events_are_mostly_selling_with_some_account_and_unhandled_ones() {
        let accounts = vec![(
            "acct_1".to_owned(),
            json!({ "id": "acct_1", "object": "account" }),
        )];
        let events = event_mix(&templates(), &accounts, 1000, 0.3, 64, 1_700_000_000, 9);
        let fresh: Vec<&BenchEvent> = events.iter().filter(|e| !e.duplicate).collect();
        let count = |f: &dyn Fn(&str) -> bool| fresh.iter().filter(|e| f(&e.kind)).count();
        assert_eq!(fresh.len(), 700);
        assert_eq!(count(&|k| k == "account.updated"), 70);
        assert_eq!(count(&|k| UNHANDLED.contains(&k)), 70);
        let parsed = chatpay_stripe::webhook::EventEnvelope::parse(fresh[0].body.as_bytes())
            .expect("a Stripe event");
        assert_eq!(parsed.event_type, "checkout.session.completed");
        assert_eq!(parsed.account.as_deref(), Some("acct_1"));
    }
}
