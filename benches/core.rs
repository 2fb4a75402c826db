//! The native core's cost per signup on the host (issue H's goal was at most 5 µs; since issue N
//! signs with aws-sigv4's own signer, about 7 µs of it is the signature): the SES request
//! built and SigV4-signed (by aws-sigv4's signer, its signing key derived for each signature),
//! the reply parsed and classified. Prints what each bench exercised.

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

criterion_group!(benches, per_signup);
criterion_main!(benches);
