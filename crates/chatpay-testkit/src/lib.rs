//! chatpay's test tooling: real servers for tests, transcript replay and coverage, and the load
//! and ingestion benchmarks. Test tooling only: the server's integration tests use it as a
//! dev-dependency, and the `chatpay` binary links it only when built with its `testkit` feature
//! (`chatpay replay`, `chatpay bench`).
//!
//! Transcript replay boots a real server (with its own Stripe sandbox) on port 0, creates a
//! project, connects real WebSocket clients and plays a transcript turn by turn, checking every
//! frame. A failure names the transcript, the turn and the frame, with what was expected and what
//! came. Module map:
//!
//! - here (`lib.rs`): the replay itself (`run`, `run_file`, `run_all`), coverage, fresh
//!   databases per backend, and the Stripe steps a transcript takes in the sandbox.
//! - `server`: [`TestServer`], the real server on its own runtime and thread (stop or crash),
//!   with Stripe wired as `chatpay serve` wires it.
//! - `transcript`: the transcript format ([`Transcript`], [`Turn`], [`Expect`]).
//! - `client`: a WebSocket [`Client`] that remembers what it saw.
//! - `app_receiver`: a builder's app that receives chatpay's app webhooks and checks them.
//! - [`bench`]: `chatpay bench`, the load client; it dispatches to
//! - `catalog_bench`: `--catalog N`, a catalog sync under Stripe's rate limit, and
//! - `webhook_bench`: `--webhooks N`, webhook ingestion.

mod app_receiver;
pub mod bench;
mod catalog_bench;
mod client;
mod server;
mod transcript;
mod webhook_bench;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

pub use catalog_bench::{CatalogBench, catalog_bench};
use chatpay_http_client::HttpClient;
use chatpay_server::config::{Config, Secret};
pub use client::Client;
pub use server::TestServer;
use stripe_sandbox::{Sandbox, SandboxConfig};
pub use transcript::{Expect, Transcript, Turn};
pub use webhook_bench::{
    BenchEvent, Template, WebhookBench, WebhookOptions, event_mix, webhook_bench,
};

/// How long to wait for an expected frame.
const PATIENCE: Duration = Duration::from_secs(15);

/// Which database a run uses: a fresh SQLite file, or a fresh database on a PostgreSQL server.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// An admin URL (`postgres://user@127.0.0.1:port/postgres`); each run creates a database.
    Postgres(String),
}

/// What a set of transcripts exercised.
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    pub intents: BTreeSet<String>,
    pub flow_states: BTreeSet<String>,
    pub transitions: BTreeSet<String>,
    pub actions_offered: BTreeSet<String>,
    pub actions_clicked: BTreeSet<String>,
    pub error_codes: BTreeSet<String>,
}

impl Coverage {
    pub fn merge(&mut self, other: &Coverage) {
        self.intents.extend(other.intents.iter().cloned());
        self.flow_states.extend(other.flow_states.iter().cloned());
        self.transitions.extend(other.transitions.iter().cloned());
        self.actions_offered
            .extend(other.actions_offered.iter().cloned());
        self.actions_clicked
            .extend(other.actions_clicked.iter().cloned());
        self.error_codes.extend(other.error_codes.iter().cloned());
    }

    /// A human summary: what was exercised and what was not.
    pub fn report(&self) -> String {
        let all_intents: BTreeSet<String> = chatpay_core::intents::Intent::ALL
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        let all_states: BTreeSet<String> = chatpay_core::flows::FLOW_STATES
            .iter()
            .map(|(f, s)| format!("{f}:{s}"))
            .collect();
        let all_codes: BTreeSet<String> = chatpay_core::error::ErrorCode::PROTOCOL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        let missing = |all: &BTreeSet<String>, seen: &BTreeSet<String>| -> String {
            let m: Vec<_> = all.difference(seen).cloned().collect();
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.join(", ")
            }
        };
        let unclicked: Vec<_> = self
            .actions_offered
            .difference(&self.actions_clicked)
            .cloned()
            .collect();
        format!(
            "coverage:\n  intents: {}/{} (not exercised: {})\n  flow states: {}/{} (not reached: {})\n  flow transitions: {} distinct\n  card actions: {} clicked of {} offered (never clicked: {})\n  error codes: {}/{} (not seen: {})",
            self.intents.intersection(&all_intents).count(),
            all_intents.len(),
            missing(&all_intents, &self.intents),
            self.flow_states.intersection(&all_states).count(),
            all_states.len(),
            missing(&all_states, &self.flow_states),
            self.transitions.len(),
            self.actions_clicked.len(),
            self.actions_offered.len(),
            if unclicked.is_empty() {
                "none".to_owned()
            } else {
                unclicked.join(", ")
            },
            self.error_codes.intersection(&all_codes).count(),
            all_codes.len(),
            missing(&all_codes, &self.error_codes),
        )
    }
}

/// The transcripts in a directory (`*.toml`), sorted.
pub fn transcript_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

pub fn load(path: &Path) -> anyhow::Result<Transcript> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The PostgreSQL server tests should use (see [`chatpay_store::test_postgres`]).
pub fn postgres_for_tests() -> Result<Option<String>, String> {
    chatpay_store::test_postgres()
}

/// Plays every file (a few at a time); returns how many passed, the failures, and the coverage.
pub async fn run_all(paths: &[PathBuf], backend: &Backend) -> (usize, Vec<String>, Coverage) {
    use futures_util::StreamExt;
    let results: Vec<anyhow::Result<Coverage>> =
        futures_util::stream::iter(paths.iter().map(|p| run_file(p, backend)))
            .buffer_unordered(4)
            .collect()
            .await;
    let mut coverage = Coverage::default();
    let mut failed = Vec::new();
    let mut passed = 0;
    for r in results {
        match r {
            Ok(c) => {
                coverage.merge(&c);
                passed += 1;
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    (passed, failed, coverage)
}

/// Plays one transcript file against a fresh server and database.
pub async fn run_file(path: &Path, backend: &Backend) -> anyhow::Result<Coverage> {
    let t = load(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    run(&t, backend)
        .await
        .map_err(|e| anyhow!("{name} ({}): {e:#}", t.name))
}

/// A fresh database for one run; dropped (SQLite) when the guard goes.
struct Database {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn fresh_database(backend: &Backend) -> anyhow::Result<Database> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("chatpay.db").display());
            Ok(Database {
                url,
                _dir: Some(dir),
            })
        }
        Backend::Postgres(admin) => {
            use sqlx::Connection;
            let name = format!("chatpay_t_{}", chatpay_core::domain::random_hex(6));
            let mut conn = sqlx::PgConnection::connect(admin)
                .await
                .context("connecting to PostgreSQL")?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            Ok(Database {
                url: format!("{base}/{name}"),
                _dir: None,
            })
        }
    }
}

/// The world a transcript plays in.
struct Run<'t> {
    transcript: &'t Transcript,
    sandbox: Sandbox,
    webhook_secret: String,
    config: Config,
    server: Option<TestServer>,
    http: HttpClient,
    token: String,
    other_token: String,
    project: String,
    other_project: String,
    clients: Vec<Client>,
    coverage: Coverage,
    next_id: usize,
    /// The last state seen per flow, for transitions.
    flow_at: BTreeMap<String, String>,
    /// Checkout Sessions the HTTP steps created, by order number.
    sessions: BTreeMap<i64, String>,
    /// The project's publishable key, once an HTTP step has shown it (`{publishable_key}`).
    publishable_key: Option<String>,
    /// The builder's app, once an `app_webhook` step started it.
    app: Option<app_receiver::AppReceiver>,
    /// The newest billing portal link an HTTP step answered (`url` of a portal session).
    portal_url: Option<String>,
    /// The project's customer proof secret, once an HTTP step has shown it
    /// (`"{customer_proof:EMAIL}"` in a body signs a proof valid until `"{proof_expires}"`).
    proof_secret: Option<String>,
}

pub async fn run(t: &Transcript, backend: &Backend) -> anyhow::Result<Coverage> {
    let (mut run, _db) = Run::open(t, backend).await?;
    let result = run.play().await;
    run.close().await;
    result.map(|_| run.coverage)
}

