//! The two credentials a signup's own request gets, both naming that one signup: the status
//! token (JSON body, for `GET /signup/status` as `Authorization: Bearer`) and the confirmation
//! credential (only ever in the HttpOnly signup cookie, for `POST /confirm`). A credential is
//! `<payload>.<mac>`, both unpadded base64url, where the payload is
//! `<address key>.<signup ms>.<expiry ms>.<nonce>[.<region>]` and the MAC is HMAC-SHA256 under
//! `STATUS_TOKEN_SECRET` over a purpose label and the payload.
//!
//! Invariants:
//! - each purpose has its own label ([`Purpose`]), so a status token is never a confirmation
//!   credential and no other HMAC under the secret (the decoy nonce) is either;
//! - a credential names one signup: the nonce is random per signup, drawn by the gate, and the
//!   gate answers only while its row still holds that nonce (a replaced or forgotten signup's
//!   credentials stop working);
//! - it holds the address's keyed hash, never the address; it cannot be made or altered without
//!   the secret (the MAC is checked in constant time before anything is read); it stops working
//!   at its expiry;
//! - it names the SES region whose gate holds its signup (`region`), under the MAC: a change of
//!   `SES_REGIONS` still finds it; a credential made before regions were named has four parts,
//!   and its signup is in the gate of `AWS_REGION`;
//! - a honeypot decoy is a real credential under the real secret whose nonce is
//!   [`decoy_nonce`] of its key: only the secret's holder can tell it from a signup's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use serde::{Deserialize, Serialize};

/// One signup, as named by a verified credential: its mailbox key, when it was made, and its
/// random nonce (what makes it this signup and no other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupRef {
    pub key: String,
    pub signed_up_ms: u64,
    pub nonce: String,
    /// The region whose gate holds it: set by the Worker (a gate knows only itself), carried
    /// in its credentials; `None` in credentials made before regions were named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl SignupRef {
    /// The same signup, held by the gate of `region`.
    pub fn in_region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }
}

/// Whether `region` can be a region's name in a credential: lowercase letters, digits and
/// dashes, at most 32 bytes (no dot, the payload's separator).
fn is_region_part(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A credential works for this long after the signup.
pub const TOKEN_LIFETIME_MS: u64 = 7 * 24 * 3_600_000;
/// Longer strings are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 512;
/// Random bytes in a signup's nonce.
pub const NONCE_BYTES: usize = 16;

/// What a credential is for; each has its own MAC label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `GET /signup/status`.
    Status,
    /// `POST /confirm`, from the signup cookie.
    Confirm,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Status => b"signup-verify/v2/status-token\0",
            Self::Confirm => b"signup-verify/v2/confirm-credential\0",
        }
    }
}

const DECOY_LABEL: &[u8] = b"signup-verify/v2/decoy-nonce\0";

/// What a valid credential names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub signup: SignupRef,
    pub expires_ms: u64,
}

/// Why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a credential at all.
    Malformed,
    /// The MAC does not match: forged, altered, made under another secret or for another
    /// purpose.
    Forged,
    Expired,
}

fn mac(secret: &[u8], label: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(label);
    mac.update(payload);
    mac
}

