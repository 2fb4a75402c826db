//! The gate's follow-up of every signup it took: tracking rows, the identity records of the
//! addresses sent to, the detection sweep (`GetIdentityVerificationAttributes`, up to 100
//! identities a call), human confirmations, webhook delivery, identity clean-up
//! (`DeleteIdentity`) and the identity snapshot (`ListIdentities`).
//!
//! Invariants:
//! - every SES call here takes a slot from the same reservations as the sends, and only when no
//!   signup is queued or being sent directly: sends come first, then checks, then clean-up,
//!   then the snapshot; at most one follow-up call is ever ahead of a new signup. The one
//!   exception is a person pressing the confirmation button: that signup's check takes the next
//!   slot within `GATE_MAX_WAIT_MS` (at most one per signup per `CONFIRM_CHECK_GAP_MS`);
//! - `/signup/status` is answered from the gate's rows and never calls SES, so any number of
//!   pollers cost nothing beyond the sweep;
//! - an event is stored (with its final id and body) in the same synchronous step as the change
//!   it reports, and leaves the outbox only once the receiver answered 2xx or the retry window
//!   ended; an identity is deleted only after its final event left the outbox;
//! - only an identity the gate's own send created is ever deleted (`identities`), and no send to
//!   an identity goes out while its delete is in flight.

use serde_json::json;

use super::{Gate, GateRuntime, RETRY_LATER_MS};
use crate::config::WebhookConfig;
use crate::identities::identity_key;
use crate::identities::Identity;
use crate::identities::Owner;
use crate::identities::Snapshot;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::SendReply;
use crate::messages::SenderLink;
use crate::messages::SignupStatus;
use crate::queue::estimated_send_at_ms;
use crate::slots::Reservation;
use crate::store::GateStore;
use crate::store::OutboxEvent;
use crate::store::StoreError;
use crate::tracking::Confirmation;
use crate::tracking::Effects;
use crate::tracking::Signup;
use crate::tracking::SignupState;
use crate::tracking::RETENTION_MS;
use crate::webhook;
use crate::webhook::EventKind;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::redact::tag_of;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;
use signup_verify_ses::request::SesCall;
use signup_verify_ses::request::MAX_IDENTITIES_PER_CHECK;
use signup_verify_ses::time::rfc3339_utc;

/// Records past their retention are looked for this often (and at each object's start).
const FORGET_EVERY_MS: u64 = 3_600_000;

/// A status check also takes the identities due within this long.
const CHECK_LOOKAHEAD_MS: u64 = 60_000;

/// After a `ListIdentities` page fails, the listing waits this long.
const LIST_RETRY_MS: u64 = 10 * 60_000;

/// After this many checks in a row, a clean-up or snapshot call that is due goes next: checks
/// come first, but can never starve them (a person pressing confirmation again and again).
const CHECKS_BEFORE_A_TURN: u32 = 4;

/// What one step of follow-up did.
pub enum FollowUp {
    /// It made a call or a delivery: look at the queue again first.
    Again,
    /// Nothing more to do now; the next alarm, if any work is left.
    Done(Option<u64>),
}

/// The SES work that is due, in priority order.
enum SesWork {
    Check(Vec<(String, Signup)>),
    /// Ask SES about an identity due for deletion whose owner is still unknown.
    Resolve(String, Identity),
    Delete(String, Identity),
    List(Option<String>),
}

/// A `ListIdentities` listing under way (in memory: a restarted object starts it again).
pub(super) struct Listing {
    snapshot: Snapshot,
    next_token: Option<String>,
}

/// A signup's rows as `track_signup` stored them, and the rows they replaced (put back if the
/// signup is taken back).
pub(super) struct Tracked {
    previous: Option<Signup>,
    previous_identity: Option<Identity>,
    identity_key: String,
    identity: Identity,
    row: Signup,
}

