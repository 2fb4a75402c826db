//! The typed internal RPC between the Worker and `SesGate`: one JSON request, one JSON reply.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The path the Worker POSTs to on the gate's stub.
pub const SEND_PATH: &str = "/send";

/// Send one verification email. The address was parsed by the Worker; the gate parses it again
/// at its own boundary.
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
    Failed {
        error: ApiError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

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
