//! A signup after the gate took it: its status (queued, sent, verified, expired, rejected,
//! dropped), when SES's identity is checked next, the human confirmation, and whether its
//! identity may and must be deleted. Pure: every function takes the time.
//!
//! Invariants:
//! - a sent signup is checked on a schedule that backs off as it ages ([`check_gap_ms`]), with a
//!   last check at the link's expiry, and is `expired` if that check does not find it verified;
//! - an identity SES does not list counts as pending (the SES docs disagree on whether the send
//!   creates it);
//! - an identity is deleted only if a check after this Worker's send saw it unverified or absent
//!   (`owned`): so an identity that was verified before the signup (the From address, an
//!   operator's own address) is never this Worker's to delete;
//! - each event is reported once: `verified` and `expired` when the status becomes final,
//!   `confirmed` when both a human confirmation and the verification are known.

use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::gate::webhook::{EventData, EventKind};

/// The first check of a sent signup, and the shortest gap between two checks.
pub const MIN_CHECK_GAP_MS: u64 = 5_000;
/// The longest gap between two checks.
pub const MAX_CHECK_GAP_MS: u64 = 15 * 60_000;
/// A signup is checked again after a fifth of its age (within the bounds above).
const CHECK_GAP_DIVISOR: u64 = 5;
/// `next_check_ms` of a signup whose check must come before every scheduled one.
pub const PRIORITY_CHECK: u64 = 0;
/// A signup's record is kept this long (a status token works for 7 days).
pub const RETENTION_MS: u64 = 8 * 24 * 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupState {
    Queued,
    Sent,
    Verified,
    Expired,
    Rejected,
    Dropped,
}

impl SignupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Verified => "verified",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Dropped => "dropped",
        }
    }
}

/// What is left to do about the signup's SES identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    /// Nothing yet: no final status.
    NotYet,
    /// Final, waiting for its webhook event to be delivered.
    AfterDelivery,
    /// To be deleted at the lowest priority.
    Due,
    Done,
    /// Not this Worker's to delete (seen verified before any check saw it pending), or clean-up
    /// is off, or there is no identity.
    Skipped,
}

/// One signup, keyed in storage by its address key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signup {
    pub email: EmailAddress,
    pub signed_up_ms: u64,
    pub state: SignupState,
    pub message_id: Option<String>,
    pub sent_ms: Option<u64>,
    pub verified_ms: Option<u64>,
    pub confirmed: bool,
    /// A check after the send saw the identity unverified or absent.
    pub owned: bool,
    /// When SES is asked next; `None` once the status is final.
    pub next_check_ms: Option<u64>,
    pub cleanup: Cleanup,
    /// Why it was dropped (`exhausted`, `expired`).
    pub reason: Option<String>,
}

/// What the gate's follow-up has done, for `GET /gate/stats` (kept in the gate state).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrackingCounters {
    /// `GetIdentityVerificationAttributes` calls answered, and those that failed.
    pub checks: u64,
    pub checks_failed: u64,
    pub verified: u64,
    pub confirmed: u64,
    pub expired: u64,
    /// `DeleteIdentity` calls that succeeded, and those that failed.
    pub identities_deleted: u64,
    pub deletes_failed: u64,
    /// Final signups whose identity was left alone (not ours, or clean-up off).
    pub cleanup_skipped: u64,
    pub webhooks_delivered: u64,
    pub webhook_attempts_failed: u64,
    pub webhooks_given_up: u64,
}

/// What a change to a signup calls for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Events to report, in order.
    pub events: Vec<EventKind>,
}

/// The wait before the next check of a signup sent at `sent_ms`, at `now_ms`.
pub fn check_gap_ms(sent_ms: u64, now_ms: u64) -> u64 {
    (now_ms.saturating_sub(sent_ms) / CHECK_GAP_DIVISOR).clamp(MIN_CHECK_GAP_MS, MAX_CHECK_GAP_MS)
}

impl Signup {
    /// A signup the gate just took, not sent yet.
    pub fn queued(email: &EmailAddress, now_ms: u64) -> Self {
        Self {
            email: email.clone(),
            signed_up_ms: now_ms,
            state: SignupState::Queued,
            message_id: None,
            sent_ms: None,
            verified_ms: None,
            confirmed: false,
            owned: false,
            next_check_ms: None,
            cleanup: Cleanup::NotYet,
            reason: None,
        }
    }

