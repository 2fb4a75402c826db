//! The SES Query requests the gate makes ([`SesCall`]: `SendCustomVerificationEmail`,
//! `GetIdentityVerificationAttributes` for up to 100 identities, `DeleteIdentity`, and one page
//! of `ListIdentities` for the email identities that exist before the gate's sends): their
//! form-encoded bodies and their SigV4 headers, signed by aws-sigv4's own signer
//! ([`sign_headers`], held to AWS's test vectors). Time is a parameter; nothing here reads a
//! clock (the wasm32 clock traps).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::config::AwsCredentials;
use crate::config::SesConfig;
use signup_verify_domain::email::EmailAddress;
#[cfg(test)]
use signup_verify_domain::settings::Secret;

pub const API_VERSION: &str = "2010-12-01";
pub const SEND_ACTION: &str = "SendCustomVerificationEmail";
pub const CHECK_ACTION: &str = "GetIdentityVerificationAttributes";
pub const DELETE_ACTION: &str = "DeleteIdentity";
pub const LIST_ACTION: &str = "ListIdentities";
/// Identities asked for per `ListIdentities` page (SES's most).
pub const LIST_PAGE_SIZE: usize = 1000;
/// SES answers at most this many identities per `GetIdentityVerificationAttributes`.
pub const MAX_IDENTITIES_PER_CHECK: usize = 100;
/// SES signs as `ses`, although its host is `email.<region>.amazonaws.com`.
pub const SIGNING_NAME: &str = "ses";
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A request ready for the wire: these exact body bytes were signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Signing failed: only possible with a URL or header the signer cannot read.
#[derive(Debug)]
pub struct SigningError(String);

impl std::fmt::Display for SigningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigV4 signing failed: {}", self.0)
    }
}

impl std::error::Error for SigningError {}

/// One SES call. Every kind spends the region's one shared budget (about one call a second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SesCall {
    /// Mail `email` the custom verification email.
    Send { email: EmailAddress },
    /// Ask for the verification status of up to [`MAX_IDENTITIES_PER_CHECK`] identities.
    Check { identities: Vec<EmailAddress> },
    /// Remove one email identity from the account.
    Delete { identity: EmailAddress },
    /// One page of the account's email identities (`NextToken` from the previous page).
    List { next_token: Option<String> },
}

impl SesCall {
    /// The SES action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Send { .. } => SEND_ACTION,
            Self::Check { .. } => CHECK_ACTION,
            Self::Delete { .. } => DELETE_ACTION,
            Self::List { .. } => LIST_ACTION,
        }
    }

    /// Every address the call names (for redacting SES's messages in the log).
    pub fn addresses(&self) -> &[EmailAddress] {
        match self {
            Self::Send { email } => std::slice::from_ref(email),
            Self::Check { identities } => identities,
            Self::Delete { identity } => std::slice::from_ref(identity),
            Self::List { .. } => &[],
        }
    }
}

/// The Query body. `form_urlencoded` escapes `+` as `%2B` (SES would read a bare `+` as a space)
/// and `@` as `%40`.
pub fn build_send_body(
    email: &EmailAddress,
    template_name: &str,
    configuration_set: Option<&str>,
) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", SEND_ACTION)
        .append_pair("Version", API_VERSION)
        .append_pair("EmailAddress", email.as_str())
        .append_pair("TemplateName", template_name);
    if let Some(set) = configuration_set {
        form.append_pair("ConfigurationSetName", set);
    }
    form.finish()
}

/// The signed `SendCustomVerificationEmail` call for `email`, signed at `now_ms` (Unix millis).
/// The form body of a non-sending call (a [`SesCall::Send`] body is [`build_send_body`]).
fn build_identity_body(action: &str, identities: &[EmailAddress]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action)
        .append_pair("Version", API_VERSION);
    if action == DELETE_ACTION {
        for identity in identities {
            form.append_pair("Identity", identity.as_str());
        }
    } else {
        for (n, identity) in identities.iter().enumerate() {
            form.append_pair(&format!("Identities.member.{}", n + 1), identity.as_str());
        }
    }
    form.finish()
}

