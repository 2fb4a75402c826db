//! `GET /signup/status` and its preflight: the per-IP lookup limit, then the status token from
//! `Authorization: Bearer` only (a query string ends up in logs), checked here (401 when
//! missing, forged or expired), then the signup's status from the region's gate (404 when it
//! names no signup). A honeypot decoy's token is answered here as a signup whose link is never
//! opened: `sent`, then `expired` when a real link would. CORS as for `/signup`.

use worker::{Env, Method, Request, Response};

use super::cors::{allowed_origin, cors_preflight};
use super::credentials::signup_named_by;
use super::{answer_cors, error_response, header, json_response, limit_lookup};
use crate::gate::clients::GateClient;
use crate::runtime::now_ms;
use crate::runtime::random_u32;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::settings::ConfigError;
use signup_verify_domain::status_token;
use signup_verify_domain::status_token::Purpose;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::messages::SignupStatus;
use signup_verify_gate::messages::STATUS_PATH;
use signup_verify_ses::time::rfc3339_utc;
use signup_verify_web::config::Config;
use signup_verify_web::confirm::bearer_token;

pub async fn get(req: &Request, env: &Env, config: Result<Config, ConfigError>) -> Response {
    let Ok(config) = config else {
        return error_response(ApiError::Misconfigured);
    };
    let origin = match allowed_origin(req, &config.browser) {
        Ok(origin) => origin,
        Err(error) => return error_response(error),
    };
    let response = match status(req, env, &config).await {
        Ok(status) => json_response(200, &status),
        Err(error) => error_response(error),
    };
    answer_cors(response, origin, false)
}

/// `OPTIONS /signup/status`: a GET with an `Authorization` header needs a preflight.
pub fn preflight(req: &Request, config: Result<Config, ConfigError>) -> Response {
    cors_preflight(req, config, Method::Get, "authorization")
}

async fn status(req: &Request, env: &Env, config: &Config) -> Result<SignupStatus, ApiError> {
    let request_id = RequestId::from_ray_or_random(header(req, "cf-ray").as_deref(), random_u32);
    limit_lookup(req, env, &config.browser, &request_id).await?;
    let secret = config
        .gate
        .tracking
        .status_token_secret
        .as_ref()
        .ok_or(ApiError::StatusOff)?;
    let authorization = header(req, "authorization");
    let token = bearer_token(authorization.as_deref()).ok_or(ApiError::InvalidToken)?;
    let signup = signup_named_by(secret, Purpose::Status, token)?;
    if status_token::is_decoy(secret.expose().as_bytes(), &signup) {
        return Ok(decoy_status(
            &signup,
            config.gate.tracking.link_ttl_ms,
            now_ms(),
        ));
    }
    GateClient::for_region(env, &config.ses.region)?
        .signup(STATUS_PATH, &signup)
        .await
}

/// What a signup sent at the decoy's time and never clicked reads as at `now_ms`. Its send
/// time is a real send's distance after the signup (60–315 ms, fixed by the nonce), as the
/// token's payload shows the signup's time to whoever decodes it.
fn decoy_status(signup: &SignupRef, link_ttl_ms: u64, now_ms: u64) -> SignupStatus {
    let delay = signup
        .nonce
        .get(..2)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
        + 60;
    let sent_ms = signup.signed_up_ms + delay;
    let expired = now_ms >= sent_ms + link_ttl_ms;
    SignupStatus {
        status: if expired { "expired" } else { "sent" }.to_string(),
        verified: false,
        confirmed: false,
        contested: false,
        position: None,
        estimated_send_at: None,
        sent_at: Some(rfc3339_utc(sent_ms)),
        verified_at: None,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoy_reads_as_a_sent_signup_until_its_link_would_expire() {
        let signup = SignupRef {
            key: "k".into(),
            signed_up_ms: 1_000,
            nonce: "0a00".into(),
        };
        let sent = decoy_status(&signup, 600_000, 2_000);
        assert_eq!(
            serde_json::to_value(&sent).expect("json"),
            serde_json::json!({"status": "sent", "verified": false, "confirmed": false, "sentAt": rfc3339_utc(1_070)}),
            "sent a plausible moment after the signup, as a real one is"
        );
        assert_eq!(decoy_status(&signup, 600_000, 601_069).status, "sent");
        assert_eq!(decoy_status(&signup, 600_000, 601_070).status, "expired");
    }
}
