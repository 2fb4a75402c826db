//! `openapi.yaml` itself: it is valid enough to check with, the README's example bodies satisfy
//! it, every webhook event a signup's lifecycle makes satisfies its entry of `webhooks`, and the
//! checker the e2e harness runs on every response and every webhook delivery refuses what breaks
//! it (so the e2e checks can fail).

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use serde_json::{json, Value};
use signup_verify_domain::email::EmailAddress;
use signup_verify_gate::tracking::Confirmation;
use signup_verify_gate::tracking::Effects;
use signup_verify_gate::tracking::Signup;
use signup_verify_gate::tracking::SignupState;
use signup_verify_gate::webhook;
use signup_verify_gate::webhook::event_body;
use signup_verify_gate::webhook::event_id;
use support::contract::{assert_valid, check, schema, webhook_names, webhook_violations};

const WORKER: &str = "http://127.0.0.1:8787";

/// The headers of an answer with this content type (and the headers every JSON answer has).
fn typed(content_type: &str) -> Vec<(String, String)> {
    [
        ("content-type", content_type),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'",
        ),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// `headers` and `extra`.
fn with(mut headers: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    headers
}

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
        &typed("application/json"),
        sent
    ));
    let queued = r#"{"status":"queued","position":3,"estimatedSendAt":"2026-12-01T10:00:03.000Z"}"#;
    assert!(check(
        "POST",
        &format!("{WORKER}/signup"),
        202,
        &typed("application/json"),
        queued
    ));
    let error = r#"{"error":{"code":"cooldown","message":"Please check your inbox."}}"#;
    assert!(check(
        "POST",
        &format!("{WORKER}/signup"),
        429,
        &with(typed("application/json"), &[("retry-after", "60")]),
        error
    ));
    let status = r#"{"status":"verified","verified":true,"confirmed":true,"sentAt":"2026-12-01T10:00:03.120Z","verifiedAt":"2026-12-01T10:01:10.450Z"}"#;
    assert!(check(
        "GET",
        &format!("{WORKER}/signup/status?token=x"),
        200,
        &typed("application/json"),
        status
    ));
    assert!(check(
        "GET",
        &format!("{WORKER}/healthz"),
        200,
        &typed("application/json"),
        r#"{"ok":true}"#
    ));
    assert!(check(
        "GET",
        &format!("{WORKER}/confirm"),
        200,
        &typed("text/html"),
        "<html></html>"
    ));
    assert!(check(
        "GET",
        &format!("{WORKER}/nowhere"),
        404,
        &typed("application/json"),
        r#"{"error":{"code":"not_found","message":"x"}}"#
    ));
    // Not the Worker's: ses-local's endpoints are left alone.
    assert!(!check(
        "GET",
        "http://127.0.0.1:4579/_outbox",
        200,
        &typed("application/json"),
        "[]"
    ));
    assert!(!check(
        "POST",
        "http://127.0.0.1:4579/",
        200,
        &typed("text/xml"),
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
                check("POST", &url, status, &typed("application/json"), body);
            }),
            "{status} {body} passed"
        );
    }
    assert!(refused(|| {
        check(
            "GET",
            &format!("{WORKER}/signup/status"),
            200,
            &typed("application/json"),
            r#"{"status":"lost","verified":false,"confirmed":false}"#,
        );
    }));
    assert!(refused(|| {
        check(
            "DELETE",
            &format!("{WORKER}/healthz"),
            200,
            &typed("application/json"),
            r#"{"ok":true}"#,
        );
    }));
    assert!(refused(|| assert_valid(
        &schema("GateStats"),
        &json!({"queueLength": 0}),
        "stats"
    )));
}

