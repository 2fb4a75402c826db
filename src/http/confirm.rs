//! `/confirm`, the page a template's `SuccessRedirectionURL` may point at, and the call a
//! `fetch` integration makes from its own page. `GET` (what a link scanner does) only shows the
//! question and a button. `POST` (this Worker's own origin, or an origin listed in
//! `ALLOWED_ORIGINS` with credentials; the per-IP lookup limit; Turnstile when configured)
//! records a human confirmation for the signup this browser's cookie names, which counts only
//! once the link in the email was opened. A browser's form gets pages (or a `303` to
//! `VERIFIED_REDIRECT_URL` once confirmed); anything else gets JSON.

use serde_json::json;
use worker::{Env, Method, Request, Response};

use super::cors::{allowed_origin, cors_preflight};
use super::credentials::signup_named_by;
use super::demo::CONTENT_SECURITY_POLICY;
use super::signup::{read_body_limited, see_other, verify_turnstile};
use super::{
    answer_cors, error_response, header, html_response, json_response, limit_lookup, own_origin,
};
use crate::gate::clients::GateClient;
use crate::runtime::random_u32;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::settings::ConfigError;
use signup_verify_domain::status_token;
use signup_verify_domain::status_token::Purpose;
use signup_verify_gate::messages::SignupStatus;
use signup_verify_gate::messages::CONFIRM_PATH;
use signup_verify_web::browser::credentials_allowed;
use signup_verify_web::browser::is_loopback_http;
use signup_verify_web::browser::prefers_html;
use signup_verify_web::config::Config;
use signup_verify_web::confirm::credential_from_cookies;
use signup_verify_web::confirm::render;
use signup_verify_web::confirm::ConfirmPage;

/// Turnstile's form field, and its JSON name.
const TURNSTILE_FIELD: &str = "cf-turnstile-response";
const TURNSTILE_JSON_FIELD: &str = "turnstileToken";

pub fn get(config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    html_response(
        200,
        render(ConfirmPage::Ask {
            site_key: site_key(&config),
        }),
        CONTENT_SECURITY_POLICY,
    )
}

/// `OPTIONS /confirm`: a `fetch` with a JSON body needs a preflight.
pub fn preflight(req: &Request, config: Result<Config, ConfigError>) -> Response {
    cors_preflight(req, config, Method::Post, "content-type")
}

fn site_key(config: &Config) -> Option<&str> {
    config
        .browser
        .turnstile
        .as_ref()
        .and(config.browser.turnstile_site_key.as_deref())
}

pub async fn post(req: &mut Request, env: &Env, config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    let own = own_origin(req);
    let origin = header(req, "origin");
    // Another site may confirm only if listed by name (its page holds the partitioned cookie
    // its own signup set); a same-origin form is the Worker's own page.
    let credentials = credentials_allowed(&config.browser.origin_policy, origin.as_deref(), &own);
    let cors_origin = match allowed_origin(req, &config.browser) {
        Ok(echo) if origin.as_deref().is_none_or(|o| o == own) || credentials => echo,
        Ok(_) | Err(_) => return error_response(ApiError::OriginNotAllowed),
    };
    let html = prefers_html(header(req, "accept").as_deref());
    let answer = confirm(req, env, &config, &own).await;
    let response = match (answer, html) {
        (Ok(Confirmation::Confirmed(status)), false) => json_response(200, &status),
        (Ok(Confirmation::NoSignup | Confirmation::Replaced), false) => {
            error_response(ApiError::UnknownSignup)
        }
        (Err(error), false) => error_response(error),
        (Err(ApiError::NotVerified), true) => html_response(
            409,
            render(ConfirmPage::NotYet {
                site_key: site_key(&config),
            }),
            CONTENT_SECURITY_POLICY,
        ),
        (Err(error), true) => html_response(
            error.status(),
            render(ConfirmPage::Error {
                message: error.message(),
            }),
            CONTENT_SECURITY_POLICY,
        ),
        (Ok(Confirmation::Replaced), true) => {
            html_response(404, render(ConfirmPage::Replaced), CONTENT_SECURITY_POLICY)
        }
        (Ok(Confirmation::NoSignup), true) => {
            html_response(200, render(ConfirmPage::Thanks), CONTENT_SECURITY_POLICY)
        }
        // Only a recorded confirmation leads on to VERIFIED_REDIRECT_URL.
        (Ok(Confirmation::Confirmed(status)), true) => match config
            .browser
            .verified_redirect
            .as_ref()
            .and_then(|target| target.resolve(&own))
        {
            Some(target) => see_other(target.as_str()),
            None => html_response(
                200,
                render(ConfirmPage::Confirmed(&status)),
                CONTENT_SECURITY_POLICY,
            ),
        },
    };
    answer_cors(response, cors_origin, credentials)
}

/// What a confirmation came to.
enum Confirmation {
    /// Recorded (or recorded before): the signup's status.
    Confirmed(SignupStatus),
    /// This browser sent no signup cookie (another device, cookies cleared).
    NoSignup,
    /// Its cookie names no current signup: replaced by a newer one, forgotten, or not ours.
    Replaced,
}

/// The confirmation itself; `not_verified` before the link was opened.
async fn confirm(
    req: &mut Request,
    env: &Env,
    config: &Config,
    own: &str,
) -> Result<Confirmation, ApiError> {
    let request_id = RequestId::from_ray_or_random(header(req, "cf-ray").as_deref(), random_u32);
    limit_lookup(req, env, &config.browser, &request_id).await?;
    let secret = config
        .gate
        .tracking
        .status_token_secret
        .as_ref()
        .ok_or(ApiError::StatusOff)?;
    let body = read_body_limited(req).await?;
    if let Some(turnstile) = &config.browser.turnstile {
        let token = turnstile_token(&body);
        let ip = header(req, "cf-connecting-ip");
        verify_turnstile(turnstile, token.as_deref(), ip.as_deref(), &request_id).await?;
    }
    let cookie = header(req, "cookie");
    let Some(credential) = credential_from_cookies(cookie.as_deref(), is_loopback_http(own)) else {
        crate::log::info(|| json!({"event": "confirm_without_signup", "request_id": request_id}));
        return Ok(Confirmation::NoSignup);
    };
    let Ok(signup) = signup_named_by(secret, Purpose::Confirm, credential) else {
        return Ok(Confirmation::Replaced);
    };
    // A decoy's link is never opened, as a real signup's that nobody clicks.
    if status_token::is_decoy(secret.expose().as_bytes(), &signup) {
        return Err(ApiError::NotVerified);
    }
    match GateClient::for_region(env, &config.ses.region)?
        .signup(CONFIRM_PATH, &signup)
        .await
    {
        Ok(status) => Ok(Confirmation::Confirmed(status)),
        Err(ApiError::UnknownSignup) => Ok(Confirmation::Replaced),
        Err(error) => Err(error),
    }
}

/// Turnstile's token from a form body (`cf-turnstile-response`) or a JSON one
/// (`turnstileToken`).
fn turnstile_token(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        return fields
            .get(TURNSTILE_JSON_FIELD)
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    form_urlencoded::parse(body)
        .find(|(name, _)| name == TURNSTILE_FIELD)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turnstile_token_comes_from_a_form_or_a_json_body() {
        assert_eq!(
            turnstile_token(b"cf-turnstile-response=abc&x=1").as_deref(),
            Some("abc")
        );
        assert_eq!(
            turnstile_token(br#"{"turnstileToken":"abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(turnstile_token(br#"{"turnstileToken":1}"#), None);
        assert_eq!(turnstile_token(b""), None);
    }
}
