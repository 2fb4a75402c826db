//! SigV4 verification of incoming requests, written from AWS's specification with plain HMAC-SHA256
//! (deliberately not aws-sigv4, which the Worker signs with), so the two cross-check each other.
//! Failures carry the SES error code and message real SES would answer with, all HTTP 403.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// The identity requests must be signed with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// What arrived: header names lowercased, values as received, the body's exact bytes.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub code: &'static str,
    pub message: String,
}

fn failure(code: &'static str, message: impl Into<String>) -> AuthFailure {
    AuthFailure {
        code,
        message: message.into(),
    }
}

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl Incoming<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
}

/// Parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthFailure> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        failure(
            "IncompleteSignature",
            "Authorization header must use the AWS4-HMAC-SHA256 algorithm.",
        )
    })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let incomplete = |what: &str| {
        failure(
            "IncompleteSignature",
            format!("Authorization header requires '{what}' parameter. Authorization={value}"),
        )
    };
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(failure(
            "IncompleteSignature",
            format!("Credential should be scoped with a valid terminator: 'aws4_request', not '{credential}'."),
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Verifies a request signed for SES in `region`, at most `max_skew` away from `now`.
pub fn verify(
    req: &Incoming,
    credentials: &Credentials,
    region: &str,
    now: OffsetDateTime,
    max_skew: Duration,
) -> Result<(), AuthFailure> {
    verify_for_service(req, credentials, region, "ses", now, max_skew)
}

fn verify_for_service(
    req: &Incoming,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: OffsetDateTime,
    max_skew: Duration,
) -> Result<(), AuthFailure> {
    let authorization = req.header("authorization").ok_or_else(|| {
        failure(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    })?;
    let auth = parse_authorization(authorization)?;
    if auth.access_key_id != credentials.access_key_id {
        return Err(failure(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    }
    if req.header("x-amz-security-token") != credentials.session_token.as_deref() {
        return Err(failure(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    }
    let amz_date = req.header("x-amz-date").ok_or_else(|| {
        failure(
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        failure(
            "IncompleteSignature",
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        )
    })?;
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(failure(
            "SignatureDoesNotMatch",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.date,
                &amz_date[..8.min(amz_date.len())]
            ),
        ));
    }
    if auth.region != region {
        return Err(failure(
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            ),
        ));
    }
    if auth.service != service {
        return Err(failure(
            "SignatureDoesNotMatch",
            format!("Credential should be scoped to correct service: '{service}'. "),
        ));
    }
    check_skew(amz_date, signed_at, now, max_skew)?;
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    if !names.contains(&"host") || names.iter().any(|n| req.header(n).is_none()) {
        return Err(failure("SignatureDoesNotMatch", SIGNATURE_MISMATCH));
    }
    let canonical = canonical_request(req, auth.signed_headers);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        auth.date,
    );
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac(&key, part);
    }
    let expected = hex::encode(hmac(&key, &string_to_sign));
    if expected != auth.signature {
        return Err(failure("SignatureDoesNotMatch", SIGNATURE_MISMATCH));
    }
    Ok(())
}

fn check_skew(
    amz_date: &str,
    signed_at: OffsetDateTime,
    now: OffsetDateTime,
    max_skew: Duration,
) -> Result<(), AuthFailure> {
    let minutes = max_skew.whole_minutes();
    if signed_at < now - max_skew {
        return Err(failure(
            "SignatureDoesNotMatch",
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {minutes} min.)",
                format_amz_date(now - max_skew),
                format_amz_date(now)
            ),
        ));
    }
    if signed_at > now + max_skew {
        return Err(failure(
            "SignatureDoesNotMatch",
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + {minutes} min.)",
                format_amz_date(now + max_skew),
                format_amz_date(now)
            ),
        ));
    }
    Ok(())
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

pub fn format_amz_date(at: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    at.format(format).unwrap_or_default()
}

