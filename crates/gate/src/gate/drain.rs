//! The drain: the alarm sends the queue's head at each slot, fairly across recipient domains,
//! and settles its fate after each answer (`queue::settle_head`); old items expire; the alarm
//! is re-armed until the queue is empty, within a budget per alarm and under a watchdog.

use super::follow_up::FollowUp;
use super::*;
use crate::messages::CallRequest;
use crate::messages::CallResult;
use crate::messages::SenderLink;
use crate::queue::settle_head;
use crate::queue::DropReason;
use crate::queue::HeadResult;
use crate::queue::QueuedItem;
use crate::slots::Reservation;
use crate::store::GateStore;
use crate::store::StoreError;
use crate::tracking::SignupState;
use signup_verify_domain::log_line;

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// Sends the head of the queue at each slot until the queue is empty, paused, or this
    /// alarm's budget is spent; then re-arms the alarm.
    pub async fn drain(&self) {
        self.drain_queue().await;
        self.save_state();
    }

    pub(super) async fn drain_queue(&self) {
        self.runtime.log_info(
            || log_line!({"event": "alarm", "queue_length": self.store.queue_len().ok()}),
        );
        if self.draining.replace(true) {
            return;
        }
        let started = self.runtime.now_ms();
        self.arm_alarm(started + WATCHDOG_MS).await;
        let next_alarm = loop {
            let now = self.runtime.now_ms();
            if let Err(e) = self.expire_old_items(now) {
                self.log_store_error(&e);
                break Some(now + RETRY_LATER_MS);
            }
            let head = match self.store.head() {
                Ok(Some(head)) => head,
                Ok(None) => match self.follow_up(now, started).await {
                    FollowUp::Again => continue,
                    FollowUp::Done(next) => break next,
                },
                Err(StoreError::UnreadableItem { id }) => {
                    self.runtime
                        .log_error(log_line!({"event": "queue_drop", "reason": "unparseable_row"}));
                    match self.store.remove(id) {
                        Ok(()) => continue,
                        Err(e) => {
                            self.log_store_error(&e);
                            break Some(now + RETRY_LATER_MS);
                        }
                    }
                }
                Err(e) => {
                    self.log_store_error(&e);
                    break Some(now + RETRY_LATER_MS);
                }
            };
            let paused_until = self.state.borrow().paused_until_ms.filter(|t| *t > now);
            if let Some(until) = paused_until {
                // A region that stays paused hands its queue over, item by item, within the
                // alarm's budget; an item no region takes waits out the pause here.
                if self.hands_over()
                    && now < started + DRAIN_BUDGET_MS
                    && self.hand_over_head(&head).await
                {
                    continue;
                }
                break Some(until);
            }
            let next_free = self.state.borrow().next_free_ms.max(now);
            if next_free >= started + DRAIN_BUDGET_MS {
                break Some(next_free);
            }
            let Reservation::Slot { at_ms: slot } =
                self.update(|g| g.reserve(now, self.config.interval_ms, u64::MAX))
            else {
                break Some(next_free);
            };
            let call = CallRequest::send(head.recipient(), slot, head.attempts + 1);
            let Some(result) = self.call_sender(&call).await else {
                break Some(self.runtime.now_ms() + RETRY_LATER_MS);
            };
            if let Err(e) = self.settle(&head, result) {
                // The queue cannot be trusted to move on: stop rather than send the head twice.
                self.log_store_error(&e);
                break Some(self.runtime.now_ms() + RETRY_LATER_MS);
            }
        };
        self.draining.set(false);
        match next_alarm {
            Some(at) => self.arm_alarm(at).await,
            // Only the watchdog is left: the next signup to queue must set an alarm for now.
            None => self.alarm_at.set(None),
        }
    }

    /// Drops every item older than `QUEUE_MAX_AGE_SECONDS`, counted and logged.
    pub(super) fn expire_old_items(&self, now: u64) -> Result<(), StoreError> {
        let max_age = self.config.queue_max_age_ms;
        if max_age == 0 {
            return Ok(());
        }
        let expired_keys = self.store.expire(now.saturating_sub(max_age))?;
        for key in &expired_keys {
            self.signup_failed(
                key,
                SignupState::Dropped,
                Some(DropReason::Expired.as_str()),
            );
        }
        let expired = expired_keys.len() as u64;
        if expired > 0 {
            self.update(|g| {
                *g.counters
                    .drops
                    .entry(DropReason::Expired.as_str().into())
                    .or_default() += expired
            });
            self.runtime.log_error(log_line!({"event": "queue_drop", "reason": DropReason::Expired.as_str(), "count": expired, "max_age_ms": max_age}));
        }
        Ok(())
    }

    /// Applies one answer for the head to the gate state, the queue and the send log.
    pub(super) fn settle(&self, head: &QueuedItem, result: CallResult) -> Result<(), StoreError> {
        let (now, random) = (self.runtime.now_ms(), self.runtime.random_u32());
        let max_attempts = self.config.ses_max_attempts;
        let outcome = self.update(|g| {
            let outcome = settle_head(g, head, result, now, random, max_attempts);
            if outcome.leaves_queue() {
                g.served_tag = g.served_tag.max(head.tag);
            }
            outcome
        });
        self.log_head_result(&outcome, head);
        match outcome {
            HeadResult::WillRetry { attempts } => self.store.set_attempts(head.id, attempts)?,
            ref left if left.leaves_queue() => self.store.remove(head.id)?,
            _ => {}
        }
        match &outcome {
            HeadResult::Sent { message_id } => {
                self.record_send();
                self.signup_sent(
                    &head.key,
                    &head.email,
                    head.enqueued_at_ms,
                    message_id.clone(),
                );
            }
            HeadResult::Dropped {
                reason: DropReason::Rejected,
                ..
            } => self.signup_failed(&head.key, SignupState::Rejected, None),
            HeadResult::Dropped { reason, .. } => {
                self.signup_failed(&head.key, SignupState::Dropped, Some(reason.as_str()))
            }
            _ => {}
        }
        Ok(())
    }

    /// Makes sure the alarm comes by `at_ms`: sets it unless a drain runs (it sets the next
    /// alarm when it ends) or this object already set one that soon.
    pub(super) async fn alarm_by(&self, at_ms: u64) {
        if !self.draining.get() && self.alarm_at.get().is_none_or(|armed| armed > at_ms) {
            self.arm_alarm(at_ms).await;
        }
    }

    /// Sets the alarm for `at_ms`; a failure is logged (the next signup to queue tries again).
    pub(super) async fn arm_alarm(&self, at_ms: u64) {
        self.count(|g| g.cost.alarms_set = g.cost.alarms_set.saturating_add(1));
        self.save_state();
        self.alarm_at.set(Some(at_ms));
        if let Err(error) = self.runtime.set_alarm(at_ms).await {
            self.alarm_at.set(None);
            self.runtime
                .log_error(log_line!({"event": "alarm_not_set", "error": error}));
        }
    }
}
