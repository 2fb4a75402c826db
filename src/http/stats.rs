//! `GET /gate/stats`: a 404 unless `ADMIN_TOKEN` is set, then only with `Authorization: Bearer`
//! and that token (`signup_verify_web::route::admin_access`); the figures of every region's
//! gate, and their totals (`signup_verify_gate::pool_stats`).

use worker::{Env, Request, Response};

use super::{error_response, header, json_bytes_response};
use crate::gate::clients::pool_stats;
use signup_verify_domain::error::ApiError;
use signup_verify_web::config::Config;
use signup_verify_web::route::admin_access;

pub async fn get(req: &Request, env: &Env, config: &Config) -> Response {
    match stats(req, env, config).await {
        Ok(stats) => json_bytes_response(200, stats),
        Err(error) => error_response(error),
    }
}

/// The pool's `PoolStats` JSON.
async fn stats(req: &Request, env: &Env, config: &Config) -> Result<Vec<u8>, ApiError> {
    admin_access(
        config.admin_token.as_ref(),
        header(req, "authorization").as_deref(),
    )?;
    let stats = pool_stats(env, &config.ses).await?;
    stats.json().map_err(|_| ApiError::UpstreamError)
}
