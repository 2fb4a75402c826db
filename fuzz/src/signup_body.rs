//! The signup body: `Content-Type` header and body bytes, as a browser or an attacker sends them,
//! to a [`Submission`].
//!
//! Input: the header value, a newline, the body. Without a newline the request has no
//! `Content-Type` and the whole input is the body.
//!
//! Properties: every refusal is a 4xx with a stable code; a body over the limit is refused as too
//! large whatever it holds; an accepted address is the one [`EmailAddress::parse`] gives for
//! itself, and it reaches SES byte for byte (see [`crate::email_address::assert_reaches_ses_intact`]).

use signup_verify_web::signup::parse_content_type;
use signup_verify_web::signup::parse_signup;
use signup_verify_web::signup::Submission;
use signup_verify_web::signup::MAX_BODY_BYTES;

use crate::email_address::assert_reaches_ses_intact;

/// The honeypot field's name in the default configuration.
const HONEYPOT_FIELD: &str = "website";

pub fn check(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            Some(String::from_utf8_lossy(&data[..i]).into_owned()),
            &data[i + 1..],
        ),
        None => (None, data),
    };
    let answer = parse_content_type(header.as_deref())
        .and_then(|format| parse_signup(format, body, HONEYPOT_FIELD));
    match answer {
        Ok(Submission::Signup { email, .. }) => {
            assert!(
                body.len() <= MAX_BODY_BYTES,
                "a body over the limit was read"
            );
            assert_reaches_ses_intact(&email);
        }
        Ok(Submission::Honeypot { .. }) => assert!(body.len() <= MAX_BODY_BYTES),
        Err(error) => {
            assert!(
                (400..500).contains(&error.status()),
                "{error:?} answers {}",
                error.status()
            );
            assert!(!error.code().is_empty());
        }
    }
}
