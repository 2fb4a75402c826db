//! The status endpoint's decisions, pure: which signup a bearer status token names (401 when it
//! is missing, forged or expired), and what a honeypot decoy's token reads as, answered without
//! the gate: `sent`, then `expired` when a real link would.
//!
//! Invariant: a decoy's status has the shape and timing of a real signup whose link is never
//! opened, so only the secret's holder can tell the two apart.

use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::Secret;
use signup_verify_domain::status_token;
use signup_verify_domain::status_token::Purpose;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::messages::SignupStatus;
use signup_verify_ses::time::rfc3339_utc;

use crate::confirm::bearer_token;

/// Where a status lookup's answer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusLookup {
    /// A decoy's status, answered here.
    Decoy(SignupStatus),
    /// The signup the token names: the gate knows its status.
    Signup(SignupRef),
}

/// The lookup for `authorization` at `now_ms`, checked against `secret`
/// (`STATUS_TOKEN_SECRET`); `link_ttl_ms` is how long a verification link works.
pub fn status_lookup(
    secret: &Secret,
    authorization: Option<&str>,
    link_ttl_ms: u64,
    now_ms: u64,
) -> Result<StatusLookup, ApiError> {
    let token = bearer_token(authorization).ok_or(ApiError::InvalidToken)?;
    let secret = secret.expose().as_bytes();
    let signup = status_token::verify(secret, Purpose::Status, token, now_ms)?.signup;
    Ok(if status_token::is_decoy(secret, &signup) {
        StatusLookup::Decoy(decoy_status(&signup, link_ttl_ms, now_ms))
    } else {
        StatusLookup::Signup(signup)
    })
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

    const SECRET: &str = "a status token secret of 32 bytes!";
    const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn secret() -> Secret {
        Secret::from(SECRET.to_string())
    }

    fn bearer(signup: &SignupRef, purpose: Purpose) -> String {
        format!(
            "Bearer {}",
            status_token::issue(SECRET.as_bytes(), purpose, signup)
        )
    }

    fn signup(nonce: String) -> SignupRef {
        SignupRef {
            key: KEY.into(),
            signed_up_ms: 1_000,
            nonce,
            region: None,
        }
    }

    #[test]
    fn a_decoy_reads_as_a_sent_signup_until_its_link_would_expire() {
        let signup = SignupRef {
            key: "k".into(),
            signed_up_ms: 1_000,
            nonce: "0a00".into(),
            region: None,
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

    #[test]
    fn a_genuine_status_token_names_its_signup_for_the_gate_to_answer() {
        let real = signup("00112233445566778899aabbccddeeff".into());
        let authorization = bearer(&real, Purpose::Status);
        assert_eq!(
            status_lookup(&secret(), Some(&authorization), 600_000, 2_000),
            Ok(StatusLookup::Signup(real))
        );
    }

    #[test]
    fn a_decoys_status_token_is_answered_without_the_gate() {
        let decoy = signup(status_token::decoy_nonce(SECRET.as_bytes(), KEY, [7; 8]));
        let authorization = bearer(&decoy, Purpose::Status);
        assert!(matches!(
            status_lookup(&secret(), Some(&authorization), 600_000, 2_000),
            Ok(StatusLookup::Decoy(SignupStatus { status, .. })) if status == "sent"
        ));
    }

    #[test]
    fn a_missing_forged_expired_or_confirmation_credential_is_no_status_token() {
        let real = signup("00112233445566778899aabbccddeeff".into());
        let lookup = |authorization: Option<&str>, now_ms| {
            status_lookup(&secret(), authorization, 600_000, now_ms)
        };
        assert_eq!(lookup(None, 2_000), Err(ApiError::InvalidToken));
        assert_eq!(
            lookup(Some("Basic abc"), 2_000),
            Err(ApiError::InvalidToken)
        );
        assert_eq!(
            lookup(Some(&bearer(&real, Purpose::Confirm)), 2_000),
            Err(ApiError::InvalidToken),
            "the cookie's credential is not a status token"
        );
        let forged = Secret::from("another secret of thirty-two bytes".to_string());
        assert_eq!(
            status_lookup(
                &forged,
                Some(&bearer(&real, Purpose::Status)),
                600_000,
                2_000
            ),
            Err(ApiError::InvalidToken)
        );
        assert_eq!(
            lookup(
                Some(&bearer(&real, Purpose::Status)),
                1_000 + status_token::TOKEN_LIFETIME_MS
            ),
            Err(ApiError::TokenExpired)
        );
    }
}
