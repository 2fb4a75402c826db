//! The typed internal RPCs: Worker → `SesGate` (a signup) and `SesGate` → `SesSender` (one SES
//! call), each one request and one JSON reply.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The stub's URLs need an origin; the gate ignores it.
pub const GATE_ORIGIN: &str = "https://ses-gate";
/// The path the Worker POSTs a [`SendRequest`] to on the gate's stub.
pub const SEND_PATH: &str = "/send";
/// The path the Worker GETs [`GateStats`] from.
pub const STATS_PATH: &str = "/stats";
/// The path the gate POSTs a [`CallRequest`] to on the sender's stub; the reply is a JSON
/// `Option<CallResult>` (`null`: the call cannot be made, as the config or signing failed).
pub const CALL_PATH: &str = "/call";

/// One SES call for `email`, not before `slot_ms`. `attempt` is for the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRequest {
    pub email: String,
    pub slot_ms: u64,
    pub attempt: u32,
}

/// Send one verification email. The address was parsed by the Worker; the gate parses it again
/// at its own boundary. It travels in the body: a URL (and its query) may end up in traces and
/// logs, and an address must not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SendReply {
    Sent {
        #[serde(rename = "messageId")]
        message_id: String,
    },
    /// Durably queued; the gate's alarm will send it.
    Queued {
        position: u64,
        #[serde(rename = "estimatedSendAt")]
        estimated_send_at: String,
    },
    Failed {
        error: ApiError,
    },
}

/// `GET /gate/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateStats {
    pub queue_length: u64,
    pub oldest_item_age_ms: Option<u64>,
    pub sends_last_minute: u64,
    pub sends_last_hour: u64,
    pub throttles_seen: u64,
    pub drops: std::collections::BTreeMap<String, u64>,
    /// The configured interval, and the current one (longer while backing off).
    pub interval_ms: u64,
    pub current_interval_ms: u64,
    pub paused_until: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_result_round_trips_between_the_gate_and_the_sender() {
        use crate::gate::queue::CallResult;
        use crate::ses::outcome::{Outcome, RetryReason};
        let results = [
            Some(CallResult::Answered(Outcome::Sent {
                message_id: "m-1".into(),
            })),
            Some(CallResult::Answered(Outcome::Retryable(
                RetryReason::Throttled,
            ))),
            Some(CallResult::Answered(Outcome::Retryable(
                RetryReason::ServerError,
            ))),
            Some(CallResult::Answered(Outcome::Config { clock_skew: true })),
            Some(CallResult::Answered(Outcome::Rejected)),
            Some(CallResult::Answered(Outcome::Unknown)),
            Some(CallResult::TimedOut),
            None,
        ];
        for result in results {
            let json = serde_json::to_string(&result).expect("json");
            assert_eq!(
                serde_json::from_str::<Option<CallResult>>(&json).expect("parse"),
                result,
                "{json}"
            );
        }
        let request = CallRequest {
            email: "a@b.io".into(),
            slot_ms: 7,
            attempt: 2,
        };
        let json = serde_json::to_string(&request).expect("json");
        assert_eq!(json, r#"{"email":"a@b.io","slotMs":7,"attempt":2}"#);
        assert_eq!(
            serde_json::from_str::<CallRequest>(&json).expect("parse"),
            request
        );
    }

    #[test]
    fn a_sent_reply_is_already_the_public_success_body() {
        let reply = SendReply::Sent {
            message_id: "m-1".into(),
        };
        assert_eq!(
            serde_json::to_value(&reply).expect("json"),
            serde_json::json!({"status": "sent", "messageId": "m-1"})
        );
    }

    #[test]
    fn a_queued_reply_is_already_the_public_202_body() {
        let reply = SendReply::Queued {
            position: 3,
            estimated_send_at: "2026-11-26T10:00:00.000Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&reply).expect("json"),
            serde_json::json!({"status": "queued", "position": 3, "estimatedSendAt": "2026-11-26T10:00:00.000Z"})
        );
    }

    #[test]
    fn a_failed_reply_round_trips_with_its_retry_after() {
        let reply = SendReply::Failed {
            error: ApiError::Busy {
                retry_after_secs: 7,
            },
        };
        let json = serde_json::to_string(&reply).expect("json");
        assert_eq!(
            serde_json::from_str::<SendReply>(&json).expect("parse"),
            reply
        );
    }
}
