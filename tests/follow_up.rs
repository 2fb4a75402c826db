//! Issue G end to end, through `wrangler dev` and ses-local: status tokens, detection without
//! anyone polling, the signed webhook (checked by an independent receiver), scanner-safe
//! confirmation in Chromium, identity clean-up, expiry, delivery across a receiver outage and a
//! restart, and housekeeping that never slows a burst of signups.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::gate::{unix_now_us, Spacing, BURST_AT_100_MS, TOKEN};
use support::webhook::Receiver;
use support::{get, request_with, root, Reply, Spec, Stack, STATUS_SECRET, WEBHOOK_SECRET};

/// A stack that tracks signups, with the webhook pointed at `receiver`, its gate (and
/// ses-local's throttle) at `interval_ms`.
fn tracking_stack(
    name: &str,
    receiver: &Receiver,
    interval_ms: &str,
    extra: &[(&str, &str)],
) -> Stack {
    tracking_stack_with_identities_on(name, receiver, interval_ms, extra, "send")
}

/// The same, with ses-local's identity appearing on `send` or only on `click`.
fn tracking_stack_with_identities_on(
    name: &str,
    receiver: &Receiver,
    interval_ms: &str,
    extra: &[(&str, &str)],
    identity_on: &str,
) -> Stack {
    let url = receiver.url();
    let mut vars: Vec<(&str, &str)> = vec![
        ("STATUS_TOKEN_SECRET", STATUS_SECRET),
        ("WEBHOOK_URL", &url),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("ADMIN_TOKEN", TOKEN),
        ("GATE_INTERVAL_MS", interval_ms),
    ];
    vars.extend_from_slice(extra);
    Stack::start(
        name,
        Spec {
            vars: &vars,
            ses_args: &["--throttle-ms", interval_ms, "--identity-on", identity_on],
            ..Spec::default()
        },
    )
}

fn status(stack: &Stack, token: &str) -> Reply {
    request_with(
        "GET",
        &format!("{}/signup/status", stack.worker),
        None,
        &[("authorization", &format!("Bearer {token}"))],
    )
}

fn status_json(stack: &Stack, token: &str) -> serde_json::Value {
    let reply = status(stack, token);
    assert_eq!(reply.status, 200, "{}", reply.text);
    serde_json::from_str(&reply.text).expect("json")
}

