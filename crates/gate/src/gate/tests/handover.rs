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
        assert!(request.may_decline, "a third region is left to try");
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
    });
    h.runtime
        .0
        .takers
        .borrow_mut()
        .extend([Ok(paused.clone()), Ok(paused)]);
    h.drain_at(h.runtime.now_ms() + crate::queue::CONFIG_PAUSE_MS);
    let handed = h.runtime.0.handed.borrow().clone();
    assert_eq!(handed.len(), 2, "both other regions asked");
    assert!(handed[0].1.may_decline && !handed[1].1.may_decline);
    assert_eq!(h.store.items().len(), 1, "kept here: nothing is lost");
    // A gate that fails on the way leaves it here too.
    h.runtime
        .0
        .takers
        .borrow_mut()
        .push_back(Err("network".into()));
    config_error(&h);
    h.drain_at(h.runtime.now_ms() + 2 * crate::queue::CONFIG_PAUSE_MS);
    assert_eq!(h.store.items().len(), 1);
}

#[test]
fn the_taker_keeps_a_handed_over_signup_once_however_often_it_is_asked_and_takes_no_cooldown() {
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
            .adopt(&request.email, &request.request_id, &from, true))
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
    // No cooldown was taken for it: the person may sign up again at once.
    taker.runtime.advance_by(2_000);
    assert!(matches!(
        taker.send(request.email.as_str()),
        Ok(Accepted::Sent { .. } | Accepted::Queued { .. })
    ));
}
