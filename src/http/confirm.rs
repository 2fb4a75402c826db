//! `/confirm`, the page a template's `SuccessRedirectionURL` may point at. `GET` (what a link
//! scanner does) only shows the question and a button. The button's `POST` (same origin only;
//! Turnstile when configured) records a human confirmation for the signup this browser's cookie
//! names, which has the gate check that identity at once, then redirects to
//! `VERIFIED_REDIRECT_URL` or shows a plain page.

use serde_json::json;
use worker::{Env, Request, Response};

use super::demo::CONTENT_SECURITY_POLICY;
use super::signup::{read_body_limited, see_other, verify_turnstile};
use super::status::signup_named_by;
use super::{error_response, header, html_response, own_origin};
use crate::config::{Config, ConfigError};
use crate::confirm::{render, token_from_cookies, ConfirmPage};
use crate::error::ApiError;
use crate::gate::rpc::{GateClient, CONFIRM_PATH};
use crate::request_id::RequestId;
use crate::runtime::random_u32;

/// Turnstile's form field.
const TURNSTILE_FIELD: &str = "cf-turnstile-response";

pub fn get(config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    let site_key = config
        .browser
        .turnstile
        .as_ref()
        .and(config.browser.turnstile_site_key.as_deref());
    html_response(
        200,
        render(ConfirmPage::Ask { site_key }),
        CONTENT_SECURITY_POLICY,
    )
}

pub async fn post(req: &mut Request, env: &Env, config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    // Another site's form may not confirm for this browser (the cookie is also SameSite=Lax).
    let own = own_origin(req);
    let request_id = RequestId::from_ray_or_random(header(req, "cf-ray").as_deref(), random_u32);
    if header(req, "origin").is_some_and(|origin| origin != own) {
        return error_response(ApiError::OriginNotAllowed);
    }
    let body = match read_body_limited(req).await {
        Ok(body) => body,
        Err(error) => return error_response(error),
    };
    if let Some(turnstile) = &config.browser.turnstile {
        let token = form_urlencoded::parse(&body)
            .find(|(name, _)| name == TURNSTILE_FIELD)
            .map(|(_, value)| value.into_owned());
        let ip = header(req, "cf-connecting-ip");
        if let Err(error) =
            verify_turnstile(turnstile, token.as_deref(), ip.as_deref(), &request_id).await
        {
            return error_response(error);
        }
    }
    let cookie = header(req, "cookie");
    let signup = config
        .gate
        .tracking
        .status_token_secret
        .as_ref()
        .zip(token_from_cookies(cookie.as_deref()))
        .and_then(|(secret, token)| signup_named_by(secret, token).ok());
    let status = match signup {
        None => None,
        Some(signup) => {
            let client = match GateClient::for_region(env, &config.ses.region) {
                Ok(client) => client,
                Err(error) => return error_response(error),
            };
            match client.signup(CONFIRM_PATH, &signup).await {
                Ok(status) => Some(status),
                Err(ApiError::UnknownSignup) => None,
                Err(error) => return error_response(error),
            }
        }
    };
    if status.is_none() {
        crate::log::info(|| json!({"event": "confirm_without_signup", "request_id": request_id}));
    }
    if let Some(target) = config
        .browser
        .verified_redirect
        .as_ref()
        .and_then(|target| target.resolve(&own))
    {
        return see_other(target.as_str());
    }
    let page = match &status {
        Some(status) => ConfirmPage::Confirmed(status),
        None => ConfirmPage::Thanks,
    };
    html_response(200, render(page), CONTENT_SECURITY_POLICY)
}
