//! When a call really leaves for SES: the wire's causal spacing rule and its line of waiting
//! calls, pure and clock-free (every function takes `now_ms`).
//!
//! The rule: a call leaves only when its slot has come, no other call is in flight,
//! `interval + CLOCK_GUARD_MS` has passed since the previous call was *answered*, and no backoff
//! after a Throttling is running (it holds every call in line, not only later reservations). SES received the
//! previous call before it answered, so SES sees calls at least one interval apart whatever
//! happened between the gate and the wire: network latency, timer slop, a cold isolate, or an
//! output gate holding a fetch, none of which the Workers clock (frozen during CPU work) can see.

use std::collections::BTreeSet;

use std::cell::RefCell;

use crate::backoff::Backoff;
use crate::messages::CallResult;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;

/// The Workers clock is in whole milliseconds: an answer read at 1000 may have come at 1000.9.
pub const CLOCK_GUARD_MS: u64 = 1;

/// The gate's memory of the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacing {
    /// When the previous call was answered (or given up on), or the wire started.
    last_answer_ms: u64,
    /// The call that has left and has not been answered yet.
    in_flight: Option<CallId>,
    departures: u64,
    /// `Throttling` answers in a row, and the end of the hold they started.
    backoff: Backoff,
}

/// Which departure an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallId(u64);

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

impl Pacing {
    /// A wire that starts at `now_ms` counts that as an answer: whatever an earlier instance had
    /// in flight reached SES by then, so the first call keeps an interval from the start.
    pub fn started(now_ms: u64) -> Self {
        Pacing {
            last_answer_ms: now_ms,
            in_flight: None,
            departures: 0,
            backoff: Backoff::default(),
        }
    }

    /// Whether a call holding `slot_ms` may leave now, ignoring others in line.
    fn departure(&self, now_ms: u64, slot_ms: u64, interval_ms: u64) -> Departure {
        if self.in_flight.is_some() {
            return Departure::WaitForAnswer;
        }
        let after_previous = self.last_answer_ms + interval_ms + CLOCK_GUARD_MS;
        let earliest = slot_ms.max(after_previous).max(self.backoff.until_ms());
        match earliest.saturating_sub(now_ms) {
            0 => Departure::Go,
            wait => Departure::WaitMs(wait),
        }
    }

    /// A call left; its answer is reported with the returned id.
    pub fn depart(&mut self) -> CallId {
        self.departures += 1;
        let call = CallId(self.departures);
        self.in_flight = Some(call);
        call
    }

    /// `call` was answered (or abandoned) at `now_ms`. Only the first report for the call in
    /// flight counts: not a second one (the end of reading the body after the headers), and not
    /// a late one for an earlier call, which must never clear the call in flight now.
    pub fn answered(&mut self, call: CallId, now_ms: u64) {
        if self.in_flight != Some(call) {
            return;
        }
        self.in_flight = None;
        self.last_answer_ms = self.last_answer_ms.max(now_ms);
    }

    /// SES answered `Throttling` at `now_ms`: nothing leaves for the [`Backoff`] pause.
    /// Returns the pause.
    pub fn throttled(&mut self, now_ms: u64, random: u32) -> u64 {
        self.backoff.throttled(now_ms, random)
    }

    /// SES accepted a call: the next `Throttling` pauses one second again.
    pub fn accepted(&mut self) {
        self.backoff.reset();
    }

    /// What a call's result means for the pacing: a success resets the backoff, a `Throttling`
    /// starts or lengthens it (its pause is returned), anything else leaves it alone.
    pub fn record(&mut self, result: &CallResult, now_ms: u64, random: u32) -> Option<u64> {
        match result {
            CallResult::Answered(
                Outcome::Sent { .. }
                | Outcome::Checked { .. }
                | Outcome::Deleted
                | Outcome::Listed { .. },
            ) => {
                self.accepted();
                None
            }
            CallResult::Answered(Outcome::Retryable(RetryReason::Throttled)) => {
                Some(self.throttled(now_ms, random))
            }
            _ => None,
        }
    }
}

/// A place in line for a call holding a slot, from [`Waiting::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket {
    slot_ms: u64,
    serial: u64,
}

