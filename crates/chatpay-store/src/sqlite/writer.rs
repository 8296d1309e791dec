//! SQLite's group-commit writer: a thread of its own that owns one connection, and the one
//! place that turns a [`TurnWrite`] into SQLite calls.
//!
//! A batch is `BEGIN IMMEDIATE`, one `UPDATE` per turn, one `INSERT` per frame, each turn's
//! other rows (their statements from `ExtraWrite::statements`), one `INSERT` per webhook event
//! and `COMMIT`, all through statements prepared once (rusqlite's statement cache), without
//! leaving the thread. Through sqlx every statement was a round trip between a tokio task and
//! sqlx's connection thread, and under load each round trip waited for a core: a batch of two
//! turns took milliseconds, most of it waiting.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, ToSql, params_from_iter};
use tokio::sync::oneshot;

use crate::sql::{Arg, numbered};
use crate::write::{
    INSERT_FRAME, MOVE_CONVERSATION, RECORD_EVENT, event_args, frame_args, move_args,
};
use crate::writer::{self, Jobs, Write, Writer, Written};
use crate::{Recorded, StoreError, StoreResult, TurnWrite, WebhookEventRecord};
use chatpay_core::domain::now_millis;

/// Every SQLite connection's settings, the pool's and this writer's alike (WAL journal mode is
/// set once, by the pool, and stays with the file).
pub(super) const PRAGMAS: &[(&str, &str)] = &[
    // A committed turn survives a crash of the process or the machine.
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    // Pages come from a 64 MiB cache per connection. Not memory-mapped: the file grows with
    // every checkpoint, and a mapped connection then unmaps and maps it again at the start of
    // its next read (`munmap`, with a TLB shootdown on every core), which cost about 5% of the
    // webhook benchmark's CPU.
    ("mmap_size", "0"),
    ("cache_size", "-65536"),
    // Statement journals in memory, not in temporary files.
    ("temp_store", "MEMORY"),
    // Checkpoints are this writer's (see `checkpoint`), never inside a commit; a log that a
    // burst grew past 64 MiB is cut back when it restarts.
    ("wal_autocheckpoint", "0"),
    ("journal_size_limit", "67108864"),
];

/// How long an SQLite connection waits for another's write lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the writer finishes a checkpoint while it is writing (see [`checkpoint`]).
const FINISH_EVERY: Duration = Duration::from_millis(100);
/// How often the copier checkpoints while the writer is committing.
const COPY_EVERY: Duration = Duration::from_millis(20);
/// The log's length (in pages) from which it is checkpointed: below it, a commit syncs only the
/// log. Under load the log passes it within milliseconds and checkpoints run as often as the
/// periods above allow; at a few turns a second a checkpoint runs every second or so, instead of
/// syncing the database file beside nearly every commit (which made a lone turn's commit about
/// 10% slower).
const CHECKPOINT_FROM: i32 = 128;

thread_local! {
    /// Pages in the writer's log after its last commit, from SQLite's write-ahead log hook.
    static LOG_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The write-ahead log hook: SQLite calls it on the committing thread after each commit.
fn note_log_length(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_PAGES.set(pages);
    Ok(())
}

/// Opens the writer's connection to the (already migrated) database file and starts its thread,
/// and the log copier's beside it (see [`checkpoint`]).
pub(super) async fn spawn(path: &Path) -> StoreResult<Writer> {
    let conn = open(path)?;
    let copier = spawn_copier(open(path)?)?;
    let (writer, jobs) = Writer::channel();
    let (ready, started) = oneshot::channel();
    std::thread::Builder::new()
        .name("chatpay-sqlite-writer".to_owned())
        .spawn(move || run(conn, jobs, copier, ready))
        .map_err(|e| StoreError::Other(anyhow::anyhow!("cannot start the SQLite writer: {e}")))?;
    started.await.map_err(|_| {
        StoreError::Other(anyhow::anyhow!("the SQLite writer stopped while starting"))
    })??;
    Ok(writer)
}

/// A connection set up as the pool's ([`PRAGMAS`]): WAL with `synchronous = FULL`, so a
/// turn is answered only once it is on disk.
fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(db_error)?;
    // Every statement a batch may run stays prepared.
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    for &(name, value) in PRAGMAS {
        conn.pragma_update(None, name, value).map_err(db_error)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(db_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(anyhow::anyhow!(
            "the SQLite database is in {mode} journal mode, not WAL"
        )));
    }
    Ok(conn)
}

