//! Issue P end to end: a pool of three SES regions, served by one ses-local, behind the real
//! `wrangler dev` (workerd, one `SesGate` per region): drain time, each region's own spacing,
//! sticky routing, every address sent once, the follow-up in every region, and a region whose
//! configuration breaks handing its queue over.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::mailbox::Mailbox;
use signup_verify_domain::settings::Vars;
use signup_verify_ses::regions::RegionPool;
use support::gate::{burst, unix_now_us, TOKEN};
use support::webhook::Receiver;
use support::{get, request_with, Reply, Spec, Stack, STATUS_SECRET, TEMPLATE, WEBHOOK_SECRET};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];

/// The pool the Worker builds from the same `SES_REGIONS`.
fn pool() -> RegionPool {
    let list = REGIONS.join(",");
    let lookup = |name: &str| (name == "SES_REGIONS").then(|| list.clone());
    let default = url::Url::parse("https://email.us-east-1.amazonaws.com/").expect("url");
    RegionPool::from_vars(&Vars::new(&lookup), "us-east-1", &default).expect("pool")
}

/// The region a mailbox calls home.
fn home(address: &str) -> String {
    let email = EmailAddress::parse(address).expect("valid");
    pool().home(Mailbox::of(&email).as_str()).name.clone()
}

/// `n` addresses `prefix<i>@example.com` whose home is `region`.
fn homed_at(region: &str, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}@example.com"))
        .filter(|a| home(a) == region)
        .take(n)
        .collect()
}

