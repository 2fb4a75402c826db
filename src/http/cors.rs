//! CORS for the browser-facing endpoints: whether the caller's `Origin` may call
//! (`ALLOWED_ORIGINS`, `REQUIRE_ORIGIN`, the Worker's own origin), and the `OPTIONS` preflight
//! answer, with credentials only for an origin listed by name.

use worker::{Cors, Method, Request, Response};

use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::ConfigError;
use signup_verify_web::browser::{check_origin, credentials_allowed};
use signup_verify_web::config::{BrowserConfig, Config};

use super::{error_response, header, own_origin, with_cors};

/// A CORS preflight for one `method` and one request header, for allowed origins only; with
/// `Access-Control-Allow-Credentials` for an origin listed by name.
pub(super) fn cors_preflight(
    req: &Request,
    config: Result<Config, ConfigError>,
    method: Method,
    request_header: &str,
) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    match allowed_origin(req, &config.browser) {
        Err(error) => error_response(error),
        Ok(origin) => {
            let response = Response::builder().with_status(204).empty();
            let _ = response
                .headers()
                .set("allow", &format!("{method}, OPTIONS"));
            match origin {
                None => response,
                Some(origin) => {
                    let credentials = credentials_allowed(
                        &config.browser.origin_policy,
                        Some(&origin),
                        &own_origin(req),
                    );
                    with_cors(
                        response,
                        &Cors::new()
                            .with_origins([origin])
                            .with_credentials(credentials)
                            .with_methods([method])
                            .with_allowed_headers([request_header])
                            .with_max_age(86_400),
                    )
                }
            }
        }
    }
}

/// The caller's origin if it may call (to echo in CORS headers), `None` without an `Origin`.
pub(super) fn allowed_origin(
    req: &Request,
    browser: &BrowserConfig,
) -> Result<Option<String>, ApiError> {
    check_origin(
        &browser.origin_policy,
        header(req, "origin").as_deref(),
        &own_origin(req),
    )
}
