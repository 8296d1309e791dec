//! A chatpay server for tests and `chatpay replay`, running in its own Tokio runtime on its own
//! thread, so that "crash" means what it says: the runtime is dropped with everything in flight,
//! as `kill -9` would leave it, and the next server opens the same database.
//!
//! Stripe is wired the way `chatpay serve` wires it: `config.stripe`'s keys and URLs (a test's
//! own sandbox, or an address that answers nothing), or, with no key, a sandbox of the server's
//! own on loopback, which lives and dies with it.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::sync::oneshot;

use chatpay_server::app::{Application, Stripe};
use chatpay_server::config::Config;
use stripe_sandbox::{Sandbox, SandboxConfig};

pub struct TestServer {
    pub address: SocketAddr,
    /// The one-time sign-in link, when the database had no API token.
    pub signin_url: Option<String>,
    stop: Option<oneshot::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Builds and starts a server with `config` (use port 0); returns once it listens.
    pub fn start(config: Config) -> anyhow::Result<TestServer> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<bool>();
        let thread = std::thread::Builder::new()
            .name("chatpay-server".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e)));
                        return;
                    }
                };
                let graceful = runtime.block_on(async move {
                    let (app, sandbox) = match build(config).await {
                        Ok(built) => built,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return false;
                        }
                    };
                    let _ = ready_tx.send(Ok((app.address(), app.signin_url().map(str::to_owned))));
                    let (signal_tx, signal_rx) = oneshot::channel::<()>();
                    let server = tokio::spawn(app.run_until_stopped(async move {
                        let _ = signal_rx.await;
                    }));
                    let graceful = stop_rx.await.unwrap_or(false);
                    if graceful {
                        let _ = signal_tx.send(());
                        let _ = server.await;
                        if let Some(sandbox) = sandbox {
                            sandbox.shutdown().await;
                        }
                    }
                    graceful
                });
                if !graceful {
                    // A crash: every task is dropped wherever it was.
                    runtime.shutdown_background();
                }
            })
            .context("spawning the server thread")?;
        let (address, signin_url) = ready_rx
            .recv()
            .context("the server thread stopped before starting")??;
        Ok(TestServer {
            address,
            signin_url,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/chat", self.address)
    }

    /// Stops abruptly, like `kill -9`.
    pub fn crash(mut self) {
        self.finish(false);
    }

    /// Stops gracefully.
    pub fn stop(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, graceful: bool) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(graceful);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server for `config`, with the sandbox it started when no Stripe key is configured.
async fn build(mut config: Config) -> anyhow::Result<(Application, Option<Sandbox>)> {
    let sandbox = if config.stripe.uses_sandbox() {
        let sandbox = Sandbox::start(SandboxConfig {
            listen: "127.0.0.1:0".parse()?,
            ..SandboxConfig::default()
        })
        .await
        .context("starting the server's Stripe sandbox")?;
        let keys = sandbox.config();
        let secret = config.stripe.point_at(
            &sandbox.base_url(),
            &keys.test_secret_key,
            &keys.live_secret_key,
            &keys.connect_client_id,
        );
        Some((sandbox, secret))
    } else {
        None
    };
    let stripe = Stripe::from_config(&config.stripe)?;
    let app = Application::build(config, stripe).await?;
    let sandbox = sandbox.map(|(sandbox, secret)| {
        sandbox.set_webhook_endpoint(&app.stripe_webhook_url(), secret.expose());
        sandbox
    });
    Ok((app, sandbox))
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.finish(false);
    }
}
