//! HTTP for ses-local: the Query API at `POST /` (SigV4-checked), and the test endpoints
//! `GET /_outbox` and `GET /_requests`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use time::OffsetDateTime;

use crate::service::{Answer, RequestRecord, Ses};
use crate::sigv4::{self, Credentials, Incoming};

pub struct App {
    pub ses: Mutex<Ses>,
    pub credentials: Credentials,
    pub region: String,
    pub max_skew: time::Duration,
    /// Added to this machine's clock, to simulate a caller whose clock is off.
    pub clock_offset: time::Duration,
}

impl App {
    fn ses(&self) -> MutexGuard<'_, Ses> {
        // A panic while holding the lock cannot leave the outbox half-written; keep serving.
        self.ses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(query_api))
        .route("/_outbox", get(outbox))
        .route("/_requests", get(requests))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(app)
}

async fn query_api(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = OffsetDateTime::now_utc() + app.clock_offset;
    let now_us = u64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or_default();
    let request_id = random_id();
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let incoming = Incoming {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &header_list,
        body: &body,
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let verdict = sigv4::verify(&incoming, &app.credentials, &app.region, now, app.max_skew);
    let mut ses = app.ses();
    let answer = match &verdict {
        Ok(()) => ses.handle(&params, now_us, &request_id, new_message_id),
        Err(failure) => Answer::error(403, "Sender", failure.code, &failure.message, &request_id),
    };
    ses.requests.push(RequestRecord {
        request_id: request_id.clone(),
        received_at_us: now_us,
        method: method.to_string(),
        path: uri.path().to_string(),
        action: param("Action"),
        email_address: param("EmailAddress"),
        signature: verdict.map_or_else(|f| f.code.to_string(), |()| "valid".to_string()),
        status: answer.status,
        code: answer.code.clone(),
        message_id: answer.message_id.clone(),
    });
    drop(ses);
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "text/xml".to_string()),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                request_id,
            ),
        ],
        answer.body,
    )
        .into_response()
}

/// Accepted sends, newest first.
async fn outbox(State(app): State<Arc<App>>) -> Response {
    let messages: Vec<_> = app.ses().outbox.iter().rev().cloned().collect();
    Json(serde_json::json!({ "messages": messages })).into_response()
}

/// Every Query API request in arrival order, with its signature verdict and answer.
async fn requests(State(app): State<Arc<App>>) -> Response {
    let requests = app.ses().requests.clone();
    Json(serde_json::json!({ "requests": requests })).into_response()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    hex::encode(buf)
}

/// A UUID-shaped request id.
fn random_id() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Shaped like SES's: `0100` + time-ish hex, a UUID, `-000000`.
fn new_message_id() -> String {
    format!("0100{}-{}-000000", random_hex(6), random_id())
}