/// Starts the log copier: a thread that checkpoints every [`COPY_EVERY`] while the writer is
/// committing (each commit that leaves the log at [`CHECKPOINT_FROM`] pages or more nudges
/// it), and once a second regardless (writes made through the pool, such as a catalog sync, do
/// not nudge it). It stops with the writer.
fn spawn_copier(conn: Connection) -> StoreResult<mpsc::SyncSender<()>> {
    let (nudge, nudged) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("chatpay-sqlite-checkpoint".to_owned())
        .spawn(move || {
            while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) =
                nudged.recv_timeout(Duration::from_secs(1))
            {
                checkpoint(&conn);
                // Leaves the writer room to finish its own checkpoints between the copier's.
                std::thread::sleep(COPY_EVERY);
            }
        })
        .map_err(|e| {
            StoreError::Other(anyhow::anyhow!("cannot start the SQLite checkpointer: {e}"))
        })?;
    Ok(nudge)
}

/// The thread: prepares its statements (telling the opener whether that worked), then commits
/// batches until the store is dropped.
fn run(
    conn: Connection,
    jobs: Jobs,
    copier: mpsc::SyncSender<()>,
    ready: oneshot::Sender<StoreResult<()>>,
) {
    let mut statements = match Statements::prepare(&conn) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(db_error(e)));
            return;
        }
    };
    // (After `open`: the `wal_autocheckpoint` pragma replaces any hook.)
    conn.wal_hook(Some(note_log_length));
    let _ = ready.send(Ok(()));
    let mut checkpointed = Instant::now();
    writer::serve_blocking(
        jobs,
        |writes| commit_batch(&conn, &mut statements, &writes),
        || {
            if LOG_PAGES.get() < CHECKPOINT_FROM {
                return;
            }
            if checkpointed.elapsed() >= FINISH_EVERY && checkpoint(&conn) {
                checkpointed = Instant::now();
            }
            // If the channel is full, a nudge is already waiting.
            let _ = copier.try_send(());
        },
    );
}

/// Copies the write-ahead log back into the database. Two connections do it. The copier thread
/// checkpoints beside the writer, whenever the writer has committed (and the log holds at least
/// [`CHECKPOINT_FROM`] pages): that is most of the work
/// (writing the pages into the database file and syncing it) and the writer does not wait for
/// it. But a checkpoint run beside a busy writer never catches up, since the writer appends
/// while it copies; and the log restarts from its top only once it has been copied whole, so
/// under steady writes the log grew by about 100 MB a second, every commit writing to fresh
/// file pages. So the writer also checkpoints itself, between batches, every [`FINISH_EVERY`]:
/// nothing is appended meanwhile, it copies the little the copier has not, and the next
/// transaction restarts the log. Returns false if another checkpoint was running (nothing
/// done; try again later).
fn checkpoint(conn: &Connection) -> bool {
    let started = Instant::now();
    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match outcome {
        Ok((busy, log, copied)) => {
            tracing::trace!(busy, log, copied, took = ?started.elapsed(), "checkpoint");
            busy == 0
        }
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed");
            false
        }
    }
}

/// The statements every batch runs, prepared once.
struct Statements<'c> {
    begin: rusqlite::Statement<'c>,
    commit: rusqlite::Statement<'c>,
    rollback: rusqlite::Statement<'c>,
    move_conversation: rusqlite::Statement<'c>,
    insert_frame: rusqlite::Statement<'c>,
    record_event: rusqlite::Statement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Statements<'c>> {
        Ok(Statements {
            // IMMEDIATE: take the write lock up front, waiting for other writers (busy timeout).
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            rollback: conn.prepare("ROLLBACK")?,
            move_conversation: conn.prepare(&numbered(MOVE_CONVERSATION))?,
            insert_frame: conn.prepare(&numbered(INSERT_FRAME))?,
            record_event: conn.prepare(&numbered(RECORD_EVENT))?,
        })
    }
}

/// Commits the batch in one transaction. If that fails as a whole, each write is retried in its
/// own transaction so that one bad write cannot sink the others; a failure that is not the
/// write's own (the disk) fails each of them again, and every submitter hears of it.
fn commit_batch(
    conn: &Connection,
    s: &mut Statements<'_>,
    writes: &[Write],
) -> Vec<StoreResult<Written>> {
    match commit_together(conn, s, writes) {
        Ok(results) => results,
        Err(e) if writes.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, writes = writes.len(), "batch commit failed; committing writes one by one");
            writes
                .iter()
                .map(|write| {
                    commit_together(conn, s, std::slice::from_ref(write)).and_then(|mut v| {
                        v.pop().unwrap_or_else(|| {
                            Err(StoreError::Other(anyhow::anyhow!("no result for a write")))
                        })
                    })
                })
                .collect()
        }
    }
}

