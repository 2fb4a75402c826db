//! `SqlGateStore`: [`GateStore`] in SQLite, through a small [`SqlExecutor`] (the Durable
//! Object's synchronous `exec` in production, bundled SQLite on the host in the conformance
//! suite), so the very statements that run in production are tested on the host. The gate
//! state is one JSON row; the queue is served by `(tag, seq)`, fair across recipient domains (an
//! item put back at the head gets the smallest `seq`); address records are keyed by HMAC; the
//! send log feeds the stats; tracked signups are JSON rows keyed by HMAC with their next check
//! as an index column; the identities the sends touched are JSON rows keyed by HMAC of the
//! exact address, with their due delete in a partial index (only rows with a delete due cost an
//! index entry); the identity snapshot is one row; the webhook outbox keeps each event's id and
//! body as made.
//!
//! Invariants: every statement runs before the gate's next await, so the output gate holds any
//! reply until it is durable; a failed statement is a [`StoreError`] naming it.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use std::cell::Cell;

use crate::cooldown::AddressRecord;
use crate::identities::Identity;
use crate::identities::Snapshot;
use crate::queue::QueuedItem;
use crate::state::GateState;
use crate::store::has_work;
use crate::store::GateStore;
use crate::store::NewItem;
use crate::store::OutboxEvent;
use crate::store::QueueEnd;
use crate::store::StoreError;
use crate::store::StoreResult;
use crate::tracking::Signup;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::request_id::RequestId;

// The statements a signup runs (besides the enqueue), named so that `make bench` measures these
// very texts (benches/stack.rs, "SQLite statements").
pub const LOAD_ADDRESS_SQL: &str =
    "SELECT record AS value FROM address_limits WHERE key = ? AND last_ms >= ?";
pub const STORE_ADDRESS_SQL: &str =
    "INSERT INTO address_limits (key, record, last_ms) VALUES (?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET record = excluded.record, last_ms = excluded.last_ms";
pub const LOAD_SIGNUP_SQL: &str = "SELECT key, record FROM signups WHERE key = ?";
pub const STORE_SIGNUP_SQL: &str =
    "INSERT INTO signups (key, record, next_check_ms, has_work, signed_up_ms)
     VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET record = excluded.record,
       next_check_ms = excluded.next_check_ms,
       has_work = excluded.has_work, signed_up_ms = excluded.signed_up_ms";
pub const LOAD_IDENTITY_SQL: &str = "SELECT record AS value FROM identities WHERE key = ?";
pub const STORE_IDENTITY_SQL: &str =
    "INSERT INTO identities (key, record, next_cleanup_ms, has_work, sent_ms) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET record = excluded.record,
       next_cleanup_ms = excluded.next_cleanup_ms, has_work = excluded.has_work,
       sent_ms = excluded.sent_ms";
pub const SAVE_STATE_SQL: &str =
    "INSERT INTO gate (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state";
pub const LOG_SEND_SQL: &str = "INSERT INTO sends (at_ms) VALUES (?)";
pub const QUEUED_PLACE_SQL: &str = "SELECT tag, seq FROM fair_queue WHERE key = ?";
pub const LAST_TAG_SQL: &str = "SELECT MAX(tag) AS value FROM fair_queue WHERE domain = ?";
pub const COUNT_BEHIND_SQL: &str =
    "SELECT COUNT(*) AS value FROM fair_queue WHERE (tag, seq) > (?, ?)";

