//! Status tokens (issue G): what a browser presents to `GET /signup/status`.
//!
//! Input: the token text as it arrives (header or query). The same bytes also choose a signup
//! (address key and time) to mint a token for.
//!
//! Properties:
//! - a token that verifies was minted by us: it is exactly the token we issue for what it names;
//! - a token we mint verifies to what it was minted for until its expiry, and not after;
//! - any one character changed in a minted token stops it verifying.

use signup_verify::status_token::{issue, verify, TokenError, TOKEN_LIFETIME_MS};

const SECRET: &[u8] = b"the fuzz targets' status token secret";
/// A fixed clock: 2026-12-01.
const NOW_MS: u64 = 1_796_083_200_000;

pub fn check(data: &[u8]) {
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(named) = verify(SECRET, token, NOW_MS) {
            assert_eq!(
                issue(SECRET, &named.key, named.signed_up_ms),
                token,
                "a token verified that we did not mint"
            );
        }
    }

    let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data));
    let signed_up_ms = NOW_MS - u64::from(data.first().copied().unwrap_or(0)) * 3_600_000;
    let minted = issue(SECRET, &key, signed_up_ms);
    let named = verify(SECRET, &minted, signed_up_ms).expect("a fresh token verifies");
    assert_eq!(
        (named.key.as_str(), named.signed_up_ms),
        (key.as_str(), signed_up_ms)
    );
    assert_eq!(
        verify(SECRET, &minted, signed_up_ms + TOKEN_LIFETIME_MS),
        Err(TokenError::Expired)
    );

    let position = data.get(1).map_or(0, |&b| usize::from(b) % minted.len());
    let mut altered: Vec<char> = minted.chars().collect();
    altered[position] = if altered[position] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    assert!(
        verify(SECRET, &altered, signed_up_ms).is_err(),
        "an altered token verified"
    );
}
