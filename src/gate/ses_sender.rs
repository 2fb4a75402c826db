//! `SesSender`, the Durable Object that puts SES calls on the wire: one instance per region, it
//! takes calls from `SesGate` and sends them one at a time by `pacing`'s causal rule.
//!
//! Why apart from the gate: a Durable Object handles its events one at a time, in order. During
//! a burst the gate's queue of events is a hundred signups long, and an SES answer delivered to
//! the gate waits behind all of them before the next call may leave. The sender's only events are
//! the gate's calls and their answers, so it sees each answer at once. It keeps no storage: a
//! new instance counts its start as an answer (see `Pacing::started`), and it never writes, so no
//! output gate ever holds its fetches.

use std::cell::RefCell;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::select;
use serde_json::json;
use worker::{
    durable_object, wasm_bindgen, DurableObject, Env, Method, Request, Response, Result, State,
};

use crate::gate::ses_call::call_ses;
use crate::gate::ses_call::prepared_request;
use crate::runtime::load_config;
use crate::runtime::now_ms;
use crate::runtime::random_u32;
use crate::runtime::request_json;
use crate::runtime::request_path;
use signup_verify_domain::settings::ConfigError;
use signup_verify_gate::messages::CallRequest;
use signup_verify_gate::messages::CallResult;
use signup_verify_gate::messages::CALL_PATH;
use signup_verify_gate::pacing::CallId;
use signup_verify_gate::pacing::Pacing;
use signup_verify_gate::pacing::PlaceInLine;
use signup_verify_gate::pacing::Sleeper;
use signup_verify_gate::pacing::Waiting;
use signup_verify_web::config::Config;

#[durable_object]
pub struct SesSender {
    /// Parsed once per instance; a call under a broken config cannot be made.
    config: std::result::Result<Config, ConfigError>,
    pacing: RefCell<Pacing>,
    /// Calls holding a slot, waiting to leave.
    waiting: RefCell<Waiting>,
    /// Wake-ups for the calls in `waiting`.
    wakers: RefCell<Vec<oneshot::Sender<()>>>,
}

impl DurableObject for SesSender {
    fn new(_state: State, env: Env) -> Self {
        Self {
            config: load_config(&env),
            pacing: RefCell::new(Pacing::started(now_ms())),
            waiting: RefCell::new(Waiting::default()),
            wakers: RefCell::new(Vec::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.pump();
        match (req.method(), request_path(&req).as_str()) {
            (Method::Post, CALL_PATH) => {
                let result = match request_json::<CallRequest>(&mut req).await {
                    Ok(call) => self.call(&call).await,
                    Err(e) => return Response::error(format!("bad call: {e}"), 400),
                };
                Response::from_json(&result)
            }
            _ => Response::error("not found", 404),
        }
    }
}

/// A call that has left. Dropping it (answered, timed out, or its request cancelled) records the
/// answer, so a lost request can never leave the sender waiting for an answer forever.
struct InFlight<'a>(&'a SesSender, CallId);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.answered(self.1);
    }
}

impl SesSender {
    /// Signs (dated at the slot), waits for the departure, calls SES. `None` if the call cannot be
    /// made at all: the config does not load, or the request cannot be signed.
    async fn call(&self, call: &CallRequest) -> Option<CallResult> {
        let config = self.config.as_ref().ok()?;
        let request = prepared_request(&config.ses, call)?;
        let call_id = self
            .wait_for_departure(call.slot_ms, config.gate.interval_ms)
            .await;
        let in_flight = InFlight(self, call_id);
        let result = call_ses(request, config.ses.timeout_ms, call, &|| {
            self.answered(call_id)
        })
        .await;
        let pause = self
            .pacing
            .borrow_mut()
            .record(&result, now_ms(), random_u32());
        if let Some(pause_ms) = pause {
            crate::log::info(
                || json!({"event": "sender_backoff", "pause_ms": pause_ms, "request_id": call.request_id}),
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
    /// early, and a call that planned its sleep on it would leave late. (Checking before the
    /// first sleep saved no measurable time in `make bench`, and the 1000 ms e2e burst's
    /// in-request gaps grew from 1004–1015 ms to 1026–1041 ms.)
    async fn wait_for_departure(&self, slot: u64, interval: u64) -> CallId {
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
                interval,
            );
            match sleeper.next_sleep_ms(departure, interval) {
                Some(ms) => sleep_ms = ms,
                None => {
                    drop(place);
                    return self.pacing.borrow_mut().depart();
                }
            }
        }
    }

    /// Called at every event: if the first call in line is due, it is woken now, and leaves
    /// before the object turns to the next event.
    fn pump(&self) {
        let Ok(config) = &self.config else {
            return; // no call can wait without a config
        };
        let due = self.waiting.borrow().first_is_due(
            &self.pacing.borrow(),
            now_ms(),
            config.gate.interval_ms,
        );
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
