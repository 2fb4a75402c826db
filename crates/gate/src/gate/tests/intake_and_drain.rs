//! Intake and the drain: direct sends, slots, the queue, retries, limits, storage failures,
//! restarts and the log lines.

use super::*;

#[test]
fn an_idle_gate_sends_at_once_and_records_the_send_and_the_address() {
    let h = Harness::new(config());
    let reply = h.send("jane@example.com");
    assert_eq!(
        reply,
        Ok(Accepted::Sent {
            message_id: Some("m-1".into()),
            signup: None,
        })
    );
    assert_eq!(h.sender.slots(), [START]);
    let sends = h.gate.state.borrow().sends.clone();
    assert_eq!(
        (
            sends.last_minute(START + ROUND_TRIP),
            sends.last_minute(START + 61_000)
        ),
        (1, 0),
        "the send is logged at its time"
    );
    let key = address_key(&h.gate.address_secret, &email("jane@example.com"));
    assert_eq!(h.store.address(&key).map(|r| r.count), Some(1));
    assert!(h.store.items().is_empty());
}

#[test]
fn a_direct_signup_stores_its_slot_and_budget_before_its_call_leaves() {
    let h = Harness::new(config());
    let (store, seen) = (h.store.clone(), Rc::new(RefCell::new(None)));
    let seen_in_flight = seen.clone();
    *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
        *seen_in_flight.borrow_mut() = Some(store.load_state().expect("state"));
    }));
    h.sent("jane@example.com");
    let in_flight = seen.borrow().clone().expect("read during the call");
    // A gate restarted now would give the next signup the slot after this one.
    assert_eq!(in_flight.next_free_ms, h.sender.slots()[0] + INTERVAL);
    let mut budget = in_flight.budget;
    assert_eq!(
        budget.take(START, 1),
        Err(86_400),
        "the signup's budget count is stored"
    );
}

#[test]
fn a_direct_signup_writes_the_gate_state_once_before_its_call_and_once_after_with_its_send() {
    let h = Harness::new(config());
    h.sent("jane@example.com");
    assert_eq!(h.store.calls("save state"), 2);
    let stored = h.store.load_state().expect("saved").sends;
    assert_eq!(
        stored.last_minute(START + ROUND_TRIP),
        1,
        "the send log survives an eviction"
    );
    assert_eq!(
        h.restart(config()).gate.state.borrow().next_free_ms,
        START + INTERVAL,
        "what a new object loads"
    );
}

#[test]
fn a_direct_signup_reads_its_signup_row_once_and_stores_it_sent() {
    let h = Harness::new(config());
    h.sent("jane@example.com");
    assert_eq!(
        h.store.calls("load signup"),
        1,
        "only for the row it replaces"
    );
    let rows = h.store.signups();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, SignupState::Sent);
    assert_eq!(rows[0].sent_ms, Some(START + ROUND_TRIP));
    assert_eq!(rows[0].message_id.as_deref(), Some("m-1"));
}

#[test]
fn a_sent_signup_sets_the_alarm_for_its_first_check_and_a_queued_one_looks_up_no_follow_up() {
    let h = Harness::new(no_wait());
    h.sent("jane@example.com");
    assert_eq!(
        h.runtime.last_alarm(),
        Some(START + ROUND_TRIP + MIN_CHECK_GAP_MS)
    );
    assert_eq!(h.queued("john@example.com"), 1);
    assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
    for lookup in ["next check", "next cleanup", "next event"] {
        assert_eq!(h.store.calls(lookup), 0, "{lookup}");
    }
}

#[test]
fn signups_in_a_row_get_slots_one_interval_apart() {
    let h = Harness::new(config());
    h.runtime.advance_to(START);
    for i in 0..3 {
        h.runtime.0.now.set(START);
        assert!(matches!(
            h.send(&format!("u{i}@example.com")),
            Ok(Accepted::Sent { .. })
        ));
    }
    assert_eq!(h.sender.slots(), [START, START + 1_000, START + 2_000]);
}

#[test]
fn a_signup_whose_slot_is_beyond_the_max_wait_is_queued_with_an_estimate_and_an_alarm_now() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    let reply = h.send("second@example.com");
    let at = START + ROUND_TRIP;
    assert_eq!(
        reply,
        Ok(Accepted::Queued {
            position: 1,
            estimated_send_at: rfc3339_utc(START + INTERVAL),
            paused_until: None,
            signup: None,
        })
    );
    assert_eq!(h.runtime.last_alarm(), Some(at));
    assert_eq!(h.sender.slots().len(), 1, "the queued one is not sent yet");
}

