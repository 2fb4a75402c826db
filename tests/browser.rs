//! Browser-facing behaviour end to end: CORS, plain-form redirects, Turnstile, the honeypot and
//! the per-IP limit, through wrangler dev and ses-local.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use support::{concurrently, request_with, Reply, Spec, Stack};

const SITE: &str = "https://site.example";
const FORM: &str = "application/x-www-form-urlencoded";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn post(stack: &Stack, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    request_with(
        "POST",
        &format!("{}/signup", stack.worker),
        Some((content_type, body.as_bytes())),
        headers,
    )
}

fn json_signup(email: &str) -> String {
    serde_json::json!({ "email": email }).to_string()
}

#[test]
fn cors_echoes_allowed_origins_refuses_others_and_answers_preflights() {
    let stacks = concurrently(
        vec![("cors", false), ("cors-required", true)],
        |(name, required)| {
            let vars: Vec<(&str, &str)> = if required {
                vec![("ALLOWED_ORIGINS", SITE), ("REQUIRE_ORIGIN", "true")]
            } else {
                vec![("ALLOWED_ORIGINS", SITE)]
            };
            Stack::start(
                name,
                Spec {
                    vars: &vars,
                    ..Spec::default()
                },
            )
        },
    );
    let (stack, strict) = (&stacks[0], &stacks[1]);
    let preflight_headers = [
        ("origin", SITE),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let preflight = request_with(
        "OPTIONS",
        &format!("{}/signup", stack.worker),
        None,
        &preflight_headers,
    );
    assert_eq!(preflight.status, 204, "{}", preflight.text);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert!(preflight.header("access-control-max-age").is_some());
    assert!(preflight
        .header("vary")
        .is_some_and(|v| v.contains("Origin")));

    let evil = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let refused = request_with("OPTIONS", &format!("{}/signup", stack.worker), None, &evil);
    assert_eq!(
        (refused.status, refused.code()),
        (403, "origin_not_allowed")
    );
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let allowed = post(
        stack,
        "application/json",
        &json_signup("cors-ok@example.com"),
        &[("origin", SITE)],
    );
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SITE));
    let denied = post(
        stack,
        "application/json",
        &json_signup("cors-denied@example.com"),
        &[("origin", "https://evil.example")],
    );
    assert_eq!((denied.status, denied.code()), (403, "origin_not_allowed"));
    assert_eq!(denied.header("access-control-allow-origin"), None);
    let no_origin = post(
        stack,
        "application/json",
        &json_signup("cors-curl@example.com"),
        &[],
    );
    assert!(
        matches!(no_origin.status, 200 | 202),
        "server-to-server callers pass: {}",
        no_origin.text
    );
    let reached: Vec<String> = stack
        .ses_requests()
        .iter()
        .map(|r| r["emailAddress"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        !reached.contains(&"cors-denied@example.com".to_string()),
        "a refused origin never reaches SES"
    );

    let required = post(
        strict,
        "application/json",
        &json_signup("strict@example.com"),
        &[],
    );
    assert_eq!(
        (required.status, required.code()),
        (403, "origin_not_allowed")
    );
    assert!(strict.ses_requests().is_empty());
}

#[test]
fn a_plain_form_is_redirected_to_the_configured_pages_only() {
    let stack = Stack::start(
        "redirects",
        Spec {
            vars: &[
                ("SUCCESS_REDIRECT_URL", "https://site.example/thanks"),
                ("FAILURE_REDIRECT_URL", "https://site.example/oops"),
            ],
            ..Spec::default()
        },
    );
    let html = [("accept", BROWSER_ACCEPT)];
    let sent = post(&stack, FORM, "email=form%40example.com", &html);
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert_eq!(
        sent.header("location"),
        Some("https://site.example/thanks?status=sent")
    );

    let failed = post(&stack, FORM, "email=not-an-address", &html);
    assert_eq!(
        (failed.status, failed.header("location")),
        (303, Some("https://site.example/oops?error=invalid_email"))
    );

    // Nothing from the request chooses the target: not a Referer, not a field, not a query.
    let crafted = request_with(
        "POST",
        &format!("{}/signup?redirect=https://evil.example/&next=https://evil.example/", stack.worker),
        Some((FORM, b"email=crafted%40example.com&redirect=https%3A%2F%2Fevil.example%2F&success_url=https%3A%2F%2Fevil.example")),
        &[("accept", BROWSER_ACCEPT), ("referer", "https://evil.example/form")],
    );
    assert_eq!(crafted.status, 303);
    let location = crafted.header("location").unwrap_or_default();
    assert!(
        location.starts_with("https://site.example/thanks?status="),
        "{location}"
    );
    assert!(!location.contains("evil"), "{location}");

    // A script's fetch keeps the JSON contract.
    let json = post(
        &stack,
        "application/json",
        &json_signup("script@example.com"),
        &[("accept", "*/*")],
    );
    assert!(
        matches!(json.status, 200 | 202) && json.json["status"].is_string(),
        "{}",
        json.text
    );
}

