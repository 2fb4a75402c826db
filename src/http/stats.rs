//! `GET /gate/stats`: a 404 unless `ADMIN_TOKEN` is set, then only with `Authorization: Bearer`
//! and that token (`signup_verify_web::route::admin_access`); the figures come from the
//! region's gate.

use worker::{Env, Request, Response};

use super::{error_response, header, json_bytes_response};
use crate::gate::clients::GateClient;
use signup_verify_domain::error::ApiError;
use signup_verify_web::config::Config;
use signup_verify_web::route::admin_access;

pub async fn get(req: &Request, env: &Env, config: &Config) -> Response {
    match stats(req, env, config).await {
        Ok(stats) => json_bytes_response(200, stats),
        Err(error) => error_response(error),
    }
}

/// The gate's `GateStats` JSON, as it wrote it.
async fn stats(req: &Request, env: &Env, config: &Config) -> Result<Vec<u8>, ApiError> {
    admin_access(
        config.admin_token.as_ref(),
        header(req, "authorization").as_deref(),
    )?;
    GateClient::for_region(env, &config.ses.region)?
        .stats()
        .await
}
