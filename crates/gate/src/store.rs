//! `GateStore`: everything the gate persists, as one small trait: the gate state, the HMAC key
//! for address records, the queue, the address records, the tracked signups, the
//! SES identities the sends touched, the identity snapshot and the webhook outbox. `SqlGateStore` keeps
//! it in the Durable Object's SQLite; [`MemoryStore`] is the host tests' fake, with failure
//! injection.
//!
//! Invariants: every call is synchronous (no await between a read and its write, so a Durable
//! Object's single thread makes each read-modify-write atomic), and every failure is a
//! [`StoreError`] naming the operation, never a sentinel value.

use std::fmt;

use crate::cooldown::AddressRecord;
use crate::identities::Identity;
use crate::identities::Snapshot;
use crate::messages::Recipient;
use crate::queue::QueuedItem;
use crate::state::GateState;
use crate::tracking::Signup;
use crate::tracking::SignupState;
use crate::usage::RowUsage;

/// A storage call that failed, named for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The storage layer refused or failed the operation.
    Failed {
        operation: &'static str,
        detail: String,
    },
    /// A queue row that cannot be read back as an item (its address no longer parses).
    UnreadableItem { id: u64 },
}

impl StoreError {
    pub fn failed(operation: &'static str, detail: impl fmt::Display) -> Self {
        Self::Failed {
            operation,
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { operation, detail } => write!(f, "{operation} failed: {detail}"),
            Self::UnreadableItem { id } => write!(f, "queue item {id} cannot be read back"),
        }
    }
}

/// Which end of the queue a new item goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEnd {
    /// A new signup waits behind everyone.
    Back,
    /// A signup whose direct send failed keeps its turn.
    Front,
}

/// A signup to store in the queue.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    pub end: QueueEnd,
    /// The address, its key (the dedupe key: one item per key) and its request id.
    pub to: Recipient<'a>,
    /// The recipient domain (canonical), for [`GateStore::last_tag`].
    pub domain: &'a str,
    /// Its place in the fair order (`queue::fair_tag`).
    pub tag: u64,
    pub now_ms: u64,
    pub attempts: u32,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A webhook event waiting to be delivered. Its id and body never change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: String,
    /// The identity key of the signup's address (whose clean-up the delivery may release).
    pub key: String,
    pub body: String,
    pub created_ms: u64,
    pub next_attempt_ms: u64,
    pub attempts: u32,
    /// Delivering it lets the signup's identity be deleted.
    pub releases_cleanup: bool,
}

/// Whether the signup still has work left (kept past retention until it has none).
pub fn has_work(signup: &Signup) -> bool {
    signup.next_check_ms.is_some() || signup.state == SignupState::Queued
}

/// What the gate persists. Positions are 1-based, in queue order.
pub trait GateStore {
    /// The saved gate state, or the default if none was ever saved.
    fn load_state(&self) -> StoreResult<GateState>;
    fn save_state(&self, state: &GateState) -> StoreResult<()>;
    /// The rows read and written since the last call (the gate adds them to its cost counters).
    fn take_row_usage(&self) -> RowUsage;
    /// The key for address records: the stored one, or `fresh()` stored now (a `fresh` that
    /// fails stores nothing: key material never comes from anywhere but the random source).
    fn address_secret(&self, fresh: impl FnOnce() -> StoreResult<Vec<u8>>) -> StoreResult<Vec<u8>>;

    /// The region this gate serves: `named` (its object's name) is stored the first time and
    /// whenever it differs; `None` reads what was stored (a runtime that woke the object
    /// without its name).
    fn own_region(&self, named: Option<&str>) -> StoreResult<Option<String>>;

    fn queue_len(&self) -> StoreResult<u64>;
    /// Whether an item with this key is queued (one index lookup).
    fn is_queued(&self, key: &str) -> StoreResult<bool>;
    /// Every queued item's key, in `(tag, arrival)` order (one ordered read of the queue).
    fn queue_order(&self) -> StoreResult<Vec<String>>;
    /// The highest tag queued for `domain`.
    fn last_tag(&self, domain: &str) -> StoreResult<Option<u64>>;
    /// Removes every item enqueued before `before_ms`; returns their address keys.
    fn expire(&self, before_ms: u64) -> StoreResult<Vec<String>>;
    /// Stores a new item; returns its position. `Front` also puts it first among equal tags.
    fn enqueue(&self, item: NewItem) -> StoreResult<u64>;
    /// The first item in `(tag, arrival)` order.
    fn head(&self) -> StoreResult<Option<QueuedItem>>;
    fn remove(&self, id: u64) -> StoreResult<()>;
    fn set_attempts(&self, id: u64, attempts: u32) -> StoreResult<()>;
    fn oldest_enqueued_at(&self) -> StoreResult<Option<u64>>;

    /// The record for `key` unless it was last touched before `expired_before` (expired records
    /// read as none; a store may delete them in batches, now or later).
    fn load_address(&self, key: &str, expired_before: u64) -> StoreResult<Option<AddressRecord>>;
    fn store_address(&self, key: &str, record: &AddressRecord) -> StoreResult<()>;
    fn remove_address(&self, key: &str) -> StoreResult<()>;

    /// The tracked signup of the address keyed `key`.
    fn load_signup(&self, key: &str) -> StoreResult<Option<Signup>>;
    fn store_signup(&self, key: &str, signup: &Signup) -> StoreResult<()>;
    fn forget_signup(&self, key: &str) -> StoreResult<()>;
    /// Every stored signup that waits for a check (its row holds a next check); the gate keeps
    /// the schedule in memory from then on (`check_schedule`).
    fn scheduled_checks(&self) -> StoreResult<Vec<(String, Signup)>>;
    /// Forgets signups made before `before_ms` that have no work left; returns how many.
    fn forget_signups(&self, before_ms: u64) -> StoreResult<u64>;

    /// The record of the identity keyed `key` (`identities::identity_key`).
    fn load_identity(&self, key: &str) -> StoreResult<Option<Identity>>;
    fn store_identity(&self, key: &str, identity: &Identity) -> StoreResult<()>;
    fn forget_identity(&self, key: &str) -> StoreResult<()>;
    /// The identity whose delete is due first, if it is due at `now_ms`.
    fn next_cleanup(&self, now_ms: u64) -> StoreResult<Option<(String, Identity)>>;
    /// When the first delete is due.
    fn next_cleanup_at(&self) -> StoreResult<Option<u64>>;
    /// Forgets identities last sent to before `before_ms` that have no work left.
    fn forget_identities(&self, before_ms: u64) -> StoreResult<u64>;
    /// The last complete snapshot of the account's email identities.
    fn load_snapshot(&self) -> StoreResult<Option<Snapshot>>;
    fn store_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()>;

    /// Stores `event` for delivery, unless an event with its id is already waiting.
    fn add_event(&self, event: &OutboxEvent) -> StoreResult<()>;
    /// Up to `limit` events whose delivery is due at `now_ms`, oldest first.
    fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>>;
    fn next_event_at(&self) -> StoreResult<Option<u64>>;
    fn reschedule_event(&self, id: &str, attempts: u32, next_attempt_ms: u64) -> StoreResult<()>;
    fn remove_event(&self, id: &str) -> StoreResult<()>;
    /// Whether an event waiting in the outbox releases the clean-up of the identity `key`.
    fn event_releases(&self, key: &str) -> StoreResult<bool>;
    fn event_backlog(&self) -> StoreResult<u64>;
}
