//! PostgreSQL's group-commit writer: the one path by which a PostgreSQL store commits turns.
//!
//! A task on the pool ([`Writer::spawn`]): its statements are network round trips anyway. A batch
//! is one transaction: one multi-row `UPDATE` moves every conversation of the batch, multi-row
//! `INSERT`s record every webhook event of the batch (its own and those of the turns that won),
//! each turn's other [`ExtraWrite`]s run in order, multi-row `INSERT`s add the frames. SQLite's twin is
//! `super::sqlite_writer`; both run the statements in `super::sql` (`UPSERT_CONNECTION`, …).

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, Row, Transaction};

use super::sql::{
    CONNECTED_ACCOUNT, DELETE_CONNECTION, ENQUEUE_APP_EVENT, EVENT_ROWS_PER_INSERT, FORGET_CATALOG,
    FRAME_ROWS_PER_INSERT, INSERT_SUBSCRIPTION, MARK_EVENT_PROCESSED, PUT_ORDER, PUT_SUBSCRIPTION,
    Params, RECORD_EVENT, SET_PROJECT_MODE, TURNS_PER_UPDATE, UPSERT_CONNECTION, events_insert_sql,
    frames_insert_sql, turns_update_sql,
};
use super::writer::{Write, Writer, Written, first_of_each};
use super::{
    ExtraWrite, Recorded, StoreError, StoreResult, StoredFrame, TurnWrite, WebhookEventRecord,
};
use chatpay_core::domain::{ConversationId, Mode, ProjectId, now_millis};

type Tx = Transaction<'static, Postgres>;

/// Starts the writer task on `pool`.
pub(super) fn spawn(pool: PgPool) -> Writer {
    Writer::spawn(move |writes| {
        let pool = pool.clone();
        async move { commit_batch(&pool, writes).await }
    })
}

/// Commits the batch in one transaction. If that fails as a whole, each write is retried in its
/// own transaction so that one bad write cannot sink the others; a failure that is not the
/// write's own (the server) fails each of them again, and every submitter hears of it.
async fn commit_batch(pool: &PgPool, writes: Vec<Write>) -> Vec<StoreResult<Written>> {
    match commit_together(pool, &writes).await {
        Ok(results) => results,
        Err(e) if writes.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, writes = writes.len(), "batch commit failed; committing writes one by one");
            let mut results = Vec::with_capacity(writes.len());
            for write in &writes {
                let r = commit_together(pool, std::slice::from_ref(write)).await;
                results.push(r.and_then(|mut v| {
                    v.pop().unwrap_or_else(|| {
                        Err(StoreError::Other(anyhow::anyhow!("no result for a write")))
                    })
                }));
            }
            results
        }
    }
}

async fn commit_together(
    pool: &PgPool,
    writes: &[Write],
) -> StoreResult<Vec<StoreResult<Written>>> {
    let now = now_millis();
    let t0 = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let t_begin = t0.elapsed();
    let turns: Vec<&TurnWrite> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Turn(t) => Some(t),
            Write::Event(_) => None,
        })
        .collect();
    let won = move_conversations(&mut tx, &turns, now).await?;
    // Every event of the batch in one multi-row insert (not a round trip each): the writes'
    // own first, then those of the turns that won, before any turn's other rows (its ledger
    // mark of the same event updates the row inserted here).
    let mut events: Vec<&WebhookEventRecord> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Event(e) => Some(e),
            Write::Turn(_) => None,
        })
        .collect();
    let own = events.len();
    events.extend(
        turns
            .iter()
            .filter(|t| won.contains(t.conversation.as_str()))
            .flat_map(|t| &t.extra)
            .filter_map(|x| match x {
                ExtraWrite::RecordEvent(e) => Some(e),
                _ => None,
            }),
    );
    let mut recorded = record_events(&mut tx, &events).await?.into_iter().take(own);
    let t_update = t0.elapsed();
    let mut results = Vec::with_capacity(writes.len());
    let mut frames: Vec<(&ConversationId, &StoredFrame)> = Vec::new();
    for write in writes {
        let turn = match write {
            Write::Turn(t) => t,
            Write::Event(_) => {
                let r = recorded.next().unwrap_or(Recorded::Duplicate);
                results.push(Ok(Written::Event(r)));
                continue;
            }
        };
        if !won.contains(turn.conversation.as_str()) {
            results.push(Err(super::turn_conflict(turn)));
            continue;
        }
        for extra in &turn.extra {
            if !matches!(extra, ExtraWrite::RecordEvent(_)) {
                apply_extra(&mut tx, extra, now).await?;
            }
        }
        frames.extend(turn.frames.iter().map(|f| (&turn.conversation, f)));
        results.push(Ok(Written::Turn));
    }
    insert_frames(&mut tx, &frames, now).await?;
    let t_insert = t0.elapsed();
    tx.commit().await?;
    tracing::trace!(?t_begin, ?t_update, ?t_insert, total = ?t0.elapsed(), "commit phases");
    Ok(results)
}

/// Inserts the batch's events in multi-row statements (`ON CONFLICT (id) DO NOTHING`). Returns,
/// per event in order, whether it is new: the first of each id that was inserted.
async fn record_events(tx: &mut Tx, events: &[&WebhookEventRecord]) -> StoreResult<Vec<Recorded>> {
    let mut inserted: HashSet<String> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(events_insert_sql(
            Params::Dollar,
            chunk.len(),
        )));
        for e in chunk {
            q = q
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(e.account.as_deref())
                .bind(e.livemode)
                .bind(e.created)
                .bind(&e.payload)
                .bind(e.received_at)
                .bind(e.processed_at)
                .bind(e.outcome.as_deref());
        }
        for row in q.fetch_all(&mut **tx).await? {
            inserted.insert(row.try_get("id")?);
        }
    }
    Ok(first_of_each(
        events.iter().map(|e| e.id.as_str()),
        &inserted,
    ))
}

