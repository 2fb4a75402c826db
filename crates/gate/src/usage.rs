//! What the gate costs its operator, counted where it happens: [`RowUsage`] (rows read and
//! written, from the database's own counters: what Cloudflare bills for SQLite-backed Durable
//! Objects, index entries included) and [`CostCounters`], the cumulative counts persisted with
//! the gate state, with the per-thousand-signups averages `GET /gate/stats` reports
//! ([`CostStats`]).
//!
//! Invariants: the counters ride along with a gate state that is saved anyway, or at least
//! hourly while the object lives (what a save has not stored yet is lost with an evicted object,
//! and only that); every sum saturates; no float is ever formatted (an average is per thousand
//! signups, an integer: a float formatter would add about 5 KB to the gzipped upload).

use serde::{Deserialize, Serialize};

/// Rows a statement (or many) read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowUsage {
    pub rows_read: u64,
    pub rows_written: u64,
}

impl RowUsage {
    pub fn add(&mut self, other: RowUsage) {
        self.rows_read = self.rows_read.saturating_add(other.rows_read);
        self.rows_written = self.rows_written.saturating_add(other.rows_written);
    }
}

/// The gate's cumulative cost counters, persisted with the gate state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostCounters {
    /// Rows the gate's SQLite read and wrote (a [`RowUsage`]'s, kept flat: one type less to
    /// write and read with every save).
    pub rows_read: u64,
    pub rows_written: u64,
    /// Signups the gate was asked to take (sent, queued, refused or a honeypot's decoy).
    pub signups: u64,
    /// Requests to the gate object: the Worker's calls and its alarms.
    pub gate_requests: u64,
    /// Calls to the `SesSender` object, counted until issue N folded it into the gate: kept, and
    /// no longer counted, so that the cumulative request count never goes down.
    pub sender_requests: u64,
    /// Alarms the gate set (alarms keep metadata in the object's storage).
    pub alarms_set: u64,
}

/// A per-signup average scaled by a thousand, as an integer (31.1 rows a signup is 31100): three
/// decimals without a float in the upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerThousand(pub u64);

impl PerThousand {
    /// `1000 × sum / count`, rounded half up; 0 when `count` is 0.
    pub fn of(sum: u64, count: u64) -> Self {
        let scaled = match count {
            0 => 0,
            n => (u128::from(sum) * 1000 + u128::from(n) / 2) / u128::from(n),
        };
        Self(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

impl CostCounters {
    pub fn add_rows(&mut self, used: RowUsage) {
        self.rows_read = self.rows_read.saturating_add(used.rows_read);
        self.rows_written = self.rows_written.saturating_add(used.rows_written);
    }
}

/// `GET /gate/stats`'s cost figures: the cumulative counts, and per thousand signups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostStats {
    pub rows_read: u64,
    pub rows_written: u64,
    pub signups: u64,
    /// Durable Object requests: the Worker's calls to the gate and its alarms.
    pub object_requests: u64,
    /// Alarms the gate set.
    pub alarms_set: u64,
    /// The sums per thousand signups (0 before the first signup).
    pub rows_read_per_thousand_signups: PerThousand,
    pub rows_written_per_thousand_signups: PerThousand,
    pub object_requests_per_thousand_signups: PerThousand,
}

impl From<&CostCounters> for CostStats {
    fn from(counters: &CostCounters) -> Self {
        let object_requests = counters
            .gate_requests
            .saturating_add(counters.sender_requests);
        let per_thousand = |sum: u64| PerThousand::of(sum, counters.signups);
        Self {
            rows_read: counters.rows_read,
            rows_written: counters.rows_written,
            signups: counters.signups,
            object_requests,
            alarms_set: counters.alarms_set,
            rows_read_per_thousand_signups: per_thousand(counters.rows_read),
            rows_written_per_thousand_signups: per_thousand(counters.rows_written),
            object_requests_per_thousand_signups: per_thousand(object_requests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_and_saturates_instead_of_wrapping() {
        let mut usage = RowUsage {
            rows_read: 3,
            rows_written: u64::MAX - 1,
        };
        usage.add(RowUsage {
            rows_read: 4,
            rows_written: 5,
        });
        assert_eq!(usage.rows_read, 7);
        assert_eq!(usage.rows_written, u64::MAX);
    }

    #[test]
    fn requests_to_the_sender_object_counted_before_it_was_folded_into_the_gate_still_count() {
        let stored: CostCounters =
            serde_json::from_str(r#"{"gate_requests":4,"sender_requests":2,"signups":2}"#)
                .expect("loads");
        let stats = CostStats::from(&stored);
        assert_eq!(
            stats.object_requests, 6,
            "the cumulative count never goes down"
        );
        assert_eq!(
            stats.object_requests_per_thousand_signups,
            PerThousand(3_000)
        );
        let saved = serde_json::to_value(stored).expect("json");
        assert_eq!(saved["sender_requests"], 2, "kept at the next save");
    }

    #[test]
    fn per_thousand_figures_divide_by_signups_and_are_zero_before_the_first() {
        let none = CostStats::from(&CostCounters::default());
        assert_eq!(none.rows_written_per_thousand_signups, PerThousand(0));
        let counters = CostCounters {
            rows_read: 10,
            rows_written: 50,
            signups: 3,
            gate_requests: 6,
            sender_requests: 0,
            alarms_set: 1,
        };
        let stats = CostStats::from(&counters);
        assert_eq!(stats.object_requests, 6);
        assert_eq!(stats.rows_written_per_thousand_signups, PerThousand(16_667));
        assert_eq!(stats.rows_read_per_thousand_signups, PerThousand(3_333));
        assert_eq!(
            stats.object_requests_per_thousand_signups,
            PerThousand(2_000)
        );
        let json = serde_json::to_value(&stats).expect("json");
        assert_eq!(json["rowsWrittenPerThousandSignups"], 16_667);
    }

    #[test]
    fn per_thousand_rounds_half_up_and_never_overflows() {
        assert_eq!(PerThousand::of(1, 16), PerThousand(63)); // 62.5
        assert_eq!(PerThousand::of(2, 3), PerThousand(667));
        assert_eq!(PerThousand::of(u64::MAX, 1), PerThousand(u64::MAX));
    }

    #[test]
    fn a_state_saved_before_cost_counters_existed_reads_them_as_zero() {
        let counters: CostCounters = serde_json::from_str("{}").expect("defaults");
        assert_eq!(counters, CostCounters::default());
    }
}
