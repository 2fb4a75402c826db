//! Issue K: identities are the exact address, credentials belong to one signup, and
//! confirmation counts only after the link was opened.

use super::*;

impl Harness {
    fn verified_already(&self, address: &str) {
        self.sender
            .identities
            .borrow_mut()
            .insert(address.into(), "Success".into());
    }

    fn deleted(&self) -> Vec<String> {
        self.calls_where(|call| match call {
            SesCall::Delete { identity } => Some(identity.to_string()),
            _ => None,
        })
    }
}

/// The attack of finding 1: a variant of the From address, then the From address itself
/// after the cooldown. Returns the harness after both links' lives.
fn from_address_attack(h: &Harness) {
    h.sent("noreply+x@example.com");
    h.drain_at(START + 5_100);
    // Past the cooldown (the first send may come an interval after START).
    h.runtime.advance_to(START + 62_000);
    h.sent("noreply@example.com");
    h.drain_until(START + 700_000);
}

#[test]
fn the_from_address_signed_up_after_a_variant_of_it_is_never_deleted() {
    // With a snapshot (the account held the From address before any send).
    let h = Harness::without_snapshot(tracking(false), &[("noreply@example.com", "Success")]);
    // A new object's first follow-up call waits an interval from its start.
    h.drain_at(START);
    assert!(h.actions().is_empty(), "{:?}", h.actions());
    h.drain_at(START + INTERVAL);
    assert_eq!(
        h.actions(),
        ["ListIdentities"],
        "the snapshot comes first when idle"
    );
    from_address_attack(&h);
    assert!(
        !h.deleted().contains(&"noreply@example.com".to_string()),
        "{:?}",
        h.deleted()
    );
    assert_eq!(
        h.sender
            .identities
            .borrow()
            .get("noreply@example.com")
            .map(String::as_str),
        Some("Success")
    );
    // The variant's identity, which the gate's send created, is cleaned up.
    assert_eq!(h.deleted(), ["noreply+x@example.com"]);
    // Without any snapshot, the first check decides: the From address is verified.
    let h = Harness::without_snapshot(
        GateConfig {
            tracking: TrackingConfig {
                identity_cleanup: true,
                ..tracking(false).tracking
            },
            ..tracking(false)
        },
        &[("noreply@example.com", "Success")],
    );
    h.store.fail("store snapshot");
    from_address_attack(&h);
    assert!(
        !h.deleted().contains(&"noreply@example.com".to_string()),
        "{:?}",
        h.deleted()
    );
}

#[test]
fn a_signup_replaced_before_any_snapshot_or_check_is_asked_about_before_any_delete() {
    let limits = GateConfig {
        address_limits: AddressLimits {
            cooldown_ms: 1_000,
            daily_max: 0,
        },
        ..tracking(false)
    };
    // The From address first (verified long ago), then a variant a second later: the
    // From's signup is replaced before anything was known about its identity.
    let h = Harness::without_snapshot(limits.clone(), &[("noreply@example.com", "Success")]);
    h.store.fail("store snapshot");
    h.sent("noreply@example.com");
    h.runtime.advance_by(1_100);
    h.sent("noreply+x@example.com");
    h.drain_until(START + 700_000);
    assert!(
        !h.deleted().contains(&"noreply@example.com".to_string()),
        "{:?}",
        h.actions()
    );
    // A new address replaced the same way is the gate's (pending when asked): deleted.
    let h = Harness::without_snapshot(limits, &[]);
    h.store.fail("store snapshot");
    h.sent("fresh@example.com");
    h.runtime.advance_by(1_100);
    h.sent("fresh+x@example.com");
    h.drain_until(START + 700_000);
    assert_eq!(h.deleted(), ["fresh@example.com", "fresh+x@example.com"]);
}

#[test]
fn alternating_variants_of_one_mailbox_leave_no_identity_behind() {
    let h = Harness::new(GateConfig {
        address_limits: AddressLimits {
            cooldown_ms: 60_000,
            daily_max: 0,
        },
        ..tracking(false)
    });
    let variants = ["jo+a@example.com", "jo+b@example.com", "jo@example.com"];
    for (n, address) in variants.iter().cycle().take(7).enumerate() {
        h.runtime.advance_to(START + n as u64 * 61_000);
        h.sent(address);
        h.drain_until(h.runtime.now_ms() + 6_000);
    }
    h.drain_until(START + 7 * 61_000 + 700_000);
    assert!(
        h.sender.identities.borrow().is_empty(),
        "left behind: {:?}",
        h.sender.identities.borrow()
    );
    assert_eq!(h.gate.stats().expect("stats").tracking.replaced, 6);
}

#[test]
fn a_person_who_clicks_within_seconds_still_has_their_identity_deleted() {
    let h = Harness::new(tracking(false));
    let signup = h.named(&h.send("quick@example.com"));
    h.click("quick@example.com");
    h.drain_until(START + 20_000);
    assert_eq!(h.status_of(&signup).status, "verified");
    assert_eq!(h.deleted(), ["quick@example.com"]);
}

