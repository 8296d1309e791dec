//! Errors in Stripe's shape: `{"error": {"type", "code", "message", "param", "doc_url"}}`.
//!
//! The same body answers the `/__sandbox` test controls, so a client needs one error parser.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Stripe's error `type`: the four values `stripe_shared::ApiErrorsType` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
    InvalidRequest,
    Api,
    Idempotency,
    Card,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Api => "api_error",
            ErrorType::Idempotency => "idempotency_error",
            ErrorType::Card => "card_error",
        }
    }
}

/// One failed request, rendered the way Stripe renders it.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// Sent as `Stripe-Should-Retry` when set.
    pub should_retry: Option<bool>,
    /// More fields of the error hash (`decline_code`, `payment_intent`).
    pub extra: Option<Value>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            code: None,
            message: message.into(),
            param: None,
            should_retry: None,
            extra: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorType::InvalidRequest, message)
    }

    /// 400 `parameter_missing`.
    pub fn missing(param: &str) -> ApiError {
        ApiError::invalid(format!("Missing required param: {param}."))
            .code("parameter_missing")
            .param(param)
    }

    /// 400 `parameter_unknown`.
    pub fn unknown_param(param: &str) -> ApiError {
        ApiError::invalid(format!("Received unknown parameter: {param}"))
            .code("parameter_unknown")
            .param(param)
    }

    /// 400 `parameter_invalid_*` style: a parameter has the wrong shape or value.
    pub fn bad_param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::invalid(message).param(param)
    }

    /// 404 `resource_missing`: `No such product: 'prod_x'`, for the object the URL names.
    pub fn no_such(what: &str, id: &str, param: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            format!("No such {what}: '{id}'"),
        )
        .code("resource_missing")
        .param(param)
    }

    /// 400 `resource_missing` for an object a parameter names (`line_items[0][price]`): Stripe
    /// answers 404 only for the object in the URL.
    pub fn no_such_param(what: &str, id: &str, param: &str) -> ApiError {
        ApiError::no_such(what, id, param).status(StatusCode::BAD_REQUEST)
    }

    /// 401 with Stripe's message for a missing or unknown key.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorType::InvalidRequest, message)
    }

    /// 403 `account_invalid`: the key may not act on that account.
    pub fn no_access(key_hint: &str, account: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorType::InvalidRequest,
            format!(
                "The provided key '{key_hint}' does not have access to account '{account}' (or \
                 that account does not exist). Application access may have been revoked."
            ),
        )
        .code("account_invalid")
    }

    /// 429 `rate_limit`, as Stripe sends when a mode's request rate is exceeded.
    pub fn rate_limited() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::InvalidRequest,
            "Request rate limit exceeded. Learn more about rate limits here \
             https://stripe.com/docs/rate-limits.",
        )
        .code("rate_limit")
    }

    /// 500 `api_error`.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Api,
            "An unknown error occurred while processing your request.",
        )
    }

    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// The same error with another message.
    pub fn message_with(mut self, message: impl Into<String>) -> ApiError {
        self.message = message.into();
        self
    }

    pub fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "type": self.kind.as_str(),
            "message": self.message,
        });
        if let Some(code) = self.code {
            error["code"] = json!(code);
            error["doc_url"] = json!(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            ));
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        if let Some(Value::Object(extra)) = &self.extra {
            for (k, v) in extra {
                error[k] = v.clone();
            }
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(retry) = self.should_retry {
            response.headers_mut().insert(
                "stripe-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_stripe_shape() {
        let e = ApiError::no_such("product", "prod_x", "id");
        let body = e.body();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "resource_missing");
        assert_eq!(body["error"]["param"], "id");
        assert_eq!(
            body["error"]["doc_url"],
            "https://stripe.com/docs/error-codes/resource-missing"
        );
        let p = ApiError::no_such_param("price", "price_x", "line_items[0][price]");
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        assert_eq!(p.body()["error"]["param"], "line_items[0][price]");
    }
}
