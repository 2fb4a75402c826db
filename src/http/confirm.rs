//! `/confirm`, the page a template's `SuccessRedirectionURL` may point at, and the call a
//! `fetch` integration makes from its own page. `GET` (what a link scanner does) only shows the
//! question and a button. `POST` (this Worker's own origin, or an origin listed in
//! `ALLOWED_ORIGINS` with credentials; the per-IP lookup limit; Turnstile when configured)
//! records a human confirmation for the signup this browser's cookie names, which counts only
//! once the link in the email was opened. Whom it is for and how it is answered (pages, JSON,
//! or a `303` to `VERIFIED_REDIRECT_URL`) are `signup_verify_web::confirm`'s to decide.

use signup_verify_domain::log_line;
use worker::{Env, Request, Response};

use super::cors::grant;
use super::demo::CONTENT_SECURITY_POLICY;
use super::signup::{read_body_limited, verify_turnstile};
use super::{
    answer_cors, error_response, header, html_response, json_response, limit_lookup, own_origin,
    see_other,
};
use crate::gate::clients::lookup;
use crate::runtime::now_ms;
use crate::runtime::random_u32;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_gate::messages::CONFIRM_PATH;
use signup_verify_web::browser::is_loopback_http;
use signup_verify_web::browser::OriginCheck;
use signup_verify_web::config::Config;
use signup_verify_web::confirm::confirm_answer;
use signup_verify_web::confirm::confirm_for;
use signup_verify_web::confirm::confirmation;
use signup_verify_web::confirm::render;
use signup_verify_web::confirm::ConfirmAnswer;
use signup_verify_web::confirm::ConfirmFor;
use signup_verify_web::confirm::ConfirmPage;
use signup_verify_web::confirm::Confirmation;
use signup_verify_web::turnstile::token_in_body;

/// `GET /confirm`: the question and the button.
pub fn get(config: &Config) -> Response {
    html_response(
        200,
        render(ConfirmPage::Ask {
            site_key: config.browser.widget_site_key(),
        }),
        CONTENT_SECURITY_POLICY,
    )
}

/// `POST /confirm`.
pub async fn post(req: &mut Request, env: &Env, config: &Config) -> Response {
    // Another site may confirm only if listed by name (its page holds the partitioned cookie
    // its own signup set); a same-origin form is the Worker's own page.
    let grant = match grant(req, config, OriginCheck::Confirm) {
        Ok(grant) => grant,
        Err(error) => return error_response(error),
    };
    let own = own_origin(req);
    let outcome = confirm(req, env, config, &own).await;
    let answer = confirm_answer(
        &outcome,
        header(req, "accept").as_deref(),
        config.browser.widget_site_key(),
        config.browser.verified_redirect.as_ref(),
        &own,
    );
    let response = match answer {
        ConfirmAnswer::Json(status) => json_response(200, status),
        ConfirmAnswer::Error(error) => error_response(error),
        ConfirmAnswer::Page { status, html } => {
            html_response(status, html, CONTENT_SECURITY_POLICY)
        }
        ConfirmAnswer::SeeOther(location) => see_other(&location),
    };
    answer_cors(response, grant)
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
        let token = token_in_body(&body);
        let ip = header(req, "cf-connecting-ip");
        verify_turnstile(turnstile, token.as_deref(), ip.as_deref(), &request_id).await?;
    }
    let cookie = header(req, "cookie");
    match confirm_for(secret, cookie.as_deref(), is_loopback_http(own), now_ms()) {
        ConfirmFor::Answered(Ok(Confirmation::NoSignup)) => {
            crate::log::info(
                || log_line!({"event": "confirm_without_signup", "request_id": request_id}),
            );
            Ok(Confirmation::NoSignup)
        }
        ConfirmFor::Answered(answer) => answer,
        ConfirmFor::Signup(signup) => {
            confirmation(lookup(env, &config.ses, CONFIRM_PATH, signup).await)
        }
    }
}