#[test]
fn turnstile_accepts_a_dummy_token_once_and_refuses_missing_forged_or_replayed_ones() {
    let stack = Stack::start(
        "turnstile",
        Spec {
            turnstile: true,
            ..Spec::default()
        },
    );
    let with_token = |email: &str, token: &str| {
        serde_json::json!({ "email": email, "turnstileToken": token }).to_string()
    };
    let ok = post(
        &stack,
        "application/json",
        &with_token("human@example.com", "XXXX.DUMMY.TOKEN.XXXX"),
        &[],
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    let replay = post(
        &stack,
        "application/json",
        &with_token("replay@example.com", "XXXX.DUMMY.TOKEN.XXXX"),
        &[],
    );
    assert_eq!((replay.status, replay.code()), (403, "captcha_failed"));
    let forged = post(
        &stack,
        "application/json",
        &with_token("forged@example.com", "forged-token"),
        &[],
    );
    assert_eq!((forged.status, forged.code()), (403, "captcha_failed"));
    let missing = post(
        &stack,
        "application/json",
        &json_signup("missing@example.com"),
        &[],
    );
    assert_eq!((missing.status, missing.code()), (403, "captcha_failed"));
    let form = post(
        &stack,
        FORM,
        "email=form-human%40example.com&cf-turnstile-response=XXXX.DUMMY.TOKEN.XXXX.2",
        &[],
    );
    assert!(
        matches!(form.status, 200 | 202),
        "the widget's form field works too: {}",
        form.text
    );
    let reached: Vec<String> = stack
        .ses_requests()
        .iter()
        .map(|r| r["emailAddress"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        reached,
        vec!["human@example.com", "form-human@example.com"],
        "failed checks never reach SES"
    );
}

#[test]
fn a_filled_honeypot_gets_the_normal_answer_and_sends_nothing() {
    let stack = Stack::start("honeypot", Spec::default());
    let bot = post(
        &stack,
        FORM,
        "email=bot%40example.com&website=http%3A%2F%2Fspam.example",
        &[],
    );
    assert_eq!(
        (bot.status, bot.json["status"].as_str()),
        (200, Some("sent")),
        "{}",
        bot.text
    );
    assert!(bot.json["messageId"]
        .as_str()
        .is_some_and(|id| id.ends_with("-000000")));
    assert!(
        stack.ses_requests().is_empty(),
        "the bot's address is never mailed"
    );
    assert!(stack.log_contains("\"event\":\"honeypot\""));
}

#[test]
fn more_than_five_signups_from_one_ip_in_a_minute_are_rate_limited() {
    let stack = Stack::start(
        "rate-limit",
        Spec {
            vars: &[("IP_RATE_LIMIT", "on")],
            ..Spec::default()
        },
    );
    let ip = [("cf-connecting-ip", "198.51.100.7")];
    // The limit is checked before the body is read, so bodies that fail validation count too and
    // keep SES out of it. The limiter counts in fixed 60 s windows: eleven quick requests span at
    // most two, so at most ten pass, and the first five always do.
    let statuses: Vec<(u16, String, Option<String>)> = (0..11)
        .map(|_| {
            let reply = post(&stack, "application/json", "{}", &ip);
            (
                reply.status,
                reply.code().to_string(),
                reply.header("retry-after").map(str::to_string),
            )
        })
        .collect();
    assert!(
        statuses[..5]
            .iter()
            .all(|(status, code, _)| (*status, code.as_str()) == (400, "missing_email")),
        "{statuses:?}"
    );
    let limited: Vec<_> = statuses
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .collect();
    assert!(!limited.is_empty(), "{statuses:?}");
    for (_, code, retry_after) in limited {
        assert_eq!(
            (code.as_str(), retry_after.as_deref()),
            ("rate_limited", Some("60"))
        );
    }
    assert!(stack.ses_requests().is_empty());
}
