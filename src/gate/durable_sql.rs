//! [`DurableSql`]: the gate's [`SqlExecutor`] in production, the Durable Object's SQLite through
//! its synchronous `exec`. It only converts bindings and reads rows by column name; every
//! statement and decision is in `signup_verify_gate::sql_store`.

use serde::de::DeserializeOwned;
use worker::{SqlStorage, SqlStorageValue};

use signup_verify_gate::sql_store::{SqlExecutor, SqlValue};

pub struct DurableSql(pub SqlStorage);

impl SqlExecutor for DurableSql {
    fn exec<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> Result<Vec<T>, String> {
        let bindings = bindings
            .into_iter()
            .map(|value| match value {
                SqlValue::Null => SqlStorageValue::Null,
                SqlValue::Integer(n) => SqlStorageValue::Integer(n),
                SqlValue::Real(x) => SqlStorageValue::Float(x),
                SqlValue::Text(s) => SqlStorageValue::String(s),
            })
            .collect::<Vec<_>>();
        self.0
            .exec(query, bindings)
            .and_then(|cursor| cursor.to_array())
            .map_err(|e| e.to_string())
    }
}
