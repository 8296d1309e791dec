//! Layered configuration: embedded defaults, then an optional TOML file, then `CHATPAY_*` (and
//! `STRIPE_*`) environment variables and command-line flags, which clap merges for us.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use chatpay_core::domain::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format must be text or json, not {other:?}")),
        }
    }
}

/// Everything `chatpay serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP + WebSocket server.
    pub listen: SocketAddr,
    /// `sqlite://path.db` (created if missing) or `postgres://…`.
    pub database_url: String,
    /// The address people and Stripe reach this server at (links in cards, return URLs).
    /// Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// A directory of intent files to use instead of the embedded ones.
    pub intents_dir: Option<PathBuf>,
    pub matcher: MatcherConfig,
    pub chat: ChatConfig,
    pub stripe: StripeConfig,
    /// The app-builder platform's key (`CHATPAY_PLATFORM_KEY`): with it, the platform's server
    /// creates workspaces and mints short-lived scoped tokens (`/v1/platform/…`). None: those
    /// endpoints answer 401.
    pub platform_key: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            database_url: "sqlite://chatpay.db".to_owned(),
            public_url: None,
            log_format: LogFormat::Text,
            intents_dir: None,
            matcher: MatcherConfig::default(),
            chat: ChatConfig::default(),
            stripe: StripeConfig::default(),
            platform_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatcherConfig {
    /// Below this confidence nothing matched.
    pub threshold: f32,
    /// Two candidates closer than this ask the user to pick (a `clarify` card).
    pub clarify_margin: f32,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            threshold: 0.5,
            clarify_margin: 0.08,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Largest client frame; larger ones close the connection with code 1009.
    pub max_frame_bytes: usize,
    /// How long a new connection may take to say hello.
    #[serde(with = "secs")]
    pub hello_timeout: Duration,
    /// Client frames per connection per second (sustained); bursts up to twice that.
    pub turns_per_second: u32,
    /// A conversation with no connected client is unloaded from memory after this long.
    #[serde(with = "secs")]
    pub idle_unload: Duration,
    /// Several instances on PostgreSQL: how often each loaded conversation checks the store
    /// for frames another instance stored, in case a notification was lost.
    #[serde(with = "secs")]
    pub safety_poll: Duration,
    /// How often the server reads the credentials revoked since its last look, so that a chat
    /// open with one closes even when the revocation was made by another process
    /// (`chatpay token revoke`, another instance) whose notification did not arrive.
    #[serde(with = "secs")]
    pub revocation_sweep: Duration,
    /// Stripe requests per second a catalog sync may make (Stripe allows 25 in test mode and
    /// 100 in live mode).
    pub stripe_test_requests_per_second: f64,
    pub stripe_live_requests_per_second: f64,
    /// The platform's fee on every checkout, in basis points of the order's total (100 = 1%),
    /// sent as Stripe's `application_fee_amount`; 0 takes none.
    pub application_fee_bps: u32,
    /// Days a past-due subscription keeps its access (entitlements) after its first failed
    /// renewal payment.
    pub grace_days: i64,
    /// App webhooks: the wait after a first failed delivery (each failure doubles it, with
    /// jitter), how long an event is retried (hours), and how long one attempt may take.
    #[serde(with = "secs")]
    pub app_webhook_first_retry: Duration,
    pub app_webhook_give_up_hours: u64,
    #[serde(with = "secs")]
    pub app_webhook_timeout: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_frame_bytes: 64 * 1024,
            hello_timeout: Duration::from_secs(10),
            turns_per_second: 50,
            idle_unload: Duration::from_secs(300),
            safety_poll: Duration::from_secs(5),
            revocation_sweep: Duration::from_secs(1),
            stripe_test_requests_per_second: 24.0,
            stripe_live_requests_per_second: 95.0,
            application_fee_bps: 0,
            grace_days: chatpay_core::billing::DEFAULT_GRACE_DAYS,
            app_webhook_first_retry: Duration::from_secs(60),
            app_webhook_give_up_hours: 72,
            app_webhook_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    /// Test-mode secret key (`sk_test_…`). Without any key, `chatpay serve` starts the built-in
    /// sandbox and points these settings at it.
    pub secret_key: Option<Secret>,
    /// Live-mode secret key (`sk_live_…`), needed only for projects that go live.
    pub live_secret_key: Option<Secret>,
    /// Signing secret of the webhook endpoint (`whsec_…`).
    pub webhook_secret: Option<Secret>,
    /// Connect OAuth client id (`ca_…`) for connecting existing accounts.
    pub connect_client_id: Option<String>,
    /// Stripe API base URL (`https://api.stripe.com/`); tests point it elsewhere.
    pub api_base: Option<String>,
    /// Stripe Connect OAuth base URL (`https://connect.stripe.com/`).
    pub connect_base: Option<String>,
    /// Where the sandbox listens when `chatpay serve` starts it (port 0: any free port). Unset:
    /// the port it had last time (kept in its state file beside a SQLite database), else any
    /// free port.
    pub sandbox_listen: Option<SocketAddr>,
}

impl StripeConfig {
    /// True when no Stripe key is configured, so the caller (`chatpay serve`, the test kit)
    /// starts the built-in sandbox to stand in.
    pub fn uses_sandbox(&self) -> bool {
        self.secret_key.is_none() && self.live_secret_key.is_none()
    }

    /// Points these settings at a server speaking Stripe's API at `base_url` (the built-in
    /// sandbox), with its test and live keys and Connect client id. Returns the webhook secret
    /// it is to sign events with: the configured one, else a new one (now configured).
    pub fn point_at(
        &mut self,
        base_url: &str,
        test_key: &str,
        live_key: &str,
        connect_client_id: &str,
    ) -> Secret {
        self.secret_key = Some(Secret::new(test_key));
        self.live_secret_key = Some(Secret::new(live_key));
        self.api_base = Some(base_url.to_owned());
        self.connect_base = Some(base_url.to_owned());
        self.connect_client_id = Some(connect_client_id.to_owned());
        self.webhook_secret
            .get_or_insert_with(|| {
                Secret::new(format!("whsec_{}", chatpay_core::domain::random_hex(16)))
            })
            .clone()
    }
}

impl Config {
    /// Defaults, overlaid with the TOML file at `path` if given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    /// The base URL links are built on, without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if !(0.0..=86_400.0).contains(&secs) {
            return Err(serde::de::Error::custom(
                "seconds must be between 0 and 86400",
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Secret::new("sk_test_abcdef123456");
        let shown = format!("{s:?}");
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(shown.contains("sk"));
    }

    #[test]
    fn file_overlays_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[chat]\nhello_timeout = 2.5\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.chat.hello_timeout, Duration::from_millis(2500));
        assert_eq!(c.chat.max_frame_bytes, 65536);
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
    }
}