#[test]
fn only_the_first_queued_signup_of_a_drain_sets_the_alarm() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    // The send's first status check, five seconds on.
    assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP + 5_000));
    for i in 0..5 {
        h.queued(&format!("q{i}@example.com"));
    }
    assert_eq!(h.store.items().len(), 5);
    assert_eq!(h.runtime.0.alarms.borrow().len(), 2);
    assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
}

#[test]
fn a_signup_behind_a_non_empty_queue_waits_its_turn_even_when_a_slot_is_free() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("queued@example.com");
    h.runtime.advance_by(60_000);
    let reply = h.send("late@example.com");
    assert_eq!(position(&reply), Some(2));
    assert_eq!(h.sender.slots().len(), 1);
}

#[test]
fn a_retryable_failure_on_a_direct_send_goes_to_the_head_of_the_queue_with_one_attempt() {
    let h = Harness::new(config());
    h.sender.answers([server_error()]);
    let reply = h.send("flaky@example.com");
    assert_eq!(position(&reply), Some(1));
    let items = h.store.items();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].email.as_str(), items[0].attempts),
        ("flaky@example.com", 1)
    );
    assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
    assert_eq!(h.sender.slots().len(), 1, "no retry in the request");
}

#[test]
fn a_failed_direct_send_goes_ahead_of_signups_queued_while_it_was_in_flight() {
    let h = Harness::new(config());
    h.sender.answers([server_error()]);
    let store = h.store.clone();
    *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
        store
            .enqueue(NewItem {
                end: QueueEnd::Back,
                to: Recipient {
                    email: &email("later@example.com"),
                    key: "k-later",
                    request_id: None,
                },
                domain: "example.com",
                tag: 1,
                now_ms: START,
                attempts: 0,
            })
            .expect("queued meanwhile");
    }));
    assert_eq!(position(&h.send("first@example.com")), Some(1));
    let order: Vec<String> = h
        .store
        .items()
        .iter()
        .map(|i| i.email.to_string())
        .collect();
    assert_eq!(order, ["first@example.com", "later@example.com"]);
}

#[test]
fn a_throttled_direct_send_is_queued_without_an_attempt_and_the_gate_backs_off() {
    let h = Harness::new(config());
    h.sender.answers([throttled()]);
    assert_eq!(position(&h.send("a@example.com")), Some(1));
    assert_eq!(
        h.store.items()[0].attempts,
        0,
        "throttling is not the signup's fault"
    );
    let stats = h.gate.stats().expect("stats");
    assert_eq!(stats.throttles_seen, 1);
    assert!(h.gate.state.borrow().next_free_ms >= START + ROUND_TRIP + 1_000);
}

#[test]
fn a_direct_send_that_times_out_is_not_made_again_and_keeps_its_admission() {
    let h = Harness::new(config());
    h.sender.answers([Some(CallResult::TimedOut)]);
    assert_eq!(h.send("a@example.com"), Err(ApiError::UpstreamTimeout));
    assert!(h.store.items().is_empty(), "not queued for another try");
    h.drain();
    assert!(matches!(
        h.send("a+1@example.com"),
        Err(ApiError::Cooldown { .. })
    ));
    assert_eq!(h.sender.slots().len(), 1);
}

#[test]
fn a_queued_item_whose_call_timed_out_is_tried_once_more_at_most() {
    let h = Harness::new(GateConfig {
        ses_max_attempts: 5,
        ..no_wait()
    });
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.sender
        .answers([Some(CallResult::TimedOut), Some(CallResult::TimedOut)]);
    h.drain();
    assert_eq!(
        h.sender.addresses()[1..],
        ["a@example.com", "a@example.com"],
        "one more call after the timeout, then dropped"
    );
    assert_eq!(
        h.gate.stats().expect("stats").drops.get("exhausted"),
        Some(&1)
    );
}

#[test]
fn one_domain_holds_at_most_five_direct_slots_and_the_rest_is_queued() {
    let h = Harness::new(config());
    let held = |domain: &str, n| {
        h.gate
            .direct_by_domain
            .borrow_mut()
            .insert(domain.to_string(), n);
    };
    held("flood.example", 4);
    h.sent("fifth@flood.example");
    assert_eq!(
        h.gate.direct_by_domain.borrow().get("flood.example"),
        Some(&4),
        "the fifth slot was held during the call and given back after it"
    );
    held("flood.example", 5);
    assert_eq!(h.queued("sixth@flood.example"), 1);
    let fresh = Harness::new(config());
    fresh
        .gate
        .direct_by_domain
        .borrow_mut()
        .insert("flood.example".into(), 5);
    fresh.sent("someone@quiet.example");
    let no_queue = Harness::new(no_room());
    no_queue
        .gate
        .direct_by_domain
        .borrow_mut()
        .insert("flood.example".into(), 5);
    no_queue.sent("sixth@flood.example");
}

