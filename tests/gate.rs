//! The gate under load, end to end: bursts are queued durably and drained at the interval,
//! throttling storms back off, server errors are retried then dropped and counted, and a
//! restarted Worker resumes its queue.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::gate::{
    add_fault, assert_all_sent_or_queued, assert_no_throttling_at_ses, burst, sent_addresses,
    spacing_ms, TOKEN,
};
use support::{Reply, Spec, Stack};

#[test]
fn a_throttling_storm_backs_off_and_loses_nothing() {
    let stack = Stack::start(
        "storm",
        Spec {
            vars: &[
                ("GATE_INTERVAL_MS", "200"),
                ("GATE_MAX_WAIT_MS", "0"),
                ("ADMIN_TOKEN", TOKEN),
            ],
            ses_args: &["--throttle-ms", "200"],
            prepare: None,
            ..Spec::default()
        },
    );
    add_fault(&stack, "throttle", 3);
    let results = burst(&stack, "storm", 5);
    assert_all_sent_or_queued(&results);
    let outbox = stack.wait_for_outbox(5, Duration::from_secs(60));
    assert_eq!(outbox.len(), 5, "all sent after the storm");
    let stats = stack.stats(Some(TOKEN));
    assert_eq!(stats.json["throttlesSeen"], 3, "{}", stats.text);
    // The backoff: after three throttles in a row the gate paused 1 s, 2 s and 4 s (+ jitter).
    let requests = stack.ses_requests();
    let at = |i: usize| requests[i]["receivedAtUs"].as_u64().unwrap_or(0);
    assert!(at(1) - at(0) >= 1_000_000 && at(2) - at(1) >= 2_000_000 && at(3) - at(2) >= 4_000_000);
}

#[test]
fn server_errors_past_the_attempt_limit_drop_the_item_and_the_rest_continues() {
    let stack = Stack::start(
        "drop-5xx",
        Spec {
            vars: &[
                ("GATE_INTERVAL_MS", "200"),
                ("GATE_MAX_WAIT_MS", "0"),
                ("SES_MAX_ATTEMPTS", "2"),
                ("ADMIN_TOKEN", TOKEN),
            ],
            ses_args: &["--throttle-ms", "200"],
            ..Spec::default()
        },
    );
    add_fault(&stack, "status:500", 2);
    let first = stack.signup("doomed@example.com");
    assert_eq!(
        (first.status, first.json["position"].as_u64()),
        (202, Some(1)),
        "{}",
        first.text
    );
    let rest = burst(&stack, "fine", 3);
    assert_all_sent_or_queued(&rest);
    assert_eq!(stack.wait_for_outbox(3, Duration::from_secs(30)).len(), 3);
    std::thread::sleep(Duration::from_millis(500));
    let sent = sent_addresses(&stack);
    assert_eq!(
        sent,
        vec![
            "fine0@example.com",
            "fine1@example.com",
            "fine2@example.com"
        ]
    );
    let stats = stack.stats(Some(TOKEN));
    assert_eq!(stats.json["drops"]["exhausted"], 1, "{}", stats.text);
    assert_eq!(stats.json["queueLength"], 0);
    assert!(
        stack.log_contains("\"event\":\"queue_drop\""),
        "the drop is logged"
    );
}

#[test]
fn a_restart_mid_queue_sends_every_queued_signup_exactly_once() {
    let mut stack = Stack::start(
        "restart",
        Spec {
            vars: &[("GATE_INTERVAL_MS", "400"), ("GATE_MAX_WAIT_MS", "0")],
            ses_args: &["--throttle-ms", "400"],
            ..Spec::default()
        },
    );
    let results = burst(&stack, "restart", 20);
    assert_all_sent_or_queued(&results);
    assert!(results.iter().filter(|(_, r)| r.status == 202).count() >= 18);
    // Restart right after a send, in the quiet part of the interval.
    let before = stack.wait_for_outbox(4, Duration::from_secs(30)).len();
    assert!(before < 20, "the restart must come while items are queued");
    stack.restart_worker();
    let outbox = stack.wait_for_outbox(20, Duration::from_secs(90));
    assert_eq!(outbox.len(), 20, "no item lost across the restart");
    let mut expected: Vec<String> = results.into_iter().map(|(e, _)| e).collect();
    expected.sort();
    assert_eq!(sent_addresses(&stack), expected, "none twice");
    assert_no_throttling_at_ses(&stack);
    let (min, _) = spacing_ms(&stack);
    assert!(
        min >= 400.0,
        "the spacing is kept across the restart: {min} ms"
    );
}

