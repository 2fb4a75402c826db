//! The SES identities the gate's sends touch, one record per exact address (SES keys an email
//! identity by the address as sent, not by the mailbox the limits use): who created it, and what
//! is left to do about it. Also the snapshot of the email identities that existed before the
//! gate's sends (`ListIdentities`). Pure: every function takes the time.
//!
//! Invariants:
//! - an identity is deleted only if the gate's own send created it ([`Owner::Ours`]): it was in
//!   no snapshot taken before the send, or (before the first snapshot) the first check after the
//!   send saw it pending or absent; a protected address (the From address, `IDENTITY_KEEP`) or
//!   any identity that existed before is never the gate's;
//! - ownership is decided when the signup is tracked, before its send leaves, so a snapshot
//!   page that lists the new identity later cannot make it look older than the send;
//! - a signup replaced by another address of the same mailbox hands nothing over: its
//!   identity keeps its own record and its clean-up duty;
//! - clean-up is bounded: a delete that fails is retried later with a growing gap, and given up
//!   after [`MAX_CLEANUP_FAILURES`] tries, so an undeletable identity never blocks the rest.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use signup_verify_domain::email::EmailAddress;

/// The purpose label of the identity key (see [`identity_key`]).
const IDENTITY_KEY_LABEL: &[u8] = b"signup-verify/v2/identity-key\0";
/// A snapshot older than this is taken again (at the lowest priority): an identity the operator
/// creates by hand is unknown to the gate for at most this long (`IDENTITY_KEEP` closes the
/// gap). One call per 1,000 identities.
pub const SNAPSHOT_EVERY_MS: u64 = 15 * 60_000;
/// A delete that failed waits this long, doubled at each failure, at most [`MAX_CLEANUP_GAP_MS`].
const FIRST_CLEANUP_GAP_MS: u64 = 60_000;
const MAX_CLEANUP_GAP_MS: u64 = 3_600_000;
/// Deletes tried for one identity before it is given up (logged and counted).
pub const MAX_CLEANUP_FAILURES: u32 = 8;

/// Who created the identity in the SES account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// The gate's send created it: the gate deletes it when the signup is over.
    Ours,
    /// It existed before the gate's send, or is protected: never deleted.
    NotOurs,
    /// No snapshot existed at the send: the first check decides (pending or absent: ours),
    /// made before any delete if the signup ended before its first check.
    Unknown,
}

/// What is left to do about an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    /// Its signup is still going on.
    NotYet,
    /// Its signup is over; waiting for the final webhook event to be delivered.
    AfterDelivery,
    /// To be deleted at the lowest priority, at `next_cleanup_ms`.
    Due,
    Done,
    /// Not the gate's to delete, or clean-up is off.
    Skipped,
    /// Deletes kept failing: left in the account (counted, logged).
    GivenUp,
}

/// One SES identity the gate sent to, keyed by [`identity_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The address as sent (what `DeleteIdentity` names).
    pub email: EmailAddress,
    pub owner: Owner,
    /// The last send to it.
    pub sent_ms: u64,
    pub cleanup: Cleanup,
    /// When the delete is due (`Due` only); the index clean-up is served in.
    pub next_cleanup_ms: Option<u64>,
    pub cleanup_failures: u32,
    /// When the gate deleted it (`Done`): a snapshot taken later that lists it again means
    /// someone else made it since.
    #[serde(default)]
    pub deleted_ms: Option<u64>,
    /// The last send created it: it did not exist before, so a check that finds it verified
    /// saw a click on a link of that send (not a verification from before it).
    #[serde(default)]
    pub fresh: bool,
}

/// The record key of an identity: hex HMAC-SHA256, under the gate's key and a purpose label, of
/// the address lowercased (so two spellings SES might treat as one identity share a record).
pub fn identity_key(secret: &[u8], address: &str) -> String {
    hex::encode(identity_mac(secret, address))
}

