//! The native core's cost per signup on the host (issue H's goal was at most 5 µs; since issue N
//! signs with aws-sigv4's own signer, about 7 µs of it is the signature): the SES request
//! built and SigV4-signed (by aws-sigv4's signer, its signing key derived for each signature),
//! the reply parsed and classified; and issue O's address checks (the throwaway-list lookup, a
//! DNS-over-HTTPS answer read, a typo suggestion). Prints what each bench exercised.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use signup_verify_domain::email::EmailAddress;
use signup_verify_ses::outcome::classify_for;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::reply::parse_reply;
use signup_verify_ses::request::build_request;
use signup_verify_ses::request::SesCall;
use signup_verify_web::config::build_config;
use signup_verify_web::config::Config;

/// What SES answers a `SendCustomVerificationEmail` (the shape ses-local sends).
const SENT_REPLY: &[u8] =
    br#"<SendCustomVerificationEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">
  <SendCustomVerificationEmailResult>
    <MessageId>0100019a1b2c3d4e-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000</MessageId>
  </SendCustomVerificationEmailResult>
  <ResponseMetadata>
    <RequestId>d5964849-c866-11e0-9beb-01a62d68c57f</RequestId>
  </ResponseMetadata>
</SendCustomVerificationEmailResponse>"#;

/// 2026-12-01T12:00:00Z: one signing day, as in production between midnights.
const NOW_MS: u64 = 1_796_126_400_000;

fn config() -> Config {
    let vars = [
        ("AWS_REGION", "eu-west-1"),
        ("SES_TEMPLATE_NAME", "SignupVerify"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
    ];
    build_config(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap_or_else(|e| panic!("bench config: {e:?}"))
}

fn per_signup(c: &mut Criterion) {
    let config = config();
    let call = SesCall::Send {
        email: EmailAddress::parse("someone+news@example.com").expect("valid"),
    };
    let signed = build_request(&config.ses, &call, NOW_MS).expect("signed");
    let outcome = classify_for(&call, 200, &parse_reply(SENT_REPLY, None));
    assert!(matches!(
        outcome,
        Outcome::Sent {
            message_id: Some(_)
        }
    ));
    println!(
        "exercising: {} {} ({} body bytes, {} headers), reply classified {outcome:?}",
        call.action(),
        signed.url,
        signed.body.len(),
        signed.headers.len(),
    );

    c.bench_function("sign the SendCustomVerificationEmail request", |b| {
        b.iter(|| build_request(black_box(&config.ses), black_box(&call), NOW_MS))
    });
    c.bench_function("parse and classify the reply", |b| {
        b.iter(|| classify_for(&call, 200, &parse_reply(black_box(SENT_REPLY), None)))
    });
    c.bench_function("one signup's core: sign, then parse and classify", |b| {
        b.iter(|| {
            let signed = build_request(black_box(&config.ses), black_box(&call), NOW_MS);
            let outcome = classify_for(&call, 200, &parse_reply(black_box(SENT_REPLY), None));
            (signed, outcome)
        })
    });
}

/// Issue O's checks on the host: the throwaway-list lookup (a binary search of the embedded
/// list, for a listed and an unlisted domain with its parents), a DNS-over-HTTPS answer read,
/// and a typo suggestion (the distance to every popular domain).
fn address_checks(c: &mut Criterion) {
    use signup_verify_web::disposable::DisposablePolicy;
    use signup_verify_web::dns_answer::{parse_answer, RecordType};
    use signup_verify_web::typo::suggestion;
    let policy = DisposablePolicy::default();
    let typo = EmailAddress::parse("jane@hotnail.com").expect("valid");
    let mx = br#"{"Status":0,"TC":false,"RD":true,"RA":true,"AD":false,"CD":false,"Question":[{"name":"example.com","type":15}],"Answer":[{"name":"example.com","type":15,"TTL":300,"data":"10 mx1.example.com."},{"name":"example.com","type":15,"TTL":300,"data":"20 mx2.example.com."}]}"#;
    println!(
        "exercising: {} list entries; x.mailinator.com is {:?}, mail.sub.example.co.uk is {:?}; \
         the MX answer reads {:?}; jane@hotnail.com suggests {:?}",
        signup_verify_web::disposable::BLOCKLIST.lines().count(),
        policy.blocked_entry("x.mailinator.com"),
        policy.blocked_entry("mail.sub.example.co.uk"),
        parse_answer(mx, RecordType::Mx),
        suggestion(&typo),
    );
    c.bench_function("throwaway list: a listed subdomain", |b| {
        b.iter(|| policy.blocked_entry(black_box("x.mailinator.com")))
    });
    c.bench_function("throwaway list: an unlisted domain and its parents", |b| {
        b.iter(|| policy.blocked_entry(black_box("mail.sub.example.co.uk")))
    });
    c.bench_function("read a DNS-over-HTTPS MX answer", |b| {
        b.iter(|| parse_answer(black_box(mx), RecordType::Mx))
    });
    c.bench_function("typo suggestion for a refused domain", |b| {
        b.iter(|| suggestion(black_box(&typo)))
    });
}

criterion_group!(benches, per_signup, address_checks);
criterion_main!(benches);
