//! `GateStore`: everything the gate persists, as one small trait: the gate state, the HMAC key
//! for address records, the queue, the address records and the send log. `SqlGateStore` keeps
//! it in the Durable Object's SQLite; [`MemoryStore`] is the host tests' fake, with failure
//! injection.
//!
//! Invariants: every call is synchronous (no await between a read and its write, so a Durable
//! Object's single thread makes each read-modify-write atomic), and every failure is a
//! [`StoreError`] naming the operation, never a sentinel value.

use std::fmt;

use crate::email::EmailAddress;
use crate::gate::cooldown::AddressRecord;
use crate::gate::queue::QueuedItem;
use crate::gate::slots::GateState;

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
    pub email: &'a EmailAddress,
    /// The dedupe key: one item per key.
    pub key: &'a str,
    /// The recipient domain (canonical), for [`GateStore::last_tag`].
    pub domain: &'a str,
    /// Its place in the fair order (`queue::fair_tag`).
    pub tag: u64,
    pub now_ms: u64,
    pub attempts: u32,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the gate persists. Positions are 1-based, in queue order.
pub trait GateStore {
    /// The saved gate state, or the default if none was ever saved.
    fn load_state(&self) -> StoreResult<GateState>;
    fn save_state(&self, state: &GateState) -> StoreResult<()>;
    /// The key for address records: the stored one, or `fresh()` stored now.
    fn address_secret(&self, fresh: impl FnOnce() -> Vec<u8>) -> StoreResult<Vec<u8>>;

    fn queue_len(&self) -> StoreResult<u64>;
    /// The position in `(tag, arrival)` order.
    fn position_of(&self, key: &str) -> StoreResult<Option<u64>>;
    /// The highest tag queued for `domain`.
    fn last_tag(&self, domain: &str) -> StoreResult<Option<u64>>;
    /// Removes every item enqueued before `before_ms`; returns how many.
    fn expire(&self, before_ms: u64) -> StoreResult<u64>;
    /// Stores a new item; returns its position. `Front` also puts it first among equal tags.
    fn enqueue(&self, item: NewItem) -> StoreResult<u64>;
    /// The first item in `(tag, arrival)` order.
    fn head(&self) -> StoreResult<Option<QueuedItem>>;
    fn remove(&self, id: u64) -> StoreResult<()>;
    fn set_attempts(&self, id: u64, attempts: u32) -> StoreResult<()>;
    fn oldest_enqueued_at(&self) -> StoreResult<Option<u64>>;

    /// The record for `key`, after deleting every record last touched before `expired_before`.
    fn load_address(&self, key: &str, expired_before: u64) -> StoreResult<Option<AddressRecord>>;
    fn store_address(&self, key: &str, record: &AddressRecord) -> StoreResult<()>;
    fn remove_address(&self, key: &str) -> StoreResult<()>;

    /// Logs a send at `now_ms` (and forgets sends older than an hour).
    fn record_send(&self, now_ms: u64) -> StoreResult<()>;
    fn sends_since(&self, since_ms: u64) -> StoreResult<u64>;
}

#[cfg(test)]
pub use memory::MemoryStore;

#[cfg(test)]
mod memory {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::rc::Rc;

    use super::*;

    /// The host tests' store. Clones share one set of data, as a Durable Object's storage outlives
    /// the object: a new gate on a clone is a restart. `fail(op)` makes every call of `op` fail
    /// until `heal(op)`.
    #[derive(Clone, Default)]
    pub struct MemoryStore(Rc<RefCell<Data>>);

    #[derive(Default)]
    struct Data {
        state: Option<GateState>,
        secret: Option<Vec<u8>>,
        /// (arrival order, domain, item), kept sorted by (tag, arrival order).
        queue: Vec<(i64, String, QueuedItem)>,
        next_id: u64,
        addresses: BTreeMap<String, AddressRecord>,
        sends: Vec<u64>,
        failing: BTreeSet<&'static str>,
        unreadable_head: Option<u64>,
    }

    impl MemoryStore {
        pub fn fail(&self, operation: &'static str) {
            self.0.borrow_mut().failing.insert(operation);
        }

        pub fn heal(&self, operation: &'static str) {
            self.0.borrow_mut().failing.remove(operation);
        }

        /// The queued items, head first.
        pub fn items(&self) -> Vec<QueuedItem> {
            self.0
                .borrow()
                .queue
                .iter()
                .map(|(_, _, i)| i.clone())
                .collect()
        }

        pub fn address(&self, key: &str) -> Option<AddressRecord> {
            self.0.borrow().addresses.get(key).copied()
        }

        pub fn sends(&self) -> Vec<u64> {
            self.0.borrow().sends.clone()
        }

        /// A row at the head that no longer reads back as an item, until it is removed.
        pub fn put_unreadable_head(&self, id: u64) {
            self.0.borrow_mut().unreadable_head = Some(id);
        }

        fn check(&self, operation: &'static str) -> StoreResult<()> {
            if self.0.borrow().failing.contains(operation) {
                Err(StoreError::failed(operation, "injected failure"))
            } else {
                Ok(())
            }
        }
    }

    impl GateStore for MemoryStore {
        fn load_state(&self) -> StoreResult<GateState> {
            self.check("load state")?;
            Ok(self.0.borrow().state.clone().unwrap_or_default())
        }