#[test]
fn a_redirect_without_location_and_headers_the_code_never_sends_are_refused() {
    let signup = format!("{WORKER}/signup");
    let cookie = "sv_confirm=c.k; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax";
    let form_answer = || {
        vec![
            (
                "location".to_string(),
                "http://127.0.0.1:8787/?status=sent".to_string(),
            ),
            ("cache-control".to_string(), "no-store".to_string()),
            ("set-cookie".to_string(), cookie.to_string()),
        ]
    };
    assert!(check("POST", &signup, 303, &form_answer(), ""));
    let replaced = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
        form_answer()
            .into_iter()
            .filter(|(n, _)| n != name)
            .chain(value.map(|v| (name.to_string(), v.to_string())))
            .collect()
    };
    let refused_headers = [
        replaced("location", None),
        // Relative: the code always resolves it against the Worker's origin.
        replaced("location", Some("/?status=sent")),
        // Not one of the three cookies the code sets.
        replaced("set-cookie", Some("sv_confirm=c.k; Path=/")),
        replaced("cache-control", None),
    ];
    for headers in refused_headers {
        let (signup, shown) = (signup.clone(), format!("{headers:?}"));
        assert!(
            refused(move || {
                check("POST", &signup, 303, &headers, "");
            }),
            "{shown} passed"
        );
    }
    let busy = r#"{"error":{"code":"busy","message":"x"}}"#;
    assert!(
        refused(|| {
            check(
                "POST",
                &format!("{WORKER}/signup"),
                429,
                &typed("application/json"),
                busy,
            );
        }),
        "a 429 without Retry-After passed"
    );
    assert!(
        refused(|| {
            let headers = with(typed("application/json"), &[("retry-after", "0")]);
            check("POST", &format!("{WORKER}/signup"), 429, &headers, busy);
        }),
        "Retry-After: 0 passed"
    );
    let bad_token = r#"{"error":{"code":"invalid_token","message":"x"}}"#;
    assert!(
        refused(|| {
            check(
                "GET",
                &format!("{WORKER}/signup/status"),
                401,
                &typed("application/json"),
                bad_token,
            );
        }),
        "a 401 without WWW-Authenticate passed"
    );
}

/// Every event the gate reports for `signup` after `effects`, as delivered: headers and body.
fn delivered(
    signup: &Signup,
    effects: &Effects,
    at_ms: u64,
) -> Vec<(Vec<(String, String)>, String)> {
    effects
        .events
        .iter()
        .map(|kind| {
            let body = event_body(*kind, at_ms, &signup.event_data());
            let id = event_id("key", signup.signed_up_ms, *kind);
            (
                webhook::headers(b"0123456789abcdef01234567", &id, at_ms, &body),
                body,
            )
        })
        .collect()
}

/// Every kind of event a signup's lifecycle (`gate::tracking`) makes, with each fact it can
/// carry: verified, confirmed, expired (plain, `already_verified`, `unchecked`), rejected,
/// dropped (`exhausted`, `expired`, `replaced` after a verification), contested or not.
fn every_event() -> Vec<(Vec<(String, String)>, String)> {
    const T: u64 = 1_764_000_000_000;
    const TTL: u64 = 24 * 3_600_000;
    let email = EmailAddress::parse("Jane+Signup@Example.COM").expect("valid");
    let queued = |contested: bool| {
        let mut signup = Signup::queued(&email, T, "n".into());
        signup.contested = contested;
        signup
    };
    let mut events = Vec::new();
    for contested in [false, true] {
        let mut verified = queued(contested);
        verified.sent(Some("0100-abc".into()), T + 100);
        let effects = verified.checked(Some("Success"), T + 60_000, TTL, true);
        events.extend(delivered(&verified, &effects, T + 60_000));
        match verified.confirm() {
            Confirmation::Recorded(effects) => {
                events.extend(delivered(&verified, &effects, T + 90_000))
            }
            other => panic!("a verified signup's confirmation: {other:?}"),
        }

        let mut replaced = queued(contested);
        replaced.sent(None, T + 100);
        let effects = replaced.checked(Some("Success"), T + 60_000, TTL, true);
        events.extend(delivered(&replaced, &effects, T + 60_000));
        let effects = replaced.failed(SignupState::Dropped, Some("replaced"));
        events.extend(delivered(&replaced, &effects, T + 70_000));

        let mut expired = queued(contested);
        expired.sent(Some("0100-abc".into()), T + 100);
        let effects = expired.checked(Some("Pending"), T + 100 + TTL, TTL, true);
        events.extend(delivered(&expired, &effects, T + 100 + TTL));

        let mut known = queued(contested);
        known.sent(Some("0100-abc".into()), T + 100);
        let effects = known.checked(Some("Success"), T + 6_000, TTL, false);
        events.extend(delivered(&known, &effects, T + 6_000));

        let mut unchecked = queued(contested);
        unchecked.sent(Some("0100-abc".into()), T + 100);
        let late = T + 100 + TTL + 3_600_000;
        let effects = unchecked.check_failed(late, late + 60_000, TTL);
        events.extend(delivered(&unchecked, &effects, late));

        let mut rejected = queued(contested);
        let effects = rejected.failed(SignupState::Rejected, None);
        events.extend(delivered(&rejected, &effects, T + 1_000));

        for reason in ["exhausted", "expired"] {
            let mut dropped = queued(contested);
            let effects = dropped.failed(SignupState::Dropped, Some(reason));
            events.extend(delivered(&dropped, &effects, T + 1_000));
        }
    }
    events
}