/// One `UPDATE` per chunk of turns (not one per turn): each row moves only from the seq its turn
/// started at. Returns the conversations of the turns that won.
async fn move_conversations<'t>(
    tx: &mut Tx,
    turns: &[&'t TurnWrite],
    now: i64,
) -> StoreResult<HashSet<&'t str>> {
    let mut won: HashSet<&str> = HashSet::with_capacity(turns.len());
    for chunk in turns.chunks(TURNS_PER_UPDATE) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(turns_update_sql(
            Params::Dollar,
            chunk.len(),
        )));
        for t in chunk {
            q = q
                .bind(t.conversation.as_str())
                .bind(t.prev_seq)
                .bind(t.last_seq)
                .bind(t.state.as_deref())
                .bind(now);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let id: String = row.try_get("id")?;
            if let Some(t) = chunk.iter().find(|t| t.conversation.as_str() == id) {
                won.insert(t.conversation.as_str());
            }
        }
    }
    Ok(won)
}

async fn insert_frames(
    tx: &mut Tx,
    frames: &[(&ConversationId, &StoredFrame)],
    now: i64,
) -> StoreResult<()> {
    for chunk in frames.chunks(FRAME_ROWS_PER_INSERT) {
        let sql = frames_insert_sql(Params::Dollar, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (conversation, f) in chunk {
            q = q
                .bind(conversation.as_str())
                .bind(f.seq)
                .bind(f.reply_to.as_deref())
                .bind(&*f.body)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes one extra row of a turn; a version check that refuses it fails the turn with
/// `Conflict`.
async fn apply_extra(tx: &mut Tx, extra: &ExtraWrite, now: i64) -> StoreResult<()> {
    match extra {
        ExtraWrite::UpsertConnection(c) => {
            let previous: Option<String> = sqlx::query(CONNECTED_ACCOUNT)
                .bind(c.project_id.as_str())
                .bind(c.mode.as_str())
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get("account_id"))
                .transpose()?;
            if previous.is_some_and(|a| a != c.account_id) {
                forget_catalog(tx, &c.project_id, c.mode).await?;
            }
            sqlx::query(UPSERT_CONNECTION)
                .bind(c.project_id.as_str())
                .bind(c.mode.as_str())
                .bind(&c.account_id)
                .bind(c.origin.as_str())
                .bind(&c.snapshot)
                .bind(c.connected_at)
                .bind(c.updated_at)
                .execute(&mut **tx)
                .await?;
        }
        ExtraWrite::DeleteConnection { project_id, mode } => {
            sqlx::query(DELETE_CONNECTION)
                .bind(project_id.as_str())
                .bind(mode.as_str())
                .execute(&mut **tx)
                .await?;
            forget_catalog(tx, project_id, *mode).await?;
        }
        ExtraWrite::MarkEventProcessed { id, outcome } => {
            sqlx::query(MARK_EVENT_PROCESSED)
                .bind(id)
                .bind(now)
                .bind(outcome)
                .execute(&mut **tx)
                .await?;
        }
        ExtraWrite::RecordEvent(e) => {
            sqlx::query(RECORD_EVENT)
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(e.account.as_deref())
                .bind(e.livemode)
                .bind(e.created)
                .bind(&e.payload)
                .bind(e.received_at)
                .bind(e.processed_at)
                .bind(e.outcome.as_deref())
                .execute(&mut **tx)
                .await?;
        }
        ExtraWrite::PutOrder(o) => {
            let done = sqlx::query(PUT_ORDER)
                .bind(&o.id)
                .bind(o.expected_version)
                .bind(&o.status)
                .bind(o.payment_intent.as_deref())
                .bind(&o.data)
                .bind(now)
                .bind(o.customer_email.as_deref().map(str::to_lowercase))
                .execute(&mut **tx)
                .await?;
            if done.rows_affected() != 1 {
                return Err(super::order_conflict(o));
            }
        }
        ExtraWrite::PutSubscription(s) => {
            let email = s.customer_email.as_deref().map(str::to_lowercase);
            let done = if s.expected_version == 0 {
                sqlx::query(INSERT_SUBSCRIPTION)
                    .bind(&s.id)
                    .bind(s.project_id.as_str())
                    .bind(s.mode.as_str())
                    .bind(&s.account_id)
                    .bind(&s.status)
                    .bind(email)
                    .bind(&s.data)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
            } else {
                sqlx::query(PUT_SUBSCRIPTION)
                    .bind(&s.id)
                    .bind(s.expected_version)
                    .bind(&s.status)
                    .bind(email)
                    .bind(&s.data)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
            };
            if done.rows_affected() != 1 {
                return Err(super::subscription_conflict(s));
            }
        }
        ExtraWrite::SetProjectMode { project_id, mode } => {
            sqlx::query(SET_PROJECT_MODE)
                .bind(project_id.as_str())
                .bind(mode.as_str())
                .execute(&mut **tx)
                .await?;
        }
        ExtraWrite::EnqueueAppEvent(e) => {
            sqlx::query(ENQUEUE_APP_EVENT)
                .bind(&e.id)
                .bind(e.project_id.as_str())
                .bind(&e.event_type)
                .bind(&e.payload)
                .bind(e.seq)
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Forgets the project's catalog in `mode`, its runs and what they staged: the catalog belongs
/// to the connected account, and that connection is ending or changing. A sync still running
/// finds its run gone and stores nothing.
async fn forget_catalog(tx: &mut Tx, project: &ProjectId, mode: Mode) -> StoreResult<()> {
    for sql in FORGET_CATALOG {
        sqlx::query(sql)
            .bind(project.as_str())
            .bind(mode.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