    /// SES took the send at `now_ms`: first check after [`MIN_CHECK_GAP_MS`].
    pub fn sent(&mut self, message_id: Option<String>, now_ms: u64) {
        self.state = SignupState::Sent;
        self.message_id = message_id;
        self.sent_ms = Some(now_ms);
        self.next_check_ms = Some(now_ms + MIN_CHECK_GAP_MS);
    }

    /// The send was refused (`Rejected`) or given up (`Dropped` with `reason`).
    pub fn failed(&mut self, state: SignupState, reason: Option<&str>) -> Effects {
        self.state = state;
        self.reason = reason.map(str::to_string);
        self.next_check_ms = None;
        self.cleanup = Cleanup::Skipped;
        let kind = if state == SignupState::Rejected {
            EventKind::Rejected
        } else {
            EventKind::Dropped
        };
        Effects { events: vec![kind] }
    }

    /// SES's `VerificationStatus` for the identity at `now_ms` (`None`: not listed).
    pub fn checked(
        &mut self,
        status: Option<&str>,
        now_ms: u64,
        link_ttl_ms: u64,
        cleanup_on: bool,
        webhook_on: bool,
    ) -> Effects {
        if self.state != SignupState::Sent {
            return Effects::default();
        }
        let sent = self.sent_ms.unwrap_or(self.signed_up_ms);
        let mut events = Vec::new();
        if status == Some("Success") {
            self.state = SignupState::Verified;
            self.verified_ms = Some(now_ms);
            events.push(EventKind::Verified);
            if self.confirmed {
                events.push(EventKind::Confirmed);
            }
        } else {
            self.owned = true;
            // `Failed`: SES gave up on the link; otherwise pending until the link expires.
            if status == Some("Failed") || now_ms >= sent + link_ttl_ms {
                self.state = SignupState::Expired;
                events.push(EventKind::Expired);
            } else {
                let next = now_ms + check_gap_ms(sent, now_ms);
                self.next_check_ms = Some(next.min(sent + link_ttl_ms));
                return Effects { events };
            }
        }
        self.next_check_ms = None;
        self.cleanup = match (self.owned && cleanup_on, webhook_on) {
            (false, _) => Cleanup::Skipped,
            (true, true) => Cleanup::AfterDelivery,
            (true, false) => Cleanup::Due,
        };
        Effects { events }
    }

    /// A person pressed the confirmation button. Returns the events, and whether SES should be
    /// asked about the identity at once.
    pub fn confirm(&mut self) -> (Effects, bool) {
        if self.confirmed {
            return (Effects::default(), false);
        }
        self.confirmed = true;
        match self.state {
            SignupState::Verified => (
                Effects {
                    events: vec![EventKind::Confirmed],
                },
                false,
            ),
            SignupState::Sent => {
                self.next_check_ms = Some(PRIORITY_CHECK);
                (Effects::default(), true)
            }
            _ => (Effects::default(), false),
        }
    }

