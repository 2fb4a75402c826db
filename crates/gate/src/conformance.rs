//! One conformance suite for both stores: every test below runs against [`MemoryStore`] (the
//! host tests' fake) and against [`SqlGateStore`] with the very statements production runs, on
//! bundled SQLite (rusqlite). The contract is [`GateStore`]'s: fair order and insert at the
//! front, one item per key, expiry, address records, signups and their checks,
//! identities and their clean-up, the snapshot, the outbox; and, for SQL alone, the migrations
//! from older schemas.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::request_id::RequestId;

use crate::cooldown::AddressRecord;
use crate::identities::{Cleanup, Identity, Owner, Snapshot};
use crate::memory_store::MemoryStore;
use crate::messages::Recipient;
use crate::sql_store::{SqlExecutor, SqlGateStore, SqlValue};
use crate::state::GateState;
use crate::store::{GateStore, NewItem, OutboxEvent, QueueEnd};
use crate::tracking::{Signup, SignupState};
use crate::usage::RowUsage;

/// Bundled SQLite, reading rows by column name as the Durable Object's cursor does.
#[derive(Clone)]
struct Sqlite(std::rc::Rc<rusqlite::Connection>);

impl SqlExecutor for Sqlite {
    fn exec<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlValue>,
    ) -> Result<(Vec<T>, RowUsage), String> {
        use rusqlite::types::{Value as Sql, ValueRef};
        let changes_before = self.0.total_changes();
        let mut statement = self.0.prepare(query).map_err(|e| e.to_string())?;
        let names: Vec<String> = statement.column_names().map(str::to_string).collect();
        let bindings = bindings.into_iter().map(|value| match value {
            SqlValue::Null => Sql::Null,
            SqlValue::Integer(n) => Sql::Integer(n),
            SqlValue::Real(x) => Sql::Real(x),
            SqlValue::Text(s) => Sql::Text(s),
        });
        let mut rows = statement
            .query(rusqlite::params_from_iter(bindings))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut object = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i).map_err(|e| e.to_string())? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    // workerd hands every number to JavaScript as a double, and serde-wasm-bindgen
                    // reads a safe integer into an integer field: do the same here.
                    ValueRef::Real(x) if is_safe_integer(x) => Value::from(x as i64),
                    ValueRef::Real(x) => Value::from(x),
                    ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::from(b.to_vec()),
                };
                object.insert(name.clone(), value);
            }
            out.push(serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())?);
        }
        drop(rows);
        // Bundled SQLite has no billing counters: rows changed (index entries not counted) and
        // rows returned stand in for them, enough to test that the store adds them up.
        let used = RowUsage {
            rows_read: out.len() as u64,
            rows_written: self.0.total_changes().saturating_sub(changes_before),
        };
        Ok((out, used))
    }
}

/// `Number.isSafeInteger`: what serde-wasm-bindgen accepts for an integer field.
fn is_safe_integer(x: f64) -> bool {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    x.fract() == 0.0 && x.abs() <= MAX_SAFE
}

fn sqlite() -> SqlGateStore<Sqlite> {
    let connection = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
    SqlGateStore::open(Sqlite(connection.into())).expect("the schema is created")
}

/// Both stores, each test named once: `memory::<test>` and `sqlite::<test>`.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $test() { super::$test(&super::MemoryStore::default()) } )*
        }
        mod sqlite {
            $( #[test] fn $test() { super::$test(&super::sqlite()) } )*
        }
    };
}