impl<'t> Run<'t> {
    /// Starts the world for `t`: a fresh database, a sandbox and a server (not yet played).
    async fn open(t: &'t Transcript, backend: &Backend) -> anyhow::Result<(Run<'t>, Database)> {
        let db = fresh_database(backend).await?;
        let sandbox = Sandbox::start(SandboxConfig {
            listen: "127.0.0.1:0".parse()?,
            rate_limit: t
                .setup
                .stripe_rate_limit
                .then(stripe_sandbox::RateLimit::stripe),
            // Webhook retries in milliseconds, not minutes.
            delivery: stripe_sandbox::DeliveryConfig {
                max_attempts: 8,
                first_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                timeout: Duration::from_secs(10),
                concurrency: 8,
            },
            ..SandboxConfig::default()
        })
        .await?;
        let webhook_secret = format!("whsec_replay_{}", chatpay_core::domain::random_hex(8));
        let mut config = Config {
            listen: "127.0.0.1:0".parse()?,
            database_url: db.url.clone(),
            ..Config::default()
        };
        config.chat.turns_per_second = t.setup.rate_limit.unwrap_or(1000);
        // App webhook retries in milliseconds, not minutes.
        config.chat.app_webhook_first_retry = Duration::from_millis(50);
        config.stripe.webhook_secret = Some(Secret::new(webhook_secret.clone()));
        let keys = sandbox.config();
        config.stripe.point_at(
            &sandbox.base_url(),
            &keys.test_secret_key,
            &keys.live_secret_key,
            &keys.connect_client_id,
        );
        if !t.setup.live_key {
            config.stripe.live_secret_key = None;
        }

        let store = chatpay_store::connect(&db.url).await?;
        let token = chatpay_server::auth::create_token(&*store, "replay").await?;
        // A stranger: a token of another workspace.
        let other_token = chatpay_server::auth::create_api_token(
            &*store,
            "someone else",
            &chatpay_server::auth::Target::New,
        )
        .await?
        .secret;
        drop(store);

        let mut run = Run {
            transcript: t,
            sandbox,
            webhook_secret,
            config,
            server: None,
            http: HttpClient::new(Duration::from_secs(30)),
            token,
            other_token,
            project: String::new(),
            other_project: String::new(),
            clients: Vec::new(),
            coverage: Coverage::default(),
            next_id: 0,
            flow_at: BTreeMap::new(),
            sessions: BTreeMap::new(),
            publishable_key: None,
            app: None,
            portal_url: None,
            proof_secret: None,
        };
        run.start_server().await?;
        Ok((run, db))
    }

    async fn close(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
        self.sandbox.clone().shutdown().await;
    }
}

