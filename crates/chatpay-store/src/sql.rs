//! The SQL, once, for both backends.
//!
//! SQLite accepts PostgreSQL's `$1` placeholders and both speak `ON CONFLICT`, so every statement
//! is written once. `sql_store!` stamps out the same `Store` implementation for each sqlx driver,
//! which keeps each backend's own type checking without a runtime `Any` layer (sqlx's `Any`
//! driver would lose it, and writing each backend by hand would write every query twice). The
//! macro holds no turn commit: `Store::commit_turn` hands the turn to the backend's one writer,
//! `super::pg_writer` or `super::sqlite_writer`, and both run the statements defined below.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use super::{DynStore, StoreError, StoreResult};

/// One embedded migration.
fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(name),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        false,
    )
}

/// Embedded migrations, shared by both backends (their SQL is portable).
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(1, "chat", include_str!("../migrations/0001_chat.sql")),
        migration(2, "stripe", include_str!("../migrations/0002_stripe.sql")),
        migration(3, "catalog", include_str!("../migrations/0003_catalog.sql")),
        migration(
            4,
            "frames_without_reply_index",
            include_str!("../migrations/0004_frames_without_reply_index.sql"),
        ),
        migration(5, "orders", include_str!("../migrations/0005_orders.sql")),
        migration(
            6,
            "publishable_keys",
            include_str!("../migrations/0006_publishable_keys.sql"),
        ),
        migration(
            8,
            "subscriptions",
            include_str!("../migrations/0008_subscriptions.sql"),
        ),
        migration(
            9,
            "mode_events_by_account",
            include_str!("../migrations/0009_mode_events_by_account.sql"),
        ),
        migration(
            10,
            "app_webhooks",
            include_str!("../migrations/0010_app_webhooks.sql"),
        ),
    ])
}

/// Opens (creating and migrating) the database at `url`: `sqlite://file.db` or `postgres://…`.
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::Other(anyhow::anyhow!(
            "unsupported database URL {url:?}: use sqlite://FILE or postgres://…"
        )))
    }
}

/// How a backend numbers parameters in generated multi-row statements. SQLite gets plain `?`:
/// with `$N` names, preparing a statement of a thousand parameters is quadratic in SQLite.
#[derive(Clone, Copy)]
pub(super) enum Params {
    Question,
    Dollar,
}

impl Params {
    /// `rows` groups of `width` parameters, numbered in text order.
    pub(super) fn rows(self, rows: usize, width: usize) -> String {
        let mut out = String::with_capacity(rows * width * 5);
        for r in 0..rows {
            out.push_str(if r > 0 { ",(" } else { "(" });
            for c in 0..width {
                if c > 0 {
                    out.push(',');
                }
                match self {
                    Params::Question => out.push('?'),
                    Params::Dollar => {
                        out.push('$');
                        out.push_str(&(r * width + c + 1).to_string());
                    }
                }
            }
            out.push(')');
        }
        out
    }
}

/// `INSERT INTO frames … VALUES (…),(…)` for `rows` rows.
pub(super) fn frames_insert_sql(params: Params, rows: usize) -> String {
    format!(
        "INSERT INTO frames (conversation_id, seq, reply_to, body, created_at) VALUES {}",
        params.rows(rows, 5)
    )
}

/// `INSERT INTO webhook_events … VALUES (…),(…) ON CONFLICT (id) DO NOTHING RETURNING id` for
/// `rows` events: the ids it returns are the events that were new.
pub(super) fn events_insert_sql(params: Params, rows: usize) -> String {
    format!(
        "INSERT INTO webhook_events \
         (id, event_type, account, livemode, created, payload, received_at, processed_at, outcome) \
         VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
        params.rows(rows, 9)
    )
}

/// Rows per multi-row event insert (9 parameters each).
pub(super) const EVENT_ROWS_PER_INSERT: usize = 100;

/// Rows per multi-row frame insert (5 parameters each, well under both backends' limits).
pub(super) const FRAME_ROWS_PER_INSERT: usize = 200;

/// Turns per multi-row conversation update (5 parameters each).
pub(super) const TURNS_PER_UPDATE: usize = 200;

/// Moves `turns` conversations forward in one statement, each only from the seq its turn started
/// at. `VALUES` columns are `column1…` in both SQLite and PostgreSQL: (id, prev_seq, last_seq,
/// state, time).
pub(super) fn turns_update_sql(params: Params, turns: usize) -> String {
    format!(
        "UPDATE conversations SET last_seq = v.column3, \
         state = COALESCE(v.column4, conversations.state), updated_at = v.column5 \
         FROM (VALUES {}) AS v \
         WHERE conversations.id = v.column1 AND conversations.last_seq = v.column2 \
         RETURNING conversations.id",
        params.rows(turns, 5)
    )
}

/// Every SQLite connection's settings, the pool's and the turn writer's alike (WAL journal mode
/// is set once, by the pool, and stays with the file).
pub(super) const SQLITE_PRAGMAS: &[(&str, &str)] = &[
    // A committed turn survives a crash of the process or the machine.
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    // Read through memory mapping and a 64 MiB cache rather than a read per page.
    ("mmap_size", "268435456"),
    ("cache_size", "-65536"),
    // Statement journals in memory, not in temporary files.
    ("temp_store", "MEMORY"),
    // Checkpoints are the turn writer's (see `sqlite_writer`), never inside a commit; a log
    // that a burst grew past 64 MiB is cut back when it restarts.
    ("wal_autocheckpoint", "0"),
    ("journal_size_limit", "67108864"),
];

