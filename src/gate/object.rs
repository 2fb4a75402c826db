//! `SesGate`, the Durable Object every signup goes through: one instance per region
//! (`id_from_name(region)`), so every Worker isolate in the world shares one gate. Its SES calls
//! go out through the region's `SesSender`.
//!
//! A signup is sent at once when the queue is empty and a slot is free within
//! `GATE_MAX_WAIT_MS`; otherwise it goes into the durable queue, which an alarm drains one slot
//! at a time. Nothing valid is lost: a signup is either sent, queued (and later sent or dropped
//! with a counted reason), or refused with an answer the caller sees.
//!
//! Invariants: slots are at least `GATE_INTERVAL_MS` apart, and the sender sends each call one
//! interval after the previous answer (see `pacing`); an address gets at most one signup per
//! `EMAIL_COOLDOWN_SECONDS` and `EMAIL_DAILY_MAX` a day; an item leaves the queue only with a
//! MessageId or a drop reason. Why they hold: a Durable Object runs one event at a time, and each
//! reservation, admission and queue change is a synchronous read-modify-write with no
//! await inside, written to SQLite storage before the next await (covered by the output gate),
//! so a restarted object resumes with the same slots, limits and queue.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use serde_json::json;
use worker::{
    console_error, console_log, durable_object, wasm_bindgen, DurableObject, Env, Method, Request,
    RequestInit, Response, Result, State,
};

use crate::config::Config;
use crate::email::EmailAddress;
use crate::error::{retry_after_secs, ApiError};
use crate::gate::cooldown::{address_key, admit, AddressRecord};
use crate::gate::queue::{
    estimated_send_at_ms, rfc3339_utc, settle_head, CallResult, HeadResult, QueueStore,
};
use crate::gate::rpc::{
    CallRequest, GateStats, SendReply, SendRequest, CALL_PATH, GATE_ORIGIN, SEND_PATH, STATS_PATH,
};
use crate::gate::slots::{retry_jitter_ms, GateState, Reservation};
use crate::gate::storage::GateStorage;
use crate::runtime::{load_config, now_ms, random_u32};
use crate::ses::outcome::{api_error_for, Outcome, RetryReason};

/// The `SesSender` binding in wrangler.toml.
const SENDER_BINDING: &str = "SES_SENDER";
/// Without a queue to fall back on, a direct send is tried at most this often.
const DIRECT_ATTEMPTS_WITHOUT_QUEUE: u32 = 3;
/// One alarm drains for at most this long, then hands over to the next alarm.
const DRAIN_BUDGET_MS: u64 = 20_000;
/// Set before draining: if the object dies mid-drain, the alarm brings it back this soon.
const WATCHDOG_MS: u64 = 5_000;

#[durable_object]
pub struct SesGate {
    state: State,
    env: Env,
    storage: RefCell<GateStorage>,
    gate: RefCell<GateState>,
    address_secret: Vec<u8>,
    draining: Cell<bool>,
    /// An alarm that will drain the queue is set (in memory: a new object sets it again).
    alarm_armed: Cell<bool>,
}

fn random_secret() -> Vec<u8> {
    (0..8).flat_map(|_| random_u32().to_le_bytes()).collect()
}

impl DurableObject for SesGate {
    fn new(state: State, env: Env) -> Self {
        let opened = GateStorage::open(state.storage().sql()).and_then(|storage| {
            let gate = storage.load_gate_state()?;
            let secret = storage.address_secret(random_secret)?;
            Ok((storage, gate, secret))
        });
        let (storage, gate, address_secret) = match opened {
            Ok(loaded) => loaded,
            Err(e) => {
                // Storage that cannot even be opened is not something to limp along without.
                console_error!(
                    "{}",
                    json!({"event": "gate_storage_unusable", "error": e.to_string()})
                );
                panic!("SesGate storage unusable: {e}");
            }
        };
        Self {
            state,
            env,
            storage: RefCell::new(storage),
            gate: RefCell::new(gate),
            address_secret,
            draining: Cell::new(false),
            alarm_armed: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, SEND_PATH) => {
                let reply = match req.json::<SendRequest>().await {
                    Ok(request) => self.send(&request).await,
                    Err(_) => SendReply::Failed {
                        error: ApiError::InvalidBody,
                    },
                };
                Response::from_json(&reply)
            }
            (Method::Get, STATS_PATH) => match load_config(&self.env) {
                Ok(config) => Response::from_json(&self.stats(&config)),
                Err(_) => Response::error("misconfigured", 500),
            },
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        console_log!(
            "{}",
            json!({"event": "alarm", "queue_length": self.storage.borrow().len()})
        );
        self.drain().await;
        Response::ok("drained")
    }
}

