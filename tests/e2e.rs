//! End to end: real `wrangler dev` (workerd, the SesGate Durable Object) in front of ses-local.
//! Each test starts its own stack on free loopback ports.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::gate::{burst, sent_addresses};
use support::{concurrently, post_chunked, request, Body, Reply, SesClient, Spec, Stack, FROM};

#[test]
fn a_plus_tagged_signup_is_sent_and_the_outbox_shows_exactly_that_address_and_message_id() {
    let stack = Stack::start("plus-tag", Spec::default());
    let reply = stack.signup("user+tag@example.com");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "sent");
    let message_id = reply.json["messageId"]
        .as_str()
        .expect("messageId")
        .to_string();
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let outbox = stack.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["emailAddress"], "user+tag@example.com");
    assert_eq!(outbox[0]["messageId"], message_id.as_str());
    assert_eq!(outbox[0]["templateName"], "SignupVerify");

    // The person clicks the link in the mail: the browser lands on the template's success page
    // and SES now has the address as a verified identity.
    assert_eq!(
        stack
            .client
            .verification_status("user+tag@example.com")
            .as_deref(),
        Some("Pending")
    );
    let link = outbox[0]["verificationLink"].as_str().expect("link");
    let landed = support::get(link).expect("open the link");
    assert_eq!(landed.status, 200);
    assert!(landed.text.contains("Address verified"), "{}", landed.text);
    assert_eq!(
        stack
            .client
            .verification_status("user+tag@example.com")
            .as_deref(),
        Some("Success")
    );

    // The same through a urlencoded form with a charset, as a browser form posts it.
    std::thread::sleep(Duration::from_millis(1100));
    let form = request(
        "POST",
        &format!("{}/signup", stack.worker),
        Some((
            "application/x-www-form-urlencoded; charset=UTF-8",
            b"email=Form%2Buser%40Example.COM",
        )),
    );
    assert_eq!(
        (form.status, form.json["status"].as_str()),
        (200, Some("sent")),
        "{}",
        form.text
    );
    assert_eq!(stack.outbox()[0]["emailAddress"], "Form+user@example.com");
    assert!(stack
        .ses_requests()
        .iter()
        .all(|r| r["signature"] == "valid"));
}

