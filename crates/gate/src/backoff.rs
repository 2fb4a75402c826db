//! `Backoff`: what the gate does after SES answers `Throttling`. Nothing leaves for 1 s,
//! 2 s, 4 s… (doubling with each `Throttling` in a row, plus up to half again of jitter, at most
//! a minute); a success starts again from one second.
//!
//! One type, one rule, two instances: the wire (`pacing`) holds the calls already in line with
//! its own, and the gate's slots push the next slot out with their own, so `estimatedSendAt`
//! stays honest. Each draws its own jitter. Pure: time and randomness are passed in.

use serde::{Deserialize, Serialize};

/// The first pause, and the longest.
pub const BACKOFF_START_MS: u64 = 1_000;
pub const BACKOFF_CAP_MS: u64 = 60_000;

/// `Throttling` answers in a row since the last success, and the end of the pause they started.
/// Only the streak is stored: the gate keeps the pause in its next free slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Backoff {
    streak: u32,
    #[serde(skip)]
    until_ms: u64,
}

impl Backoff {
    /// One more `Throttling`, answered at `now_ms`: holds until `now_ms` plus the pause (never
    /// shortening a hold already running) and returns the pause, with jitter drawn from `random`.
    pub fn throttled(&mut self, now_ms: u64, random: u32) -> u64 {
        self.streak = self.streak.saturating_add(1);
        let doublings = (self.streak - 1).min(16);
        let base = BACKOFF_START_MS
            .saturating_mul(1 << doublings)
            .min(BACKOFF_CAP_MS);
        let pause = (base + u64::from(random) % (base / 2 + 1)).min(BACKOFF_CAP_MS);
        self.until_ms = self.until_ms.max(now_ms + pause);
        pause
    }

    /// Nothing may leave before this (0: no hold).
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }

    /// A success: the next `Throttling` pauses one second again. A hold already running stays.
    pub fn reset(&mut self) {
        self.streak = 0;
    }

    /// Whether the last answer was a `Throttling`.
    pub fn is_active(&self) -> bool {
        self.streak > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_a_second_to_a_minute_and_a_success_starts_again() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..8).map(|_| backoff.throttled(10_000, 0)).collect();
        assert_eq!(
            pauses,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert!(backoff.is_active());
        backoff.reset();
        assert!(!backoff.is_active());
        assert_eq!(backoff.throttled(100_000, 0), 1_000);
    }

    #[test]
    fn jitter_adds_up_to_half_the_pause_and_never_passes_the_cap() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.throttled(0, 499), 1_499);
        let mut long = Backoff {
            streak: 30,
            until_ms: 0,
        };
        assert_eq!(long.throttled(0, u32::MAX), BACKOFF_CAP_MS);
    }

    #[test]
    fn the_hold_runs_from_the_answer_and_is_never_shortened() {
        let mut backoff = Backoff::default();
        backoff.throttled(5_000, 0);
        assert_eq!(backoff.until_ms(), 6_000);
        backoff.throttled(5_100, 0);
        assert_eq!(backoff.until_ms(), 7_100, "the second pause is 2 s");
        backoff.reset();
        assert_eq!(
            backoff.until_ms(),
            7_100,
            "a success does not cut a hold short"
        );
        let mut late_small = Backoff {
            until_ms: 50_000,
            ..Backoff::default()
        };
        late_small.throttled(1_000, 0);
        assert_eq!(late_small.until_ms(), 50_000);
    }

    #[test]
    fn only_the_streak_is_stored() {
        let mut backoff = Backoff::default();
        backoff.throttled(1_000, 0);
        backoff.throttled(1_000, 0);
        assert_eq!(serde_json::to_string(&backoff).expect("json"), "2");
        let loaded: Backoff = serde_json::from_str("2").expect("loads");
        assert_eq!((loaded.streak, loaded.until_ms()), (2, 0));
    }
}