pub const SCHEMA: [&str; 25] = [
    "CREATE TABLE IF NOT EXISTS gate (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)",
    // Served by (tag, seq): fair across recipient domains (`queue::fair_tag`); an item put back
    // at the head gets the smallest `seq`.
    "CREATE TABLE IF NOT EXISTS fair_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, tag REAL NOT NULL,
        seq REAL NOT NULL, domain TEXT NOT NULL, email TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
        enqueued_at_ms REAL NOT NULL, attempts INTEGER NOT NULL, request_id TEXT)",
    "CREATE INDEX IF NOT EXISTS fair_queue_order ON fair_queue (tag, seq)",
    "CREATE INDEX IF NOT EXISTS fair_queue_by_domain ON fair_queue (domain, tag)",
    "CREATE INDEX IF NOT EXISTS fair_queue_by_age ON fair_queue (enqueued_at_ms)",
    // MAX(seq) / MIN(seq) for each new item, without a scan.
    "CREATE INDEX IF NOT EXISTS fair_queue_by_seq ON fair_queue (seq)",
    // The first version's FIFO: whatever it still holds moves to the front of the fair queue,
    // in its order (no introspection needed: the table is made, emptied and dropped each start).
    "CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, seq REAL NOT NULL,
        email TEXT NOT NULL, key TEXT NOT NULL UNIQUE, enqueued_at_ms REAL NOT NULL, attempts INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO fair_queue (tag, seq, domain, email, key, enqueued_at_ms, attempts)
        SELECT 0, seq, '', email, key, enqueued_at_ms, attempts FROM queue",
    "DROP TABLE queue",
    "CREATE TABLE IF NOT EXISTS address_limits (key TEXT PRIMARY KEY, record TEXT NOT NULL, last_ms REAL NOT NULL)",
    // Each admission forgets expired records: a range, not a scan of every address.
    "CREATE INDEX IF NOT EXISTS address_limits_by_last ON address_limits (last_ms)",
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sends (at_ms REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sends_by_time ON sends (at_ms)",
    "DROP TABLE IF EXISTS gate_state",
    "CREATE TABLE IF NOT EXISTS signups (key TEXT PRIMARY KEY, record TEXT NOT NULL,
        next_check_ms REAL, has_work INTEGER NOT NULL, signed_up_ms REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS signups_by_check ON signups (next_check_ms)",
    // Clean-up moved to `identities`: the first lifecycle's index goes (its column goes in
    // `open`, where a probe tells whether the table still has it).
    "DROP INDEX IF EXISTS signups_by_cleanup",
    "CREATE INDEX IF NOT EXISTS signups_by_age ON signups (has_work, signed_up_ms)",
    "CREATE TABLE IF NOT EXISTS identities (key TEXT PRIMARY KEY, record TEXT NOT NULL,
        next_cleanup_ms REAL, has_work INTEGER NOT NULL, sent_ms REAL NOT NULL)",
    // Partial: only an identity with a delete due costs an index entry.
    "CREATE INDEX IF NOT EXISTS identities_by_cleanup ON identities (next_cleanup_ms)
        WHERE next_cleanup_ms IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS identities_done_by_age ON identities (sent_ms) WHERE has_work = 0",
    "CREATE TABLE IF NOT EXISTS identity_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
        snapshot TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS webhook_outbox (id TEXT PRIMARY KEY, key TEXT NOT NULL,
        body TEXT NOT NULL, created_ms REAL NOT NULL, next_attempt_ms REAL NOT NULL,
        attempts INTEGER NOT NULL, releases_cleanup INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_attempt_ms)",
];

/// How long the send log is kept (stats count the last minute and hour).
const SEND_LOG_MS: u64 = 60 * 60 * 1000;
/// Expired address records and old send-log rows are deleted at most this often: the reads
/// skip them anyway, and one DELETE per admission was a statement per signup.
const HOUSEKEEPING_EVERY_MS: u64 = 10_000;

/// Whether a housekeeping DELETE is due at `now_ms`; if so, the next one is set
/// [`HOUSEKEEPING_EVERY_MS`] later.
fn housekeeping_due(next_ms: &Cell<u64>, now_ms: u64) -> bool {
    let due = now_ms >= next_ms.get();
    if due {
        next_ms.set(now_ms.saturating_add(HOUSEKEEPING_EVERY_MS));
    }
    due
}

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

impl From<f64> for SqlValue {
    fn from(value: f64) -> Self {
        Self::Real(value)
    }
}

/// Where the statements run: one statement with its bindings, every row it returns read into
/// `T` by column name (serde). An error is the database's own message.
pub trait SqlExecutor {
    fn exec<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> Result<Vec<T>, String>;
}

/// Milliseconds are stored as SQLite REAL (what a JavaScript number holds).
fn ms(value: u64) -> SqlValue {
    SqlValue::Real(value as f64)
}

