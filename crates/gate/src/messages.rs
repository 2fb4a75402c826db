//! The typed internal messages between the Worker and `SesGate`: each request, its JSON reply,
//! the paths and binding they travel on; and the gate's calls to SES ([`CallRequest`]) with the
//! [`SenderLink`] seam they go through (the Worker crate's `wire` makes them). Addresses travel as a
//! parsed [`EmailAddress`], in the body: a URL may end up in traces and logs, and an address must
//! not.

use serde::{Deserialize, Serialize};

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::redact::tag_of;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_ses::request::SesCall;

use crate::tracking::TrackingCounters;
use crate::usage::CostStats;

/// The stub's URLs need an origin; the objects ignore it.
pub const GATE_ORIGIN: &str = "https://ses-gate";
/// The path the Worker POSTs a [`SendRequest`] to on the gate's stub.
pub const SEND_PATH: &str = "/send";
/// The path the Worker GETs [`GateStats`] from.
pub const STATS_PATH: &str = "/stats";
/// The path the Worker POSTs a [`SignupRef`] to for a [`SignupStatus`].
pub const STATUS_PATH: &str = "/status";
/// The path the Worker POSTs a [`SignupRef`] to when a person confirms.
pub const CONFIRM_PATH: &str = "/confirm";

/// The path the Worker POSTs a [`SpillNote`] to, on the home of a signup another region took.
pub const SPILLED_PATH: &str = "/spilled";

/// A signup of this gate's mailbox that another region took while this gate was paused: the
/// home records the mailbox's cooldown and where the signup went (`landed`, its region named;
/// none with tokens off), so that a later signup here is held by the cooldown and contests it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpillNote {
    pub email: EmailAddress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed: Option<SignupRef>,
}

/// The `SesGate` binding in wrangler.toml.
pub const GATE_BINDING: &str = "SES_GATE";

/// Send one verification email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    pub email: EmailAddress,
    /// For the gate's log lines, its SES call's included (see `request_id`).
    #[serde(rename = "requestId")]
    pub request_id: RequestId,
    /// The signup the browser's cookie names (a genuine credential), if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presented: Option<SignupRef>,
    /// A honeypot hit: the gate answers it as a signup (dedupe, limits, budget, the real key)
    /// but sends nothing and keeps no signup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decoy: bool,
    /// Another region of the pool can take a new signup: a paused gate declines it
    /// (`ApiError::RegionPaused`) instead of queueing it.
    #[serde(
        default,
        rename = "mayDecline",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub may_decline: bool,
    /// A region that declined this signup holds an open signup of the mailbox, issued to a
    /// request this one's cookie does not name: the signup made here is `contested` (as it would
    /// be had the home taken it).
    #[serde(
        default,
        rename = "contestedElsewhere",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub contested_elsewhere: bool,
    /// A queued signup handed over by the gate of a region that stays paused:
    /// `<region>/<its nonce>` (see `gate::handover`). The taker keeps it once, however often
    /// it is asked, and takes no cooldown or budget for it (the giver took them).
    #[serde(
        default,
        rename = "handedFrom",
        skip_serializing_if = "Option::is_none"
    )]
    pub handed_from: Option<String>,
}

/// A signup the gate took. Over the RPC it also names the signup it made (`signup`), from
/// which the Worker mints the signup's own credentials; the public `200` and `202` bodies are
/// [`Accepted::public_body`], which never carry the reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Accepted {
    /// `messageId` is left out when SES took the call but its reply could not be read.
    Sent {
        #[serde(rename = "messageId", default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// The signup this request made (none: tokens are off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signup: Option<SignupRef>,
    },
    /// Durably queued; the gate's alarm will send it. `pausedUntil` is there only while SES
    /// reports a configuration or credentials error: the queue waits until then.
    Queued {
        position: u64,
        #[serde(rename = "estimatedSendAt")]
        estimated_send_at: String,
        #[serde(
            rename = "pausedUntil",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        paused_until: Option<String>,
        /// The signup this request made; none for a signup already queued by another request
        /// (whose credentials belong to that request alone) or with tokens off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signup: Option<SignupRef>,
    },
}

