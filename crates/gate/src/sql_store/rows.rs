//! How `SqlGateStore` meets SQLite: the schema's creation and migration at open, the row shapes
//! statements return, and the helpers every `GateStore` method runs its statements through (a
//! failed statement is a `StoreError` naming its operation).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use std::cell::Cell;

use crate::sql_executor::SqlExecutor;
use crate::sql_executor::SqlValue;
use crate::sql_schema::{
    recovery, upgrade_from_v1, COUNT_BEHIND_SQL, DROPPED_INDEXES, READ_VERSION_SQL, SCHEMA_VERSION,
    TABLES_SQL, V1,
};
use crate::store::{GateStore, OutboxEvent, StoreError, StoreResult};
use crate::tracking::Signup;
use crate::usage::RowUsage;

#[derive(Deserialize)]
pub(super) struct One<T> {
    pub(super) value: T,
}

/// An item's place in the fair order. `seq` goes below zero when items are put back at the front
/// (`MIN(seq) - 1`).
#[derive(Deserialize)]
pub(super) struct Place {
    pub(super) tag: u64,
    pub(super) seq: i64,
}

#[derive(Deserialize)]
pub(super) struct ItemRow {
    pub(super) id: u64,
    pub(super) tag: u64,
    pub(super) email: String,
    pub(super) key: String,
    pub(super) enqueued_at_ms: u64,
    pub(super) attempts: u32,
    pub(super) request_id: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignupRow {
    pub(super) key: String,
    pub(super) record: String,
}

#[derive(Deserialize)]
pub(super) struct EventRow {
    pub(super) id: String,
    pub(super) key: String,
    pub(super) body: String,
    pub(super) created_ms: u64,
    pub(super) next_attempt_ms: u64,
    pub(super) attempts: u32,
    pub(super) releases_cleanup: u8,
}

impl From<EventRow> for OutboxEvent {
    fn from(row: EventRow) -> Self {
        Self {
            id: row.id,
            key: row.key,
            body: row.body,
            created_ms: row.created_ms,
            next_attempt_ms: row.next_attempt_ms,
            attempts: row.attempts,
            releases_cleanup: row.releases_cleanup != 0,
        }
    }
}

pub struct SqlGateStore<E> {
    pub(super) sql: E,
    /// The queue's length, counted once and then kept by every statement that adds or removes
    /// items (this object is the table's only writer); `None` after a failed write, so the
    /// next read counts again.
    pub(super) queue_len: Cell<Option<u64>>,
    /// When expired address records are next deleted.
    pub(super) next_address_expiry_ms: Cell<u64>,
    /// Rows read and written since the gate last took them (`GateStore::take_row_usage`).
    pub(super) usage: Cell<RowUsage>,
}

impl<E: SqlExecutor> SqlGateStore<E> {
    /// Opens the store: when the schema is current, one row read and the indexes a rolled-back
    /// deploy may have made again dropped; a later version is left as it is; an older one is
    /// brought up to date (`sql_schema::recovery`, `V1`, `upgrade_from_v1`).
    pub fn open(sql: E) -> StoreResult<Self> {
        let usage = Cell::new(RowUsage::default());
        let run = |statement: &str| {
            sql.exec::<IgnoredAny>(statement, vec![]).map(|(_, used)| {
                let mut total = usage.get();
                total.add(used);
                usage.set(total);
            })
        };
        // A database without the version table fails the read: it is older, or new.
        let version = match sql.exec::<One<i64>>(READ_VERSION_SQL, vec![]) {
            Ok((rows, used)) => {
                usage.set(used);
                rows.first().map_or(0, |v| v.value)
            }
            Err(_) => 0,
        };
        if version < SCHEMA_VERSION {
            let existing: Vec<One<String>> = sql
                .exec(TABLES_SQL, vec![])
                .map(|(rows, _)| rows)
                .map_err(|e| StoreError::failed("list tables", e))?;
            let existing: Vec<String> = existing.into_iter().map(|row| row.value).collect();
            for statement in recovery(&existing) {
                run(&statement).map_err(|e| StoreError::failed("finish an upgrade", e))?;
            }
            for statement in V1 {
                run(statement).map_err(|e| StoreError::failed("create schema", e))?;
            }
            // Queues made before request ids existed lack the column: a query naming it fails
            // exactly then (no PRAGMA needed).
            if run("SELECT request_id FROM fair_queue LIMIT 0").is_err() {
                run("ALTER TABLE fair_queue ADD COLUMN request_id TEXT")
                    .map_err(|e| StoreError::failed("add fair_queue.request_id", e))?;
            }
            for statement in upgrade_from_v1() {
                run(&statement).map_err(|e| StoreError::failed("upgrade schema", e))?;
            }
        } else if version == SCHEMA_VERSION {
            // Only a cost if they are there: a failure is no reason to refuse signups.
            for statement in DROPPED_INDEXES {
                let _ = run(statement);
            }
        }
        Ok(Self {
            sql,
            queue_len: Cell::new(None),
            next_address_expiry_ms: Cell::new(0),
            usage,
        })
    }

    pub(super) fn exec(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<()> {
        self.rows::<IgnoredAny>(operation, query, bindings)
            .map(drop)
    }

    pub(super) fn rows<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<Vec<T>> {
        let (rows, used) = self
            .sql
            .exec(query, bindings)
            .map_err(|e| StoreError::failed(operation, e))?;
        let mut total = self.usage.get();
        total.add(used);
        self.usage.set(total);
        Ok(rows)
    }

    pub(super) fn value<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<Option<T>> {
        let rows: Vec<One<T>> = self.rows(operation, query, bindings)?;
        Ok(rows.into_iter().next().map(|row| row.value))
    }

    /// Signup rows, read back; a row that no longer reads (it was written by this code, so only
    /// a schema change could cause it) is forgotten rather than left to block every sweep.
    pub(super) fn signups(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<Vec<(String, Signup)>> {
        let rows: Vec<SignupRow> = self.rows(operation, query, bindings)?;
        let mut signups = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_str(&row.record) {
                Ok(signup) => signups.push((row.key, signup)),
                Err(_) => self.exec(
                    "forget unreadable signup",
                    "DELETE FROM signups WHERE key = ?",
                    vec![row.key.into()],
                )?,
            }
        }
        Ok(signups)
    }

    /// Runs a `DELETE … RETURNING id` on the queue and says how many rows went. On failure the
    /// kept length is forgotten (counted again when next read).
    pub(super) fn counted_delete(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<u64> {
        self.rows::<IgnoredAny>(operation, query, bindings)
            .map(|rows| rows.len() as u64)
            .inspect_err(|_| self.queue_len.set(None))
    }

    pub(super) fn count(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<u64> {
        Ok(self.value::<u64>(operation, query, bindings)?.unwrap_or(0))
    }

    /// The 1-based position of the item at `place`, counted from the back: a new item is at or
    /// near the end of the fair order, so this reads a few index entries, not the whole queue
    /// ahead of it.
    pub(super) fn position_at(&self, place: &Place) -> StoreResult<u64> {
        let behind = self.count(
            "queue position",
            COUNT_BEHIND_SQL,
            vec![place.tag.into(), place.seq.into()],
        )?;
        Ok(self.queue_len()?.saturating_sub(behind))
    }
}