/// Accepted sends as ses-local saw them: (region, address, arrival µs), in arrival order.
fn sends(stack: &Stack) -> Vec<(String, String, u64)> {
    stack
        .ses_requests()
        .iter()
        .filter(|r| r["action"] == "SendCustomVerificationEmail" && r["status"] == 200)
        .map(|r| {
            (
                r["region"].as_str().unwrap_or_default().to_string(),
                r["emailAddress"].as_str().unwrap_or_default().to_string(),
                r["receivedAtUs"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pool_stack(name: &str, interval_ms: &str, extra: &[(&str, &str)]) -> Stack {
    let mut vars = vec![("GATE_INTERVAL_MS", interval_ms), ("ADMIN_TOKEN", TOKEN)];
    vars.extend_from_slice(extra);
    Stack::start(
        name,
        Spec {
            vars: &vars,
            ses_args: &["--throttle-ms", interval_ms],
            regions: &REGIONS,
            ..Spec::default()
        },
    )
}

#[test]
fn three_hundred_signups_drain_in_a_third_of_the_time_each_sent_once_from_its_home_region() {
    let stack = pool_stack("regions-drain", "100", &[]);
    let started = unix_now_us();
    let replies = burst(&stack, "pool", 300);
    for (email, reply) in &replies {
        assert!(matches!(reply.status, 200 | 202), "{email}: {}", reply.text);
    }
    wait_until("300 sends", Duration::from_secs(60), || {
        sends(&stack).len() >= 300
    });
    let sent = sends(&stack);
    let drained_ms = (sent.iter().map(|s| s.2).max().unwrap_or(0) - started) as f64 / 1000.0;
    // One region sends one call per interval: 300 take at least 299 intervals there.
    let one_region_floor_ms = 299.0 * 100.0;
    eprintln!(
        "300 signups over 3 regions at 100 ms: drained in {drained_ms:.0} ms ({:.2} of one region's floor of {one_region_floor_ms:.0} ms)",
        drained_ms / one_region_floor_ms
    );
    assert!(
        drained_ms < 0.5 * one_region_floor_ms,
        "drained in {drained_ms} ms"
    );

    // Each address exactly once, from its home region.
    let mut per_address: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (region, address, _) in &sent {
        per_address.entry(address).or_default().push(region);
    }
    assert_eq!(per_address.len(), 300);
    for (address, regions) in &per_address {
        assert_eq!(regions.len(), 1, "{address} sent {} times", regions.len());
        assert_eq!(regions[0], home(address), "{address} left its home");
    }
    // Each region keeps its own spacing: no gap under the interval, no Throttling.
    for region in REGIONS {
        let arrivals: Vec<u64> = sent.iter().filter(|s| s.0 == region).map(|s| s.2).collect();
        let min_gap = arrivals.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
        eprintln!(
            "{region}: {} sends, shortest gap {:.1} ms",
            arrivals.len(),
            min_gap as f64 / 1000.0
        );
        assert!(
            (70..=130).contains(&arrivals.len()),
            "{region}: {}",
            arrivals.len()
        );
        assert!(min_gap >= 100_000, "{region}: a gap of {min_gap} µs");
    }
    support::gate::assert_no_throttling_at_ses(&stack);

    // Sticky: the same mailbox, typed differently, reaches the same gate, whose cooldown holds.
    let again = stack.signup("POOL7@Example.com");
    assert_eq!(again.status, 429, "{}", again.text);
    assert_eq!(again.code(), "cooldown");

    // The stats: every region, and their totals.
    let stats = stack.stats(Some(TOKEN));
    assert_eq!(stats.status, 200, "{}", stats.text);
    let regions = stats.json["regions"].as_object().expect("regions");
    assert_eq!(
        regions.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        REGIONS.into_iter().collect::<BTreeSet<_>>()
    );
    let sum: u64 = regions
        .values()
        .map(|r| r["dailyTaken"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(stats.json["dailyTaken"], sum);
    assert_eq!(
        sum, 300,
        "the cooldown's refusal is not taken: {}",
        stats.text
    );
}

/// Accepted `DeleteIdentity` calls, by region.
fn deletes_by_region(stack: &Stack) -> BTreeMap<String, u64> {
    let mut deletes: BTreeMap<String, u64> = REGIONS.iter().map(|r| (r.to_string(), 0)).collect();
    let all = support::get_json(&format!("{}_requests", stack.ses));
    for r in all["requests"].as_array().into_iter().flatten() {
        if r["action"] == "DeleteIdentity" && r["status"] == 200 {
            *deletes
                .entry(r["region"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    deletes
}

fn bearer(stack: &Stack, path: &str, token: &str) -> Reply {
    request_with(
        "GET",
        &format!("{}{path}", stack.worker),
        None,
        &[("authorization", &format!("Bearer {token}"))],
    )
}

#[test]
fn status_confirmation_the_webhook_and_clean_up_work_for_a_signup_in_every_region() {
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let url = receiver.url();
    let stack = pool_stack(
        "regions-follow",
        "200",
        &[
            ("STATUS_TOKEN_SECRET", STATUS_SECRET),
            ("WEBHOOK_URL", &url),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
    );
    for region in REGIONS {
        let address = homed_at(region, &format!("follow-{region}-"), 1).remove(0);
        let reply = stack.signup(&address);
        assert_eq!(reply.status, 200, "{}", reply.text);
        let token = reply.json["statusToken"]
            .as_str()
            .expect("token")
            .to_string();
        let status = bearer(&stack, "/signup/status", &token);
        assert_eq!(status.status, 200, "{}", status.text);
        assert_eq!(status.json["status"], "sent");
        // Sent from its region, and its identity is there alone.
        let from: Vec<String> = sends(&stack)
            .into_iter()
            .filter(|s| s.1 == address)
            .map(|s| s.0)
            .collect();
        assert_eq!(from, vec![region.to_string()]);
        let client = stack.client.in_region(region);
        assert_eq!(
            client.verification_status(&address).as_deref(),
            Some("Pending")
        );
        for other in REGIONS.iter().filter(|r| **r != region) {
            assert_eq!(
                stack.client.in_region(other).verification_status(&address),
                None
            );
        }
        // The region's gate sees it pending first (an identity it never saw unverified could
        // have been verified before: docs/security.md), then the link is opened; then the
        // status, the webhook and the clean-up, in that region.
        wait_until(
            &format!("{region}: the gate's first check"),
            Duration::from_secs(30),
            || {
                stack.stats(Some(TOKEN)).json["regions"][region]["tracking"]["checks"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 1
            },
        );
        let mail = stack
            .outbox()
            .into_iter()
            .find(|m| m["emailAddress"] == address.as_str())
            .expect("its mail");
        let link = mail["verificationLink"].as_str().expect("link");
        let deletes_before = deletes_by_region(&stack);
        assert_eq!(get(link).map(|r| r.status), Some(200));
        wait_until(
            &format!("{region}: verified"),
            Duration::from_secs(40),
            || bearer(&stack, "/signup/status", &token).json["status"] == "verified",
        );
        wait_until(
            &format!("{region}: signup.verified"),
            Duration::from_secs(30),
            || {
                receiver.deliveries().iter().any(|d| {
                    d.body["type"] == "signup.verified"
                        && d.body["data"]["email"] == address.as_str()
                })
            },
        );
        wait_until(
            &format!("{region}: the identity deleted"),
            Duration::from_secs(30),
            || client.verification_status(&address).is_none(),
        );
        assert_eq!(
            deletes_by_region(&stack),
            deletes_before
                .iter()
                .map(|(r, n)| (r.clone(), n + u64::from(r == region)))
                .collect::<BTreeMap<_, _>>(),
            "deleted in {region} alone"
        );
        // The From identity of every region is never touched.
        assert_eq!(
            client.verification_status(support::FROM).as_deref(),
            Some("Success")
        );
    }
    assert!(
        !stack.log_text().contains("follow-"),
        "no address in the log"
    );
}

#[test]
fn a_region_whose_configuration_breaks_hands_its_queue_over_and_new_signups_go_elsewhere() {
    let stack = pool_stack(
        "regions-handover",
        "1000",
        &[
            ("STATUS_TOKEN_SECRET", STATUS_SECRET),
            ("GATE_MAX_WAIT_MS", "0"),
        ],
    );
    let broken = "eu-west-1";
    // A queue in eu-west-1, then its template disappears there (a configuration error).
    let queued = homed_at(broken, "stuck-", 6);
    let mut tokens = Vec::new();
    for address in &queued {
        let reply = stack.signup(address);
        assert!(matches!(reply.status, 200 | 202), "{}", reply.text);
        tokens.push(
            reply.json["statusToken"]
                .as_str()
                .expect("token")
                .to_string(),
        );
    }
    let (status, body) = stack.client.in_region(broken).call(
        "DeleteCustomVerificationEmailTemplate",
        &[("TemplateName", TEMPLATE)],
    );
    assert_eq!(status, 200, "{body}");
    // A signup homed there now goes to its next region at once (its home pauses on the error).
    wait_until("the region paused", Duration::from_secs(20), || {
        stack.stats(Some(TOKEN)).json["regions"][broken]["pausedUntil"].is_string()
    });
    let newcomer = homed_at(broken, "newcomer-", 1).remove(0);
    let reply = stack.signup(&newcomer);
    assert!(matches!(reply.status, 200 | 202), "{}", reply.text);
    // The second error a pause later: the queue goes to the other regions.
    wait_until("every queued signup sent", Duration::from_secs(150), || {
        queued
            .iter()
            .chain([&newcomer])
            .all(|a| sends(&stack).iter().any(|s| s.1 == *a))
    });
    let sent = sends(&stack);
    for address in queued.iter().chain([&newcomer]) {
        let from: Vec<&str> = sent
            .iter()
            .filter(|s| s.1 == *address)
            .map(|s| s.0.as_str())
            .collect();
        assert_eq!(from.len(), 1, "{address} sent once: {from:?}");
    }
    assert!(
        sent.iter().any(|s| s.0 != broken && queued.contains(&s.1)),
        "some were handed over"
    );
    assert!(stack.log_contains("\"event\":\"handed_over\""));
    // Each original token still finds its signup, wherever it went.
    for token in &tokens {
        let status = bearer(&stack, "/signup/status", token);
        assert_eq!(status.status, 200, "{}", status.text);
        assert_eq!(status.json["status"], "sent", "{}", status.text);
    }
    support::gate::assert_no_throttling_at_ses(&stack);
}
