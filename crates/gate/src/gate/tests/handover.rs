//! A paused region's queue handed to the next region, and taken there once.

use super::*;
use crate::config::PoolPlace;
use signup_verify_domain::settings::Vars;
use signup_verify_ses::regions::RegionPool;

const REGIONS: &str = "us-east-1,eu-west-1,ap-south-1";

fn pool() -> RegionPool {
    let lookup = |name: &str| (name == "SES_REGIONS").then(|| REGIONS.to_string());
    let default = url::Url::parse("https://email.us-east-1.amazonaws.com/").expect("url");
    RegionPool::from_vars(&Vars::new(&lookup), "us-east-1", &default).expect("pool")
}

/// A gate of `region` in the three-region pool, with tokens on and no in-request waiting.
fn in_pool(region: &str) -> Harness {
    Harness::new(GateConfig {
        max_wait_ms: 0,
        pool: Some(PoolPlace {
            region: region.into(),
            regions: pool(),
        }),
        ..tracking(false)
    })
}

/// A hand-over request: every region may decline one.
const MAY_DECLINE: crate::gate::PoolAsk = crate::gate::PoolAsk {
    may_decline: true,
    contested_elsewhere: false,
};

fn config_error(h: &Harness) {
    h.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
}

#[test]
fn a_region_that_stays_paused_hands_each_queued_signup_to_its_next_region_once() {
    let h = in_pool("us-east-1");
    h.sent("first@example.com");
    let a = h.named(&h.send("a@example.com"));
    let b = h.named(&h.send("b@example.com"));
    assert_eq!(h.store.items().len(), 2);
    // One configuration error pauses the queue: nothing is handed over yet.
    config_error(&h);
    h.drain();
    assert!(
        h.runtime.0.handed.borrow().is_empty(),
        "one error is a pause"
    );
    assert_eq!(h.store.items().len(), 2);
    // A whole pause later, the second in a row: the region stays paused.
    config_error(&h);
    h.drain_at(h.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    let handed = h.runtime.0.handed.borrow().clone();
    assert_eq!(handed.len(), 2, "each item once");
    assert!(h.store.items().is_empty(), "the queue is empty here");
    for (region, request) in &handed {
        assert_ne!(region, "us-east-1");
        let mailbox = signup_verify_domain::mailbox::Mailbox::of(&request.email);
        let next = pool()
            .order(mailbox.as_str())
            .into_iter()
            .find(|r| r.name != "us-east-1")
            .map(|r| r.name.clone());
        assert_eq!(Some(region.clone()), next, "its next region in order");
        assert!(request
            .handed_from
            .as_deref()
            .is_some_and(|f| f.starts_with("us-east-1/")));
        assert!(!request.decoy && request.presented.is_none());
        assert!(request.may_decline, "a paused taker declines");
    }
    // Their credentials, made here, now lead to the signups where they are.
    for signup in [&a, &b] {
        match h.gate.status(signup) {
            Err(ApiError::Moved { to }) => {
                let region = to.region.clone().expect("names its region");
                assert!(handed.iter().any(|(r, _)| *r == region), "{region}");
                assert!(
                    to.nonce.starts_with(&format!("{region}-nonce-")),
                    "the taker's own"
                );
            }
            other => panic!("expected Moved, got {other:?}"),
        }
        assert!(matches!(
            run(h.gate.confirm(signup)),
            Err(ApiError::Moved { .. })
        ));
    }
    assert_eq!(
        h.gate.stats().expect("stats").drops.get("handed_over"),
        Some(&2)
    );
}

#[test]
fn an_item_every_other_region_declines_stays_queued_until_one_takes_it() {
    let h = in_pool("us-east-1");
    h.sent("first@example.com");
    h.queued("a@example.com");
    config_error(&h);
    h.drain();
    config_error(&h);
    let paused = Err(ApiError::RegionPaused {
        paused_until_ms: u64::MAX,
        open: false,
    });
    h.runtime
        .0
        .takers
        .borrow_mut()
        .extend([Ok(paused.clone()), Ok(paused)]);
    h.drain_at(h.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    let handed = h.runtime.0.handed.borrow().clone();
    assert_eq!(handed.len(), 2, "both other regions asked");
    assert!(
        handed.iter().all(|(_, r)| r.may_decline),
        "every region may decline: a paused one never takes a paused one's queue"
    );
    assert_eq!(h.store.items().len(), 1, "kept here: nothing is lost");
    // A gate that fails on the way leaves it here too.
    h.runtime
        .0
        .takers
        .borrow_mut()
        .extend([Err("network".into()), Err("network".into())]);
    config_error(&h);
    h.drain_at(h.runtime.now_ms() + 2 * crate::queue::CONFIG_PAUSE_MS);
    assert_eq!(h.store.items().len(), 1);
}

#[test]
fn the_taker_keeps_a_handed_over_signup_once_however_often_it_is_asked_and_starts_its_cooldown() {
    let giver = in_pool("us-east-1");
    giver.sent("first@example.com");
    giver.queued("a@example.com");
    config_error(&giver);
    giver.drain();
    config_error(&giver);
    giver.drain_at(giver.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    let (_, request) = giver.runtime.0.handed.borrow()[0].clone();
    let taker = in_pool("eu-west-1");
    let from = request.handed_from.clone().expect("from");
    let adopt = || {
        run(taker
            .gate
            .adopt(&request.email, &request.request_id, &from, MAY_DECLINE))
    };
    let first = adopt();
    assert!(matches!(first, Ok(Accepted::Sent { .. })), "{first:?}");
    let again = adopt();
    assert_eq!(
        again.as_ref().ok().and_then(|a| a.signup()),
        first.as_ref().ok().and_then(|a| a.signup()),
        "the same signup"
    );
    assert_eq!(taker.sender.slots().len(), 1, "sent once");
    let here = taker.named(&first);
    assert_eq!(taker.status_of(&here).status, "sent");
    // Its mailbox's cooldown runs here now, as for any send from here; no budget was taken.
    assert!(matches!(
        taker.send(request.email.as_str()),
        Err(ApiError::Cooldown { .. })
    ));
    assert_eq!(taker.gate.stats().expect("stats").daily_taken, 0);
}

/// The giver's first hand-over request, after two configuration errors a pause apart.
fn handed_request(giver: &Harness) -> SendRequest {
    config_error(giver);
    giver.drain();
    config_error(giver);
    giver.drain_at(giver.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    giver.runtime.0.handed.borrow()[0].1.clone()
}

#[test]
fn a_paused_region_declines_a_hand_over_so_no_queue_goes_back_and_forth() {
    let giver = in_pool("us-east-1");
    giver.sent("first@example.com");
    giver.queued("a@example.com");
    let request = handed_request(&giver);
    let taker = in_pool("eu-west-1");
    taker.sent("other@example.com");
    taker.queued("b@example.com");
    config_error(&taker);
    taker.drain();
    let from = request.handed_from.clone().expect("from");
    assert!(matches!(
        run(taker
            .gate
            .adopt(&request.email, &request.request_id, &from, MAY_DECLINE)),
        Err(ApiError::RegionPaused { .. })
    ));
    assert_eq!(taker.store.items().len(), 1, "only its own item");
}

#[test]
fn a_hand_over_of_a_mailbox_already_queued_there_merges_without_naming_anyone_elses_signup() {
    let taker = in_pool("eu-west-1");
    taker.sent("first@example.com");
    let theirs = taker.named(&taker.send("a@example.com"));
    let merged = run(taker.gate.adopt(
        &email("a@example.com"),
        &request_id_for("a"),
        "us-east-1/00112233445566778899aabbccddeeff",
        MAY_DECLINE,
    ));
    match merged {
        Ok(Accepted::Queued { signup: None, .. }) => {}
        other => panic!("expected a queued answer naming no signup, got {other:?}"),
    }
    assert_eq!(taker.store.items().len(), 1, "one item, one mail");
    assert_eq!(taker.status_of(&theirs).status, "queued");
    // The giver, told no signup, keeps its own credentials leading nowhere else.
    let giver = in_pool("us-east-1");
    giver.sent("first@example.com");
    let mine = giver.named(&giver.send("a@example.com"));
    giver
        .runtime
        .0
        .takers
        .borrow_mut()
        .push_back(Ok(Ok(Accepted::Queued {
            position: 1,
            estimated_send_at: "2026-12-04T00:00:00Z".into(),
            paused_until: None,
            signup: None,
        })));
    handed_request(&giver);
    let status = giver.gate.status(&mine).expect("its own row");
    assert_eq!(
        (status.status.as_str(), status.reason.as_deref()),
        ("dropped", Some("handed_over"))
    );
}

#[test]
fn a_repeated_hand_over_is_answered_from_what_the_first_became_and_a_rejection_is_the_givers_too() {
    let taker = in_pool("eu-west-1");
    taker.sender.answers([answered(Outcome::Rejected)]);
    let adopt = || {
        run(taker.gate.adopt(
            &email("bad@example.com"),
            &request_id_for("bad"),
            "us-east-1/ffeeddccbbaa99887766554433221100",
            MAY_DECLINE,
        ))
    };
    assert_eq!(adopt(), Err(ApiError::Rejected));
    assert_eq!(adopt(), Err(ApiError::Rejected), "not \"sent\"");
    assert_eq!(taker.sender.calls.borrow().len(), 1, "asked SES once");
    // The giver drops its item as rejected.
    let giver = in_pool("us-east-1");
    giver.sent("first@example.com");
    let mine = giver.named(&giver.send("bad@example.com"));
    giver
        .runtime
        .0
        .takers
        .borrow_mut()
        .push_back(Ok(Err(ApiError::Rejected)));
    handed_request(&giver);
    assert!(giver.store.items().is_empty());
    assert_eq!(giver.status_of(&mine).status, "rejected");
}

#[test]
fn a_signup_a_paused_home_declines_while_it_holds_someone_elses_open_signup_is_contested_where_it_lands(
) {
    let home = in_pool("us-east-1");
    // Sent: its link is open (and its cooldown over by the time it is declined).
    let theirs = home.named(&home.send("a@example.com"));
    home.runtime.advance_by(61_000);
    home.sent("x@example.com");
    home.queued("q@example.com");
    config_error(&home);
    home.drain();
    let declined = |presented: Option<&SignupRef>| {
        run(home.gate.send_in_pool(
            &email("a@example.com"),
            &request_id_for("a2"),
            presented,
            crate::gate::PoolAsk {
                may_decline: true,
                contested_elsewhere: false,
            },
        ))
    };
    assert!(matches!(
        declined(None),
        Err(ApiError::RegionPaused { open: true, .. })
    ));
    assert!(matches!(
        declined(Some(&theirs)),
        Err(ApiError::RegionPaused { open: false, .. })
    ));
    // The next region marks the signup it makes contested.
    let next = in_pool("eu-west-1");
    let made = next.named(&run(next.gate.send_in_pool(
        &email("a@example.com"),
        &request_id_for("a2"),
        None,
        crate::gate::PoolAsk {
            may_decline: false,
            contested_elsewhere: true,
        },
    )));
    assert!(next.status_of(&made).contested);
}

#[test]
fn a_signup_handed_back_to_the_region_it_first_left_is_named_by_its_first_credentials_again() {
    let home = in_pool("us-east-1");
    home.sent("first@example.com");
    let first = home.named(&home.send("a@example.com"));
    handed_request(&home);
    assert!(matches!(
        home.gate.status(&first),
        Err(ApiError::Moved { .. })
    ));
    // The region it went to stayed paused in turn and hands it back; this one sends again.
    let taker = home.runtime.0.handed.borrow()[0].0.clone();
    home.sender
        .answers([answered(Outcome::Sent { message_id: None })]);
    home.runtime.advance_by(2 * crate::queue::CONFIG_PAUSE_MS);
    let back = run(home.gate.adopt(
        &email("a@example.com"),
        &request_id_for("a"),
        &format!("{taker}/{taker}-nonce-1"),
        MAY_DECLINE,
    ));
    assert_eq!(back.as_ref().ok().and_then(|a| a.signup()), Some(&first));
    let status = home.status_of(&first);
    assert!(
        matches!(status.status.as_str(), "sent" | "queued"),
        "{status:?}"
    );
    assert!(!status.contested, "its own record does not contest it");
    // Its identity is found by its signup, for its checks and its clean-up.
    assert!(home
        .store
        .identities()
        .iter()
        .any(|i| i.email.as_str() == "a@example.com" && i.sent_ms == first.signed_up_ms));
}

#[test]
fn only_the_very_signup_that_left_comes_back_under_its_first_credentials() {
    let home = in_pool("us-east-1");
    home.sent("first@example.com");
    let first = home.named(&home.send("a@example.com"));
    handed_request(&home);
    home.runtime.advance_by(2 * crate::queue::CONFIG_PAUSE_MS);
    home.sender
        .answers([answered(Outcome::Sent { message_id: None })]);
    // Another signup of the mailbox (a stranger's, made in the other region meanwhile).
    let other = run(home.gate.adopt(
        &email("a@example.com"),
        &request_id_for("a"),
        "ap-south-1/someone-elses-nonce",
        MAY_DECLINE,
    ));
    let named = other.as_ref().ok().and_then(|a| a.signup()).cloned();
    assert!(
        named.is_some_and(|n| n.nonce != first.nonce),
        "a new signup"
    );
    assert!(
        home.gate.status(&first).is_err(),
        "the first credentials do not name a stranger's signup"
    );
}

#[test]
fn a_hand_over_carries_its_contest_and_goes_on_past_a_busy_region() {
    let home = in_pool("us-east-1");
    // An open signup of the mailbox, issued to one request; another request replaces it.
    home.sent("a@example.com");
    home.runtime.advance_by(61_000);
    home.sent("x@example.com");
    home.queued("other@example.com");
    let replaced = home.send("a@example.com");
    assert!(
        matches!(replaced, Ok(Accepted::Queued { .. })),
        "{replaced:?}"
    );
    home.runtime
        .0
        .takers
        .borrow_mut()
        .push_back(Ok(Err(ApiError::Busy {
            retry_after_secs: 1,
        })));
    config_error(&home);
    home.drain();
    config_error(&home);
    home.drain_at(home.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    let handed = home.runtime.0.handed.borrow().clone();
    let for_a: Vec<&(String, SendRequest)> = handed
        .iter()
        .filter(|(_, r)| r.email.as_str() == "a@example.com")
        .collect();
    assert!(
        for_a.iter().all(|(_, r)| r.contested_elsewhere),
        "contested"
    );
    assert!(
        handed.len() >= 3,
        "past the busy region to the next: {:?}",
        handed
            .iter()
            .map(|(r, q)| (r, q.email.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(home.store.items().is_empty());
    // What the hand-over tracked here claims no send from here.
    assert!(home
        .store
        .identities()
        .iter()
        .all(|i| i.email.as_str() != "other@example.com"));
}

#[test]
fn a_direct_send_declined_on_a_configuration_error_says_whether_it_contested_a_signup_here() {
    let home = in_pool("us-east-1");
    home.sent("a@example.com");
    home.runtime.advance_by(61_000);
    home.sender
        .answers([answered(Outcome::Config { clock_skew: false })]);
    let reply = run(home.gate.send_in_pool(
        &email("a@example.com"),
        &request_id_for("a2"),
        None,
        MAY_DECLINE,
    ));
    assert!(
        matches!(reply, Err(ApiError::RegionPaused { open: true, .. })),
        "{reply:?}"
    );
}

#[test]
fn a_home_told_where_its_declined_signup_went_holds_the_cooldown_and_contests_a_strangers_signup() {
    let home = in_pool("us-east-1");
    let landed = SignupRef {
        key: "eu-west-1-key".into(),
        signed_up_ms: home.runtime.now_ms(),
        nonce: "eu-west-1-nonce".into(),
        region: Some("eu-west-1".into()),
    };
    home.gate.note_spill(&email("a@example.com"), Some(&landed));
    // The cooldown runs here.
    assert!(matches!(
        home.send("a@example.com"),
        Err(ApiError::Cooldown { .. })
    ));
    // After it, a stranger's signup contests the one that went; the cookie of that one holds it.
    home.runtime.advance_by(61_000);
    let stranger = home.named(&home.send("a@example.com"));
    assert!(home.status_of(&stranger).contested);
    home.runtime.advance_by(61_000);
    home.gate.note_spill(
        &email("b@example.com"),
        Some(&SignupRef {
            key: "eu-west-1-key-b".into(),
            ..landed.clone()
        }),
    );
    home.runtime.advance_by(61_000);
    let holder = home.named(&run(home.gate.send(
        &email("b@example.com"),
        &request_id_for("b"),
        Some(&SignupRef {
            key: "eu-west-1-key-b".into(),
            ..landed
        }),
    )));
    assert!(!home.status_of(&holder).contested);
    // The note names no signup of its own: no credential reads it.
    assert!(home
        .store
        .signups()
        .iter()
        .all(|s| !s.nonce.is_empty() || s.moved_to.is_some()));
}

#[test]
fn a_hand_over_that_timed_out_is_asked_again_of_the_same_region_never_of_another() {
    let home = in_pool("us-east-1");
    home.sent("first@example.com");
    home.queued("a@example.com");
    home.runtime
        .0
        .takers
        .borrow_mut()
        .push_back(Ok(Err(ApiError::UpstreamTimeout)));
    handed_request(&home);
    let handed = home.runtime.0.handed.borrow().clone();
    assert_eq!(handed.len(), 1, "no second region: {handed:?}");
    assert_eq!(
        home.store.items().len(),
        1,
        "kept, to ask the same region again"
    );
    // Next time, the same region, with the same hand-over key.
    config_error(&home);
    home.drain_at(home.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    let again = home.runtime.0.handed.borrow().clone();
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].0, again[0].0);
    assert_eq!(again[1].1.handed_from, again[0].1.handed_from);
    assert!(home.store.items().is_empty());
}

#[test]
fn a_paused_home_answers_a_resubmission_within_its_cooldown_as_any_home_would() {
    let home = in_pool("us-east-1");
    home.sent("a@example.com");
    home.queued("q@example.com");
    config_error(&home);
    home.drain();
    assert!(matches!(
        run(home.gate.send_in_pool(
            &email("a@example.com"),
            &request_id_for("a2"),
            None,
            MAY_DECLINE
        )),
        Err(ApiError::Cooldown { .. })
    ));
}

#[test]
fn a_note_of_a_spilled_signup_never_replaces_a_signup_still_in_its_links_life() {
    let home = in_pool("us-east-1");
    let mine = home.named(&home.send("a@example.com"));
    home.runtime.advance_by(61_000);
    let landed = SignupRef {
        key: "k".into(),
        signed_up_ms: home.runtime.now_ms(),
        nonce: "n".into(),
        region: Some("eu-west-1".into()),
    };
    home.gate.note_spill(&email("a@example.com"), Some(&landed));
    assert_eq!(home.status_of(&mine).status, "sent", "still mine");
}
