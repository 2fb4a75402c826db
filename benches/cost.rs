//! `make bench`, the cost part: what one signup costs the operator, in what Cloudflare bills,
//! through the real stack (`wrangler dev`, workerd, both Durable Objects, ses-local). Three lives:
//! sent and clicked within a minute (checked, verified, reported by webhook, its identity
//! deleted); sent and never clicked until the link expires (at two link TTLs, to show that what
//! one check costs does not depend on the TTL); refused by a limit (a second signup of the same
//! mailbox inside its cooldown). For each: rows read and written per signup (the gate's own
//! counters, from the SQLite cursor's billed `rowsRead` and `rowsWritten`, in `GET /gate/stats`),
//! Durable Object requests per signup, Worker requests per signup, and the cost per million
//! signups at list prices, printed beside their source. What it exercised (answers by status,
//! checks, SES calls by action) is printed with it.
//!
//! CPU per signup is the V8 profile's busy time in the isolate that runs the Worker and both
//! objects (`scripts/cpu_window.mjs`, over each life), less what the bench's own stats reads
//! cost (measured once: each read's CPU times the reads the life made).
//!
//! Environment: `BENCH_COST_SIGNUPS` (default 20 per life).

// Native benchmark code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::webhook::Receiver;
use support::{get, get_json, root, Spec, Stack, STATUS_SECRET, WEBHOOK_SECRET};

const TOKEN: &str = "bench-cost-admin-token-0123456789abcdef";
/// The gate interval, and ses-local's throttle: fast, so the lives take seconds.
const INTERVAL_MS: &str = "100";

/// List prices (Workers Paid, beyond the included monthly amounts), US dollars per million.
/// Source: developers.cloudflare.com/durable-objects/platform/pricing/ (requests; SQLite rows
/// read and written) and developers.cloudflare.com/workers/platform/pricing/ (requests), read
/// 2026-12-03.
const PRICE_ROW_WRITTEN: f64 = 1.00;
const PRICE_ROW_READ: f64 = 0.001;
const PRICE_OBJECT_REQUEST: f64 = 0.15;
const PRICE_WORKER_REQUEST: f64 = 0.30;

/// The gate's cost counters and follow-up counts at one moment.
#[derive(Clone, Copy, Default)]
struct Reading {
    rows_read: u64,
    rows_written: u64,
    object_requests: u64,
    checks: u64,
    signups_checked: u64,
    verified: u64,
    expired: u64,
    deleted: u64,
    delivered: u64,
}

/// A stack under measurement, with the stats reads it made (each is one request to the gate,
/// which the figures leave out: an operator's dashboard is not a signup's cost).
struct Measured {
    stack: Stack,
    stats_reads: Cell<u64>,
    /// What one stats read costs in CPU (µs), measured once the stack is warm.
    cpu_per_read_us: Cell<f64>,
}

/// A V8 CPU profile of the stack's isolate under way (`scripts/cpu_window.mjs`).
struct CpuWindow {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    reads_at_start: u64,
}

impl Measured {
    fn start(name: &str, receiver: &Receiver, ttl_seconds: &str) -> Measured {
        let url = receiver.url();
        let vars = [
            ("STATUS_TOKEN_SECRET", STATUS_SECRET),
            ("WEBHOOK_URL", url.as_str()),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("ADMIN_TOKEN", TOKEN),
            ("GATE_INTERVAL_MS", INTERVAL_MS),
            ("VERIFICATION_LINK_TTL_SECONDS", ttl_seconds),
            ("LOG_LEVEL", "error"),
        ];
        let stack = Stack::start(
            name,
            Spec {
                vars: &vars,
                ses_args: &["--throttle-ms", INTERVAL_MS, "--identity-on", "send"],
                ..Spec::default()
            },
        );
        Measured {
            stack,
            stats_reads: Cell::new(0),
            cpu_per_read_us: Cell::new(0.0),
        }
    }

