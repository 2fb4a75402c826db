//! Signup events for the operator's backend, in the Standard Webhooks format: the event body,
//! the `webhook-id` / `webhook-timestamp` / `webhook-signature` headers, and the retry schedule.
//! Pure: time and the key are parameters.
//!
//! Invariants: an event's id and body are fixed when it is made, so every retry is the same event
//! (receivers dedupe on `webhook-id`); the signature covers `id.timestamp.body` exactly as sent;
//! retries back off exponentially and go on for at least [`RETRY_WINDOW_MS`]; an event is
//! delivered only when the configured URL itself answers 2xx ([`delivered`]): redirects are never
//! followed (the runtime's POST is `redirect: "manual"`), so a 3xx is a failed attempt, retried
//! like any other, and the signed body never reaches a host the operator did not configure.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use signup_verify_ses::time::rfc3339_utc;

/// The first retry waits this long; each one after waits twice as long as the one before...
const FIRST_RETRY_MS: u64 = 5_000;
/// ...up to this.
const MAX_RETRY_GAP_MS: u64 = 3_600_000;
/// Deliveries are retried for this long after the event (then given up, counted and logged).
pub const RETRY_WINDOW_MS: u64 = 26 * 3_600_000;

/// What happened to a signup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Verified,
    Confirmed,
    Expired,
    Rejected,
    Dropped,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "signup.verified",
            Self::Confirmed => "signup.confirmed",
            Self::Expired => "signup.expired",
            Self::Rejected => "signup.rejected",
            Self::Dropped => "signup.dropped",
        }
    }
}

/// The facts an event reports about one signup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData<'a> {
    pub email: &'a str,
    pub message_id: Option<&'a str>,
    pub verified_ms: Option<u64>,
    pub confirmed: bool,
    pub reason: Option<&'a str>,
    /// The signup replaced another signup of the mailbox whose link was still open, by a
    /// request that did not hold that signup's credential (docs/security.md).
    pub contested: bool,
}

/// The JSON body: `{type, timestamp, data: {email, confirmed, messageId?, verifiedAt?, reason?,
/// contested?}}` (`contested` only when true). Keys are written in sorted order, as they always
/// were.
pub fn event_body(kind: EventKind, at_ms: u64, data: &EventData) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Fields<'a> {
        confirmed: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        contested: bool,
        email: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        verified_at: Option<String>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        data: Fields<'a>,
        timestamp: String,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    let body = Body {
        data: Fields {
            confirmed: data.confirmed,
            contested: data.contested,
            email: data.email,
            message_id: data.message_id,
            reason: data.reason,
            verified_at: data.verified_ms.map(rfc3339_utc),
        },
        timestamp: rfc3339_utc(at_ms),
        kind: kind.as_str(),
    };
    // Strings, bools and options of them: serde_json cannot fail on these.
    serde_json::to_string(&body).unwrap_or_default()
}

/// `webhook-id`: `msg_` + 32 hex digits of a hash of the signup (its address key and signup
/// time) and the event type: stable across retries and restarts, and distinct for every event.
pub fn event_id(key: &str, signed_up_ms: u64, kind: EventKind) -> String {
    use sha2::Digest;
    let digest = Sha256::digest(format!("{key}.{signed_up_ms}.{}", kind.as_str()));
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn signature(key: &[u8], id: &str, timestamp_secs: u64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp_secs}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The headers of one delivery attempt made at `now_ms`.
pub fn headers(key: &[u8], id: &str, now_ms: u64, body: &str) -> Vec<(String, String)> {
    let timestamp = now_ms / 1000;
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            signature(key, id, timestamp, body),
        ),
    ]
}

/// When to try again after `attempts` failed deliveries of an event made at `created_ms`, or
/// `None` once the retry window is over.
pub fn next_attempt_ms(created_ms: u64, attempts: u32, now_ms: u64) -> Option<u64> {
    let gap = FIRST_RETRY_MS
        .saturating_mul(1 << attempts.saturating_sub(1).min(20))
        .min(MAX_RETRY_GAP_MS);
    let at = now_ms + gap;
    (at <= created_ms + RETRY_WINDOW_MS).then_some(at)
}

