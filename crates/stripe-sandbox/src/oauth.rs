//! Stripe Connect OAuth for existing accounts: `/oauth/authorize` (a page with Connect and
//! Deny), `/oauth/token` (code or refresh token -> `stripe_user_id`), `/oauth/deauthorize`.
//! Errors use OAuth's shape: `{"error": "invalid_grant", "error_description": "..."}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::api_key;
use super::html::{self, escape};
use super::ids;
use super::model::Account;
use super::rules;
use super::shapes;
use super::state::{App, OAuthGrant, TokenGrant};
use crate::Mode;

/// An authorization decision (the Connect page, or test control
/// `POST /__sandbox/oauth/authorize`).
///
/// As JSON: `{"client_id": "ca_…", "redirect_uri": "http://…/callback", "state": "xyz",
/// "scope": "read_write", "deny": false, "email": "owner@example.com",
/// "business_name": "Existing Shop", "country": "US"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthAuthorize {
    /// Must be the sandbox's `connect_client_id`.
    pub client_id: String,
    /// Where the browser returns, with `code` and `state` (or `error`).
    pub redirect_uri: String,
    /// Echoed back unchanged (CSRF protection).
    #[serde(default)]
    pub state: Option<String>,
    /// `read_write` (default) or `read_only`.
    #[serde(default = "read_write")]
    pub scope: String,
    /// Press "Deny" instead of "Connect".
    #[serde(default)]
    pub deny: bool,
    /// Prefill of the connected account (`stripe_user[email]` etc. on the real page).
    #[serde(default)]
    pub email: Option<String>,
    /// Business name of the connected account.
    #[serde(default)]
    pub business_name: Option<String>,
    /// Country of the connected account (default `US`).
    #[serde(default)]
    pub country: Option<String>,
}

fn read_write() -> String {
    "read_write".into()
}

