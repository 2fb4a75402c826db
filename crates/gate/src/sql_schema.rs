//! The gate's SQLite schema and the statements a signup runs, as text. The schema has a
//! version, kept in one row: each object start reads it (one row read; no table is created),
//! and only a
//! database of an older version runs version 1's idempotent statements (which bring anything
//! older to version 1), then [`upgrade_from_v1`]: version 2's rebuild of every keyed table. The named
//! statements are the very texts `sql_store` runs and `make bench` measures.
//!
//! Invariants: an upgrade keeps every row (the rebuild copies each table whole before it sets
//! the old one aside), and a start that failed halfway is finished by the next (see
//! [`recovery`]), even after a rolled-back version ran in between; version 2 costs one row written per insert or update wherever it can: keyed tables are
//! `WITHOUT ROWID` (no separate key index), and an index stays only where a frequent read needs
//! it (the queue's order and ages, due clean-ups, due webhook events); tables read rarely are
//! scanned instead.

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

/// The version this code writes and reads. A database of a later version is left as it is.
pub const SCHEMA_VERSION: i64 = 2;

/// Version 1's indexes that version 2 has not. A rolled-back deploy (version 1 code runs its
/// schema at every start) makes them again; each start drops them if they are there (nothing
/// written when they are not).
pub const DROPPED_INDEXES: [&str; 3] = [
    "DROP INDEX IF EXISTS address_limits_by_last",
    "DROP INDEX IF EXISTS signups_by_age",
    "DROP INDEX IF EXISTS identities_done_by_age",
];
pub const READ_VERSION_SQL: &str = "SELECT version AS value FROM schema_version WHERE id = 1";

/// Version 1, as it ran at every start before versions existed: every statement idempotent, so
/// it brings a database of any older layout to version 1 (and creates a fresh one).
pub const V1: [&str; 24] = [
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
    // Clean-up moved to `identities`: the first lifecycle's index goes (its column goes with
    // version 2's rebuild, which copies only the columns it names).
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

/// A table version 2 rebuilds: its name, its columns (the same names as version 1's, so the
/// copy is `INSERT … SELECT` of the same list), its table options, and, where the default does
/// not do, how rows a rolled-back version wrote meanwhile join an interrupted copy (see
/// [`recovery`]).
struct Rebuilt {
    name: &'static str,
    columns: &'static str,
    copied: &'static str,
    options: &'static str,
    /// `None`: `INSERT OR REPLACE` of the copied columns, the newer row winning its key.
    merged: Option<&'static str>,
}

/// Version 2's keyed tables. The queue keeps its rowid (its items are served and removed by
/// it) but loses `AUTOINCREMENT`, whose counter row cost a write per item: an id is never
/// reused while its item exists, which is all the drain needs.
const V2_TABLES: [Rebuilt; 5] = [
    Rebuilt {
        name: "fair_queue",
        columns: "id INTEGER PRIMARY KEY, tag REAL NOT NULL, seq REAL NOT NULL,
            domain TEXT NOT NULL, email TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
            enqueued_at_ms REAL NOT NULL, attempts INTEGER NOT NULL, request_id TEXT",
        copied: "id, tag, seq, domain, email, key, enqueued_at_ms, attempts, request_id",
        options: "",
        // New ids (the rolled-back version counted its own from 1); an address queued in both
        // keeps its first place.
        merged: Some(
            "INSERT OR IGNORE INTO fair_queue_v2 (tag, seq, domain, email, key, enqueued_at_ms,
            attempts, request_id) SELECT tag, seq, domain, email, key, enqueued_at_ms, attempts,
            request_id FROM fair_queue",
        ),
    },
    Rebuilt {
        name: "address_limits",
        columns: "key TEXT PRIMARY KEY, record TEXT NOT NULL, last_ms REAL NOT NULL",
        copied: "key, record, last_ms",
        options: " WITHOUT ROWID",
        merged: None,
    },
    Rebuilt {
        name: "signups",
        columns: "key TEXT PRIMARY KEY, record TEXT NOT NULL, next_check_ms REAL,
            has_work INTEGER NOT NULL, signed_up_ms REAL NOT NULL",
        copied: "key, record, next_check_ms, has_work, signed_up_ms",
        options: " WITHOUT ROWID",
        merged: None,
    },
    Rebuilt {
        name: "identities",
        columns: "key TEXT PRIMARY KEY, record TEXT NOT NULL, next_cleanup_ms REAL,
            has_work INTEGER NOT NULL, sent_ms REAL NOT NULL",
        copied: "key, record, next_cleanup_ms, has_work, sent_ms",
        options: " WITHOUT ROWID",
        merged: None,
    },
    Rebuilt {
        name: "webhook_outbox",
        columns: "id TEXT PRIMARY KEY, key TEXT NOT NULL, body TEXT NOT NULL,
            created_ms REAL NOT NULL, next_attempt_ms REAL NOT NULL, attempts INTEGER NOT NULL,
            releases_cleanup INTEGER NOT NULL",
        copied: "id, key, body, created_ms, next_attempt_ms, attempts, releases_cleanup",
        options: " WITHOUT ROWID",
        merged: None,
    },
];

