//! `MemoryStore`: the host tests' [`GateStore`], in memory. Clones share one set of data (as a
//! Durable Object's storage outlives the object), and `fail(op)` makes an operation fail until
//! `heal(op)`. Its contract is the SQL store's: `conformance.rs` runs the same tests on both.
//! Memory bills no rows: its row usage is what a test charges it (`charge`).
//! Behind the `testing` feature for other crates' tests.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::cooldown::AddressRecord;
use crate::identities::{Identity, Snapshot};
use crate::queue::QueuedItem;
use crate::state::GateState;
use crate::store::{has_work, GateStore, NewItem, OutboxEvent, QueueEnd, StoreError, StoreResult};
use crate::tracking::Signup;
use crate::usage::RowUsage;

/// The host tests' store. Clones share one set of data, as a Durable Object's storage outlives
/// the object: a new gate on a clone is a restart. `fail(op)` makes every call of `op` fail
/// until `heal(op)`.
#[derive(Clone, Default)]
pub struct MemoryStore(Rc<RefCell<Data>>);

#[derive(Default)]
struct Data {
    state: Option<GateState>,
    secret: Option<Vec<u8>>,
    region: Option<String>,
    /// (arrival order, domain, item), kept sorted by (tag, arrival order).
    queue: Vec<(i64, String, QueuedItem)>,
    next_id: u64,
    addresses: BTreeMap<String, AddressRecord>,
    signups: BTreeMap<String, Signup>,
    identities: BTreeMap<String, Identity>,
    snapshot: Option<Snapshot>,
    events: Vec<OutboxEvent>,
    failing: BTreeSet<&'static str>,
    /// Calls made, by operation.
    calls: BTreeMap<&'static str, u64>,
    unreadable_head: Option<u64>,
    /// Row usage a test charged, not yet taken.
    usage: RowUsage,
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

    pub fn signups(&self) -> Vec<Signup> {
        self.0.borrow().signups.values().cloned().collect()
    }

    pub fn identities(&self) -> Vec<Identity> {
        self.0.borrow().identities.values().cloned().collect()
    }

    pub fn events(&self) -> Vec<OutboxEvent> {
        self.0.borrow().events.clone()
    }

    /// A row at the head that no longer reads back as an item, until it is removed.
    pub fn put_unreadable_head(&self, id: u64) {
        self.0.borrow_mut().unreadable_head = Some(id);
    }

    /// Charges `usage` as if statements had read and written those rows.
    pub fn charge(&self, usage: RowUsage) {
        self.0.borrow_mut().usage.add(usage);
    }

    /// How many times `operation` was called (failed calls included).
    pub fn calls(&self, operation: &'static str) -> u64 {
        self.0.borrow().calls.get(operation).copied().unwrap_or(0)
    }

