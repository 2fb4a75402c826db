//! What one SES call came to, pure: from how its exchange ended on the wire ([`Exchange`]: no
//! answer in time, no answer at all, a body lost after the headers, or SES's status, request id
//! and body) to the call's [`CallResult`], with the reply read for the log ([`settle`]).
//!
//! Invariants: a call that got no answer in time is `TimedOut` (it may have reached SES, and
//! the gate treats it so), never a failure to retry at once; a call that got no readable answer
//! is retried as SES failing (`Retryable(ServerError)`); an answer is read only up to
//! [`MAX_REPLY_BYTES`], and means only what [`classify_for`] says it means for this call's own
//! action.

use crate::outcome::classify_for;
use crate::outcome::Outcome;
use crate::outcome::RetryReason;
use crate::reply::parse_reply;
use crate::reply::Reply;
use crate::reply::Unparseable;
use crate::request::SesCall;

/// SES replies are a few hundred bytes; anything far larger is not SES.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What one SES call came to, or `TimedOut` when SES did not answer in time (it may still have
/// received the call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    Answered(Outcome),
    TimedOut,
}

/// How one call's exchange ended, as the wire saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange<'a> {
    /// No answer (headers and body) within the call's timeout; the request was aborted.
    TimedOut,
    /// No answer at all: refused, unreachable, or the request could not be made.
    Unreachable,
    /// SES answered `status`, but the body was lost on the way.
    BodyLost { status: u16 },
    /// SES answered: its status, its `x-amzn-RequestId` header, and the body.
    Answered {
        status: u16,
        request_id: Option<&'a str>,
        body: &'a [u8],
    },
}

/// What the call came to, with what its log line tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// No answer in time.
    TimedOut,
    /// No readable answer: SES is taken to be failing.
    Lost,
    /// SES's `status` and `reply`, which mean `outcome` for this call.
    Answered {
        status: u16,
        reply: Result<Reply, Unparseable>,
        outcome: Outcome,
    },
}

impl Settled {
    /// The result the gate gets.
    pub fn into_result(self) -> CallResult {
        match self {
            Self::TimedOut => CallResult::TimedOut,
            Self::Lost => CallResult::Answered(Outcome::Retryable(RetryReason::ServerError)),
            Self::Answered { outcome, .. } => CallResult::Answered(outcome),
        }
    }
}

/// What `exchange` means for `call`.
pub fn settle(call: &SesCall, exchange: Exchange<'_>) -> Settled {
    match exchange {
        Exchange::TimedOut => Settled::TimedOut,
        Exchange::Unreachable | Exchange::BodyLost { .. } => Settled::Lost,
        Exchange::Answered {
            status,
            request_id,
            body,
        } => {
            let reply = if body.len() > MAX_REPLY_BYTES {
                Err(Unparseable("reply too large"))
            } else {
                parse_reply(body, request_id)
            };
            let outcome = classify_for(call, status, &reply);
            Settled::Answered {
                status,
                reply,
                outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signup_verify_domain::email::EmailAddress;

    fn send() -> SesCall {
        SesCall::Send {
            email: EmailAddress::parse("person@example.com").expect("valid"),
        }
    }

    fn check() -> SesCall {
        SesCall::Check {
            identities: vec![EmailAddress::parse("person@example.com").expect("valid")],
        }
    }

    const SENT: &[u8] = br#"<SendCustomVerificationEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><SendCustomVerificationEmailResult><MessageId>m-1</MessageId></SendCustomVerificationEmailResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></SendCustomVerificationEmailResponse>"#;

    #[test]
    fn a_call_with_no_answer_in_time_timed_out_and_is_not_taken_for_a_failure() {
        for call in [send(), check()] {
            assert_eq!(
                settle(&call, Exchange::TimedOut).into_result(),
                CallResult::TimedOut
            );
        }
    }

    #[test]
    fn a_call_that_reached_nobody_or_lost_its_body_is_retried_as_ses_failing() {
        let failing = CallResult::Answered(Outcome::Retryable(RetryReason::ServerError));
        for exchange in [
            Exchange::Unreachable,
            Exchange::BodyLost { status: 200 },
            Exchange::BodyLost { status: 400 },
        ] {
            let settled = settle(&send(), exchange);
            assert_eq!(settled, Settled::Lost, "{exchange:?}");
            assert_eq!(settled.into_result(), failing, "{exchange:?}");
        }
    }

    #[test]
    fn an_answer_is_parsed_and_classified_for_the_calls_own_action() {
        let answered = Exchange::Answered {
            status: 200,
            request_id: Some("header-id"),
            body: SENT,
        };
        let settled = settle(&send(), answered);
        assert!(
            matches!(&settled, Settled::Answered { status: 200, reply: Ok(Reply::Sent { request_id: Some(id), .. }), .. } if id == "r-1"),
            "{settled:?}"
        );
        assert_eq!(
            settled.into_result(),
            CallResult::Answered(Outcome::Sent {
                message_id: Some("m-1".into())
            })
        );
        assert_eq!(
            settle(&check(), answered).into_result(),
            CallResult::Answered(Outcome::Unknown),
            "a send's success is no status check's answer"
        );
    }

    #[test]
    fn an_oversized_2xx_answer_is_unreadable_and_counts_as_a_send_without_its_message_id() {
        let mut body = SENT.to_vec();
        body.resize(MAX_REPLY_BYTES + 1, b' ');
        let settled = settle(
            &send(),
            Exchange::Answered {
                status: 200,
                request_id: None,
                body: &body,
            },
        );
        assert_eq!(
            settled,
            Settled::Answered {
                status: 200,
                reply: Err(Unparseable("reply too large")),
                outcome: Outcome::Sent { message_id: None },
            }
        );
        body.truncate(MAX_REPLY_BYTES);
        assert!(matches!(
            settle(
                &send(),
                Exchange::Answered {
                    status: 200,
                    request_id: None,
                    body: &body
                }
            )
            .into_result(),
            CallResult::Answered(Outcome::Sent {
                message_id: Some(_)
            })
        ));
    }

    #[test]
    fn an_unreadable_5xx_answer_is_retried_and_an_unreadable_4xx_is_unknown() {
        let answered = |status| Exchange::Answered {
            status,
            request_id: None,
            body: b"<html>bad gateway</html>",
        };
        assert_eq!(
            settle(&send(), answered(502)).into_result(),
            CallResult::Answered(Outcome::Retryable(RetryReason::ServerError))
        );
        assert_eq!(
            settle(&send(), answered(404)).into_result(),
            CallResult::Answered(Outcome::Unknown)
        );
    }
}