#[test]
fn an_identity_that_existed_before_the_send_or_is_kept_is_never_deleted() {
    let h = Harness::without_snapshot(
        tracking(false),
        &[
            ("owner@example.com", "Success"),
            ("pending@example.com", "Pending"),
        ],
    );
    h.drain_until(START + 3_000);
    for address in ["owner@example.com", "pending@example.com"] {
        h.runtime.advance_by(2_000);
        h.sent(address);
    }
    h.click("pending@example.com");
    h.drain_until(START + 700_000);
    assert_eq!(h.deleted(), Vec::<String>::new());
    // IDENTITY_KEEP protects an address the gate's own send creates.
    let h = Harness::new(GateConfig {
        tracking: TrackingConfig {
            identity_keep: crate::config::KeepList::parse("admin@example.com").expect("valid"),
            ..tracking(false).tracking
        },
        ..tracking(false)
    });
    h.sent("admin@example.com");
    h.click("admin@example.com");
    h.drain_until(START + 700_000);
    assert_eq!(h.deleted(), Vec::<String>::new());
    assert_eq!(h.gate.stats().expect("stats").tracking.cleanup_skipped, 1);
}

#[test]
fn the_snapshot_is_paged_skips_what_the_gate_created_and_comes_after_every_send_and_check() {
    let h = Harness::without_snapshot(
        tracking(false),
        &[
            ("a@old.example", "Success"),
            ("b@old.example", "Pending"),
            ("c@old.example", "Success"),
            ("old.example", "Success"),
        ],
    );
    h.sent("new@example.com");
    h.drain_until(START + 30_000);
    let actions = h.actions();
    assert_eq!(actions[0], "SendCustomVerificationEmail");
    let lists = actions.iter().filter(|a| **a == "ListIdentities").count();
    assert_eq!(lists, 2, "four email identities, two a page: {actions:?}");
    let snapshot = h.store.load_snapshot().expect("read").expect("taken");
    assert_eq!(snapshot.len(), 3, "the gate's own identity is not in it");
    for address in ["a@old.example", "b@old.example", "c@old.example"] {
        assert!(snapshot.contains(&h.gate.address_secret, &email(address)));
    }
    assert!(!snapshot.contains(&h.gate.address_secret, &email("new@example.com")));
    let stats = h.gate.stats().expect("stats");
    assert_eq!(stats.identity_snapshot_size, Some(3));
    assert_eq!(stats.tracking.snapshots_taken, 1);
}

#[test]
fn a_send_to_an_identity_whose_delete_is_in_flight_waits_for_the_delete() {
    let h = Rc::new(Harness::new(GateConfig {
        address_limits: AddressLimits {
            cooldown_ms: 0,
            daily_max: 0,
        },
        ..tracking(false)
    }));
    h.sent("again@example.com");
    h.click("again@example.com");
    h.drain_at(START + 5_100);
    assert_eq!(
        h.store.identities()[0].cleanup,
        crate::identities::Cleanup::Due
    );
    let during = Rc::clone(&h);
    let replies = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&replies);
    *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
        seen.borrow_mut().push(during.send("again@example.com"));
    }));
    h.drain_until(START + 20_000);
    let actions = h.actions();
    let delete = actions
        .iter()
        .position(|a| *a == "DeleteIdentity")
        .expect("deleted");
    assert!(
        matches!(replies.borrow()[0], Ok(Accepted::Queued { .. })),
        "{:?}",
        replies.borrow()
    );
    assert_eq!(
        actions[delete + 1],
        "SendCustomVerificationEmail",
        "the new send leaves after the delete: {actions:?}"
    );
    // The new link's identity exists, and its record is not marked deleted.
    assert!(h
        .sender
        .identities
        .borrow()
        .contains_key("again@example.com"));
    let identity = &h.store.identities()[0];
    assert_eq!(identity.cleanup, crate::identities::Cleanup::NotYet);
    drop(replies);
    *h.sender.meanwhile.borrow_mut() = None;
}

#[test]
fn deletes_that_keep_failing_back_off_are_given_up_and_never_block_the_others() {
    let h = Harness::new(no_wait_tracking());
    h.sent("stuck@example.com");
    h.click("stuck@example.com");
    h.drain_at(START + 5_100);
    // Every delete of `stuck` is refused (an IAM policy without the action, say).
    h.sender.answers([answered(Outcome::Unknown)]);
    h.drain_at(START + 7_000);
    assert_eq!(h.deleted(), ["stuck@example.com"]);
    h.runtime.advance_to(START + 8_000);
    h.sent("free@example.com");
    h.click("free@example.com");
    h.drain_until(START + 20_000);
    assert_eq!(
        h.deleted(),
        ["stuck@example.com", "free@example.com"],
        "the other identity is not held up"
    );
    for _ in 0..20 {
        h.sender.answers([answered(Outcome::Unknown)]);
    }
    h.drain_until(START + 5 * 3_600_000);
    let stats = h.gate.stats().expect("stats");
    assert_eq!(stats.tracking.cleanup_given_up, 1, "{:?}", h.deleted());
    assert_eq!(
        h.deleted()
            .iter()
            .filter(|d| *d == "stuck@example.com")
            .count() as u32,
        crate::identities::MAX_CLEANUP_FAILURES
    );
    assert!(h
        .runtime
        .events()
        .contains(&"identity_cleanup_given_up".to_string()));
}