/// The public `200`/`202` body: the gate's answer with the signup's status token, if any.
#[derive(Debug, Serialize)]
pub struct AcceptedBody<'a> {
    status: &'static str,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    #[serde(rename = "estimatedSendAt", skip_serializing_if = "Option::is_none")]
    estimated_send_at: Option<&'a str>,
    #[serde(rename = "pausedUntil", skip_serializing_if = "Option::is_none")]
    paused_until: Option<&'a str>,
    #[serde(rename = "statusToken", skip_serializing_if = "Option::is_none")]
    status_token: Option<&'a str>,
}

impl Accepted {
    /// `200` sent, `202` queued.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Sent { .. } => 200,
            Self::Queued { .. } => 202,
        }
    }

    /// The signup this request made, if it made one with tokens on.
    pub fn signup(&self) -> Option<&SignupRef> {
        match self {
            Self::Sent { signup, .. } | Self::Queued { signup, .. } => signup.as_ref(),
        }
    }

    /// The same answer naming `made` as the signup this request made.
    pub fn made(mut self, made: Option<SignupRef>) -> Self {
        match &mut self {
            Self::Sent { signup, .. } | Self::Queued { signup, .. } => *signup = made,
        }
        self
    }

    /// The same answer, its signup held by the gate of `region`.
    pub fn in_region(self, region: &str) -> Self {
        let made = self.signup().cloned().map(|s| s.in_region(region));
        self.made(made)
    }

    /// The body a caller sees, with `status_token` (the signup's own, minted by the Worker).
    pub fn public_body<'a>(&'a self, status_token: Option<&'a str>) -> AcceptedBody<'a> {
        let mut body = AcceptedBody {
            status: self.status(),
            message_id: None,
            position: None,
            estimated_send_at: None,
            paused_until: None,
            status_token,
        };
        match self {
            Self::Sent { message_id, .. } => body.message_id = message_id.as_deref(),
            Self::Queued {
                position,
                estimated_send_at,
                paused_until,
                ..
            } => {
                body.position = Some(*position);
                body.estimated_send_at = Some(estimated_send_at);
                body.paused_until = paused_until.as_deref();
            }
        }
        body
    }

    /// The `status` word, also given to the success page of a form redirect.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Queued { .. } => "queued",
        }
    }
}

/// The gate's answer to a [`SendRequest`].
pub type SendReply = Result<Accepted, ApiError>;

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
    /// Why the queue is paused, in plain words, while it is.
    pub paused_reason: Option<String>,
    /// Signups taken in the current 24-hour window, and `DAILY_SEND_BUDGET` (0: none).
    pub daily_taken: u64,
    pub daily_budget: u64,
    /// Sent signups waiting for SES to report them verified or expired.
    pub pending_checks: u64,
    /// Webhook events not delivered yet.
    pub webhook_backlog: u64,
    /// `IDENTITY_CLEANUP`.
    pub identity_cleanup: bool,
    /// When the snapshot of the identities that existed before the gate's sends was taken, and
    /// how many it holds (none yet: ownership is decided by the first check).
    pub identity_snapshot_at: Option<String>,
    pub identity_snapshot_size: Option<u64>,
    pub tracking: TrackingCounters,
    /// Rows read and written, Durable Object requests and signups, and each per signup.
    pub cost: CostStats,
}

/// `GET /signup/status`'s body. Never holds the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupStatus {
    /// `queued`, `sent`, `verified`, `expired`, `rejected` or `dropped`.
    pub status: String,
    pub verified: bool,
    pub confirmed: bool,
    /// It replaced another signup of the address whose link was still open (only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_send_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The gate's answer about one signup.
pub type StatusReply = Result<SignupStatus, ApiError>;

/// One SES call, not before `slot_ms`. `attempt`, `address_tag` (a prefix of the address's HMAC
/// key, `redact::tag_of`, or a count for a batch) and `request_id` (the signup's, for a send) are
/// for the logs, which never hold an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub call: SesCall,
    pub slot_ms: u64,
    pub attempt: u32,
    pub address_tag: String,
    pub request_id: Option<RequestId>,
}

/// One signup's address as the gate holds it: as given, its HMAC key, and the request that
/// brought it (none for an item queued before request ids existed).
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub email: &'a EmailAddress,
    pub key: &'a str,
    pub request_id: Option<&'a RequestId>,
}