/// `redirect_uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// Decides an authorization: the redirect to send the browser to, or why there is none
/// (Stripe shows those errors on its own page instead of redirecting).
pub(crate) fn authorize(app: &App, req: OAuthAuthorize) -> Result<String, String> {
    if req.client_id != app.config.connect_client_id {
        return Err(format!(
            "No application matches the supplied client identifier: {}",
            req.client_id
        ));
    }
    rules::url("redirect_uri", &req.redirect_uri)
        .map_err(|_| "Invalid redirect_uri: it must be an absolute http(s) URL.".to_owned())?;
    if !matches!(req.scope.as_str(), "read_write" | "read_only") {
        return Err(format!(
            "Invalid scope: {} (use read_write or read_only)",
            req.scope
        ));
    }
    let state = req.state.as_deref().unwrap_or("");
    if req.deny {
        return Ok(with_query(
            &req.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied your request"),
                ("state", state),
            ],
        ));
    }
    let country = match &req.country {
        Some(c) => rules::country("country", c).map_err(|e| e.message)?,
        None => "US".to_owned(),
    };
    let email = match &req.email {
        Some(e) if !e.is_empty() => Some(rules::email("email", e).map_err(|e| e.message)?),
        _ => None,
    };
    let now = app.now();
    let account = Account::connected_standard(
        ids::account(),
        now,
        country,
        email,
        req.business_name.clone().filter(|b| !b.is_empty()),
        ids::person(),
        ids::bank_account(),
    );
    let code = ids::oauth_code();
    app.lock().oauth_codes.insert(
        code.clone(),
        OAuthGrant {
            code: code.clone(),
            created: now,
            scope: req.scope.clone(),
            account,
            used: false,
        },
    );
    app.mark_changed();
    Ok(with_query(
        &req.redirect_uri,
        &[("scope", &req.scope), ("code", &code), ("state", state)],
    ))
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `GET /oauth/authorize`: the consent page.
pub(crate) async fn page(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let q = pairs(query.unwrap_or_default().as_bytes());
    let client_id = get(&q, "client_id").unwrap_or("");
    if client_id != app.config.connect_client_id {
        return html::message(
            StatusCode::BAD_REQUEST,
            "Invalid client_id",
            &format!("No application matches the supplied client identifier: {client_id}"),
        );
    }
    if get(&q, "response_type").unwrap_or("code") != "code" {
        return html::message(
            StatusCode::BAD_REQUEST,
            "Invalid response_type",
            "The only supported response_type is code.",
        );
    }
    let Some(redirect_uri) = get(&q, "redirect_uri") else {
        return html::message(
            StatusCode::BAD_REQUEST,
            "Missing redirect_uri",
            "The sandbox has no registered redirect URI: pass redirect_uri.",
        );
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let scope = get(&q, "scope").unwrap_or("read_write");
    let body = format!(
        r#"<div class="card"><h1>Connect your Stripe account</h1>
<p class="muted"><b>chatpay sandbox</b> asks for <b>{scope}</b> access to your existing Stripe account. <span class="test">TEST DATA</span></p></div>
<form method="post" class="card">
{h_client}{h_redirect}{h_state}{h_scope}
<label for="email">Account email</label><input type="email" id="email" name="email" value="{email}">
<label for="business_name">Business name</label><input type="text" id="business_name" name="business_name" value="{business}">
<label for="country">Country</label><input type="text" id="country" name="country" value="{country}">
<p></p>
<button class="primary" type="submit" name="decision" value="connect">Connect</button>
<button class="secondary" type="submit" name="decision" value="deny">Deny</button>
</form>"#,
        scope = escape(scope),
        h_client = hidden("client_id", client_id),
        h_redirect = hidden("redirect_uri", redirect_uri),
        h_state = hidden("state", get(&q, "state").unwrap_or("")),
        h_scope = hidden("scope", scope),
        email = escape(get(&q, "stripe_user[email]").unwrap_or("")),
        business = escape(get(&q, "stripe_user[business_name]").unwrap_or("Existing Sandbox Shop")),
        country = escape(get(&q, "stripe_user[country]").unwrap_or("US")),
    );
    html::respond(StatusCode::OK, "Connect with Stripe", &body)
}

/// `POST /oauth/authorize`: the page's Connect / Deny buttons.
pub(crate) async fn decide(State(app): State<App>, body: Bytes) -> Response {
    let f = pairs(&body);
    let req = OAuthAuthorize {
        client_id: get(&f, "client_id").unwrap_or("").to_owned(),
        redirect_uri: get(&f, "redirect_uri").unwrap_or("").to_owned(),
        state: get(&f, "state").map(str::to_owned),
        scope: get(&f, "scope").unwrap_or("read_write").to_owned(),
        deny: get(&f, "decision") == Some("deny"),
        email: get(&f, "email").map(str::to_owned),
        business_name: get(&f, "business_name").map(str::to_owned),
        country: get(&f, "country").map(str::to_owned),
    };
    match authorize(&app, req) {
        Ok(location) => html::redirect(StatusCode::FOUND, &location),
        Err(message) => html::message(StatusCode::BAD_REQUEST, "Cannot connect", &message),
    }
}

/// An OAuth error response.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response()
    }
}

/// The platform's secret key, from `Authorization` (Bearer or Basic) or the `client_secret`
/// field.
fn platform_mode(
    app: &App,
    headers: &HeaderMap,
    f: &[(String, String)],
) -> Result<Mode, OAuthError> {
    let key = api_key(headers).or_else(|| get(f, "client_secret").map(str::to_owned));
    match key {
        None => Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "No authentication was provided. Send your secret API key using the Authorization \
             header, or as a client_secret POST parameter.",
        )),
        Some(k) if k == app.config.test_secret_key => Ok(Mode::Test),
        Some(k) if k == app.config.live_secret_key => Ok(Mode::Live),
        Some(k) => Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("Invalid API Key provided: {}", super::api::redact(&k)),
        )),
    }
}

fn mode_prefix(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => "test",
        Mode::Live => "live",
    }
}

