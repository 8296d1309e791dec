//! `/v1/projects`: create (with or without the backend, optionally starting Stripe Connect), list,
//! show, rename; the Integrations panel's Stripe status and Connect button.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::{BodyRefusals, Refusals};
use super::types::{AccountState, FlowRef, FlowStarted, Mode, Origin, Timestamp};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Caller};
use crate::chat::ModeAnswer;
use chatpay_core::account::AccountSnapshot;
use chatpay_core::catalog::{CatalogProduct, PriceData, SyncReport};
use chatpay_core::flows::{CheckItem, Entry};
use chatpay_store::ProjectRecord;

/// `POST /v1/projects`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 1 to 100 characters, not all spaces.
    #[schema(example = "My shop", min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    /// Required: whether the project has the backend (payments need it). It can never be
    /// changed afterwards.
    #[schema(required = true, value_type = bool)]
    backend: Option<bool>,
    /// Start connecting Stripe now: the flow's first card waits in the chat.
    #[serde(default)]
    connect_stripe: bool,
}

/// `PATCH /v1/projects/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// A new name, 1 to 100 characters, not all spaces.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    /// Only the project's own value is accepted: a different one is 409 `backend_immutable`.
    backend: Option<bool>,
}

/// A project.
#[derive(Serialize, ToSchema)]
pub struct Project {
    /// `prj_…`.
    id: String,
    name: String,
    backend: bool,
    /// The mode the project takes payments in.
    mode: Mode,
    created_at: Timestamp,
    /// Only from a creation with `connect_stripe`: the conversation where the flow waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<String>,
    /// Only from a creation with `connect_stripe`: the flow started.
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<FlowRef>,
}

impl From<&ProjectRecord> for Project {
    fn from(p: &ProjectRecord) -> Project {
        Project {
            id: p.id.to_string(),
            name: p.name.clone(),
            backend: p.backend,
            mode: p.mode.into(),
            created_at: Timestamp::from_millis(p.created_at),
            conversation: None,
            flow: None,
        }
    }
}

/// The token's projects.
#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    data: Vec<Project>,
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