/// The address admission to take back if the signup ends up neither sent nor queued.
type Admission = Option<(String, Option<AddressRecord>)>;

impl SesGate {
    async fn send(&self, request: &SendRequest) -> SendReply {
        let failed = |error| SendReply::Failed { error };
        let Ok(config) = load_config(&self.env) else {
            return failed(ApiError::Misconfigured);
        };
        let Ok(email) = EmailAddress::parse(&request.email) else {
            return failed(ApiError::InvalidEmail);
        };
        let arrival = now_ms();
        let key = address_key(&self.address_secret, &email);
        if let Some(position) = self.storage.borrow().position_of(&key) {
            return self.queued_reply(&config, position, arrival);
        }
        let admission = match self.admit_address(&config, &key, arrival) {
            Ok(admission) => admission,
            Err(retry_after_secs) => {
                console_log!(
                    "{}",
                    json!({"event": "address_cooldown", "retry_after_secs": retry_after_secs})
                );
                return failed(ApiError::Cooldown { retry_after_secs });
            }
        };
        let reply = self.send_or_queue(&config, &email, &key, arrival).await;
        if let (SendReply::Failed { .. }, Some((key, previous))) = (&reply, admission) {
            // Neither sent nor queued: the signup must not count against the address.
            self.storage
                .borrow()
                .restore_address(&key, previous.as_ref());
        }
        reply
    }

    /// Checks and records the per-address limits, synchronously.
    fn admit_address(
        &self,
        config: &Config,
        key: &str,
        now: u64,
    ) -> std::result::Result<Admission, u64> {
        let limits = config.address_limits;
        if limits.is_off() {
            return Ok(None);
        }
        let storage = self.storage.borrow();
        let stored = storage.load_address(key, now.saturating_sub(limits.retention_ms()));
        let record = admit(stored.as_ref(), now, limits)?;
        storage.store_address(key, &record);
        Ok(Some((key.to_string(), stored)))
    }

    async fn send_or_queue(
        &self,
        config: &Config,
        email: &EmailAddress,
        key: &str,
        arrival: u64,
    ) -> SendReply {
        let interval = config.gate_interval_ms;
        let queue_is_idle = self.storage.borrow().is_empty()
            && self
                .gate
                .borrow()
                .paused_until_ms
                .is_none_or(|t| t <= arrival);
        let reservation = if queue_is_idle {
            self.update(|g| g.reserve(arrival, interval, config.gate_max_wait_ms))
        } else {
            Reservation::Busy {
                retry_after_secs: 1,
            }
        };
        let slot = match reservation {
            Reservation::Slot { at_ms } => at_ms,
            Reservation::Busy { retry_after_secs } => {
                return self
                    .enqueue(config, email, key, arrival, false, 0)
                    .await
                    .unwrap_or_else(|| {
                        console_log!(
                            "{}",
                            json!({"event": "gate_busy", "retry_after_secs": retry_after_secs})
                        );
                        SendReply::Failed {
                            error: ApiError::Busy {
                                retry_after_secs: self.queue_full_retry_after(config),
                            },
                        }
                    });
            }
        };
        self.send_direct(config, email, key, arrival, slot).await
    }

    /// Sends in the request, at `slot`. A retryable failure puts the signup at the head of the
    /// queue; only without room there is it retried in the request (twice, within
    /// `GATE_MAX_WAIT_MS`) and then answered with the upstream error.
    async fn send_direct(
        &self,
        config: &Config,
        email: &EmailAddress,
        key: &str,
        arrival: u64,
        mut slot: u64,
    ) -> SendReply {
        let failed = |error| SendReply::Failed { error };
        let interval = config.gate_interval_ms;
        let deadline = arrival + config.gate_max_wait_ms;
        for attempt in 1..=DIRECT_ATTEMPTS_WITHOUT_QUEUE {
            let result = match self.call_at_slot(config, email, slot, attempt).await {
                Some(result) => result,
                None => return failed(ApiError::Misconfigured),
            };
            let outcome = match result {
                CallResult::Answered(Outcome::Sent { message_id }) => {
                    self.update(GateState::succeeded);
                    self.storage.borrow().record_send(now_ms());
                    return SendReply::Sent { message_id };
                }
                CallResult::TimedOut => None,
                CallResult::Answered(outcome) => Some(outcome),
            };
            if outcome == Some(Outcome::Retryable(RetryReason::Throttled)) {
                self.update(|g| {
                    g.counters.throttles_seen += 1;
                    g.throttled(now_ms(), random_u32())
                });
            }
            let retryable = matches!(outcome, None | Some(Outcome::Retryable(_)));
            if !retryable {
                let outcome = outcome.unwrap_or(Outcome::Unknown);
                return failed(api_error_for(&outcome, 1));
            }
            // A throttle is not the signup's fault; other failures count as an attempt.
            let attempts = u32::from(outcome != Some(Outcome::Retryable(RetryReason::Throttled)));
            if attempts < config.ses_max_attempts {
                if let Some(queued) = self
                    .enqueue(config, email, key, now_ms(), true, attempts)
                    .await
                {
                    return queued;
                }
            }
            let jitter = retry_jitter_ms(random_u32(), interval);
            let retry = if attempt < DIRECT_ATTEMPTS_WITHOUT_QUEUE {
                self.update(|g| g.reserve_retry(now_ms(), interval, jitter, deadline))
            } else {
                None
            };
            match retry {
                Some(next) => slot = next,
                None => {
                    let wait = self.gate.borrow().next_free_ms.saturating_sub(now_ms());
                    return failed(match outcome {
                        None => ApiError::UpstreamTimeout,
                        Some(outcome) => api_error_for(&outcome, retry_after_secs(wait)),
                    });
                }
            }
        }
        failed(ApiError::UpstreamError)
    }

