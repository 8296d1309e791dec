//! async-stripe's requests sent through a client that keeps its connections.
//!
//! async-stripe's own hyper client is built with `pool_max_idle_per_host(0)`: every call opened
//! a new connection (and, against Stripe, a new TLS session) and closed it after one request.
//! Re-reading an order is several GETs, once per webhook event, so under a burst of events
//! most of the gateway's time went to connecting. This client speaks the same protocol as
//! async-stripe's (the same headers, one attempt per call: [`super::client`] retries) over one
//! pooled hyper client.

use std::time::Duration;

use chatpay_http_client::{Connector, connector};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stripe::{CustomizedStripeRequest, StripeError};
use stripe_client_core::StripeMethod;

/// A Stripe API client with a connection pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PooledClient {
    http: Client<Connector, Full<Bytes>>,
    /// `https://api.stripe.com/` or another base URL speaking Stripe's API, with its `/`.
    base: String,
    secret: HeaderValue,
    user_agent: HeaderValue,
    version: HeaderValue,
    timeout: Duration,
}

impl PooledClient {
    pub fn new(
        secret: &str,
        api_base: &str,
        app: &str,
        timeout: Duration,
    ) -> Result<PooledClient, String> {
        let mut secret = HeaderValue::try_from(format!("Bearer {secret}"))
            .map_err(|_| "the secret key is not a valid header value".to_owned())?;
        secret.set_sensitive(true);
        let user_agent = HeaderValue::try_from(format!("Stripe/v1 RustBindings/1.0.0-rc.10 {app}"))
            .map_err(|_| "the app name is not a valid header value".to_owned())?;
        let version = HeaderValue::from_str(stripe_shared::version::VERSION.as_str())
            .map_err(|_| "the API version is not a valid header value".to_owned())?;
        let mut base = api_base.to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(PooledClient {
            http: Client::builder(TokioExecutor::new()).build(connector(timeout)),
            base,
            secret,
            user_agent,
            version,
            timeout,
        })
    }

    async fn attempt(&self, req: Request<Full<Bytes>>) -> Result<Bytes, StripeError> {
        let response = self.http.request(req).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| StripeError::JSONDeserialize("Response was not valid UTF-8".into()))?;
        Err(miniserde::json::from_str(text)
            .map(|e: stripe_shared::Error| StripeError::Stripe(e.error, status.as_u16()))
            .unwrap_or_else(|_| {
                StripeError::JSONDeserialize("error deserializing Stripe error".into())
            }))
    }
}

impl stripe_client_core::StripeClient for PooledClient {
    type Err = StripeError;

    async fn execute(&self, req: CustomizedStripeRequest) -> Result<Bytes, StripeError> {
        let (req, config) = req.into_pieces();
        let mut uri = format!("{}v1{}", self.base, req.path);
        if let Some(query) = &req.query {
            uri.push('?');
            uri.push_str(query);
        }
        let method = match req.method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.secret.clone())
            .header(USER_AGENT, self.user_agent.clone())
            .header(
                HeaderName::from_static("stripe-version"),
                self.version.clone(),
            );
        if let Some(account) = &config.account_id {
            let value = HeaderValue::from_str(account.as_str())
                .map_err(|_| StripeError::ConfigError("invalid account id".into()))?;
            builder = builder.header(HeaderName::from_static("stripe-account"), value);
        }
        if let Some(key) = config.request_strategy.as_ref().and_then(|s| s.get_key()) {
            builder = builder.header(HeaderName::from_static("idempotency-key"), key.as_str());
        }
        let body = match req.body {
            Some(body) => {
                builder = builder.header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        let req = builder.body(Full::new(body))?;
        let timeout = config.timeout.unwrap_or(self.timeout);
        tokio::time::timeout(timeout, self.attempt(req))
            .await
            .unwrap_or(Err(StripeError::Timeout))
    }
}
