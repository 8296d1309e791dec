//! What both backends share: a [`Statement`] (SQL text and its arguments, as values) and the
//! [`Dialect`] where the two differ.
//!
//! A statement is data, not a call into a driver, so that it is written once and run by either
//! backend: through sqlx (`super::store`, the PostgreSQL writer) or through rusqlite (SQLite's
//! writer thread). Every statement is written in PostgreSQL's `$N` style; sqlx's SQLite driver
//! reads `$N` itself and SQLite's writer rewrites them as `?N` ([`numbered`]). This module
//! depends on no backend.

use std::borrow::Cow;

use super::StoreError;

/// Where the two backends' SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `rows` groups of `width` parameters for a multi-row `VALUES`, numbered in text order.
    /// SQLite gets plain `?`: with `$N` names, preparing a statement of a thousand parameters
    /// is quadratic in SQLite.
    pub(crate) fn rows(self, rows: usize, width: usize) -> String {
        let mut out = String::with_capacity(rows * width * 5);
        for r in 0..rows {
            out.push_str(if r > 0 { ",(" } else { "(" });
            for c in 0..width {
                if c > 0 {
                    out.push(',');
                }
                match self {
                    Dialect::Sqlite => out.push('?'),
                    Dialect::Postgres => {
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

/// A value for one parameter. The three column types the schema uses, each nullable where a
/// column is: `None` binds a typed `NULL` (PostgreSQL needs the type, in `COALESCE($4, …)`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Bool(bool),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// One SQL statement with its arguments, positional (`$1` is the first).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement<'a> {
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg<'a>>,
    /// Set on a write guarded by a version: it must change exactly one row, or its turn fails
    /// with this conflict.
    pub check: Option<VersionCheck<'a>>,
}

/// A statement of `sql`, to which [`Statement::bind`] adds the arguments in order.
pub(crate) fn sql<'a>(sql: impl Into<Cow<'static, str>>) -> Statement<'a> {
    Statement {
        sql: sql.into(),
        args: Vec::new(),
        check: None,
    }
}

impl<'a> Statement<'a> {
    pub(crate) fn bind(mut self, arg: impl Into<Arg<'a>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The statement must change exactly one row (see [`VersionCheck`]).
    pub(crate) fn checked(mut self, check: VersionCheck<'a>) -> Self {
        self.check = Some(check);
        self
    }
}

/// What a version-guarded write was: "`what` `id` is no longer at version `version`" when
/// another write got there first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VersionCheck<'a> {
    pub what: &'static str,
    pub id: &'a str,
    pub version: i64,
}

impl VersionCheck<'_> {
    /// The error of a write that changed `changed` rows: `None` if it changed the one it should.
    pub(crate) fn refuses(&self, changed: u64) -> Option<StoreError> {
        (changed != 1).then(|| {
            StoreError::Conflict(format!(
                "{} {} is no longer at version {}",
                self.what, self.id, self.version
            ))
        })
    }
}

/// Statements' `$N` parameters as `?N`, for rusqlite. SQLite numbers `$N` (a name to it) in
/// order of first appearance, so `SET a = $2 … WHERE id = $1` would take the first positional
/// value for `$2`; `?N` is parameter N wherever it appears. (sqlx resolves `$N` by name itself.)
pub(crate) fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Rows per multi-row insert of events (9 parameters each).
pub(crate) const EVENT_ROWS_PER_INSERT: usize = 100;
/// Rows per multi-row insert of frames, staged objects or products (5 parameters each, well
/// under both backends' limits).
pub(crate) const ROWS_PER_INSERT: usize = 200;
/// Conversations per multi-row update (5 parameters each).
pub(crate) const TURNS_PER_UPDATE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_check_refuses_anything_but_one_row() {
        let check = VersionCheck {
            what: "order",
            id: "ord_1",
            version: 3,
        };
        assert!(check.refuses(1).is_none());
        let err = check.refuses(0).unwrap();
        assert_eq!(
            err.to_string(),
            "conflict: order ord_1 is no longer at version 3"
        );
    }
}
