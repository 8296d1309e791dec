//! How the store talks to sqlx: the one place that names sqlx's generic bounds.
//!
//! The store's code (`super::store`, `super::postgres::writer`) never calls a driver: it builds
//! [`Statement`]s, runs them on a connection through [`Conn`] and reads the rows through
//! [`Columns`]. Both traits are implemented here once, for any sqlx driver whose types fit, and
//! a [`Backend`] is a driver that has them (SQLite and PostgreSQL, in `super::sqlite` and
//! `super::postgres`). So the code written once over a backend needs no sqlx bounds of its own:
//! sqlx's generic `Executor` and `Encode`/`Decode` bounds are written in this file only.

use std::sync::Arc;

use async_trait::async_trait;

use super::sql::{Arg, Dialect, Statement};
use super::{StoreError, StoreResult};

/// A sqlx driver as this store uses it.
pub(crate) trait Backend:
    sqlx::Database<Connection: Conn<Row = <Self as sqlx::Database>::Row>, Row: Columns>
{
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    const LABEL: &'static str;
    const DIALECT: Dialect;
    /// How a writing transaction starts. SQLite's is `BEGIN IMMEDIATE`: it takes the write lock
    /// up front (waiting for it), so a transaction that reads before it writes cannot fail to
    /// upgrade its lock when another writer got in between.
    const BEGIN: &'static str;
}

/// Runs a [`Statement`] on one connection (pooled or in a transaction).
#[async_trait]
pub(crate) trait Conn: Send {
    type Row;
    /// The number of rows it changed.
    async fn execute(&mut self, st: Statement<'_>) -> StoreResult<u64>;
    async fn fetch_all(&mut self, st: Statement<'_>) -> StoreResult<Vec<Self::Row>>;
    async fn fetch_optional(&mut self, st: Statement<'_>) -> StoreResult<Option<Self::Row>>;

    /// The one row, or `NotFound`.
    async fn fetch_one(&mut self, st: Statement<'_>) -> StoreResult<Self::Row> {
        self.fetch_optional(st).await?.ok_or(StoreError::NotFound)
    }
}

/// Reads a row's columns by name, in the types the schema uses.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    /// A text column shared, not copied again (a frame's body).
    fn shared(&self, column: &str) -> StoreResult<Arc<str>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, column: &str) -> StoreResult<bool>;
}

/// `st` as a sqlx query on `DB` (binding encodes each argument at once, so nothing of `st` is
/// borrowed afterwards).
fn query<DB>(st: Statement<'_>) -> sqlx::query::Query<'static, DB, DB::Arguments>
where
    DB: sqlx::Database,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::query(sqlx::AssertSqlSafe(st.sql));
    for arg in &st.args {
        q = match arg {
            Arg::Text(t) => q.bind(t.as_deref()),
            Arg::Int(i) => q.bind(*i),
            Arg::Bool(b) => q.bind(*b),
        };
    }
    q
}

/// What a driver's result of `execute` says: how many rows changed (sqlx has no trait for it).
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

#[async_trait]
impl<C> Conn for C
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<i64>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> bool: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::QueryResult: RowsAffected,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    type Row = <C::Database as sqlx::Database>::Row;

    async fn execute(&mut self, st: Statement<'_>) -> StoreResult<u64> {
        let done = query::<C::Database>(st).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn fetch_all(&mut self, st: Statement<'_>) -> StoreResult<Vec<Self::Row>> {
        Ok(query::<C::Database>(st).fetch_all(self).await?)
    }

    async fn fetch_optional(&mut self, st: Statement<'_>) -> StoreResult<Option<Self::Row>> {
        Ok(query::<C::Database>(st).fetch_optional(self).await?)
    }
}

impl<R> Columns for R
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, column: &str) -> StoreResult<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn shared(&self, column: &str) -> StoreResult<Arc<str>> {
        Ok(Arc::from(self.try_get::<&str, _>(column)?))
    }

    fn int(&self, column: &str) -> StoreResult<i64> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn flag(&self, column: &str) -> StoreResult<bool> {
        Ok(self.try_get(column)?)
    }
}
