//! The durable FIFO of signups waiting for a send slot, and what happens to its head after each
//! SES answer: removed when sent, kept (backing off) when throttled, retried up to
//! `SES_MAX_ATTEMPTS` on server errors, dropped when SES refuses the address, and the whole
//! queue paused while SES says the configuration is broken.
//!
//! Pure: storage is the small [`QueueStore`] trait (SQLite in the Durable Object, a `Vec` in
//! tests), and time and randomness are passed in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gate::slots::GateState;
use crate::ses::outcome::{Outcome, RetryReason};

/// How long the queue pauses while SES says the configuration or credentials are broken.
pub const CONFIG_PAUSE_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedItem {
    pub id: u64,
    /// The address as the signup gave it (after parsing); kept only while queued.
    pub email: String,
    /// HMAC of the normalised address: the dedupe key.
    pub key: String,
    pub enqueued_at_ms: u64,
    /// SES calls already made for this item that ended in a server error, timeout or junk.
    pub attempts: u32,
}

/// What the queue needs from storage.
pub trait QueueStore {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// 1-based position of the item with this key, if queued.
    fn position_of(&self, key: &str) -> Option<u64>;
    /// Appends; returns the new item's position.
    fn push(&mut self, email: &str, key: &str, now_ms: u64, attempts: u32) -> u64;
    fn head(&self) -> Option<QueuedItem>;
    fn remove(&mut self, id: u64);
    fn set_attempts(&mut self, id: u64, attempts: u32);
}

/// Counters for `GET /gate/stats`, persisted with the gate state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounters {
    pub throttles_seen: u64,
    /// Dropped items by reason: `rejected`, `exhausted`.
    pub drops: BTreeMap<String, u64>,
}

/// Why an item left the queue without a MessageId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// SES refused the address (`InvalidParameterValue`, `MessageRejected`).
    Rejected,
    /// `SES_MAX_ATTEMPTS` server errors, timeouts or unreadable replies.
    Exhausted,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Exhausted => "exhausted",
        }
    }
}

/// What became of the head after one SES call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadResult {
    Sent {
        message_id: String,
    },
    /// Still at the head; the gate backs off by `pause_ms`.
    Throttled {
        pause_ms: u64,
    },
    /// Still at the head, to be tried again (`attempts` so far).
    WillRetry {
        attempts: u32,
    },
    /// Still queued; the whole queue waits until `paused_until_ms`.
    Paused {
        paused_until_ms: u64,
    },
    Dropped {
        reason: DropReason,
        attempts: u32,
    },
}

/// The outcome of one call for a queued item, or `TimedOut` when SES did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallResult {
    Answered(Outcome),
    TimedOut,
}

/// Applies the answer for `item` (the head) to the queue, the gate and the counters.
pub fn settle_head<S: QueueStore>(
    store: &mut S,
    gate: &mut GateState,
    item: &QueuedItem,
    result: CallResult,
    now_ms: u64,
    random: u32,
    max_attempts: u32,
) -> HeadResult {
    let mut count_attempt = |gate: &mut GateState| {
        let attempts = item.attempts + 1;
        if attempts >= max_attempts {
            store.remove(item.id);
            *gate
                .counters
                .drops
                .entry(DropReason::Exhausted.as_str().into())
                .or_default() += 1;
            HeadResult::Dropped {
                reason: DropReason::Exhausted,
                attempts,
            }
        } else {
            store.set_attempts(item.id, attempts);
            HeadResult::WillRetry { attempts }
        }
    };
    match result {
        CallResult::Answered(Outcome::Sent { message_id }) => {
            store.remove(item.id);
            gate.succeeded();
            gate.paused_until_ms = None;
            HeadResult::Sent { message_id }
        }
        CallResult::Answered(Outcome::Retryable(RetryReason::Throttled)) => {
            gate.counters.throttles_seen += 1;
            HeadResult::Throttled {
                pause_ms: gate.throttled(now_ms, random),
            }
        }
        CallResult::Answered(Outcome::Config { .. }) => {
            let until = now_ms + CONFIG_PAUSE_MS;
            gate.paused_until_ms = Some(until);
            gate.next_free_ms = gate.next_free_ms.max(until);
            HeadResult::Paused {
                paused_until_ms: until,
            }
        }
        CallResult::Answered(Outcome::Rejected) => {
            store.remove(item.id);
            *gate
                .counters
                .drops
                .entry(DropReason::Rejected.as_str().into())
                .or_default() += 1;
            HeadResult::Dropped {
                reason: DropReason::Rejected,
                attempts: item.attempts + 1,
            }
        }
        CallResult::Answered(Outcome::Retryable(RetryReason::ServerError) | Outcome::Unknown)
        | CallResult::TimedOut => count_attempt(gate),
    }
}

