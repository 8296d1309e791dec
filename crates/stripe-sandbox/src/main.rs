//! `stripe-sandbox`: the Stripe sandbox on its own, for trying an integration against Stripe's
//! shapes without a Stripe account (`chatpay stripe-sandbox` runs the same).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The Stripe sandbox: Stripe's API, hosted pages and webhooks on loopback.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:12111")]
    listen: SocketAddr,
    /// Where to deliver webhooks.
    #[arg(long)]
    webhook_url: Option<String>,
    /// The webhook signing secret.
    #[arg(long, default_value = "whsec_chatpay_sandbox")]
    webhook_secret: String,
    /// Keep the sandbox's state in this file across restarts.
    #[arg(long)]
    state_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = stripe_sandbox::SandboxConfig {
        listen: args.listen,
        state_file: args.state_file,
        ..Default::default()
    };
    let webhook = args.webhook_url.map(|u| (u, args.webhook_secret));
    stripe_sandbox::serve_until(config, webhook, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