on_both_stores!(
    an_empty_store_has_the_default_state_and_nothing_else,
    the_state_and_the_address_secret_persist_and_the_secret_is_made_once,
    the_own_region_is_kept_from_a_named_start_for_a_start_without_the_name,
    the_queue_is_served_by_tag_then_arrival_and_a_front_item_leads_its_tag,
    two_front_items_in_an_empty_queue_are_placed_and_found_in_order,
    a_key_is_queued_once_and_is_queued_and_last_tag_see_it,
    the_head_is_removed_and_its_attempts_kept,
    expiry_removes_and_names_only_items_older_than_the_cutoff,
    an_address_record_reads_back_until_it_expires_and_can_be_removed,
    the_scheduled_checks_are_every_signup_with_a_check_to_come,
    only_old_signups_with_no_work_left_are_forgotten,
    the_first_due_clean_up_comes_first_and_only_once_due,
    the_snapshot_reads_back_whole,
    the_outbox_keeps_one_event_per_id_and_serves_the_earliest_due_first,
);

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("valid address")
}

fn enqueue(
    store: &impl GateStore,
    address: &str,
    domain: &str,
    tag: u64,
    end: QueueEnd,
    now_ms: u64,
) -> u64 {
    let email = email(address);
    let request_id = RequestId::parse(&format!("rid-{tag}-{now_ms}")).expect("well formed");
    store
        .enqueue(NewItem {
            end,
            to: Recipient {
                email: &email,
                key: &format!("key:{address}"),
                request_id: Some(&request_id),
            },
            domain,
            tag,
            now_ms,
            attempts: 0,
        })
        .expect("enqueued")
}

fn order(store: &impl GateStore) -> Vec<String> {
    store.queue_order().expect("queue order")
}

fn an_empty_store_has_the_default_state_and_nothing_else(store: &impl GateStore) {
    assert_eq!(store.load_state().expect("state"), GateState::default());
    assert_eq!(store.queue_len().expect("length"), 0);
    assert_eq!(store.head().expect("head"), None);
    assert_eq!(store.oldest_enqueued_at().expect("oldest"), None);
    assert!(store.scheduled_checks().expect("scheduled").is_empty());
    assert_eq!(store.next_cleanup_at().expect("next cleanup"), None);
    assert_eq!(store.next_event_at().expect("next event"), None);
    assert_eq!(store.load_snapshot().expect("snapshot"), None);
    assert_eq!(store.event_backlog().expect("backlog"), 0);
}

fn the_state_and_the_address_secret_persist_and_the_secret_is_made_once(store: &impl GateStore) {
    let mut state = GateState {
        next_free_ms: 1_234,
        paused_until_ms: Some(9_000),
        served_tag: 7,
        ..GateState::default()
    };
    state.counters.throttles_seen = 3;
    store.save_state(&state).expect("saved");
    assert_eq!(store.load_state().expect("loaded"), state);
    let first = store
        .address_secret(|| Ok(vec![7; 32]))
        .expect("a fresh secret");
    let again = store
        .address_secret(|| panic!("a stored secret is never made again"))
        .expect("the stored secret");
    assert_eq!((first.clone(), again), (vec![7; 32], first));
}

/// Two throttled direct sends put back at the front of an empty queue: the second one's
/// arrival number is below zero (`MIN(seq) - 1`), and reading it back must not fail.
fn the_own_region_is_kept_from_a_named_start_for_a_start_without_the_name(store: &impl GateStore) {
    assert_eq!(store.own_region(None).expect("read"), None);
    assert_eq!(
        store.own_region(Some("eu-west-1")).expect("named"),
        Some("eu-west-1".into())
    );
    assert_eq!(
        store.own_region(None).expect("read"),
        Some("eu-west-1".into())
    );
    assert_eq!(
        store.own_region(Some("eu-west-1")).expect("named again"),
        Some("eu-west-1".into())
    );
}

fn two_front_items_in_an_empty_queue_are_placed_and_found_in_order(store: &impl GateStore) {
    let front =
        |address: &str, now_ms| enqueue(store, address, "one.example", 1, QueueEnd::Front, now_ms);
    assert_eq!(front("a@one.example", 10), 1);
    assert_eq!(front("b@one.example", 11), 1);
    assert_eq!(store.queue_len().expect("length"), 2);
    assert!(store.is_queued("key:b@one.example").expect("is queued"));
    assert_eq!(order(store), ["key:b@one.example", "key:a@one.example"]);
}

