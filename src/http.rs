//! The Worker's HTTP shell: routing, the bounded body read, the call to the gate, and turning
//! results and [`ApiError`]s into responses. Decisions live in the core modules.

use futures_util::StreamExt;
use serde_json::json;
use worker::{console_error, Env, Headers, Method, Request, RequestInit, Response};

use crate::email::EmailAddress;
use crate::error::ApiError;
use crate::gate::rpc::{SendReply, SendRequest, SEND_PATH};
use crate::runtime::load_config;
use crate::signup::{parse_content_type, parse_signup, MAX_BODY_BYTES};

/// The Durable Object binding in `wrangler.toml`.
const GATE_BINDING: &str = "SES_GATE";

pub async fn handle(mut req: Request, env: Env) -> Response {
    let method = req.method();
    match req.path().as_str() {
        "/signup" => match method {
            Method::Post => match signup(&mut req, &env).await {
                Ok(reply) => json_response(200, &reply),
                Err(error) => error_response(error),
            },
            _ => method_not_allowed("POST"),
        },
        "/healthz" => match method {
            Method::Get | Method::Head => json_response(200, &json!({"ok": true})),
            _ => method_not_allowed("GET, HEAD"),
        },
        _ => error_response(ApiError::NotFound),
    }
}

async fn signup(req: &mut Request, env: &Env) -> Result<serde_json::Value, ApiError> {
    let content_type = req.headers().get("content-type").ok().flatten();
    let format = parse_content_type(content_type.as_deref())?;
    let body = read_body_limited(req).await?;
    let email = parse_signup(format, &body)?;
    let config = load_config(env).map_err(|_| ApiError::Misconfigured)?;
    match ask_gate(env, &config.region, &email).await? {
        SendReply::Sent { message_id } => Ok(json!({"status": "sent", "messageId": message_id})),
        SendReply::Failed { error } => Err(error),
    }
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
    let internal = |what: &str, e: worker::Error| {
        console_error!(
            "{}",
            json!({"event": "gate_rpc_failed", "step": what, "error": e.to_string()})
        );
    };
    let stub = env
        .durable_object(GATE_BINDING)
        .and_then(|ns| ns.id_from_name(region)?.get_stub())
        .map_err(|e| {
            internal("binding", e);
            ApiError::Misconfigured
        })?;
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
    result.map_err(|e| {
        internal("fetch", e);
        ApiError::UpstreamError
    })
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