/// RFC 3986 encoding of everything but unreserved characters (and `/` when `keep_slash`).
fn aws_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in input {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&hi), Some(&lo)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            if let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The canonical request of SigV4, for a non-S3 service (path segments encoded once more).
fn canonical_request(req: &Incoming, signed_headers: &str) -> String {
    let uri = if req.path.is_empty() {
        "/".to_string()
    } else {
        aws_encode(&percent_decode(req.path), true)
    };
    let mut query: Vec<(String, String)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                aws_encode(&percent_decode(k), false),
                aws_encode(&percent_decode(v), false),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let headers: String = signed_headers
        .split(';')
        .map(|name| {
            let values: Vec<String> = req
                .header_values(name)
                .iter()
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    format!(
        "{}\n{uri}\n{query}\n{headers}\n{signed_headers}\n{}",
        req.method,
        hex::encode(Sha256::digest(req.body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Vector {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    fn suite() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aws-sig-v4-test-suite")
    }

    /// Reads NAME.req or NAME.sreq: request line, headers (with folded continuation lines), body.
    fn read_request(case: &str, ext: &str) -> Vector {
        let dir = suite().join(case);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let text = std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).expect("read vector");
        let (head, body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let target = request_line.split(' ').nth(1).expect("target");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            match line.split_once(':') {
                Some((n, v)) if !line.starts_with(' ') => {
                    headers.push((n.to_ascii_lowercase(), v.trim().to_string()))
                }
                _ => headers
                    .last_mut()
                    .expect("folded line")
                    .1
                    .push_str(&format!(",{}", line.trim())),
            }
        }
        Vector {
            method: request_line.split(' ').next().expect("method").into(),
            path: path.into(),
            query: query.into(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn incoming(v: &Vector) -> Incoming<'_> {
        Incoming {
            method: &v.method,
            path: &v.path,
            query: &v.query,
            headers: &v.headers,
            body: &v.body,
        }
    }

    fn vector_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn vector_time() -> OffsetDateTime {
        parse_amz_date("20150830T123600Z").expect("date")
    }

    const CASES: [&str; 12] = [
        "get-vanilla",
        "get-vanilla-query",
        "get-vanilla-empty-query-key",
        "get-vanilla-query-order-key-case",
        "get-vanilla-query-order-value",
        "get-vanilla-query-unreserved",
        "get-header-value-trim",
        "post-vanilla",
        "post-vanilla-query",
        "post-header-key-sort",
        "post-x-www-form-urlencoded",
        "post-x-www-form-urlencoded-parameters",
    ];

    #[test]
    fn canonical_requests_match_the_aws_vectors() {
        for case in CASES {
            let v = read_request(case, "req");
            let sreq = read_request(case, "sreq");
            let auth = sreq
                .headers
                .iter()
                .find(|(n, _)| n == "authorization")
                .expect("authz")
                .1
                .clone();
            let signed = auth
                .split("SignedHeaders=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .expect("signed");
            let expected = std::fs::read_to_string(suite().join(case).join(format!("{case}.creq")))
                .expect("creq");
            assert_eq!(canonical_request(&incoming(&v), signed), expected, "{case}");
        }
    }

    #[test]
    fn the_signed_aws_vectors_verify() {
        for case in CASES {
            let v = read_request(case, "sreq");
            let result = verify_for_service(
                &incoming(&v),
                &vector_credentials(),
                "us-east-1",
                "service",
                vector_time(),
                Duration::minutes(5),
            );
            assert_eq!(result, Ok(()), "{case}");
        }
    }

    fn with_header(v: &Vector, name: &str, value: Option<&str>) -> Vector {
        let mut headers: Vec<(String, String)> = v
            .headers
            .iter()
            .filter(|(n, _)| n != name)
            .cloned()
            .collect();
        if let Some(value) = value {
            headers.push((name.into(), value.into()));
        }
        Vector {
            headers,
            body: v.body.clone(),
            method: v.method.clone(),
            path: v.path.clone(),
            query: v.query.clone(),
        }
    }

    fn code_for(
        v: &Vector,
        credentials: &Credentials,
        region: &str,
        service: &str,
        now: OffsetDateTime,
    ) -> &'static str {
        verify_for_service(
            &incoming(v),
            credentials,
            region,
            service,
            now,
            Duration::minutes(5),
        )
        .expect_err("should fail")
        .code
    }

    #[test]
    fn each_kind_of_bad_signature_gets_its_ses_code() {
        let good = read_request("post-x-www-form-urlencoded", "sreq");
        let creds = vector_credentials();
        let t = vector_time();
        assert_eq!(
            code_for(
                &with_header(&good, "authorization", None),
                &creds,
                "us-east-1",
                "service",
                t
            ),
            "MissingAuthenticationToken"
        );
        assert_eq!(code_for(&with_header(&good, "authorization", Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request")), &creds, "us-east-1", "service", t), "IncompleteSignature");
        assert_eq!(
            code_for(
                &with_header(&good, "authorization", Some("Basic Zm9vOmJhcg==")),
                &creds,
                "us-east-1",
                "service",
                t
            ),
            "IncompleteSignature"
        );
        assert_eq!(
            code_for(
                &with_header(&good, "x-amz-date", None),
                &creds,
                "us-east-1",
                "service",
                t
            ),
            "IncompleteSignature"
        );
        let other_key = Credentials {
            access_key_id: "AKIDOTHER".into(),
            ..creds.clone()
        };
        assert_eq!(
            code_for(&good, &other_key, "us-east-1", "service", t),
            "InvalidClientTokenId"
        );
        let with_token = Credentials {
            session_token: Some("tok".into()),
            ..creds.clone()
        };
        assert_eq!(
            code_for(&good, &with_token, "us-east-1", "service", t),
            "InvalidClientTokenId"
        );
        let other_secret = Credentials {
            secret_access_key: "wrong".into(),
            ..creds.clone()
        };
        assert_eq!(
            code_for(&good, &other_secret, "us-east-1", "service", t),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            code_for(&good, &creds, "eu-west-1", "service", t),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            code_for(&good, &creds, "us-east-1", "ses", t),
            "SignatureDoesNotMatch"
        );
        let tampered = Vector {
            body: b"Param1=value2".to_vec(),
            ..with_header(&good, "x-unused", None)
        };
        assert_eq!(
            code_for(&tampered, &creds, "us-east-1", "service", t),
            "SignatureDoesNotMatch"
        );
    }

    #[test]
    fn a_signature_outside_five_minutes_is_expired_or_not_yet_current() {
        let good = read_request("post-x-www-form-urlencoded", "sreq");
        let check = |now| {
            verify_for_service(
                &incoming(&good),
                &vector_credentials(),
                "us-east-1",
                "service",
                now,
                Duration::minutes(5),
            )
        };
        assert_eq!(check(vector_time() + Duration::minutes(5)), Ok(()));
        let late = check(vector_time() + Duration::minutes(6)).expect_err("expired");
        assert_eq!(late.code, "SignatureDoesNotMatch");
        assert_eq!(late.message, "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T124200Z - 5 min.)");
        let early = check(vector_time() - Duration::minutes(6)).expect_err("not yet current");
        assert!(
            early
                .message
                .starts_with("Signature not yet current: 20150830T123600Z is still later than"),
            "{}",
            early.message
        );
    }
}
