//! Helpers for the gate's end-to-end tests: bursts, fault injection, and what ses-local saw.

use super::{concurrently, request, Reply, Stack};

pub const TOKEN: &str = "e2e-admin-token-0123456789";

pub fn signup_at((worker, email): (String, String)) -> (String, Reply) {
    let body = serde_json::json!({ "email": email }).to_string();
    let reply = request(
        "POST",
        &format!("{worker}/signup"),
        Some(("application/json", body.as_bytes())),
    );
    (email, reply)
}

pub fn burst(stack: &Stack, prefix: &str, n: usize) -> Vec<(String, Reply)> {
    let items = (0..n)
        .map(|i| (stack.worker.clone(), format!("{prefix}{i}@example.com")))
        .collect();
    concurrently(items, signup_at)
}

/// One signup before a burst, then sixty more for the same address (each a `cooldown` answer
/// from the gate, nothing sent), so the measurement is of the gate and not of a cold isolate:
/// its first outbound connection, and the runtime compiling hot code while the burst arrives.
/// Returns the address.
pub fn warm_up(stack: &Stack) -> String {
    let email = "warm-up@example.com".to_string();
    assert_eq!(stack.signup(&email).status, 200);
    assert_eq!(
        stack
            .wait_for_outbox(1, std::time::Duration::from_secs(10))
            .len(),
        1
    );
    let again: Vec<(String, String)> = (0..60)
        .map(|_| (stack.worker.clone(), email.clone()))
        .collect();
    let replies = concurrently(again, signup_at);
    assert!(replies.iter().all(|(_, r)| r.status == 429), "cooldown");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    email
}

pub fn add_fault(stack: &Stack, fault: &str, count: u32) {
    let body = serde_json::json!({"action": "SendCustomVerificationEmail", "fault": fault, "count": count}).to_string();
    let reply = request(
        "POST",
        &format!("{}_faults", stack.ses),
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
}

pub fn sent_addresses(stack: &Stack) -> Vec<String> {
    let mut sent: Vec<String> = stack
        .outbox()
        .iter()
        .map(|m| m["emailAddress"].as_str().unwrap_or_default().to_string())
        .collect();
    sent.sort();
    sent
}

/// Now, in microseconds since the Unix epoch: ses-local's clock for `receivedAtUs`, unless the
/// stack moved ses-local's clock (its clock-skew option).
pub fn unix_now_us() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}

/// What a burst's spacing must keep (see [`Spacing::assert_within`]).
pub struct PacingBounds {
    /// No gap shorter than the gate interval.
    pub interval_ms: f64,
    /// Enough gaps after intake for their mean to mean something.
    pub steady_gaps_at_least: usize,
    pub steady_mean_at_most_ms: f64,
    /// What intake may cost the gap it lands in.
    pub longest_at_most_ms: f64,
}

/// A burst of 100 at a 100 ms interval.
///
/// The steady mean may be 7 ms over the interval. What a send costs above the interval does not
/// grow with it: the answer's round trip, the clock's millisecond, and how late the wire's
/// timer fires. Idle, the 2-core development machine measures 102.1–102.4 ms; with both cores
/// kept busy beside the test, 102.8–105.5 ms; a shared CI machine measured 104.7 ms. 7 ms is 93 %
/// slot use at 100 ms and 99.3 % at the real 1000 ms interval, whose 97 % guarantee the 1000 ms
/// test holds on its own. It still catches the gate's work landing between one answer and the
/// next call (about 10 ms a send).
pub const BURST_AT_100_MS: PacingBounds = PacingBounds {
    interval_ms: 100.0,
    steady_gaps_at_least: 50,
    steady_mean_at_most_ms: 107.0,
    longest_at_most_ms: 1000.0,
};

/// The spacing of a burst's sends, from when ses-local saw them arrive.
pub struct Spacing {
    /// The shortest gap between two sends.
    pub min_ms: f64,
    /// The longest gap: it bounds what intake may cost.
    pub longest_ms: f64,
    /// The mean gap once intake had ended: pacing alone. While a burst arrives the gate is busy
    /// storing its admissions (a signup's answer means its admission is stored), and its next
    /// call waits behind them. A slower machine takes longer over intake; that is
    /// not pacing.
    pub steady_mean_ms: f64,
    /// How many gaps the steady mean is over.
    steady_gaps: usize,
    /// The median and the longest of those gaps: a mean raised by a few stalls shows a long
    /// tail, one raised by every send shows a raised median.
    steady_median_ms: f64,
    steady_longest_ms: f64,
}

