//! Building and running the server: `Application::build(config, stripe)` opens the database,
//! loads the intents, binds the listener (port 0 in tests) and exposes its port;
//! `run_until_stopped` serves until a signal.
//!
//! Which Stripe the server talks to is its caller's choice, handed in as a [`Stripe`]: the
//! `chatpay` binary picks real Stripe or starts the sandbox when no key is configured, and the
//! test kit does the same for tests. This crate never starts a fake Stripe.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::chat::Engine;
use crate::config::{Config, Secret, StripeConfig};
use crate::http::{self, AppState};
use chatpay_core::intents;
use chatpay_store as store;
use chatpay_stripe::Gateway;
use chatpay_stripe::client::{Retry, StripeGateway, StripeSettings};

/// The Stripe a server talks to, chosen by its caller.
pub struct Stripe {
    /// Every call to Stripe goes through it.
    pub gateway: Arc<dyn Gateway>,
    /// The secrets Stripe signs webhooks with (several during a rotation); with none, every
    /// webhook is refused.
    pub webhook_secrets: Vec<Secret>,
}

impl Stripe {
    /// The gateway on async-stripe with `config`'s keys, URLs (Stripe's own where none is set)
    /// and webhook secret: real Stripe, or any server speaking its API at `api_base` (the
    /// sandbox the binary started, or a test's).
    pub fn from_config(config: &StripeConfig) -> anyhow::Result<Stripe> {
        let gateway = StripeGateway::new(StripeSettings {
            test_key: config.secret_key.clone(),
            live_key: config.live_secret_key.clone(),
            api_base: config
                .api_base
                .clone()
                .unwrap_or_else(|| "https://api.stripe.com/".to_owned()),
            connect_base: config
                .connect_base
                .clone()
                .unwrap_or_else(|| "https://connect.stripe.com/".to_owned()),
            connect_client_id: config.connect_client_id.clone(),
            retry: Retry::default(),
        })?;
        let webhook_secrets: Vec<Secret> = config.webhook_secret.iter().cloned().collect();
        if webhook_secrets.is_empty() {
            tracing::warn!("no STRIPE_WEBHOOK_SECRET: every webhook will be refused");
        }
        Ok(Stripe {
            gateway: Arc::new(gateway),
            webhook_secrets,
        })
    }
}

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    engine: Engine,
    routes: Router,
    shutdown: watch::Sender<bool>,
    /// The one-time sign-in link, when the database had no API token.
    signin_url: Option<String>,
}

impl Application {
    pub async fn build(config: Config, stripe: Stripe) -> anyhow::Result<Application> {
        crate::telemetry::init_metrics();
        let store = store::connect(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "opening the database at {}",
                    redact_url(&config.database_url)
                )
            })?;
        let matcher = match &config.intents_dir {
            Some(dir) => {
                let sources = intents::read_dir(dir).map_err(anyhow::Error::msg)?;
                intents::load_sources(
                    &sources,
                    config.matcher.threshold,
                    config.matcher.clarify_margin,
                )
                .map_err(|e| anyhow::anyhow!("intent files:\n{}", e.join("\n")))?
                .0
            }
            None => intents::load_embedded(config.matcher.threshold, config.matcher.clarify_margin)
                .map_err(anyhow::Error::msg)?,
        };

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let address = listener.local_addr()?;
        let public_url = config.public_url(address);

        let (shutdown, shutdown_rx) = watch::channel(false);
        let engine = Engine::new(
            store,
            Arc::new(matcher),
            stripe.gateway,
            public_url.clone(),
            config.chat.clone(),
        );
        // Nobody has a sign-in yet (a first run): offer a one-time link that makes the owner's.
        let signin = Arc::new(crate::signin::SignInCode::default());
        let signin_url = if engine.has_people().await? {
            None
        } else {
            Some(format!("{public_url}/#signin={}", signin.issue()))
        };
        let routes = http::router(AppState {
            signin,
            engine: engine.clone(),
            chat: Arc::new(config.chat),
            webhook_secrets: Arc::new(stripe.webhook_secrets),
            shutdown: shutdown_rx,
            limits: Arc::default(),
            signin_limits: Arc::default(),
            platform_key_hash: config
                .platform_key
                .as_ref()
                .map(|k| Arc::new(crate::auth::hash(k.expose()))),
        });
        Ok(Application {
            listener,
            address,
            engine,
            routes,
            shutdown,
            signin_url,
        })
    }

    /// The one-time sign-in link (`{public_url}/#signin=cps_…`, valid once for an hour), when
    /// the database had no API token when the server started.
    pub fn signin_url(&self) -> Option<&str> {
        self.signin_url.as_deref()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL links are built on (`public_url`, or `http://{bound address}`), without a
    /// trailing slash.
    pub fn public_url(&self) -> &str {
        self.engine.public_url()
    }

    /// Where Stripe (or the sandbox) is to deliver webhooks: `{public_url}/v1/webhooks/stripe`.
    pub fn stripe_webhook_url(&self) -> String {
        format!("{}/v1/webhooks/stripe", self.public_url())
    }

    /// Serves until `signal` resolves, then closes WebSockets (1001) and drains requests.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engine = self.engine.clone();
        // Events recorded before a crash but not yet applied.
        tokio::spawn(async move {
            match engine.resume_events().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    events = n,
                    "applied webhook events recorded before the last stop"
                ),
                Err(e) => tracing::error!(error = %e, "could not apply pending webhook events"),
            }
        });
        // Stripe writes recorded but not finished (a crash), and those waiting for a retry.
        let engine = self.engine.clone();
        let stopping = self.shutdown.subscribe();
        let operations = tokio::spawn(async move { engine.run_operations(stopping).await });
        // chatpay's own webhooks to builders' apps, including those left undelivered last time.
        let engine = self.engine.clone();
        let stopping = self.shutdown.subscribe();
        tokio::spawn(async move { engine.follow_changes(stopping).await });
        // Credentials revoked by other processes (the CLI, another instance): open chats close.
        let engine = self.engine.clone();
        let stopping = self.shutdown.subscribe();
        tokio::spawn(async move { engine.sweep_revocations(stopping).await });
        let engine = self.engine;
        let stopping = self.shutdown.subscribe();
        let deliverer = tokio::spawn(async move { engine.deliver_app_events(stopping).await });
        tracing::info!(address = %self.address, "chatpay listening");
        let shutdown = self.shutdown;
        // Chat frames are small: send them now, not when Nagle's algorithm decides to.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            self.routes
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            signal.await;
            tracing::info!("stopping");
            let _ = shutdown.send(true);
        })
        .await?;
        let _ = deliverer.await;
        let _ = operations.await;
        Ok(())
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