#[test]
fn without_a_queue_a_timeout_is_answered_at_once_and_keeps_the_admission() {
    let h = Harness::new(no_room());
    h.sender.answers([Some(CallResult::TimedOut)]);
    assert_eq!(h.send("a@example.com"), Err(ApiError::UpstreamTimeout));
    assert_eq!(h.sender.slots().len(), 1, "no retry after a timeout");
    h.runtime.advance_by(5_000);
    assert!(
        matches!(
            h.send("A+again@example.com"),
            Err(ApiError::Cooldown { .. })
        ),
        "the call may have reached SES: a resubmission must not mail again"
    );
    assert_eq!(h.sender.slots().len(), 1);
}

#[test]
fn an_address_ses_refuses_is_answered_rejected_and_does_not_count_against_it() {
    let h = Harness::new(config());
    h.sender.answers([answered(Outcome::Rejected)]);
    assert_eq!(h.send("a@example.com"), Err(ApiError::Rejected));
    assert!(h.store.items().is_empty());
    // Taken back: the next try is not refused by the cooldown.
    assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
}

#[test]
fn an_ses_configuration_error_on_a_direct_send_is_misconfigured_and_not_queued() {
    let h = Harness::new(config());
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    assert_eq!(h.send("a@example.com"), Err(ApiError::Misconfigured));
    assert!(h.store.items().is_empty());
}

#[test]
fn a_call_the_sender_cannot_make_is_misconfigured_and_taken_back() {
    let h = Harness::new(config());
    h.sender.answers([None]);
    assert_eq!(h.send("a@example.com"), Err(ApiError::Misconfigured));
    assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
}

#[test]
fn without_a_queue_a_server_error_is_retried_twice_in_the_request_then_answered() {
    let h = Harness::new(no_room());
    h.sender
        .answers([server_error(), server_error(), server_error()]);
    assert_eq!(h.send("a@example.com"), Err(ApiError::UpstreamError));
    let slots = h.sender.slots();
    assert_eq!(slots.len(), 3);
    assert!(
        slots.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
        "{slots:?}"
    );
}

#[test]
fn without_a_queue_a_retry_that_succeeds_is_sent() {
    let h = Harness::new(no_room());
    h.sender.answers([server_error()]);
    assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
    assert_eq!(h.sender.slots().len(), 2);
}

#[test]
fn without_a_queue_throttling_is_answered_upstream_throttled_with_an_honest_retry_after() {
    let h = Harness::new(no_room());
    h.sender.answers([throttled(), throttled(), throttled()]);
    match h.send("a@example.com") {
        Err(ApiError::UpstreamThrottled { retry_after_secs }) => {
            assert!(retry_after_secs >= 1, "{retry_after_secs}")
        }
        other => panic!("expected upstream_throttled, got {other:?}"),
    }
}

#[test]
fn without_a_queue_a_busy_gate_answers_busy_and_takes_the_admission_back() {
    let config = GateConfig {
        max_wait_ms: 0,
        ..no_room()
    };
    let h = Harness::new(config);
    h.sent("first@example.com");
    h.runtime.0.now.set(START);
    let reply = h.send("second@example.com");
    assert!(
        matches!(
            reply,
            Err(ApiError::Busy {
                retry_after_secs: 1
            })
        ),
        "{reply:?}"
    );
    assert_eq!(h.sender.slots().len(), 1);
    h.runtime.advance_by(2_000);
    assert!(
        matches!(h.send("second@example.com"), Ok(Accepted::Sent { .. })),
        "the busy signup did not count against the address"
    );
}

#[test]
fn a_full_queue_answers_busy_with_the_time_to_drain_what_is_ahead() {
    let config = GateConfig {
        max_wait_ms: 0,
        queue_max: 3,
        ..config()
    };
    let h = Harness::new(config);
    h.sent("first@example.com");
    for i in 0..3 {
        assert!(position(&h.send(&format!("q{i}@example.com"))).is_some());
    }
    let reply = h.send("one-too-many@example.com");
    // One slot still taken (until START + 1 s) plus three queued at 1 s each.
    assert_eq!(
        reply,
        Err(ApiError::Busy {
            retry_after_secs: 4
        })
    );
}

#[test]
fn with_one_attempt_allowed_a_failed_direct_send_is_retried_in_the_request_not_queued() {
    let h = Harness::new(GateConfig {
        ses_max_attempts: 1,
        ..config()
    });
    h.sender.answers([server_error()]);
    assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
    assert!(h.store.items().is_empty());
    assert_eq!(h.sender.slots().len(), 2);
}

#[test]
fn an_address_already_queued_gets_its_position_back_and_no_second_item() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.queued("b@example.com");
    assert_eq!(position(&h.send("a@example.com")), Some(1));
    assert_eq!(
        position(&h.send("A@EXAMPLE.com")),
        Some(1),
        "case does not matter"
    );
    assert_eq!(position(&h.send("b@example.com")), Some(2));
    assert_eq!(h.store.items().len(), 2);
}

