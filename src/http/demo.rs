//! `GET /` and `GET /demo.js`: the demo signup page and its script when `DEMO_PAGE=true`
//! (otherwise a 404), with a strict Content-Security-Policy. The page itself is `crate::demo`.

use worker::{Request, Response};

use super::error_response;
use crate::config::{Config, ConfigError};
use crate::demo;
use crate::error::ApiError;

const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self' https://challenges.cloudflare.com; \
     frame-src https://challenges.cloudflare.com; style-src 'unsafe-inline'; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn get(req: &Request, config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
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
            &config.browser.honeypot_field,
            config.browser.turnstile_site_key.as_deref(),
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
    let _ = headers.set("content-security-policy", CONTENT_SECURITY_POLICY);
    response
}
