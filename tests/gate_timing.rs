//! The gate's pacing under a burst, at 100 ms and at the real 1000 ms interval. These tests are
//! in their own binary, and take turns, so that no other stack competes for the CPU while
//! spacing is measured.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::gate::{
    assert_all_sent_or_queued, assert_no_throttling_at_ses, burst, unix_now_us, warm_up,
    PacingBounds, Spacing, BURST_AT_100_MS, TOKEN,
};
use support::{Spec, Stack};

/// One timing test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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
    Spacing::of(&stack.send_arrivals_us()[1..], intake_ended_us)
        .assert_within("burst of 100 at 100 ms", &BURST_AT_100_MS);

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
    // After the warm-up send; a mean within 1030 ms is slot use of at least 97 %.
    Spacing::of(&stack.send_arrivals_us()[1..], intake_ended_us).assert_within(
        "10 at 1000 ms",
        &PacingBounds {
            interval_ms: 1000.0,
            steady_gaps_at_least: 5,
            steady_mean_at_most_ms: 1030.0,
            longest_at_most_ms: 1050.0,
        },
    );
}
