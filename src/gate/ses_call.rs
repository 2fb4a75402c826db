//! One SES call, made by `SesSender`: the request built and signed ahead of its departure, sent
//! with the Workers fetch API under a timeout (AbortController), the reply parsed and
//! classified, and one structured log line.

use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::json;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, AbortController, Fetch, Headers, Method, Request, RequestInit,
};

use crate::config::SesConfig;
use crate::email::EmailAddress;
use crate::gate::rpc::CallResult;
use crate::ses::outcome::{classify, Outcome, RetryReason};
use crate::ses::reply::{parse_send_reply, Reply, Unparseable};
use crate::ses::request::{build_send_request, SignedRequest};

/// SES replies are a few hundred bytes; anything far larger is not SES.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The SES request for `email`, signed and dated at its slot (or now, if that is later), as a
/// Workers request ready to send: built ahead of its departure so that nothing but the fetch
/// itself lies between the departure and the wire. `None` (logged) if it cannot be signed.
pub fn prepared_request(config: &SesConfig, email: &EmailAddress, slot_ms: u64) -> Option<Request> {
    let prepared = build_send_request(config, email, slot_ms.max(crate::runtime::now_ms()))
        .map_err(|e| e.to_string())
        .and_then(|signed| fetch_request(&signed).map_err(|e| e.to_string()));
    match prepared {
        Ok(request) => Some(request),
        Err(error) => {
            console_error!("{}", json!({"event": "ses_signing_failed", "error": error}));
            None
        }
    }
}

fn fetch_request(signed: &SignedRequest) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in &signed.headers {
        headers.set(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&signed.body)));
    Request::new_with_init(&signed.url, &init)
}

/// Sends one call, bounded by `timeout_ms` (connect, headers and body). `on_answer` runs the
/// moment the response headers arrive: SES has the call by then, whatever the body holds.
pub async fn call_ses(
    request: Request,
    timeout_ms: u64,
    attempt: u32,
    on_answer: impl FnOnce(),
) -> CallResult {
    let started_ms = crate::runtime::now_ms();
    let controller = AbortController::default();
    let signal = controller.signal();
    let exchange = async {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        on_answer();
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
            return CallResult::TimedOut;
        }
    };
    let (status, header_request_id, body) = match answer {
        Ok(answer) => answer,
        Err(e) => {
            console_error!(
                "{}",
                json!({"event": "ses_unreachable", "attempt": attempt, "error": e.to_string()})
            );
            return CallResult::Answered(Outcome::Retryable(RetryReason::ServerError));
        }
    };
    let reply = if body.len() > MAX_REPLY_BYTES {
        Err(Unparseable("reply too large"))
    } else {
        parse_send_reply(&body, header_request_id.as_deref())
    };
    let outcome = classify(status, &reply);
    let round_trip_ms = crate::runtime::now_ms().saturating_sub(started_ms);
    log_attempt(attempt, status, round_trip_ms, &reply, &outcome);
    CallResult::Answered(outcome)
}

/// One structured log line per SES call: the SES code, message and request id go here, never to
/// the browser.
fn log_attempt(
    attempt: u32,
    status: u16,
    round_trip_ms: u64,
    reply: &std::result::Result<Reply, Unparseable>,
    outcome: &Outcome,
) {
    let mut line = json!({
        "event": "ses_call",
        "attempt": attempt,
        "status": status,
        "round_trip_ms": round_trip_ms,
        "outcome": format!("{outcome:?}"),
    });
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