/// The deploy that folded `SesSender` into `SesGate` (wrangler.toml's `v3` migration deletes the
/// class). `tests/fixtures/two-object-queue` is the state `wrangler dev` kept for the last
/// two-object build (commit `b259845`) after five signups were queued behind a 60 s interval
/// (`GATE_MAX_WAIT_MS=0`): the gate's SQLite database and its pending alarm; the sender stored
/// nothing. This build starts on that state: the old build's alarm wakes the new gate, whose
/// own wire sends every queued signup, once, with no sender to call. (`wrangler dev` does not
/// apply migrations; that Cloudflare's `deleted_classes` leaves `SesGate`'s storage alone is
/// its documented behaviour, not tested here.)
#[test]
fn signups_queued_by_the_two_object_build_are_sent_once_after_the_deploy_that_deletes_the_sender() {
    let fixture = support::root().join("tests/fixtures/two-object-queue");
    let stack = Stack::start(
        "two-object-queue",
        Spec {
            vars: &[
                ("GATE_INTERVAL_MS", "100"),
                ("QUEUE_MAX_AGE_SECONDS", "0"),
                ("ADMIN_TOKEN", TOKEN),
            ],
            ses_args: &["--throttle-ms", "100"],
            state_from: Some(&fixture),
            ..Spec::default()
        },
    );
    // The old build's pending alarm drains the queue; nothing else wakes the object.
    let outbox = stack.wait_for_outbox(5, Duration::from_secs(30));
    assert_eq!(outbox.len(), 5, "every queued signup is sent");
    let expected: Vec<String> = (0..5).map(|i| format!("queued-{i}@example.org")).collect();
    assert_eq!(sent_addresses(&stack), expected, "exactly these, each once");
    assert_no_throttling_at_ses(&stack);
    let stats = stack.stats(Some(TOKEN));
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.json["queueLength"], 0);
}

#[test]
fn a_queued_address_keeps_its_place_and_bad_inputs_never_enter_the_queue() {
    let stack = Stack::start(
        "dedupe",
        Spec {
            vars: &[
                ("GATE_INTERVAL_MS", "1000"),
                ("GATE_MAX_WAIT_MS", "0"),
                ("EMAIL_COOLDOWN_SECONDS", "0"),
                ("ADMIN_TOKEN", TOKEN),
            ],
            ..Spec::default()
        },
    );
    let results = burst(&stack, "dedupe", 4);
    assert_all_sent_or_queued(&results);
    let queued: Vec<&(String, Reply)> = results.iter().filter(|(_, r)| r.status == 202).collect();
    let (email, reply) = queued.last().expect("some were queued");
    let again = stack.signup(email);
    assert_eq!(
        (again.status, again.json["position"].clone()),
        (202, reply.json["position"].clone())
    );
    let length = stack.stats(Some(TOKEN)).json["queueLength"]
        .as_u64()
        .expect("length");
    for bad in [r#"{"email":"nope"}"#, r#"{"email":42}"#, "{}"] {
        assert_eq!(stack.post_json(bad).status, 400);
    }
    assert_eq!(
        stack.stats(Some(TOKEN)).json["queueLength"].as_u64(),
        Some(length),
        "bad inputs were queued"
    );
    assert_eq!(stack.wait_for_outbox(4, Duration::from_secs(30)).len(), 4);
}

#[test]
fn stats_need_the_admin_token_and_are_off_without_one() {
    let off = Stack::start("stats-off", Spec::default());
    assert_eq!(
        (
            off.stats(Some(TOKEN)).status,
            off.stats(Some(TOKEN)).code().to_string()
        ),
        (404, "not_found".into())
    );
    let on = Stack::start(
        "stats-on",
        Spec {
            vars: &[("ADMIN_TOKEN", TOKEN)],
            ..Spec::default()
        },
    );
    let missing = on.stats(None);
    assert_eq!((missing.status, missing.code()), (401, "unauthorized"));
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(on.stats(Some("e2e-admin-token-wrong-value")).status, 401);
    assert_eq!(on.signup("stats@example.com").status, 200);
    let stats = on.stats(Some(TOKEN));
    assert_eq!(stats.status, 200);
    for field in [
        "queueLength",
        "oldestItemAgeMs",
        "sendsLastMinute",
        "sendsLastHour",
        "throttlesSeen",
        "drops",
        "intervalMs",
        "currentIntervalMs",
    ] {
        assert!(
            stats.json.get(field).is_some(),
            "{field} missing from {}",
            stats.text
        );
    }
    assert_eq!(stats.json["sendsLastMinute"], 1);
    assert_eq!(stats.json["intervalMs"], 1000);
}
