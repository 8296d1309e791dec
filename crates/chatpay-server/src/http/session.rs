//! A sign-in that lasts: the owner's sign-in made from the first-run link, email and password
//! sign-in, the session cookie, and Sign out.
//!
//! The session is a cookie, `chatpay_session`: HttpOnly (no script reads it), `SameSite=Lax`,
//! `Path=/`, `Max-Age` 30 days, renewed whenever the page loads (`GET /v1/session`), and
//! `Secure` when the server's public address is https. Lax rather than Strict because people
//! arrive at the page by top-level links from elsewhere (Stripe's onboarding sends them back to
//! `/v1/stripe/onboarding/return`, a link in an email): Strict would show them signed out there.
//! Lax already keeps the cookie off cross-site subresource requests and form posts; what is
//! left, a write made with the cookie, is checked here ([`same_origin`]): a cookie-authenticated
//! request other than GET, HEAD or OPTIONS must carry an `Origin` naming this server (the
//! `Host` it was sent to). The WebSocket takes the cookie only under the same rule.
//!
//! The session lives on the server (its SHA-256 hash, `crate::auth`), so Sign out
//! (`DELETE /v1/session`) ends it for every tab at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::BodyRefusals;
use super::types::Timestamp;
use super::{ApiError, ApiJson, AppState, Caller};
use crate::auth::SESSION_DAYS;
use crate::chat::Session;
use chatpay_store::TokenKind;

/// The session cookie's name.
pub const COOKIE: &str = "chatpay_session";

/// The session secret of the request's `chatpay_session` cookie, if it has one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether `Origin` names the server the request was sent to (its `Host`).
pub fn origin_is_host(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|authority| authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// The session secret of a WebSocket upgrade, taken only from the page's own origin (a page
/// elsewhere cannot open the chat with the person's cookie).
pub fn page_session(headers: &HeaderMap) -> Option<String> {
    origin_is_host(headers)
        .then(|| cookie(headers).map(str::to_owned))
        .flatten()
}

/// A cookie-authenticated write must come from the page's own origin.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || origin_is_host(headers) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: "cross_site",
            message: "A change made with the sign-in cookie must come from chatpay's own page (its Origin). Other clients send Authorization: Bearer <api token>.".to_owned(),
        })
    }
}