/// The form body of one `ListIdentities` page of email identities.
fn build_list_body(next_token: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", LIST_ACTION)
        .append_pair("Version", API_VERSION)
        .append_pair("IdentityType", "EmailAddress")
        .append_pair("MaxItems", &LIST_PAGE_SIZE.to_string());
    if let Some(token) = next_token {
        form.append_pair("NextToken", token);
    }
    form.finish()
}

/// `call` as a signed request, dated `now_ms`. An error only if aws-sigv4 cannot read the
/// endpoint (`SesConfig` parsed it) or a header value (a session token with control
/// characters).
pub fn build_request(
    config: &SesConfig,
    call: &SesCall,
    now_ms: u64,
) -> Result<SignedRequest, SigningError> {
    let body = match call {
        SesCall::Send { email } => build_send_body(
            email,
            &config.template_name,
            config.configuration_set.as_deref(),
        ),
        SesCall::List { next_token } => build_list_body(next_token.as_deref()),
        other => build_identity_body(other.action(), other.addresses()),
    };
    let url = config.endpoint.as_str();
    let content_type = ("Content-Type", FORM_CONTENT_TYPE);
    let mut headers = vec![(content_type.0.to_string(), content_type.1.to_string())];
    headers.extend(sign_headers(
        "POST",
        url,
        &[content_type],
        body.as_bytes(),
        &config.credentials,
        &config.region,
        SIGNING_NAME,
        UNIX_EPOCH + Duration::from_millis(now_ms),
    )?);
    Ok(SignedRequest {
        url: url.to_string(),
        headers,
        body,
    })
}