/// Whether a receiver's status means the event arrived: 2xx only. A redirect (3xx, never
/// followed) and the 0 of an opaque answer are failures.
pub fn delivered(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_reference_vector() {
        // The example in the Standard Webhooks spec (and svix's libraries' tests): secret
        // whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp
        // 1614265330, body {"test": 2432232314}.
        let key = STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_delivery_carries_the_id_the_attempts_timestamp_and_a_signature_over_both() {
        let key = b"0123456789abcdef01234567";
        let headers = headers(key, "msg_1", 1_700_000_000_999, "{}");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("webhook-id").as_deref(), Some("msg_1"));
        assert_eq!(get("webhook-timestamp").as_deref(), Some("1700000000"));
        assert_eq!(
            get("webhook-signature"),
            Some(signature(key, "msg_1", 1_700_000_000, "{}"))
        );
    }

    #[test]
    fn an_event_body_names_its_type_and_only_the_facts_it_has() {
        let verified = event_body(
            EventKind::Verified,
            1_764_000_000_000,
            &EventData {
                email: "a@b.io",
                message_id: Some("m-1"),
                verified_ms: Some(1_764_000_000_000),
                confirmed: false,
                reason: None,
                contested: false,
            },
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&verified).expect("json"),
            serde_json::json!({"type": "signup.verified", "timestamp": "2025-11-24T16:00:00.000Z",
                   "data": {"email": "a@b.io", "confirmed": false, "messageId": "m-1",
                            "verifiedAt": "2025-11-24T16:00:00.000Z"}})
        );
        let dropped = event_body(
            EventKind::Dropped,
            0,
            &EventData {
                email: "a@b.io",
                message_id: None,
                verified_ms: None,
                confirmed: false,
                reason: Some("exhausted"),
                contested: true,
            },
        );
        let dropped: serde_json::Value = serde_json::from_str(&dropped).expect("json");
        assert_eq!(dropped["type"], "signup.dropped");
        assert_eq!(dropped["data"]["reason"], "exhausted");
        assert_eq!(dropped["data"]["contested"], true);
        assert!(dropped["data"].get("messageId").is_none());
    }

    #[test]
    fn an_event_body_keeps_the_byte_order_earlier_releases_sent() {
        // Receivers that hash or store the body see the same bytes as before the typed body.
        let body = event_body(
            EventKind::Confirmed,
            0,
            &EventData {
                email: "a@b.io",
                message_id: Some("m-1"),
                verified_ms: Some(0),
                confirmed: true,
                reason: Some("r"),
                contested: true,
            },
        );
        assert_eq!(
            body,
            r#"{"data":{"confirmed":true,"contested":true,"email":"a@b.io","messageId":"m-1","reason":"r","verifiedAt":"1970-01-01T00:00:00.000Z"},"timestamp":"1970-01-01T00:00:00.000Z","type":"signup.confirmed"}"#
        );
    }

    #[test]
    fn retries_double_from_five_seconds_to_an_hour_and_go_on_for_more_than_a_day() {
        let created = 1_000_000;
        let gaps: Vec<u64> = (1..=4)
            .map(|n| next_attempt_ms(created, n, created).expect("within the window") - created)
            .collect();
        assert_eq!(gaps, [5_000, 10_000, 20_000, 40_000]);
        assert_eq!(
            next_attempt_ms(created, 30, created),
            Some(created + MAX_RETRY_GAP_MS)
        );
        let mut now = created;
        let mut attempts = 0;
        while let Some(at) = next_attempt_ms(created, attempts + 1, now) {
            attempts += 1;
            now = at;
        }
        assert!(
            now - created >= 24 * 3_600_000,
            "retried for {} ms",
            now - created
        );
        assert!(now - created <= RETRY_WINDOW_MS);
        assert!(attempts < 60, "{attempts} attempts");
    }

    #[test]
    fn only_a_2xx_is_delivered_and_a_redirect_of_any_kind_is_a_failed_attempt() {
        for status in [200, 201, 202, 204, 299] {
            assert!(delivered(status), "{status}");
        }
        for status in [
            0, 100, 199, 300, 301, 302, 303, 304, 307, 308, 399, 400, 429, 500, 503,
        ] {
            assert!(!delivered(status), "{status} counted as delivered");
        }
    }

    #[test]
    fn an_event_id_is_stable_for_its_signup_and_type_and_distinct_otherwise() {
        let id = event_id("k", 1, EventKind::Verified);
        assert_eq!(id, event_id("k", 1, EventKind::Verified));
        assert_eq!(id.len(), 4 + 32);
        assert!(id.starts_with("msg_"));
        for other in [
            event_id("k", 1, EventKind::Confirmed),
            event_id("k", 2, EventKind::Verified),
            event_id("j", 1, EventKind::Verified),
        ] {
            assert_ne!(id, other);
        }
    }
}
