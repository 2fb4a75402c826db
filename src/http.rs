//! The Worker's HTTP shell: routing, the bounded body read, the call to the gate, and turning
//! results and [`ApiError`]s into responses. Decisions live in the core modules.

use futures_util::StreamExt;
use serde_json::json;
use worker::{console_error, Env, Headers, Method, Request, RequestInit, Response};

use crate::email::EmailAddress;
use crate::error::ApiError;
use crate::gate::rpc::{SendReply, SendRequest, SEND_PATH, STATS_PATH};
use crate::runtime::load_config;
use crate::signup::{parse_content_type, parse_signup, MAX_BODY_BYTES};

/// The Durable Object binding in `wrangler.toml`.
const GATE_BINDING: &str = "SES_GATE";

pub async fn handle(mut req: Request, env: Env) -> Response {
    let method = req.method();
    match req.path().as_str() {
        "/signup" => match method {
            Method::Post => match signup(&mut req, &env).await {
                Ok((status, reply)) => json_response(status, &reply),
                Err(error) => error_response(error),
            },
            _ => method_not_allowed("POST"),
        },
        "/gate/stats" => match method {
            Method::Get => match gate_stats(&req, &env).await {
                Ok(stats) => json_response(200, &stats),
                Err(ApiError::Unauthorized) => {
                    let response = error_response(ApiError::Unauthorized);
                    let _ = response.headers().set("www-authenticate", "Bearer");
                    response
                }
                Err(error) => error_response(error),
            },
            _ => method_not_allowed("GET"),
        },
        "/healthz" => match method {
            Method::Get | Method::Head => json_response(200, &json!({"ok": true})),
            _ => method_not_allowed("GET, HEAD"),
        },
        _ => error_response(ApiError::NotFound),
    }
}

/// `200` with the MessageId, or `202` with the queue position; the body is the gate's reply.
async fn signup(req: &mut Request, env: &Env) -> Result<(u16, serde_json::Value), ApiError> {
    let content_type = req.headers().get("content-type").ok().flatten();
    let format = parse_content_type(content_type.as_deref())?;
    let body = read_body_limited(req).await?;
    let email = parse_signup(format, &body)?;
    let config = load_config(env).map_err(|_| ApiError::Misconfigured)?;
    let reply = ask_gate(env, &config.region, &email).await?;
    let status = match reply {
        SendReply::Sent { .. } => 200,
        SendReply::Queued { .. } => 202,
        SendReply::Failed { error } => return Err(error),
    };
    serde_json::to_value(&reply)
        .map(|body| (status, body))
        .map_err(|_| ApiError::UpstreamError)
}

/// `GET /gate/stats`: 404 unless `ADMIN_TOKEN` is set, then only with `Authorization: Bearer`.
async fn gate_stats(req: &Request, env: &Env) -> Result<serde_json::Value, ApiError> {
    let config = load_config(env).map_err(|_| ApiError::Misconfigured)?;
    let Some(token) = config.admin_token.as_deref() else {
        return Err(ApiError::NotFound);
    };
    let header = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .unwrap_or_default();
    let presented = header.strip_prefix("Bearer ").unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    let mut response = gate_stub(env, &config.region)?
        .fetch_with_str(&format!("https://ses-gate{STATS_PATH}"))
        .await
        .map_err(|e| internal("stats", e))?;
    response.json().await.map_err(|e| internal("stats", e))
}

/// Compares secrets without an early exit that would leak how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn internal(step: &str, e: worker::Error) -> ApiError {
    console_error!(
        "{}",
        json!({"event": "gate_rpc_failed", "step": step, "error": e.to_string()})
    );
    ApiError::UpstreamError
}

fn gate_stub(env: &Env, region: &str) -> Result<worker::Stub, ApiError> {
    env.durable_object(GATE_BINDING)
        .and_then(|ns| ns.id_from_name(region)?.get_stub())
        .map_err(|e| {
            console_error!(
                "{}",
                json!({"event": "gate_rpc_failed", "step": "binding", "error": e.to_string()})
            );
            ApiError::Misconfigured
        })
}

/// Reads at most [`MAX_BODY_BYTES`]: a larger `Content-Length` is refused unread, and a chunked
/// body is cut off as soon as it passes the limit.
async fn read_body_limited(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = req.headers().get("content-length").ok().flatten();
    if let Some(length) = declared {
        match length.trim().parse::<u64>() {
            Ok(n) if n > MAX_BODY_BYTES as u64 => return Err(ApiError::PayloadTooLarge),
            Ok(_) => {}
            Err(_) => return Err(ApiError::InvalidBody),
        }
    }
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new()); // no body at all
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::InvalidBody)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The typed RPC to the region's `SesGate`.
async fn ask_gate(env: &Env, region: &str, email: &EmailAddress) -> Result<SendReply, ApiError> {
    let stub = gate_stub(env, region)?;
    let body = serde_json::to_string(&SendRequest {
        email: email.to_string(),
    })
    .map_err(|_| ApiError::UpstreamError)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let result = async {
        let request = Request::new_with_init(&format!("https://ses-gate{SEND_PATH}"), &init)?;
        stub.fetch_with_request(request)
            .await?
            .json::<SendReply>()
            .await
    }
    .await;
    result.map_err(|e| internal("fetch", e))
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let headers = Headers::new();
    // Header names and values here are constants; setting them cannot fail.
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    let _ = headers.set("x-content-type-options", "nosniff");
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body.to_string().into_bytes())
}

fn error_response(error: ApiError) -> Response {
    let response = json_response(error.status(), &error.body());
    if let Some(secs) = error.retry_after_secs() {
        let _ = response.headers().set("retry-after", &secs.to_string());
    }
    response
}

fn method_not_allowed(allow: &str) -> Response {
    let response = error_response(ApiError::MethodNotAllowed);
    let _ = response.headers().set("allow", allow);
    response
}