/// `Set-Cookie` for a session secret (or, with `None`, one that deletes the cookie).
fn set_cookie(state: &AppState, secret: Option<&str>) -> HeaderValue {
    let secure = if state.engine.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let (value, age) = match secret {
        Some(s) => (s, SESSION_DAYS * 24 * 60 * 60),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("a cookie of plain characters")
}

/// Sign-in attempts allowed in a minute, per email and per client address.
const PER_EMAIL: u32 = 5;
const PER_ADDRESS: u32 = 20;
const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_KEYS: usize = 10_000;

/// Sign-in attempts in the current minute, per email and per client address.
#[derive(Default)]
pub struct SignInLimits {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl SignInLimits {
    /// Whether one more attempt may go ahead from `address` for `email`.
    fn allow(&self, address: IpAddr, email: &str) -> bool {
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-update: the counts are fine.
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut count = |key: String, limit: u32| {
            let entry = map.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= WINDOW {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
            entry.1 <= limit
        };
        let by_address = count(format!("ip:{address}"), PER_ADDRESS);
        let by_email = count(format!("email:{}", email.trim().to_lowercase()), PER_EMAIL);
        by_address && by_email
    }
}

/// `POST /v1/session/owner`: the first-run link's code, and the owner's email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOwner {
    /// The one-time code of the link `chatpay serve` printed (`cps_…`).
    code: String,
    email: String,
    /// 10 to 200 characters.
    password: String,
}

/// `POST /v1/session`: email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    email: String,
    password: String,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    /// `session` (the cookie), `api` (an API token) or `scoped` (a platform's token).
    kind: String,
    /// The person's email, for a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// The workspace (`wsp_…`).
    workspace: String,
    workspace_name: String,
    /// When it stops working unless used (a session slides; a scoped token does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
}

/// The answer that signs in: who, and the session cookie.
async fn signed_in(state: &AppState, status: StatusCode, s: Session) -> Result<Response, ApiError> {
    let workspace_name = state.engine.workspace(&s.person.workspace_id).await?.name;
    let mut res = (
        status,
        Json(SessionInfo {
            kind: TokenKind::Session.as_str().to_owned(),
            email: Some(s.person.email),
            workspace: s.person.workspace_id.to_string(),
            workspace_name,
            expires_at: Some(Timestamp::from_millis(s.expires_at)),
        }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(state, Some(&s.secret)));
    Ok(res)
}

/// Makes the owner's sign-in with the first-run link's code, and signs in.
#[utoipa::path(post, operation_id = "session_create_owner", path = "/v1/session/owner", tag = "sign-in",
    request_body = CreateOwner,
    responses(
        (status = 201, body = SessionInfo, description = "Signed in: `Set-Cookie: chatpay_session=…`"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: a wrong, used or expired code", body = ErrorBody),
        (status = 403, description = "`cross_site`: not from chatpay's own page", body = ErrorBody),
        (status = 409, description = "`owner_exists`", body = ErrorBody),
        (status = 422, description = "`invalid_values`: the email or the password", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        BodyRefusals,
    ))]
pub async fn create_owner(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOwner>,
) -> Result<Response, ApiError> {
    same_origin(&Method::POST, &headers)?;
    if state.engine.has_people().await? {
        return Err(ApiError::Conflict {
            code: "owner_exists",
            message: "The owner's sign-in exists already: sign in with its email and password."
                .to_owned(),
        });
    }
    // Checked before the code is used up, so a too-short password can be corrected.
    if crate::auth::normalize_email(&body.email).is_none()
        || crate::auth::password_problem(&body.password).is_some()
    {
        let mut fields = std::collections::BTreeMap::new();
        if crate::auth::normalize_email(&body.email).is_none() {
            fields.insert(
                "email".to_owned(),
                "Enter an email address, like name@example.com.".to_owned(),
            );
        }
        if let Some(p) = crate::auth::password_problem(&body.password) {
            fields.insert("password".to_owned(), p.to_owned());
        }
        return Err(ApiError::InvalidValues(fields));
    }
    if !state.signin.redeem(&body.code) {
        return Err(ApiError::Unauthorized(
            "This sign-in link is not valid: it works once, for an hour, on the server that printed it. Restart `chatpay serve` for a new one.".to_owned(),
        ));
    }
    let session = state
        .engine
        .create_owner(&body.email, &body.password)
        .await?;
    signed_in(&state, StatusCode::CREATED, session).await
}

/// `POST /v1/session/invite`: a teammate's sign-in from an invite link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// The invite link's one-time code (`cpi_…`).
    code: String,
    email: String,
    /// 10 to 200 characters.
    password: String,
}

/// A new invite link.
#[derive(Serialize, ToSchema)]
pub struct NewInvite {
    /// `{public_url}/#invite=cpi_…`: shown once; it works once, for 7 days.
    url: String,
    expires_at: Timestamp,
}

/// Makes a one-time link that lets one person create their sign-in in the caller's workspace.
#[utoipa::path(post, operation_id = "invites_create", path = "/v1/invites", tag = "sign-in",
    responses((status = 201, body = NewInvite), super::openapi::Refusals,
        (status = 403, description = "`people_only`: made by a person signed in, not a token; or `cross_site`", body = ErrorBody)),
    security(("session" = [])))]
pub async fn create_invite(
    State(state): State<AppState>,
    caller: super::Caller,
) -> Result<(StatusCode, Json<NewInvite>), ApiError> {
    let (code, expires_at) = state.engine.create_invite(&caller.0).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewInvite {
            url: format!("{}/#invite={code}", state.engine.public_url()),
            expires_at: Timestamp::from_millis(expires_at),
        }),
    ))
}