/// `POST /oauth/token`.
pub(crate) async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    match exchange(&app, &headers, &body) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn exchange(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, OAuthError> {
    let f = pairs(body);
    let mode = platform_mode(app, headers, &f)?;
    let invalid_request =
        |d: &str| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", d.to_owned());
    let invalid_grant = |d: String| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let grant_type =
        get(&f, "grant_type").ok_or_else(|| invalid_request("No grant type specified"))?;
    let prefix = mode_prefix(mode);
    let access_token = format!("sk_{prefix}_{}", ids::random(24));
    match grant_type {
        "authorization_code" => {
            let code =
                get(&f, "code").ok_or_else(|| invalid_request("No authorization code provided"))?;
            let refresh_token = format!("rt_{}", ids::random(40));
            let client_id = app.config.connect_client_id.clone();
            app.transact(mode, None, |tx| {
                let now = tx.now;
                let grant = tx
                    .st
                    .oauth_codes
                    .get_mut(code)
                    .ok_or_else(|| invalid_grant(format!("Authorization code does not exist: {code}")))?;
                if grant.used {
                    return Err(invalid_grant(format!(
                        "This authorization code has already been used. All tokens issued with this code have been revoked. ({code})"
                    )));
                }
                if now - grant.created > 300 {
                    return Err(invalid_grant(format!("Authorization code expired: {code}")));
                }
                grant.used = true;
                let scope = grant.scope.clone();
                let account = grant.account.clone();
                let account_id = account.id.clone();
                let seq = tx.st.seq();
                tx.ms().accounts.insert(seq, account);
                let token = TokenGrant {
                    mode,
                    account: account_id.clone(),
                    scope: scope.clone(),
                };
                tx.st.access_tokens.insert(access_token.clone(), token.clone());
                tx.st.refresh_tokens.insert(refresh_token.clone(), token);
                tx.emit(
                    "account.application.authorized",
                    Some(&account_id),
                    shapes::application(&client_id),
                    None,
                );
                Ok(token_response(mode, &access_token, &refresh_token, &scope, &account_id))
            })
        }
        "refresh_token" => {
            let refresh = get(&f, "refresh_token")
                .ok_or_else(|| invalid_request("No refresh token provided"))?;
            let mut st = app.lock();
            let grant = st
                .refresh_tokens
                .get(refresh)
                .filter(|g| g.mode == mode)
                .cloned()
                .ok_or_else(|| invalid_grant(format!("Invalid refresh token: {refresh}")))?;
            st.access_tokens.insert(access_token.clone(), grant.clone());
            drop(st);
            app.mark_changed();
            Ok(token_response(
                mode,
                &access_token,
                refresh,
                &grant.scope,
                &grant.account,
            ))
        }
        other => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("Unsupported grant type: {other}"),
        )),
    }
}

fn token_response(
    mode: Mode,
    access_token: &str,
    refresh_token: &str,
    scope: &str,
    account: &str,
) -> serde_json::Value {
    json!({
        "access_token": access_token,
        "livemode": mode.is_live(),
        "refresh_token": refresh_token,
        "scope": scope,
        "stripe_publishable_key": format!("pk_{}_{}", mode_prefix(mode), ids::random(24)),
        "stripe_user_id": account,
        "token_type": "bearer",
    })
}

/// `POST /oauth/deauthorize`.
pub(crate) async fn deauthorize(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match disconnect(&app, &headers, &body) {
        Ok(account) => Json(json!({ "stripe_user_id": account })).into_response(),
        Err(e) => e.into_response(),
    }
}

fn disconnect(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<String, OAuthError> {
    let f = pairs(body);
    let mode = platform_mode(app, headers, &f)?;
    let client_id = get(&f, "client_id").unwrap_or("");
    if client_id != app.config.connect_client_id {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("No such application: '{client_id}'"),
        ));
    }
    let account = get(&f, "stripe_user_id")
        .ok_or_else(|| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "No stripe_user_id provided",
            )
        })?
        .to_owned();
    let client_id = client_id.to_owned();
    app.transact(mode, None, |tx| {
        let Some(a) = tx.ms().accounts.get_mut(&account).filter(|a| !a.revoked) else {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                format!(
                    "This application is not connected to stripe account {account}, or that account does not exist."
                ),
            ));
        };
        a.revoked = true;
        tx.st.access_tokens.retain(|_, g| g.account != account);
        tx.st.refresh_tokens.retain(|_, g| g.account != account);
        tx.emit(
            "account.application.deauthorized",
            Some(&account),
            shapes::application(&client_id),
            None,
        );
        Ok(account.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_query_is_appended() {
        assert_eq!(
            with_query("http://a.test/cb", &[("code", "ac_1"), ("state", "s t")]),
            "http://a.test/cb?code=ac_1&state=s+t"
        );
        assert_eq!(
            with_query("http://a.test/cb?x=1", &[("code", "ac_1")]),
            "http://a.test/cb?x=1&code=ac_1"
        );
    }
}
