//! `Gate`: every decision the `SesGate` Durable Object makes, as a plain type generic over its
//! seams: [`GateStore`] (what it persists), [`SenderLink`] (the call to `SesSender`) and
//! [`GateRuntime`] (clock, randomness, log, alarm). The shell in `ses_gate` only moves values
//! between `worker` types and this type; the host tests drive it with fakes and a fake clock.
//!
//! A signup is sent at once when the queue is empty, a slot is free within `GATE_MAX_WAIT_MS`
//! and its recipient domain holds fewer than five such slots; otherwise it goes into the durable
//! queue, which the alarm drains one slot at a time, fairly across recipient domains
//! (`queue::fair_tag`). Invariants:
//! - nothing valid is lost: a signup is sent, queued (then sent, or dropped with a counted
//!   reason: rejected, exhausted, expired), or refused with an answer the caller sees;
//! - slots are at least `GATE_INTERVAL_MS` apart (the sender spaces the wire; see `pacing`);
//! - a mailbox (`mailbox::Mailbox`, not the typed string) gets at most one signup per
//!   `EMAIL_COOLDOWN_SECONDS` and `EMAIL_DAILY_MAX` a day, and the gate takes at most
//!   `DAILY_SEND_BUDGET` a day; a signup that ends up neither sent nor queued is taken back from
//!   both, one that timed out is not (it may have reached SES);
//! - an item leaves the queue only after a 2xx from SES or with a drop reason, and a call that
//!   timed out is made at most once more;
//! - every reservation, admission and queue change is a synchronous read-modify-write with no
//!   await inside, stored before the next await, so a restarted object resumes with the same
//!   slots, limits and queue;
//! - no log line holds an address: records and logs use the HMAC key, never the plaintext.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::{json, Value};

use crate::config::GateConfig;
use crate::cooldown::address_key;
use crate::cooldown::admit;
use crate::cooldown::AddressRecord;
use crate::identities::Snapshot;
use crate::messages::Accepted;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::GateStats;
use crate::messages::Recipient;
use crate::messages::SendReply;
use crate::messages::SenderLink;
use crate::queue::estimated_send_at_ms;
use crate::queue::fair_tag;
use crate::queue::settle_head;
use crate::queue::DropReason;
use crate::queue::HeadResult;
use crate::queue::QueuedItem;
use crate::slots::retry_jitter_ms;
use crate::slots::Reservation;
use crate::state::GateState;
use crate::store::GateStore;
use crate::store::NewItem;
use crate::store::QueueEnd;
use crate::store::StoreError;
use crate::tracking::SignupState;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::retry_after_secs;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::mailbox::Mailbox;
use signup_verify_domain::redact::tag_of;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_ses::outcome::api_error_for;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;
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

mod follow_up;
use follow_up::{FollowUp, Listing};

/// What the gate needs from its platform besides storage and the sender.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound is wanted.
pub trait GateRuntime {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Randomness for jitter (no secret depends on it).
    fn random_u32(&self) -> u32;
    /// Fills `out` from the platform's CSPRNG, for key material and nonces; an error when the
    /// source fails (never a fallback: key material fails closed).
    fn secure_random(&self, out: &mut [u8]) -> Result<(), String>;
    /// One structured log line (never an address or a secret), built only if it is written.
    fn log_info(&self, line: impl FnOnce() -> Value);
    fn log_error(&self, line: Value);
    /// Wakes the object's `alarm` at `at_ms` (replacing any earlier alarm).
    async fn set_alarm(&self, at_ms: u64) -> Result<(), String>;
    /// POSTs `body` to `url` with `headers`, within a bounded time: the receiver's status, or
    /// why there is none.
    async fn post_webhook(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<u16, String>;
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
        Ok(Self {
            store,
            sender,
            runtime,
            config,
            state: RefCell::new(state),
            state_unsaved: Cell::new(false),
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
        })
    }

    /// A signup: dedupe, the per-address limits, then a direct send or the queue. Every line it
    /// logs carries `request_id`.
    /// `presented`: the signup the request's browser holds a credential for (its cookie), if
    /// any: a new signup that replaces that very signup is not contested.
    pub async fn send(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        presented: Option<&SignupRef>,
    ) -> SendReply {
        let reply = self.take_signup(email, request_id, presented).await;
        self.save_state();
        reply
    }

    async fn take_signup(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        presented: Option<&SignupRef>,
    ) -> SendReply {
        let arrival = self.runtime.now_ms();
        let key = address_key(&self.address_secret, email);
        let to = Recipient {
            email,
            key: &key,
            request_id: Some(request_id),
        };
        if let Some(reply) = self.already_queued(to, arrival) {
            return reply;
        }
        let nonce = match self.fresh_nonce() {
            Ok(nonce) => nonce,
            Err(error) => {
                self.runtime.log_error(json!({"event": "random_source_failed", "error": error, "request_id": request_id}));
                return Err(ApiError::Unavailable);
            }
        };
        let admission = match self.admit(to, arrival) {
            Ok(admission) => admission,
            Err(refused) => return refused,
        };
        // Tracked before the first await, so the drain always finds the row it updates.
        let tracked = match self.track_signup(&key, email, arrival, nonce, presented) {
            Ok(tracked) => tracked,
            Err(e) => return self.unavailable(&e, to),
        };
        let made = self
            .config
            .tracking
            .status_token_secret
            .is_some()
            .then(|| tracked.signup_ref(&key));
        let reply = self.send_or_queue(to, arrival).await;
        let follow_up_due = self.settle_signup(&key, tracked, &reply);
        match (&reply, admission) {
            // A call that timed out may have reached SES: the address keeps its admission (and
            // the budget its count), so a resubmission within the cooldown cannot mail again.
            (Err(ApiError::UpstreamTimeout), _) => {}
            (Err(_), admission) => {
                self.update(|g| g.budget.give_back());
                if let Some(admission) = admission {
                    self.take_back(admission);
                }
            }
            _ => {}
        }
        // A gate with no snapshot yet takes one as soon as it is idle: until then, ownership
        // waits for each identity's first check.
        let snapshot_due = self.snapshot_due_soon(arrival);
        if let Some(at) = [follow_up_due, snapshot_due].into_iter().flatten().min() {
            self.alarm_by(at).await;
        }
        reply.map(|accepted| accepted.made(made))
    }

    /// The queued position of the item keyed `key`, from the rank table read at most once per
    /// [`RANK_TTL_MS`]: a poll never scans the queue, and any number of them read it once a
    /// second at most. `None` if it is not queued (as of that read).
    pub(crate) fn queued_position(&self, key: &str, now: u64) -> Option<u64> {
        let stale = self
            .ranks
            .borrow()
            .as_ref()
            .is_none_or(|(read_at, _)| now >= read_at + RANK_TTL_MS);
        if stale {
            match self.store.queue_order() {
                Ok(keys) => {
                    let mut ranks: Vec<(u64, u64)> = keys
                        .iter()
                        .enumerate()
                        .map(|(n, k)| (rank_key(k), n as u64 + 1))
                        .collect();
                    ranks.sort_unstable();
                    self.ranks.replace(Some((now, ranks)));
                }
                Err(e) => {
                    self.log_store_error(&e);
                    return None;
                }
            }
        }
        let wanted = rank_key(key);
        self.ranks.borrow().as_ref().and_then(|(_, ranks)| {
            let at = ranks.partition_point(|(k, _)| *k < wanted);
            ranks.get(at).filter(|(k, _)| *k == wanted).map(|(_, n)| *n)
        })
    }

    /// A honeypot hit: answered as a signup is (dedupe, the address limits, the daily budget,
    /// a `sent` answer with the mailbox's real key and credentials whose nonce marks a decoy),
    /// but nothing is sent, tracked or queued.
    pub async fn decoy(&self, email: &EmailAddress, request_id: &RequestId) -> SendReply {
        let reply = self.take_decoy(email, request_id);
        self.save_state();
        reply
    }

    fn take_decoy(&self, email: &EmailAddress, request_id: &RequestId) -> SendReply {
        let arrival = self.runtime.now_ms();
        let key = address_key(&self.address_secret, email);
        let to = Recipient {
            email,
            key: &key,
            request_id: Some(request_id),
        };
        if let Some(reply) = self.already_queued(to, arrival) {
            return reply;
        }
        // Kept, as a sent signup's is: a decoy counts against the mailbox and the budget.
        if let Err(refused) = self.admit(to, arrival) {
            return refused;
        }
        let mut random = [0u8; 8 + 16];
        if let Err(error) = self.runtime.secure_random(&mut random) {
            self.runtime.log_error(
                json!({"event": "random_source_failed", "error": error, "request_id": request_id}),
            );
            return Err(ApiError::Unavailable);
        }
        let (nonce_random, id_random) = random.split_at(8);
        let signup = self
            .config
            .tracking
            .status_token_secret
            .as_ref()
            .map(|secret| SignupRef {
                nonce: signup_verify_domain::status_token::decoy_nonce(
                    secret.expose().as_bytes(),
                    &key,
                    nonce_random.try_into().unwrap_or_default(),
                ),
                key: key.clone(),
                signed_up_ms: arrival,
            });
        Ok(Accepted::Sent {
            message_id: Some(signup_verify_domain::status_token::decoy_message_id(
                arrival,
                id_random.try_into().unwrap_or_default(),
            )),
            signup,
        })
    }

    /// A signup's random nonce, hex.
    fn fresh_nonce(&self) -> Result<String, String> {
        let mut nonce = [0u8; signup_verify_domain::status_token::NONCE_BYTES];
        self.runtime.secure_random(&mut nonce)?;
        Ok(hex::encode(nonce))
    }

    /// The answer to a signup of a mailbox that is queued already: its place, and none of its
    /// credentials (they are the queuing request's alone; the answer reads the same whoever
    /// asks). `None` when it is not queued.
    fn already_queued(&self, to: Recipient, arrival: u64) -> Option<SendReply> {
        match self.store.is_queued(to.key) {
            Ok(true) => {
                let position = self.queued_position(to.key, arrival).unwrap_or(1);
                self.log_admitted(to, "already_queued", Some(position));
                Some(self.queued_reply(position, arrival))
            }
            Ok(false) => None,
            Err(e) => Some(self.unavailable(&e, to)),
        }
    }

    /// The per-address limits, then the daily budget, both taken synchronously: the admission
    /// to put back if nothing is sent (`None` with the limits off), or the refusal to answer.
    fn admit(&self, to: Recipient, arrival: u64) -> Result<Option<Admission>, SendReply> {
        let admission = match self.admit_address(to.key, arrival) {
            Ok(admission) => admission,
            Err(Refusal::Cooldown { retry_after_secs }) => {
                self.runtime.log_info(|| json!({"event": "address_cooldown", "retry_after_secs": retry_after_secs, "address": tag_of(to.key), "request_id": to.request_id}));
                return Err(Err(ApiError::Cooldown { retry_after_secs }));
            }
            Err(Refusal::Store(e)) => return Err(self.unavailable(&e, to)),
        };
        let budget = self.config.daily_send_budget;
        if let Err(retry_after_secs) = self.update(|g| g.budget.take(arrival, budget)) {
            self.runtime.log_error(json!({"event": "daily_budget_spent", "budget": budget, "retry_after_secs": retry_after_secs, "request_id": to.request_id}));
            if let Some(admission) = admission {
                self.take_back(admission);
            }
            return Err(Err(ApiError::Busy { retry_after_secs }));
        }
        Ok(admission)
    }

    /// Checks and records the per-address limits, synchronously. `None` when they are off.
    fn admit_address(&self, key: &str, now: u64) -> Result<Option<Admission>, Refusal> {
        let limits = self.config.address_limits;
        if limits.is_off() {
            return Ok(None);
        }
        let previous = self
            .store
            .load_address(key, now.saturating_sub(limits.retention_ms()))?;
        let record = admit(previous.as_ref(), now, limits)
            .map_err(|retry_after_secs| Refusal::Cooldown { retry_after_secs })?;
        self.store.store_address(key, &record)?;
        Ok(Some(Admission {
            key: key.to_string(),
            previous,
        }))
    }

    /// Neither sent nor queued: the signup must not count against the address.
    fn take_back(&self, admission: Admission) {
        let restored = match &admission.previous {
            Some(record) => self.store.store_address(&admission.key, record),
            None => self.store.remove_address(&admission.key),
        };
        if let Err(e) = restored {
            self.log_store_error(&e);
        }
    }

    async fn send_or_queue(&self, to: Recipient<'_>, arrival: u64) -> SendReply {
        let queue_len = match self.store.queue_len() {
            Ok(len) => len,
            Err(e) => return self.unavailable(&e, to),
        };
        let paused = self
            .state
            .borrow()
            .paused_until_ms
            .is_some_and(|t| t > arrival);
        let domain = Mailbox::of(to.email).fair_domain().to_string();
        let domain_has_room = self.config.queue_max == 0
            || self
                .direct_by_domain
                .borrow()
                .get(&domain)
                .is_none_or(|held| *held < DIRECT_SLOTS_PER_DOMAIN);
        // A send must not race the delete of its own identity: it waits in the queue.
        let being_deleted = self
            .deleting
            .borrow()
            .as_ref()
            .is_some_and(|deleting| *deleting == self.identity_key_of(to.email.as_str()));
        let reservation = if queue_len == 0 && !paused && domain_has_room && !being_deleted {
            self.update(|g| g.reserve(arrival, self.config.interval_ms, self.config.max_wait_ms))
        } else {
            Reservation::Busy {
                retry_after_secs: 1,
            }
        };
        match reservation {
            Reservation::Slot { at_ms } => {
                let _held = DirectSlot::take(&self.direct_by_domain, domain);
                self.log_admitted(to, "direct", None);
                self.send_direct(to, arrival, at_ms).await
            }
            Reservation::Busy { retry_after_secs } => {
                match self.enqueue(to, arrival, QueueEnd::Back, 0).await {
                    Ok(Some(queued)) => queued,
                    Ok(None) => {
                        self.runtime.log_info(|| json!({"event": "gate_busy", "retry_after_secs": retry_after_secs, "address": tag_of(to.key), "request_id": to.request_id}));
                        Err(ApiError::Busy {
                            retry_after_secs: self.queue_full_retry_after(),
                        })
                    }
                    Err(e) => self.unavailable(&e, to),
                }
            }
        }
    }

