//! `GET /gate/stats` for a pool of regions: each region's gate's [`GateStats`], and their totals
//! at the top level, so that a client that read one gate's figures reads the pool's the same
//! way. Pure.
//!
//! Invariants: a count is the sum over the regions; the configured interval is the regions'
//! own (one setting for all); the current interval is the slowest region's; the pool is paused
//! only while every region is (`pausedUntil` the earliest end), and `pausedReason` names each
//! paused region.

use std::collections::BTreeMap;

use crate::messages::GateStats;
use crate::tracking::TrackingCounters;
use crate::usage::{CostCounters, CostStats};

/// The pool's figures: the totals, and each region's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub totals: GateStats,
    pub regions: BTreeMap<String, GateStats>,
}

impl PoolStats {
    /// The totals of `regions` (each region's name and its gate's stats); `None` for none.
    pub fn of(regions: BTreeMap<String, GateStats>) -> Option<Self> {
        let mut all = regions.values();
        let mut totals = all.next()?.clone();
        for stats in all {
            add(&mut totals, stats);
        }
        let paused: Vec<&str> = regions
            .iter()
            .filter(|(_, s)| s.paused_until.is_some())
            .map(|(name, _)| name.as_str())
            .collect();
        if regions.len() > 1 {
            totals.paused_until = if paused.len() == regions.len() {
                regions
                    .values()
                    .filter_map(|s| s.paused_until.clone())
                    .min()
            } else {
                None
            };
            totals.paused_reason = (!paused.is_empty()).then(|| {
                format!(
                    "{} of {} regions paused ({}); new signups go to the next region of each mailbox",
                    paused.len(),
                    regions.len(),
                    paused.join(", ")
                )
            });
        }
        Some(Self { totals, regions })
    }
}

impl PoolStats {
    /// The answer's JSON: the totals' fields, then `regions`. Written as `GateStats` alone is
    /// (serde's flattening would add its own code to the upload for one object).
    pub fn json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec(&self.totals)?;
        out.pop(); // the totals' closing brace
        out.extend_from_slice(b",\"regions\":{");
        for (i, (name, stats)) in self.regions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, name)?;
            out.push(b':');
            serde_json::to_writer(&mut out, stats)?;
        }
        out.extend_from_slice(b"}}");
        Ok(out)
    }
}

/// Adds `more`'s counts to `totals`.
fn add(totals: &mut GateStats, more: &GateStats) {
    totals.queue_length += more.queue_length;
    totals.oldest_item_age_ms = totals.oldest_item_age_ms.max(more.oldest_item_age_ms);
    totals.sends_last_minute += more.sends_last_minute;
    totals.sends_last_hour += more.sends_last_hour;
    totals.throttles_seen += more.throttles_seen;
    for (reason, n) in &more.drops {
        *totals.drops.entry(reason.clone()).or_default() += n;
    }
    totals.current_interval_ms = totals.current_interval_ms.max(more.current_interval_ms);
    totals.daily_taken += more.daily_taken;
    totals.daily_budget += more.daily_budget;
    totals.pending_checks += more.pending_checks;
    totals.webhook_backlog += more.webhook_backlog;
    totals.identity_cleanup &= more.identity_cleanup;
    totals.identity_snapshot_at = totals
        .identity_snapshot_at
        .clone()
        .min(more.identity_snapshot_at.clone());
    totals.identity_snapshot_size =
        match (totals.identity_snapshot_size, more.identity_snapshot_size) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    totals.tracking = tracking_sum(&totals.tracking, &more.tracking);
    totals.cost = CostStats::from(&CostCounters {
        rows_read: totals.cost.rows_read + more.cost.rows_read,
        rows_written: totals.cost.rows_written + more.cost.rows_written,
        signups: totals.cost.signups + more.cost.signups,
        gate_requests: totals.cost.object_requests + more.cost.object_requests,
        sender_requests: 0,
        alarms_set: totals.cost.alarms_set + more.cost.alarms_set,
    });
}

