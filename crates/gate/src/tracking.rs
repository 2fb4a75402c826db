//! A signup after the gate took it: its status (queued, sent, verified, expired, rejected,
//! dropped), when SES's identity is checked next, and the human confirmation. Its SES identity
//! (ownership, clean-up) is the `identities` record of its exact address. Pure: every function
//! takes the time.
//!
//! Invariants:
//! - a sent signup is checked on a schedule that backs off as it ages ([`check_gap_ms`]), with a
//!   last check at the link's expiry, and is `expired` if that check does not find it verified;
//!   if SES cannot be asked at all, it is expired [`UNCHECKED_MARGIN_MS`] after the link's
//!   expiry, so no row is checked for ever;
//! - an identity SES does not list counts as pending (the SES docs disagree on whether the send
//!   creates it);
//! - a confirmation counts only once the link was opened (the signup is `verified`): one that
//!   comes before is refused and recorded nowhere;
//! - each event is reported once: `verified` and `expired` when the status becomes final,
//!   `confirmed` when a confirmation of a verified signup is recorded, `dropped` (`replaced`)
//!   when another signup of the same mailbox takes its place.

use serde::{Deserialize, Serialize};
use signup_verify_domain::status_token::SignupRef;

use crate::webhook::EventData;
use crate::webhook::EventKind;
use signup_verify_domain::email::EmailAddress;

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
/// A signup SES could not be asked about is expired this long after its link's expiry.
pub const UNCHECKED_MARGIN_MS: u64 = 3_600_000;
/// A confirmation asks SES at once at most this often per signup (pressing the button again
/// and again costs at most one call per gap).
pub const CONFIRM_CHECK_GAP_MS: u64 = 2_000;

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

    /// Nothing more will happen to it (but a confirmation of a verified signup).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Sent)
    }
}

/// One signup, keyed in storage by its mailbox key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signup {
    pub email: EmailAddress,
    pub signed_up_ms: u64,
    pub state: SignupState,
    pub message_id: Option<String>,
    pub sent_ms: Option<u64>,
    pub verified_ms: Option<u64>,
    pub confirmed: bool,
    /// When SES is asked next; `None` once the status is final.
    pub next_check_ms: Option<u64>,
    /// Why it was dropped (`exhausted`, `expired`, `replaced`) or expired unchecked.
    pub reason: Option<String>,
    /// Random per signup: its credentials name it (empty in rows made before nonces, which no
    /// credential names).
    #[serde(default)]
    pub nonce: String,
    /// When a confirmation last asked SES about it at once.
    #[serde(default)]
    pub confirm_check_ms: Option<u64>,
    /// A check after the send saw the identity unverified or absent (the first version called
    /// this `owned`): a later success is a click.
    #[serde(default, alias = "owned")]
    pub seen_unverified: bool,
    /// It replaced another signup of the mailbox whose link was still open, by a request that
    /// did not hold that signup's credential.
    #[serde(default)]
    pub contested: bool,
    /// Its credentials were handed out (a `200`/`202` answer with tokens on): only then can a
    /// later signup of the mailbox be told apart as a stranger's.
    #[serde(default)]
    pub issued: bool,
    /// Handed over to another region's gate while this one stayed paused: the signup as that
    /// gate holds it now (its region named). Status and confirmation are answered there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<SignupRef>,
    /// Taken over from another region's gate: `<region>/<its nonce>`, so that the same hand-over
    /// asked twice (the giver restarted before it recorded the first) is taken once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_from: Option<String>,
}

/// What the gate's follow-up has done, for `GET /gate/stats` (kept in the gate state).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrackingCounters {
    /// `GetIdentityVerificationAttributes` calls answered, and those that failed.
    pub checks: u64,
    pub checks_failed: u64,
    /// Signups those checks answered for (one call covers up to 100).
    pub signups_checked: u64,
    pub verified: u64,
    pub confirmed: u64,
    /// Confirmations refused because the link had not been opened yet.
    pub confirmations_refused: u64,
    pub expired: u64,
    /// Signups replaced by a newer signup of the same mailbox.
    pub replaced: u64,
    /// `DeleteIdentity` calls that succeeded, and those that failed.
    pub identities_deleted: u64,
    pub deletes_failed: u64,
    /// Identities whose deletes kept failing, left in the account.
    pub cleanup_given_up: u64,
    /// Final signups whose identity was left alone (not ours, or clean-up off).
    pub cleanup_skipped: u64,
    /// `ListIdentities` pages read, and complete snapshots taken.
    pub list_pages: u64,
    pub snapshots_taken: u64,
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
    /// When a new object (after a restart) first checks this signup, whose row holds `row_ms`:
    /// that time if it is still to come, or a confirmation's priority; otherwise (the row keeps
    /// the time of its last change of status, and later checks moved only in memory) one check
    /// gap from `now_ms`, as a check made now would have set it, and never after the link
    /// expires. So a restart neither rechecks every pending signup at once nor delays one by
    /// more than the gap the detection delay already allows.
    pub fn resumed_check_at(&self, row_ms: u64, now_ms: u64, link_ttl_ms: u64) -> u64 {
        if row_ms > now_ms || row_ms == PRIORITY_CHECK {
            return row_ms;
        }
        let sent = self.sent_ms.unwrap_or(self.signed_up_ms);
        (now_ms + check_gap_ms(sent, now_ms)).min(sent.saturating_add(link_ttl_ms).max(row_ms))
    }
}

