//! The [`Store`], written once for both backends: reads and the writes outside turns through a
//! sqlx pool, as generic code over a [`Backend`]; turns and ledger events go to the backend's
//! writer.
//!
//! Both backends run the same SQL text (SQLite accepts PostgreSQL's `$1` placeholders through
//! sqlx, and both speak `ON CONFLICT … DO`); where they differ, the [`Backend`] says how (the
//! transaction's `BEGIN`, the placeholders of generated multi-row statements). Each method builds
//! its [`Statement`]s and runs them on a pooled connection or a transaction (`super::conn`);
//! the rows become records in `super::rows`.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use super::conn::{Backend, Columns, Conn};
use super::rows::{
    APP_EVENT_COLUMNS, APP_WEBHOOK_COLUMNS, CONNECTION_COLUMNS, CONVERSATION_COLUMNS,
    EVENT_COLUMNS, OPERATION_FIELDS, ORDER_COLUMNS, PERSON_COLUMNS, PORTAL_COLUMNS,
    PROJECT_COLUMNS, PUBLISHABLE_COLUMNS, SUBSCRIPTION_COLUMNS, TOKEN_COLUMNS, WORKSPACE_COLUMNS,
    app_event_row, app_webhook_row, bad, connection_row, conversation_row, due_app_event_row,
    event_row, frame_row, operation_row, order_row, person_row, portal_row, product_row,
    project_row, publishable_row, select, staged_row, stored_id, subscription_row, token_row,
    workspace_row,
};
use super::sql::{Dialect, ROWS_PER_INSERT, Statement, sql};
use super::write::mark_event_processed;
use super::writer::Writer;
use super::{
    AppEventRecord, AppWebhook, CatalogRecord, CatalogRun, ConnectionRecord, ConversationRecord,
    DueAppEvent, ExtraWrite, NewInvite, NewOrder, NewToken, OperationRecord, OrderFilter, OrderKey,
    OrderRecord, PersonRecord, PortalSettingsRecord, ProductPut, ProductState, ProjectRecord,
    PublishableKey, Recorded, RunPhase, StagedKind, StagedObject, Store, StoreError, StoreResult,
    StoredFrame, StoredProduct, SubscriptionFilter, SubscriptionRecord, TokenKind, TokenRecord,
    TurnWrite, WebhookEventRecord, WorkspaceRecord,
};
use chatpay_core::domain::{
    ConversationId, Mode, PersonId, ProjectId, TokenId, WorkspaceId, now_millis,
};

/// Either backend's store: its pool for reads and its writer for turns and ledger events.
pub(crate) struct SqlStore<B: Backend> {
    pool: Pool<B>,
    writer: Writer,
    /// PostgreSQL's change feed, until the server takes it; its connection's state.
    feed: std::sync::Mutex<Option<crate::changes::ChangeFeed>>,
    listening: Option<crate::changes::Listening>,
}

