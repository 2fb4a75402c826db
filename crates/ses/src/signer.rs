//! SigV4 for the gate's own SES calls, fast: one request shape (a form POST, no query, signing
//! exactly `content-type`, `host`, `x-amz-date` and, with a session token,
//! `x-amz-security-token`), its canonical request written out directly, and the signing key (four
//! HMACs) derived once per UTC day, region and service ([`SigningKeys`]) by aws-sigv4, and kept
//! as a keyed HMAC that each signature clones. Tests hold the result byte for byte to aws-sigv4's
//! general signer ([`super::request::sign_headers`]) and to AWS's test vectors.
//!
//! Invariant: the URL's path is plain (`config::parse_ses_endpoint` refuses others), so it is
//! its own canonical form.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use aws_sigv4::sign::v4::generate_signing_key;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::AwsCredentials;
use crate::time::UtcTime;

/// One form POST to sign.
pub struct FormPost<'a> {
    pub url: &'a Url,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// The last derived signing key and what it was derived for. Owned by whoever signs many
/// requests with one set of credentials (the sender object); a new day, region, service or secret
/// derives a new one.
#[derive(Default)]
pub struct SigningKeys {
    last: RefCell<Option<DerivedKey>>,
}

struct DerivedKey {
    scope: String,
    secret: String,
    /// HMAC-SHA256 already keyed with the signing key: each signature clones it, which saves
    /// hashing the key's two pads again.
    keyed: Hmac<Sha256>,
}

/// What a signing key is derived for.
struct Scope<'a> {
    /// `date/region/service/aws4_request`
    text: &'a str,
    region: &'a str,
    service: &'a str,
    now_ms: u64,
}

impl SigningKeys {
    fn signature(&self, secret: &str, scope: &Scope<'_>, string_to_sign: &str) -> String {
        let mut last = self.last.borrow_mut();
        let key = match last.take() {
            Some(key) if key.scope == scope.text && key.secret == secret => key,
            _ => {
                let time = UNIX_EPOCH + Duration::from_millis(scope.now_ms);
                let key = generate_signing_key(secret, time, scope.region, scope.service);
                DerivedKey {
                    scope: scope.text.to_string(),
                    secret: secret.to_string(),
                    keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
                        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
                }
            }
        };
        let signature = hex::encode(
            key.keyed
                .clone()
                .chain_update(string_to_sign.as_bytes())
                .finalize()
                .into_bytes(),
        );
        *last = Some(key);
        signature
    }
}

/// The headers to add to `post`, signed at `now_ms`: `X-Amz-Date`, `Authorization` and, with a
/// session token, `X-Amz-Security-Token`. `Host` comes from the URL.
pub fn sign_form_post(
    post: &FormPost<'_>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    now_ms: u64,
    keys: &SigningKeys,
) -> Vec<(String, String)> {
    let amz_date = UtcTime::from_unix_ms(now_ms).amz_date();
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let token = credentials
        .session_token
        .as_ref()
        .map(|t| t.expose().trim());
    let signed_headers = if token.is_some() {
        "content-type;host;x-amz-date;x-amz-security-token"
    } else {
        "content-type;host;x-amz-date"
    };

    let mut canonical = String::with_capacity(256);
    let host = post.url.host_str().unwrap_or_default();
    let _ = write!(
        canonical,
        "POST\n{}\n\ncontent-type:{}\nhost:{host}",
        post.url.path(),
        post.content_type.trim()
    );
    if let Some(port) = post.url.port() {
        let _ = write!(canonical, ":{port}");
    }
    let _ = write!(canonical, "\nx-amz-date:{amz_date}\n");
    if let Some(token) = token {
        let _ = writeln!(canonical, "x-amz-security-token:{token}");
    }
    let _ = write!(
        canonical,
        "\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(post.body))
    );

    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let scope = Scope {
        text: &scope,
        region,
        service,
        now_ms,
    };
    let signature = keys.signature(
        credentials.secret_access_key.expose(),
        &scope,
        &string_to_sign,
    );
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id, scope.text
    );
    let mut headers = vec![
        ("X-Amz-Date".to_string(), amz_date),
        ("Authorization".to_string(), authorization),
    ];
    if let Some(token) = token {
        headers.push(("X-Amz-Security-Token".to_string(), token.to_string()));
    }
    headers
}
