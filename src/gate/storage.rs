//! The gate's SQLite storage (Durable Object storage, synchronous `exec`): the gate state as one
//! JSON row, the queue, per-address records keyed by HMAC, the HMAC key, and the send log for
//! stats. Every write happens before the next await, so the output gate covers it.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use worker::{console_error, Result, SqlStorage, SqlStorageValue};

use crate::gate::cooldown::AddressRecord;
use crate::gate::queue::{QueueStore, QueuedItem};
use crate::gate::slots::GateState;

const SCHEMA: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS gate (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)",
    // FIFO by `seq`; an item put back at the head gets a smaller `seq`.
    "CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, seq REAL NOT NULL,
        email TEXT NOT NULL, key TEXT NOT NULL UNIQUE, enqueued_at_ms REAL NOT NULL, attempts INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS queue_by_seq ON queue (seq)",
    "CREATE TABLE IF NOT EXISTS address_limits (key TEXT PRIMARY KEY, record TEXT NOT NULL, last_ms REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sends (at_ms REAL NOT NULL)",
    "DROP TABLE IF EXISTS gate_state",
];

/// How long the send log is kept (stats count the last minute and hour).
const SEND_LOG_MS: u64 = 60 * 60 * 1000;

fn log_failure(what: &str, e: &worker::Error) {
    console_error!(
        "{}",
        json!({"event": "gate_storage_error", "operation": what, "error": e.to_string()})
    );
}

fn ms(value: u64) -> SqlStorageValue {
    (value as f64).into()
}

#[derive(Deserialize)]
struct One<T> {
    value: T,
}

pub struct GateStorage {
    sql: SqlStorage,
}

impl GateStorage {
    pub fn open(sql: SqlStorage) -> Result<Self> {
        for statement in SCHEMA {
            sql.exec(statement, None)?;
        }
        Ok(Self { sql })
    }

    fn values<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>> {
        let rows: Vec<One<T>> = self.sql.exec(query, bindings)?.to_array()?;
        Ok(rows.into_iter().map(|row| row.value).collect())
    }

    fn first<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Option<T>> {
        Ok(self.values(query, bindings)?.into_iter().next())
    }

    fn exec(&self, what: &str, query: &str, bindings: Vec<SqlStorageValue>) -> bool {
        match self.sql.exec(query, bindings) {
            Ok(_) => true,
            Err(e) => {
                log_failure(what, &e);
                false
            }
        }
    }

