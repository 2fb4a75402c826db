//! `GET /signup/status` and its preflight: the status token from `Authorization: Bearer` or
//! `?token=`, checked here (401 when missing, forged or expired), then the signup's status from
//! the region's gate (404 when it names no signup). CORS as for `/signup`.

use worker::{Env, Method, Request, Response};

use super::signup::{allowed_origin, cors_preflight};
use super::{answer_cors, error_response, header, json_response};
use crate::config::{Config, ConfigError, Secret};
use crate::confirm::token_from_request;
use crate::error::ApiError;
use crate::gate::rpc::{GateClient, SignupRef, SignupStatus, STATUS_PATH};
use crate::runtime::now_ms;
use crate::status_token;

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
    answer_cors(response, origin)
}

/// `OPTIONS /signup/status`: a GET with an `Authorization` header needs a preflight.
pub fn preflight(req: &Request, config: Result<Config, ConfigError>) -> Response {
    cors_preflight(req, config, Method::Get, "authorization")
}

async fn status(req: &Request, env: &Env, config: &Config) -> Result<SignupStatus, ApiError> {
    let secret = config
        .gate
        .tracking
        .status_token_secret
        .as_ref()
        .ok_or(ApiError::StatusOff)?;
    let query_token = req.url().ok().and_then(|url| {
        url.query_pairs()
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
    });
    let authorization = header(req, "authorization");
    let token = token_from_request(authorization.as_deref(), query_token.as_deref())
        .ok_or(ApiError::InvalidToken)?;
    let signup = signup_named_by(secret, token)?;
    GateClient::for_region(env, &config.ses.region)?
        .signup(STATUS_PATH, &signup)
        .await
}

/// The signup a token names, if the token is genuine and current.
pub(super) fn signup_named_by(secret: &Secret, token: &str) -> Result<SignupRef, ApiError> {
    let token = status_token::verify(secret.expose().as_bytes(), token, now_ms())?;
    Ok(SignupRef {
        key: token.key,
        signed_up_ms: token.signed_up_ms,
    })
}