#[test]
fn a_second_signup_within_the_cooldown_is_refused_without_an_ses_call() {
    let h = Harness::new(config());
    h.sent("a@example.com");
    h.runtime.advance_by(10_000);
    let reply = h.send("a@example.com");
    assert_eq!(
        reply,
        Err(ApiError::Cooldown {
            retry_after_secs: 60
        })
    );
    assert_eq!(h.sender.slots().len(), 1);
    assert!(h.runtime.events().contains(&"address_cooldown".to_string()));
}

#[test]
fn variants_of_one_mailbox_share_the_cooldown_and_ses_gets_the_address_as_typed() {
    let h = Harness::new(config());
    h.sent("Jane.Doe+news@GoogleMail.com");
    for variant in [
        "janedoe@gmail.com",
        "j.a.n.e.d.o.e@gmail.com",
        "JaneDoe+x@gmail.com",
    ] {
        assert!(
            matches!(h.send(variant), Err(ApiError::Cooldown { .. })),
            "{variant}"
        );
    }
    assert_eq!(h.sender.addresses(), ["Jane.Doe+news@googlemail.com"]);
}

#[test]
fn the_daily_cap_refuses_the_sixth_signup_of_a_day() {
    let h = Harness::new(config());
    for _ in 0..5 {
        assert!(matches!(h.send("a@example.com"), Ok(Accepted::Sent { .. })));
        h.runtime.advance_by(61_000);
    }
    assert!(matches!(
        h.send("a@example.com"),
        Err(ApiError::Cooldown { .. })
    ));
    assert_eq!(h.sender.slots().len(), 5);
}

#[test]
fn limits_switched_off_keep_no_address_records() {
    let h = Harness::new(GateConfig {
        address_limits: AddressLimits {
            cooldown_ms: 0,
            daily_max: 0,
        },
        ..config()
    });
    h.sent("a@example.com");
    h.sent("a@example.com");
    assert_eq!(h.sender.slots().len(), 2);
    let key = address_key(&h.gate.address_secret, &email("a@example.com"));
    assert_eq!(h.store.address(&key), None);
}

#[test]
fn a_storage_failure_on_insert_is_a_clear_error_and_takes_the_admission_back() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.store.fail("enqueue");
    assert_eq!(h.send("a@example.com"), Err(ApiError::Unavailable));
    let line = h
        .runtime
        .0
        .logs
        .borrow()
        .iter()
        .find(|l| l["event"] == "gate_storage_error")
        .cloned()
        .expect("logged");
    assert!(line["error"]
        .as_str()
        .unwrap_or_default()
        .starts_with("enqueue failed"));
    let key = address_key(&h.gate.address_secret, &email("a@example.com"));
    assert_eq!(h.store.address(&key), None, "taken back");
    h.store.heal("enqueue");
    assert_eq!(position(&h.send("a@example.com")), Some(1));
}

#[test]
fn a_storage_failure_before_admission_is_unavailable_and_nothing_is_sent() {
    for operation in ["is queued", "load address", "store address", "queue length"] {
        let h = Harness::new(config());
        h.store.fail(operation);
        assert_eq!(
            h.send("a@example.com"),
            Err(ApiError::Unavailable),
            "{operation}"
        );
        assert!(h.sender.slots().is_empty(), "{operation}");
    }
}

#[test]
fn a_drain_sends_the_queue_in_order_one_interval_apart_and_then_stops() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    for i in 0..3 {
        h.queued(&format!("q{i}@example.com"));
    }
    h.drain();
    assert!(h.store.items().is_empty());
    assert_eq!(
        h.sender.addresses(),
        [
            "first@example.com",
            "q0@example.com",
            "q1@example.com",
            "q2@example.com"
        ]
    );
    let slots = h.sender.slots();
    assert!(
        slots.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
        "{slots:?}"
    );
    assert_eq!(h.gate.stats().expect("stats").sends_last_hour, 4);
    // Nothing is left, so only the watchdog is set and the next queued signup arms an alarm.
    let alarms = h.runtime.0.alarms.borrow().len();
    h.queued("next-1@example.com");
    h.queued("next-2@example.com");
    assert_eq!(h.runtime.0.alarms.borrow().len(), alarms + 1);
}

#[test]
fn a_drain_retries_a_server_error_then_drops_the_exhausted_item_and_goes_on() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("doomed@example.com");
    h.queued("fine@example.com");
    h.sender
        .answers([server_error(), Some(CallResult::TimedOut), server_error()]);
    h.drain();
    assert_eq!(
        h.sender.addresses()[1..],
        [
            "doomed@example.com",
            "doomed@example.com",
            "doomed@example.com",
            "fine@example.com"
        ]
    );
    let attempts: Vec<u32> = h.sender.calls.borrow()[1..4]
        .iter()
        .map(|c| c.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(h.store.items().is_empty());
    let stats = h.gate.stats().expect("stats");
    assert_eq!(stats.drops.get("exhausted"), Some(&1));
    assert!(h.runtime.events().contains(&"queue_drop".to_string()));
}

