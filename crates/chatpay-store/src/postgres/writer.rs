//! PostgreSQL's group-commit writer: the one path by which a PostgreSQL store commits turns, and
//! the one place that turns a [`TurnWrite`] into PostgreSQL calls.
//!
//! A task on the pool ([`Writer::spawn`]): its statements are network round trips anyway, so a
//! batch is one transaction of as few statements as it can be: one multi-row `UPDATE` moves
//! every conversation of the batch, multi-row `INSERT`s record every webhook event of the batch
//! (its own and those of the turns that won), each turn's other rows run their statements
//! (`ExtraWrite::statements`) in order, multi-row `INSERT`s add the frames.

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, Transaction};

use crate::conn::{Columns, Conn};
use crate::sql::{Dialect, EVENT_ROWS_PER_INSERT, ROWS_PER_INSERT, TURNS_PER_UPDATE, sql};
use crate::write::{frame_args, frames_sql, move_args, moves_sql, record_events};
use crate::writer::{Write, Writer, Written, first_of_each};
use crate::{
    ExtraWrite, Recorded, StoreError, StoreResult, StoredFrame, TurnWrite, WebhookEventRecord,
};
use chatpay_core::domain::{ConversationId, now_millis};

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
    let mut recorded = insert_events(&mut tx, &events).await?.into_iter().take(own);
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
            results.push(Err(turn.conflict()));
            continue;
        }
        for extra in &turn.extra {
            if matches!(extra, ExtraWrite::RecordEvent(_)) {
                // Inserted with the batch's events above.
                continue;
            }
            for st in extra.statements(now) {
                let check = st.check;
                let changed = tx.execute(st).await?;
                if let Some(refused) = check.and_then(|c| c.refuses(changed)) {
                    return Err(refused);
                }
            }
        }
        frames.extend(turn.frames.iter().map(|f| (&turn.conversation, f)));
        results.push(Ok(Written::Turn));
    }
    insert_frames(&mut tx, &frames, now).await?;
    notify(&mut tx, &turns, &won).await?;
    let t_insert = t0.elapsed();
    tx.commit().await?;
    tracing::trace!(?t_begin, ?t_update, ?t_insert, total = ?t0.elapsed(), "commit phases");
    Ok(results)
}

/// Inserts the batch's events in multi-row statements (`ON CONFLICT (id) DO NOTHING`). Returns,
/// per event in order, whether it is new: the first of each id that was inserted.
async fn insert_events(tx: &mut Tx, events: &[&WebhookEventRecord]) -> StoreResult<Vec<Recorded>> {
    let mut inserted: HashSet<String> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
        for row in tx
            .fetch_all(record_events(Dialect::Postgres, chunk))
            .await?
        {
            inserted.insert(row.text("id")?);
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
        let mut st = sql(moves_sql(Dialect::Postgres, chunk.len()));
        st.args = chunk.iter().flat_map(|t| move_args(t, now)).collect();
        for row in tx.fetch_all(st).await? {
            let id = row.text("id")?;
            if let Some(t) = chunk.iter().find(|t| t.conversation.as_str() == id) {
                won.insert(t.conversation.as_str());
            }
        }
    }
    Ok(won)
}

/// Tells the other instances where each conversation that moved now is: one `pg_notify` per
/// moved conversation, delivered when the transaction commits (and not at all if it does not).
/// Only the position, never the frames: listeners read those from the table.
async fn notify(tx: &mut Tx, turns: &[&TurnWrite], won: &HashSet<&str>) -> StoreResult<()> {
    let moved: Vec<String> = turns
        .iter()
        .filter(|t| won.contains(t.conversation.as_str()))
        .map(|t| crate::changes::Change::payload(&t.conversation, t.last_seq))
        .collect();
    for chunk in moved.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (1..=chunk.len()).map(|i| format!("(${i})")).collect();
        let mut st = sql(format!(
            "SELECT pg_notify('{}', p) FROM (VALUES {}) AS t(p)",
            crate::changes::CHANNEL,
            values.join(", ")
        ));
        for p in chunk {
            st = st.bind(p.as_str());
        }
        tx.fetch_all(st).await?;
    }
    Ok(())
}

async fn insert_frames(
    tx: &mut Tx,
    frames: &[(&ConversationId, &StoredFrame)],
    now: i64,
) -> StoreResult<()> {
    for chunk in frames.chunks(ROWS_PER_INSERT) {
        let mut st = sql(frames_sql(Dialect::Postgres, chunk.len()));
        st.args = chunk
            .iter()
            .flat_map(|(conversation, f)| frame_args(conversation, f, now))
            .collect();
        tx.execute(st).await?;
    }
    Ok(())
}
