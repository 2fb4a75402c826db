//! `SendLog`: how many signups were sent in the last minute and the last hour, for
//! `GET /gate/stats`, counted inside the gate state (which every send saves anyway) instead of a
//! table that cost a row and an index entry per send, and as many again to prune.
//!
//! Invariants: bounded (at most 60 per-second and 60 per-minute counts, the older ones dropped at
//! each send); the last minute is exact to the second, the last hour to the minute; a clock that
//! steps back never loses or double-counts a send.

use serde::{Deserialize, Serialize};

const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;
/// How many seconds, and how many minutes, are kept.
const KEPT: u64 = 60;

/// Sends per second for the last minute and per minute for the last hour: each a flat list of
/// `time, count` pairs in time order (a flat list of integers reads and writes with the code the
/// upload already carries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendLog {
    seconds: Vec<u64>,
    minutes: Vec<u64>,
}

impl SendLog {
    /// A send at `now_ms`.
    pub fn record(&mut self, now_ms: u64) {
        bump(&mut self.seconds, now_ms / SECOND_MS);
        bump(&mut self.minutes, now_ms / MINUTE_MS);
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

/// One more send in the bucket `at`, kept in time order (a clock that stepped back puts it
/// before newer buckets); then only the newest `KEPT` buckets' span is kept.
fn bump(pairs: &mut Vec<u64>, at: u64) {
    let mut place = 0;
    while place + 1 < pairs.len() && pairs[place] < at {
        place += 2;
    }
    if place + 1 < pairs.len() && pairs[place] == at {
        pairs[place + 1] = pairs[place + 1].saturating_add(1);
    } else {
        pairs.insert(place.min(pairs.len()), 1);
        pairs.insert(place.min(pairs.len()), at);
    }
    let newest = pairs.iter().step_by(2).copied().max().unwrap_or(at);
    let mut old = 0;
    while old + 1 < pairs.len() && pairs[old] + KEPT <= newest {
        old += 2;
    }
    pairs.drain(..old);
}

/// The sends of the `KEPT` buckets up to `now`.
fn within(pairs: &[u64], now: u64) -> u64 {
    pairs
        .chunks(2)
        .filter(|pair| pair[0] <= now && pair[0] + KEPT > now)
        .map(|pair| pair.get(1).copied().unwrap_or(0))
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
        assert_eq!(log.seconds.len(), 2 * 60);
        assert!(log.minutes.len() <= 2 * 60, "{}", log.minutes.len());
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
        assert_eq!(log.seconds.len(), 2 * 2);
    }

    #[test]
    fn a_state_saved_with_the_old_send_table_reads_an_empty_log() {
        let log: SendLog = serde_json::from_str("{}").expect("defaults");
        assert_eq!(log, SendLog::default());
        assert_eq!(log.last_hour(T0), 0);
    }
}