#[derive(Deserialize)]
struct One<T> {
    value: T,
}

/// An item's place in the fair order.
#[derive(Deserialize)]
struct Place {
    tag: f64,
    seq: f64,
}

#[derive(Deserialize)]
struct ItemRow {
    id: f64,
    tag: f64,
    email: String,
    key: String,
    enqueued_at_ms: f64,
    attempts: f64,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct SignupRow {
    key: String,
    record: String,
}

#[derive(Deserialize)]
struct EventRow {
    id: String,
    key: String,
    body: String,
    created_ms: f64,
    next_attempt_ms: f64,
    attempts: f64,
    releases_cleanup: f64,
}

impl From<EventRow> for OutboxEvent {
    fn from(row: EventRow) -> Self {
        Self {
            id: row.id,
            key: row.key,
            body: row.body,
            created_ms: row.created_ms as u64,
            next_attempt_ms: row.next_attempt_ms as u64,
            attempts: row.attempts as u32,
            releases_cleanup: row.releases_cleanup != 0.0,
        }
    }
}

pub struct SqlGateStore<E> {
    sql: E,
    /// The queue's length, counted once and then kept by every statement that adds or removes
    /// items (this object is the table's only writer); `None` after a failed write, so the
    /// next read counts again.
    queue_len: Cell<Option<u64>>,
    /// When expired address records, and old send-log rows, are next deleted.
    next_address_expiry_ms: Cell<u64>,
    next_send_prune_ms: Cell<u64>,
}

impl<E: SqlExecutor> SqlGateStore<E> {
    /// Creates the tables that are missing, and brings tables of older versions up to date.
    pub fn open(sql: E) -> StoreResult<Self> {
        let run = |statement: &str| sql.exec::<IgnoredAny>(statement, vec![]).map(drop);
        for statement in SCHEMA {
            run(statement).map_err(|e| StoreError::failed("create schema", e))?;
        }
        // Queues made before request ids existed lack the column: a query naming it fails
        // exactly then (no PRAGMA needed).
        if run("SELECT request_id FROM fair_queue LIMIT 0").is_err() {
            run("ALTER TABLE fair_queue ADD COLUMN request_id TEXT")
                .map_err(|e| StoreError::failed("add fair_queue.request_id", e))?;
        }
        // The first lifecycle kept clean-up on the signup row.
        if run("SELECT cleanup_due FROM signups LIMIT 0").is_ok() {
            run("ALTER TABLE signups DROP COLUMN cleanup_due")
                .map_err(|e| StoreError::failed("drop signups.cleanup_due", e))?;
        }
        Ok(Self {
            sql,
            queue_len: Cell::new(None),
            next_address_expiry_ms: Cell::new(0),
            next_send_prune_ms: Cell::new(0),
        })
    }