fn identity_mac(secret: &[u8], address: &str) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(IDENTITY_KEY_LABEL);
    mac.update(address.to_ascii_lowercase().as_bytes());
    mac.finalize().into_bytes().into()
}

/// The snapshot's entry for an address: the first 8 bytes of its identity key.
fn fingerprint(secret: &[u8], address: &str) -> u64 {
    let mac = identity_mac(secret, address);
    u64::from_be_bytes([
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7],
    ])
}

/// The email identities that existed in the account, as listed by `ListIdentities`, minus
/// those the gate itself created. Kept as keyed fingerprints, never addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When its listing started: every identity it holds existed by the end of the listing.
    pub taken_ms: u64,
    /// Sorted, without repeats (a plain vector: smaller in wasm than a tree, and read whole).
    fingerprints: Vec<u64>,
}

impl Snapshot {
    pub fn new(taken_ms: u64) -> Self {
        Self {
            taken_ms,
            fingerprints: Vec::new(),
        }
    }

    /// Adds a listed identity (call [`Snapshot::seal`] after the last).
    pub fn add(&mut self, secret: &[u8], address: &str) {
        self.fingerprints.push(fingerprint(secret, address));
    }

    /// Sorts and dedupes the fingerprints once the listing is complete.
    pub fn seal(&mut self) {
        self.fingerprints.sort_unstable();
        self.fingerprints.dedup();
    }