#[test]
fn a_drain_drops_an_address_ses_refuses_at_once() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("refused@example.com");
    h.queued("fine@example.com");
    h.sender.answers([answered(Outcome::Rejected)]);
    h.drain();
    assert_eq!(
        h.sender.addresses().len(),
        3,
        "one call for the refused address"
    );
    assert_eq!(
        h.gate.stats().expect("stats").drops.get("rejected"),
        Some(&1)
    );
}

#[test]
fn a_configuration_error_pauses_the_queue_keeps_every_item_and_wakes_at_the_pause_end() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    for i in 0..3 {
        h.queued(&format!("q{i}@example.com"));
    }
    h.sender
        .answers([answered(Outcome::Config { clock_skew: true })]);
    h.drain();
    let paused_at = h.runtime.now_ms();
    assert_eq!(h.store.items().len(), 3);
    assert!(h.store.items().iter().all(|i| i.attempts == 0));
    assert_eq!(h.runtime.last_alarm(), Some(paused_at + 60_000));
    assert!(h.gate.stats().expect("stats").paused_until.is_some());
    // A signup during the pause is queued, not sent.
    h.runtime.advance_by(1_000);
    assert_eq!(position(&h.send("during@example.com")), Some(4));
    // At the pause's end the queue goes on.
    h.runtime.advance_to(paused_at + 60_000);
    h.drain();
    assert!(h.store.items().is_empty());
    assert_eq!(h.gate.stats().expect("stats").paused_until, None);
}

#[test]
fn a_throttled_head_stays_first_and_the_next_call_waits_out_the_backoff() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.sender.answers([throttled()]);
    h.drain();
    let calls = h.sender.calls.borrow().clone();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].call, calls[2].call);
    assert_eq!(calls[2].attempt, 1, "a throttle is not an attempt");
    let throttled_at = calls[1].slot_ms + ROUND_TRIP;
    assert!(calls[2].slot_ms >= throttled_at + 1_000, "{calls:?}");
}

#[test]
fn a_drain_stops_at_its_budget_and_sets_the_alarm_for_the_next_slot() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    for i in 0..40 {
        h.queued(&format!("q{i}@example.com"));
    }
    h.drain();
    let sent = h.sender.slots().len();
    assert!((20..=22).contains(&sent), "{sent} calls in a 20 s budget");
    assert_eq!(h.store.items().len(), 41 - sent);
    let next_free = h.gate.state.borrow().next_free_ms;
    assert_eq!(h.runtime.last_alarm(), Some(next_free));
}

#[test]
fn a_drain_that_cannot_reach_the_sender_keeps_the_item_and_tries_again_in_a_minute() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.sender.answers([None]);
    h.drain();
    assert_eq!(h.store.items().len(), 1);
    assert_eq!(h.store.items()[0].attempts, 0);
    assert_eq!(
        h.runtime.last_alarm(),
        Some(h.runtime.now_ms() + RETRY_LATER_MS)
    );
}

#[test]
fn a_queue_row_that_no_longer_reads_back_is_dropped_and_the_rest_goes_on() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.store.put_unreadable_head(99);
    h.drain();
    assert_eq!(h.sender.addresses()[1..], ["a@example.com"]);
    assert!(h.runtime.events().contains(&"queue_drop".to_string()));
}

#[test]
fn a_sent_head_that_cannot_be_removed_stops_the_drain_instead_of_sending_it_twice() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.queued("b@example.com");
    h.store.fail("remove");
    h.drain();
    assert_eq!(h.sender.addresses()[1..], ["a@example.com"]);
    assert_eq!(
        h.runtime.last_alarm(),
        Some(h.runtime.now_ms() + RETRY_LATER_MS)
    );
}

#[test]
fn a_restart_resumes_the_queue_the_slots_and_the_limits() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("q1@example.com");
    h.queued("q2@example.com");
    let next_free = h.gate.state.borrow().next_free_ms;
    let restarted = h.restart(no_wait());
    assert_eq!(restarted.gate.address_secret, h.gate.address_secret);
    assert_eq!(restarted.gate.state.borrow().next_free_ms, next_free);
    assert!(matches!(
        restarted.send("first@example.com"),
        Err(ApiError::Cooldown { .. })
    ));
    assert_eq!(position(&restarted.send("q2@example.com")), Some(2));
    restarted.drain();
    assert_eq!(
        restarted.sender.addresses(),
        ["q1@example.com", "q2@example.com"]
    );
    assert!(
        restarted.sender.slots()[0] >= next_free,
        "the slot taken before the restart holds"
    );
}

