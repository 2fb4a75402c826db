//! The gate's follow-up of every signup it took: tracking rows, status tokens, the detection
//! sweep (`GetIdentityVerificationAttributes`, up to 100 identities a call), human
//! confirmations, webhook delivery and identity clean-up (`DeleteIdentity`).
//!
//! Invariants:
//! - every SES call here takes a slot from the same reservations as the sends, and only when no
//!   signup is queued or being sent directly: sends come first, then checks (a confirmed
//!   signup's first), then clean-up; at most one follow-up call is ever ahead of a new signup;
//! - `/signup/status` is answered from the gate's rows and never calls SES, so any number of
//!   pollers cost nothing beyond the sweep;
//! - an event is stored (with its final id and body) in the same synchronous step as the change
//!   it reports, and leaves the outbox only once the receiver answered 2xx or the retry window
//!   ended; an identity is deleted only after its final event left the outbox.

use serde_json::json;

use super::{Gate, GateRuntime, RETRY_LATER_MS};
use crate::config::WebhookConfig;
use crate::email::EmailAddress;
use crate::error::ApiError;
use crate::gate::queue::{estimated_send_at_ms, rfc3339_utc};
use crate::gate::rpc::{CallRequest, CallResult, SendReply, SenderLink, SignupRef, SignupStatus};
use crate::gate::slots::Reservation;
use crate::gate::store::{GateStore, OutboxEvent, StoreError};
use crate::gate::tracking::{Cleanup, Effects, Signup, SignupState, RETENTION_MS};
use crate::gate::webhook::{self, EventKind};
use crate::redact::tag_of;
use crate::ses::outcome::{Outcome, RetryReason};
use crate::ses::request::{SesCall, MAX_IDENTITIES_PER_CHECK};
use crate::status_token;

/// Records past their retention are looked for this often (and at each object's start).
const FORGET_EVERY_MS: u64 = 3_600_000;

/// A status check also takes the identities due within this long.
const CHECK_LOOKAHEAD_MS: u64 = 60_000;

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
    Delete(String, Signup),
}

