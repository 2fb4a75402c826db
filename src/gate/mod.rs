//! The global gate in front of SES: two Durable Objects per region. `SesGate` takes signups,
//! hands out send slots one per `GATE_INTERVAL_MS`, keeps the durable queue and the per-address
//! limits; `SesSender` puts the calls on the wire, each an interval after the previous answer.
//!
//! Pure and host-tested: `slots` (reservations, backoff), `pacing` (the sender's rule),
//! `queue` and `cooldown`. `rpc` holds the messages; `object` and `sender` are the Durable Object
//! shells, `storage` the gate's SQLite, `ses_call` one SES call.

pub mod cooldown;
pub mod object;
pub mod pacing;
pub mod queue;
pub mod rpc;
pub mod sender;
pub mod ses_call;
pub mod slots;
pub mod storage;
