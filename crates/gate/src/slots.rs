//! Slot arithmetic for the gate, pure and clock-free: every function takes `now_ms`.
//!
//! Reservations hand out slots one interval apart (`next_free_ms`), synchronously, so
//! concurrent requests in the object get distinct slots; Throttling pushes the next slot out
//! (exponential backoff). A slot is the earliest a call may leave: when it really leaves is
//! `pacing`'s causal rule, applied by the wire.

use signup_verify_domain::error::retry_after_secs;

use crate::state::GateState;

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Hand the call to the wire for `at_ms`; `pacing` decides when it really leaves.
    Slot { at_ms: u64 },
    /// No slot within the allowed wait. Try again after this many seconds.
    Busy { retry_after_secs: u64 },
}

impl GateState {
    /// A first attempt: the earliest free slot, if it is within `max_wait_ms` of now.
    pub fn reserve(&mut self, now_ms: u64, interval_ms: u64, max_wait_ms: u64) -> Reservation {
        let slot = now_ms.max(self.next_free_ms);
        let wait = slot - now_ms;
        if wait > max_wait_ms {
            return Reservation::Busy {
                retry_after_secs: retry_after_secs(wait - max_wait_ms),
            };
        }
        self.next_free_ms = slot + interval_ms;
        Reservation::Slot { at_ms: slot }
    }

    /// A retry: the earliest free slot plus `jitter_ms`, or `None` if that would pass `deadline_ms`
    /// (the first attempt's arrival plus `GATE_MAX_WAIT_MS`).
    pub fn reserve_retry(
        &mut self,
        now_ms: u64,
        interval_ms: u64,
        jitter_ms: u64,
        deadline_ms: u64,
    ) -> Option<u64> {
        let slot = now_ms.max(self.next_free_ms) + jitter_ms;
        if slot > deadline_ms {
            return None;
        }
        self.next_free_ms = slot + interval_ms;
        Some(slot)
    }

    /// SES answered `Throttling` at `now_ms`: the next slot waits out the [`Backoff`] pause,
    /// which is returned.
    pub fn throttled(&mut self, now_ms: u64, random: u32) -> u64 {
        let pause = self.backoff.throttled(now_ms, random);
        self.next_free_ms = self.next_free_ms.max(self.backoff.until_ms());
        pause
    }

    /// SES accepted a call: back to the normal interval, and a run of configuration errors
    /// (see `gate::handover`) is over.
    pub fn succeeded(&mut self) {
        self.backoff.reset();
        self.config_errors = 0;
    }
}

/// Jitter for a retry, drawn from `random` into `[0, interval_ms / 2]`.
pub fn retry_jitter_ms(random: u32, interval_ms: u64) -> u64 {
    u64::from(random) % (interval_ms / 2 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: u64 = 1000;

    #[test]
    fn an_idle_gate_gives_the_current_instant() {
        let mut gate = GateState::default();
        assert_eq!(
            gate.reserve(5_000, INTERVAL, 10_000),
            Reservation::Slot { at_ms: 5_000 }
        );
        assert_eq!(gate.next_free_ms, 6_000);
    }

    #[test]
    fn concurrent_reservations_get_slots_one_interval_apart() {
        let mut gate = GateState::default();
        let slots: Vec<Reservation> = (0..5)
            .map(|_| gate.reserve(1_000, INTERVAL, 10_000))
            .collect();
        let expected: Vec<Reservation> = (0..5)
            .map(|i| Reservation::Slot {
                at_ms: 1_000 + i * INTERVAL,
            })
            .collect();
        assert_eq!(slots, expected);
    }

    #[test]
    fn a_slot_further_than_the_max_wait_is_busy_with_an_honest_retry_after() {
        let mut gate = GateState {
            next_free_ms: 13_500,
            ..GateState::default()
        };
        // Slot at 13.5 s, now 1 s, max wait 10 s: a retry can succeed 2.5 s from now → 3 s.
        assert_eq!(
            gate.reserve(1_000, INTERVAL, 10_000),
            Reservation::Busy {
                retry_after_secs: 3
            }
        );
        assert_eq!(
            gate.next_free_ms, 13_500,
            "a refused reservation takes nothing"
        );
        assert_eq!(
            gate.reserve(1_000, INTERVAL, 12_500),
            Reservation::Slot { at_ms: 13_500 }
        );
    }

    #[test]
    fn a_zero_max_wait_admits_only_an_immediately_free_gate() {
        let mut gate = GateState::default();
        assert_eq!(gate.reserve(0, INTERVAL, 0), Reservation::Slot { at_ms: 0 });
        assert_eq!(
            gate.reserve(0, INTERVAL, 0),
            Reservation::Busy {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            gate.reserve(1_000, INTERVAL, 0),
            Reservation::Slot { at_ms: 1_000 }
        );
    }

    #[test]
    fn a_retry_adds_jitter_to_the_next_free_slot_and_stops_at_the_deadline() {
        let mut gate = GateState {
            next_free_ms: 3_000,
            ..GateState::default()
        };
        assert_eq!(
            gate.reserve_retry(1_000, INTERVAL, 250, 10_000),
            Some(3_250)
        );
        assert_eq!(gate.next_free_ms, 4_250);
        assert_eq!(gate.reserve_retry(1_000, INTERVAL, 0, 4_000), None);
        assert_eq!(gate.next_free_ms, 4_250, "a refused retry takes nothing");
    }

    #[test]
    fn throttling_pushes_the_next_slot_past_the_pause_and_a_success_resets_the_streak() {
        let mut gate = GateState::default();
        let pauses: Vec<u64> = (0..3).map(|_| gate.throttled(10_000, 0)).collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000]);
        assert_eq!(gate.next_free_ms, 14_000);
        gate.succeeded();
        assert_eq!(gate.throttled(100_000, 0), 1_000);
        assert_eq!(gate.next_free_ms, 101_000);
    }

    #[test]
    fn gate_state_stored_by_the_previous_version_still_loads() {
        // Before the wire (`pacing`), the gate kept the in-flight call and the last answer itself.
        let stored =
            r#"{"next_free_ms":5000,"last_settled_ms":4000,"in_flight":true,"throttle_streak":2}"#;
        let mut gate: GateState = serde_json::from_str(stored).expect("loads");
        assert_eq!(gate.next_free_ms, 5_000);
        assert!(gate.backoff.is_active());
        assert_eq!(gate.throttled(0, 0), 4_000, "the third Throttling in a row");
        let saved = serde_json::to_value(&gate).expect("json");
        assert_eq!(saved["throttle_streak"], 3);
    }

    #[test]
    fn jitter_stays_within_half_an_interval_and_varies_with_the_random_input() {
        let jitters: Vec<u64> = [0u32, 1, 250, 500, 501, u32::MAX]
            .iter()
            .map(|&r| retry_jitter_ms(r, INTERVAL))
            .collect();
        assert!(jitters.iter().all(|&j| j <= INTERVAL / 2), "{jitters:?}");
        assert_eq!(jitters[..4], [0, 1, 250, 500]);
        assert_eq!(jitters[4], 0);
    }
}
