//! The Worker's HTTP shell: routing by path and method, then one handler per endpoint
//! (`signup`, `stats`, `demo`), and the one way an answer becomes a response: JSON with the
//! contract's headers, or an [`ApiError`]'s status, code and `Retry-After`. The config is parsed
//! once per isolate and handed to the handler that needs it. Decisions live in the core modules.

mod confirm;
mod demo;
mod signup;
mod stats;
mod status;

use serde::Serialize;
use serde_json::json;
use worker::{Cors, Env, Headers, Method, Request, Response};

use crate::error::ApiError;
use crate::runtime::{request_origin, request_path, worker_config};

pub async fn handle(mut req: Request, env: Env) -> Response {
    let method = req.method();
    match request_path(&req).as_str() {
        "/signup" => match method {
            Method::Post => signup::post(&mut req, &env, worker_config(&env)).await,
            Method::Options => signup::preflight(&req, worker_config(&env)),
            _ => method_not_allowed("POST, OPTIONS"),
        },
        "/signup/status" => match method {
            Method::Get => status::get(&req, &env, worker_config(&env)).await,
            Method::Options => status::preflight(&req, worker_config(&env)),
            _ => method_not_allowed("GET, OPTIONS"),
        },
        "/confirm" => match method {
            Method::Get => confirm::get(worker_config(&env)),
            Method::Post => confirm::post(&mut req, &env, worker_config(&env)).await,
            _ => method_not_allowed("GET, POST"),
        },
        "/gate/stats" => match method {
            Method::Get => stats::get(&req, &env, worker_config(&env)).await,
            _ => method_not_allowed("GET"),
        },
        "/" | "/demo.js" if method == Method::Get => demo::get(&req, worker_config(&env)),
        "/healthz" => match method {
            Method::Get | Method::Head => json_response(200, &json!({"ok": true})),
            _ => method_not_allowed("GET, HEAD"),
        },
        _ => error_response(ApiError::NotFound),
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// This Worker's own origin, as browsers send it in `Origin`.
fn own_origin(req: &Request) -> String {
    request_origin(req)
}

/// The CORS headers of an answer to an allowed `origin` (none without an `Origin`).
fn answer_cors(response: Response, origin: Option<String>) -> Response {
    match origin {
        Some(origin) => with_cors(
            response,
            &Cors::new()
                .with_origins([origin])
                .with_exposed_headers(["Retry-After"]),
        ),
        None => response,
    }
}

/// Adds CORS headers for the one echoed origin, and `Vary: Origin` for caches.
fn with_cors(response: Response, cors: &Cors) -> Response {
    let _ = response.headers().append("vary", "Origin");
    let mut response = response;
    let _ = cors.apply_headers(response.headers_mut());
    response
}

fn json_response(status: u16, body: &impl Serialize) -> Response {
    let headers = Headers::new();
    // Header names and values here are constants; setting them cannot fail.
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    let _ = headers.set("x-content-type-options", "nosniff");
    // Our own types always serialise; `{}` would only hide a bug, never a secret.
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}

fn error_response(error: ApiError) -> Response {
    let response = json_response(error.status(), &error.body());
    if let Some(secs) = error.retry_after_secs() {
        let _ = response.headers().set("retry-after", &secs.to_string());
    }
    if matches!(
        error,
        ApiError::Unauthorized | ApiError::InvalidToken | ApiError::TokenExpired
    ) {
        let _ = response.headers().set("www-authenticate", "Bearer");
    }
    response
}

/// An HTML page under `content_security_policy`, never cached.
fn html_response(status: u16, body: String, content_security_policy: &str) -> Response {
    let response = Response::builder()
        .with_status(status)
        .fixed(body.into_bytes());
    let headers = response.headers();
    let _ = headers.set("content-type", "text/html; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    let _ = headers.set("x-content-type-options", "nosniff");
    let _ = headers.set("content-security-policy", content_security_policy);
    response
}

fn method_not_allowed(allow: &str) -> Response {
    let response = error_response(ApiError::MethodNotAllowed);
    let _ = response.headers().set("allow", allow);
    response
}