    /// The facts an event about this signup reports.
    pub fn event_data(&self) -> EventData<'_> {
        EventData {
            email: self.email.as_str(),
            message_id: self.message_id.as_deref(),
            verified_ms: self.verified_ms,
            confirmed: self.confirmed,
            reason: self.reason.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 24 * 3_600_000;

    fn sent_at(now: u64) -> Signup {
        let mut signup = Signup::queued(&EmailAddress::parse("a@b.io").expect("valid"), now);
        signup.sent(Some("m-1".into()), now);
        signup
    }

    #[test]
    fn checks_back_off_from_five_seconds_to_fifteen_minutes_as_a_signup_ages() {
        assert_eq!(check_gap_ms(0, 0), MIN_CHECK_GAP_MS);
        assert_eq!(check_gap_ms(0, 60_000), 12_000);
        assert_eq!(check_gap_ms(0, 3_600_000), 720_000);
        assert_eq!(check_gap_ms(0, 10 * 3_600_000), MAX_CHECK_GAP_MS);
        let mut signup = sent_at(0);
        assert_eq!(signup.next_check_ms, Some(MIN_CHECK_GAP_MS));
        let mut checks = 0;
        let mut now = MIN_CHECK_GAP_MS;
        while signup.state == SignupState::Sent {
            signup.checked(Some("Pending"), now, TTL, true, false);
            checks += 1;
            if let Some(next) = signup.next_check_ms {
                assert!(next > now && next <= TTL, "{next}");
                now = next;
            }
        }
        assert_eq!(signup.state, SignupState::Expired);
        assert_eq!(now, TTL, "the last check is at the link's expiry");
        assert!((100..200).contains(&checks), "{checks} checks in a day");
    }

    #[test]
    fn an_identity_not_listed_counts_as_pending_and_makes_it_ours() {
        let mut signup = sent_at(0);
        let effects = signup.checked(None, 5_000, TTL, true, false);
        assert_eq!(effects.events, []);
        assert_eq!(signup.state, SignupState::Sent);
        assert!(signup.owned);
        assert_eq!(signup.next_check_ms, Some(10_000));
    }

    #[test]
    fn a_verified_identity_we_saw_pending_is_reported_then_deleted() {
        let mut signup = sent_at(0);
        signup.checked(Some("Pending"), 5_000, TTL, true, true);
        let effects = signup.checked(Some("Success"), 10_000, TTL, true, true);
        assert_eq!(effects.events, [EventKind::Verified]);
        assert_eq!(signup.state, SignupState::Verified);
        assert_eq!(signup.verified_ms, Some(10_000));
        assert_eq!(signup.next_check_ms, None);
        assert_eq!(signup.cleanup, Cleanup::AfterDelivery);
        let mut without_webhook = sent_at(0);
        without_webhook.checked(None, 5_000, TTL, true, false);
        without_webhook.checked(Some("Success"), 10_000, TTL, true, false);
        assert_eq!(without_webhook.cleanup, Cleanup::Due);
    }

    #[test]
    fn an_identity_verified_before_any_check_saw_it_pending_is_never_deleted() {
        let mut signup = sent_at(0);
        let effects = signup.checked(Some("Success"), 5_000, TTL, true, false);
        assert_eq!(effects.events, [EventKind::Verified]);
        assert_eq!(signup.cleanup, Cleanup::Skipped);
    }

    #[test]
    fn with_clean_up_off_nothing_is_deleted() {
        let mut signup = sent_at(0);
        signup.checked(None, 5_000, TTL, false, false);
        signup.checked(Some("Success"), 10_000, TTL, false, false);
        assert_eq!(signup.cleanup, Cleanup::Skipped);
    }

    #[test]
    fn a_link_unclicked_at_its_expiry_or_failed_by_ses_is_expired_and_cleaned_up() {
        let mut signup = sent_at(0);
        let effects = signup.checked(Some("Pending"), TTL, TTL, true, false);
        assert_eq!(effects.events, [EventKind::Expired]);
        assert_eq!(signup.state, SignupState::Expired);
        assert_eq!(signup.cleanup, Cleanup::Due);
        let mut failed = sent_at(0);
        assert_eq!(
            failed
                .checked(Some("Failed"), 5_000, TTL, true, false)
                .events,
            [EventKind::Expired]
        );
        // A final status is never reported again.
        assert_eq!(
            failed.checked(Some("Success"), 6_000, TTL, true, false),
            Effects::default()
        );
    }

    #[test]
    fn a_confirmation_before_detection_asks_for_a_check_and_is_reported_with_the_verification() {
        let mut signup = sent_at(0);
        assert_eq!(signup.confirm(), (Effects::default(), true));
        assert_eq!(signup.next_check_ms, Some(PRIORITY_CHECK));
        assert_eq!(signup.confirm(), (Effects::default(), false), "once");
        let effects = signup.checked(Some("Success"), 1_000, TTL, true, false);
        assert_eq!(effects.events, [EventKind::Verified, EventKind::Confirmed]);
        assert!(signup.event_data().confirmed);
    }

    #[test]
    fn a_confirmation_after_detection_is_reported_at_once() {
        let mut signup = sent_at(0);
        signup.checked(Some("Success"), 5_000, TTL, true, false);
        let (effects, check) = signup.confirm();
        assert_eq!(effects.events, [EventKind::Confirmed]);
        assert!(!check);
    }

    #[test]
    fn a_refused_or_dropped_signup_reports_its_reason_and_owns_no_identity() {
        let mut signup = Signup::queued(&EmailAddress::parse("a@b.io").expect("valid"), 0);
        assert_eq!(
            signup
                .failed(SignupState::Dropped, Some("exhausted"))
                .events,
            [EventKind::Dropped]
        );
        assert_eq!(signup.event_data().reason, Some("exhausted"));
        assert_eq!(signup.cleanup, Cleanup::Skipped);
        let mut rejected = Signup::queued(&EmailAddress::parse("a@b.io").expect("valid"), 0);
        assert_eq!(
            rejected.failed(SignupState::Rejected, None).events,
            [EventKind::Rejected]
        );
    }
}
