//! Slot arithmetic for the gate, pure and clock-free: every function takes `now_ms`.
//!
//! Reservations hand out slots one interval apart (`next_free_ms`), synchronously, so
//! concurrent requests in the object get distinct slots. The departure rule is causal: a call
//! leaves only when no other call is in flight and `interval + CLOCK_GUARD_MS` has passed since
//! the previous call was *answered*. SES received the previous call before it answered, so SES
//! sees calls at least one interval apart whatever happened between the gate and the wire:
//! network latency, timer slop, a cold isolate, or the output gate holding a fetch until earlier
//! storage writes are durable, none of which the Workers clock (frozen during CPU work) can see.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::retry_after_secs;
use crate::gate::queue::QueueCounters;

/// The Workers clock is in whole milliseconds: an answer read at 1000 may have come at 1000.9.
pub const CLOCK_GUARD_MS: u64 = 1;
/// After SES says Throttling the gate pauses 1 s, 2 s, 4 s… (plus jitter), at most this long.
pub const BACKOFF_START_MS: u64 = 1_000;
pub const BACKOFF_CAP_MS: u64 = 60_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    /// The earliest time the next reservation may be given.
    pub next_free_ms: u64,
    /// When the previous SES call was answered (or given up on), or the object restarted.
    pub last_settled_ms: Option<u64>,
    /// An SES call has left and not been answered yet.
    pub in_flight: bool,
    /// `Throttling` answers since the last success.
    #[serde(default)]
    pub throttle_streak: u32,
    /// While SES says the configuration is broken, the queue waits until then.
    #[serde(default)]
    pub paused_until_ms: Option<u64>,
    /// For `GET /gate/stats`.
    #[serde(default)]
    pub counters: QueueCounters,
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Wait until `at_ms`, then until [`GateState::departure`] says go.
    Slot { at_ms: u64 },
    /// No slot within the allowed wait. Try again after this many seconds.
    Busy { retry_after_secs: u64 },
}

/// What a call holding a slot should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    Go,
    WaitMs(u64),
    /// Another call is in flight; check again once it is answered.
    WaitForAnswer,
    /// A call holding an earlier slot leaves first; check again once it has.
    WaitForTurn,
}

/// A place in line for a call holding a slot, from [`Waiting::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket {
    slot_ms: u64,
    serial: u64,
}

/// The calls holding a slot and waiting to leave, in slot order. Only the first may leave, so
/// calls leave in the order their slots were given however their timers fire, and the object
/// can tell at any event whether the first one is due (see `SesGate::pump`).
#[derive(Debug, Default)]
pub struct Waiting {
    line: BTreeSet<Ticket>,
    serials: u64,
}

impl Waiting {
    pub fn join(&mut self, slot_ms: u64) -> Ticket {
        self.serials += 1;
        let ticket = Ticket {
            slot_ms,
            serial: self.serials,
        };
        self.line.insert(ticket);
        ticket
    }

    /// The call left, or gave up its place.
    pub fn leave(&mut self, ticket: Ticket) {
        self.line.remove(&ticket);
    }

    /// Whether the call holding `ticket` may leave now.
    pub fn departure(
        &self,
        gate: &GateState,
        ticket: Ticket,
        now_ms: u64,
        interval_ms: u64,
    ) -> Departure {
        if self.line.first() != Some(&ticket) {
            return Departure::WaitForTurn;
        }
        gate.departure(now_ms, ticket.slot_ms, interval_ms)
    }

    /// Whether the first call in line may leave now.
    pub fn first_is_due(&self, gate: &GateState, now_ms: u64, interval_ms: u64) -> bool {
        self.line.first().is_some_and(|&first| {
            gate.departure(now_ms, first.slot_ms, interval_ms) == Departure::Go
        })
    }
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

    /// Whether a call holding `slot_ms` may leave now.
    pub fn departure(&self, now_ms: u64, slot_ms: u64, interval_ms: u64) -> Departure {
        if self.in_flight {
            return Departure::WaitForAnswer;
        }
        let after_previous = self
            .last_settled_ms
            .map_or(0, |settled| settled + interval_ms + CLOCK_GUARD_MS);
        match slot_ms.max(after_previous).saturating_sub(now_ms) {
            0 => Departure::Go,
            wait => Departure::WaitMs(wait),
        }
    }

