//! The error codes clients receive, in one list: WebSocket `error` frames and HTTP error bodies
//! (`{"code": "…", "message": "…"}`) use these, `docs/protocol.md` documents them, and the
//! transcript coverage counts them.

use std::fmt;

/// A code a client may receive. `Rule` carries the code of a domain rule that a request broke
/// (a bad cart's `empty_cart`, an over-refund's `amount_too_large`, …), documented with the API
/// that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Not JSON, or a field missing or of the wrong type.
    BadFrame,
    /// A frame `type` the protocol doesn't have.
    UnknownType,
    /// A bad token, or a project that is not the token's.
    Unauthorized,
    NotFound,
    /// The card is no longer actionable.
    StaleCard,
    /// Form values that break a rule (with `fields`).
    InvalidValues,
    RateLimited,
    /// Payments need a project created with the backend.
    BackendRequired,
    /// The server is stopping or overloaded: retry shortly.
    Unavailable,
    Internal,
    /// An HTTP request that can't be read.
    BadRequest,
    /// A Stripe webhook whose signature doesn't verify.
    BadSignature,
    MethodNotAllowed,
    /// An HTTP request body larger than the server reads (413).
    PayloadTooLarge,
    /// An HTTP request body that is not JSON (415).
    UnsupportedMediaType,
    /// A request that breaks a domain rule (HTTP 409 or 422).
    Rule(&'static str),
}

impl ErrorCode {
    /// Every fixed code (the `Rule` codes are listed with their APIs).
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadFrame,
        ErrorCode::UnknownType,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::StaleCard,
        ErrorCode::InvalidValues,
        ErrorCode::RateLimited,
        ErrorCode::BackendRequired,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::BadRequest,
        ErrorCode::BadSignature,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
    ];

    /// The codes of protocol v1's `error` frames.
    pub const PROTOCOL: [ErrorCode; 10] = [
        ErrorCode::BadFrame,
        ErrorCode::UnknownType,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::StaleCard,
        ErrorCode::InvalidValues,
        ErrorCode::RateLimited,
        ErrorCode::BackendRequired,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::StaleCard => "stale_card",
            ErrorCode::InvalidValues => "invalid_values",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BackendRequired => "backend_required",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Rule(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
        }
        assert!(
            ErrorCode::PROTOCOL
                .iter()
                .all(|c| ErrorCode::ALL.contains(c))
        );
    }
}