    /// Hands the call to the region's `SesSender`, which sends it at `slot` or later, and waits
    /// for the result. `None` if the call cannot be made at all (no `SES_SENDER` binding, or a
    /// request that cannot be signed): the deployment is misconfigured. A sender that cannot be
    /// reached or dies mid-call is a `TimedOut`: the call may have reached SES.
    async fn call_at_slot(
        &self,
        config: &Config,
        email: &EmailAddress,
        slot: u64,
        attempt: u32,
    ) -> Option<CallResult> {
        let call = CallRequest {
            email: email.to_string(),
            slot_ms: slot,
            attempt,
        };
        let Ok(senders) = self.env.durable_object(SENDER_BINDING) else {
            console_error!(
                "{}",
                json!({"event": "config_error", "variable": SENDER_BINDING, "problem": "the SesSender Durable Object binding is missing from wrangler.toml"})
            );
            return None;
        };
        let result = async {
            let stub = senders.id_from_name(&config.region)?.get_stub()?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_body(Some(serde_json::to_string(&call)?.into()));
            let request = Request::new_with_init(&format!("{GATE_ORIGIN}{CALL_PATH}"), &init)?;
            stub.fetch_with_request(request)
                .await?
                .json::<Option<CallResult>>()
                .await
        }
        .await;
        result.unwrap_or_else(|e| {
            console_error!(
                "{}",
                json!({"event": "sender_unreachable", "attempt": attempt, "error": e.to_string()})
            );
            Some(CallResult::TimedOut)
        })
    }

    /// Queues the signup (at the head after a failed first attempt) and makes sure the alarm
    /// will drain it. `None` when the queue is full or off.
    async fn enqueue(
        &self,
        config: &Config,
        email: &EmailAddress,
        key: &str,
        now: u64,
        at_head: bool,
        attempts: u32,
    ) -> Option<SendReply> {
        let position = {
            let mut storage = self.storage.borrow_mut();
            if storage.len() >= config.queue_max {
                return None;
            }
            if at_head {
                storage.push_front(email.as_str(), key, now, attempts)
            } else {
                storage.push(email.as_str(), key, now, attempts)
            }
        };
        if position == 0 {
            return None;
        }
        if !self.draining.get() && !self.alarm_armed.get() {
            // Now, not at the next slot: draining waits for its slots itself, and an alarm armed
            // for later would add its own start-up delay to the queue. Once per drain, not per
            // item: each storage call is one more event in the object's queue during a burst.
            self.arm_alarm(now).await;
        }
        Some(self.queued_reply(config, position, now))
    }

    fn queued_reply(&self, config: &Config, position: u64, now: u64) -> SendReply {
        let at = estimated_send_at_ms(&self.gate.borrow(), now, position, config.gate_interval_ms);
        SendReply::Queued {
            position,
            estimated_send_at: rfc3339_utc(at),
        }
    }

    /// An honest `Retry-After` when the queue is full: the time to send what is ahead.
    fn queue_full_retry_after(&self, config: &Config) -> u64 {
        let ahead = self.storage.borrow().len();
        let backlog_ms = ahead.saturating_mul(config.gate_interval_ms);
        let wait = self.gate.borrow().next_free_ms.saturating_sub(now_ms()) + backlog_ms;
        retry_after_secs(wait)
    }