/// How long an SQLite connection waits for another's write lock.
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Statements a turn's [`ExtraWrite`](super::ExtraWrite)s run, shared by the two turn writers
/// (`super::pg_writer` through sqlx, `super::sqlite_writer` through rusqlite). Parameters are
/// positional in both.
pub(super) const CONNECTED_ACCOUNT: &str =
    "SELECT account_id FROM stripe_connections WHERE project_id = $1 AND mode = $2";
pub(super) const UPSERT_CONNECTION: &str = "INSERT INTO stripe_connections \
     (project_id, mode, account_id, origin, snapshot, connected_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (project_id, mode) DO UPDATE SET \
     account_id = excluded.account_id, origin = excluded.origin, \
     snapshot = excluded.snapshot, connected_at = excluded.connected_at, \
     updated_at = excluded.updated_at";
pub(super) const DELETE_CONNECTION: &str =
    "DELETE FROM stripe_connections WHERE project_id = $1 AND mode = $2";
/// Records a webhook event unless its id is stored already ($1 id, $2 type, $3 account,
/// $4 livemode, $5 created, $6 payload, $7 received at, $8 processed at, $9 outcome).
pub(super) const RECORD_EVENT: &str = "INSERT INTO webhook_events \
     (id, event_type, account, livemode, created, payload, received_at, processed_at, outcome) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
pub(super) const MARK_EVENT_PROCESSED: &str = "UPDATE webhook_events SET processed_at = $2, outcome = $3 \
     WHERE id = $1 AND processed_at IS NULL";
pub(super) const SET_PROJECT_MODE: &str = "UPDATE projects SET mode = $2 WHERE id = $1";
/// Moves an order to its next version, only from the version its change was computed from
/// ($1 id, $2 expected version, $3 status, $4 payment intent, $5 data, $6 time).
pub(super) const PUT_ORDER: &str = "UPDATE orders SET version = version + 1, status = $3, \
     payment_intent = COALESCE($4, payment_intent), data = $5, updated_at = $6, \
     customer_email = COALESCE($7, customer_email) \
     WHERE id = $1 AND version = $2";
/// A subscription's first version ($1 id, $2 project, $3 mode, $4 account, $5 status, $6 email,
/// $7 data, $8 time); nothing if another read stored it first.
pub(super) const INSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions \
     (id, project_id, mode, account_id, status, customer_email, data, created_at, updated_at, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1) ON CONFLICT (id) DO NOTHING";
/// Moves a subscription to its next version, only from the version its change was computed
/// from ($1 id, $2 expected version, $3 status, $4 email, $5 data, $6 time).
pub(super) const PUT_SUBSCRIPTION: &str = "UPDATE subscriptions SET version = version + 1, \
     status = $3, customer_email = COALESCE($4, customer_email), data = $5, updated_at = $6 \
     WHERE id = $1 AND version = $2";
/// Puts an event in the outbox, only if the project has an app webhook endpoint ($1 id,
/// $2 project, $3 type, $4 payload, $5 seq, $6 time: also when the first attempt is due).
pub(super) const ENQUEUE_APP_EVENT: &str = "INSERT INTO app_events \
     (id, project_id, type, payload, seq, created_at, attempts, next_attempt_at) \
     SELECT $1, project_id, $3, $4, $5, $6, 0, $6 FROM app_webhooks WHERE project_id = $2 \
     ON CONFLICT (id) DO NOTHING";
/// Forgets a project's catalog in a mode ($1, $2), its runs and what they staged.
pub(super) const FORGET_CATALOG: [&str; 4] = [
    "DELETE FROM catalog_staging WHERE run_id IN \
     (SELECT id FROM catalog_runs WHERE project_id = $1 AND mode = $2)",
    "DELETE FROM catalog_runs WHERE project_id = $1 AND mode = $2",
    "DELETE FROM catalog_products WHERE project_id = $1 AND mode = $2",
    "DELETE FROM catalogs WHERE project_id = $1 AND mode = $2",
];

