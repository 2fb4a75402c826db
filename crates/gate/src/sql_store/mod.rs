//! `SqlGateStore`: [`GateStore`] in SQLite, through a small [`SqlExecutor`] (the Durable
//! Object's synchronous `exec` in production, bundled SQLite on the host in the conformance
//! suite), so the very statements that run in production are tested on the host. The gate
//! state is one JSON row; the queue is served by `(tag, seq)`, fair across recipient domains (an
//! item put back at the head gets the smallest `seq`); address records are keyed by HMAC;
//! tracked signups are JSON rows keyed by HMAC with their next check as a column the gate reads
//! its schedule from at start (`check_schedule`; no index: it changes far less often than the
//! schedule does); the identities the sends touched are JSON rows keyed by HMAC of the
//! exact address, with their due delete in a partial index (only rows with a delete due cost an
//! index entry); the identity snapshot is one row; the webhook outbox keeps each event's id and
//! body as made.
//!
//! Invariants: every statement runs before the gate's next await, so the output gate holds any
//! reply until it is durable; a failed statement is a [`StoreError`] naming it.

use serde::de::IgnoredAny;
use std::cell::Cell;

mod rows;
pub use rows::SqlGateStore;
use rows::{EventRow, ItemRow, One, Place, SignupRow};

use crate::cooldown::AddressRecord;
use crate::identities::Identity;
use crate::identities::Snapshot;
use crate::queue::QueuedItem;
pub use crate::sql_executor::{SqlExecutor, SqlValue};
use crate::sql_schema::{
    LAST_TAG_SQL, LOAD_ADDRESS_SQL, LOAD_IDENTITY_SQL, LOAD_SIGNUP_SQL, QUEUED_PLACE_SQL,
    SAVE_STATE_SQL, STORE_ADDRESS_SQL, STORE_IDENTITY_SQL, STORE_SIGNUP_SQL,
};
use crate::state::GateState;
use crate::store::has_work;
use crate::store::GateStore;
use crate::store::NewItem;
use crate::store::OutboxEvent;
use crate::store::QueueEnd;
use crate::store::StoreError;
use crate::store::StoreResult;
use crate::tracking::Signup;
use crate::usage::RowUsage;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::request_id::RequestId;

/// Expired address records are deleted at most this often: the reads skip them anyway, and the
/// DELETE scans the table (an index on the time would cost a row written per signup).
const HOUSEKEEPING_EVERY_MS: u64 = 600_000;

/// Whether a housekeeping DELETE is due at `now_ms`; if so, the next one is set
/// [`HOUSEKEEPING_EVERY_MS`] later.
fn housekeeping_due(next_ms: &Cell<u64>, now_ms: u64) -> bool {
    let due = now_ms >= next_ms.get();
    if due {
        next_ms.set(now_ms.saturating_add(HOUSEKEEPING_EVERY_MS));
    }
    due
}

/// Milliseconds are stored as SQLite REAL (what a JavaScript number holds).
fn ms(value: u64) -> SqlValue {
    SqlValue::Real(value as f64)
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

    fn take_row_usage(&self) -> RowUsage {
        self.usage.take()
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

    fn own_region(&self, named: Option<&str>) -> StoreResult<Option<String>> {
        let stored: Option<String> = self.value(
            "load own region",
            "SELECT value FROM secrets WHERE name = 'region'",
            vec![],
        )?;
        match named {
            Some(name) if stored.as_deref() != Some(name) => {
                self.exec(
                    "store own region",
                    "INSERT OR REPLACE INTO secrets (name, value) VALUES ('region', ?)",
                    vec![name.to_string().into()],
                )?;
                Ok(Some(name.to_string()))
            }
            Some(name) => Ok(Some(name.to_string())),
            None => Ok(stored),
        }
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
        let tag: Option<Option<u64>> = self.value("last tag", LAST_TAG_SQL, vec![domain.into()])?;
        Ok(tag.flatten())
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
        let id = row.id;
        // Only parsed addresses are stored; one that no longer parses is not sendable.
        let email =
            EmailAddress::parse(&row.email).map_err(|_| StoreError::UnreadableItem { id })?;
        Ok(Some(QueuedItem {
            id,
            email,
            key: row.key,
            enqueued_at_ms: row.enqueued_at_ms,
            attempts: row.attempts,
            tag: row.tag,
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
        let oldest: Option<Option<u64>> = self.value(
            "oldest item",
            "SELECT MIN(enqueued_at_ms) AS value FROM fair_queue",
            vec![],
        )?;
        Ok(oldest.flatten())
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

    fn scheduled_checks(&self) -> StoreResult<Vec<(String, Signup)>> {
        self.signups(
            "scheduled checks",
            "SELECT key, record FROM signups WHERE next_check_ms IS NOT NULL",
            vec![],
        )
    }

    fn forget_signups(&self, before_ms: u64) -> StoreResult<u64> {
        let forgotten: Vec<IgnoredAny> = self.rows(
            "forget old signups",
            "DELETE FROM signups WHERE signed_up_ms < ? AND has_work = 0 RETURNING key",
            vec![ms(before_ms)],
        )?;
        Ok(forgotten.len() as u64)
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
        let next: Option<Option<u64>> = self.value(
            "next cleanup at",
            "SELECT MIN(next_cleanup_ms) AS value FROM identities WHERE next_cleanup_ms IS NOT NULL",
            vec![],
        )?;
        Ok(next.flatten())
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
        let next: Option<Option<u64>> = self.value(
            "next webhook event",
            "SELECT MIN(next_attempt_ms) AS value FROM webhook_outbox",
            vec![],
        )?;
        Ok(next.flatten())
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
        let runs: Vec<u64> = (0..=1_500_000)
            .step_by(30_000)
            .filter(|now| housekeeping_due(&next, *now))
            .collect();
        assert_eq!(runs, vec![0, 600_000, 1_200_000]);
    }
}