#[test]
fn every_event_a_signups_lifecycle_makes_satisfies_its_webhook_in_the_document() {
    let events = every_event();
    let mut kinds: Vec<String> = Vec::new();
    for (headers, body) in &events {
        let breaks = webhook_violations(headers, body);
        assert!(breaks.is_empty(), "{body}: {breaks:?}");
        let body: Value = serde_json::from_str(body).expect("json");
        let kind = body["type"].as_str().expect("type").to_string();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "signup.confirmed",
            "signup.dropped",
            "signup.expired",
            "signup.rejected",
            "signup.verified"
        ],
        "every event type the gate sends was made"
    );
    let reasons: Vec<Value> = events
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).expect("json")["data"]["reason"].clone()
        })
        .collect();
    for reason in [
        "already_verified",
        "unchecked",
        "exhausted",
        "expired",
        "replaced",
    ] {
        assert!(
            reasons.contains(&json!(reason)),
            "no event with reason {reason}"
        );
    }
    let mut documented = webhook_names();
    documented.sort();
    assert_eq!(
        documented, kinds,
        "webhooks documents exactly the types sent"
    );
}

#[test]
fn a_renamed_field_a_fact_an_event_cannot_carry_an_unknown_type_or_a_bad_header_is_refused() {
    let (headers, body) = every_event()
        .into_iter()
        .find(|(_, body)| body.contains("signup.verified"))
        .expect("a verified event");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert!(webhook_violations(&headers, &body.to_string()).is_empty());
    let changed = |change: fn(&mut Value)| {
        let mut body = body.clone();
        change(&mut body);
        body.to_string()
    };
    let bodies = [
        changed(|b| {
            let at = b["data"]["verifiedAt"].take();
            b["data"]
                .as_object_mut()
                .expect("data")
                .remove("verifiedAt");
            b["data"]["verified_at"] = at;
        }),
        changed(|b| {
            let email = b["data"]["email"].take();
            b["data"].as_object_mut().expect("data").remove("email");
            b["data"]["address"] = email;
        }),
        changed(|b| b["data"]["confirmed"] = json!(true)),
        changed(|b| b["data"]["reason"] = json!("expired")),
        changed(|b| b["data"]["contested"] = json!(false)),
        changed(|b| b["timestamp"] = json!("2026-12-01 10:00:00")),
        changed(|b| b["type"] = json!("signup.clicked")),
        changed(|b| b["id"] = json!("msg_1")),
        "not json".to_string(),
    ];
    for broken in bodies {
        assert!(
            !webhook_violations(&headers, &broken).is_empty(),
            "{broken} passed"
        );
    }
    let body = body.to_string();
    for (name, value) in [
        ("webhook-id", Some("evt_1")),
        ("webhook-id", None),
        ("webhook-timestamp", Some("1764000000.5")),
        ("webhook-signature", Some("v1,short")),
        ("webhook-signature", None),
        ("content-type", Some("text/plain")),
    ] {
        let headers: Vec<(String, String)> = headers
            .iter()
            .filter(|(n, _)| n != name)
            .cloned()
            .chain(value.map(|v| (name.to_string(), v.to_string())))
            .collect();
        assert!(
            !webhook_violations(&headers, &body).is_empty(),
            "{name}: {value:?} passed"
        );
    }
}
