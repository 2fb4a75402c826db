//! The follow-up sweep: after the sends, and only while no signup is queued or being sent, the
//! gate asks SES about pending identities (`GetIdentityVerificationAttributes`, up to 100 a
//! call), resolves who created an identity, deletes the identities its own sends created
//! (`DeleteIdentity`) and lists the account's identities (`ListIdentities`).
//!
//! Invariants:
//! - every SES call here takes a slot from the same reservations as the sends, and only when no
//!   signup is queued or being sent directly: sends come first, then checks, then clean-up,
//!   then the snapshot; at most one follow-up call is ever ahead of a new signup. The one
//!   exception is a person pressing the confirmation button (`confirm`);
//! - an identity is deleted only after its final event left the outbox, only when the gate's
//!   own send created it (`identities`), and no send to an identity goes out while its delete is
//!   in flight.

use super::*;
use crate::identities::Identity;
use crate::identities::Snapshot;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::SenderLink;
use crate::store::GateStore;
use crate::store::StoreError;
use crate::tracking::Signup;
use crate::tracking::SignupState;
use crate::tracking::RETENTION_MS;
use signup_verify_domain::log_line;
use signup_verify_domain::redact::tag_of;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;
use signup_verify_ses::request::SesCall;
use signup_verify_ses::request::MAX_IDENTITIES_PER_CHECK;

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
pub(super) enum SesWork {
    Check(Vec<(String, Signup)>),
    /// Ask SES about an identity due for deletion whose owner is still unknown.
    Resolve(String, Identity),
    Delete(String, Identity),
    List(Option<String>),
}

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
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
    pub(super) fn next_follow_up_at(&self, now: u64) -> Result<Option<u64>, StoreError> {
        let check = self.checks.borrow().first();
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
    pub(super) fn list_due_at(&self, now: u64) -> Option<u64> {
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

    pub(super) async fn try_follow_up(&self, now: u64) -> Result<FollowUp, StoreError> {
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
        let slot = match self.follow_up_slot(now) {
            Ok(slot) => slot,
            Err(retry_at) => return Ok(FollowUp::Done(Some(retry_at))),
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
    pub(super) fn ses_work_due(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
        let work = self.next_ses_work(now)?;
        let in_a_row = match work {
            Some(SesWork::Check(_)) => self.checks_in_a_row.get() + 1,
            _ => 0,
        };
        self.checks_in_a_row.set(in_a_row);
        Ok(work)
    }

    pub(super) fn next_ses_work(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
        // Once one check is due, the call also takes those due soon (up to 100 in all): a
        // call costs the same for 1 identity as for 100.
        let due = self.due_checks(now + CHECK_LOOKAHEAD_MS)?;
        let check_due = self.checks.borrow().first().is_some_and(|t| t <= now);
        if check_due && self.checks_in_a_row.get() < CHECKS_BEFORE_A_TURN {
            return Ok(Some(SesWork::Check(due)));
        }
        if let Some(other) = self.cleanup_or_list(now)? {
            return Ok(Some(other));
        }
        Ok(check_due.then_some(SesWork::Check(due)))
    }

    /// The signups whose check is due by `bound` (up to one call's worth), earliest first, read
    /// from their rows; a key whose row is gone leaves the schedule.
    fn due_checks(&self, bound: u64) -> Result<Vec<(String, Signup)>, StoreError> {
        let keys = self.checks.borrow().due(bound, MAX_IDENTITIES_PER_CHECK);
        let mut due = Vec::with_capacity(keys.len());
        for (key, _) in keys {
            match self.load_signup(&key)? {
                Some(signup) if signup.next_check_ms.is_some() => due.push((key, signup)),
                _ => self.checks.borrow_mut().set(&key, None),
            }
        }
        Ok(due)
    }

    /// Stores a checked signup, unless the check only moved its next check (`Signup::checked`
    /// and `check_failed` change nothing else while the signup stays sent and its link's state
    /// as seen is the same as `before`'s): then the schedule alone keeps the new time (a restart
    /// resumes it from the row: `Signup::resumed_check_at`).
    fn checked_signup(
        &self,
        key: &str,
        before: (SignupState, bool),
        after: &Signup,
    ) -> Result<(), StoreError> {
        let moved_only = after.next_check_ms.is_some()
            && before == (SignupState::Sent, true)
            && (after.state, after.seen_unverified) == before;
        if moved_only {
            self.checks.borrow_mut().set(key, after.next_check_ms);
            return Ok(());
        }
        self.put_signup(key, after)
    }

    /// One clean-up call, else one snapshot page, if either is due.
    pub(super) fn cleanup_or_list(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
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
    /// cannot be made at all (the request cannot be signed).
    pub(super) async fn check(
        &self,
        due: Vec<(String, Signup)>,
        slot: u64,
    ) -> Result<bool, StoreError> {
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
                        let before = (signup.state, signup.seen_unverified);
                        let effects = signup.check_failed(now, now + RETRY_LATER_MS, ttl);
                        self.checked_signup(&key, before, &signup)?;
                        self.finished(&signup, &effects)?;
                    }
                }
                return Ok(true);
            }
        };
        // A check that finds every signup still pending writes nothing: the counters ride along
        // with the next save, and only a backoff to end is a change of state.
        self.succeeded();
        let checked = due.len() as u64;
        self.count(|g| {
            g.tracking.checks = g.tracking.checks.saturating_add(1);
            g.tracking.signups_checked = g.tracking.signups_checked.saturating_add(checked);
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
            let before = (signup.state, signup.seen_unverified);
            let effects = signup.checked(status, now, ttl, fresh);
            self.checked_signup(&key, before, &signup)?;
            self.finished(&signup, &effects)?;
        }
        Ok(true)
    }

    /// The row keyed `key` if it is still the signup `checked` was.
    pub(super) fn current(
        &self,
        key: &str,
        checked: &Signup,
    ) -> Result<Option<Signup>, StoreError> {
        Ok(self
            .load_signup(key)?
            .filter(|s| s.signed_up_ms == checked.signed_up_ms && s.nonce == checked.nonce))
    }

    /// One `GetIdentityVerificationAttributes` call, at `slot`, for an identity due for deletion
    /// whose owner no check decided yet (its signup ended first): pending or absent, it is the
    /// gate's and stays due; verified, it may be anyone's and is left alone.
    pub(super) async fn resolve(
        &self,
        key: &str,
        identity: Identity,
        slot: u64,
    ) -> Result<bool, StoreError> {
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
                self.succeeded();
                self.count(|g| g.tracking.checks += 1);
                if current.must_check_first() {
                    let status = statuses
                        .iter()
                        .find(|(i, _)| i.eq_ignore_ascii_case(current.email.as_str()))
                        .map(|(_, s)| s.as_str());
                    current.decided(status);
                    if current.cleanup == crate::identities::Cleanup::Skipped {
                        self.count(|g| g.tracking.cleanup_skipped += 1);
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
    pub(super) async fn delete(
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
            self.count(|g| g.tracking.cleanup_skipped += 1);
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
                    self.runtime.log_error(log_line!({"event": "identity_cleanup_given_up", "address": tag_of(key), "attempts": current.cleanup_failures}));
                }
            }
            return Ok(true);
        }
        self.succeeded();
        self.update(|g| g.tracking.identities_deleted += 1);
        self.runtime
            .log_info(|| log_line!({"event": "identity_deleted", "address": tag_of(key)}));
        if still_due {
            current.deleted(self.runtime.now_ms());
            self.store.store_identity(key, &current)?;
        }
        Ok(true)
    }

    /// One `ListIdentities` page at `slot`. Every identity listed that the gate's own send did
    /// not (or may not) create goes into the snapshot; the last page replaces the stored one.
    pub(super) async fn list(
        &self,
        next_token: Option<String>,
        slot: u64,
    ) -> Result<bool, StoreError> {
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
        self.succeeded();
        self.count(|g| g.tracking.list_pages += 1);
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
                self.count(|g| g.tracking.snapshots_taken += 1);
                self.runtime.log_info(
                    || log_line!({"event": "identity_snapshot", "identities": listing.snapshot.len()}),
                );
                self.snapshot.replace(Some(listing.snapshot));
            }
        }
        Ok(true)
    }

    /// A follow-up call that failed: a `Throttling` backs off every call; anything else is
    /// logged (a check refused with `AccessDenied` usually means the IAM policy lacks the
    /// action, and must not pause the sends).
    pub(super) fn call_failed(&self, result: &CallResult, event: &str) {
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
            .log_error(log_line!({"event": event, "result": result}));
    }
}
