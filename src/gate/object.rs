//! `SesGate`, the Durable Object that owns the SES call: one instance per region
//! (`id_from_name(region)`), so every Worker isolate in the world shares one gate.
//!
//! Invariants: two SES calls leave this object at least `GATE_INTERVAL_MS` apart, and an
//! address gets at most one signup per `EMAIL_COOLDOWN_SECONDS` and `EMAIL_DAILY_MAX` a day.
//! Why they hold: a Durable Object runs one event at a time, and each reservation, departure and
//! address admission is a synchronous read-modify-write with no await inside, so interleaved
//! requests cannot take the same slot or both pass a cooldown. State is written to SQLite
//! storage (synchronously, covered by the output gate) at every change, so a restarted object
//! keeps the spacing and the limits.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde::Deserialize;
use serde_json::json;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, durable_object, wasm_bindgen, AbortController, DurableObject, Env,
    Fetch, Headers, Method, Request, RequestInit, Response, Result, SqlStorage, State,
};

use crate::config::Config;
use crate::email::EmailAddress;
use crate::error::{retry_after_secs, ApiError};
use crate::gate::cooldown::{address_key, admit, AddressRecord};
use crate::gate::rpc::{SendReply, SendRequest, SEND_PATH};
use crate::gate::slots::{retry_jitter_ms, Departure, GateState, Reservation};
use crate::runtime::{load_config, now_ms, random_u32};
use crate::ses::outcome::{api_error_for, classify, Outcome, RetryReason};
use crate::ses::reply::{parse_send_reply, Reply, Unparseable};
use crate::ses::request::{build_send_request, SignedRequest};

/// The first attempt plus at most two retries.
const MAX_ATTEMPTS: u32 = 3;
/// How often a call waiting behind one in flight checks whether that one was answered.
const ANSWER_POLL_MS: u64 = 1;
/// SES replies are a few hundred bytes; anything far larger is not SES.
const MAX_REPLY_BYTES: usize = 64 * 1024;

const SCHEMA: [&str; 4] = [
    // The gate's whole state as JSON, one row.
    "CREATE TABLE IF NOT EXISTS gate (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)",
    // Per-address limits, keyed by HMAC of the address (never the address itself).
    "CREATE TABLE IF NOT EXISTS address_limits (key TEXT PRIMARY KEY, record TEXT NOT NULL, last_ms REAL NOT NULL)",
    // The HMAC key: random, made on first use, never leaves this object.
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "DROP TABLE IF EXISTS gate_state",
];

#[durable_object]
pub struct SesGate {
    env: Env,
    sql: SqlStorage,
    gate: RefCell<GateState>,
    address_secret: Vec<u8>,
}

impl DurableObject for SesGate {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let loaded = create_schema(&sql)
            .and_then(|()| Ok((load_gate_state(&sql)?, load_address_secret(&sql)?)));
        let (mut gate, address_secret) = loaded.unwrap_or_else(|e| {
            console_error!(
                "{}",
                json!({"event": "gate_state_unreadable", "error": e.to_string()})
            );
            (GateState::default(), random_secret())
        });
        // The interval is not known before a request brings the config; one second is SES's.
        gate.recover(now_ms(), 1000);
        Self {
            env,
            sql,
            gate: RefCell::new(gate),
            address_secret,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.method() != Method::Post || req.path() != SEND_PATH {
            return Response::error("not found", 404);
        }
        let reply = match req.json::<SendRequest>().await {
            Ok(request) => self.send(&request).await,
            Err(_) => SendReply::Failed {
                error: ApiError::InvalidBody,
            },
        };
        Response::from_json(&reply)
    }
}