    fn exec(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<()> {
        self.rows::<IgnoredAny>(operation, query, bindings)
            .map(drop)
    }

    fn rows<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<Vec<T>> {
        self.sql
            .exec(query, bindings)
            .map_err(|e| StoreError::failed(operation, e))
    }

    fn value<T: DeserializeOwned>(
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
    fn signups(
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
    fn counted_delete(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<u64> {
        self.rows::<IgnoredAny>(operation, query, bindings)
            .map(|rows| rows.len() as u64)
            .inspect_err(|_| self.queue_len.set(None))
    }

    fn count(
        &self,
        operation: &'static str,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> StoreResult<u64> {
        Ok(self
            .value::<f64>(operation, query, bindings)?
            .map_or(0, |n| n as u64))
    }

    /// The 1-based position of the item at `place`, counted from the back: a new item is at or
    /// near the end of the fair order, so this reads a few index entries, not the whole queue
    /// ahead of it.
    fn position_at(&self, place: &Place) -> StoreResult<u64> {
        let behind = self.count(
            "queue position",
            COUNT_BEHIND_SQL,
            vec![place.tag.into(), place.seq.into()],
        )?;
        Ok(self.queue_len()?.saturating_sub(behind))
    }
}

impl<E: SqlExecutor> GateStore for SqlGateStore<E> {
    fn load_state(&self) -> StoreResult<GateState> {
        let json: Option<String> = self.value(
            "load gate state",
            "SELECT state AS value FROM gate WHERE id = 1",
            vec![],
        )?;
        match json {
            None => Ok(GateState::default()),
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::failed("load gate state", e))
            }
        }
    }

    fn save_state(&self, state: &GateState) -> StoreResult<()> {
        let json =
            serde_json::to_string(state).map_err(|e| StoreError::failed("save gate state", e))?;
        self.exec("save gate state", SAVE_STATE_SQL, vec![json.into()])
    }

    fn address_secret(&self, fresh: impl FnOnce() -> StoreResult<Vec<u8>>) -> StoreResult<Vec<u8>> {
        let stored: Option<String> = self.value(
            "load address key",
            "SELECT value FROM secrets WHERE name = 'address_key'",
            vec![],
        )?;
        if let Some(secret) = stored
            .and_then(|h| hex::decode(h).ok())
            .filter(|s| s.len() == 32)
        {
            return Ok(secret);
        }
        let secret = fresh()?;
        self.exec(
            "store address key",
            "INSERT OR REPLACE INTO secrets (name, value) VALUES ('address_key', ?)",
            vec![hex::encode(&secret).into()],
        )?;
        Ok(secret)
    }

    fn queue_len(&self) -> StoreResult<u64> {
        if let Some(len) = self.queue_len.get() {
            return Ok(len);
        }
        let len = self.count(
            "queue length",
            "SELECT COUNT(*) AS value FROM fair_queue",
            vec![],
        )?;
        self.queue_len.set(Some(len));
        Ok(len)
    }

    /// One lookup in the key's unique index, and no statement at all while the queue is empty
    /// (the common case: a signup sent at once).
    fn is_queued(&self, key: &str) -> StoreResult<bool> {
        if self.queue_len()? == 0 {
            return Ok(false);
        }
        let places: Vec<Place> = self.rows("is queued", QUEUED_PLACE_SQL, vec![key.into()])?;
        Ok(!places.is_empty())
    }

    fn queue_order(&self) -> StoreResult<Vec<String>> {
        let keys: Vec<One<String>> = self.rows(
            "queue order",
            "SELECT key AS value FROM fair_queue ORDER BY tag, seq",
            vec![],
        )?;
        Ok(keys.into_iter().map(|row| row.value).collect())
    }

    fn last_tag(&self, domain: &str) -> StoreResult<Option<u64>> {
        let tag: Option<Option<f64>> = self.value("last tag", LAST_TAG_SQL, vec![domain.into()])?;
        Ok(tag.flatten().map(|t| t as u64))
    }

    fn expire(&self, before_ms: u64) -> StoreResult<Vec<String>> {
        let expired: Vec<One<String>> = self.rows(
            "find expired items",
            "SELECT key AS value FROM fair_queue WHERE enqueued_at_ms < ?",
            vec![ms(before_ms)],
        )?;
        if !expired.is_empty() {
            let deleted = self.counted_delete(
                "expire items",
                "DELETE FROM fair_queue WHERE enqueued_at_ms < ? RETURNING id",
                vec![ms(before_ms)],
            )?;
            self.queue_len
                .set(self.queue_len.get().map(|n| n.saturating_sub(deleted)));
        }
        Ok(expired.into_iter().map(|row| row.value).collect())
    }

    fn enqueue(&self, item: NewItem) -> StoreResult<u64> {
        let seq = match item.end {
            QueueEnd::Back => "SELECT COALESCE(MAX(seq), 0) + 1 FROM fair_queue",
            QueueEnd::Front => "SELECT COALESCE(MIN(seq), 1) - 1 FROM fair_queue",
        };
        let placed: Vec<Place> = self.rows(
            "enqueue",
            &format!(
                "INSERT INTO fair_queue (tag, seq, domain, email, key, enqueued_at_ms, attempts, request_id) VALUES (?, ({seq}), ?, ?, ?, ?, ?, ?) RETURNING tag, seq"
            ),
            vec![
                ms(item.tag),
                item.domain.into(),
                item.to.email.as_str().into(),
                item.to.key.into(),
                ms(item.now_ms),
                (item.attempts as i32).into(),
                item.to
                    .request_id
                    .map_or(SqlValue::Null, |id| id.as_str().into()),
            ],
        )?;
        self.queue_len.set(self.queue_len.get().map(|n| n + 1));
        let mine = placed
            .first()
            .ok_or_else(|| StoreError::failed("enqueue", "the insert returned no row"))?;
        self.position_at(mine)
    }

    fn head(&self) -> StoreResult<Option<QueuedItem>> {
        let rows: Vec<ItemRow> = self.rows(
            "read queue head",
            "SELECT id, tag, email, key, enqueued_at_ms, attempts, request_id FROM fair_queue ORDER BY tag, seq LIMIT 1",
            vec![],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let id = row.id as u64;
        // Only parsed addresses are stored; one that no longer parses is not sendable.
        let email =
            EmailAddress::parse(&row.email).map_err(|_| StoreError::UnreadableItem { id })?;
        Ok(Some(QueuedItem {
            id,
            email,
            key: row.key,
            enqueued_at_ms: row.enqueued_at_ms as u64,
            attempts: row.attempts as u32,
            tag: row.tag as u64,
            // An id that does not parse only costs the log lines their request id.
            request_id: row.request_id.as_deref().and_then(RequestId::parse),
        }))
    }

    fn remove(&self, id: u64) -> StoreResult<()> {
        let deleted = self.counted_delete(
            "dequeue",
            "DELETE FROM fair_queue WHERE id = ? RETURNING id",
            vec![ms(id)],
        )?;
        self.queue_len
            .set(self.queue_len.get().map(|n| n.saturating_sub(deleted)));
        Ok(())
    }

    fn set_attempts(&self, id: u64, attempts: u32) -> StoreResult<()> {
        self.exec(
            "count attempt",
            "UPDATE fair_queue SET attempts = ? WHERE id = ?",
            vec![(attempts as i32).into(), ms(id)],
        )
    }

    fn oldest_enqueued_at(&self) -> StoreResult<Option<u64>> {
        let oldest: Option<Option<f64>> = self.value(
            "oldest item",
            "SELECT MIN(enqueued_at_ms) AS value FROM fair_queue",
            vec![],
        )?;
        Ok(oldest.flatten().map(|ms| ms as u64))
    }

    fn load_address(&self, key: &str, expired_before: u64) -> StoreResult<Option<AddressRecord>> {
        if housekeeping_due(&self.next_address_expiry_ms, expired_before) {
            self.exec(
                "expire address records",
                "DELETE FROM address_limits WHERE last_ms < ?",
                vec![ms(expired_before)],
            )?;
        }
        let json: Option<String> = self.value(
            "load address record",
            LOAD_ADDRESS_SQL,
            vec![key.into(), ms(expired_before)],
        )?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::failed("load address record", e))
        })
        .transpose()
    }