    pub fn contains(&self, secret: &[u8], email: &EmailAddress) -> bool {
        self.fingerprints
            .binary_search(&fingerprint(secret, email.as_str()))
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Whether a new listing is due at `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms >= self.taken_ms + SNAPSHOT_EVERY_MS
    }
}

impl Identity {
    /// The record after a send to `email` at `now_ms`, given the record before it (if any),
    /// whether the address is protected, and the snapshot (if one was ever taken).
    pub fn at_send(
        secret: &[u8],
        email: &EmailAddress,
        previous: Option<&Identity>,
        protected: bool,
        snapshot: Option<&Snapshot>,
        now_ms: u64,
    ) -> Self {
        let owner = if protected {
            Owner::NotOurs
        } else {
            match previous {
                // The gate deleted its own identity: this send creates it again, unless a
                // snapshot taken since lists it (someone else made it meanwhile).
                // Without any snapshot, who made it since is unknown: the first check decides.
                Some(p) if p.cleanup == Cleanup::Done => match (snapshot, p.deleted_ms) {
                    (None, _) => Owner::Unknown,
                    (Some(s), Some(deleted))
                        if s.taken_ms > deleted && s.contains(secret, email) =>
                    {
                        Owner::NotOurs
                    }
                    _ => Owner::Ours,
                },
                Some(p) => p.owner,
                None => match snapshot {
                    Some(s) if s.contains(secret, email) => Owner::NotOurs,
                    Some(_) => Owner::Ours,
                    None => Owner::Unknown,
                },
            }
        };
        let fresh = owner == Owner::Ours && previous.is_none_or(|p| p.cleanup == Cleanup::Done);
        Self {
            email: email.clone(),
            owner,
            fresh,
            sent_ms: now_ms,
            // A new send to it: any clean-up still waiting would kill the new link.
            cleanup: Cleanup::NotYet,
            next_cleanup_ms: None,
            cleanup_failures: 0,
            deleted_ms: None,
        }
    }

    /// Whether the account may hold this identity because of a send of the gate's that is
    /// still the gate's to clean up (a listing leaves such identities out of the snapshot).
    pub fn maybe_from_a_live_send(&self) -> bool {
        self.owner != Owner::NotOurs && self.cleanup != Cleanup::Done
    }

    /// The send that made this record never left, or SES refused it: no identity came of it,
    /// so there is nothing to delete.
    pub fn never_sent(&mut self) {
        if self.cleanup == Cleanup::NotYet {
            self.cleanup = Cleanup::Skipped;
        }
    }

    /// What a status check saw (`None`: SES does not list it). Returns whether the record
    /// changed (only an unknown owner is decided here).
    pub fn observed(&mut self, status: Option<&str>) -> bool {
        if self.owner != Owner::Unknown {
            return false;
        }
        self.owner = match status {
            Some("Success") => Owner::NotOurs,
            _ => Owner::Ours,
        };
        // Pending or absent after the send: a later success is a click.
        self.fresh = self.owner == Owner::Ours;
        true
    }

    /// Its signup is over (verified, expired, replaced) at `now_ms`: the delete is due now,
    /// after the final event's delivery, or never. An identity whose owner is still unknown
    /// (its signup ended before any check) is due too: the clean-up asks SES about it first
    /// ([`Identity::must_check_first`]).
    pub fn finish(&mut self, cleanup_on: bool, after_delivery: bool, now_ms: u64) {
        if self.cleanup != Cleanup::NotYet {
            return;
        }
        let may_be_ours = matches!(self.owner, Owner::Ours | Owner::Unknown);
        self.cleanup = match (may_be_ours && cleanup_on, after_delivery) {
            (false, _) => Cleanup::Skipped,
            (true, true) => Cleanup::AfterDelivery,
            (true, false) => Cleanup::Due,
        };
        if self.cleanup == Cleanup::Due {
            self.next_cleanup_ms = Some(now_ms);
        }
    }

    /// Whether the clean-up must ask SES about it before deleting (its owner is unknown).
    pub fn must_check_first(&self) -> bool {
        self.owner == Owner::Unknown
    }

    /// The clean-up's check decided the owner: a delete stays due only if it is ours.
    pub fn decided(&mut self, status: Option<&str>) {
        self.observed(status);
        if self.owner != Owner::Ours && self.cleanup == Cleanup::Due {
            self.cleanup = Cleanup::Skipped;
            self.next_cleanup_ms = None;
        }
    }

    /// Put back as it was before a send that was taken back: a clean-up that waited for an event
    /// no longer in the outbox (delivered meanwhile) is due now.
    pub fn restored(mut self, event_waiting: bool, now_ms: u64) -> Self {
        if self.cleanup == Cleanup::AfterDelivery && !event_waiting {
            self.cleanup = Cleanup::Due;
            self.next_cleanup_ms = Some(now_ms);
        }
        self
    }

    /// The final event was delivered (or given up): the delete may go ahead.
    pub fn release(&mut self, now_ms: u64) -> bool {
        if self.cleanup != Cleanup::AfterDelivery {
            return false;
        }
        self.cleanup = Cleanup::Due;
        self.next_cleanup_ms = Some(now_ms);
        true
    }

    pub fn deleted(&mut self, now_ms: u64) {
        self.cleanup = Cleanup::Done;
        self.next_cleanup_ms = None;
        self.deleted_ms = Some(now_ms);
    }

    /// A delete failed at `now_ms`: tried again later, or given up. Returns whether it was
    /// given up.
    pub fn delete_failed(&mut self, now_ms: u64) -> bool {
        self.cleanup_failures += 1;
        if self.cleanup_failures >= MAX_CLEANUP_FAILURES {
            self.cleanup = Cleanup::GivenUp;
            self.next_cleanup_ms = None;
            return true;
        }
        let gap = FIRST_CLEANUP_GAP_MS
            .saturating_mul(1 << (self.cleanup_failures - 1).min(16))
            .min(MAX_CLEANUP_GAP_MS);
        self.next_cleanup_ms = Some(now_ms + gap);
        false
    }

    /// Whether the record still matters (a signup may still use it, or a delete is pending).
    pub fn has_work(&self) -> bool {
        matches!(
            self.cleanup,
            Cleanup::NotYet | Cleanup::AfterDelivery | Cleanup::Due
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"the gate's own address key, 32 b";

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid")
    }

    fn snapshot_of(addresses: &[&str]) -> Snapshot {
        let mut snapshot = Snapshot::new(0);
        for address in addresses {
            snapshot.add(SECRET, address);
        }
        snapshot.seal();
        snapshot
    }

    #[test]
    fn an_identity_in_the_snapshot_or_protected_is_never_ours_and_a_new_one_is() {
        let snapshot = snapshot_of(&["noreply@example.com"]);
        let at = |address: &str, protected| {
            Identity::at_send(SECRET, &email(address), None, protected, Some(&snapshot), 1).owner
        };
        assert_eq!(at("noreply@example.com", false), Owner::NotOurs);
        assert_eq!(
            at("NoReply@example.com", false),
            Owner::NotOurs,
            "spelled otherwise"
        );
        assert_eq!(at("noreply+x@example.com", false), Owner::Ours);
        assert_eq!(at("admin@example.com", true), Owner::NotOurs);
        let without_snapshot =
            Identity::at_send(SECRET, &email("a@b.io"), None, false, None, 1).owner;
        assert_eq!(without_snapshot, Owner::Unknown);
    }

    #[test]
    fn only_an_identity_the_send_created_is_fresh() {
        let empty = snapshot_of(&[]);
        let new = Identity::at_send(SECRET, &email("a@b.io"), None, false, Some(&empty), 1);
        assert!(new.fresh);
        let again = Identity::at_send(SECRET, &email("a@b.io"), Some(&new), false, None, 2);
        assert!(!again.fresh, "it existed from the first send");
        let theirs = Identity::at_send(
            SECRET,
            &email("a@b.io"),
            None,
            false,
            Some(&snapshot_of(&["a@b.io"])),
            1,
        );
        assert!(!theirs.fresh);
        let mut unknown = Identity::at_send(SECRET, &email("a@b.io"), None, false, None, 1);
        assert!(!unknown.fresh);
        unknown.observed(None);
        assert!(unknown.fresh);
    }

    #[test]
    fn a_resend_keeps_the_owner_unless_the_gate_deleted_its_own_identity_before() {
        let snapshot = snapshot_of(&[]);
        let mut first =
            Identity::at_send(SECRET, &email("a@b.io"), None, false, Some(&snapshot), 1);
        assert_eq!(first.owner, Owner::Ours);
        first.finish(true, false, 5);
        assert_eq!(
            (first.cleanup, first.next_cleanup_ms),
            (Cleanup::Due, Some(5))
        );
        // Sent again before the delete: the delete must not kill the new link.
        let again = Identity::at_send(SECRET, &email("a@b.io"), Some(&first), false, None, 9);
        assert_eq!((again.owner, again.cleanup), (Owner::Ours, Cleanup::NotYet));
        // An identity that existed before stays not ours however often it is sent to.
        let theirs = snapshot_of(&["c@d.io"]);
        let mut old = Identity::at_send(SECRET, &email("c@d.io"), None, false, Some(&theirs), 1);
        old.finish(true, false, 2);
        assert_eq!(old.cleanup, Cleanup::Skipped);
        let resent = Identity::at_send(SECRET, &email("c@d.io"), Some(&old), false, None, 3);
        assert_eq!(resent.owner, Owner::NotOurs);
        // Deleted by the gate, then sent again: the send made it again, unless a snapshot
        // taken after the delete lists it (the operator made it since).
        let mut deleted = first.clone();
        deleted.deleted(10);
        let mut before_delete = snapshot_of(&["a@b.io"]);
        before_delete.taken_ms = 9;
        let remade = Identity::at_send(
            SECRET,
            &email("a@b.io"),
            Some(&deleted),
            false,
            Some(&before_delete),
            20,
        );
        assert_eq!(remade.owner, Owner::Ours);
        let mut after_delete = snapshot_of(&["a@b.io"]);
        after_delete.taken_ms = 11;
        let theirs_now = Identity::at_send(
            SECRET,
            &email("a@b.io"),
            Some(&deleted),
            false,
            Some(&after_delete),
            20,
        );
        assert_eq!(theirs_now.owner, Owner::NotOurs);
        assert!(!deleted.maybe_from_a_live_send());
    }

    #[test]
    fn without_a_snapshot_the_first_check_decides_and_a_later_one_changes_nothing() {
        let mut pending = Identity::at_send(SECRET, &email("a@b.io"), None, false, None, 1);
        assert!(pending.observed(Some("Pending")));
        assert_eq!(pending.owner, Owner::Ours);
        assert!(!pending.observed(Some("Success")));
        assert_eq!(pending.owner, Owner::Ours);
        let mut absent = Identity::at_send(SECRET, &email("a@b.io"), None, false, None, 1);
        absent.observed(None);
        assert_eq!(absent.owner, Owner::Ours);
        let mut verified = Identity::at_send(SECRET, &email("a@b.io"), None, false, None, 1);
        verified.observed(Some("Success"));
        assert_eq!(verified.owner, Owner::NotOurs);
        verified.finish(true, false, 2);
        assert_eq!(verified.cleanup, Cleanup::Skipped);
        // A signup that ended before its first check: the clean-up asks first.
        let mut undecided = Identity::at_send(SECRET, &email("a@b.io"), None, false, None, 1);
        undecided.finish(true, false, 2);
        assert_eq!(undecided.cleanup, Cleanup::Due);
        assert!(undecided.must_check_first());
        let mut verified_then = undecided.clone();
        verified_then.decided(Some("Success"));
        assert_eq!(
            (verified_then.owner, verified_then.cleanup),
            (Owner::NotOurs, Cleanup::Skipped),
            "verified when first seen: maybe the operator's, never deleted"
        );
        undecided.decided(Some("Pending"));
        assert_eq!(
            (undecided.owner, undecided.cleanup),
            (Owner::Ours, Cleanup::Due)
        );
        assert!(!undecided.must_check_first());
    }

    #[test]
    fn an_identity_is_deleted_after_its_event_is_delivered_and_only_once_released() {
        let mut identity = Identity::at_send(
            SECRET,
            &email("a@b.io"),
            None,
            false,
            Some(&Snapshot::new(0)),
            1,
        );
        identity.finish(true, true, 5);
        assert_eq!(identity.cleanup, Cleanup::AfterDelivery);
        assert!(identity.has_work());
        assert!(identity.release(7));
        assert_eq!(
            (identity.cleanup, identity.next_cleanup_ms),
            (Cleanup::Due, Some(7))
        );
        assert!(!identity.release(8), "once");
        identity.deleted(9);
        assert!(!identity.has_work());
        let mut off = Identity::at_send(
            SECRET,
            &email("a@b.io"),
            None,
            false,
            Some(&Snapshot::new(0)),
            1,
        );
        off.finish(false, true, 5);
        assert_eq!(off.cleanup, Cleanup::Skipped);
    }

    #[test]
    fn a_delete_that_keeps_failing_backs_off_and_is_given_up() {
        let mut identity = Identity::at_send(
            SECRET,
            &email("a@b.io"),
            None,
            false,
            Some(&Snapshot::new(0)),
            1,
        );
        identity.finish(true, false, 0);
        let mut gaps = Vec::new();
        let mut now = 0;
        while !identity.delete_failed(now) {
            let next = identity.next_cleanup_ms.expect("retried");
            gaps.push(next - now);
            now = next;
        }
        assert_eq!(gaps[..3], [60_000, 120_000, 240_000]);
        assert!(gaps.iter().all(|g| *g <= MAX_CLEANUP_GAP_MS));
        assert_eq!(gaps.len() as u32, MAX_CLEANUP_FAILURES - 1);
        assert_eq!(identity.cleanup, Cleanup::GivenUp);
        assert!(!identity.has_work());
    }

    #[test]
    fn keys_are_per_address_case_insensitive_and_differ_from_the_mailbox_key() {
        let a = identity_key(SECRET, "Jane@example.com");
        assert_eq!(a, identity_key(SECRET, "jane@example.com"));
        assert_ne!(a, identity_key(SECRET, "jane+x@example.com"));
        assert_ne!(
            a,
            crate::cooldown::address_key(SECRET, &email("jane@example.com"))
        );
    }
}