    /// Sends the head of the queue at each slot until the queue is empty, paused, or this
    /// alarm's budget is spent; then re-arms the alarm.
    async fn drain(&self) {
        if self.draining.replace(true) {
            return;
        }
        let Ok(config) = load_config(&self.env) else {
            self.draining.set(false);
            self.arm_alarm(now_ms() + 60_000).await;
            return;
        };
        let started = now_ms();
        self.arm_alarm(started + WATCHDOG_MS).await;
        let next_alarm = loop {
            let Some(head) = self.storage.borrow().head() else {
                break None;
            };
            let now = now_ms();
            if let Some(until) = self.gate.borrow().paused_until_ms.filter(|t| *t > now) {
                break Some(until);
            }
            let next_free = self.gate.borrow().next_free_ms.max(now);
            if next_free >= started + DRAIN_BUDGET_MS {
                break Some(next_free);
            }
            let Reservation::Slot { at_ms: slot } =
                self.update(|g| g.reserve(now, config.gate_interval_ms, u64::MAX))
            else {
                break Some(next_free);
            };
            let Ok(email) = EmailAddress::parse(&head.email) else {
                // Only parsed addresses are queued; a row that no longer parses is not sendable.
                console_error!(
                    "{}",
                    json!({"event": "queue_drop", "reason": "unparseable_row"})
                );
                self.storage.borrow_mut().remove(head.id);
                continue;
            };
            let Some(result) = self
                .call_at_slot(&config, &email, slot, head.attempts + 1)
                .await
            else {
                break Some(now_ms() + 60_000);
            };
            let outcome = self.update(|g| {
                let mut storage = self.storage.borrow_mut();
                settle_head(
                    &mut *storage,
                    g,
                    &head,
                    result,
                    now_ms(),
                    random_u32(),
                    config.ses_max_attempts,
                )
            });
            log_head_result(&outcome, &head.enqueued_at_ms);
            if matches!(outcome, HeadResult::Sent { .. }) {
                self.storage.borrow().record_send(now_ms());
            }
        };
        self.draining.set(false);
        match next_alarm {
            Some(at) => self.arm_alarm(at).await,
            // Only the watchdog is left: the next signup to queue must set an alarm for now.
            None => self.alarm_armed.set(false),
        }
    }

    /// Sets the alarm for `at_ms` (Unix ms); workers-rs takes an offset from now.
    async fn arm_alarm(&self, at_ms: u64) {
        let offset = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.alarm_armed.set(true);
        if let Err(e) = self.state.storage().set_alarm(offset).await {
            self.alarm_armed.set(false);
            console_error!(
                "{}",
                json!({"event": "alarm_not_set", "error": e.to_string()})
            );
        }
    }

    fn stats(&self, config: &Config) -> GateStats {
        let now = now_ms();
        let storage = self.storage.borrow();
        let gate = self.gate.borrow();
        let paused_until = gate.paused_until_ms.filter(|t| *t > now);
        let backoff = if gate.backoff.is_active() {
            gate.next_free_ms.saturating_sub(now)
        } else {
            0
        };
        GateStats {
            queue_length: storage.len(),
            oldest_item_age_ms: storage.oldest_enqueued_at().map(|t| now.saturating_sub(t)),
            sends_last_minute: storage.sends_since(now.saturating_sub(60_000)),
            sends_last_hour: storage.sends_since(now.saturating_sub(3_600_000)),
            throttles_seen: gate.counters.throttles_seen,
            drops: gate.counters.drops.clone(),
            interval_ms: config.gate_interval_ms,
            current_interval_ms: config.gate_interval_ms.max(backoff),
            paused_until: paused_until.map(rfc3339_utc),
        }
    }

    /// Applies a change to the gate state and persists it before anything else can run.
    fn update<T>(&self, change: impl FnOnce(&mut GateState) -> T) -> T {
        let mut gate = self.gate.borrow_mut();
        let result = change(&mut gate);
        self.storage.borrow().save_gate_state(&gate);
        result
    }
}

/// One structured line per queued send's fate; drops are what an operator must see.
fn log_head_result(outcome: &HeadResult, enqueued_at_ms: &u64) {
    let waited_ms = now_ms().saturating_sub(*enqueued_at_ms);
    match outcome {
        HeadResult::Dropped { reason, attempts } => console_error!(
            "{}",
            json!({"event": "queue_drop", "reason": reason.as_str(), "attempts": attempts, "waited_ms": waited_ms})
        ),
        HeadResult::Paused { paused_until_ms } => console_error!(
            "{}",
            json!({"event": "queue_paused", "reason": "SES says the configuration is broken", "until": rfc3339_utc(*paused_until_ms)})
        ),
        other => console_log!(
            "{}",
            json!({"event": "queue_send", "result": format!("{other:?}"), "waited_ms": waited_ms})
        ),
    }
}
