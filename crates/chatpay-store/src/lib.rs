//! All SQL lives here. One [`Store`] interface, two backends (SQLite by default, PostgreSQL for
//! scale-out) running the same SQL text, so the test suite exercises both with one body.
//!
//! The modules, from the value a turn writes down to each backend:
//!
//! - `write`: the write value. [`TurnWrite`] is everything one conversation turn changes (its
//!   move, frames, state and [`ExtraWrite`] rows); each `ExtraWrite` variant's SQL is written
//!   there, once for both backends (`ExtraWrite::statements`).
//! - `sql`: what the backends share. A `Statement` is SQL text (PostgreSQL's `$N` style) and its
//!   arguments as values, which either backend runs; the statements of a turn's move, frames and
//!   ledger event; the `Dialect`, where the two backends' SQL differs. It depends on no backend.
//! - `store`: the [`Store`] implementation, written once as generic code over a `Backend` (the
//!   reads and the writes outside turns, through sqlx's pool); `rows` turns rows into records;
//!   `conn` is where sqlx's generic bounds are written, once.
//! - `writer`: the group-commit queue. Turns (and webhook events for the ledger) go through one
//!   writer per backend: many conversations' turns share one transaction and one fsync, instead
//!   of one fsync per frame.
//! - `sqlite` and `postgres`: each backend's `open` and its writer, the one place that turns a
//!   [`TurnWrite`] into that backend's calls. PostgreSQL's is a task on the pool
//!   (`postgres::writer`, multi-row statements); SQLite's is a thread that owns its own
//!   connection and keeps the write-ahead log small (`sqlite::writer`).
//! - `migrations`: the embedded migrations, shared by both backends.
//!
//! Rows written outside a turn in one transaction (a Stripe write recorded in the `operations`
//! table with the change that asks for it, or ended with the change that applies its answer) go
//! through [`Store::write`], which runs the same [`ExtraWrite`] statements as the writers; the
//! claims on pending operations (`owner`, `lease_until`; `FOR UPDATE SKIP LOCKED` on PostgreSQL)
//! are `Store` methods too.
//!
//! The dependencies point one way: the backends use the shared modules, which know no backend.
//! `docs/architecture.md` ("What a turn stores") has the recipe for adding a row to a turn.

pub mod changes;
mod conn;
mod migrations;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod store;
mod write;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;

use chatpay_core::domain::{
    ConversationId, Mode, Origin, PersonId, ProjectId, TokenId, WorkspaceId,
};

pub use write::{
    ExtraWrite, NewAppEvent, NewOperation, OrderUpdate, SubscriptionUpdate, TurnWrite,
};

/// Opens (creating and migrating) the database at `url`: `sqlite://file.db` or `postgres://…`.
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::open(url).await?))
    } else {
        Err(StoreError::Other(anyhow::anyhow!(
            "unsupported database URL {url:?}: use sqlite://FILE or postgres://…"
        )))
    }
}

/// One serving process per SQLite file: an exclusive OS lock on `FILE.lock` beside the database
/// of a `sqlite://FILE` URL, held as long as the returned file is open (the OS releases it when
/// the process ends, however it ends). `Ok(None)` for other databases (several instances on one
/// PostgreSQL is what PostgreSQL is for). Another process holding it is an error that says so.
/// Only `serve` takes it: `chatpay token create` and other one-shot commands may use the file
/// while a server runs.
pub fn lock_for_serving(url: &str) -> Result<Option<std::fs::File>, String> {
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(None);
    };
    let path = path.split('?').next().unwrap_or(path);
    let lock = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| format!("could not open the lock file {lock}: {e}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another chatpay server is already serving the SQLite database {path} (it holds \
             {lock}). SQLite is for one instance; stop the other one, or run several instances \
             on PostgreSQL (README: Running several instances)."
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("could not lock {lock}: {e}")),
    }
}

