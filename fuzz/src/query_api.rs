//! ses-local's Query API: form-encoded parameters (as any SDK sends them) through every action,
//! with the store seeded as ses-local's own tests seed it (`ses-local/tests/seed.toml`).
//!
//! Input: up to eight calls, one form body per line, run in order against one store (so a
//! template or identity one call creates is there for the next).
//!
//! Properties:
//! - every call answers (no panic), with an error code exactly when it is not a 200, and a
//!   message id only for an accepted send;
//! - for the three actions the Worker makes, the Worker's own parser and classification read
//!   ses-local's answer as what it is: a 200 is that action's success, anything else an error
//!   with the same code.

use ses_local::api::{Answer, Call, Limits, Ses};
use ses_local::query::Params;
use ses_local::sending::IdentityOn;
use ses_local::settings::Settings;
use ses_local::store::Store;
use signup_verify_domain::email::EmailAddress;
use signup_verify_ses::outcome::classify_for;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::reply::parse_reply;
use signup_verify_ses::reply::Reply;
use signup_verify_ses::request::SesCall;
use signup_verify_ses::request::CHECK_ACTION;
use signup_verify_ses::request::DELETE_ACTION;
use signup_verify_ses::request::LIST_ACTION;
use signup_verify_ses::request::SEND_ACTION;

const MAX_CALLS: usize = 8;
/// A fixed clock: 2026-12-01T00:00:00Z, in microseconds; each call a second later.
const NOW_US: u64 = 1_796_083_200_000_000;

pub fn check(data: &[u8]) {
    let settings =
        Settings::parse(include_str!("../../ses-local/tests/seed.toml")).expect("the test seed");
    let mut store = Store::default();
    settings.seed(&mut store);
    let limits = Limits {
        throttle_ms: 1000,
        link_ttl_ms: 86_400_000,
        max_identities: 16,
        identity_on: IdentityOn::Send,
        max_24_hour_send: 200,
    };
    let mut ses = Ses::new(
        store,
        None,
        settings.configuration_sets,
        "us-east-1",
        limits,
    );
    let mut ids = 0u64;
    let mut new_id = || {
        ids += 1;
        format!("fuzz-{ids}")
    };
    for (n, line) in data.split(|&b| b == b'\n').take(MAX_CALLS).enumerate() {
        let params = Params(form_urlencoded::parse(line).into_owned().collect());
        let mut call = Call {
            now_us: NOW_US + n as u64 * 1_000_000,
            request_id: "fuzz-request",
            base_url: "http://127.0.0.1:4579",
            new_id: &mut new_id,
        };
        let answer = ses.handle(&params, &mut call);
        assert_answer_is_consistent(&answer);
        assert_the_worker_reads_it(params.get("Action"), &answer);
    }
}

fn assert_answer_is_consistent(answer: &Answer) {
    assert_eq!(answer.status == 200, answer.code.is_none(), "{answer:?}");
    assert!(!answer.body.is_empty());
    if answer.message_id.is_some() {
        assert_eq!(answer.status, 200, "a message id on a failure");
    }
}

fn assert_the_worker_reads_it(action: Option<&str>, answer: &Answer) {
    let someone = EmailAddress::parse("someone@example.com").expect("a valid address");
    let call = match action {
        Some(SEND_ACTION) => SesCall::Send { email: someone },
        Some(CHECK_ACTION) => SesCall::Check {
            identities: vec![someone],
        },
        Some(DELETE_ACTION) => SesCall::Delete { identity: someone },
        Some(LIST_ACTION) => SesCall::List { next_token: None },
        _ => return,
    };
    let reply = parse_reply(answer.body.as_bytes(), Some("fuzz-request"));
    if answer.status == 200 {
        let outcome = classify_for(&call, 200, &reply);
        let success = matches!(
            (&call, &outcome),
            (
                SesCall::Send { .. },
                Outcome::Sent {
                    message_id: Some(_)
                }
            ) | (SesCall::Check { .. }, Outcome::Checked { .. })
                | (SesCall::Delete { .. }, Outcome::Deleted)
                | (SesCall::List { .. }, Outcome::Listed { .. })
        );
        assert!(
            success,
            "{} answered 200 but reads as {outcome:?}: {}",
            call.action(),
            answer.body
        );
    } else {
        match reply {
            Ok(Reply::Failed(error)) => assert_eq!(Some(error.code), answer.code),
            other => panic!(
                "a {} error reads as {other:?}: {}",
                answer.status, answer.body
            ),
        }
    }
}
