//! A signup's rows after intake: its tracking row and the identity record of its exact address,
//! from admission to the final event (sent, failed, replaced, taken back), and the events each
//! change stores in the outbox in the same synchronous step.

use super::*;
use crate::identities::identity_key;
use crate::identities::Identity;
use crate::identities::Owner;
use crate::messages::SendReply;
use crate::messages::SenderLink;
use crate::store::GateStore;
use crate::store::OutboxEvent;
use crate::store::StoreError;
use crate::tracking::Effects;
use crate::tracking::Signup;
use crate::tracking::SignupState;
use crate::webhook;
use crate::webhook::EventKind;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::log_line;
use signup_verify_domain::redact::tag_of;
use signup_verify_domain::status_token::SignupRef;

/// How a signup came to this gate, for `track_signup`: the credential its request presented,
/// the region that handed it over, and whether a region that declined it holds an open signup
/// of the mailbox.
#[derive(Default, Clone, Copy)]
pub(super) struct Came<'a> {
    pub presented: Option<&'a SignupRef>,
    pub handed_from: Option<&'a str>,
    pub contested_elsewhere: bool,
    /// A signup that left this gate (its row `moved_to`) and is handed back: it keeps its time
    /// (with its nonce), so its first credentials name it again.
    pub signed_up_ms: Option<u64>,
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
    /// Whether it contests a signup the mailbox had (see `contests`).
    pub(super) fn contested(&self) -> bool {
        self.row.contested
    }

    /// The signup this request made.
    pub(super) fn signup_ref(&self, key: &str) -> SignupRef {
        SignupRef {
            key: key.to_string(),
            signed_up_ms: self.row.signed_up_ms,
            nonce: self.row.nonce.clone(),
            region: None,
        }
    }
}

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// The identity key of an address (`identities::identity_key` under the gate's key).
    pub(super) fn identity_key_of(&self, address: &str) -> String {
        identity_key(&self.address_secret, address)
    }

    /// Whether a new signup of the mailbox keyed `key` contests `previous`: it replaces a
    /// signup whose link is still open, issued to a request whose credential this one does not
    /// present. Whoever clicks that link verifies the new signup too (SES verifies the address,
    /// not the request).
    pub(super) fn contests(
        &self,
        previous: Option<&Signup>,
        key: &str,
        presented: Option<&SignupRef>,
        now: u64,
    ) -> bool {
        let link_ttl = self.config.tracking.link_ttl_ms;
        previous.is_some_and(|p| {
            // The cookie names this signup, or the one it became in another region.
            let holder = presented.is_some_and(|r| {
                (r.key == key && r.nonce == p.nonce)
                    || p.moved_to
                        .as_ref()
                        .is_some_and(|m| m.key == r.key && m.nonce == r.nonce)
            });
            // A signup that went to another region (handed over, or spilled while this one
            // was paused) may have a link open there: counted open for the link's life.
            let open_elsewhere = p.moved_to.is_some() && now < p.signed_up_ms + link_ttl;
            p.issued && (p.is_open(now, link_ttl) || open_elsewhere) && !holder
        })
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
        came: Came,
    ) -> Result<Tracked, StoreError> {
        let previous = self.load_signup(key)?;
        let mut row = Signup::queued(email, now, nonce);
        row.signed_up_ms = came.signed_up_ms.unwrap_or(now);
        row.handed_from = came.handed_from.map(str::to_string);
        row.contested =
            came.contested_elsewhere || self.contests(previous.as_ref(), key, came.presented, now);
        row.issued = self.config.tracking.status_token_secret.is_some();
        self.put_signup(key, &row)?;
        let identity_key = self.identity_key_of(email.as_str());
        let previous_identity = self.store.load_identity(&identity_key)?;
        let tracking = &self.config.tracking;
        let identity = Identity::at_send(
            &self.address_secret,
            email,
            previous_identity.as_ref(),
            tracking.identity_keep.protects(email),
            self.snapshot.borrow().as_ref(),
            // The signup's time (a returning signup keeps its first): its identity is found by it.
            row.signed_up_ms,
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
    pub(super) fn take_back_rows(&self, key: &str, tracked: &Tracked) -> Result<(), StoreError> {
        match &tracked.previous {
            Some(previous) => self.put_signup(key, previous)?,
            None => self.forget_signup(key)?,
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
    pub(super) fn replaced(&self, tracked: &Tracked) -> Result<(), StoreError> {
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
        match self.load_signup(key) {
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
    pub(super) fn settle_sent(
        &self,
        key: &str,
        mut row: Signup,
        message_id: Option<String>,
    ) -> Option<u64> {
        // With a cooldown, no second signup of the mailbox is admitted meanwhile: no read.
        if self.config.address_limits.cooldown_ms > 0 {
            return self.store_sent(key, row, message_id);
        }
        let stands = match self.load_signup(key) {
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
    pub(super) fn store_sent(
        &self,
        key: &str,
        mut row: Signup,
        message_id: Option<String>,
    ) -> Option<u64> {
        row.sent(message_id, self.runtime.now_ms());
        match self.put_signup(key, &row) {
            Ok(()) => row.next_check_ms,
            Err(e) => {
                self.log_store_error(&e);
                None
            }
        }
    }

    /// `signup` never left this gate (refused, expired unsent, or handed to another region):
    /// the identity record its tracking made claims no send from here.
    pub(super) fn unsent_identity(&self, signup: &Signup) -> Result<(), StoreError> {
        let identity_key = self.identity_key_of(signup.email.as_str());
        if let Some(mut identity) = self.own_identity(&identity_key, signup)? {
            // Made by this send, which never left: nothing of the gate's exists, and the next
            // send must consult the snapshot, not this record.
            if identity.fresh {
                self.store.forget_identity(&identity_key)?;
            } else {
                identity.never_sent();
                self.store.store_identity(&identity_key, &identity)?;
            }
        }
        Ok(())
    }

    /// The signup keyed `key` was refused by SES or dropped from the queue.
    pub(super) fn signup_failed(&self, key: &str, state: SignupState, reason: Option<&str>) {
        let result = self.load_signup(key).and_then(|row| {
            let Some(mut signup) = row else {
                return Ok(());
            };
            let effects = signup.failed(state, reason);
            self.put_signup(key, &signup)?;
            // Refused by SES, or dropped from the queue unsent: its send made no identity.
            // (`exhausted` may have reached SES: its identity is cleaned up as usual.)
            let unsent = state == SignupState::Rejected
                || reason == Some(crate::queue::DropReason::Expired.as_str());
            if unsent {
                self.unsent_identity(&signup)?;
            }
            self.finished(&signup, &effects)
        });
        if let Err(e) = result {
            self.log_store_error(&e);
        }
    }

    /// Reports `effects` of `signup`, and when they make it final, settles its identity's
    /// clean-up: a delete (after the final event's delivery with a webhook), or none.
    pub(super) fn finished(&self, signup: &Signup, effects: &Effects) -> Result<(), StoreError> {
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
                    self.count(|g| g.tracking.cleanup_skipped += 1);
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
    pub(super) fn own_identity(
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
    pub(super) fn report(
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
                || log_line!({"event": "signup_event", "type": kind.as_str(), "address": tag_of(identity_key)}),
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
}
