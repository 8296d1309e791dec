//! SQLite, the default backend: one database file in WAL mode with `synchronous = FULL`, so a
//! committed turn survives a crash of the process or the machine. Reads go through sqlx's pool
//! (readers never wait for the writer); turns and ledger events through the writer thread
//! ([`writer`]), which owns a connection of its own.

mod writer;

use std::str::FromStr;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::conn::{Backend, RowsAffected};
use super::migrations::migrator;
use super::sql::Dialect;
use super::store::SqlStore;
use super::{StoreError, StoreResult};

impl Backend for Sqlite {
    const LABEL: &'static str = "sqlite";
    const DIALECT: Dialect = Dialect::Sqlite;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// Opens (creating and migrating) the database file of a `sqlite://FILE` URL and starts its
/// writer.
pub(super) async fn open(url: &str) -> StoreResult<SqlStore<Sqlite>> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Other(anyhow::anyhow!(
            "an in-memory SQLite database cannot be used: turns must survive a restart; use sqlite://FILE"
        )));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("bad SQLite URL {url:?}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(writer::BUSY_TIMEOUT);
    let options = writer::PRAGMAS
        .iter()
        .fold(options, |o, &(name, value)| o.pragma(name, value));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options.clone())
        .await?;
    migrator().run(&pool).await?;
    let writer = writer::spawn(options.get_filename()).await?;
    Ok(SqlStore::new(pool, writer))
}
