//! Signup credentials (issue K): what a browser presents to `GET /signup/status` (the status
//! token) and `POST /confirm` (the cookie's confirmation credential).
//!
//! Input: the credential text as it arrives. The same bytes also choose a signup (address key,
//! time, nonce) to mint credentials for.
//!
//! Properties:
//! - a credential that verifies was minted by us for that purpose: it is exactly the one we
//!   issue for what it names, and never verifies for the other purpose;
//! - a credential we mint verifies to what it was minted for until its expiry, and not after;
//! - any one character changed in a minted credential stops it verifying.

use signup_verify_domain::status_token::issue;
use signup_verify_domain::status_token::verify;
use signup_verify_domain::status_token::Purpose;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_domain::status_token::TokenError;
use signup_verify_domain::status_token::TOKEN_LIFETIME_MS;

const SECRET: &[u8] = b"the fuzz targets' status token secret";
/// A fixed clock: 2026-12-01.
const NOW_MS: u64 = 1_796_083_200_000;

pub fn check(data: &[u8]) {
    if let Ok(token) = std::str::from_utf8(data) {
        for (purpose, other) in [
            (Purpose::Status, Purpose::Confirm),
            (Purpose::Confirm, Purpose::Status),
        ] {
            if let Ok(claim) = verify(SECRET, purpose, token, NOW_MS) {
                assert_eq!(
                    issue(SECRET, purpose, &claim.signup),
                    token,
                    "a credential verified that we did not mint"
                );
                assert!(
                    verify(SECRET, other, token, NOW_MS).is_err(),
                    "a credential verified for both purposes"
                );
            }
        }
    }

    let digest = <sha2::Sha256 as sha2::Digest>::digest(data);
    let signup = SignupRef {
        key: hex::encode(digest),
        signed_up_ms: NOW_MS - u64::from(data.first().copied().unwrap_or(0)) * 3_600_000,
        nonce: hex::encode(&digest[..16]),
        region: None,
    };
    let minted = issue(SECRET, Purpose::Status, &signup);
    let claim = verify(SECRET, Purpose::Status, &minted, signup.signed_up_ms)
        .expect("a fresh token verifies");
    assert_eq!(claim.signup, signup);
    assert_eq!(
        verify(
            SECRET,
            Purpose::Status,
            &minted,
            signup.signed_up_ms + TOKEN_LIFETIME_MS
        ),
        Err(TokenError::Expired)
    );

    let position = data.get(1).map_or(0, |&b| usize::from(b) % minted.len());
    let mut altered: Vec<char> = minted.chars().collect();
    altered[position] = if altered[position] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    assert!(
        verify(SECRET, Purpose::Status, &altered, signup.signed_up_ms).is_err(),
        "an altered token verified"
    );
}
