//! The seam the SQL store runs through: [`SqlExecutor`] runs one statement with its bound
//! [`SqlValue`]s, reads every row by column name and says what it cost ([`RowUsage`]). The
//! Durable Object's SQL implements it in production (the Worker crate's `DurableSql`, with the
//! cursor's billed `rowsRead` and `rowsWritten`), bundled SQLite in the conformance suite.

use serde::de::DeserializeOwned;

use crate::usage::RowUsage;

/// A value bound to a statement's `?`.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(value: &str) -> Self {
        Self::Text(value.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<i32> for SqlValue {
    fn from(value: i32) -> Self {
        Self::Integer(value.into())
    }
}

/// Integers beyond SQLite's `i64` (never met: times, counts, ids) saturate.
impl From<u64> for SqlValue {
    fn from(value: u64) -> Self {
        Self::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<i64> for SqlValue {
    fn from(value: i64) -> Self {
        Self::Integer(value)
    }
}

impl From<f64> for SqlValue {
    fn from(value: f64) -> Self {
        Self::Real(value)
    }
}

/// Where the statements run: one statement with its bindings, every row it returns read into
/// `T` by column name (serde), and the rows it read and wrote by the database's own count. An
/// error is the database's own message.
pub trait SqlExecutor {
    fn exec<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> Result<(Vec<T>, RowUsage), String>;
}
