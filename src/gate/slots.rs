//! Slot arithmetic for the gate, pure and clock-free: every function takes `now_ms`.
//!
//! Two numbers are kept (and persisted by the Durable Object):
//! - `next_free_ms`: the earliest time the next reservation may be given;
//! - `last_departure_ms`: when the previous SES call actually left.
//!
//! Reservations are made synchronously (before any await), so concurrent requests in the object
//! get distinct slots. Because timers can fire late, the departure check
//! ([`GateState::departure_wait`]) enforces the spacing against the *actual* previous departure,
//! not the planned slot: calls leave at least `interval_ms` apart whatever the timing.

use serde::{Deserialize, Serialize};

use crate::error::retry_after_secs;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    pub next_free_ms: u64,
    pub last_departure_ms: Option<u64>,
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Wait until `at_ms`, then (after [`GateState::departure_wait`] says 0) send.
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

    /// How long a call holding `slot_ms` must still wait before it may leave: until its slot, and
    /// until `interval_ms` after the previous actual departure. 0 means go now.
    pub fn departure_wait(&self, now_ms: u64, slot_ms: u64, interval_ms: u64) -> u64 {
        let after_previous = self
            .last_departure_ms
            .map_or(0, |last| last.saturating_add(interval_ms));
        slot_ms.max(after_previous).saturating_sub(now_ms)
    }

    /// Records that a call left at `now_ms`; later reservations start at least one interval on.
    pub fn depart(&mut self, now_ms: u64, interval_ms: u64) {
        self.last_departure_ms = Some(now_ms);
        self.next_free_ms = self.next_free_ms.max(now_ms + interval_ms);
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
            last_departure_ms: None,
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
    fn the_departure_waits_for_the_slot_and_for_the_previous_actual_departure() {
        let mut gate = GateState::default();
        assert_eq!(gate.departure_wait(100, 400, INTERVAL), 300);
        assert_eq!(gate.departure_wait(400, 400, INTERVAL), 0);
        // The previous call's timer fired late: it left at 1_300 instead of 1_000.
        gate.depart(1_300, INTERVAL);
        assert_eq!(gate.departure_wait(2_000, 2_000, INTERVAL), 300);
        assert_eq!(gate.departure_wait(2_300, 2_000, INTERVAL), 0);
    }

    #[test]
    fn a_departure_pushes_the_next_free_slot_past_itself() {
        let mut gate = GateState {
            next_free_ms: 500,
            last_departure_ms: None,
        };
        gate.depart(2_000, INTERVAL);
        assert_eq!(
            gate.reserve(2_100, INTERVAL, 10_000),
            Reservation::Slot { at_ms: 3_000 }
        );
    }

    #[test]
    fn a_retry_adds_jitter_to_the_next_free_slot_and_stops_at_the_deadline() {
        let mut gate = GateState {
            next_free_ms: 3_000,
            last_departure_ms: None,
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
    fn jitter_stays_within_half_an_interval_and_varies_with_the_random_input() {
        let jitters: Vec<u64> = [0u32, 1, 250, 500, 501, u32::MAX]
            .iter()
            .map(|&r| retry_jitter_ms(r, INTERVAL))
            .collect();
        assert!(jitters.iter().all(|&j| j <= INTERVAL / 2), "{jitters:?}");
        assert_eq!(jitters[..4], [0, 1, 250, 500]);
        assert_eq!(jitters[4], 0);
    }

    #[test]
    fn simulated_traffic_never_departs_closer_than_one_interval() {
        // Arrivals in bursts, timers firing up to 37 ms late in a repeating pattern.
        let mut gate = GateState::default();
        let mut departures = Vec::new();
        let mut pending: Vec<u64> = Vec::new();
        for arrival in [0u64, 0, 0, 10, 20, 3_000, 3_001, 3_002, 9_000] {
            if let Reservation::Slot { at_ms } = gate.reserve(arrival, INTERVAL, 60_000) {
                pending.push(at_ms);
            }
        }
        for (i, slot) in pending.into_iter().enumerate() {
            let mut now = slot + (i as u64 * 37) % 41;
            loop {
                let wait = gate.departure_wait(now, slot, INTERVAL);
                if wait == 0 {
                    break;
                }
                now += wait + (i as u64 * 13) % 7;
            }
            gate.depart(now, INTERVAL);
            departures.push(now);
        }
        assert_eq!(departures.len(), 9);
        assert!(
            departures.windows(2).all(|w| w[1] >= w[0] + INTERVAL),
            "{departures:?}"
        );
    }
}