fn commit_together(
    conn: &Connection,
    s: &mut Statements<'_>,
    writes: &[Write],
) -> StoreResult<Vec<StoreResult<Written>>> {
    let started = Instant::now();
    s.begin.execute([]).map_err(db_error)?;
    let written = write_all(conn, s, writes).and_then(|results| {
        let wrote = started.elapsed();
        s.commit.execute([]).map_err(db_error)?;
        tracing::trace!(writes = writes.len(), ?wrote, took = ?started.elapsed(), "batch");
        Ok(results)
    });
    if written.is_err()
        && !conn.is_autocommit()
        && let Err(e) = s.rollback.execute([])
    {
        tracing::error!(error = %e, "rollback of a failed batch failed");
    }
    written
}

fn write_all(
    conn: &Connection,
    s: &mut Statements<'_>,
    writes: &[Write],
) -> StoreResult<Vec<StoreResult<Written>>> {
    let now = now_millis();
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        match write {
            Write::Turn(turn) => results.push(write_turn(conn, s, turn, now)?),
            Write::Event(e) => {
                let recorded = record(&mut s.record_event, e).map_err(db_error)?;
                results.push(Ok(Written::Event(recorded)));
            }
        }
    }
    Ok(results)
}

/// One turn; `Ok(Err(conflict))` when its conversation moved on (the turn fails alone).
fn write_turn(
    conn: &Connection,
    s: &mut Statements<'_>,
    turn: &TurnWrite,
    now: i64,
) -> StoreResult<StoreResult<Written>> {
    // The conversation moves only from the seq its turn started at.
    let moved = s
        .move_conversation
        .execute(params_from_iter(move_args(turn, now)))
        .map_err(db_error)?;
    if moved != 1 {
        return Ok(Err(turn.conflict()));
    }
    for extra in &turn.extra {
        for st in extra.statements(now) {
            let changed = conn
                .prepare_cached(&numbered(&st.sql))
                .and_then(|mut prepared| prepared.execute(params_from_iter(&st.args)))
                .map_err(db_error)?;
            if let Some(refused) = st.check.and_then(|c| c.refuses(changed as u64)) {
                return Err(refused);
            }
        }
    }
    for f in &turn.frames {
        s.insert_frame
            .execute(params_from_iter(frame_args(&turn.conversation, f, now)))
            .map_err(db_error)?;
    }
    Ok(Ok(Written::Turn))
}

/// Inserts the event unless its id is stored (earlier in this batch included).
fn record(
    insert: &mut rusqlite::Statement<'_>,
    e: &WebhookEventRecord,
) -> rusqlite::Result<Recorded> {
    let inserted = insert.execute(params_from_iter(event_args(e)))?;
    Ok(if inserted == 1 {
        Recorded::New
    } else {
        Recorded::Duplicate
    })
}

/// An argument as SQLite takes it (a boolean is an integer, as sqlx stores it).
impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Text(Some(t)) => ValueRef::Text(t.as_bytes()),
            Arg::Int(Some(i)) => ValueRef::Integer(*i),
            Arg::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Arg::Text(None) | Arg::Int(None) => ValueRef::Null,
        }))
    }
}

/// Uniqueness failures are conflicts, as from sqlx; anything else is an internal error.
fn db_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::Other(anyhow::Error::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer's connection (`open`) to a fresh database in WAL mode, as migrations leave it.
    fn writer_connection() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "journal_mode", "WAL")
            .unwrap();
        let conn = open(&path).unwrap();
        (dir, conn)
    }

    /// The writer's connection gets every setting the pool's connections get, and actually
    /// holds them (quoted pragma values included).
    #[test]
    fn writer_connection_is_set_up_like_the_pool() {
        let (_dir, conn) = writer_connection();
        let get = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(get("synchronous"), "2", "FULL");
        assert_eq!(get("foreign_keys"), "1");
        assert_eq!(get("temp_store"), "2", "MEMORY");
        assert_eq!(get("cache_size"), "-65536");
        assert_eq!(get("wal_autocheckpoint"), "0");
        assert_eq!(get("journal_size_limit"), "67108864");
        assert_eq!(get("journal_mode"), "wal");
    }

    /// The checkpoint policy reads the log's length from SQLite's hook, registered after the
    /// pragmas (one of which would replace it).
    #[test]
    fn the_log_hook_reports_the_log_length_after_each_commit() {
        let (_dir, conn) = writer_connection();
        conn.wal_hook(Some(note_log_length));
        LOG_PAGES.set(0);
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let after_one = LOG_PAGES.get();
        assert!(after_one > 0);
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .unwrap();
        assert!(LOG_PAGES.get() >= after_one + 100_000 / 4096);
    }
}
