//! `Gate`: every decision the `SesGate` Durable Object makes, as a plain type generic over its
//! seams: [`GateStore`] (what it persists), [`SenderLink`] (the call to SES, on the shell's paced wire) and
//! [`GateRuntime`] (clock, randomness, log, alarm). The shell in `ses_gate` only moves values
//! between `worker` types and this type; the host tests drive it with fakes and a fake clock.
//!
//! Rooms, by job: `intake` (a signup to its answer), `drain` (the queue), `lifecycle` (a
//! signup's rows and events), `follow_up` (the sweep of checks, clean-up and listing),
//! `outbox` (webhook delivery), `handover` (a paused region's queue to the next region), `status` (stats and a signup's status), `confirm` (a person's
//! confirmation).
//!
//! A signup is sent at once when the queue is empty, a slot is free within `GATE_MAX_WAIT_MS`
//! and its recipient domain holds fewer than five such slots; otherwise it goes into the durable
//! queue, which the alarm drains one slot at a time, fairly across recipient domains
//! (`queue::fair_tag`). Invariants:
//! - nothing valid is lost: a signup is sent, queued (then sent, or dropped with a counted
//!   reason: rejected, exhausted, expired), or refused with an answer the caller sees;
//! - slots are at least `GATE_INTERVAL_MS` apart within an instance; on the wire every call
//!   is spaced by `pacing`, which counts the instance's start as an answer, whatever restarted;
//! - a mailbox (`mailbox::Mailbox`, not the typed string) gets at most one signup per
//!   `EMAIL_COOLDOWN_SECONDS` and `EMAIL_DAILY_MAX` a day, and the gate takes at most
//!   `DAILY_SEND_BUDGET` a day; a signup that ends up neither sent nor queued is taken back from
//!   both, one that timed out is not (it may have reached SES);
//! - an item leaves the queue only after a 2xx from SES or with a drop reason, and a call that
//!   timed out is made at most once more;
//! - every send's reservation, admission and queue change is a synchronous read-modify-write
//!   with no await inside, stored before the next await, so a restarted object resumes with the
//!   same slots, limits and queue (follow-up slots are kept in memory: a new instance starts its
//!   follow-up calls an interval after it started);
//! - no log line holds an address: records and logs use the HMAC key, never the plaintext.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use signup_verify_domain::log_line;

use crate::check_schedule::CheckSchedule;
use crate::config::GateConfig;
use crate::cooldown::AddressRecord;
use crate::identities::Snapshot;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::Recipient;
use crate::messages::SendReply;
use crate::messages::SenderLink;
pub use crate::ports::GateRuntime;
use crate::queue::HeadResult;
use crate::queue::QueuedItem;
use crate::slots::Reservation;
use crate::state::GateState;
use crate::store::GateStore;
use crate::store::StoreError;
use crate::tracking::Signup;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::redact::tag_of;
use signup_verify_ses::time::rfc3339_utc;

/// Without a queue to fall back on, a direct send is tried at most this often.
const DIRECT_ATTEMPTS_WITHOUT_QUEUE: u32 = 3;
/// In-request (direct) slots one recipient domain may hold at once while a queue can take the
/// rest: a flood to one domain then delays another domain's signup by at most this many
/// intervals before the fair queue takes over.
const DIRECT_SLOTS_PER_DOMAIN: u32 = 5;
/// One alarm drains for at most this long, then hands over to the next alarm.
const DRAIN_BUDGET_MS: u64 = 20_000;
/// Set before draining: if the object dies mid-drain, the alarm brings it back this soon.
const WATCHDOG_MS: u64 = 5_000;
/// When the queue cannot go on (no sender, no config, storage failing), it tries again after this.
pub const RETRY_LATER_MS: u64 = 60_000;
/// Queued positions shown to pollers and resubmissions are at most this old.
const RANK_TTL_MS: u64 = 1_000;
/// Counters changed without a save of their own are stored at least this often while an
/// instance lives (with the next change after it); an evicted instance loses what it counted
/// since its last save (see [`Gate::count`]).
const COUNTERS_SAVED_EVERY_MS: u64 = 3_600_000;

