//! What the ses-setup tests share: the repository root and a ses-local (the release binary
//! `make build` puts in target/release) on a free port, stopped when dropped.

#![allow(dead_code)]

#[path = "../../../tests/support/listening.rs"]
mod listening;

use listening::ses_local_url;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The credentials every test's ses-local accepts.
pub const KEY_ID: &str = "AKIDSETUPTEST";
pub const SECRET: &str = "ses-setup-test-secret";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct SesLocal {
    child: Child,
    pub url: String,
}

impl Drop for SesLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ses-local that takes [`KEY_ID`] and [`SECRET`], with `extra` flags.
pub fn ses_local(extra: &[&str]) -> SesLocal {
    let bin = root().join("target/release/ses-local");
    assert!(
        bin.exists(),
        "{} is missing: run `make build` (make test does)",
        bin.display()
    );
    let mut child = Command::new(bin)
        .args([
            "--port",
            "0",
            "--access-key-id",
            KEY_ID,
            "--secret-access-key",
            SECRET,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ses-local");
    let url = ses_local_url(child.stdout.take().expect("stdout"));
    SesLocal { child, url }
}

/// Runs `command` to its end: its exit code (-1 if a signal ended it) and its stdout then stderr.
pub fn run(command: &mut Command) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the command runs");
    let text = String::from_utf8_lossy(&stdout).into_owned() + &String::from_utf8_lossy(&stderr);
    (status.code().unwrap_or(-1), text)
}

/// One SES Query call to `ses`, signed for `region` with [`KEY_ID`] and [`SECRET`] (ses-local
/// answers from that region's SES): the HTTP status and the XML body.
pub fn ses_call(
    ses: &SesLocal,
    region: &str,
    action: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    use signup_verify_ses::config::AwsCredentials;
    use signup_verify_ses::request::sign_headers;
    const CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action)
        .append_pair("Version", "2010-12-01");
    for (name, value) in params {
        form.append_pair(name, value);
    }
    let body = form.finish();
    let credentials = AwsCredentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.to_string().into(),
        session_token: None,
    };
    // A test on the host, not the Worker: the host clock is the signing time.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    let signed = sign_headers(
        "POST",
        &ses.url,
        &[("Content-Type", CONTENT_TYPE)],
        body.as_bytes(),
        &credentials,
        region,
        "ses",
        now,
    )
    .expect("sign");
    let mut request = ureq::post(&ses.url).set("Content-Type", CONTENT_TYPE);
    for (name, value) in &signed {
        request = request.set(name, value);
    }
    match request.send_string(&body) {
        Ok(response) => (response.status(), response.into_string().expect("body")),
        Err(ureq::Error::Status(status, response)) => {
            (status, response.into_string().expect("error body"))
        }
        Err(e) => panic!("{action} in {region}: {e}"),
    }
}
