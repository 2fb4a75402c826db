//! The Worker's HTTP shell: the route (`signup_verify_web::route`), the config resolved once per
//! request (a broken one answers `misconfigured` here, for every endpoint that needs it), then
//! one handler per endpoint (`signup`, `status`, `confirm`, `stats`, `demo`, and the CORS
//! preflights in `cors`), the per-IP limits every endpoint shares, and the one way an answer
//! becomes a response: JSON with the contract's headers, or an [`ApiError`]'s status, code and
//! `Retry-After`. Decisions live in the pure crates; handlers move values between `worker`
//! types and them.

mod address_check;
mod confirm;
mod cors;
mod demo;
mod signup;
mod stats;
mod status;

use serde::Serialize;
use signup_verify_domain::log_line;
use worker::{Cors, Env, Headers, Request, Response};

use crate::runtime::request_origin;
use crate::runtime::request_path;
use crate::runtime::worker_config;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_web::browser::network_key;
use signup_verify_web::browser::rate_limit_key;
use signup_verify_web::browser::turnstile_warning_due;
use signup_verify_web::browser::CorsGrant;
use signup_verify_web::config::BrowserConfig;
use signup_verify_web::config::Config;
use signup_verify_web::route::route;
use signup_verify_web::route::Endpoint;
use signup_verify_web::route::Refusal;
use signup_verify_web::route::Route;

/// The Workers Rate Limiting bindings in `wrangler.toml`: signups per IP (IPv6 by /64) and per
/// network (IPv6 by /48), and status and confirmation lookups per IP.
pub const IP_RATE_LIMITER: &str = "IP_RATE_LIMITER";
pub const NETWORK_RATE_LIMITER: &str = "NETWORK_RATE_LIMITER";
pub const LOOKUP_RATE_LIMITER: &str = "LOOKUP_RATE_LIMITER";
/// The limiters' period, for `Retry-After`.
const RATE_LIMIT_PERIOD_SECS: u64 = 60;

thread_local! {
    /// Whether this isolate already warned that Turnstile is off on a public origin.
    static WARNED_TURNSTILE_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub async fn handle(mut req: Request, env: Env) -> Response {
    let config = worker_config(&env);
    if let Ok(config) = &config {
        warn_if_turnstile_off(config, &own_origin(&req));
    }
    let endpoint = match route(&request_path(&req), req.method().as_ref()) {
        Ok(Route::Endpoint(endpoint)) => endpoint,
        Ok(Route::Health) => return json_bytes_response(200, br#"{"ok":true}"#.to_vec()),
        Err(refusal) => return refused(refusal),
    };
    let Ok(config) = &config else {
        return error_response(ApiError::Misconfigured);
    };
    match endpoint {
        Endpoint::Signup => signup::post(&mut req, &env, config).await,
        Endpoint::Status => status::get(&req, &env, config).await,
        Endpoint::ConfirmPage => confirm::get(config),
        Endpoint::Confirm => confirm::post(&mut req, &env, config).await,
        Endpoint::Stats => stats::get(&req, &env, config).await,
        Endpoint::DemoPage => demo::page(&req, config),
        Endpoint::DemoScript => demo::script(config),
        Endpoint::Preflight(preflight) => cors::preflight(&req, config, preflight),
    }
}

/// A request that reaches no endpoint: `not_found`, or `method_not_allowed` with `Allow`.
fn refused(refusal: Refusal) -> Response {
    let response = error_response(refusal.error());
    if let Refusal::MethodNotAllowed { allow } = refusal {
        let _ = response.headers().set("allow", allow);
    }
    response
}

/// Once per isolate, a loud log line when a public deployment takes signups without Turnstile:
/// then only the per-IP and per-network limits stand between a botnet and the daily budget.
fn warn_if_turnstile_off(config: &Config, own_origin: &str) {
    if !turnstile_warning_due(config.browser.turnstile.is_some(), own_origin) {
        return;
    }
    if !WARNED_TURNSTILE_OFF.with(|warned| warned.replace(true)) {
        crate::log::error(
            log_line!({"event": "turnstile_off", "warning": "TURNSTILE_SECRET_KEY is not set on a public deployment: bots can spend DAILY_SEND_BUDGET from many networks; see docs/security.md"}),
        );
    }
}

/// One Workers Rate Limiting check of `key` against `binding`, unless `IP_RATE_LIMIT=off`. A
/// missing binding is `misconfigured`; a limiter that fails lets the request through (logged).
async fn limit(
    env: &Env,
    browser: &BrowserConfig,
    binding: &'static str,
    key: String,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    if !browser.ip_rate_limit {
        return Ok(());
    }
    let limiter = env.rate_limiter(binding).map_err(|e| {
        crate::log::error(log_line!({"event": "rate_limiter_missing", "binding": binding, "error": e.to_string(), "request_id": request_id}));
        ApiError::Misconfigured
    })?;
    match limiter.limit(key).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => {
            crate::log::info(
                || log_line!({"event": "rate_limited", "binding": binding, "request_id": request_id}),
            );
            Err(ApiError::RateLimited {
                retry_after_secs: RATE_LIMIT_PERIOD_SECS,
            })
        }
        Err(e) => {
            crate::log::error(
                log_line!({"event": "rate_limiter_failed", "binding": binding, "error": e.to_string(), "request_id": request_id}),
            );
            Ok(())
        }
    }
}

/// The per-IP limit of a signup, then the coarser per-network one.
async fn limit_signup(
    req: &Request,
    env: &Env,
    browser: &BrowserConfig,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    let ip = header(req, "cf-connecting-ip");
    limit(
        env,
        browser,
        IP_RATE_LIMITER,
        rate_limit_key(ip.as_deref()),
        request_id,
    )
    .await?;
    limit(
        env,
        browser,
        NETWORK_RATE_LIMITER,
        network_key(ip.as_deref()),
        request_id,
    )
    .await
}

/// The per-IP limit of a status or confirmation lookup (its own budget, not the signups').
async fn limit_lookup(
    req: &Request,
    env: &Env,
    browser: &BrowserConfig,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    let ip = header(req, "cf-connecting-ip");
    limit(
        env,
        browser,
        LOOKUP_RATE_LIMITER,
        rate_limit_key(ip.as_deref()),
        request_id,
    )
    .await
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// This Worker's own origin, as browsers send it in `Origin`.
fn own_origin(req: &Request) -> String {
    request_origin(req)
}

/// The CORS headers `grant` gives an answer (none to a caller without `Origin`), with
/// `Access-Control-Allow-Credentials` when it grants credentials.
fn answer_cors(response: Response, grant: CorsGrant) -> Response {
    match grant.origin {
        Some(origin) => with_cors(
            response,
            &Cors::new()
                .with_origins([origin])
                .with_credentials(grant.credentials)
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
    // Our own types always serialise; `{}` would only hide a bug, never a secret.
    json_bytes_response(
        status,
        serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

/// A JSON body already written, with the contract's headers.
fn json_bytes_response(status: u16, body: Vec<u8>) -> Response {
    let headers = Headers::new();
    // Header names and values here are constants; setting them cannot fail.
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    let _ = headers.set("x-content-type-options", "nosniff");
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

/// `303 See Other` to `location`, never cached.
fn see_other(location: &str) -> Response {
    let response = Response::builder().with_status(303).empty();
    let _ = response.headers().set("location", location);
    let _ = response.headers().set("cache-control", "no-store");
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