/// Version 2's indexes (the rebuild dropped version 1's with their tables). Gone: the address
/// records' by age (their expiry scans the table every few minutes), the signups' by age and
/// the done identities' by age (forgotten by an hourly scan): see [`DROPPED_INDEXES`].
const V2_INDEXES: [&str; 6] = [
    "CREATE INDEX IF NOT EXISTS fair_queue_order ON fair_queue (tag, seq)",
    "CREATE INDEX IF NOT EXISTS fair_queue_by_domain ON fair_queue (domain, tag)",
    "CREATE INDEX IF NOT EXISTS fair_queue_by_age ON fair_queue (enqueued_at_ms)",
    // MAX(seq) / MIN(seq) for each new item, without a scan.
    "CREATE INDEX IF NOT EXISTS fair_queue_by_seq ON fair_queue (seq)",
    // Partial: only an identity with a delete due costs an index entry.
    "CREATE INDEX IF NOT EXISTS identities_by_cleanup ON identities (next_cleanup_ms)
        WHERE next_cleanup_ms IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_attempt_ms)",
];

/// From version 1 to [`SCHEMA_VERSION`]: each keyed table copied into its version 2 shape
/// (`<name>_v2`), the old one renamed aside (`<name>_v1`), the copy renamed in, the old one
/// dropped; then the indexes and the version. Run by `SqlGateStore::open` after [`recovery`]
/// and [`V1`].
pub fn upgrade_from_v1() -> Vec<String> {
    let mut statements = Vec::new();
    for table in &V2_TABLES {
        let Rebuilt {
            name,
            columns,
            copied,
            options,
            ..
        } = table;
        statements.push(format!("CREATE TABLE {name}_v2 ({columns}){options}"));
        statements.push(format!(
            "INSERT INTO {name}_v2 ({copied}) SELECT {copied} FROM {name}"
        ));
        statements.push(format!("ALTER TABLE {name} RENAME TO {name}_v1"));
        statements.push(format!("ALTER TABLE {name}_v2 RENAME TO {name}"));
        statements.push(format!("DROP TABLE {name}_v1"));
    }
    statements.extend(V2_INDEXES.iter().map(|s| (*s).to_string()));
    statements.push(
        "CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL)"
            .to_string(),
    );
    statements.push(format!(
        "INSERT OR REPLACE INTO schema_version (id, version) VALUES (1, {SCHEMA_VERSION})"
    ));
    statements
}

/// Reads which tables exist, for [`recovery`].
pub const TABLES_SQL: &str = "SELECT name AS value FROM sqlite_master WHERE type = 'table'";

/// What finishes an upgrade a start left halfway, given the tables that exist, before [`V1`]
/// runs again. Per table: a copy still under way (`<name>_v2` beside `<name>`) is dropped, since
/// `<name>` holds every row; once the old table was renamed aside (`<name>_v1`), the copy is
/// complete and is renamed in, with whatever rows a rolled-back version wrote meanwhile to a
/// `<name>` it made anew (it could not see the renamed tables), and the old table is dropped.
/// Nothing when no upgrade was interrupted.
pub fn recovery(existing: &[String]) -> Vec<String> {
    let has = |table: String| existing.contains(&table);
    let mut statements = Vec::new();
    for table in &V2_TABLES {
        let name = table.name;
        let (current, copy, aside) = (
            has(name.to_string()),
            has(format!("{name}_v2")),
            has(format!("{name}_v1")),
        );
        if aside {
            if copy {
                if current {
                    statements.push(table.merged.map_or_else(
                        || {
                            let copied = table.copied;
                            format!(
                                "INSERT OR REPLACE INTO {name}_v2 ({copied}) SELECT {copied} FROM {name}"
                            )
                        },
                        str::to_string,
                    ));
                    statements.push(format!("DROP TABLE {name}"));
                }
                statements.push(format!("ALTER TABLE {name}_v2 RENAME TO {name}"));
            }
            statements.push(format!("DROP TABLE {name}_v1"));
        } else if copy {
            statements.push(format!("DROP TABLE {name}_v2"));
        }
    }
    statements
}

/// Every statement that makes a fresh database current, in order (what `make bench`'s SQL
/// measurement sets up): version 1, then the upgrade.
pub fn fresh() -> Vec<String> {
    V1.iter()
        .map(|s| (*s).to_string())
        .chain(upgrade_from_v1())
        .collect()
}