/// Creates a project.
#[utoipa::path(post, operation_id = "projects_create", path = "/v1/projects", tag = "projects",
    request_body = NewProject,
    responses(
        (status = 201, description = "The project", body = Project),
        (status = 409, description = "`backend_required`: `connect_stripe` without the backend", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let name = valid_name(&body.name)?;
    let backend = body.backend.ok_or_else(|| {
        ApiError::BadRequest("`backend` is required (true or false): it can't be changed after the project is created".to_owned())
    })?;
    let (project, view) = state
        .engine
        .create_project(&caller.0, name, backend, body.connect_stripe)
        .await?;
    let mut out = Project::from(&project);
    if let Some(view) = view {
        let started = FlowStarted::from(view);
        out.conversation = Some(started.conversation);
        out.flow = started.flow;
    }
    Ok((StatusCode::CREATED, Json(out)))
}

/// Lists the token's projects.
#[utoipa::path(get, operation_id = "projects_list", path = "/v1/projects", tag = "projects",
    responses((status = 200, body = ProjectList), Refusals),
    security(("api_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectList>, ApiError> {
    let projects = state.engine.projects(&caller.0).await?;
    Ok(Json(ProjectList {
        data: projects.iter().map(Project::from).collect(),
    }))
}

/// Shows a project (someone else's is 404).
#[utoipa::path(get, operation_id = "projects_show", path = "/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, body = Project), Refusals),
    security(("api_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Project>, ApiError> {
    Ok(Json(Project::from(&owned(&state, &caller, &id).await?)))
}

/// Renames a project.
#[utoipa::path(patch, operation_id = "projects_update", path = "/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    request_body = ProjectPatch,
    responses(
        (status = 200, body = Project),
        (status = 409, description = "`backend_immutable`: the backend can't be changed", body = ErrorBody),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<ProjectPatch>,
) -> Result<Json<Project>, ApiError> {
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
    Ok(Json(Project::from(&project)))
}

/// A payout schedule.
#[derive(Serialize, ToSchema)]
pub struct PayoutSchedule {
    delay_days: u32,
    /// `daily`, `weekly`, `monthly` or `manual`.
    interval: String,
}

/// A connected Stripe account, in plain words.
#[derive(Serialize, ToSchema)]
pub struct Account {
    /// `acct_…`.
    id: String,
    state: AccountState,
    details_submitted: bool,
    charges_enabled: bool,
    payouts_enabled: bool,
    /// Stripe's code for why the account is disabled.
    disabled_reason: Option<String>,
    /// The reason in plain words, as the chat says it.
    disabled_reason_text: Option<String>,
    currently_due: Vec<String>,
    past_due: Vec<String>,
    pending_verification: Vec<String>,
    /// What Stripe needs, in plain words.
    needs: Vec<String>,
    current_deadline: Option<Timestamp>,
    payout_schedule: Option<PayoutSchedule>,
    email: Option<String>,
    country: Option<String>,
    /// The name customers see on checkout pages and receipts (Stripe's `business_profile.name`).
    business_name: Option<String>,
    /// Where the account's products are managed: Stripe's Dashboard, or the sandbox's page.
    dashboard_url: String,
}

impl Account {
    fn new(a: &AccountSnapshot, dashboard_url: String) -> Account {
        let r = &a.requirements;
        Account {
            id: a.id.clone(),
            state: a.state().into(),
            details_submitted: a.details_submitted,
            charges_enabled: a.charges_enabled,
            payouts_enabled: a.payouts_enabled,
            disabled_reason: r.disabled_reason.clone(),
            disabled_reason_text: r.disabled_reason.as_deref().map(|reason| {
                chatpay_core::account::explain_disabled_reason(reason)
                    .sentence
                    .to_string()
            }),
            currently_due: r.currently_due.clone(),
            past_due: r.past_due.clone(),
            pending_verification: r.pending_verification.clone(),
            needs: a
                .needs_in_plain_words()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            current_deadline: r.current_deadline.map(Timestamp::from_secs),
            payout_schedule: a.payout_schedule.as_ref().map(|s| PayoutSchedule {
                delay_days: s.delay_days,
                interval: s.interval.clone(),
            }),
            email: a.email.clone(),
            country: a.country.clone(),
            business_name: a.business_name.clone(),
            dashboard_url,
        }
    }
}

/// The Integrations panel's view of Stripe.
#[derive(Serialize, ToSchema)]
pub struct StripeStatus {
    project: String,
    backend: bool,
    /// The project's mode.
    mode: Mode,
    /// The mode of the connection shown (the project's, or `?mode=`).
    connection_mode: Mode,
    connected: bool,
    origin: Option<Origin>,
    connected_at: Option<Timestamp>,
    account: Option<Account>,
    /// The project's conversation.
    conversation: String,
    /// The flow in progress, if any.
    flow: Option<FlowRef>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModeQuery {
    /// Which connection to show: the project's mode when absent.
    mode: Option<Mode>,
}

/// The Integrations panel: is Stripe connected, in what state, and where the flow is.
/// `?mode=live` shows the live connection while the project is still in test mode.
#[utoipa::path(get, operation_id = "projects_stripe_status", path = "/v1/projects/{id}/integrations/stripe", tag = "stripe",
    params(("id" = String, Path, description = "The project (`prj_…`)"), ModeQuery),
    responses((status = 200, body = StripeStatus), Refusals),
    security(("api_token" = [])))]
pub async fn stripe_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ModeQuery>,
) -> Result<Json<StripeStatus>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let mode = query.mode.map_or(project.mode, Into::into);
    let connection = state.engine.stripe_connection_in(&project, mode).await?;
    let account = connection.as_ref().map(|(_, snapshot)| {
        Account::new(
            snapshot,
            state.engine.stripe_dashboard_url(&project, &snapshot.id),
        )
    });
    let connection = connection.map(|(c, _)| c);
    let view = FlowStarted::from(state.engine.flow_view(&project).await?);
    Ok(Json(StripeStatus {
        project: project.id.to_string(),
        backend: project.backend,
        mode: project.mode.into(),
        connection_mode: mode.into(),
        connected: connection.is_some(),
        origin: connection.as_ref().map(|c| c.origin.into()),
        connected_at: connection
            .as_ref()
            .map(|c| Timestamp::from_millis(c.connected_at)),
        account,
        conversation: view.conversation,
        flow: view.flow,
    }))
}

/// The Integrations panel's Connect button: starts the `stripe_connect` flow, or shows its
/// current step in the chat.
#[utoipa::path(post, operation_id = "projects_stripe_connect", path = "/v1/projects/{id}/integrations/stripe/connect", tag = "stripe",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses(
        (status = 202, description = "The flow, whose cards are in the chat", body = FlowStarted),
        (status = 409, description = "`backend_required`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn stripe_connect(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<FlowStarted>), ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let view = state
        .engine
        .start_connect(&project, Entry::Integrations)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view.into())))
}

