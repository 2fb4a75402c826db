//! The Worker's HTTP shell: routing, CORS, the per-IP limit, the bounded body read, Turnstile,
//! the call to the gate, and turning results and [`ApiError`]s into JSON or form redirects.
//! Decisions live in the core modules.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::json;
use worker::{
    console_error, console_log, Cors, Env, Fetch, Headers, Method, Request, RequestInit, Response,
};

use crate::browser::{check_origin, prefers_html};
use crate::config::{Config, TurnstileConfig};
use crate::demo;
use crate::email::EmailAddress;
use crate::error::ApiError;
use crate::gate::rpc::{SendReply, SendRequest, GATE_ORIGIN, SEND_PATH, STATS_PATH};
use crate::runtime::{load_config, random_u32};
use crate::signup::{parse_content_type, parse_signup, BodyFormat, Submission, MAX_BODY_BYTES};
use crate::turnstile::{siteverify_body, verdict};

/// The Durable Object binding in `wrangler.toml`.
const GATE_BINDING: &str = "SES_GATE";
/// The rate limiting binding in `wrangler.toml` (5 per 60 s per key).
const IP_RATE_LIMITER_BINDING: &str = "IP_RATE_LIMITER";
/// The limiter's period, for `Retry-After`.
const IP_RATE_LIMIT_PERIOD_SECS: u64 = 60;
/// How long Turnstile's siteverify may take.
const TURNSTILE_TIMEOUT_MS: u64 = 5_000;