/// The credential for `purpose` naming `signup`.
pub fn issue(secret: &[u8], purpose: Purpose, signup: &SignupRef) -> String {
    let mut payload = format!(
        "{}.{}.{}.{}",
        signup.key,
        signup.signed_up_ms,
        signup.signed_up_ms + TOKEN_LIFETIME_MS,
        signup.nonce
    );
    if let Some(region) = signup.region.as_deref().filter(|r| is_region_part(r)) {
        payload.push('.');
        payload.push_str(region);
    }
    let tag = mac(secret, purpose.label(), payload.as_bytes())
        .finalize()
        .into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks `token` for `purpose` at `now_ms`: its MAC first, then its shape, then its expiry.
pub fn verify(
    secret: &[u8],
    purpose: Purpose,
    token: &str,
    now_ms: u64,
) -> Result<Claim, TokenError> {
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
    mac(secret, purpose.label(), &payload)
        .verify_slice(&tag)
        .map_err(|_| TokenError::Forged)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let mut parts = payload.split('.');
    let (Some(key), Some(signed_up), Some(expires), Some(nonce), region, None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if region.is_some_and(|r| !is_region_part(r)) {
        return Err(TokenError::Malformed);
    }
    let parse = |n: &str| n.parse::<u64>().map_err(|_| TokenError::Malformed);
    let claim = Claim {
        signup: SignupRef {
            key: key.to_string(),
            signed_up_ms: parse(signed_up)?,
            nonce: nonce.to_string(),
            region: region.map(str::to_string),
        },
        expires_ms: parse(expires)?,
    };
    if now_ms >= claim.expires_ms {
        return Err(TokenError::Expired);
    }
    Ok(claim)
}

/// A MessageId-shaped value for a decoy, from the time and 16 random bytes: SES's are `0100`,
/// the time in hex milliseconds, a UUID and `-000000`.
pub fn decoy_message_id(now_ms: u64, random: [u8; 16]) -> String {
    let uuid = uuid::Builder::from_random_bytes(random).into_uuid();
    format!("0100{now_ms:012x}-{uuid}-000000")
}

/// Random bytes in a decoy's nonce; the rest is their MAC, truncated.
const DECOY_RANDOM_BYTES: usize = 8;

/// A nonce for a honeypot decoy signup keyed `key`: `random` then a MAC of the key and
/// `random`, so that it differs from decoy to decoy (as a real signup's does) and looks as
/// random as a real one to anyone without the secret.
pub fn decoy_nonce(secret: &[u8], key: &str, random: [u8; DECOY_RANDOM_BYTES]) -> String {
    let tag = decoy_mac(secret, key, &random).finalize().into_bytes();
    let mut nonce = random.to_vec();
    nonce.extend_from_slice(&tag[..NONCE_BYTES - DECOY_RANDOM_BYTES]);
    hex::encode(nonce)
}

fn decoy_mac(secret: &[u8], key: &str, random: &[u8]) -> Hmac<Sha256> {
    let mut decoy = mac(secret, DECOY_LABEL, key.as_bytes());
    decoy.update(b".");
    decoy.update(random);
    decoy
}

/// Whether `signup` is a honeypot decoy (its MAC compared in constant time).
pub fn is_decoy(secret: &[u8], signup: &SignupRef) -> bool {
    if signup.nonce.len() != NONCE_BYTES * 2 {
        return false;
    }
    let Ok(nonce) = hex::decode(&signup.nonce) else {
        return false;
    };
    let (random, tag) = nonce.split_at(DECOY_RANDOM_BYTES);
    decoy_mac(secret, &signup.key, random)
        .verify_truncated_left(tag)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a status token secret of 32 bytes!";
    const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    /// A status token over `payload` as given, correctly signed (whatever its shape).
    fn signed_status(payload: &str) -> String {
        let tag = mac(SECRET, Purpose::Status.label(), payload.as_bytes())
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn signup(nonce: &str) -> SignupRef {
        SignupRef {
            key: KEY.into(),
            signed_up_ms: 1_000,
            nonce: nonce.into(),
            region: None,
        }
    }

    #[test]
    fn a_token_verifies_to_the_signup_it_was_issued_for_and_never_holds_the_address() {
        let named = signup("00112233445566778899aabbccddeeff");
        let token = issue(SECRET, Purpose::Status, &named);
        let claim = verify(SECRET, Purpose::Status, &token, 2_000).expect("valid");
        assert_eq!(
            claim,
            Claim {
                signup: named,
                expires_ms: 1_000 + TOKEN_LIFETIME_MS
            }
        );
        assert!(!token.contains('@'));
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }

    #[test]
    fn a_token_names_the_region_that_holds_its_signup_under_its_mac() {
        let named = signup("00112233445566778899aabbccddeeff").in_region("eu-west-1");
        let token = issue(SECRET, Purpose::Status, &named);
        let claim = verify(SECRET, Purpose::Status, &token, 2_000).expect("valid");
        assert_eq!(claim.signup.region.as_deref(), Some("eu-west-1"));
        // Another region under the same MAC is forged.
        let (payload, tag) = token.split_once('.').expect("two parts");
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("utf-8")
            .replace("eu-west-1", "us-east-1");
        let moved = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(payload));
        assert_eq!(
            verify(SECRET, Purpose::Status, &moved, 2_000),
            Err(TokenError::Forged)
        );
    }

    #[test]
    fn a_token_made_before_regions_were_named_still_verifies_and_names_no_region() {
        // The four-part payload every earlier version issued, signed as they signed it.
        let payload = format!(
            "{KEY}.1000.{}.00112233445566778899aabbccddeeff",
            1_000 + TOKEN_LIFETIME_MS
        );
        let token = signed_status(&payload);
        let claim = verify(SECRET, Purpose::Status, &token, 2_000).expect("still valid");
        assert_eq!(claim.signup, signup("00112233445566778899aabbccddeeff"));
        assert_eq!(claim.signup.region, None);
        assert_eq!(
            issue(SECRET, Purpose::Status, &claim.signup),
            token,
            "a signup without a region gets the same four parts"
        );
    }

    #[test]
    fn a_signed_region_that_is_not_a_region_name_is_malformed() {
        for region in ["EU", "eu west", "", &"a".repeat(33)] {
            let payload = format!("{KEY}.1000.{}.ab.{region}", 1_000 + TOKEN_LIFETIME_MS);
            let token = signed_status(&payload);
            assert_eq!(
                verify(SECRET, Purpose::Status, &token, 2_000),
                Err(TokenError::Malformed),
                "{region:?}"
            );
        }
    }

    #[test]
    fn a_status_token_is_not_a_confirmation_credential_nor_the_other_way_round() {
        let named = signup("00112233445566778899aabbccddeeff");
        let status = issue(SECRET, Purpose::Status, &named);
        let confirm = issue(SECRET, Purpose::Confirm, &named);
        assert_ne!(status, confirm);
        assert_eq!(
            verify(SECRET, Purpose::Confirm, &status, 2_000),
            Err(TokenError::Forged)
        );
        assert_eq!(
            verify(SECRET, Purpose::Status, &confirm, 2_000),
            Err(TokenError::Forged)
        );
        assert!(verify(SECRET, Purpose::Confirm, &confirm, 2_000).is_ok());
    }

    #[test]
    fn two_signups_of_one_address_at_the_same_millisecond_get_different_tokens() {
        let a = issue(SECRET, Purpose::Status, &signup("0".repeat(32).as_str()));
        let b = issue(SECRET, Purpose::Status, &signup("1".repeat(32).as_str()));
        assert_ne!(
            a, b,
            "the nonce, not the address and the time, makes a token"
        );
    }

    #[test]
    fn a_token_expires_seven_days_after_the_signup() {
        let token = issue(SECRET, Purpose::Status, &signup("ab"));
        assert!(verify(
            SECRET,
            Purpose::Status,
            &token,
            1_000 + TOKEN_LIFETIME_MS - 1
        )
        .is_ok());
        assert_eq!(
            verify(SECRET, Purpose::Status, &token, 1_000 + TOKEN_LIFETIME_MS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_under_another_secret_or_with_any_part_changed_is_forged() {
        let token = issue(SECRET, Purpose::Status, &signup("ab"));
        assert_eq!(
            verify(
                b"another secret entirely, 32 bytes",
                Purpose::Status,
                &token,
                2_000
            ),
            Err(TokenError::Forged)
        );
        let (_, tag) = token.split_once('.').expect("two parts");
        for payload in [
            format!("{}.1000.{}.ab", "0".repeat(64), 1_000 + TOKEN_LIFETIME_MS),
            format!("{KEY}.1000.{}.ab", u64::MAX),
            format!("{KEY}.1000.{}.cd", 1_000 + TOKEN_LIFETIME_MS),
        ] {
            let altered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(payload));
            assert_eq!(
                verify(SECRET, Purpose::Status, &altered, 2_000),
                Err(TokenError::Forged)
            );
        }
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(
            verify(SECRET, Purpose::Status, &flipped, 2_000),
            Err(TokenError::Forged)
        );
    }

    #[test]
    fn strings_that_are_not_tokens_are_malformed() {
        let long = "a".repeat(600);
        for junk in ["", ".", "abc", "a.b.c", "!!!.???", long.as_str()] {
            assert_eq!(
                verify(SECRET, Purpose::Status, junk, 0),
                Err(TokenError::Malformed),
                "{junk}"
            );
        }
        // A correctly signed payload of the wrong shape (the first version's three parts).
        let payload = format!("{KEY}.1000.2000");
        let token = signed_status(&payload);
        assert_eq!(
            verify(SECRET, Purpose::Status, &token, 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_decoy_is_known_only_by_its_nonce_and_looks_like_any_other_signup() {
        let nonce = decoy_nonce(SECRET, KEY, [7; 8]);
        assert_ne!(
            nonce,
            decoy_nonce(SECRET, KEY, [8; 8]),
            "a new one each time"
        );
        assert_eq!(nonce.len(), NONCE_BYTES * 2);
        assert!(nonce.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(is_decoy(SECRET, &signup(&nonce)));
        let id = decoy_message_id(0x0190_0000_0000, [1; 16]);
        assert!(
            id.starts_with("0100019000000000-") && id.ends_with("-000000"),
            "{id}"
        );
        assert!(!is_decoy(
            SECRET,
            &signup("00112233445566778899aabbccddeeff")
        ));
        assert!(!is_decoy(
            b"another secret entirely, 32 bytes",
            &signup(&nonce)
        ));
        assert!(!is_decoy(SECRET, &signup(&nonce[..30])));
        assert!(!is_decoy(SECRET, &signup("")));
        // Its credentials are ordinary ones.
        let token = issue(SECRET, Purpose::Status, &signup(&nonce));
        assert!(verify(SECRET, Purpose::Status, &token, 2_000).is_ok());
    }
}
