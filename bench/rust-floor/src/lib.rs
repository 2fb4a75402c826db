//! The Rust floor of `make bench`: the aws4fetch + JavaScript Durable Object baseline
//! (bench/aws4fetch-gate) and signup-verify's two-object path (bench/two-object-floor), written in
//! Rust on the libraries signup-verify is built on (workers-rs, aws-sigv4, quick-xml, serde_json)
//! with none of its work: no storage, no limits, no queue, no retries, no logging.
//!
//! - `POST /signup`: the baseline in Rust. The Worker asks one object for a slot (reserved in
//!   memory), waits for it, signs `SendCustomVerificationEmail` and calls SES.
//! - `POST /signup-two`: signup-verify's hops in Rust. The Worker posts the address to a gate
//!   object, the gate reserves a slot and posts the call to a sender object, the sender waits for
//!   the slot, signs and calls SES.
//! - `POST /queue`: the floor of a durable queue. The Worker posts the address to the baseline's
//!   object, which reserves a slot and appends the address to a SQLite table (one `INSERT`), and
//!   answers `202` without waiting for the slot or calling SES: what intake costs before any of
//!   signup-verify's work (dedupe, limits, budget, tracking, fairness, positions).
//!
//! Every hop is a Durable Object `fetch` with a JSON body read as bytes and parsed by serde_json,
//! and it reads URLs and response bodies the way signup-verify does (the runtime's URL string, one
//! `arrayBuffer`), so that the floor has signup-verify's fast paths through the glue. Signing is the cheapest SigV4 there is: the canonical request written
//! out, aws-sigv4's signing key. The reply is read with quick-xml. Whatever the baseline in Rust
//! takes beyond the baseline in JavaScript is what the language and its glue cost on workerd;
//! its upload is what these libraries weigh before any product code.

use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    durable_object, event, js_sys, wasm_bindgen, Context, Delay, DurableObject, Env, Fetch,
    Headers, Method, Request, RequestInit, Response, Result, SqlStorage, State, Stub,
};

#[derive(Deserialize)]
struct SignupBody {
    email: String,
}

#[derive(Serialize, Deserialize)]
struct Call {
    email: String,
    slot_ms: f64,
}

#[derive(Serialize)]
struct Sent {
    status: &'static str,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
}

fn json_error(code: &str, status: u16) -> Result<Response> {
    Ok(Response::from_json(&serde_json::json!({ "error": code }))?.with_status(status))
}

fn sent_response(sent: &Sent) -> Result<Response> {
    let status = if sent.status == "sent" { 200 } else { 502 };
    Ok(Response::from_json(sent)?.with_status(status))
}

fn var(env: &Env, name: &str) -> Result<String> {
    Ok(env.var(name)?.to_string())
}

fn secret(env: &Env, name: &str) -> Result<String> {
    Ok(env.secret(name).or_else(|_| env.var(name))?.to_string())
}

/// The address of a `{"email": …}` body if it looks like one, or the error code to answer (as
/// the baseline's `readEmail`).
async fn read_email(req: &mut Request) -> std::result::Result<String, &'static str> {
    let body = req.bytes().await.map_err(|_| "invalid_json")?;
    let body: SignupBody = serde_json::from_slice(&body).map_err(|_| "invalid_json")?;
    let plausible = body.email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    }) && !body.email.contains(char::is_whitespace);
    if plausible {
        Ok(body.email)
    } else {
        Err("invalid_email")
    }
}

