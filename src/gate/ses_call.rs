//! One SES call, made by the gate's `wire`: the request built and signed ahead of its departure, sent
//! under a timeout that aborts it (`outbound`), what the exchange came to read by
//! `signup_verify_ses::call::settle`, and one structured log line.

use signup_verify_domain::log_line;
use signup_verify_domain::log_line::LogLine;

use crate::outbound::Outbound;
use crate::outbound::OutboundError;
use crate::outbound::Redirects;
use signup_verify_domain::redact::redact_addresses;
use signup_verify_gate::messages::CallRequest;
use signup_verify_ses::call::settle;
use signup_verify_ses::call::CallResult;
use signup_verify_ses::call::Exchange;
use signup_verify_ses::call::Settled;
use signup_verify_ses::config::SesConfig;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::reply::Reply;
use signup_verify_ses::reply::Unparseable;
use signup_verify_ses::request::build_request;

/// The SES request for `call`, signed and dated at its slot (or now, if that is later), ready to
/// send: built ahead of its departure so that nothing but the fetch itself lies between the
/// departure and the wire. `None` (logged) if it cannot be signed or the runtime refuses to build
/// it.
pub fn prepared_request(config: &SesConfig, call: &CallRequest) -> Option<Outbound> {
    let signed_at = call.slot_ms.max(crate::runtime::now_ms());
    let prepared = build_request(config, &call.call, signed_at)
        .map_err(|e| e.to_string())
        .and_then(|signed| {
            Outbound::post(
                &signed.url,
                &signed.headers,
                &signed.body,
                Redirects::Follow,
            )
            .map_err(|e| e.to_string())
        });
    match prepared {
        Ok(request) => Some(request),
        Err(error) => {
            crate::log::error(
                log_line!({"event": "ses_signing_failed", "error": error, "request_id": call.request_id}),
            );
            None
        }
    }
}

/// Sends one call, bounded by `timeout_ms` (connect, headers and body). `on_answer` runs the
/// moment the response headers arrive: SES has the call by then, whatever the body holds.
pub async fn call_ses(
    request: Outbound,
    timeout_ms: u64,
    call: &CallRequest,
    on_answer: &dyn Fn(),
) -> CallResult {
    let started_ms = crate::runtime::now_ms();
    let answer = request.send(timeout_ms, on_answer).await;
    let header_request_id = answer
        .as_ref()
        .ok()
        .and_then(|response| response.header("x-amzn-RequestId"));
    let exchange = match &answer {
        Ok(response) => Exchange::Answered {
            status: response.status,
            request_id: header_request_id.as_deref(),
            body: &response.body,
        },
        Err(OutboundError::TimedOut { .. }) => Exchange::TimedOut,
        Err(OutboundError::BodyUnreadable { status, .. }) => Exchange::BodyLost { status: *status },
        Err(OutboundError::BadRequest(_) | OutboundError::Unreachable(_)) => Exchange::Unreachable,
    };
    let settled = settle(&call.call, exchange);
    match &settled {
        Settled::Answered {
            status,
            reply,
            outcome,
        } => {
            let round_trip_ms = crate::runtime::now_ms().saturating_sub(started_ms);
            let line = || attempt_line(call, *status, round_trip_ms, reply, outcome);
            if outcome.succeeded() {
                crate::log::info(line);
            } else {
                crate::log::error(line());
            }
        }
        Settled::TimedOut => crate::log::error(
            log_line!({"event": "ses_timeout", "attempt": call.attempt, "timeout_ms": timeout_ms, "request_id": call.request_id}),
        ),
        Settled::Lost => {
            let error = answer.err().map(|e| e.to_string()).unwrap_or_default();
            crate::log::error(
                log_line!({"event": "ses_unreachable", "attempt": call.attempt, "error": error, "request_id": call.request_id}),
            );
        }
    }
    settled.into_result()
}

