//! Subscription figures over HTTP, computed by `chatpay_core::metrics` from the stored
//! subscriptions (the chat's answer to "what's my MRR?" is the same function). Handlers
//! translate; the core computes.
//!
//! - `GET /v1/projects/{id}/metrics/subscriptions?period=&since=&until=` → MRR per currency
//!   now, and the subscriptions started, ended and churned in the period (this month when none
//!   is given).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Refusals;
use super::orders::{date_or_time, time_param};
use super::projects::owned;
use super::types::{Amount, Mode, Timestamp};
use super::{ApiError, ApiPath, ApiQuery, AppState, Caller};
use chatpay_core::domain::{Currency, now_millis};
use chatpay_core::flows::period;
use chatpay_core::metrics::{DEFINITIONS, percent};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// A period as the chat reads it: `this month` (when nothing is given), `last month`,
    /// `this quarter`, `last quarter`, `this year`, `last year`, `november`, `q3 2026`,
    /// `last 30 days`, `all time`, … (UTC). An unknown phrase is the last 30 days.
    #[param(example = "this quarter", max_length = 40)]
    period: Option<String>,
    /// Instead of `period`: a date (`2026-12-01`, UTC) or an RFC 3339 time; inclusive.
    #[param(schema_with = date_or_time)]
    since: Option<String>,
    /// With `since`: a date or an RFC 3339 time; exclusive.
    #[param(schema_with = date_or_time)]
    until: Option<String>,
}

/// The span counted.
#[derive(Serialize, ToSchema)]
pub struct MetricsPeriod {
    /// `this quarter (Oct 1, 2026 – Dec 31, 2026, UTC)`.
    label: String,
    /// Inclusive; absent for "all time".
    since: Option<Timestamp>,
    /// Exclusive.
    until: Option<Timestamp>,
}

/// Subscription figures: MRR now, and what moved in the period. Amounts per currency, never
/// added across currencies.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionMetrics {
    project: String,
    mode: Mode,
    /// When MRR was measured.
    as_of: Timestamp,
    period: MetricsPeriod,
    /// Monthly recurring revenue now, per currency: active and past-due subscriptions, after
    /// discounts that still apply, yearly prices as twelfths, weekly ones as 52/12; trials not
    /// counted.
    mrr: Vec<Amount>,
    /// MRR × 12.
    arr: Vec<Amount>,
    /// Subscriptions counted in MRR (active and past due).
    subscriptions_counted: usize,
    /// Of those, past due.
    past_due: usize,
    /// In a free trial now (not counted in MRR).
    trialing: usize,
    /// Subscriptions started in the period (trials included).
    new: usize,
    /// Subscriptions that ended in the period.
    ended: usize,
    /// Subscriptions live at the period's start.
    live_at_start: usize,
    /// Of those, how many ended in the period.
    churned: usize,
    /// `churned / live_at_start` in basis points (1250 is 12.5%); null when nothing was live at
    /// the start.
    churn_rate_bps: Option<i64>,
    /// The same, as people read it (`12.5%`).
    churn_rate: Option<String>,
    /// How each figure is counted.
    definitions: String,
}

/// The project's subscription figures in its mode: MRR per currency now, and the subscriptions
/// started, ended and churned in a period.
#[utoipa::path(get, operation_id = "metrics_subscriptions", path = "/v1/projects/{id}/metrics/subscriptions", tag = "billing",
    params(("id" = String, Path, description = "The project (`prj_…`)"), MetricsQuery),
    responses((status = 200, body = SubscriptionMetrics), Refusals),
    security(("api_token" = [])))]
pub async fn subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> Result<Json<SubscriptionMetrics>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let now = now_millis();
    let span = match (&q.period, &q.since, &q.until) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `period`, or `since` and `until`, not both".to_owned(),
            ));
        }
        (_, None, None) => period(Some(q.period.as_deref().unwrap_or("this month")), now),
        (None, since, until) => {
            let since = since
                .as_deref()
                .map(|s| time_param("since", s))
                .transpose()?;
            let until = until
                .as_deref()
                .map(|s| time_param("until", s))
                .transpose()?;
            let day = |ms: Option<i64>, open: &str| {
                ms.and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or_else(
                        || open.to_owned(),
                        |d| d.format("%b %-d, %Y %H:%M").to_string(),
                    )
            };
            chatpay_core::flows::Period {
                label: format!("{} to {} (UTC)", day(since, "the start"), day(until, "now")),
                since,
                until,
            }
        }
    };
    let m = state
        .engine
        .subscription_metrics(&project, span.since, span.until)
        .await?;
    let amounts = |times: i64| {
        m.mrr
            .iter()
            .filter_map(|(c, a)| Currency::parse(c).map(|cur| Amount::new(a * times, cur)))
            .collect()
    };
    Ok(Json(SubscriptionMetrics {
        project: project.id.to_string(),
        mode: project.mode.into(),
        as_of: Timestamp::from_millis(now),
        period: MetricsPeriod {
            label: span.label.clone(),
            since: span.since.map(Timestamp::from_millis),
            until: span.until.map(Timestamp::from_millis),
        },
        mrr: amounts(1),
        arr: amounts(12),
        subscriptions_counted: m.paying,
        past_due: m.past_due,
        trialing: m.trialing,
        new: m.new,
        ended: m.ended,
        live_at_start: m.live_at_start,
        churned: m.churned,
        churn_rate_bps: m.churn_rate_bps,
        churn_rate: m.churn_rate_bps.map(percent),
        definitions: DEFINITIONS.to_owned(),
    }))
}