/// A fetched response's body in one `arrayBuffer` call (workers-rs's `bytes()` reads the stream
/// chunk by chunk), as signup-verify reads its replies.
async fn body_bytes(response: Response) -> Result<Vec<u8>> {
    let response = worker::web_sys::Response::from(response);
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// A request's path, from the runtime's URL string (workers-rs's `path()` parses it with `url`).
fn path_of(req: &Request) -> String {
    let url = req.inner().url();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path = &url[after_scheme..];
    let path = path.find('/').map_or("/", |i| &path[i..]);
    path.split(['?', '#']).next().unwrap_or("/").to_string()
}

/// Posts `body` as JSON to `path` on the object `stub`.
async fn post_json(stub: &Stub, path: &str, body: &impl Serialize) -> Result<Response> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(body)?.into()));
    stub.fetch_with_request(Request::new_with_init(
        &format!("http://object{path}"),
        &init,
    )?)
    .await
}

/// Sleeps until the slot `slot_ms` (Unix ms), if it is still ahead.
async fn wait_for(slot_ms: f64) {
    let wait = slot_ms - js_sys::Date::now();
    if wait > 0.0 {
        Delay::from(Duration::from_millis(wait as u64)).await;
    }
}

/// Signs `SendCustomVerificationEmail` for `email` and sends it to `SES_ENDPOINT`.
async fn send_verification(env: &Env, email: &str) -> Result<Sent> {
    let endpoint = var(env, "SES_ENDPOINT")?;
    let region = var(env, "AWS_REGION")?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "SendCustomVerificationEmail")
        .append_pair("Version", "2010-12-01")
        .append_pair("EmailAddress", email)
        .append_pair("TemplateName", &var(env, "SES_TEMPLATE_NAME")?)
        .finish();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";

    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    let (host, path) = match endpoint[after_scheme..].find('/') {
        Some(i) => endpoint[after_scheme..].split_at(i),
        None => (&endpoint[after_scheme..], "/"),
    };
    let now_ms = js_sys::Date::now();
    let iso: String = js_sys::Date::new(&now_ms.into()).to_iso_string().into();
    // 2026-12-02T13:10:00.000Z → 20261202T131000Z
    let amz_date: String = iso[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect::<String>()
        + "Z";
    let scope = format!("{}/{region}/ses/aws4_request", &amz_date[..8]);
    let canonical = format!(
        "POST\n{path}\n\ncontent-type:{content_type}\nhost:{host}\nx-amz-date:{amz_date}\n\n\
         content-type;host;x-amz-date\n{}",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = aws_sigv4::sign::v4::generate_signing_key(
        &secret(env, "AWS_SECRET_ACCESS_KEY")?,
        UNIX_EPOCH + Duration::from_millis(now_ms as u64),
        &region,
        "ses",
    );
    let signature = hex::encode(
        <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
            .map_err(|e| worker::Error::RustError(e.to_string()))?
            .chain_update(string_to_sign.as_bytes())
            .finalize()
            .into_bytes(),
    );
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set("x-amz-date", &amz_date)?;
    headers.set(
        "authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host;x-amz-date, \
             Signature={signature}",
            secret(env, "AWS_ACCESS_KEY_ID")?
        ),
    )?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let response = Fetch::Request(Request::new_with_init(&endpoint, &init)?)
        .send()
        .await?;
    let status = response.status_code();
    let reply = body_bytes(response).await?;
    if !(200..300).contains(&status) {
        return Ok(Sent {
            status: "upstream_error",
            message_id: None,
        });
    }
    Ok(Sent {
        status: "sent",
        message_id: message_id(&reply),
    })
}

