//! Stripe's value rules for the parameters the sandbox understands, with Stripe's messages.
//!
//! Written from Stripe's documentation, never from chatpay's code: a fake that shared chatpay's
//! rules would confirm chatpay's mistakes instead of catching them.

use std::str::FromStr;

use super::error::{ApiError, ApiResult};

/// The countries where Stripe offers accounts (stripe.com/global; India by invitation), as
/// `POST /v1/accounts` accepts them in `country`.
const STRIPE_COUNTRIES: &[&str] = &[
    "AE", "AT", "AU", "BE", "BG", "BR", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR",
    "GB", "GI", "GR", "HK", "HR", "HU", "IE", "IN", "IT", "JP", "LI", "LT", "LU", "LV", "MT", "MX",
    "MY", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SG", "SI", "SK", "TH", "US",
];

/// A three-letter currency Stripe knows, lowercased.
pub(crate) fn currency(param: &str, raw: &str) -> ApiResult<String> {
    let lower = raw.trim().to_ascii_lowercase();
    let known = lower.len() == 3
        && !matches!(
            stripe_types::Currency::from_str(&lower),
            Ok(stripe_types::Currency::Unknown(_))
        );
    if known {
        Ok(lower)
    } else {
        Err(ApiError::bad_param(
            param,
            format!("Invalid currency: {raw}."),
        ))
    }
}

/// A supported two-letter country, uppercased.
pub(crate) fn country(param: &str, raw: &str) -> ApiResult<String> {
    let upper = raw.trim().to_ascii_uppercase();
    if STRIPE_COUNTRIES.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(ApiError::bad_param(
            param,
            format!(
                "Country '{raw}' is unknown. Try using a 2-character alphanumeric country code \
                 instead, such as 'US', 'EG', or 'GB'. A full list of country codes is available \
                 at https://stripe.com/docs/connect/accounts#country-codes"
            ),
        )
        .code("country_unsupported"))
    }
}

/// An address Stripe accepts in `email`: one `@`, a local part, and a domain with a dot that
/// neither starts nor ends it, no spaces, at most 800 characters (Stripe's documented limit for
/// account emails is far above what people type; the sandbox only refuses what Stripe refuses
/// with `email_invalid`).
pub(crate) fn email(param: &str, raw: &str) -> ApiResult<String> {
    let s = raw.trim();
    let valid = s.len() <= 800
        && !s.chars().any(char::is_whitespace)
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(s.to_owned())
    } else {
        Err(
            ApiError::bad_param(param, format!("Invalid email address: {raw}"))
                .code("email_invalid"),
        )
    }
}

/// An absolute `http(s)` URL.
pub(crate) fn url(param: &str, raw: &str) -> ApiResult<String> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(char::is_whitespace)
    }) && raw.len() <= 5000;
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_param(param, "Not a valid URL").code("url_invalid"))
    }
}

/// Stripe's statement descriptor rules: 5-22 Latin characters, at least one letter, none of
/// `< > \ ' " *`.
pub(crate) fn statement_descriptor(param: &str, raw: &str) -> ApiResult<String> {
    let s = raw.trim();
    let len = s.chars().count();
    let problem = if len < 5 {
        Some("must be at least 5 characters")
    } else if len > 22 {
        Some("must be at most 22 characters")
    } else if !s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        Some("must only contain Latin characters")
    } else if !s.chars().any(|c| c.is_ascii_alphabetic()) {
        Some("must contain at least one letter")
    } else if s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '\\' | '\'' | '"' | '*'))
    {
        Some("cannot contain any of the special characters < > \\ ' \" *")
    } else {
        None
    };
    match problem {
        None => Ok(s.to_owned()),
        Some(p) => Err(ApiError::bad_param(
            param,
            format!("The statement descriptor {p}."),
        )),
    }
}

/// One of `allowed`, or Stripe's "Invalid <param>" error.
pub(crate) fn one_of<'a>(param: &str, raw: &'a str, allowed: &[&str]) -> ApiResult<&'a str> {
    if allowed.contains(&raw) {
        Ok(raw)
    } else {
        Err(ApiError::bad_param(
            param,
            format!("Invalid {param}: must be one of {}", allowed.join(", ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(currency("c", "USD").unwrap(), "usd");
        assert!(currency("c", "xyz").is_err());
        assert!(currency("c", "dollars").is_err());
        assert_eq!(country("c", "us").unwrap(), "US");
        assert_eq!(
            country("c", "XX").unwrap_err().code,
            Some("country_unsupported")
        );
        assert!(url("u", "https://example.com/x").is_ok());
        assert!(url("u", "example.com").is_err());
        assert!(url("u", "https://").is_err());
        assert!(statement_descriptor("s", "BRIGHT YOGA").is_ok());
        assert!(statement_descriptor("s", "abc").is_err());
        assert!(statement_descriptor("s", "12345").is_err());
        assert!(statement_descriptor("s", "JOE'S YOGA").is_err());
        assert!(statement_descriptor("s", "CAFÉ CRÈME").is_err());
        assert!(email("e", "a@b.co").is_ok());
        assert_eq!(email("e", "nope").unwrap_err().code, Some("email_invalid"));
        assert!(one_of("type", "good", &["good", "service"]).is_ok());
        assert!(one_of("type", "bad", &["good", "service"]).is_err());
    }
}
