//! `SendLog`: how many signups were sent in the last minute and the last hour, for
//! `GET /gate/stats`, counted inside the gate state (which every send saves anyway) instead of a
//! table that cost a row and an index entry per send, and as many again to prune.
//!
//! Invariants: bounded (at most 60 per-second and 60 per-minute counts, the older ones dropped at
//! each send); the last minute is exact to the second, the last hour to the minute; a clock that
//! steps back never loses or double-counts a send.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;
/// How many seconds, and how many minutes, are kept.
const KEPT: u64 = 60;

/// Sends per second for the last minute and per minute for the last hour, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendLog {
    seconds: VecDeque<(u64, u32)>,
    minutes: VecDeque<(u64, u32)>,
}

impl SendLog {
    /// A send at `now_ms`.
    pub fn record(&mut self, now_ms: u64) {
        bump(&mut self.seconds, now_ms / SECOND_MS);
        bump(&mut self.minutes, now_ms / MINUTE_MS);
        let (second, minute) = (now_ms / SECOND_MS, now_ms / MINUTE_MS);
        self.seconds.retain(|(at, _)| at + KEPT > second);
        self.minutes.retain(|(at, _)| at + KEPT > minute);
    }

    /// Sends in the 60 seconds up to `now_ms` (by whole seconds).
    pub fn last_minute(&self, now_ms: u64) -> u64 {
        within(&self.seconds, now_ms / SECOND_MS)
    }

    /// Sends in the 60 minutes up to `now_ms` (by whole minutes).
    pub fn last_hour(&self, now_ms: u64) -> u64 {
        within(&self.minutes, now_ms / MINUTE_MS)
    }
}

/// One more send in the bucket `at`: the newest bucket, or a new one after it.
fn bump(buckets: &mut VecDeque<(u64, u32)>, at: u64) {
    match buckets.iter_mut().find(|(t, _)| *t == at) {
        Some((_, n)) => *n = n.saturating_add(1),
        None => {
            buckets.push_back((at, 1));
            buckets.make_contiguous().sort_unstable_by_key(|(t, _)| *t);
        }
    }
}

/// The sends of the `KEPT` buckets up to `now`.
fn within(buckets: &VecDeque<(u64, u32)>, now: u64) -> u64 {
    buckets
        .iter()
        .filter(|(at, _)| *at <= now && at + KEPT > now)
        .map(|(_, n)| u64::from(*n))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn sends_count_for_a_minute_by_the_second_and_for_an_hour_by_the_minute() {
        let mut log = SendLog::default();
        log.record(T0);
        log.record(T0 + 400);
        log.record(T0 + 30_000);
        assert_eq!(log.last_minute(T0 + 30_000), 3);
        assert_eq!(log.last_minute(T0 + 60_500), 1, "the first second is out");
        assert_eq!(log.last_minute(T0 + 91_000), 0);
        assert_eq!(log.last_hour(T0 + 91_000), 3);
        assert_eq!(log.last_hour(T0 + 61 * MINUTE_MS), 0);
    }

    #[test]
    fn the_log_keeps_at_most_sixty_buckets_of_each_size() {
        let mut log = SendLog::default();
        // One send a second for two hours.
        for s in 0..7_200 {
            log.record(T0 + s * SECOND_MS);
        }
        assert_eq!(log.seconds.len(), 60);
        assert!(log.minutes.len() <= 60, "{}", log.minutes.len());
        let now = T0 + 7_199 * SECOND_MS;
        assert_eq!(log.last_minute(now), 60);
        assert!(
            (3_540..=3_600).contains(&log.last_hour(now)),
            "{}",
            log.last_hour(now)
        );
    }

    #[test]
    fn a_clock_that_steps_back_loses_no_send() {
        let mut log = SendLog::default();
        log.record(T0 + 5_000);
        log.record(T0 + 2_000);
        log.record(T0 + 5_000);
        assert_eq!(log.last_minute(T0 + 6_000), 3);
        assert_eq!(log.seconds.len(), 2);
    }

    #[test]
    fn a_state_saved_with_the_old_send_table_reads_an_empty_log() {
        let log: SendLog = serde_json::from_str("{}").expect("defaults");
        assert_eq!(log, SendLog::default());
        assert_eq!(log.last_hour(T0), 0);
    }
}