mod confirm;
mod drain;
mod follow_up;
mod handover;
mod intake;
pub use intake::PoolAsk;
mod lifecycle;
mod outbox;
mod status;
#[cfg(test)]
mod tests;

/// A `ListIdentities` listing under way (in memory: a restarted object starts it again).
struct Listing {
    snapshot: Snapshot,
    next_token: Option<String>,
}

/// What a successful admission changed: the record to put back if nothing is sent.
struct Admission {
    key: String,
    previous: Option<AddressRecord>,
}

/// Why an admission was refused.
enum Refusal {
    Cooldown { retry_after_secs: u64 },
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

pub struct Gate<S, L, R> {
    store: S,
    sender: L,
    runtime: R,
    config: GateConfig,
    state: RefCell<GateState>,
    /// The state changed since it was last saved (see [`Self::update`]).
    state_unsaved: Cell<bool>,
    /// When a change of the counters alone next makes the state unsaved (see [`Self::count`]).
    counters_saved_by_ms: Cell<u64>,
    /// Follow-up calls take their slots in memory (see [`Self::follow_up_slot`]): this
    /// instance's first waits until then, an interval after it started.
    follow_up_from_ms: u64,
    address_secret: Vec<u8>,
    draining: Cell<bool>,
    /// When the alarm is set for, if this object set one (in memory: a new object sets it again).
    alarm_at: Cell<Option<u64>>,
    /// The last complete identity snapshot (loaded at the start, replaced by a new listing).
    snapshot: RefCell<Option<Snapshot>>,
    /// A listing under way (in memory).
    listing: RefCell<Option<Listing>>,
    /// After a `ListIdentities` page failed, the listing waits until then (in memory).
    list_held_until: Cell<u64>,
    /// The identity key whose `DeleteIdentity` is in flight: no send to it leaves meanwhile.
    deleting: RefCell<Option<String>>,
    /// A confirmation's check is in flight (at most one at a time, in memory).
    confirm_checking: Cell<bool>,
    /// Follow-up checks made in a row while clean-up or the snapshot waited (in memory).
    checks_in_a_row: Cell<u32>,
    /// Every queued item's position, by key fingerprint, and when it was read (in memory; read
    /// again at most once per [`RANK_TTL_MS`], however many pollers ask).
    ranks: RefCell<Option<Ranks>>,
    /// When old signup records are next looked for (in memory).
    next_forget_ms: Cell<u64>,
    /// Direct sends in progress, by recipient domain (in memory: they live in requests).
    direct_by_domain: RefCell<HashMap<String, u32>>,
    /// When each sent signup is next checked (in memory, rebuilt from the rows at the start: a
    /// check that only moves it writes nothing; see `check_schedule`).
    checks: RefCell<CheckSchedule>,
}

/// When the queue was read, and each queued key's fingerprint with its position, sorted.
type Ranks = (u64, Vec<(u64, u64)>);

/// The rank table's key for an address key (hex HMAC): its first 8 bytes.
fn rank_key(key: &str) -> u64 {
    key.get(..16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| {
            key.bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        })
}

/// One direct send's hold on its domain's share, given back however the send ends.
struct DirectSlot<'a> {
    holders: &'a RefCell<HashMap<String, u32>>,
    domain: String,
}

impl<'a> DirectSlot<'a> {
    fn take(holders: &'a RefCell<HashMap<String, u32>>, domain: String) -> Self {
        *holders.borrow_mut().entry(domain.clone()).or_default() += 1;
        Self { holders, domain }
    }
}