    /// Sends in the request, at `slot`. A retryable failure puts the signup at the head of the
    /// queue; only without room there is it retried in the request (twice, within
    /// `GATE_MAX_WAIT_MS`) and then answered with the upstream error.
    async fn send_direct(&self, to: Recipient<'_>, arrival: u64, mut slot: u64) -> SendReply {
        let interval = self.config.interval_ms;
        let deadline = arrival + self.config.max_wait_ms;
        for attempt in 1..=DIRECT_ATTEMPTS_WITHOUT_QUEUE {
            let call = CallRequest::send(to, slot, attempt);
            let Some(result) = self.call_sender(&call).await else {
                return Err(ApiError::Misconfigured);
            };
            let outcome = match result {
                CallResult::Answered(Outcome::Sent { message_id }) => {
                    self.update(GateState::succeeded);
                    self.record_send();
                    return Ok(Accepted::Sent {
                        message_id,
                        signup: None,
                    });
                }
                CallResult::TimedOut => None,
                CallResult::Answered(outcome) => Some(outcome),
            };
            let throttled = outcome == Some(Outcome::Retryable(RetryReason::Throttled));
            if throttled {
                let (now, random) = (self.runtime.now_ms(), self.runtime.random_u32());
                self.update(|g| {
                    g.counters.throttles_seen += 1;
                    g.throttled(now, random)
                });
            }
            if !matches!(outcome, None | Some(Outcome::Retryable(_))) {
                let outcome = outcome.unwrap_or(Outcome::Unknown);
                return Err(api_error_for(&outcome, 1));
            }
            if outcome.is_none() {
                // Timed out: the call may well have reached SES, and the person may have the
                // mail. Not tried again; the admission stays (see `send`).
                return Err(ApiError::UpstreamTimeout);
            }
            // A throttle is not the signup's fault; other failures count as an attempt.
            let attempts = u32::from(!throttled);
            if attempts < self.config.ses_max_attempts {
                let now = self.runtime.now_ms();
                match self.enqueue(to, now, QueueEnd::Front, attempts).await {
                    Ok(Some(queued)) => return queued,
                    Ok(None) => {}
                    // Not queued: the signup still gets its retries in the request.
                    Err(e) => self.log_store_error(&e),
                }
            }
            let now = self.runtime.now_ms();
            let jitter = retry_jitter_ms(self.runtime.random_u32(), interval);
            let retry = if attempt < DIRECT_ATTEMPTS_WITHOUT_QUEUE {
                self.update(|g| g.reserve_retry(now, interval, jitter, deadline))
            } else {
                None
            };
            match retry {
                Some(next) => slot = next,
                None => {
                    let wait = self.state.borrow().next_free_ms.saturating_sub(now);
                    let outcome = outcome.unwrap_or(Outcome::Unknown);
                    return Err(api_error_for(&outcome, retry_after_secs(wait)));
                }
            }
        }
        Err(ApiError::UpstreamError)
    }

    /// Queues the signup and makes sure the alarm will drain it. `Ok(None)` when the queue is
    /// full or off.
    async fn enqueue(
        &self,
        to: Recipient<'_>,
        now: u64,
        end: QueueEnd,
        attempts: u32,
    ) -> Result<Option<SendReply>, StoreError> {
        if self.store.queue_len()? >= self.config.queue_max {
            return Ok(None);
        }
        let mailbox = Mailbox::of(to.email);
        let domain = mailbox.fair_domain();
        let front = end == QueueEnd::Front;
        let last_of_domain = if front {
            None
        } else {
            self.store.last_tag(domain)?
        };
        let position = self.store.enqueue(NewItem {
            end,
            to,
            domain,
            tag: fair_tag(front, last_of_domain, self.state.borrow().served_tag),
            now_ms: now,
            attempts,
        })?;
        self.log_admitted(to, "queued", Some(position));
        // Now, not at the next slot: draining waits for its slots itself. Once per drain, not
        // per item: each storage call is one more event in the object's queue.
        self.alarm_by(now).await;
        Ok(Some(self.queued_reply(position, now)))
    }

    fn queued_reply(&self, position: u64, now: u64) -> SendReply {
        let state = self.state.borrow();
        let at = estimated_send_at_ms(&state, now, position, self.config.interval_ms);
        Ok(Accepted::Queued {
            position,
            estimated_send_at: rfc3339_utc(at),
            paused_until: state.paused_until_ms.filter(|t| *t > now).map(rfc3339_utc),
            signup: None,
        })
    }

    /// An honest `Retry-After` when the queue is full: the time to send what is ahead.
    fn queue_full_retry_after(&self) -> u64 {
        let ahead = self.store.queue_len().unwrap_or(0);
        let backlog_ms = ahead.saturating_mul(self.config.interval_ms);
        let now = self.runtime.now_ms();
        let wait = self.state.borrow().next_free_ms.saturating_sub(now) + backlog_ms;
        retry_after_secs(wait)
    }

    /// Sends the head of the queue at each slot until the queue is empty, paused, or this
    /// alarm's budget is spent; then re-arms the alarm.
    pub async fn drain(&self) {
        self.drain_queue().await;
        self.save_state();
    }

    async fn drain_queue(&self) {
        self.runtime
            .log_info(|| json!({"event": "alarm", "queue_length": self.store.queue_len().ok()}));
        if self.draining.replace(true) {
            return;
        }
        let started = self.runtime.now_ms();
        self.arm_alarm(started + WATCHDOG_MS).await;
        let next_alarm = loop {
            let now = self.runtime.now_ms();
            if let Err(e) = self.expire_old_items(now) {
                self.log_store_error(&e);
                break Some(now + RETRY_LATER_MS);
            }
            let head = match self.store.head() {
                Ok(Some(head)) => head,
                Ok(None) => match self.follow_up(now, started).await {
                    FollowUp::Again => continue,
                    FollowUp::Done(next) => break next,
                },
                Err(StoreError::UnreadableItem { id }) => {
                    self.runtime
                        .log_error(json!({"event": "queue_drop", "reason": "unparseable_row"}));
                    match self.store.remove(id) {
                        Ok(()) => continue,
                        Err(e) => {
                            self.log_store_error(&e);
                            break Some(now + RETRY_LATER_MS);
                        }
                    }
                }
                Err(e) => {
                    self.log_store_error(&e);
                    break Some(now + RETRY_LATER_MS);
                }
            };
            if let Some(until) = self.state.borrow().paused_until_ms.filter(|t| *t > now) {
                break Some(until);
            }
            let next_free = self.state.borrow().next_free_ms.max(now);
            if next_free >= started + DRAIN_BUDGET_MS {
                break Some(next_free);
            }
            let Reservation::Slot { at_ms: slot } =
                self.update(|g| g.reserve(now, self.config.interval_ms, u64::MAX))
            else {
                break Some(next_free);
            };
            let call = CallRequest::send(head.recipient(), slot, head.attempts + 1);
            let Some(result) = self.call_sender(&call).await else {
                break Some(self.runtime.now_ms() + RETRY_LATER_MS);
            };
            if let Err(e) = self.settle(&head, result) {
                // The queue cannot be trusted to move on: stop rather than send the head twice.
                self.log_store_error(&e);
                break Some(self.runtime.now_ms() + RETRY_LATER_MS);
            }
        };
        self.draining.set(false);
        match next_alarm {
            Some(at) => self.arm_alarm(at).await,
            // Only the watchdog is left: the next signup to queue must set an alarm for now.
            None => self.alarm_at.set(None),
        }
    }

    /// Drops every item older than `QUEUE_MAX_AGE_SECONDS`, counted and logged.
    fn expire_old_items(&self, now: u64) -> Result<(), StoreError> {
        let max_age = self.config.queue_max_age_ms;
        if max_age == 0 {
            return Ok(());
        }
        let expired_keys = self.store.expire(now.saturating_sub(max_age))?;
        for key in &expired_keys {
            self.signup_failed(
                key,
                SignupState::Dropped,
                Some(DropReason::Expired.as_str()),
            );
        }
        let expired = expired_keys.len() as u64;
        if expired > 0 {
            self.update(|g| {
                *g.counters
                    .drops
                    .entry(DropReason::Expired.as_str().into())
                    .or_default() += expired
            });
            self.runtime.log_error(json!({"event": "queue_drop", "reason": DropReason::Expired.as_str(), "count": expired, "max_age_ms": max_age}));
        }
        Ok(())
    }

    /// Applies one answer for the head to the gate state, the queue and the send log.
    fn settle(&self, head: &QueuedItem, result: CallResult) -> Result<(), StoreError> {
        let (now, random) = (self.runtime.now_ms(), self.runtime.random_u32());
        let max_attempts = self.config.ses_max_attempts;
        let outcome = self.update(|g| {
            let outcome = settle_head(g, head, result, now, random, max_attempts);
            if outcome.leaves_queue() {
                g.served_tag = g.served_tag.max(head.tag);
            }
            outcome
        });
        self.log_head_result(&outcome, head);
        match outcome {
            HeadResult::WillRetry { attempts } => self.store.set_attempts(head.id, attempts)?,
            ref left if left.leaves_queue() => self.store.remove(head.id)?,
            _ => {}
        }
        match &outcome {
            HeadResult::Sent { message_id } => {
                self.record_send();
                self.signup_sent(
                    &head.key,
                    &head.email,
                    head.enqueued_at_ms,
                    message_id.clone(),
                );
            }
            HeadResult::Dropped {
                reason: DropReason::Rejected,
                ..
            } => self.signup_failed(&head.key, SignupState::Rejected, None),
            HeadResult::Dropped { reason, .. } => {
                self.signup_failed(&head.key, SignupState::Dropped, Some(reason.as_str()))
            }
            _ => {}
        }
        Ok(())
    }

    /// Makes sure the alarm comes by `at_ms`: sets it unless a drain runs (it sets the next
    /// alarm when it ends) or this object already set one that soon.
    async fn alarm_by(&self, at_ms: u64) {
        if !self.draining.get() && self.alarm_at.get().is_none_or(|armed| armed > at_ms) {
            self.arm_alarm(at_ms).await;
        }
    }

    /// Sets the alarm for `at_ms`; a failure is logged (the next signup to queue tries again).
    async fn arm_alarm(&self, at_ms: u64) {
        self.save_state();
        self.alarm_at.set(Some(at_ms));
        if let Err(error) = self.runtime.set_alarm(at_ms).await {
            self.alarm_at.set(None);
            self.runtime
                .log_error(json!({"event": "alarm_not_set", "error": error}));
        }
    }

    /// `GET /gate/stats`.
    pub fn stats(&self) -> Result<GateStats, StoreError> {
        let now = self.runtime.now_ms();
        let gate = self.state.borrow();
        let paused_until = gate.paused_until_ms.filter(|t| *t > now);
        let backoff = if gate.backoff.is_active() {
            gate.next_free_ms.saturating_sub(now)
        } else {
            0
        };
        Ok(GateStats {
            queue_length: self.store.queue_len()?,
            oldest_item_age_ms: self
                .store
                .oldest_enqueued_at()?
                .map(|t| now.saturating_sub(t)),
            sends_last_minute: self.store.sends_since(now.saturating_sub(60_000))?,
            sends_last_hour: self.store.sends_since(now.saturating_sub(3_600_000))?,
            throttles_seen: gate.counters.throttles_seen,
            drops: gate.counters.drops.clone(),
            interval_ms: self.config.interval_ms,
            current_interval_ms: self.config.interval_ms.max(backoff),
            paused_until: paused_until.map(rfc3339_utc),
            paused_reason: paused_until.map(|_| {
                "SES reports a configuration or credentials error (see the ses_call log lines); \
                 the queue keeps every signup and tries again when the pause ends"
                    .to_string()
            }),
            daily_taken: gate.budget.taken(now),
            daily_budget: self.config.daily_send_budget,
            pending_checks: self.store.pending_checks()?,
            webhook_backlog: self.store.event_backlog()?,
            identity_cleanup: self.config.tracking.identity_cleanup,
            identity_snapshot_at: self
                .snapshot
                .borrow()
                .as_ref()
                .map(|s| rfc3339_utc(s.taken_ms)),
            identity_snapshot_size: self.snapshot.borrow().as_ref().map(|s| s.len() as u64),
            tracking: gate.tracking.clone(),
        })
    }

    /// Changes the gate state in memory; [`Self::save_state`] stores it before the next await
    /// (every await of the gate goes through [`Self::call_sender`], [`Self::arm_alarm`] or
    /// `deliver`, which save first) and when a signup, a drain or a confirmation ends. One
    /// write per turn instead of one per change.
    fn update<T>(&self, change: impl FnOnce(&mut GateState) -> T) -> T {
        let result = change(&mut self.state.borrow_mut());
        self.state_unsaved.set(true);
        result
    }

    /// Stores the gate state if it changed since it was last stored.
    fn save_state(&self) {
        if !self.state_unsaved.replace(false) {
            return;
        }
        if let Err(e) = self.store.save_state(&self.state.borrow()) {
            self.log_store_error(&e);
        }
    }

    /// Hands `call` to the sender, the state stored first: the slot it holds survives a restart.
    async fn call_sender(&self, call: &CallRequest) -> Option<CallResult> {
        self.save_state();
        self.sender.call(call).await
    }

    fn record_send(&self) {
        if let Err(e) = self.store.record_send(self.runtime.now_ms()) {
            self.log_store_error(&e);
        }
    }

    fn unavailable(&self, e: &StoreError, to: Recipient) -> SendReply {
        self.runtime.log_error(json!({"event": "gate_storage_error", "error": e.to_string(), "address": tag_of(to.key), "request_id": to.request_id}));
        Err(ApiError::Unavailable)
    }

    /// One line per signup the gate takes: sent now (`direct`), `queued`, or `already_queued`.
    fn log_admitted(&self, to: Recipient, route: &str, position: Option<u64>) {
        self.runtime.log_info(|| json!({"event": "gate_admitted", "route": route, "position": position, "address": tag_of(to.key), "request_id": to.request_id}));
    }

    fn log_store_error(&self, e: &StoreError) {
        self.runtime
            .log_error(json!({"event": "gate_storage_error", "error": e.to_string()}));
    }

