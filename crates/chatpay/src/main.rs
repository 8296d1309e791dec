//! The `chatpay` command: parse the command line, set up logging, run the subcommand.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use chatpay_core::intents::{self, Outcome};
use chatpay_server::config::{Config, LogFormat};

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
    /// Intent files.
    Intents {
        #[command(subcommand)]
        command: IntentsCommand,
    },
    /// Replay transcript files against a fresh server; prints what failed and the coverage.
    Replay {
        /// Transcript files or directories of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Replay on PostgreSQL: an admin URL of a server where databases may be created.
        #[arg(long, env = "CHATPAY_TEST_POSTGRES")]
        postgres: Option<String>,
    },
    /// Load client: N WebSocket connections sending turns; prints turns/s and latency.
    Bench(chatpay_testkit::bench::BenchArgs),
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
    /// Create a token and print it (it is stored hashed and shown only this once).
    Create {
        #[arg(long)]
        name: String,
    },
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
    use chatpay_server::config::Secret;
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
            command: TokenCommand::Create { name },
        } => create_token(&config, &name),
        Command::Intents {
            command: IntentsCommand::Check { dir },
        } => intents_check(&config, dir.unwrap_or_else(|| PathBuf::from("intents"))),
        Command::Intents {
            command: IntentsCommand::Classify { dir },
        } => intents_classify(&config, dir),
        Command::Intents {
            command: IntentsCommand::Eval { file, dir },
        } => intents_eval(&config, &file, dir),
        Command::Replay { files, postgres } => replay(files, postgres),
        Command::Bench(args) => {
            runtime()?.block_on(chatpay_testkit::bench::run(args, config))?;
            Ok(ExitCode::SUCCESS)
        }
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
    runtime()?.block_on(async {
        let app = chatpay_server::app::Application::build(config).await?;
        let url = app.engine().public_url().to_owned();
        // The web chat view's address, and how to sign in to it (stdout, not the log: the
        // sign-in link is for the person who started the server).
        match app.signin_url() {
            Some(link) => println!(
                "chatpay is running at {url}/\n\nThe database has no API token yet. To sign in, open this link\n(it works once, within an hour):\n\n    {link}\n"
            ),
            None => println!(
                "chatpay is running at {url}/\nSign in with an API token (`chatpay token create --name NAME` prints one)."
            ),
        }
        app.run_until_stopped(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `chatpay token create`: prints the new token (stored hashed, shown only this once).
fn create_token(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let token = runtime()?.block_on(async {
        let store = chatpay_store::connect(&config.database_url).await?;
        Ok::<_, anyhow::Error>(chatpay_server::auth::create_token(&*store, name).await?)
    })?;
    println!("{token}");
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

/// `chatpay replay`: every transcript in `files` (directories expanded), then the coverage.
fn replay(files: Vec<PathBuf>, postgres: Option<String>) -> anyhow::Result<ExitCode> {
    let backend = match postgres {
        Some(url) => chatpay_testkit::Backend::Postgres(url),
        None => chatpay_testkit::Backend::Sqlite,
    };
    let mut paths = Vec::new();
    for f in files {
        if f.is_dir() {
            paths.extend(chatpay_testkit::transcript_files(&f)?);
        } else {
            paths.push(f);
        }
    }
    let (passed, failed, coverage) =
        runtime()?.block_on(chatpay_testkit::run_all(&paths, &backend));
    println!("{}", coverage.report());
    println!("{passed} passed, {} failed", failed.len());
    for f in &failed {
        println!("FAILED {f}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `chatpay stripe-sandbox`: only the sandbox, until SIGINT or SIGTERM.
fn stripe_sandbox(
    listen: SocketAddr,
    webhook_url: Option<String>,
    webhook_secret: String,
    state_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = stripe_sandbox::SandboxConfig {
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
    let c = matcher.classify(text);
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
