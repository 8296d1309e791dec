//! `chatpay bench`: a load client. It opens N WebSocket connections (one project each), sends
//! `say` turns at a fixed total rate or flat out, and reports turns per second and the latency
//! from sending a `say` to receiving its first frame (p50, p99, p99.9). With `--idle` it instead
//! holds N idle connections and reports the server's memory per connection.
//!
//! With `--catalog N` it measures a catalog sync instead (see `catalog_bench`), and with
//! `--webhooks N` webhook ingestion (see `webhook_bench`).
//!
//! By default it starts its own server as a child process (`chatpay serve`, release build
//! recommended) on a fresh SQLite database, so client and server are measured apart.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

use chatpay_http_client::HttpClient;
use chatpay_server::config::Config;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Connections (one project and conversation each).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Total turns per second across all connections; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to measure (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Turns each connection may have in flight when running flat out.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Hold this many idle connections and report the server's memory per connection.
    #[arg(long)]
    pub idle: Option<usize>,
    /// Use a running server at this base URL (http://host:port) instead of starting one;
    /// needs --token.
    #[arg(long)]
    pub server: Option<String>,
    #[arg(long)]
    pub token: Option<String>,
    /// The server's process id, to read its memory (with --server).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// With --idle: all connections join one project's conversation (measures the connection
    /// alone, without a loaded conversation per connection).
    #[arg(long)]
    pub same_project: bool,
    /// Instead: sync a catalog of this many products (at most 10000) from the built-in sandbox
    /// under Stripe's test-mode rate limit, through a server in this process, and report the
    /// time against the rate-limit floor and the peak memory. Uses `--database-url` when it is
    /// a PostgreSQL server (admin URL), else a fresh SQLite file.
    #[arg(long)]
    pub catalog: Option<u32>,
    /// Instead: POST this many signed Stripe events (30% redeliveries by default) to the
    /// webhook endpoint of a server in this process, with the built-in sandbox, and report
    /// events/s, latency, the time until all are applied and the machine's floors. Uses
    /// `--database-url` when it is a PostgreSQL server (admin URL), else a fresh SQLite file.
    #[arg(long)]
    pub webhooks: Option<usize>,
    /// With --webhooks: projects, each connected to its own Stripe account.
    #[arg(long, default_value_t = 50)]
    pub projects: usize,
    /// With --webhooks: paid orders per project (every fourth refunded).
    #[arg(long, default_value_t = 4)]
    pub orders: usize,
    /// With --webhooks: concurrent HTTP connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// With --webhooks: the share of events that are exact redeliveries.
    #[arg(long, default_value_t = 0.3)]
    pub duplicates: f64,
}

/// A server process started for the benchmark.
struct Child {
    child: tokio::process::Child,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

async fn spawn_server(config: &Config) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let db = match config.database_url.as_str() {
        url if url.starts_with("postgres") => url.to_owned(),
        _ => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let out = tokio::process::Command::new(&exe)
        .args(["token", "create", "--name", "bench", "--database-url", &db])
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8(out.stdout)?.trim().to_owned();
    let mut child = tokio::process::Command::new(&exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .env("CHATPAY_LOG", "warn,chatpay=info")
        .env("CHATPAY_CONFIG", write_bench_config(dir.path())?)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(at) = line.find("address=") {
                let addr = line[at + 8..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"');
                return Ok::<_, anyhow::Error>(format!("http://{addr}"));
            }
        }
        bail!("the server exited before listening")
    })
    .await
    .context("waiting for the server to listen")??;
    // Keep draining the server's log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        child,
        url,
        token,
        _dir: dir,
    })
}

/// The benchmark lifts the per-connection rate limit (it is the thing being measured).
fn write_bench_config(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("bench.toml");
    std::fs::write(&path, "[chat]\nturns_per_second = 100000\n")?;
    Ok(path)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

const PHRASES: &[&str] = &[
    "is this test mode?",
    "when do I get paid?",
    "how do refunds work",
    "what can you do?",
    "I was paid Nov 20, when is it available?",
    "do customers get a receipt?",
];

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(ws_url: &str, token: &str, project: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true).await?;
    let hello = json!({ "type": "hello", "token": token, "project": project });
    ws.send(Message::Text(hello.to_string().into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                if v["type"] == "welcome" {
                    return Ok(ws);
                }
                if v["type"] == "error" {
                    bail!("hello refused: {v}");
                }
            }
            Some(Ok(_)) => {}
            other => bail!("connection ended before welcome: {other:?}"),
        }
    }
}

