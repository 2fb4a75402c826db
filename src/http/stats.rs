//! `GET /gate/stats`: a 404 unless `ADMIN_TOKEN` is set, then only with `Authorization: Bearer`
//! and that token (compared in constant time); the figures come from the region's gate.

use subtle::ConstantTimeEq;
use worker::{Env, Request, Response};

use super::{error_response, header, json_response};
use crate::gate::clients::GateClient;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::ConfigError;
use signup_verify_domain::settings::Secret;
use signup_verify_gate::messages::GateStats;
use signup_verify_web::config::Config;

pub async fn get(req: &Request, env: &Env, config: Result<Config, ConfigError>) -> Response {
    match stats(req, env, config).await {
        Ok(stats) => json_response(200, &stats),
        Err(error) => error_response(error),
    }
}

async fn stats(
    req: &Request,
    env: &Env,
    config: Result<Config, ConfigError>,
) -> Result<GateStats, ApiError> {
    let config = config.map_err(|_| ApiError::Misconfigured)?;
    let Some(token) = config.admin_token.as_ref().map(Secret::expose) else {
        return Err(ApiError::NotFound);
    };
    let authorization = header(req, "authorization").unwrap_or_default();
    let presented = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return Err(ApiError::Unauthorized);
    }
    GateClient::for_region(env, &config.ses.region)?
        .stats()
        .await
}