/// A signup's row as `track_signup` stored it, and the row it replaced (put back if the signup
/// is taken back).
pub(super) struct Tracked {
    previous: Option<Signup>,
    row: Signup,
}

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// A status token for the signup of `key` at `signed_up_ms`, when tokens are on.
    pub(super) fn status_token(&self, key: &str, signed_up_ms: u64) -> Option<String> {
        let secret = self.config.tracking.status_token_secret.as_ref()?;
        Some(status_token::issue(
            secret.expose().as_bytes(),
            key,
            signed_up_ms,
        ))
    }

    /// Records a new signup (queued until sent). A replaced row's ownership of the identity
    /// carries over: its identity may still be waiting for clean-up.
    pub(super) fn track_signup(
        &self,
        key: &str,
        email: &EmailAddress,
        now: u64,
    ) -> Result<Tracked, StoreError> {
        let previous = self.store.load_signup(key)?;
        let mut row = Signup::queued(email, now);
        row.owned = previous.as_ref().is_some_and(|p| p.owned);
        self.store.store_signup(key, &row)?;
        Ok(Tracked { previous, row })
    }

    /// What the signup's answer means for its row. Returns when the follow-up work it created
    /// is due (the first check of a sent signup, a rejection's webhook event), for the alarm:
    /// a queued signup has none yet (the drain schedules its check when it sends it), and a
    /// signup taken back leaves the work that was already armed.
    pub(super) fn settle_signup(
        &self,
        key: &str,
        tracked: Tracked,
        reply: &SendReply,
    ) -> Option<u64> {
        use crate::gate::rpc::Accepted;
        let (due, result) = match reply {
            // Written from the row `track_signup` stored, not read back: while the signup is in
            // the request no check, confirmation or drain names its row (it is not queued and
            // has no token out yet). With the address limits off, a second signup for the
            // address may store its own row meanwhile; the later answer's row stands.
            Ok(Accepted::Sent { message_id, .. }) => (
                self.store_sent(key, tracked.row, message_id.clone()),
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
            Err(ApiError::UpstreamTimeout) => (self.store_sent(key, tracked.row, None), Ok(())),
            // Neither sent nor queued: as if it never came.
            Err(_) => (
                None,
                match tracked.previous {
                    Some(previous) => self.store.store_signup(key, &previous),
                    None => self.store.forget_signup(key),
                },
            ),
        };
        if let Err(e) = result {
            self.log_store_error(&e);
        }
        due
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
                let row = row.unwrap_or_else(|| Signup::queued(email, signed_up_ms));
                self.store_sent(key, row, message_id)
            }
            Err(e) => {
                self.log_store_error(&e);
                None
            }
        }
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
            self.report(key, &signup, &effects)
        });
        if let Err(e) = result {
            self.log_store_error(&e);
        }
    }

    /// Logs the events (by address tag) and, with a webhook, stores them for delivery.
    fn report(&self, key: &str, signup: &Signup, effects: &Effects) -> Result<(), StoreError> {
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
                || json!({"event": "signup_event", "type": kind.as_str(), "address": tag_of(key)}),
            );
            if self.config.tracking.webhook.is_none() {
                continue;
            }
            self.store.add_event(&OutboxEvent {
                id: webhook::event_id(key, signup.signed_up_ms, kind),
                key: key.to_string(),
                body: webhook::event_body(kind, now, &signup.event_data()),
                created_ms: now,
                next_attempt_ms: now,
                attempts: 0,
                releases_cleanup: matches!(kind, EventKind::Verified | EventKind::Expired)
                    && signup.cleanup == Cleanup::AfterDelivery,
            })?;
        }
        let final_without_cleanup = effects
            .events
            .iter()
            .any(|k| matches!(k, EventKind::Verified | EventKind::Expired))
            && signup.cleanup == Cleanup::Skipped;
        if final_without_cleanup {
            self.update(|g| g.tracking.cleanup_skipped += 1);
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
        let cleanup = self
            .store
            .next_cleanup()?
            .map(|_| (now + self.config.interval_ms).max(self.cleanup_held_until.get()));
        Ok([check, event, cleanup].into_iter().flatten().min())
    }

    /// One step of follow-up, run by the drain when the queue is empty: a webhook delivery, or
    /// one SES call (a check, else a deletion) if a slot is free now.
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
            self.store
                .forget_signups(now.saturating_sub(RETENTION_MS))?;
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
            SesWork::Delete(key, signup) => self.delete(&key, &signup, slot).await?,
        };
        Ok(if made {
            FollowUp::Again
        } else {
            FollowUp::Done(Some(self.runtime.now_ms() + RETRY_LATER_MS))
        })
    }

    /// Due checks first (a confirmed signup's before the rest), then one clean-up.
    fn ses_work_due(&self, now: u64) -> Result<Option<SesWork>, StoreError> {
        // Once one check is due, the call also takes those due soon (up to 100 in all): a
        // call costs the same for 1 identity as for 100.
        let due = self
            .store
            .due_checks(now + CHECK_LOOKAHEAD_MS, MAX_IDENTITIES_PER_CHECK)?;
        if due
            .first()
            .is_some_and(|(_, s)| s.next_check_ms.is_some_and(|t| t <= now))
        {
            return Ok(Some(SesWork::Check(due)));
        }
        if now < self.cleanup_held_until.get() {
            return Ok(None);
        }
        Ok(self
            .store
            .next_cleanup()?
            .map(|(key, signup)| SesWork::Delete(key, signup)))
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
        let statuses = match result {
            CallResult::Answered(Outcome::Checked { statuses }) => statuses,
            failure => {
                self.call_failed(&failure, "status_check_failed");
                self.update(|g| g.tracking.checks_failed += 1);
                if !matches!(
                    failure,
                    CallResult::Answered(Outcome::Retryable(RetryReason::Throttled))
                ) {
                    // Not a hot loop: these signups wait a while before the next try.
                    for (key, mut signup) in due {
                        signup.next_check_ms = Some(now + RETRY_LATER_MS);
                        self.store.store_signup(&key, &signup)?;
                    }
                }
                return Ok(true);
            }
        };
        self.update(|g| {
            g.succeeded();
            g.tracking.checks += 1;
        });
        let tracking = &self.config.tracking;
        for (key, checked) in due {
            // Re-read: a confirmation or a new signup of the address may have come meanwhile.
            let Some(mut signup) = self.store.load_signup(&key)? else {
                continue;
            };
            if signup.signed_up_ms != checked.signed_up_ms {
                continue;
            }
            let status = statuses
                .iter()
                .find(|(identity, _)| identity.eq_ignore_ascii_case(signup.email.as_str()))
                .map(|(_, status)| status.as_str());
            let effects = signup.checked(
                status,
                now,
                tracking.link_ttl_ms,
                tracking.identity_cleanup,
                tracking.webhook.is_some(),
            );
            self.store.store_signup(&key, &signup)?;
            self.report(&key, &signup, &effects)?;
        }
        Ok(true)
    }

    /// One `DeleteIdentity` call for a signup this Worker saw pending, at `slot`.
    async fn delete(&self, key: &str, signup: &Signup, slot: u64) -> Result<bool, StoreError> {
        let call = CallRequest {
            call: SesCall::Delete {
                identity: signup.email.clone(),
            },
            slot_ms: slot,
            attempt: 1,
            address_tag: tag_of(key).to_string(),
            request_id: None,
        };
        let Some(result) = self.call_sender(&call).await else {
            return Ok(false);
        };
        if result != CallResult::Answered(Outcome::Deleted) {
            self.call_failed(&result, "identity_delete_failed");
            self.update(|g| g.tracking.deletes_failed += 1);
            if !matches!(
                result,
                CallResult::Answered(Outcome::Retryable(RetryReason::Throttled))
            ) {
                self.cleanup_held_until
                    .set(self.runtime.now_ms() + RETRY_LATER_MS);
            }
            return Ok(true);
        }
        self.update(|g| {
            g.succeeded();
            g.tracking.identities_deleted += 1;
        });
        self.runtime
            .log_info(|| json!({"event": "identity_deleted", "address": tag_of(key)}));
        if let Some(mut current) = self.store.load_signup(key)? {
            if current.cleanup == Cleanup::Due {
                current.cleanup = Cleanup::Done;
                self.store.store_signup(key, &current)?;
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
        let key = hex::decode(webhook.key.expose()).unwrap_or_default();
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
        if let Some(mut signup) = self.store.load_signup(&event.key)? {
            if signup.cleanup == Cleanup::AfterDelivery {
                signup.cleanup = Cleanup::Due;
                self.store.store_signup(&event.key, &signup)?;
            }
        }
        Ok(())
    }

    /// The row a token names, if it is still that signup.
    fn named_signup(&self, signup: &SignupRef) -> Result<Signup, ApiError> {
        match self.store.load_signup(&signup.key) {
            Ok(Some(row)) if row.signed_up_ms == signup.signed_up_ms => Ok(row),
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

    /// A person pressed the confirmation button. A signup still pending is checked at once if
    /// nothing else waits for a slot, else first in the next sweep.
    pub async fn confirm(&self, signup: &SignupRef) -> Result<SignupStatus, ApiError> {
        let status = self.take_confirmation(signup).await;
        self.save_state();
        status
    }

    async fn take_confirmation(&self, signup: &SignupRef) -> Result<SignupStatus, ApiError> {
        let mut row = self.named_signup(signup)?;
        let (effects, check_now) = row.confirm();
        let stored = self
            .store
            .store_signup(&signup.key, &row)
            .and_then(|()| self.report(&signup.key, &row, &effects));
        if let Err(e) = stored {
            self.log_store_error(&e);
            return Err(ApiError::Unavailable);
        }
        self.runtime
            .log_info(|| json!({"event": "signup_confirmed", "address": tag_of(&signup.key)}));
        if check_now {
            let now = self.runtime.now_ms();
            let idle = !self.draining.get()
                && self.direct_by_domain.borrow().is_empty()
                && self.store.queue_len().is_ok_and(|n| n == 0)
                && self.state.borrow().paused_until_ms.is_none_or(|t| t <= now);
            let slot = if idle {
                self.update(|g| g.reserve(now, self.config.interval_ms, self.config.max_wait_ms))
            } else {
                Reservation::Busy {
                    retry_after_secs: 1,
                }
            };
            if let Reservation::Slot { at_ms } = slot {
                if let Err(e) = self.check(vec![(signup.key.clone(), row)], at_ms).await {
                    self.log_store_error(&e);
                }
            }
        }
        self.arm_follow_up().await;
        self.status(signup)
    }

    fn view(&self, key: &str, signup: &Signup) -> SignupStatus {
        let now = self.runtime.now_ms();
        let position = match signup.state {
            SignupState::Queued => self.store.position_of(key).ok().flatten(),
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
            position,
            estimated_send_at,
            sent_at: signup.sent_ms.map(rfc3339_utc),
            verified_at: signup.verified_ms.map(rfc3339_utc),
            reason: signup.reason.clone(),
        }
    }
}