/// Settings -> Integrations -> Stripe Details -> Product Catalog -> Sync: starts the
/// `catalog_sync` flow (or joins the one running); progress and result appear in the chat.
#[utoipa::path(post, operation_id = "projects_catalog_sync", path = "/v1/projects/{id}/integrations/stripe/catalog/sync", tag = "catalog",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses(
        (status = 202, description = "The sync, whose cards are in the chat", body = FlowStarted),
        (status = 409, description = "`backend_required`, `stripe_not_connected`", body = ErrorBody),
        Refusals,
    ),
    security(("api_token" = [])))]
pub async fn catalog_sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<FlowStarted>), ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let view = state.engine.start_sync(&project).await?;
    Ok((StatusCode::ACCEPTED, Json(view.into())))
}

/// A price of a product.
#[derive(Serialize, ToSchema)]
pub struct Price {
    /// `price_…`.
    id: String,
    /// In the currency's minor unit; none for a price without a fixed amount.
    amount: Option<i64>,
    currency: String,
    /// Formatted (`$49.00`, `$19.00 / month`).
    display: String,
    /// `one_time` or `recurring`.
    billing: String,
    /// For a recurring price: `day`, `week`, `month` or `year`.
    interval: Option<String>,
    interval_count: Option<u64>,
    active: bool,
    /// The product's default price.
    default: bool,
    /// A link that opens a fresh checkout for this price, when it can be sold.
    buy_url: Option<String>,
}

/// Something about a product that stops it selling, or that its owner should know.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    code: String,
    message: String,
    /// False for warnings: the product still sells.
    blocking: bool,
}

/// A product with its prices, checked.
#[derive(Serialize, ToSchema)]
pub struct Product {
    /// `prod_…`.
    id: String,
    name: String,
    description: Option<String>,
    active: bool,
    sellable: bool,
    problems: Vec<Problem>,
    prices: Vec<Price>,
}

/// What changed since the sync before.
#[derive(Serialize, ToSchema)]
pub struct CatalogDiff {
    added: Vec<String>,
    changed: Vec<String>,
    removed: Vec<String>,
}

/// The last sync's report.
#[derive(Serialize, ToSchema)]
pub struct SyncSummary {
    products: usize,
    sellable: usize,
    diff: CatalogDiff,
    /// Products that need attention, each `[name, [why, …]]`.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    attention: Vec<(String, Vec<String>)>,
    /// Requests made to Stripe by the sync.
    requests: u64,
    /// Where products are added (Stripe's Dashboard, or the sandbox's page).
    #[serde(skip_serializing_if = "Option::is_none")]
    products_url: Option<String>,
}

impl From<SyncReport> for SyncSummary {
    fn from(r: SyncReport) -> SyncSummary {
        SyncSummary {
            products: r.products,
            sellable: r.sellable,
            diff: CatalogDiff {
                added: r.diff.added,
                changed: r.diff.changed,
                removed: r.diff.removed,
            },
            attention: r.attention,
            requests: r.requests,
            products_url: r.products_url,
        }
    }
}

/// The stored catalog in the project's mode.
#[derive(Serialize, ToSchema)]
pub struct Catalog {
    project: String,
    mode: Mode,
    /// None if it was never synced.
    synced_at: Option<Timestamp>,
    last_sync: Option<SyncSummary>,
    products: Vec<Product>,
}

fn product(state: &AppState, project: &ProjectRecord, p: &CatalogProduct) -> Product {
    let problems = p.problems();
    let sellable = !problems.iter().any(|x| x.blocking);
    // A shareable link that opens a fresh checkout (a subscription, for a recurring price).
    let buy = |price: &PriceData| {
        (sellable && price.active && price.unit_amount.is_some()).then(|| {
            format!(
                "{}/buy/{}/{}",
                state.engine.public_url(),
                project.id,
                price.id
            )
        })
    };
    Product {
        id: p.product.id.clone(),
        name: p.product.name.clone(),
        description: p.product.description.clone(),
        active: p.product.active,
        sellable,
        problems: problems
            .iter()
            .map(|x| Problem {
                code: x.code.to_owned(),
                message: x.message.clone(),
                blocking: x.blocking,
            })
            .collect(),
        prices: p
            .prices
            .iter()
            .map(|price| Price {
                buy_url: buy(price),
                id: price.id.clone(),
                amount: price.unit_amount,
                currency: price.currency.clone(),
                display: price.display(),
                billing: price.kind.clone(),
                interval: price.recurring.as_ref().map(|r| r.interval.clone()),
                interval_count: price.recurring.as_ref().map(|r| r.interval_count),
                active: price.active,
                default: p.product.default_price.as_deref() == Some(price.id.as_str()),
            })
            .collect(),
    }
}