        fn save_state(&self, state: &GateState) -> StoreResult<()> {
            self.check("save state")?;
            self.0.borrow_mut().state = Some(state.clone());
            Ok(())
        }

        fn address_secret(&self, fresh: impl FnOnce() -> Vec<u8>) -> StoreResult<Vec<u8>> {
            self.check("address secret")?;
            let mut data = self.0.borrow_mut();
            Ok(data.secret.get_or_insert_with(fresh).clone())
        }

        fn queue_len(&self) -> StoreResult<u64> {
            self.check("queue length")?;
            Ok(self.0.borrow().queue.len() as u64)
        }

        fn position_of(&self, key: &str) -> StoreResult<Option<u64>> {
            self.check("position")?;
            let data = self.0.borrow();
            Ok(data
                .queue
                .iter()
                .position(|(_, _, i)| i.key == key)
                .map(|p| p as u64 + 1))
        }

        fn last_tag(&self, domain: &str) -> StoreResult<Option<u64>> {
            self.check("last tag")?;
            let data = self.0.borrow();
            Ok(data
                .queue
                .iter()
                .filter(|(_, d, _)| d == domain)
                .map(|(_, _, i)| i.tag)
                .max())
        }

        fn expire(&self, before_ms: u64) -> StoreResult<u64> {
            self.check("expire")?;
            let mut data = self.0.borrow_mut();
            let before = data.queue.len();
            data.queue.retain(|(_, _, i)| i.enqueued_at_ms >= before_ms);
            Ok((before - data.queue.len()) as u64)
        }

        fn enqueue(&self, new: NewItem) -> StoreResult<u64> {
            self.check("enqueue")?;
            let mut data = self.0.borrow_mut();
            if data.queue.iter().any(|(_, _, i)| i.key == new.key) {
                return Err(StoreError::failed("enqueue", "UNIQUE constraint failed"));
            }
            data.next_id += 1;
            let item = QueuedItem {
                id: data.next_id,
                email: new.email.clone(),
                key: new.key.into(),
                enqueued_at_ms: new.now_ms,
                attempts: new.attempts,
                tag: new.tag,
            };
            let orders = data.queue.iter().map(|(o, _, _)| *o);
            let order = match new.end {
                QueueEnd::Back => orders.max().unwrap_or(0) + 1,
                QueueEnd::Front => orders.min().unwrap_or(1) - 1,
            };
            data.queue.push((order, new.domain.to_string(), item));
            data.queue.sort_by_key(|(o, _, i)| (i.tag, *o));
            let key = new.key;
            Ok(data
                .queue
                .iter()
                .position(|(_, _, i)| i.key == key)
                .map_or(0, |p| p as u64 + 1))
        }

        fn head(&self) -> StoreResult<Option<QueuedItem>> {
            self.check("head")?;
            let data = self.0.borrow();
            if let Some(id) = data.unreadable_head {
                return Err(StoreError::UnreadableItem { id });
            }
            Ok(data.queue.first().map(|(_, _, i)| i.clone()))
        }

        fn remove(&self, id: u64) -> StoreResult<()> {
            self.check("remove")?;
            let mut data = self.0.borrow_mut();
            if data.unreadable_head == Some(id) {
                data.unreadable_head = None;
            }
            data.queue.retain(|(_, _, i)| i.id != id);
            Ok(())
        }

        fn set_attempts(&self, id: u64, attempts: u32) -> StoreResult<()> {
            self.check("set attempts")?;
            let mut data = self.0.borrow_mut();
            if let Some((_, _, item)) = data.queue.iter_mut().find(|(_, _, i)| i.id == id) {
                item.attempts = attempts;
            }
            Ok(())
        }

        fn oldest_enqueued_at(&self) -> StoreResult<Option<u64>> {
            self.check("oldest")?;
            Ok(self
                .0
                .borrow()
                .queue
                .iter()
                .map(|(_, _, i)| i.enqueued_at_ms)
                .min())
        }

        fn load_address(
            &self,
            key: &str,
            expired_before: u64,
        ) -> StoreResult<Option<AddressRecord>> {
            self.check("load address")?;
            let mut data = self.0.borrow_mut();
            data.addresses.retain(|_, r| r.last_ms >= expired_before);
            Ok(data.addresses.get(key).copied())
        }

        fn store_address(&self, key: &str, record: &AddressRecord) -> StoreResult<()> {
            self.check("store address")?;
            self.0.borrow_mut().addresses.insert(key.into(), *record);
            Ok(())
        }

        fn remove_address(&self, key: &str) -> StoreResult<()> {
            self.check("remove address")?;
            self.0.borrow_mut().addresses.remove(key);
            Ok(())
        }

        fn record_send(&self, now_ms: u64) -> StoreResult<()> {
            self.check("record send")?;
            self.0.borrow_mut().sends.push(now_ms);
            Ok(())
        }

        fn sends_since(&self, since_ms: u64) -> StoreResult<u64> {
            self.check("sends since")?;
            Ok(self
                .0
                .borrow()
                .sends
                .iter()
                .filter(|t| **t >= since_ms)
                .count() as u64)
        }
    }
}