/// What a confirmation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Recorded now, with its event.
    Recorded(Effects),
    /// Recorded before: nothing new.
    Already,
    /// Sent, not verified yet: SES may not have been asked since the click.
    NotYetSeen,
    /// Queued, expired, rejected or dropped: the link was never opened and never will be.
    Refused,
}

impl Signup {
    /// A signup the gate just took, not sent yet, with its random `nonce`.
    pub fn queued(email: &EmailAddress, now_ms: u64, nonce: String) -> Self {
        Self {
            email: email.clone(),
            signed_up_ms: now_ms,
            state: SignupState::Queued,
            message_id: None,
            sent_ms: None,
            verified_ms: None,
            confirmed: false,
            next_check_ms: None,
            reason: None,
            nonce,
            confirm_check_ms: None,
            seen_unverified: false,
            contested: false,
            issued: false,
            moved_to: None,
            handed_from: None,
        }
    }

    /// SES took the send at `now_ms`: first check after [`MIN_CHECK_GAP_MS`].
    pub fn sent(&mut self, message_id: Option<String>, now_ms: u64) {
        self.state = SignupState::Sent;
        self.message_id = message_id;
        self.sent_ms = Some(now_ms);
        self.next_check_ms = Some(now_ms + MIN_CHECK_GAP_MS);
    }

    /// The send was refused (`Rejected`), given up or replaced (`Dropped` with `reason`).
    pub fn failed(&mut self, state: SignupState, reason: Option<&str>) -> Effects {
        self.state = state;
        self.reason = reason.map(str::to_string);
        self.next_check_ms = None;
        let kind = if state == SignupState::Rejected {
            EventKind::Rejected
        } else {
            EventKind::Dropped
        };
        Effects { events: vec![kind] }
    }

    /// SES's `VerificationStatus` for the identity at `now_ms` (`None`: not listed).
    /// `fresh`: the send created the identity (see `identities`). A success counts as a click
    /// only on a fresh identity or after a check saw it unverified: an identity verified before
    /// the send proves nothing about this signup, which ends `expired` (`already_verified`).
    pub fn checked(
        &mut self,
        status: Option<&str>,
        now_ms: u64,
        link_ttl_ms: u64,
        fresh: bool,
    ) -> Effects {
        if self.state != SignupState::Sent {
            return Effects::default();
        }
        let sent = self.sent_ms.unwrap_or(self.signed_up_ms);
        let mut events = Vec::new();
        if status == Some("Success") && (fresh || self.seen_unverified) {
            self.state = SignupState::Verified;
            self.verified_ms = Some(now_ms);
            events.push(EventKind::Verified);
        } else if status == Some("Success") {
            self.state = SignupState::Expired;
            self.reason = Some("already_verified".into());
            events.push(EventKind::Expired);
        } else if status == Some("Failed") || now_ms >= sent + link_ttl_ms {
            // `Failed`: SES gave up on the link; otherwise pending until the link expires.
            self.state = SignupState::Expired;
            events.push(EventKind::Expired);
        } else {
            self.seen_unverified = true;
            let next = now_ms + check_gap_ms(sent, now_ms);
            self.next_check_ms = Some(next.min(sent + link_ttl_ms));
            return Effects { events };
        }
        self.next_check_ms = None;
        Effects { events }
    }

    /// SES could not be asked at `now_ms`: checked again at `retry_ms`, unless the link
    /// expired more than [`UNCHECKED_MARGIN_MS`] ago (then `expired`, reason `unchecked`).
    pub fn check_failed(&mut self, now_ms: u64, retry_ms: u64, link_ttl_ms: u64) -> Effects {
        if self.state != SignupState::Sent {
            return Effects::default();
        }
        let sent = self.sent_ms.unwrap_or(self.signed_up_ms);
        if now_ms >= sent + link_ttl_ms + UNCHECKED_MARGIN_MS {
            self.state = SignupState::Expired;
            self.reason = Some("unchecked".into());
            self.next_check_ms = None;
            return Effects {
                events: vec![EventKind::Expired],
            };
        }
        self.next_check_ms = Some(retry_ms);
        Effects::default()
    }

