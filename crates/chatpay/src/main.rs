//! The `chatpay` command: parse the command line, set up logging, run the subcommand.
//!
//! Wiring happens here, at the top: `serve` chooses real Stripe (a key is configured) or starts
//! the built-in sandbox and points the Stripe settings at it, then hands the server its gateway.
//! `replay` and `bench` are test tooling (`chatpay-testkit`), compiled in only with the
//! `testkit` feature (`testkit.rs`), so the production build does not link the test kit.

#[cfg(feature = "testkit")]
mod testkit;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use chatpay_core::domain::{TokenId, WorkspaceId};
use chatpay_core::intents::{self, Outcome};
use chatpay_server::app::{Application, Stripe};
use chatpay_server::auth::Target;
use chatpay_server::config::{Config, LogFormat, Secret};
use stripe_sandbox::{Sandbox, SandboxConfig};

#[derive(Parser)]
#[command(
    name = "chatpay",
    version,
    about = "Add payments to a chat-built app by talking to it"
)]
struct Cli {
    /// A TOML configuration file (see README: Configuration).
    #[arg(long, global = true, env = "CHATPAY_CONFIG")]
    config: Option<PathBuf>,
    /// sqlite://FILE (default sqlite://chatpay.db) or postgres://…
    #[arg(long, global = true, env = "CHATPAY_DATABASE_URL")]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "CHATPAY_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the chat server (HTTP + WebSocket), with the built-in Stripe sandbox unless a Stripe
    /// key is configured.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "CHATPAY_LISTEN")]
        listen: Option<SocketAddr>,
        /// The public base URL (links in cards and Stripe return URLs).
        #[arg(long, env = "CHATPAY_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// People who sign in to the web page.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Intent files.
    Intents {
        #[command(subcommand)]
        command: IntentsCommand,
    },
    /// Replay transcript files against a fresh server; prints what failed and the coverage.
    #[cfg(feature = "testkit")]
    Replay(testkit::ReplayArgs),
    /// Load client: N WebSocket connections sending turns; prints turns/s and latency.
    #[cfg(feature = "testkit")]
    Bench(chatpay_testkit::bench::BenchArgs),
    /// `replay` and `bench` in a build without the test kit: says how to build one with it.
    #[cfg(not(feature = "testkit"))]
    #[command(
        name = "replay",
        alias = "bench",
        hide = true,
        disable_help_flag = true
    )]
    WithoutTestkit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run only the built-in Stripe sandbox.
    StripeSandbox {
        #[arg(long, default_value = "127.0.0.1:12111")]
        listen: SocketAddr,
        /// Where to deliver webhooks, and the signing secret.
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long, default_value = "whsec_chatpay_sandbox")]
        webhook_secret: String,
        /// Keep the sandbox's state in this file across restarts.
        #[arg(long)]
        state_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is stored hashed and shown only this once). By default
    /// it belongs to the deployment's first workspace (created on an empty database).
    Create {
        #[arg(long)]
        name: String,
        /// Of this workspace (`wsp_…`).
        #[arg(long, conflicts_with = "new_workspace")]
        workspace: Option<String>,
        /// Of a new workspace (a stranger to every other one), named as the token.
        #[arg(long)]
        new_workspace: bool,
    },
    /// List a workspace's API tokens (the first one's by default): id, name, last use.
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a token by its id (`tok_…`): it stops working at once.
    Revoke {
        id: String,
        #[arg(long)]
        workspace: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set a new password for EMAIL, read from standard input (one line), and end every
    /// session of that person.
    ResetPassword { email: String },
}