fn the_queue_is_served_by_tag_then_arrival_and_a_front_item_leads_its_tag(store: &impl GateStore) {
    assert_eq!(
        enqueue(store, "a@one.example", "one.example", 1, QueueEnd::Back, 10),
        1
    );
    assert_eq!(
        enqueue(store, "b@one.example", "one.example", 2, QueueEnd::Back, 11),
        2
    );
    // Another domain's first signup gets tag 1: it goes ahead of one.example's second.
    assert_eq!(
        enqueue(store, "c@two.example", "two.example", 1, QueueEnd::Back, 12),
        2
    );
    // A failed direct send goes back in at the front of its tag.
    assert_eq!(
        enqueue(
            store,
            "d@three.example",
            "three.example",
            1,
            QueueEnd::Front,
            13
        ),
        1
    );
    assert_eq!(
        order(store),
        [
            "key:d@three.example",
            "key:a@one.example",
            "key:c@two.example",
            "key:b@one.example"
        ]
    );
    assert_eq!(store.queue_len().expect("length"), 4);
    let head = store.head().expect("head").expect("an item");
    assert_eq!(head.email.as_str(), "d@three.example");
    assert_eq!(head.key, "key:d@three.example");
    assert_eq!((head.tag, head.enqueued_at_ms, head.attempts), (1, 13, 0));
    assert_eq!(
        head.request_id.map(|r| r.as_str().to_string()),
        Some("rid-1-13".to_string())
    );
}

fn a_key_is_queued_once_and_is_queued_and_last_tag_see_it(store: &impl GateStore) {
    enqueue(store, "a@one.example", "one.example", 3, QueueEnd::Back, 10);
    enqueue(store, "b@one.example", "one.example", 5, QueueEnd::Back, 11);
    let again = email("a@one.example");
    let duplicate = store.enqueue(NewItem {
        end: QueueEnd::Back,
        to: Recipient {
            email: &again,
            key: "key:a@one.example",
            request_id: None,
        },
        domain: "one.example",
        tag: 6,
        now_ms: 12,
        attempts: 0,
    });
    assert!(duplicate.is_err(), "one item per key");
    assert_eq!(store.queue_len().expect("length"), 2);
    assert!(store.is_queued("key:a@one.example").expect("is queued"));
    assert!(!store.is_queued("key:z@one.example").expect("is queued"));
    assert_eq!(store.last_tag("one.example").expect("last tag"), Some(5));
    assert_eq!(store.last_tag("two.example").expect("last tag"), None);
}

fn the_head_is_removed_and_its_attempts_kept(store: &impl GateStore) {
    enqueue(store, "a@one.example", "one.example", 1, QueueEnd::Back, 10);
    enqueue(store, "b@one.example", "one.example", 2, QueueEnd::Back, 20);
    let head = store.head().expect("head").expect("an item");
    store.set_attempts(head.id, 3).expect("attempts");
    assert_eq!(store.head().expect("head").expect("an item").attempts, 3);
    assert_eq!(store.oldest_enqueued_at().expect("oldest"), Some(10));
    store.remove(head.id).expect("removed");
    assert_eq!(order(store), ["key:b@one.example"]);
    assert_eq!(store.queue_len().expect("length"), 1);
    assert_eq!(store.oldest_enqueued_at().expect("oldest"), Some(20));
}

fn expiry_removes_and_names_only_items_older_than_the_cutoff(store: &impl GateStore) {
    enqueue(store, "a@one.example", "one.example", 1, QueueEnd::Back, 10);
    enqueue(store, "b@two.example", "two.example", 1, QueueEnd::Back, 20);
    enqueue(store, "c@one.example", "one.example", 2, QueueEnd::Back, 30);
    let mut expired = store.expire(20).expect("expired");
    expired.sort();
    assert_eq!(expired, ["key:a@one.example"]);
    assert_eq!(store.queue_len().expect("length"), 2);
    assert_eq!(
        store.expire(20).expect("nothing more"),
        Vec::<String>::new()
    );
    assert_eq!(order(store), ["key:b@two.example", "key:c@one.example"]);
}