fn no_wait_tracking() -> GateConfig {
    GateConfig {
        address_limits: AddressLimits {
            cooldown_ms: 0,
            daily_max: 0,
        },
        ..tracking(false)
    }
}

#[test]
fn a_signup_whose_checks_keep_failing_expires_after_its_link_and_a_margin() {
    let h = Harness::new(tracking(false));
    let signup = h.named(&h.send("a@example.com"));
    for _ in 0..200 {
        h.sender
            .answers([answered(Outcome::Config { clock_skew: false })]);
    }
    h.drain_until(START + 600_000 + crate::tracking::UNCHECKED_MARGIN_MS + 120_000);
    let status = h.status_of(&signup);
    assert_eq!(
        (status.status.as_str(), status.reason.as_deref()),
        ("expired", Some("unchecked"))
    );
    assert_eq!(h.gate.stats().expect("stats").pending_checks, 0);
}

#[test]
fn a_dedupe_answer_carries_no_credentials_of_the_queued_signup() {
    let h = Harness::new(GateConfig {
        tracking: tracking(false).tracking,
        ..no_wait()
    });
    h.sent("first@example.com");
    let victim = h.send("jane@gmail.com");
    assert!(h.named(&victim).nonce.len() == 32);
    let stranger = h.send("J.a.n.e+z@googlemail.com");
    assert!(
        matches!(stranger, Ok(Accepted::Queued { .. })),
        "{stranger:?}"
    );
    assert_eq!(stranger.as_ref().ok().and_then(|a| a.signup()), None);
}

#[test]
fn a_replaced_or_forged_signup_reference_names_nothing() {
    let h = Harness::new(tracking(false));
    let first = h.named(&h.send("a@example.com"));
    h.runtime.advance_to(START + 61_000);
    let second = h.named(&h.send("a+x@example.com"));
    assert_eq!(first.key, second.key, "one mailbox");
    assert_ne!(first.nonce, second.nonce);
    assert_eq!(h.gate.status(&first), Err(ApiError::UnknownSignup));
    assert_eq!(h.status_of(&second).status, "sent");
    let guessed = SignupRef {
        nonce: first.nonce.clone(),
        ..second.clone()
    };
    assert_eq!(h.gate.status(&guessed), Err(ApiError::UnknownSignup));
    assert_eq!(
        run(h.gate.confirm(&first)),
        Err(ApiError::UnknownSignup),
        "a replaced signup cannot be confirmed"
    );
}

#[test]
fn a_confirmation_before_the_link_was_opened_is_refused_and_recorded_nowhere() {
    let h = Harness::new(tracking(true));
    let signup = h.named(&h.send("early@example.com"));
    h.runtime.advance_by(2_000);
    assert_eq!(run(h.gate.confirm(&signup)), Err(ApiError::NotVerified));
    assert_eq!(
        h.actions(),
        [
            "SendCustomVerificationEmail",
            "GetIdentityVerificationAttributes"
        ],
        "SES is asked at once"
    );
    assert!(!h.status_of(&signup).confirmed);
    // The link is opened later: verified, but still not confirmed; nothing was kept.
    h.click("early@example.com");
    h.drain_until(START + 30_000);
    let status = h.status_of(&signup);
    assert_eq!(
        (status.status.as_str(), status.confirmed),
        ("verified", false)
    );
    assert_eq!(h.delivered_types(), ["signup.verified"]);
    assert_eq!(
        h.gate
            .stats()
            .expect("stats")
            .tracking
            .confirmations_refused,
        1
    );
}

fn checks_made(h: &Harness) -> usize {
    h.actions()
        .iter()
        .filter(|a| **a == "GetIdentityVerificationAttributes")
        .count()
}

#[test]
fn an_identity_the_operator_made_after_the_gate_deleted_its_own_is_left_alone() {
    let h = Harness::new(tracking(false));
    h.sent("ops@example.com");
    h.click("ops@example.com");
    h.drain_until(START + 30_000);
    assert_eq!(h.deleted(), ["ops@example.com"]);
    // The operator then verifies ops@ as a sender; a snapshot is taken since.
    h.verified_already("ops@example.com");
    h.drain_until(START + 2 * 3_600_000);
    let snapshot = h.store.load_snapshot().expect("read").expect("taken");
    assert!(snapshot.contains(&h.gate.address_secret, &email("ops@example.com")));
    h.runtime.advance_to(START + 2 * 3_600_000 + 1_000);
    h.sent("ops@example.com");
    h.drain_until(START + 2 * 3_600_000 + 700_000);
    assert_eq!(
        h.deleted(),
        ["ops@example.com"],
        "deleted once, never again"
    );
    assert!(h.sender.identities.borrow().contains_key("ops@example.com"));
}

