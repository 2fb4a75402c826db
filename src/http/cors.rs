//! CORS for the browser-facing endpoints: the caller's `Origin` checked for one kind of call
//! (`signup_verify_web::browser::cors_grant`), and the `OPTIONS` preflight answer, with
//! credentials only for an origin listed by name.

use worker::{Cors, Method, Request, Response};

use signup_verify_domain::error::ApiError;
use signup_verify_web::browser::cors_grant;
use signup_verify_web::browser::CorsGrant;
use signup_verify_web::browser::OriginCheck;
use signup_verify_web::config::Config;
use signup_verify_web::route::Preflight;

use super::{error_response, header, own_origin, with_cors};

/// A CORS preflight for the method and request header `preflight` names, for allowed origins
/// only; with `Access-Control-Allow-Credentials` for an origin listed by name.
pub(super) fn preflight(req: &Request, config: &Config, preflight: Preflight) -> Response {
    let grant = match grant(req, config, OriginCheck::Signup) {
        Ok(grant) => grant,
        Err(error) => return error_response(error),
    };
    let response = Response::builder().with_status(204).empty();
    let _ = response
        .headers()
        .set("allow", &format!("{}, OPTIONS", preflight.method));
    match grant.origin {
        None => response,
        Some(origin) => with_cors(
            response,
            &Cors::new()
                .with_origins([origin])
                .with_credentials(grant.credentials)
                .with_methods([Method::from(preflight.method.to_string())])
                .with_allowed_headers([preflight.request_header])
                .with_max_age(86_400),
        ),
    }
}

/// The CORS grant of a `check` call from this request's `Origin`, or `origin_not_allowed`.
pub(super) fn grant(
    req: &Request,
    config: &Config,
    check: OriginCheck,
) -> Result<CorsGrant, ApiError> {
    cors_grant(
        check,
        &config.browser.origin_policy,
        header(req, "origin").as_deref(),
        &own_origin(req),
    )
}
