//! Fault injection (the next N matching requests fail or are delayed) and Stripe-like rate
//! limiting (a token bucket per mode).

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorType};
use super::state::App;
use crate::Mode;

/// A fault for the next `count` requests whose method matches (any method when `None`) and
/// whose path starts with `path`.
///
/// As JSON: `{"method": "POST", "path": "/v1/accounts", "status": 500, "count": 1}` or
/// `{"path": "/v1/products", "delay_ms": 300, "count": 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// `GET`, `POST`, `DELETE` (any case); every method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// A path prefix, e.g. `/v1/accounts` or `/oauth/token`.
    pub path: String,
    /// How many matching requests it affects (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// What happens to them.
    #[serde(flatten)]
    pub action: FaultAction,
    /// Adds `Stripe-Should-Retry: true|false` to an injected error.
    #[serde(default)]
    pub should_retry: Option<bool>,
}

fn one() -> u32 {
    1
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FaultAction {
    /// Answer with this status and a Stripe error: 429 `rate_limit`, 5xx `api_error`,
    /// other 4xx `invalid_request_error`.
    Status { status: u16 },
    /// Wait this long, then answer normally.
    Delay { delay_ms: u64 },
    /// Handle the request normally, then answer this status instead, as if the response had
    /// been lost on the way back: a client's retry must not act a second time.
    LoseResponse { lose_status: u16 },
}

impl Fault {
    /// Checks the fault is one the sandbox can act out.
    pub fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err("path must start with '/'".into());
        }
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        match self.action {
            FaultAction::Status { status }
            | FaultAction::LoseResponse {
                lose_status: status,
            } if !(400..=599).contains(&status) => Err("status must be a 4xx or 5xx code".into()),
            FaultAction::Delay { delay_ms } if delay_ms > 60_000 => {
                Err("delay_ms must be at most 60000".into())
            }
            _ => Ok(()),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path)
    }

    fn error(&self, status: u16) -> ApiError {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = match status {
            429 => ApiError::rate_limited(),
            500..=599 => ApiError::internal().status(code),
            _ => ApiError::new(
                code,
                ErrorType::InvalidRequest,
                "The sandbox injected this error.",
            ),
        };
        error.should_retry = self.should_retry;
        error
    }
}

/// The armed faults, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    armed: Vec<Fault>,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) {
        self.armed.push(fault);
    }

    pub fn clear(&mut self) {
        self.armed.clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.armed.clone()
    }

    /// Uses up one count of the first fault matching the request.
    fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        let i = self.armed.iter().position(|f| f.matches(method, path))?;
        let fault = &mut self.armed[i];
        fault.count -= 1;
        let taken = fault.clone();
        if fault.count == 0 {
            self.armed.remove(i);
        }
        Some(taken)
    }
}

/// Middleware: acts out an armed fault before the request reaches its handler.
pub(crate) async fn inject(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/__sandbox") {
        return next.run(req).await;
    }
    let fault = app
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(req.method().as_str(), &path);
    match fault {
        None => next.run(req).await,
        Some(f) => match f.action {
            FaultAction::Status { status } => {
                tracing::debug!(%path, status, "sandbox: injected error");
                f.error(status).into_response()
            }
            FaultAction::Delay { delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                next.run(req).await
            }
            FaultAction::LoseResponse { lose_status } => {
                let _handled = next.run(req).await;
                tracing::debug!(%path, lose_status, "sandbox: handled, then lost the response");
                f.error(lose_status).into_response()
            }
        },
    }
}

/// Requests per second allowed in each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Test-mode requests per second (burst: one second's worth).
    pub test_per_second: u32,
    /// Live-mode requests per second.
    pub live_per_second: u32,
}

impl RateLimit {
    /// Stripe's documented defaults: 25 requests/s in test mode, 100 in live mode.
    pub fn stripe() -> RateLimit {
        RateLimit {
            test_per_second: 25,
            live_per_second: 100,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_second: u32) -> Bucket {
        let rate = f64::from(per_second.max(1));
        Bucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        // Capacity is one second's worth: bursts up to the rate, then the steady rate.
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One token bucket per mode.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    test: Bucket,
    live: Bucket,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            test: Bucket::new(limit.test_per_second),
            live: Bucket::new(limit.live_per_second),
        }
    }

    /// True if the request may proceed.
    pub fn allow(&mut self, mode: Mode) -> bool {
        self.allow_at(mode, Instant::now())
    }

    fn allow_at(&mut self, mode: Mode, now: Instant) -> bool {
        match mode {
            Mode::Test => self.test.take(now),
            Mode::Live => self.live.take(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_match_and_count_down() {
        let mut faults = Faults::default();
        faults.add(Fault {
            method: Some("POST".into()),
            path: "/v1/accounts".into(),
            count: 2,
            action: FaultAction::Status { status: 500 },
            should_retry: None,
        });
        assert!(faults.take("GET", "/v1/accounts").is_none());
        assert!(faults.take("POST", "/v1/products").is_none());
        assert!(faults.take("post", "/v1/accounts/acct_1").is_some());
        assert!(faults.take("POST", "/v1/accounts").is_some());
        assert!(faults.take("POST", "/v1/accounts").is_none());
    }

    #[test]
    fn fault_json_forms() {
        let f: Fault = serde_json::from_str(
            r#"{"method":"POST","path":"/v1/accounts","status":429,"count":1}"#,
        )
        .unwrap();
        assert_eq!(f.action, FaultAction::Status { status: 429 });
        assert_eq!(f.error(429).code, Some("rate_limit"));
        let f: Fault = serde_json::from_str(r#"{"path":"/v1/","delay_ms":50}"#).unwrap();
        assert_eq!(f.action, FaultAction::Delay { delay_ms: 50 });
        assert_eq!(f.count, 1);
        assert!(f.validate().is_ok());
        let bad: Fault = serde_json::from_str(r#"{"path":"/v1/","status":200}"#).unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn buckets_allow_the_rate_then_refill() {
        let mut limiter = RateLimiter::new(RateLimit::stripe());
        let t0 = Instant::now();
        let allowed = (0..40).filter(|_| limiter.allow_at(Mode::Test, t0)).count();
        assert_eq!(allowed, 25);
        // Live mode has its own bucket.
        assert!(limiter.allow_at(Mode::Live, t0));
        // A tenth of a second later, 2.5 more tokens: two requests pass.
        let t1 = t0 + Duration::from_millis(100);
        let allowed = (0..10).filter(|_| limiter.allow_at(Mode::Test, t1)).count();
        assert_eq!(allowed, 2);
    }
}