#[test]
fn a_send_ses_refused_deletes_nothing() {
    let h = Harness::new(tracking(false));
    h.verified_already("team@example.com");
    h.sender.answers([answered(Outcome::Rejected)]);
    assert_eq!(h.send("team@example.com"), Err(ApiError::Rejected));
    h.drain_until(START + 30_000);
    assert_eq!(h.deleted(), Vec::<String>::new());
}

#[test]
fn an_address_added_to_identity_keep_after_its_send_is_still_never_deleted() {
    let h = Harness::new(tracking(false));
    h.sent("boss@example.com");
    h.click("boss@example.com");
    // The operator adds it to IDENTITY_KEEP before the clean-up ran: a new object reads it.
    let h = h.restart(GateConfig {
        tracking: TrackingConfig {
            identity_keep: crate::config::KeepList::parse("boss@example.com").expect("valid"),
            ..tracking(false).tracking
        },
        ..tracking(false)
    });
    h.drain_until(START + 30_000);
    assert_eq!(h.deleted(), Vec::<String>::new());
}

#[test]
fn pressing_confirm_again_and_again_costs_at_most_one_ses_call_per_gap() {
    let h = Harness::new(tracking(false));
    let signup = h.named(&h.send("spam@example.com"));
    h.drain_at(START + 5_100);
    let before = checks_made(&h);
    for _ in 0..30 {
        h.runtime.advance_by(500);
        assert_eq!(run(h.gate.confirm(&signup)), Err(ApiError::NotVerified));
    }
    let made = checks_made(&h) - before;
    assert!(made <= 8, "{made} calls for 30 presses in 15 s");
    // Not while signups wait in the queue.
    let h = Harness::new(GateConfig {
        tracking: tracking(false).tracking,
        ..no_wait()
    });
    let pending = h.named(&h.send("pending@example.com"));
    h.queued("waiting@example.com");
    let before = checks_made(&h);
    assert_eq!(run(h.gate.confirm(&pending)), Err(ApiError::NotVerified));
    assert_eq!(checks_made(&h), before, "the queue goes first");
}

#[test]
fn concurrent_signups_of_one_mailbox_with_limits_off_strand_no_record() {
    let h = Rc::new(Harness::new(GateConfig {
        max_wait_ms: 0,
        ..no_wait_tracking()
    }));
    let during = Rc::clone(&h);
    *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || {
        let b = during.send("x+b@example.com");
        assert!(matches!(b, Ok(Accepted::Queued { .. })), "{b:?}");
    }));
    let a = h.named(&h.send("x@example.com"));
    *h.sender.meanwhile.borrow_mut() = None;
    assert_eq!(
        h.gate.status(&a),
        Err(ApiError::UnknownSignup),
        "b replaced a"
    );
    h.drain_until(START + 3_600_000);
    assert!(
        h.store.identities().iter().all(|i| !i.has_work()),
        "{:?}",
        h.store.identities()
    );
    assert!(
        h.sender.identities.borrow().is_empty(),
        "{:?}",
        h.sender.identities.borrow()
    );
}

#[test]
fn a_row_from_before_this_version_finishing_never_touches_a_new_signups_identity() {
    let h = Harness::new(tracking(false));
    let old = format!(
        r#"{{"email":"l@example.com","signed_up_ms":{s},"state":"sent","message_id":null,"sent_ms":{s},"verified_ms":null,"confirmed":false,"owned":true,"next_check_ms":{c},"cleanup":"not_yet","reason":null}}"#,
        s = START - 590_000,
        c = START + 20_000
    );
    let legacy: crate::tracking::Signup = serde_json::from_str(&old).expect("reads");
    h.store
        .store_signup("legacy-key-of-the-first-version", &legacy)
        .expect("stored");
    let fresh = h.named(&h.send("l@example.com"));
    h.drain_until(START + 60_000);
    assert_eq!(h.status_of(&fresh).status, "sent");
    assert_eq!(h.deleted(), Vec::<String>::new(), "the new link stays live");
}

#[test]
fn a_send_taken_back_after_its_identitys_release_was_delivered_still_cleans_up() {
    let h = Rc::new(Harness::new(tracking(true)));
    h.sent("v@example.com");
    h.click("v@example.com");
    h.runtime
        .0
        .receiver
        .borrow_mut()
        .extend([Err("down".to_string())]);
    h.drain_at(START + 5_100);
    // The same address again; its send fails (configuration), and the retried delivery of
    // `verified` happens while that send is in flight.
    h.runtime.advance_to(START + 61_000);
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    let during = Rc::clone(&h);
    *h.sender.meanwhile.borrow_mut() = Some(Box::new(move || during.drain()));
    assert_eq!(h.send("v@example.com"), Err(ApiError::Misconfigured));
    *h.sender.meanwhile.borrow_mut() = None;
    assert_eq!(
        h.delivered_types().last().map(String::as_str),
        Some("signup.verified")
    );
    h.drain_until(START + 3 * 3_600_000);
    assert_eq!(h.deleted(), ["v@example.com"]);
}

