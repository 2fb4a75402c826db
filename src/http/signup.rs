//! `POST /signup` and its `OPTIONS` preflight: the origin check and CORS headers, the per-IP
//! and per-network limits, the bounded body read, the honeypot, Turnstile, the call to the
//! gate, the signup's own credentials (status token in the body, confirmation credential in
//! the cookie), and for a plain HTML form a `303 See Other` to the configured success or
//! failure page.
//!
//! Invariants: the answer is built from typed values ([`Accepted`] or [`ApiError`]); nothing
//! here reads JSON back; credentials are minted only for the signup this request made (the
//! gate names it), and a honeypot decoy gets credentials of the same shape, told apart only by
//! the secret's holder.

use futures_util::StreamExt;
use serde_json::json;
use worker::{Env, Method, Request, Response};

use super::cors::allowed_origin;
use super::cors::cors_preflight;
use super::credentials::signup_named_by;
use super::{answer_cors, error_response, header, json_response, limit_signup, own_origin};
use crate::gate::clients::GateClient;
use crate::outbound;
use crate::outbound::OutboundError;
use crate::runtime::random_u32;
use crate::runtime::secure_random;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::settings::ConfigError;
use signup_verify_domain::settings::Secret;
use signup_verify_domain::status_token;
use signup_verify_domain::status_token::Purpose;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::messages::Accepted;
use signup_verify_web::browser::credentials_allowed;
use signup_verify_web::browser::is_loopback_http;
use signup_verify_web::browser::prefers_html;
use signup_verify_web::config::Config;
use signup_verify_web::config::TurnstileConfig;
use signup_verify_web::confirm::credential_from_cookies;
use signup_verify_web::confirm::signup_cookie;
use signup_verify_web::confirm::CookieSite;
use signup_verify_web::signup::parse_content_type;
use signup_verify_web::signup::parse_signup;
use signup_verify_web::signup::BodyFormat;
use signup_verify_web::signup::Submission;
use signup_verify_web::signup::MAX_BODY_BYTES;
use signup_verify_web::turnstile::siteverify_body;
use signup_verify_web::turnstile::verdict;

/// How long Turnstile's siteverify may take.
const TURNSTILE_TIMEOUT_MS: u64 = 5_000;

/// `POST /signup`.
pub async fn post(req: &mut Request, env: &Env, config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    let browser = &config.browser;
    // A refused origin gets no CORS headers at all, so the browser hides even the error.
    let origin = match allowed_origin(req, browser) {
        Ok(origin) => origin,
        Err(error) => return error_response(error),
    };
    let is_form =
        parse_content_type(header(req, "content-type").as_deref()) == Ok(BodyFormat::Form);
    let redirects = browser
        .form_redirects
        .as_ref()
        .filter(|_| is_form && prefers_html(header(req, "accept").as_deref()));
    let request_id = RequestId::from_ray_or_random(header(req, "cf-ray").as_deref(), random_u32);
    let result = signup(req, env, &config, &request_id).await;
    log_signup(&request_id, &result);
    let own_origin = own_origin(req);
    let location = redirects.and_then(|pages| match &result {
        Ok(accepted) => pages.success(&own_origin, accepted.status()),
        Err(error) => pages.failure(&own_origin, error),
    });
    let credentials = credentials_allowed(&browser.origin_policy, origin.as_deref(), &own_origin);
    let minted = match (&result, &config.gate.tracking.status_token_secret) {
        (Ok(accepted), Some(secret)) => accepted.signup().map(|made| mint(secret, made)),
        _ => None,
    };
    let response = match (location, &result) {
        (Some(location), _) => see_other(&location),
        (None, Ok(accepted)) => json_response(
            accepted.http_status(),
            &accepted.public_body(minted.as_ref().map(|m| m.status_token.as_str())),
        ),
        (None, Err(error)) => error_response(*error),
    };
    // Names this browser's signup for the confirmation (see `confirm`); never in the body.
    if let Some(minted) = minted {
        let site = CookieSite {
            loopback_http: is_loopback_http(&own_origin),
            cross_site: credentials,
        };
        let _ = response
            .headers()
            .append("set-cookie", &signup_cookie(&minted.confirm, site));
    }
    answer_cors(response, origin, credentials)
}

/// The two credentials of the signup this request made.
struct Minted {
    status_token: String,
    confirm: String,
}

fn mint(secret: &Secret, made: &SignupRef) -> Minted {
    let secret = secret.expose().as_bytes();
    Minted {
        status_token: status_token::issue(secret, Purpose::Status, made),
        confirm: status_token::issue(secret, Purpose::Confirm, made),
    }
}

/// `OPTIONS /signup`, the CORS preflight.
pub fn preflight(req: &Request, config: Result<Config, ConfigError>) -> Response {
    cors_preflight(req, config, Method::Post, "content-type")
}

pub(super) fn see_other(location: &str) -> Response {
    let response = Response::builder().with_status(303).empty();
    let _ = response.headers().set("location", location);
    let _ = response.headers().set("cache-control", "no-store");
    response
}