/// How one SES call ended.
enum Attempt {
    Answered(Outcome),
    TimedOut,
}

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
        let admitted = match self.admit_address(&config, &email, arrival) {
            Ok(admitted) => admitted,
            Err(retry_after_secs) => {
                console_log!(
                    "{}",
                    json!({"event": "address_cooldown", "retry_after_secs": retry_after_secs})
                );
                return failed(ApiError::Cooldown { retry_after_secs });
            }
        };
        let reply = self.send_through_gate(&config, &email, arrival).await;
        if let (SendReply::Failed { .. }, Some((key, previous))) = (&reply, admitted) {
            // Nothing was sent: the signup must not count against the address.
            self.restore_address(&key, previous.as_ref());
        }
        reply
    }

    /// Checks and records the per-address limits, synchronously. On success returns the record
    /// key and what it held before (to restore if nothing gets sent); `None` when limits are off.
    #[allow(clippy::type_complexity)]
    fn admit_address(
        &self,
        config: &Config,
        email: &EmailAddress,
        now: u64,
    ) -> std::result::Result<Option<(String, Option<AddressRecord>)>, u64> {
        let limits = config.address_limits;
        if limits.is_off() {
            return Ok(None);
        }
        let key = address_key(&self.address_secret, email);
        let stored = self.load_address(&key, now.saturating_sub(limits.retention_ms()));
        let record = admit(stored.as_ref(), now, limits)?;
        self.store_address(&key, &record);
        Ok(Some((key, stored)))
    }

    async fn send_through_gate(
        &self,
        config: &Config,
        email: &EmailAddress,
        arrival: u64,
    ) -> SendReply {
        let failed = |error| SendReply::Failed { error };
        let interval = config.gate_interval_ms;
        let deadline = arrival + config.gate_max_wait_ms;
        let mut slot = match self.update(|g| g.reserve(arrival, interval, config.gate_max_wait_ms))
        {
            Reservation::Slot { at_ms } => at_ms,
            Reservation::Busy { retry_after_secs } => {
                console_log!(
                    "{}",
                    json!({"event": "gate_busy", "retry_after_secs": retry_after_secs})
                );
                return failed(ApiError::Busy { retry_after_secs });
            }
        };
        for attempt in 1..=MAX_ATTEMPTS {
            // Signed before the wait, dated at the slot: between the departure being recorded and
            // the request leaving there is then no CPU work (the Workers clock stands still
            // during CPU work, so that time would be invisible to the spacing check).
            let signed = match build_send_request(config, email, slot.max(now_ms())) {
                Ok(signed) => signed,
                Err(e) => {
                    console_error!(
                        "{}",
                        json!({"event": "ses_signing_failed", "error": e.to_string()})
                    );
                    return failed(ApiError::Misconfigured);
                }
            };
            self.wait_for_departure(slot, interval).await;
            let attempt_result = call_ses(&signed, config.ses_timeout_ms, attempt).await;
            self.update(|g| g.settle(now_ms(), interval));
            let outcome = match attempt_result {
                Attempt::TimedOut => return failed(ApiError::UpstreamTimeout),
                Attempt::Answered(Outcome::Sent { message_id }) => {
                    self.update(GateState::succeeded);
                    return SendReply::Sent { message_id };
                }
                Attempt::Answered(outcome) => outcome,
            };
            if outcome == Outcome::Retryable(RetryReason::Throttled) {
                let pause = self.update(|g| g.throttled(now_ms(), random_u32()));
                console_log!("{}", json!({"event": "gate_backoff", "pause_ms": pause}));
            }
            let retry_slot = match outcome {
                Outcome::Retryable(_) if attempt < MAX_ATTEMPTS => {
                    let jitter = retry_jitter_ms(random_u32(), interval);
                    self.update(|g| g.reserve_retry(now_ms(), interval, jitter, deadline))
                }
                _ => None,
            };
            match retry_slot {
                Some(next) => slot = next,
                None => {
                    let wait = self.gate.borrow().next_free_ms.saturating_sub(now_ms());
                    return failed(api_error_for(&outcome, retry_after_secs(wait)));
                }
            }
        }
        failed(ApiError::UpstreamError)
    }

    /// Sleeps until the gate lets a call holding `slot` leave, then records the departure.
    /// The last check and the record are one synchronous step.
    ///
    /// It always sleeps at least once, even for 0 ms: the Workers clock only moves at I/O, so a
    /// reading taken after CPU work (a cold start, say) would be stale.
    async fn wait_for_departure(&self, slot: u64, interval: u64) {
        let mut sleep_ms = 0;
        loop {
            worker::Delay::from(Duration::from_millis(sleep_ms)).await;
            let now = now_ms();
            sleep_ms = match self.gate.borrow().departure(now, slot, interval) {
                Departure::Go => 0,
                Departure::WaitMs(ms) => ms,
                Departure::WaitForAnswer => ANSWER_POLL_MS,
            };
            if sleep_ms == 0 {
                self.update(|g| g.depart(now, interval));
                return;
            }
        }
    }

    /// Applies a change to the gate state and persists it before anything else can run.
    fn update<T>(&self, change: impl FnOnce(&mut GateState) -> T) -> T {
        let mut gate = self.gate.borrow_mut();
        let result = change(&mut gate);
        if let Err(e) = save_gate_state(&self.sql, &gate) {
            console_error!(
                "{}",
                json!({"event": "gate_state_not_saved", "error": e.to_string()})
            );
        }
        result
    }
}