/// The few ways storage can fail that callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A concurrent writer got there first (a uniqueness or version check failed).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            _ => StoreError::Other(anyhow::Error::new(e)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(anyhow::Error::new(e))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    pub id: ProjectId,
    /// The workspace that owns it: everyone of the workspace sees it, nobody else.
    pub workspace_id: WorkspaceId,
    /// The credential (API token or session) that created it.
    pub token_id: TokenId,
    pub name: String,
    pub backend: bool,
    pub mode: Mode,
    pub created_at: i64,
}

/// A workspace: it owns projects, people and credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRecord {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: i64,
}

/// What kind of credential a `tokens` row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A named API token (`cpk_…`), made on the command line or in Settings.
    Api,
    /// A person's browser session (the cookie), sliding.
    Session,
    /// A short-lived token a platform minted, for one workspace or one project.
    Scoped,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
            TokenKind::Scoped => "scoped",
        }
    }

    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "api" => Some(TokenKind::Api),
            "session" => Some(TokenKind::Session),
            "scoped" => Some(TokenKind::Scoped),
            _ => None,
        }
    }
}

/// A credential as stored (its secret only as a hash, never read back).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub workspace_id: WorkspaceId,
    pub kind: TokenKind,
    pub name: String,
    /// The person a session belongs to.
    pub person_id: Option<PersonId>,
    /// The one project a scoped token may reach (`None`: the whole workspace).
    pub project_id: Option<ProjectId>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A teammate's invite to store.
#[derive(Debug, Clone)]
pub struct NewInvite<'a> {
    pub id: &'a str,
    pub workspace_id: &'a WorkspaceId,
    pub code_hash: &'a str,
    pub created_by: Option<&'a PersonId>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A credential to store: its secret's hash and what it may reach.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub id: &'a TokenId,
    pub workspace_id: &'a WorkspaceId,
    pub kind: TokenKind,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub person_id: Option<&'a PersonId>,
    pub project_id: Option<&'a ProjectId>,
    pub expires_at: Option<i64>,
}

/// A person who signs in with an email and a password (its Argon2id hash, PHC string).
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRecord {
    pub id: PersonId,
    pub workspace_id: WorkspaceId,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ConversationRecord {
    pub id: ConversationId,
    pub project_id: ProjectId,
    pub last_seq: i64,
    /// The conversation's flow state, as JSON owned by `chat`.
    pub state: String,
}

/// A conversation frame as stored: its number, the client frame that caused it, its JSON
/// (shared, not copied, between the store and the clients it is sent to).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    pub seq: i64,
    pub reply_to: Option<String>,
    pub body: Arc<str>,
}

/// The Stripe account connected to a project in one mode, with the last state we know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub project_id: ProjectId,
    pub mode: Mode,
    pub account_id: String,
    pub origin: Origin,
    /// The account snapshot as JSON owned by `stripe` (see `stripe::AccountSnapshot`).
    pub snapshot: String,
    pub connected_at: i64,
    pub updated_at: i64,
}

/// One Stripe event as received, before and after it is handled.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEventRecord {
    pub id: String,
    pub event_type: String,
    pub account: Option<String>,
    pub livemode: bool,
    pub created: i64,
    pub payload: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub outcome: Option<String>,
}

/// A catalog sync run: where it got to, so that an interrupted run continues there.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRun {
    pub id: String,
    pub phase: RunPhase,
    /// The last object id read in the phase.
    pub cursor: Option<String>,
    pub requests: i64,
    pub started_at: i64,
}

/// Where a sync run is: reading products, then prices, then applying what it read. Stored as
/// `products`, `prices`, `apply` (and `done`, which the store writes when it applies a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Products,
    Prices,
    Apply,
    /// Applied (a run in this phase is finished and never resumed).
    Done,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Products => "products",
            RunPhase::Prices => "prices",
            RunPhase::Apply => "apply",
            RunPhase::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<RunPhase> {
        [
            RunPhase::Products,
            RunPhase::Prices,
            RunPhase::Apply,
            RunPhase::Done,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// What a staged object is. Stored as `product` or `price`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StagedKind {
    Product,
    Price,
}

impl StagedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StagedKind::Product => "product",
            StagedKind::Price => "price",
        }
    }

    pub fn parse(s: &str) -> Option<StagedKind> {
        [StagedKind::Product, StagedKind::Price]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An object a run has read, waiting to be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedObject {
    pub kind: StagedKind,
    pub data: String,
    pub fetched_at: i64,
}

/// A stored catalog product: its JSON (owned by `catalog`), or the mark that it was deleted
/// (kept so that an older read cannot bring it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductState {
    Present(String),
    Deleted,
}

