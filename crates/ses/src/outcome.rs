//! Classification: what an SES answer (HTTP status + parsed reply) means for the gate — done,
//! worth retrying, a configuration problem, a refused address, or something we do not recognise —
//! and which [`ApiError`] the caller gets when it is not a success.

use crate::reply::Reply;
use crate::reply::SesError;
use crate::reply::Unparseable;
use crate::request::SesCall;
use signup_verify_domain::error::ApiError;

/// SES codes that mean this deployment (template, identity, credentials, clock, account quota) is
/// broken: nothing can be sent until the operator acts, so the queue pauses and keeps every item.
const CONFIG_CODES: [&str; 16] = [
    "CustomVerificationEmailTemplateDoesNotExist",
    "FromEmailAddressNotVerified",
    "ConfigurationSetDoesNotExist",
    "ProductionAccessNotGranted",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "RequestExpired",
    "ExpiredToken",
    "UnrecognizedClientException",
    // The region's 10,000 identities are used up (SES's LimitExceededException).
    "LimitExceeded",
    // Sending is paused for the account in this region, or for the configuration set.
    "AccountSendingPausedException",
    "ConfigurationSetSendingPausedException",
];

/// SES codes that refuse the address itself.
const REJECTED_CODES: [&str; 2] = ["InvalidParameterValue", "MessageRejected"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// SES took the call. `message_id` is `None` when SES answered 2xx with a body that could not
    /// be read: the call reached SES, so it counts as sent and is never made again.
    Sent {
        message_id: Option<String>,
    },
    /// SES answered a status check: `(identity, VerificationStatus)` for each identity it knows.
    Checked {
        statuses: Vec<(String, String)>,
    },
    /// SES deleted the identity (or never had it).
    Deleted,
    /// One page of the account's email identities, and the token for the next page.
    Listed {
        identities: Vec<String>,
        next_token: Option<String>,
    },
    /// Worth another try in a later slot.
    Retryable(RetryReason),
    /// The deployment is misconfigured. `clock_skew` marks the signature-time variants, whose fix
    /// is the clock rather than the keys.
    Config {
        clock_skew: bool,
    },
    Rejected,
    /// An error code we do not know, or a body we could not read.
    Unknown,
}

impl Outcome {
    /// Whether SES did what the call asked: sent, checked, deleted or listed.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            Self::Sent { .. } | Self::Checked { .. } | Self::Deleted | Self::Listed { .. }
        )
    }

    /// The outcome's name for the log: never the statuses a check lists (they name addresses).
    pub fn log_name(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "Sent",
            Self::Checked { .. } => "Checked",
            Self::Deleted => "Deleted",
            Self::Listed { .. } => "Listed",
            Self::Retryable(RetryReason::Throttled) => "Throttled",
            Self::Retryable(RetryReason::ServerError) => "ServerError",
            Self::Config { clock_skew: true } => "ConfigClockSkew",
            Self::Config { clock_skew: false } => "Config",
            Self::Rejected => "Rejected",
            Self::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    Throttled,
    ServerError,
}

pub fn classify(status: u16, reply: &Result<Reply, Unparseable>) -> Outcome {
    match reply {
        Ok(Reply::Sent { message_id, .. }) if (200..300).contains(&status) => Outcome::Sent {
            message_id: Some(message_id.clone()),
        },
        Ok(Reply::Checked { statuses, .. }) if (200..300).contains(&status) => Outcome::Checked {
            statuses: statuses.clone(),
        },
        Ok(Reply::Deleted { .. }) if (200..300).contains(&status) => Outcome::Deleted,
        Ok(Reply::Listed {
            identities,
            next_token,
            ..
        }) if (200..300).contains(&status) => Outcome::Listed {
            identities: identities.clone(),
            next_token: next_token.clone(),
        },
        Ok(
            Reply::Sent { .. }
            | Reply::Checked { .. }
            | Reply::Deleted { .. }
            | Reply::Listed { .. },
        ) => Outcome::Unknown,
        Ok(Reply::Failed(error)) => classify_error(status, error),
        // A 2xx is SES's word that it took the call, whatever happened to the body on the way.
        Err(_) if (200..300).contains(&status) => Outcome::Sent { message_id: None },
        Err(_) if status >= 500 => Outcome::Retryable(RetryReason::ServerError),
        Err(_) => Outcome::Unknown,
    }
}

/// [`classify`] for the answer to `call`: a success only counts as the success of this call's
/// own action. A 2xx whose body cannot be read means SES took a send or a delete, but a status
/// check without its statuses tells nothing.
pub fn classify_for(call: &SesCall, status: u16, reply: &Result<Reply, Unparseable>) -> Outcome {
    match (call, classify(status, reply)) {
        (SesCall::Send { .. }, sent @ Outcome::Sent { .. }) => sent,
        (SesCall::Check { .. }, checked @ Outcome::Checked { .. }) => checked,
        (SesCall::List { .. }, listed @ Outcome::Listed { .. }) => listed,
        (SesCall::Delete { .. }, Outcome::Deleted | Outcome::Sent { message_id: None }) => {
            Outcome::Deleted
        }
        (
            _,
            Outcome::Sent { .. }
            | Outcome::Checked { .. }
            | Outcome::Deleted
            | Outcome::Listed { .. },
        ) => Outcome::Unknown,
        (_, other) => other,
    }
}

