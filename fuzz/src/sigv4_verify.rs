//! ses-local's SigV4 verifier, which faces every SDK a user points at ses-local.
//!
//! Input: header lines (`name: value`), an empty line, then the body; without an empty line the
//! whole input is the body. The request is a `POST /` checked at a fixed clock. The same body is
//! also signed by the Worker's signer (aws-sigv4) to cross-check the two implementations.
//!
//! Properties:
//! - whatever arrives, the verifier answers (no panic), and a request it accepts is refused once
//!   its body changes by one byte (the body is always signed);
//! - a request the Worker signs, with any body, is accepted, and refused with any one body byte
//!   changed.

use std::time::{Duration as StdDuration, UNIX_EPOCH};

use ses_local::sigv4::{verify, Credentials, Incoming};
use signup_verify_ses::config::AwsCredentials;
use signup_verify_ses::request::sign_headers;
use time::{Duration, OffsetDateTime};

const ACCESS_KEY_ID: &str = "AKIDSESLOCAL";
const SECRET_ACCESS_KEY: &str = "ses-local-secret-access-key";
const REGION: &str = "us-east-1";
/// A fixed clock: 2026-12-01T00:00:00Z.
const NOW_SECS: i64 = 1_796_083_200;
const URL: &str = "http://127.0.0.1:4579/";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

pub fn check(data: &[u8]) {
    check_as_received(data);
    check_as_signed_by_the_worker(data);
}

fn ses_local_verify(headers: &[(String, String)], body: &[u8]) -> bool {
    let request = Incoming {
        method: "POST",
        path: "/",
        query: "",
        headers,
        body,
    };
    let credentials = Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        session_token: None,
    };
    let now = OffsetDateTime::from_unix_timestamp(NOW_SECS).expect("a valid time");
    verify(&request, &credentials, REGION, now, Duration::minutes(5)).is_ok()
}

fn check_as_received(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (&[][..], data),
    };
    let headers: Vec<(String, String)> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    if ses_local_verify(&headers, body) {
        let mut longer = body.to_vec();
        longer.push(b'&');
        assert!(
            !ses_local_verify(&headers, &longer),
            "an unsigned body byte was accepted"
        );
    }
}

fn check_as_signed_by_the_worker(body: &[u8]) {
    let credentials = AwsCredentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        session_token: None,
    };
    let signed_at = UNIX_EPOCH + StdDuration::from_secs(NOW_SECS.unsigned_abs());
    let signed = sign_headers(
        "POST",
        URL,
        &[("Content-Type", CONTENT_TYPE)],
        body,
        &credentials,
        REGION,
        "ses",
        signed_at,
    )
    .expect("the Worker signs any body");
    let mut headers = vec![
        ("host".to_string(), "127.0.0.1:4579".to_string()),
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
    ];
    headers.extend(signed.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)));
    assert!(
        ses_local_verify(&headers, body),
        "ses-local refused what aws-sigv4 signed"
    );
    if let Some(first) = body.first() {
        let mut changed = body.to_vec();
        let at = usize::from(*first) % changed.len();
        changed[at] ^= 0x01;
        assert!(
            !ses_local_verify(&headers, &changed),
            "a changed body byte was accepted"
        );
    }
}
