//! Starts ses-local on a free port and talks to it like an SDK would: form-encoded Query calls
//! signed with aws-sigv4 directly (not the Worker's signing code).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

#[path = "../../../tests/support/listening.rs"]
mod listening;
use listening::ses_local_url;

pub const KEY_ID: &str = "AKIDTEST";
pub const SECRET: &str = "test-secret";
pub const FROM: &str = "noreply@signup-verify.test";

pub struct SesLocal {
    pub child: Child,
    pub url: String,
}

impl Drop for SesLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests' seed: a verified From address, a configuration set and the template `SignupVerify`.
pub fn seed_file() -> String {
    format!("{}/tests/seed.toml", env!("CARGO_MANIFEST_DIR"))
}

/// ses-local seeded from [`seed_file`], plus `extra` flags.
pub fn start(extra: &[&str]) -> SesLocal {
    start_with(&["--config", &seed_file()], extra)
}

pub fn start_with(base: &[&str], extra: &[&str]) -> SesLocal {
    // One line per call on stderr; the tests read /_requests instead.
    start_logged(base, extra, &[], Stdio::null())
}

/// ses-local with `base` and `extra` flags, `env` variables, and its stderr (the call log)
/// sent to `stderr`.
pub fn start_logged(
    base: &[&str],
    extra: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> SesLocal {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ses-local"))
        .args([
            "--port",
            "0",
            "--access-key-id",
            KEY_ID,
            "--secret-access-key",
            SECRET,
        ])
        .args(base)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start ses-local");
    let url = ses_local_url(child.stdout.take().expect("stdout"));
    SesLocal { child, url }
}

/// Runs ses-local expecting it to refuse to start; returns (exit code, stderr).
pub fn start_failure(args: &[&str], state: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ses-local"))
        .args(["--port", "0", "--state"])
        .arg(state)
        .args(args)
        .output()
        .expect("run ses-local");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub struct Signing<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

pub fn now() -> Signing<'static> {
    Signing {
        key_id: KEY_ID,
        secret: SECRET,
        region: "us-east-1",
        service: "ses",
        time: SystemTime::now(),
    }
}

/// An SES reply: status and XML body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.text("Code").unwrap_or_default()
    }

    /// The text of the first `<name>` element.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.body
            .split(&format!("<{name}>"))
            .nth(1)
            .and_then(|s| s.split(&format!("</{name}>")).next())
    }

    /// The texts of every `<name>` element.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.body
            .split(&format!("<{name}>"))
            .skip(1)
            .filter_map(|s| s.split(&format!("</{name}>")).next())
            .map(str::to_string)
            .collect()
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    form.finish()
}

pub const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The SigV4 headers for POSTing `body` (as a form) to ses-local.
pub fn sign_form(ses: &SesLocal, body: &str, s: &Signing) -> Vec<(String, String)> {
    sign_form_to(&ses.url, body, s)
}

/// The SigV4 headers for POSTing `body` (as a form) to `url`, whose host (and port) is signed
/// as the `Host` header: a client that knows the credentials can sign for any name.
pub fn sign_form_to(url: &str, body: &str, s: &Signing) -> Vec<(String, String)> {
    let identity = Credentials::new(s.key_id, s.secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(s.service)
        .time(s.time)
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        [("content-type", FORM)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// POSTs `body` with the given headers (plus the form content type).
pub fn post_with_headers(ses: &SesLocal, body: &str, headers: &[(String, String)]) -> Reply {
    let mut request = ureq::post(&ses.url).set("content-type", FORM);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    match request.send_string(body) {
        Ok(r) => Reply {
            status: r.status(),
            body: r.into_string().expect("body"),
        },
        Err(ureq::Error::Status(status, r)) => Reply {
            status,
            body: r.into_string().expect("body"),
        },
        Err(e) => panic!("transport error: {e}"),
    }
}

/// POSTs a form body, signed as `signing` says (or unsigned).
pub fn post_body(ses: &SesLocal, body: &str, signing: Option<&Signing>) -> Reply {
    let headers = signing.map(|s| sign_form(ses, body, s)).unwrap_or_default();
    post_with_headers(ses, body, &headers)
}

/// A signed Query call: `Action`, `Version` and `params`.
pub fn call(ses: &SesLocal, action: &str, params: &[(&str, &str)]) -> Reply {
    let mut pairs = vec![("Action", action), ("Version", "2010-12-01")];
    pairs.extend_from_slice(params);
    post_body(ses, &form(&pairs), Some(&now()))
}

pub fn get_json(ses: &SesLocal, path: &str) -> serde_json::Value {
    let text = ureq::get(&format!("{}{}", ses.url.trim_end_matches('/'), path))
        .set("accept", "application/json")
        .call()
        .expect("GET")
        .into_string()
        .expect("body");
    serde_json::from_str(&text).expect("json")
}

pub fn outbox(ses: &SesLocal) -> Vec<serde_json::Value> {
    get_json(ses, "/_outbox")["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn requests(ses: &SesLocal) -> Vec<serde_json::Value> {
    get_json(ses, "/_requests")["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The port ses-local listens on (from its URL).
pub fn port(ses: &SesLocal) -> u16 {
    ses.url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

/// A request to ses-local (`path` starting with `/`) carrying `host` as its `Host` header, as a
/// browser sends it for a page whose name resolves to 127.0.0.1: (status, body). Redirects are
/// not followed.
pub fn request_with_host(
    ses: &SesLocal,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    let url = format!("{}{path}", ses.url.trim_end_matches('/'));
    let mut request = no_redirects().request(method, &url).set("host", host);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.send_string(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url} (Host: {host}): {e}"),
    };
    (response.status(), response.into_string().expect("body"))
}

/// An HTTP client that does not follow redirects.
pub fn no_redirects() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build()
}

/// GET without following redirects: (status, Location).
pub fn open_without_following(url: &str) -> (u16, Option<String>) {
    let response = match no_redirects().get(url).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    (
        response.status(),
        response.header("location").map(str::to_string),
    )
}

pub fn status_of(ses: &SesLocal, identity: &str) -> Option<String> {
    call(
        ses,
        "GetIdentityVerificationAttributes",
        &[("Identities.member.1", identity)],
    )
    .text("VerificationStatus")
    .map(str::to_string)
}

pub fn template_params<'a>(name: &'a str, from: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TemplateName", name),
        ("FromEmailAddress", from),
        ("TemplateSubject", "Please confirm"),
        ("TemplateContent", "<h1>Welcome</h1><p>Confirm below.</p>"),
        ("SuccessRedirectionURL", "https://app.example/ok"),
        ("FailureRedirectionURL", "https://app.example/failed"),
    ]
}
