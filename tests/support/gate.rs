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

pub fn assert_no_throttling_at_ses(stack: &Stack) {
    let throttled = stack
        .ses_requests()
        .iter()
        .filter(|r| r["code"] == "Throttling")
        .count();
    assert_eq!(
        throttled, 0,
        "SES saw Throttling: the gate let calls through too fast"
    );
}
