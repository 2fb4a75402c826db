//! The demo page in a real browser (Debian's Chromium driven by playwright-core): type an
//! address, submit, see the status, with JavaScript and without; a mistyped domain is refused with
//! its fix offered (one click with JavaScript); the outbox gets exactly the addresses signed up. Screenshots of each final state go to `target/screenshots/`.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{request, Spec, Stack};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_demo_page_signs_up_with_and_without_javascript_in_chromium() {
    let chromium = support::chromium();
    assert!(
        PathBuf::from(&chromium).exists(),
        "{chromium} is missing: run `make test` (scripts/setup.sh installs Debian's chromium)"
    );
    let stack = Stack::start(
        "demo-browser",
        Spec {
            vars: &[
                ("DEMO_PAGE", "true"),
                ("SUCCESS_REDIRECT_URL", "/"),
                ("FAILURE_REDIRECT_URL", "/"),
            ],
            ..Spec::default()
        },
    );
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let output = Command::new(root().join("node_modules/.bin/node"))
        .arg(root().join("tests/browser/demo_page.mjs"))
        .arg(&stack.worker)
        .arg(&shots)
        .env("CHROMIUM_PATH", &chromium)
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stderr}"
    );
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");

    assert!(
        result["js"]["status"]
            .as_str()
            .is_some_and(|s| s.contains("inbox") || s.contains("queue")),
        "{result}"
    );
    assert!(
        result["js"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with('/')),
        "with JavaScript the page stays put: {result}"
    );
    let nojs_url = result["no-js"]["url"].as_str().unwrap_or_default();
    assert!(
        nojs_url.contains("/?status="),
        "without JavaScript the form posts and is redirected back: {result}"
    );
    for name in ["js", "no-js"] {
        assert!(shots.join(format!("demo-{name}.png")).exists());
    }

    // The typo: refused with the fix offered, and one click signed up the fixed address.
    let typo = &result["typo-js"];
    assert!(
        typo["offered"]
            .as_str()
            .is_some_and(|s| s.contains("doesn't exist")
                && s.contains("Did you mean browser-typo@hotmail.com?")),
        "{result}"
    );
    assert_eq!(typo["field"], "browser-typo@hotmail.com", "{result}");
    assert!(
        typo["status"]
            .as_str()
            .is_some_and(|s| s.contains("inbox") || s.contains("queue")),
        "{result}"
    );
    let nojs_typo = &result["typo-no-js"];
    assert!(
        nojs_typo["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/?error=domain_not_found&suggested_domain=hotmail.com")),
        "{result}"
    );
    assert!(
        nojs_typo["status"]
            .as_str()
            .is_some_and(|s| s.contains("Did you mean an address at hotmail.com?")),
        "{result}"
    );

    let mut sent: Vec<String> = stack
        .wait_for_outbox(3, Duration::from_secs(20))
        .iter()
        .map(|m| m["emailAddress"].as_str().unwrap_or_default().to_string())
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            "browser-js@example.com",
            "browser-nojs@example.com",
            "browser-typo@hotmail.com"
        ]
    );

    let page = request("GET", &format!("{}/", stack.worker), None);
    assert!(page
        .header("content-security-policy")
        .is_some_and(|csp| csp.contains("default-src 'none'")));
}

#[test]
fn the_demo_page_is_off_unless_enabled() {
    let stack = Stack::start("demo-off", Spec::default());
    let page = request("GET", &format!("{}/", stack.worker), None);
    assert_eq!((page.status, page.code()), (404, "not_found"));
}