    fn check(&self, operation: &'static str) -> StoreResult<()> {
        *self.0.borrow_mut().calls.entry(operation).or_default() += 1;
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

    fn take_row_usage(&self) -> RowUsage {
        std::mem::take(&mut self.0.borrow_mut().usage)
    }

    fn address_secret(&self, fresh: impl FnOnce() -> StoreResult<Vec<u8>>) -> StoreResult<Vec<u8>> {
        self.check("address secret")?;
        if let Some(secret) = self.0.borrow().secret.clone() {
            return Ok(secret);
        }
        let secret = fresh()?;
        self.0.borrow_mut().secret = Some(secret.clone());
        Ok(secret)
    }

    fn own_region(&self, named: Option<&str>) -> StoreResult<Option<String>> {
        self.check("own region")?;
        if let Some(name) = named {
            self.0.borrow_mut().region = Some(name.to_string());
        }
        Ok(self.0.borrow().region.clone())
    }

    fn queue_len(&self) -> StoreResult<u64> {
        self.check("queue length")?;
        Ok(self.0.borrow().queue.len() as u64)
    }

    fn is_queued(&self, key: &str) -> StoreResult<bool> {
        self.check("is queued")?;
        Ok(self.0.borrow().queue.iter().any(|(_, _, i)| i.key == key))
    }

    fn queue_order(&self) -> StoreResult<Vec<String>> {
        self.check("queue order")?;
        Ok(self
            .0
            .borrow()
            .queue
            .iter()
            .map(|(_, _, i)| i.key.clone())
            .collect())
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

    fn expire(&self, before_ms: u64) -> StoreResult<Vec<String>> {
        self.check("expire")?;
        let mut data = self.0.borrow_mut();
        let expired = data
            .queue
            .iter()
            .filter(|(_, _, i)| i.enqueued_at_ms < before_ms)
            .map(|(_, _, i)| i.key.clone())
            .collect();
        data.queue.retain(|(_, _, i)| i.enqueued_at_ms >= before_ms);
        Ok(expired)
    }

    fn enqueue(&self, new: NewItem) -> StoreResult<u64> {
        self.check("enqueue")?;
        let mut data = self.0.borrow_mut();
        if data.queue.iter().any(|(_, _, i)| i.key == new.to.key) {
            return Err(StoreError::failed("enqueue", "UNIQUE constraint failed"));
        }
        data.next_id += 1;
        let item = QueuedItem {
            id: data.next_id,
            email: new.to.email.clone(),
            key: new.to.key.into(),
            enqueued_at_ms: new.now_ms,
            attempts: new.attempts,
            tag: new.tag,
            request_id: new.to.request_id.cloned(),
        };
        let orders = data.queue.iter().map(|(o, _, _)| *o);
        let order = match new.end {
            QueueEnd::Back => orders.max().unwrap_or(0) + 1,
            QueueEnd::Front => orders.min().unwrap_or(1) - 1,
        };
        data.queue.push((order, new.domain.to_string(), item));
        data.queue.sort_by_key(|(o, _, i)| (i.tag, *o));
        let key = new.to.key;
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

    fn load_address(&self, key: &str, expired_before: u64) -> StoreResult<Option<AddressRecord>> {
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

    fn load_signup(&self, key: &str) -> StoreResult<Option<Signup>> {
        self.check("load signup")?;
        Ok(self.0.borrow().signups.get(key).cloned())
    }

    fn store_signup(&self, key: &str, signup: &Signup) -> StoreResult<()> {
        self.check("store signup")?;
        self.0
            .borrow_mut()
            .signups
            .insert(key.into(), signup.clone());
        Ok(())
    }

    fn forget_signup(&self, key: &str) -> StoreResult<()> {
        self.check("forget signup")?;
        self.0.borrow_mut().signups.remove(key);
        Ok(())
    }

    fn scheduled_checks(&self) -> StoreResult<Vec<(String, Signup)>> {
        self.check("scheduled checks")?;
        Ok(self
            .0
            .borrow()
            .signups
            .iter()
            .filter(|(_, s)| s.next_check_ms.is_some())
            .map(|(key, s)| (key.clone(), s.clone()))
            .collect())
    }

    fn forget_signups(&self, before_ms: u64) -> StoreResult<u64> {
        self.check("forget signups")?;
        let mut data = self.0.borrow_mut();
        let before = data.signups.len();
        data.signups
            .retain(|_, s| s.signed_up_ms >= before_ms || has_work(s));
        Ok((before - data.signups.len()) as u64)
    }

    fn load_identity(&self, key: &str) -> StoreResult<Option<Identity>> {
        self.check("load identity")?;
        Ok(self.0.borrow().identities.get(key).cloned())
    }

    fn store_identity(&self, key: &str, identity: &Identity) -> StoreResult<()> {
        self.check("store identity")?;
        self.0
            .borrow_mut()
            .identities
            .insert(key.into(), identity.clone());
        Ok(())
    }

    fn forget_identity(&self, key: &str) -> StoreResult<()> {
        self.check("forget identity")?;
        self.0.borrow_mut().identities.remove(key);
        Ok(())
    }

    fn next_cleanup(&self, now_ms: u64) -> StoreResult<Option<(String, Identity)>> {
        self.check("next cleanup")?;
        Ok(self
            .0
            .borrow()
            .identities
            .iter()
            .filter_map(|(k, i)| Some((i.next_cleanup_ms?, k, i)))
            .min_by_key(|(at, k, _)| (*at, (*k).clone()))
            .filter(|(at, _, _)| *at <= now_ms)
            .map(|(_, k, i)| (k.clone(), i.clone())))
    }

    fn next_cleanup_at(&self) -> StoreResult<Option<u64>> {
        self.check("next cleanup at")?;
        Ok(self
            .0
            .borrow()
            .identities
            .values()
            .filter_map(|i| i.next_cleanup_ms)
            .min())
    }

    fn forget_identities(&self, before_ms: u64) -> StoreResult<u64> {
        self.check("forget identities")?;
        let mut data = self.0.borrow_mut();
        let before = data.identities.len();
        data.identities
            .retain(|_, i| i.sent_ms >= before_ms || i.has_work());
        Ok((before - data.identities.len()) as u64)
    }

    fn load_snapshot(&self) -> StoreResult<Option<Snapshot>> {
        self.check("load snapshot")?;
        Ok(self.0.borrow().snapshot.clone())
    }

    fn store_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        self.check("store snapshot")?;
        self.0.borrow_mut().snapshot = Some(snapshot.clone());
        Ok(())
    }

    fn add_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.check("add event")?;
        let mut data = self.0.borrow_mut();
        if !data.events.iter().any(|e| e.id == event.id) {
            data.events.push(event.clone());
        }
        Ok(())
    }

    fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.check("due events")?;
        let data = self.0.borrow();
        let mut due: Vec<OutboxEvent> = data
            .events
            .iter()
            .filter(|e| e.next_attempt_ms <= now_ms)
            .cloned()
            .collect();
        due.sort_by_key(|e| (e.next_attempt_ms, e.created_ms));
        due.truncate(limit);
        Ok(due)
    }

    fn next_event_at(&self) -> StoreResult<Option<u64>> {
        self.check("next event")?;
        Ok(self
            .0
            .borrow()
            .events
            .iter()
            .map(|e| e.next_attempt_ms)
            .min())
    }

    fn reschedule_event(&self, id: &str, attempts: u32, next_attempt_ms: u64) -> StoreResult<()> {
        self.check("reschedule event")?;
        if let Some(event) = self.0.borrow_mut().events.iter_mut().find(|e| e.id == id) {
            event.attempts = attempts;
            event.next_attempt_ms = next_attempt_ms;
        }
        Ok(())
    }

    fn remove_event(&self, id: &str) -> StoreResult<()> {
        self.check("remove event")?;
        self.0.borrow_mut().events.retain(|e| e.id != id);
        Ok(())
    }

    fn event_releases(&self, key: &str) -> StoreResult<bool> {
        self.check("event releases")?;
        Ok(self
            .0
            .borrow()
            .events
            .iter()
            .any(|e| e.key == key && e.releases_cleanup))
    }

    fn event_backlog(&self) -> StoreResult<u64> {
        self.check("event backlog")?;
        Ok(self.0.borrow().events.len() as u64)
    }
}
