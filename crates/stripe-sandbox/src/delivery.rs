//! The HTTP client webhook deliveries go out on: plain HTTP/1.1 over hyper, as the endpoints the
//! sandbox delivers to are on loopback (a chatpay under test, or a test's own listener).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

/// What came back from an endpoint: only its status matters to a delivery.
pub(crate) struct Delivered {
    pub status: u16,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(http),
            timeout,
        }
    }

    /// POSTs `body` with `headers`; the response body is read to the end (so the connection can
    /// be reused) and dropped.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Delivered, String> {
        let mut req = Request::post(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let call = async {
            let res = self.inner.request(req).await.map_err(|e| chain(&e))?;
            let status = res.status().as_u16();
            res.into_body().collect().await.map_err(|e| e.to_string())?;
            Ok(Delivered { status })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("timed out after {:?}", self.timeout))?
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