impl CallRequest {
    /// A send to `to`.
    pub fn send(to: Recipient, slot_ms: u64, attempt: u32) -> Self {
        Self {
            call: SesCall::Send {
                email: to.email.clone(),
            },
            slot_ms,
            attempt,
            address_tag: tag_of(to.key).to_string(),
            request_id: to.request_id.cloned(),
        }
    }
}

/// What one SES call came to (the answer to a [`CallRequest`]); defined with the SES call it
/// settles.
pub use signup_verify_ses::call::CallResult;

/// How the gate reaches SES: the seam its host tests fake.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound is wanted.
pub trait SenderLink {
    /// Makes the call at its slot and waits for the result. `None` if the call cannot be made at
    /// all (a request that cannot be signed): the deployment is misconfigured. A call that gets
    /// no answer in time is a `TimedOut`: it may have reached SES.
    async fn call(&self, call: &CallRequest) -> Option<CallResult>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_call_names_the_address_by_its_tag_and_carries_the_signups_request_id() {
        let email = EmailAddress::parse("a@b.io").expect("valid");
        let request_id = RequestId::parse("8f2c1a9b7d3e4f01-LHR").expect("well formed");
        let to = Recipient {
            email: &email,
            key: "ab12cd34ffff",
            request_id: Some(&request_id),
        };
        let request = CallRequest::send(to, 7, 2);
        assert_eq!(request.call, SesCall::Send { email });
        assert_eq!((request.slot_ms, request.attempt), (7, 2));
        assert_eq!(request.address_tag, "ab12cd34", "a prefix of the key");
        assert_eq!(request.request_id, Some(request_id));
    }

    #[test]
    fn a_request_with_an_address_that_does_not_parse_is_refused_at_the_boundary() {
        assert!(
            serde_json::from_str::<SendRequest>(r#"{"email":"a@@b.io","requestId":"r-1"}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<SendRequest>(r#"{"email":"a@b.io","requestId":"r 1"}"#).is_err(),
            "a request id is checked at the boundary too"
        );
        let parsed: SendRequest =
            serde_json::from_str(r#"{"email":"a@B.io","requestId":"r-1"}"#).expect("valid");
        assert_eq!(parsed.email.as_str(), "a@b.io");
    }

    #[test]
    fn a_sent_reply_is_already_the_public_success_body() {
        let reply = Accepted::Sent {
            message_id: Some("m-1".into()),
            signup: None,
        };
        assert_eq!((reply.http_status(), reply.status()), (200, "sent"));
        assert_eq!(
            serde_json::to_value(reply.public_body(None)).expect("json"),
            serde_json::json!({"status": "sent", "messageId": "m-1"})
        );
    }

    #[test]
    fn a_queued_reply_is_already_the_public_202_body() {
        let signup = SignupRef {
            key: "k".into(),
            signed_up_ms: 1,
            nonce: "n".into(),
            region: None,
        };
        let reply = Accepted::Queued {
            position: 3,
            estimated_send_at: "2026-11-26T10:00:00.000Z".into(),
            paused_until: None,
            signup: Some(signup.clone()),
        };
        assert_eq!((reply.http_status(), reply.status()), (202, "queued"));
        assert_eq!(
            serde_json::to_value(reply.public_body(None)).expect("json"),
            serde_json::json!({"status": "queued", "position": 3, "estimatedSendAt": "2026-11-26T10:00:00.000Z"}),
            "the internal reference never reaches the caller"
        );
        assert_eq!(
            serde_json::to_value(reply.public_body(Some("t.k"))).expect("json")["statusToken"],
            "t.k"
        );
        // Over the RPC the reference travels whole.
        let json = serde_json::to_string(&reply).expect("json");
        assert_eq!(
            serde_json::from_str::<Accepted>(&json)
                .expect("parse")
                .signup(),
            Some(&signup)
        );
    }

    #[test]
    fn a_failed_reply_round_trips_with_its_retry_after() {
        let reply: SendReply = Err(ApiError::Busy {
            retry_after_secs: 7,
        });
        let json = serde_json::to_string(&reply).expect("json");
        assert_eq!(
            serde_json::from_str::<SendReply>(&json).expect("parse"),
            reply
        );
    }
}
