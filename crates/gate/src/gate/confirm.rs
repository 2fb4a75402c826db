//! A person's confirmation: it counts only once the link was opened. The gate asks SES at once
//! for that one signup (the next slot within `GATE_MAX_WAIT_MS`, one at a time, at most once per
//! signup every `CONFIRM_CHECK_GAP_MS`, only while the queue is empty); before the link is
//! opened it is refused and recorded nowhere.

use super::*;
use crate::messages::SenderLink;
use crate::messages::SignupStatus;
use crate::slots::Reservation;
use crate::store::GateStore;
use crate::tracking::Confirmation;
use crate::tracking::Signup;
use crate::tracking::SignupState;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::log_line;
use signup_verify_domain::redact::tag_of;
use signup_verify_domain::status_token::SignupRef;

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// A person pressed the confirmation button. It counts only once the link was opened: a
    /// signup not seen verified yet is checked at once (see `check_before_confirming`), and the
    /// confirmation is refused unless that check saw it verified.
    pub async fn confirm(&self, signup: &SignupRef) -> Result<SignupStatus, ApiError> {
        let status = self.take_confirmation(signup).await;
        self.save_state();
        status
    }

    pub(super) async fn take_confirmation(
        &self,
        signup: &SignupRef,
    ) -> Result<SignupStatus, ApiError> {
        let mut row = self.named_signup(signup)?;
        if row.state == SignupState::Sent {
            self.check_before_confirming(signup, &mut row).await?;
        }
        let answer = match row.confirm() {
            Confirmation::Recorded(effects) => {
                let stored = self
                    .put_signup(&signup.key, &row)
                    .and_then(|()| self.finished(&row, &effects));
                if let Err(e) = stored {
                    self.log_store_error(&e);
                    return Err(ApiError::Unavailable);
                }
                self.runtime.log_info(
                    || log_line!({"event": "signup_confirmed", "address": tag_of(&signup.key)}),
                );
                Ok(self.view(&signup.key, &row))
            }
            Confirmation::Already => Ok(self.view(&signup.key, &row)),
            Confirmation::NotYetSeen | Confirmation::Refused => {
                self.update(|g| g.tracking.confirmations_refused += 1);
                self.runtime.log_info(
                    || log_line!({"event": "confirmation_refused", "status": row.state.as_str(), "address": tag_of(&signup.key)}),
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
    pub(super) async fn check_before_confirming(
        &self,
        signup: &SignupRef,
        row: &mut Signup,
    ) -> Result<(), ApiError> {
        let now = self.runtime.now_ms();
        let at_once = row.check_first(now);
        if let Err(e) = self.put_signup(&signup.key, row) {
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
}
