//! PostgreSQL, for scale-out: reads through sqlx's pool, turns and ledger events through the
//! writer task ([`writer`]) on the same pool.

mod writer;

use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

use super::StoreResult;
use super::conn::{Backend, RowsAffected};
use super::migrations::migrator;
use super::sql::Dialect;
use super::store::SqlStore;

impl Backend for Postgres {
    const LABEL: &'static str = "postgres";
    const DIALECT: Dialect = Dialect::Postgres;
    const BEGIN: &'static str = "BEGIN";
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// Connects to (and migrates) the database of a `postgres://…` URL and starts its writer.
pub(super) async fn open(url: &str) -> StoreResult<SqlStore<Postgres>> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    migrator().run(&pool).await?;
    let writer = writer::spawn(pool.clone());
    let listening = crate::changes::Listening::default();
    let feed = crate::changes::listen(url.to_owned(), listening.clone());
    Ok(SqlStore::new(pool, writer).with_feed(feed, listening))
}