#[test]
fn a_gate_whose_state_cannot_be_loaded_does_not_open() {
    let store = MemoryStore::default();
    store.fail("load state");
    let runtime = FakeRuntime::at(START);
    let sender = FakeSender {
        runtime: runtime.clone(),
        script: Rc::default(),
        calls: Rc::default(),
        meanwhile: Rc::default(),
        identities: Rc::default(),
    };
    let opened = Gate::open(store, sender, runtime, config());
    assert!(matches!(
        opened.err(),
        Some(StoreError::Failed {
            operation: "load state",
            ..
        })
    ));
}

#[test]
fn an_alarm_that_cannot_be_set_is_logged_and_the_next_queued_signup_tries_again() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.runtime.0.alarm_fails.set(true);
    h.queued("a@example.com");
    assert!(h.runtime.events().contains(&"alarm_not_set".to_string()));
    h.runtime.0.alarm_fails.set(false);
    h.queued("b@example.com");
    // The send's status check, then the drain's.
    assert_eq!(h.runtime.0.alarms.borrow().len(), 2);
    assert_eq!(h.runtime.last_alarm(), Some(START + ROUND_TRIP));
}

#[test]
fn the_stats_count_the_queue_the_sends_and_the_oldest_item() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.runtime.advance_by(3_000);
    let stats = h.gate.stats().expect("stats");
    assert_eq!(
        (
            stats.queue_length,
            stats.sends_last_minute,
            stats.sends_last_hour
        ),
        (1, 1, 1)
    );
    assert_eq!(stats.oldest_item_age_ms, Some(3_000));
    assert_eq!(
        (stats.interval_ms, stats.current_interval_ms),
        (INTERVAL, INTERVAL)
    );
    h.store.fail("event backlog");
    assert!(
        h.gate.stats().is_err(),
        "a failing store is not reported as zeros"
    );
}

#[test]
fn the_cost_counters_ride_along_with_a_save_and_the_stats_report_them_per_signup() {
    let h = Harness::new(no_wait());
    // The shell counts each request to the gate object as it arrives.
    h.gate.count_request();
    h.store.charge(RowUsage {
        rows_read: 6,
        rows_written: 16,
    });
    h.sent("first@example.com");
    let saved = h.store.load_state().expect("saved").cost;
    assert_eq!(saved.signups, 1);
    assert_eq!(saved.gate_requests, 1);
    assert_eq!(
        (saved.rows_read, saved.rows_written),
        (6, 16),
        "the rows used before the save are stored with it"
    );

    // A request that changes nothing saves nothing: its counts wait for the next save, and the
    // stats include them meanwhile.
    h.gate.count_request();
    h.store.charge(RowUsage {
        rows_read: 2,
        rows_written: 0,
    });
    let before = h.store.calls("save state");
    let stats = h.gate.stats().expect("stats").cost;
    assert_eq!(
        h.store.calls("save state"),
        before,
        "counting costs no write"
    );
    assert_eq!(
        (stats.signups, stats.object_requests),
        (1, 2),
        "the two requests to the gate; its SES call is not a Durable Object request"
    );
    assert_eq!((stats.rows_read, stats.rows_written), (8, 16));
    assert_eq!(stats.rows_written_per_thousand_signups.0, 16_000);
    assert_eq!(stats.object_requests_per_thousand_signups.0, 2_000);

    h.runtime.advance_by(INTERVAL);
    h.sent("second@example.com");
    let saved = h.store.load_state().expect("saved").cost;
    assert_eq!(
        (saved.signups, saved.gate_requests, saved.rows_read),
        (2, 2, 8)
    );
}

#[test]
fn counters_changed_without_a_save_are_stored_within_the_hour() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    // The gate state was last saved before the send's call, at START; the checks that follow
    // save nothing of it.
    h.drain_at(START + 5_100);
    let (saves, saved_at) = (h.store.calls("save state"), START);
    let requests = |h: &Harness| h.store.load_state().expect("saved").cost.gate_requests;
    let stored = requests(&h);
    h.gate.count_request();
    h.drain_at(saved_at + 3_599_000);
    assert_eq!(
        h.store.calls("save state"),
        saves,
        "within the hour: no write"
    );
    h.gate.count_request();
    h.drain_at(saved_at + 3_600_000);
    assert_eq!(h.store.calls("save state"), saves + 1, "then one");
    assert_eq!(requests(&h), stored + 2, "both requests stored");
}

