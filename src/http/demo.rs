//! `GET /` and `GET /demo.js`: the demo signup page and its script when `DEMO_PAGE=true`
//! (otherwise a 404), with a strict Content-Security-Policy. The page itself is `signup_verify_web::demo`.

use worker::{Request, Response};

use super::{error_response, html_response};
use signup_verify_domain::error::ApiError;
use signup_verify_web::config::Config;
use signup_verify_web::demo;

pub(super) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self' https://challenges.cloudflare.com; \
     frame-src https://challenges.cloudflare.com; style-src 'unsafe-inline'; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`: the page, with the `status` or `error` a form redirect put in its query.
pub fn page(req: &Request, config: &Config) -> Response {
    if !config.demo_page {
        return error_response(ApiError::NotFound);
    }
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
        query("suggested_domain").as_deref(),
    );
    html_response(200, page, CONTENT_SECURITY_POLICY)
}

/// `GET /demo.js`: the page's script.
pub fn script(config: &Config) -> Response {
    if !config.demo_page {
        return error_response(ApiError::NotFound);
    }
    let response = html_response(200, demo::SCRIPT.to_string(), CONTENT_SECURITY_POLICY);
    let _ = response
        .headers()
        .set("content-type", "application/javascript; charset=utf-8");
    response
}