type Tx<B> = Transaction<'static, B>;

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(pool: Pool<B>, writer: Writer) -> SqlStore<B> {
        SqlStore {
            pool,
            writer,
            feed: std::sync::Mutex::new(None),
            listening: None,
        }
    }

    /// With a change feed (PostgreSQL: other instances' commits).
    pub(crate) fn with_feed(
        mut self,
        feed: crate::changes::ChangeFeed,
        listening: crate::changes::Listening,
    ) -> SqlStore<B> {
        self.feed = std::sync::Mutex::new(Some(feed));
        self.listening = Some(listening);
        self
    }

    async fn conn(&self) -> StoreResult<PoolConnection<B>> {
        Ok(self.pool.acquire().await?)
    }

    async fn begin(&self) -> StoreResult<Tx<B>> {
        Ok(self.pool.begin_with(B::BEGIN).await?)
    }

    /// Runs one statement outside a transaction; the number of rows it changed.
    async fn run(&self, st: Statement<'_>) -> StoreResult<u64> {
        self.conn().await?.execute(st).await
    }

    /// The row `st` reads, if any, as `decode` makes it.
    async fn one<T>(
        &self,
        st: Statement<'_>,
        decode: fn(&B::Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.conn()
            .await?
            .fetch_optional(st)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// The rows `st` reads, as `decode` makes them.
    async fn all<T>(
        &self,
        st: Statement<'_>,
        decode: fn(&B::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.conn()
            .await?
            .fetch_all(st)
            .await?
            .iter()
            .map(decode)
            .collect()
    }
}

/// A person's row.
fn insert_person(p: &PersonRecord) -> Statement<'_> {
    sql(
        "INSERT INTO people (id, workspace_id, email, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(p.id.as_str())
    .bind(p.workspace_id.as_str())
    .bind(p.email.as_str())
    .bind(p.password_hash.as_str())
    .bind(p.created_at)
}

/// Tells the other processes on this PostgreSQL that credentials were revoked (delivered when
/// the transaction commits): their open connections using one close at once. SQLite has no
/// listeners; a server there finds a revocation by its sweep ([`Store::revoked_since`]).
async fn notify_revoked<B: Backend>(tx: &mut Tx<B>, ids: &[TokenId]) -> StoreResult<()> {
    if B::DIALECT != Dialect::Postgres {
        return Ok(());
    }
    for id in ids {
        tx.fetch_all(
            sql("SELECT pg_notify($1, $2)")
                .bind(crate::changes::CHANNEL)
                .bind(crate::changes::Change::revoked_payload(id)),
        )
        .await?;
    }
    Ok(())
}

/// Moves the catalog to its next version (creating it at version 1): from `expected` exactly
/// (`Conflict` if another change got there first), or from whatever it is (`None`). `synced`
/// records a sync's time and report.
async fn bump_catalog<C: Conn + ?Sized>(
    tx: &mut C,
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
        tx.execute(
            sql(
                "INSERT INTO catalogs (project_id, mode, version, synced_at, report) \
                 VALUES ($1, $2, 1, NULL, NULL) \
                 ON CONFLICT (project_id, mode) DO UPDATE SET version = catalogs.version + 1",
            )
            .bind(project.as_str())
            .bind(mode.as_str()),
        )
        .await?;
        return Ok(());
    };
    let changed = if expected == 0 {
        tx.execute(
            sql(
                "INSERT INTO catalogs (project_id, mode, version, synced_at, report) \
                 VALUES ($1, $2, 1, $3, $4) ON CONFLICT (project_id, mode) DO NOTHING",
            )
            .bind(project.as_str())
            .bind(mode.as_str())
            .bind(synced_at)
            .bind(report),
        )
        .await?
    } else {
        tx.execute(
            sql("UPDATE catalogs SET version = version + 1, \
                 synced_at = COALESCE($4, synced_at), report = COALESCE($5, report) \
                 WHERE project_id = $1 AND mode = $2 AND version = $3")
            .bind(project.as_str())
            .bind(mode.as_str())
            .bind(expected)
            .bind(synced_at)
            .bind(report),
        )
        .await?
    };
    if changed != 1 {
        return Err(StoreError::Conflict(
            "the catalog changed meanwhile".to_owned(),
        ));
    }
    Ok(())
}

async fn insert_conversation<C: Conn + ?Sized>(tx: &mut C, project: &ProjectId) -> StoreResult<()> {
    tx.execute(
        sql(
            "INSERT INTO conversations (id, project_id, last_seq, state, updated_at) \
             VALUES ($1, $2, 0, '{}', $3) ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(ConversationId::generate().as_str().to_owned())
        .bind(project.as_str())
        .bind(now_millis()),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::LABEL
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(sql("SELECT 1")).await?;
        Ok(())
    }

    fn take_changes(&self) -> Option<crate::changes::ChangeFeed> {
        self.feed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn listener_connected(&self) -> Option<bool> {
        self.listening.as_ref().map(crate::changes::Listening::get)
    }

    // ---- Tokens and projects.

    async fn insert_workspace(&self, w: &WorkspaceRecord) -> StoreResult<()> {
        self.run(
            sql("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(w.id.as_str())
                .bind(w.name.as_str())
                .bind(w.created_at),
        )
        .await?;
        Ok(())
    }

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<WorkspaceRecord>> {
        self.one(
            select(WORKSPACE_COLUMNS, "WHERE id = $1").bind(id.as_str()),
            workspace_row,
        )
        .await
    }

    async fn first_workspace(&self) -> StoreResult<Option<WorkspaceRecord>> {
        self.one(
            select(WORKSPACE_COLUMNS, "ORDER BY created_at, id LIMIT 1"),
            workspace_row,
        )
        .await
    }

    async fn insert_token(&self, t: NewToken<'_>) -> StoreResult<()> {
        self.run(
            sql(
                "INSERT INTO tokens (id, name, secret_hash, created_at, workspace_id, kind, \
                 person_id, project_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(t.id.as_str())
            .bind(t.name)
            .bind(t.secret_hash)
            .bind(now_millis())
            .bind(t.workspace_id.as_str())
            .bind(t.kind.as_str())
            .bind(t.person_id.map(PersonId::as_str))
            .bind(t.project_id.map(ProjectId::as_str))
            .bind(t.expires_at),
        )
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, secret_hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.one(
            select(TOKEN_COLUMNS, "WHERE secret_hash = $1").bind(secret_hash),
            token_row,
        )
        .await
    }

    async fn touch_token(
        &self,
        id: &TokenId,
        used_at: i64,
        expires_at: Option<i64>,
    ) -> StoreResult<()> {
        self.run(
            sql(
                "UPDATE tokens SET last_used_at = $2, expires_at = COALESCE($3, expires_at) \
                 WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(used_at)
            .bind(expires_at),
        )
        .await?;
        Ok(())
    }

    async fn tokens_of(
        &self,
        workspace: &WorkspaceId,
        kind: TokenKind,
    ) -> StoreResult<Vec<TokenRecord>> {
        self.all(
            select(
                TOKEN_COLUMNS,
                "WHERE workspace_id = $1 AND kind = $2 ORDER BY created_at, id",
            )
            .bind(workspace.as_str())
            .bind(kind.as_str()),
            token_row,
        )
        .await
    }

    async fn revoke_token(
        &self,
        workspace: &WorkspaceId,
        id: &TokenId,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE tokens SET revoked_at = $3 \
                     WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL")
                .bind(id.as_str())
                .bind(workspace.as_str())
                .bind(now),
            )
            .await?;
        if changed == 1 {
            notify_revoked::<B>(&mut tx, std::slice::from_ref(id)).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn revoke_sessions_of(&self, person: &PersonId, now: i64) -> StoreResult<Vec<TokenId>> {
        let mut tx = self.begin().await?;
        let ids = tx
            .fetch_all(
                sql("SELECT id FROM tokens \
                     WHERE person_id = $1 AND kind = 'session' AND revoked_at IS NULL")
                .bind(person.as_str()),
            )
            .await?
            .iter()
            .map(|r| stored_id(r, "id", TokenId::parse))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.execute(
            sql("UPDATE tokens SET revoked_at = $2 \
                 WHERE person_id = $1 AND kind = 'session' AND revoked_at IS NULL")
            .bind(person.as_str())
            .bind(now),
        )
        .await?;
        notify_revoked::<B>(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn token(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>> {
        self.one(
            select(TOKEN_COLUMNS, "WHERE id = $1").bind(id.as_str()),
            token_row,
        )
        .await
    }

    async fn revoked_since(&self, since: i64) -> StoreResult<Vec<(TokenId, i64)>> {
        self.all(
            sql("SELECT id, revoked_at FROM tokens WHERE revoked_at >= $1 ORDER BY revoked_at")
                .bind(since),
            |r| Ok((stored_id(r, "id", TokenId::parse)?, r.int("revoked_at")?)),
        )
        .await
    }

    async fn has_tokens(&self) -> StoreResult<bool> {
        let one = self
            .one(
                sql("SELECT id FROM tokens WHERE kind = 'api' LIMIT 1"),
                |_| Ok(()),
            )
            .await?;
        Ok(one.is_some())
    }

    async fn insert_person(&self, p: &PersonRecord) -> StoreResult<()> {
        self.run(insert_person(p)).await?;
        Ok(())
    }

    async fn insert_invite(&self, i: &NewInvite<'_>) -> StoreResult<()> {
        self.run(
            sql(
                "INSERT INTO invites (id, workspace_id, code_hash, created_by, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(i.id)
            .bind(i.workspace_id.as_str())
            .bind(i.code_hash)
            .bind(i.created_by.map(PersonId::as_str))
            .bind(i.created_at)
            .bind(i.expires_at),
        )
        .await?;
        Ok(())
    }

    async fn invite_workspace(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<WorkspaceId>> {
        self.one(
            sql("SELECT workspace_id FROM invites \
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(code_hash)
            .bind(now),
            |r| stored_id(r, "workspace_id", WorkspaceId::parse),
        )
        .await
    }

    async fn redeem_invite(
        &self,
        code_hash: &str,
        now: i64,
        person: &PersonRecord,
    ) -> StoreResult<bool> {
        // The person first (the invite names them); an invite that is used, expired or of
        // another workspace changes no row, and the transaction is dropped: nothing written.
        let mut tx = self.begin().await?;
        tx.execute(insert_person(person)).await?;
        let used = tx
            .execute(
                sql("UPDATE invites SET used_at = $2, person_id = $4 \
                     WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     AND workspace_id = $3")
                .bind(code_hash)
                .bind(now)
                .bind(person.workspace_id.as_str())
                .bind(person.id.as_str()),
            )
            .await?;
        if used != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn person_by_email(&self, email: &str) -> StoreResult<Option<PersonRecord>> {
        self.one(
            select(PERSON_COLUMNS, "WHERE email = $1").bind(email),
            person_row,
        )
        .await
    }

    async fn person(&self, id: &PersonId) -> StoreResult<Option<PersonRecord>> {
        self.one(
            select(PERSON_COLUMNS, "WHERE id = $1").bind(id.as_str()),
            person_row,
        )
        .await
    }

    async fn set_password(&self, id: &PersonId, password_hash: &str) -> StoreResult<()> {
        let changed = self
            .run(
                sql("UPDATE people SET password_hash = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(password_hash),
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn has_people(&self) -> StoreResult<bool> {
        let one = self
            .one(sql("SELECT id FROM people LIMIT 1"), |_| Ok(()))
            .await?;
        Ok(one.is_some())
    }

    async fn insert_project(&self, p: &ProjectRecord) -> StoreResult<()> {
        // The project's conversation is created with it, so that joining a conversation only
        // ever reads.
        let mut tx = self.begin().await?;
        tx.execute(
            sql(
                "INSERT INTO projects (id, workspace_id, token_id, name, backend, mode, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(p.id.as_str())
            .bind(p.workspace_id.as_str())
            .bind(p.token_id.as_str())
            .bind(p.name.as_str())
            .bind(p.backend)
            .bind(p.mode.as_str())
            .bind(p.created_at),
        )
        .await?;
        insert_conversation(&mut *tx, &p.id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<ProjectRecord>> {
        self.one(
            select(PROJECT_COLUMNS, "WHERE id = $1").bind(id.as_str()),
            project_row,
        )
        .await
    }

    async fn projects_of(&self, workspace: &WorkspaceId) -> StoreResult<Vec<ProjectRecord>> {
        self.all(
            select(
                PROJECT_COLUMNS,
                "WHERE workspace_id = $1 ORDER BY created_at, id",
            )
            .bind(workspace.as_str()),
            project_row,
        )
        .await
    }

    async fn rename_project(&self, id: &ProjectId, name: &str) -> StoreResult<()> {
        let changed = self
            .run(
                sql("UPDATE projects SET name = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(name),
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- Conversations and frames.

    async fn conversation_for(&self, project: &ProjectId) -> StoreResult<ConversationRecord> {
        let find = || select(CONVERSATION_COLUMNS, "WHERE project_id = $1").bind(project.as_str());
        if let Some(c) = self.one(find(), conversation_row).await? {
            return Ok(c);
        }
        // Projects made before conversations were created with them.
        let mut tx = self.begin().await?;
        insert_conversation(&mut *tx, project).await?;
        tx.commit().await?;
        conversation_row(&self.conn().await?.fetch_one(find()).await?)
    }

    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<ConversationRecord>> {
        self.one(
            select(CONVERSATION_COLUMNS, "WHERE id = $1").bind(id.as_str()),
            conversation_row,
        )
        .await
    }

    async fn frames_after(
        &self,
        conversation: &ConversationId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredFrame>> {
        self.all(
            sql("SELECT seq, reply_to, body FROM frames \
                 WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(conversation.as_str())
            .bind(after)
            .bind(limit),
            frame_row,
        )
        .await
    }

    async fn frames_replying_to(
        &self,
        conversation: &ConversationId,
        reply_to: &str,
    ) -> StoreResult<Vec<StoredFrame>> {
        self.all(
            sql("SELECT seq, reply_to, body FROM frames \
                 WHERE conversation_id = $1 AND reply_to = $2 ORDER BY seq")
            .bind(conversation.as_str())
            .bind(reply_to),
            frame_row,
        )
        .await
    }

    async fn answered_ids(&self, conversation: &ConversationId) -> StoreResult<Vec<String>> {
        self.all(
            sql("SELECT DISTINCT reply_to FROM frames \
                 WHERE conversation_id = $1 AND reply_to IS NOT NULL")
            .bind(conversation.as_str()),
            |r| r.text("reply_to"),
        )
        .await
    }

    async fn commit_turn(&self, turn: TurnWrite) -> StoreResult<()> {
        self.writer.turn(turn).await
    }

    // ---- Stripe connections and the webhook ledger.

    async fn connection(
        &self,
        project: &ProjectId,
        mode: Mode,
    ) -> StoreResult<Option<ConnectionRecord>> {
        self.one(
            select(CONNECTION_COLUMNS, "WHERE project_id = $1 AND mode = $2")
                .bind(project.as_str())
                .bind(mode.as_str()),
            connection_row,
        )
        .await
    }

    async fn connections_for_account(
        &self,
        account_id: &str,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        self.all(
            select(
                CONNECTION_COLUMNS,
                "WHERE account_id = $1 ORDER BY project_id, mode",
            )
            .bind(account_id),
            connection_row,
        )
        .await
    }

    async fn record_event(&self, e: &WebhookEventRecord) -> StoreResult<Recorded> {
        self.writer.record(e.clone()).await
    }

    async fn event(&self, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
        self.one(select(EVENT_COLUMNS, "WHERE id = $1").bind(id), event_row)
            .await
    }

    async fn unprocessed_events(&self, limit: i64) -> StoreResult<Vec<WebhookEventRecord>> {
        self.all(
            select(
                EVENT_COLUMNS,
                "WHERE processed_at IS NULL ORDER BY received_at, id LIMIT $1",
            )
            .bind(limit),
            event_row,
        )
        .await
    }

    async fn mark_event_processed(&self, id: &str, outcome: &str) -> StoreResult<()> {
        self.run(mark_event_processed(id, outcome, now_millis()))
            .await?;
        Ok(())
    }

    async fn has_event_for(&self, account: &str, livemode: bool) -> StoreResult<bool> {
        let found = self
            .one(
                sql("SELECT 1 AS found FROM webhook_events \
                     WHERE account = $1 AND livemode = $2 LIMIT 1")
                .bind(account)
                .bind(livemode),
                |_| Ok(()),
            )
            .await?;
        Ok(found.is_some())
    }

    // ---- The catalog.

    async fn catalog_open_run(
        &self,
        project: &ProjectId,
        mode: Mode,
        new_id: &str,
    ) -> StoreResult<CatalogRun> {
        let open = self
            .one(
                sql(
                    "SELECT id, phase, cursor, requests, started_at FROM catalog_runs \
                     WHERE project_id = $1 AND mode = $2 AND status <> 'done' \
                     ORDER BY started_at DESC LIMIT 1",
                )
                .bind(project.as_str())
                .bind(mode.as_str()),
                |r| {
                    let phase = r.text("phase")?;
                    Ok(CatalogRun {
                        id: r.text("id")?,
                        phase: RunPhase::parse(&phase).ok_or_else(|| bad("run phase", &phase))?,
                        cursor: r.opt_text("cursor")?,
                        requests: r.int("requests")?,
                        started_at: r.int("started_at")?,
                    })
                },
            )
            .await?;
        if let Some(run) = open {
            self.run(
                sql("UPDATE catalog_runs SET status = 'running', error = NULL WHERE id = $1")
                    .bind(run.id.as_str()),
            )
            .await?;
            return Ok(run);
        }
        let now = now_millis();
        self.run(
            sql("INSERT INTO catalog_runs \
                 (id, project_id, mode, status, phase, cursor, requests, started_at) \
                 VALUES ($1, $2, $3, 'running', $4, NULL, 0, $5)")
            .bind(new_id)
            .bind(project.as_str())
            .bind(mode.as_str())
            .bind(RunPhase::Products.as_str())
            .bind(now),
        )
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
        let mut tx = self.begin().await?;
        let moved = tx
            .execute(
                sql("UPDATE catalog_runs SET phase = $2, cursor = $3, requests = $4 WHERE id = $1")
                    .bind(run)
                    .bind(phase.as_str())
                    .bind(cursor)
                    .bind(requests),
            )
            .await?;
        if moved == 0 {
            // Forgotten with its connection.
            return Err(StoreError::NotFound);
        }
        for chunk in items.chunks(ROWS_PER_INSERT) {
            let mut st = sql(format!(
                "INSERT INTO catalog_staging (run_id, kind, object_id, data, fetched_at) \
                 VALUES {} ON CONFLICT (run_id, kind, object_id) DO UPDATE SET \
                 data = excluded.data, fetched_at = excluded.fetched_at",
                B::DIALECT.rows(chunk.len(), 5)
            ));
            for (id, data) in chunk {
                st = st
                    .bind(run)
                    .bind(kind.as_str())
                    .bind(id.as_str())
                    .bind(data.as_str())
                    .bind(fetched_at);
            }
            tx.execute(st).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn catalog_staged(&self, run: &str) -> StoreResult<Vec<StagedObject>> {
        self.all(
            sql("SELECT kind, data, fetched_at FROM catalog_staging \
                 WHERE run_id = $1 ORDER BY kind, object_id")
            .bind(run),
            staged_row,
        )
        .await
    }

    async fn catalog_fail_run(&self, run: &str, error: &str) -> StoreResult<()> {
        self.run(
            sql("UPDATE catalog_runs SET status = 'failed', error = $2 WHERE id = $1")
                .bind(run)
                .bind(error),
        )
        .await?;
        Ok(())
    }

    async fn catalog(&self, project: &ProjectId, mode: Mode) -> StoreResult<CatalogRecord> {
        let head = self
            .one(
                sql("SELECT version, synced_at, report FROM catalogs \
                     WHERE project_id = $1 AND mode = $2")
                .bind(project.as_str())
                .bind(mode.as_str()),
                |r| {
                    Ok((
                        r.int("version")?,
                        r.opt_int("synced_at")?,
                        r.opt_text("report")?,
                    ))
                },
            )
            .await?;
        let Some((version, synced_at, report)) = head else {
            return Ok(CatalogRecord::default());
        };
        let products = self
            .all(
                sql(
                    "SELECT product_id, data, observed_at FROM catalog_products \
                     WHERE project_id = $1 AND mode = $2 ORDER BY product_id",
                )
                .bind(project.as_str())
                .bind(mode.as_str()),
                product_row,
            )
            .await?;
        Ok(CatalogRecord {
            version,
            synced_at,
            report,
            products,
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
        let mut tx = self.begin().await?;
        let finished = tx
            .execute(
                sql(
                    "UPDATE catalog_runs SET status = 'done', phase = 'done', finished_at = $2 \
                     WHERE id = $1 AND status = 'running'",
                )
                .bind(run)
                .bind(now),
            )
            .await?;
        if finished == 0 {
            // Forgotten with its connection.
            return Err(StoreError::NotFound);
        }
        bump_catalog(
            &mut *tx,
            project,
            mode,
            Some(expected_version),
            Some((now, report)),
        )
        .await?;
        tx.execute(
            sql("DELETE FROM catalog_products WHERE project_id = $1 AND mode = $2")
                .bind(project.as_str())
                .bind(mode.as_str()),
        )
        .await?;
        for chunk in products.chunks(ROWS_PER_INSERT) {
            let mut st = sql(format!(
                "INSERT INTO catalog_products (project_id, mode, product_id, data, observed_at) \
                 VALUES {}",
                B::DIALECT.rows(chunk.len(), 5)
            ));
            for p in chunk {
                st = st
                    .bind(project.as_str())
                    .bind(mode.as_str())
                    .bind(p.product_id.as_str())
                    .bind(p.data.stored())
                    .bind(p.observed_at);
            }
            tx.execute(st).await?;
        }
        tx.execute(sql("DELETE FROM catalog_staging WHERE run_id = $1").bind(run))
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
        let mut tx = self.begin().await?;
        // First, as every catalog write does: this takes the catalog's row lock, so on
        // PostgreSQL a sync being applied (or a disconnect) finishes before the reads below,
        // which then see it.
        bump_catalog(&mut *tx, project, mode, None, None).await?;
        let connected = tx
            .fetch_optional(
                sql("SELECT 1 AS one FROM stripe_connections \
                     WHERE project_id = $1 AND mode = $2 AND account_id = $3")
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(account),
            )
            .await?;
        if connected.is_none() {
            return Err(StoreError::NotFound);
        }
        let previous = tx
            .fetch_optional(
                sql("SELECT data FROM catalog_products \
                     WHERE project_id = $1 AND mode = $2 AND product_id = $3")
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(product_id),
            )
            .await?
            .map(|r| r.text("data").map(ProductState::from_stored))
            .transpose()?;
        let next = data(previous.as_ref());
        // Applies only over an older read.
        let applied = tx
            .fetch_optional(
                sql("INSERT INTO catalog_products (project_id, mode, product_id, data, observed_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, mode, product_id) DO UPDATE \
                     SET data = excluded.data, observed_at = excluded.observed_at \
                     WHERE catalog_products.observed_at < excluded.observed_at \
                     RETURNING product_id")
                .bind(project.as_str())
                .bind(mode.as_str())
                .bind(product_id)
                .bind(next.stored())
                .bind(observed_at),
            )
            .await?;
        if applied.is_none() {
            return Err(StoreError::Conflict(format!(
                "{product_id} has a newer read"
            )));
        }
        let synced = tx
            .fetch_one(
                sql("SELECT synced_at FROM catalogs WHERE project_id = $1 AND mode = $2")
                    .bind(project.as_str())
                    .bind(mode.as_str()),
            )
            .await?
            .opt_int("synced_at")?;
        tx.commit().await?;
        Ok(ProductPut {
            previous,
            synced: synced.is_some(),
        })
    }

    // ---- Publishable keys.

    async fn publishable_key(&self, project: &ProjectId) -> StoreResult<Option<PublishableKey>> {
        self.one(
            select(PUBLISHABLE_COLUMNS, "WHERE project_id = $1").bind(project.as_str()),
            publishable_row,
        )
        .await
    }

    async fn publishable_key_by_key(&self, key: &str) -> StoreResult<Option<PublishableKey>> {
        self.one(
            select(PUBLISHABLE_COLUMNS, "WHERE key = $1").bind(key),
            publishable_row,
        )
        .await
    }

    async fn put_publishable_key(&self, k: &PublishableKey) -> StoreResult<PublishableKey> {
        let origins = serde_json::to_string(&k.allowed_origins).map_err(anyhow::Error::new)?;
        self.run(
            sql(
                "INSERT INTO publishable_keys (project_id, key, allowed_origins, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (project_id) DO UPDATE SET \
                 allowed_origins = excluded.allowed_origins",
            )
            .bind(k.project_id.as_str())
            .bind(k.key.as_str())
            .bind(origins)
            .bind(k.created_at),
        )
        .await?;
        self.publishable_key(&k.project_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    // ---- The billing portal's settings.

    async fn portal_settings(
        &self,
        project: &ProjectId,
        mode: Mode,
    ) -> StoreResult<Option<PortalSettingsRecord>> {
        self.one(
            select(PORTAL_COLUMNS, "WHERE project_id = $1 AND mode = $2")
                .bind(project.as_str())
                .bind(mode.as_str()),
            portal_row,
        )
        .await
    }

    // ---- The app webhook and its outbox.

    async fn app_webhook(&self, project: &ProjectId) -> StoreResult<Option<AppWebhook>> {
        self.one(
            select(APP_WEBHOOK_COLUMNS, "WHERE project_id = $1").bind(project.as_str()),
            app_webhook_row,
        )
        .await
    }

    async fn put_app_webhook(&self, h: &AppWebhook) -> StoreResult<AppWebhook> {
        self.run(
            sql(
                "INSERT INTO app_webhooks (project_id, url, secret, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id) DO UPDATE SET \
                 url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at",
            )
            .bind(h.project_id.as_str())
            .bind(h.url.as_str())
            .bind(h.secret.as_str())
            .bind(h.created_at)
            .bind(h.updated_at),
        )
        .await?;
        self.app_webhook(&h.project_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn delete_app_webhook(&self, project: &ProjectId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        tx.execute(
            sql("DELETE FROM app_events WHERE project_id = $1 AND delivered_at IS NULL")
                .bind(project.as_str()),
        )
        .await?;
        let gone = tx
            .execute(sql("DELETE FROM app_webhooks WHERE project_id = $1").bind(project.as_str()))
            .await?;
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn due_app_events(&self, now: i64, limit: i64) -> StoreResult<Vec<DueAppEvent>> {
        self.all(
            sql(
                "SELECT e.id, e.project_id, e.type, e.payload, e.seq, e.created_at, e.attempts, \
                 e.next_attempt_at, e.delivered_at, e.last_error, w.url, w.secret \
                 FROM app_events e JOIN app_webhooks w ON w.project_id = e.project_id \
                 WHERE e.next_attempt_at IS NOT NULL AND e.next_attempt_at <= $1 \
                 AND NOT EXISTS (SELECT 1 FROM app_events f WHERE f.project_id = e.project_id \
                 AND f.next_attempt_at IS NOT NULL AND f.seq < e.seq) \
                 ORDER BY e.next_attempt_at, e.seq LIMIT $2",
            )
            .bind(now)
            .bind(limit),
            due_app_event_row,
        )
        .await
    }

    async fn claim_app_events(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DueAppEvent>> {
        // PostgreSQL: rows another instance is claiming are skipped, not waited for (and not
        // taken twice); SQLite's `BEGIN IMMEDIATE` already makes the claim exclusive.
        let lock = match B::DIALECT {
            Dialect::Postgres => " FOR UPDATE OF e SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let mut tx = self.begin().await?;
        let rows = tx
            .fetch_all(
                sql(format!(
                    "SELECT e.id, e.project_id, e.type, e.payload, e.seq, e.created_at, \
                     e.attempts, e.next_attempt_at, e.delivered_at, e.last_error, w.url, w.secret \
                     FROM app_events e JOIN app_webhooks w ON w.project_id = e.project_id \
                     WHERE e.next_attempt_at IS NOT NULL AND e.next_attempt_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM app_events f WHERE f.project_id = e.project_id \
                     AND f.next_attempt_at IS NOT NULL AND f.seq < e.seq) \
                     ORDER BY e.next_attempt_at, e.seq LIMIT $2{lock}"
                ))
                .bind(now)
                .bind(limit),
            )
            .await?;
        let due = rows
            .iter()
            .map(due_app_event_row)
            .collect::<StoreResult<Vec<_>>>()?;
        for d in &due {
            tx.execute(
                sql("UPDATE app_events SET next_attempt_at = $2 WHERE id = $1")
                    .bind(d.event.id.as_str())
                    .bind(lease_until),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(due)
    }

    async fn next_app_event_at(&self) -> StoreResult<Option<i64>> {
        let next = self
            .one(
                sql("SELECT MIN(e.next_attempt_at) AS next FROM app_events e \
                     JOIN app_webhooks w ON w.project_id = e.project_id \
                     WHERE e.next_attempt_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM app_events f WHERE f.project_id = e.project_id \
                     AND f.next_attempt_at IS NOT NULL AND f.seq < e.seq)"),
                |r| r.opt_int("next"),
            )
            .await?;
        Ok(next.flatten())
    }

    async fn app_event_delivered(&self, id: &str, now: i64) -> StoreResult<()> {
        self.run(
            sql(
                "UPDATE app_events SET attempts = attempts + 1, delivered_at = $2, \
                 next_attempt_at = NULL, last_error = NULL WHERE id = $1 AND delivered_at IS NULL",
            )
            .bind(id)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn app_event_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> StoreResult<()> {
        self.run(
            sql(
                "UPDATE app_events SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = $3 WHERE id = $1 AND delivered_at IS NULL",
            )
            .bind(id)
            .bind(error)
            .bind(next_attempt_at),
        )
        .await?;
        Ok(())
    }

    async fn app_events(
        &self,
        project: &ProjectId,
        limit: i64,
    ) -> StoreResult<Vec<AppEventRecord>> {
        self.all(
            select(
                APP_EVENT_COLUMNS,
                "WHERE project_id = $1 ORDER BY seq LIMIT $2",
            )
            .bind(project.as_str())
            .bind(limit),
            app_event_row,
        )
        .await
    }

    // ---- Orders and subscriptions (their changes ride with turns: `ExtraWrite`).

    async fn write(&self, rows: Vec<ExtraWrite>) -> StoreResult<()> {
        let now = now_millis();
        // A unique-key race (two new orders numbered alike) fails the transaction; run it again.
        let mut tries = 0;
        loop {
            tries += 1;
            let mut tx = self.begin().await?;
            let mut raced = None;
            'rows: for row in &rows {
                for st in row.statements(now) {
                    let check = st.check;
                    match tx.execute(st).await {
                        Ok(changed) => {
                            if let Some(refused) = check.and_then(|c| c.refuses(changed)) {
                                return Err(refused);
                            }
                        }
                        Err(StoreError::Conflict(e)) if tries < 5 => {
                            raced = Some(e);
                            break 'rows;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            match raced {
                None => return tx.commit().await.map_err(StoreError::from),
                Some(e) => tracing::debug!(error = %e, "a write raced another; again"),
            }
        }
    }

    async fn operation(&self, key: &str) -> StoreResult<Option<OperationRecord>> {
        self.one(
            sql(format!(
                "SELECT {OPERATION_FIELDS} FROM operations WHERE idempotency_key = $1"
            ))
            .bind(key),
            operation_row,
        )
        .await
    }

    async fn claim_operations(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<OperationRecord>> {
        // PostgreSQL: rows another instance is claiming right now are skipped, not waited for.
        // SQLite: one writer at a time (`BEGIN IMMEDIATE`), one instance.
        let lock = match B::DIALECT {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let mut tx = self.begin().await?;
        let rows = tx
            .fetch_all(
                sql(format!(
                    "UPDATE operations SET owner = $1, lease_until = $3, \
                     attempts = attempts + 1, updated_at = $2 \
                     WHERE idempotency_key IN (SELECT idempotency_key FROM operations \
                     WHERE status = 'pending' \
                     AND (lease_until IS NULL OR lease_until <= $2) \
                     ORDER BY created_at LIMIT $4{lock}) \
                     RETURNING {OPERATION_FIELDS}"
                ))
                .bind(owner)
                .bind(now)
                .bind(lease_until)
                .bind(limit),
            )
            .await?;
        let mut claimed: Vec<OperationRecord> =
            rows.iter().map(operation_row).collect::<StoreResult<_>>()?;
        tx.commit().await?;
        // `RETURNING` keeps no order: oldest first, as claimed.
        claimed.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
        Ok(claimed)
    }

    async fn claim_operation(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<OperationRecord>> {
        self.one(
            sql(format!(
                "UPDATE operations SET owner = $2, lease_until = $4, \
                 attempts = attempts + 1, updated_at = $3 \
                 WHERE idempotency_key = $1 AND status = 'pending' \
                 AND (owner IS NULL OR owner = $2 OR lease_until IS NULL OR lease_until <= $3) \
                 RETURNING {OPERATION_FIELDS}"
            ))
            .bind(key)
            .bind(owner)
            .bind(now)
            .bind(lease_until),
            operation_row,
        )
        .await
    }

    async fn renew_operation(&self, key: &str, owner: &str, lease_until: i64) -> StoreResult<bool> {
        let changed = self
            .run(
                sql("UPDATE operations SET lease_until = $3 \
                     WHERE idempotency_key = $1 AND owner = $2 AND status = 'pending'")
                .bind(key)
                .bind(owner)
                .bind(lease_until),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn retry_operation(
        &self,
        key: &str,
        owner: &str,
        retry_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        self.run(
            sql(
                "UPDATE operations SET owner = NULL, lease_until = $3, result = $4, \
                 updated_at = $5 \
                 WHERE idempotency_key = $1 AND owner = $2 AND status = 'pending'",
            )
            .bind(key)
            .bind(owner)
            .bind(retry_at)
            .bind(error)
            .bind(now_millis()),
        )
        .await?;
        Ok(())
    }

    async fn insert_order(&self, o: &NewOrder) -> StoreResult<OrderRecord> {
        // Two checkouts at once may pick the same number; the loser picks again.
        for _ in 0..5 {
            let mut tx = self.begin().await?;
            if let Some(row) = tx
                .fetch_optional(select(ORDER_COLUMNS, "WHERE id = $1").bind(o.id.as_str()))
                .await?
            {
                return order_row(&row);
            }
            let number = tx
                .fetch_one(
                    sql(
                        "SELECT COALESCE(MAX(number), 1000) + 1 AS next FROM orders \
                         WHERE project_id = $1 AND mode = $2",
                    )
                    .bind(o.project_id.as_str())
                    .bind(o.mode.as_str()),
                )
                .await?
                .int("next")?;
            let inserted = tx
                .execute(
                    sql(
                        "INSERT INTO orders (id, project_id, mode, number, status, session_id, \
                         payment_intent, created_at, updated_at, version, data, customer_email) \
                         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, 1, $8, $9)",
                    )
                    .bind(o.id.as_str())
                    .bind(o.project_id.as_str())
                    .bind(o.mode.as_str())
                    .bind(number)
                    .bind(o.status.as_str())
                    .bind(o.session_id.as_str())
                    .bind(o.created_at)
                    .bind(o.data.as_str())
                    .bind(o.customer_email.as_deref().map(str::to_lowercase)),
                )
                .await;
            match inserted {
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
        Err(StoreError::Conflict(
            "could not number the order; retry".to_owned(),
        ))
    }

    async fn order_by_number(
        &self,
        project: &ProjectId,
        mode: Mode,
        number: i64,
    ) -> StoreResult<Option<OrderRecord>> {
        self.one(
            select(
                ORDER_COLUMNS,
                "WHERE project_id = $1 AND mode = $2 AND number = $3",
            )
            .bind(project.as_str())
            .bind(mode.as_str())
            .bind(number),
            order_row,
        )
        .await
    }

    async fn order_by(&self, key: OrderKey<'_>) -> StoreResult<Option<OrderRecord>> {
        let (rest, value) = match key {
            OrderKey::Id(v) => ("WHERE id = $1", v),
            OrderKey::Session(v) => ("WHERE session_id = $1", v),
            OrderKey::PaymentIntent(v) => ("WHERE payment_intent = $1", v),
        };
        self.one(select(ORDER_COLUMNS, rest).bind(value), order_row)
            .await
    }

    async fn orders(
        &self,
        project: &ProjectId,
        mode: Mode,
        f: &OrderFilter,
    ) -> StoreResult<Vec<OrderRecord>> {
        self.all(
            select(
                ORDER_COLUMNS,
                "WHERE project_id = $1 AND mode = $2 AND ($3 IS NULL OR status = $3) \
                 AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
                 AND ($6 IS NULL OR number < $6) AND ($8 IS NULL OR customer_email = $8) \
                 ORDER BY number DESC LIMIT $7",
            )
            .bind(project.as_str())
            .bind(mode.as_str())
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.since)
            .bind(f.until)
            .bind(f.before)
            .bind(f.limit.clamp(1, 1000))
            .bind(f.customer_email.as_deref().map(str::to_lowercase)),
            order_row,
        )
        .await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRecord>> {
        self.one(
            select(SUBSCRIPTION_COLUMNS, "WHERE id = $1").bind(id),
            subscription_row,
        )
        .await
    }

    async fn subscriptions(
        &self,
        project: &ProjectId,
        mode: Mode,
        f: &SubscriptionFilter,
    ) -> StoreResult<Vec<SubscriptionRecord>> {
        self.all(
            select(
                SUBSCRIPTION_COLUMNS,
                "WHERE project_id = $1 AND mode = $2 AND ($3 IS NULL OR status = $3) \
                 AND ($4 IS NULL OR customer_email = $4) \
                 AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) \
                 ORDER BY created_at DESC, id DESC LIMIT $7",
            )
            .bind(project.as_str())
            .bind(mode.as_str())
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.customer_email.as_deref().map(str::to_lowercase))
            .bind(f.before.as_ref().map(|b| b.0))
            .bind(f.before.as_ref().map_or("", |b| b.1.as_str()))
            .bind(f.limit.clamp(1, 1000)),
            subscription_row,
        )
        .await
    }
}
