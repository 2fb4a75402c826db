//! [`DurableSql`]: the gate's [`SqlExecutor`] in production, the Durable Object's SQLite through
//! its synchronous `exec`. It only converts bindings, reads rows by column name and reads the
//! cursor's billed counters (`rowsRead`, `rowsWritten`, once every row is read); every statement
//! and decision is in `signup_verify_gate::sql_store`.

use serde::de::DeserializeOwned;
use worker::{SqlStorage, SqlStorageValue};

use signup_verify_gate::sql_store::{SqlExecutor, SqlValue};
use signup_verify_gate::usage::RowUsage;

pub struct DurableSql(pub SqlStorage);

impl SqlExecutor for DurableSql {
    fn exec<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> Result<(Vec<T>, RowUsage), String> {
        let bindings = bindings
            .into_iter()
            .map(|value| match value {
                SqlValue::Null => SqlStorageValue::Null,
                SqlValue::Integer(n) => SqlStorageValue::Integer(n),
                SqlValue::Real(x) => SqlStorageValue::Float(x),
                SqlValue::Text(s) => SqlStorageValue::String(s),
            })
            .collect::<Vec<_>>();
        let cursor = self.0.exec(query, bindings).map_err(|e| e.to_string())?;
        let rows = cursor.to_array().map_err(|e| e.to_string())?;
        let used = RowUsage {
            rows_read: cursor.rows_read() as u64,
            rows_written: cursor.rows_written() as u64,
        };
        Ok((rows, used))
    }
}