    /// One structured line per queued send's fate, with the signup's request id; drops are what
    /// an operator must see.
    fn log_head_result(&self, outcome: &HeadResult, head: &QueuedItem) {
        let waited_ms = self.runtime.now_ms().saturating_sub(head.enqueued_at_ms);
        let (address, request_id) = (tag_of(&head.key), &head.request_id);
        match outcome {
            HeadResult::Dropped { reason, attempts } => self.runtime.log_error(
                json!({"event": "queue_drop", "reason": reason.as_str(), "attempts": attempts, "waited_ms": waited_ms, "address": address, "request_id": request_id}),
            ),
            HeadResult::Paused { paused_until_ms } => self.runtime.log_error(
                json!({"event": "queue_paused", "reason": "SES says the configuration is broken", "until": rfc3339_utc(*paused_until_ms), "address": address, "request_id": request_id}),
            ),
            other => self.runtime.log_info(
                || json!({"event": "queue_send", "result": format!("{other:?}"), "waited_ms": waited_ms, "address": address, "request_id": request_id}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::rc::Rc;

    use futures_util::FutureExt;

    use super::*;
    use crate::config::AddressLimits;
    use crate::config::TrackingConfig;
    use crate::store::MemoryStore;
    use crate::tracking::MIN_CHECK_GAP_MS;
    use signup_verify_ses::request::SesCall;

    const INTERVAL: u64 = 1_000;
    const START: u64 = 1_000_000;
    const ROUND_TRIP: u64 = 50;

    /// The fakes answer at once, so every future is ready the first time it is polled.
    fn run<F: Future>(future: F) -> F::Output {
        future.now_or_never().expect("the fakes never wait")
    }

    fn config() -> GateConfig {
        GateConfig {
            interval_ms: INTERVAL,
            max_wait_ms: 10_000,
            address_limits: AddressLimits {
                cooldown_ms: 60_000,
                daily_max: 5,
            },
            queue_max: 100,
            ses_max_attempts: 3,
            queue_max_age_ms: 3_600_000,
            daily_send_budget: 1_000,
            tracking: TrackingConfig::default(),
        }
    }

    /// One webhook POST: its headers and body.
    type Delivery = (Vec<(String, String)>, String);

    /// The fake clock, randomness, log and alarm; clones share them.
    #[derive(Clone, Default)]
    struct FakeRuntime(Rc<Platform>);

    #[derive(Default)]
    struct Platform {
        now: std::cell::Cell<u64>,
        logs: RefCell<Vec<Value>>,
        alarms: RefCell<Vec<u64>>,
        alarm_fails: std::cell::Cell<bool>,
        /// Bytes handed out by `secure_random` so far (each call gets new ones), and whether
        /// the source fails.
        random_drawn: std::cell::Cell<u64>,
        random_fails: std::cell::Cell<bool>,
        /// The webhook receiver's next answers (then 200), and what it was sent.
        receiver: RefCell<VecDeque<Result<u16, String>>>,
        deliveries: RefCell<Vec<Delivery>>,
    }

    impl FakeRuntime {
        fn at(now: u64) -> Self {
            let runtime = Self::default();
            runtime.0.now.set(now);
            runtime
        }
        fn advance_to(&self, t: u64) {
            self.0.now.set(self.0.now.get().max(t));
        }
        fn advance_by(&self, ms: u64) {
            self.0.now.set(self.0.now.get() + ms);
        }
        fn events(&self) -> Vec<String> {
            self.0
                .logs
                .borrow()
                .iter()
                .map(|l| l["event"].as_str().unwrap_or_default().to_string())
                .collect()
        }
        fn last_alarm(&self) -> Option<u64> {
            self.0.alarms.borrow().last().copied()
        }
    }

    impl GateRuntime for FakeRuntime {
        fn now_ms(&self) -> u64 {
            self.0.now.get()
        }
        fn random_u32(&self) -> u32 {
            0
        }
        fn secure_random(&self, out: &mut [u8]) -> Result<(), String> {
            if self.0.random_fails.get() {
                return Err("the random source failed".into());
            }
            for byte in out.iter_mut() {
                let n = self.0.random_drawn.get() + 1;
                self.0.random_drawn.set(n);
                *byte = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
            }
            Ok(())
        }
        fn log_info(&self, line: impl FnOnce() -> Value) {
            self.0.logs.borrow_mut().push(line());
        }
        fn log_error(&self, line: Value) {
            self.0.logs.borrow_mut().push(line);
        }
        async fn set_alarm(&self, at_ms: u64) -> Result<(), String> {
            if self.0.alarm_fails.get() {
                return Err("alarm storage failed".into());
            }
            self.0.alarms.borrow_mut().push(at_ms);
            Ok(())
        }
        async fn post_webhook(
            &self,
            _url: &str,
            headers: &[(String, String)],
            body: &str,
        ) -> Result<u16, String> {
            self.advance_by(ROUND_TRIP);
            self.0
                .deliveries
                .borrow_mut()
                .push((headers.to_vec(), body.to_string()));
            self.0.receiver.borrow_mut().pop_front().unwrap_or(Ok(200))
        }
    }

    type Event = Box<dyn FnOnce()>;

    /// The fake sender: each call leaves at its slot (the clock moves there) and is answered one
    /// round trip later, with the next scripted result, or a success.
    #[derive(Clone)]
    struct FakeSender {
        runtime: FakeRuntime,
        script: Rc<RefCell<VecDeque<Option<CallResult>>>>,
        calls: Rc<RefCell<Vec<CallRequest>>>,
        /// Runs while the next call is in flight: what other events do meanwhile.
        meanwhile: Rc<RefCell<Option<Event>>>,
        /// The fake account's identities and their status, when nothing is scripted.
        identities: Rc<RefCell<std::collections::BTreeMap<String, String>>>,
    }

    impl FakeSender {
        fn answers(&self, results: impl IntoIterator<Item = Option<CallResult>>) {
            self.script.borrow_mut().extend(results);
        }
        fn slots(&self) -> Vec<u64> {
            self.calls.borrow().iter().map(|c| c.slot_ms).collect()
        }
        fn addresses(&self) -> Vec<String> {
            self.calls
                .borrow()
                .iter()
                .filter_map(|c| match &c.call {
                    SesCall::Send { email } => Some(email.to_string()),
                    _ => None,
                })
                .collect()
        }
    }

    impl SenderLink for FakeSender {
        async fn call(&self, call: &CallRequest) -> Option<CallResult> {
            self.runtime.advance_to(call.slot_ms);
            self.runtime.advance_by(ROUND_TRIP);
            self.calls.borrow_mut().push(call.clone());
            if let Some(event) = self.meanwhile.borrow_mut().take() {
                event();
            }
            let n = self.calls.borrow().len();
            if let Some(scripted) = self.script.borrow_mut().pop_front() {
                return scripted;
            }
            let mut identities = self.identities.borrow_mut();
            Some(CallResult::Answered(match &call.call {
                SesCall::Send { email } => {
                    identities
                        .entry(email.to_string())
                        .or_insert_with(|| "Pending".into());
                    Outcome::Sent {
                        message_id: Some(format!("m-{n}")),
                    }
                }
                SesCall::Check { identities: asked } => Outcome::Checked {
                    statuses: asked
                        .iter()
                        .filter_map(|a| {
                            let status = identities.get(a.as_str())?;
                            Some((a.to_string(), status.clone()))
                        })
                        .collect(),
                },
                SesCall::Delete { identity } => {
                    identities.remove(identity.as_str());
                    Outcome::Deleted
                }
                // Pages of two, as SES pages (the token is the last identity of the page).
                SesCall::List { next_token } => {
                    let mut listed = identities
                        .keys()
                        .filter(|i| i.contains('@'))
                        .filter(|i| next_token.as_ref().is_none_or(|t| *i > t))
                        .cloned();
                    let page: Vec<String> = listed.by_ref().take(2).collect();
                    let next_token = listed.next().and(page.last().cloned());
                    Outcome::Listed {
                        identities: page,
                        next_token,
                    }
                }
            }))
        }
    }

    struct Harness {
        store: MemoryStore,
        sender: FakeSender,
        runtime: FakeRuntime,
        gate: Gate<MemoryStore, FakeSender, FakeRuntime>,
    }

    impl Harness {
        /// A gate that took its identity snapshot of an empty account just before `START`.
        fn new(config: GateConfig) -> Self {
            let store = MemoryStore::default();
            store.store_snapshot(&Snapshot::new(START)).expect("stored");
            Self::on(store, FakeRuntime::at(START), config)
        }

        /// A gate that never took a snapshot, on an account holding `identities`.
        fn without_snapshot(config: GateConfig, identities: &[(&str, &str)]) -> Self {
            let h = Self::on(MemoryStore::default(), FakeRuntime::at(START), config);
            for (identity, status) in identities {
                h.sender
                    .identities
                    .borrow_mut()
                    .insert(identity.to_string(), status.to_string());
            }
            h
        }

        /// A gate on `store`: a new object, as after an eviction or a restart.
        fn on(store: MemoryStore, runtime: FakeRuntime, config: GateConfig) -> Self {
            let sender = FakeSender {
                runtime: runtime.clone(),
                script: Rc::default(),
                calls: Rc::default(),
                meanwhile: Rc::default(),
                identities: Rc::default(),
            };
            let gate =
                Gate::open(store.clone(), sender.clone(), runtime.clone(), config).expect("opens");
            Self {
                store,
                sender,
                runtime,
                gate,
            }
        }

        fn restart(&self, config: GateConfig) -> Self {
            Self::on(self.store.clone(), self.runtime.clone(), config)
        }

        /// A signup whose request id is `rid-` and the address's local part.
        fn send(&self, address: &str) -> SendReply {
            run(self
                .gate
                .send(&email(address), &request_id_for(address), None))
        }

        /// A signup that must be sent at once.
        fn sent(&self, address: &str) {
            let reply = self.send(address);
            assert!(
                matches!(reply, Ok(Accepted::Sent { .. })),
                "{address}: {reply:?}"
            );
        }

        /// A signup that must be queued; its position.
        fn queued(&self, address: &str) -> u64 {
            let reply = self.send(address);
            position(&reply).unwrap_or_else(|| panic!("{address} not queued: {reply:?}"))
        }

        fn drain(&self) {
            run(self.gate.drain());
        }
    }

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid")
    }

    /// A request id derived from the address but never spelling it (logs must not hold one).
    fn request_id_for(address: &str) -> RequestId {
        let hash = address
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        RequestId::parse(&format!("rid-{hash:08x}")).expect("well formed")
    }

    fn rid(address: &str) -> Value {
        json!(request_id_for(address))
    }

    #[test]
    fn every_line_a_signup_leaves_in_the_gate_and_every_call_it_causes_carry_its_request_id() {
        let h = Harness::new(GateConfig {
            max_wait_ms: 0,
            ..config()
        });
        h.sent("direct@example.com");
        h.queued("later@example.com");
        assert!(matches!(
            h.send("direct@example.com"),
            Err(ApiError::Cooldown { .. })
        ));
        h.runtime.advance_by(INTERVAL);
        h.drain();
        let lines: Vec<(String, Value)> = h
            .runtime
            .0
            .logs
            .borrow()
            .iter()
            .filter(|l| l["event"] != "alarm") // the drain's own line, not a signup's
            .map(|l| {
                (
                    l["event"].as_str().unwrap_or_default().to_string(),
                    l["request_id"].clone(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("gate_admitted".to_string(), rid("direct@example.com")),
                ("gate_admitted".to_string(), rid("later@example.com")),
                ("address_cooldown".to_string(), rid("direct@example.com")),
                ("queue_send".to_string(), rid("later@example.com")),
            ]
        );
        let sent_for: Vec<Value> = h
            .sender
            .calls
            .borrow()
            .iter()
            .map(|c| json!(c.request_id))
            .collect();
        assert_eq!(
            sent_for,
            [rid("direct@example.com"), rid("later@example.com")]
        );
    }

    fn answered(outcome: Outcome) -> Option<CallResult> {
        Some(CallResult::Answered(outcome))
    }

    fn server_error() -> Option<CallResult> {
        answered(Outcome::Retryable(RetryReason::ServerError))
    }

    fn throttled() -> Option<CallResult> {
        answered(Outcome::Retryable(RetryReason::Throttled))
    }

    fn no_room() -> GateConfig {
        GateConfig {
            queue_max: 0,
            ..config()
        }
    }

    fn no_wait() -> GateConfig {
        GateConfig {
            max_wait_ms: 0,
            ..config()
        }
    }

    fn position(reply: &SendReply) -> Option<u64> {
        match reply {
            Ok(Accepted::Queued { position, .. }) => Some(*position),
            _ => None,
        }
    }

    #[test]
    fn an_idle_gate_sends_at_once_and_records_the_send_and_the_address() {
        let h = Harness::new(config());
        let reply = h.send("jane@example.com");
        assert_eq!(
            reply,
            Ok(Accepted::Sent {
                message_id: Some("m-1".into()),
                signup: None,
            })
        );
        assert_eq!(h.sender.slots(), [START]);
        assert_eq!(h.store.sends(), [START + ROUND_TRIP]);
        let key = address_key(&h.gate.address_secret, &email("jane@example.com"));
        assert_eq!(h.store.address(&key).map(|r| r.count), Some(1));
        assert!(h.store.items().is_empty());
    }

    #[test]
    fn a_direct_signup_stores_its_slot_and_budget_before_its_call_leaves() {
        let h = Harness::new(config());
        let (store, seen) = (h.store.clone(), Rc::new(RefCell::new(None)));
        let seen_in_flight = seen.clone();
        *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
            *seen_in_flight.borrow_mut() = Some(store.load_state().expect("state"));
        }));
        h.sent("jane@example.com");
        let in_flight = seen.borrow().clone().expect("read during the call");
        // A gate restarted now would give the next signup the slot after this one.
        assert_eq!(in_flight.next_free_ms, h.sender.slots()[0] + INTERVAL);
        let mut budget = in_flight.budget;
        assert_eq!(
            budget.take(START, 1),
            Err(86_400),
            "the signup's budget count is stored"
        );
    }

    #[test]
    fn a_direct_signup_writes_the_gate_state_once_before_its_call_and_once_after() {
        let h = Harness::new(config());
        h.sent("jane@example.com");
        assert_eq!(h.store.calls("save state"), 2);
        assert_eq!(
            h.restart(config()).gate.state.borrow().next_free_ms,
            START + INTERVAL,
            "what a new object loads"
        );
    }

    #[test]
    fn a_direct_signup_reads_its_signup_row_once_and_stores_it_sent() {
        let h = Harness::new(config());
        h.sent("jane@example.com");
        assert_eq!(
            h.store.calls("load signup"),
            1,
            "only for the row it replaces"
        );
        let rows = h.store.signups();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, SignupState::Sent);
        assert_eq!(rows[0].sent_ms, Some(START + ROUND_TRIP));
        assert_eq!(rows[0].message_id.as_deref(), Some("m-1"));
    }

    #[test]
    fn a_sent_signup_sets_the_alarm_for_its_first_check_and_a_queued_one_looks_up_no_follow_up() {
        let h = Harness::new(no_wait());
        h.sent("jane@example.com");
        assert_eq!(
            h.runtime.last_alarm(),
            Some(START + ROUND_TRIP + MIN_CHECK_GAP_MS)
        );
        assert_eq!(h.queued("john@example.com"), 1);
        assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
        for lookup in ["next check", "next cleanup", "next event"] {
            assert_eq!(h.store.calls(lookup), 0, "{lookup}");
        }
    }

    #[test]
    fn signups_in_a_row_get_slots_one_interval_apart() {
        let h = Harness::new(config());
        h.runtime.advance_to(START);
        for i in 0..3 {
            h.runtime.0.now.set(START);
            assert!(matches!(
                h.send(&format!("u{i}@example.com")),
                Ok(Accepted::Sent { .. })
            ));
        }
        assert_eq!(h.sender.slots(), [START, START + 1_000, START + 2_000]);
    }

    #[test]
    fn a_signup_whose_slot_is_beyond_the_max_wait_is_queued_with_an_estimate_and_an_alarm_now() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        let reply = h.send("second@example.com");
        let at = START + ROUND_TRIP;
        assert_eq!(
            reply,
            Ok(Accepted::Queued {
                position: 1,
                estimated_send_at: rfc3339_utc(START + INTERVAL),
                paused_until: None,
                signup: None,
            })
        );
        assert_eq!(h.runtime.last_alarm(), Some(at));
        assert_eq!(h.sender.slots().len(), 1, "the queued one is not sent yet");
    }