/// How a deleted product is stored (`catalog_products.data` is `NOT NULL`).
const DELETED_PRODUCT: &str = "";

impl ProductState {
    /// The JSON, unless the product was deleted.
    pub fn json(&self) -> Option<&str> {
        match self {
            ProductState::Present(json) => Some(json),
            ProductState::Deleted => None,
        }
    }

    /// The column's text.
    fn stored(&self) -> &str {
        self.json().unwrap_or(DELETED_PRODUCT)
    }

    fn from_stored(data: String) -> ProductState {
        if data == DELETED_PRODUCT {
            ProductState::Deleted
        } else {
            ProductState::Present(data)
        }
    }
}

/// A stored catalog product and when it was read from Stripe.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProduct {
    pub product_id: String,
    pub data: ProductState,
    pub observed_at: i64,
}

/// A project's catalog in one mode.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogRecord {
    /// 0 when there has never been a catalog.
    pub version: i64,
    pub synced_at: Option<i64>,
    pub report: Option<String>,
    pub products: Vec<StoredProduct>,
}

/// A project's app webhook endpoint: where its events go and the secret that signs them.
#[derive(Debug, Clone, PartialEq)]
pub struct AppWebhook {
    pub project_id: ProjectId,
    pub url: String,
    /// `whsec_…`: signs every delivery (`Chatpay-Signature`).
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AppEventRecord {
    pub id: String,
    pub project_id: ProjectId,
    pub event_type: String,
    pub payload: String,
    pub seq: i64,
    pub created_at: i64,
    pub attempts: i64,
    /// `None` once delivered or given up.
    pub next_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

/// An event due for delivery, with where it goes and the secret to sign it with now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueAppEvent {
    pub event: AppEventRecord,
    pub url: String,
    pub secret: String,
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    pub id: String,
    pub project_id: ProjectId,
    pub mode: Mode,
    pub account_id: String,
    pub status: String,
    pub version: i64,
    pub created_at: i64,
    pub data: String,
}

/// Which subscriptions to list: newest first, before a (created_at, id) cursor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscriptionFilter {
    pub status: Option<chatpay_core::billing::SubscriptionStatus>,
    pub customer_email: Option<String>,
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// A project's billing portal settings in one mode, with the configuration last made.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalSettingsRecord {
    pub project_id: ProjectId,
    pub mode: Mode,
    /// `at_period_end` or `immediately`.
    pub cancel_mode: String,
    /// `cps_…`: a builder's server signs customer proofs with it.
    pub proof_secret: String,
    /// The account the configuration was made on.
    pub account_id: Option<String>,
    /// `bpc_…`
    pub configuration_id: Option<String>,
    /// What it was made from (JSON).
    pub configuration: Option<String>,
    pub version: i64,
    pub updated_at: i64,
}

/// A project's publishable key and the web origins allowed to use it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishableKey {
    pub project_id: ProjectId,
    pub key: String,
    pub allowed_origins: Vec<String>,
    pub created_at: i64,
}

/// A new order, as the checkout creates it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub id: String,
    pub project_id: ProjectId,
    pub mode: Mode,
    pub status: String,
    pub session_id: String,
    pub created_at: i64,
    pub data: String,
    pub customer_email: Option<String>,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub id: String,
    pub project_id: ProjectId,
    pub mode: Mode,
    pub number: i64,
    pub status: String,
    pub version: i64,
    pub created_at: i64,
    pub data: String,
}

/// Which orders to list: newest first, before a number (the cursor), in a time range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderFilter {
    pub status: Option<chatpay_core::orders::OrderStatus>,
    /// Milliseconds, inclusive.
    pub since: Option<i64>,
    /// Milliseconds, exclusive.
    pub until: Option<i64>,
    /// Only orders numbered below this.
    pub before: Option<i64>,
    pub limit: i64,
    /// Only this customer's (any case).
    pub customer_email: Option<String>,
}

