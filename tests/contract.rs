//! `openapi.yaml` itself: it is valid enough to check with, the README's example bodies satisfy
//! it, and the checker the e2e harness runs on every response refuses what breaks it (so the
//! e2e checks can fail).

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use serde_json::json;
use support::contract::{assert_valid, check, schema};

const WORKER: &str = "http://127.0.0.1:8787";

fn refused(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    std::panic::catch_unwind(f).is_err()
}

#[test]
fn the_readme_examples_satisfy_the_document() {
    let sent = r#"{"status":"sent","messageId":"0100-abc","statusToken":"p.m"}"#;
    assert!(check(
        "POST",
        &format!("{WORKER}/signup"),
        200,
        "application/json",
        sent
    ));
    let queued = r#"{"status":"queued","position":3,"estimatedSendAt":"2026-12-01T10:00:03.000Z"}"#;
    assert!(check(
        "POST",
        &format!("{WORKER}/signup"),
        202,
        "application/json",
        queued
    ));
    let error = r#"{"error":{"code":"cooldown","message":"Please check your inbox."}}"#;
    assert!(check(
        "POST",
        &format!("{WORKER}/signup"),
        429,
        "application/json",
        error
    ));
    let status = r#"{"status":"verified","verified":true,"confirmed":true,"sentAt":"2026-12-01T10:00:03.120Z","verifiedAt":"2026-12-01T10:01:10.450Z"}"#;
    assert!(check(
        "GET",
        &format!("{WORKER}/signup/status?token=x"),
        200,
        "application/json",
        status
    ));
    assert!(check(
        "GET",
        &format!("{WORKER}/healthz"),
        200,
        "application/json",
        r#"{"ok":true}"#
    ));
    assert!(check(
        "GET",
        &format!("{WORKER}/confirm"),
        200,
        "text/html",
        "<html></html>"
    ));
    assert!(check(
        "GET",
        &format!("{WORKER}/nowhere"),
        404,
        "application/json",
        r#"{"error":{"code":"not_found","message":"x"}}"#
    ));
    // Not the Worker's: ses-local's endpoints are left alone.
    assert!(!check(
        "GET",
        "http://127.0.0.1:4579/_outbox",
        200,
        "application/json",
        "[]"
    ));
    assert!(!check(
        "POST",
        "http://127.0.0.1:4579/",
        200,
        "text/xml",
        "<x/>"
    ));
}

#[test]
fn bodies_statuses_and_codes_that_break_the_document_are_refused() {
    let url = format!("{WORKER}/signup");
    let cases: Vec<(u16, &str)> = vec![
        (200, r#"{"status":"queued"}"#),
        (200, r#"{"status":"sent","email":"a@b.io"}"#),
        (
            202,
            r#"{"status":"queued","position":0,"estimatedSendAt":"2026-12-01T10:00:03Z"}"#,
        ),
        (429, r#"{"error":{"code":"slow_down","message":"x"}}"#),
        (400, r#"{"error":"invalid_body"}"#),
        (418, r#"{"error":{"code":"busy","message":"x"}}"#),
        (400, "not json"),
    ];
    for (status, body) in cases {
        let url = url.clone();
        assert!(
            refused(move || {
                check("POST", &url, status, "application/json", body);
            }),
            "{status} {body} passed"
        );
    }
    assert!(refused(|| {
        check(
            "GET",
            &format!("{WORKER}/signup/status"),
            200,
            "application/json",
            r#"{"status":"lost","verified":false,"confirmed":false}"#,
        );
    }));
    assert!(refused(|| {
        check(
            "DELETE",
            &format!("{WORKER}/healthz"),
            200,
            "application/json",
            r#"{"ok":true}"#,
        );
    }));
    assert!(refused(|| assert_valid(
        &schema("GateStats"),
        &json!({"queueLength": 0}),
        "stats"
    )));
}