    /// Records that a call left at `now_ms`.
    pub fn depart(&mut self, now_ms: u64, interval_ms: u64) {
        self.in_flight = true;
        self.next_free_ms = self.next_free_ms.max(now_ms + interval_ms);
    }

    /// Records that the call in flight was answered (or abandoned) at `now_ms`.
    pub fn settle(&mut self, now_ms: u64, interval_ms: u64) {
        self.in_flight = false;
        self.last_settled_ms = Some(self.last_settled_ms.map_or(now_ms, |t| t.max(now_ms)));
        self.next_free_ms = self.next_free_ms.max(now_ms + interval_ms + CLOCK_GUARD_MS);
    }

    /// SES answered `Throttling` at `now_ms`: nothing leaves for 1 s, 2 s, 4 s… (doubling with
    /// each throttle in a row, plus up to half again of jitter, capped at a minute). Returns the
    /// pause.
    pub fn throttled(&mut self, now_ms: u64, random: u32) -> u64 {
        self.throttle_streak = self.throttle_streak.saturating_add(1);
        let doublings = (self.throttle_streak - 1).min(16);
        let base = BACKOFF_START_MS
            .saturating_mul(1 << doublings)
            .min(BACKOFF_CAP_MS);
        let pause = (base + u64::from(random) % (base / 2 + 1)).min(BACKOFF_CAP_MS);
        self.next_free_ms = self.next_free_ms.max(now_ms + pause);
        pause
    }

    /// SES accepted a call: back to the normal interval.
    pub fn succeeded(&mut self) {
        self.throttle_streak = 0;
    }

