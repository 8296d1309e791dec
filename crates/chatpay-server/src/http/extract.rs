//! The extractors every handler reads its request with, so that every refusal is the one error
//! body (`{"code", "message"}`) with the right status, before the handler runs:
//!
//! - [`ApiJson`]: a JSON object, `Content-Type: application/json` (415 otherwise), at most
//!   [`MAX_BODY`] bytes (413), syntax (400) and shape (400: the top level, and every nested
//!   object, must be an object: serde's derive would also read an array as a struct's fields in
//!   order, so `[1]` was a refund of one cent); [`OptionalJson`] is the same, or no body at all
//!   (nothing, or `null`).
//! - [`ApiQuery`], [`ApiPath`]: query and path parameters (400 saying which and why).
//! - [`RawBody`]: the bytes as sent (the Stripe webhook signs them), with the same 413.

use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::ApiError;

/// The largest request body, in bytes (2 MiB): larger ones are 413 `payload_too_large`.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// A JSON object body, read into `T`.
pub struct ApiJson<T>(pub T);

/// A JSON object body, or no body at all (`None`: nothing, or `null`).
pub struct OptionalJson<T>(pub Option<T>);

/// Query parameters whose refusal is a 400 with the one error body.
pub struct ApiQuery<T>(pub T);

/// Path parameters whose refusal is a 400 with the one error body.
pub struct ApiPath<T>(pub T);

/// The body's bytes as sent, at most [`MAX_BODY`].
pub struct RawBody(pub Bytes);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        optional_object(req, state, false)
            .await?
            .map(ApiJson)
            .ok_or_else(|| {
                ApiError::BadRequest("the body must be a JSON object, and there is none".to_owned())
            })
    }
}

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        optional_object(req, state, true).await.map(OptionalJson)
    }
}

/// The body read as `T`, or `None` when there is none (nothing, white space, or `null` when
/// `null_is_none`).
async fn optional_object<S, T>(
    req: Request,
    state: &S,
    null_is_none: bool,
) -> Result<Option<T>, ApiError>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    let json = json_content_type(req.headers());
    let RawBody(body) = RawBody::from_request(req, state).await?;
    if body.iter().all(u8::is_ascii_whitespace) || (null_is_none && body.trim_ascii() == b"null") {
        return Ok(None);
    }
    json?;
    parse_object(&body).map(Some)
}

/// How much of a body over [`MAX_BODY`] is read and thrown away before the 413, so that a
/// client still sending it reads the answer rather than a reset connection. A body declared
/// (or found) larger is answered at once and its connection closed.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::PayloadTooLarge(format!(
                "the body is larger than {} MiB",
                MAX_BODY / (1024 * 1024)
            ))
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
            return Err(too_large());
        }
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
            seen = seen.saturating_add(chunk.len());
            if seen <= MAX_BODY {
                body.extend_from_slice(&chunk);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
        if seen > MAX_BODY {
            return Err(too_large());
        }
        Ok(RawBody(Bytes::from(body)))
    }
}

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| {
                let text = r.body_text();
                let why = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::BadRequest(format!("the query string is not valid: {why}"))
            })?;
        Ok(ApiQuery(value))
    }
}

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| {
                ApiError::BadRequest(format!("the path is not valid: {}", r.body_text()))
            })?;
        Ok(ApiPath(value))
    }
}

/// `application/json`, or a `+json` type, with any parameters (`; charset=utf-8`).
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim();
    let ok = essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json")
            && essence
                .get(..12)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/")));
    if ok {
        Ok(())
    } else if value.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".to_owned(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be JSON (Content-Type: application/json), not {value}"
        )))
    }
}

/// What a JSON value's first byte says it is, for a message.
fn kind_of(body: &[u8]) -> &'static str {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ => "not JSON",
    }
}

/// The body as `T`, if it is a JSON object of `T`'s shape (nested objects included).
fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object ({{…}}), and this is {}",
            kind_of(body)
        )));
    }
    serde_json::from_slice::<Object<T>>(body)
        .map(|Object(v)| v)
        .map_err(|e| {
            ApiError::BadRequest(match e.classify() {
                serde_json::error::Category::Data => format!("the body does not fit: {e}"),
                _ => format!("the body is not valid JSON: {e}"),
            })
        })
}

/// `T` read from a JSON object only. serde's derived `Deserialize` for a struct also accepts a
/// sequence of its fields in order (`["price_…", 1]` for `{"price", "quantity"}`); a request is
/// never read that way.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// For an integer field: JSON Schema's `integer` is any number without a fraction, so `511.0`
/// is one; serde's integers refuse it. `#[serde(default, deserialize_with = "whole")]`, on an
/// `Option` of `i64` or `u32`.
pub fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    whole
        .and_then(|i| T::try_from(i).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
}

/// For a field holding a list of objects: `#[serde(deserialize_with = "objects")]`.
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let list = Vec::<Object<T>>::deserialize(deserializer)?;
    Ok(list.into_iter().map(|Object(v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Line {
        price: String,
        quantity: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cart {
        #[serde(default, deserialize_with = "objects")]
        items: Vec<Line>,
    }

    fn message(r: Result<Cart, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn objects_are_read() {
        let cart: Cart = parse_object(br#"{"items":[{"price":"price_1","quantity":2}]}"#).unwrap();
        assert_eq!(
            cart.items,
            vec![Line {
                price: "price_1".into(),
                quantity: 2
            }]
        );
    }

    #[test]
    fn a_top_level_that_is_not_an_object_is_refused_by_name() {
        for (body, kind) in [
            (&b"[1]"[..], "an array"),
            (b" [[[\"price_1\",1]]]", "an array"),
            (b"1", "a number"),
            (b"\"x\"", "a string"),
            (b"null", "null"),
            (b"true", "a boolean"),
        ] {
            let m = message(parse_object(body));
            assert!(
                m.contains("must be a JSON object") && m.contains(kind),
                "{m}"
            );
        }
    }

    #[test]
    fn a_nested_array_in_place_of_an_object_is_refused() {
        let m = message(parse_object(br#"{"items":[["price_1",1]]}"#));
        assert!(m.contains("expected a JSON object"), "{m}");
    }

    #[test]
    fn syntax_and_shape_say_which() {
        assert!(message(parse_object(b"{\"items\":")).contains("not valid JSON"));
        assert!(message(parse_object(b"{\"nope\":1}")).contains("does not fit"));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(json_content_type(&h).is_err());
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            h.insert(header::CONTENT_TYPE, ok.parse().unwrap());
            assert!(json_content_type(&h).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "+json",
            "text/x+json",
        ] {
            h.insert(header::CONTENT_TYPE, bad.parse().unwrap());
            assert!(json_content_type(&h).is_err(), "{bad}");
        }
    }
}