impl Spacing {
    /// `arrivals_us` are the burst's sends; `intake_ended_us` is when its last signup was
    /// answered (`unix_now_us`).
    pub fn of(arrivals_us: &[u64], intake_ended_us: u64) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let gaps: Vec<u64> = arrivals_us.windows(2).map(|w| w[1] - w[0]).collect();
        let mut steady: Vec<u64> = arrivals_us
            .windows(2)
            .filter(|w| w[0] >= intake_ended_us)
            .map(|w| w[1] - w[0])
            .collect();
        steady.sort_unstable();
        Spacing {
            min_ms: ms(gaps.iter().copied().min().unwrap_or(0)),
            longest_ms: ms(gaps.iter().copied().max().unwrap_or(0)),
            steady_mean_ms: ms(steady.iter().sum::<u64>()) / steady.len().max(1) as f64,
            steady_gaps: steady.len(),
            steady_median_ms: ms(steady.get(steady.len() / 2).copied().unwrap_or(0)),
            steady_longest_ms: ms(steady.last().copied().unwrap_or(0)),
        }
    }

    /// Prints the spacing under `label` and asserts it keeps `bounds`.
    pub fn assert_within(&self, label: &str, bounds: &PacingBounds) {
        eprintln!("{label}: {}", self.summary());
        assert!(
            self.min_ms >= bounds.interval_ms,
            "{label}: min spacing {} ms",
            self.min_ms
        );
        assert!(
            self.steady_gaps >= bounds.steady_gaps_at_least,
            "{label}: intake held most of the burst, only {} gaps after it",
            self.steady_gaps
        );
        assert!(
            self.steady_mean_ms <= bounds.steady_mean_at_most_ms,
            "{label}: steady mean spacing {} ms",
            self.steady_mean_ms
        );
        assert!(
            self.longest_ms <= bounds.longest_at_most_ms,
            "{label}: longest gap {} ms",
            self.longest_ms
        );
    }

    pub fn summary(&self) -> String {
        format!(
            "min {:.1} ms, longest {:.1} ms; after intake, {} gaps: mean {:.2} ms, median {:.1} ms, longest {:.1} ms",
            self.min_ms,
            self.longest_ms,
            self.steady_gaps,
            self.steady_mean_ms,
            self.steady_median_ms,
            self.steady_longest_ms
        )
    }
}

/// (min, mean) spacing in ms between accepted sends, as ses-local saw them arrive.
pub fn spacing_ms(stack: &Stack) -> (f64, f64) {
    let gaps = stack.send_gaps_us();
    let min = gaps.iter().copied().min().unwrap_or(0) as f64 / 1000.0;
    let mean = gaps.iter().sum::<u64>() as f64 / gaps.len().max(1) as f64 / 1000.0;
    (min, mean)
}

pub fn assert_all_sent_or_queued(results: &[(String, Reply)]) {
    for (email, reply) in results {
        match reply.status {
            200 => assert_eq!(reply.json["status"], "sent", "{email}"),
            202 => {
                assert_eq!(reply.json["status"], "queued", "{email}");
                assert!(
                    reply.json["position"].as_u64().is_some_and(|p| p >= 1),
                    "{email}: {}",
                    reply.text
                );
                assert!(
                    reply.json["estimatedSendAt"]
                        .as_str()
                        .is_some_and(|t| t.ends_with('Z')),
                    "{}",
                    reply.text
                );
            }
            other => panic!("{email}: {other} {}", reply.text),
        }
    }
}

/// How many calls ses-local answered `Throttling`.
pub fn throttled_at_ses(stack: &Stack) -> usize {
    stack
        .ses_requests()
        .iter()
        .filter(|r| r["code"] == "Throttling")
        .count()
}

pub fn assert_no_throttling_at_ses(stack: &Stack) {
    let throttled = throttled_at_ses(stack);
    assert_eq!(
        throttled, 0,
        "SES saw Throttling: the gate let calls through too fast"
    );
}