pub async fn run(args: BenchArgs, config: Config) -> anyhow::Result<()> {
    let backend = if config.database_url.starts_with("postgres") {
        crate::Backend::Postgres(config.database_url.clone())
    } else {
        crate::Backend::Sqlite
    };
    if let Some(events) = args.webhooks {
        let opts = crate::WebhookOptions {
            events,
            projects: args.projects,
            orders: args.orders,
            concurrency: args.concurrency,
            duplicates: args.duplicates,
        };
        eprintln!(
            "setting up {} connected projects, then posting {events} webhook events over {} connections",
            opts.projects, opts.concurrency
        );
        let result = crate::webhook_bench(&opts, &backend).await?;
        println!("{result}");
        return Ok(());
    }
    if let Some(products) = args.catalog {
        eprintln!("syncing {products} products from the sandbox (25 requests/s enforced)");
        let result = crate::catalog_bench(products, &backend).await?;
        println!("{result}");
        return Ok(());
    }
    let (url, token, pid, _child) = match &args.server {
        Some(url) => (
            url.trim_end_matches('/').to_owned(),
            args.token
                .clone()
                .ok_or_else(|| anyhow!("--server needs --token"))?,
            args.server_pid,
            None,
        ),
        None => {
            let child = spawn_server(&config).await?;
            let pid = child.child.id();
            (child.url.clone(), child.token.clone(), pid, Some(child))
        }
    };
    let ws_url = format!("{}/v1/chat", url.replacen("http", "ws", 1));
    let http = HttpClient::new(Duration::from_secs(30));
    let n = match (args.idle, args.same_project) {
        (Some(_), true) => 1,
        (Some(n), false) => n,
        (None, _) => args.connections,
    };
    eprintln!("creating {n} projects on {url}");
    let mut projects = Vec::with_capacity(n);
    let auth = format!("Bearer {token}");
    for i in 0..n {
        let res = http
            .post_json(
                &format!("{url}/v1/projects"),
                &[("authorization", &auth)],
                &json!({ "name": format!("bench {i}"), "backend": true }),
            )
            .await?;
        if res.status != 201 {
            bail!("creating a project answered {}: {}", res.status, res.text());
        }
        projects.push(res.json()?["id"].as_str().unwrap_or_default().to_owned());
    }

    if let Some(count) = args.idle {
        let targets: Vec<String> = (0..count)
            .map(|i| projects[i % projects.len()].clone())
            .collect();
        return idle(&ws_url, &token, &targets, pid).await;
    }

    let per_connection_rate = (args.rate > 0).then(|| args.rate as f64 / n as f64);
    // Every connection is opened before any sends: the run measures steady traffic.
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let measuring = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let turns = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    eprintln!("opening {n} connections");
    for (i, project) in projects.iter().enumerate() {
        let ws = open(&ws_url, &token, project).await?;
        let (measuring, stop, turns) = (measuring.clone(), stop_rx.clone(), turns.clone());
        let pipeline = args.pipeline.max(1);
        let mut go = go_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = go.wait_for(|go| *go).await;
            drive(ws, i, per_connection_rate, pipeline, measuring, stop, turns).await
        }));
    }
    let _ = go_tx.send(true);
    eprintln!("warming up for {}s", args.warmup);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let rss_before = pid.and_then(rss_kib);
    measuring.store(true, Ordering::SeqCst);
    let start_turns = turns.load(Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let elapsed = started.elapsed();
    let done = turns.load(Ordering::SeqCst) - start_turns;
    measuring.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    println!(
        "connections={n} target_rate={} measured={:.1}s turns={done} turns_per_sec={:.0} latency_ms p50={:.3} p99={:.3} p99.9={:.3} max={:.3}",
        if args.rate == 0 {
            "flat-out".to_owned()
        } else {
            args.rate.to_string()
        },
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0),
    );
    if let (Some(before), Some(after)) = (rss_before, pid.and_then(rss_kib)) {
        println!("server_rss_kib before={before} after={after}");
    }
    Ok(())
}

