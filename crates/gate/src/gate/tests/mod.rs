//! The gate's host tests: a fake platform (clock, timers, randomness, logs, webhook
//! receiver), a fake sender and SES account, `MemoryStore`, and the harness that ties them
//! together. The tests themselves are in one file per job.

use crate::config::GateConfig;
use crate::cooldown::address_key;
use crate::gate::Gate;
use crate::gate::RETRY_LATER_MS;
use crate::identities::Snapshot;
use crate::messages::Accepted;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::Recipient;
use crate::messages::SendReply;
use crate::messages::SendRequest;
use crate::messages::SenderLink;
use crate::messages::SignupStatus;
use crate::ports::GateRuntime;
use crate::store::GateStore;
use crate::store::NewItem;
use crate::store::QueueEnd;
use crate::store::StoreError;
use crate::tracking::SignupState;
use crate::usage::RowUsage;
use serde_json::{json, Value};
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::log_line::LogLine;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;
use signup_verify_ses::time::rfc3339_utc;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;

use futures_util::FutureExt;

use crate::config::AddressLimits;
use crate::config::TrackingConfig;
use crate::memory_store::MemoryStore;
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
        pool: None,
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
    /// The other regions' next answers to hand-overs (then: queued there), and what was handed.
    takers: RefCell<VecDeque<Result<SendReply, String>>>,
    handed: RefCell<Vec<(String, SendRequest)>>,
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
    fn log_info(&self, line: impl FnOnce() -> LogLine) {
        self.log_error(line());
    }
    fn log_error(&self, line: LogLine) {
        let parsed = serde_json::from_str(&line.to_string()).expect("a log line is JSON");
        self.0.logs.borrow_mut().push(parsed);
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
    async fn hand_over(&self, region: &str, request: &SendRequest) -> Result<SendReply, String> {
        self.advance_by(ROUND_TRIP);
        self.0
            .handed
            .borrow_mut()
            .push((region.to_string(), request.clone()));
        let n = self.0.handed.borrow().len();
        self.0.takers.borrow_mut().pop_front().unwrap_or_else(|| {
            Ok(Ok(Accepted::Queued {
                position: 1,
                estimated_send_at: "2026-12-04T00:00:00Z".into(),
                paused_until: None,
                signup: Some(SignupRef {
                    key: format!("{region}-key-{n}"),
                    signed_up_ms: 1,
                    nonce: format!("{region}-nonce-{n}"),
                    region: None,
                }),
            }))
        })
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

// ---- Follow-up (issue G): the status token secret, the webhook key and what a harness can do after a send ----

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

    /// What `pick` takes from each SES call the sender was asked to make, in order.
    fn calls_where<T>(&self, pick: impl Fn(&SesCall) -> Option<T>) -> Vec<T> {
        self.sender
            .calls
            .borrow()
            .iter()
            .filter_map(|c| pick(&c.call))
            .collect()
    }

    /// How many identities each status check asked about.
    fn check_sizes(&self) -> Vec<usize> {
        self.calls_where(|call| match call {
            SesCall::Check { identities } => Some(identities.len()),
            _ => None,
        })
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

mod follow_up;
mod handover;
mod intake_and_drain;
mod lifecycle;
