//! The gate's pacing under a burst, at 100 ms and at the real 1000 ms interval. These tests are
//! in their own binary, and take turns, so that no other stack competes for the CPU while
//! spacing is measured.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::gate::{
    assert_all_sent_or_queued, assert_no_throttling_at_ses, burst, unix_now_us, Spacing,
    STEADY_MEAN_MAX_MS_AT_100, TOKEN,
};
use support::{Spec, Stack};

/// One timing test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One signup before the burst, then sixty more for the same address (each a `cooldown` answer
/// from the gate, nothing sent), so the measurement is of the gate and not of a cold isolate:
/// its first outbound connection, and the runtime compiling hot code while the burst arrives.
/// Returns the address.
fn warm_up(stack: &Stack) -> String {
    let email = "warm-up@example.com".to_string();
    assert_eq!(stack.signup(&email).status, 200);
    assert_eq!(stack.wait_for_outbox(1, Duration::from_secs(10)).len(), 1);
    let again: Vec<(String, String)> = (0..60)
        .map(|_| (stack.worker.clone(), email.clone()))
        .collect();
    let replies = support::concurrently(again, support::gate::signup_at);
    assert!(replies.iter().all(|(_, r)| r.status == 429), "cooldown");
    std::thread::sleep(Duration::from_millis(1500));
    email
}

#[test]
fn a_burst_of_a_hundred_is_queued_and_sent_at_the_interval_without_loss_or_throttling() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(
        "burst-100",
        Spec {
            vars: &[
                ("GATE_INTERVAL_MS", "100"),
                ("GATE_MAX_WAIT_MS", "1000"),
                ("ADMIN_TOKEN", TOKEN),
            ],
            ses_args: &["--throttle-ms", "100"],
            ..Spec::default()
        },
    );
    let warm = warm_up(&stack);
    let results = burst(&stack, "burst", 100);
    let intake_ended_us = unix_now_us();
    assert_all_sent_or_queued(&results);
    assert!(
        results.iter().any(|(_, r)| r.status == 202),
        "a burst this size must queue"
    );

    let outbox = stack.wait_for_outbox(101, Duration::from_secs(60));
    assert_eq!(outbox.len(), 101, "every signup is sent");
    let mut expected: Vec<String> = results.into_iter().map(|(e, _)| e).chain([warm]).collect();
    expected.sort();
    assert_eq!(
        support::gate::sent_addresses(&stack),
        expected,
        "exactly these, each once"
    );
    assert_no_throttling_at_ses(&stack);
    // After the warm-up send.
    let spacing = Spacing::of(&stack.send_arrivals_us()[1..], intake_ended_us);
    let Spacing {
        min_ms,
        longest_ms,
        steady_mean_ms,
        steady_gaps,
        ..
    } = spacing;
    eprintln!("burst of 100 at 100 ms: {}", spacing.summary());
    assert!(min_ms >= 100.0, "min spacing {min_ms} ms");
    assert!(
        steady_gaps >= 50,
        "intake held most of the burst: only {steady_gaps} gaps after it"
    );
    assert!(
        steady_mean_ms <= STEADY_MEAN_MAX_MS_AT_100,
        "steady mean spacing {steady_mean_ms} ms"
    );
    assert!(
        longest_ms < 1000.0,
        "intake held the sends for {longest_ms} ms"
    );

    let stats = stack.stats(Some(TOKEN));
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.json["queueLength"], 0);
    assert_eq!(stats.json["sendsLastMinute"], 101);
}

#[test]
fn ten_signups_at_the_real_one_second_interval_are_spaced_by_a_second() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(
        "real-rate",
        Spec {
            vars: &[("GATE_MAX_WAIT_MS", "2000")],
            ..Spec::default()
        },
    );
    warm_up(&stack);
    let results = burst(&stack, "real", 10);
    let intake_ended_us = unix_now_us();
    assert_all_sent_or_queued(&results);
    assert_eq!(stack.wait_for_outbox(11, Duration::from_secs(40)).len(), 11);
    assert_no_throttling_at_ses(&stack);
    // After the warm-up send.
    let spacing = Spacing::of(&stack.send_arrivals_us()[1..], intake_ended_us);
    let Spacing {
        min_ms,
        longest_ms,
        steady_mean_ms,
        steady_gaps,
        ..
    } = spacing;
    eprintln!("10 at 1000 ms: {}", spacing.summary());
    assert!(min_ms >= 1000.0, "min spacing {min_ms} ms");
    assert!(steady_gaps >= 5, "only {steady_gaps} gaps after intake");
    assert!(
        steady_mean_ms <= 1030.0,
        "steady mean spacing {steady_mean_ms} ms (slot use under 97%)"
    );
    assert!(longest_ms <= 1050.0, "longest gap {longest_ms} ms");
}
