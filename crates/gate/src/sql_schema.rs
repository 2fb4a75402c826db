//! The gate's SQLite schema and the statements a signup runs, as text: `SCHEMA` creates and
//! migrates the tables (every statement idempotent, run at each object's start), and the named
//! statements are the very texts `sql_store` runs and `make bench` measures.

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
pub const QUEUED_PLACE_SQL: &str = "SELECT tag, seq FROM fair_queue WHERE key = ?";
pub const LAST_TAG_SQL: &str = "SELECT MAX(tag) AS value FROM fair_queue WHERE domain = ?";
pub const COUNT_BEHIND_SQL: &str =
    "SELECT COUNT(*) AS value FROM fair_queue WHERE (tag, seq) > (?, ?)";

pub const SCHEMA: [&str; 24] = [
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
    // The send log moved into the gate state (`send_log`): its table, and its index, go.
    "DROP TABLE IF EXISTS sends",
    "DROP TABLE IF EXISTS gate_state",
    "CREATE TABLE IF NOT EXISTS signups (key TEXT PRIMARY KEY, record TEXT NOT NULL,
        next_check_ms REAL, has_work INTEGER NOT NULL, signed_up_ms REAL NOT NULL)",
    // The check schedule lives in the gate's memory (`check_schedule`), read from the rows once
    // per start: an index on the next check cost a row written at every change.
    "DROP INDEX IF EXISTS signups_by_check",
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
