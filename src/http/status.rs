//! `GET /signup/status`: the per-IP lookup limit, then the status token from
//! `Authorization: Bearer` only (a query string ends up in logs), checked at the request's time
//! (`signup_verify_web::status`: 401 when missing, forged or expired; a honeypot decoy's
//! answered there), then the signup's status from the gate of the region it names (404 when it names no
//! signup). CORS as for `/signup`, never with credentials.

use worker::{Env, Request, Response};

use super::cors::grant;
use super::{answer_cors, error_response, header, json_response, limit_lookup};
use crate::gate::clients::lookup;
use crate::runtime::now_ms;
use crate::runtime::random_u32;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_gate::messages::SignupStatus;
use signup_verify_gate::messages::STATUS_PATH;
use signup_verify_web::browser::OriginCheck;
use signup_verify_web::config::Config;
use signup_verify_web::status::status_lookup;
use signup_verify_web::status::StatusLookup;

pub async fn get(req: &Request, env: &Env, config: &Config) -> Response {
    let grant = match grant(req, config, OriginCheck::Status) {
        Ok(grant) => grant,
        Err(error) => return error_response(error),
    };
    let response = match status(req, env, config).await {
        Ok(status) => json_response(200, &status),
        Err(error) => error_response(error),
    };
    answer_cors(response, grant)
}

async fn status(req: &Request, env: &Env, config: &Config) -> Result<SignupStatus, ApiError> {
    let request_id = RequestId::from_ray_or_random(header(req, "cf-ray").as_deref(), random_u32);
    limit_lookup(req, env, &config.browser, &request_id).await?;
    let tracking = &config.gate.tracking;
    let secret = tracking
        .status_token_secret
        .as_ref()
        .ok_or(ApiError::StatusOff)?;
    let authorization = header(req, "authorization");
    match status_lookup(
        secret,
        authorization.as_deref(),
        tracking.link_ttl_ms,
        now_ms(),
    )? {
        StatusLookup::Decoy(status) => Ok(status),
        StatusLookup::Signup(signup) => lookup(env, &config.ses, STATUS_PATH, signup).await,
    }
}
