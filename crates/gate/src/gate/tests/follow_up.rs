//! The follow-up (issue G): tracking, detection, confirmation, webhook delivery and clean-up.

use super::*;

#[test]
fn a_sent_signup_is_detected_verified_reported_by_a_signed_webhook_and_then_deleted() {
    let h = Harness::new(tracking(true));
    let reply = h.send("jane@example.com");
    let signup = h.named(&reply);
    assert_eq!(h.status_of(&signup).status, "sent");
    // First check five seconds on: pending, so the identity is ours.
    h.drain_at(START + 5_100);
    assert_eq!(
        h.actions(),
        [
            "SendCustomVerificationEmail",
            "GetIdentityVerificationAttributes"
        ]
    );
    assert_eq!(h.status_of(&signup).status, "sent");
    h.click("jane@example.com");
    let next = h.runtime.last_alarm().expect("the next check is set");
    assert!(next > START + 5_100 && next <= START + 11_000, "{next}");
    h.drain_at(next);
    let status = h.status_of(&signup);
    assert_eq!(
        (status.status.as_str(), status.verified, status.confirmed),
        ("verified", true, false)
    );
    assert!(status.verified_at.is_some());
    // Reported, then the identity deleted (after the delivery), all in that drain.
    assert_eq!(h.delivered_types(), ["signup.verified"]);
    let (headers, body) = h.runtime.0.deliveries.borrow()[0].clone();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .expect(name)
    };
    let key = hex::decode(WEBHOOK_KEY).expect("hex");
    let timestamp: u64 = header("webhook-timestamp").parse().expect("secs");
    assert_eq!(
        header("webhook-signature"),
        crate::webhook::signature(&key, &header("webhook-id"), timestamp, &body)
    );
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["data"]["email"], "jane@example.com");
    assert_eq!(body["data"]["messageId"], "m-1");
    h.drain_until(next + 2_000);
    assert_eq!(h.actions().last(), Some(&"DeleteIdentity"));
    assert!(
        h.sender.identities.borrow().is_empty(),
        "the identity is gone"
    );
    let stats = h.gate.stats().expect("stats");
    assert_eq!(
        (stats.tracking.verified, stats.tracking.identities_deleted),
        (1, 1)
    );
    assert_eq!((stats.pending_checks, stats.webhook_backlog), (0, 0));
    // Nothing is logged with the address.
    let logs = serde_json::to_string(&*h.runtime.0.logs.borrow()).expect("json");
    assert!(!logs.contains("jane@"), "{logs}");
}

#[test]
fn a_link_left_unclicked_past_its_ttl_is_expired_reported_and_cleaned_up() {
    let h = Harness::new(tracking(false));
    let signup = h.named(&h.send("late@example.com"));
    let mut at = START + 5_100;
    while h.status_of(&signup).status == "sent" {
        h.drain_at(at);
        at = h
            .runtime
            .last_alarm()
            .expect("an alarm")
            .max(h.runtime.now_ms() + 1);
        assert!(at < START + 700_000, "never expired");
    }
    assert_eq!(h.status_of(&signup).status, "expired");
    assert!(h.runtime.now_ms() >= START + 600_000);
    h.drain_until(h.runtime.now_ms() + 2_000);
    assert_eq!(h.actions().last(), Some(&"DeleteIdentity"));
    assert!(h.runtime.events().contains(&"identity_deleted".to_string()));
    let checks = h
        .actions()
        .iter()
        .filter(|a| **a == "GetIdentityVerificationAttributes")
        .count();
    assert!(
        (5..40).contains(&checks),
        "{checks} checks over ten minutes"
    );
}

#[test]
fn a_check_that_finds_a_signup_still_pending_writes_nothing_and_a_restart_checks_it_early() {
    let h = Harness::new(tracking(true));
    let signup = h.named(&h.send("slow@example.com"));
    // The first check sees the link unopened: that is a change of status, stored once.
    h.drain_at(START + 5_100);
    let first_next = h.runtime.last_alarm().expect("the next check is set");
    let stored = h.store.calls("store signup");
    // The second check finds it still pending: only its next check moves, in memory.
    h.drain_at(first_next);
    let second_next = h.runtime.last_alarm().expect("the next check is set");
    assert!(second_next > first_next, "{second_next} after {first_next}");
    assert_eq!(
        h.store.calls("store signup"),
        stored,
        "a check that only moves the next check writes no row"
    );
    assert_eq!(h.gate.stats().expect("stats").pending_checks, 1);
    let row = h.store.signups().pop().expect("the row");
    assert!(
        row.next_check_ms.is_some_and(|at| at < second_next),
        "the row keeps an earlier time: {row:?}"
    );

    // A new object (a restart) resumes the check from the row, no later than it was due.
    let h = h.restart(tracking(true));
    h.click("slow@example.com");
    let after_restart = h
        .gate
        .next_follow_up_at(h.runtime.now_ms())
        .expect("store")
        .expect("a check is due");
    assert!(
        after_restart <= second_next,
        "{after_restart} > {second_next}"
    );
    h.drain_until(second_next + 1_000);
    assert_eq!(h.status_of(&signup).status, "verified");
}

#[test]
fn an_unclicked_signup_is_checked_without_row_writes_and_a_restart_resumes_one_gap_on() {
    let h = Harness::new(tracking(true));
    h.sent("quiet@example.com");
    let stored_after_send = h.store.calls("store signup");
    let saved_after_send = h.store.calls("save state");
    let mut checks = 0;
    while let Some(next) = h.runtime.last_alarm().filter(|t| *t < START + 9 * 60_000) {
        h.drain_at(next);
        checks += 1;
    }
    let writes = h.store.calls("store signup") - stored_after_send;
    assert!(checks >= 15, "{checks} checks in nine minutes");
    assert_eq!(
        writes, 1,
        "only the first check (the link seen unopened) writes the row"
    );
    assert_eq!(
        h.store.calls("save state"),
        saved_after_send,
        "nor does any check store the gate state: follow-up slots are kept in memory"
    );

    // A new object resumes the stale row one check gap from now: no burst of checks at once,
    // and no later than a check made now would have set.
    let now = h.runtime.now_ms();
    let sent = h
        .store
        .signups()
        .pop()
        .and_then(|s| s.sent_ms)
        .expect("sent");
    let h = h.restart(tracking(true));
    let next = h
        .gate
        .next_follow_up_at(now)
        .expect("store")
        .expect("a check");
    assert_eq!(
        next,
        now + crate::tracking::check_gap_ms(sent, now),
        "{next}"
    );
}

#[test]
fn what_happened_to_a_signup_is_counted_in_stored_state_and_survives_a_restart() {
    let h = Harness::new(tracking(true));
    h.sent("kept@example.com");
    h.drain_at(START + 5_100);
    h.click("kept@example.com");
    h.drain_until(START + 200_000);
    let before = h.gate.stats().expect("stats");
    assert_eq!(
        (
            before.tracking.verified,
            before.tracking.identities_deleted,
            before.tracking.webhooks_delivered,
            before.sends_last_hour
        ),
        (1, 1, 1, 1)
    );
    let after = h.restart(tracking(true)).gate.stats().expect("stats");
    assert_eq!(
        (
            after.tracking.verified,
            after.tracking.identities_deleted,
            after.tracking.webhooks_delivered,
            after.sends_last_hour
        ),
        (1, 1, 1, 1),
        "an evicted object keeps the counts of what happened"
    );
}