    fn read(&self) -> Reading {
        let stats = self.stack.stats(Some(TOKEN));
        assert_eq!(stats.status, 200, "{}", stats.text);
        self.stats_reads.set(self.stats_reads.get() + 1);
        let json = stats.json;
        let n = |value: &Value| value.as_u64().expect("a count in the stats");
        Reading {
            rows_read: n(&json["cost"]["rowsRead"]),
            rows_written: n(&json["cost"]["rowsWritten"]),
            // This very read was counted by the gate as it arrived: leave out every stats read.
            object_requests: n(&json["cost"]["objectRequests"]) - self.stats_reads.get(),
            checks: n(&json["tracking"]["checks"]),
            signups_checked: n(&json["tracking"]["signupsChecked"]),
            verified: n(&json["tracking"]["verified"]),
            expired: n(&json["tracking"]["expired"]),
            deleted: n(&json["tracking"]["identitiesDeleted"]),
            delivered: n(&json["tracking"]["webhooksDelivered"]),
        }
    }

    /// Reads the stats every half second until `done` holds between `from` and the reading.
    fn wait(
        &self,
        what: &str,
        from: Reading,
        done: impl Fn(&Reading, &Reading) -> bool,
    ) -> Reading {
        let deadline = Instant::now()
            + Duration::from_secs(
                std::env::var("BENCH_COST_WAIT_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(180),
            );
        loop {
            let now = self.read();
            if done(&from, &now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                self.stack.stats(Some(TOKEN)).text
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Starts profiling the stack's isolate.
    fn cpu_start(&self) -> CpuWindow {
        let mut child = Command::new(root().join("node_modules/.bin/node"))
            .arg(root().join("scripts/cpu_window.mjs"))
            .arg(self.stack.inspector_port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs scripts/cpu_window.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the profiler answers");
        assert_eq!(line.trim(), "started", "the profiler started");
        CpuWindow {
            child,
            stdin,
            stdout,
            reads_at_start: self.stats_reads.get(),
        }
    }

    /// Stops the profile: the isolate's busy µs since `cpu_start`, less the stats reads made
    /// meanwhile.
    fn cpu_end(&self, mut window: CpuWindow) -> f64 {
        writeln!(window.stdin, "stop").expect("tell the profiler to stop");
        let mut line = String::new();
        window
            .stdout
            .read_line(&mut line)
            .expect("the profiler reports");
        let _ = window.child.wait();
        let report: Value = serde_json::from_str(&line).expect("a JSON report");
        let busy = report["busy_us"].as_f64().expect("busy_us");
        let reads = self.stats_reads.get() - window.reads_at_start;
        (busy - reads as f64 * self.cpu_per_read_us.get()).max(0.0)
    }

    /// Measures what one stats read costs, for `cpu_end` to leave out.
    fn calibrate(&self) -> f64 {
        const READS: u64 = 40;
        let window = self.cpu_start();
        for _ in 0..READS {
            self.read();
        }
        let busy = self.cpu_end(window);
        self.cpu_per_read_us.set(busy / READS as f64);
        busy / READS as f64
    }

    /// Posts each address once; the answers by status.
    fn sign_up(&self, addresses: &[String]) -> BTreeMap<u16, u64> {
        let mut answers = BTreeMap::new();
        for address in addresses {
            *answers
                .entry(self.stack.signup(address).status)
                .or_default() += 1;
        }
        answers
    }

    /// Follows each address's verification link (ses-local marks it verified and redirects to
    /// the Worker's `/confirm` page); how many landed.
    fn click(&self, addresses: &[String]) -> u64 {
        let outbox = self
            .stack
            .wait_for_outbox(addresses.len(), Duration::from_secs(60));
        let mut landed = 0;
        for address in addresses {
            let link = outbox
                .iter()
                .rev()
                .find(|mail| mail["emailAddress"] == address.as_str())
                .and_then(|mail| mail["verificationLink"].as_str())
                .unwrap_or_else(|| panic!("no mail to {address}"));
            if get(link).is_some_and(|reply| reply.status == 200) {
                landed += 1;
            }
        }
        landed
    }

    fn ses_calls(&self) -> BTreeMap<String, u64> {
        let requests = get_json(&format!("{}_requests", self.stack.ses));
        requests["counts"]
            .as_object()
            .map(|counts| {
                counts
                    .iter()
                    .map(|(action, count)| {
                        (action.clone(), count["received"].as_u64().unwrap_or(0))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One life's figures, per signup.
struct Life {
    name: String,
    signups: u64,
    rows_read: f64,
    rows_written: f64,
    object_requests: f64,
    worker_requests: f64,
    /// Status checks each signup had (a call checks up to 100 signups).
    checks: f64,
    /// CPU in the isolate (the Worker and the gate object), µs.
    cpu_us: f64,
    exercised: String,
}

impl Life {
    fn of(
        name: &str,
        signups: u64,
        worker_requests: u64,
        (before, after): (Reading, Reading),
        cpu_us: f64,
        exercised: String,
    ) -> Life {
        let per = |sum: u64| sum as f64 / signups as f64;
        Life {
            name: name.to_string(),
            signups,
            rows_read: per(after.rows_read - before.rows_read),
            rows_written: per(after.rows_written - before.rows_written),
            object_requests: per(after.object_requests - before.object_requests),
            worker_requests: per(worker_requests),
            checks: per(after.signups_checked - before.signups_checked),
            cpu_us: cpu_us / signups as f64,
            exercised,
        }
    }

    /// Dollars per million signups at the list prices above.
    fn per_million(&self) -> f64 {
        self.rows_written * PRICE_ROW_WRITTEN
            + self.rows_read * PRICE_ROW_READ
            + self.object_requests * PRICE_OBJECT_REQUEST
            + self.worker_requests * PRICE_WORKER_REQUEST
    }
}

fn addresses(label: &str, n: usize) -> Vec<String> {
    // One registrable domain each: every signup is sent in its own request.
    (0..n)
        .map(|i| format!("{label}-{i}@{label}{i}-cost.example"))
        .collect()
}

fn answers(tally: &BTreeMap<u16, u64>) -> String {
    let parts: Vec<String> = tally.iter().map(|(s, n)| format!("{n}×{s}")).collect();
    parts.join(", ")
}

/// Whether `n` signups reached their final status (`status` counts it) between `before` and
/// `after`, were reported by webhook and had their identities deleted.
fn settled(before: &Reading, after: &Reading, n: u64, status: fn(&Reading) -> u64) -> bool {
    status(after) - status(before) >= n
        && after.deleted - before.deleted >= n
        && after.delivered - before.delivered >= n
}

/// Sent, clicked at once, detected, reported and cleaned up.
fn clicked(m: &Measured, n: usize) -> Life {
    let list = addresses("clicked", n);
    let before = m.read();
    let cpu = m.cpu_start();
    let sent = m.sign_up(&list);
    let landed = m.click(&list);
    let n64 = n as u64;
    let after = m.wait("the clicked life", before, |b, a| {
        settled(b, a, n64, |r| r.verified)
    });
    let cpu_us = m.cpu_end(cpu);
    Life::of(
        "sent, clicked within a minute",
        n64,
        n64 + landed,
        (before, after),
        cpu_us,
        format!(
            "answers {}; {landed} links followed to /confirm; {} checks, {} verified, {} identities deleted, {} webhooks delivered",
            answers(&sent),
            after.checks - before.checks,
            after.verified - before.verified,
            after.deleted - before.deleted,
            after.delivered - before.delivered
        ),
    )
}

/// Sent and never clicked: checked until the link expires, reported and cleaned up.
fn unclicked(m: &Measured, n: usize, ttl: &str) -> Life {
    let list = addresses(&format!("ttl{ttl}"), n);
    let before = m.read();
    let cpu = m.cpu_start();
    let sent = m.sign_up(&list);
    let n64 = n as u64;
    let after = m.wait("the unclicked life", before, |b, a| {
        settled(b, a, n64, |r| r.expired)
    });
    let cpu_us = m.cpu_end(cpu);
    let checks = after.checks - before.checks;
    Life::of(
        &format!("sent, never clicked (link TTL {ttl} s)"),
        n64,
        n64,
        (before, after),
        cpu_us,
        format!(
            "answers {}; {checks} checks, {} expired, {} identities deleted, {} webhooks delivered",
            answers(&sent),
            after.expired - before.expired,
            after.deleted - before.deleted,
            after.delivered - before.delivered
        ),
    )
}

/// A second signup of each mailbox inside its cooldown: refused.
fn refused(m: &Measured, n: usize) -> Life {
    let list = addresses("refused", n);
    let first = m.sign_up(&list);
    let before = m.read();
    let cpu = m.cpu_start();
    let again = m.sign_up(&list);
    let after = m.read();
    let cpu_us = m.cpu_end(cpu);
    assert!(
        again.keys().all(|status| *status == 429),
        "every second signup is refused: {}",
        answers(&again)
    );
    let n64 = n as u64;
    Life::of(
        "refused by a limit (the mailbox's cooldown)",
        n64,
        n64,
        (before, after),
        cpu_us,
        format!(
            "first signups {} (not counted); the second ones {}",
            answers(&first),
            answers(&again)
        ),
    )
}

/// One signup through its whole life before any measurement: it creates the tables and takes
/// the identity snapshot. Its link is followed only after its first check, as for any signup
/// sent before the gate's first snapshot: until a check has seen it unverified, the gate cannot
/// tell its identity from one that existed before (docs/security.md).
fn warm_up(m: &Measured, label: &str) {
    let warm = addresses(label, 1);
    m.sign_up(&warm);
    m.wait("the warm-up's first check", Reading::default(), |_, a| {
        a.checks >= 1
    });
    m.click(&warm);
    m.wait("the warm-up", Reading::default(), |_, a| {
        a.verified >= 1 && a.deleted >= 1 && a.delivered >= 1
    });
}

fn main() {
    let n = std::env::var("BENCH_COST_SIGNUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize);
    let receiver = Receiver::start(WEBHOOK_SECRET);
    let long = Measured::start("bench-cost", &receiver, "600");
    warm_up(&long, "warm");
    let mut per_read = vec![long.calibrate()];

    let mut lives = vec![clicked(&long, n), refused(&long, n)];
    let long_calls = long.ses_calls();
    drop(long);
    let mut ttl_calls = Vec::new();
    for ttl in ["20", "40"] {
        let short = Measured::start(&format!("bench-cost-ttl{ttl}"), &receiver, ttl);
        warm_up(&short, &format!("warm{ttl}"));
        per_read.push(short.calibrate());
        lives.push(unclicked(&short, n, ttl));
        ttl_calls.push((ttl, short.ses_calls()));
    }

    println!();
    println!("## What a signup costs the operator ({n} signups per life; gate interval {INTERVAL_MS} ms; ses-local)");
    println!();
    println!(
        "| life | rows written per signup | rows read per signup | Durable Object requests per signup | Worker requests per signup | checks per signup | CPU per signup (ms) | $ per million signups |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for life in &lives {
        println!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
            life.name,
            life.rows_written,
            life.rows_read,
            life.object_requests,
            life.worker_requests,
            life.checks,
            life.cpu_us / 1000.0,
            life.per_million()
        );
    }
    println!();
    // What one more check costs: an unclicked life beside the clicked one (both end with a
    // final status, a webhook and a deletion; they differ by their checks).
    let clicked_life = &lives[0];
    for life in &lives[2..] {
        println!(
            "rows written per check beyond the first ({}): {:.2}",
            life.name,
            (life.rows_written - clicked_life.rows_written)
                / (life.checks - clicked_life.checks).max(f64::EPSILON)
        );
    }
    println!(
        "prices (US $ per million, Workers Paid beyond the included amounts): rows written \
         {PRICE_ROW_WRITTEN:.2}, rows read {PRICE_ROW_READ:.3}, Durable Object requests \
         {PRICE_OBJECT_REQUEST:.2}, Worker requests {PRICE_WORKER_REQUEST:.2}; source: \
         developers.cloudflare.com/durable-objects/platform/pricing/ and \
         developers.cloudflare.com/workers/platform/pricing/ (read 2026-12-03). Not in the \
         figure: CPU time and Durable Object duration."
    );
    println!(
        "CPU: the V8 profile's busy time in the isolate that runs the Worker and the gate object \
         (wrangler dev on this machine), per signup over its whole life, less the bench's own \
         stats reads ({} µs each, measured per stack). Workers bill CPU time (the Worker's \
         part); Durable Objects bill duration instead.",
        per_read
            .iter()
            .map(|us| format!("{us:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!("exercised:");
    for life in &lives {
        println!(
            "  {} ({} signups): {}",
            life.name, life.signups, life.exercised
        );
    }
    println!(
        "  SES calls by action (ses-local), clicked and refused lives with warm-up: {long_calls:?}"
    );
    for (ttl, calls) in &ttl_calls {
        println!("  SES calls by action (ses-local), TTL {ttl} s with warm-up: {calls:?}");
    }
}