#[test]
fn no_log_line_ever_holds_an_address() {
    let h = Harness::new(GateConfig {
        max_wait_ms: 0,
        queue_max: 2,
        ses_max_attempts: 2,
        ..config()
    });
    let _ = h.send("secret.person@example.com");
    let _ = h.send("secret.person@example.com");
    let _ = h.send("another.secret@example.com");
    h.store.fail("enqueue");
    let _ = h.send("third.secret@example.com");
    h.store.heal("enqueue");
    h.sender
        .answers([server_error(), server_error(), answered(Outcome::Rejected)]);
    h.drain();
    let logs = h.runtime.0.logs.borrow();
    assert!(logs.len() >= 5, "{logs:?}");
    for line in logs.iter() {
        let text = line.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("example.com"), "{text}");
    }
}

#[test]
fn a_flood_to_one_domain_delays_only_that_domain() {
    let h = Harness::new(GateConfig {
        queue_max: 1_000,
        ..no_wait()
    });
    h.sent("first@flood.example");
    for i in 0..300 {
        h.queued(&format!("f{i}@flood.example"));
    }
    // Five flood mails go out, then someone from another domain signs up.
    for _ in 0..5 {
        let head = h.store.items()[0].clone();
        let call = CallRequest::send(head.recipient(), h.runtime.now_ms(), 1);
        let result = run(h.sender.call(&call)).expect("answered");
        h.gate.settle(&head, result).expect("settled");
    }
    let position = h.queued("quiet@other.example");
    assert!(
        position <= 2,
        "the other domain waits about one round, at {position}"
    );
    let again = h.queued("second@other.example");
    assert!(again <= 4, "its next signup is a round later, at {again}");
    let flood = h.queued("late@flood.example");
    assert_eq!(
        flood,
        300 - 5 + 3,
        "the flood's own line only grows at its end"
    );
}

#[test]
fn rotating_subdomains_share_their_registrable_domains_lane() {
    let h = Harness::new(GateConfig {
        queue_max: 1_000,
        address_limits: AddressLimits {
            cooldown_ms: 0,
            daily_max: 0,
        },
        ..no_wait()
    });
    h.sent("first@gmail.com");
    for i in 0..10 {
        h.queued(&format!("person{i}@gmail.com"));
    }
    // An attacker rotating subdomains of one domain, each a fresh name.
    for i in 0..10 {
        h.queued(&format!("bot@a{i}.attacker.xyz"));
    }
    let order: Vec<String> = h
        .store
        .items()
        .iter()
        .take(10)
        .map(|i| i.email.to_string())
        .collect();
    let bots = order
        .iter()
        .filter(|a| a.ends_with(".attacker.xyz"))
        .count();
    assert_eq!(
        bots, 5,
        "one lane for the attacker, taking turns: {order:?}"
    );
}

#[test]
fn two_floods_share_the_slots_in_turn() {
    let h = Harness::new(no_wait());
    h.sent("first@a.example");
    for i in 0..10 {
        h.queued(&format!("x{i}@a.example"));
    }
    for i in 0..10 {
        h.queued(&format!("y{i}@b.example"));
    }
    h.drain();
    let domains: Vec<String> = h.sender.addresses()[1..]
        .iter()
        .map(|a| a.rsplit('@').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(domains.len(), 20);
    // The first domain's lead is used up in the first round; then they alternate.
    assert!(
        domains.windows(2).skip(1).all(|w| w[0] != w[1]),
        "{domains:?}"
    );
}

#[test]
fn the_daily_budget_answers_busy_with_an_honest_retry_after_and_takes_nothing_back_it_kept() {
    let h = Harness::new(GateConfig {
        daily_send_budget: 2,
        ..config()
    });
    h.sent("a@example.com");
    h.sent("b@example.com");
    let refused = h.send("c@example.com");
    assert!(
        matches!(refused, Err(ApiError::Busy { retry_after_secs }) if retry_after_secs > 86_000),
        "{refused:?}"
    );
    assert_eq!(h.sender.slots().len(), 2);
    let key = address_key(&h.gate.address_secret, &email("c@example.com"));
    assert_eq!(
        h.store.address(&key),
        None,
        "the refused signup does not count"
    );
    let stats = h.gate.stats().expect("stats");
    assert_eq!((stats.daily_taken, stats.daily_budget), (2, 2));
    h.runtime.advance_by(cooldown_day());
    assert!(matches!(h.send("c@example.com"), Ok(Accepted::Sent { .. })));
}

fn cooldown_day() -> u64 {
    crate::cooldown::DAY_MS
}

#[test]
fn a_signup_that_fails_gives_its_place_in_the_budget_back() {
    let h = Harness::new(GateConfig {
        daily_send_budget: 1,
        ..no_room()
    });
    h.sender.answers([answered(Outcome::Rejected)]);
    assert_eq!(h.send("bad@example.com"), Err(ApiError::Rejected));
    assert!(matches!(
        h.send("good@example.com"),
        Ok(Accepted::Sent { .. })
    ));
}

#[test]
fn items_older_than_the_max_age_are_dropped_unsent_and_counted() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("old-1@example.com");
    h.queued("old-2@example.com");
    h.runtime.advance_by(3_600_001);
    h.queued("fresh@example.com");
    h.drain();
    assert_eq!(h.sender.addresses()[1..], ["fresh@example.com"]);
    assert_eq!(
        h.gate.stats().expect("stats").drops.get("expired"),
        Some(&2)
    );
    let line = h
        .runtime
        .0
        .logs
        .borrow()
        .iter()
        .find(|l| l["reason"] == "expired")
        .cloned()
        .expect("logged");
    assert_eq!(line["count"], 2);
}