/// Sends one signed call, bounded by `timeout_ms` (connect, headers and body).
async fn call_ses(signed: &SignedRequest, timeout_ms: u64, attempt: u32) -> Attempt {
    let controller = AbortController::default();
    let signal = controller.signal();
    let exchange = async {
        let headers = Headers::new();
        for (name, value) in &signed.headers {
            headers.set(name, value)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(&signed.body)));
        let request = Request::new_with_init(&signed.url, &init)?;
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        let header_request_id = response.headers().get("x-amzn-RequestId").ok().flatten();
        let body = response.bytes().await?;
        Ok::<_, worker::Error>((response.status_code(), header_request_id, body))
    };
    let timeout = worker::Delay::from(Duration::from_millis(timeout_ms));
    let answer = match select(Box::pin(exchange), timeout).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => {
            controller.abort();
            console_error!(
                "{}",
                json!({"event": "ses_timeout", "attempt": attempt, "timeout_ms": timeout_ms})
            );
            return Attempt::TimedOut;
        }
    };
    let (status, header_request_id, body) = match answer {
        Ok(answer) => answer,
        Err(e) => {
            console_error!(
                "{}",
                json!({"event": "ses_unreachable", "attempt": attempt, "error": e.to_string()})
            );
            return Attempt::Answered(Outcome::Retryable(RetryReason::ServerError));
        }
    };
    let reply = if body.len() > MAX_REPLY_BYTES {
        Err(Unparseable("reply too large"))
    } else {
        parse_send_reply(&body, header_request_id.as_deref())
    };
    let outcome = classify(status, &reply);
    log_attempt(attempt, status, &reply, &outcome);
    Attempt::Answered(outcome)
}

/// One structured log line per SES call: the SES code, message and request id go here, never to
/// the browser.
fn log_attempt(
    attempt: u32,
    status: u16,
    reply: &std::result::Result<Reply, Unparseable>,
    outcome: &Outcome,
) {
    let mut line = json!({"event": "ses_call", "attempt": attempt, "status": status, "outcome": format!("{outcome:?}")});
    match reply {
        Ok(Reply::Sent {
            message_id,
            request_id,
        }) => {
            line["message_id"] = json!(message_id);
            line["request_id"] = json!(request_id);
        }
        Ok(Reply::Failed(error)) => {
            line["code"] = json!(error.code);
            line["type"] = json!(error.kind);
            line["message"] = json!(error.message);
            line["request_id"] = json!(error.request_id);
        }
        Err(unparseable) => line["unparseable"] = json!(unparseable.0),
    }
    if matches!(outcome, Outcome::Config { clock_skew: true }) {
        line["problem"] =
            json!("clock skew: SES says the signing time is off; check the system clock");
    }
    match outcome {
        Outcome::Sent { .. } => console_log!("{line}"),
        _ => console_error!("{line}"),
    }
}