#[test]
fn a_stranger_replacing_a_signup_whose_link_is_open_gets_a_contested_signup() {
    let h = Harness::new(tracking(true));
    let victim = h.named(&h.send("victim@example.com"));
    h.drain_at(START + 5_100);
    // 61 s later a stranger submits the address: it replaces the victim's signup.
    h.runtime.advance_to(START + 61_000);
    let stranger = h.named(&h.send("victim@example.com"));
    assert!(h.status_of(&stranger).contested);
    h.drain_at(START + 66_100);
    // The victim opens the first email's link after the stranger's first check: the
    // stranger's signup is verified, and everything the app hears about it says it is
    // contested.
    h.click("victim@example.com");
    h.drain_until(START + 90_000);
    let status = h.status_of(&stranger);
    assert_eq!(
        (status.status.as_str(), status.contested),
        ("verified", true)
    );
    let verified: Value = h
        .runtime
        .0
        .deliveries
        .borrow()
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).expect("json"))
        .find(|b| b["type"] == "signup.verified")
        .expect("delivered");
    assert_eq!(verified["data"]["contested"], true);
    assert_eq!(h.gate.status(&victim), Err(ApiError::UnknownSignup));
    // The victim's own browser signing up again (its cookie presented) is not contested.
    h.runtime.advance_to(START + 200_000);
    let again = h.named(&run(h.gate.send(
        &email("other@example.com"),
        &request_id_for("other@example.com"),
        None,
    )));
    h.drain_at(START + 205_100);
    h.runtime.advance_to(START + 300_000);
    let resend = h.named(&run(h.gate.send(
        &email("other@example.com"),
        &request_id_for("other@example.com"),
        Some(&again),
    )));
    assert!(!h.status_of(&resend).contested);
}

#[test]
fn an_identity_verified_before_its_signup_never_makes_that_signup_verified() {
    // IDENTITY_CLEANUP=off keeps every verified identity: a stranger signing up an address
    // verified long ago must not be told it verified.
    let h = Harness::new(GateConfig {
        tracking: TrackingConfig {
            identity_cleanup: false,
            ..tracking(false).tracking
        },
        ..tracking(false)
    });
    h.sent("kept@example.com");
    h.click("kept@example.com");
    h.drain_until(START + 30_000);
    h.runtime.advance_to(START + 3_600_000);
    let stranger = h.named(&h.send("kept@example.com"));
    h.drain_until(START + 3_600_000 + 30_000);
    let status = h.status_of(&stranger);
    assert_eq!(
        (status.status.as_str(), status.reason.as_deref()),
        ("expired", Some("already_verified"))
    );
    // The From address (in the snapshot) signed up by a stranger: the same.
    let h = Harness::without_snapshot(tracking(false), &[("noreply@example.com", "Success")]);
    h.drain_at(START);
    let stranger = h.named(&h.send("noreply@example.com"));
    h.drain_until(START + 30_000);
    assert_eq!(
        h.status_of(&stranger).reason.as_deref(),
        Some("already_verified")
    );
}

#[test]
fn pollers_of_a_queued_signup_read_the_queue_once_a_second_however_many_they_are() {
    let h = Harness::new(GateConfig {
        tracking: tracking(false).tracking,
        ..no_wait()
    });
    h.sent("first@example.com");
    for i in 0..5 {
        h.queued(&format!("q{i}@example.com"));
    }
    let fifth = h.named(&h.send("fifth@example.com"));
    let reads = h.store.calls("queue order");
    for _ in 0..500 {
        assert_eq!(h.status_of(&fifth).position, Some(6));
    }
    assert_eq!(
        h.store.calls("queue order") - reads,
        1,
        "one read for 500 polls"
    );
    // A second on, the queue is read again.
    h.runtime.advance_by(1_000);
    assert_eq!(h.status_of(&fifth).position, Some(6));
    assert_eq!(h.store.calls("queue order") - reads, 2);
}

#[test]
fn pressing_confirm_without_end_never_starves_clean_up_or_the_snapshot() {
    let h = Harness::new(no_wait_tracking());
    h.sent("done@example.com");
    h.click("done@example.com");
    let pressed = h.named(&h.send("presser@example.com"));
    // Twice a second for two minutes, with the sweep running all along.
    let mut at = START + 5_100;
    while at < START + 125_000 {
        h.runtime.advance_to(at);
        let _ = run(h.gate.confirm(&pressed));
        h.drain_at(at);
        at += 500;
    }
    assert_eq!(h.deleted(), ["done@example.com"], "{:?}", h.actions());
    let checks = checks_made(&h);
    assert!(checks <= 125, "{checks} checks in two minutes of presses");
}

