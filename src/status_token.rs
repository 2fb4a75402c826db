//! Status tokens: what a signup answer gives the browser so that it (and nobody else) can ask
//! `GET /signup/status` about that one signup. A token is `<payload>.<mac>`, both unpadded
//! base64url, where the payload is `<address key>.<signup ms>.<expiry ms>` and the MAC is
//! HMAC-SHA256 over the payload under `STATUS_TOKEN_SECRET`.
//!
//! Invariants: a token names one signup of one address (a later signup of the same address gets
//! a new one); it holds the address's keyed hash, never the address; it cannot be made or
//! altered without the secret (the MAC is checked in constant time before anything is read);
//! and it stops working at its expiry.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

impl From<TokenError> for crate::error::ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Expired => Self::TokenExpired,
            TokenError::Malformed | TokenError::Forged => Self::InvalidToken,
        }
    }
}

/// A token works for this long after the signup.
pub const TOKEN_LIFETIME_MS: u64 = 7 * 24 * 3_600_000;
/// Longer strings are refused before any decoding.
const MAX_TOKEN_LEN: usize = 512;

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusToken {
    /// The address key (`cooldown::address_key`).
    pub key: String,
    pub signed_up_ms: u64,
    pub expires_ms: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token at all.
    Malformed,
    /// The MAC does not match: forged, altered, or made under another secret.
    Forged,
    Expired,
}

fn mac(secret: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(payload);
    mac
}

/// A token for the signup of the address keyed `key` at `signed_up_ms`.
pub fn issue(secret: &[u8], key: &str, signed_up_ms: u64) -> String {
    let payload = format!("{key}.{signed_up_ms}.{}", signed_up_ms + TOKEN_LIFETIME_MS);
    let tag = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks `token` at `now_ms`: its MAC first, then its shape, then its expiry.
pub fn verify(secret: &[u8], token: &str, now_ms: u64) -> Result<StatusToken, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .ok()
        .filter(|tag| tag.len() == 32)
        .ok_or(TokenError::Malformed)?;
    mac(secret, &payload)
        .verify_slice(&tag)
        .map_err(|_| TokenError::Forged)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let mut parts = payload.split('.');
    let (Some(key), Some(signed_up), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let parse = |n: &str| n.parse::<u64>().map_err(|_| TokenError::Malformed);
    let token = StatusToken {
        key: key.to_string(),
        signed_up_ms: parse(signed_up)?,
        expires_ms: parse(expires)?,
    };
    if now_ms >= token.expires_ms {
        return Err(TokenError::Expired);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a status token secret of 32 bytes!";
    const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_token_verifies_to_the_signup_it_was_issued_for_and_never_holds_the_address() {
        let token = issue(SECRET, KEY, 1_000);
        let verified = verify(SECRET, &token, 2_000).expect("valid");
        assert_eq!(
            verified,
            StatusToken {
                key: KEY.into(),
                signed_up_ms: 1_000,
                expires_ms: 1_000 + TOKEN_LIFETIME_MS
            }
        );
        assert!(!token.contains('@'));
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }

    #[test]
    fn a_token_expires_seven_days_after_the_signup() {
        let token = issue(SECRET, KEY, 1_000);
        assert!(verify(SECRET, &token, 1_000 + TOKEN_LIFETIME_MS - 1).is_ok());
        assert_eq!(
            verify(SECRET, &token, 1_000 + TOKEN_LIFETIME_MS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_under_another_secret_or_with_any_part_changed_is_forged() {
        let token = issue(SECRET, KEY, 1_000);
        assert_eq!(
            verify(b"another secret entirely, 32 bytes", &token, 2_000),
            Err(TokenError::Forged)
        );
        // Another address's key, or a later expiry, under the original MAC.
        let (_, tag) = token.split_once('.').expect("two parts");
        for payload in [
            format!("{}.1000.{}", "0".repeat(64), 1_000 + TOKEN_LIFETIME_MS),
            format!("{KEY}.1000.{}", u64::MAX),
        ] {
            let altered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(payload));
            assert_eq!(verify(SECRET, &altered, 2_000), Err(TokenError::Forged));
        }
        // One flipped character in the MAC.
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(verify(SECRET, &flipped, 2_000), Err(TokenError::Forged));
    }

    #[test]
    fn strings_that_are_not_tokens_are_malformed() {
        let long = "a".repeat(600);
        for junk in ["", ".", "abc", "a.b.c", "!!!.???", long.as_str()] {
            assert_eq!(
                verify(SECRET, junk, 0),
                Err(TokenError::Malformed),
                "{junk}"
            );
        }
        // A correctly signed payload of the wrong shape.
        let payload = "only-a-key";
        let tag = mac(SECRET, payload.as_bytes()).finalize().into_bytes();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(verify(SECRET, &token, 0), Err(TokenError::Malformed));
    }
}
