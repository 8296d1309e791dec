//! `/v1/projects`: create (with or without the backend, optionally starting Stripe Connect), list,
//! show, rename; the Integrations panel's Stripe status and Connect button.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, AppState, Caller};
use crate::chat::ModeAnswer;
use chatpay_core::account::AccountSnapshot;
use chatpay_core::domain::Mode;
use chatpay_core::flows::{CheckItem, Entry};
use chatpay_store::ProjectRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    name: String,
    /// Required: it can never be changed afterwards.
    backend: Option<bool>,
    #[serde(default)]
    connect_stripe: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    name: Option<String>,
    backend: Option<bool>,
}

pub(super) fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn project_json(p: &ProjectRecord) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "backend": p.backend,
        "mode": p.mode,
        "created_at": iso(p.created_at),
    })
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "`name` must be 1 to 100 characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

pub(super) async fn owned(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ProjectRecord, ApiError> {
    Ok(state.engine.project_of(&caller.0, id).await?)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewProject>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = valid_name(&body.name)?;
    let backend = body.backend.ok_or_else(|| {
        ApiError::BadRequest("`backend` is required (true or false): it can't be changed after the project is created".to_owned())
    })?;
    let (project, view) = state
        .engine
        .create_project(&caller.0, name, backend, body.connect_stripe)
        .await?;
    let mut out = project_json(&project);
    if let Some(view) = view {
        out["conversation"] = json!(view.conversation);
        out["flow"] = json!({ "name": view.flow, "state": view.state });
    }
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let projects = state.engine.projects(&caller.0).await?;
    Ok(Json(
        json!({ "data": projects.iter().map(project_json).collect::<Vec<_>>() }),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(project_json(&owned(&state, &caller, &id).await?)))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ProjectPatch>,
) -> Result<Json<Value>, ApiError> {
    let mut project = owned(&state, &caller, &id).await?;
    if let Some(backend) = patch.backend
        && backend != project.backend
    {
        return Err(ApiError::Conflict {
            code: "backend_immutable",
            message: "The backend is chosen when a project is created and can't be changed. Create a new project with the backend on to take payments.".to_owned(),
        });
    }
    if let Some(name) = patch.name {
        let name = valid_name(&name)?;
        state.engine.rename_project(&project, &name).await?;
        project.name = name;
    }
    Ok(Json(project_json(&project)))
}

fn account_json(a: &AccountSnapshot) -> Value {
    let r = &a.requirements;
    json!({
        "id": a.id,
        "state": a.state(),
        "details_submitted": a.details_submitted,
        "charges_enabled": a.charges_enabled,
        "payouts_enabled": a.payouts_enabled,
        "disabled_reason": r.disabled_reason,
        // The reason in plain words, as the chat says it (the web page shows it).
        "disabled_reason_text": r.disabled_reason.as_deref().map(|reason| chatpay_core::account::explain_disabled_reason(reason).sentence),
        "currently_due": r.currently_due,
        "past_due": r.past_due,
        "pending_verification": r.pending_verification,
        "needs": a.needs_in_plain_words(),
        "current_deadline": r.current_deadline.map(|s| iso(s * 1000)),
        "payout_schedule": a.payout_schedule.as_ref().map(|s| json!({ "delay_days": s.delay_days, "interval": s.interval })),
        "email": a.email,
        "country": a.country,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeQuery {
    mode: Option<String>,
}

fn parse_mode(mode: &str) -> Result<Mode, ApiError> {
    Mode::parse(mode).ok_or_else(|| {
        ApiError::BadRequest(format!("`mode` must be \"test\" or \"live\", not {mode:?}"))
    })
}

/// The Integrations panel: is Stripe connected, in what state, and where the flow is.
/// `?mode=live` shows the live connection while the project is still in test mode.
pub async fn stripe_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ModeQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let mode = match query.mode.as_deref() {
        Some(m) => parse_mode(m)?,
        None => project.mode,
    };
    let connection = state.engine.stripe_connection_in(&project, mode).await?;
    let account = connection.as_ref().map(|(_, snapshot)| {
        let mut a = account_json(snapshot);
        a["dashboard_url"] = json!(state.engine.stripe_dashboard_url(&project, &snapshot.id));
        a
    });
    let connection = connection.map(|(c, _)| c);
    let view = state.engine.flow_view(&project).await?;
    Ok(Json(json!({
        "project": project.id,
        "backend": project.backend,
        "mode": project.mode,
        "connection_mode": mode,
        "connected": connection.is_some(),
        "origin": connection.as_ref().map(|c| c.origin.as_str()),
        "connected_at": connection.as_ref().map(|c| iso(c.connected_at)),
        "account": account,
        "conversation": view.conversation,
        "flow": view.flow.map(|f| json!({ "name": f, "state": view.state })),
    })))
}

/// The Integrations panel's Connect button: starts the flow, or shows where it is.
pub async fn stripe_connect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let view = state
        .engine
        .start_connect(&project, Entry::Integrations)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "conversation": view.conversation,
            "flow": view.flow.map(|f| json!({ "name": f, "state": view.state })),
        })),
    ))
}