#[test]
fn replacing_a_verified_signup_nobody_confirmed_yet_is_contested_and_reported() {
    let h = Harness::new(tracking(true));
    let victim = h.named(&h.send("v@example.com"));
    h.click("v@example.com");
    h.drain_until(START + 20_000);
    assert_eq!(h.status_of(&victim).status, "verified");
    h.runtime.advance_to(START + 61_000);
    let stranger = h.named(&h.send("v@example.com"));
    assert!(h.status_of(&stranger).contested);
    h.drain_at(h.runtime.now_ms());
    let dropped: Vec<Value> = h
        .runtime
        .0
        .deliveries
        .borrow()
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).expect("json"))
        .filter(|b| b["type"] == "signup.dropped")
        .collect();
    assert_eq!(
        dropped.len(),
        1,
        "the app hears the victim's signup was replaced"
    );
    assert_eq!(dropped[0]["data"]["reason"], "replaced");
    // Once confirmed, it is no longer waiting: a later signup is not contested.
    let h = Harness::new(tracking(false));
    let first = h.named(&h.send("c@example.com"));
    h.click("c@example.com");
    h.drain_until(START + 20_000);
    run(h.gate.confirm(&first)).expect("confirmed");
    assert!(h.status_of(&first).confirmed);
    h.runtime.advance_to(START + 61_000);
    let later = h.named(&h.send("c@example.com"));
    assert!(!h.status_of(&later).contested, "{:?}", h.store.signups());
}

#[test]
fn a_refused_send_leaves_no_record_that_could_claim_an_identity_made_later() {
    let h = Harness::new(tracking(false));
    h.sender.answers([answered(Outcome::Rejected)]);
    assert_eq!(h.send("team@example.com"), Err(ApiError::Rejected));
    assert!(h.store.identities().is_empty());
    // The operator verifies team@ later; a fresh snapshot lists it; anyone signs it up.
    h.verified_already("team@example.com");
    h.drain_until(START + 20 * 60_000);
    h.runtime.advance_to(START + 20 * 60_000 + 61_000);
    let stranger = h.named(&h.send("team@example.com"));
    h.drain_until(START + 20 * 60_000 + 700_000);
    assert_eq!(h.deleted(), Vec::<String>::new());
    assert_eq!(
        h.status_of(&stranger).reason.as_deref(),
        Some("already_verified")
    );
}

#[test]
fn a_person_whose_first_answer_timed_out_is_not_contested_when_signing_up_again() {
    let h = Harness::new(tracking(false));
    h.sender.answers([Some(CallResult::TimedOut)]);
    assert_eq!(h.send("slow@example.com"), Err(ApiError::UpstreamTimeout));
    h.runtime.advance_to(START + 61_000);
    let again = h.named(&h.send("slow@example.com"));
    assert!(
        !h.status_of(&again).contested,
        "no credential ever went out"
    );
}

#[test]
fn two_signups_of_one_mailbox_in_the_same_millisecond_get_different_nonces() {
    let h = Harness::new(no_wait_tracking());
    let a = h.named(&h.send("same@example.com"));
    h.runtime.0.now.set(START);
    let b = h.named(&h.send("same@example.com"));
    assert_eq!(
        (a.key.as_str(), a.signed_up_ms),
        (b.key.as_str(), b.signed_up_ms)
    );
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(h.gate.status(&a), Err(ApiError::UnknownSignup));
}

#[test]
fn without_any_snapshot_a_deleted_record_lets_the_first_check_decide_again() {
    let h = Harness::without_snapshot(tracking(false), &[]);
    h.store.fail("store snapshot");
    h.sent("ops@example.com");
    h.drain_until(START + 70_000);
    h.click("ops@example.com");
    h.drain_until(START + 200_000);
    assert_eq!(h.deleted(), ["ops@example.com"]);
    // The operator then verifies ops@ by hand; with no snapshot, a later send must not
    // assume the gate made it.
    h.verified_already("ops@example.com");
    h.runtime.advance_to(START + 300_000);
    let stranger = h.named(&h.send("ops@example.com"));
    h.drain_until(START + 1_200_000);
    assert_eq!(
        h.deleted(),
        ["ops@example.com"],
        "deleted once, never again"
    );
    assert_eq!(
        h.status_of(&stranger).reason.as_deref(),
        Some("already_verified")
    );
}

#[test]
fn a_honeypot_decoy_is_answered_as_a_signup_with_the_real_key_and_sends_nothing() {
    let h = Harness::new(tracking(false));
    let decoy = run(h
        .gate
        .decoy(&email("bot@example.com"), &request_id_for("bot"), false));
    let named = h.named(&decoy);
    assert!(matches!(
        decoy,
        Ok(Accepted::Sent {
            message_id: Some(_),
            ..
        })
    ));
    assert_eq!(
        named.key,
        address_key(&h.gate.address_secret, &email("bot@example.com"))
    );
    assert!(signup_verify_domain::status_token::is_decoy(
        TOKEN_SECRET.as_bytes(),
        &named
    ));
    assert!(h.sender.calls.borrow().is_empty(), "nothing sent");
    assert!(h.store.signups().is_empty() && h.store.identities().is_empty());
    // Its limits are a signup's: the mailbox is in its cooldown now, for decoys and people.
    assert!(matches!(
        run(h
            .gate
            .decoy(&email("bot+2@example.com"), &request_id_for("bot"), false)),
        Err(ApiError::Cooldown { .. })
    ));
    assert!(matches!(
        h.send("bot@example.com"),
        Err(ApiError::Cooldown { .. })
    ));
    // A real signup's nonce is no decoy's.
    let real = h.named(&h.send("person@example.com"));
    assert!(!signup_verify_domain::status_token::is_decoy(
        TOKEN_SECRET.as_bytes(),
        &real
    ));
}

