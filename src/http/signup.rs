//! `POST /signup`: the origin check and CORS headers, the per-IP and per-network limits, the
//! bounded body read, the honeypot, Turnstile, the address checks (`address_check`), the call to
//! the gate, the signup's own
//! credentials (status token in the body, confirmation credential in the cookie), and for a
//! plain HTML form a `303 See Other` to the configured success or failure page; each decided in
//! `signup_verify_web::signup` and `signup_verify_web::browser`, and moved between `worker`
//! types here. Also the bounded body read and Turnstile's siteverify call, which `/confirm`
//! shares.
//!
//! Invariants: the answer is built from typed values ([`Accepted`] or [`ApiError`]); nothing
//! here reads JSON back.

use futures_util::StreamExt;
use signup_verify_domain::log_line;
use worker::{Env, Request, Response};

use super::address_check;
use super::cors::grant;
use super::{
    answer_cors, error_response, header, json_response, limit_signup, own_origin, see_other,
};
use crate::gate::clients::send_signup;
use crate::outbound;
use crate::outbound::OutboundError;
use crate::runtime::now_ms;
use crate::runtime::random_u32;
use crate::runtime::secure_random;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_gate::messages::Accepted;
use signup_verify_web::browser::is_loopback_http;
use signup_verify_web::browser::OriginCheck;
use signup_verify_web::config::Config;
use signup_verify_web::config::TurnstileConfig;
use signup_verify_web::confirm::cookie_signup;
use signup_verify_web::signup::body_read;
use signup_verify_web::signup::credentials_for;
use signup_verify_web::signup::parse_content_type;
use signup_verify_web::signup::parse_signup;
use signup_verify_web::signup::signup_answer;
use signup_verify_web::signup::whole_body;
use signup_verify_web::signup::BodyRead;
use signup_verify_web::signup::LimitedBody;
use signup_verify_web::signup::SignupAnswer;
use signup_verify_web::turnstile::siteverify_body;
use signup_verify_web::turnstile::verdict;

/// How long Turnstile's siteverify may take.
const TURNSTILE_TIMEOUT_MS: u64 = 5_000;

/// `POST /signup`.
pub async fn post(req: &mut Request, env: &Env, config: &Config) -> Response {
    let browser = &config.browser;
    let grant = match grant(req, config, OriginCheck::Signup) {
        Ok(grant) => grant,
        Err(error) => return error_response(error),
    };
    let request_id = RequestId::from_ray_or_random(header(req, "cf-ray").as_deref(), random_u32);
    let result = signup(req, env, config, &request_id).await;
    log_signup(&request_id, &result);
    let own_origin = own_origin(req);
    let credentials = credentials_for(
        &result,
        config.gate.tracking.status_token_secret.as_ref(),
        &own_origin,
        grant.credentials,
    );
    let answer = signup_answer(
        &result,
        browser.form_redirects.as_ref(),
        header(req, "content-type").as_deref(),
        header(req, "accept").as_deref(),
        &own_origin,
    );
    let response = match answer {
        SignupAnswer::SeeOther(location) => see_other(&location),
        SignupAnswer::Accepted(accepted) => json_response(
            accepted.http_status(),
            &accepted.public_body(credentials.as_ref().map(|c| c.status_token.as_str())),
        ),
        SignupAnswer::Refused(error) => error_response(error),
    };
    // Names this browser's signup for the confirmation (see `confirm`); never in the body.
    if let Some(credentials) = credentials {
        let _ = response
            .headers()
            .append("set-cookie", &credentials.set_cookie);
    }
    answer_cors(response, grant)
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
    let submission = parse_signup(format, &body, &browser.honeypot_field)?;
    if let Some(turnstile) = &browser.turnstile {
        verify_turnstile(
            turnstile,
            submission.turnstile_token(),
            header(req, "cf-connecting-ip").as_deref(),
            request_id,
        )
        .await?;
    }
    // The signup this browser made before, if its cookie holds a genuine credential: a new
    // signup of its own mailbox is then no stranger's (see `contested`).
    let presented = config
        .gate
        .tracking
        .status_token_secret
        .as_ref()
        .and_then(|secret| {
            cookie_signup(
                secret,
                header(req, "cookie").as_deref(),
                is_loopback_http(&own_origin(req)),
                now_ms(),
            )
        });
    let ask = submission.gate_ask(presented);
    // A honeypot hit is checked like any signup: its answer must not tell it apart.
    let tracking = &config.gate.tracking;
    let log_key = tracking
        .status_token_secret
        .as_ref()
        .map(|s| s.expose().as_bytes());
    address_check::check(&browser.address_check, &ask.email, log_key, request_id).await?;
    if ask.decoy {
        crate::log::info(
            || log_line!({"event": "honeypot", "field": browser.honeypot_field, "request_id": request_id}),
        );
    }
    send_signup(
        env,
        &config.ses,
        &ask.email,
        request_id,
        ask.presented,
        ask.decoy,
        now_ms(),
    )
    .await
}

/// The one line every signup leaves in the Worker's log: its request id and its answer.
fn log_signup(request_id: &RequestId, result: &Result<Accepted, ApiError>) {
    let (status, answer) = match result {
        Ok(accepted) => (accepted.http_status(), accepted.status()),
        Err(error) => (error.status(), error.code()),
    };
    crate::log::info(
        || log_line!({"event": "signup", "request_id": request_id, "status": status, "answer": answer}),
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
    let headers = [(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let url = turnstile.verify_url.as_str();
    let reply = match outbound::post(url, &headers, &body, TURNSTILE_TIMEOUT_MS).await {
        Ok(reply) => reply.body,
        Err(OutboundError::TimedOut { .. }) => {
            crate::log::error(log_line!({"event": "turnstile_timeout", "request_id": request_id}));
            return Err(ApiError::CaptchaFailed);
        }
        Err(e) => {
            crate::log::error(
                log_line!({"event": "turnstile_unreachable", "error": e.to_string(), "request_id": request_id}),
            );
            return Err(ApiError::CaptchaFailed);
        }
    };
    verdict(&reply, &turnstile.expected_hostnames).map_err(|codes| {
        crate::log::info(
            || log_line!({"event": "turnstile_rejected", "error_codes": codes, "request_id": request_id}),
        );
        ApiError::CaptchaFailed
    })
}

/// Bytes from the platform's CSPRNG; `unavailable` if it fails (never a clock fallback).
fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    secure_random(&mut bytes).map_err(|error| {
        crate::log::error(log_line!({"event": "random_source_failed", "error": error}));
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

/// Reads the body under its limit (`signup_verify_web::signup::body_read`): a larger
/// `Content-Length` is refused unread, and a chunked body is cut off as soon as it passes the
/// limit.
pub(super) async fn read_body_limited(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    match body_read(header(req, "content-length").as_deref())? {
        // The runtime holds a body to its declared length: read it whole, in one call.
        BodyRead::Whole => whole_body(req.bytes().await.map_err(|_| ApiError::InvalidBody)?),
        BodyRead::Streamed => {
            let Ok(mut stream) = req.stream() else {
                return Ok(Vec::new()); // no body at all
            };
            let mut body = LimitedBody::default();
            while let Some(chunk) = stream.next().await {
                body.push(&chunk.map_err(|_| ApiError::InvalidBody)?)?;
            }
            Ok(body.into_bytes())
        }
    }
}
