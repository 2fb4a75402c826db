//! What the gate answers about itself and about one signup: `GET /gate/stats`, and
//! `/signup/status` from the gate's own rows (never an SES call, so pollers cost nothing
//! beyond the sweep; a queued signup's position comes from one ordered read a second).

use super::*;
use crate::messages::GateStats;
use crate::messages::SenderLink;
use crate::messages::SignupStatus;
use crate::queue::estimated_send_at_ms;
use crate::store::GateStore;
use crate::store::StoreError;
use crate::tracking::Signup;
use crate::tracking::SignupState;
use crate::usage::CostStats;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_ses::time::rfc3339_utc;

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// `GET /gate/stats`.
    pub fn stats(&self) -> Result<GateStats, StoreError> {
        let now = self.runtime.now_ms();
        let used = self.store.take_row_usage();
        self.count(|g| g.cost.add_rows(used));
        let gate = self.state.borrow();
        let paused_until = gate.paused_until_ms.filter(|t| *t > now);
        let backoff = if gate.backoff.is_active() {
            gate.next_free_ms.saturating_sub(now)
        } else {
            0
        };
        let stats = GateStats {
            queue_length: self.store.queue_len()?,
            oldest_item_age_ms: self
                .store
                .oldest_enqueued_at()?
                .map(|t| now.saturating_sub(t)),
            sends_last_minute: gate.sends.last_minute(now),
            sends_last_hour: gate.sends.last_hour(now),
            throttles_seen: gate.counters.throttles_seen,
            drops: gate.counters.drops.clone(),
            interval_ms: self.config.interval_ms,
            current_interval_ms: self.config.interval_ms.max(backoff),
            paused_until: paused_until.map(rfc3339_utc),
            paused_reason: paused_until.map(|_| {
                "SES reports a configuration or credentials error (see the ses_call log lines); \
                 the queue keeps every signup and tries again when the pause ends"
                    .to_string()
            }),
            daily_taken: gate.budget.taken(now),
            daily_budget: self.config.daily_send_budget,
            pending_checks: self.checks.borrow().len() as u64,
            webhook_backlog: self.store.event_backlog()?,
            identity_cleanup: self.config.tracking.identity_cleanup,
            identity_snapshot_at: self
                .snapshot
                .borrow()
                .as_ref()
                .map(|s| rfc3339_utc(s.taken_ms)),
            identity_snapshot_size: self.snapshot.borrow().as_ref().map(|s| s.len() as u64),
            tracking: gate.tracking.clone(),
            cost: CostStats::from(&gate.cost),
        };
        // The stats' own reads are the operator's, not a signup's: left out of the counts.
        self.store.take_row_usage();
        Ok(stats)
    }

    /// The row a credential names, if it is still that signup (same time, same nonce).
    pub(super) fn named_signup(&self, signup: &SignupRef) -> Result<Signup, ApiError> {
        match self.load_signup(&signup.key) {
            Ok(Some(row))
                if row.signed_up_ms == signup.signed_up_ms
                    && !row.nonce.is_empty()
                    && row.nonce == signup.nonce =>
            {
                match row.moved_to {
                    Some(to) => Err(ApiError::Moved { to: Box::new(to) }),
                    None => Ok(row),
                }
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

    pub(super) fn view(&self, key: &str, signup: &Signup) -> SignupStatus {
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
