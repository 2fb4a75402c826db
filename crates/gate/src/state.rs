//! `GateState`: what the gate persists about itself in one row: the next free slot, the
//! Throttling backoff, a pause while SES says the configuration is broken, the fair order's
//! served tag, the daily budget's count, and the counters of `GET /gate/stats` (its cost
//! counters and send log included). Its arithmetic
//! lives where it is decided: reservations in `slots`, the queue head's fate in `queue`.
//!
//! Invariant: every field has a serde default, so a row written by an older version still reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::budget::DailyBudget;
use crate::send_log::SendLog;
use crate::tracking::TrackingCounters;
use crate::usage::CostCounters;

/// The gate's own state (one row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    /// The earliest time the next reservation may be given.
    pub next_free_ms: u64,
    /// `Throttling` answers since the last success.
    #[serde(default, rename = "throttle_streak")]
    pub backoff: Backoff,
    /// While SES says the configuration is broken, the queue waits until then.
    #[serde(default)]
    pub paused_until_ms: Option<u64>,
    /// Configuration errors the queue's head met in a row (a send ends the run): from the
    /// second, a gate in a pool hands its queue over (`gate::handover`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub config_errors: u32,
    /// For `GET /gate/stats`.
    #[serde(default)]
    pub counters: QueueCounters,
    /// The fair-order tag of the last item that left the queue (see `queue::fair_tag`).
    #[serde(default)]
    pub served_tag: u64,
    /// `DAILY_SEND_BUDGET`'s count.
    #[serde(default)]
    pub budget: DailyBudget,
    /// What the follow-up (checks, clean-up, webhook) has done.
    #[serde(default)]
    pub tracking: TrackingCounters,
    /// Rows and requests: what the gate costs (see `usage`).
    #[serde(default)]
    pub cost: CostCounters,
    /// Sends of the last minute and hour, for the stats.
    #[serde(default)]
    pub sends: SendLog,
}

/// Counters for `GET /gate/stats`, persisted with the gate state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounters {
    pub throttles_seen: u64,
    /// Dropped items by reason: `rejected`, `exhausted`.
    pub drops: BTreeMap<String, u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
