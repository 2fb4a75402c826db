//! The signup a credential names: a status token or the confirmation cookie, checked against
//! `STATUS_TOKEN_SECRET` and its purpose label at the request's time.

use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::Secret;
use signup_verify_domain::status_token::{self, Purpose, SignupRef};

use crate::runtime::now_ms;

/// The signup a credential for `purpose` names, if it is genuine and current.
pub(super) fn signup_named_by(
    secret: &Secret,
    purpose: Purpose,
    token: &str,
) -> Result<SignupRef, ApiError> {
    Ok(status_token::verify(secret.expose().as_bytes(), purpose, token, now_ms())?.signup)
}