    /// A person pressed the confirmation button.
    pub fn confirm(&mut self) -> Confirmation {
        match self.state {
            SignupState::Verified if self.confirmed => Confirmation::Already,
            SignupState::Verified => {
                self.confirmed = true;
                Confirmation::Recorded(Effects {
                    events: vec![EventKind::Confirmed],
                })
            }
            SignupState::Sent => Confirmation::NotYetSeen,
            _ => Confirmation::Refused,
        }
    }

    /// A person says they opened the link: whether SES may be asked at once, at most once per
    /// [`CONFIRM_CHECK_GAP_MS`]; if so, the check also goes before every scheduled one. Presses
    /// within the gap change nothing (they cannot keep the sweep busy).
    pub fn check_first(&mut self, now_ms: u64) -> bool {
        if self.state != SignupState::Sent {
            return false;
        }
        let at_once = self
            .confirm_check_ms
            .is_none_or(|last| now_ms >= last + CONFIRM_CHECK_GAP_MS);
        if at_once {
            self.confirm_check_ms = Some(now_ms);
            self.next_check_ms = Some(PRIORITY_CHECK);
        }
        at_once
    }

    /// Whether its link may still be opened for it, or was opened and no one confirmed yet:
    /// replacing it without its credential makes the newer signup contested.
    pub fn is_open(&self, now_ms: u64, link_ttl_ms: u64) -> bool {
        let within = self.sent_ms.is_some_and(|sent| now_ms < sent + link_ttl_ms);
        within
            && (self.state == SignupState::Sent
                || (self.state == SignupState::Verified && !self.confirmed))
    }