fn an_address_record_reads_back_until_it_expires_and_can_be_removed(store: &impl GateStore) {
    let record = AddressRecord {
        last_ms: 1_000,
        window_start_ms: 500,
        count: 2,
    };
    store.store_address("k1", &record).expect("stored");
    assert_eq!(store.load_address("k1", 1_000).expect("read"), Some(record));
    assert_eq!(
        store.load_address("k1", 1_001).expect("read"),
        None,
        "expired"
    );
    store.store_address("k2", &record).expect("stored");
    store.remove_address("k2").expect("removed");
    assert_eq!(store.load_address("k2", 0).expect("read"), None);
}

fn signup(address: &str, signed_up_ms: u64, next_check_ms: Option<u64>) -> Signup {
    let mut signup = Signup::queued(&email(address), signed_up_ms, format!("nonce-{address}"));
    signup.sent(Some(format!("m-{address}")), signed_up_ms);
    signup.next_check_ms = next_check_ms;
    signup
}

fn the_scheduled_checks_are_every_signup_with_a_check_to_come(store: &impl GateStore) {
    store
        .store_signup("s10", &signup("a@x.example", 1, Some(10)))
        .expect("stored");
    store
        .store_signup("s5", &signup("b@x.example", 1, Some(5)))
        .expect("stored");
    store
        .store_signup("s20", &signup("c@x.example", 1, Some(20)))
        .expect("stored");
    store
        .store_signup("none", &signup("d@x.example", 1, None))
        .expect("stored");
    let mut scheduled: Vec<(String, u64)> = store
        .scheduled_checks()
        .expect("scheduled")
        .into_iter()
        .filter_map(|(key, signup)| signup.next_check_ms.map(|at| (key, at)))
        .collect();
    scheduled.sort();
    assert_eq!(
        scheduled,
        [
            ("s10".to_string(), 10),
            ("s20".to_string(), 20),
            ("s5".to_string(), 5)
        ],
        "every signup with a check to come, with its row's time; none without"
    );
    let read = store.load_signup("s10").expect("read").expect("a signup");
    assert_eq!(read, signup("a@x.example", 1, Some(10)));
    store.forget_signup("s10").expect("forgotten");
    assert_eq!(store.load_signup("s10").expect("read"), None);
}

fn only_old_signups_with_no_work_left_are_forgotten(store: &impl GateStore) {
    let mut done = signup("a@x.example", 100, None);
    done.state = SignupState::Verified;
    store.store_signup("old-done", &done).expect("stored");
    store
        .store_signup("old-pending", &signup("b@x.example", 100, Some(900)))
        .expect("stored");
    let mut recent = signup("c@x.example", 500, None);
    recent.state = SignupState::Expired;
    store.store_signup("recent-done", &recent).expect("stored");
    assert_eq!(store.forget_signups(200).expect("forgotten"), 1);
    assert_eq!(store.load_signup("old-done").expect("read"), None);
    assert!(store.load_signup("old-pending").expect("read").is_some());
    assert!(store.load_signup("recent-done").expect("read").is_some());
}

fn identity(address: &str, sent_ms: u64, next_cleanup_ms: Option<u64>) -> Identity {
    let mut identity = Identity::at_send(b"secret", &email(address), None, false, None, sent_ms);
    identity.owner = Owner::Ours;
    identity.cleanup = if next_cleanup_ms.is_some() {
        Cleanup::Due
    } else {
        Cleanup::Done
    };
    identity.next_cleanup_ms = next_cleanup_ms;
    identity
}