/// When the item at `position` can expect to be sent: one interval per item ahead of it, from
/// the gate's next free slot.
pub fn estimated_send_at_ms(gate: &GateState, now_ms: u64, position: u64, interval_ms: u64) -> u64 {
    let start = now_ms
        .max(gate.next_free_ms)
        .max(gate.paused_until_ms.unwrap_or(0));
    start + position.saturating_sub(1) * interval_ms
}

/// `2026-11-26T10:00:00.000Z` for Unix milliseconds (the Workers runtime has no formatter here).
pub fn rfc3339_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// A `Vec`-backed store for host tests of the queue and the gate.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryQueue {
    pub items: Vec<QueuedItem>,
    next_id: u64,
}

#[cfg(test)]
impl QueueStore for MemoryQueue {
    fn len(&self) -> u64 {
        self.items.len() as u64
    }
    fn position_of(&self, key: &str) -> Option<u64> {
        self.items
            .iter()
            .position(|i| i.key == key)
            .map(|p| p as u64 + 1)
    }
    fn push(&mut self, email: &str, key: &str, now_ms: u64, attempts: u32) -> u64 {
        self.next_id += 1;
        self.items.push(QueuedItem {
            id: self.next_id,
            email: email.into(),
            key: key.into(),
            enqueued_at_ms: now_ms,
            attempts,
        });
        self.len()
    }
    fn head(&self) -> Option<QueuedItem> {
        self.items.first().cloned()
    }
    fn remove(&mut self, id: u64) {
        self.items.retain(|i| i.id != id);
    }
    fn set_attempts(&mut self, id: u64, attempts: u32) {
        if let Some(item) = self.items.iter_mut().find(|i| i.id == id) {
            item.attempts = attempts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(n: usize) -> MemoryQueue {
        let mut q = MemoryQueue::default();
        for i in 0..n {
            q.push(&format!("u{i}@example.com"), &format!("k{i}"), 1_000, 0);
        }
        q
    }

    fn settle(
        q: &mut MemoryQueue,
        gate: &mut GateState,
        result: CallResult,
        now: u64,
    ) -> HeadResult {
        let head = q.head().expect("a head");
        settle_head(q, gate, &head, result, now, 0, 3)
    }

    fn answered(outcome: Outcome) -> CallResult {
        CallResult::Answered(outcome)
    }

    #[test]
    fn a_sent_head_leaves_and_the_next_moves_up() {
        let (mut q, mut gate) = (queue_of(2), GateState::default());
        let result = settle(
            &mut q,
            &mut gate,
            answered(Outcome::Sent {
                message_id: "m".into(),
            }),
            5_000,
        );
        assert_eq!(
            result,
            HeadResult::Sent {
                message_id: "m".into()
            }
        );
        assert_eq!(q.head().map(|i| i.email), Some("u1@example.com".into()));
        assert_eq!(q.position_of("k1"), Some(1));
    }

    #[test]
    fn a_throttled_head_stays_first_and_the_gate_backs_off_until_a_success() {
        let (mut q, mut gate) = (queue_of(2), GateState::default());
        let throttled = answered(Outcome::Retryable(RetryReason::Throttled));
        assert_eq!(
            settle(&mut q, &mut gate, throttled.clone(), 10_000),
            HeadResult::Throttled { pause_ms: 1_000 }
        );
        assert_eq!(
            settle(&mut q, &mut gate, throttled, 11_000),
            HeadResult::Throttled { pause_ms: 2_000 }
        );
        assert_eq!(
            q.head().map(|i| i.attempts),
            Some(0),
            "throttling is not the item's fault"
        );
        assert_eq!(
            (q.len(), gate.counters.throttles_seen, gate.next_free_ms),
            (2, 2, 13_000)
        );
        settle(
            &mut q,
            &mut gate,
            answered(Outcome::Sent {
                message_id: "m".into(),
            }),
            13_000,
        );
        assert!(!gate.backoff.is_active());
    }

    #[test]
    fn server_errors_are_retried_up_to_the_limit_then_dropped_and_counted() {
        let (mut q, mut gate) = (queue_of(2), GateState::default());
        let server = answered(Outcome::Retryable(RetryReason::ServerError));
        assert_eq!(
            settle(&mut q, &mut gate, server.clone(), 0),
            HeadResult::WillRetry { attempts: 1 }
        );
        assert_eq!(
            settle(&mut q, &mut gate, CallResult::TimedOut, 0),
            HeadResult::WillRetry { attempts: 2 }
        );
        assert_eq!(
            settle(&mut q, &mut gate, answered(Outcome::Unknown), 0),
            HeadResult::Dropped {
                reason: DropReason::Exhausted,
                attempts: 3
            }
        );
        assert_eq!(
            q.head().map(|i| i.email),
            Some("u1@example.com".into()),
            "the rest continues"
        );
        assert_eq!(gate.counters.drops.get("exhausted"), Some(&1));
    }

    #[test]
    fn a_refused_address_is_dropped_at_once() {
        let (mut q, mut gate) = (queue_of(1), GateState::default());
        let result = settle(&mut q, &mut gate, answered(Outcome::Rejected), 0);
        assert_eq!(
            result,
            HeadResult::Dropped {
                reason: DropReason::Rejected,
                attempts: 1
            }
        );
        assert_eq!(
            (q.len(), gate.counters.drops.get("rejected")),
            (0, Some(&1))
        );
    }

    #[test]
    fn a_configuration_error_pauses_the_queue_and_keeps_every_item() {
        let (mut q, mut gate) = (queue_of(3), GateState::default());
        let result = settle(
            &mut q,
            &mut gate,
            answered(Outcome::Config { clock_skew: false }),
            7_000,
        );
        assert_eq!(
            result,
            HeadResult::Paused {
                paused_until_ms: 67_000
            }
        );
        assert_eq!((q.len(), q.head().map(|i| i.attempts)), (3, Some(0)));
        assert_eq!(gate.next_free_ms, 67_000);
        assert!(gate.counters.drops.is_empty());
        settle(
            &mut q,
            &mut gate,
            answered(Outcome::Sent {
                message_id: "m".into(),
            }),
            67_000,
        );
        assert_eq!(gate.paused_until_ms, None, "a success ends the pause");
    }

    #[test]
    fn the_estimate_counts_one_interval_per_item_ahead_from_the_next_free_slot() {
        let gate = GateState {
            next_free_ms: 5_000,
            ..GateState::default()
        };
        assert_eq!(estimated_send_at_ms(&gate, 1_000, 1, 1_000), 5_000);
        assert_eq!(estimated_send_at_ms(&gate, 1_000, 4, 1_000), 8_000);
        assert_eq!(
            estimated_send_at_ms(&GateState::default(), 9_000, 1, 100),
            9_000
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_utc(1_795_687_583_431), "2026-11-26T10:06:23.431Z");
        assert_eq!(rfc3339_utc(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }
}
