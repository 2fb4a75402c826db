//! The SES reply parser and the classification: what SES (or a proxy in front of it) answered,
//! to the [`Outcome`] the gate acts on.
//!
//! Input: one byte picks the call (send, status check, delete), two bytes are the HTTP status
//! (big-endian, modulo 600), the rest is the body.
//!
//! Properties:
//! - the parser never yields a success without a `MessageId` element in the body, and a
//!   message id is never blank; an error always has a code;
//! - the classification is total, and a success outcome only ever comes from a 2xx answer to
//!   the call's own action (a send is `Sent` without an id only when its 2xx body was unreadable);
//! - every outcome that is not a success maps to an HTTP error answer.

use signup_verify_domain::email::EmailAddress;
use signup_verify_ses::outcome::api_error_for;
use signup_verify_ses::outcome::classify_for;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::reply::parse_reply;
use signup_verify_ses::reply::Reply;
use signup_verify_ses::request::SesCall;

pub fn check(data: &[u8]) {
    let [pick, high, low, body @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]) % 600;
    let someone = EmailAddress::parse("someone@example.com").expect("a valid address");
    let call = match pick % 4 {
        0 => SesCall::Send { email: someone },
        1 => SesCall::Check {
            identities: vec![someone],
        },
        2 => SesCall::List { next_token: None },
        _ => SesCall::Delete { identity: someone },
    };
    let reply = parse_reply(body, None);
    match &reply {
        Ok(Reply::Sent { message_id, .. }) => {
            assert!(contains(body, b"MessageId"), "a send without a MessageId");
            assert!(!message_id.trim().is_empty(), "a blank message id");
        }
        Ok(Reply::Failed(error)) => {
            assert!(!error.code.trim().is_empty(), "an error without a code")
        }
        Ok(Reply::Checked { statuses, .. }) => {
            assert!(statuses
                .iter()
                .all(|(identity, status)| !identity.is_empty() && !status.is_empty()));
        }
        Ok(Reply::Listed { identities, .. }) => {
            assert!(identities.iter().all(|identity| !identity.is_empty()));
        }
        Ok(Reply::Deleted { .. }) | Err(_) => {}
    }

    let outcome = classify_for(&call, status, &reply);
    let is_2xx = (200..300).contains(&status);
    match (&outcome, &call, &reply) {
        (
            Outcome::Sent {
                message_id: Some(id),
            },
            SesCall::Send { .. },
            Ok(Reply::Sent { message_id, .. }),
        ) => {
            assert!(is_2xx);
            assert_eq!(id, message_id);
        }
        (Outcome::Sent { message_id: None }, SesCall::Send { .. }, Err(_)) => assert!(is_2xx),
        (Outcome::Checked { .. }, SesCall::Check { .. }, Ok(Reply::Checked { .. })) => {
            assert!(is_2xx)
        }
        (Outcome::Deleted, SesCall::Delete { .. }, Ok(Reply::Deleted { .. }) | Err(_)) => {
            assert!(is_2xx)
        }
        (Outcome::Listed { .. }, SesCall::List { .. }, Ok(Reply::Listed { .. })) => {
            assert!(is_2xx)
        }
        (
            Outcome::Sent { .. }
            | Outcome::Checked { .. }
            | Outcome::Deleted
            | Outcome::Listed { .. },
            _,
            _,
        ) => {
            panic!(
                "{} for {} answered {status}: {reply:?}",
                outcome.log_name(),
                call.action()
            )
        }
        (failure, _, _) => {
            let answer = api_error_for(failure, 1);
            assert!((400..600).contains(&answer.status()), "{answer:?}");
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
