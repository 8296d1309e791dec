//! The router: Stripe's API under `/v1`, the hosted onboarding page, Connect OAuth, the
//! Dashboard's products page, and the test controls, all on one port. A request that changed
//! the state is answered once the state file holds the change (`persist::durable_answers`);
//! faults are injected in front of everything but the controls.

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use super::error::{ApiError, ErrorType};
use super::state::App;
use super::{api, control, dashboard, faults, hosted, oauth, onboarding, persist, portal};

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/v1/{*path}", any(api::handle))
        .route(
            "/onboarding/{token}",
            get(onboarding::show).post(onboarding::post),
        )
        .route("/onboarding/{token}/exit", get(onboarding::exit))
        .route("/checkout/{id}", get(hosted::show).post(hosted::submit))
        .route(
            "/checkout/{id}/promotion_code",
            post(hosted::apply_promotion_code),
        )
        .route(
            "/checkout/{id}/promotion_code/remove",
            post(hosted::remove_promotion_code),
        )
        .route(
            "/checkout/{id}/authenticate",
            get(hosted::show_authenticate).post(hosted::submit_authenticate),
        )
        .route("/receipts/{id}", get(hosted::receipt))
        .route(
            "/invoices/{id}",
            get(hosted::invoice).post(hosted::pay_invoice),
        )
        .route("/invoices/{id}/pdf", get(hosted::invoice_pdf))
        .route("/p/session/{secret}", get(portal::show))
        .route("/p/session/{secret}/card", post(portal::update_card))
        .route("/p/session/{secret}/cancel", post(portal::cancel))
        .route("/p/session/{secret}/update", post(portal::update_plan))
        .route(
            "/dashboard/{account}/products",
            get(dashboard::products).post(dashboard::create_product),
        )
        .merge(
            Router::new()
                .route("/dashboard/{account}/clock", post(dashboard::clock))
                .route(
                    "/dashboard/{account}/failing_card",
                    post(dashboard::failing_card),
                )
                .route_layer(middleware::from_fn(control::loopback_only)),
        )
        .route("/oauth/authorize", get(oauth::page).post(oauth::decide))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/deauthorize", post(oauth::deauthorize))
        .merge(control::router())
        .fallback(unrecognized)
        .method_not_allowed_fallback(unrecognized)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            persist::durable_answers,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), faults::inject))
        .with_state(app)
}

/// Stripe's answer to a URL it does not serve.
async fn unrecognized(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorType::InvalidRequest,
        format!(
            "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we \
             can help at https://support.stripe.com/.",
            uri.path()
        ),
    )
    .into_response()
}
