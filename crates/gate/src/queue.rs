//! The durable queue of signups waiting for a send slot, served fairly across recipient domains:
//! what an item is, and what becomes of the head after each SES answer: removed when sent, kept
//! (backing off) when throttled, retried up to `SES_MAX_ATTEMPTS` on server errors, dropped when
//! SES refuses the address, and the whole queue paused while SES says the configuration is broken.
//!
//! Pure: [`settle_head`] decides and changes only the gate state; the gate applies the decision to
//! its store. Time and randomness are passed in.

use crate::messages::CallResult;
use crate::messages::Recipient;
use crate::state::GateState;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::request_id::RequestId;
use signup_verify_ses::outcome::Outcome;
use signup_verify_ses::outcome::RetryReason;

/// How long the queue pauses while SES says the configuration or credentials are broken.
pub const CONFIG_PAUSE_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedItem {
    pub id: u64,
    /// The address as the signup gave it; kept only while queued.
    pub email: EmailAddress,
    /// HMAC of the normalised address: the dedupe key.
    pub key: String,
    pub enqueued_at_ms: u64,
    /// SES calls already made for this item that ended in a server error, timeout or junk.
    pub attempts: u32,
    /// Its place in the fair order (see [`fair_tag`]); the queue is served by tag, then arrival.
    pub tag: u64,
    /// The request that queued it, for the log lines of its send (none for older items).
    pub request_id: Option<RequestId>,
}

impl QueuedItem {
    pub fn recipient(&self) -> Recipient<'_> {
        Recipient {
            email: &self.email,
            key: &self.key,
            request_id: self.request_id.as_ref(),
        }
    }
}

/// Where a new item goes in the fair order: fair queueing by recipient domain. The queue is
/// served in `(tag, arrival)` order. A new signup gets the next tag of its own domain, but never
/// one below the tag being served now, so a domain that floods the queue stretches only its own
/// line: one signup to a quiet domain waits about one round (one item per busy domain), not
/// behind the whole flood. A failed direct send keeps its turn with the tag being served.
pub fn fair_tag(front: bool, last_tag_of_domain: Option<u64>, served_tag: u64) -> u64 {
    if front {
        served_tag
    } else {
        last_tag_of_domain.unwrap_or(0).max(served_tag) + 1
    }
}

/// Why an item left the queue without a MessageId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// SES refused the address (`InvalidParameterValue`, `MessageRejected`).
    Rejected,
    /// `SES_MAX_ATTEMPTS` server errors or unreadable error replies, or a second timeout.
    Exhausted,
    /// Waited longer than `QUEUE_MAX_AGE_SECONDS`.
    Expired,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Exhausted => "exhausted",
            Self::Expired => "expired",
        }
    }
}