/// The text of the reply's `MessageId` element.
fn message_id(reply: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(reply);
    let mut inside = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => inside = start.local_name().into_inner() == "MessageId",
            Event::Text(text) if inside => return Some(text.xml10_content().into_owned()),
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Slots one interval apart, reserved in memory.
struct Slots {
    next_ms: Cell<f64>,
    interval_ms: f64,
}

impl Slots {
    fn new(env: &Env) -> Slots {
        let interval_ms = var(env, "GATE_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000.0);
        Slots {
            next_ms: Cell::new(0.0),
            interval_ms,
        }
    }

    fn reserve(&self) -> f64 {
        let slot = js_sys::Date::now().max(self.next_ms.get());
        self.next_ms.set(slot + self.interval_ms);
        slot
    }
}

/// The baseline's object: it reserves slots (answers `{"slot_ms": …}`) and, on `/queue`, also
/// appends the address to its queue table.
#[durable_object]
pub struct SlotGate {
    slots: Slots,
    sql: SqlStorage,
}

const QUEUE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY, email TEXT NOT NULL, slot_ms REAL NOT NULL)";

impl DurableObject for SlotGate {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(QUEUE_TABLE, None) {
            worker::console_error!("queue table: {e}");
        }
        Self {
            slots: Slots::new(&env),
            sql,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let slot_ms = self.slots.reserve();
        if path_of(&req) == "/queue" {
            let Ok(body) = serde_json::from_slice::<SignupBody>(&req.bytes().await?) else {
                return json_error("invalid_json", 400);
            };
            self.sql.exec(
                "INSERT INTO queue (email, slot_ms) VALUES (?, ?)",
                vec![body.email.into(), slot_ms.into()],
            )?;
        }
        Response::from_json(&serde_json::json!({ "slot_ms": slot_ms }))
    }
}

/// signup-verify's gate, in the floor: reserves a slot and posts the call to the sender.
#[durable_object]
pub struct FloorGate {
    env: Env,
    slots: Slots,
}

impl DurableObject for FloorGate {
    fn new(_state: State, env: Env) -> Self {
        Self {
            slots: Slots::new(&env),
            env,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(body) = serde_json::from_slice::<SignupBody>(&req.bytes().await?) else {
            return json_error("invalid_json", 400);
        };
        let call = Call {
            email: body.email,
            slot_ms: self.slots.reserve(),
        };
        let sender = self
            .env
            .durable_object("FLOOR_SENDER")?
            .id_from_name("ses")?
            .get_stub()?;
        let reply = post_json(&sender, "/", &call).await?;
        let status = reply.status_code();
        let headers = reply.headers().clone();
        Ok(Response::from_bytes(body_bytes(reply).await?)?
            .with_status(status)
            .with_headers(headers))
    }
}

/// signup-verify's sender, in the floor: waits for the slot, signs and calls SES.
#[durable_object]
pub struct FloorSender {
    env: Env,
}

impl DurableObject for FloorSender {
    fn new(_state: State, env: Env) -> Self {
        Self { env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(call) = serde_json::from_slice::<Call>(&req.bytes().await?) else {
            return json_error("invalid_json", 400);
        };
        wait_for(call.slot_ms).await;
        sent_response(&send_verification(&self.env, &call.email).await?)
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = path_of(&req);
    if path == "/healthz" {
        return Response::from_json(&serde_json::json!({ "ok": true }));
    }
    if req.method() != Method::Post
        || !matches!(path.as_str(), "/signup" | "/signup-two" | "/queue")
    {
        return json_error("not_found", 404);
    }
    let email = match read_email(&mut req).await {
        Ok(email) => email,
        Err(code) => return json_error(code, 400),
    };
    if path == "/signup-two" {
        let gate = env
            .durable_object("FLOOR_GATE")?
            .id_from_name("ses")?
            .get_stub()?;
        return post_json(&gate, "/", &serde_json::json!({ "email": email })).await;
    }
    let gate = env
        .durable_object("SLOT_GATE")?
        .id_from_name("ses")?
        .get_stub()?;
    let reply = post_json(&gate, &path, &serde_json::json!({ "email": email })).await?;
    let slot: serde_json::Value = serde_json::from_slice(&body_bytes(reply).await?)?;
    let slot_ms = slot["slot_ms"].as_f64().unwrap_or(0.0);
    if path == "/queue" {
        let queued = serde_json::json!({ "status": "queued", "slotMs": slot_ms });
        return Ok(Response::from_json(&queued)?.with_status(202));
    }
    wait_for(slot_ms).await;
    sent_response(&send_verification(&env, &email).await?)
}