/// Settings -> Integrations -> Stripe Details -> Product Catalog -> Sync: starts the
/// `catalog_sync` flow (or joins the one running); progress and result appear in the chat.
pub async fn catalog_sync(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let view = state.engine.start_sync(&project).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "conversation": view.conversation,
            "flow": view.flow.map(|f| json!({ "name": f, "state": view.state })),
        })),
    ))
}

fn price_json(
    p: &chatpay_core::catalog::PriceData,
    default: bool,
    buy_url: Option<String>,
) -> Value {
    json!({
        "buy_url": buy_url,
        "id": p.id,
        "amount": p.unit_amount,
        "currency": p.currency,
        "display": p.display(),
        "billing": p.kind,
        "interval": p.recurring.as_ref().map(|r| r.interval.clone()),
        "interval_count": p.recurring.as_ref().map(|r| r.interval_count),
        "active": p.active,
        "default": default,
    })
}

/// What the app displays: products, prices in minor units, sellable or not and why.
pub async fn catalog(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let catalog = state.engine.catalog(&project).await?;
    let data: Vec<Value> = catalog
        .shown
        .iter()
        .map(|p| {
            let problems = p.problems();
            let sellable = !problems.iter().any(|x| x.blocking);
            // A shareable link that opens a fresh checkout (a subscription, for a recurring price).
            let buy = |price: &chatpay_core::catalog::PriceData| {
                (sellable && price.active && price.unit_amount.is_some()).then(|| {
                    format!("{}/buy/{}/{}", state.engine.public_url(), project.id, price.id)
                })
            };
            json!({
                "id": p.product.id,
                "name": p.product.name,
                "description": p.product.description,
                "active": p.product.active,
                "sellable": !problems.iter().any(|x| x.blocking),
                "problems": problems.iter().map(|x| json!({ "code": x.code, "message": x.message, "blocking": x.blocking })).collect::<Vec<_>>(),
                "prices": p.prices.iter().map(|price| price_json(price, p.product.default_price.as_deref() == Some(price.id.as_str()), buy(price))).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "project": project.id,
        "mode": project.mode,
        "synced_at": catalog.synced_at.map(iso),
        "last_sync": catalog.report,
        "products": data,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    mode: String,
}

fn check_json(i: &CheckItem) -> Value {
    json!({
        "item": i.code.as_str(),
        "label": i.code.label(),
        "ok": i.ok,
        "detail": i.detail,
        "fix": i.fix,
    })
}

/// `POST /v1/projects/{id}/mode {"mode":"live"|"test"}`: going live runs the go-live checklist
/// (the conversation's flow, as "go live" in the chat does) and switches only when every item
/// passes: 200 with the project, or 409 `not_ready` with every item (what's missing and how to
/// fix it). Back to test is always possible.
pub async fn set_mode(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ModeChange>,
) -> Result<Response, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let mode = parse_mode(&body.mode)?;
    match state.engine.set_mode(&project, mode).await? {
        ModeAnswer::Switched(project) => Ok(Json(project_json(&project)).into_response()),
        ModeAnswer::NotReady(items) => {
            let missing: Vec<&str> = items
                .iter()
                .filter(|i| !i.ok)
                .map(|i| i.code.label())
                .collect();
            Ok((
                StatusCode::CONFLICT,
                Json(json!({
                    "code": "not_ready",
                    "message": format!(
                        "The project stays in test mode: {} of {} go-live items are missing ({}). Each item says how to fix it.",
                        missing.len(),
                        items.len(),
                        missing.join(", ")
                    ),
                    "mode": project.mode,
                    "checklist": items.iter().map(check_json).collect::<Vec<_>>(),
                })),
            )
                .into_response())
        }
    }
}