/// What the app displays: products, prices in minor units, sellable or not and why.
#[utoipa::path(get, operation_id = "projects_catalog", path = "/v1/projects/{id}/catalog", tag = "catalog",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, body = Catalog), Refusals),
    security(("api_token" = [])))]
pub async fn catalog(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Catalog>, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    let catalog = state.engine.catalog(&project).await?;
    let products = catalog
        .shown
        .iter()
        .map(|p| product(&state, &project, p))
        .collect();
    Ok(Json(Catalog {
        project: project.id.to_string(),
        mode: project.mode.into(),
        synced_at: catalog.synced_at.map(Timestamp::from_millis),
        last_sync: catalog.report.map(Into::into),
        products,
    }))
}

/// `POST /v1/projects/{id}/mode`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    mode: Mode,
}

/// One item of the go-live checklist.
#[derive(Serialize, ToSchema)]
pub struct ChecklistItem {
    /// `account_active`, `live_catalog`, `live_webhook`, `statement_descriptor`, `live_keys`.
    item: String,
    label: String,
    ok: bool,
    /// What was found.
    detail: String,
    /// How to fix it, when it fails.
    fix: Option<String>,
    /// When chatpay can start the fix from the chat: the go-live card's action
    /// (`connect_live`, `live_status`, `sync_live`) and its button's label, which `fix` names.
    action: Option<String>,
    action_label: Option<String>,
}

impl From<&CheckItem> for ChecklistItem {
    fn from(i: &CheckItem) -> ChecklistItem {
        let label = i.action.and_then(chatpay_core::flows::action_label);
        ChecklistItem {
            item: i.code.as_str().to_owned(),
            label: i.code.label().to_owned(),
            ok: i.ok,
            detail: i.detail.clone(),
            fix: i.fix.clone(),
            action: label.and(i.action).map(str::to_owned),
            action_label: label.map(str::to_owned),
        }
    }
}

/// 409 `not_ready`: the project stays in test mode; every checklist item, passing or not.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotReady {
    /// `not_ready`.
    code: String,
    message: String,
    /// The project's mode, unchanged.
    mode: Mode,
    checklist: Vec<ChecklistItem>,
}

/// A refusal of a mode change: the checklist (`not_ready`), or another code. Only the
/// document names it: the handler answers each kind as it is.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ModeRefused {
    NotReady(NotReady),
    Other(ErrorBody),
}

/// Goes live (after the go-live checklist, run as the conversation's flow: its frames appear
/// in the chat) or back to test mode (always possible).
#[utoipa::path(post, operation_id = "projects_set_mode", path = "/v1/projects/{id}/mode", tag = "projects",
    params(("id" = String, Path, description = "The project (`prj_…`)")),
    request_body = ModeChange,
    responses(
        (status = 200, description = "The project, in the mode asked for", body = Project),
        (status = 409, description = "`not_ready` (with the checklist), `backend_required`", body = ModeRefused),
        Refusals, BodyRefusals,
    ),
    security(("api_token" = [])))]
pub async fn set_mode(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ModeChange>,
) -> Result<Response, ApiError> {
    let project = owned(&state, &caller, &id).await?;
    match state.engine.set_mode(&project, body.mode.into()).await? {
        ModeAnswer::Switched(project) => Ok(Json(Project::from(&project)).into_response()),
        ModeAnswer::NotReady(items) => {
            let missing: Vec<&str> = items
                .iter()
                .filter(|i| !i.ok)
                .map(|i| i.code.label())
                .collect();
            let body = NotReady {
                code: "not_ready".to_owned(),
                message: format!(
                    "The project stays in test mode: {} of {} go-live items are missing ({}). Each item says how to fix it.",
                    missing.len(),
                    items.len(),
                    missing.join(", ")
                ),
                mode: project.mode.into(),
                checklist: items.iter().map(ChecklistItem::from).collect(),
            };
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
    }
}
