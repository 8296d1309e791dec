//! `GET /openapi.json`: the HTTP API as an OpenAPI 3.1 document, generated (utoipa) from the
//! same request and response types and handler annotations the server runs, so it cannot say
//! one thing while the code does another. Every route is in it (`tests/openapi.rs` compares it
//! with [`super::route_table`]): the API with its parameters, bodies, error bodies and security;
//! the WebSocket upgrade, the pages for browsers and the web chat view's files too.
//!
//! Security schemes: `api_token` (`Authorization: Bearer cpk_…`), `publishable_key`
//! (`Authorization: Bearer cpub_…`, checkouts only) and `stripe_signature` (the Stripe webhook).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::{
    app_webhooks, billing, customers, export, metrics, orders, plans, platform, projects, public,
    session, signin, stripe_pages, tokens, web, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatpay",
        description = "Add payments to a chat-built app: projects, the Stripe integration, the \
            catalog, checkouts, orders, refunds, subscriptions, payouts. Every error is \
            `{\"code\", \"message\"}` (`ErrorBody`); every time is RFC 3339 in UTC. The chat \
            itself is a WebSocket at `/v1/chat` (docs/protocol.md).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::health,
        super::ready,
        super::metrics_text,
        document,
        web::index,
        web::favicon,
        web::asset,
        signin::exchange,
        session::create_owner,
        session::accept_invite,
        session::create_invite,
        session::sign_in,
        session::show,
        session::sign_out,
        tokens::list,
        tokens::create,
        tokens::revoke,
        platform::create_workspace,
        platform::mint_token,
        crate::ws::upgrade,
        projects::create,
        projects::list,
        projects::show,
        projects::update,
        projects::stripe_status,
        projects::stripe_connect,
        projects::catalog_sync,
        projects::set_mode,
        projects::catalog,
        orders::checkout,
        public::preflight,
        orders::publishable_key,
        orders::allow_origins,
        public::buy,
        orders::list,
        orders::show,
        customers::list,
        customers::show,
        export::orders,
        export::customers,
        orders::refund,
        orders::resend_receipt,
        billing::list,
        billing::show,
        billing::cancel,
        billing::resume,
        plans::preview,
        plans::change,
        plans::show,
        plans::update,
        plans::session,
        plans::preflight,
        billing::entitlements,
        metrics::subscriptions,
        app_webhooks::show,
        app_webhooks::put,
        app_webhooks::delete,
        billing::balance,
        billing::payouts,
        orders::complete,
        webhooks::stripe,
        stripe_pages::onboarding_return,
        stripe_pages::onboarding_refresh,
        stripe_pages::oauth_callback,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "projects", description = "Projects: created with or without the backend, which is fixed"),
        (name = "stripe", description = "Connecting Stripe, and Stripe's webhooks"),
        (name = "catalog", description = "The product catalog synced from Stripe"),
        (name = "selling", description = "Checkouts, orders, refunds, receipts, publishable keys"),
        (name = "billing", description = "Subscriptions, entitlements, the balance and payouts"),
        (name = "app webhooks", description = "chatpay's own signed events to the builder's app"),
        (name = "sign-in", description = "The first-run link, email and password sign-in, the session cookie, Sign out"),
        (name = "tokens", description = "The workspace's API tokens (Settings → API tokens)"),
        (name = "platform", description = "The app-builder platform: workspaces per builder, short-lived scoped tokens"),
        (name = "chat", description = "The chat: protocol v1 over a WebSocket"),
        (name = "pages", description = "Pages for browsers: the web chat view, Stripe's return pages, buy links"),
        (name = "health", description = "Liveness, readiness, this document"),
    ),
)]
pub struct ApiDoc;

/// The security schemes the operations name.
struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cpk_…")
                    .description(Some(
                        "An API token (`chatpay token create --name NAME`, Settings → API tokens), or a platform's scoped token (`cpt_…`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "publishable_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cpub_…")
                    .description(Some(
                        "The project's publishable key: only creates checkouts, from the allowed origins.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "chatpay_session",
                "The web page's session cookie (HttpOnly); writes only from the page's own Origin.",
            ))),
        );
        components.add_security_scheme(
            "platform_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The deployment's platform key (CHATPAY_PLATFORM_KEY): workspaces and scoped tokens.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "stripe_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Stripe-Signature",
                "Stripe's signature over the raw body, with the endpoint's signing secret.",
            ))),
        );
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::response::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

fn responses(
    list: &[(&str, &str)],
) -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error_response(description)))
        .collect()
}

/// The refusals every call with an API token on a project may answer.
pub struct Refusals;

impl IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        responses(&[
            (
                "400",
                "`bad_request`: a query or path parameter, a header or the body can't be read, \
                 or breaks its documented form",
            ),
            (
                "401",
                "`unauthorized`: no token, a wrong one, or a publishable key",
            ),
            (
                "404",
                "`not_found`: no such project for this token, or no such object in it",
            ),
            ("500", "`internal`: logged on the server; retry"),
            (
                "503",
                "`unavailable`: the server is stopping or overloaded; retry shortly",
            ),
        ])
    }
}

/// The refusals of a call with a JSON body.
pub struct BodyRefusals;

impl IntoResponses for BodyRefusals {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        responses(&[
            ("413", "`payload_too_large`: the body is larger than 2 MiB"),
            (
                "415",
                "`unsupported_media_type`: a body that is not `Content-Type: application/json`",
            ),
        ])
    }
}

/// The document, made once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
});

/// This document.
#[utoipa::path(get, operation_id = "openapi_document", path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}
