//! A small HTTP/1.1 client on hyper and rustls (both already in the tree through async-stripe), for
//! the few calls chatpay makes itself: the server's webhooks to builders' apps, Stripe's OAuth
//! endpoints (the Stripe gateway), and the test harness and tests. Speaks `http://` and `https://`.
//!
//! Its own crate because two library crates need it (`chatpay-server`, `chatpay-stripe`) and it is
//! about neither. The Stripe sandbox delivers its webhooks with a client of its own: it depends on
//! no chatpay crate.
//!
//! # Examples
//! ```no_run
//! # async fn demo() -> Result<(), chatpay_http_client::HttpError> {
//! use chatpay_http_client::HttpClient;
//! let http = HttpClient::default();
//! let res = http
//!     .post_json("http://127.0.0.1:8080/hook", &[], &serde_json::json!({"hello": 1}))
//!     .await?;
//! if res.status == 200 {
//!     println!("{}", res.text());
//! }
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How connections are made: `http://` and `https://` (rustls with the webpki roots), HTTP/1.1.
pub type Connector = HttpsConnector<HttpConnector>;

/// A [`Connector`] that sends without Nagle's delay and gives up connecting after `timeout`;
/// the Stripe gateway's pooled client connects with it too.
pub fn connector(timeout: Duration) -> Connector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeout));
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

/// A response: status, headers we care about, body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    Build(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(Duration::from_secs(30))
    }
}

impl HttpClient {
    pub fn new(timeout: Duration) -> HttpClient {
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector(timeout)),
            timeout,
        }
    }

    /// Sends a request; `headers` are added as given.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response, HttpError> {
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|e| HttpError::Build(e.to_string()))?;
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let call = async {
            let res = self
                .inner
                .request(req)
                .await
                .map_err(|e| HttpError::Connect(error_chain(&e)))?;
            let status = res.status().as_u16();
            let headers = res
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpError::Connect(e.to_string()))?
                .to_bytes();
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))?
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, HttpError> {
        self.send("GET", url, headers, Bytes::new()).await
    }

    /// POSTs a JSON value.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Response, HttpError> {
        self.send_json("POST", url, headers, body).await
    }

    /// Sends a JSON body with any method.
    pub async fn send_json(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Response, HttpError> {
        let mut all = headers.to_vec();
        all.push(("content-type", "application/json"));
        self.send(method, url, &all, body.to_string()).await
    }

    /// POSTs `application/x-www-form-urlencoded` pairs.
    pub async fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        pairs: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut all = headers.to_vec();
        all.push(("content-type", "application/x-www-form-urlencoded"));
        self.send("POST", url, &all, body).await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