/// Creates a teammate's sign-in with an invite link's code, and signs in.
#[utoipa::path(post, operation_id = "session_accept_invite", path = "/v1/session/invite", tag = "sign-in",
    request_body = AcceptInvite,
    responses(
        (status = 201, body = SessionInfo, description = "Signed in: `Set-Cookie: chatpay_session=…`"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: a wrong, used or expired invite", body = ErrorBody),
        (status = 403, description = "`cross_site`: not from chatpay's own page", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_values`: the email or the password", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        BodyRefusals,
    ))]
pub async fn accept_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AcceptInvite>,
) -> Result<Response, ApiError> {
    same_origin(&Method::POST, &headers)?;
    let session = state
        .engine
        .accept_invite(&body.code, &body.email, &body.password)
        .await?;
    signed_in(&state, StatusCode::CREATED, session).await
}

/// Signs in with an email and a password (rate-limited; the same answer whichever was wrong).
#[utoipa::path(post, operation_id = "session_sign_in", path = "/v1/session", tag = "sign-in",
    request_body = SignIn,
    responses(
        (status = 200, body = SessionInfo, description = "Signed in: `Set-Cookie: chatpay_session=…`"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: that email and password do not match a sign-in", body = ErrorBody),
        (status = 403, description = "`cross_site`: not from chatpay's own page", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts; wait a minute", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        BodyRefusals,
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    same_origin(&Method::POST, &headers)?;
    if !state.signin_limits.allow(peer.ip(), &body.email) {
        return Err(ApiError::RateLimited(
            "Too many sign-in attempts. Wait a minute and try again.".to_owned(),
        ));
    }
    let session = state.engine.sign_in(&body.email, &body.password).await?;
    signed_in(&state, StatusCode::OK, session).await
}

/// Who is signed in; with the session cookie, renews it for another 30 days. A request with
/// no credential at all is answered 204 (signed out), so the page can ask without an error.
#[utoipa::path(get, operation_id = "session_show", path = "/v1/session", tag = "sign-in",
    responses(
        (status = 200, body = SessionInfo),
        (status = 204, description = "No credential was sent: signed out"),
        (status = 401, description = "`unauthorized`: signed out", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
    ),
    security(("api_token" = []), ("session" = [])))]
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    let who = match caller {
        Ok(c) => c.0,
        Err(_) if headers.get(header::AUTHORIZATION).is_none() && cookie(&headers).is_none() => {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        Err(e) => return Err(e),
    };
    let workspace = state.engine.workspace(&who.workspace).await?;
    let email = state.engine.person(&who).await?.map(|p| p.email);
    let mut res = Json(SessionInfo {
        kind: who.kind.as_str().to_owned(),
        email,
        workspace: workspace.id.to_string(),
        workspace_name: workspace.name,
        expires_at: who.expires_at.map(Timestamp::from_millis),
    })
    .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if who.kind == TokenKind::Session
        && let Some(secret) = cookie(&headers)
    {
        // The cookie's 30 days start again, as the session's did on the server.
        h.insert(header::SET_COOKIE, set_cookie(&state, Some(secret)));
    }
    Ok(res)
}

/// Signs out: the session ends on the server (every tab is signed out, open chats close) and
/// the cookie is deleted. With an API token nothing is revoked (Settings → API tokens does
/// that): the page simply forgets it.
#[utoipa::path(delete, operation_id = "session_sign_out", path = "/v1/session", tag = "sign-in",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`unauthorized`: signed out already", body = ErrorBody),
        (status = 403, description = "`cross_site`: not from chatpay's own page", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
    ),
    security(("api_token" = []), ("session" = [])))]
pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if caller.0.kind == TokenKind::Session {
        state.engine.sign_out(&caller.0).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, None));
    Ok(res)
}