/// SigV4-signs a request and returns the headers to add to it: `X-Amz-Date`, `Authorization` and,
/// with a session token, `X-Amz-Security-Token` (which is signed too). `Host` is taken from `url`.
#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SigningError> {
    let identity = Credentials::new(
        &credentials.access_key_id,
        credentials.secret_access_key.expose(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().trim().to_string()),
        None,
        "signup-verify",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SigningError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SigningError(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use signup_verify_domain::settings::Vars;
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    const VECTOR_TIME_SECS: u64 = 1_440_938_160; // 20150830T123600Z

    fn vector_credentials(session_token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(Secret::from),
        }
    }

    fn suite_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/aws-sig-v4-test-suite")
    }

    /// Reads `NAME.req` (request line, headers, blank line, body) and `NAME.authz`.
    fn load_vector(relative: &str) -> (String, String, Vec<(String, String)>, Vec<u8>, String) {
        let dir = suite_dir().join(relative);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("case name")
            .to_string();
        let req = std::fs::read_to_string(dir.join(format!("{name}.req"))).expect("read .req");
        let authz =
            std::fs::read_to_string(dir.join(format!("{name}.authz"))).expect("read .authz");
        let (head, body) = req.split_once("\n\n").unwrap_or((req.as_str(), ""));
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let mut parts = request_line.split(' ');
        let method = parts.next().expect("method").to_string();
        let path = parts.next().expect("path").to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.to_string(), v.to_string())
            })
            .collect();
        let host = &headers.iter().find(|(n, _)| n == "Host").expect("host").1;
        (
            method,
            format!("https://{host}{path}"),
            headers,
            body.as_bytes().to_vec(),
            authz.trim().to_string(),
        )
    }

    fn sign_vector(relative: &str, session_token: Option<&str>) -> (String, String) {
        let (method, url, headers, body, expected) = load_vector(relative);
        // The signer derives Host from the URL and X-Amz-Date from the time; the rest is passed on.
        let passed: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "Host" | "X-Amz-Date" | "X-Amz-Security-Token"))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let added = sign_headers(
            &method,
            &url,
            &passed,
            &body,
            &vector_credentials(session_token),
            "us-east-1",
            "service",
            UNIX_EPOCH + Duration::from_secs(VECTOR_TIME_SECS),
        )
        .expect("sign");
        let authz = added
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .expect("authorization header")
            .1
            .clone();
        (authz, expected)
    }

    #[test]
    fn the_aws_form_post_vectors_are_reproduced_byte_for_byte() {
        for case in [
            "post-vanilla",
            "post-vanilla-query",
            "post-vanilla-empty-query-value",
            "post-x-www-form-urlencoded",
            "post-x-www-form-urlencoded-parameters",
            "post-header-key-case",
            "post-header-key-sort",
            "post-header-value-case",
        ] {
            let (actual, expected) = sign_vector(case, None);
            assert_eq!(actual, expected, "{case}");
        }
    }

    #[test]
    fn the_aws_session_token_vector_signs_the_token_header() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let (actual, expected) = sign_vector("post-sts-token/post-sts-header-before", Some(token));
        assert_eq!(actual, expected);
    }

    /// Whether ses-local's verifier (AWS's specification, without aws-sigv4) accepts `request`
    /// as fetch would send it (with its `Host`), for `config`'s credentials and region, at `now_ms`.
    fn ses_local_accepts(config: &SesConfig, request: &SignedRequest, now_ms: u64) -> bool {
        let url = url::Url::parse(&request.url).expect("url");
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().expect("host")),
            None => url.host_str().expect("host").to_string(),
        };
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        headers.push(("host".into(), host));
        let incoming = ses_local::sigv4::Incoming {
            method: "POST",
            path: url.path(),
            query: "",
            headers: &headers,
            body: request.body.as_bytes(),
        };
        let credentials = ses_local::sigv4::Credentials {
            access_key_id: config.credentials.access_key_id.clone(),
            secret_access_key: config.credentials.secret_access_key.expose().to_string(),
            session_token: config
                .credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().trim().to_string()),
        };
        let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
            .expect("a time");
        ses_local::sigv4::verify(
            &incoming,
            &credentials,
            &config.region,
            now,
            time::Duration::minutes(5),
        )
        .is_ok()
    }

    #[test]
    fn every_call_passes_an_independent_verifier_across_days_endpoints_and_tokens() {
        let calls = [
            send("user+tag@example.com"),
            SesCall::Check {
                identities: vec![email("a+1@b.io"), email("c@d.io")],
            },
            SesCall::Delete {
                identity: email("a@b.io"),
            },
            SesCall::List {
                next_token: Some("a+b/c==".into()),
            },
        ];
        let configs = [
            ses_config(&[]),
            ses_config(&[("SES_ENDPOINT", "http://127.0.0.1:4579/")]),
            ses_config(&[("SES_ENDPOINT", "https://ses.example.com:8443/v1/ses")]),
            ses_config(&[("AWS_SESSION_TOKEN", "  token/with+chars==  ")]),
            ses_config(&[("AWS_REGION", "eu-west-1")]),
        ];
        let mut signatures = std::collections::HashSet::new();
        for now_ms in [
            1_440_938_160_000,
            1_440_979_199_999,
            1_440_979_200_000,
            1_796_126_400_123,
        ] {
            for config in &configs {
                for call in &calls {
                    let signed = build_request(config, call, now_ms).expect("signed");
                    assert!(
                        ses_local_accepts(config, &signed, now_ms),
                        "{call:?} at {now_ms} for {}",
                        signed.url
                    );
                    // The verifier is not a yes-man: a changed body, or another region, fails.
                    let mut tampered = signed.clone();
                    tampered.body.push('x');
                    assert!(!ses_local_accepts(config, &tampered, now_ms));
                    let elsewhere = ses_config(&[("AWS_REGION", "ap-south-1")]);
                    assert!(!ses_local_accepts(&elsewhere, &signed, now_ms));
                    let authorization = signed
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                        .expect("signed")
                        .1
                        .clone();
                    signatures.insert(authorization);
                }
            }
        }
        assert_eq!(signatures.len(), 4 * 5 * 4, "every case signs differently");
    }

    fn ses_config(extra: &[(&str, &str)]) -> SesConfig {
        let mut vars = vec![
            ("AWS_REGION", "us-east-1"),
            ("SES_TEMPLATE_NAME", "SignupVerify"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
        ];
        vars.extend_from_slice(extra);
        let lookup = |name: &str| {
            vars.iter()
                .rev() // an extra setting overrides the base one
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        SesConfig::from_vars(&Vars::new(&lookup)).expect("config")
    }

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid address")
    }

    #[test]
    fn the_query_body_escapes_plus_and_at_so_ses_reads_the_address_exactly() {
        let body = build_send_body(&email("user+tag@example.com"), "SignupVerify", None);
        assert_eq!(
            body,
            "Action=SendCustomVerificationEmail&Version=2010-12-01\
             &EmailAddress=user%2Btag%40example.com&TemplateName=SignupVerify"
        );
        let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            decoded[2],
            ("EmailAddress".into(), "user+tag@example.com".into())
        );
    }

    #[test]
    fn the_configuration_set_is_sent_only_when_configured() {
        let with = build_send_body(&email("a@b.io"), "T 1&2", Some("signup events"));
        assert!(
            with.ends_with("&TemplateName=T+1%262&ConfigurationSetName=signup+events"),
            "{with}"
        );
        assert!(!build_send_body(&email("a@b.io"), "T", None).contains("ConfigurationSetName"));
    }

    #[test]
    fn a_fixed_clock_ses_request_has_a_stable_signature_over_the_exact_body() {
        let request = build_request(
            &ses_config(&[]),
            &send("user+tag@example.com"),
            1_440_938_160_000,
        )
        .expect("signed");
        assert_eq!(request.url, "https://email.us-east-1.amazonaws.com/");
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("content-type").as_deref(), Some(FORM_CONTENT_TYPE));
        assert_eq!(header("x-amz-date").as_deref(), Some("20150830T123600Z"));
        assert_eq!(header("x-amz-security-token"), None);
        // Computed independently (Python hmac/hashlib over the canonical request written out by
        // hand); any change to body, headers, scope or service name changes it.
        assert_eq!(
            header("authorization").as_deref(),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=e8d27c248fd88ec756f1b8e087eee0b0d792cd1ec2a65a6b1faf427e9f98f751"
            )
        );
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let config = ses_config(&[("AWS_SESSION_TOKEN", "session-token-value")]);
        let request = build_request(&config, &send("a@b.io"), 1_440_938_160_000).expect("signed");
        let token = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-security-token"));
        assert_eq!(token.map(|(_, v)| v.as_str()), Some("session-token-value"));
        let authz = &request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .expect("authz")
            .1;
        assert!(
            authz.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{authz}"
        );
    }

    #[test]
    fn a_loopback_endpoint_with_a_port_is_signed_for_that_host() {
        let config = ses_config(&[("SES_ENDPOINT", "http://127.0.0.1:4579/")]);
        let a = build_request(&config, &send("a@b.io"), 1_440_938_160_000).expect("signed");
        let b =
            build_request(&ses_config(&[]), &send("a@b.io"), 1_440_938_160_000).expect("signed");
        assert_eq!(a.url, "http://127.0.0.1:4579/");
        assert_eq!(a.body, b.body);
        assert_ne!(a.headers, b.headers, "the host is part of the signature");
    }

    #[test]
    fn a_list_asks_for_one_page_of_email_identities_and_passes_the_next_token_back() {
        let first = build_request(
            &ses_config(&[]),
            &SesCall::List { next_token: None },
            1_440_938_160_000,
        )
        .expect("signed");
        assert_eq!(
            first.body,
            "Action=ListIdentities&Version=2010-12-01&IdentityType=EmailAddress&MaxItems=1000"
        );
        let next = build_request(
            &ses_config(&[]),
            &SesCall::List {
                next_token: Some("a+b/c==".into()),
            },
            1_440_938_160_000,
        )
        .expect("signed");
        assert!(
            next.body.ends_with("&NextToken=a%2Bb%2Fc%3D%3D"),
            "{}",
            next.body
        );
    }

    fn send(address: &str) -> SesCall {
        SesCall::Send {
            email: email(address),
        }
    }

    #[test]
    fn a_check_names_each_identity_as_a_numbered_member_and_a_delete_names_one() {
        let check = SesCall::Check {
            identities: vec![email("a+1@b.io"), email("c@d.io")],
        };
        let request = build_request(&ses_config(&[]), &check, 1_440_938_160_000).expect("signed");
        assert_eq!(
            request.body,
            "Action=GetIdentityVerificationAttributes&Version=2010-12-01\
             &Identities.member.1=a%2B1%40b.io&Identities.member.2=c%40d.io"
        );
        let delete = SesCall::Delete {
            identity: email("a+1@b.io"),
        };
        let request = build_request(&ses_config(&[]), &delete, 1_440_938_160_000).expect("signed");
        assert_eq!(
            request.body,
            "Action=DeleteIdentity&Version=2010-12-01&Identity=a%2B1%40b.io"
        );
    }
}
