//! The dependency-free webhook verifiers `docs/integration.md` shows, taken from that page and run
//! under Node and Python against a delivery signed now: they accept it and refuse a tampered body.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use signup_verify_gate::webhook::signature;

/// Where the verifiers are shown.
const INTEGRATION: &str = "docs/integration.md";

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced block of `language` in `page` that contains `marker`.
fn doc_block(page: &str, language: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(root().join(page)).expect(page);
    let fence = format!("```{language}\n");
    text.split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no {language} block with {marker} in {page}"))
        .to_string()
}

/// A delivery signed now: (id, timestamp, body, signature header).
fn delivery() -> (String, String, String, String) {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("base64");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let id = "msg_0123456789abcdef0123456789abcdef".to_string();
    let body = r#"{"type":"signup.verified","data":{"email":"a@b.io"}}"#.to_string();
    let signature = format!("v0,ignored {}", signature(&key, &id, now, &body));
    (id, now.to_string(), body, signature)
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn the_documented_javascript_verifier_accepts_a_real_delivery_and_refuses_a_tampered_one() {
    let verifier = doc_block(INTEGRATION, "js", "async function verifyWebhook");
    let (id, ts, body, sig) = delivery();
    let script = format!(
        "{verifier}\nconst headers = new Headers({{'webhook-id': {id:?}, 'webhook-timestamp': {ts:?}, 'webhook-signature': {sig:?}}});\n\
         const good = await verifyWebhook({SECRET:?}, headers, {body:?});\n\
         const bad = await verifyWebhook({SECRET:?}, headers, {body:?}.replace('a@b.io', 'x@b.io'));\n\
         console.log(JSON.stringify([good, bad]));\n"
    );
    let dir = root().join("target/doc-verifiers");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("verify.mjs");
    std::fs::write(&path, script).expect("write");
    let node = root().join("node_modules/.bin/node");
    let out = run(
        node.to_str().expect("path"),
        &[path.to_str().expect("path")],
    );
    assert_eq!(out, "[true,false]");
}

#[test]
fn the_documented_python_verifier_accepts_a_real_delivery_and_refuses_a_tampered_one() {
    let verifier = doc_block(INTEGRATION, "python", "def verify_webhook");
    let (id, ts, body, sig) = delivery();
    let script = format!(
        "{verifier}\nheaders = {{'webhook-id': {id:?}, 'webhook-timestamp': {ts:?}, 'webhook-signature': {sig:?}}}\n\
         body = {body:?}.encode()\n\
         print([verify_webhook({SECRET:?}, headers, body), verify_webhook({SECRET:?}, headers, body.replace(b'a@b.io', b'x@b.io'))])\n"
    );
    let out = run("python3", &["-c", &script]);
    assert_eq!(out, "[True, False]");
}