/// What a load client reads of a frame: its type and what it answers. Borrowed, so a frame costs
/// one pass and no allocation (neither field ever holds an escape).
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    reply_to: Option<&'a str>,
}

/// One connection's loop; returns the latencies (µs) measured.
///
/// The client shares the machine's cores with the server, so it is kept cheap: frames to send
/// are formatted from pre-escaped phrases, a received frame is read for its type and `reply_to`
/// only, turns in flight are a short queue (a conversation answers in order), and no timer is
/// armed per frame (the end of the run is a watch channel).
async fn drive(
    mut ws: Ws,
    conn: usize,
    rate: Option<f64>,
    pipeline: usize,
    measuring: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    turns: Arc<AtomicU64>,
) -> anyhow::Result<Vec<u64>> {
    let phrases: Vec<String> = PHRASES
        .iter()
        .map(|p| Value::from(*p).to_string())
        .collect();
    let mut latencies = Vec::new();
    // (id, sent at, sent while measuring)
    let mut in_flight: std::collections::VecDeque<(u64, Instant, bool)> = Default::default();
    let mut next_id: u64 = 0;
    // Spread connections over the interval so a fixed rate is not a thundering herd.
    let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut ticker = interval.map(|i| {
        let offset = i.mul_f64((conn % 997) as f64 / 997.0);
        tokio::time::interval_at(tokio::time::Instant::now() + offset, i)
    });
    if let Some(t) = ticker.as_mut() {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    enum Event {
        Tick,
        Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
        Stop,
    }
    loop {
        if *stop.borrow() {
            return Ok(latencies);
        }
        let send_now = ticker.is_none() && in_flight.len() < pipeline;
        let event = if send_now {
            Event::Tick
        } else {
            tokio::select! {
                _ = async { ticker.as_mut().expect("ticking").tick().await }, if ticker.is_some() => Event::Tick,
                msg = ws.next() => Event::Frame(msg),
                _ = stop.changed() => Event::Stop,
            }
        };
        match event {
            Event::Stop => return Ok(latencies),
            Event::Tick => {
                next_id += 1;
                let text = &phrases[(next_id as usize + conn) % phrases.len()];
                let frame = format!(r#"{{"type":"say","id":"b{next_id}","text":{text}}}"#);
                in_flight.push_back((next_id, Instant::now(), measuring.load(Ordering::Relaxed)));
                ws.send(Message::Text(frame.into())).await?;
            }
            Event::Frame(msg) => {
                let Some(msg) = msg else {
                    bail!("connection {conn} closed")
                };
                let Message::Text(t) = msg? else { continue };
                let head: Head<'_> = serde_json::from_str(t.as_str())
                    .with_context(|| format!("connection {conn}: unreadable frame {t}"))?;
                if head.kind == "error" {
                    bail!("connection {conn}: {t}");
                }
                let id = head
                    .reply_to
                    .and_then(|r| r.strip_prefix('b'))
                    .and_then(|r| r.parse::<u64>().ok());
                // The first frame of a turn ends it: the rest of its frames are not timed.
                if let Some(id) = id
                    && let Some(at) = in_flight.iter().position(|t| t.0 == id)
                    && let Some((_, sent, measured)) = in_flight.remove(at)
                {
                    if measured && measuring.load(Ordering::Relaxed) {
                        latencies.push(sent.elapsed().as_micros() as u64);
                        turns.fetch_add(1, Ordering::Relaxed);
                    } else if !measured {
                        turns.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

async fn idle(
    ws_url: &str,
    token: &str,
    projects: &[String],
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let pid = pid.ok_or_else(|| {
        anyhow!("--idle needs the server's pid (start it here, or pass --server-pid)")
    })?;
    // Settle: one connection first so lazily allocated server state is in the baseline.
    let warm = open(ws_url, token, &projects[0]).await?;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}/status"))?;
    let mut held = Vec::with_capacity(projects.len());
    for p in projects {
        held.push(open(ws_url, token, p).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}/status"))?;
    let per = (after.saturating_sub(before) as f64 * 1024.0) / projects.len() as f64;
    println!(
        "idle_connections={} server_rss_kib before={before} after={after} bytes_per_idle_connection={per:.0}",
        projects.len()
    );
    drop(held);
    Ok(())
}