/// The signup itself: `Sent` with the MessageId, or `Queued` with the queue position.
async fn signup(
    req: &mut Request,
    env: &Env,
    config: &Config,
    request_id: &RequestId,
) -> Result<Accepted, ApiError> {
    let browser = &config.browser;
    limit_signup(req, env, browser, request_id).await?;
    let format = parse_content_type(header(req, "content-type").as_deref())?;
    let body = read_body_limited(req).await?;
    let (email, token, honeypot) = match parse_signup(format, &body, &browser.honeypot_field)? {
        Submission::Signup {
            email,
            turnstile_token,
        } => (email, turnstile_token, false),
        Submission::Honeypot {
            email,
            turnstile_token,
        } => (email, turnstile_token, true),
    };
    if let Some(turnstile) = &browser.turnstile {
        verify_turnstile(
            turnstile,
            token.as_deref(),
            header(req, "cf-connecting-ip").as_deref(),
            request_id,
        )
        .await?;
    }
    if honeypot {
        crate::log::info(
            || json!({"event": "honeypot", "field": browser.honeypot_field, "request_id": request_id}),
        );
        // The gate answers it as a signup (its limits, its key, credentials that `status` and
        // `confirm` answer for as for a signup whose link is never opened) and sends nothing.
        return GateClient::for_region(env, &config.ses.region)?
            .send(&email, request_id, None, true)
            .await;
    }
    // The signup this browser made before, if its cookie holds a genuine credential: a new
    // signup of its own mailbox is then no stranger's (see `contested`).
    let presented = config
        .gate
        .tracking
        .status_token_secret
        .as_ref()
        .zip(credential_from_cookies(
            header(req, "cookie").as_deref(),
            is_loopback_http(&own_origin(req)),
        ))
        .and_then(|(secret, credential)| {
            signup_named_by(secret, Purpose::Confirm, credential).ok()
        });
    GateClient::for_region(env, &config.ses.region)?
        .send(&email, request_id, presented, false)
        .await
}

/// The one line every signup leaves in the Worker's log: its request id and its answer.
fn log_signup(request_id: &RequestId, result: &Result<Accepted, ApiError>) {
    let (status, answer) = match result {
        Ok(accepted) => (accepted.http_status(), accepted.status()),
        Err(error) => (error.status(), error.code()),
    };
    crate::log::info(
        || json!({"event": "signup", "request_id": request_id, "status": status, "answer": answer}),
    );
}

/// Turnstile's siteverify: anything but an explicit success is `captcha_failed`.
pub(super) async fn verify_turnstile(
    turnstile: &TurnstileConfig,
    token: Option<&str>,
    remote_ip: Option<&str>,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Err(ApiError::CaptchaFailed);
    };
    let idempotency_key = random_uuid()?;
    let body = siteverify_body(
        turnstile.secret_key.expose(),
        token,
        remote_ip,
        &idempotency_key,
    );
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let reply = match outbound::post(
        turnstile.verify_url.as_str(),
        &headers,
        &body,
        TURNSTILE_TIMEOUT_MS,
    )
    .await
    {
        Ok(reply) => reply.body,
        Err(OutboundError::TimedOut { .. }) => {
            crate::log::error(json!({"event": "turnstile_timeout", "request_id": request_id}));
            return Err(ApiError::CaptchaFailed);
        }
        Err(e) => {
            crate::log::error(
                json!({"event": "turnstile_unreachable", "error": e.to_string(), "request_id": request_id}),
            );
            return Err(ApiError::CaptchaFailed);
        }
    };
    verdict(&reply, &turnstile.expected_hostnames).map_err(|codes| {
        crate::log::info(
            || json!({"event": "turnstile_rejected", "error_codes": codes, "request_id": request_id}),
        );
        ApiError::CaptchaFailed
    })
}

/// Bytes from the platform's CSPRNG; `unavailable` if it fails (never a clock fallback).
fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    secure_random(&mut bytes).map_err(|error| {
        crate::log::error(json!({"event": "random_source_failed", "error": error}));
        ApiError::Unavailable
    })?;
    Ok(bytes)
}

/// A random (version 4) UUID, for Turnstile's idempotency key.
fn random_uuid() -> Result<String, ApiError> {
    Ok(uuid::Builder::from_random_bytes(random_bytes()?)
        .into_uuid()
        .to_string())
}

/// Reads at most [`MAX_BODY_BYTES`]: a larger `Content-Length` is refused unread, and a chunked
/// body is cut off as soon as it passes the limit.
pub(super) async fn read_body_limited(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = req.headers().get("content-length").ok().flatten();
    if let Some(length) = declared {
        match length.trim().parse::<u64>() {
            Ok(n) if n > MAX_BODY_BYTES as u64 => return Err(ApiError::PayloadTooLarge),
            // The runtime holds a body to its declared length: read it whole, in one call.
            Ok(_) => {
                let body = req.bytes().await.map_err(|_| ApiError::InvalidBody)?;
                if body.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge);
                }
                return Ok(body);
            }
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
