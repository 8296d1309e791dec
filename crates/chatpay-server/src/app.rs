//! Building and running the server: `Application::build(config)` opens the database, loads the
//! intents, wires Stripe (real, or the built-in sandbox when no key is configured), binds the
//! listener (port 0 in tests) and exposes its port; `run_until_stopped` serves until a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::chat::Engine;
use crate::config::{Config, Secret};
use crate::http::{AppState, router};
use chatpay_core::intents;
use chatpay_store as store;
use chatpay_stripe::Gateway;
use chatpay_stripe::client::{Retry, StripeGateway, StripeSettings};
use stripe_sandbox::{Sandbox, SandboxConfig};

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    sandbox: Option<Sandbox>,
    /// The one-time sign-in link, when the database had no API token.
    signin_url: Option<String>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
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

        let (gateway, webhook_secrets, sandbox) = wire_stripe(&config, &public_url).await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let engine = Engine::new(
            store,
            Arc::new(matcher),
            gateway,
            public_url.clone(),
            config.chat.clone(),
        );
        // A fresh database has no token, so nobody could sign in: offer a one-time link.
        let signin = Arc::new(crate::signin::SignInCode::default());
        let signin_url = if engine.has_tokens().await? {
            None
        } else {
            Some(format!("{public_url}/#signin={}", signin.issue()))
        };
        let state = AppState {
            signin,
            engine,
            chat: Arc::new(config.chat.clone()),
            webhook_secrets: Arc::new(webhook_secrets),
            shutdown: shutdown_rx,
            limits: Arc::default(),
        };
        Ok(Application {
            listener,
            address,
            state,
            shutdown,
            sandbox,
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

    pub fn engine(&self) -> Engine {
        self.state.engine.clone()
    }

    /// The built-in Stripe sandbox, when this server runs one.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// Serves until `signal` resolves, then closes WebSockets (1001) and drains requests.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engine = self.state.engine.clone();
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
        // chatpay's own webhooks to builders' apps, including those left undelivered last time.
        let engine = self.state.engine.clone();
        let stopping = self.state.shutdown.clone();
        let deliverer = tokio::spawn(async move { engine.deliver_app_events(stopping).await });
        tracing::info!(address = %self.address, "chatpay listening");
        let shutdown = self.shutdown;
        let app = router(self.state);
        // Chat frames are small: send them now, not when Nagle's algorithm decides to.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            signal.await;
            tracing::info!("stopping");
            let _ = shutdown.send(true);
        })
        .await?;
        let _ = deliverer.await;
        if let Some(sandbox) = self.sandbox {
            sandbox.shutdown().await;
        }
        Ok(())
    }
}

/// Real Stripe when a key is configured, otherwise the built-in sandbox on loopback.
async fn wire_stripe(
    config: &Config,
    public_url: &str,
) -> anyhow::Result<(Arc<dyn Gateway>, Vec<Secret>, Option<Sandbox>)> {
    let s = &config.stripe;
    let webhook_url = format!("{public_url}/v1/webhooks/stripe");
    if !s.uses_sandbox() {
        let secrets: Vec<Secret> = s.webhook_secret.iter().cloned().collect();
        if secrets.is_empty() {
            tracing::warn!("no STRIPE_WEBHOOK_SECRET: every webhook will be refused");
        }
        let gateway = StripeGateway::new(StripeSettings {
            test_key: s.secret_key.clone(),
            live_key: s.live_secret_key.clone(),
            api_base: s
                .api_base
                .clone()
                .unwrap_or_else(|| "https://api.stripe.com/".to_owned()),
            connect_base: s
                .connect_base
                .clone()
                .unwrap_or_else(|| "https://connect.stripe.com/".to_owned()),
            connect_client_id: s.connect_client_id.clone(),
            retry: Retry::default(),
        })?;
        tracing::info!(webhook = %webhook_url, "using Stripe");
        return Ok((Arc::new(gateway), secrets, None));
    }
    let state_file = sandbox_state_file(&config.database_url);
    let sandbox_config = SandboxConfig {
        listen: s
            .sandbox_listen
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("literal")),
        state_file,
        // By default the sandbox comes back on the port it had (kept in its state file), so the
        // checkout links of open orders still work after a restart.
        keep_address: s.sandbox_listen.is_none(),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(sandbox_config.clone())
        .await
        .context("starting the built-in Stripe sandbox")?;
    let secret = s
        .webhook_secret
        .clone()
        .unwrap_or_else(|| Secret::new(format!("whsec_{}", chatpay_core::domain::random_hex(16))));
    sandbox.set_webhook_endpoint(&webhook_url, secret.expose());
    let gateway = StripeGateway::new(StripeSettings {
        test_key: Some(Secret::new(sandbox_config.test_secret_key.clone())),
        live_key: Some(Secret::new(sandbox_config.live_secret_key.clone())),
        api_base: sandbox.base_url(),
        connect_base: sandbox.base_url(),
        connect_client_id: Some(sandbox_config.connect_client_id.clone()),
        retry: Retry::default(),
    })?;
    tracing::info!(sandbox = %sandbox.base_url(), "no Stripe key configured: using the built-in Stripe sandbox");
    Ok((Arc::new(gateway), vec![secret], Some(sandbox)))
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

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