fn the_first_due_clean_up_comes_first_and_only_once_due(store: &impl GateStore) {
    store
        .store_identity("i-b", &identity("b@x.example", 1, Some(50)))
        .expect("stored");
    store
        .store_identity("i-a", &identity("a@x.example", 1, Some(50)))
        .expect("stored");
    store
        .store_identity("i-c", &identity("c@x.example", 1, Some(10)))
        .expect("stored");
    store
        .store_identity("i-done", &identity("d@x.example", 1, None))
        .expect("stored");
    assert_eq!(
        store.next_cleanup(9).expect("next"),
        None,
        "nothing due yet"
    );
    let first = store.next_cleanup(100).expect("next").expect("due");
    assert_eq!(
        (first.0.as_str(), first.1.email.as_str()),
        ("i-c", "c@x.example")
    );
    store.forget_identity("i-c").expect("forgotten");
    let tie = store.next_cleanup(100).expect("next").expect("due");
    assert_eq!(tie.0, "i-a", "a tie goes by key");
    assert_eq!(store.next_cleanup_at().expect("next at"), Some(50));
    assert_eq!(
        store.load_identity("i-b").expect("read"),
        Some(identity("b@x.example", 1, Some(50)))
    );
    // Only identities with no work left, last sent to before the cutoff, are forgotten.
    assert_eq!(store.forget_identities(2).expect("forgotten"), 1);
    assert_eq!(store.load_identity("i-done").expect("read"), None);
    assert!(store.load_identity("i-a").expect("read").is_some());
}

fn the_snapshot_reads_back_whole(store: &impl GateStore) {
    let mut snapshot = Snapshot::new(1_000);
    snapshot.add(b"secret", "a@x.example");
    snapshot.add(b"secret", "b@x.example");
    snapshot.seal();
    store.store_snapshot(&snapshot).expect("stored");
    let read = store.load_snapshot().expect("read").expect("a snapshot");
    assert_eq!(read, snapshot);
    assert!(read.contains(b"secret", &email("a@x.example")));
    let newer = Snapshot::new(2_000);
    store.store_snapshot(&newer).expect("replaced");
    assert_eq!(store.load_snapshot().expect("read"), Some(newer));
}

fn event(
    id: &str,
    key: &str,
    created_ms: u64,
    next_attempt_ms: u64,
    releases: bool,
) -> OutboxEvent {
    OutboxEvent {
        id: id.into(),
        key: key.into(),
        body: format!("{{\"id\":\"{id}\"}}"),
        created_ms,
        next_attempt_ms,
        attempts: 0,
        releases_cleanup: releases,
    }
}

fn the_outbox_keeps_one_event_per_id_and_serves_the_earliest_due_first(store: &impl GateStore) {
    store
        .add_event(&event("e1", "k1", 10, 30, false))
        .expect("added");
    store
        .add_event(&event("e2", "k2", 20, 20, true))
        .expect("added");
    store
        .add_event(&event("e3", "k1", 5, 30, true))
        .expect("added");
    // The same id again changes nothing: its body and schedule stay as first made.
    let mut changed = event("e1", "k1", 99, 1, false);
    changed.body = "{}".into();
    store.add_event(&changed).expect("ignored");
    assert_eq!(store.event_backlog().expect("backlog"), 3);
    let ids = |events: Vec<OutboxEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.due_events(30, 10).expect("due")),
        ["e2", "e3", "e1"]
    );
    assert_eq!(ids(store.due_events(25, 10).expect("due")), ["e2"]);
    assert_eq!(ids(store.due_events(30, 2).expect("due")), ["e2", "e3"]);
    assert_eq!(store.next_event_at().expect("next"), Some(20));
    store.reschedule_event("e2", 1, 500).expect("rescheduled");
    let e2 = store
        .due_events(500, 10)
        .expect("due")
        .into_iter()
        .find(|e| e.id == "e2");
    assert_eq!(
        e2.map(|e| (e.attempts, e.next_attempt_ms, e.body)),
        Some((1, 500, "{\"id\":\"e2\"}".to_string()))
    );
    assert!(store.event_releases("k1").expect("releases"));
    store.remove_event("e3").expect("removed");
    assert!(
        !store.event_releases("k1").expect("releases"),
        "e1 does not release k1"
    );
    assert_eq!(store.event_backlog().expect("backlog"), 2);
}

