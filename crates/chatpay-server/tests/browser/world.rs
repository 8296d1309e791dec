//! What a journey runs against: a fresh SQLite database, its own Stripe sandbox, and the real
//! server on port 0 (restartable on the same port, to drop every socket for real), plus the
//! HTTP calls a journey makes besides the browser's, as Stripe's Dashboard would (products
//! made in the Stripe account).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use chatpay_http_client::HttpClient;
use chatpay_server::config::{Config, Secret};
use chatpay_testkit::TestServer;
use stripe_sandbox::{Sandbox, SandboxConfig};

pub struct World {
    pub dir: tempfile::TempDir,
    pub sandbox: Sandbox,
    config: Config,
    pub server: Option<TestServer>,
    pub http: HttpClient,
    /// An API token made before the server started (none for a fresh database).
    pub token: Option<String>,
}

impl World {
    /// A world whose database has an API token when `with_token`, none otherwise.
    pub async fn start(with_token: bool) -> anyhow::Result<World> {
        let dir = tempfile::tempdir()?;
        let sandbox = Sandbox::start(SandboxConfig {
            listen: "127.0.0.1:0".parse()?,
            delivery: stripe_sandbox::DeliveryConfig {
                max_attempts: 8,
                first_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                timeout: Duration::from_secs(10),
                concurrency: 4,
            },
            ..SandboxConfig::default()
        })
        .await?;
        let database_url = format!("sqlite://{}", dir.path().join("chatpay.db").display());
        let mut config = Config {
            listen: "127.0.0.1:0".parse()?,
            database_url: database_url.clone(),
            ..Config::default()
        };
        config.stripe.webhook_secret = Some(Secret::new("whsec_browser_tests".to_owned()));
        let keys = sandbox.config();
        config.stripe.point_at(
            &sandbox.base_url(),
            &keys.test_secret_key,
            &keys.live_secret_key,
            &keys.connect_client_id,
        );
        let token = if with_token {
            let store = chatpay_store::connect(&database_url).await?;
            let t = chatpay_server::auth::create_token(&*store, "browser").await?;
            drop(store);
            Some(t)
        } else {
            None
        };
        let mut world = World {
            dir,
            sandbox,
            config,
            server: None,
            http: HttpClient::new(Duration::from_secs(30)),
            token,
        };
        world.boot().await?;
        Ok(world)
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        let config = self.config.clone();
        let server = tokio::task::spawn_blocking(move || TestServer::start(config)).await??;
        self.sandbox.set_webhook_endpoint(
            &format!("{}/v1/webhooks/stripe", server.url()),
            "whsec_browser_tests",
        );
        // A restart comes back on the same address, as a real server would.
        self.config.listen = server.address;
        self.server = Some(server);
        Ok(())
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("the server is running")
    }

    pub fn url(&self) -> String {
        self.server().url()
    }

    pub fn address(&self) -> SocketAddr {
        self.server().address
    }

    pub fn token(&self) -> &str {
        self.token.as_deref().expect("a world with a token")
    }

    /// Stops the server gracefully (every WebSocket closes with 1001).
    pub async fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || s.stop()).await;
        }
    }

    /// Starts the server again on the same address and database.
    pub async fn restart_server(&mut self) -> anyhow::Result<()> {
        self.boot().await
    }

    pub async fn close(mut self) {
        self.stop_server().await;
        self.sandbox.clone().shutdown().await;
    }

    /// Calls chatpay's API with the world's token.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.api_with(method, path, body, &[]).await
    }

    /// Calls chatpay's API with the world's token and more headers (an Idempotency-Key).
    pub async fn api_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        more: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let auth = format!("Bearer {}", self.token());
        let url = format!("{}{path}", self.url());
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(more);
        let res = match body {
            Some(b) => self.http.send_json(method, &url, &headers, &b).await?,
            None => self.http.send(method, &url, &headers, Vec::new()).await?,
        };
        if !(200..300).contains(&res.status) {
            bail!("{method} {path} answered {}: {}", res.status, res.text());
        }
        Ok(res.json()?)
    }

    /// The connected Stripe account of `project`.
    pub async fn account(&self, project: &str) -> anyhow::Result<String> {
        let s = self
            .api(
                "GET",
                &format!("/v1/projects/{project}/integrations/stripe"),
                None,
            )
            .await?;
        s["account"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no connected account: {s}"))
    }

    /// Calls the sandbox's Stripe API as `account`.
    pub async fn stripe(
        &self,
        account: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let auth = format!("Bearer {}", self.sandbox.config().test_secret_key);
        let url = format!(
            "{}{}",
            self.sandbox.base_url(),
            path.trim_start_matches('/')
        );
        let headers = [
            ("authorization", auth.as_str()),
            ("stripe-account", account),
        ];
        let res = self.http.post_form(&url, &headers, form).await?;
        if !(200..300).contains(&res.status) {
            bail!("sandbox {path} answered {}: {}", res.status, res.text());
        }
        res.json().context("a sandbox answer")
    }

    /// A product in the Stripe account, with a one-time price in USD when `amount` is given.
    pub async fn product(
        &self,
        account: &str,
        name: &str,
        amount: Option<i64>,
    ) -> anyhow::Result<String> {
        let product = self
            .stripe(account, "v1/products", &[("name", name)])
            .await?;
        let id = product["id"].as_str().unwrap_or_default().to_owned();
        if let Some(amount) = amount {
            let amount = amount.to_string();
            let price = self
                .stripe(
                    account,
                    "v1/prices",
                    &[
                        ("product", &id),
                        ("unit_amount", &amount),
                        ("currency", "usd"),
                    ],
                )
                .await?;
            return Ok(price["id"].as_str().unwrap_or_default().to_owned());
        }
        Ok(id)
    }
}