#[test]
fn while_ses_reports_a_configuration_error_signups_are_queued_and_told_so() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    h.drain();
    let reply = h.send("b@example.com");
    match reply {
        Ok(Accepted::Queued {
            paused_until: Some(until),
            estimated_send_at,
            ..
        }) => assert!(estimated_send_at >= until, "{estimated_send_at} < {until}"),
        other => panic!("expected a queued answer naming the pause, got {other:?}"),
    }
    let stats = h.gate.stats().expect("stats");
    assert!(stats
        .paused_reason
        .is_some_and(|r| r.contains("configuration")));
}

#[test]
fn an_unreadable_2xx_is_sent_once_and_never_again() {
    let h = Harness::new(config());
    h.sender
        .answers([answered(Outcome::Sent { message_id: None })]);
    assert_eq!(
        h.send("a@example.com"),
        Ok(Accepted::Sent {
            message_id: None,
            signup: None
        })
    );
    assert_eq!(h.sender.slots().len(), 1);
    assert!(h.store.items().is_empty());
    assert!(matches!(
        h.send("a+again@example.com"),
        Err(ApiError::Cooldown { .. })
    ));
}

#[test]
fn a_paused_gate_in_a_pool_declines_a_new_signup_and_keeps_nothing_of_it() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    h.queued("a@example.com");
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    h.drain();
    let taken = h.gate.stats().expect("stats").daily_taken;
    let in_pool = |address: &str| {
        run(h
            .gate
            .send_in_pool(&email(address), &request_id_for(address), None, DECLINE))
    };
    let paused_until_ms = match in_pool("b@example.com") {
        Err(ApiError::RegionPaused {
            paused_until_ms,
            open: false,
        }) => paused_until_ms,
        other => panic!("expected the region to decline, got {other:?}"),
    };
    assert!(paused_until_ms > h.runtime.now_ms());
    assert_eq!(h.store.items().len(), 1, "b is not queued here");
    assert_eq!(
        h.gate.stats().expect("stats").daily_taken,
        taken,
        "nor counted"
    );
    // Declined, b is no stranger's later: another region may take it at once, and this one
    // too once the pause ends (no cooldown was taken).
    assert!(matches!(
        h.send("b@example.com"),
        Ok(Accepted::Queued { .. })
    ));
    // A mailbox already queued here stays here: it is not sent twice from two regions.
    assert!(matches!(
        in_pool("a@example.com"),
        Ok(Accepted::Queued { .. })
    ));
    // A decoy is declined where a signup would be.
    assert!(matches!(
        run(h
            .gate
            .decoy(&email("bot@example.com"), &request_id_for("bot"), true)),
        Err(ApiError::RegionPaused { .. })
    ));
}

#[test]
fn a_direct_send_that_meets_a_configuration_error_in_a_pool_pauses_the_region_and_declines() {
    let h = Harness::new(config());
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    let first =
        run(h
            .gate
            .send_in_pool(&email("a@example.com"), &request_id_for("a"), None, DECLINE));
    assert!(
        matches!(first, Err(ApiError::RegionPaused { .. })),
        "{first:?}"
    );
    assert!(h.gate.stats().expect("stats").paused_until.is_some());
    let calls = h.sender.calls.borrow().len();
    assert!(matches!(
        run(h
            .gate
            .send_in_pool(&email("b@example.com"), &request_id_for("b"), None, DECLINE)),
        Err(ApiError::RegionPaused { .. })
    ));
    assert_eq!(h.sender.calls.borrow().len(), calls, "no call while paused");
    assert!(h.store.items().is_empty() && h.store.signups().is_empty());
    // Alone (nowhere else to go), the same error is the caller's, as before pools.
    let alone = Harness::new(config());
    alone
        .sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    assert_eq!(alone.send("a@example.com"), Err(ApiError::Misconfigured));
    assert!(alone.gate.stats().expect("stats").paused_until.is_none());
}

/// A signup another region can take.
const DECLINE: crate::gate::PoolAsk = crate::gate::PoolAsk {
    may_decline: true,
    contested_elsewhere: false,
};
