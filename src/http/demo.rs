//! `GET /` and `GET /demo.js`: the demo signup page and its script when `DEMO_PAGE=true`
//! (otherwise a 404), with a strict Content-Security-Policy. The page itself is `signup_verify_web::demo`.

use worker::{Request, Response};

use super::{error_response, html_response};
use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::ConfigError;
use signup_verify_web::config::Config;
use signup_verify_web::demo;

pub(super) const CONTENT_SECURITY_POLICY: &str =
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
    if req.path() == "/demo.js" {
        let response = html_response(200, demo::SCRIPT.to_string(), CONTENT_SECURITY_POLICY);
        let _ = response
            .headers()
            .set("content-type", "application/javascript; charset=utf-8");
        return response;
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
    );
    html_response(200, page, CONTENT_SECURITY_POLICY)
}
