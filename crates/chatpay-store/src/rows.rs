//! Rows as records: each `…_COLUMNS` is the `SELECT` its decoder reads, for both backends.

use super::conn::Columns;
use super::sql::{Statement, sql};
use super::{
    AppEventRecord, AppWebhook, ConnectionRecord, ConversationRecord, DueAppEvent, OperationRecord,
    OperationStatus, OrderRecord, ProductState, ProjectRecord, PublishableKey, StagedKind,
    StagedObject, StoreError, StoreResult, StoredFrame, StoredProduct, SubscriptionRecord,
    WebhookEventRecord,
};
use super::{PersonRecord, PortalSettingsRecord, TokenKind, TokenRecord, WorkspaceRecord};
use chatpay_core::domain::{
    ConversationId, Mode, Origin, PersonId, ProjectId, TokenId, WorkspaceId,
};

/// `SELECT {columns} {rest}`.
pub(super) fn select<'a>(columns: &str, rest: &str) -> Statement<'a> {
    sql(format!("{columns} {rest}"))
}

pub(super) fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Other(anyhow::anyhow!("bad {what} {value:?} in the database"))
}

fn mode(row: &impl Columns, column: &str) -> StoreResult<Mode> {
    let s = row.text(column)?;
    Mode::parse(&s).ok_or_else(|| bad("mode", &s))
}

