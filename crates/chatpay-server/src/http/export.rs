//! Orders and customers as CSV files, streamed. Handlers translate; the lines are the core's
//! (`chatpay_core::export`: quoting, formula-safe cells, amounts in the currency's units).
//!
//! - `GET /v1/projects/{id}/orders.csv?status=&since=&until=&customer=` → the orders the JSON
//!   list's filters keep, newest first, read from the store a page at a time and sent as each
//!   page is read (the file is never held whole);
//! - `GET /v1/projects/{id}/customers.csv?q=` → the customers the JSON list's search keeps, the
//!   biggest spenders first, a line per customer and currency (the orders are read a page at a
//!   time; what is held is one entry per customer).
//!
//! Both authenticate like the rest of the API: `Authorization: Bearer`, or, for a link opened
//! in a browser signed in to chatpay's page, the session cookie (a GET needs no Origin).
//! The first page is read before the answer starts, so a failing store is an error body; a
//! failure later ends the download early, and the browser reports it as failed.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;
use utoipa::IntoParams;

use super::customers::CustomerQuery;
use super::openapi::Refusals;
use super::orders::{date_or_time, order_filter};
use super::projects::owned;
use super::types::OrderStatus;
use super::{ApiError, ApiPath, ApiQuery, AppState, Caller};
use crate::chat::Engine;
use chatpay_core::customers::matches;
use chatpay_core::export::{CUSTOMER_COLUMNS, ORDER_COLUMNS, customer_lines, line, order_line};
use chatpay_core::orders::Order;
use chatpay_store::{OrderFilter, ProjectRecord};

/// Orders read from the store per page, and customers sent per chunk.
const PAGE: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrdersCsvQuery {
    /// Only orders in this status.
    status: Option<OrderStatus>,
    /// A date (`2026-12-01`, UTC) or an RFC 3339 time; inclusive.
    #[param(schema_with = date_or_time)]
    since: Option<String>,
    /// A date or an RFC 3339 time; exclusive.
    #[param(schema_with = date_or_time)]
    until: Option<String>,
    /// A customer's email: only their orders.
    customer: Option<String>,
}

/// A CSV answer: its body, and the file name a browser saves it as.
fn csv(body: Body, file: &str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where an orders export stands: the page read and not yet sent, and how to read the next.
struct Pages {
    engine: Engine,
    project: ProjectRecord,
    filter: OrderFilter,
    /// `None`: everything was sent.
    page: Option<Vec<Order>>,
    header: bool,
}

impl Pages {
    /// The next chunk of the file: the header with the first page, then a page at a time.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Pages)> {
        let page = self.page.take()?;
        let mut chunk = String::new();
        if std::mem::take(&mut self.header) {
            chunk.push_str(&line(&ORDER_COLUMNS));
        }
        for o in &page {
            chunk.push_str(&order_line(o));
        }
        if let Some(last) = page.last().filter(|_| page.len() as i64 == PAGE) {
            self.filter.before = Some(last.number);
            match self.engine.orders(&self.project, &self.filter).await {
                Ok(next) => self.page = Some(next),
                Err(e) => {
                    tracing::error!(error = %e, "orders export cut short");
                    return Some((
                        Err(std::io::Error::other("the orders could not be read")),
                        self,
                    ));
                }
            }
        }
        Some((Ok(Bytes::from(chunk)), self))
    }
}

/// The project's orders in its mode as CSV, newest first, with the JSON list's filters.
#[utoipa::path(get, operation_id = "orders_export", path = "/v1/projects/{id}/orders.csv", tag = "selling",
    params(("id" = String, Path, description = "The project (`prj_…`)"), OrdersCsvQuery),
    responses(
        (status = 200, description = "A line per order: number, id, status, created_at, paid_at, customer_email, currency, total, discount, refunded (amounts in the currency's units), items, payment_intent, subscription, dispute", content_type = "text/csv", body = String),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn orders(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<OrdersCsvQuery>,
) -> Result<Response, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let filter = OrderFilter {
        limit: PAGE,
        ..order_filter(q.status, q.since.as_deref(), q.until.as_deref(), q.customer)?
    };
    let first = state.engine.orders(&project, &filter).await?;
    let file = format!("orders-{}-{}.csv", project.id, project.mode.as_str());
    let pages = Pages {
        engine: state.engine.clone(),
        project,
        filter,
        page: Some(first),
        header: true,
    };
    Ok(csv(
        Body::from_stream(stream::unfold(pages, Pages::next)),
        &file,
    ))
}

/// The project's customers in its mode as CSV, the biggest spenders first, with the JSON
/// list's search.
#[utoipa::path(get, operation_id = "customers_export", path = "/v1/projects/{id}/customers.csv", tag = "selling",
    params(("id" = String, Path, description = "The project (`prj_…`)"), CustomerQuery),
    responses(
        (status = 200, description = "A line per customer and currency: email, currency, lifetime_value (in the currency's units, after refunds and lost disputes), orders, order_numbers, first_paid_at, last_paid_at, disputes", content_type = "text/csv", body = String),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn customers(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CustomerQuery>,
) -> Result<Response, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let search = q.q.unwrap_or_default();
    let mut found = state.engine.customers(&project, None).await?;
    found.retain(|c| matches(c, &search));
    let file = format!("customers-{}-{}.csv", project.id, project.mode.as_str());
    // The lines are made as they are sent, a chunk of customers at a time.
    let mut rest = found.into_iter();
    let lines = std::iter::from_fn(move || {
        let chunk: String = rest
            .by_ref()
            .take(PAGE as usize)
            .map(|c| customer_lines(&c))
            .collect();
        (!chunk.is_empty()).then_some(chunk)
    });
    let body = stream::iter(
        std::iter::once(line(&CUSTOMER_COLUMNS))
            .chain(lines)
            .map(|s| Ok::<_, Infallible>(Bytes::from(s))),
    );
    Ok(csv(Body::from_stream(body), &file))
}