    fn store_address(&self, key: &str, record: &AddressRecord) -> StoreResult<()> {
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::failed("store address record", e))?;
        self.exec(
            "store address record",
            STORE_ADDRESS_SQL,
            vec![key.into(), json.into(), ms(record.last_ms)],
        )
    }

    fn remove_address(&self, key: &str) -> StoreResult<()> {
        self.exec(
            "remove address record",
            "DELETE FROM address_limits WHERE key = ?",
            vec![key.into()],
        )
    }

    fn record_send(&self, now_ms: u64) -> StoreResult<()> {
        self.exec("log send", LOG_SEND_SQL, vec![ms(now_ms)])?;
        if !housekeeping_due(&self.next_send_prune_ms, now_ms) {
            return Ok(());
        }
        self.exec(
            "prune send log",
            "DELETE FROM sends WHERE at_ms < ?",
            vec![ms(now_ms.saturating_sub(SEND_LOG_MS))],
        )
    }

    fn sends_since(&self, since_ms: u64) -> StoreResult<u64> {
        self.count(
            "count sends",
            "SELECT COUNT(*) AS value FROM sends WHERE at_ms >= ?",
            vec![ms(since_ms)],
        )
    }

    fn load_signup(&self, key: &str) -> StoreResult<Option<Signup>> {
        Ok(self
            .signups("load signup", LOAD_SIGNUP_SQL, vec![key.into()])?
            .pop()
            .map(|(_, signup)| signup))
    }