impl Tracked {
    /// The signup this request made.
    pub(super) fn signup_ref(&self, key: &str) -> SignupRef {
        SignupRef {
            key: key.to_string(),
            signed_up_ms: self.row.signed_up_ms,
            nonce: self.row.nonce.clone(),
        }
    }
}

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// The identity key of an address (`identities::identity_key` under the gate's key).
    pub(super) fn identity_key_of(&self, address: &str) -> String {
        identity_key(&self.address_secret, address)
    }

    /// Records a new signup (queued until sent) with its random `nonce`, and its identity's
    /// record as the send will leave it: ownership is decided now, before the send leaves.
    /// The replaced row keeps nothing of it until the new signup is sent or queued.
    pub(super) fn track_signup(
        &self,
        key: &str,
        email: &EmailAddress,
        now: u64,
        nonce: String,
        presented: Option<&SignupRef>,
    ) -> Result<Tracked, StoreError> {
        let previous = self.store.load_signup(key)?;
        let mut row = Signup::queued(email, now, nonce);
        // Replacing a signup whose link is still open, without its credential: whoever clicks
        // that link verifies this signup too (SES verifies the address, not the request).
        let link_ttl = self.config.tracking.link_ttl_ms;
        row.contested = previous.as_ref().is_some_and(|p| {
            let holder = presented.is_some_and(|r| r.key == key && r.nonce == p.nonce);
            p.issued && p.is_open(now, link_ttl) && !holder
        });
        row.issued = self.config.tracking.status_token_secret.is_some();
        self.store.store_signup(key, &row)?;
        let identity_key = self.identity_key_of(email.as_str());
        let previous_identity = self.store.load_identity(&identity_key)?;
        let tracking = &self.config.tracking;
        let identity = Identity::at_send(
            &self.address_secret,
            email,
            previous_identity.as_ref(),
            tracking.identity_keep.protects(email),
            self.snapshot.borrow().as_ref(),
            now,
        );
        self.store.store_identity(&identity_key, &identity)?;
        Ok(Tracked {
            previous,
            previous_identity,
            identity_key,
            identity,
            row,
        })
    }

    /// What the signup's answer means for its rows. Returns when the follow-up work it created
    /// is due (the first check of a sent signup, a rejection's webhook event), for the alarm:
    /// a queued signup has none yet (the drain schedules its check when it sends it), and a
    /// signup taken back leaves the work that was already armed.
    pub(super) fn settle_signup(
        &self,
        key: &str,
        tracked: Tracked,
        reply: &SendReply,
    ) -> Option<u64> {
        use crate::messages::Accepted;
        let taken = matches!(
            reply,
            Ok(_) | Err(ApiError::Rejected | ApiError::UpstreamTimeout)
        );
        if taken {
            if let Err(e) = self.replaced(&tracked) {
                self.log_store_error(&e);
            }
        }
        let (due, result) = match reply {
            // Written from the row `track_signup` stored, not read back: while the signup is in
            // the request no check, confirmation or drain names its row (it is not queued and
            // has no token out yet). With the address limits off, a second signup for the
            // address may store its own row meanwhile; the later answer's row stands.
            Ok(Accepted::Sent { message_id, .. }) => (
                self.settle_sent(key, tracked.row, message_id.clone()),
                Ok(()),
            ),
            Ok(Accepted::Queued { .. }) => (None, Ok(())),
            Err(ApiError::Rejected) => {
                self.signup_failed(key, SignupState::Rejected, None);
                // Rare: worth the full look at what is due.
                let due = self.next_follow_up_at(self.runtime.now_ms());
                (
                    due.unwrap_or_else(|e| {
                        self.log_store_error(&e);
                        None
                    }),
                    Ok(()),
                )
            }
            // It may have reached SES: follow it as sent, so a click is still noticed.
            // No credentials went out with a 504: a later signup of the mailbox is no stranger's.
            Err(ApiError::UpstreamTimeout) => {
                let mut row = tracked.row;
                row.issued = false;
                (self.settle_sent(key, row, None), Ok(()))
            }
            // Neither sent nor queued: as if it never came.
            Err(_) => (None, self.take_back_rows(key, &tracked)),
        };
        if let Err(e) = result {
            self.log_store_error(&e);
        }
        due
    }

    /// Puts back the rows a signup that was neither sent nor queued replaced.
    fn take_back_rows(&self, key: &str, tracked: &Tracked) -> Result<(), StoreError> {
        match &tracked.previous {
            Some(previous) => self.store.store_signup(key, previous)?,
            None => self.store.forget_signup(key)?,
        }
        // Only if the record is still the one `track_signup` wrote: a delivery or a delete
        // that happened meanwhile changed it, and putting the old one back would undo that.
        let current = self.store.load_identity(&tracked.identity_key)?;
        if current.as_ref() != Some(&tracked.identity) {
            return Ok(());
        }
        match tracked.previous_identity.clone() {
            Some(previous) => {
                let waiting = self.store.event_releases(&tracked.identity_key)?;
                let previous = previous.restored(waiting, self.runtime.now_ms());
                self.store.store_identity(&tracked.identity_key, &previous)
            }
            None => self.store.forget_identity(&tracked.identity_key),
        }
    }

    /// A newer signup of the same mailbox took the place of `tracked.previous`: a signup still
    /// under way is dropped (`replaced`, reported), and its identity, if another address's,
    /// keeps its own clean-up duty (due now: no click on its link counts any more).
    fn replaced(&self, tracked: &Tracked) -> Result<(), StoreError> {
        let Some(mut previous) = tracked.previous.clone() else {
            return Ok(());
        };
        // Verified but not confirmed within its link's life: still waiting for its person.
        let link_ttl = self.config.tracking.link_ttl_ms;
        let waiting = previous.state == SignupState::Verified
            && previous.is_open(self.runtime.now_ms(), link_ttl);
        if previous.state.is_final() && !waiting {
            return Ok(());
        }
        let effects = previous.failed(SignupState::Dropped, Some("replaced"));
        self.update(|g| g.tracking.replaced += 1);
        let identity_key = self.identity_key_of(previous.email.as_str());
        if identity_key != tracked.identity_key {
            if let Some(mut identity) = self.own_identity(&identity_key, &previous)? {
                identity.finish(
                    self.config.tracking.identity_cleanup,
                    false,
                    self.runtime.now_ms(),
                );
                self.store.store_identity(&identity_key, &identity)?;
            }
        }
        self.report(&previous, &identity_key, false, &effects)
    }

    /// SES took the send of the queued signup keyed `key`. Returns when its first check is due.
    pub(super) fn signup_sent(
        &self,
        key: &str,
        email: &EmailAddress,
        signed_up_ms: u64,
        message_id: Option<String>,
    ) -> Option<u64> {
        match self.store.load_signup(key) {
            Ok(row) => {
                let row = row.unwrap_or_else(|| Signup::queued(email, signed_up_ms, String::new()));
                self.store_sent(key, row, message_id)
            }
            Err(e) => {
                self.log_store_error(&e);
                None
            }
        }
    }

    /// A direct send of `row` was taken by SES. While it was in flight, another signup of the
    /// mailbox may have taken its row (only with the address limits off): then that one stands,
    /// and this one is over as if replaced. Returns when its first check is due.
    fn settle_sent(&self, key: &str, mut row: Signup, message_id: Option<String>) -> Option<u64> {
        // With a cooldown, no second signup of the mailbox is admitted meanwhile: no read.
        if self.config.address_limits.cooldown_ms > 0 {
            return self.store_sent(key, row, message_id);
        }
        let stands = match self.store.load_signup(key) {
            Ok(current) => current.is_none_or(|c| c.nonce == row.nonce),
            Err(e) => {
                self.log_store_error(&e);
                return None;
            }
        };
        if stands {
            return self.store_sent(key, row, message_id);
        }
        row.sent(message_id, self.runtime.now_ms());
        let effects = row.failed(SignupState::Dropped, Some("replaced"));
        self.update(|g| g.tracking.replaced += 1);
        let identity_key = self.identity_key_of(row.email.as_str());
        let finished = self.own_identity(&identity_key, &row).and_then(|identity| {
            if let Some(mut identity) = identity {
                identity.finish(
                    self.config.tracking.identity_cleanup,
                    false,
                    self.runtime.now_ms(),
                );
                self.store.store_identity(&identity_key, &identity)?;
            }
            self.report(&row, &identity_key, false, &effects)
        });
        if let Err(e) = finished {
            self.log_store_error(&e);
        }
        None
    }

    /// Stores `row` as sent now; returns when its first check is due.
    fn store_sent(&self, key: &str, mut row: Signup, message_id: Option<String>) -> Option<u64> {
        row.sent(message_id, self.runtime.now_ms());
        match self.store.store_signup(key, &row) {
            Ok(()) => row.next_check_ms,
            Err(e) => {
                self.log_store_error(&e);
                None
            }
        }
    }

    /// The signup keyed `key` was refused by SES or dropped from the queue.
    pub(super) fn signup_failed(&self, key: &str, state: SignupState, reason: Option<&str>) {
        let result = self.store.load_signup(key).and_then(|row| {
            let Some(mut signup) = row else {
                return Ok(());
            };
            let effects = signup.failed(state, reason);
            self.store.store_signup(key, &signup)?;
            // Refused by SES, or dropped from the queue unsent: its send made no identity.
            // (`exhausted` may have reached SES: its identity is cleaned up as usual.)
            let unsent = state == SignupState::Rejected
                || reason == Some(crate::queue::DropReason::Expired.as_str());
            if unsent {
                let identity_key = self.identity_key_of(signup.email.as_str());
                if let Some(mut identity) = self.own_identity(&identity_key, &signup)? {
                    // Made by this send, which never left: nothing of the gate's exists, and
                    // the next send must consult the snapshot, not this record.
                    if identity.fresh {
                        self.store.forget_identity(&identity_key)?;
                    } else {
                        identity.never_sent();
                        self.store.store_identity(&identity_key, &identity)?;
                    }
                }
            }
            self.finished(&signup, &effects)
        });
        if let Err(e) = result {
            self.log_store_error(&e);
        }
    }

    /// Reports `effects` of `signup`, and when they make it final, settles its identity's
    /// clean-up: a delete (after the final event's delivery with a webhook), or none.
    fn finished(&self, signup: &Signup, effects: &Effects) -> Result<(), StoreError> {
        let identity_key = self.identity_key_of(signup.email.as_str());
        let mut releases = false;
        if signup.state.is_final() && !effects.events.is_empty() {
            if let Some(mut identity) = self.own_identity(&identity_key, signup)? {
                let webhook_waits = self.config.tracking.webhook.is_some()
                    && matches!(signup.state, SignupState::Verified | SignupState::Expired);
                identity.finish(
                    self.config.tracking.identity_cleanup,
                    webhook_waits,
                    self.runtime.now_ms(),
                );
                releases = identity.cleanup == crate::identities::Cleanup::AfterDelivery;
                if !identity.has_work() || identity.owner != Owner::Ours {
                    self.update(|g| g.tracking.cleanup_skipped += 1);
                }
                self.store.store_identity(&identity_key, &identity)?;
            }
        }
        self.report(signup, &identity_key, releases, effects)
    }

    /// The identity record keyed `identity_key` if `signup`'s own send wrote it last: a later
    /// send to the same address (a newer signup, of this mailbox or, across the key change of
    /// an upgrade, a row from before it) owns the record now, and must not be finished by an
    /// older signup's end.
    fn own_identity(
        &self,
        identity_key: &str,
        signup: &Signup,
    ) -> Result<Option<Identity>, StoreError> {
        Ok(self
            .store
            .load_identity(identity_key)?
            .filter(|identity| identity.sent_ms == signup.signed_up_ms))
    }

    /// Logs the events (by address tag) and, with a webhook, stores them for delivery. An event
    /// that `releases` the identity's clean-up lets it go ahead once delivered.
    fn report(
        &self,
        signup: &Signup,
        identity_key: &str,
        releases: bool,
        effects: &Effects,
    ) -> Result<(), StoreError> {
        let now = self.runtime.now_ms();
        for kind in &effects.events {
            let kind = *kind;
            self.update(|g| match kind {
                EventKind::Verified => g.tracking.verified += 1,
                EventKind::Confirmed => g.tracking.confirmed += 1,
                EventKind::Expired => g.tracking.expired += 1,
                EventKind::Rejected | EventKind::Dropped => {}
            });
            self.runtime.log_info(
                || json!({"event": "signup_event", "type": kind.as_str(), "address": tag_of(identity_key)}),
            );
            if self.config.tracking.webhook.is_none() {
                continue;
            }
            self.store.add_event(&OutboxEvent {
                id: webhook::event_id(identity_key, signup.signed_up_ms, kind),
                key: identity_key.to_string(),
                body: webhook::event_body(kind, now, &signup.event_data()),
                created_ms: now,
                next_attempt_ms: now,
                attempts: 0,
                releases_cleanup: releases
                    && matches!(kind, EventKind::Verified | EventKind::Expired),
            })?;
        }
        Ok(())
    }

    /// Sets the alarm for the earliest follow-up work, unless one is set sooner or a drain runs
    /// (it sets the next alarm when it ends).
    pub(super) async fn arm_follow_up(&self) {
        match self.next_follow_up_at(self.runtime.now_ms()) {
            Ok(Some(at)) => self.alarm_by(at).await,
            Ok(None) => {}
            Err(e) => self.log_store_error(&e),
        }
    }

    /// The earliest time any follow-up work is due.
    fn next_follow_up_at(&self, now: u64) -> Result<Option<u64>, StoreError> {
        let check = self.store.next_check_at()?;
        let event = match self.config.tracking.webhook {
            Some(_) => self.store.next_event_at()?,
            None => None,
        };
        let soonest_call = now + self.config.interval_ms;
        let cleanup = self.store.next_cleanup_at()?.map(|at| at.max(soonest_call));
        let list = self.list_due_at(now).map(|at| at.max(soonest_call));
        Ok([check, event, cleanup, list].into_iter().flatten().min())
    }

    /// When the first snapshot is due, if none was ever taken (none otherwise: a stale one is
    /// refreshed by the sweep's own alarms).
    pub(super) fn snapshot_due_soon(&self, now: u64) -> Option<u64> {
        if self.snapshot.borrow().is_some() {
            return None;
        }
        self.list_due_at(now)
            .map(|at| at.max(now + self.config.interval_ms))
    }

    /// When the identity snapshot is next due to be taken (none while clean-up is off: it
    /// serves only to decide what may be deleted).
    fn list_due_at(&self, now: u64) -> Option<u64> {
        if !self.config.tracking.identity_cleanup {
            return None;
        }
        let stale = match (&*self.listing.borrow(), &*self.snapshot.borrow()) {
            (Some(_), _) | (None, None) => true,
            (None, Some(snapshot)) => snapshot.is_stale(now),
        };
        stale.then(|| now.max(self.list_held_until.get()))
    }

    /// One step of follow-up, run by the drain when the queue is empty: a webhook delivery, or
    /// one SES call (a check, else a deletion, else a snapshot page) if a slot is free now.
    pub(super) async fn follow_up(&self, now: u64, started: u64) -> FollowUp {
        if now >= started + super::DRAIN_BUDGET_MS {
            return FollowUp::Done(Some(now));
        }
        match self.try_follow_up(now).await {
            Ok(step) => step,
            Err(e) => {
                self.log_store_error(&e);
                FollowUp::Done(Some(now + RETRY_LATER_MS))
            }
        }
    }

    async fn try_follow_up(&self, now: u64) -> Result<FollowUp, StoreError> {
        if let Some(webhook) = &self.config.tracking.webhook {
            if let Some(event) = self.store.due_events(now, 1)?.pop() {
                self.deliver(webhook, event).await?;
                return Ok(FollowUp::Again);
            }
        }
        if now >= self.next_forget_ms.get() {
            self.next_forget_ms.set(now + FORGET_EVERY_MS);
            let before = now.saturating_sub(RETENTION_MS);
            self.store.forget_signups(before)?;
            self.store.forget_identities(before)?;
        }
        let Some(work) = self.ses_work_due(now)? else {
            return Ok(FollowUp::Done(self.next_follow_up_at(now)?));
        };
        let (next_free, paused_until) = {
            let state = self.state.borrow();
            (state.next_free_ms, state.paused_until_ms)
        };
        if let Some(until) = paused_until.filter(|t| *t > now) {
            return Ok(FollowUp::Done(Some(until)));
        }
        // A signup is being sent in its request: it goes first.
        if !self.direct_by_domain.borrow().is_empty() {
            return Ok(FollowUp::Done(Some(
                next_free.max(now + self.config.interval_ms),
            )));
        }
        let Reservation::Slot { at_ms: slot } =
            self.update(|g| g.reserve(now, self.config.interval_ms, 0))
        else {
            return Ok(FollowUp::Done(Some(next_free)));
        };
        let made = match work {
            SesWork::Check(due) => self.check(due, slot).await?,
            SesWork::Resolve(key, identity) => self.resolve(&key, identity, slot).await?,
            SesWork::Delete(key, identity) => self.delete(&key, identity, slot).await?,
            SesWork::List(next_token) => self.list(next_token, slot).await?,
        };
        Ok(if made {
            FollowUp::Again
        } else {
            FollowUp::Done(Some(self.runtime.now_ms() + RETRY_LATER_MS))
        })
    }

    /// Due checks first (a confirmed signup's before the rest), then one clean-up, then one
    /// snapshot page; after [`CHECKS_BEFORE_A_TURN`] checks in a row, a due clean-up or
    /// snapshot page gets the next call.
    fn ses_work_due(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
        let work = self.next_ses_work(now)?;
        let in_a_row = match work {
            Some(SesWork::Check(_)) => self.checks_in_a_row.get() + 1,
            _ => 0,
        };
        self.checks_in_a_row.set(in_a_row);
        Ok(work)
    }

    fn next_ses_work(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
        // Once one check is due, the call also takes those due soon (up to 100 in all): a
        // call costs the same for 1 identity as for 100.
        let due = self
            .store
            .due_checks(now + CHECK_LOOKAHEAD_MS, MAX_IDENTITIES_PER_CHECK)?;
        let check_due = due
            .first()
            .is_some_and(|(_, s)| s.next_check_ms.is_some_and(|t| t <= now));
        if check_due && self.checks_in_a_row.get() < CHECKS_BEFORE_A_TURN {
            return Ok(Some(SesWork::Check(due)));
        }
        if let Some(other) = self.cleanup_or_list(now)? {
            return Ok(Some(other));
        }
        Ok(check_due.then_some(SesWork::Check(due)))
    }

    /// One clean-up call, else one snapshot page, if either is due.
    fn cleanup_or_list(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
        if let Some((key, identity)) = self.store.next_cleanup(now)? {
            if identity.must_check_first() {
                return Ok(Some(SesWork::Resolve(key, identity)));
            }
            return Ok(Some(SesWork::Delete(key, identity)));
        }
        if self.list_due_at(now).is_some_and(|at| at <= now) {
            let next_token = self
                .listing
                .borrow()
                .as_ref()
                .and_then(|l| l.next_token.clone());
            return Ok(Some(SesWork::List(next_token)));
        }
        Ok(None)
    }

    /// One `GetIdentityVerificationAttributes` call for `due`, at `slot`. `false` if the call
    /// cannot be made at all (the sender is misconfigured).
    async fn check(&self, due: Vec<(String, Signup)>, slot: u64) -> Result<bool, StoreError> {
        let call = CallRequest {
            call: SesCall::Check {
                identities: due.iter().map(|(_, s)| s.email.clone()).collect(),
            },
            slot_ms: slot,
            attempt: 1,
            address_tag: format!("{} identities", due.len()),
            request_id: None,
        };
        let Some(result) = self.call_sender(&call).await else {
            return Ok(false);
        };
        let now = self.runtime.now_ms();
        let ttl = self.config.tracking.link_ttl_ms;
        let statuses = match result {
            CallResult::Answered(Outcome::Checked { statuses }) => statuses,
            failure => {
                self.call_failed(&failure, "status_check_failed");
                self.update(|g| g.tracking.checks_failed += 1);
                if !matches!(
                    failure,
                    CallResult::Answered(Outcome::Retryable(RetryReason::Throttled))
                ) {
                    // Not a hot loop: these signups wait a while before the next try, and one
                    // that can never be checked expires after its link did.
                    for (key, checked) in due {
                        let Some(mut signup) = self.current(&key, &checked)? else {
                            continue;
                        };
                        let effects = signup.check_failed(now, now + RETRY_LATER_MS, ttl);
                        self.store.store_signup(&key, &signup)?;
                        self.finished(&signup, &effects)?;
                    }
                }
                return Ok(true);
            }
        };
        self.update(|g| {
            g.succeeded();
            g.tracking.checks += 1;
        });
        for (key, checked) in due {
            // Re-read: a confirmation or a new signup of the address may have come meanwhile.
            let Some(mut signup) = self.current(&key, &checked)? else {
                continue;
            };
            let status = statuses
                .iter()
                .find(|(identity, _)| identity.eq_ignore_ascii_case(signup.email.as_str()))
                .map(|(_, status)| status.as_str());
            let identity_key = self.identity_key_of(signup.email.as_str());
            let mut fresh = false;
            if let Some(mut identity) = self.own_identity(&identity_key, &signup)? {
                if identity.observed(status) {
                    self.store.store_identity(&identity_key, &identity)?;
                }
                fresh = identity.fresh;
            }
            let effects = signup.checked(status, now, ttl, fresh);
            self.store.store_signup(&key, &signup)?;
            self.finished(&signup, &effects)?;
        }
        Ok(true)
    }

    /// The row keyed `key` if it is still the signup `checked` was.
    fn current(&self, key: &str, checked: &Signup) -> Result<Option<Signup>, StoreError> {
        Ok(self
            .store
            .load_signup(key)?
            .filter(|s| s.signed_up_ms == checked.signed_up_ms && s.nonce == checked.nonce))
    }

    /// One `GetIdentityVerificationAttributes` call, at `slot`, for an identity due for deletion
    /// whose owner no check decided yet (its signup ended first): pending or absent, it is the
    /// gate's and stays due; verified, it may be anyone's and is left alone.
    async fn resolve(&self, key: &str, identity: Identity, slot: u64) -> Result<bool, StoreError> {
        let call = CallRequest {
            call: SesCall::Check {
                identities: vec![identity.email.clone()],
            },
            slot_ms: slot,
            attempt: 1,
            address_tag: tag_of(key).to_string(),
            request_id: None,
        };
        let Some(result) = self.call_sender(&call).await else {
            return Ok(false);
        };
        let Some(mut current) = self.store.load_identity(key)? else {
            return Ok(true);
        };
        match result {
            CallResult::Answered(Outcome::Checked { statuses }) => {
                self.update(|g| {
                    g.succeeded();
                    g.tracking.checks += 1;
                });
                if current.must_check_first() {
                    let status = statuses
                        .iter()
                        .find(|(i, _)| i.eq_ignore_ascii_case(current.email.as_str()))
                        .map(|(_, s)| s.as_str());
                    current.decided(status);
                    if current.cleanup == crate::identities::Cleanup::Skipped {
                        self.update(|g| g.tracking.cleanup_skipped += 1);
                    }
                    self.store.store_identity(key, &current)?;
                }
            }
            failure => {
                self.call_failed(&failure, "status_check_failed");
                self.update(|g| g.tracking.checks_failed += 1);
                if failure != CallResult::Answered(Outcome::Retryable(RetryReason::Throttled))
                    && current.delete_failed(self.runtime.now_ms())
                {
                    self.update(|g| g.tracking.cleanup_given_up += 1);
                }
                self.store.store_identity(key, &current)?;
            }
        }
        Ok(true)
    }

    /// One `DeleteIdentity` call for an identity the gate's send created, at `slot`. No send
    /// to it leaves while the call is in flight (see `send_or_queue`).
    async fn delete(
        &self,
        key: &str,
        mut identity: Identity,
        slot: u64,
    ) -> Result<bool, StoreError> {
        // IDENTITY_KEEP as it is now (it may have been set after the send).
        if self.config.tracking.identity_keep.protects(&identity.email) {
            identity.cleanup = crate::identities::Cleanup::Skipped;
            identity.next_cleanup_ms = None;
            self.store.store_identity(key, &identity)?;
            self.update(|g| g.tracking.cleanup_skipped += 1);
            return Ok(true);
        }
        let call = CallRequest {
            call: SesCall::Delete {
                identity: identity.email.clone(),
            },
            slot_ms: slot,
            attempt: identity.cleanup_failures + 1,
            address_tag: tag_of(key).to_string(),
            request_id: None,
        };
        self.deleting.replace(Some(key.to_string()));
        let result = self.call_sender(&call).await;
        self.deleting.replace(None);
        let Some(result) = result else {
            return Ok(false);
        };
        // Re-read: a new send to the address may have come meanwhile (and queued behind this
        // call); its record says so, and then nothing is marked done.
        let Some(mut current) = self.store.load_identity(key)? else {
            return Ok(true);
        };
        let still_due = current.cleanup == crate::identities::Cleanup::Due;
        if result != CallResult::Answered(Outcome::Deleted) {
            self.call_failed(&result, "identity_delete_failed");
            self.update(|g| g.tracking.deletes_failed += 1);
            let throttled = matches!(
                result,
                CallResult::Answered(Outcome::Retryable(RetryReason::Throttled))
            );
            if still_due && !throttled {
                let given_up = current.delete_failed(self.runtime.now_ms());
                self.store.store_identity(key, &current)?;
                if given_up {
                    self.update(|g| g.tracking.cleanup_given_up += 1);
                    self.runtime.log_error(json!({"event": "identity_cleanup_given_up", "address": tag_of(key), "attempts": current.cleanup_failures}));
                }
            }
            return Ok(true);
        }
        self.update(|g| {
            g.succeeded();
            g.tracking.identities_deleted += 1;
        });
        self.runtime
            .log_info(|| json!({"event": "identity_deleted", "address": tag_of(key)}));
        if still_due {
            current.deleted(self.runtime.now_ms());
            self.store.store_identity(key, &current)?;
        }
        Ok(true)
    }

    /// One `ListIdentities` page at `slot`. Every identity listed that the gate's own send did
    /// not (or may not) create goes into the snapshot; the last page replaces the stored one.
    async fn list(&self, next_token: Option<String>, slot: u64) -> Result<bool, StoreError> {
        let started = self.runtime.now_ms();
        let call = CallRequest {
            call: SesCall::List { next_token },
            slot_ms: slot,
            attempt: 1,
            address_tag: "identity snapshot".into(),
            request_id: None,
        };
        let Some(result) = self.call_sender(&call).await else {
            return Ok(false);
        };
        let (identities, next_token) = match result {
            CallResult::Answered(Outcome::Listed {
                identities,
                next_token,
            }) => (identities, next_token),
            failure => {
                self.call_failed(&failure, "identity_list_failed");
                if failure != CallResult::Answered(Outcome::Retryable(RetryReason::Throttled)) {
                    self.list_held_until
                        .set(self.runtime.now_ms() + LIST_RETRY_MS);
                }
                return Ok(true);
            }
        };
        self.update(|g| {
            g.succeeded();
            g.tracking.list_pages += 1;
        });
        let mut listing = self.listing.take().unwrap_or_else(|| Listing {
            snapshot: Snapshot::new(started),
            next_token: None,
        });
        for identity in &identities {
            let key = self.identity_key_of(identity);
            // The gate's own, or one whose first check has not decided yet (a later refresh
            // takes it in if it turns out to be older than the send).
            let maybe_ours = self
                .store
                .load_identity(&key)?
                .is_some_and(|record| record.maybe_from_a_live_send());
            if !maybe_ours {
                listing.snapshot.add(&self.address_secret, identity);
            }
        }
        match next_token {
            Some(token) => {
                listing.next_token = Some(token);
                self.listing.replace(Some(listing));
            }
            None => {
                listing.snapshot.seal();
                self.store.store_snapshot(&listing.snapshot)?;
                self.update(|g| g.tracking.snapshots_taken += 1);
                self.runtime.log_info(
                    || json!({"event": "identity_snapshot", "identities": listing.snapshot.len()}),
                );
                self.snapshot.replace(Some(listing.snapshot));
            }
        }
        Ok(true)
    }

    /// A follow-up call that failed: a `Throttling` backs off every call; anything else is
    /// logged (a check refused with `AccessDenied` usually means the IAM policy lacks the
    /// action, and must not pause the sends).
    fn call_failed(&self, result: &CallResult, event: &str) {
        if *result == CallResult::Answered(Outcome::Retryable(RetryReason::Throttled)) {
            let (now, random) = (self.runtime.now_ms(), self.runtime.random_u32());
            self.update(|g| {
                g.counters.throttles_seen += 1;
                g.throttled(now, random)
            });
        }
        let result = match result {
            CallResult::Answered(outcome) => outcome.log_name(),
            CallResult::TimedOut => "TimedOut",
        };
        self.runtime
            .log_error(json!({"event": event, "result": result}));
    }

    /// One delivery attempt of `event`.
    async fn deliver(&self, webhook: &WebhookConfig, event: OutboxEvent) -> Result<(), StoreError> {
        let now = self.runtime.now_ms();
        // The config stores the key as hex it made itself; should it ever not decode, nothing
        // is signed with an empty key: the delivery waits (and the log says why).
        let Ok(key) = hex::decode(webhook.key.expose()) else {
            self.runtime
                .log_error(json!({"event": "webhook_key_unreadable"}));
            return self
                .store
                .reschedule_event(&event.id, event.attempts, now + RETRY_LATER_MS);
        };
        let headers = webhook::headers(&key, &event.id, now, &event.body);
        self.save_state();
        let answer = self
            .runtime
            .post_webhook(webhook.url.as_str(), &headers, &event.body)
            .await;
        let now = self.runtime.now_ms();
        let attempts = event.attempts + 1;
        if matches!(answer, Ok(status) if webhook::delivered(status)) {
            self.store.remove_event(&event.id)?;
            self.update(|g| g.tracking.webhooks_delivered += 1);
            self.runtime.log_info(
                || json!({"event": "webhook_delivered", "id": event.id, "attempts": attempts}),
            );
            return self.release_cleanup(&event);
        }
        self.update(|g| g.tracking.webhook_attempts_failed += 1);
        let answer = match answer {
            Ok(status) => format!("HTTP {status}"),
            Err(error) => error,
        };
        match webhook::next_attempt_ms(event.created_ms, attempts, now) {
            Some(next) => {
                self.runtime.log_error(json!({"event": "webhook_failed", "id": event.id, "attempts": attempts, "answer": answer, "next_attempt": rfc3339_utc(next)}));
                self.store.reschedule_event(&event.id, attempts, next)
            }
            None => {
                self.runtime.log_error(json!({"event": "webhook_given_up", "id": event.id, "attempts": attempts, "answer": answer}));
                self.update(|g| g.tracking.webhooks_given_up += 1);
                self.store.remove_event(&event.id)?;
                // The event is lost either way; the identity must not stay forever.
                self.release_cleanup(&event)
            }
        }
    }

    fn release_cleanup(&self, event: &OutboxEvent) -> Result<(), StoreError> {
        if !event.releases_cleanup {
            return Ok(());
        }
        if let Some(mut identity) = self.store.load_identity(&event.key)? {
            if identity.release(self.runtime.now_ms()) {
                self.store.store_identity(&event.key, &identity)?;
            }
        }
        Ok(())
    }

    /// The row a credential names, if it is still that signup (same time, same nonce).
    fn named_signup(&self, signup: &SignupRef) -> Result<Signup, ApiError> {
        match self.store.load_signup(&signup.key) {
            Ok(Some(row))
                if row.signed_up_ms == signup.signed_up_ms
                    && !row.nonce.is_empty()
                    && row.nonce == signup.nonce =>
            {
                Ok(row)
            }
            Ok(_) => Err(ApiError::UnknownSignup),
            Err(e) => {
                self.log_store_error(&e);
                Err(ApiError::Unavailable)
            }
        }
    }

    /// `GET /signup/status`, from the gate's rows alone.
    pub fn status(&self, signup: &SignupRef) -> Result<SignupStatus, ApiError> {
        let row = self.named_signup(signup)?;
        Ok(self.view(&signup.key, &row))
    }

    /// A person pressed the confirmation button. It counts only once the link was opened: a
    /// signup not seen verified yet is checked at once (see `check_before_confirming`), and the
    /// confirmation is refused unless that check saw it verified.
    pub async fn confirm(&self, signup: &SignupRef) -> Result<SignupStatus, ApiError> {
        let status = self.take_confirmation(signup).await;
        self.save_state();
        status
    }

    async fn take_confirmation(&self, signup: &SignupRef) -> Result<SignupStatus, ApiError> {
        let mut row = self.named_signup(signup)?;
        if row.state == SignupState::Sent {
            self.check_before_confirming(signup, &mut row).await?;
        }
        let answer = match row.confirm() {
            Confirmation::Recorded(effects) => {
                let stored = self
                    .store
                    .store_signup(&signup.key, &row)
                    .and_then(|()| self.finished(&row, &effects));
                if let Err(e) = stored {
                    self.log_store_error(&e);
                    return Err(ApiError::Unavailable);
                }
                self.runtime.log_info(
                    || json!({"event": "signup_confirmed", "address": tag_of(&signup.key)}),
                );
                Ok(self.view(&signup.key, &row))
            }
            Confirmation::Already => Ok(self.view(&signup.key, &row)),
            Confirmation::NotYetSeen | Confirmation::Refused => {
                self.update(|g| g.tracking.confirmations_refused += 1);
                self.runtime.log_info(
                    || json!({"event": "confirmation_refused", "status": row.state.as_str(), "address": tag_of(&signup.key)}),
                );
                Err(ApiError::NotVerified)
            }
        };
        self.arm_follow_up().await;
        answer
    }

    /// Asks SES about a sent signup now: one slot within `GATE_MAX_WAIT_MS`, only while no
    /// signup waits in the queue and no other confirmation's check is in flight, at most once
    /// per `CONFIRM_CHECK_GAP_MS` per signup, never while the queue is paused. Its check also
    /// goes first in the next sweep. `row` is the signup as it stands afterwards.
    async fn check_before_confirming(
        &self,
        signup: &SignupRef,
        row: &mut Signup,
    ) -> Result<(), ApiError> {
        let now = self.runtime.now_ms();
        let at_once = row.check_first(now);
        if let Err(e) = self.store.store_signup(&signup.key, row) {
            self.log_store_error(&e);
            return Err(ApiError::Unavailable);
        }
        let paused = self.state.borrow().paused_until_ms.is_some_and(|t| t > now);
        let queue_empty = self.store.queue_len().is_ok_and(|n| n == 0);
        let slot = if at_once && !paused && queue_empty && !self.confirm_checking.get() {
            self.update(|g| g.reserve(now, self.config.interval_ms, self.config.max_wait_ms))
        } else {
            Reservation::Busy {
                retry_after_secs: 1,
            }
        };
        if let Reservation::Slot { at_ms } = slot {
            self.confirm_checking.set(true);
            let checked = self
                .check(vec![(signup.key.clone(), row.clone())], at_ms)
                .await;
            self.confirm_checking.set(false);
            if let Err(e) = checked {
                self.log_store_error(&e);
            }
        }
        *row = self.named_signup(signup)?;
        Ok(())
    }

    fn view(&self, key: &str, signup: &Signup) -> SignupStatus {
        let now = self.runtime.now_ms();
        let position = match signup.state {
            SignupState::Queued => self.queued_position(key, now),
            _ => None,
        };
        let estimated_send_at = position.map(|p| {
            rfc3339_utc(estimated_send_at_ms(
                &self.state.borrow(),
                now,
                p,
                self.config.interval_ms,
            ))
        });
        SignupStatus {
            status: signup.state.as_str().to_string(),
            verified: signup.state == SignupState::Verified,
            confirmed: signup.confirmed,
            contested: signup.contested,
            position,
            estimated_send_at,
            sent_at: signup.sent_ms.map(rfc3339_utc),
            verified_at: signup.verified_ms.map(rfc3339_utc),
            reason: signup.reason.clone(),
        }
    }
}