/// The calls holding a slot and waiting to leave, in slot order. Only the first may leave, so
/// calls leave in the order their slots were given however their timers fire.
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
        pacing: &Pacing,
        ticket: Ticket,
        now_ms: u64,
        interval_ms: u64,
    ) -> Departure {
        if self.line.first() != Some(&ticket) {
            return Departure::WaitForTurn;
        }
        pacing.departure(now_ms, ticket.slot_ms, interval_ms)
    }

    /// Whether the first call in line may leave now.
    pub fn first_is_due(&self, pacing: &Pacing, now_ms: u64, interval_ms: u64) -> bool {
        self.line.first().is_some_and(|&first| {
            pacing.departure(now_ms, first.slot_ms, interval_ms) == Departure::Go
        })
    }
}

/// A call's place in line, given up when the call leaves or its request is cancelled (dropped).
pub struct PlaceInLine<'a> {
    waiting: &'a RefCell<Waiting>,
    ticket: Ticket,
}

impl<'a> PlaceInLine<'a> {
    pub fn join(waiting: &'a RefCell<Waiting>, slot_ms: u64) -> Self {
        let ticket = waiting.borrow_mut().join(slot_ms);
        Self { waiting, ticket }
    }

    pub fn ticket(&self) -> Ticket {
        self.ticket
    }
}

impl Drop for PlaceInLine<'_> {
    fn drop(&mut self) {
        self.waiting.borrow_mut().leave(self.ticket);
    }
}

/// The last milliseconds before a departure are waited out with 0 ms sleeps (each one a trip
/// through the event loop, and a fresh clock reading), at most `MAX_SPINS` of them per call.
const SPIN_WINDOW_MS: u64 = 2;
const MAX_SPINS: u32 = 200;

/// How a waiting call sleeps between two checks of its [`Departure`].
#[derive(Debug, Default)]
pub struct Sleeper {
    spins: u32,
}