/// What became of the head after one SES call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadResult {
    Sent {
        message_id: Option<String>,
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

impl HeadResult {
    /// Whether the item leaves the queue (sent or dropped).
    pub fn leaves_queue(&self) -> bool {
        matches!(self, Self::Sent { .. } | Self::Dropped { .. })
    }
}

/// Decides what becomes of `item` (the head) after `result`, and applies it to the gate state
/// and the counters. The caller removes the item when [`HeadResult::leaves_queue`], and stores
/// the new attempt count on [`HeadResult::WillRetry`].
pub fn settle_head(
    gate: &mut GateState,
    item: &QueuedItem,
    result: CallResult,
    now_ms: u64,
    random: u32,
    max_attempts: u32,
) -> HeadResult {
    let drop_for = |gate: &mut GateState, reason: DropReason, attempts: u32| {
        *gate
            .counters
            .drops
            .entry(reason.as_str().into())
            .or_default() += 1;
        HeadResult::Dropped { reason, attempts }
    };
    match result {
        CallResult::Answered(Outcome::Sent { message_id }) => {
            gate.succeeded();
            gate.paused_until_ms = None;
            gate.config_errors = 0;
            HeadResult::Sent { message_id }
        }
        CallResult::Answered(Outcome::Retryable(RetryReason::Throttled)) => {
            gate.counters.throttles_seen += 1;
            HeadResult::Throttled {
                pause_ms: gate.throttled(now_ms, random),
            }
        }
        CallResult::Answered(Outcome::Config { .. }) => {
            gate.config_errors = gate.config_errors.saturating_add(1);
            let until = now_ms + CONFIG_PAUSE_MS;
            gate.paused_until_ms = Some(until);
            gate.next_free_ms = gate.next_free_ms.max(until);
            HeadResult::Paused {
                paused_until_ms: until,
            }
        }
        CallResult::Answered(Outcome::Rejected) => {
            drop_for(gate, DropReason::Rejected, item.attempts + 1)
        }
        // A success of another action is not an answer to this send.
        CallResult::Answered(
            Outcome::Retryable(RetryReason::ServerError)
            | Outcome::Unknown
            | Outcome::Checked { .. }
            | Outcome::Deleted
            | Outcome::Listed { .. },
        )
        | CallResult::TimedOut => {
            let attempts = match result {
                // The call may have reached SES: one more try at most, never a series.
                CallResult::TimedOut => (item.attempts + 1).max(max_attempts.saturating_sub(1)),
                _ => item.attempts + 1,
            };
            if attempts >= max_attempts {
                drop_for(gate, DropReason::Exhausted, attempts)
            } else {
                HeadResult::WillRetry { attempts }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attempts: u32) -> QueuedItem {
        QueuedItem {
            id: 1,
            email: EmailAddress::parse("u0@example.com").expect("valid"),
            key: "k0".into(),
            enqueued_at_ms: 1_000,
            attempts,
            tag: 1,
            request_id: None,
        }
    }

    #[test]
    fn a_flooded_domain_stretches_only_its_own_line() {
        // 300 signups to one domain, nothing served yet: tags 1..=300.
        let mut last_flood = None;
        for _ in 0..300 {
            last_flood = Some(fair_tag(false, last_flood, 0));
        }
        assert_eq!(last_flood, Some(300));
        // 40 sent; another domain's first signup gets the next round's tag.
        assert_eq!(fair_tag(false, None, 40), 41);
        // Its second one is a round later, not behind the flood.
        assert_eq!(fair_tag(false, Some(41), 40), 42);
        // The flood's next signup still goes to the end of the flood's own line.
        assert_eq!(fair_tag(false, last_flood, 40), 301);
        // A domain idle for a while does not get credit for its idle time.
        assert_eq!(fair_tag(false, Some(3), 40), 41);
        // A failed direct send keeps its turn.
        assert_eq!(fair_tag(true, Some(300), 40), 40);
    }

    fn settle(gate: &mut GateState, attempts: u32, result: CallResult, now: u64) -> HeadResult {
        settle_head(gate, &item(attempts), result, now, 0, 3)
    }

    fn answered(outcome: Outcome) -> CallResult {
        CallResult::Answered(outcome)
    }

    fn sent() -> CallResult {
        answered(Outcome::Sent {
            message_id: Some("m".into()),
        })
    }

    #[test]
    fn a_sent_head_leaves_the_queue() {
        let mut gate = GateState::default();
        let result = settle(&mut gate, 0, sent(), 5_000);
        assert_eq!(
            result,
            HeadResult::Sent {
                message_id: Some("m".into())
            }
        );
        assert!(result.leaves_queue());
    }

    #[test]
    fn a_throttled_head_stays_without_an_attempt_and_the_gate_backs_off_until_a_success() {
        let mut gate = GateState::default();
        let throttled = answered(Outcome::Retryable(RetryReason::Throttled));
        let first = settle(&mut gate, 0, throttled.clone(), 10_000);
        assert_eq!(first, HeadResult::Throttled { pause_ms: 1_000 });
        assert!(!first.leaves_queue());
        assert_eq!(
            settle(&mut gate, 0, throttled, 11_000),
            HeadResult::Throttled { pause_ms: 2_000 }
        );
        assert_eq!(
            (gate.counters.throttles_seen, gate.next_free_ms),
            (2, 13_000)
        );
        settle(&mut gate, 0, sent(), 13_000);
        assert!(!gate.backoff.is_active());
    }

    #[test]
    fn server_errors_are_retried_up_to_the_limit_then_dropped_and_counted() {
        let mut gate = GateState::default();
        let server = answered(Outcome::Retryable(RetryReason::ServerError));
        assert_eq!(
            settle(&mut gate, 0, server, 0),
            HeadResult::WillRetry { attempts: 1 }
        );
        assert_eq!(
            settle(&mut gate, 1, CallResult::TimedOut, 0),
            HeadResult::WillRetry { attempts: 2 }
        );
        let last = settle(&mut gate, 2, answered(Outcome::Unknown), 0);
        assert_eq!(
            last,
            HeadResult::Dropped {
                reason: DropReason::Exhausted,
                attempts: 3
            }
        );
        assert!(last.leaves_queue());
        assert_eq!(gate.counters.drops.get("exhausted"), Some(&1));
    }

    #[test]
    fn after_a_timeout_the_item_gets_one_more_try_at_most() {
        let mut gate = GateState::default();
        let five = |gate: &mut GateState, attempts, result| {
            settle_head(gate, &item(attempts), result, 0, 0, 5)
        };
        assert_eq!(
            five(&mut gate, 0, CallResult::TimedOut),
            HeadResult::WillRetry { attempts: 4 }
        );
        assert_eq!(
            five(&mut gate, 4, CallResult::TimedOut),
            HeadResult::Dropped {
                reason: DropReason::Exhausted,
                attempts: 5
            }
        );
        let server = answered(Outcome::Retryable(RetryReason::ServerError));
        assert_eq!(
            five(&mut gate, 4, server),
            HeadResult::Dropped {
                reason: DropReason::Exhausted,
                attempts: 5
            }
        );
        assert_eq!(
            settle_head(&mut gate, &item(0), CallResult::TimedOut, 0, 0, 1),
            HeadResult::Dropped {
                reason: DropReason::Exhausted,
                attempts: 1
            },
            "with one attempt allowed, a timeout ends it"
        );
    }

    #[test]
    fn a_refused_address_is_dropped_at_once() {
        let mut gate = GateState::default();
        let result = settle(&mut gate, 0, answered(Outcome::Rejected), 0);
        assert_eq!(
            result,
            HeadResult::Dropped {
                reason: DropReason::Rejected,
                attempts: 1
            }
        );
        assert_eq!(gate.counters.drops.get("rejected"), Some(&1));
    }

    #[test]
    fn a_configuration_error_pauses_the_queue_and_a_success_ends_the_pause() {
        let mut gate = GateState::default();
        let result = settle(
            &mut gate,
            0,
            answered(Outcome::Config { clock_skew: false }),
            7_000,
        );
        assert_eq!(
            result,
            HeadResult::Paused {
                paused_until_ms: 67_000
            }
        );
        assert!(!result.leaves_queue());
        assert_eq!(gate.next_free_ms, 67_000);
        assert!(gate.counters.drops.is_empty());
        settle(&mut gate, 0, sent(), 67_000);
        assert_eq!(gate.paused_until_ms, None);
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
}