#[derive(Subcommand)]
enum IntentsCommand {
    /// Validate intent files and run their examples and counter-examples.
    Check {
        /// Directory of intent files (default: ./intents).
        dir: Option<PathBuf>,
    },
    /// Classify utterances from stdin, one per line; one JSON object per line on stdout.
    Classify {
        /// Directory of intent files (default: the embedded ones).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Score the matcher on a held-out file (`text<TAB>intent or none<TAB>slots JSON`): accuracy,
    /// false triggers, slots, confusion. A measurement: it always exits 0 if the file reads.
    Eval {
        file: PathBuf,
        /// Directory of intent files (default: the embedded ones).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// mimalloc instead of glibc's malloc: under chat load glibc spent about a fifth of the server's
/// CPU in malloc and free (frames and turns are allocated on tokio's workers and freed on the
/// SQLite writer's thread, which glibc's arenas handle badly).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chatpay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(url) = &cli.database_url {
        config.database_url = url.clone();
    }
    if let Some(f) = cli.log_format {
        config.log_format = f;
    }
    stripe_env(&mut config);
    Ok(config)
}

/// Stripe settings from their conventional environment variables.
fn stripe_env(config: &mut Config) {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(k) = var("STRIPE_SECRET_KEY") {
        config.stripe.secret_key = Some(Secret::new(k));
    }
    if let Some(k) = var("STRIPE_LIVE_SECRET_KEY") {
        config.stripe.live_secret_key = Some(Secret::new(k));
    }
    if let Some(k) = var("STRIPE_WEBHOOK_SECRET") {
        config.stripe.webhook_secret = Some(Secret::new(k));
    }
    if let Some(k) = var("STRIPE_CONNECT_CLIENT_ID") {
        config.stripe.connect_client_id = Some(k);
    }
    if let Some(k) = var("CHATPAY_PLATFORM_KEY") {
        config.platform_key = Some(Secret::new(k));
    }
    if let Some(k) = var("STRIPE_API_BASE") {
        config.stripe.api_base = Some(k);
    }
    if let Some(k) = var("STRIPE_CONNECT_BASE") {
        config.stripe.connect_base = Some(k);
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = config(&cli)?;
    chatpay_server::telemetry::init(config.log_format);
    match cli.command {
        Command::Serve { listen, public_url } => serve(config, listen, public_url),
        Command::Token {
            command:
                TokenCommand::Create {
                    name,
                    workspace,
                    new_workspace,
                },
        } => create_token(&config, &name, workspace.as_deref(), new_workspace),
        Command::Token {
            command: TokenCommand::List { workspace },
        } => list_tokens(&config, workspace.as_deref()),
        Command::Token {
            command: TokenCommand::Revoke { id, workspace },
        } => revoke_token(&config, &id, workspace.as_deref()),
        Command::User {
            command: UserCommand::ResetPassword { email },
        } => reset_password(&config, &email),
        Command::Intents {
            command: IntentsCommand::Check { dir },
        } => intents_check(&config, dir.unwrap_or_else(|| PathBuf::from("intents"))),
        Command::Intents {
            command: IntentsCommand::Classify { dir },
        } => intents_classify(&config, dir),
        Command::Intents {
            command: IntentsCommand::Eval { file, dir },
        } => intents_eval(&config, &file, dir),
        #[cfg(feature = "testkit")]
        Command::Replay(args) => testkit::replay(args, runtime()?),
        #[cfg(feature = "testkit")]
        Command::Bench(args) => testkit::bench(args, config, runtime()?),
        #[cfg(not(feature = "testkit"))]
        Command::WithoutTestkit { .. } => anyhow::bail!(
            "`replay` and `bench` come with the test kit, which this build leaves out: build with \
             `cargo build --release --features testkit` (or run \
             `cargo run --release --features testkit -- replay …`)"
        ),
        Command::StripeSandbox {
            listen,
            webhook_url,
            webhook_secret,
            state_file,
        } => stripe_sandbox(listen, webhook_url, webhook_secret, state_file),
    }
}

/// `chatpay serve`: the server until SIGINT or SIGTERM.
fn serve(
    mut config: Config,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    if let Some(l) = listen {
        config.listen = l;
    }
    if let Some(u) = public_url {
        config.public_url = Some(u);
    }
    // Held until this process ends: a second `serve` on the same SQLite file refuses to start.
    let _serving =
        chatpay_store::lock_for_serving(&config.database_url).map_err(anyhow::Error::msg)?;
    runtime()?.block_on(async {
        let sandbox = if config.stripe.uses_sandbox() {
            Some(start_sandbox(&mut config).await?)
        } else {
            None
        };
        let stripe = Stripe::from_config(&config.stripe)?;
        let app = Application::build(config, stripe).await?;
        let webhook_url = app.stripe_webhook_url();
        match &sandbox {
            Some((sandbox, secret)) => sandbox.set_webhook_endpoint(&webhook_url, secret.expose()),
            None => tracing::info!(webhook = %webhook_url, "using Stripe"),
        }
        let url = app.public_url().to_owned();
        // The web chat view's address, and how to sign in to it (stdout, not the log: the
        // sign-in link is for the person who started the server).
        match app.signin_url() {
            Some(link) => println!(
                "chatpay is running at {url}/\n\nNobody has a sign-in yet. To create the owner's, open this link\n(it works once, within an hour):\n\n    {link}\n"
            ),
            None => println!(
                "chatpay is running at {url}/\nSign in with your email and password (`chatpay user reset-password EMAIL` if it is lost), or an API token (`chatpay token create --name NAME`)."
            ),
        }
        let served = app.run_until_stopped(shutdown_signal()).await;
        if let Some((sandbox, _)) = sandbox {
            sandbox.shutdown().await;
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}

/// No Stripe key configured: the built-in sandbox on loopback stands in, and the Stripe settings
/// point at it. Returns it with the secret it signs webhooks with.
async fn start_sandbox(config: &mut Config) -> anyhow::Result<(Sandbox, Secret)> {
    let sandbox = Sandbox::start(SandboxConfig {
        listen: config
            .stripe
            .sandbox_listen
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("literal")),
        state_file: sandbox_state_file(&config.database_url),
        // By default the sandbox comes back on the port it had (kept in its state file), so the
        // checkout links of open orders still work after a restart.
        keep_address: config.stripe.sandbox_listen.is_none(),
        ..SandboxConfig::default()
    })
    .await
    .context("starting the built-in Stripe sandbox")?;
    let keys = sandbox.config();
    let secret = config.stripe.point_at(
        &sandbox.base_url(),
        &keys.test_secret_key,
        &keys.live_secret_key,
        &keys.connect_client_id,
    );
    tracing::info!(sandbox = %sandbox.base_url(), "no Stripe key configured: using the built-in Stripe sandbox");
    Ok((sandbox, secret))
}

/// The sandbox keeps its state beside a SQLite database, so a restart keeps its accounts.
fn sandbox_state_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && !path.contains(":memory:"))
        .then(|| PathBuf::from(format!("{path}.stripe-sandbox.json")))
}

/// `chatpay token create`: prints the new token (stored hashed, shown only this once) on
/// standard output, and its workspace on standard error.
fn create_token(
    config: &Config,
    name: &str,
    workspace: Option<&str>,
    new_workspace: bool,
) -> anyhow::Result<ExitCode> {
    let target = match (workspace, new_workspace) {
        (_, true) => Target::New,
        (Some(w), false) => Target::Workspace(parse_workspace(w)?),
        (None, false) => Target::First,
    };
    let minted = runtime()?.block_on(async {
        let store = chatpay_store::connect(&config.database_url).await?;
        chatpay_server::auth::create_api_token(&*store, name, &target)
            .await
            .map_err(|e| match e {
                chatpay_store::StoreError::NotFound => {
                    anyhow::anyhow!("there is no workspace {}", workspace.unwrap_or_default())
                }
                e => e.into(),
            })
    })?;
    eprintln!("API token {} of workspace {}", minted.id, minted.workspace);
    println!("{}", minted.secret);
    Ok(ExitCode::SUCCESS)
}

fn parse_workspace(w: &str) -> anyhow::Result<WorkspaceId> {
    WorkspaceId::parse(w).with_context(|| format!("{w:?} is not a workspace id (wsp_…)"))
}

/// The workspace `--workspace` names, or the deployment's first.
async fn chosen_workspace(
    store: &dyn chatpay_store::Store,
    workspace: Option<&str>,
) -> anyhow::Result<WorkspaceId> {
    match workspace {
        Some(w) => {
            let id = parse_workspace(w)?;
            store
                .workspace(&id)
                .await?
                .map(|w| w.id)
                .with_context(|| format!("there is no workspace {w}"))
        }
        None => store
            .first_workspace()
            .await?
            .map(|w| w.id)
            .context("there is no workspace yet: `chatpay token create --name NAME` makes one"),
    }
}

/// `chatpay token list`: one line per API token (id, name, created, last used, revoked).
fn list_tokens(config: &Config, workspace: Option<&str>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = chatpay_store::connect(&config.database_url).await?;
        let workspace = chosen_workspace(&*store, workspace).await?;
        let tokens = store
            .tokens_of(&workspace, chatpay_store::TokenKind::Api)
            .await?;
        let when = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map_or("-".to_owned(), |t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        };
        println!("workspace {workspace}");
        println!("ID\tNAME\tCREATED\tLAST USED\tREVOKED");
        for t in tokens {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                t.id,
                t.name,
                when(Some(t.created_at)),
                when(t.last_used_at),
                when(t.revoked_at)
            );
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `chatpay token revoke ID`: the token stops working at once (a running server checks the
/// database on every use; a chat open with it closes when the server hears of it: PostgreSQL's
/// notification, or its revocation sweep).
fn revoke_token(config: &Config, id: &str, workspace: Option<&str>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = chatpay_store::connect(&config.database_url).await?;
        let workspace = chosen_workspace(&*store, workspace).await?;
        let token =
            TokenId::parse(id).with_context(|| format!("{id:?} is not a token id (tok_…)"))?;
        let is_api = store
            .tokens_of(&workspace, chatpay_store::TokenKind::Api)
            .await?
            .iter()
            .any(|t| t.id == token);
        if !is_api
            || !store
                .revoke_token(&workspace, &token, chatpay_core::domain::now_millis())
                .await?
        {
            anyhow::bail!("workspace {workspace} has no API token {id} that still works");
        }
        eprintln!("revoked {id}");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `chatpay user reset-password EMAIL`: the new password from standard input; every session
/// of the person ends.
fn reset_password(config: &Config, email: &str) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let Some(email) = chatpay_server::auth::normalize_email(email) else {
        anyhow::bail!("{email:?} is not an email address");
    };
    if std::io::stdin().is_terminal() {
        eprintln!("New password for {email} (10 to 200 characters), then Enter:");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if let Some(problem) = chatpay_server::auth::password_problem(password) {
        anyhow::bail!("the password was not changed: {problem}");
    }
    let hash = chatpay_server::auth::hash_password(password)?;
    runtime()?.block_on(async {
        let store = chatpay_store::connect(&config.database_url).await?;
        let person = store
            .person_by_email(&email)
            .await?
            .with_context(|| format!("nobody signs in as {email} here"))?;
        store.set_password(&person.id, &hash).await?;
        let ended = store
            .revoke_sessions_of(&person.id, chatpay_core::domain::now_millis())
            .await?;
        eprintln!(
            "The password of {email} is changed; {} session(s) ended.",
            ended.len()
        );
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `chatpay intents check`: loads the files in `dir` and runs their examples.
fn intents_check(config: &Config, dir: PathBuf) -> anyhow::Result<ExitCode> {
    let sources = intents::read_dir(&dir).map_err(anyhow::Error::msg)?;
    let (matcher, corpus) = match intents::load_sources(
        &sources,
        config.matcher.threshold,
        config.matcher.clarify_margin,
    ) {
        Ok(m) => m,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}/{e}", dir.display());
            }
            eprintln!("{} problem(s) in the intent files", errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let failures = intents::check(&matcher, &corpus);
    for f in &failures {
        eprintln!("{}/{f}", dir.display());
    }
    let intents_n = matcher.intent_names().count();
    if failures.is_empty() {
        println!(
            "ok: {} files, {intents_n} intents, {} rules, {} examples and counter-examples pass",
            sources.len(),
            matcher.rule_names().len(),
            corpus.checks.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} of {} examples failed",
            failures.len(),
            corpus.checks.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The matcher over `dir`, or the embedded files.
fn load_matcher(config: &Config, dir: Option<PathBuf>) -> anyhow::Result<intents::Matcher> {
    Ok(match dir {
        Some(d) => {
            let sources = intents::read_dir(&d).map_err(anyhow::Error::msg)?;
            intents::load_sources(
                &sources,
                config.matcher.threshold,
                config.matcher.clarify_margin,
            )
            .map_err(|e| anyhow::anyhow!(e.join("\n")))?
            .0
        }
        None => intents::load_embedded(config.matcher.threshold, config.matcher.clarify_margin)
            .map_err(anyhow::Error::msg)?,
    })
}

/// `chatpay intents eval FILE`: the held-out score, printed.
fn intents_eval(config: &Config, file: &Path, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let matcher = load_matcher(config, dir)?;
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let cases =
        intents::parse_eval(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    print!("{}", intents::evaluate(&matcher, &cases));
    Ok(ExitCode::SUCCESS)
}

/// `chatpay intents classify`: one JSON line per line of stdin.
fn intents_classify(config: &Config, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let matcher = load_matcher(config, dir)?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let text = line?;
        writeln!(out, "{}", classify_json(&matcher, &text))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `chatpay stripe-sandbox`: only the sandbox, until SIGINT or SIGTERM.
fn stripe_sandbox(
    listen: SocketAddr,
    webhook_url: Option<String>,
    webhook_secret: String,
    state_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = SandboxConfig {
        listen,
        state_file,
        ..Default::default()
    };
    let webhook = webhook_url.map(|u| (u, webhook_secret));
    runtime()?.block_on(stripe_sandbox::serve_until(
        config,
        webhook,
        shutdown_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn classify_json(matcher: &intents::Matcher, text: &str) -> serde_json::Value {
    let c = matcher.classify_explained(text);
    let (intent, best, clarify) = match &c.outcome {
        Outcome::Matched(m) => (Some(m.intent.to_string()), Some(m), None),
        Outcome::Clarify(cs) => (
            None,
            cs.first(),
            Some(cs.iter().map(|c| c.intent.to_string()).collect::<Vec<_>>()),
        ),
        // "Did you mean …?": one candidate to ask about.
        Outcome::Suggest(m) => (None, Some(m), Some(vec![m.intent.to_string()])),
        Outcome::Unsure(m) => (None, Some(m), None),
        Outcome::Nothing => (None, None, None),
    };
    let mut slots = serde_json::to_value(&c.slots).unwrap_or_default();
    if let (Some(b), Some(map)) = (best, slots.as_object_mut()) {
        for (k, v) in &b.captures {
            map.insert(k.clone(), serde_json::to_value(v).unwrap_or_default());
        }
    }
    let mut out = json!({
        "text": text,
        "intent": intent,
        "confidence": best.map_or(0.0, |b| (f64::from(b.confidence) * 100.0).round() / 100.0),
        "slots": slots,
        "rule": best.map(|b| b.rule.to_string()),
        "span": best.map(|b| [b.span.0, b.span.1]),
    });
    if let Some(candidates) = clarify {
        out["clarify"] = json!(candidates);
    }
    if let Some(t) = &c.small_talk {
        out["small_talk"] =
            json!({"kind": &*t.kind, "about": t.about.as_deref(), "rule": &*t.rule});
    }
    out
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
