//! The typed internal RPC between the Worker and `SesGate`: one JSON request, one JSON reply.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The stub's URLs need an origin; the gate ignores it.
pub const GATE_ORIGIN: &str = "https://ses-gate";
/// The path the Worker POSTs a [`SendRequest`] to on the gate's stub.
pub const SEND_PATH: &str = "/send";
/// The path the Worker GETs [`GateStats`] from.
pub const STATS_PATH: &str = "/stats";

/// Send one verification email. The address was parsed by the Worker; the gate parses it again
/// at its own boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub email: String,
}

impl SendRequest {
    /// The request as a URL on the gate's stub. It travels in the URL, not a body, so the gate
    /// answers it without awaiting a body read: one event in the object's input queue, not two.
    pub fn to_url(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", &self.email)
            .finish();
        format!("{GATE_ORIGIN}{SEND_PATH}?{query}")
    }

    /// The request from the query of a URL made by [`SendRequest::to_url`].
    pub fn from_query(query: &str) -> Option<SendRequest> {
        let mut emails = form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| name == "email")
            .map(|(_, value)| value.into_owned());
        match (emails.next(), emails.next()) {
            (Some(email), None) => Some(SendRequest { email }),
            _ => None,
        }
    }
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
    fn a_send_request_round_trips_through_its_url_whatever_the_address_holds() {
        for email in [
            "a@b.io",
            "x+tag@example.com",
            "o'neil&co=1@ex.com",
            "ünï@例え.jp",
            "",
        ] {
            let request = SendRequest {
                email: email.into(),
            };
            let url = request.to_url();
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            assert!(url.starts_with("https://ses-gate/send?"), "{url}");
            assert_eq!(SendRequest::from_query(query), Some(request));
        }
    }

    #[test]
    fn a_send_url_without_exactly_one_email_is_refused() {
        assert_eq!(SendRequest::from_query(""), None);
        assert_eq!(SendRequest::from_query("mail=a%40b.io"), None);
        assert_eq!(
            SendRequest::from_query("email=a%40b.io&email=c%40d.io"),
            None
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
