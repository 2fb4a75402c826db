//! The global gate in front of SES: a Durable Object (`SesGate`, one per region) that hands out
//! send slots at most one per `GATE_INTERVAL_MS` and makes each SES call itself.
//!
//! `slots` is the arithmetic and `cooldown` the per-address limits (both pure, host-tested),
//! `rpc` the Worker ↔ gate messages, and `object` the Durable Object shell (storage, timers,
//! fetch).

pub mod cooldown;
pub mod object;
pub mod queue;
pub mod rpc;
pub mod ses_call;
pub mod slots;
pub mod storage;