#[test]
fn key_material_and_nonces_fail_closed_when_the_random_source_fails() {
    let runtime = FakeRuntime::at(START);
    runtime.0.random_fails.set(true);
    let store = MemoryStore::default();
    let sender = FakeSender {
        runtime: runtime.clone(),
        script: Rc::default(),
        calls: Rc::default(),
        meanwhile: Rc::default(),
        identities: Rc::default(),
    };
    assert!(Gate::open(store.clone(), sender, runtime.clone(), config()).is_err());
    assert!(store.load_state().is_ok() && store.calls("address secret") == 1);
    // A gate whose key exists: a signup without a nonce is refused, nothing is sent.
    let h = Harness::new(tracking(false));
    h.runtime.0.random_fails.set(true);
    assert_eq!(h.send("a@example.com"), Err(ApiError::Unavailable));
    assert!(h.sender.calls.borrow().is_empty());
    assert!(h.store.signups().is_empty());
    assert!(h
        .runtime
        .events()
        .contains(&"random_source_failed".to_string()));
}

#[test]
fn status_checks_wait_for_the_queue_and_take_up_to_a_hundred_identities_a_call() {
    let h = Harness::new(GateConfig {
        queue_max: 1_000,
        ..no_wait()
    });
    for i in 0..150 {
        h.runtime.0.now.set(START);
        h.send(&format!("u{i}@example.com")).expect("taken");
    }
    // Every check is due long before the queue is empty; none goes before the last send.
    h.drain_at(START + 1);
    h.drain_until(START + 200_000);
    let actions = h.actions();
    let first_check = actions
        .iter()
        .position(|a| *a == "GetIdentityVerificationAttributes")
        .expect("checks");
    assert_eq!(first_check, 150, "{actions:?}");
    let sizes = h.check_sizes();
    assert_eq!(sizes[0], 100);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    let checked: std::collections::BTreeSet<String> = h
        .calls_where(|call| match call {
            SesCall::Check { identities } => {
                Some(identities.iter().map(|i| i.to_string()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(checked.len(), 150, "every sent signup was checked");
    let tracking = h.gate.stats().expect("stats").tracking;
    assert_eq!(tracking.checks, sizes.len() as u64);
    assert_eq!(
        tracking.signups_checked,
        sizes.iter().sum::<usize>() as u64,
        "the stats count the signups each call answered for"
    );
    let slots = h.sender.slots();
    assert!(
        slots.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
        "one line for every call"
    );
}

#[test]
fn pollers_are_answered_from_the_gate_and_never_call_ses() {
    let h = Harness::new(no_wait());
    h.sent("first@example.com");
    let reply = h.send("second@example.com");
    assert!(
        reply.as_ref().is_ok_and(|a| a.signup().is_none()),
        "no secret, no token"
    );
    let h = Harness::new(GateConfig {
        tracking: tracking(false).tracking,
        ..no_wait()
    });
    h.sent("first@example.com");
    let signup = h.named(&h.send("second@example.com"));
    let calls = h.sender.calls.borrow().len();
    for _ in 0..100 {
        let status = h.status_of(&signup);
        assert_eq!(
            (status.status.as_str(), status.position),
            ("queued", Some(1))
        );
        assert!(status.estimated_send_at.is_some());
    }
    assert_eq!(h.sender.calls.borrow().len(), calls);
    // A token for an earlier signup of the same address names nothing now.
    let stale = SignupRef {
        signed_up_ms: signup.signed_up_ms - 1,
        ..signup.clone()
    };
    assert_eq!(h.gate.status(&stale), Err(ApiError::UnknownSignup));
    let stranger = SignupRef {
        key: "0".repeat(64),
        ..signup
    };
    assert_eq!(h.gate.status(&stranger), Err(ApiError::UnknownSignup));
}

#[test]
fn a_confirmation_checks_the_identity_at_once_and_reports_both_events() {
    let h = Harness::new(tracking(true));
    let signup = h.named(&h.send("human@example.com"));
    h.click("human@example.com");
    h.runtime.advance_by(2_000);
    let status = run(h.gate.confirm(&signup)).expect("confirmed");
    assert_eq!(
        (status.status.as_str(), status.confirmed),
        ("verified", true)
    );
    assert_eq!(
        h.actions(),
        [
            "SendCustomVerificationEmail",
            "GetIdentityVerificationAttributes"
        ]
    );
    h.drain_at(h.runtime.now_ms());
    assert_eq!(h.delivered_types(), ["signup.verified", "signup.confirmed"]);
    let confirmed: Value =
        serde_json::from_str(&h.runtime.0.deliveries.borrow()[1].1).expect("json");
    assert_eq!(confirmed["data"]["confirmed"], true);
    // Confirming twice reports nothing new.
    run(h.gate.confirm(&signup)).expect("still fine");
    h.drain_at(h.runtime.now_ms() + 10_000);
    assert_eq!(h.delivered_types().len(), 2);
}

#[test]
fn a_receiver_that_is_down_gets_every_event_later_with_the_same_id_and_clean_up_waits_for_it() {
    let h = Harness::new(tracking(true));
    let signup = h.named(&h.send("a@example.com"));
    h.drain_at(START + 5_100);
    h.click("a@example.com");
    h.runtime.0.receiver.borrow_mut().extend([
        Err("connection refused".to_string()),
        Ok(503),
        Ok(500),
    ]);
    h.drain_at(START + 11_000);
    assert_eq!(h.status_of(&signup).status, "verified");
    assert!(
        !h.actions().contains(&"DeleteIdentity"),
        "not before the event is delivered"
    );
    // A restart loses nothing: the new object finds the event in the outbox.
    let h = h.restart(tracking(true));
    let mut at = START + 11_000;
    while h.gate.stats().expect("stats").webhook_backlog > 0 {
        at = h.runtime.last_alarm().unwrap_or(at + 5_000).max(at + 1);
        h.drain_at(at);
        assert!(at < START + 200_000, "never delivered");
    }
    let deliveries = h.runtime.0.deliveries.borrow().clone();
    assert_eq!(deliveries.len(), 4, "three failures, then delivered");
    let ids: std::collections::BTreeSet<String> = deliveries
        .iter()
        .map(|(headers, _)| {
            headers
                .iter()
                .find(|(n, _)| n == "webhook-id")
                .expect("id")
                .1
                .clone()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one event, one id");
    assert!(
        deliveries.windows(2).all(|w| w[0].1 == w[1].1),
        "the same body every time"
    );
    h.drain_at(h.runtime.now_ms() + 2_000);
    assert_eq!(h.actions().last(), Some(&"DeleteIdentity"));
    let stats = h.gate.stats().expect("stats");
    assert_eq!(
        (
            stats.tracking.webhook_attempts_failed,
            stats.tracking.webhooks_delivered
        ),
        (3, 1)
    );
}

#[test]
fn a_dropped_or_rejected_signup_is_reported_with_its_reason() {
    let h = Harness::new(GateConfig {
        ses_max_attempts: 2,
        ..tracking(true)
    });
    h.sender.answers([answered(Outcome::Rejected)]);
    assert_eq!(h.send("bad@example.com"), Err(ApiError::Rejected));
    h.drain_at(h.runtime.now_ms());
    assert_eq!(h.delivered_types(), ["signup.rejected"]);
    let h = Harness::new(GateConfig {
        ses_max_attempts: 2,
        max_wait_ms: 0,
        ..tracking(true)
    });
    h.sent("first@example.com");
    let signup = h.named(&h.send("doomed@example.com"));
    h.sender.answers([server_error(), server_error()]);
    h.drain_at(START + 1_000);
    h.drain_at(h.runtime.last_alarm().expect("retry"));
    let status = h.status_of(&signup);
    assert_eq!(
        (status.status.as_str(), status.reason.as_deref()),
        ("dropped", Some("exhausted"))
    );
    assert!(h.delivered_types().contains(&"signup.dropped".to_string()));
}

#[test]
fn a_failed_status_check_is_retried_a_minute_later_and_does_not_pause_the_sends() {
    let h = Harness::new(tracking(false));
    let signup = h.named(&h.send("a@example.com"));
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    h.drain_at(START + 5_100);
    assert!(h
        .runtime
        .events()
        .contains(&"status_check_failed".to_string()));
    assert_eq!(h.gate.stats().expect("stats").paused_until, None);
    h.sent("b@example.com");
    assert_eq!(h.status_of(&signup).status, "sent");
    let checks = || {
        h.actions()
            .iter()
            .filter(|a| **a == "GetIdentityVerificationAttributes")
            .count()
    };
    h.drain_at(START + 30_000);
    assert_eq!(checks(), 2, "b's first check only");
    h.drain_at(START + 70_000);
    assert_eq!(checks(), 3, "a's retry, a minute on");
}

#[test]
fn a_due_check_also_takes_the_identities_due_within_a_minute() {
    let h = Harness::new(tracking(false));
    h.sent("first@example.com");
    h.runtime.advance_to(START + 3_000);
    h.sent("second@example.com");
    // The first is due five seconds after its send; the second three seconds later.
    h.drain_at(START + 5_100);
    let checked = h.check_sizes();
    assert_eq!(checked, [2], "one call for both");
}

#[test]
fn a_finished_signup_is_forgotten_after_eight_days_and_its_token_then_names_nothing() {
    let h = Harness::new(tracking(false));
    let signup = h.named(&h.send("old@example.com"));
    h.drain_at(START + 5_100);
    h.click("old@example.com");
    h.drain_until(START + 30_000);
    assert_eq!(h.status_of(&signup).status, "verified");
    // A new object (the forget check runs once an hour per object) eight days on.
    let h = h.restart(tracking(false));
    h.sent("fresh@example.com");
    h.drain_at(START + 8 * 24 * 3_600_000 + 60_000);
    assert_eq!(h.gate.status(&signup), Err(ApiError::UnknownSignup));
    assert_eq!(h.store.signups().len(), 1, "only the fresh signup is kept");
}