    pub fn load_gate_state(&self) -> Result<GateState> {
        match self.first::<String>("SELECT state AS value FROM gate WHERE id = 1", vec![])? {
            None => Ok(GateState::default()),
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| worker::Error::RustError(e.to_string()))
            }
        }
    }

    pub fn save_gate_state(&self, gate: &GateState) {
        if let Ok(state) = serde_json::to_string(gate) {
            self.exec(
                "save gate state",
                "INSERT INTO gate (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                vec![state.into()],
            );
        }
    }

    /// The HMAC key for address records: 32 random bytes made on first use, kept here only.
    pub fn address_secret(&self, fresh: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>> {
        let stored: Option<String> = self.first(
            "SELECT value FROM secrets WHERE name = 'address_key'",
            vec![],
        )?;
        let decoded = stored.and_then(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
        });
        if let Some(secret) = decoded.filter(|s| s.len() == 32) {
            return Ok(secret);
        }
        let secret = fresh();
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        self.sql.exec(
            "INSERT OR REPLACE INTO secrets (name, value) VALUES ('address_key', ?)",
            vec![hex.into()],
        )?;
        Ok(secret)
    }

    /// The record for `key`, after deleting every record last touched before `expired_before`.
    pub fn load_address(&self, key: &str, expired_before: u64) -> Option<AddressRecord> {
        self.exec(
            "expire address records",
            "DELETE FROM address_limits WHERE last_ms < ?",
            vec![ms(expired_before)],
        );
        let json: Option<String> = self
            .first(
                "SELECT record AS value FROM address_limits WHERE key = ?",
                vec![key.into()],
            )
            .unwrap_or_else(|e| {
                log_failure("load address record", &e);
                None
            });
        json.and_then(|j| serde_json::from_str(&j).ok())
    }

    pub fn store_address(&self, key: &str, record: &AddressRecord) {
        if let Ok(json) = serde_json::to_string(record) {
            self.exec(
                "store address record",
                "INSERT INTO address_limits (key, record, last_ms) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET record = excluded.record, last_ms = excluded.last_ms",
                vec![key.into(), json.into(), ms(record.last_ms)],
            );
        }
    }

    /// Puts back what an address record held before (or removes it).
    pub fn restore_address(&self, key: &str, previous: Option<&AddressRecord>) {
        match previous {
            Some(record) => self.store_address(key, record),
            None => {
                self.exec(
                    "remove address record",
                    "DELETE FROM address_limits WHERE key = ?",
                    vec![key.into()],
                );
            }
        }
    }

    pub fn record_send(&self, now_ms: u64) {
        self.exec(
            "log send",
            "INSERT INTO sends (at_ms) VALUES (?)",
            vec![ms(now_ms)],
        );
        self.exec(
            "prune send log",
            "DELETE FROM sends WHERE at_ms < ?",
            vec![ms(now_ms.saturating_sub(SEND_LOG_MS))],
        );
    }

    pub fn sends_since(&self, since_ms: u64) -> u64 {
        self.first::<f64>(
            "SELECT COUNT(*) AS value FROM sends WHERE at_ms >= ?",
            vec![ms(since_ms)],
        )
        .ok()
        .flatten()
        .map_or(0, |n| n as u64)
    }

    pub fn oldest_enqueued_at(&self) -> Option<u64> {
        self.first::<Option<f64>>("SELECT MIN(enqueued_at_ms) AS value FROM queue", vec![])
            .ok()
            .flatten()
            .flatten()
            .map(|ms| ms as u64)
    }

    fn insert(&self, seq_query: &str, email: &str, key: &str, now_ms: u64, attempts: u32) -> u64 {
        let inserted = self.exec(
            "enqueue",
            &format!(
                "INSERT INTO queue (seq, email, key, enqueued_at_ms, attempts) VALUES (({seq_query}), ?, ?, ?, ?)"
            ),
            vec![email.into(), key.into(), ms(now_ms), (attempts as i32).into()],
        );
        if inserted {
            self.position_of(key).unwrap_or(0)
        } else {
            0
        }
    }

    /// Puts an item back at the head (after a throttled or failed first attempt).
    pub fn push_front(&mut self, email: &str, key: &str, now_ms: u64, attempts: u32) -> u64 {
        self.insert(
            "SELECT COALESCE(MIN(seq), 1) - 1 FROM queue",
            email,
            key,
            now_ms,
            attempts,
        )
    }
}

#[derive(Deserialize)]
struct ItemRow {
    id: f64,
    email: String,
    key: String,
    enqueued_at_ms: f64,
    attempts: f64,
}

impl QueueStore for GateStorage {
    fn len(&self) -> u64 {
        self.first::<f64>("SELECT COUNT(*) AS value FROM queue", vec![])
            .ok()
            .flatten()
            .map_or(0, |n| n as u64)
    }

    fn position_of(&self, key: &str) -> Option<u64> {
        self.first::<f64>(
            "SELECT COUNT(*) AS value FROM queue WHERE seq <= (SELECT seq FROM queue WHERE key = ?)",
            vec![key.into()],
        )
        .ok()
        .flatten()
        .filter(|n| *n > 0.0)
        .map(|n| n as u64)
    }

    /// Appends; 0 means it could not be stored (and is logged).
    fn push(&mut self, email: &str, key: &str, now_ms: u64, attempts: u32) -> u64 {
        self.insert(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM queue",
            email,
            key,
            now_ms,
            attempts,
        )
    }

    fn head(&self) -> Option<QueuedItem> {
        let rows: Result<Vec<ItemRow>> = self
            .sql
            .exec(
                "SELECT id, email, key, enqueued_at_ms, attempts FROM queue ORDER BY seq LIMIT 1",
                None,
            )
            .and_then(|cursor| cursor.to_array());
        match rows {
            Ok(rows) => rows.into_iter().next().map(|r| QueuedItem {
                id: r.id as u64,
                email: r.email,
                key: r.key,
                enqueued_at_ms: r.enqueued_at_ms as u64,
                attempts: r.attempts as u32,
            }),
            Err(e) => {
                log_failure("read queue head", &e);
                None
            }
        }
    }

    fn remove(&mut self, id: u64) {
        self.exec("dequeue", "DELETE FROM queue WHERE id = ?", vec![ms(id)]);
    }

    fn set_attempts(&mut self, id: u64, attempts: u32) {
        self.exec(
            "count attempt",
            "UPDATE queue SET attempts = ? WHERE id = ?",
            vec![(attempts as i32).into(), ms(id)],
        );
    }
}