/// Per-action counts from ses-local: `(received, accepted)`.
fn calls(stack: &Stack, action: &str) -> (u64, u64) {
    let requests = support::get_json(&format!("{}_requests", stack.ses));
    let count = &requests["counts"][action];
    (
        count["received"].as_u64().unwrap_or(0),
        count["accepted"].as_u64().unwrap_or(0),
    )
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn link_for(stack: &Stack, address: &str) -> String {
    let mails = stack.wait_for_outbox(1, Duration::from_secs(20));
    let mail = stack
        .outbox()
        .into_iter()
        .chain(mails)
        .find(|m| m["emailAddress"] == address)
        .unwrap_or_else(|| panic!("no mail to {address}"));
    mail["verificationLink"]
        .as_str()
        .expect("a link")
        .to_string()
}

/// Waits until the gate (not the harness, which also asks ses-local) made `n` status checks.
fn wait_for_checks(stack: &Stack, n: u64) {
    wait_until("the gate's status checks", Duration::from_secs(30), || {
        gate_stats(stack)["tracking"]["checks"]
            .as_u64()
            .unwrap_or(0)
            >= n
    });
}

fn gate_stats(stack: &Stack) -> serde_json::Value {
    let stats = stack.stats(Some(TOKEN));
    assert_eq!(stats.status, 200, "{}", stats.text);
    stats.json
}

fn signup_token(stack: &Stack, address: &str) -> String {
    let reply = stack.signup(address);
    assert!(matches!(reply.status, 200 | 202), "{}", reply.text);
    let body: serde_json::Value = serde_json::from_str(&reply.text).expect("json");
    let cookie = reply.header("set-cookie").unwrap_or_default();
    // A plain-http loopback origin: the `__Host-` prefix needs `Secure`, which only Chromium
    // takes there (docs/security.md).
    assert!(
        cookie.starts_with("sv_confirm=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let token = body["statusToken"]
        .as_str()
        .expect("a status token")
        .to_string();
    assert!(
        !cookie.contains(&token),
        "the cookie's credential is not the status token"
    );
    token
}

#[test]
fn a_signup_is_detected_verified_reported_by_a_signed_webhook_and_its_identity_deleted() {
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let stack = tracking_stack("follow-happy", &receiver, "500", &[]);
    let token = signup_token(&stack, "happy.person@example.com");
    let first = status_json(&stack, &token);
    assert!(
        matches!(first["status"].as_str(), Some("sent" | "queued")),
        "{first}"
    );
    assert_eq!(first["confirmed"], false);
    assert!(!first.to_string().contains("happy.person"), "{first}");

    wait_for_checks(&stack, 1);
    assert_eq!(
        stack
            .client
            .verification_status("happy.person@example.com")
            .as_deref(),
        Some("Pending")
    );
    let clicked = Instant::now();
    let landed = get(&link_for(&stack, "happy.person@example.com")).expect("the link answers");
    assert_eq!(landed.status, 200);

    // Detection (the sweep: a check at most a fifth of the signup's age after the click, at
    // least 5 s), then the webhook, then the clean-up.
    wait_until(
        "signup.verified at the receiver",
        Duration::from_secs(30),
        || {
            receiver
                .deliveries()
                .iter()
                .any(|d| d.body["type"] == "signup.verified")
        },
    );
    let delay = clicked.elapsed();
    let deliveries = receiver.deliveries();
    let verified = deliveries
        .iter()
        .find(|d| d.body["type"] == "signup.verified")
        .expect("verified");
    assert!(verified.valid, "the signature verifies: {verified:?}");
    assert_eq!(verified.body["data"]["email"], "happy.person@example.com");
    assert_eq!(verified.body["data"]["confirmed"], false);
    assert!(verified.body["data"]["messageId"].is_string());
    assert!(verified.id.starts_with("msg_"));
    eprintln!("detection + delivery took {} ms", delay.as_millis());
    assert!(
        delay < Duration::from_secs(20),
        "the documented delay: {delay:?}"
    );

    let now = status_json(&stack, &token);
    assert_eq!(now["status"], "verified", "{now}");
    assert_eq!(now["verified"], true);
    assert!(now["verifiedAt"].is_string());
    wait_until("the identity deleted", Duration::from_secs(20), || {
        stack
            .client
            .verification_status("happy.person@example.com")
            .is_none()
    });
    assert_eq!(calls(&stack, "DeleteIdentity"), (1, 1));
    // The From address is never touched.
    assert_eq!(
        stack.client.verification_status(support::FROM).as_deref(),
        Some("Success")
    );
    let stats = gate_stats(&stack);
    assert_eq!(stats["tracking"]["identitiesDeleted"], 1, "{stats}");
    assert_eq!(stats["tracking"]["webhooksDelivered"], 1, "{stats}");
    // What it cost, by workerd's own SQLite counters: the signup, its send, check, deletion
    // and webhook all wrote rows, and the Worker's signup and the alarms were Durable Object
    // requests (the gate makes its SES calls itself).
    let cost = &stats["cost"];
    assert_eq!(cost["signups"], 1, "{stats}");
    let rows_written = cost["rowsWritten"].as_u64().unwrap_or(0);
    assert!((10..1_000).contains(&rows_written), "{stats}");
    assert!(cost["rowsRead"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert!(cost["objectRequests"].as_u64().unwrap_or(0) >= 2, "{stats}");
    assert_eq!(
        cost["rowsWrittenPerThousandSignups"],
        rows_written * 1000,
        "{stats}"
    );
    assert!(
        stats["tracking"]["signupsChecked"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    // No address in any log line.
    assert!(!stack.log_text().contains("happy.person@"));
}

#[test]
fn tokens_that_are_missing_forged_expired_or_for_no_signup_are_refused_and_pollers_cost_nothing() {
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let stack = tracking_stack("follow-tokens", &receiver, "500", &[]);
    let token = signup_token(&stack, "polled@example.com");
    let code = |reply: &Reply| -> (u16, String) { (reply.status, reply.code().to_string()) };

    let missing = request_with("GET", &format!("{}/signup/status", stack.worker), None, &[]);
    assert_eq!(code(&missing), (401, "invalid_token".into()));
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert_eq!(
        code(&status(&stack, &forged)),
        (401, "invalid_token".into())
    );
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    use signup_verify_domain::status_token::issue;
    use signup_verify_domain::status_token::Purpose;
    let named = token_signup(&token);
    let expired = issue(
        STATUS_SECRET.as_bytes(),
        Purpose::Status,
        &signup_verify_domain::status_token::SignupRef {
            signed_up_ms: now_ms - 8 * 24 * 3_600_000,
            ..named.clone()
        },
    );
    assert_eq!(
        code(&status(&stack, &expired)),
        (401, "token_expired".into())
    );
    // Signed with the right secret, for the same address with another nonce (a guess, or a
    // replaced signup's): names no signup.
    let other = issue(
        STATUS_SECRET.as_bytes(),
        Purpose::Status,
        &signup_verify_domain::status_token::SignupRef {
            nonce: "00".repeat(16),
            ..named.clone()
        },
    );
    assert_eq!(
        code(&status(&stack, &other)),
        (404, "unknown_signup".into())
    );
    // The confirmation credential of the same signup is no status token.
    let confirm = issue(STATUS_SECRET.as_bytes(), Purpose::Confirm, &named);
    assert_eq!(
        code(&status(&stack, &confirm)),
        (401, "invalid_token".into())
    );
    // A token in the query string (where logs and histories keep it) is not read.
    let by_query = get(&format!("{}/signup/status?token={token}", stack.worker)).expect("answer");
    assert_eq!(code(&by_query), (401, "invalid_token".into()));

    // 100 concurrent pollers: answered from the gate, so no SES call beyond the sweep's.
    wait_for_checks(&stack, 1);
    let before = calls(&stack, "GetIdentityVerificationAttributes").0;
    let sends_before = calls(&stack, "SendCustomVerificationEmail").0;
    let worker = stack.worker.clone();
    let pollers: Vec<(String, String)> =
        (0..100).map(|_| (worker.clone(), token.clone())).collect();
    let answers = support::concurrently(pollers, |(worker, token)| {
        request_with(
            "GET",
            &format!("{worker}/signup/status"),
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .status
    });
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let after = calls(&stack, "GetIdentityVerificationAttributes").0;
    assert!(
        after - before <= 2,
        "pollers made SES calls: {before} -> {after}"
    );
    assert_eq!(calls(&stack, "SendCustomVerificationEmail").0, sends_before);
}

/// The signup a status token names (read with the secret, as the Worker reads it).
fn token_signup(token: &str) -> signup_verify_domain::status_token::SignupRef {
    signup_verify_domain::status_token::verify(
        STATUS_SECRET.as_bytes(),
        signup_verify_domain::status_token::Purpose::Status,
        token,
        0,
    )
    .expect("a token of ours")
    .signup
}

#[test]
fn a_scanner_confirms_nothing_and_the_signing_up_browser_confirms_in_chromium() {
    let chromium = support::chromium();
    assert!(
        PathBuf::from(&chromium).exists(),
        "{chromium} is missing: run `make test` (scripts/setup.sh installs Debian's chromium)"
    );
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let stack = tracking_stack(
        "follow-confirm",
        &receiver,
        "500",
        &[
            ("DEMO_PAGE", "true"),
            ("SUCCESS_REDIRECT_URL", "/"),
            ("FAILURE_REDIRECT_URL", "/"),
        ],
    );
    // The template's success page is the Worker's confirmation page.
    stack
        .client
        .point_success_url_at(&format!("{}/confirm", stack.worker));

    // A scanner opens the link first: GET, no cookies, redirects followed.
    let scanner_token = signup_token(&stack, "scanned@example.com");
    wait_for_checks(&stack, 1);
    let mail = stack
        .wait_for_outbox(1, Duration::from_secs(20))
        .into_iter()
        .find(|m| m["emailAddress"] == "scanned@example.com")
        .expect("the mail");
    let scanned = support::request(
        "POST",
        &format!(
            "{}_outbox/{}/scan",
            stack.ses,
            mail["messageId"].as_str().expect("id")
        ),
        None,
    );
    assert_eq!(scanned.status, 200);
    assert_eq!(
        scanned.json["landedOn"],
        format!("{}/confirm", stack.worker),
        "{}",
        scanned.text
    );
    assert!(scanned.json["body"]
        .as_str()
        .unwrap_or_default()
        .contains("confirm it's you"));
    let confirm_get = get(&format!("{}/confirm", stack.worker)).expect("answer");
    assert!(confirm_get
        .text
        .contains("<form method=\"post\" action=\"/confirm\">"));
    wait_until(
        "the scanned signup verified",
        Duration::from_secs(30),
        || status_json(&stack, &scanner_token)["status"] == "verified",
    );
    assert_eq!(status_json(&stack, &scanner_token)["confirmed"], false);
    // A POST without this browser's cookie records nothing either.
    let blind = request_with(
        "POST",
        &format!("{}/confirm", stack.worker),
        Some(("application/x-www-form-urlencoded", b"")),
        &[("accept", "text/html")],
    );
    assert_eq!(blind.status, 200);
    assert!(blind
        .text
        .contains("only in the browser you signed up with"));
    let blind_json = support::request(
        "POST",
        &format!("{}/confirm", stack.worker),
        Some(("application/x-www-form-urlencoded", b"")),
    );
    assert_eq!(
        (blind_json.status, blind_json.code()),
        (404, "unknown_signup")
    );
    assert_eq!(status_json(&stack, &scanner_token)["confirmed"], false);

    // A person: signs up in Chromium, opens the link in the same browser, presses the button.
    let output = Command::new(root().join("node_modules/.bin/node"))
        .arg(root().join("tests/browser/confirm_page.mjs"))
        .arg(&stack.worker)
        .arg(&stack.ses)
        .arg("human@example.com")
        .env("CHROMIUM_PATH", &chromium)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(result["asked"], true, "{result}");
    assert_eq!(result["confirmedStatus"], "verified", "{result}");
    let token = result["statusToken"].as_str().expect("the signup's token");
    let after = status_json(&stack, token);
    assert_eq!(
        (after["verified"].clone(), after["confirmed"].clone()),
        (true.into(), true.into()),
        "{after}"
    );
    wait_until(
        "signup.confirmed at the receiver",
        Duration::from_secs(30),
        || {
            receiver.deliveries().iter().any(|d| {
                d.body["type"] == "signup.confirmed"
                    && d.body["data"]["email"] == "human@example.com"
            })
        },
    );
    assert!(receiver.deliveries().iter().all(|d| d.valid));
    assert!(
        !receiver
            .deliveries()
            .iter()
            .any(|d| d.body["type"] == "signup.confirmed"
                && d.body["data"]["email"] == "scanned@example.com"),
        "the scanner confirmed nothing"
    );
}

#[test]
fn every_event_reaches_a_receiver_that_was_down_once_per_id_across_a_restart() {
    let mut receiver = Receiver::start(WEBHOOK_SECRET);
    // SES's FAQ version: the identity appears only when the link is clicked, so the gate's
    // checks see it absent (pending) until then.
    let mut stack =
        tracking_stack_with_identities_on("follow-outage", &receiver, "500", &[], "click");
    let addresses = [
        "outage-1@example.com",
        "outage-2@example.com",
        "outage-3@example.com",
    ];
    for address in addresses {
        signup_token(&stack, address);
    }
    stack.wait_for_outbox(3, Duration::from_secs(20));
    // Each signup's first check comes five seconds after its send: let all three be seen
    // pending by the gate, so their identities are the Worker's to delete.
    std::thread::sleep(Duration::from_secs(7));
    wait_for_checks(&stack, 1);
    receiver.down();
    let down_at = Instant::now();
    for address in addresses {
        assert_eq!(get(&link_for(&stack, address)).map(|r| r.status), Some(200));
    }
    // The events are made and fail to deliver while the receiver is down; a restart of
    // `wrangler dev` in the middle loses none of them.
    wait_until("failed deliveries", Duration::from_secs(30), || {
        stack.log_contains("webhook_failed")
    });
    stack.restart_worker();
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed()));
    receiver.up();
    wait_until("three events delivered", Duration::from_secs(120), || {
        receiver.deliveries().iter().filter(|d| d.valid).count() >= 3
    });
    std::thread::sleep(Duration::from_secs(3));
    let deliveries = receiver.deliveries();
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        before,
        "each webhook-id once at the receiver: {deliveries:?}"
    );
    let mut emails: Vec<&str> = deliveries
        .iter()
        .map(|d| d.body["data"]["email"].as_str().unwrap_or_default())
        .collect();
    emails.sort();
    assert_eq!(emails, addresses);
    assert!(deliveries
        .iter()
        .all(|d| d.valid && d.body["type"] == "signup.verified"));
    // Clean-up waited for the deliveries, then deleted all three.
    wait_until("three identities deleted", Duration::from_secs(30), || {
        addresses
            .iter()
            .all(|a| stack.client.verification_status(a).is_none())
    });
}

#[test]
fn a_link_left_unclicked_past_its_ttl_is_expired_reported_and_cleaned_up() {
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let stack = tracking_stack(
        "follow-expiry",
        &receiver,
        "500",
        &[("VERIFICATION_LINK_TTL_SECONDS", "8")],
    );
    let token = signup_token(&stack, "never.clicks@example.com");
    wait_until("signup.expired", Duration::from_secs(40), || {
        receiver
            .deliveries()
            .iter()
            .any(|d| d.body["type"] == "signup.expired")
    });
    let expired = status_json(&stack, &token);
    assert_eq!(expired["status"], "expired", "{expired}");
    wait_until("the identity deleted", Duration::from_secs(20), || {
        stack
            .client
            .verification_status("never.clicks@example.com")
            .is_none()
    });
}

/// Posts every address at once (one thread each).
fn sign_up_all(worker: &str, addresses: &[String]) {
    let posts = addresses
        .iter()
        .map(|a| (worker.to_string(), a.clone()))
        .collect();
    let statuses = support::concurrently(posts, |(worker, address)| {
        let body = format!("{{\"email\":\"{address}\"}}");
        support::request(
            "POST",
            &format!("{worker}/signup"),
            Some(("application/json", body.as_bytes())),
        )
        .status
    });
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 202)),
        "{statuses:?}"
    );
}

#[test]
fn a_burst_of_signups_keeps_its_spacing_while_hundreds_of_identities_are_pending() {
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let stack = tracking_stack(
        "follow-priority",
        &receiver,
        "100",
        &[("GATE_MAX_WAIT_MS", "0"), ("QUEUE_MAX", "1000")],
    );
    // 300 pending identities the gate tracks (sent, never clicked).
    let pending: Vec<String> = (0..300)
        .map(|i| format!("pending-{i}@example.com"))
        .collect();
    let worker = stack.worker.clone();
    sign_up_all(&worker, &pending);
    stack.wait_for_outbox(300, Duration::from_secs(90));
    wait_for_checks(&stack, 3);
    let sends_before = stack.ses_requests().len();
    let burst: Vec<String> = (0..100).map(|i| format!("burst-{i}@example.com")).collect();
    sign_up_all(&worker, &burst);
    let intake_ended_us = unix_now_us();
    stack.wait_for_outbox(400, Duration::from_secs(60));
    let arrivals: Vec<u64> = stack.ses_requests()[sends_before..]
        .iter()
        .filter(|r| r["status"] == 200)
        .filter_map(|r| r["receivedAtUs"].as_u64())
        .collect();
    assert_eq!(arrivals.len(), 100);
    let (first, last) = (arrivals[0], arrivals[arrivals.len() - 1]);
    let requests = support::get_json(&format!("{}_requests", stack.ses));
    let housekeeping_inside: Vec<String> = requests["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["action"] != "SendCustomVerificationEmail")
        .filter(|r| {
            r["receivedAtUs"]
                .as_u64()
                .is_some_and(|t| t > first && t < last)
        })
        .map(|r| r["action"].to_string())
        .collect();
    assert!(housekeeping_inside.is_empty(), "{housekeeping_inside:?}");
    Spacing::of(&arrivals, intake_ended_us)
        .assert_within("burst with 300 pending", &BURST_AT_100_MS);
    let throttled = requests["requests"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["code"] == "Throttling").count())
        .unwrap_or(0);
    assert_eq!(throttled, 0);
}