    #[test]
    fn only_the_first_queued_signup_of_a_drain_sets_the_alarm() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        // The send's first status check, five seconds on.
        assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP + 5_000));
        for i in 0..5 {
            h.queued(&format!("q{i}@example.com"));
        }
        assert_eq!(h.store.items().len(), 5);
        assert_eq!(h.runtime.0.alarms.borrow().len(), 2);
        assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
    }

    #[test]
    fn a_signup_behind_a_non_empty_queue_waits_its_turn_even_when_a_slot_is_free() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("queued@example.com");
        h.runtime.advance_by(60_000);
        let reply = h.send("late@example.com");
        assert_eq!(position(&reply), Some(2));
        assert_eq!(h.sender.slots().len(), 1);
    }

    #[test]
    fn a_retryable_failure_on_a_direct_send_goes_to_the_head_of_the_queue_with_one_attempt() {
        let h = Harness::new(config());
        h.sender.answers([server_error()]);
        let reply = h.send("flaky@example.com");
        assert_eq!(position(&reply), Some(1));
        let items = h.store.items();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].email.as_str(), items[0].attempts),
            ("flaky@example.com", 1)
        );
        assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
        assert_eq!(h.sender.slots().len(), 1, "no retry in the request");
    }

    #[test]
    fn a_failed_direct_send_goes_ahead_of_signups_queued_while_it_was_in_flight() {
        let h = Harness::new(config());
        h.sender.answers([server_error()]);
        let store = h.store.clone();
        *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
            store
                .enqueue(NewItem {
                    end: QueueEnd::Back,
                    to: Recipient {
                        email: &email("later@example.com"),
                        key: "k-later",
                        request_id: None,
                    },
                    domain: "example.com",
                    tag: 1,
                    now_ms: START,
                    attempts: 0,
                })
                .expect("queued meanwhile");
        }));
        assert_eq!(position(&h.send("first@example.com")), Some(1));
        let order: Vec<String> = h
            .store
            .items()
            .iter()
            .map(|i| i.email.to_string())
            .collect();
        assert_eq!(order, ["first@example.com", "later@example.com"]);
    }

    #[test]
    fn a_throttled_direct_send_is_queued_without_an_attempt_and_the_gate_backs_off() {
        let h = Harness::new(config());
        h.sender.answers([throttled()]);
        assert_eq!(position(&h.send("a@example.com")), Some(1));
        assert_eq!(
            h.store.items()[0].attempts,
            0,
            "throttling is not the signup's fault"
        );
        let stats = h.gate.stats().expect("stats");
        assert_eq!(stats.throttles_seen, 1);
        assert!(h.gate.state.borrow().next_free_ms >= START + ROUND_TRIP + 1_000);
    }

    #[test]
    fn a_direct_send_that_times_out_is_not_made_again_and_keeps_its_admission() {
        let h = Harness::new(config());
        h.sender.answers([Some(CallResult::TimedOut)]);
        assert_eq!(h.send("a@example.com"), Err(ApiError::UpstreamTimeout));
        assert!(h.store.items().is_empty(), "not queued for another try");
        h.drain();
        assert!(matches!(
            h.send("a+1@example.com"),
            Err(ApiError::Cooldown { .. })
        ));
        assert_eq!(h.sender.slots().len(), 1);
    }

    #[test]
    fn a_queued_item_whose_call_timed_out_is_tried_once_more_at_most() {
        let h = Harness::new(GateConfig {
            ses_max_attempts: 5,
            ..no_wait()
        });
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.sender
            .answers([Some(CallResult::TimedOut), Some(CallResult::TimedOut)]);
        h.drain();
        assert_eq!(
            h.sender.addresses()[1..],
            ["a@example.com", "a@example.com"],
            "one more call after the timeout, then dropped"
        );
        assert_eq!(
            h.gate.stats().expect("stats").drops.get("exhausted"),
            Some(&1)
        );
    }

    #[test]
    fn one_domain_holds_at_most_five_direct_slots_and_the_rest_is_queued() {
        let h = Harness::new(config());
        let held = |domain: &str, n| {
            h.gate
                .direct_by_domain
                .borrow_mut()
                .insert(domain.to_string(), n);
        };
        held("flood.example", 4);
        h.sent("fifth@flood.example");
        assert_eq!(
            h.gate.direct_by_domain.borrow().get("flood.example"),
            Some(&4),
            "the fifth slot was held during the call and given back after it"
        );
        held("flood.example", 5);
        assert_eq!(h.queued("sixth@flood.example"), 1);
        let fresh = Harness::new(config());
        fresh
            .gate
            .direct_by_domain
            .borrow_mut()
            .insert("flood.example".into(), 5);
        fresh.sent("someone@quiet.example");
        let no_queue = Harness::new(no_room());
        no_queue
            .gate
            .direct_by_domain
            .borrow_mut()
            .insert("flood.example".into(), 5);
        no_queue.sent("sixth@flood.example");
    }

    #[test]
    fn without_a_queue_a_timeout_is_answered_at_once_and_keeps_the_admission() {
        let h = Harness::new(no_room());
        h.sender.answers([Some(CallResult::TimedOut)]);
        assert_eq!(h.send("a@example.com"), Err(ApiError::UpstreamTimeout));
        assert_eq!(h.sender.slots().len(), 1, "no retry after a timeout");
        h.runtime.advance_by(5_000);
        assert!(
            matches!(
                h.send("A+again@example.com"),
                Err(ApiError::Cooldown { .. })
            ),
            "the call may have reached SES: a resubmission must not mail again"
        );
        assert_eq!(h.sender.slots().len(), 1);
    }

    #[test]
    fn an_address_ses_refuses_is_answered_rejected_and_does_not_count_against_it() {
        let h = Harness::new(config());
        h.sender.answers([answered(Outcome::Rejected)]);
        assert_eq!(h.send("a@example.com"), Err(ApiError::Rejected));
        assert!(h.store.items().is_empty());
        // Taken back: the next try is not refused by the cooldown.
        assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
    }

    #[test]
    fn an_ses_configuration_error_on_a_direct_send_is_misconfigured_and_not_queued() {
        let h = Harness::new(config());
        h.sender
            .answers([answered(Outcome::Config { clock_skew: false })]);
        assert_eq!(h.send("a@example.com"), Err(ApiError::Misconfigured));
        assert!(h.store.items().is_empty());
    }

    #[test]
    fn a_call_the_sender_cannot_make_is_misconfigured_and_taken_back() {
        let h = Harness::new(config());
        h.sender.answers([None]);
        assert_eq!(h.send("a@example.com"), Err(ApiError::Misconfigured));
        assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
    }

    #[test]
    fn without_a_queue_a_server_error_is_retried_twice_in_the_request_then_answered() {
        let h = Harness::new(no_room());
        h.sender
            .answers([server_error(), server_error(), server_error()]);
        assert_eq!(h.send("a@example.com"), Err(ApiError::UpstreamError));
        let slots = h.sender.slots();
        assert_eq!(slots.len(), 3);
        assert!(
            slots.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
            "{slots:?}"
        );
    }

    #[test]
    fn without_a_queue_a_retry_that_succeeds_is_sent() {
        let h = Harness::new(no_room());
        h.sender.answers([server_error()]);
        assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
        assert_eq!(h.sender.slots().len(), 2);
    }

    #[test]
    fn without_a_queue_throttling_is_answered_upstream_throttled_with_an_honest_retry_after() {
        let h = Harness::new(no_room());
        h.sender.answers([throttled(), throttled(), throttled()]);
        match h.send("a@example.com") {
            Err(ApiError::UpstreamThrottled { retry_after_secs }) => {
                assert!(retry_after_secs >= 1, "{retry_after_secs}")
            }
            other => panic!("expected upstream_throttled, got {other:?}"),
        }
    }

    #[test]
    fn without_a_queue_a_busy_gate_answers_busy_and_takes_the_admission_back() {
        let config = GateConfig {
            max_wait_ms: 0,
            ..no_room()
        };
        let h = Harness::new(config);
        h.sent("first@example.com");
        h.runtime.0.now.set(START);
        let reply = h.send("second@example.com");
        assert!(
            matches!(
                reply,
                Err(ApiError::Busy {
                    retry_after_secs: 1
                })
            ),
            "{reply:?}"
        );
        assert_eq!(h.sender.slots().len(), 1);
        h.runtime.advance_by(2_000);
        assert!(
            matches!(h.send("second@example.com"), Ok(Accepted::Sent { .. })),
            "the busy signup did not count against the address"
        );
    }

    #[test]
    fn a_full_queue_answers_busy_with_the_time_to_drain_what_is_ahead() {
        let config = GateConfig {
            max_wait_ms: 0,
            queue_max: 3,
            ..config()
        };
        let h = Harness::new(config);
        h.sent("first@example.com");
        for i in 0..3 {
            assert!(position(&h.send(&format!("q{i}@example.com"))).is_some());
        }
        let reply = h.send("one-too-many@example.com");
        // One slot still taken (until START + 1 s) plus three queued at 1 s each.
        assert_eq!(
            reply,
            Err(ApiError::Busy {
                retry_after_secs: 4
            })
        );
    }

    #[test]
    fn with_one_attempt_allowed_a_failed_direct_send_is_retried_in_the_request_not_queued() {
        let h = Harness::new(GateConfig {
            ses_max_attempts: 1,
            ..config()
        });
        h.sender.answers([server_error()]);
        assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
        assert!(h.store.items().is_empty());
        assert_eq!(h.sender.slots().len(), 2);
    }

    #[test]
    fn an_address_already_queued_gets_its_position_back_and_no_second_item() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.queued("b@example.com");
        assert_eq!(position(&h.send("a@example.com")), Some(1));
        assert_eq!(
            position(&h.send("A@EXAMPLE.com")),
            Some(1),
            "case does not matter"
        );
        assert_eq!(position(&h.send("b@example.com")), Some(2));
        assert_eq!(h.store.items().len(), 2);
    }

    #[test]
    fn a_second_signup_within_the_cooldown_is_refused_without_an_ses_call() {
        let h = Harness::new(config());
        h.sent("a@example.com");
        h.runtime.advance_by(10_000);
        let reply = h.send("a@example.com");
        assert_eq!(
            reply,
            Err(ApiError::Cooldown {
                retry_after_secs: 60
            })
        );
        assert_eq!(h.sender.slots().len(), 1);
        assert!(h.runtime.events().contains(&"address_cooldown".to_string()));
    }

    #[test]
    fn variants_of_one_mailbox_share_the_cooldown_and_ses_gets_the_address_as_typed() {
        let h = Harness::new(config());
        h.sent("Jane.Doe+news@GoogleMail.com");
        for variant in [
            "janedoe@gmail.com",
            "j.a.n.e.d.o.e@gmail.com",
            "JaneDoe+x@gmail.com",
        ] {
            assert!(
                matches!(h.send(variant), Err(ApiError::Cooldown { .. })),
                "{variant}"
            );
        }
        assert_eq!(h.sender.addresses(), ["Jane.Doe+news@googlemail.com"]);
    }

    #[test]
    fn the_daily_cap_refuses_the_sixth_signup_of_a_day() {
        let h = Harness::new(config());
        for _ in 0..5 {
            assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
            h.runtime.advance_by(61_000);
        }
        assert!(matches!(
            h.send("a@example.com"),
            Err(ApiError::Cooldown { .. })
        ));
        assert_eq!(h.sender.slots().len(), 5);
    }

    #[test]
    fn limits_switched_off_keep_no_address_records() {
        let h = Harness::new(GateConfig {
            address_limits: AddressLimits {
                cooldown_ms: 0,
                daily_max: 0,
            },
            ..config()
        });
        h.sent("a@example.com");
        h.sent("a@example.com");
        assert_eq!(h.sender.slots().len(), 2);
        let key = address_key(&h.gate.address_secret, &email("a@example.com"));
        assert_eq!(h.store.address(&key), None);
    }

    #[test]
    fn a_storage_failure_on_insert_is_a_clear_error_and_takes_the_admission_back() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.store.fail("enqueue");
        assert_eq!(h.send("a@example.com"), Err(ApiError::Unavailable));
        let line = h
            .runtime
            .0
            .logs
            .borrow()
            .iter()
            .find(|l| l["event"] == "gate_storage_error")
            .cloned()
            .expect("logged");
        assert!(line["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("enqueue failed"));
        let key = address_key(&h.gate.address_secret, &email("a@example.com"));
        assert_eq!(h.store.address(&key), None, "taken back");
        h.store.heal("enqueue");
        assert_eq!(position(&h.send("a@example.com")), Some(1));
    }

    #[test]
    fn a_storage_failure_before_admission_is_unavailable_and_nothing_is_sent() {
        for operation in ["is queued", "load address", "store address", "queue length"] {
            let h = Harness::new(config());
            h.store.fail(operation);
            assert_eq!(
                h.send("a@example.com"),
                Err(ApiError::Unavailable),
                "{operation}"
            );
            assert!(h.sender.slots().is_empty(), "{operation}");
        }
    }

    #[test]
    fn a_drain_sends_the_queue_in_order_one_interval_apart_and_then_stops() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        for i in 0..3 {
            h.queued(&format!("q{i}@example.com"));
        }
        h.drain();
        assert!(h.store.items().is_empty());
        assert_eq!(
            h.sender.addresses(),
            [
                "first@example.com",
                "q0@example.com",
                "q1@example.com",
                "q2@example.com"
            ]
        );
        let slots = h.sender.slots();
        assert!(
            slots.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
            "{slots:?}"
        );
        assert_eq!(h.store.sends().len(), 4);
        // Nothing is left, so only the watchdog is set and the next queued signup arms an alarm.
        let alarms = h.runtime.0.alarms.borrow().len();
        h.queued("next-1@example.com");
        h.queued("next-2@example.com");
        assert_eq!(h.runtime.0.alarms.borrow().len(), alarms + 1);
    }

    #[test]
    fn a_drain_retries_a_server_error_then_drops_the_exhausted_item_and_goes_on() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("doomed@example.com");
        h.queued("fine@example.com");
        h.sender
            .answers([server_error(), Some(CallResult::TimedOut), server_error()]);
        h.drain();
        assert_eq!(
            h.sender.addresses()[1..],
            [
                "doomed@example.com",
                "doomed@example.com",
                "doomed@example.com",
                "fine@example.com"
            ]
        );
        let attempts: Vec<u32> = h.sender.calls.borrow()[1..4]
            .iter()
            .map(|c| c.attempt)
            .collect();
        assert_eq!(attempts, [1, 2, 3]);
        assert!(h.store.items().is_empty());
        let stats = h.gate.stats().expect("stats");
        assert_eq!(stats.drops.get("exhausted"), Some(&1));
        assert!(h.runtime.events().contains(&"queue_drop".to_string()));
    }

    #[test]
    fn a_drain_drops_an_address_ses_refuses_at_once() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("refused@example.com");
        h.queued("fine@example.com");
        h.sender.answers([answered(Outcome::Rejected)]);
        h.drain();
        assert_eq!(
            h.sender.addresses().len(),
            3,
            "one call for the refused address"
        );
        assert_eq!(
            h.gate.stats().expect("stats").drops.get("rejected"),
            Some(&1)
        );
    }

    #[test]
    fn a_configuration_error_pauses_the_queue_keeps_every_item_and_wakes_at_the_pause_end() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        for i in 0..3 {
            h.queued(&format!("q{i}@example.com"));
        }
        h.sender
            .answers([answered(Outcome::Config { clock_skew: true })]);
        h.drain();
        let paused_at = h.runtime.now_ms();
        assert_eq!(h.store.items().len(), 3);
        assert!(h.store.items().iter().all(|i| i.attempts == 0));
        assert_eq!(h.runtime.last_alarm(), Some(paused_at + 60_000));
        assert!(h.gate.stats().expect("stats").paused_until.is_some());
        // A signup during the pause is queued, not sent.
        h.runtime.advance_by(1_000);
        assert_eq!(position(&h.send("during@example.com")), Some(4));
        // At the pause's end the queue goes on.
        h.runtime.advance_to(paused_at + 60_000);
        h.drain();
        assert!(h.store.items().is_empty());
        assert_eq!(h.gate.stats().expect("stats").paused_until, None);
    }

    #[test]
    fn a_throttled_head_stays_first_and_the_next_call_waits_out_the_backoff() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.sender.answers([throttled()]);
        h.drain();
        let calls = h.sender.calls.borrow().clone();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1].call, calls[2].call);
        assert_eq!(calls[2].attempt, 1, "a throttle is not an attempt");
        let throttled_at = calls[1].slot_ms + ROUND_TRIP;
        assert!(calls[2].slot_ms >= throttled_at + 1_000, "{calls:?}");
    }

    #[test]
    fn a_drain_stops_at_its_budget_and_sets_the_alarm_for_the_next_slot() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        for i in 0..40 {
            h.queued(&format!("q{i}@example.com"));
        }
        h.drain();
        let sent = h.sender.slots().len();
        assert!((20..=22).contains(&sent), "{sent} calls in a 20 s budget");
        assert_eq!(h.store.items().len(), 41 - sent);
        let next_free = h.gate.state.borrow().next_free_ms;
        assert_eq!(h.runtime.last_alarm(), Some(next_free));
    }

    #[test]
    fn a_drain_that_cannot_reach_the_sender_keeps_the_item_and_tries_again_in_a_minute() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.sender.answers([None]);
        h.drain();
        assert_eq!(h.store.items().len(), 1);
        assert_eq!(h.store.items()[0].attempts, 0);
        assert_eq!(
            h.runtime.last_alarm(),
            Some(h.runtime.now_ms() + RETRY_LATER_MS)
        );
    }

    #[test]
    fn a_queue_row_that_no_longer_reads_back_is_dropped_and_the_rest_goes_on() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.store.put_unreadable_head(99);
        h.drain();
        assert_eq!(h.sender.addresses()[1..], ["a@example.com"]);
        assert!(h.runtime.events().contains(&"queue_drop".to_string()));
    }

    #[test]
    fn a_sent_head_that_cannot_be_removed_stops_the_drain_instead_of_sending_it_twice() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.queued("b@example.com");
        h.store.fail("remove");
        h.drain();
        assert_eq!(h.sender.addresses()[1..], ["a@example.com"]);
        assert_eq!(
            h.runtime.last_alarm(),
            Some(h.runtime.now_ms() + RETRY_LATER_MS)
        );
    }

    #[test]
    fn a_restart_resumes_the_queue_the_slots_and_the_limits() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("q1@example.com");
        h.queued("q2@example.com");
        let next_free = h.gate.state.borrow().next_free_ms;
        let restarted = h.restart(no_wait());
        assert_eq!(restarted.gate.address_secret, h.gate.address_secret);
        assert_eq!(restarted.gate.state.borrow().next_free_ms, next_free);
        assert!(matches!(
            restarted.send("first@example.com"),
            Err(ApiError::Cooldown { .. })
        ));
        assert_eq!(position(&restarted.send("q2@example.com")), Some(2));
        restarted.drain();
        assert_eq!(
            restarted.sender.addresses(),
            ["q1@example.com", "q2@example.com"]
        );
        assert!(
            restarted.sender.slots()[0] >= next_free,
            "the slot taken before the restart holds"
        );
    }

    #[test]
    fn a_gate_whose_state_cannot_be_loaded_does_not_open() {
        let store = MemoryStore::default();
        store.fail("load state");
        let runtime = FakeRuntime::at(START);
        let sender = FakeSender {
            runtime: runtime.clone(),
            script: Rc::default(),
            calls: Rc::default(),
            meanwhile: Rc::default(),
            identities: Rc::default(),
        };
        let opened = Gate::open(store, sender, runtime, config());
        assert!(matches!(
            opened.err(),
            Some(StoreError::Failed {
                operation: "load state",
                ..
            })
        ));
    }

    #[test]
    fn an_alarm_that_cannot_be_set_is_logged_and_the_next_queued_signup_tries_again() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.runtime.0.alarm_fails.set(true);
        h.queued("a@example.com");
        assert!(h.runtime.events().contains(&"alarm_not_set".to_string()));
        h.runtime.0.alarm_fails.set(false);
        h.queued("b@example.com");
        // The send's status check, then the drain's.
        assert_eq!(h.runtime.0.alarms.borrow().len(), 2);
        assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
    }

    #[test]
    fn the_stats_count_the_queue_the_sends_and_the_oldest_item() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.runtime.advance_by(3_000);
        let stats = h.gate.stats().expect("stats");
        assert_eq!(
            (
                stats.queue_length,
                stats.sends_last_minute,
                stats.sends_last_hour
            ),
            (1, 1, 1)
        );
        assert_eq!(stats.oldest_item_age_ms, Some(3_000));
        assert_eq!(
            (stats.interval_ms, stats.current_interval_ms),
            (INTERVAL, INTERVAL)
        );
        h.store.fail("sends since");
        assert!(
            h.gate.stats().is_err(),
            "a failing store is not reported as zeros"
        );
    }

    #[test]
    fn no_log_line_ever_holds_an_address() {
        let h = Harness::new(GateConfig {
            max_wait_ms: 0,
            queue_max: 2,
            ses_max_attempts: 2,
            ..config()
        });
        let _ = h.send("secret.person@example.com");
        let _ = h.send("secret.person@example.com");
        let _ = h.send("another.secret@example.com");
        h.store.fail("enqueue");
        let _ = h.send("third.secret@example.com");
        h.store.heal("enqueue");
        h.sender
            .answers([server_error(), server_error(), answered(Outcome::Rejected)]);
        h.drain();
        let logs = h.runtime.0.logs.borrow();
        assert!(logs.len() >= 5, "{logs:?}");
        for line in logs.iter() {
            let text = line.to_string();
            assert!(!text.contains("secret"), "{text}");
            assert!(!text.contains("example.com"), "{text}");
        }
    }

    #[test]
    fn a_flood_to_one_domain_delays_only_that_domain() {
        let h = Harness::new(GateConfig {
            queue_max: 1_000,
            ..no_wait()
        });
        h.sent("first@flood.example");
        for i in 0..300 {
            h.queued(&format!("f{i}@flood.example"));
        }
        // Five flood mails go out, then someone from another domain signs up.
        for _ in 0..5 {
            let head = h.store.items()[0].clone();
            let call = CallRequest::send(head.recipient(), h.runtime.now_ms(), 1);
            let result = run(h.sender.call(&call)).expect("answered");
            h.gate.settle(&head, result).expect("settled");
        }
        let position = h.queued("quiet@other.example");
        assert!(
            position <= 2,
            "the other domain waits about one round, at {position}"
        );
        let again = h.queued("second@other.example");
        assert!(again <= 4, "its next signup is a round later, at {again}");
        let flood = h.queued("late@flood.example");
        assert_eq!(
            flood,
            300 - 5 + 3,
            "the flood's own line only grows at its end"
        );
    }

    #[test]
    fn rotating_subdomains_share_their_registrable_domains_lane() {
        let h = Harness::new(GateConfig {
            queue_max: 1_000,
            address_limits: AddressLimits {
                cooldown_ms: 0,
                daily_max: 0,
            },
            ..no_wait()
        });
        h.sent("first@gmail.com");
        for i in 0..10 {
            h.queued(&format!("person{i}@gmail.com"));
        }
        // An attacker rotating subdomains of one domain, each a fresh name.
        for i in 0..10 {
            h.queued(&format!("bot@a{i}.attacker.xyz"));
        }
        let order: Vec<String> = h
            .store
            .items()
            .iter()
            .take(10)
            .map(|i| i.email.to_string())
            .collect();
        let bots = order
            .iter()
            .filter(|a| a.ends_with(".attacker.xyz"))
            .count();
        assert_eq!(
            bots, 5,
            "one lane for the attacker, taking turns: {order:?}"
        );
    }

    #[test]
    fn two_floods_share_the_slots_in_turn() {
        let h = Harness::new(no_wait());
        h.sent("first@a.example");
        for i in 0..10 {
            h.queued(&format!("x{i}@a.example"));
        }
        for i in 0..10 {
            h.queued(&format!("y{i}@b.example"));
        }
        h.drain();
        let domains: Vec<String> = h.sender.addresses()[1..]
            .iter()
            .map(|a| a.rsplit('@').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(domains.len(), 20);
        // The first domain's lead is used up in the first round; then they alternate.
        assert!(
            domains.windows(2).skip(1).all(|w| w[0] != w[1]),
            "{domains:?}"
        );
    }

    #[test]
    fn the_daily_budget_answers_busy_with_an_honest_retry_after_and_takes_nothing_back_it_kept() {
        let h = Harness::new(GateConfig {
            daily_send_budget: 2,
            ..config()
        });
        h.sent("a@example.com");
        h.sent("b@example.com");
        let refused = h.send("c@example.com");
        assert!(
            matches!(refused, Err(ApiError::Busy { retry_after_secs }) if retry_after_secs > 86_000),
            "{refused:?}"
        );
        assert_eq!(h.sender.slots().len(), 2);
        let key = address_key(&h.gate.address_secret, &email("c@example.com"));
        assert_eq!(
            h.store.address(&key),
            None,
            "the refused signup does not count"
        );
        let stats = h.gate.stats().expect("stats");
        assert_eq!((stats.daily_taken, stats.daily_budget), (2, 2));
        h.runtime.advance_by(cooldown_day());
        assert!(matches!(h.send("c@example.com"), Ok(Accepted::Sent { .. })));
    }

    fn cooldown_day() -> u64 {
        crate::cooldown::DAY_MS
    }

    #[test]
    fn a_signup_that_fails_gives_its_place_in_the_budget_back() {
        let h = Harness::new(GateConfig {
            daily_send_budget: 1,
            ..no_room()
        });
        h.sender.answers([answered(Outcome::Rejected)]);
        assert_eq!(h.send("bad@example.com"), Err(ApiError::Rejected));
        assert!(matches!(
            h.send("good@example.com"),
            Ok(Accepted::Sent { .. })
        ));
    }

    #[test]
    fn items_older_than_the_max_age_are_dropped_unsent_and_counted() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("old-1@example.com");
        h.queued("old-2@example.com");
        h.runtime.advance_by(3_600_001);
        h.queued("fresh@example.com");
        h.drain();
        assert_eq!(h.sender.addresses()[1..], ["fresh@example.com"]);
        assert_eq!(
            h.gate.stats().expect("stats").drops.get("expired"),
            Some(&2)
        );
        let line = h
            .runtime
            .0
            .logs
            .borrow()
            .iter()
            .find(|l| l["reason"] == "expired")
            .cloned()
            .expect("logged");
        assert_eq!(line["count"], 2);
    }

    #[test]
    fn while_ses_reports_a_configuration_error_signups_are_queued_and_told_so() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        h.queued("a@example.com");
        h.sender
            .answers([answered(Outcome::Config { clock_skew: false })]);
        h.drain();
        let reply = h.send("b@example.com");
        match reply {
            Ok(Accepted::Queued {
                paused_until: Some(until),
                estimated_send_at,
                ..
            }) => assert!(estimated_send_at >= until, "{estimated_send_at} < {until}"),
            other => panic!("expected a queued answer naming the pause, got {other:?}"),
        }
        let stats = h.gate.stats().expect("stats");
        assert!(stats
            .paused_reason
            .is_some_and(|r| r.contains("configuration")));
    }

    #[test]
    fn an_unreadable_2xx_is_sent_once_and_never_again() {
        let h = Harness::new(config());
        h.sender
            .answers([answered(Outcome::Sent { message_id: None })]);
        assert_eq!(
            h.send("a@example.com"),
            Ok(Accepted::Sent {
                message_id: None,
                signup: None
            })
        );
        assert_eq!(h.sender.slots().len(), 1);
        assert!(h.store.items().is_empty());
        assert!(matches!(
            h.send("a+again@example.com"),
            Err(ApiError::Cooldown { .. })
        ));
    }

    // ---- Follow-up (issue G): tracking, detection, confirmation, webhook, clean-up ----

    const TOKEN_SECRET: &str = "a status token secret of at least 32 chars";
    /// `whsec_` key bytes, hex (as `TrackingConfig` keeps them).
    const WEBHOOK_KEY: &str = "000102030405060708090a0b0c0d0e0f1011121314151617";

    fn tracking(webhook: bool) -> GateConfig {
        GateConfig {
            tracking: TrackingConfig {
                status_token_secret: Some(TOKEN_SECRET.into()),
                link_ttl_ms: 600_000,
                identity_cleanup: true,
                identity_keep: crate::config::KeepList::default(),
                webhook: webhook.then(|| crate::config::WebhookConfig {
                    url: url::Url::parse("https://hooks.example.com/signup").expect("url"),
                    key: WEBHOOK_KEY.into(),
                }),
            },
            ..config()
        }
    }

    impl Harness {
        /// The signup the reply names (what the Worker mints its credentials from).
        fn named(&self, reply: &SendReply) -> SignupRef {
            reply
                .as_ref()
                .ok()
                .and_then(|a| a.signup())
                .cloned()
                .expect("the signup this request made")
        }

        fn status_of(&self, signup: &SignupRef) -> SignupStatus {
            self.gate.status(signup).expect("known")
        }

        /// Moves the clock on and runs the alarm.
        fn drain_at(&self, at: u64) {
            self.runtime.advance_to(at);
            self.drain();
        }

        /// Runs every alarm the gate sets until `until`.
        fn drain_until(&self, until: u64) {
            for _ in 0..10_000 {
                let at = self
                    .runtime
                    .last_alarm()
                    .unwrap_or(until)
                    .max(self.runtime.now_ms());
                if at > until {
                    return;
                }
                self.drain_at(at);
                if self.runtime.last_alarm() == Some(at) && self.runtime.now_ms() == at {
                    self.runtime.advance_by(1);
                }
            }
            panic!("the alarms never settled");
        }

        fn click(&self, address: &str) {
            self.sender
                .identities
                .borrow_mut()
                .insert(address.into(), "Success".into());
        }

        fn actions(&self) -> Vec<&'static str> {
            self.sender
                .calls
                .borrow()
                .iter()
                .map(|c| c.call.action())
                .collect()
        }

        /// How many identities each status check asked about.
        fn check_sizes(&self) -> Vec<usize> {
            self.sender
                .calls
                .borrow()
                .iter()
                .filter_map(|c| match &c.call {
                    SesCall::Check { identities } => Some(identities.len()),
                    _ => None,
                })
                .collect()
        }

        fn delivered_types(&self) -> Vec<String> {
            self.runtime
                .0
                .deliveries
                .borrow()
                .iter()
                .map(|(_, body)| {
                    let body: Value = serde_json::from_str(body).expect("json");
                    body["type"].as_str().unwrap_or_default().to_string()
                })
                .collect()
        }
    }

    use crate::messages::SignupStatus;

    #[test]
    fn a_sent_signup_is_detected_verified_reported_by_a_signed_webhook_and_then_deleted() {
        let h = Harness::new(tracking(true));
        let reply = h.send("jane@example.com");
        let signup = h.named(&reply);
        assert_eq!(h.status_of(&signup).status, "sent");
        // First check five seconds on: pending, so the identity is ours.
        h.drain_at(START + 5_100);
        assert_eq!(
            h.actions(),
            [
                "SendCustomVerificationEmail",
                "GetIdentityVerificationAttributes"
            ]
        );
        assert_eq!(h.status_of(&signup).status, "sent");
        h.click("jane@example.com");
        let next = h.runtime.last_alarm().expect("the next check is set");
        assert!(next > START + 5_100 && next <= START + 11_000, "{next}");
        h.drain_at(next);
        let status = h.status_of(&signup);
        assert_eq!(
            (status.status.as_str(), status.verified, status.confirmed),
            ("verified", true, false)
        );
        assert!(status.verified_at.is_some());
        // Reported, then the identity deleted (after the delivery), all in that drain.
        assert_eq!(h.delivered_types(), ["signup.verified"]);
        let (headers, body) = h.runtime.0.deliveries.borrow()[0].clone();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .expect(name)
        };
        let key = hex::decode(WEBHOOK_KEY).expect("hex");
        let timestamp: u64 = header("webhook-timestamp").parse().expect("secs");
        assert_eq!(
            header("webhook-signature"),
            crate::webhook::signature(&key, &header("webhook-id"), timestamp, &body)
        );
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["data"]["email"], "jane@example.com");
        assert_eq!(body["data"]["messageId"], "m-1");
        h.drain_until(next + 2_000);
        assert_eq!(h.actions().last(), Some(&"DeleteIdentity"));
        assert!(
            h.sender.identities.borrow().is_empty(),
            "the identity is gone"
        );
        let stats = h.gate.stats().expect("stats");
        assert_eq!(
            (stats.tracking.verified, stats.tracking.identities_deleted),
            (1, 1)
        );
        assert_eq!((stats.pending_checks, stats.webhook_backlog), (0, 0));
        // Nothing is logged with the address.
        let logs = serde_json::to_string(&*h.runtime.0.logs.borrow()).expect("json");
        assert!(!logs.contains("jane@"), "{logs}");
    }

    #[test]
    fn a_link_left_unclicked_past_its_ttl_is_expired_reported_and_cleaned_up() {
        let h = Harness::new(tracking(false));
        let signup = h.named(&h.send("late@example.com"));
        let mut at = START + 5_100;
        while h.status_of(&signup).status == "sent" {
            h.drain_at(at);
            at = h
                .runtime
                .last_alarm()
                .expect("an alarm")
                .max(h.runtime.now_ms() + 1);
            assert!(at < START + 700_000, "never expired");
        }
        assert_eq!(h.status_of(&signup).status, "expired");
        assert!(h.runtime.now_ms() >= START + 600_000);
        h.drain_until(h.runtime.now_ms() + 2_000);
        assert_eq!(h.actions().last(), Some(&"DeleteIdentity"));
        assert!(h.runtime.events().contains(&"identity_deleted".to_string()));
        let checks = h
            .actions()
            .iter()
            .filter(|a| **a == "GetIdentityVerificationAttributes")
            .count();
        assert!(
            (5..40).contains(&checks),
            "{checks} checks over ten minutes"
        );
    }

    // ---- Issue K: identities are the exact address, credentials belong to one signup ----

    impl Harness {
        fn verified_already(&self, address: &str) {
            self.sender
                .identities
                .borrow_mut()
                .insert(address.into(), "Success".into());
        }

        fn deleted(&self) -> Vec<String> {
            self.sender
                .calls
                .borrow()
                .iter()
                .filter_map(|c| match &c.call {
                    SesCall::Delete { identity } => Some(identity.to_string()),
                    _ => None,
                })
                .collect()
        }
    }

    /// The attack of finding 1: a variant of the From address, then the From address itself
    /// after the cooldown. Returns the harness after both links' lives.
    fn from_address_attack(h: &Harness) {
        h.sent("noreply+x@example.com");
        h.drain_at(START + 5_100);
        h.runtime.advance_to(START + 61_000);
        h.sent("noreply@example.com");
        h.drain_until(START + 700_000);
    }

    #[test]
    fn the_from_address_signed_up_after_a_variant_of_it_is_never_deleted() {
        // With a snapshot (the account held the From address before any send).
        let h = Harness::without_snapshot(tracking(false), &[("noreply@example.com", "Success")]);
        h.drain_at(START);
        assert_eq!(
            h.actions(),
            ["ListIdentities"],
            "the snapshot comes first when idle"
        );
        from_address_attack(&h);
        assert!(
            !h.deleted().contains(&"noreply@example.com".to_string()),
            "{:?}",
            h.deleted()
        );
        assert_eq!(
            h.sender
                .identities
                .borrow()
                .get("noreply@example.com")
                .map(String::as_str),
            Some("Success")
        );
        // The variant's identity, which the gate's send created, is cleaned up.
        assert_eq!(h.deleted(), ["noreply+x@example.com"]);
        // Without any snapshot, the first check decides: the From address is verified.
        let h = Harness::without_snapshot(
            GateConfig {
                tracking: TrackingConfig {
                    identity_cleanup: true,
                    ..tracking(false).tracking
                },
                ..tracking(false)
            },
            &[("noreply@example.com", "Success")],
        );
        h.store.fail("store snapshot");
        from_address_attack(&h);
        assert!(
            !h.deleted().contains(&"noreply@example.com".to_string()),
            "{:?}",
            h.deleted()
        );
    }

    #[test]
    fn a_signup_replaced_before_any_snapshot_or_check_is_asked_about_before_any_delete() {
        let limits = GateConfig {
            address_limits: AddressLimits {
                cooldown_ms: 1_000,
                daily_max: 0,
            },
            ..tracking(false)
        };
        // The From address first (verified long ago), then a variant a second later: the
        // From's signup is replaced before anything was known about its identity.
        let h = Harness::without_snapshot(limits.clone(), &[("noreply@example.com", "Success")]);
        h.store.fail("store snapshot");
        h.sent("noreply@example.com");
        h.runtime.advance_by(1_100);
        h.sent("noreply+x@example.com");
        h.drain_until(START + 700_000);
        assert!(
            !h.deleted().contains(&"noreply@example.com".to_string()),
            "{:?}",
            h.actions()
        );
        // A new address replaced the same way is the gate's (pending when asked): deleted.
        let h = Harness::without_snapshot(limits, &[]);
        h.store.fail("store snapshot");
        h.sent("fresh@example.com");
        h.runtime.advance_by(1_100);
        h.sent("fresh+x@example.com");
        h.drain_until(START + 700_000);
        assert_eq!(h.deleted(), ["fresh@example.com", "fresh+x@example.com"]);
    }

    #[test]
    fn alternating_variants_of_one_mailbox_leave_no_identity_behind() {
        let h = Harness::new(GateConfig {
            address_limits: AddressLimits {
                cooldown_ms: 60_000,
                daily_max: 0,
            },
            ..tracking(false)
        });
        let variants = ["jo+a@example.com", "jo+b@example.com", "jo@example.com"];
        for (n, address) in variants.iter().cycle().take(7).enumerate() {
            h.runtime.advance_to(START + n as u64 * 61_000);
            h.sent(address);
            h.drain_until(h.runtime.now_ms() + 6_000);
        }
        h.drain_until(START + 7 * 61_000 + 700_000);
        assert!(
            h.sender.identities.borrow().is_empty(),
            "left behind: {:?}",
            h.sender.identities.borrow()
        );
        assert_eq!(h.gate.stats().expect("stats").tracking.replaced, 6);
    }

    #[test]
    fn a_person_who_clicks_within_seconds_still_has_their_identity_deleted() {
        let h = Harness::new(tracking(false));
        let signup = h.named(&h.send("quick@example.com"));
        h.click("quick@example.com");
        h.drain_until(START + 20_000);
        assert_eq!(h.status_of(&signup).status, "verified");
        assert_eq!(h.deleted(), ["quick@example.com"]);
    }

    #[test]
    fn an_identity_that_existed_before_the_send_or_is_kept_is_never_deleted() {
        let h = Harness::without_snapshot(
            tracking(false),
            &[
                ("owner@example.com", "Success"),
                ("pending@example.com", "Pending"),
            ],
        );
        h.drain_until(START + 3_000);
        for address in ["owner@example.com", "pending@example.com"] {
            h.runtime.advance_by(2_000);
            h.sent(address);
        }
        h.click("pending@example.com");
        h.drain_until(START + 700_000);
        assert_eq!(h.deleted(), Vec::<String>::new());
        // IDENTITY_KEEP protects an address the gate's own send creates.
        let h = Harness::new(GateConfig {
            tracking: TrackingConfig {
                identity_keep: crate::config::KeepList::parse("admin@example.com").expect("valid"),
                ..tracking(false).tracking
            },
            ..tracking(false)
        });
        h.sent("admin@example.com");
        h.click("admin@example.com");
        h.drain_until(START + 700_000);
        assert_eq!(h.deleted(), Vec::<String>::new());
        assert_eq!(h.gate.stats().expect("stats").tracking.cleanup_skipped, 1);
    }

    #[test]
    fn the_snapshot_is_paged_skips_what_the_gate_created_and_comes_after_every_send_and_check() {
        let h = Harness::without_snapshot(
            tracking(false),
            &[
                ("a@old.example", "Success"),
                ("b@old.example", "Pending"),
                ("c@old.example", "Success"),
                ("old.example", "Success"),
            ],
        );
        h.sent("new@example.com");
        h.drain_until(START + 30_000);
        let actions = h.actions();
        assert_eq!(actions[0], "SendCustomVerificationEmail");
        let lists = actions.iter().filter(|a| **a == "ListIdentities").count();
        assert_eq!(lists, 2, "four email identities, two a page: {actions:?}");
        let snapshot = h.store.load_snapshot().expect("read").expect("taken");
        assert_eq!(snapshot.len(), 3, "the gate's own identity is not in it");
        for address in ["a@old.example", "b@old.example", "c@old.example"] {
            assert!(snapshot.contains(&h.gate.address_secret, &email(address)));
        }
        assert!(!snapshot.contains(&h.gate.address_secret, &email("new@example.com")));
        let stats = h.gate.stats().expect("stats");
        assert_eq!(stats.identity_snapshot_size, Some(3));
        assert_eq!(stats.tracking.snapshots_taken, 1);
    }

    #[test]
    fn a_send_to_an_identity_whose_delete_is_in_flight_waits_for_the_delete() {
        let h = Rc::new(Harness::new(GateConfig {
            address_limits: AddressLimits {
                cooldown_ms: 0,
                daily_max: 0,
            },
            ..tracking(false)
        }));
        h.sent("again@example.com");
        h.click("again@example.com");
        h.drain_at(START + 5_100);
        assert_eq!(
            h.store.identities()[0].cleanup,
            crate::identities::Cleanup::Due
        );
        let during = Rc::clone(&h);
        let replies = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&replies);
        *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
            seen.borrow_mut().push(during.send("again@example.com"));
        }));
        h.drain_until(START + 20_000);
        let actions = h.actions();
        let delete = actions
            .iter()
            .position(|a| *a == "DeleteIdentity")
            .expect("deleted");
        assert!(
            matches!(replies.borrow()[0], Ok(Accepted::Queued { .. })),
            "{:?}",
            replies.borrow()
        );
        assert_eq!(
            actions[delete + 1],
            "SendCustomVerificationEmail",
            "the new send leaves after the delete: {actions:?}"
        );
        // The new link's identity exists, and its record is not marked deleted.
        assert!(h
            .sender
            .identities
            .borrow()
            .contains_key("again@example.com"));
        let identity = &h.store.identities()[0];
        assert_eq!(identity.cleanup, crate::identities::Cleanup::NotYet);
        drop(replies);
        *h.sender.meanwhile.borrow_mut() = None;
    }

    #[test]
    fn deletes_that_keep_failing_back_off_are_given_up_and_never_block_the_others() {
        let h = Harness::new(no_wait_tracking());
        h.sent("stuck@example.com");
        h.click("stuck@example.com");
        h.drain_at(START + 5_100);
        // Every delete of `stuck` is refused (an IAM policy without the action, say).
        h.sender.answers([answered(Outcome::Unknown)]);
        h.drain_at(START + 7_000);
        assert_eq!(h.deleted(), ["stuck@example.com"]);
        h.runtime.advance_to(START + 8_000);
        h.sent("free@example.com");
        h.click("free@example.com");
        h.drain_until(START + 20_000);
        assert_eq!(
            h.deleted(),
            ["stuck@example.com", "free@example.com"],
            "the other identity is not held up"
        );
        for _ in 0..20 {
            h.sender.answers([answered(Outcome::Unknown)]);
        }
        h.drain_until(START + 5 * 3_600_000);
        let stats = h.gate.stats().expect("stats");
        assert_eq!(stats.tracking.cleanup_given_up, 1, "{:?}", h.deleted());
        assert_eq!(
            h.deleted()
                .iter()
                .filter(|d| *d == "stuck@example.com")
                .count() as u32,
            crate::identities::MAX_CLEANUP_FAILURES
        );
        assert!(h
            .runtime
            .events()
            .contains(&"identity_cleanup_given_up".to_string()));
    }

    fn no_wait_tracking() -> GateConfig {
        GateConfig {
            address_limits: AddressLimits {
                cooldown_ms: 0,
                daily_max: 0,
            },
            ..tracking(false)
        }
    }

    #[test]
    fn a_signup_whose_checks_keep_failing_expires_after_its_link_and_a_margin() {
        let h = Harness::new(tracking(false));
        let signup = h.named(&h.send("a@example.com"));
        for _ in 0..200 {
            h.sender
                .answers([answered(Outcome::Config { clock_skew: false })]);
        }
        h.drain_until(START + 600_000 + crate::tracking::UNCHECKED_MARGIN_MS + 120_000);
        let status = h.status_of(&signup);
        assert_eq!(
            (status.status.as_str(), status.reason.as_deref()),
            ("expired", Some("unchecked"))
        );
        assert_eq!(h.gate.stats().expect("stats").pending_checks, 0);
    }

    #[test]
    fn a_dedupe_answer_carries_no_credentials_of_the_queued_signup() {
        let h = Harness::new(GateConfig {
            tracking: tracking(false).tracking,
            ..no_wait()
        });
        h.sent("first@example.com");
        let victim = h.send("jane@gmail.com");
        assert!(h.named(&victim).nonce.len() == 32);
        let stranger = h.send("J.a.n.e+z@googlemail.com");
        assert!(
            matches!(stranger, Ok(Accepted::Queued { .. })),
            "{stranger:?}"
        );
        assert_eq!(stranger.as_ref().ok().and_then(|a| a.signup()), None);
    }

    #[test]
    fn a_replaced_or_forged_signup_reference_names_nothing() {
        let h = Harness::new(tracking(false));
        let first = h.named(&h.send("a@example.com"));
        h.runtime.advance_to(START + 61_000);
        let second = h.named(&h.send("a+x@example.com"));
        assert_eq!(first.key, second.key, "one mailbox");
        assert_ne!(first.nonce, second.nonce);
        assert_eq!(h.gate.status(&first), Err(ApiError::UnknownSignup));
        assert_eq!(h.status_of(&second).status, "sent");
        let guessed = SignupRef {
            nonce: first.nonce.clone(),
            ..second.clone()
        };
        assert_eq!(h.gate.status(&guessed), Err(ApiError::UnknownSignup));
        assert_eq!(
            run(h.gate.confirm(&first)),
            Err(ApiError::UnknownSignup),
            "a replaced signup cannot be confirmed"
        );
    }

    #[test]
    fn a_confirmation_before_the_link_was_opened_is_refused_and_recorded_nowhere() {
        let h = Harness::new(tracking(true));
        let signup = h.named(&h.send("early@example.com"));
        h.runtime.advance_by(2_000);
        assert_eq!(run(h.gate.confirm(&signup)), Err(ApiError::NotVerified));
        assert_eq!(
            h.actions(),
            [
                "SendCustomVerificationEmail",
                "GetIdentityVerificationAttributes"
            ],
            "SES is asked at once"
        );
        assert!(!h.status_of(&signup).confirmed);
        // The link is opened later: verified, but still not confirmed; nothing was kept.
        h.click("early@example.com");
        h.drain_until(START + 30_000);
        let status = h.status_of(&signup);
        assert_eq!(
            (status.status.as_str(), status.confirmed),
            ("verified", false)
        );
        assert_eq!(h.delivered_types(), ["signup.verified"]);
        assert_eq!(
            h.gate
                .stats()
                .expect("stats")
                .tracking
                .confirmations_refused,
            1
        );
    }

    fn checks_made(h: &Harness) -> usize {
        h.actions()
            .iter()
            .filter(|a| **a == "GetIdentityVerificationAttributes")
            .count()
    }

    #[test]
    fn an_identity_the_operator_made_after_the_gate_deleted_its_own_is_left_alone() {
        let h = Harness::new(tracking(false));
        h.sent("ops@example.com");
        h.click("ops@example.com");
        h.drain_until(START + 30_000);
        assert_eq!(h.deleted(), ["ops@example.com"]);
        // The operator then verifies ops@ as a sender; a snapshot is taken since.
        h.verified_already("ops@example.com");
        h.drain_until(START + 2 * 3_600_000);
        let snapshot = h.store.load_snapshot().expect("read").expect("taken");
        assert!(snapshot.contains(&h.gate.address_secret, &email("ops@example.com")));
        h.runtime.advance_to(START + 2 * 3_600_000 + 1_000);
        h.sent("ops@example.com");
        h.drain_until(START + 2 * 3_600_000 + 700_000);
        assert_eq!(
            h.deleted(),
            ["ops@example.com"],
            "deleted once, never again"
        );
        assert!(h.sender.identities.borrow().contains_key("ops@example.com"));
    }

    #[test]
    fn a_send_ses_refused_deletes_nothing() {
        let h = Harness::new(tracking(false));
        h.verified_already("team@example.com");
        h.sender.answers([answered(Outcome::Rejected)]);
        assert_eq!(h.send("team@example.com"), Err(ApiError::Rejected));
        h.drain_until(START + 30_000);
        assert_eq!(h.deleted(), Vec::<String>::new());
    }

    #[test]
    fn an_address_added_to_identity_keep_after_its_send_is_still_never_deleted() {
        let h = Harness::new(tracking(false));
        h.sent("boss@example.com");
        h.click("boss@example.com");
        // The operator adds it to IDENTITY_KEEP before the clean-up ran: a new object reads it.
        let h = h.restart(GateConfig {
            tracking: TrackingConfig {
                identity_keep: crate::config::KeepList::parse("boss@example.com").expect("valid"),
                ..tracking(false).tracking
            },
            ..tracking(false)
        });
        h.drain_until(START + 30_000);
        assert_eq!(h.deleted(), Vec::<String>::new());
    }

    #[test]
    fn pressing_confirm_again_and_again_costs_at_most_one_ses_call_per_gap() {
        let h = Harness::new(tracking(false));
        let signup = h.named(&h.send("spam@example.com"));
        h.drain_at(START + 5_100);
        let before = checks_made(&h);
        for _ in 0..30 {
            h.runtime.advance_by(500);
            assert_eq!(run(h.gate.confirm(&signup)), Err(ApiError::NotVerified));
        }
        let made = checks_made(&h) - before;
        assert!(made <= 8, "{made} calls for 30 presses in 15 s");
        // Not while signups wait in the queue.
        let h = Harness::new(GateConfig {
            tracking: tracking(false).tracking,
            ..no_wait()
        });
        let pending = h.named(&h.send("pending@example.com"));
        h.queued("waiting@example.com");
        let before = checks_made(&h);
        assert_eq!(run(h.gate.confirm(&pending)), Err(ApiError::NotVerified));
        assert_eq!(checks_made(&h), before, "the queue goes first");
    }

    #[test]
    fn concurrent_signups_of_one_mailbox_with_limits_off_strand_no_record() {
        let h = Rc::new(Harness::new(GateConfig {
            max_wait_ms: 0,
            ..no_wait_tracking()
        }));
        let during = Rc::clone(&h);
        *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
            let b = during.send("x+b@example.com");
            assert!(matches!(b, Ok(Accepted::Queued { .. })), "{b:?}");
        }));
        let a = h.named(&h.send("x@example.com"));
        *h.sender.meanwhile.borrow_mut() = None;
        assert_eq!(
            h.gate.status(&a),
            Err(ApiError::UnknownSignup),
            "b replaced a"
        );
        h.drain_until(START + 3_600_000);
        assert!(
            h.store.identities().iter().all(|i| !i.has_work()),
            "{:?}",
            h.store.identities()
        );
        assert!(
            h.sender.identities.borrow().is_empty(),
            "{:?}",
            h.sender.identities.borrow()
        );
    }

    #[test]
    fn a_row_from_before_this_version_finishing_never_touches_a_new_signups_identity() {
        let h = Harness::new(tracking(false));
        let old = format!(
            r#"{{"email":"l@example.com","signed_up_ms":{s},"state":"sent","message_id":null,"sent_ms":{s},"verified_ms":null,"confirmed":false,"owned":true,"next_check_ms":{c},"cleanup":"not_yet","reason":null}}"#,
            s = START - 590_000,
            c = START + 20_000
        );
        let legacy: crate::tracking::Signup = serde_json::from_str(&old).expect("reads");
        h.store
            .store_signup("legacy-key-of-the-first-version", &legacy)
            .expect("stored");
        let fresh = h.named(&h.send("l@example.com"));
        h.drain_until(START + 60_000);
        assert_eq!(h.status_of(&fresh).status, "sent");
        assert_eq!(h.deleted(), Vec::<String>::new(), "the new link stays live");
    }

    #[test]
    fn a_send_taken_back_after_its_identitys_release_was_delivered_still_cleans_up() {
        let h = Rc::new(Harness::new(tracking(true)));
        h.sent("v@example.com");
        h.click("v@example.com");
        h.runtime
            .0
            .receiver
            .borrow_mut()
            .extend([Err("down".to_string())]);
        h.drain_at(START + 5_100);
        // The same address again; its send fails (configuration), and the retried delivery of
        // `verified` happens while that send is in flight.
        h.runtime.advance_to(START + 61_000);
        h.sender
            .answers([answered(Outcome::Config { clock_skew: false })]);
        let during = Rc::clone(&h);
        *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || during.drain()));
        assert_eq!(h.send("v@example.com"), Err(ApiError::Misconfigured));
        *h.sender.meanwhile.borrow_mut() = None;
        assert_eq!(
            h.delivered_types().last().map(String::as_str),
            Some("signup.verified")
        );
        h.drain_until(START + 3 * 3_600_000);
        assert_eq!(h.deleted(), ["v@example.com"]);
    }

    #[test]
    fn a_stranger_replacing_a_signup_whose_link_is_open_gets_a_contested_signup() {
        let h = Harness::new(tracking(true));
        let victim = h.named(&h.send("victim@example.com"));
        h.drain_at(START + 5_100);
        // 61 s later a stranger submits the address: it replaces the victim's signup.
        h.runtime.advance_to(START + 61_000);
        let stranger = h.named(&h.send("victim@example.com"));
        assert!(h.status_of(&stranger).contested);
        h.drain_at(START + 66_100);
        // The victim opens the first email's link after the stranger's first check: the
        // stranger's signup is verified, and everything the app hears about it says it is
        // contested.
        h.click("victim@example.com");
        h.drain_until(START + 90_000);
        let status = h.status_of(&stranger);
        assert_eq!(
            (status.status.as_str(), status.contested),
            ("verified", true)
        );
        let verified: Value = h
            .runtime
            .0
            .deliveries
            .borrow()
            .iter()
            .map(|(_, body)| serde_json::from_str::<Value>(body).expect("json"))
            .find(|b| b["type"] == "signup.verified")
            .expect("delivered");
        assert_eq!(verified["data"]["contested"], true);
        assert_eq!(h.gate.status(&victim), Err(ApiError::UnknownSignup));
        // The victim's own browser signing up again (its cookie presented) is not contested.
        h.runtime.advance_to(START + 200_000);
        let again = h.named(&run(h.gate.send(
            &email("other@example.com"),
            &request_id_for("other@example.com"),
            None,
        )));
        h.drain_at(START + 205_100);
        h.runtime.advance_to(START + 300_000);
        let resend = h.named(&run(h.gate.send(
            &email("other@example.com"),
            &request_id_for("other@example.com"),
            Some(&again),
        )));
        assert!(!h.status_of(&resend).contested);
    }

    #[test]
    fn an_identity_verified_before_its_signup_never_makes_that_signup_verified() {
        // IDENTITY_CLEANUP=off keeps every verified identity: a stranger signing up an address
        // verified long ago must not be told it verified.
        let h = Harness::new(GateConfig {
            tracking: TrackingConfig {
                identity_cleanup: false,
                ..tracking(false).tracking
            },
            ..tracking(false)
        });
        h.sent("kept@example.com");
        h.click("kept@example.com");
        h.drain_until(START + 30_000);
        h.runtime.advance_to(START + 3_600_000);
        let stranger = h.named(&h.send("kept@example.com"));
        h.drain_until(START + 3_600_000 + 30_000);
        let status = h.status_of(&stranger);
        assert_eq!(
            (status.status.as_str(), status.reason.as_deref()),
            ("expired", Some("already_verified"))
        );
        // The From address (in the snapshot) signed up by a stranger: the same.
        let h = Harness::without_snapshot(tracking(false), &[("noreply@example.com", "Success")]);
        h.drain_at(START);
        let stranger = h.named(&h.send("noreply@example.com"));
        h.drain_until(START + 30_000);
        assert_eq!(
            h.status_of(&stranger).reason.as_deref(),
            Some("already_verified")
        );
    }

    #[test]
    fn pollers_of_a_queued_signup_read_the_queue_once_a_second_however_many_they_are() {
        let h = Harness::new(GateConfig {
            tracking: tracking(false).tracking,
            ..no_wait()
        });
        h.sent("first@example.com");
        for i in 0..5 {
            h.queued(&format!("q{i}@example.com"));
        }
        let fifth = h.named(&h.send("fifth@example.com"));
        let reads = h.store.calls("queue order");
        for _ in 0..500 {
            assert_eq!(h.status_of(&fifth).position, Some(6));
        }
        assert_eq!(
            h.store.calls("queue order") - reads,
            1,
            "one read for 500 polls"
        );
        // A second on, the queue is read again.
        h.runtime.advance_by(1_000);
        assert_eq!(h.status_of(&fifth).position, Some(6));
        assert_eq!(h.store.calls("queue order") - reads, 2);
    }

    #[test]
    fn pressing_confirm_without_end_never_starves_clean_up_or_the_snapshot() {
        let h = Harness::new(no_wait_tracking());
        h.sent("done@example.com");
        h.click("done@example.com");
        let pressed = h.named(&h.send("presser@example.com"));
        // Twice a second for two minutes, with the sweep running all along.
        let mut at = START + 5_100;
        while at < START + 125_000 {
            h.runtime.advance_to(at);
            let _ = run(h.gate.confirm(&pressed));
            h.drain_at(at);
            at += 500;
        }
        assert_eq!(h.deleted(), ["done@example.com"], "{:?}", h.actions());
        let checks = checks_made(&h);
        assert!(checks <= 125, "{checks} checks in two minutes of presses");
    }

    #[test]
    fn replacing_a_verified_signup_nobody_confirmed_yet_is_contested_and_reported() {
        let h = Harness::new(tracking(true));
        let victim = h.named(&h.send("v@example.com"));
        h.click("v@example.com");
        h.drain_until(START + 20_000);
        assert_eq!(h.status_of(&victim).status, "verified");
        h.runtime.advance_to(START + 61_000);
        let stranger = h.named(&h.send("v@example.com"));
        assert!(h.status_of(&stranger).contested);
        h.drain_at(h.runtime.now_ms());
        let dropped: Vec<Value> = h
            .runtime
            .0
            .deliveries
            .borrow()
            .iter()
            .map(|(_, body)| serde_json::from_str::<Value>(body).expect("json"))
            .filter(|b| b["type"] == "signup.dropped")
            .collect();
        assert_eq!(
            dropped.len(),
            1,
            "the app hears the victim's signup was replaced"
        );
        assert_eq!(dropped[0]["data"]["reason"], "replaced");
        // Once confirmed, it is no longer waiting: a later signup is not contested.
        let h = Harness::new(tracking(false));
        let first = h.named(&h.send("c@example.com"));
        h.click("c@example.com");
        h.drain_until(START + 20_000);
        run(h.gate.confirm(&first)).expect("confirmed");
        assert!(h.status_of(&first).confirmed);
        h.runtime.advance_to(START + 61_000);
        let later = h.named(&h.send("c@example.com"));
        assert!(!h.status_of(&later).contested, "{:?}", h.store.signups());
    }

    #[test]
    fn a_refused_send_leaves_no_record_that_could_claim_an_identity_made_later() {
        let h = Harness::new(tracking(false));
        h.sender.answers([answered(Outcome::Rejected)]);
        assert_eq!(h.send("team@example.com"), Err(ApiError::Rejected));
        assert!(h.store.identities().is_empty());
        // The operator verifies team@ later; a fresh snapshot lists it; anyone signs it up.
        h.verified_already("team@example.com");
        h.drain_until(START + 20 * 60_000);
        h.runtime.advance_to(START + 20 * 60_000 + 61_000);
        let stranger = h.named(&h.send("team@example.com"));
        h.drain_until(START + 20 * 60_000 + 700_000);
        assert_eq!(h.deleted(), Vec::<String>::new());
        assert_eq!(
            h.status_of(&stranger).reason.as_deref(),
            Some("already_verified")
        );
    }

    #[test]
    fn a_person_whose_first_answer_timed_out_is_not_contested_when_signing_up_again() {
        let h = Harness::new(tracking(false));
        h.sender.answers([Some(CallResult::TimedOut)]);
        assert_eq!(h.send("slow@example.com"), Err(ApiError::UpstreamTimeout));
        h.runtime.advance_to(START + 61_000);
        let again = h.named(&h.send("slow@example.com"));
        assert!(
            !h.status_of(&again).contested,
            "no credential ever went out"
        );
    }

    #[test]
    fn two_signups_of_one_mailbox_in_the_same_millisecond_get_different_nonces() {
        let h = Harness::new(no_wait_tracking());
        let a = h.named(&h.send("same@example.com"));
        h.runtime.0.now.set(START);
        let b = h.named(&h.send("same@example.com"));
        assert_eq!(
            (a.key.as_str(), a.signed_up_ms),
            (b.key.as_str(), b.signed_up_ms)
        );
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(h.gate.status(&a), Err(ApiError::UnknownSignup));
    }

    #[test]
    fn without_any_snapshot_a_deleted_record_lets_the_first_check_decide_again() {
        let h = Harness::without_snapshot(tracking(false), &[]);
        h.store.fail("store snapshot");
        h.sent("ops@example.com");
        h.drain_until(START + 70_000);
        h.click("ops@example.com");
        h.drain_until(START + 200_000);
        assert_eq!(h.deleted(), ["ops@example.com"]);
        // The operator then verifies ops@ by hand; with no snapshot, a later send must not
        // assume the gate made it.
        h.verified_already("ops@example.com");
        h.runtime.advance_to(START + 300_000);
        let stranger = h.named(&h.send("ops@example.com"));
        h.drain_until(START + 1_200_000);
        assert_eq!(
            h.deleted(),
            ["ops@example.com"],
            "deleted once, never again"
        );
        assert_eq!(
            h.status_of(&stranger).reason.as_deref(),
            Some("already_verified")
        );
    }

    #[test]
    fn a_honeypot_decoy_is_answered_as_a_signup_with_the_real_key_and_sends_nothing() {
        let h = Harness::new(tracking(false));
        let decoy = run(h
            .gate
            .decoy(&email("bot@example.com"), &request_id_for("bot")));
        let named = h.named(&decoy);
        assert!(matches!(
            decoy,
            Ok(Accepted::Sent {
                message_id: Some(_),
                ..
            })
        ));
        assert_eq!(
            named.key,
            address_key(&h.gate.address_secret, &email("bot@example.com"))
        );
        assert!(signup_verify_domain::status_token::is_decoy(
            TOKEN_SECRET.as_bytes(),
            &named
        ));
        assert!(h.sender.calls.borrow().is_empty(), "nothing sent");
        assert!(h.store.signups().is_empty() && h.store.identities().is_empty());
        // Its limits are a signup's: the mailbox is in its cooldown now, for decoys and people.
        assert!(matches!(
            run(h
                .gate
                .decoy(&email("bot+2@example.com"), &request_id_for("bot"))),
            Err(ApiError::Cooldown { .. })
        ));
        assert!(matches!(
            h.send("bot@example.com"),
            Err(ApiError::Cooldown { .. })
        ));
        // A real signup's nonce is no decoy's.
        let real = h.named(&h.send("person@example.com"));
        assert!(!signup_verify_domain::status_token::is_decoy(
            TOKEN_SECRET.as_bytes(),
            &real
        ));
    }

    #[test]
    fn key_material_and_nonces_fail_closed_when_the_random_source_fails() {
        let runtime = FakeRuntime::at(START);
        runtime.0.random_fails.set(true);
        let store = MemoryStore::default();
        let sender = FakeSender {
            runtime: runtime.clone(),
            script: Rc::default(),
            calls: Rc::default(),
            meanwhile: Rc::default(),
            identities: Rc::default(),
        };
        assert!(Gate::open(store.clone(), sender, runtime.clone(), config()).is_err());
        assert!(store.load_state().is_ok() && store.calls("address secret") == 1);
        // A gate whose key exists: a signup without a nonce is refused, nothing is sent.
        let h = Harness::new(tracking(false));
        h.runtime.0.random_fails.set(true);
        assert_eq!(h.send("a@example.com"), Err(ApiError::Unavailable));
        assert!(h.sender.calls.borrow().is_empty());
        assert!(h.store.signups().is_empty());
        assert!(h
            .runtime
            .events()
            .contains(&"random_source_failed".to_string()));
    }

    #[test]
    fn status_checks_wait_for_the_queue_and_take_up_to_a_hundred_identities_a_call() {
        let h = Harness::new(GateConfig {
            queue_max: 1_000,
            ..no_wait()
        });
        for i in 0..150 {
            h.runtime.0.now.set(START);
            h.send(&format!("u{i}@example.com")).expect("taken");
        }
        // Every check is due long before the queue is empty; none goes before the last send.
        h.drain_at(START + 1);
        h.drain_until(START + 200_000);
        let actions = h.actions();
        let first_check = actions
            .iter()
            .position(|a| *a == "GetIdentityVerificationAttributes")
            .expect("checks");
        assert_eq!(first_check, 150, "{actions:?}");
        let sizes = h.check_sizes();
        assert_eq!(sizes[0], 100);
        assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
        let checked: std::collections::BTreeSet<String> = h
            .sender
            .calls
            .borrow()
            .iter()
            .flat_map(|c| match &c.call {
                SesCall::Check { identities } => identities.iter().map(|i| i.to_string()).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(checked.len(), 150, "every sent signup was checked");
        let slots = h.sender.slots();
        assert!(
            slots.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
            "one line for every call"
        );
    }

    #[test]
    fn pollers_are_answered_from_the_gate_and_never_call_ses() {
        let h = Harness::new(no_wait());
        h.sent("first@example.com");
        let reply = h.send("second@example.com");
        assert!(
            reply.as_ref().is_ok_and(|a| a.signup().is_none()),
            "no secret, no token"
        );
        let h = Harness::new(GateConfig {
            tracking: tracking(false).tracking,
            ..no_wait()
        });
        h.sent("first@example.com");
        let signup = h.named(&h.send("second@example.com"));
        let calls = h.sender.calls.borrow().len();
        for _ in 0..100 {
            let status = h.status_of(&signup);
            assert_eq!(
                (status.status.as_str(), status.position),
                ("queued", Some(1))
            );
            assert!(status.estimated_send_at.is_some());
        }
        assert_eq!(h.sender.calls.borrow().len(), calls);
        // A token for an earlier signup of the same address names nothing now.
        let stale = SignupRef {
            signed_up_ms: signup.signed_up_ms - 1,
            ..signup.clone()
        };
        assert_eq!(h.gate.status(&stale), Err(ApiError::UnknownSignup));
        let stranger = SignupRef {
            key: "0".repeat(64),
            ..signup
        };
        assert_eq!(h.gate.status(&stranger), Err(ApiError::UnknownSignup));
    }

    #[test]
    fn a_confirmation_checks_the_identity_at_once_and_reports_both_events() {
        let h = Harness::new(tracking(true));
        let signup = h.named(&h.send("human@example.com"));
        h.click("human@example.com");
        h.runtime.advance_by(2_000);
        let status = run(h.gate.confirm(&signup)).expect("confirmed");
        assert_eq!(
            (status.status.as_str(), status.confirmed),
            ("verified", true)
        );
        assert_eq!(
            h.actions(),
            [
                "SendCustomVerificationEmail",
                "GetIdentityVerificationAttributes"
            ]
        );
        h.drain_at(h.runtime.now_ms());
        assert_eq!(h.delivered_types(), ["signup.verified", "signup.confirmed"]);
        let confirmed: Value =
            serde_json::from_str(&h.runtime.0.deliveries.borrow()[1].1).expect("json");
        assert_eq!(confirmed["data"]["confirmed"], true);
        // Confirming twice reports nothing new.
        run(h.gate.confirm(&signup)).expect("still fine");
        h.drain_at(h.runtime.now_ms() + 10_000);
        assert_eq!(h.delivered_types().len(), 2);
    }

    #[test]
    fn a_receiver_that_is_down_gets_every_event_later_with_the_same_id_and_clean_up_waits_for_it() {
        let h = Harness::new(tracking(true));
        let signup = h.named(&h.send("a@example.com"));
        h.drain_at(START + 5_100);
        h.click("a@example.com");
        h.runtime.0.receiver.borrow_mut().extend([
            Err("connection refused".to_string()),
            Ok(503),
            Ok(500),
        ]);
        h.drain_at(START + 11_000);
        assert_eq!(h.status_of(&signup).status, "verified");
        assert!(
            !h.actions().contains(&"DeleteIdentity"),
            "not before the event is delivered"
        );
        // A restart loses nothing: the new object finds the event in the outbox.
        let h = h.restart(tracking(true));
        let mut at = START + 11_000;
        while h.gate.stats().expect("stats").webhook_backlog > 0 {
            at = h.runtime.last_alarm().unwrap_or(at + 5_000).max(at + 1);
            h.drain_at(at);
            assert!(at < START + 200_000, "never delivered");
        }
        let deliveries = h.runtime.0.deliveries.borrow().clone();
        assert_eq!(deliveries.len(), 4, "three failures, then delivered");
        let ids: std::collections::BTreeSet<String> = deliveries
            .iter()
            .map(|(headers, _)| {
                headers
                    .iter()
                    .find(|(n, _)| n == "webhook-id")
                    .expect("id")
                    .1
                    .clone()
            })
            .collect();
        assert_eq!(ids.len(), 1, "one event, one id");
        assert!(
            deliveries.windows(2).all(|w| w[0].1 == w[1].1),
            "the same body every time"
        );
        h.drain_at(h.runtime.now_ms() + 2_000);
        assert_eq!(h.actions().last(), Some(&"DeleteIdentity"));
        let stats = h.gate.stats().expect("stats");
        assert_eq!(
            (
                stats.tracking.webhook_attempts_failed,
                stats.tracking.webhooks_delivered
            ),
            (3, 1)
        );
    }

    #[test]
    fn a_dropped_or_rejected_signup_is_reported_with_its_reason() {
        let h = Harness::new(GateConfig {
            ses_max_attempts: 2,
            ..tracking(true)
        });
        h.sender.answers([answered(Outcome::Rejected)]);
        assert_eq!(h.send("bad@example.com"), Err(ApiError::Rejected));
        h.drain_at(h.runtime.now_ms());
        assert_eq!(h.delivered_types(), ["signup.rejected"]);
        let h = Harness::new(GateConfig {
            ses_max_attempts: 2,
            max_wait_ms: 0,
            ..tracking(true)
        });
        h.sent("first@example.com");
        let signup = h.named(&h.send("doomed@example.com"));
        h.sender.answers([server_error(), server_error()]);
        h.drain_at(START + 1_000);
        h.drain_at(h.runtime.last_alarm().expect("retry"));
        let status = h.status_of(&signup);
        assert_eq!(
            (status.status.as_str(), status.reason.as_deref()),
            ("dropped", Some("exhausted"))
        );
        assert!(h.delivered_types().contains(&"signup.dropped".to_string()));
    }

    #[test]
    fn a_failed_status_check_is_retried_a_minute_later_and_does_not_pause_the_sends() {
        let h = Harness::new(tracking(false));
        let signup = h.named(&h.send("a@example.com"));
        h.sender
            .answers([answered(Outcome::Config { clock_skew: false })]);
        h.drain_at(START + 5_100);
        assert!(h
            .runtime
            .events()
            .contains(&"status_check_failed".to_string()));
        assert_eq!(h.gate.stats().expect("stats").paused_until, None);
        h.sent("b@example.com");
        assert_eq!(h.status_of(&signup).status, "sent");
        let checks = || {
            h.actions()
                .iter()
                .filter(|a| **a == "GetIdentityVerificationAttributes")
                .count()
        };
        h.drain_at(START + 30_000);
        assert_eq!(checks(), 2, "b's first check only");
        h.drain_at(START + 70_000);
        assert_eq!(checks(), 3, "a's retry, a minute on");
    }

    #[test]
    fn a_due_check_also_takes_the_identities_due_within_a_minute() {
        let h = Harness::new(tracking(false));
        h.sent("first@example.com");
        h.runtime.advance_to(START + 3_000);
        h.sent("second@example.com");
        // The first is due five seconds after its send; the second three seconds later.
        h.drain_at(START + 5_100);
        let checked = h.check_sizes();
        assert_eq!(checked, [2], "one call for both");
    }

    #[test]
    fn a_finished_signup_is_forgotten_after_eight_days_and_its_token_then_names_nothing() {
        let h = Harness::new(tracking(false));
        let signup = h.named(&h.send("old@example.com"));
        h.drain_at(START + 5_100);
        h.click("old@example.com");
        h.drain_until(START + 30_000);
        assert_eq!(h.status_of(&signup).status, "verified");
        // A new object (the forget check runs once an hour per object) eight days on.
        let h = h.restart(tracking(false));
        h.sent("fresh@example.com");
        h.drain_at(START + 8 * 24 * 3_600_000 + 60_000);
        assert_eq!(h.gate.status(&signup), Err(ApiError::UnknownSignup));
        assert_eq!(h.store.signups().len(), 1, "only the fresh signup is kept");
    }
}