#[test]
fn bad_inputs_get_their_error_codes_and_never_reach_ses() {
    let stack = Stack::start("bad-inputs", Spec::default());
    let signup = format!("{}/signup", stack.worker);
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let big = format!(
        r#"{{"email":"a@example.com","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let cases: Vec<(&str, Body, u16, &str)> = vec![
        ("POST", Some((json, b"{not json")), 400, "invalid_body"),
        (
            "POST",
            Some((json, b"[\"a@example.com\"]")),
            400,
            "invalid_body",
        ),
        (
            "POST",
            Some((json, br#"{"email":42}"#)),
            400,
            "invalid_body",
        ),
        (
            "POST",
            Some((json, br#"{"email":{"address":"a@example.com"}}"#)),
            400,
            "invalid_body",
        ),
        (
            "POST",
            Some((form, b"email=a%40example.com&email=b%40example.com")),
            400,
            "invalid_body",
        ),
        ("POST", Some((form, b"email=%FF%FE")), 400, "invalid_body"),
        ("POST", Some((json, b"{}")), 400, "missing_email"),
        (
            "POST",
            Some((json, br#"{"email":"   "}"#)),
            400,
            "missing_email",
        ),
        ("POST", Some((form, b"name=x")), 400, "missing_email"),
        (
            "POST",
            Some((json, br#"{"email":"not-an-address"}"#)),
            400,
            "invalid_email",
        ),
        (
            "POST",
            Some((
                json,
                br#"{"email":"a@example.com\r\nBcc: victim@example.org"}"#,
            )),
            400,
            "invalid_email",
        ),
        (
            "POST",
            Some((form, b"email=%22quoted%22%40example.com")),
            400,
            "invalid_email",
        ),
        (
            "POST",
            Some(("text/plain", b"email=a@example.com")),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            Some((
                "application/json; charset=latin1",
                br#"{"email":"a@example.com"}"#,
            )),
            415,
            "unsupported_media_type",
        ),
        ("POST", None, 415, "unsupported_media_type"),
        (
            "POST",
            Some((json, big.as_bytes())),
            413,
            "payload_too_large",
        ),
        ("GET", None, 405, "method_not_allowed"),
        (
            "PUT",
            Some((json, br#"{"email":"a@example.com"}"#)),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, body, status, code) in &cases {
        let reply = request(method, &signup, *body);
        assert_eq!(
            (reply.status, reply.code()),
            (*status, *code),
            "{method} {body:?}: {}",
            reply.text
        );
        assert!(reply.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        request("GET", &signup, None).header("allow"),
        Some("POST, OPTIONS")
    );

    let chunked = post_chunked(&signup, json, big.clone().into_bytes());
    assert_eq!(
        (chunked.status, chunked.code()),
        (413, "payload_too_large"),
        "{}",
        chunked.text
    );

    let missing = request("GET", &format!("{}/nope", stack.worker), None);
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    let health = request("GET", &format!("{}/healthz", stack.worker), None);
    assert_eq!(
        (health.status, health.json.clone()),
        (200, serde_json::json!({"ok": true}))
    );

    assert!(
        stack.ses_requests().is_empty(),
        "bad inputs reached SES: {:?}",
        stack.ses_requests()
    );
}

#[test]
fn five_concurrent_signups_are_all_sent_at_least_one_interval_apart_without_throttling() {
    let stack = Stack::start("five-concurrent", Spec::default());
    let results = burst(&stack, "five", 5);
    for (email, reply) in &results {
        assert_eq!(
            (reply.status, reply.json["status"].as_str()),
            (200, Some("sent")),
            "{email}: {}",
            reply.text
        );
    }
    let requests = stack.ses_requests();
    assert_eq!(
        requests.len(),
        5,
        "exactly one SES call each, no retries: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| r["code"].is_null()),
        "SES saw an error: {requests:?}"
    );
    let gaps = stack.send_gaps_us();
    assert_eq!(gaps.len(), 4);
    assert!(
        gaps.iter().all(|&g| g >= 1_000_000),
        "gaps (µs) at ses-local: {gaps:?}"
    );
    let mut expected: Vec<String> = results.into_iter().map(|(e, _)| e).collect();
    expected.sort();
    assert_eq!(sent_addresses(&stack), expected);
}

#[test]
fn without_a_queue_a_burst_beyond_the_max_wait_gets_busy_and_busy_ones_never_reach_ses() {
    let stack = Stack::start(
        "busy",
        Spec {
            // Without a queue (QUEUE_MAX=0), what cannot wait is refused.
            vars: &[("GATE_MAX_WAIT_MS", "1500"), ("QUEUE_MAX", "0")],
            ..Spec::default()
        },
    );
    let results = burst(&stack, "busy", 8);
    let (sent, busy): (Vec<_>, Vec<_>) = results.iter().partition(|(_, r)| r.status == 200);
    assert!(!sent.is_empty() && !busy.is_empty(), "{results:?}");
    assert!(
        sent.len() <= 3,
        "slots beyond 1.5 s were given: {}",
        sent.len()
    );
    for (email, reply) in &busy {
        assert_eq!((reply.status, reply.code()), (429, "busy"), "{email}");
        let retry_after: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in whole seconds");
        assert!(retry_after >= 1);
    }
    let reached: Vec<String> = stack
        .ses_requests()
        .iter()
        .map(|r| r["emailAddress"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reached.len(), sent.len());
    for (email, _) in &busy {
        assert!(!reached.contains(email), "{email} was busy but reached SES");
    }
}

/// (stack name, `--var` overrides, ses-local preparation, the SES error code it should answer)
type MisconfiguredCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Option<fn(&SesClient)>,
    &'static str,
);

/// Starts one stack per case at once (each takes seconds to boot) and checks each answer.
fn assert_misconfigured(cases: Vec<MisconfiguredCase>) {
    let results = concurrently(cases, |(name, vars, prepare, ses_code)| {
        let stack = Stack::start(
            name,
            Spec {
                vars: &vars,
                prepare,
                ..Spec::default()
            },
        );
        let reply = stack.signup("person@example.com");
        (name, reply, ses_code, stack.ses_requests())
    });
    for (name, reply, ses_code, requests) in results {
        assert_eq!(
            (reply.status, reply.code()),
            (500, "misconfigured"),
            "{name}: {}",
            reply.text
        );
        assert_eq!(
            requests.len(),
            1,
            "{name}: config errors are not retried: {requests:?}"
        );
        assert_eq!(requests[0]["code"], ses_code, "{name}");
        // Nothing from SES reaches the browser.
        let request_id = requests[0]["requestId"].as_str().unwrap_or("?");
        assert!(
            !reply.text.contains(request_id) && !reply.text.contains(ses_code),
            "{name}: {}",
            reply.text
        );
    }
}

#[test]
fn ses_configuration_errors_are_answered_as_misconfigured() {
    assert_misconfigured(vec![
        (
            "no-template",
            vec![("SES_TEMPLATE_NAME", "NoSuchTemplate")],
            None,
            "CustomVerificationEmailTemplateDoesNotExist",
        ),
        (
            // The From address loses its verification after the template was created.
            "unverified-from",
            vec![],
            Some(|ses: &SesClient| {
                assert_eq!(ses.call("DeleteIdentity", &[("Identity", FROM)]).0, 200)
            }),
            "FromEmailAddressNotVerified",
        ),
        (
            "no-config-set",
            vec![("SES_CONFIGURATION_SET", "no-such-set")],
            None,
            "ConfigurationSetDoesNotExist",
        ),
        (
            "wrong-secret",
            vec![("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
            None,
            "SignatureDoesNotMatch",
        ),
        (
            "wrong-key-id",
            vec![("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")],
            None,
            "InvalidClientTokenId",
        ),
    ]);
}

#[test]
fn a_skewed_clock_is_misconfigured_and_logged_as_a_clock_problem() {
    // ses-local's clock runs 15 minutes ahead: the Worker's signature looks expired.
    let stack = Stack::start(
        "clock-skew",
        Spec {
            clock_offset_secs: 900,
            ..Spec::default()
        },
    );
    let reply = stack.signup("person@example.com");
    assert_eq!(
        (reply.status, reply.code()),
        (500, "misconfigured"),
        "{}",
        reply.text
    );
    assert_eq!(
        stack.ses_requests()[0]["signature"],
        "SignatureDoesNotMatch"
    );
    assert!(
        stack.log_contains("Signature expired"),
        "the SES message is logged"
    );
    assert!(
        stack.log_contains("clock skew"),
        "and flagged as a clock problem"
    );
    assert!(!reply.text.contains("expired"));
}

#[test]
fn a_configured_configuration_set_and_session_token_are_sent_and_accepted() {
    let stack = Stack::start(
        "config-set-token",
        Spec {
            vars: &[("SES_CONFIGURATION_SET", "signup-events")],
            session_token: Some("e2e-session-token"),
            ..Spec::default()
        },
    );
    let reply = stack.signup("token@example.com");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(stack.outbox()[0]["configurationSetName"], "signup-events");
}

#[test]
fn an_invalid_setting_is_misconfigured_and_calls_nothing() {
    let stack = Stack::start(
        "bad-setting",
        Spec {
            vars: &[("GATE_INTERVAL_MS", "soon")],
            ..Spec::default()
        },
    );
    let reply = stack.signup("person@example.com");
    assert_eq!((reply.status, reply.code()), (500, "misconfigured"));
    assert!(
        !reply.text.contains("GATE_INTERVAL_MS"),
        "config details stay in the log"
    );
    assert!(stack.ses_requests().is_empty());
    assert!(
        stack.log_contains("\"variable\":\"GATE_INTERVAL_MS\""),
        "the log names the variable"
    );
}

#[test]
fn without_a_queue_persistent_throttling_ends_in_upstream_throttled_after_two_retries() {
    // ses-local accepts one send a minute, so after the first, every call is Throttling.
    let stack = Stack::start(
        "throttled",
        Spec {
            vars: &[("QUEUE_MAX", "0")],
            ses_args: &["--throttle-ms", "60000"],
            ..Spec::default()
        },
    );
    assert_eq!(stack.signup("first@example.com").status, 200);
    let reply = stack.signup("second@example.com");
    assert_eq!(
        (reply.status, reply.code()),
        (503, "upstream_throttled"),
        "{}",
        reply.text
    );
    assert!(reply
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    let codes: Vec<_> = stack
        .ses_requests()
        .iter()
        .map(|r| r["code"].clone())
        .collect();
    assert_eq!(
        codes.len(),
        4,
        "one send, then the first try and two retries: {codes:?}"
    );
    assert!(codes[1..].iter().all(|c| c == "Throttling"));
    let gaps = stack
        .ses_requests()
        .windows(2)
        .map(|w| {
            w[1]["receivedAtUs"].as_u64().unwrap_or(0) - w[0]["receivedAtUs"].as_u64().unwrap_or(0)
        })
        .collect::<Vec<_>>();
    assert!(
        gaps.iter().all(|&g| g >= 1_000_000),
        "retries also wait for a slot: {gaps:?}"
    );
}

#[test]
fn without_a_queue_an_unreachable_or_silent_ses_is_an_upstream_error_or_timeout() {
    // A port nobody listens on, and a listener that accepts but never answers.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!(
        "http://127.0.0.1:{}/",
        closed.local_addr().expect("addr").port()
    );
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!(
        "http://127.0.0.1:{}/",
        silent.local_addr().expect("addr").port()
    );
    let hold = std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(3).collect();
        std::thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let results = concurrently(
        vec![
            ("unreachable", closed_url, "upstream_error", 502),
            ("silent", silent_url, "upstream_timeout", 504),
        ],
        |(name, url, code, status)| {
            let vars = [
                ("SES_TIMEOUT_MS", "800"),
                ("GATE_INTERVAL_MS", "200"),
                ("QUEUE_MAX", "0"),
            ];
            let stack = Stack::start(
                name,
                Spec {
                    vars: &vars,
                    ses_endpoint: Some(url),
                    ..Spec::default()
                },
            );
            (name, stack.signup("person@example.com"), code, status)
        },
    );
    for (name, reply, code, status) in results {
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{name}: {}",
            reply.text
        );
    }
    drop(hold);
}

#[test]
fn one_address_gets_one_send_per_cooldown_and_at_most_the_daily_cap() {
    let stack = Stack::start(
        "cooldown",
        Spec {
            vars: &[("EMAIL_COOLDOWN_SECONDS", "2"), ("EMAIL_DAILY_MAX", "2")],
            ..Spec::default()
        },
    );
    let attempts: Vec<Reply> = (0..20)
        .map(|i| {
            stack.signup(if i % 2 == 0 {
                "repeat@example.com"
            } else {
                "Repeat@Example.com"
            })
        })
        .collect();
    assert_eq!(attempts[0].status, 200, "{}", attempts[0].text);
    for reply in &attempts[1..] {
        assert_eq!(
            (reply.status, reply.code()),
            (429, "cooldown"),
            "{}",
            reply.text
        );
        let retry_after: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(
        stack.ses_requests().len(),
        1,
        "cooldown answers never reach SES"
    );

    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        stack.signup("repeat@example.com").status,
        200,
        "sends again after the cooldown"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let capped = stack.signup("repeat@example.com");
    assert_eq!(
        (capped.status, capped.code()),
        (429, "cooldown"),
        "the daily cap of 2 is reached"
    );
    let retry_after: u64 = capped
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry_after > 80_000, "until the day is over: {retry_after}");
    assert_eq!(stack.ses_requests().len(), 2);
}

/// The log lines that carry `request_id`, as JSON, from wrangler's log (every object's lines
/// go there), waiting until `wanted` have arrived.
fn lines_for(stack: &Stack, request_id: &str, wanted: usize) -> Vec<serde_json::Value> {
    let needle = format!("\"request_id\":\"{request_id}\"");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = stack.log_text();
        let lines: Vec<serde_json::Value> = json_lines(&log)
            .filter(|l| l.to_string().contains(&needle))
            .collect();
        if lines.len() >= wanted || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every log line that is a JSON object (wrangler prefixes some with a timestamp).
fn json_lines(log: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    log.lines().filter_map(|l| {
        l.find('{')
            .and_then(|at| serde_json::from_str(&l[at..]).ok())
    })
}

fn events(lines: &[serde_json::Value]) -> Vec<String> {
    let mut events: Vec<String> = lines
        .iter()
        .map(|l| l["event"].as_str().unwrap_or_default().to_string())
        .collect();
    events.sort();
    events
}

/// The events a signup with this answer leaves, sorted.
fn expected_events(status: u16) -> Vec<&'static str> {
    match status {
        200 => vec!["gate_admitted", "ses_call", "signup"],
        _ => vec!["gate_admitted", "queue_send", "ses_call", "signup"],
    }
}

#[test]
fn one_request_id_from_cf_ray_ties_a_signup_s_lines_across_the_worker_the_gate_and_the_sender() {
    let stack = Stack::start(
        "request-id",
        Spec {
            // One slot per 3 s and no waiting in the request: of three signups at once, one is
            // sent in its request and the others wait in the durable queue for the alarm.
            vars: &[("GATE_MAX_WAIT_MS", "0"), ("GATE_INTERVAL_MS", "3000")],
            ..Spec::default()
        },
    );
    let rays = [
        "8f2c1a9b7d3e4f01-LHR",
        "8f2c1a9b7d3e4f02-LHR",
        "x\"}{\"event\":\"forged",
    ];
    let jobs: Vec<(String, String)> = rays
        .iter()
        .enumerate()
        .map(|(i, ray)| (stack.worker.clone(), format!("{i}|{ray}")))
        .collect();
    let replies = concurrently(jobs, |(worker, job)| {
        let (i, ray) = job.split_once('|').unwrap_or_default();
        support::request_with(
            "POST",
            &format!("{worker}/signup"),
            Some((
                "application/json",
                format!(r#"{{"email":"rid{i}@example.com"}}"#).as_bytes(),
            )),
            &[("cf-ray", ray)],
        )
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&200)
            && statuses.contains(&202)
            && statuses.iter().all(|s| [200, 202].contains(s)),
        "one sent at once, the rest queued: {statuses:?}"
    );

    let log = stack.log_text();
    assert!(
        !log.contains("\"event\":\"forged\""),
        "a forged cf-ray never reaches a log line"
    );
    // The forged one's id was made up by the Worker: 16 hex digits, on its `signup` line.
    let worker_ids: Vec<String> = json_lines(&log)
        .filter(|l| l["event"] == "signup")
        .filter_map(|l| l["request_id"].as_str().map(str::to_string))
        .collect();
    let made_up = worker_ids
        .iter()
        .find(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .cloned()
        .unwrap_or_else(|| panic!("a generated request id on a Worker line: {worker_ids:?}"));
    let ids = [rays[0].to_string(), rays[1].to_string(), made_up];
    for (id, reply) in ids.iter().zip(&replies) {
        let wanted = expected_events(reply.status);
        let lines = lines_for(&stack, id, wanted.len());
        assert_eq!(events(&lines), wanted, "{id} ({}): {lines:?}", reply.status);
        for line in &lines {
            let text = line.to_string();
            assert!(
                !text.contains("@example.com"),
                "no address in a log line: {text}"
            );
        }
    }
}