fn create_schema(sql: &SqlStorage) -> Result<()> {
    for statement in SCHEMA {
        sql.exec(statement, None)?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct TextRow {
    value: String,
}

fn load_gate_state(sql: &SqlStorage) -> Result<GateState> {
    let rows: Vec<TextRow> = sql
        .exec("SELECT state AS value FROM gate WHERE id = 1", None)?
        .to_array()?;
    match rows.first() {
        None => Ok(GateState::default()),
        Some(row) => {
            serde_json::from_str(&row.value).map_err(|e| worker::Error::RustError(e.to_string()))
        }
    }
}

fn save_gate_state(sql: &SqlStorage, gate: &GateState) -> Result<()> {
    let state = serde_json::to_string(gate).map_err(|e| worker::Error::RustError(e.to_string()))?;
    sql.exec(
        "INSERT INTO gate (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
        vec![state.into()],
    )?;
    Ok(())
}

fn random_secret() -> Vec<u8> {
    (0..8).flat_map(|_| random_u32().to_le_bytes()).collect()
}

/// The HMAC key for address records, made on first use.
fn load_address_secret(sql: &SqlStorage) -> Result<Vec<u8>> {
    let rows: Vec<TextRow> = sql
        .exec("SELECT value FROM secrets WHERE name = 'address_key'", None)?
        .to_array()?;
    let decoded = rows.first().and_then(|row| {
        (0..row.value.len())
            .step_by(2)
            .map(|i| {
                row.value
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
    });
    if let Some(secret) = decoded.filter(|s| s.len() == 32) {
        return Ok(secret);
    }
    let secret = random_secret();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    sql.exec(
        "INSERT OR REPLACE INTO secrets (name, value) VALUES ('address_key', ?)",
        vec![hex.into()],
    )?;
    Ok(secret)
}

impl SesGate {
    /// The record for `key`, after deleting every record last touched before `expired_before`.
    fn load_address(&self, key: &str, expired_before: u64) -> Option<AddressRecord> {
        let read = || -> Result<Option<AddressRecord>> {
            self.sql.exec(
                "DELETE FROM address_limits WHERE last_ms < ?",
                vec![(expired_before as f64).into()],
            )?;
            let rows: Vec<TextRow> = self
                .sql
                .exec(
                    "SELECT record AS value FROM address_limits WHERE key = ?",
                    vec![key.into()],
                )?
                .to_array()?;
            Ok(rows
                .first()
                .and_then(|row| serde_json::from_str(&row.value).ok()))
        };
        read().unwrap_or_else(|e| {
            console_error!(
                "{}",
                json!({"event": "address_limits_unreadable", "error": e.to_string()})
            );
            None
        })
    }

    fn store_address(&self, key: &str, record: &AddressRecord) {
        let write = || -> Result<()> {
            let json = serde_json::to_string(record)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            self.sql.exec(
                "INSERT INTO address_limits (key, record, last_ms) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET record = excluded.record, last_ms = excluded.last_ms",
                vec![key.into(), json.into(), (record.last_ms as f64).into()],
            )?;
            Ok(())
        };
        if let Err(e) = write() {
            console_error!(
                "{}",
                json!({"event": "address_limits_not_saved", "error": e.to_string()})
            );
        }
    }

    fn restore_address(&self, key: &str, previous: Option<&AddressRecord>) {
        match previous {
            Some(record) => self.store_address(key, record),
            None => {
                if let Err(e) = self
                    .sql
                    .exec("DELETE FROM address_limits WHERE key = ?", vec![key.into()])
                {
                    console_error!(
                        "{}",
                        json!({"event": "address_limits_not_saved", "error": e.to_string()})
                    );
                }
            }
        }
    }
}