impl Run<'_> {
    fn server(&self) -> &TestServer {
        self.server.as_ref().expect("a server is running")
    }

    async fn start_server(&mut self) -> anyhow::Result<()> {
        let config = self.config.clone();
        let server = tokio::task::spawn_blocking(move || TestServer::start(config)).await??;
        let hook = format!("{}/v1/webhooks/stripe", server.url());
        self.sandbox
            .set_webhook_endpoint(&hook, &self.webhook_secret);
        self.server = Some(server);
        Ok(())
    }

    async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.api_with(method, path, token, body, &BTreeMap::new())
            .await
    }

    async fn api_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra: &BTreeMap<String, String>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.server().url());
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let res = match body {
            Some(b) => self.http.send_json(method, &url, &headers, b).await?,
            None => self.http.send(method, &url, &headers, Vec::new()).await?,
        };
        // An answer that is not JSON (a CSV export) is its text.
        let answer = res.json().unwrap_or_else(|_| match res.text() {
            t if t.is_empty() => Value::Null,
            t => Value::String(t),
        });
        Ok((res.status, answer))
    }

    async fn play(&mut self) -> anyhow::Result<()> {
        let setup = self.transcript.setup.clone();
        let body = json!({ "name": "replay", "backend": setup.backend, "connect_stripe": setup.connect_stripe });
        let (status, created) = self
            .api("POST", "/v1/projects", Some(&self.token), Some(&body))
            .await?;
        if status != 201 {
            bail!("setup: creating the project answered {status}: {created}");
        }
        self.project = created["id"].as_str().unwrap_or_default().to_owned();
        let other = json!({ "name": "other", "backend": true });
        let (_, other) = self
            .api(
                "POST",
                "/v1/projects",
                Some(&self.other_token),
                Some(&other),
            )
            .await?;
        self.other_project = other["id"].as_str().unwrap_or_default().to_owned();
        for _ in 0..setup.clients.max(1) {
            let mut c = Client::new();
            if setup.connect {
                c.connect(&self.server().ws_url(), &self.token, &self.project, 0)
                    .await?;
            }
            self.clients.push(c);
        }
        if setup.connected {
            self.connect_stripe()
                .await
                .context("setup: connecting Stripe")?;
        }
        for (i, turn) in self.transcript.turns.iter().enumerate() {
            self.turn(turn)
                .await
                .with_context(|| format!("turn {} ({})", i + 1, describe(turn)))?;
        }
        self.barrier().await
    }

    /// The setup prelude: connects an existing Stripe account through OAuth and consumes the
    /// frames that produces on every client.
    async fn connect_stripe(&mut self) -> anyhow::Result<()> {
        let path = format!("/v1/projects/{}/integrations/stripe/connect", self.project);
        let (status, body) = self
            .api("POST", &path, Some(&self.token), Some(&json!({})))
            .await?;
        if status != 202 {
            bail!("connect answered {status}: {body}");
        }
        until_card(&mut self.clients[0], "choose_account").await?;
        let card = self.clients[0]
            .card("choose_account", None)
            .ok_or_else(|| anyhow!("no choose_account card"))?;
        let click =
            json!({ "type": "click", "id": "setup-existing", "card": card, "action": "existing" });
        self.clients[0].send_json("setup-existing", &click).await?;
        until_card(&mut self.clients[0], "connect_existing").await?;
        stripe_steps::run(
            self,
            &transcript::StripeStep {
                action: "authorize_oauth".to_owned(),
                ..transcript::StripeStep::default()
            },
        )
        .await?;
        until_card(&mut self.clients[0], "account_status").await?;
        let last = self.clients[0].last_seq;
        for c in self.clients.iter_mut().skip(1) {
            while c.connected() && c.last_seq < last {
                c.next(PATIENCE).await?;
            }
        }
        Ok(())
    }

    fn id(&mut self, turn: &Turn) -> String {
        self.next_id += 1;
        turn.id
            .clone()
            .unwrap_or_else(|| format!("u{}", self.next_id))
    }

    /// Plays one turn: acts as its client, then checks what the clients receive.
    async fn turn(&mut self, turn: &Turn) -> anyhow::Result<()> {
        let who = self.client_of(turn)?;
        if turn.hold_webhooks {
            self.sandbox.pause_deliveries(true);
        }
        // Nothing may be waiting unread before a turn acts.
        if !turn.wait {
            self.nothing_unread()?;
        }
        self.act(who, turn).await?;
        if turn.unordered {
            self.expect_frames_unordered(who, &turn.expect).await?;
        } else {
            self.expect_frames(who, &turn.expect).await?;
        }
        if !turn.others_expect.is_empty() {
            self.expect_others(who, &turn.others_expect).await?;
        }
        if turn.hold_webhooks || turn.stripe.as_ref().is_some_and(|s| s.holds_webhooks()) {
            self.sandbox.pause_deliveries(false);
        }
        if let Some(code) = turn.expect_close {
            let got = self.clients[who].closed_with(PATIENCE).await;
            if got != Some(code) {
                bail!("expected the connection to close with {code}, got {got:?}");
            }
            self.clients[who].drop_connection();
        }
        Ok(())
    }

    /// The index of the turn's client (clients count from 1 in transcripts).
    fn client_of(&self, turn: &Turn) -> anyhow::Result<usize> {
        let who = turn
            .client
            .unwrap_or(1)
            .checked_sub(1)
            .ok_or_else(|| anyhow!("clients count from 1"))?;
        if who >= self.clients.len() {
            bail!("there is no client {}", who + 1);
        }
        Ok(who)
    }

    fn nothing_unread(&mut self) -> anyhow::Result<()> {
        for (n, c) in self.clients.iter_mut().enumerate() {
            if let Some(f) = c.take_ready() {
                bail!("client {} got a frame no turn expected: {f}", n + 1);
            }
        }
        Ok(())
    }

    /// Does what the turn says (exactly one action, or only waiting).
    async fn act(&mut self, who: usize, turn: &Turn) -> anyhow::Result<()> {
        let ws_url = self.server.as_ref().map(|s| s.ws_url()).unwrap_or_default();
        if let Some(text) = &turn.say {
            let id = self.id(turn);
            let frame = json!({ "type": "say", "id": id, "text": text });
            self.clients[who].send_json(&id, &frame).await?;
        } else if let Some(click) = &turn.click {
            let id = self.id(turn);
            self.click(who, id, click).await?;
        } else if let Some(raw) = &turn.raw {
            self.clients[who].send_text(raw).await?;
        } else if let Some(n) = turn.oversized {
            let filler = "x".repeat(n);
            let frame = format!(r#"{{"type":"say","id":"big","text":"{filler}"}}"#);
            self.clients[who].send_text(&frame).await?;
        } else if let Some(id) = &turn.resend {
            self.clients[who].resend(id).await?;
        } else if turn.restart {
            self.restart().await?;
        } else if let Some(r) = &turn.reconnect {
            let c = &mut self.clients[who];
            c.drop_connection();
            let resume = if r.resume { c.last_seq } else { 0 };
            if !r.resume {
                c.forget();
            }
            c.connect(&ws_url, &self.token, &self.project, resume)
                .await?;
        } else if turn.connect {
            self.clients[who]
                .connect(&ws_url, &self.token, &self.project, 0)
                .await?;
        } else if let Some(h) = &turn.hello {
            self.hello(who, &ws_url, h).await?;
        } else if let Some(h) = &turn.http {
            self.http_step(h).await?;
        } else if let Some(a) = &turn.app_webhook {
            self.app_webhook_step(a).await?;
        } else if let Some(s) = &turn.stripe {
            if s.holds_webhooks() {
                self.sandbox.pause_deliveries(true);
            }
            self.stripe_step(s).await?;
        } else if !turn.wait {
            bail!(
                "the turn does nothing: give it say, click, raw, oversized, resend, restart, reconnect, connect, hello, http, stripe, app_webhook or wait"
            );
        }
        Ok(())
    }

    /// Clicks an action of a card (the one named, or the `nth` of its kind shown to the client).
    async fn click(
        &mut self,
        who: usize,
        id: String,
        click: &transcript::Click,
    ) -> anyhow::Result<()> {
        let card = match &click.card {
            Some(c) => c.clone(),
            None => self.clients[who]
                .card(&click.kind, click.nth)
                .ok_or_else(|| {
                    anyhow!(
                        "no {} card has been shown to client {}",
                        click.kind,
                        who + 1
                    )
                })?,
        };
        let values: serde_json::Map<String, Value> = click
            .values
            .iter()
            .map(|(k, v)| (k.clone(), toml_json(v.clone())))
            .collect();
        let mut frame = json!({ "type": "click", "id": id, "card": card, "action": click.action });
        if !values.is_empty() {
            frame["values"] = Value::Object(values);
        }
        self.coverage
            .actions_clicked
            .insert(format!("{}:{}", click.kind, click.action));
        self.clients[who].send_json(&id, &frame).await
    }

    /// Kills the server and starts it again on the same address; every client reconnects,
    /// resuming from the last frame it saw.
    async fn restart(&mut self) -> anyhow::Result<()> {
        let server = self
            .server
            .take()
            .ok_or_else(|| anyhow!("no server to restart"))?;
        // Same address after the restart: links already handed out (Stripe's return URLs)
        // must keep working, as they do behind a stable public URL.
        self.config.listen = server.address;
        tokio::task::spawn_blocking(move || server.crash()).await?;
        for c in &mut self.clients {
            c.drop_connection();
        }
        self.start_server().await?;
        let ws_url = self.server().ws_url();
        for c in &mut self.clients {
            let resume = c.last_seq;
            c.connect(&ws_url, &self.token, &self.project, resume)
                .await?;
        }
        Ok(())
    }

    /// Opens a connection and sends a hello of the turn's choosing (another token or project,
    /// a missing one, or literal values).
    async fn hello(
        &mut self,
        who: usize,
        ws_url: &str,
        h: &transcript::Hello,
    ) -> anyhow::Result<()> {
        let token = match h.token.as_deref() {
            Some("other") => self.other_token.clone(),
            Some(t) => t.to_owned(),
            None => self.token.clone(),
        };
        let project = match h.project.as_deref() {
            Some("other") => self.other_project.clone(),
            Some("missing") => "prj_doesnotexist".to_owned(),
            Some(p) => p.to_owned(),
            None => self.project.clone(),
        };
        self.clients[who].open(ws_url).await?;
        let hello = json!({ "type": "hello", "token": token, "project": project });
        self.clients[who].send_text(&hello.to_string()).await
    }

    /// The frames the acting client must receive next, in order (recorded for coverage).
    async fn expect_frames(&mut self, who: usize, expect: &[Expect]) -> anyhow::Result<()> {
        for (n, e) in expect.iter().enumerate() {
            let frame = self.clients[who].next(PATIENCE).await.with_context(|| {
                format!(
                    "expected frame {} ({}) but none came",
                    n + 1,
                    expect_summary(e)
                )
            })?;
            self.record(&frame);
            if let Err(why) = matches(e, &frame) {
                bail!(
                    "frame {}: {why}\n  expected: {}\n  got:      {}",
                    n + 1,
                    expect_summary(e),
                    frame
                );
            }
        }
        Ok(())
    }

    /// The frames the acting client must receive next, in any order: each frame meets one
    /// expectation not yet met.
    async fn expect_frames_unordered(
        &mut self,
        who: usize,
        expect: &[Expect],
    ) -> anyhow::Result<()> {
        let mut open: Vec<&Expect> = expect.iter().collect();
        while !open.is_empty() {
            let frame = self.clients[who].next(PATIENCE).await.with_context(|| {
                let left: Vec<String> = open.iter().map(|e| expect_summary(e)).collect();
                format!("still expected (any order): {}", left.join("; "))
            })?;
            self.record(&frame);
            match open.iter().position(|e| matches(e, &frame).is_ok()) {
                Some(i) => {
                    open.remove(i);
                }
                None => {
                    let left: Vec<String> = open.iter().map(|e| expect_summary(e)).collect();
                    bail!(
                        "a frame met none of the expectations left\n  expected one of: {}\n  got: {frame}",
                        left.join("; ")
                    );
                }
            }
        }
        Ok(())
    }

    /// The frames every other connected client must receive next, in order.
    async fn expect_others(&mut self, who: usize, expect: &[Expect]) -> anyhow::Result<()> {
        for other in 0..self.clients.len() {
            if other == who || !self.clients[other].connected() {
                continue;
            }
            for (n, e) in expect.iter().enumerate() {
                let frame = self.clients[other].next(PATIENCE).await.with_context(|| {
                    format!(
                        "client {} expected frame {} ({}) but none came",
                        other + 1,
                        n + 1,
                        expect_summary(e)
                    )
                })?;
                if let Err(why) = matches(e, &frame) {
                    bail!(
                        "client {}, frame {}: {why}\n  expected: {}\n  got:      {frame}",
                        other + 1,
                        n + 1,
                        expect_summary(e)
                    );
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, frame: &Value) {
        let kind = frame["type"].as_str().unwrap_or_default();
        if let Some(intent) = frame
            .get("intent")
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
        {
            self.coverage.intents.insert(intent.to_owned());
        }
        match kind {
            "flow" => {
                let flow = frame["flow"].as_str().unwrap_or_default().to_owned();
                let state = frame["state"].as_str().unwrap_or_default().to_owned();
                let from = self
                    .flow_at
                    .insert(flow.clone(), state.clone())
                    .unwrap_or_else(|| "start".to_owned());
                self.coverage
                    .transitions
                    .insert(format!("{flow}:{from}->{state}"));
                self.coverage.flow_states.insert(format!("{flow}:{state}"));
            }
            "card" => {
                let card = &frame["card"];
                let ck = card["kind"].as_str().unwrap_or_default();
                for a in card["actions"].as_array().into_iter().flatten() {
                    if a.get("url").is_none() {
                        self.coverage
                            .actions_offered
                            .insert(format!("{ck}:{}", a["id"].as_str().unwrap_or_default()));
                    }
                }
            }
            "error" => {
                self.coverage
                    .error_codes
                    .insert(frame["code"].as_str().unwrap_or_default().to_owned());
            }
            _ => {}
        }
    }

    async fn http_step(&mut self, h: &transcript::Http) -> anyhow::Result<()> {
        let path = h
            .path
            .replace("{project}", &self.project)
            .replace("{other_project}", &self.other_project);
        let path = stripe_steps::fill_path(self, path).await?;
        let token = match h.token.as_deref() {
            None => Some(self.token.clone()),
            Some("none") => None,
            Some("other") => Some(self.other_token.clone()),
            Some("{publishable_key}") => Some(
                self.publishable_key
                    .clone()
                    .ok_or_else(|| anyhow!("no publishable key has been shown yet"))?,
            ),
            Some(t) => Some(t.to_owned()),
        };
        let body = match h.body.clone().map(toml_json) {
            Some(b) => Some(stripe_steps::fill_prices(self, b).await?),
            None => None,
        };
        // `eventually`: state that webhooks update in the background is polled until it
        // matches (or PATIENCE runs out, which fails with the last mismatch).
        let started = std::time::Instant::now();
        loop {
            let (status, answer) = self
                .api_with(
                    &h.method,
                    &path,
                    token.as_deref(),
                    body.as_ref(),
                    &h.headers,
                )
                .await?;
            if let Some(k) = answer["key"].as_str().filter(|k| k.starts_with("cpub_")) {
                self.publishable_key = Some(k.to_owned());
            }
            if let Some(k) = answer["proof_secret"].as_str() {
                self.proof_secret = Some(k.to_owned());
            }
            if let Some(u) = answer["url"].as_str().filter(|u| u.contains("/p/session/")) {
                self.portal_url = Some(u.to_owned());
            }
            // Remember the checkouts made, for the `pay` steps.
            for order in [&answer, &answer["order"]] {
                if let (Some(n), Some(cs)) =
                    (order["number"].as_i64(), order["checkout_session"].as_str())
                {
                    self.sessions.insert(n, cs.to_owned());
                }
            }
            match check_http(h, &path, status, &answer) {
                Ok(()) => {
                    if let Some(code) = answer.get("code").and_then(Value::as_str) {
                        self.coverage.error_codes.insert(code.to_owned());
                    }
                    return Ok(());
                }
                Err(e) if h.eventually && started.elapsed() < PATIENCE => {
                    tracing::debug!(error = %e, "not yet");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn app_webhook_step(&mut self, a: &transcript::AppWebhookStep) -> anyhow::Result<()> {
        if a.action == "start" {
            let app = app_receiver::AppReceiver::start(a.fail_first.unwrap_or(0)).await?;
            let path = format!("/v1/projects/{}/app_webhook", self.project);
            let (status, hook) = self
                .api(
                    "PUT",
                    &path,
                    Some(&self.token),
                    Some(&json!({ "url": app.url() })),
                )
                .await?;
            let secret = hook["secret"].as_str().unwrap_or_default();
            if status != 200 || !secret.starts_with("whsec_") {
                bail!("PUT {path} answered {status}: {hook}");
            }
            app.set_secret(secret);
            self.app = Some(app);
            return Ok(());
        }
        let app = self
            .app
            .as_ref()
            .ok_or_else(|| anyhow!("no app_webhook receiver: start one first"))?;
        match a.action.as_str() {
            "down" => app.set_down(true),
            "up" => app.set_down(false),
            "wait_refused" => {
                let want = a.refused.unwrap_or(1);
                let started = std::time::Instant::now();
                while app.received().iter().filter(|r| r.status == 500).count() < want {
                    if started.elapsed() > PATIENCE {
                        bail!(
                            "the app was not sent {want} deliveries to refuse within {PATIENCE:?}: {:?}",
                            app.received()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            "expect" => {
                let started = std::time::Instant::now();
                loop {
                    match check_app_events(&app.received(), a) {
                        Ok(()) => break,
                        Err(e) if started.elapsed() < PATIENCE => {
                            tracing::debug!(error = %e, "app events: not yet");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => bail!("app webhooks after {PATIENCE:?}: {e}"),
                    }
                }
            }
            other => bail!(
                "unknown app_webhook action {other:?}: start, down, up, wait_refused or expect"
            ),
        }
        Ok(())
    }

    async fn stripe_step(&mut self, s: &transcript::StripeStep) -> anyhow::Result<()> {
        stripe_steps::run(self, s).await
    }

    /// At the end every client must have consumed every frame stored: a fresh connection
    /// resuming after the last `seq` seen must find nothing newer.
    async fn barrier(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.clients.iter().find(|c| c.connected()) else {
            return Ok(());
        };
        let seen = c.last_seq;
        let mut probe = Client::new();
        let welcome = probe
            .connect(&self.server().ws_url(), &self.token, &self.project, seen)
            .await?;
        let last = welcome["last_seq"].as_i64().unwrap_or(0);
        if last > seen {
            let mut extra = Vec::new();
            while let Some(f) = probe.take_ready_or_wait(Duration::from_secs(2)).await {
                extra.push(f.to_string());
            }
            bail!(
                "after the last turn the conversation has frames no turn expected (seq {}..={last}):\n  {}",
                seen + 1,
                extra.join("\n  ")
            );
        }
        for (n, c) in self.clients.iter_mut().enumerate() {
            if let Some(f) = c.take_ready() {
                bail!("client {} got a frame no turn expected: {f}", n + 1);
            }
        }
        Ok(())
    }
}

/// Reads frames until a card of `kind` arrives.
/// Whether the app has been sent what the step expects: every signature right, the events
/// delivered (2xx) in order with their reasons, each once, and every refused delivery sent
/// again with the same id and body until it was delivered.
fn check_app_events(
    got: &[app_receiver::Received],
    a: &transcript::AppWebhookStep,
) -> anyhow::Result<()> {
    if let Some(bad) = got.iter().find(|r| r.bad_signature.is_some()) {
        bail!("a delivery was not signed right: {bad:?}");
    }
    let delivered: Vec<&app_receiver::Received> = got.iter().filter(|r| r.status == 200).collect();
    let types: Vec<&str> = delivered.iter().map(|r| r.event_type.as_str()).collect();
    if types != a.events {
        bail!("delivered {types:?}, expected {:?}", a.events);
    }
    if !a.reasons.is_empty() {
        let reasons: Vec<String> = delivered
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap_or(Value::Null)["data"]["object"]
                    ["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        if reasons != a.reasons {
            bail!("delivered reasons {reasons:?}, expected {:?}", a.reasons);
        }
    }
    let mut ids: Vec<&str> = delivered.iter().map(|r| r.id.as_str()).collect();
    if ids.iter().any(|id| !id.starts_with("evt_cp_")) {
        bail!("event ids must start with evt_cp_: {ids:?}");
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != delivered.len() {
        bail!("an event was delivered twice: {delivered:?}");
    }
    let refused: Vec<&app_receiver::Received> = got.iter().filter(|r| r.status == 500).collect();
    for r in &refused {
        match delivered.iter().find(|d| d.id == r.id) {
            Some(d) if d.body == r.body => {}
            Some(d) => bail!("a retry changed the body:\n  {}\n  {}", r.body, d.body),
            None => bail!("refused event {} was not delivered again", r.id),
        }
    }
    if let Some(n) = a.refused
        && refused.len() != n
    {
        bail!("{} deliveries were refused, expected {n}", refused.len());
    }
    Ok(())
}

/// Whether an HTTP answer is what the turn expects.
fn check_http(h: &transcript::Http, path: &str, status: u16, answer: &Value) -> anyhow::Result<()> {
    if status != h.status {
        bail!(
            "{} {path} answered {status}, expected {}: {answer}",
            h.method,
            h.status
        );
    }
    for want in &h.text {
        let got = answer.as_str().unwrap_or_default();
        if !got.contains(want.as_str()) {
            bail!("{} {path}: the answer has no {want:?}: {got:?}", h.method);
        }
    }
    for (dotted, want) in &h.json {
        let mut at = answer;
        for part in dotted.split('.') {
            at = match (part.parse::<usize>(), at) {
                (Ok(i), Value::Array(items)) => items.get(i).unwrap_or(&Value::Null),
                _ => &at[part],
            };
        }
        // TOML has no null: "<null>" stands for it.
        let want = match toml_json(want.clone()) {
            Value::String(s) if s == "<null>" => Value::Null,
            other => other,
        };
        if at != &want {
            bail!(
                "{} {path}: `{dotted}` is {at}, expected {want} (answer: {answer})",
                h.method
            );
        }
    }
    Ok(())
}

async fn until_card(c: &mut Client, kind: &str) -> anyhow::Result<()> {
    loop {
        let f = c.next(PATIENCE).await?;
        if f["type"] == "card" && f["card"]["kind"] == kind {
            return Ok(());
        }
    }
}

mod stripe_steps {
    use super::*;
    use stripe_sandbox::{Fault, FaultAction, OAuthAuthorize, VerificationOutcome};

    fn outcome(s: &transcript::StripeStep) -> anyhow::Result<VerificationOutcome> {
        let reason = s.reason.clone();
        Ok(match s.outcome.as_deref().unwrap_or("verified") {
            "verified" => VerificationOutcome::Verified,
            "pending" => VerificationOutcome::Pending,
            "more_info" => VerificationOutcome::MoreInfo {
                requirement: reason
                    .unwrap_or_else(|| "individual.verification.document".to_owned()),
                deadline: Some(chrono::Utc::now().timestamp() + 14 * 86_400),
                past_due: false,
                error_code: None,
            },
            "past_due" => VerificationOutcome::MoreInfo {
                requirement: reason
                    .unwrap_or_else(|| "individual.verification.document".to_owned()),
                deadline: Some(chrono::Utc::now().timestamp() - 86_400),
                past_due: true,
                error_code: None,
            },
            "rejected" => VerificationOutcome::Rejected {
                reason: reason.unwrap_or_else(|| "rejected.other".to_owned()),
            },
            "disabled" => VerificationOutcome::Disabled {
                reason: reason.unwrap_or_else(|| "under_review".to_owned()),
            },
            other => bail!("unknown outcome {other:?}"),
        })
    }

    /// What a browser does with a redirect to a chatpay page: load it.
    async fn browse(run: &Run<'_>, url: &str) -> anyhow::Result<u16> {
        let res = run.http.get(url, &[]).await?;
        Ok(res.status)
    }

    pub(super) async fn account_id(run: &Run<'_>) -> anyhow::Result<String> {
        account_in(run, false).await
    }

    /// The project's connected account in test mode, or in live mode (`live`).
    async fn account_in(run: &Run<'_>, live: bool) -> anyhow::Result<String> {
        let mode = if live { "live" } else { "test" };
        let path = format!(
            "/v1/projects/{}/integrations/stripe?mode={mode}",
            run.project
        );
        let (_, status) = run.api("GET", &path, Some(&run.token), None).await?;
        status["account"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the project has no connected account: {status}"))
    }

    /// Calls the sandbox's API as the connected account.
    async fn api_as(
        run: &Run<'_>,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        api_in(run, false, method, path, form).await
    }

    /// Calls the sandbox's API as the connected account of that mode, with that mode's key.
    async fn api_in(
        run: &Run<'_>,
        live: bool,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let account = account_in(run, live).await?;
        let key = if live {
            &run.sandbox.config().live_secret_key
        } else {
            &run.sandbox.config().test_secret_key
        };
        let auth = format!("Bearer {key}");
        let url = format!("{}{}", run.sandbox.base_url(), path.trim_start_matches('/'));
        let headers = [
            ("authorization", auth.as_str()),
            ("stripe-account", account.as_str()),
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

    /// Whether a step acts in live mode (`mode = "live"`).
    fn step_is_live(s: &transcript::StripeStep) -> anyhow::Result<bool> {
        match s.mode.as_deref() {
            None | Some("test") => Ok(false),
            Some("live") => Ok(true),
            Some(other) => bail!("mode must be test or live, not {other:?}"),
        }
    }

    async fn product_named(run: &Run<'_>, live: bool, name: &str) -> anyhow::Result<Value> {
        let list = api_in(run, live, "GET", "v1/products?limit=100", &[]).await?;
        list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .ok_or_else(|| anyhow!("no product named {name:?}"))
    }

    async fn catalog_change(run: &Run<'_>, s: &transcript::StripeStep) -> anyhow::Result<()> {
        let name = s
            .name
            .clone()
            .ok_or_else(|| anyhow!("{} needs a name", s.action))?;
        let live = step_is_live(s)?;
        match s.action.as_str() {
            "create_product" | "create_price" => {
                let id = if s.action == "create_product" {
                    let product =
                        api_in(run, live, "POST", "v1/products", &[("name", &name)]).await?;
                    product["id"].as_str().unwrap_or_default().to_owned()
                } else {
                    let product = product_named(run, live, &name).await?;
                    product["id"].as_str().unwrap_or_default().to_owned()
                };
                if let Some(amount) = s.amount {
                    let amount = amount.to_string();
                    let currency = s.currency.clone().unwrap_or_else(|| "usd".to_owned());
                    let mut form = vec![
                        ("product", id.as_str()),
                        ("unit_amount", amount.as_str()),
                        ("currency", currency.as_str()),
                    ];
                    if let Some(interval) = &s.interval {
                        form.push(("recurring[interval]", interval));
                    }
                    api_in(run, live, "POST", "v1/prices", &form).await?;
                }
            }
            "archive_product" => {
                let product = product_named(run, live, &name).await?;
                let path = format!("v1/products/{}", product["id"].as_str().unwrap_or_default());
                api_in(run, live, "POST", &path, &[("active", "false")]).await?;
            }
            _ => {
                let product = product_named(run, live, &name).await?;
                let id = product["id"].as_str().unwrap_or_default();
                let prices = api_in(
                    run,
                    live,
                    "GET",
                    &format!("v1/prices?product={id}&limit=100"),
                    &[],
                )
                .await?;
                for price in prices["data"].as_array().into_iter().flatten() {
                    let price_id = price["id"].as_str().unwrap_or_default();
                    if s.action == "delete_price" {
                        run.sandbox.delete_price(price_id)?;
                    } else {
                        api_as(
                            run,
                            "POST",
                            &format!("v1/prices/{price_id}"),
                            &[("active", "false")],
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces `"{price:NAME}"` strings in a request body by the id of the named product's
    /// first active price in the connected account.
    pub(super) async fn fill_prices(run: &Run<'_>, body: Value) -> anyhow::Result<Value> {
        Ok(match body {
            // A customer proof as the builder's server signs it (README: hex HMAC-SHA256 of
            // "{expires}.{project}.{email}" with the proof secret), valid for an hour.
            Value::String(s) if s == "{proof_expires}" => Value::from(proof_expires()),
            Value::String(s) if s.starts_with("{customer_proof:") && s.ends_with('}') => {
                let email = &s["{customer_proof:".len()..s.len() - 1];
                let secret = run
                    .proof_secret
                    .as_deref()
                    .ok_or_else(|| anyhow!("no proof secret has been shown yet (GET …/portal)"))?;
                let payload = format!("{}.{}", run.project, email.to_lowercase());
                let header =
                    chatpay_stripe::webhook::sign(payload.as_bytes(), secret, proof_expires());
                Value::String(
                    header
                        .split_once(",v1=")
                        .map(|(_, v)| v.to_owned())
                        .unwrap_or_default(),
                )
            }
            Value::String(s) if s.starts_with("{price:") && s.ends_with('}') => {
                let name = &s["{price:".len()..s.len() - 1];
                let product = product_named(run, false, name).await?;
                let id = product["id"].as_str().unwrap_or_default();
                let prices = api_as(
                    run,
                    "GET",
                    &format!("v1/prices?product={id}&limit=100"),
                    &[],
                )
                .await?;
                let price = prices["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["active"] == true)
                    .and_then(|p| p["id"].as_str())
                    .ok_or_else(|| anyhow!("{name:?} has no active price"))?;
                Value::String(price.to_owned())
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for v in items {
                    out.push(Box::pin(fill_prices(run, v)).await?);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(k, Box::pin(fill_prices(run, v)).await?);
                }
                Value::Object(out)
            }
            other => other,
        })
    }

    /// When the transcripts' customer proofs expire: the next full hour after now plus an hour
    /// (the same for every step of a run but the slowest).
    fn proof_expires() -> i64 {
        let now = chatpay_core::domain::now_millis() / 1000;
        (now / 3600 + 2) * 3600
    }

    /// Replaces `{price:NAME}` in a path (a buy link) as in bodies, and `{subscription}` by
    /// the connected account's newest subscription.
    pub(super) async fn fill_path(run: &Run<'_>, path: String) -> anyhow::Result<String> {
        let path = if path.contains("{subscription}") {
            let sub = newest_subscription(run).await?;
            path.replace("{subscription}", sub["id"].as_str().unwrap_or_default())
        } else {
            path
        };
        let Some(start) = path.find("{price:") else {
            return Ok(path);
        };
        let end = path[start..]
            .find('}')
            .map(|e| start + e + 1)
            .ok_or_else(|| anyhow!("unclosed {{price:…}} in {path}"))?;
        let id = fill_prices(run, Value::String(path[start..end].to_owned())).await?;
        Ok(format!(
            "{}{}{}",
            &path[..start],
            id.as_str().unwrap_or_default(),
            &path[end..]
        ))
    }

    /// The connected account's newest subscription, as the sandbox's API shows it.
    async fn newest_subscription(run: &Run<'_>) -> anyhow::Result<Value> {
        let list = api_as(run, "GET", "v1/subscriptions?status=all&limit=1", &[]).await?;
        list["data"][0]
            .as_object()
            .map(|o| Value::Object(o.clone()))
            .ok_or_else(|| anyhow!("the connected account has no subscription yet"))
    }

    /// The checkout a selling step acts on: the named order's, or the newest.
    fn session(run: &Run<'_>, s: &transcript::StripeStep) -> anyhow::Result<String> {
        match s.order {
            Some(n) => run.sessions.get(&n).cloned(),
            None => run.sessions.values().next_back().cloned(),
        }
        .ok_or_else(|| anyhow!("no checkout has been created by an HTTP step yet"))
    }

    async fn selling(run: &mut Run<'_>, s: &transcript::StripeStep) -> anyhow::Result<()> {
        use stripe_sandbox::{Authenticate, TestPayment};
        let answer = |a: Option<&str>| match a {
            Some("fail") => Authenticate::Fail,
            _ => Authenticate::Complete,
        };
        match s.action.as_str() {
            // The customer pays on the hosted checkout page (3D Secure answered if asked).
            "pay" => {
                let session = session(run, s)?;
                if let Some(code) = &s.promotion_code {
                    run.sandbox
                        .apply_promotion_code(&session, code, s.email.as_deref())?;
                }
                let mut payment =
                    TestPayment::card(s.card.as_deref().unwrap_or("4242424242424242"));
                payment.email = s.email.clone();
                payment.authenticate = s.authenticate.as_deref().map(|a| answer(Some(a)));
                let result = run.sandbox.pay_checkout(&session, payment)?;
                if let Some(want) = &s.outcome
                    && &result.outcome != want
                {
                    bail!(
                        "the payment's outcome was {}, expected {want}",
                        result.outcome
                    );
                }
            }
            "authenticate" => {
                let session = session(run, s)?;
                run.sandbox
                    .authenticate_checkout(&session, answer(s.outcome.as_deref()))?;
            }
            "expire_checkout" => {
                let session = session(run, s)?;
                api_as(
                    run,
                    "POST",
                    &format!("v1/checkout/sessions/{session}/expire"),
                    &[],
                )
                .await?;
            }
            // The owner refunds in the Stripe Dashboard (no chatpay metadata).
            "refund_in_dashboard" => {
                let session = session(run, s)?;
                let cs =
                    api_as(run, "GET", &format!("v1/checkout/sessions/{session}"), &[]).await?;
                let pi = cs["payment_intent"]
                    .as_str()
                    .ok_or_else(|| anyhow!("the checkout has no payment yet"))?
                    .to_owned();
                let amount = s.amount.map(|a| a.to_string());
                let mut form = vec![("payment_intent", pi.as_str())];
                if let Some(a) = &amount {
                    form.push(("amount", a));
                }
                api_as(run, "POST", "v1/refunds", &form).await?;
            }
            // At-least-once and unordered: every event so far arrives again, newest first.
            "shuffle_events" => {
                let events = run.sandbox.events(None);
                let ids: Vec<&str> = events.iter().rev().map(|e| e.id.as_str()).collect();
                for attempt in run.sandbox.deliver_events(&ids).await? {
                    if attempt.status != Some(200) {
                        bail!("a redelivered event was not acknowledged: {attempt:?}");
                    }
                }
            }
            // The newest subscription's customer replaces the saved card (4000 0000 0000 0341:
            // every later charge fails).
            "set_customer_card" => {
                let sub = newest_subscription(run).await?;
                let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
                run.sandbox.set_customer_card(
                    &customer,
                    s.card.as_deref().unwrap_or("4242424242424242"),
                )?;
            }
            // The customer pays the newest subscription's open invoice with a new card (4242
            // unless `card` says otherwise), as on the hosted invoice page.
            "pay_invoice" => {
                let sub = newest_subscription(run).await?;
                let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
                let id = sub["id"].as_str().unwrap_or_default().to_owned();
                let open = api_as(
                    run,
                    "GET",
                    &format!("v1/invoices?subscription={id}&status=open&limit=1"),
                    &[],
                )
                .await?;
                let invoice = open["data"][0]["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("subscription {id} has no open invoice"))?
                    .to_owned();
                run.sandbox.set_customer_card(
                    &customer,
                    s.card.as_deref().unwrap_or("4242424242424242"),
                )?;
                api_as(run, "POST", &format!("v1/invoices/{invoice}/pay"), &[]).await?;
            }
            // The connected account's next payout fails with this Stripe failure code.
            "fail_next_payout" => {
                let account = account_in(run, false).await?;
                run.sandbox
                    .fail_next_payout(&account, s.reason.as_deref().unwrap_or("account_closed"))?;
            }
            // The subscriber opens the newest billing portal link the chat showed (or the
            // newest an HTTP step answered) and, as a browser would, posts the page's form:
            // switch to the plan of `interval` (and `name`, if given), or cancel.
            "portal_switch_plan" | "portal_cancel" => {
                let url = run.clients[0]
                    .link("portal_link", "open")
                    .or_else(|| run.portal_url.clone())
                    .ok_or_else(|| anyhow!("no billing portal link has been shown"))?;
                let page = run.http.get(&url, &[]).await?;
                if page.status != 200 {
                    bail!("the portal page answered {}: {}", page.status, page.text());
                }
                let html = page.text();
                let sub = html
                    .split_once("name=\"subscription\" value=\"")
                    .and_then(|(_, rest)| rest.split('"').next())
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("the portal page shows no subscription: {html}"))?;
                let (path, mut form) = if s.action == "portal_switch_plan" {
                    let every = format!("/ {}", s.interval.as_deref().unwrap_or("year"));
                    let price = html
                        .split("<option value=\"")
                        .skip(1)
                        .find(|o| {
                            let label = o.split("</option>").next().unwrap_or_default();
                            label.contains(&every)
                                && s.name.as_deref().is_none_or(|n| label.contains(n))
                        })
                        .and_then(|o| o.split('"').next())
                        .ok_or_else(|| anyhow!("the portal offers no plan {every}: {html}"))?
                        .to_owned();
                    ("update", vec![("price".to_owned(), price)])
                } else {
                    ("cancel", Vec::new())
                };
                form.push(("subscription".to_owned(), sub));
                let pairs: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let res = run
                    .http
                    .post_form(&format!("{url}/{path}"), &[], &pairs)
                    .await?;
                if res.status != 200 {
                    bail!(
                        "the portal's {path} answered {}: {}",
                        res.status,
                        res.text()
                    );
                }
            }
            "assert_outbox" => {
                let n = run.sandbox.outbox().len();
                let want = s.count.unwrap_or(1) as usize;
                if n != want {
                    bail!("the sandbox sent {n} receipt emails, expected {want}");
                }
            }
            other => bail!("unknown selling step {other:?}"),
        }
        Ok(())
    }

    pub(super) async fn run(run: &mut Run<'_>, s: &transcript::StripeStep) -> anyhow::Result<()> {
        match s.action.as_str() {
            // The person opens the onboarding link and submits Stripe's form; the browser then
            // follows Stripe's redirect back to chatpay (return URL, or refresh URL if the link
            // had expired or was used).
            "complete_onboarding" => {
                let url = run.clients[0]
                    .link("onboarding", "open")
                    .ok_or_else(|| anyhow!("no onboarding link has been shown"))?;
                let result = run.sandbox.follow_account_link(&url, outcome(s)?)?;
                if s.browse.unwrap_or(true) {
                    let status = browse(run, &result.redirect_to).await?;
                    if let Some(want) = s.expect_status
                        && status != want
                    {
                        bail!(
                            "the page Stripe sent the browser to answered {status}, expected {want}"
                        );
                    }
                }
            }
            // The person leaves Stripe's page without finishing and comes back to chatpay.
            "leave_onboarding" => {
                let url = run.clients[0]
                    .link("onboarding", "open")
                    .ok_or_else(|| anyhow!("no onboarding link has been shown"))?;
                let back = run.sandbox.leave_account_link(&url)?;
                browse(run, &back).await?;
            }
            "set_outcome" => {
                let account = account_in(run, step_is_live(s)?).await?;
                run.sandbox.set_verification(&account, outcome(s)?)?;
            }
            "authorize_oauth" | "deny_oauth" => {
                let url = run.clients[0]
                    .link("connect_existing", "authorize")
                    .ok_or_else(|| anyhow!("no OAuth link has been shown"))?;
                let query: BTreeMap<String, String> = url
                    .split_once('?')
                    .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                    .unwrap_or_default();
                let redirect = run.sandbox.authorize_oauth(OAuthAuthorize {
                    client_id: query.get("client_id").cloned().unwrap_or_default(),
                    redirect_uri: query.get("redirect_uri").cloned().unwrap_or_default(),
                    state: query.get("state").cloned(),
                    scope: "read_write".to_owned(),
                    deny: s.action == "deny_oauth",
                    email: None,
                    business_name: Some("Existing Shop".to_owned()),
                    country: None,
                })?;
                browse(run, &redirect).await?;
            }
            // The account owner disconnects chatpay from their Stripe Dashboard.
            "deauthorize" => {
                let account = account_id(run).await?;
                let c = run.sandbox.config().clone();
                let auth = format!("Bearer {}", c.test_secret_key);
                let res = run
                    .http
                    .post_form(
                        &format!("{}oauth/deauthorize", run.sandbox.base_url()),
                        &[("authorization", &auth)],
                        &[
                            ("client_id", &c.connect_client_id),
                            ("stripe_user_id", &account),
                        ],
                    )
                    .await?;
                if res.status != 200 {
                    bail!("deauthorize answered {}: {}", res.status, res.text());
                }
            }
            "fault" => {
                run.sandbox.inject_fault(Fault {
                    method: s.method.clone(),
                    path: s
                        .path
                        .clone()
                        .ok_or_else(|| anyhow!("a fault needs a path"))?,
                    count: s.count.unwrap_or(1),
                    action: if let Some(delay_ms) = s.delay_ms {
                        FaultAction::Delay { delay_ms }
                    } else if s.lose_response {
                        FaultAction::LoseResponse {
                            lose_status: s.status.unwrap_or(500),
                        }
                    } else {
                        FaultAction::Status {
                            status: s.status.unwrap_or(500),
                        }
                    },
                    should_retry: None,
                })?;
            }
            // Until every armed fault has met its requests: a crash meant to come while Stripe
            // answers a call late comes after the call was made, however slowly the server got
            // to it.
            "await_faults" => {
                let started = std::time::Instant::now();
                while !run.sandbox.faults().is_empty() {
                    if started.elapsed() > PATIENCE {
                        bail!(
                            "armed faults still waiting for their requests after {PATIENCE:?}: {:?}",
                            run.sandbox.faults()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            // Stripe's deliveries stop (events queue up) until `resume_webhooks`.
            "pause_webhooks" => run.sandbox.pause_deliveries(true),
            "resume_webhooks" => run.sandbox.pause_deliveries(false),
            "pay"
            | "authenticate"
            | "expire_checkout"
            | "refund_in_dashboard"
            | "shuffle_events"
            | "set_customer_card"
            | "pay_invoice"
            | "fail_next_payout"
            | "portal_switch_plan"
            | "portal_cancel"
            | "assert_outbox" => {
                selling(run, s).await?;
            }
            "expire_links" => {
                run.sandbox.advance_clock(Duration::from_secs(301));
            }
            // Stripe's clock moves `count` seconds forward (delayed outcomes happen).
            "advance_clock" => {
                run.sandbox
                    .advance_clock(Duration::from_secs(u64::from(s.count.unwrap_or(60))));
            }
            // `count` days pass at Stripe (renewals, retries, funds becoming available and
            // payouts happen in order).
            "advance_days" => {
                run.sandbox.advance_clock(Duration::from_secs(
                    86_400 * u64::from(s.count.unwrap_or(1)),
                ));
            }
            // At-least-once delivery: the newest account event arrives again.
            "resend_last_event" => {
                let kind = s.event.as_deref().unwrap_or("account.updated");
                let events = run.sandbox.events(Some(kind));
                let last = events
                    .last()
                    .ok_or_else(|| anyhow!("no {kind} event yet"))?;
                let attempt = run.sandbox.resend_event(&last.id).await?;
                if attempt.status != Some(200) {
                    bail!("the duplicate was not acknowledged: {attempt:?}");
                }
            }
            // Out of order: the oldest account event arrives after the newer ones.
            "deliver_stale_event" => {
                let events = run
                    .sandbox
                    .events(Some(s.event.as_deref().unwrap_or("account.updated")));
                if events.len() < 2 {
                    bail!(
                        "need at least two account.updated events, have {}",
                        events.len()
                    );
                }
                let attempt = run.sandbox.resend_event(&events[0].id).await?;
                if attempt.status != Some(200) {
                    bail!("the stale event was not acknowledged: {attempt:?}");
                }
            }
            "signed_webhook" => {
                let mut body = s.body.clone().unwrap_or_else(|| "{}".to_owned());
                // `{account}` / `{live_account}`: the project's connected account in that mode.
                if body.contains("{live_account}") {
                    body = body.replace("{live_account}", &account_in(run, true).await?);
                }
                if body.contains("{account}") {
                    body = body.replace("{account}", &account_id(run).await?);
                }
                let secret = if s.bad_signature {
                    "whsec_wrong"
                } else {
                    run.webhook_secret.as_str()
                };
                let header = chatpay_stripe::webhook::sign(
                    body.as_bytes(),
                    secret,
                    chrono::Utc::now().timestamp(),
                );
                let url = format!("{}/v1/webhooks/stripe", run.server().url());
                let res = run
                    .http
                    .send(
                        "POST",
                        &url,
                        &[
                            ("stripe-signature", &header),
                            ("content-type", "application/json"),
                        ],
                        body,
                    )
                    .await?;
                let want = s.expect_status.unwrap_or(200);
                if res.status != want {
                    bail!(
                        "the webhook endpoint answered {}, expected {want}: {}",
                        res.status,
                        res.text()
                    );
                }
            }
            // Fills the connected account's catalog with a deterministic mix (see the sandbox).
            "seed_catalog" => {
                let live = step_is_live(s)?;
                let account = account_in(run, live).await?;
                run.sandbox.seed_catalog(&stripe_sandbox::SeedCatalog {
                    account: Some(account),
                    livemode: live,
                    products: s.count.unwrap_or(10),
                    currencies: Vec::new(),
                    emit_events: false,
                })?;
            }
            // The owner changes products in the Stripe Dashboard (webhooks follow).
            "create_product" | "create_price" | "archive_price" | "archive_product"
            | "delete_price" => {
                catalog_change(run, s).await?;
            }
            // The account owner changes the statement descriptor in the Stripe Dashboard
            // (`""` clears it); Stripe sends account.updated.
            "update_account" => {
                let live = step_is_live(s)?;
                let account = account_in(run, live).await?;
                let descriptor = s
                    .descriptor
                    .clone()
                    .ok_or_else(|| anyhow!("update_account needs a descriptor"))?;
                let key = if live {
                    &run.sandbox.config().live_secret_key
                } else {
                    &run.sandbox.config().test_secret_key
                };
                let auth = format!("Bearer {key}");
                let url = format!("{}v1/accounts/{account}", run.sandbox.base_url());
                let res = run
                    .http
                    .post_form(
                        &url,
                        &[("authorization", auth.as_str())],
                        &[(
                            "settings[payments][statement_descriptor]",
                            descriptor.as_str(),
                        )],
                    )
                    .await?;
                if !(200..300).contains(&res.status) {
                    bail!("updating {account} answered {}: {}", res.status, res.text());
                }
            }
            // What the webhook ledger recorded for an event: `event` (its id), and `outcome`
            // (text its outcome must contain).
            "assert_event" => {
                let id = s
                    .event
                    .clone()
                    .ok_or_else(|| anyhow!("assert_event needs an event id"))?;
                let want = s.outcome.clone().unwrap_or_default();
                let store = chatpay_store::connect(&run.config.database_url).await?;
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let record = store.event(&id).await?;
                    let outcome = record.as_ref().and_then(|r| r.outcome.clone());
                    match &outcome {
                        Some(o) if o.contains(&want) => break,
                        Some(o) => bail!(
                            "event {id} was recorded with outcome {o:?}, expected one containing {want:?}"
                        ),
                        None if std::time::Instant::now() > deadline => bail!(
                            "event {id} has {} after 20 s",
                            if record.is_some() {
                                "no outcome"
                            } else {
                                "not been recorded"
                            }
                        ),
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
            // How many products (and prices) the connected account has in test mode: a double
            // click or a crash made each once.
            "assert_products" => {
                let products =
                    api_in(run, step_is_live(s)?, "GET", "v1/products?limit=100", &[]).await?;
                let n = products["data"].as_array().map_or(0, Vec::len);
                let want = s.count.unwrap_or(1) as usize;
                if n != want {
                    bail!("the connected account has {n} product(s), expected {want}");
                }
            }
            // How many connected accounts Stripe has (test mode).
            "assert_accounts" => {
                let auth = format!("Bearer {}", run.sandbox.config().test_secret_key);
                let res = run
                    .http
                    .get(
                        &format!("{}v1/accounts?limit=100", run.sandbox.base_url()),
                        &[("authorization", &auth)],
                    )
                    .await?;
                let n = res.json()?["data"].as_array().map_or(0, Vec::len);
                let want = s.count.unwrap_or(1) as usize;
                if n != want {
                    bail!("Stripe has {n} connected account(s), expected {want}");
                }
            }
            other => bail!("unknown stripe action {other:?}"),
        }
        Ok(())
    }
}

fn describe(t: &Turn) -> String {
    if let Some(s) = &t.say {
        format!("say {s:?}")
    } else if let Some(c) = &t.click {
        format!("click {}:{}", c.kind, c.action)
    } else if t.raw.is_some() {
        "raw frame".to_owned()
    } else if t.oversized.is_some() {
        "oversized frame".to_owned()
    } else if let Some(id) = &t.resend {
        format!("resend {id}")
    } else if t.restart {
        "restart".to_owned()
    } else if t.reconnect.is_some() {
        "reconnect".to_owned()
    } else if t.connect {
        "connect".to_owned()
    } else if t.hello.is_some() {
        "hello".to_owned()
    } else if let Some(h) = &t.http {
        format!("{} {}", h.method, h.path)
    } else if let Some(s) = &t.stripe {
        format!("stripe {}", s.action)
    } else if let Some(a) = &t.app_webhook {
        format!("app_webhook {}", a.action)
    } else {
        "wait".to_owned()
    }
}

fn expect_summary(e: &Expect) -> String {
    let mut parts = vec![format!("type={}", e.kind_of_frame)];
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    add("kind", &e.kind);
    add("flow", &e.flow);
    add("state", &e.state);
    add("code", &e.code);
    add("intent", &e.intent);
    add("text~", &e.text);
    add("mode", &e.mode);
    if let Some(a) = &e.actions {
        parts.push(format!("actions⊇{a:?}"));
    }
    if let Some(f) = &e.fields {
        parts.push(format!("fields⊇{f:?}"));
    }
    if e.pushed {
        parts.push("pushed".to_owned());
    }
    parts.join(" ")
}

/// Checks one frame against one expectation; says what differs.
fn matches(e: &Expect, f: &Value) -> Result<(), String> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if s(&f["type"]) != e.kind_of_frame {
        return Err(format!("type is {:?}", s(&f["type"])));
    }
    let card = &f["card"];
    if let Some(kind) = &e.kind
        && s(&card["kind"]) != *kind
    {
        return Err(format!("card kind is {:?}", s(&card["kind"])));
    }
    if let Some(actions) = &e.actions {
        let have: Vec<String> = card["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| s(&a["id"]))
            .collect();
        for a in actions {
            if !have.contains(a) {
                return Err(format!("card has no action {a:?} (it has {have:?})"));
            }
        }
    }
    if let Some(fields) = &e.card_fields {
        let have: Vec<String> = card["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| s(&a["name"]))
            .collect();
        for n in fields {
            if !have.contains(n) {
                return Err(format!("card has no field {n:?} (it has {have:?})"));
            }
        }
    }
    if let Some(text) = &e.text {
        let hay = format!(
            "{} {} {} {} {}",
            s(&f["text"]),
            s(&card["title"]),
            s(&card["body"]),
            s(&f["message"]),
            card["facts"]
        )
        .to_lowercase();
        if !hay.contains(&text.to_lowercase()) {
            return Err(format!("text does not contain {text:?}"));
        }
    }
    if let Some(intent) = &e.intent {
        let got = match f.get("intent") {
            None => "absent".to_owned(),
            Some(Value::Null) => "none".to_owned(),
            Some(i) => s(&i["name"]),
        };
        if got != *intent {
            return Err(format!("intent is {got:?}"));
        }
    }
    if let Some(flow) = &e.flow
        && s(&f["flow"]) != *flow
    {
        return Err(format!("flow is {:?}", s(&f["flow"])));
    }
    if let Some(state) = &e.state
        && s(&f["state"]) != *state
    {
        return Err(format!("state is {:?}", s(&f["state"])));
    }
    if let Some(code) = &e.code
        && s(&f["code"]) != *code
    {
        return Err(format!("error code is {:?}", s(&f["code"])));
    }
    if let Some(fields) = &e.fields {
        for n in fields {
            if f["fields"].get(n).is_none() {
                return Err(format!("error has no field {n:?}"));
            }
        }
    }
    if e.pushed && f.get("reply_to").is_some() {
        return Err(
            "the frame has a reply_to; expected one pushed from outside the chat".to_owned(),
        );
    }
    if let Some(mode) = &e.mode
        && s(&card["mode"]) != *mode
    {
        return Err(format!("card mode is {:?}", s(&card["mode"])));
    }
    Ok(())
}

fn toml_json(v: toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