/// How to find an order from what Stripe names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey<'a> {
    Id(&'a str),
    Session(&'a str),
    PaymentIntent(&'a str),
}

/// Where a stored Stripe write is: `pending` until Stripe's answer is applied, then `done`;
/// `failed` when Stripe refused it or it could not be made after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    Pending,
    Done,
    Failed,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Done => "done",
            OperationStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OperationStatus> {
        [
            OperationStatus::Pending,
            OperationStatus::Done,
            OperationStatus::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A stored Stripe write (the `operations` table; see `ExtraWrite::RecordOperation`).
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    /// The idempotency key Stripe is sent, every time.
    pub key: String,
    pub project_id: ProjectId,
    pub mode: Mode,
    /// The conversation whose turn made it (it re-issues its own calls), if any.
    pub conversation_id: Option<ConversationId>,
    /// What kind of write (`checkout`, `refund`, …), for logs and queries.
    pub kind: String,
    /// What to ask Stripe, as JSON owned by the server.
    pub request: String,
    pub status: OperationStatus,
    /// Stripe's answer (done), its refusal (failed), or the last error while pending.
    pub result: Option<String>,
    /// The instance holding it, until `lease_until` (milliseconds).
    pub owner: Option<String>,
    pub lease_until: Option<i64>,
    /// How many times it has been claimed (each claim is one attempt).
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Outcome of recording a webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is (`sqlite` or `postgres`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
    /// Other instances' commits (PostgreSQL), once: the first caller gets the feed, later ones
    /// `None`; SQLite has none (one instance per file).
    fn take_changes(&self) -> Option<changes::ChangeFeed>;
    /// Whether the change listener's connection is up (`None`: no listener, SQLite).
    fn listener_connected(&self) -> Option<bool>;

    async fn insert_workspace(&self, workspace: &WorkspaceRecord) -> StoreResult<()>;
    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<WorkspaceRecord>>;
    /// The deployment's first workspace (the oldest), if any.
    async fn first_workspace(&self) -> StoreResult<Option<WorkspaceRecord>>;

    async fn insert_token(&self, token: NewToken<'_>) -> StoreResult<()>;
    /// The credential whose secret hashes to `secret_hash`, revoked and expired ones included
    /// (the caller decides).
    async fn token_by_hash(&self, secret_hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Records a use: `last_used_at`, and a session's new `expires_at` when it slides.
    async fn touch_token(
        &self,
        id: &TokenId,
        used_at: i64,
        expires_at: Option<i64>,
    ) -> StoreResult<()>;
    /// The workspace's credentials of `kind`, oldest first, revoked ones included.
    async fn tokens_of(
        &self,
        workspace: &WorkspaceId,
        kind: TokenKind,
    ) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes the workspace's credential `id` (at `now`); false when there is none to revoke.
    /// On PostgreSQL the revocation is also notified ([`changes::Change::Revoked`]) to every
    /// listening process when it commits.
    async fn revoke_token(
        &self,
        workspace: &WorkspaceId,
        id: &TokenId,
        now: i64,
    ) -> StoreResult<bool>;
    /// Revokes every live session of the person (a new password signs everyone out); their ids.
    /// Notified as [`Store::revoke_token`] is.
    async fn revoke_sessions_of(&self, person: &PersonId, now: i64) -> StoreResult<Vec<TokenId>>;
    /// The credential with this id, revoked and expired ones included.
    async fn token(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>>;
    /// The credentials revoked at or after `since` (by whichever process revoked them), with
    /// when, oldest first: a server's sweep for revocations it was not told of.
    async fn revoked_since(&self, since: i64) -> StoreResult<Vec<(TokenId, i64)>>;
    /// Whether any API token exists.
    async fn has_tokens(&self) -> StoreResult<bool>;

    async fn insert_person(&self, person: &PersonRecord) -> StoreResult<()>;
    /// The person with this email (compared as stored: callers lowercase it).
    async fn person_by_email(&self, email: &str) -> StoreResult<Option<PersonRecord>>;
    async fn person(&self, id: &PersonId) -> StoreResult<Option<PersonRecord>>;
    async fn set_password(&self, id: &PersonId, password_hash: &str) -> StoreResult<()>;
    /// Whether anybody has a sign-in yet (a first run has nobody: `serve` prints a link).
    async fn has_people(&self) -> StoreResult<bool>;

    /// Stores a teammate's invite (its code only as a hash).
    async fn insert_invite(&self, invite: &NewInvite<'_>) -> StoreResult<()>;
    /// The workspace of the invite whose code hashes to `code_hash`, if it is unused and not
    /// expired at `now`.
    async fn invite_workspace(&self, code_hash: &str, now: i64)
    -> StoreResult<Option<WorkspaceId>>;
    /// Uses the invite up and makes `person` (of the invite's workspace) in one transaction:
    /// false when the invite is used, expired or of another workspace (nothing is written);
    /// `Conflict` when the email has a sign-in already (the invite stays unused).
    async fn redeem_invite(
        &self,
        code_hash: &str,
        now: i64,
        person: &PersonRecord,
    ) -> StoreResult<bool>;

    async fn insert_project(&self, project: &ProjectRecord) -> StoreResult<()>;
    async fn project(&self, id: &ProjectId) -> StoreResult<Option<ProjectRecord>>;
    async fn projects_of(&self, workspace: &WorkspaceId) -> StoreResult<Vec<ProjectRecord>>;
    async fn rename_project(&self, id: &ProjectId, name: &str) -> StoreResult<()>;

    /// The project's conversation, created (empty) on first use.
    async fn conversation_for(&self, project: &ProjectId) -> StoreResult<ConversationRecord>;
    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<ConversationRecord>>;
    /// Frames with `seq > after`, in order, at most `limit`.
    async fn frames_after(
        &self,
        conversation: &ConversationId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredFrame>>;
    /// The frames a client frame produced, in order.
    async fn frames_replying_to(
        &self,
        conversation: &ConversationId,
        reply_to: &str,
    ) -> StoreResult<Vec<StoredFrame>>;
    /// Every client frame id the conversation has answered.
    async fn answered_ids(&self, conversation: &ConversationId) -> StoreResult<Vec<String>>;
    /// Commits a turn (group-committed with other conversations' turns).
    async fn commit_turn(&self, turn: TurnWrite) -> StoreResult<()>;

    async fn connection(
        &self,
        project: &ProjectId,
        mode: Mode,
    ) -> StoreResult<Option<ConnectionRecord>>;
    async fn connections_for_account(&self, account_id: &str)
    -> StoreResult<Vec<ConnectionRecord>>;

    /// Records an event in the ledger; a second delivery of the same id is a duplicate. Goes
    /// through the group-commit writer (many concurrent deliveries share one commit) and
    /// returns once the event is durable. An event recorded with `processed_at` set (one chatpay
    /// ignores) needs no second write.
    async fn record_event(&self, event: &WebhookEventRecord) -> StoreResult<Recorded>;
    async fn event(&self, id: &str) -> StoreResult<Option<WebhookEventRecord>>;
    /// Events recorded but not yet handled (after a crash), oldest first.
    async fn unprocessed_events(&self, limit: i64) -> StoreResult<Vec<WebhookEventRecord>>;
    /// Marks an event handled outside a conversation turn (ignored, unknown account, …).
    async fn mark_event_processed(&self, id: &str, outcome: &str) -> StoreResult<()>;
    /// Whether the ledger holds an event about `account` in that mode (events are recorded
    /// only once their signature is verified): the go-live checklist's "the live webhook
    /// endpoint has delivered a signed event".
    async fn has_event_for(&self, account: &str, livemode: bool) -> StoreResult<bool>;

    /// The project's unfinished sync run in `mode` (running or failed), resumed; or a new one.
    async fn catalog_open_run(
        &self,
        project: &ProjectId,
        mode: Mode,
        new_id: &str,
    ) -> StoreResult<CatalogRun>;
    /// Stages a page of objects and moves the run's cursor, in one transaction; `NotFound` if
    /// the run was forgotten (its connection ended).
    #[allow(clippy::too_many_arguments)]
    async fn catalog_stage(
        &self,
        run: &str,
        kind: StagedKind,
        items: &[(String, String)],
        fetched_at: i64,
        phase: RunPhase,
        cursor: Option<&str>,
        requests: i64,
    ) -> StoreResult<()>;
    async fn catalog_staged(&self, run: &str) -> StoreResult<Vec<StagedObject>>;
    async fn catalog_fail_run(&self, run: &str, error: &str) -> StoreResult<()>;
    async fn catalog(&self, project: &ProjectId, mode: Mode) -> StoreResult<CatalogRecord>;
    /// Replaces the whole catalog with a run's result, atomically, if it is still at
    /// `expected_version` (else `Conflict`) and the run still runs (else `NotFound`: it was
    /// forgotten with its connection); finishes the run and drops its staging.
    async fn catalog_replace(
        &self,
        project: &ProjectId,
        mode: Mode,
        expected_version: i64,
        products: &[StoredProduct],
        run: &str,
        report: &str,
    ) -> StoreResult<()>;
    async fn publishable_key(&self, project: &ProjectId) -> StoreResult<Option<PublishableKey>>;
    async fn publishable_key_by_key(&self, key: &str) -> StoreResult<Option<PublishableKey>>;
    /// Creates the project's key, or replaces its allowed origins (the key itself stays).
    async fn put_publishable_key(&self, key: &PublishableKey) -> StoreResult<PublishableKey>;

    /// The project's billing portal settings in `mode` (written with
    /// `ExtraWrite::PutPortalSettings` and `ExtraWrite::PortalConfigured`).
    async fn portal_settings(
        &self,
        project: &ProjectId,
        mode: Mode,
    ) -> StoreResult<Option<PortalSettingsRecord>>;

    async fn app_webhook(&self, project: &ProjectId) -> StoreResult<Option<AppWebhook>>;
    /// Creates the project's app webhook endpoint or replaces its URL and secret.
    async fn put_app_webhook(&self, hook: &AppWebhook) -> StoreResult<AppWebhook>;
    /// Removes the endpoint and drops its events not yet delivered; false if there was none.
    async fn delete_app_webhook(&self, project: &ProjectId) -> StoreResult<bool>;
    /// Events due at `now` (ms), at most `limit`: for each project with an endpoint, only its
    /// oldest pending event (a project's events go out in order), if it is due.
    async fn due_app_events(&self, now: i64, limit: i64) -> StoreResult<Vec<DueAppEvent>>;
    /// When the next event `due_app_events` would give is due (ms), if any is pending.
    /// Claims up to `limit` due app events for delivery: each row's next attempt moves to
    /// `lease_until`, so no other instance takes it meanwhile, and an instance that dies while
    /// sending leaves it due again when the lease ends (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    async fn claim_app_events(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DueAppEvent>>;
    async fn next_app_event_at(&self) -> StoreResult<Option<i64>>;
    /// An attempt answered 2xx: delivered, nothing more to send.
    async fn app_event_delivered(&self, id: &str, now: i64) -> StoreResult<()>;
    /// An attempt failed with `error`; the next is due at `next_attempt_at` (`None`: given up).
    async fn app_event_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> StoreResult<()>;
    /// The project's events, oldest first, at most `limit`.
    async fn app_events(&self, project: &ProjectId, limit: i64)
    -> StoreResult<Vec<AppEventRecord>>;

    /// Stores a new order with the next number of its project and mode (from 1001); an order
    /// with the same id already stored is returned as it is (a retried checkout).
    async fn insert_order(&self, order: &NewOrder) -> StoreResult<OrderRecord>;
    async fn order_by_number(
        &self,
        project: &ProjectId,
        mode: Mode,
        number: i64,
    ) -> StoreResult<Option<OrderRecord>>;
    /// An order by its id or a Stripe id it carries (any project: the caller checks).
    async fn order_by(&self, key: OrderKey<'_>) -> StoreResult<Option<OrderRecord>>;
    async fn orders(
        &self,
        project: &ProjectId,
        mode: Mode,
        filter: &OrderFilter,
    ) -> StoreResult<Vec<OrderRecord>>;

    /// A subscription by its Stripe id (any project: the caller checks).
    async fn subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRecord>>;
    async fn subscriptions(
        &self,
        project: &ProjectId,
        mode: Mode,
        filter: &SubscriptionFilter,
    ) -> StoreResult<Vec<SubscriptionRecord>>;

    /// Writes `rows` in one transaction, outside any turn (an operation recorded with the
    /// change that asks for it; an operation's result applied as it is marked done). A
    /// version-checked row that changes nothing fails the whole write with `Conflict`.
    async fn write(&self, rows: Vec<ExtraWrite>) -> StoreResult<()>;
    /// A stored Stripe write by its idempotency key.
    async fn operation(&self, key: &str) -> StoreResult<Option<OperationRecord>>;
    /// Claims pending operations that no live lease holds (none, or expired at `now`), oldest
    /// first, at most `limit`, for `owner` until `lease_until`; each claim counts an attempt.
    /// A conversation's operation is recorded held by the instance whose turn asked for it
    /// (`NewOperation::held`), which renews it while Stripe answers; it comes up here when that
    /// lease lapsed (the instance died), for the claimer to wake the conversation. On
    /// PostgreSQL concurrent claimers skip each other's rows (`FOR UPDATE SKIP LOCKED`), so
    /// each operation goes to one instance.
    async fn claim_operations(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<OperationRecord>>;
    /// Claims one pending operation by key for `owner`, if no other live lease holds it.
    async fn claim_operation(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<OperationRecord>>;
    /// Extends `owner`'s lease; false if it no longer holds the operation (taken over, or
    /// finished).
    async fn renew_operation(&self, key: &str, owner: &str, lease_until: i64) -> StoreResult<bool>;
    /// Gives a pending operation back after a failure that may pass: tried again from
    /// `retry_at` (milliseconds) by whoever claims it then; `error` is kept as its last error.
    async fn retry_operation(
        &self,
        key: &str,
        owner: &str,
        retry_at: i64,
        error: &str,
    ) -> StoreResult<()>;

    /// Stores one product of `account` read at `observed_at`, unless a newer read is stored.
    /// `data` makes the product's new state from the stored one, inside the same transaction. `Err(Conflict)` when the read was stale, `Err(NotFound)`
    /// when the project is no longer connected to `account`.
    #[allow(clippy::too_many_arguments)]
    async fn catalog_put_product(
        &self,
        project: &ProjectId,
        mode: Mode,
        account: &str,
        product_id: &str,
        data: &(dyn for<'p> Fn(Option<&'p ProductState>) -> ProductState + Send + Sync),
        observed_at: i64,
    ) -> StoreResult<ProductPut>;
}

/// What storing one product replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPut {
    pub previous: Option<ProductState>,
    /// Whether the catalog has been synced (before a first sync nobody knows it yet).
    pub synced: bool,
}

pub type DynStore = Arc<dyn Store>;

/// The PostgreSQL server the test suite should use, from `CHATPAY_TEST_POSTGRES` (an admin URL
/// such as `postgres://postgres@127.0.0.1:5432/postgres`; `./scripts/test.sh` starts one and sets
/// it). `Ok(None)` when it is `skip` (a quick local run without PostgreSQL); an error saying what
/// to do when it is unset, so a suite meant to cover both backends cannot pass on one silently.
pub fn test_postgres() -> Result<Option<String>, String> {
    match std::env::var("CHATPAY_TEST_POSTGRES") {
        Ok(v) if v == "skip" => Ok(None),
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ => Err("CHATPAY_TEST_POSTGRES is not set: run ./scripts/test.sh (it starts PostgreSQL), \
                  point it at a server, or set CHATPAY_TEST_POSTGRES=skip to skip the PostgreSQL tests"
            .to_owned()),
    }
}