pub async fn handle(mut req: Request, env: Env) -> Response {
    let method = req.method();
    match req.path().as_str() {
        "/signup" => match method {
            Method::Post => signup_endpoint(&mut req, &env).await,
            Method::Options => preflight(&req, &env),
            _ => method_not_allowed("POST, OPTIONS"),
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
        "/" | "/demo.js" if method == Method::Get => demo(&req, &env),
        "/healthz" => match method {
            Method::Get | Method::Head => json_response(200, &json!({"ok": true})),
            _ => method_not_allowed("GET, HEAD"),
        },
        _ => error_response(ApiError::NotFound),
    }
}

/// The demo page and its script, when `DEMO_PAGE=true`; otherwise not found.
fn demo(req: &Request, env: &Env) -> Response {
    let Ok(config) = load_config(env) else {
        return error_response(ApiError::Misconfigured);
    };
    if !config.demo_page {
        return error_response(ApiError::NotFound);
    }
    let (content_type, body) = if req.path() == "/demo.js" {
        (
            "application/javascript; charset=utf-8",
            demo::SCRIPT.to_string(),
        )
    } else {
        let url = req.url().ok();
        let query = |name: &str| {
            url.as_ref().and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            })
        };
        let page = demo::render_page(
            &config.honeypot_field,
            config.turnstile_site_key.as_deref(),
            query("status").as_deref(),
            query("error").as_deref(),
        );
        ("text/html; charset=utf-8", page)
    };
    let response = Response::builder()
        .with_status(200)
        .fixed(body.into_bytes());
    let headers = response.headers();
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("cache-control", "no-store");
    let _ = headers.set("x-content-type-options", "nosniff");
    let _ = headers.set(
        "content-security-policy",
        "default-src 'none'; script-src 'self' https://challenges.cloudflare.com; \
         frame-src https://challenges.cloudflare.com; style-src 'unsafe-inline'; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    response
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The caller's origin if it may call (to echo in CORS headers), `None` without an `Origin`.
fn allowed_origin(req: &Request, config: &Config) -> Result<Option<String>, ApiError> {
    let own_origin = req
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    check_origin(
        &config.origin_policy,
        header(req, "origin").as_deref(),
        &own_origin,
    )
}

/// `POST /signup`: the signup, wrapped in the origin check, CORS headers, and for a plain HTML
/// form a `303 See Other` to the configured success or failure page.
async fn signup_endpoint(req: &mut Request, env: &Env) -> Response {
    let Ok(config) = load_config(env) else {
        return error_response(ApiError::Misconfigured);
    };
    // A refused origin gets no CORS headers at all, so the browser hides even the error.
    let origin = match allowed_origin(req, &config) {
        Ok(origin) => origin,
        Err(error) => return error_response(error),
    };
    let is_form =
        parse_content_type(header(req, "content-type").as_deref()) == Ok(BodyFormat::Form);
    let redirects = config
        .form_redirects
        .as_ref()
        .filter(|_| is_form && prefers_html(header(req, "accept").as_deref()));
    let result = signup(req, env, &config).await;
    let own_origin = req
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let location = redirects.and_then(|pages| match &result {
        Ok((_, body)) => pages.success(&own_origin, body["status"].as_str().unwrap_or("sent")),
        Err(error) => pages.failure(&own_origin, error),
    });
    let response = match (location, result) {
        (Some(location), _) => see_other(&location),
        (None, Ok((status, body))) => json_response(status, &body),
        (None, Err(error)) => error_response(error),
    };
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

/// `OPTIONS /signup`, the CORS preflight.
fn preflight(req: &Request, env: &Env) -> Response {
    let Ok(config) = load_config(env) else {
        return error_response(ApiError::Misconfigured);
    };
    match allowed_origin(req, &config) {
        Err(error) => error_response(error),
        Ok(origin) => {
            let response = Response::builder().with_status(204).empty();
            let _ = response.headers().set("allow", "POST, OPTIONS");
            match origin {
                None => response,
                Some(origin) => with_cors(
                    response,
                    &Cors::new()
                        .with_origins([origin])
                        .with_methods([Method::Post])
                        .with_allowed_headers(["content-type"])
                        .with_max_age(86_400),
                ),
            }
        }
    }
}

/// Adds CORS headers for the one echoed origin, and `Vary: Origin` for caches.
fn with_cors(response: Response, cors: &Cors) -> Response {
    let _ = response.headers().append("vary", "Origin");
    let mut response = response;
    let _ = cors.apply_headers(response.headers_mut());
    response
}

fn see_other(location: &str) -> Response {
    let response = Response::builder().with_status(303).empty();
    let _ = response.headers().set("location", location);
    let _ = response.headers().set("cache-control", "no-store");
    response
}

/// `200` with the MessageId, or `202` with the queue position; the body is the gate's reply.
async fn signup(
    req: &mut Request,
    env: &Env,
    config: &Config,
) -> Result<(u16, serde_json::Value), ApiError> {
    limit_ip(req, env, config).await?;
    let format = parse_content_type(header(req, "content-type").as_deref())?;
    let body = read_body_limited(req).await?;
    let (email, token) = match parse_signup(format, &body, &config.honeypot_field)? {
        Submission::Signup {
            email,
            turnstile_token,
        } => (email, turnstile_token),
        Submission::Honeypot => {
            console_log!(
                "{}",
                json!({"event": "honeypot", "field": config.honeypot_field})
            );
            return Ok((
                200,
                json!({"status": "sent", "messageId": decoy_message_id()}),
            ));
        }
    };
    if let Some(turnstile) = &config.turnstile {
        verify_turnstile(
            turnstile,
            token.as_deref(),
            header(req, "cf-connecting-ip").as_deref(),
        )
        .await?;
    }
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

/// The Workers Rate Limiting binding, keyed by `CF-Connecting-IP` (5 per 60 s).
async fn limit_ip(req: &Request, env: &Env, config: &Config) -> Result<(), ApiError> {
    if !config.ip_rate_limit {
        return Ok(());
    }
    let ip = header(req, "cf-connecting-ip").unwrap_or_else(|| "unknown".into());
    let limiter = env.rate_limiter(IP_RATE_LIMITER_BINDING).map_err(|e| {
        console_error!("{}", json!({"event": "rate_limiter_missing", "binding": IP_RATE_LIMITER_BINDING, "error": e.to_string()}));
        ApiError::Misconfigured
    })?;
    match limiter.limit(ip).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => Err(ApiError::RateLimited {
            retry_after_secs: IP_RATE_LIMIT_PERIOD_SECS,
        }),
        Err(e) => {
            // A broken limiter must not take signups down with it.
            console_error!(
                "{}",
                json!({"event": "rate_limiter_failed", "error": e.to_string()})
            );
            Ok(())
        }
    }
}

/// Turnstile's siteverify: anything but an explicit success is `captcha_failed`.
async fn verify_turnstile(
    turnstile: &TurnstileConfig,
    token: Option<&str>,
    remote_ip: Option<&str>,
) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Err(ApiError::CaptchaFailed);
    };
    let idempotency_key = random_uuid();
    let body = siteverify_body(&turnstile.secret_key, token, remote_ip, &idempotency_key);
    let exchange = async {
        let headers = Headers::new();
        headers.set("content-type", "application/x-www-form-urlencoded")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(turnstile.verify_url.as_str(), &init)?;
        Fetch::Request(request).send().await?.bytes().await
    };
    let timeout = worker::Delay::from(Duration::from_millis(TURNSTILE_TIMEOUT_MS));
    let reply = match select(Box::pin(exchange), timeout).await {
        Either::Left((Ok(reply), _)) => reply,
        Either::Left((Err(e), _)) => {
            console_error!(
                "{}",
                json!({"event": "turnstile_unreachable", "error": e.to_string()})
            );
            return Err(ApiError::CaptchaFailed);
        }
        Either::Right(_) => {
            console_error!("{}", json!({"event": "turnstile_timeout"}));
            return Err(ApiError::CaptchaFailed);
        }
    };
    verdict(&reply).map_err(|codes| {
        console_log!(
            "{}",
            json!({"event": "turnstile_rejected", "error_codes": codes})
        );
        ApiError::CaptchaFailed
    })
}

fn random_hex(words: usize) -> String {
    (0..words)
        .map(|_| format!("{:08x}", random_u32()))
        .collect()
}

fn random_uuid() -> String {
    let h = random_hex(4);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A MessageId-shaped value for a bot, so its answer looks like everyone else's.
fn decoy_message_id() -> String {
    format!("0100{}-{}-000000", &random_hex(2)[..12], random_uuid())
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
        .fetch_with_str(&format!("{GATE_ORIGIN}{STATS_PATH}"))
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
        let request = Request::new_with_init(&format!("{GATE_ORIGIN}{SEND_PATH}"), &init)?;
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