    fn store_signup(&self, key: &str, signup: &Signup) -> StoreResult<()> {
        let json =
            serde_json::to_string(signup).map_err(|e| StoreError::failed("store signup", e))?;
        let next_check = match signup.next_check_ms {
            Some(at) => ms(at),
            None => SqlValue::Null,
        };
        self.exec(
            "store signup",
            STORE_SIGNUP_SQL,
            vec![
                key.into(),
                json.into(),
                next_check,
                i32::from(has_work(signup)).into(),
                ms(signup.signed_up_ms),
            ],
        )
    }

    fn forget_signup(&self, key: &str) -> StoreResult<()> {
        self.exec(
            "forget signup",
            "DELETE FROM signups WHERE key = ?",
            vec![key.into()],
        )
    }

    fn due_checks(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<(String, Signup)>> {
        self.signups(
            "due checks",
            "SELECT key, record FROM signups WHERE next_check_ms IS NOT NULL AND next_check_ms <= ?
             ORDER BY next_check_ms LIMIT ?",
            vec![ms(now_ms), (limit as i32).into()],
        )
    }

    fn next_check_at(&self) -> StoreResult<Option<u64>> {
        let next: Option<Option<f64>> = self.value(
            "next check",
            "SELECT MIN(next_check_ms) AS value FROM signups",
            vec![],
        )?;
        Ok(next.flatten().map(|ms| ms as u64))
    }

    fn pending_checks(&self) -> StoreResult<u64> {
        self.count(
            "pending checks",
            "SELECT COUNT(*) AS value FROM signups WHERE next_check_ms IS NOT NULL",
            vec![],
        )
    }

    fn forget_signups(&self, before_ms: u64) -> StoreResult<u64> {
        let forgotten = self.count(
            "count old signups",
            "SELECT COUNT(*) AS value FROM signups WHERE signed_up_ms < ? AND has_work = 0",
            vec![ms(before_ms)],
        )?;
        if forgotten > 0 {
            self.exec(
                "forget old signups",
                "DELETE FROM signups WHERE signed_up_ms < ? AND has_work = 0",
                vec![ms(before_ms)],
            )?;
        }
        Ok(forgotten)
    }

    fn load_identity(&self, key: &str) -> StoreResult<Option<Identity>> {
        let json: Option<String> =
            self.value("load identity", LOAD_IDENTITY_SQL, vec![key.into()])?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::failed("load identity", e)))
            .transpose()
    }

    fn store_identity(&self, key: &str, identity: &Identity) -> StoreResult<()> {
        let json =
            serde_json::to_string(identity).map_err(|e| StoreError::failed("store identity", e))?;
        self.exec(
            "store identity",
            STORE_IDENTITY_SQL,
            vec![
                key.into(),
                json.into(),
                identity.next_cleanup_ms.map_or(SqlValue::Null, ms),
                i32::from(identity.has_work()).into(),
                ms(identity.sent_ms),
            ],
        )
    }

    fn forget_identity(&self, key: &str) -> StoreResult<()> {
        self.exec(
            "forget identity",
            "DELETE FROM identities WHERE key = ?",
            vec![key.into()],
        )
    }

    fn next_cleanup(&self, now_ms: u64) -> StoreResult<Option<(String, Identity)>> {
        let rows: Vec<SignupRow> = self.rows(
            "next cleanup",
            "SELECT key, record FROM identities WHERE next_cleanup_ms IS NOT NULL
             AND next_cleanup_ms <= ? ORDER BY next_cleanup_ms, key LIMIT 1",
            vec![ms(now_ms)],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        match serde_json::from_str(&row.record) {
            Ok(identity) => Ok(Some((row.key, identity))),
            // Written by this code: only a schema change could cause it; it must not block
            // the rest of the clean-up.
            Err(_) => {
                self.forget_identity(&row.key)?;
                Ok(None)
            }
        }
    }

    fn next_cleanup_at(&self) -> StoreResult<Option<u64>> {
        let next: Option<Option<f64>> = self.value(
            "next cleanup at",
            "SELECT MIN(next_cleanup_ms) AS value FROM identities WHERE next_cleanup_ms IS NOT NULL",
            vec![],
        )?;
        Ok(next.flatten().map(|ms| ms as u64))
    }

    fn forget_identities(&self, before_ms: u64) -> StoreResult<u64> {
        let forgotten: Vec<IgnoredAny> = self.rows(
            "forget old identities",
            "DELETE FROM identities WHERE has_work = 0 AND sent_ms < ? RETURNING key",
            vec![ms(before_ms)],
        )?;
        Ok(forgotten.len() as u64)
    }

    fn load_snapshot(&self) -> StoreResult<Option<Snapshot>> {
        let json: Option<String> = self.value(
            "load identity snapshot",
            "SELECT snapshot AS value FROM identity_snapshot WHERE id = 1",
            vec![],
        )?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::failed("load identity snapshot", e))
        })
        .transpose()
    }

    fn store_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let json = serde_json::to_string(snapshot)
            .map_err(|e| StoreError::failed("store identity snapshot", e))?;
        self.exec(
            "store identity snapshot",
            "INSERT INTO identity_snapshot (id, snapshot) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot",
            vec![json.into()],
        )
    }

    fn add_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.exec(
            "add webhook event",
            "INSERT OR IGNORE INTO webhook_outbox (id, key, body, created_ms, next_attempt_ms, attempts, releases_cleanup)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                event.id.as_str().into(),
                event.key.as_str().into(),
                event.body.as_str().into(),
                ms(event.created_ms),
                ms(event.next_attempt_ms),
                (event.attempts as i32).into(),
                i32::from(event.releases_cleanup).into(),
            ],
        )
    }

    fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        let rows: Vec<EventRow> = self.rows(
            "due webhook events",
            "SELECT id, key, body, created_ms, next_attempt_ms, attempts, releases_cleanup
             FROM webhook_outbox WHERE next_attempt_ms <= ? ORDER BY next_attempt_ms, created_ms LIMIT ?",
            vec![ms(now_ms), (limit as i32).into()],
        )?;
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }

    fn next_event_at(&self) -> StoreResult<Option<u64>> {
        let next: Option<Option<f64>> = self.value(
            "next webhook event",
            "SELECT MIN(next_attempt_ms) AS value FROM webhook_outbox",
            vec![],
        )?;
        Ok(next.flatten().map(|ms| ms as u64))
    }

    fn reschedule_event(&self, id: &str, attempts: u32, next_attempt_ms: u64) -> StoreResult<()> {
        self.exec(
            "reschedule webhook event",
            "UPDATE webhook_outbox SET attempts = ?, next_attempt_ms = ? WHERE id = ?",
            vec![(attempts as i32).into(), ms(next_attempt_ms), id.into()],
        )
    }

    fn remove_event(&self, id: &str) -> StoreResult<()> {
        self.exec(
            "remove webhook event",
            "DELETE FROM webhook_outbox WHERE id = ?",
            vec![id.into()],
        )
    }

    /// A scan of the outbox, which holds only undelivered events (a few, or the retry window's).
    fn event_releases(&self, key: &str) -> StoreResult<bool> {
        Ok(self.count(
            "event releases",
            "SELECT COUNT(*) AS value FROM webhook_outbox WHERE key = ? AND releases_cleanup = 1",
            vec![key.into()],
        )? > 0)
    }

    fn event_backlog(&self) -> StoreResult<u64> {
        self.count(
            "webhook backlog",
            "SELECT COUNT(*) AS value FROM webhook_outbox",
            vec![],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn housekeeping_runs_at_first_use_then_once_per_period() {
        let next = Cell::new(0);
        let runs: Vec<u64> = (0..=25_000)
            .step_by(500)
            .filter(|now| housekeeping_due(&next, *now))
            .collect();
        assert_eq!(runs, vec![0, 10_000, 20_000]);
    }
}
