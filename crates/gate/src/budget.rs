//! `DailyBudget`: the most signups the gate takes (sends or queues) in 24 hours, so a flood can
//! never push the operator's SES account past its sending quota or its 10,000 identities. The
//! window starts at the first signup it counts; a signup that ends up neither sent nor queued is
//! given back. Pure: time is passed in.

use serde::{Deserialize, Serialize};

use crate::cooldown::DAY_MS;
use signup_verify_domain::error::retry_after_secs;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyBudget {
    window_start_ms: u64,
    taken: u64,
}

impl DailyBudget {
    /// Takes one signup out of `limit` (0: no limit), or refuses with the seconds until the
    /// window ends.
    pub fn take(&mut self, now_ms: u64, limit: u64) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        if self.taken == 0 || now_ms >= self.window_start_ms + DAY_MS {
            *self = Self {
                window_start_ms: now_ms,
                taken: 0,
            };
        }
        if self.taken >= limit {
            return Err(retry_after_secs(self.window_start_ms + DAY_MS - now_ms));
        }
        self.taken += 1;
        Ok(())
    }

    /// A signup taken but neither sent nor queued.
    pub fn give_back(&mut self) {
        self.taken = self.taken.saturating_sub(1);
    }

    /// Signups taken in the current window, as of `now_ms`.
    pub fn taken(&self, now_ms: u64) -> u64 {
        if now_ms >= self.window_start_ms + DAY_MS {
            0
        } else {
            self.taken
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_past_its_limit_until_the_window_ends() {
        let mut budget = DailyBudget::default();
        let start = 10 * DAY_MS + 12_345;
        for i in 0..3 {
            assert_eq!(budget.take(start + i * 1_000, 3), Ok(()));
        }
        assert_eq!(
            budget.take(start + 3_600_000, 3),
            Err((DAY_MS - 3_600_000) / 1000)
        );
        assert_eq!(budget.taken(start + 3_600_000), 3);
        assert_eq!(budget.take(start + DAY_MS, 3), Ok(()), "a new window");
        assert_eq!(budget.taken(start + DAY_MS), 1);
    }

    #[test]
    fn a_signup_given_back_frees_its_place_and_zero_is_no_limit() {
        let mut budget = DailyBudget::default();
        assert_eq!(budget.take(0, 1), Ok(()));
        assert!(budget.take(1, 1).is_err());
        budget.give_back();
        assert_eq!(budget.take(2, 1), Ok(()));
        let mut unlimited = DailyBudget::default();
        for i in 0..10_000 {
            assert_eq!(unlimited.take(i, 0), Ok(()));
        }
    }
}
