//! Customers over HTTP, derived from the stored paid orders (`chatpay_core::customers`): a
//! customer is a buyer's email within the project and mode. Handlers translate; the core
//! computes.
//!
//! - `GET /v1/projects/{id}/customers?q=` → the biggest spenders first (`q`: part of an email);
//! - `GET /v1/projects/{id}/customers/{customer}` (the email) → one customer, 404 if they never
//!   paid.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Refusals;
use super::projects::owned;
use super::types::{Mode, Timestamp};
use super::{ApiError, ApiPath, ApiQuery, AppState, Caller};
use chatpay_core::customers::{Customer as CoreCustomer, matches};
use chatpay_core::domain::{Currency, Money};

/// An amount in one currency.
#[derive(Serialize, ToSchema)]
pub struct Amount {
    /// ISO 4217, lowercase.
    currency: String,
    /// In the currency's minor unit.
    amount: i64,
    /// Formatted (`$98.00`).
    display: String,
}

/// A buyer and what they did.
#[derive(Serialize, ToSchema)]
pub struct Customer {
    /// The buyer's email, lowercase: the customer's id.
    email: String,
    /// Their paid orders' numbers (refunded ones included), newest first.
    orders: Vec<i64>,
    /// What they paid, less refunds and lost disputes, per currency.
    lifetime_value: Vec<Amount>,
    first_paid_at: Timestamp,
    last_paid_at: Timestamp,
    /// Disputes they opened.
    disputes: usize,
}

impl From<&CoreCustomer> for Customer {
    fn from(c: &CoreCustomer) -> Customer {
        Customer {
            email: c.email.clone(),
            orders: c.orders.clone(),
            lifetime_value: c
                .spent
                .iter()
                .map(|(cur, minor)| Amount {
                    currency: cur.clone(),
                    amount: *minor,
                    display: Currency::parse(cur)
                        .map_or_else(|| minor.to_string(), |c| Money::new(*minor, c).to_string()),
                })
                .collect(),
            first_paid_at: Timestamp::from_millis(c.first_paid_at),
            last_paid_at: Timestamp::from_millis(c.last_paid_at),
            disputes: c.disputes,
        }
    }
}

/// The project's customers in its mode.
#[derive(Serialize, ToSchema)]
pub struct CustomerList {
    project: String,
    mode: Mode,
    data: Vec<Customer>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Only customers whose email contains this (any case).
    #[param(max_length = 254)]
    pub(super) q: Option<String>,
}

/// The project's customers in its mode (those `q` finds), the biggest spenders first.
#[utoipa::path(get, operation_id = "customers_list", path = "/v1/projects/{id}/customers", tag = "selling",
    params(("id" = String, Path, description = "The project (`prj_…`)"), CustomerQuery),
    responses((status = 200, body = CustomerList), Refusals),
    security(("api_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CustomerQuery>,
) -> Result<Json<CustomerList>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let search = q.q.unwrap_or_default();
    let all = state.engine.customers(&project, None).await?;
    Ok(Json(CustomerList {
        project: project.id.to_string(),
        mode: project.mode.into(),
        data: all
            .iter()
            .filter(|c| matches(c, &search))
            .map(Customer::from)
            .collect(),
    }))
}

/// One customer of the project, by email.
#[utoipa::path(get, operation_id = "customers_show", path = "/v1/projects/{id}/customers/{customer}", tag = "selling",
    params(
        ("id" = String, Path, description = "The project (`prj_…`)"),
        ("customer" = String, Path, description = "The customer's email"),
    ),
    responses((status = 200, body = Customer), Refusals),
    security(("api_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, customer)): ApiPath<(String, String)>,
) -> Result<Json<Customer>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let email = customer.trim().to_lowercase();
    state
        .engine
        .customers(&project, Some(&email))
        .await?
        .iter()
        .find(|c| c.email == email)
        .map(|c| Json(Customer::from(c)))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "{email} hasn't paid for anything in this project's {} mode.",
                project.mode.as_str()
            ))
        })
}
