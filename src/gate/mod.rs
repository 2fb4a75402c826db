//! The global gate in front of SES: two Durable Objects per region. `SesGate` takes signups,
//! hands out send slots one per `GATE_INTERVAL_MS`, keeps the durable queue and the per-address
//! limits; `SesSender` puts the calls on the wire, each an interval after the previous answer.
//!
//! Pure and host-tested: `decisions` (the gate's every decision, over the `store` and `rpc`
//! seams), `slots` (reservations), `backoff`, `budget` (the daily send budget), `pacing` (the
//! sender's rule), `queue` (items, fair order, the head's fate), `cooldown`, `tracking` (a
//! signup's lifecycle) and `identities` (who created each SES identity, and its clean-up). The Workers side: `ses_gate` and `ses_sender` (the Durable Object shells),
//! `sql_store` (the gate's SQLite), `rpc` (messages and their clients), `ses_call` (one SES call).

pub mod backoff;
pub mod budget;
pub mod cooldown;
pub mod decisions;
pub mod identities;
pub mod pacing;
pub mod queue;
pub mod rpc;
pub mod ses_call;
pub mod ses_gate;
pub mod ses_sender;
pub mod slots;
pub mod sql_store;
pub mod store;
pub mod tracking;
pub mod webhook;
