//! `make bench`, the regions part (issue P): one burst of signups through the real stack
//! (`wrangler dev`, workerd, one `SesGate` per region, ses-local serving every region and
//! throttling each at the gate interval) with a pool of 1, 2 and 3 regions. Prints, for each,
//! the drain time (from the burst's first request to the last send ses-local accepted), each
//! region's sends and its shortest and mean gap between sends, and the Throttling answers.
//!
//! Environment: `BENCH_REGION_SIGNUPS` (default 300) and `BENCH_REGION_INTERVAL_MS` (default
//! 100).

// Native benchmark code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::gate::{burst, throttled_at_ses, unix_now_us};
use support::{Spec, Stack};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let signups = env_number("BENCH_REGION_SIGNUPS", 300) as usize;
    let interval = env_number("BENCH_REGION_INTERVAL_MS", 100).to_string();
    println!(
        "regions: {signups} signups at once, GATE_INTERVAL_MS={interval}, ses-local throttling each region at the same interval"
    );
    for n in 1..=REGIONS.len() {
        let regions = &REGIONS[..n];
        let stack = Stack::start(
            &format!("bench-regions-{n}"),
            Spec {
                vars: &[("GATE_INTERVAL_MS", &interval)],
                ses_args: &["--throttle-ms", &interval],
                regions,
                ..Spec::default()
            },
        );
        let started = unix_now_us();
        let replies = burst(&stack, &format!("bench{n}-"), signups);
        let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
        for (_, reply) in &replies {
            *answers.entry(reply.status).or_default() += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(20 + signups as u64);
        let sends = loop {
            let sends: Vec<(String, u64)> = stack
                .ses_requests()
                .iter()
                .filter(|r| r["status"] == 200)
                .map(|r| {
                    (
                        r["region"].as_str().unwrap_or_default().to_string(),
                        r["receivedAtUs"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            if sends.len() >= signups || Instant::now() > deadline {
                break sends;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let last = sends.iter().map(|s| s.1).max().unwrap_or(started);
        println!(
            "  {n} region(s): {} of {signups} sent in {:.1} s (answers {answers:?}), Throttling {}",
            sends.len(),
            (last - started) as f64 / 1e6,
            throttled_at_ses(&stack)
        );
        for region in regions {
            let arrivals: Vec<u64> = sends
                .iter()
                .filter(|s| s.0 == *region)
                .map(|s| s.1)
                .collect();
            let gaps: Vec<u64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
            let min = gaps.iter().copied().min().unwrap_or(0) as f64 / 1000.0;
            let mean = gaps.iter().sum::<u64>() as f64 / gaps.len().max(1) as f64 / 1000.0;
            println!(
                "    {region}: {} sends, gap min {min:.1} ms, mean {mean:.1} ms",
                arrivals.len()
            );
        }
    }
}