fn classify_error(status: u16, error: &SesError) -> Outcome {
    let code = error.code.as_str();
    match code {
        "Throttling" | "ThrottlingException" => Outcome::Retryable(RetryReason::Throttled),
        "InternalFailure" | "ServiceUnavailable" => Outcome::Retryable(RetryReason::ServerError),
        _ if CONFIG_CODES.contains(&code) => Outcome::Config {
            clock_skew: is_clock_skew(error),
        },
        _ if REJECTED_CODES.contains(&code) => Outcome::Rejected,
        _ if status >= 500 => Outcome::Retryable(RetryReason::ServerError),
        _ => Outcome::Unknown,
    }
}

/// `RequestExpired`, or a `SignatureDoesNotMatch` whose message says the signature's time is off
/// ("Signature expired: …" / "Signature not yet current: …").
fn is_clock_skew(error: &SesError) -> bool {
    let message = error.message.as_deref().unwrap_or_default();
    error.code == "RequestExpired"
        || (error.code == "SignatureDoesNotMatch"
            && (message.starts_with("Signature expired")
                || message.starts_with("Signature not yet current")))
}

/// What the caller is told when the final attempt ended in `outcome` (never for `Sent`).
pub fn api_error_for(outcome: &Outcome, retry_after_secs: u64) -> ApiError {
    match outcome {
        Outcome::Retryable(RetryReason::Throttled) => {
            ApiError::UpstreamThrottled { retry_after_secs }
        }
        Outcome::Config { .. } => ApiError::Misconfigured,
        Outcome::Rejected => ApiError::Rejected,
        Outcome::Sent { .. }
        | Outcome::Checked { .. }
        | Outcome::Deleted
        | Outcome::Listed { .. }
        | Outcome::Retryable(RetryReason::ServerError)
        | Outcome::Unknown => ApiError::UpstreamError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::parse_reply;

    fn error_reply(code: &str, message: Option<&str>) -> Result<Reply, Unparseable> {
        Ok(Reply::Failed(SesError {
            kind: Some("Sender".into()),
            code: code.into(),
            message: message.map(str::to_string),
            request_id: None,
        }))
    }

    fn fixture_outcome(name: &str, status: u16) -> Outcome {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/ses-xml")
            .join(name);
        let body = std::fs::read(path).expect("fixture");
        classify(status, &parse_reply(&body, None))
    }

    #[test]
    fn a_success_with_a_2xx_status_is_sent() {
        let reply = Ok(Reply::Sent {
            message_id: "m-1".into(),
            request_id: None,
        });
        assert_eq!(
            classify(200, &reply),
            Outcome::Sent {
                message_id: Some("m-1".into())
            }
        );
        assert_eq!(
            classify(500, &reply),
            Outcome::Unknown,
            "a success body on a 500 is not trusted"
        );
    }

    #[test]
    fn throttling_arrives_as_a_400_and_is_retryable() {
        for code in ["Throttling", "ThrottlingException"] {
            assert_eq!(
                classify(
                    400,
                    &error_reply(code, Some("Maximum sending rate exceeded."))
                ),
                Outcome::Retryable(RetryReason::Throttled)
            );
        }
    }

    #[test]
    fn server_failures_and_unreadable_5xx_bodies_are_retryable() {
        let server = Outcome::Retryable(RetryReason::ServerError);
        assert_eq!(classify(500, &error_reply("InternalFailure", None)), server);
        assert_eq!(
            classify(503, &error_reply("ServiceUnavailable", None)),
            server
        );
        assert_eq!(classify(500, &error_reply("SomethingNew", None)), server);
        assert_eq!(classify(502, &Err(Unparseable("html"))), server);
        assert_eq!(
            fixture_outcome("err_errors_wrapper_sdb.500.xml", 500),
            server
        );
    }

    #[test]
    fn every_configuration_code_of_the_contract_is_a_config_problem() {
        for code in CONFIG_CODES {
            assert_eq!(
                classify(400, &error_reply(code, Some("x"))),
                Outcome::Config {
                    clock_skew: code == "RequestExpired"
                },
                "{code}"
            );
        }
        assert_eq!(
            fixture_outcome("err_template_missing.400.xml", 400),
            Outcome::Config { clock_skew: false }
        );
        assert_eq!(
            fixture_outcome("err_signature_multiline_message.403.xml", 403),
            Outcome::Config { clock_skew: false }
        );
    }

    #[test]
    fn signature_time_errors_are_flagged_as_clock_skew() {
        assert_eq!(
            fixture_outcome("err_signature_expired.403.xml", 403),
            Outcome::Config { clock_skew: true }
        );
        assert_eq!(
            fixture_outcome("err_mws_request_expired_decl.400.xml", 400),
            Outcome::Config { clock_skew: true }
        );
        assert_eq!(
            classify(
                403,
                &error_reply(
                    "SignatureDoesNotMatch",
                    Some("Signature not yet current: 20300101T000000Z")
                )
            ),
            Outcome::Config { clock_skew: true }
        );
    }

    #[test]
    fn refused_addresses_are_rejected() {
        assert_eq!(
            fixture_outcome("err_invalid_address.400.xml", 400),
            Outcome::Rejected
        );
        assert_eq!(
            fixture_outcome("err_message_rejected.400.xml", 400),
            Outcome::Rejected
        );
    }

    #[test]
    fn unknown_codes_and_unreadable_4xx_bodies_are_unknown() {
        assert_eq!(
            fixture_outcome("err_smithy_invalid_greeting.400.xml", 400),
            Outcome::Unknown
        );
        assert_eq!(
            fixture_outcome("err_smithy_customized_402.402.xml", 402),
            Outcome::Unknown
        );
        assert_eq!(classify(400, &Err(Unparseable("empty"))), Outcome::Unknown);
    }

    #[test]
    fn the_identity_quota_being_full_is_a_deployment_problem_not_the_addresss() {
        assert_eq!(
            classify(
                400,
                &error_reply("LimitExceeded", Some("Maximum number of identities"))
            ),
            Outcome::Config { clock_skew: false }
        );
    }

    #[test]
    fn an_unreadable_2xx_reply_counts_as_sent_without_a_message_id() {
        for why in ["empty", "truncated", "json", "reply too large"] {
            for status in [200, 202, 299] {
                assert_eq!(
                    classify(status, &Err(Unparseable(why))),
                    Outcome::Sent { message_id: None },
                    "{status} {why}"
                );
            }
        }
        assert_eq!(classify(300, &Err(Unparseable("empty"))), Outcome::Unknown);
    }

    #[test]
    fn only_what_the_call_asked_for_is_a_success_and_every_failure_is_not() {
        for done in [
            Outcome::Sent { message_id: None },
            Outcome::Checked { statuses: vec![] },
            Outcome::Deleted,
            Outcome::Listed {
                identities: vec![],
                next_token: None,
            },
        ] {
            assert!(done.succeeded(), "{done:?}");
        }
        for failed in [
            Outcome::Retryable(RetryReason::Throttled),
            Outcome::Retryable(RetryReason::ServerError),
            Outcome::Config { clock_skew: false },
            Outcome::Rejected,
            Outcome::Unknown,
        ] {
            assert!(!failed.succeeded(), "{failed:?}");
        }
    }

    #[test]
    fn final_outcomes_map_to_the_contract_errors() {
        assert_eq!(
            api_error_for(&Outcome::Retryable(RetryReason::Throttled), 4),
            ApiError::UpstreamThrottled {
                retry_after_secs: 4
            }
        );
        assert_eq!(
            api_error_for(&Outcome::Retryable(RetryReason::ServerError), 4),
            ApiError::UpstreamError
        );
        assert_eq!(
            api_error_for(&Outcome::Config { clock_skew: true }, 4),
            ApiError::Misconfigured
        );
        assert_eq!(api_error_for(&Outcome::Rejected, 4), ApiError::Rejected);
        assert_eq!(api_error_for(&Outcome::Unknown, 4), ApiError::UpstreamError);
    }

    #[test]
    fn a_success_counts_only_as_the_success_of_the_calls_own_action() {
        let send = SesCall::Send {
            email: signup_verify_domain::email::EmailAddress::parse("a@b.io").expect("valid"),
        };
        let check = SesCall::Check { identities: vec![] };
        let delete = SesCall::Delete {
            identity: signup_verify_domain::email::EmailAddress::parse("a@b.io").expect("valid"),
        };
        let sent = Ok(Reply::Sent {
            message_id: "m".into(),
            request_id: None,
        });
        let checked = Ok(Reply::Checked {
            statuses: vec![("a@b.io".into(), "Success".into())],
            request_id: None,
        });
        let deleted = Ok(Reply::Deleted { request_id: None });
        let unreadable = Err(Unparseable("truncated"));
        assert!(matches!(
            classify_for(&send, 200, &sent),
            Outcome::Sent { .. }
        ));
        assert_eq!(classify_for(&send, 200, &checked), Outcome::Unknown);
        assert_eq!(classify_for(&check, 200, &sent), Outcome::Unknown);
        assert!(
            matches!(classify_for(&check, 200, &checked), Outcome::Checked { statuses } if statuses.len() == 1)
        );
        assert_eq!(classify_for(&check, 200, &unreadable), Outcome::Unknown);
        assert_eq!(classify_for(&delete, 200, &deleted), Outcome::Deleted);
        assert_eq!(classify_for(&delete, 200, &unreadable), Outcome::Deleted);
        assert_eq!(classify_for(&delete, 200, &checked), Outcome::Unknown);
        assert_eq!(classify_for(&check, 400, &deleted), Outcome::Unknown);
        assert_eq!(
            classify_for(&check, 400, &error_reply("Throttling", None)),
            Outcome::Retryable(RetryReason::Throttled)
        );
    }
}
