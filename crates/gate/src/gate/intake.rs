//! Intake: a signup (or a honeypot decoy) from the Worker to its answer. Dedupe, the mailbox's
//! limits and the daily budget, then a slot in the request when the queue is empty and one is
//! free within `GATE_MAX_WAIT_MS` (at most five per recipient domain at once), else the
//! durable queue. A signup that ends up neither sent nor queued is taken back from every limit.

use super::*;
use crate::cooldown::address_key;
use crate::cooldown::admit;
use crate::messages::Accepted;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::Recipient;
use crate::messages::SendReply;
use crate::messages::SenderLink;
use crate::queue::estimated_send_at_ms;
use crate::queue::fair_tag;
use crate::queue::CONFIG_PAUSE_MS;
use crate::slots::retry_jitter_ms;
use crate::slots::Reservation;
use crate::store::GateStore;
use crate::store::NewItem;
use crate::store::QueueEnd;
use crate::store::StoreError;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::retry_after_secs;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::log_line;
use signup_verify_domain::mailbox::Mailbox;
use signup_verify_domain::redact::tag_of;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_ses::outcome::api_error_for;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;
use signup_verify_ses::time::rfc3339_utc;

/// What a signup in a pool of regions may do (see [`Gate::send_in_pool`]); the default is a
/// region alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolAsk {
    /// Another region can take a new signup: a paused gate declines it instead of queueing it.
    pub may_decline: bool,
    /// A region that declined it holds an open signup of the mailbox issued to another request.
    pub contested_elsewhere: bool,
}

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
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
        self.send_in_pool(email, request_id, presented, PoolAsk::default())
            .await
    }

    /// [`Self::send`] in a pool of regions (`pool`: see [`PoolAsk`]). While this gate is
    /// paused (or its direct send meets a configuration error, which pauses it) a signup not
    /// already queued here that may be declined is declined with [`ApiError::RegionPaused`]
    /// instead of queued, and nothing of it is kept.
    pub async fn send_in_pool(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        presented: Option<&SignupRef>,
        pool: PoolAsk,
    ) -> SendReply {
        self.count(|g| g.cost.signups = g.cost.signups.saturating_add(1));
        let reply = self.take_signup(email, request_id, presented, pool).await;
        self.save_state();
        reply
    }

    /// While this gate is paused: [`ApiError::RegionPaused`] for a new signup that `may_decline`,
    /// saying whether this gate holds an open signup of the mailbox that `presented` does not
    /// name (the next region marks the new one contested).
    pub(super) fn declined(
        &self,
        may_decline: bool,
        arrival: u64,
        key: &str,
        presented: Option<&SignupRef>,
    ) -> Option<SendReply> {
        let paused_until_ms = self
            .state
            .borrow()
            .paused_until_ms
            .filter(|until| may_decline && *until > arrival)?;
        // Within the mailbox's cooldown here, the answer is the cooldown's, as if not paused:
        // a pause must not let a resubmission be mailed from another region.
        let limits = self.config.address_limits;
        if !limits.is_off() {
            let record = self
                .store
                .load_address(key, arrival.saturating_sub(limits.retention_ms()));
            if let Ok(record) = record {
                if let Err(retry_after_secs) =
                    crate::cooldown::admit(record.as_ref(), arrival, limits)
                {
                    return Some(Err(ApiError::Cooldown { retry_after_secs }));
                }
            }
        }
        let open = match self.load_signup(key) {
            Ok(previous) => self.contests(previous.as_ref(), key, presented, arrival),
            Err(e) => {
                self.log_store_error(&e);
                // Unknown: the safe side is to mark the new signup contested.
                true
            }
        };
        self.runtime.log_info(
            || log_line!({"event": "signup_declined", "reason": "region_paused", "paused_until_ms": paused_until_ms}),
        );
        Some(Err(ApiError::RegionPaused {
            paused_until_ms,
            open,
        }))
    }

    pub(super) async fn take_signup(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        presented: Option<&SignupRef>,
        pool: PoolAsk,
    ) -> SendReply {
        let may_decline = pool.may_decline;
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
        if let Some(declined) = self.declined(may_decline, arrival, &key, presented) {
            return declined;
        }
        let nonce = self.fresh_nonce(request_id)?;
        let admission = match self.admit(to, arrival) {
            Ok(admission) => admission,
            Err(refused) => return refused,
        };
        // Tracked before the first await, so the drain always finds the row it updates.
        let tracked = match self.track_signup(
            &key,
            email,
            arrival,
            nonce,
            super::lifecycle::Came {
                presented,
                handed_from: None,
                contested_elsewhere: pool.contested_elsewhere,
                signed_up_ms: None,
            },
        ) {
            Ok(tracked) => tracked,
            Err(e) => return self.unavailable(&e, to),
        };
        let made = self
            .config
            .tracking
            .status_token_secret
            .is_some()
            .then(|| tracked.signup_ref(&key));
        let contested = tracked.contested();
        let reply = match self.send_or_queue(to, arrival, may_decline).await {
            // Declined on its direct send's configuration error: the next region learns whether
            // it contests a signup here, as from any decline.
            Err(ApiError::RegionPaused {
                paused_until_ms, ..
            }) => Err(ApiError::RegionPaused {
                paused_until_ms,
                open: contested,
            }),
            reply => reply,
        };
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
    /// `may_decline` as for [`Self::send_in_pool`]: a decoy is declined where a signup would be.
    pub async fn decoy(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        may_decline: bool,
    ) -> SendReply {
        self.count(|g| g.cost.signups = g.cost.signups.saturating_add(1));
        let reply = self.take_decoy(email, request_id, may_decline);
        self.save_state();
        reply
    }

    pub(super) fn take_decoy(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        may_decline: bool,
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
        if let Some(declined) = self.declined(may_decline, arrival, &key, None) {
            return declined;
        }
        // Kept, as a sent signup's is: a decoy counts against the mailbox and the budget.
        if let Err(refused) = self.admit(to, arrival) {
            return refused;
        }
        let mut random = [0u8; 8 + 16];
        if let Err(error) = self.runtime.secure_random(&mut random) {
            self.runtime.log_error(
                log_line!({"event": "random_source_failed", "error": error, "request_id": request_id}),
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
                region: None,
            });
        Ok(Accepted::Sent {
            message_id: Some(signup_verify_domain::status_token::decoy_message_id(
                arrival,
                id_random.try_into().unwrap_or_default(),
            )),
            signup,
        })
    }

    /// A signup's random nonce, hex; `unavailable` (logged with the request's id) when the
    /// random source fails: never a fallback.
    pub(super) fn fresh_nonce(&self, request_id: &RequestId) -> Result<String, ApiError> {
        let mut nonce = [0u8; signup_verify_domain::status_token::NONCE_BYTES];
        match self.runtime.secure_random(&mut nonce) {
            Ok(()) => Ok(hex::encode(nonce)),
            Err(error) => {
                self.runtime.log_error(log_line!({"event": "random_source_failed", "error": error, "request_id": request_id}));
                Err(ApiError::Unavailable)
            }
        }
    }

    /// The answer to a signup of a mailbox that is queued already: its place, and none of its
    /// credentials (they are the queuing request's alone; the answer reads the same whoever
    /// asks). `None` when it is not queued.
    pub(super) fn already_queued(&self, to: Recipient, arrival: u64) -> Option<SendReply> {
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
    // The refusal is the signup's whole answer, moved once: boxing it would only add a step.
    #[allow(clippy::result_large_err)]
    pub(super) fn admit(
        &self,
        to: Recipient,
        arrival: u64,
    ) -> Result<Option<Admission>, SendReply> {
        let admission = match self.admit_address(to.key, arrival) {
            Ok(admission) => admission,
            Err(Refusal::Cooldown { retry_after_secs }) => {
                self.runtime.log_info(|| log_line!({"event": "address_cooldown", "retry_after_secs": retry_after_secs, "address": tag_of(to.key), "request_id": to.request_id}));
                return Err(Err(ApiError::Cooldown { retry_after_secs }));
            }
            Err(Refusal::Store(e)) => return Err(self.unavailable(&e, to)),
        };
        let budget = self.config.daily_send_budget;
        if let Err(retry_after_secs) = self.update(|g| g.budget.take(arrival, budget)) {
            self.runtime.log_error(log_line!({"event": "daily_budget_spent", "budget": budget, "retry_after_secs": retry_after_secs, "request_id": to.request_id}));
            if let Some(admission) = admission {
                self.take_back(admission);
            }
            return Err(Err(ApiError::Busy { retry_after_secs }));
        }
        Ok(admission)
    }

    /// Checks and records the per-address limits, synchronously. `None` when they are off.
    pub(super) fn admit_address(&self, key: &str, now: u64) -> Result<Option<Admission>, Refusal> {
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
    pub(super) fn take_back(&self, admission: Admission) {
        let restored = match &admission.previous {
            Some(record) => self.store.store_address(&admission.key, record),
            None => self.store.remove_address(&admission.key),
        };
        if let Err(e) = restored {
            self.log_store_error(&e);
        }
    }

    pub(super) async fn send_or_queue(
        &self,
        to: Recipient<'_>,
        arrival: u64,
        may_decline: bool,
    ) -> SendReply {
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
                self.send_direct(to, arrival, at_ms, may_decline).await
            }
            Reservation::Busy { retry_after_secs } => {
                match self.enqueue(to, arrival, QueueEnd::Back, 0).await {
                    Ok(Some(queued)) => queued,
                    Ok(None) => {
                        self.runtime.log_info(|| log_line!({"event": "gate_busy", "retry_after_secs": retry_after_secs, "address": tag_of(to.key), "request_id": to.request_id}));
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
    pub(super) async fn send_direct(
        &self,
        to: Recipient<'_>,
        arrival: u64,
        mut slot: u64,
        may_decline: bool,
    ) -> SendReply {
        let interval = self.config.interval_ms;
        let deadline = arrival + self.config.max_wait_ms;
        for attempt in 1..=DIRECT_ATTEMPTS_WITHOUT_QUEUE {
            let call = CallRequest::send(to, slot, attempt);
            let Some(result) = self.call_sender(&call).await else {
                return Err(ApiError::Misconfigured);
            };
            let outcome = match result {
                CallResult::Answered(Outcome::Sent { message_id }) => {
                    self.succeeded();
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
            if may_decline && matches!(outcome, Some(Outcome::Config { .. })) {
                // The region's configuration is broken: it pauses, and another takes this one.
                let until = self.runtime.now_ms() + CONFIG_PAUSE_MS;
                self.update(|g| {
                    g.paused_until_ms = Some(until);
                    g.config_errors = g.config_errors.saturating_add(1);
                });
                self.runtime.log_error(log_line!({"event": "region_paused", "paused_until_ms": until, "request_id": to.request_id}));
                return Err(ApiError::RegionPaused {
                    paused_until_ms: until,
                    open: false,
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
    pub(super) async fn enqueue(
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

    pub(super) fn queued_reply(&self, position: u64, now: u64) -> SendReply {
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
    pub(super) fn queue_full_retry_after(&self) -> u64 {
        let ahead = self.store.queue_len().unwrap_or(0);
        let backlog_ms = ahead.saturating_mul(self.config.interval_ms);
        let now = self.runtime.now_ms();
        let wait = self.state.borrow().next_free_ms.saturating_sub(now) + backlog_ms;
        retry_after_secs(wait)
    }
}
