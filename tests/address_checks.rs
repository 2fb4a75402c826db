//! Issue O through the real path (`wrangler dev`, workerd, the gate, ses-local and its
//! DNS-over-HTTPS stand-in, whose zone is in tests/ses-local-e2e.toml): every refusal of the
//! address checks, the suggestion in JSON and in a form's failure redirect, a resolver that
//! fails, answers garbage or hangs (the signup goes on), one question per domain under a flood,
//! and the checks switched off. SES never sees a refused address.

// The test process runs on the host, where the clock is fine.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::{concurrently, get_json, request_with, Spec, Stack};

fn dns_queries(stack: &Stack) -> Vec<(String, String)> {
    get_json(&format!("{}_dns-queries", stack.ses))
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap_or_default().to_string(),
                q["type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn asked_about(stack: &Stack, domain: &str) -> Vec<String> {
    dns_queries(stack)
        .into_iter()
        .filter(|(name, _)| name == domain)
        .map(|(_, kind)| kind)
        .collect()
}

fn sent_to(stack: &Stack) -> Vec<String> {
    stack
        .ses_requests()
        .iter()
        .filter_map(|r| r["emailAddress"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn throwaway_dead_and_mistyped_domains_are_refused_before_ses_with_a_suggestion_for_typos() {
    let stack = Stack::start(
        "address-refusals",
        Spec {
            vars: &[
                ("SUCCESS_REDIRECT_URL", "/thanks"),
                ("FAILURE_REDIRECT_URL", "/?from=form"),
            ],
            ..Spec::default()
        },
    );
    let cases: [(&str, &str, Option<&str>, &[&str]); 7] = [
        // The vendored list, then no DNS question at all.
        ("jane@mailinator.com", "disposable_domain", None, &[]),
        ("jane@x.yopmail.com", "disposable_domain", None, &[]),
        // A typo domain on the list: refused as throwaway, with the fix.
        (
            "jane@gmial.com",
            "disposable_domain",
            Some("jane@gmail.com"),
            &[],
        ),
        // NXDOMAIN, near hotmail.com.
        (
            "Jane.Doe@hotnail.com",
            "domain_not_found",
            Some("Jane.Doe@hotmail.com"),
            &["MX"],
        ),
        // A null MX, and a name with neither MX nor address (asked MX, then A, then AAAA).
        ("jane@no-mail.test", "domain_accepts_no_mail", None, &["MX"]),
        (
            "jane@dead.test",
            "domain_accepts_no_mail",
            None,
            &["MX", "A", "AAAA"],
        ),
        // A fresh domain whose mail goes to a throwaway host.
        ("bot@fresh-burner.test", "disposable_domain", None, &["MX"]),
    ];
    for (email, code, suggestion, asked) in cases {
        let reply = stack.signup(email);
        assert_eq!(
            (reply.status, reply.code()),
            (400, code),
            "{email}: {}",
            reply.text
        );
        assert_eq!(
            reply.json["error"]["suggestion"].as_str(),
            suggestion,
            "{email}"
        );
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        assert_eq!(
            asked_about(&stack, domain),
            asked,
            "{email}: questions asked"
        );
    }
    // The no-JS form: the failure redirect carries the code and the suggestion.
    let form = request_with(
        "POST",
        &format!("{}/signup", stack.worker),
        Some((
            "application/x-www-form-urlencoded",
            b"email=jane%40hotnail.com",
        )),
        &[("accept", "text/html")],
    );
    assert_eq!(form.status, 303);
    let location = form.header("location").unwrap_or_default();
    // The redirect names the suggested domain only: a URL ends up in logs and history.
    assert!(
        location.ends_with("/?from=form&error=domain_not_found&suggested_domain=hotmail.com"),
        "{location}"
    );
    // A honeypot hit is checked like any signup: the same answer, nothing sent.
    let decoy = request_with(
        "POST",
        &format!("{}/signup", stack.worker),
        Some((
            "application/json",
            br#"{"email":"jane@mailinator.com","website":"https://spam.example"}"#,
        )),
        &[],
    );
    assert_eq!((decoy.status, decoy.code()), (400, "disposable_domain"));
    assert_eq!(
        decoy.json["error"],
        stack.signup("jane@mailinator.com").json["error"]
    );
    // Addresses that take mail go on: an A record in place of MX, an AAAA record, plain MX.
    for email in ["jane@a-only.test", "jane@v6-only.test", "jane@example.com"] {
        let reply = stack.signup(email);
        assert_eq!(reply.status, 200, "{email}: {}", reply.text);
    }
    assert_eq!(
        sent_to(&stack),
        ["jane@a-only.test", "jane@v6-only.test", "jane@example.com"],
        "SES saw only the addresses let through"
    );
    // The refusals are logged by reason with the keyed tag, never the address or its domain.
    assert!(stack.log_contains("\"event\":\"address_refused\",\"reason\":\"domain_not_found\""));
    let log = stack.log_text();
    assert!(!log.contains("hotnail"), "a domain reached the log");
    assert!(!log.contains("Jane.Doe"), "an address reached the log");
}

#[test]
fn a_resolver_that_fails_lies_or_hangs_lets_the_signup_go_on_within_the_timeout() {
    let stack = Stack::start(
        "address-fail-open",
        Spec {
            vars: &[("DOH_TIMEOUT_MS", "800")],
            ..Spec::default()
        },
    );
    for email in ["jane@servfail.test", "jane@garbage.test"] {
        let reply = stack.signup(email);
        assert_eq!(reply.status, 200, "{email}: {}", reply.text);
    }
    let started = Instant::now();
    let reply = stack.signup("jane@slow.test");
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(800 + 2_500),
        "the hanging resolver held the signup {took:?}"
    );
    // "Cannot tell" is kept briefly: the next signup of the domain asks nothing (its own wait is
    // the gate's spacing of two sends, not the resolver).
    let reply = stack.signup("john@slow.test");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(asked_about(&stack, "slow.test"), ["MX"]);
    assert_eq!(
        sent_to(&stack),
        [
            "jane@servfail.test",
            "jane@garbage.test",
            "jane@slow.test",
            "john@slow.test"
        ]
    );
    assert!(stack.log_contains("\"event\":\"doh_failed\""));
    let log = stack.log_text();
    for domain in ["servfail.test", "garbage.test", "slow.test"] {
        assert!(!log.contains(domain), "{domain} reached the log");
    }
}

#[test]
fn a_flood_of_one_domain_waits_for_one_question_and_shares_its_answer() {
    // flood.test answers 300 ms late with a null MX: every signup must wait for that answer.
    let stack = Stack::start("address-flood", Spec::default());
    let worker = stack.worker.clone();
    let emails: Vec<(String, String)> = (0..12)
        .map(|i| (worker.clone(), format!("user{i}@flood.test")))
        .collect();
    let statuses = concurrently(emails, |(worker, email)| {
        support::request(
            "POST",
            &format!("{worker}/signup"),
            Some((
                "application/json",
                serde_json::json!({ "email": email }).to_string().as_bytes(),
            )),
        )
        .status
    });
    assert_eq!(statuses, [400; 12], "each refused with the one answer");
    let reply = stack.signup("late@flood.test");
    assert_eq!(reply.code(), "domain_accepts_no_mail");
    assert_eq!(
        asked_about(&stack, "flood.test"),
        ["MX"],
        "one question, then the cache"
    );
    assert!(sent_to(&stack).is_empty());
}

#[test]
fn with_the_checks_off_every_domain_goes_on_and_no_question_is_asked() {
    let stack = Stack::start(
        "address-checks-off",
        Spec {
            vars: &[("DISPOSABLE_DOMAINS", "off"), ("MX_CHECK", "off")],
            ..Spec::default()
        },
    );
    for email in [
        "jane@mailinator.com",
        "jane@hotnail.com",
        "jane@no-mail.test",
    ] {
        let reply = stack.signup(email);
        assert_eq!(reply.status, 200, "{email}: {}", reply.text);
    }
    assert!(dns_queries(&stack).is_empty());
    assert_eq!(sent_to(&stack).len(), 3);
}

#[test]
fn an_allowed_throwaway_domain_goes_on() {
    let stack = Stack::start(
        "address-allow",
        Spec {
            vars: &[("DISPOSABLE_ALLOW", "mailinator.com")],
            ..Spec::default()
        },
    );
    let reply = stack.signup("qa@mailinator.com");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(stack.signup("qa@yopmail.com").code(), "disposable_domain");
}