pub(super) fn stored_id<T>(
    row: &impl Columns,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> StoreResult<T> {
    let s = row.text(column)?;
    parse(&s).ok_or_else(|| bad("id", &s))
}

fn opt_id<T>(
    row: &impl Columns,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> StoreResult<Option<T>> {
    row.opt_text(column)?
        .map(|s| parse(&s).ok_or_else(|| bad("id", &s)))
        .transpose()
}

pub(super) const WORKSPACE_COLUMNS: &str = "SELECT id, name, created_at FROM workspaces";

pub(super) fn workspace_row(row: &impl Columns) -> StoreResult<WorkspaceRecord> {
    Ok(WorkspaceRecord {
        id: stored_id(row, "id", WorkspaceId::parse)?,
        name: row.text("name")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) const TOKEN_COLUMNS: &str = "SELECT id, workspace_id, kind, name, person_id, \
     project_id, created_at, expires_at, last_used_at, revoked_at FROM tokens";

pub(super) fn token_row(row: &impl Columns) -> StoreResult<TokenRecord> {
    let kind = row.text("kind")?;
    Ok(TokenRecord {
        id: stored_id(row, "id", TokenId::parse)?,
        workspace_id: stored_id(row, "workspace_id", WorkspaceId::parse)?,
        kind: TokenKind::parse(&kind).ok_or_else(|| bad("token kind", &kind))?,
        name: row.text("name")?,
        person_id: opt_id(row, "person_id", PersonId::parse)?,
        project_id: opt_id(row, "project_id", ProjectId::parse)?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        last_used_at: row.opt_int("last_used_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

pub(super) const PERSON_COLUMNS: &str =
    "SELECT id, workspace_id, email, password_hash, created_at FROM people";

pub(super) fn person_row(row: &impl Columns) -> StoreResult<PersonRecord> {
    Ok(PersonRecord {
        id: stored_id(row, "id", PersonId::parse)?,
        workspace_id: stored_id(row, "workspace_id", WorkspaceId::parse)?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) const PROJECT_COLUMNS: &str =
    "SELECT id, workspace_id, token_id, name, backend, mode, created_at FROM projects";

pub(super) fn project_row(row: &impl Columns) -> StoreResult<ProjectRecord> {
    Ok(ProjectRecord {
        id: stored_id(row, "id", ProjectId::parse)?,
        workspace_id: stored_id(row, "workspace_id", WorkspaceId::parse)?,
        token_id: stored_id(row, "token_id", TokenId::parse)?,
        name: row.text("name")?,
        backend: row.flag("backend")?,
        mode: mode(row, "mode")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) const CONVERSATION_COLUMNS: &str =
    "SELECT id, project_id, last_seq, state FROM conversations";

pub(super) fn conversation_row(row: &impl Columns) -> StoreResult<ConversationRecord> {
    Ok(ConversationRecord {
        id: stored_id(row, "id", ConversationId::parse)?,
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        last_seq: row.int("last_seq")?,
        state: row.text("state")?,
    })
}

pub(super) fn frame_row(row: &impl Columns) -> StoreResult<StoredFrame> {
    Ok(StoredFrame {
        seq: row.int("seq")?,
        reply_to: row.opt_text("reply_to")?,
        body: row.shared("body")?,
    })
}

pub(super) const CONNECTION_COLUMNS: &str = "SELECT project_id, mode, account_id, origin, snapshot, \
     connected_at, updated_at FROM stripe_connections";

pub(super) fn connection_row(row: &impl Columns) -> StoreResult<ConnectionRecord> {
    let origin = row.text("origin")?;
    Ok(ConnectionRecord {
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        mode: mode(row, "mode")?,
        account_id: row.text("account_id")?,
        origin: Origin::parse(&origin).ok_or_else(|| bad("origin", &origin))?,
        snapshot: row.text("snapshot")?,
        connected_at: row.int("connected_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) const EVENT_COLUMNS: &str = "SELECT id, event_type, account, livemode, created, payload, \
     received_at, processed_at, outcome FROM webhook_events";

pub(super) fn event_row(row: &impl Columns) -> StoreResult<WebhookEventRecord> {
    Ok(WebhookEventRecord {
        id: row.text("id")?,
        event_type: row.text("event_type")?,
        account: row.opt_text("account")?,
        livemode: row.flag("livemode")?,
        created: row.int("created")?,
        payload: row.text("payload")?,
        received_at: row.int("received_at")?,
        processed_at: row.opt_int("processed_at")?,
        outcome: row.opt_text("outcome")?,
    })
}

pub(super) const ORDER_COLUMNS: &str =
    "SELECT id, project_id, mode, number, status, version, created_at, data FROM orders";

pub(super) fn order_row(row: &impl Columns) -> StoreResult<OrderRecord> {
    Ok(OrderRecord {
        id: row.text("id")?,
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        mode: mode(row, "mode")?,
        number: row.int("number")?,
        status: row.text("status")?,
        version: row.int("version")?,
        created_at: row.int("created_at")?,
        data: row.text("data")?,
    })
}

/// An operation's columns, for a `SELECT` or a `RETURNING`.
pub(super) const OPERATION_FIELDS: &str = "idempotency_key, project_id, mode, conversation_id, \
     kind, request, status, result, owner, lease_until, attempts, created_at, updated_at";

pub(super) fn operation_row(row: &impl Columns) -> StoreResult<OperationRecord> {
    let status = row.text("status")?;
    Ok(OperationRecord {
        key: row.text("idempotency_key")?,
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        mode: mode(row, "mode")?,
        conversation_id: row
            .opt_text("conversation_id")?
            .map(|c| ConversationId::parse(&c).ok_or_else(|| bad("id", &c)))
            .transpose()?,
        kind: row.text("kind")?,
        request: row.text("request")?,
        status: OperationStatus::parse(&status).ok_or_else(|| bad("operation status", &status))?,
        result: row.opt_text("result")?,
        owner: row.opt_text("owner")?,
        lease_until: row.opt_int("lease_until")?,
        attempts: row.int("attempts")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) const SUBSCRIPTION_COLUMNS: &str = "SELECT id, project_id, mode, account_id, status, version, \
     created_at, data FROM subscriptions";

pub(super) fn subscription_row(row: &impl Columns) -> StoreResult<SubscriptionRecord> {
    Ok(SubscriptionRecord {
        id: row.text("id")?,
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        mode: mode(row, "mode")?,
        account_id: row.text("account_id")?,
        status: row.text("status")?,
        version: row.int("version")?,
        created_at: row.int("created_at")?,
        data: row.text("data")?,
    })
}

pub(super) const PUBLISHABLE_COLUMNS: &str =
    "SELECT project_id, key, allowed_origins, created_at FROM publishable_keys";

pub(super) fn publishable_row(row: &impl Columns) -> StoreResult<PublishableKey> {
    Ok(PublishableKey {
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        key: row.text("key")?,
        allowed_origins: serde_json::from_str(&row.text("allowed_origins")?)
            .map_err(anyhow::Error::new)?,
        created_at: row.int("created_at")?,
    })
}

pub(super) const APP_WEBHOOK_COLUMNS: &str =
    "SELECT project_id, url, secret, created_at, updated_at FROM app_webhooks";

pub(super) fn app_webhook_row(row: &impl Columns) -> StoreResult<AppWebhook> {
    Ok(AppWebhook {
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        url: row.text("url")?,
        secret: row.text("secret")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) const PORTAL_COLUMNS: &str = "SELECT project_id, mode, cancel_mode, proof_secret, \
     account_id, configuration_id, configuration, version, updated_at FROM portal_settings";

pub(super) fn portal_row(row: &impl Columns) -> StoreResult<PortalSettingsRecord> {
    Ok(PortalSettingsRecord {
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        mode: mode(row, "mode")?,
        cancel_mode: row.text("cancel_mode")?,
        proof_secret: row.text("proof_secret")?,
        account_id: row.opt_text("account_id")?,
        configuration_id: row.opt_text("configuration_id")?,
        configuration: row.opt_text("configuration")?,
        version: row.int("version")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) const APP_EVENT_COLUMNS: &str = "SELECT id, project_id, type, payload, seq, created_at, \
     attempts, next_attempt_at, delivered_at, last_error FROM app_events";

pub(super) fn app_event_row(row: &impl Columns) -> StoreResult<AppEventRecord> {
    Ok(AppEventRecord {
        id: row.text("id")?,
        project_id: stored_id(row, "project_id", ProjectId::parse)?,
        event_type: row.text("type")?,
        payload: row.text("payload")?,
        seq: row.int("seq")?,
        created_at: row.int("created_at")?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.opt_int("next_attempt_at")?,
        delivered_at: row.opt_int("delivered_at")?,
        last_error: row.opt_text("last_error")?,
    })
}

pub(super) fn due_app_event_row(row: &impl Columns) -> StoreResult<DueAppEvent> {
    Ok(DueAppEvent {
        event: app_event_row(row)?,
        url: row.text("url")?,
        secret: row.text("secret")?,
    })
}

pub(super) fn staged_row(row: &impl Columns) -> StoreResult<StagedObject> {
    let kind = row.text("kind")?;
    Ok(StagedObject {
        kind: StagedKind::parse(&kind).ok_or_else(|| bad("staged kind", &kind))?,
        data: row.text("data")?,
        fetched_at: row.int("fetched_at")?,
    })
}

pub(super) fn product_row(row: &impl Columns) -> StoreResult<StoredProduct> {
    Ok(StoredProduct {
        product_id: row.text("product_id")?,
        data: ProductState::from_stored(row.text("data")?),
        observed_at: row.int("observed_at")?,
    })
}