impl Drop for DirectSlot<'_> {
    fn drop(&mut self) {
        let mut holders = self.holders.borrow_mut();
        if let Some(count) = holders.get_mut(&self.domain) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                holders.remove(&self.domain);
            }
        }
    }
}

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// Loads the gate state and the address key (making one on first use).
    pub fn open(store: S, sender: L, runtime: R, config: GateConfig) -> Result<Self, StoreError> {
        let state = store.load_state()?;
        let address_secret = store.address_secret(|| {
            let mut secret = vec![0u8; 32];
            runtime
                .secure_random(&mut secret)
                .map_err(|e| StoreError::failed("make the address key", e))?;
            Ok(secret)
        })?;
        let snapshot = store.load_snapshot()?;
        let now = runtime.now_ms();
        let ttl = config.tracking.link_ttl_ms;
        let checks = CheckSchedule::of(
            store
                .scheduled_checks()?
                .into_iter()
                .filter_map(|(key, signup)| {
                    let row = signup.next_check_ms?;
                    Some((key, signup.resumed_check_at(row, now, ttl)))
                })
                .collect(),
        );
        let follow_up_from_ms = now.saturating_add(config.interval_ms);
        Ok(Self {
            store,
            sender,
            runtime,
            config,
            state: RefCell::new(state),
            state_unsaved: Cell::new(false),
            counters_saved_by_ms: Cell::new(now.saturating_add(COUNTERS_SAVED_EVERY_MS)),
            follow_up_from_ms,
            address_secret,
            draining: Cell::new(false),
            alarm_at: Cell::new(None),
            snapshot: RefCell::new(snapshot),
            listing: RefCell::new(None),
            list_held_until: Cell::new(0),
            deleting: RefCell::new(None),
            confirm_checking: Cell::new(false),
            checks_in_a_row: Cell::new(0),
            ranks: RefCell::new(None),
            next_forget_ms: Cell::new(0),
            direct_by_domain: RefCell::default(),
            checks: RefCell::new(checks),
        })
    }

    /// Changes the gate state in memory; [`Self::save_state`] stores it before the next await
    /// (every await of the gate goes through [`Self::call_sender`], [`Self::arm_alarm`] or
    /// `deliver`, which save first) and when a signup, a drain or a confirmation ends. One
    /// write per turn instead of one per change.
    pub(super) fn update<T>(&self, change: impl FnOnce(&mut GateState) -> T) -> T {
        let result = change(&mut self.state.borrow_mut());
        self.state_unsaved.set(true);
        result
    }

    /// Changes counters that ride along (cost, checks and the signups they checked, listing
    /// pages, snapshots, skipped clean-ups) in memory without a save
    /// of their own: they are stored with the next save of the gate state (see `usage`), or, if
    /// none came for [`COUNTERS_SAVED_EVERY_MS`], with this change. An instance evicted between
    /// saves loses them, so for an object that sleeps between status checks they are a lower
    /// bound. What happened to signups (sends, final statuses, replacements, deletions,
    /// deliveries) and failures are counted with [`Self::update`]: stored at once.
    pub(super) fn count<T>(&self, change: impl FnOnce(&mut GateState) -> T) -> T {
        let result = change(&mut self.state.borrow_mut());
        if self.runtime.now_ms() >= self.counters_saved_by_ms.get() {
            self.state_unsaved.set(true);
        }
        result
    }

    /// A slot for a follow-up call (a check, a deletion, a listing page), or when to try again.
    /// Taken in memory only: a check that finds every signup pending writes no row, not even
    /// the slot. What a restart forgets, the new instance makes up for by starting its
    /// follow-up calls an interval after it started, so a call its predecessor made just
    /// before it stopped keeps its spacing. (A signup's send, which writes rows anyway, stores
    /// its slot: a restart never delays a send.)
    pub(super) fn follow_up_slot(&self, now: u64) -> Result<u64, u64> {
        if now < self.follow_up_from_ms {
            return Err(self.follow_up_from_ms);
        }
        match self.count(|g| g.reserve(now, self.config.interval_ms, 0)) {
            Reservation::Slot { at_ms } => Ok(at_ms),
            Reservation::Busy { .. } => Err(self.state.borrow().next_free_ms),
        }
    }

    /// SES took a call: the backoff and a run of configuration errors end, a change to store
    /// only if one was under way.
    pub(super) fn succeeded(&self) {
        let state = self.state.borrow();
        let under_way = state.backoff.is_active() || state.config_errors > 0;
        drop(state);
        if under_way {
            self.update(GateState::succeeded);
        }
    }

    /// One request to this gate object (a call from the Worker, or an alarm): the shell counts
    /// each as it arrives.
    pub fn count_request(&self) {
        self.count(|g| g.cost.gate_requests = g.cost.gate_requests.saturating_add(1));
    }

    /// Stores the gate state if it changed since it was last stored, with the rows read and
    /// written since the last save added to its cost counters.
    pub(super) fn save_state(&self) {
        if !self.state_unsaved.replace(false) {
            return;
        }
        self.counters_saved_by_ms.set(
            self.runtime
                .now_ms()
                .saturating_add(COUNTERS_SAVED_EVERY_MS),
        );
        let used = self.store.take_row_usage();
        self.count(|g| g.cost.add_rows(used));
        if let Err(e) = self.store.save_state(&self.state.borrow()) {
            self.log_store_error(&e);
        }
    }

    /// The signup keyed `key`, with its next check as the schedule holds it (its row may hold an
    /// earlier one: a check that only moved it wrote nothing). Every read of a signup goes
    /// through here, so that storing it again never moves its check back.
    pub(super) fn load_signup(&self, key: &str) -> Result<Option<Signup>, StoreError> {
        Ok(self.store.load_signup(key)?.map(|mut signup| {
            if signup.next_check_ms.is_some() {
                if let Some(at) = self.checks.borrow().at(key) {
                    signup.next_check_ms = Some(at);
                }
            }
            signup
        }))
    }

    /// Stores a signup's row, and its next check in the schedule.
    pub(super) fn put_signup(&self, key: &str, signup: &Signup) -> Result<(), StoreError> {
        self.store.store_signup(key, signup)?;
        self.checks.borrow_mut().set(key, signup.next_check_ms);
        Ok(())
    }

    /// Forgets a signup's row, and its place in the schedule.
    pub(super) fn forget_signup(&self, key: &str) -> Result<(), StoreError> {
        self.store.forget_signup(key)?;
        self.checks.borrow_mut().set(key, None);
        Ok(())
    }

    /// The link SES calls go out on (the shell wakes it at every event: see `wire`).
    pub fn sender(&self) -> &L {
        &self.sender
    }

    /// Hands `call` to the wire (`SenderLink`), the state stored first: a send's slot, admission and budget
    /// survive a restart.
    pub(super) async fn call_sender(&self, call: &CallRequest) -> Option<CallResult> {
        self.save_state();
        self.sender.call(call).await
    }

    /// A send SES took: in the send log, stored at once (the signup's row is written in the same
    /// turn), so that `sendsLastHour` survives an eviction.
    pub(super) fn record_send(&self) {
        let now = self.runtime.now_ms();
        self.update(|g| g.sends.record(now));
    }

    pub(super) fn unavailable(&self, e: &StoreError, to: Recipient) -> SendReply {
        self.runtime.log_error(log_line!({"event": "gate_storage_error", "error": e.to_string(), "address": tag_of(to.key), "request_id": to.request_id}));
        Err(ApiError::Unavailable)
    }

    /// One line per signup the gate takes: sent now (`direct`), `queued`, or `already_queued`.
    pub(super) fn log_admitted(&self, to: Recipient, route: &str, position: Option<u64>) {
        self.runtime.log_info(|| log_line!({"event": "gate_admitted", "route": route, "position": position, "address": tag_of(to.key), "request_id": to.request_id}));
    }

    pub(super) fn log_store_error(&self, e: &StoreError) {
        self.runtime
            .log_error(log_line!({"event": "gate_storage_error", "error": e.to_string()}));
    }

    /// One structured line per queued send's fate, with the signup's request id; drops are what
    /// an operator must see.
    pub(super) fn log_head_result(&self, outcome: &HeadResult, head: &QueuedItem) {
        let waited_ms = self.runtime.now_ms().saturating_sub(head.enqueued_at_ms);
        let (address, request_id) = (tag_of(&head.key), &head.request_id);
        match outcome {
            HeadResult::Dropped { reason, attempts } => self.runtime.log_error(
                log_line!({"event": "queue_drop", "reason": reason.as_str(), "attempts": attempts, "waited_ms": waited_ms, "address": address, "request_id": request_id}),
            ),
            HeadResult::Paused { paused_until_ms } => self.runtime.log_error(
                log_line!({"event": "queue_paused", "reason": "SES says the configuration is broken", "until": rfc3339_utc(*paused_until_ms), "address": address, "request_id": request_id}),
            ),
            other => self.runtime.log_info(
                || log_line!({"event": "queue_send", "result": format!("{other:?}"), "waited_ms": waited_ms, "address": address, "request_id": request_id}),
            ),
        }
    }
}