/// One structured log line per SES call: the SES code, (redacted) message and request id go
/// here, never to the browser. The address appears only as its tag.
fn attempt_line(
    call: &CallRequest,
    status: u16,
    round_trip_ms: u64,
    reply: &std::result::Result<Reply, Unparseable>,
    outcome: &Outcome,
) -> LogLine {
    let line = log_line!({
        "event": "ses_call",
        "action": call.call.action(),
        "attempt": call.attempt,
        "address": call.address_tag,
        "status": status,
        "round_trip_ms": round_trip_ms,
        "outcome": outcome.log_name(),
        "request_id": call.request_id,
    });
    let line = match reply {
        Ok(Reply::Sent {
            message_id,
            request_id,
        }) => line
            .field("message_id", message_id)
            .field("ses_request_id", request_id),
        Ok(Reply::Checked {
            statuses,
            request_id,
        }) => line
            .field("identities_listed", &statuses.len())
            .field("ses_request_id", request_id),
        Ok(Reply::Deleted { request_id }) => line.field("ses_request_id", request_id),
        Ok(Reply::Listed {
            identities,
            request_id,
            ..
        }) => line
            .field("identities_listed", &identities.len())
            .field("ses_request_id", request_id),
        Ok(Reply::Failed(error)) => {
            let redact = |text: &str| {
                call.call
                    .addresses()
                    .iter()
                    .fold(text.to_string(), |text, own| {
                        redact_addresses(&text, own, &call.address_tag)
                    })
            };
            line.field("code", &redact(&error.code))
                .field("type", &error.kind.as_deref().map(redact))
                .field("message", &error.message.as_deref().map(redact))
                .field("ses_request_id", &error.request_id.as_deref().map(redact))
        }
        Err(unparseable) => line.field("unparseable", &unparseable.0),
    };
    if matches!(outcome, Outcome::Config { clock_skew: true }) {
        line.field(
            "problem",
            "clock skew: SES says the signing time is off; check the system clock",
        )
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signup_verify_domain::email::EmailAddress;
    use signup_verify_domain::redact::has_address;
    use signup_verify_domain::request_id::RequestId;
    use signup_verify_gate::messages::Recipient;
    use signup_verify_ses::outcome::classify;
    use signup_verify_ses::outcome::classify_for;
    use signup_verify_ses::reply::parse_reply;
    use signup_verify_ses::request::SesCall;

    fn parsed(line: LogLine) -> serde_json::Value {
        serde_json::from_str(&line.to_string()).expect("a log line is JSON")
    }

    fn send_call(email: &EmailAddress, attempt: u32) -> CallRequest {
        let request_id = RequestId::parse("rid-1").expect("well formed");
        let to = Recipient {
            email,
            key: "ab12cd34",
            request_id: Some(&request_id),
        };
        CallRequest::send(to, 0, attempt)
    }

    #[test]
    fn no_log_line_for_any_ses_reply_fixture_holds_an_address() {
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ses-xml");
        let email = EmailAddress::parse("person@example.com").expect("valid");
        let call = send_call(&email, 1);
        let mut read = 0;
        let mut redacted = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|x| x != "xml") {
                continue;
            }
            let body = std::fs::read(&path).expect("fixture");
            let raw = String::from_utf8_lossy(&body).to_string();
            for status in [200, 400, 403, 500] {
                let reply = parse_reply(&body, Some("req-1"));
                let outcome = classify_for(&call.call, status, &reply);
                let line = attempt_line(&call, status, 5, &reply, &outcome).to_string();
                assert!(!has_address(&line), "{}: {line}", path.display());
            }
            read += 1;
            redacted += usize::from(has_address(&raw));
        }
        assert_eq!(read, 22);
        assert!(
            redacted >= 2,
            "the fixtures include SES messages that echo addresses"
        );
    }

    #[test]
    fn a_status_check_is_logged_by_count_without_the_addresses_it_lists() {
        let call = CallRequest {
            call: SesCall::Check {
                identities: vec![EmailAddress::parse("person@example.com").expect("valid")],
            },
            slot_ms: 0,
            attempt: 1,
            address_tag: "1 identities".into(),
            request_id: None,
        };
        let body = std::fs::read(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
            "tests/fixtures/ses-xml/handwritten__get-identity-verification-attributes.200.xml",
        ))
        .expect("fixture");
        let reply = parse_reply(&body, None);
        let outcome = classify_for(&call.call, 200, &reply);
        let line = parsed(attempt_line(&call, 200, 5, &reply, &outcome));
        assert_eq!(line["outcome"], "Checked");
        assert_eq!(line["identities_listed"], 2);
        assert!(!has_address(&line.to_string()), "{line}");
    }

    #[test]
    fn an_echoed_address_is_logged_as_the_calls_tag() {
        let email = EmailAddress::parse("Victim+1@Example.com").expect("valid");
        let call = send_call(&email, 2);
        let body = br#"<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>Invalid email address&lt;Victim+1@example.com&gt;.</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let reply = parse_reply(body, None);
        let line = parsed(attempt_line(&call, 400, 5, &reply, &classify(400, &reply)));
        assert_eq!(line["message"], "Invalid email address<<email:ab12cd34>>.");
        assert_eq!(line["address"], "ab12cd34");
        assert_eq!(line["request_id"], "rid-1", "the signup's own id");
        assert_eq!(line["ses_request_id"], "r", "SES's id for the call");
    }
}