    /// The facts an event about this signup reports.
    pub fn event_data(&self) -> EventData<'_> {
        EventData {
            email: self.email.as_str(),
            message_id: self.message_id.as_deref(),
            verified_ms: self.verified_ms,
            confirmed: self.confirmed,
            reason: self.reason.as_deref(),
            contested: self.contested,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_resumes_a_stale_check_one_gap_from_now_and_keeps_a_coming_or_priority_one() {
        let mut signup = Signup::queued(
            &EmailAddress::parse("r@example.com").expect("valid"),
            0,
            "n".into(),
        );
        signup.sent(None, 0);
        let ttl = 24 * 3_600_000;
        // Still to come, or a confirmation's priority: kept.
        assert_eq!(signup.resumed_check_at(90_000, 60_000, ttl), 90_000);
        assert_eq!(
            signup.resumed_check_at(PRIORITY_CHECK, 60_000, ttl),
            PRIORITY_CHECK
        );
        // Stale (the row kept its first check's time): one gap from now, by the signup's age.
        assert_eq!(
            signup.resumed_check_at(10_000, 600_000, ttl),
            600_000 + 120_000
        );
        assert_eq!(
            signup.resumed_check_at(10_000, 10 * 3_600_000, ttl),
            10 * 3_600_000 + MAX_CHECK_GAP_MS
        );
        // Never after the link expires (its last check), nor before the row's own time.
        assert_eq!(signup.resumed_check_at(10_000, ttl - 1_000, ttl), ttl);
        assert_eq!(signup.resumed_check_at(ttl, ttl + 5_000, ttl), ttl);
    }

    const TTL: u64 = 24 * 3_600_000;

    fn sent_at(now: u64) -> Signup {
        let mut signup = Signup::queued(
            &EmailAddress::parse("a@b.io").expect("valid"),
            now,
            "n".into(),
        );
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
            signup.checked(Some("Pending"), now, TTL, true);
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
    fn an_identity_not_listed_counts_as_pending() {
        let mut signup = sent_at(0);
        let effects = signup.checked(None, 5_000, TTL, true);
        assert_eq!(effects.events, []);
        assert_eq!(signup.state, SignupState::Sent);
        assert_eq!(signup.next_check_ms, Some(10_000));
    }

    #[test]
    fn a_verified_identity_is_reported_once_and_the_checks_stop() {
        let mut signup = sent_at(0);
        signup.checked(Some("Pending"), 5_000, TTL, true);
        let effects = signup.checked(Some("Success"), 10_000, TTL, true);
        assert_eq!(effects.events, [EventKind::Verified]);
        assert_eq!(signup.state, SignupState::Verified);
        assert_eq!(signup.verified_ms, Some(10_000));
        assert_eq!(signup.next_check_ms, None);
        assert_eq!(
            signup.checked(Some("Success"), 11_000, TTL, true),
            Effects::default()
        );
    }

    #[test]
    fn a_link_unclicked_at_its_expiry_or_failed_by_ses_is_expired() {
        let mut signup = sent_at(0);
        let effects = signup.checked(Some("Pending"), TTL, TTL, true);
        assert_eq!(effects.events, [EventKind::Expired]);
        assert_eq!(signup.state, SignupState::Expired);
        let mut failed = sent_at(0);
        assert_eq!(
            failed.checked(Some("Failed"), 5_000, TTL, true).events,
            [EventKind::Expired]
        );
        // A final status is never reported again.
        assert_eq!(
            failed.checked(Some("Success"), 6_000, TTL, true),
            Effects::default()
        );
    }

    #[test]
    fn a_signup_ses_cannot_be_asked_about_expires_an_hour_after_its_link() {
        let mut signup = sent_at(0);
        assert_eq!(signup.check_failed(5_000, 65_000, TTL), Effects::default());
        assert_eq!(signup.next_check_ms, Some(65_000));
        assert_eq!(
            signup.check_failed(
                TTL + UNCHECKED_MARGIN_MS - 1,
                TTL + UNCHECKED_MARGIN_MS + 59_999,
                TTL
            ),
            Effects::default()
        );
        let effects = signup.check_failed(TTL + UNCHECKED_MARGIN_MS, 0, TTL);
        assert_eq!(effects.events, [EventKind::Expired]);
        assert_eq!(
            (signup.state, signup.reason.as_deref(), signup.next_check_ms),
            (SignupState::Expired, Some("unchecked"), None)
        );
    }

    #[test]
    fn a_confirmation_counts_only_once_the_link_was_opened() {
        let mut signup = sent_at(0);
        assert_eq!(signup.confirm(), Confirmation::NotYetSeen);
        assert!(!signup.confirmed, "nothing is recorded before the click");
        assert!(signup.check_first(100));
        assert_eq!(signup.next_check_ms, Some(PRIORITY_CHECK));
        assert!(
            !signup.check_first(1_000),
            "pressed again at once: no second call"
        );
        assert!(signup.check_first(100 + CONFIRM_CHECK_GAP_MS));
        signup.checked(Some("Success"), 1_000, TTL, true);
        assert_eq!(
            signup.confirm(),
            Confirmation::Recorded(Effects {
                events: vec![EventKind::Confirmed]
            })
        );
        assert!(signup.event_data().confirmed);
        assert_eq!(signup.confirm(), Confirmation::Already);
        let mut queued = Signup::queued(
            &EmailAddress::parse("a@b.io").expect("valid"),
            0,
            "n".into(),
        );
        assert_eq!(queued.confirm(), Confirmation::Refused);
        let mut expired = sent_at(0);
        expired.checked(Some("Pending"), TTL, TTL, true);
        assert_eq!(expired.confirm(), Confirmation::Refused);
        assert!(!expired.confirmed);
    }

    #[test]
    fn a_refused_or_dropped_signup_reports_its_reason() {
        let mut signup = Signup::queued(
            &EmailAddress::parse("a@b.io").expect("valid"),
            0,
            "n".into(),
        );
        assert_eq!(
            signup
                .failed(SignupState::Dropped, Some("exhausted"))
                .events,
            [EventKind::Dropped]
        );
        assert_eq!(signup.event_data().reason, Some("exhausted"));
        let mut rejected = Signup::queued(
            &EmailAddress::parse("a@b.io").expect("valid"),
            0,
            "n".into(),
        );
        assert_eq!(
            rejected.failed(SignupState::Rejected, None).events,
            [EventKind::Rejected]
        );
    }

    #[test]
    fn an_identity_verified_before_the_send_proves_nothing_about_this_signup() {
        let mut signup = sent_at(0);
        let effects = signup.checked(Some("Success"), 5_000, TTL, false);
        assert_eq!(effects.events, [EventKind::Expired]);
        assert_eq!(
            (signup.state, signup.reason.as_deref()),
            (SignupState::Expired, Some("already_verified"))
        );
        // Seen unverified after the send, then verified: a click.
        let mut clicked = sent_at(0);
        clicked.checked(Some("Pending"), 5_000, TTL, false);
        assert_eq!(
            clicked.checked(Some("Success"), 10_000, TTL, false).events,
            [EventKind::Verified]
        );
        // A fresh identity verified at the first check: a quick click.
        let mut quick = sent_at(0);
        assert_eq!(
            quick.checked(Some("Success"), 5_000, TTL, true).events,
            [EventKind::Verified]
        );
    }

    #[test]
    fn rows_written_before_nonces_still_read_back_with_an_empty_one() {
        let old = r#"{"email":"a@b.io","signed_up_ms":1,"state":"sent","message_id":null,"sent_ms":1,"verified_ms":null,"confirmed":false,"owned":true,"next_check_ms":5,"cleanup":"not_yet","reason":null}"#;
        let signup: Signup = serde_json::from_str(old).expect("reads");
        assert_eq!(
            (signup.state, signup.nonce.as_str()),
            (SignupState::Sent, "")
        );
    }
}