    /// After a restart: whatever the old object had in flight reached SES by now at the latest,
    /// so the next call keeps an interval from the restart.
    pub fn recover(&mut self, now_ms: u64, interval_ms: u64) {
        self.settle(now_ms, interval_ms);
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
    fn the_departure_waits_for_the_slot_the_answer_and_an_interval_after_the_answer() {
        let mut gate = GateState::default();
        assert_eq!(gate.departure(100, 400, INTERVAL), Departure::WaitMs(300));
        assert_eq!(gate.departure(400, 400, INTERVAL), Departure::Go);
        gate.depart(400, INTERVAL);
        assert_eq!(
            gate.departure(5_000, 1_400, INTERVAL),
            Departure::WaitForAnswer
        );
        // The answer came late, at 1_300: the next call waits until 2_301, not its slot at 1_400.
        gate.settle(1_300, INTERVAL);
        assert_eq!(
            gate.departure(1_400, 1_400, INTERVAL),
            Departure::WaitMs(901)
        );
        assert_eq!(gate.departure(2_301, 1_400, INTERVAL), Departure::Go);
    }

    #[test]
    fn settling_pushes_the_next_reservation_past_the_answer() {
        let mut gate = GateState::default();
        gate.depart(2_000, INTERVAL);
        gate.settle(2_500, INTERVAL);
        assert_eq!(
            gate.reserve(2_600, INTERVAL, 10_000),
            Reservation::Slot { at_ms: 3_501 }
        );
    }

    #[test]
    fn a_departure_pushes_the_next_free_slot_past_itself() {
        let mut gate = GateState {
            next_free_ms: 500,
            ..GateState::default()
        };
        gate.depart(2_000, INTERVAL);
        assert_eq!(
            gate.reserve(2_100, INTERVAL, 10_000),
            Reservation::Slot { at_ms: 3_000 }
        );
    }

    #[test]
    fn a_restart_counts_as_an_answer_at_the_restart() {
        let mut gate = GateState::default();
        gate.depart(1_000, INTERVAL);
        gate.recover(1_200, INTERVAL);
        assert!(!gate.in_flight);
        assert_eq!(
            gate.departure(1_300, 1_300, INTERVAL),
            Departure::WaitMs(901)
        );
        let mut idle = GateState {
            last_settled_ms: Some(50_000),
            ..GateState::default()
        };
        idle.recover(9_999, INTERVAL);
        assert_eq!(
            idle.last_settled_ms,
            Some(50_000),
            "never moves the last answer back"
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
    fn throttling_backs_off_exponentially_with_jitter_up_to_a_minute_and_a_success_resets_it() {
        let mut gate = GateState::default();
        let pauses: Vec<u64> = (0..8).map(|_| gate.throttled(10_000, 0)).collect();
        assert_eq!(
            pauses,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(gate.next_free_ms, 70_000);
        gate.succeeded();
        assert_eq!(gate.throttled(100_000, 0), 1_000);
        assert_eq!(gate.next_free_ms, 101_000);
        let mut jittered = GateState::default();
        let pause = jittered.throttled(0, 499);
        assert_eq!(pause, 1_499, "jitter adds up to half the pause");
        let mut capped = GateState {
            throttle_streak: 30,
            ..GateState::default()
        };
        assert_eq!(capped.throttled(0, u32::MAX), BACKOFF_CAP_MS);
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
    fn waiting_calls_leave_in_slot_order_whatever_order_they_joined_in() {
        let gate = GateState::default();
        let mut waiting = Waiting::default();
        let late = waiting.join(300);
        let early = waiting.join(100);
        let same_slot_second = waiting.join(100);
        assert_eq!(
            waiting.departure(&gate, late, 1_000, INTERVAL),
            Departure::WaitForTurn
        );
        assert_eq!(
            waiting.departure(&gate, same_slot_second, 1_000, INTERVAL),
            Departure::WaitForTurn
        );
        assert_eq!(
            waiting.departure(&gate, early, 1_000, INTERVAL),
            Departure::Go
        );
        waiting.leave(early);
        assert_eq!(
            waiting.departure(&gate, same_slot_second, 1_000, INTERVAL),
            Departure::Go
        );
        waiting.leave(same_slot_second);
        assert_eq!(
            waiting.departure(&gate, late, 1_000, INTERVAL),
            Departure::Go
        );
    }

    #[test]
    fn the_first_call_in_line_is_due_only_when_the_gate_lets_it_go() {
        let mut gate = GateState::default();
        let mut waiting = Waiting::default();
        assert!(!waiting.first_is_due(&gate, 0, INTERVAL), "nobody waits");
        let first = waiting.join(500);
        waiting.join(400_000);
        assert!(!waiting.first_is_due(&gate, 499, INTERVAL));
        assert!(waiting.first_is_due(&gate, 500, INTERVAL));
        gate.depart(500, INTERVAL);
        waiting.leave(first);
        assert!(
            !waiting.first_is_due(&gate, 900_000, INTERVAL),
            "a call is in flight"
        );
        gate.settle(600, INTERVAL);
        assert!(!waiting.first_is_due(&gate, 1_600, INTERVAL));
        assert!(waiting.first_is_due(&gate, 400_000, INTERVAL));
    }

    #[test]
    fn a_call_that_gives_up_its_place_lets_the_next_one_go() {
        let gate = GateState::default();
        let mut waiting = Waiting::default();
        let first = waiting.join(100);
        let second = waiting.join(200);
        waiting.leave(first);
        assert_eq!(
            waiting.departure(&gate, second, 200, INTERVAL),
            Departure::Go
        );
    }

    #[test]
    fn simulated_traffic_never_reaches_ses_closer_than_one_interval() {
        // Bursts of arrivals; calls take 0–40 ms to reach SES (a cold isolate, an output gate)
        // and 0.3–20 ms to come back; timers fire up to 12 ms late; clock readings are whole ms.
        let mut gate = GateState::default();
        let mut slots = Vec::new();
        for arrival in [0u64, 0, 0, 10, 20, 3_000, 3_001, 3_002, 9_000] {
            if let Reservation::Slot { at_ms } = gate.reserve(arrival, INTERVAL, 60_000) {
                slots.push(at_ms);
            }
        }
        let mut arrivals_at_ses_us = Vec::new();
        let mut now_us = 0u64;
        for (i, slot) in slots.into_iter().enumerate() {
            let i = i as u64;
            loop {
                match gate.departure(now_us / 1000, slot, INTERVAL) {
                    Departure::Go => break,
                    Departure::WaitMs(ms) => now_us += ms * 1000 + (i * 5_300) % 12_000,
                    Departure::WaitForAnswer | Departure::WaitForTurn => {
                        unreachable!("calls are sequential here")
                    }
                }
            }
            gate.depart(now_us / 1000, INTERVAL);
            now_us += (i * 17_300) % 40_000;
            arrivals_at_ses_us.push(now_us);
            now_us += (i * 7_100) % 20_000 + 300;
            gate.settle(now_us / 1000, INTERVAL);
        }
        assert_eq!(arrivals_at_ses_us.len(), 9);
        assert!(
            arrivals_at_ses_us
                .windows(2)
                .all(|w| w[1] >= w[0] + INTERVAL * 1000),
            "{arrivals_at_ses_us:?}"
        );
    }
}
