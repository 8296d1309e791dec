//! Wire types both transports share (`ws/` and `http/` each import this, never each other):
//! the one error body. No axum here.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// Every refusal's body, over HTTP as in the chat's `error` frames.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong, for programs: `bad_request`, `unauthorized`, `not_found`,
    /// `payload_too_large`, `unsupported_media_type`, `method_not_allowed`, `rate_limited`,
    /// `unavailable`, `internal`, or the code of the rule a request broke (`empty_cart`,
    /// `amount_too_large`, `backend_required`, …).
    #[schema(example = "bad_request")]
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// With `invalid_values`: each field and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}
