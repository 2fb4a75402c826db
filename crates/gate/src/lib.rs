//! The global gate in front of SES, pure: every decision the `SesGate` Durable Object makes, over
//! three ports the Worker crate implements: [`store::GateStore`] (what the gate persists),
//! [`messages::SenderLink`] (the call to SES, on the wire `pacing` spaces) and
//! [`ports::GateRuntime`] (clock, randomness, log, alarm).
//!
//! Rooms: `gate` (the `Gate`: intake, drain, follow-up, outbox, status), `slots` (reservations), `backoff`,
//! `budget` (the daily send budget), `check_schedule` (when each sent signup is next checked, in memory), `send_log` (sends of the last minute and hour), `usage` (rows and requests: what the gate costs), `pacing` (the wire's rule), `queue` (items, fair order,
//! the head's fate), `cooldown` (per-mailbox limits), `tracking` (a signup's lifecycle),
//! `identities` (who created each SES identity, and its clean-up), `webhook` (Standard Webhooks
//! events), `messages` (what travels between the Worker and the gate, and the gate's SES calls), `pool_stats` (the stats of every region, and their totals) and `config` (the gate's settings).
//!
//! Invariant: nothing here reaches `worker`; the host tests drive it with fakes and a fake clock.

pub mod backoff;
pub mod budget;
pub mod check_schedule;
pub mod config;
#[cfg(test)]
mod conformance;
pub mod cooldown;
pub mod gate;
pub mod identities;
#[cfg(any(test, feature = "testing"))]
pub mod memory_store;
pub mod messages;
pub mod pacing;
pub mod pool_stats;
pub mod ports;
pub mod queue;
pub mod send_log;
pub mod slots;
pub mod sql_executor;
pub mod sql_schema;
pub mod sql_store;
pub mod state;
pub mod store;
pub mod tracking;
pub mod usage;
pub mod webhook;