macro_rules! sql_store {
    ($store:ident, $db:ty, $pool:ty, $backend:literal, $params:expr, $begin:literal) => {
        use async_trait::async_trait;
        use sqlx::Row;

        use std::sync::Arc;

        use super::{FRAME_ROWS_PER_INSERT, Params};

        const PARAMS: Params = $params;
        /// How a writing transaction starts. SQLite's is IMMEDIATE: it takes the write lock up
        /// front (waiting for it), so a transaction that reads before it writes cannot fail to
        /// upgrade its lock when another writer got in between.
        const BEGIN: &str = $begin;
        use chatpay_core::domain::{ConversationId, Mode, Origin, ProjectId, TokenId, now_millis};
        use crate::writer::Writer;
        use crate::{
            CatalogRecord, CatalogRun, ConnectionRecord, ConversationRecord, NewOrder, OrderFilter,
            OrderKey, OrderRecord, ProductPut, AppWebhook, AppEventRecord, DueAppEvent, SubscriptionFilter, SubscriptionRecord, ProductState, ProjectRecord, PublishableKey, Recorded, RunPhase, StagedKind,
            StagedObject, Store, StoreError, StoreResult, StoredFrame, StoredProduct, TurnWrite,
            WebhookEventRecord,
        };

        type Db = $db;
        type DbRow = <Db as sqlx::Database>::Row;

        pub struct $store {
            pool: $pool,
            writer: Writer,
        }

        impl $store {
            fn new(pool: $pool, writer: Writer) -> $store {
                $store { pool, writer }
            }
        }

        /// Moves the catalog to its next version (creating it at version 1): from `expected`
        /// exactly (`Conflict` if another change got there first), or from whatever it is
        /// (`None`). `synced` records a sync's time and report.
        async fn bump_catalog(
            tx: &mut sqlx::Transaction<'static, Db>,
            project: &ProjectId,
            mode: Mode,
            expected: Option<i64>,
            synced: Option<(i64, &str)>,
        ) -> StoreResult<()> {
            let (synced_at, report) = match synced {
                Some((t, r)) => (Some(t), Some(r)),
                None => (None, None),
            };
            let Some(expected) = expected else {
                // Any version: one more.
                sqlx::query(
                    "INSERT INTO catalogs (project_id, mode, version, synced_at, report) VALUES ($1, $2, 1, NULL, NULL) \
                     ON CONFLICT (project_id, mode) DO UPDATE SET version = catalogs.version + 1",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .execute(&mut **tx)
                .await?;
                return Ok(());
            };
            let done = if expected == 0 {
                sqlx::query(
                    "INSERT INTO catalogs (project_id, mode, version, synced_at, report) VALUES ($1, $2, 1, $3, $4) \
                     ON CONFLICT (project_id, mode) DO NOTHING",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(synced_at)
                .bind(report)
                .execute(&mut **tx)
                .await?
            } else {
                sqlx::query(
                    "UPDATE catalogs SET version = version + 1, \
                     synced_at = COALESCE($4, synced_at), report = COALESCE($5, report) \
                     WHERE project_id = $1 AND mode = $2 AND version = $3",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(expected)
                .bind(synced_at)
                .bind(report)
                .execute(&mut **tx)
                .await?
            };
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict("the catalog changed meanwhile".to_owned()));
            }
            Ok(())
        }

        async fn insert_conversation(tx: &mut sqlx::Transaction<'static, Db>, project: &ProjectId) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO conversations (id, project_id, last_seq, state, updated_at) \
                 VALUES ($1, $2, 0, '{}', $3) ON CONFLICT (project_id) DO NOTHING",
            )
            .bind(ConversationId::generate().as_str())
            .bind(project.as_str())
            .bind(now_millis())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }


        fn parse_mode(s: &str) -> Result<Mode, StoreError> {
            Mode::parse(s).ok_or_else(|| StoreError::Other(anyhow::anyhow!("bad mode {s:?} in the database")))
        }

        fn parse_phase(s: &str) -> Result<RunPhase, StoreError> {
            RunPhase::parse(s).ok_or_else(|| StoreError::Other(anyhow::anyhow!("bad run phase {s:?} in the database")))
        }

        fn parse_kind(s: &str) -> Result<StagedKind, StoreError> {
            StagedKind::parse(s).ok_or_else(|| StoreError::Other(anyhow::anyhow!("bad staged kind {s:?} in the database")))
        }

        fn stored_id<T>(parse: fn(&str) -> Option<T>, s: &str) -> Result<T, StoreError> {
            parse(s).ok_or_else(|| StoreError::Other(anyhow::anyhow!("bad id {s:?} in the database")))
        }

        const APP_EVENT_COLUMNS: &str = "SELECT id, project_id, type, payload, seq, created_at, attempts, \
             next_attempt_at, delivered_at, last_error FROM app_events";

        fn app_event_row(row: &DbRow) -> StoreResult<AppEventRecord> {
            Ok(AppEventRecord {
                id: row.try_get("id")?,
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                event_type: row.try_get("type")?,
                payload: row.try_get("payload")?,
                seq: row.try_get("seq")?,
                created_at: row.try_get("created_at")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                delivered_at: row.try_get("delivered_at")?,
                last_error: row.try_get("last_error")?,
            })
        }

        fn app_webhook_row(row: &DbRow) -> StoreResult<AppWebhook> {
            Ok(AppWebhook {
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                url: row.try_get("url")?,
                secret: row.try_get("secret")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn project_row(row: &DbRow) -> StoreResult<ProjectRecord> {
            Ok(ProjectRecord {
                id: stored_id(ProjectId::parse, row.try_get("id")?)?,
                token_id: stored_id(TokenId::parse, row.try_get("token_id")?)?,
                name: row.try_get("name")?,
                backend: row.try_get("backend")?,
                mode: parse_mode(row.try_get("mode")?)?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn conversation_row(row: &DbRow) -> StoreResult<ConversationRecord> {
            Ok(ConversationRecord {
                id: stored_id(ConversationId::parse, row.try_get("id")?)?,
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                last_seq: row.try_get("last_seq")?,
                state: row.try_get("state")?,
            })
        }

        fn frame_row(row: &DbRow) -> StoreResult<StoredFrame> {
            Ok(StoredFrame {
                seq: row.try_get("seq")?,
                reply_to: row.try_get("reply_to")?,
                body: Arc::from(row.try_get::<&str, _>("body")?),
            })
        }

        fn connection_row(row: &DbRow) -> StoreResult<ConnectionRecord> {
            Ok(ConnectionRecord {
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                mode: parse_mode(row.try_get("mode")?)?,
                account_id: row.try_get("account_id")?,
                origin: {
                    let o: &str = row.try_get("origin")?;
                    Origin::parse(o).ok_or_else(|| StoreError::Other(anyhow::anyhow!("bad origin {o:?} in the database")))?
                },
                snapshot: row.try_get("snapshot")?,
                connected_at: row.try_get("connected_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn event_row(row: &DbRow) -> StoreResult<WebhookEventRecord> {
            Ok(WebhookEventRecord {
                id: row.try_get("id")?,
                event_type: row.try_get("event_type")?,
                account: row.try_get("account")?,
                livemode: row.try_get("livemode")?,
                created: row.try_get("created")?,
                payload: row.try_get("payload")?,
                received_at: row.try_get("received_at")?,
                processed_at: row.try_get("processed_at")?,
                outcome: row.try_get("outcome")?,
            })
        }

        fn order_row(row: &DbRow) -> StoreResult<OrderRecord> {
            Ok(OrderRecord {
                id: row.try_get("id")?,
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                mode: parse_mode(row.try_get("mode")?)?,
                number: row.try_get("number")?,
                status: row.try_get("status")?,
                version: row.try_get("version")?,
                created_at: row.try_get("created_at")?,
                data: row.try_get("data")?,
            })
        }

        fn publishable_row(row: &DbRow) -> StoreResult<PublishableKey> {
            let origins: String = row.try_get("allowed_origins")?;
            Ok(PublishableKey {
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                key: row.try_get("key")?,
                allowed_origins: serde_json::from_str(&origins).map_err(anyhow::Error::new)?,
                created_at: row.try_get("created_at")?,
            })
        }

        const PUBLISHABLE_COLUMNS: &str =
            "SELECT project_id, key, allowed_origins, created_at FROM publishable_keys";

        const ORDER_COLUMNS: &str = "SELECT id, project_id, mode, number, status, version, \
            created_at, data FROM orders";
        const SUBSCRIPTION_COLUMNS: &str = "SELECT id, project_id, mode, account_id, status, \
            version, created_at, data FROM subscriptions";

        fn subscription_row(row: &DbRow) -> StoreResult<SubscriptionRecord> {
            Ok(SubscriptionRecord {
                id: row.try_get("id")?,
                project_id: stored_id(ProjectId::parse, row.try_get("project_id")?)?,
                mode: parse_mode(row.try_get("mode")?)?,
                account_id: row.try_get("account_id")?,
                status: row.try_get("status")?,
                version: row.try_get("version")?,
                created_at: row.try_get("created_at")?,
                data: row.try_get("data")?,
            })
        }

        const PROJECT_COLUMNS: &str = "SELECT id, token_id, name, backend, mode, created_at FROM projects";
        const CONVERSATION_COLUMNS: &str = "SELECT id, project_id, last_seq, state FROM conversations";
        const CONNECTION_COLUMNS: &str = "SELECT project_id, mode, account_id, origin, snapshot, \
            connected_at, updated_at FROM stripe_connections";
        const EVENT_COLUMNS: &str = "SELECT id, event_type, account, livemode, created, payload, \
            received_at, processed_at, outcome FROM webhook_events";

        fn select(columns: &'static str, rest: &'static str) -> sqlx::AssertSqlSafe<String> {
            sqlx::AssertSqlSafe(format!("{columns} {rest}"))
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_token(&self, id: &TokenId, name: &str, secret_hash: &str) -> StoreResult<()> {
                sqlx::query("INSERT INTO tokens (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id.as_str())
                    .bind(name)
                    .bind(secret_hash)
                    .bind(now_millis())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn token_by_hash(&self, secret_hash: &str) -> StoreResult<Option<TokenId>> {
                let row = sqlx::query("SELECT id FROM tokens WHERE secret_hash = $1")
                    .bind(secret_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| stored_id(TokenId::parse, r.try_get("id")?)).transpose()
            }

            async fn has_tokens(&self) -> StoreResult<bool> {
                let row = sqlx::query("SELECT id FROM tokens LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn insert_project(&self, p: &ProjectRecord) -> StoreResult<()> {
                // The project's conversation is created with it, so that joining a conversation
                // only ever reads.
                let mut tx = self.pool.begin_with(BEGIN).await?;
                sqlx::query(
                    "INSERT INTO projects (id, token_id, name, backend, mode, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(p.id.as_str())
                .bind(p.token_id.as_str())
                .bind(&p.name)
                .bind(p.backend)
                .bind(p.mode.as_str())
                .bind(p.created_at)
                .execute(&mut *tx)
                .await?;
                insert_conversation(&mut tx, &p.id).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn project(&self, id: &ProjectId) -> StoreResult<Option<ProjectRecord>> {
                sqlx::query(select(PROJECT_COLUMNS, "WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(project_row)
                    .transpose()
            }

            async fn projects_of(&self, token: &TokenId) -> StoreResult<Vec<ProjectRecord>> {
                sqlx::query(select(PROJECT_COLUMNS, "WHERE token_id = $1 ORDER BY created_at, id"))
                    .bind(token.as_str())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(project_row)
                    .collect()
            }

            async fn rename_project(&self, id: &ProjectId, name: &str) -> StoreResult<()> {
                let done = sqlx::query("UPDATE projects SET name = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn conversation_for(&self, project: &ProjectId) -> StoreResult<ConversationRecord> {
                let find = || {
                    sqlx::query(select(CONVERSATION_COLUMNS, "WHERE project_id = $1")).bind(project.as_str())
                };
                if let Some(row) = find().fetch_optional(&self.pool).await? {
                    return conversation_row(&row);
                }
                // Projects made before conversations were created with them.
                let mut tx = self.pool.begin_with(BEGIN).await?;
                insert_conversation(&mut tx, project).await?;
                tx.commit().await?;
                conversation_row(&find().fetch_one(&self.pool).await?)
            }

            async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<ConversationRecord>> {
                sqlx::query(select(CONVERSATION_COLUMNS, "WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(conversation_row)
                    .transpose()
            }

            async fn frames_after(
                &self,
                conversation: &ConversationId,
                after: i64,
                limit: i64,
            ) -> StoreResult<Vec<StoredFrame>> {
                sqlx::query(
                    "SELECT seq, reply_to, body FROM frames \
                     WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(conversation.as_str())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(frame_row)
                .collect()
            }

            async fn frames_replying_to(
                &self,
                conversation: &ConversationId,
                reply_to: &str,
            ) -> StoreResult<Vec<StoredFrame>> {
                sqlx::query(
                    "SELECT seq, reply_to, body FROM frames \
                     WHERE conversation_id = $1 AND reply_to = $2 ORDER BY seq",
                )
                .bind(conversation.as_str())
                .bind(reply_to)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(frame_row)
                .collect()
            }

            async fn answered_ids(&self, conversation: &ConversationId) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT DISTINCT reply_to FROM frames \
                     WHERE conversation_id = $1 AND reply_to IS NOT NULL",
                )
                .bind(conversation.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>("reply_to").map_err(StoreError::from))
                    .collect()
            }

            async fn commit_turn(&self, turn: TurnWrite) -> StoreResult<()> {
                self.writer.turn(turn).await
            }

            async fn connection(&self, project: &ProjectId, mode: Mode) -> StoreResult<Option<ConnectionRecord>> {
                sqlx::query(select(CONNECTION_COLUMNS, "WHERE project_id = $1 AND mode = $2"))
                    .bind(project.as_str())
                    .bind(mode.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(connection_row)
                    .transpose()
            }

            async fn connections_for_account(&self, account_id: &str) -> StoreResult<Vec<ConnectionRecord>> {
                sqlx::query(select(CONNECTION_COLUMNS, "WHERE account_id = $1 ORDER BY project_id, mode"))
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(connection_row)
                    .collect()
            }

            async fn record_event(&self, e: &WebhookEventRecord) -> StoreResult<Recorded> {
                self.writer.record(e.clone()).await
            }

            async fn event(&self, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
                sqlx::query(select(EVENT_COLUMNS, "WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(event_row)
                    .transpose()
            }

            async fn unprocessed_events(&self, limit: i64) -> StoreResult<Vec<WebhookEventRecord>> {
                sqlx::query(select(EVENT_COLUMNS, "WHERE processed_at IS NULL ORDER BY received_at, id LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(event_row)
                    .collect()
            }

            async fn mark_event_processed(&self, id: &str, outcome: &str) -> StoreResult<()> {
                sqlx::query(super::MARK_EVENT_PROCESSED)
                    .bind(id)
                    .bind(now_millis())
                    .bind(outcome)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn has_event_for(&self, account: &str, livemode: bool) -> StoreResult<bool> {
                let row = sqlx::query(
                    "SELECT 1 AS found FROM webhook_events WHERE account = $1 AND livemode = $2 LIMIT 1",
                )
                .bind(account)
                .bind(livemode)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn insert_order(&self, o: &NewOrder) -> StoreResult<OrderRecord> {
                // Two checkouts at once may pick the same number; the loser picks again.
                for _ in 0..5 {
                    let mut tx = self.pool.begin_with(BEGIN).await?;
                    if let Some(row) = sqlx::query(select(ORDER_COLUMNS, "WHERE id = $1"))
                        .bind(&o.id)
                        .fetch_optional(&mut *tx)
                        .await?
                    {
                        return order_row(&row);
                    }
                    let number: i64 = sqlx::query(
                        "SELECT COALESCE(MAX(number), 1000) + 1 AS next FROM orders \
                         WHERE project_id = $1 AND mode = $2",
                    )
                    .bind(o.project_id.as_str())
                    .bind(o.mode.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("next")?;
                    let inserted = sqlx::query(
                        "INSERT INTO orders (id, project_id, mode, number, status, session_id, \
                         payment_intent, created_at, updated_at, version, data, customer_email) \
                         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, 1, $8, $9)",
                    )
                    .bind(&o.id)
                    .bind(o.project_id.as_str())
                    .bind(o.mode.as_str())
                    .bind(number)
                    .bind(&o.status)
                    .bind(&o.session_id)
                    .bind(o.created_at)
                    .bind(&o.data)
                    .bind(o.customer_email.as_deref().map(str::to_lowercase))
                    .execute(&mut *tx)
                    .await;
                    match inserted.map_err(StoreError::from) {
                        Ok(_) => {
                            tx.commit().await?;
                            return Ok(OrderRecord {
                                id: o.id.clone(),
                                project_id: o.project_id.clone(),
                                mode: o.mode,
                                number,
                                status: o.status.clone(),
                                version: 1,
                                created_at: o.created_at,
                                data: o.data.clone(),
                            });
                        }
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(StoreError::Conflict("could not number the order; retry".to_owned()))
            }

            async fn publishable_key(&self, project: &ProjectId) -> StoreResult<Option<PublishableKey>> {
                sqlx::query(select(PUBLISHABLE_COLUMNS, "WHERE project_id = $1"))
                    .bind(project.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(publishable_row)
                    .transpose()
            }

            async fn publishable_key_by_key(&self, key: &str) -> StoreResult<Option<PublishableKey>> {
                sqlx::query(select(PUBLISHABLE_COLUMNS, "WHERE key = $1"))
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(publishable_row)
                    .transpose()
            }

            async fn put_publishable_key(&self, k: &PublishableKey) -> StoreResult<PublishableKey> {
                sqlx::query(
                    "INSERT INTO publishable_keys (project_id, key, allowed_origins, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id) DO UPDATE SET \
                     allowed_origins = excluded.allowed_origins",
                )
                .bind(k.project_id.as_str())
                .bind(&k.key)
                .bind(serde_json::to_string(&k.allowed_origins).map_err(anyhow::Error::new)?)
                .bind(k.created_at)
                .execute(&self.pool)
                .await?;
                self.publishable_key(&k.project_id)
                    .await?
                    .ok_or(StoreError::NotFound)
            }

            async fn app_webhook(&self, project: &ProjectId) -> StoreResult<Option<AppWebhook>> {
                sqlx::query(
                    "SELECT project_id, url, secret, created_at, updated_at FROM app_webhooks WHERE project_id = $1",
                )
                .bind(project.as_str())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(app_webhook_row)
                .transpose()
            }

            async fn put_app_webhook(&self, h: &AppWebhook) -> StoreResult<AppWebhook> {
                sqlx::query(
                    "INSERT INTO app_webhooks (project_id, url, secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id) DO UPDATE SET \
                     url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at",
                )
                .bind(h.project_id.as_str())
                .bind(&h.url)
                .bind(&h.secret)
                .bind(h.created_at)
                .bind(h.updated_at)
                .execute(&self.pool)
                .await?;
                self.app_webhook(&h.project_id).await?.ok_or(StoreError::NotFound)
            }

            async fn delete_app_webhook(&self, project: &ProjectId) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(BEGIN).await?;
                sqlx::query("DELETE FROM app_events WHERE project_id = $1 AND delivered_at IS NULL")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?;
                let gone = sqlx::query("DELETE FROM app_webhooks WHERE project_id = $1")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(gone > 0)
            }

            async fn due_app_events(&self, now: i64, limit: i64) -> StoreResult<Vec<DueAppEvent>> {
                let rows = sqlx::query(
                    "SELECT e.id, e.project_id, e.type, e.payload, e.seq, e.created_at, e.attempts, \
                     e.next_attempt_at, e.delivered_at, e.last_error, w.url, w.secret \
                     FROM app_events e JOIN app_webhooks w ON w.project_id = e.project_id \
                     WHERE e.next_attempt_at IS NOT NULL AND e.next_attempt_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM app_events f WHERE f.project_id = e.project_id \
                     AND f.next_attempt_at IS NOT NULL AND f.seq < e.seq) \
                     ORDER BY e.next_attempt_at, e.seq LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DueAppEvent {
                            event: app_event_row(r)?,
                            url: r.try_get("url")?,
                            secret: r.try_get("secret")?,
                        })
                    })
                    .collect()
            }

            async fn next_app_event_at(&self) -> StoreResult<Option<i64>> {
                let row = sqlx::query(
                    "SELECT MIN(e.next_attempt_at) AS next FROM app_events e \
                     JOIN app_webhooks w ON w.project_id = e.project_id \
                     WHERE e.next_attempt_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM app_events f WHERE f.project_id = e.project_id \
                     AND f.next_attempt_at IS NOT NULL AND f.seq < e.seq)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("next")?)
            }

            async fn app_event_delivered(&self, id: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE app_events SET attempts = attempts + 1, delivered_at = $2, \
                     next_attempt_at = NULL, last_error = NULL WHERE id = $1 AND delivered_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn app_event_failed(&self, id: &str, error: &str, next_attempt_at: Option<i64>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE app_events SET attempts = attempts + 1, last_error = $2, \
                     next_attempt_at = $3 WHERE id = $1 AND delivered_at IS NULL",
                )
                .bind(id)
                .bind(error)
                .bind(next_attempt_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn app_events(&self, project: &ProjectId, limit: i64) -> StoreResult<Vec<AppEventRecord>> {
                sqlx::query(select(APP_EVENT_COLUMNS, "WHERE project_id = $1 ORDER BY seq LIMIT $2"))
                    .bind(project.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(app_event_row)
                    .collect()
            }

            async fn order_by_number(&self, project: &ProjectId, mode: Mode, number: i64) -> StoreResult<Option<OrderRecord>> {
                sqlx::query(select(ORDER_COLUMNS, "WHERE project_id = $1 AND mode = $2 AND number = $3"))
                    .bind(project.as_str())
                    .bind(mode.as_str())
                    .bind(number)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(order_row)
                    .transpose()
            }

            async fn order_by(&self, key: OrderKey<'_>) -> StoreResult<Option<OrderRecord>> {
                let (rest, value) = match key {
                    OrderKey::Id(v) => ("WHERE id = $1", v),
                    OrderKey::Session(v) => ("WHERE session_id = $1", v),
                    OrderKey::PaymentIntent(v) => ("WHERE payment_intent = $1", v),
                };
                sqlx::query(select(ORDER_COLUMNS, rest))
                    .bind(value)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(order_row)
                    .transpose()
            }

            async fn orders(&self, project: &ProjectId, mode: Mode, f: &OrderFilter) -> StoreResult<Vec<OrderRecord>> {
                sqlx::query(select(
                    ORDER_COLUMNS,
                    "WHERE project_id = $1 AND mode = $2 AND ($3 IS NULL OR status = $3) \
                     AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
                     AND ($6 IS NULL OR number < $6) AND ($8 IS NULL OR customer_email = $8) \
                     ORDER BY number DESC LIMIT $7",
                ))
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.since)
                .bind(f.until)
                .bind(f.before)
                .bind(f.limit.clamp(1, 1000))
                .bind(f.customer_email.as_deref().map(str::to_lowercase))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(order_row)
                .collect()
            }

            async fn subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRecord>> {
                sqlx::query(select(SUBSCRIPTION_COLUMNS, "WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(subscription_row)
                    .transpose()
            }

            async fn subscriptions(&self, project: &ProjectId, mode: Mode, f: &SubscriptionFilter) -> StoreResult<Vec<SubscriptionRecord>> {
                sqlx::query(select(
                    SUBSCRIPTION_COLUMNS,
                    "WHERE project_id = $1 AND mode = $2 AND ($3 IS NULL OR status = $3) \
                     AND ($4 IS NULL OR customer_email = $4) \
                     AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) \
                     ORDER BY created_at DESC, id DESC LIMIT $7",
                ))
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.customer_email.as_deref().map(str::to_lowercase))
                .bind(f.before.as_ref().map(|b| b.0))
                .bind(f.before.as_ref().map(|b| b.1.as_str()).unwrap_or(""))
                .bind(f.limit.clamp(1, 1000))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(subscription_row)
                .collect()
            }

            async fn catalog_open_run(&self, project: &ProjectId, mode: Mode, new_id: &str) -> StoreResult<CatalogRun> {
                let open = sqlx::query(
                    "SELECT id, phase, cursor, requests, started_at FROM catalog_runs \
                     WHERE project_id = $1 AND mode = $2 AND status <> 'done' \
                     ORDER BY started_at DESC LIMIT 1",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = open {
                    let run = CatalogRun {
                        id: row.try_get("id")?,
                        phase: parse_phase(row.try_get("phase")?)?,
                        cursor: row.try_get("cursor")?,
                        requests: row.try_get("requests")?,
                        started_at: row.try_get("started_at")?,
                    };
                    sqlx::query("UPDATE catalog_runs SET status = 'running', error = NULL WHERE id = $1")
                        .bind(&run.id)
                        .execute(&self.pool)
                        .await?;
                    return Ok(run);
                }
                let now = now_millis();
                sqlx::query(
                    "INSERT INTO catalog_runs (id, project_id, mode, status, phase, cursor, requests, started_at) \
                     VALUES ($1, $2, $3, 'running', $4, NULL, 0, $5)",
                )
                .bind(new_id)
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(RunPhase::Products.as_str())
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(CatalogRun {
                    id: new_id.to_owned(),
                    phase: RunPhase::Products,
                    cursor: None,
                    requests: 0,
                    started_at: now,
                })
            }

            async fn catalog_stage(
                &self,
                run: &str,
                kind: StagedKind,
                items: &[(String, String)],
                fetched_at: i64,
                phase: RunPhase,
                cursor: Option<&str>,
                requests: i64,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(BEGIN).await?;
                let moved = sqlx::query("UPDATE catalog_runs SET phase = $2, cursor = $3, requests = $4 WHERE id = $1")
                    .bind(run)
                    .bind(phase.as_str())
                    .bind(cursor)
                    .bind(requests)
                    .execute(&mut *tx)
                    .await?;
                if moved.rows_affected() == 0 {
                    // Forgotten with its connection.
                    return Err(StoreError::NotFound);
                }
                for chunk in items.chunks(FRAME_ROWS_PER_INSERT) {
                    let sql = format!(
                        "INSERT INTO catalog_staging (run_id, kind, object_id, data, fetched_at) VALUES {} \
                         ON CONFLICT (run_id, kind, object_id) DO UPDATE SET \
                         data = excluded.data, fetched_at = excluded.fetched_at",
                        PARAMS.rows(chunk.len(), 5)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (id, data) in chunk {
                        q = q.bind(run).bind(kind.as_str()).bind(id.as_str()).bind(data.as_str()).bind(fetched_at);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn catalog_staged(&self, run: &str) -> StoreResult<Vec<StagedObject>> {
                let rows = sqlx::query("SELECT kind, data, fetched_at FROM catalog_staging WHERE run_id = $1 ORDER BY kind, object_id")
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(StagedObject {
                            kind: parse_kind(r.try_get("kind")?)?,
                            data: r.try_get("data")?,
                            fetched_at: r.try_get("fetched_at")?,
                        })
                    })
                    .collect()
            }

            async fn catalog_fail_run(&self, run: &str, error: &str) -> StoreResult<()> {
                sqlx::query("UPDATE catalog_runs SET status = 'failed', error = $2 WHERE id = $1")
                    .bind(run)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn catalog(&self, project: &ProjectId, mode: Mode) -> StoreResult<CatalogRecord> {
                let head = sqlx::query("SELECT version, synced_at, report FROM catalogs WHERE project_id = $1 AND mode = $2")
                    .bind(project.as_str())
                    .bind(mode.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(head) = head else {
                    return Ok(CatalogRecord::default());
                };
                let rows = sqlx::query(
                    "SELECT product_id, data, observed_at FROM catalog_products \
                     WHERE project_id = $1 AND mode = $2 ORDER BY product_id",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(CatalogRecord {
                    version: head.try_get("version")?,
                    synced_at: head.try_get("synced_at")?,
                    report: head.try_get("report")?,
                    products: rows
                        .iter()
                        .map(|r| {
                            Ok(StoredProduct {
                                product_id: r.try_get("product_id")?,
                                data: ProductState::from_stored(r.try_get("data")?),
                                observed_at: r.try_get("observed_at")?,
                            })
                        })
                        .collect::<StoreResult<Vec<_>>>()?,
                })
            }

            async fn catalog_replace(
                &self,
                project: &ProjectId,
                mode: Mode,
                expected_version: i64,
                products: &[StoredProduct],
                run: &str,
                report: &str,
            ) -> StoreResult<()> {
                let now = now_millis();
                let mut tx = self.pool.begin_with(BEGIN).await?;
                let finished = sqlx::query(
                    "UPDATE catalog_runs SET status = 'done', phase = 'done', finished_at = $2 \
                     WHERE id = $1 AND status = 'running'",
                )
                .bind(run)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if finished.rows_affected() == 0 {
                    // Forgotten with its connection.
                    return Err(StoreError::NotFound);
                }
                bump_catalog(&mut tx, project, mode, Some(expected_version), Some((now, report))).await?;
                sqlx::query("DELETE FROM catalog_products WHERE project_id = $1 AND mode = $2")
                    .bind(project.as_str())
                    .bind(mode.as_str())
                    .execute(&mut *tx)
                    .await?;
                for chunk in products.chunks(FRAME_ROWS_PER_INSERT) {
                    let sql = format!(
                        "INSERT INTO catalog_products (project_id, mode, product_id, data, observed_at) VALUES {}",
                        PARAMS.rows(chunk.len(), 5)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for p in chunk {
                        q = q
                            .bind(project.as_str())
                            .bind(mode.as_str())
                            .bind(p.product_id.as_str())
                            .bind(p.data.stored())
                            .bind(p.observed_at);
                    }
                    q.execute(&mut *tx).await?;
                }
                sqlx::query("DELETE FROM catalog_staging WHERE run_id = $1")
                    .bind(run)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn catalog_put_product(
                &self,
                project: &ProjectId,
                mode: Mode,
                account: &str,
                product_id: &str,
                data: &(dyn for<'p> Fn(Option<&'p ProductState>) -> ProductState + Send + Sync),
                observed_at: i64,
            ) -> StoreResult<ProductPut> {
                let mut tx = self.pool.begin_with(BEGIN).await?;
                // First, as every catalog write does: this takes the catalog's row lock, so on
                // PostgreSQL a sync being applied (or a disconnect) finishes before the reads
                // below, which then see it.
                bump_catalog(&mut tx, project, mode, None, None).await?;
                let connected = sqlx::query(
                    "SELECT 1 AS one FROM stripe_connections WHERE project_id = $1 AND mode = $2 AND account_id = $3",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(account)
                .fetch_optional(&mut *tx)
                .await?;
                if connected.is_none() {
                    return Err(StoreError::NotFound);
                }
                let previous: Option<ProductState> = sqlx::query(
                    "SELECT data FROM catalog_products WHERE project_id = $1 AND mode = $2 AND product_id = $3",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(product_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("data").map(ProductState::from_stored))
                .transpose()?;
                // Applies only over an older read.
                let applied = sqlx::query(
                    "INSERT INTO catalog_products (project_id, mode, product_id, data, observed_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, mode, product_id) DO UPDATE \
                     SET data = excluded.data, observed_at = excluded.observed_at \
                     WHERE catalog_products.observed_at < excluded.observed_at \
                     RETURNING product_id",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(product_id)
                .bind(data(previous.as_ref()).stored())
                .bind(observed_at)
                .fetch_optional(&mut *tx)
                .await?;
                if applied.is_none() {
                    return Err(StoreError::Conflict(format!("{product_id} has a newer read")));
                }
                let synced: Option<i64> = sqlx::query(
                    "SELECT synced_at FROM catalogs WHERE project_id = $1 AND mode = $2",
                )
                .bind(project.as_str())
                .bind(mode.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("synced_at")?;
                tx.commit().await?;
                Ok(ProductPut {
                    previous,
                    synced: synced.is_some(),
                })
            }
        }
    };
}

mod sqlite {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    sql_store!(
        SqliteStore,
        sqlx::Sqlite,
        sqlx::SqlitePool,
        "sqlite",
        Params::Question,
        "BEGIN IMMEDIATE"
    );

    impl SqliteStore {
        /// WAL journal with `synchronous = FULL`: a committed turn survives a crash of the
        /// process or the machine. Readers never wait for the writer.
        pub async fn open(url: &str) -> StoreResult<SqliteStore> {
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "an in-memory SQLite database cannot be used: turns must survive a restart; use sqlite://FILE"
                )));
            }
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Other(anyhow::anyhow!("bad SQLite URL {url:?}: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let options = SQLITE_PRAGMAS
                .iter()
                .fold(options, |o, &(name, value)| o.pragma(name, value));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options.clone())
                .await?;
            migrator().run(&pool).await?;
            let writer = crate::sqlite_writer::spawn(options.get_filename()).await?;
            Ok(SqliteStore::new(pool, writer))
        }
    }
}

mod postgres {
    use super::*;
    use sqlx::postgres::PgPoolOptions;

    sql_store!(
        PgStore,
        sqlx::Postgres,
        sqlx::PgPool,
        "postgres",
        Params::Dollar,
        "BEGIN"
    );

    impl PgStore {
        pub async fn open(url: &str) -> StoreResult<PgStore> {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            migrator().run(&pool).await?;
            let writer = crate::pg_writer::spawn(pool.clone());
            Ok(PgStore::new(pool, writer))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn multi_row_statements_number_parameters_in_text_order() {
        use super::{Params, frames_insert_sql, turns_update_sql};
        assert_eq!(
            turns_update_sql(Params::Dollar, 2),
            "UPDATE conversations SET last_seq = v.column3, \
         state = COALESCE(v.column4, conversations.state), updated_at = v.column5 \
             FROM (VALUES ($1,$2,$3,$4,$5),($6,$7,$8,$9,$10)) AS v \
             WHERE conversations.id = v.column1 AND conversations.last_seq = v.column2 \
             RETURNING conversations.id"
        );
        assert_eq!(
            frames_insert_sql(Params::Question, 2),
            "INSERT INTO frames (conversation_id, seq, reply_to, body, created_at) VALUES \
             (?,?,?,?,?),(?,?,?,?,?)"
        );
    }
}
