//! The region's wire to SES, inside `SesGate`: calls leave one at a time by `pacing`'s causal
//! rule, each an interval after the previous answer, and the production [`SenderLink`].
//!
//! Invariants: a call leaves only when [`Waiting::departure`] says so, in one synchronous step
//! with recording its departure; every call that left records an answer, even when its request
//! is dropped ([`InFlight`]); a new instance counts its start as an answer (`Pacing::started`).

use std::cell::RefCell;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::select;
use signup_verify_domain::log_line;

use crate::gate::ses_call::call_ses;
use crate::gate::ses_call::prepared_request;
use crate::runtime::now_ms;
use crate::runtime::random_u32;
use signup_verify_gate::messages::CallRequest;
use signup_verify_gate::messages::CallResult;
use signup_verify_gate::messages::SenderLink;
use signup_verify_gate::pacing::CallId;
use signup_verify_gate::pacing::Pacing;
use signup_verify_gate::pacing::PlaceInLine;
use signup_verify_gate::pacing::Sleeper;
use signup_verify_gate::pacing::Waiting;
use signup_verify_ses::config::SesConfig;

pub struct Wire {
    ses: SesConfig,
    interval_ms: u64,
    pacing: RefCell<Pacing>,
    /// Calls holding a slot, waiting to leave.
    waiting: RefCell<Waiting>,
    /// Wake-ups for the calls in `waiting`.
    wakers: RefCell<Vec<oneshot::Sender<()>>>,
}

/// A call that has left. Dropping it (answered, timed out, or its request cancelled) records the
/// answer, so a lost request can never leave the wire waiting for an answer forever.
struct InFlight<'a>(&'a Wire, CallId);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.answered(self.1);
    }
}

impl Wire {
    pub fn new(ses: SesConfig, interval_ms: u64) -> Self {
        Self {
            ses,
            interval_ms,
            pacing: RefCell::new(Pacing::started(now_ms())),
            waiting: RefCell::new(Waiting::default()),
            wakers: RefCell::new(Vec::new()),
        }
    }

    /// Signs (dated at the slot), waits for the departure, calls SES. `None` if the request
    /// cannot be signed.
    async fn call(&self, call: &CallRequest) -> Option<CallResult> {
        let request = prepared_request(&self.ses, call)?;
        let call_id = self.wait_for_departure(call.slot_ms).await;
        let in_flight = InFlight(self, call_id);
        let result = call_ses(request, self.ses.timeout_ms, call, &|| {
            self.answered(call_id)
        })
        .await;
        let pause = self
            .pacing
            .borrow_mut()
            .record(&result, now_ms(), random_u32());
        if let Some(pause_ms) = pause {
            crate::log::info(
                || log_line!({"event": "sender_backoff", "pause_ms": pause_ms, "request_id": call.request_id}),
            );
        }
        drop(in_flight);
        Some(result)
    }

    /// Waits until the rule lets a call holding `slot` leave, then records the departure, in one
    /// synchronous step.
    ///
    /// It sleeps on its own timer and on a wake-up (an answer, or [`Self::pump`]), whichever comes
    /// first. It always sleeps at least once, even for 0 ms: the Workers clock only moves at I/O,
    /// so a reading taken after CPU work (signing, a cold start, other events of a burst) is
    /// early, and a call that planned its sleep on it would leave late.
    async fn wait_for_departure(&self, slot: u64) -> CallId {
        let place = PlaceInLine::join(&self.waiting, slot);
        let mut sleep_ms = 0;
        let mut sleeper = Sleeper::default();
        loop {
            let (wake, woken) = oneshot::channel();
            {
                let mut wakers = self.wakers.borrow_mut();
                wakers.retain(|w| !w.is_canceled());
                wakers.push(wake);
            }
            select(worker::Delay::from(Duration::from_millis(sleep_ms)), woken).await;
            let departure = self.waiting.borrow().departure(
                &self.pacing.borrow(),
                place.ticket(),
                now_ms(),
                self.interval_ms,
            );
            match sleeper.next_sleep_ms(departure, self.interval_ms) {
                Some(ms) => sleep_ms = ms,
                None => {
                    drop(place);
                    return self.pacing.borrow_mut().depart();
                }
            }
        }
    }

    /// Called at every event of the object: if the first call in line is due, it is woken now,
    /// and leaves before the object turns to the event.
    pub fn pump(&self) {
        let due =
            self.waiting
                .borrow()
                .first_is_due(&self.pacing.borrow(), now_ms(), self.interval_ms);
        if due {
            self.wake_waiting();
        }
    }

    /// `call` was answered (or given up on) now; the first report counts.
    fn answered(&self, call: CallId) {
        self.pacing.borrow_mut().answered(call, now_ms());
        self.wake_waiting();
    }

    /// Makes every waiting call check again now.
    fn wake_waiting(&self) {
        for wake in self.wakers.borrow_mut().drain(..) {
            let _ = wake.send(());
        }
    }
}

impl SenderLink for Wire {
    async fn call(&self, call: &CallRequest) -> Option<CallResult> {
        Wire::call(self, call).await
    }
}