impl Sleeper {
    /// How long to sleep before checking again, or `None` to leave now.
    pub fn next_sleep_ms(&mut self, departure: Departure, interval_ms: u64) -> Option<u64> {
        match departure {
            Departure::Go => None,
            // Timers fire a millisecond or two late: the last stretch is yielded away.
            Departure::WaitMs(ms) if ms <= SPIN_WINDOW_MS && self.spins < MAX_SPINS => {
                self.spins += 1;
                Some(0)
            }
            Departure::WaitMs(ms) => Some(ms.saturating_sub(SPIN_WINDOW_MS).max(1)),
            // A wake-up comes when the call ahead is answered; the timer is a backstop.
            Departure::WaitForAnswer | Departure::WaitForTurn => Some(interval_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_resets_or_lengthens_the_backoff_and_a_dropped_place_leaves_the_line() {
        let mut pacing = Pacing::started(0);
        let throttled = CallResult::Answered(Outcome::Retryable(RetryReason::Throttled));
        assert_eq!(pacing.record(&throttled, 1_000, 0), Some(1_000));
        assert_eq!(pacing.record(&throttled, 2_000, 0), Some(2_000));
        assert_eq!(pacing.record(&CallResult::TimedOut, 3_000, 0), None);
        let sent = CallResult::Answered(Outcome::Sent {
            message_id: Some("m".into()),
        });
        assert_eq!(pacing.record(&sent, 4_000, 0), None);
        assert_eq!(
            pacing.record(&throttled, 9_000, 0),
            Some(1_000),
            "reset by the success"
        );

        let waiting = RefCell::new(Waiting::default());
        let place = PlaceInLine::join(&waiting, 5_000);
        let pacing = Pacing::started(0);
        assert!(waiting.borrow().first_is_due(&pacing, 5_000, 1_000));
        drop(place);
        assert!(
            !waiting.borrow().first_is_due(&pacing, 5_000, 1_000),
            "the line is empty"
        );
    }

    #[test]
    fn a_waiting_call_sleeps_short_of_its_departure_then_spins_a_bounded_number_of_times() {
        let mut sleeper = Sleeper::default();
        assert_eq!(sleeper.next_sleep_ms(Departure::WaitMs(50), 1000), Some(48));
        assert_eq!(sleeper.next_sleep_ms(Departure::WaitMs(2), 1000), Some(0));
        assert_eq!(
            sleeper.next_sleep_ms(Departure::WaitForAnswer, 1000),
            Some(1000)
        );
        assert_eq!(
            sleeper.next_sleep_ms(Departure::WaitForTurn, 250),
            Some(250)
        );
        assert_eq!(sleeper.next_sleep_ms(Departure::Go, 1000), None);
        let mut spinner = Sleeper::default();
        let spins = (0..1000)
            .take_while(|_| spinner.next_sleep_ms(Departure::WaitMs(1), 1000) == Some(0))
            .count();
        assert_eq!(spins, 200, "spinning stops; then it sleeps 1 ms at a time");
        assert_eq!(spinner.next_sleep_ms(Departure::WaitMs(1), 1000), Some(1));
    }

    const INTERVAL: u64 = 1000;

    #[test]
    fn the_departure_waits_for_the_slot_the_answer_and_an_interval_after_the_answer() {
        let mut pacing = Pacing::started(0);
        let mut waiting = Waiting::default();
        let first = waiting.join(400);
        assert_eq!(
            waiting.departure(&pacing, first, 100, INTERVAL),
            Departure::WaitMs(901),
            "a new sender keeps an interval from its start"
        );
        assert_eq!(
            waiting.departure(&pacing, first, 1_001, INTERVAL),
            Departure::Go
        );
        let call = pacing.depart();
        waiting.leave(first);
        let second = waiting.join(1_400);
        assert_eq!(
            waiting.departure(&pacing, second, 5_000, INTERVAL),
            Departure::WaitForAnswer
        );
        // The answer came late, at 1_300: the next call waits until 2_301, not its slot at 1_400.
        pacing.answered(call, 1_300);
        assert_eq!(
            waiting.departure(&pacing, second, 1_400, INTERVAL),
            Departure::WaitMs(901)
        );
        assert_eq!(
            waiting.departure(&pacing, second, 2_301, INTERVAL),
            Departure::Go
        );
    }

    #[test]
    fn a_throttling_holds_every_call_in_line_for_a_growing_backoff_until_a_success() {
        let mut pacing = Pacing::started(0);
        let mut waiting = Waiting::default();
        let lined_up = waiting.join(5_000);
        let call = pacing.depart();
        pacing.answered(call, 5_000);
        assert_eq!(pacing.throttled(5_000, 0), 1_000);
        assert_eq!(
            waiting.departure(&pacing, lined_up, 5_200, INTERVAL),
            Departure::WaitMs(801),
            "the later of an interval after the answer (6_001) and the backoff (6_000)"
        );
        const SHORT: u64 = 100;
        assert_eq!(
            waiting.departure(&pacing, lined_up, 5_200, SHORT),
            Departure::WaitMs(800),
            "with a short interval the backoff is what holds it"
        );
        let call = pacing.depart();
        pacing.answered(call, 6_000);
        assert_eq!(
            pacing.throttled(6_000, 0),
            2_000,
            "a second one in a row doubles"
        );
        pacing.accepted();
        assert_eq!(pacing.throttled(9_000, 0), 1_000, "a success starts over");
    }

    #[test]
    fn only_the_first_report_of_an_answer_counts() {
        let mut pacing = Pacing::started(0);
        let call = pacing.depart();
        pacing.answered(call, 2_000);
        pacing.answered(call, 2_500);
        let mut waiting = Waiting::default();
        let ticket = waiting.join(0);
        assert_eq!(
            waiting.departure(&pacing, ticket, 2_000, INTERVAL),
            Departure::WaitMs(1_001)
        );
    }

    #[test]
    fn a_late_report_for_an_earlier_call_never_answers_the_call_in_flight() {
        let mut pacing = Pacing::started(0);
        let first = pacing.depart();
        pacing.answered(first, 2_000);
        let second = pacing.depart();
        // The first call's request ends (its body read, say) while the second is in flight.
        pacing.answered(first, 2_150);
        let mut waiting = Waiting::default();
        let third = waiting.join(0);
        assert_eq!(
            waiting.departure(&pacing, third, 90_000, INTERVAL),
            Departure::WaitForAnswer
        );
        pacing.answered(second, 2_200);
        assert_eq!(
            waiting.departure(&pacing, third, 2_200, INTERVAL),
            Departure::WaitMs(1_001)
        );
    }

    #[test]
    fn an_answer_never_moves_the_last_answer_back() {
        let mut pacing = Pacing::started(50_000);
        let call = pacing.depart();
        pacing.answered(call, 9_999);
        let mut waiting = Waiting::default();
        let ticket = waiting.join(0);
        assert_eq!(
            waiting.departure(&pacing, ticket, 50_000, INTERVAL),
            Departure::WaitMs(1_001)
        );
    }

    #[test]
    fn waiting_calls_leave_in_slot_order_whatever_order_they_joined_in() {
        let pacing = Pacing::started(0);
        let mut waiting = Waiting::default();
        let late = waiting.join(3_000);
        let early = waiting.join(2_000);
        let same_slot_second = waiting.join(2_000);
        let now = 10_000;
        assert_eq!(
            waiting.departure(&pacing, late, now, INTERVAL),
            Departure::WaitForTurn
        );
        assert_eq!(
            waiting.departure(&pacing, same_slot_second, now, INTERVAL),
            Departure::WaitForTurn
        );
        assert_eq!(
            waiting.departure(&pacing, early, now, INTERVAL),
            Departure::Go
        );
        waiting.leave(early);
        assert_eq!(
            waiting.departure(&pacing, same_slot_second, now, INTERVAL),
            Departure::Go
        );
        waiting.leave(same_slot_second);
        assert_eq!(
            waiting.departure(&pacing, late, now, INTERVAL),
            Departure::Go
        );
    }

    #[test]
    fn the_first_call_in_line_is_due_only_when_the_rule_lets_it_go() {
        let mut pacing = Pacing::started(0);
        let mut waiting = Waiting::default();
        assert!(
            !waiting.first_is_due(&pacing, 90_000, INTERVAL),
            "nobody waits"
        );
        let first = waiting.join(1_500);
        waiting.join(400_000);
        assert!(!waiting.first_is_due(&pacing, 1_499, INTERVAL));
        assert!(waiting.first_is_due(&pacing, 1_500, INTERVAL));
        let call = pacing.depart();
        waiting.leave(first);
        assert!(
            !waiting.first_is_due(&pacing, 900_000, INTERVAL),
            "a call is in flight"
        );
        pacing.answered(call, 1_600);
        assert!(!waiting.first_is_due(&pacing, 2_600, INTERVAL));
        assert!(waiting.first_is_due(&pacing, 400_000, INTERVAL));
    }

    #[test]
    fn a_call_that_gives_up_its_place_lets_the_next_one_go() {
        let pacing = Pacing::started(0);
        let mut waiting = Waiting::default();
        let first = waiting.join(5_000);
        let second = waiting.join(6_000);
        waiting.leave(first);
        assert_eq!(
            waiting.departure(&pacing, second, 6_000, INTERVAL),
            Departure::Go
        );
    }

    #[test]
    fn simulated_traffic_never_reaches_ses_closer_than_one_interval() {
        // Slots one interval apart and some bunched; calls take 0–40 ms to reach SES (a cold
        // isolate, an output gate) and 0.3–20 ms to come back; timers fire up to 12 ms late;
        // clock readings are whole ms.
        let mut pacing = Pacing::started(0);
        let mut waiting = Waiting::default();
        let slots = [0u64, 1_000, 2_000, 2_010, 3_000, 3_001, 3_002, 9_000, 9_000];
        let tickets: Vec<Ticket> = slots.iter().map(|&slot| waiting.join(slot)).collect();
        let mut arrivals_at_ses_us = Vec::new();
        let mut now_us = 0u64;
        for (i, ticket) in tickets.into_iter().enumerate() {
            let i = i as u64;
            loop {
                match waiting.departure(&pacing, ticket, now_us / 1000, INTERVAL) {
                    Departure::Go => break,
                    Departure::WaitMs(ms) => now_us += ms * 1000 + (i * 5_300) % 12_000,
                    Departure::WaitForAnswer | Departure::WaitForTurn => {
                        unreachable!("calls leave one by one here")
                    }
                }
            }
            let call = pacing.depart();
            waiting.leave(ticket);
            now_us += (i * 17_300) % 40_000;
            arrivals_at_ses_us.push(now_us);
            now_us += (i * 7_100) % 20_000 + 300;
            pacing.answered(call, now_us / 1000);
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