fn tracking_sum(a: &TrackingCounters, b: &TrackingCounters) -> TrackingCounters {
    TrackingCounters {
        checks: a.checks + b.checks,
        checks_failed: a.checks_failed + b.checks_failed,
        signups_checked: a.signups_checked + b.signups_checked,
        verified: a.verified + b.verified,
        confirmed: a.confirmed + b.confirmed,
        confirmations_refused: a.confirmations_refused + b.confirmations_refused,
        expired: a.expired + b.expired,
        replaced: a.replaced + b.replaced,
        identities_deleted: a.identities_deleted + b.identities_deleted,
        deletes_failed: a.deletes_failed + b.deletes_failed,
        cleanup_given_up: a.cleanup_given_up + b.cleanup_given_up,
        cleanup_skipped: a.cleanup_skipped + b.cleanup_skipped,
        list_pages: a.list_pages + b.list_pages,
        snapshots_taken: a.snapshots_taken + b.snapshots_taken,
        webhooks_delivered: a.webhooks_delivered + b.webhooks_delivered,
        webhook_attempts_failed: a.webhook_attempts_failed + b.webhook_attempts_failed,
        webhooks_given_up: a.webhooks_given_up + b.webhooks_given_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(queue: u64, sends: u64, paused_until: Option<&str>) -> GateStats {
        let mut s: GateStats = serde_json::from_value(serde_json::json!({
            "queueLength": queue, "oldestItemAgeMs": null, "sendsLastMinute": sends,
            "sendsLastHour": sends, "throttlesSeen": 0, "drops": {"expired": 1},
            "intervalMs": 1000, "currentIntervalMs": 1000, "pausedUntil": null,
            "pausedReason": null, "dailyTaken": sends, "dailyBudget": 100, "pendingChecks": 0,
            "webhookBacklog": 0, "identityCleanup": true, "identitySnapshotAt": null,
            "identitySnapshotSize": null, "tracking": {"verified": sends},
            "cost": {"rowsRead": 10, "rowsWritten": 20, "signups": 2, "objectRequests": 4,
                     "alarmsSet": 1, "rowsReadPerThousandSignups": 5000,
                     "rowsWrittenPerThousandSignups": 10000,
                     "objectRequestsPerThousandSignups": 2000}
        }))
        .expect("stats");
        s.paused_until = paused_until.map(str::to_string);
        s
    }

    #[test]
    fn one_region_s_figures_are_its_gate_s_own() {
        let one = stats(3, 7, None);
        let pool = PoolStats::of(BTreeMap::from([("us-east-1".into(), one.clone())])).expect("one");
        assert_eq!(pool.totals, one);
        let json: serde_json::Value =
            serde_json::from_slice(&pool.json().expect("written")).expect("json");
        assert_eq!(json["queueLength"], 3, "the totals stay at the top level");
        assert_eq!(json["regions"]["us-east-1"]["queueLength"], 3);
    }

    #[test]
    fn the_totals_add_every_region_s_counts_and_name_the_paused_ones() {
        let pool = PoolStats::of(BTreeMap::from([
            ("us-east-1".into(), stats(3, 7, None)),
            (
                "eu-west-1".into(),
                stats(5, 2, Some("2026-12-04T04:00:00Z")),
            ),
            ("ap-south-1".into(), stats(0, 1, None)),
        ]))
        .expect("three");
        let t = &pool.totals;
        assert_eq!(
            (t.queue_length, t.sends_last_minute, t.daily_taken),
            (8, 10, 10)
        );
        assert_eq!(t.daily_budget, 300);
        assert_eq!(t.drops.get("expired"), Some(&3));
        assert_eq!(t.tracking.verified, 10);
        assert_eq!((t.cost.signups, t.cost.object_requests), (6, 12));
        assert_eq!(t.cost.rows_written_per_thousand_signups.0, 10_000);
        assert_eq!(t.paused_until, None, "the pool still sends");
        assert!(t
            .paused_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("1 of 3 regions paused (eu-west-1)")));
        let all_paused = PoolStats::of(BTreeMap::from([
            (
                "us-east-1".into(),
                stats(0, 0, Some("2026-12-04T04:00:05Z")),
            ),
            (
                "eu-west-1".into(),
                stats(0, 0, Some("2026-12-04T04:00:00Z")),
            ),
        ]))
        .expect("two");
        assert_eq!(
            all_paused.totals.paused_until.as_deref(),
            Some("2026-12-04T04:00:00Z")
        );
    }
}