#[test]
fn a_store_of_an_older_version_moves_its_fifo_to_the_front_and_gains_the_new_columns() {
    let connection = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
    connection
        .execute_batch(
            "CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, seq REAL NOT NULL,
                email TEXT NOT NULL, key TEXT NOT NULL UNIQUE, enqueued_at_ms REAL NOT NULL,
                attempts INTEGER NOT NULL);
             INSERT INTO queue (seq, email, key, enqueued_at_ms, attempts) VALUES
                (1, 'first@old.example', 'k-first', 100, 0),
                (2, 'second@old.example', 'k-second', 200, 1);
             CREATE TABLE fair_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, tag REAL NOT NULL,
                seq REAL NOT NULL, domain TEXT NOT NULL, email TEXT NOT NULL,
                key TEXT NOT NULL UNIQUE, enqueued_at_ms REAL NOT NULL, attempts INTEGER NOT NULL);
             INSERT INTO fair_queue (tag, seq, domain, email, key, enqueued_at_ms, attempts)
                VALUES (3, 5, 'new.example', 'later@new.example', 'k-later', 300, 0);
             CREATE TABLE signups (key TEXT PRIMARY KEY, record TEXT NOT NULL,
                next_check_ms REAL, has_work INTEGER NOT NULL, signed_up_ms REAL NOT NULL,
                cleanup_due REAL);
             CREATE INDEX signups_by_cleanup ON signups (cleanup_due);
             CREATE TABLE sends (at_ms REAL NOT NULL);
             CREATE INDEX sends_by_time ON sends (at_ms);
             INSERT INTO sends (at_ms) VALUES (100), (200);",
        )
        .expect("the old schema");
    let database = Sqlite(connection.into());
    let store = SqlGateStore::open(database.clone()).expect("opened and migrated");
    assert_eq!(order(&store), ["k-first", "k-second", "k-later"]);
    let tables: Vec<String> = database
        .0
        .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'sends%'")
        .and_then(|mut query| {
            query
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .expect("the schema");
    assert!(
        tables.is_empty(),
        "the send log's table and index are gone: {tables:?}"
    );
    let head = store.head().expect("head").expect("an item");
    assert_eq!(
        (head.email.as_str(), head.attempts, head.request_id),
        ("first@old.example", 0, None)
    );
    // The columns of this version work on the old tables.
    enqueue(
        &store,
        "new@new.example",
        "new.example",
        9,
        QueueEnd::Back,
        400,
    );
    assert_eq!(
        store.head().expect("head").expect("an item").key,
        "k-first",
        "the old FIFO keeps its turn"
    );
    store
        .store_signup("s", &signup("a@x.example", 1, Some(10)))
        .expect("a signup row without cleanup_due");
    assert_eq!(store.scheduled_checks().expect("scheduled").len(), 1);
    // Opening again (the next instance) changes nothing: the old table is gone, nothing moves
    // twice, and the columns are not added twice.
    let reopened = SqlGateStore::open(database).expect("opened again");
    assert_eq!(
        order(&reopened),
        ["k-first", "k-second", "k-later", "key:new@new.example"]
    );
}

/// A version 1 database (as every start of the code before versions left it) with a row in each
/// keyed table, the queue, the gate state and the outbox.
fn version_1_store() -> Sqlite {
    let connection = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
    for statement in crate::sql_schema::V1 {
        connection.execute_batch(statement).expect("version 1");
    }
    // Rows as version 1 stored them: the serde JSON of each record.
    let signup_row = to_json(&signup("kept@x.example", 7, Some(70)));
    let identity_row = to_json(&identity("kept@x.example", 7, Some(90)));
    let address_row = to_json(&kept_address());
    connection
        .execute_batch(&format!(
            "INSERT INTO fair_queue (tag, seq, domain, email, key, enqueued_at_ms, attempts, request_id)
                VALUES (4, 1, 'x.example', 'queued@x.example', 'k-queued', 500, 2, NULL);
             INSERT INTO address_limits (key, record, last_ms) VALUES ('k-address', '{address_row}', 600);
             INSERT INTO signups (key, record, next_check_ms, has_work, signed_up_ms)
                VALUES ('k-signup', '{signup_row}', 70, 1, 7);
             INSERT INTO identities (key, record, next_cleanup_ms, has_work, sent_ms)
                VALUES ('k-identity', '{identity_row}', 90, 1, 7);
             INSERT INTO webhook_outbox (id, key, body, created_ms, next_attempt_ms, attempts, releases_cleanup)
                VALUES ('evt-1', 'k-signup', '{{}}', 8, 9, 1, 1);
             INSERT INTO gate (id, state) VALUES (1, '{{\"next_free_ms\":1234}}');"
        ))
        .expect("version 1 rows");
    Sqlite(connection.into())
}

fn kept_address() -> AddressRecord {
    AddressRecord {
        last_ms: 600,
        window_start_ms: 600,
        count: 1,
    }
}

/// Every row [`version_1_store`] wrote reads back through the store.
fn assert_version_1_rows(store: &SqlGateStore<Sqlite>) {
    assert_eq!(store.load_state().expect("state").next_free_ms, 1234);
    let head = store.head().expect("head").expect("the queued item");
    assert_eq!(
        (
            head.email.as_str(),
            head.key.as_str(),
            head.attempts,
            head.tag
        ),
        ("queued@x.example", "k-queued", 2, 4)
    );
    assert_eq!(
        store.load_address("k-address", 0).expect("address"),
        Some(kept_address())
    );
    assert_eq!(
        store.scheduled_checks().expect("checks"),
        vec![(
            "k-signup".to_string(),
            signup("kept@x.example", 7, Some(70))
        )]
    );
    assert_eq!(
        store
            .next_cleanup(100)
            .expect("cleanup")
            .map(|(key, _)| key),
        Some("k-identity".to_string())
    );
    assert_eq!(store.due_events(10, 10).expect("events")[0].id, "evt-1");
}

/// The schema's names of `kind` (`table`, `index`), sorted, with their SQL.
fn schema_of(database: &Sqlite, kind: &str) -> Vec<(String, String)> {
    database
        .0
        .prepare(
            "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = ?1
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .and_then(|mut query| {
            query
                .query_map([kind], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .expect("the schema")
}

fn index_names(database: &Sqlite) -> Vec<String> {
    schema_of(database, "index")
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

const VERSION_2_INDEXES: [&str; 6] = [
    "fair_queue_by_age",
    "fair_queue_by_domain",
    "fair_queue_by_seq",
    "fair_queue_order",
    "identities_by_cleanup",
    "webhook_outbox_due",
];

#[test]
fn a_version_1_store_keeps_every_row_through_the_upgrade_and_a_current_one_only_reads_its_version()
{
    let database = version_1_store();
    let store = SqlGateStore::open(database.clone()).expect("upgraded");
    assert_version_1_rows(&store);
    assert_eq!(index_names(&database), VERSION_2_INDEXES);
    for (table, sql) in schema_of(&database, "table") {
        assert!(!sql.contains("AUTOINCREMENT"), "{table}: {sql}");
        if ["address_limits", "signups", "identities", "webhook_outbox"].contains(&table.as_str()) {
            assert!(sql.ends_with("WITHOUT ROWID"), "{table}: {sql}");
        }
    }
    // The next start reads the version and writes nothing.
    let reopened = SqlGateStore::open(database).expect("opened again");
    let used = reopened.take_row_usage();
    assert_eq!((used.rows_read, used.rows_written), (1, 0), "{used:?}");
    assert_eq!(order(&reopened), ["k-queued"]);
}

#[test]
fn an_upgrade_stopped_at_any_step_finishes_at_the_next_start_with_every_row_even_after_a_rollback()
{
    let steps = crate::sql_schema::upgrade_from_v1();
    for stop in 0..=steps.len() {
        for rolled_back in [false, true] {
            let database = version_1_store();
            for statement in &steps[..stop] {
                database.0.execute_batch(statement).expect("a step");
            }
            if rolled_back {
                // The version before starts (its schema, idempotent) and takes a signup: into
                // the tables it sees, which may be ones it made anew beside a set-aside copy.
                for statement in crate::sql_schema::V1 {
                    database
                        .0
                        .execute_batch(statement)
                        .expect("version 1 starts");
                }
                let record = to_json(&kept_address());
                let row = to_json(&signup("later@x.example", 8, None));
                database
                    .0
                    .execute_batch(&format!(
                        "INSERT INTO address_limits (key, record, last_ms)
                            VALUES ('k-rolled-back', '{record}', 600);
                         INSERT INTO signups (key, record, next_check_ms, has_work, signed_up_ms)
                            VALUES ('k-rolled-back', '{row}', NULL, 1, 8);"
                    ))
                    .expect("version 1 takes a signup");
            }
            let store = SqlGateStore::open(database.clone())
                .unwrap_or_else(|e| panic!("stopped after step {stop}: {e}"));
            assert_version_1_rows(&store);
            if rolled_back {
                assert!(
                    store
                        .load_address("k-rolled-back", 0)
                        .expect("read")
                        .is_some()
                        && store.load_signup("k-rolled-back").expect("read").is_some(),
                    "stopped after step {stop}: the rolled-back version's signup is kept"
                );
            }
            assert_eq!(index_names(&database), VERSION_2_INDEXES, "step {stop}");
            let leftovers: Vec<String> = schema_of(&database, "table")
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| name.ends_with("_v1") || name.ends_with("_v2"))
                .collect();
            assert!(leftovers.is_empty(), "step {stop}: {leftovers:?}");
        }
    }
}

#[test]
fn a_rolled_back_deploy_leaves_no_old_index_behind_and_a_later_version_is_left_alone() {
    let database = version_1_store();
    SqlGateStore::open(database.clone()).expect("upgraded");
    // The version before ran its schema at every start: it makes its indexes again.
    for statement in crate::sql_schema::V1 {
        database
            .0
            .execute_batch(statement)
            .expect("version 1 again");
    }
    assert!(index_names(&database).contains(&"signups_by_age".to_string()));
    let store = SqlGateStore::open(database.clone()).expect("opened");
    assert_version_1_rows(&store);
    assert_eq!(index_names(&database), VERSION_2_INDEXES);

    // A database a later version wrote (here: a column this one does not know) is not rebuilt.
    database
        .0
        .execute_batch(
            "ALTER TABLE signups ADD COLUMN later TEXT;
             UPDATE schema_version SET version = 3",
        )
        .expect("a later version");
    let store = SqlGateStore::open(database.clone()).expect("opened");
    assert_version_1_rows(&store);
    let signups = schema_of(&database, "table")
        .into_iter()
        .find(|(name, _)| name == "signups")
        .expect("signups");
    assert!(signups.1.contains("later TEXT"), "{}", signups.1);
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("serializable")
}

#[test]
fn the_sql_store_adds_up_the_rows_its_statements_read_and_wrote_and_hands_them_over_once() {
    let store = sqlite();
    // Opening ran the schema: taken now, so what follows is only the statements below.
    store.take_row_usage();
    enqueue(
        &store,
        "a@one.example",
        "one.example",
        1,
        QueueEnd::Back,
        10,
    );
    enqueue(
        &store,
        "b@two.example",
        "two.example",
        2,
        QueueEnd::Back,
        11,
    );
    let written = store.take_row_usage();
    assert_eq!(written.rows_written, 2, "two inserts: {written:?}");
    assert_eq!(
        store.take_row_usage(),
        RowUsage::default(),
        "handed over once"
    );
    assert_eq!(store.queue_order().expect("order").len(), 2);
    let read = store.take_row_usage();
    assert_eq!(read.rows_read, 2, "two keys read: {read:?}");
    assert_eq!(read.rows_written, 0);
}
