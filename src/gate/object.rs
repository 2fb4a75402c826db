//! `SesGate`, the Durable Object that owns the SES call: one instance per region
//! (`id_from_name(region)`), so every Worker isolate in the world shares one gate.
//!
//! Invariant: two SES calls leave this object at least `GATE_INTERVAL_MS` apart.
//! Why it holds: a Durable Object runs one event at a time, and each reservation and each
//! departure is a synchronous read-modify-write of [`GateState`] with no await inside, so
//! interleaved requests cannot take the same slot. The state is written to SQLite storage
//! (synchronously, covered by the output gate) at every change, so a restarted object keeps the
//! spacing.

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

use crate::email::EmailAddress;
use crate::error::{retry_after_secs, ApiError};
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

const CREATE_STATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS gate_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_free_ms INTEGER NOT NULL,
    last_settled_ms INTEGER,
    in_flight INTEGER NOT NULL
)";

#[durable_object]
pub struct SesGate {
    env: Env,
    sql: SqlStorage,
    gate: RefCell<GateState>,
}

impl DurableObject for SesGate {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let gate = load_gate_state(&sql).unwrap_or_else(|e| {
            console_error!(
                "{}",
                json!({"event": "gate_state_unreadable", "error": e.to_string()})
            );
            GateState::default()
        });
        Self {
            env,
            sql,
            gate: RefCell::new(gate),
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
        let interval = config.gate_interval_ms;
        let arrival = now_ms();
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
            let signed = match build_send_request(&config, &email, slot.max(now_ms())) {
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
                    return SendReply::Sent { message_id };
                }
                Attempt::Answered(outcome) => outcome,
            };
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

#[derive(Deserialize)]
struct GateStateRow {
    next_free_ms: f64,
    last_settled_ms: Option<f64>,
    in_flight: f64,
}

fn load_gate_state(sql: &SqlStorage) -> Result<GateState> {
    sql.exec(CREATE_STATE_TABLE, None)?;
    let rows: Vec<GateStateRow> = sql
        .exec(
            "SELECT next_free_ms, last_settled_ms, in_flight FROM gate_state WHERE id = 1",
            None,
        )?
        .to_array()?;
    Ok(rows
        .first()
        .map_or_else(GateState::default, |row| GateState {
            next_free_ms: row.next_free_ms as u64,
            last_settled_ms: row.last_settled_ms.map(|ms| ms as u64),
            in_flight: row.in_flight != 0.0,
        }))
}

fn save_gate_state(sql: &SqlStorage, gate: &GateState) -> Result<()> {
    let settled = gate
        .last_settled_ms
        .map_or(worker::SqlStorageValue::Null, |ms| (ms as f64).into());
    sql.exec(
        "INSERT INTO gate_state (id, next_free_ms, last_settled_ms, in_flight) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET next_free_ms = excluded.next_free_ms,
                                        last_settled_ms = excluded.last_settled_ms,
                                        in_flight = excluded.in_flight",
        vec![
            (gate.next_free_ms as f64).into(),
            settled,
            i32::from(gate.in_flight).into(),
        ],
    )?;
    Ok(())
}
