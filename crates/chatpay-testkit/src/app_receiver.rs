//! A builder's app for transcripts: a small HTTP server on 127.0.0.1:0 that receives chatpay's
//! app webhooks, checks every signature with the endpoint's secret, and answers 500 when told
//! to (the first few deliveries, or all of them while it is "down").

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub event_type: String,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
    /// Why the signature was wrong, if it was.
    pub bad_signature: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    secret: String,
    /// Refuse this many more deliveries.
    fail_next: u32,
    down: bool,
    received: Vec<Received>,
}

#[derive(Clone, Default)]
pub struct AppReceiver {
    inner: Arc<Mutex<Inner>>,
    pub address: Option<SocketAddr>,
}

impl AppReceiver {
    /// Listens on 127.0.0.1:0 until the runtime ends.
    pub async fn start(fail_first: u32) -> anyhow::Result<AppReceiver> {
        let mut r = AppReceiver::default();
        r.inner.lock().expect("receiver lock").fail_next = fail_first;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        r.address = Some(listener.local_addr()?);
        let app = Router::new()
            .route("/hooks/chatpay", post(receive))
            .with_state(r.inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!(
            "http://{}/hooks/chatpay",
            self.address.expect("the receiver listens")
        )
    }

    pub fn set_secret(&self, secret: &str) {
        self.inner.lock().expect("receiver lock").secret = secret.to_owned();
    }

    pub fn set_down(&self, down: bool) {
        self.inner.lock().expect("receiver lock").down = down;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver lock").received.clone()
    }
}

/// Checks `t=…,v1=…` over `t.body` with the secret, as a builder's app would (any `v1` may match;
/// a rotation is not tested here).
fn check_signature(header: Option<&str>, body: &[u8], secret: &str) -> Result<(), String> {
    let header = header.ok_or("no Chatpay-Signature header")?;
    let t = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .ok_or("no t= in the signature")?
        .parse::<i64>()
        .map_err(|_| "t= is not a number")?;
    let now = chrono::Utc::now().timestamp();
    if (now - t).abs() > 300 {
        return Err(format!(
            "signed at {t}, more than 5 minutes from now ({now})"
        ));
    }
    let want = chatpay_stripe::webhook::sign(body, secret, t);
    let want = want.split_once(",v1=").map(|x| x.1).unwrap_or_default();
    if header
        .split(',')
        .filter_map(|p| p.strip_prefix("v1="))
        .any(|v| v == want)
    {
        Ok(())
    } else {
        Err(format!("no v1 signature matches (header {header:?})"))
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = inner.lock().expect("receiver lock");
    let bad_signature = check_signature(
        headers
            .get("chatpay-signature")
            .and_then(|v| v.to_str().ok()),
        &body,
        &inner.secret,
    )
    .err();
    let status = if bad_signature.is_some() {
        StatusCode::BAD_REQUEST
    } else if inner.down {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if inner.fail_next > 0 {
        inner.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    inner.received.push(Received {
        id: json["id"].as_str().unwrap_or_default().to_owned(),
        event_type: json["type"].as_str().unwrap_or_default().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: status.as_u16(),
        bad_signature,
    });
    status
}
