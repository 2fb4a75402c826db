//! `make bench`, the stack part: signup-verify beside the baseline a user would write by hand
//! (aws4fetch and a JavaScript Durable Object that reserves slots, in bench/aws4fetch-gate), on
//! this machine's loopback: the same `wrangler dev` and workerd, the same stub SES (it checks no
//! signature and answers every call `200`), the gate interval at 1 ms so that the hops are
//! measured and not the waiting. Beside them, the floor of signup-verify's path
//! (bench/two-object-floor): its two objects and three hops in JavaScript with none of its work,
//! hops by `fetch` as ours are, and by Workers RPC. And the Rust floor (bench/rust-floor): the
//! baseline, and signup-verify's two objects, written in Rust on signup-verify's libraries
//! (workers-rs, aws-sigv4, quick-xml, serde_json), which is what the language and its glue cost on
//! workerd before any product work, and what those libraries weigh. Then queue intake at the real
//! 1 s interval as the gate's tables grow, each level beside the Rust floor's durable queue, and
//! what each SQLite statement a signup runs costs. Every figure is printed with what produced it
//! (answers by status, SES calls by action).
//!
//! Environment: `BENCH_ROUNDS` (default 5), `BENCH_INTAKE_RECORDS` (default 50000: the largest
//! stored-record level intake is measured at; 0 leaves the intake section out),
//! `BENCH_INTAKE_LOG_LEVEL` (default `error`: the `LOG_LEVEL` intake runs at), and
//! `BENCH_COMPARE_BUILD` (a directory holding another build's `index.js`, say an earlier
//! commit's `build/`, run with the `wrangler.toml` beside it if there is one: it runs as one
//! more target, interleaved with the others, and in turns with this build in the "one object
//! or two" part (spacing, slot use, flood intake), so that two builds are compared under the
//! same load on the machine rather than in runs minutes apart).

// Native benchmark code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{DevWorker, Spec, Stack, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TEMPLATE};

/// Connections of the throughput and intake figures.
const CONNECTIONS: usize = 8;
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What SES answers a `SendCustomVerificationEmail`.
const SENT_REPLY: &str = r#"<SendCustomVerificationEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">
  <SendCustomVerificationEmailResult><MessageId>0100019a-bench-000000</MessageId></SendCustomVerificationEmailResult>
  <ResponseMetadata><RequestId>d5964849-c866-11e0-9beb-01a62d68c57f</RequestId></ResponseMetadata>
</SendCustomVerificationEmailResponse>"#;

/// What SES answers the gate's other calls: no identity listed as verified (a status check), an
/// account with no identities (the snapshot), and a deletion.
const CHECK_REPLY: &str = r#"<GetIdentityVerificationAttributesResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">
  <GetIdentityVerificationAttributesResult><VerificationAttributes/></GetIdentityVerificationAttributesResult>
  <ResponseMetadata><RequestId>d5964849-c866-11e0-9beb-01a62d68c57f</RequestId></ResponseMetadata>
</GetIdentityVerificationAttributesResponse>"#;
const LIST_REPLY: &str = r#"<ListIdentitiesResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">
  <ListIdentitiesResult><Identities/></ListIdentitiesResult>
  <ResponseMetadata><RequestId>d5964849-c866-11e0-9beb-01a62d68c57f</RequestId></ResponseMetadata>
</ListIdentitiesResponse>"#;
const DELETE_REPLY: &str = r#"<DeleteIdentityResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">
  <DeleteIdentityResult/>
  <ResponseMetadata><RequestId>d5964849-c866-11e0-9beb-01a62d68c57f</RequestId></ResponseMetadata>
</DeleteIdentityResponse>"#;

/// A stub SES on loopback: HTTP/1.1 with keep-alive, every call answered `200` (a send with
/// [`SENT_REPLY`], the follow-up's calls with what an empty account answers), counted by its
/// `Action`.
struct StubSes {
    url: String,
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl StubSes {
    fn start() -> StubSes {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub SES");
        let url = format!("http://{}/", listener.local_addr().expect("address"));
        let calls = Arc::new(Mutex::new(BTreeMap::new()));
        let counted = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counted = counted.clone();
                std::thread::spawn(move || serve(stream, &counted));
            }
        });
        StubSes { url, calls }
    }

    fn take_calls(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.calls.lock().expect("calls"))
    }
}

fn serve(stream: TcpStream, calls: &Mutex<BTreeMap<String, u64>>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let action = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| "(none)".to_string());
        let body = match action.as_str() {
            "GetIdentityVerificationAttributes" => CHECK_REPLY,
            "ListIdentities" => LIST_REPLY,
            "DeleteIdentity" => DELETE_REPLY,
            _ => SENT_REPLY,
        };
        *calls.lock().expect("calls").entry(action).or_default() += 1;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\nx-amzn-RequestId: d5964849\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// One of the two Workers under test.
struct Target {
    name: &'static str,
    /// Where its signups are posted.
    endpoint: String,
}

/// Answers by status ("200", "202", "429", "error"), and how long the signups took.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, u64>,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.latencies_ms.extend(other.latencies_ms);
    }

    fn count(&self) -> u64 {
        self.statuses.values().sum()
    }

    fn accepted(&self) -> u64 {
        ["200", "202"]
            .iter()
            .filter_map(|s| self.statuses.get(*s))
            .sum()
    }

    fn mean_ms(&self) -> f64 {
        self.latencies_ms.iter().sum::<f64>() / self.latencies_ms.len().max(1) as f64
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{n}×{status}"))
            .collect();
        parts.join(", ")
    }
}

fn keep_alive_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .max_idle_connections_per_host(1)
        .build()
}

/// POSTs `addresses` to `endpoint` one after another over one keep-alive connection.
fn sign_up_in_turn(agent: &ureq::Agent, endpoint: &str, addresses: &[String]) -> Tally {
    let mut tally = Tally::default();
    for address in addresses {
        let body = format!("{{\"email\":\"{address}\"}}");
        let started = Instant::now();
        let status = match agent
            .post(endpoint)
            .set("content-type", "application/json")
            .send_string(&body)
        {
            Ok(response) => {
                let status = response.status();
                let _ = response.into_string();
                status.to_string()
            }
            Err(ureq::Error::Status(status, response)) => {
                let _ = response.into_string();
                status.to_string()
            }
            Err(_) => "error".to_string(),
        };
        tally
            .latencies_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        *tally.statuses.entry(status).or_default() += 1;
    }
    tally
}

/// `per_connection` signups on each of `connections` connections at once; distinct addresses,
/// one recipient domain per connection. Returns the tally and signups per second.
fn sign_up_at_once(
    endpoint: &str,
    label: &str,
    connections: usize,
    per_connection: usize,
) -> (Tally, f64) {
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let endpoint = endpoint.to_string();
            let addresses: Vec<String> = (0..per_connection)
                .map(|i| format!("{label}-{i}@d{c}-bench.example"))
                .collect();
            std::thread::spawn(move || sign_up_in_turn(&keep_alive_agent(), &endpoint, &addresses))
        })
        .collect();
    let mut tally = Tally::default();
    for thread in threads {
        tally.add(thread.join().expect("a client thread"));
    }
    let rate = tally.count() as f64 / started.elapsed().as_secs_f64();
    (tally, rate)
}

fn our_stack(name: &str, ses: &StubSes, vars: &[(&str, &str)]) -> Stack {
    our_stack_of(name, ses, vars, None)
}

/// signup-verify's stack from `build` (the repository's `build/` when `None`).
fn our_stack_of(name: &str, ses: &StubSes, vars: &[(&str, &str)], build: Option<&Path>) -> Stack {
    let mut all = vec![
        ("DAILY_SEND_BUDGET", "10000000"),
        ("QUEUE_MAX", "1000000"),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    all.extend_from_slice(vars);
    Stack::start(
        name,
        Spec {
            vars: &all,
            ses_endpoint: Some(ses.url.clone()),
            build,
            ..Spec::default()
        },
    )
}

/// One of the Workers in bench/ (`dir`), against the stub SES at a 1 ms interval.
fn bench_worker(name: &str, ses: &StubSes) -> DevWorker {
    let dir = root().join("bench").join(name);
    let config = std::fs::read_to_string(dir.join("wrangler.toml")).expect("bench worker config");
    let main = config
        .lines()
        .find_map(|line| line.strip_prefix("main = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("a bench worker config names its main module");
    let main_path = dir.join(main);
    assert!(
        main_path.exists(),
        "{} is missing: `make bench` builds it",
        main_path.display()
    );
    let config = config.replace(
        &format!("main = {main:?}"),
        &format!("main = {:?}", main_path.display().to_string()),
    );
    let vars = [
        format!("AWS_ACCESS_KEY_ID:{ACCESS_KEY_ID}"),
        format!("AWS_SECRET_ACCESS_KEY:{SECRET_ACCESS_KEY}"),
        format!("SES_ENDPOINT:{}", ses.url),
        format!("SES_TEMPLATE_NAME:{TEMPLATE}"),
        "GATE_INTERVAL_MS:1".to_string(),
    ];
    DevWorker::start(&format!("bench-{name}"), &config, &vars)
}

/// gzip -9 sizes of what `wrangler deploy` would upload for the Worker configured in `config`.
fn upload_bytes(config: &Path, outdir: &Path) -> (u64, u64, Vec<(String, u64, u64)>) {
    let _ = std::fs::remove_dir_all(outdir);
    let status = Command::new(root().join("node_modules/.bin/wrangler"))
        .args(["deploy", "--dry-run", "--outdir"])
        .arg(outdir)
        .arg("--config")
        .arg(config)
        .env("WRANGLER_SEND_METRICS", "false")
        .env(
            "PATH",
            format!(
                "{}:{}",
                root().join("node_modules/.bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run wrangler deploy --dry-run");
    assert!(
        status.success(),
        "wrangler deploy --dry-run failed for {}",
        config.display()
    );
    let mut files = Vec::new();
    for entry in std::fs::read_dir(outdir).expect("dry-run output").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        // The code modules; wrangler also writes a README.md there, which is not uploaded.
        if !(name.ends_with(".wasm") || name.ends_with(".js") || name.ends_with(".mjs")) {
            continue;
        }
        let raw = path.metadata().map(|m| m.len()).unwrap_or(0);
        let gzipped = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&path)
            .output()
            .expect("gzip")
            .stdout
            .len() as u64;
        files.push((name, raw, gzipped));
    }
    files.sort();
    let raw = files.iter().map(|f| f.1).sum();
    let gz = files.iter().map(|f| f.2).sum();
    (raw, gz, files)
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

fn queue_length(stack: &Stack) -> u64 {
    stack.stats(Some(ADMIN_TOKEN)).json["queueLength"]
        .as_u64()
        .unwrap_or(0)
}

fn main() {
    let rounds = env_number("BENCH_ROUNDS", 5);
    let intake_records = env_number("BENCH_INTAKE_RECORDS", 50_000);
    let ses = StubSes::start();
    println!(
        "stub SES at {} (no signature checks, every call 200)",
        ses.url
    );

    // signup-verify twice: as deployed by default (a log line per hop: Worker, gate, sender) and
    // with LOG_LEVEL=error, which logs as much as the baseline does (nothing, when all is well).
    let ours_stack = our_stack("bench-ours", &ses, &[("GATE_INTERVAL_MS", "1")]);
    let quiet_stack = our_stack(
        "bench-ours-quiet",
        &ses,
        &[("GATE_INTERVAL_MS", "1"), ("LOG_LEVEL", "error")],
    );
    let compare_build = std::env::var_os("BENCH_COMPARE_BUILD").map(PathBuf::from);
    let compare_stack = compare_build.as_deref().map(|build| {
        println!("comparing with the build in {}", build.display());
        our_stack_of(
            "bench-compare",
            &ses,
            &[("GATE_INTERVAL_MS", "1"), ("LOG_LEVEL", "error")],
            Some(build),
        )
    });
    // The baseline and the floors answer as they like: only our answers are held to openapi.yaml.
    support::contract::check_only_origins(
        [&ours_stack, &quiet_stack]
            .into_iter()
            .chain(&compare_stack)
            .map(|stack| stack.worker.clone())
            .collect(),
    );
    let baseline = bench_worker("aws4fetch-gate", &ses);
    let floor = bench_worker("two-object-floor", &ses);
    let rust_floor = bench_worker("rust-floor", &ses);
    let targets = [
        (
            "signup-verify, LOG_LEVEL=error",
            &quiet_stack.worker,
            "/signup",
        ),
        (
            "signup-verify, default logging",
            &ours_stack.worker,
            "/signup",
        ),
        ("aws4fetch + JS DO gate", &baseline.url, "/signup"),
        ("floor: 2 JS objects, fetch hops", &floor.url, "/signup"),
        ("floor: 2 JS objects, RPC hops", &floor.url, "/signup-rpc"),
        (
            "Rust floor: the baseline in Rust",
            &rust_floor.url,
            "/signup",
        ),
        (
            "Rust floor: 2 Rust objects, fetch hops",
            &rust_floor.url,
            "/signup-two",
        ),
    ]
    .into_iter()
    .chain(compare_stack.as_ref().map(|stack| {
        (
            "BENCH_COMPARE_BUILD, LOG_LEVEL=error",
            &stack.worker,
            "/signup",
        )
    }))
    .map(|(name, origin, path)| Target {
        name,
        endpoint: format!("{origin}{path}"),
    })
    .collect::<Vec<_>>();
    const BASELINE: usize = 2;

    // Warm each (first requests compile the wasm, create the objects and their tables).
    for target in &targets {
        let warm: Vec<String> = (0..20)
            .map(|i| format!("warm-{i}@warm-bench.example"))
            .collect();
        sign_up_in_turn(&keep_alive_agent(), &target.endpoint, &warm);
    }
    ses.take_calls();

    // Rounds interleaved: in each, every target in turn (the order rotates each round), one
    // signup at a time, then 8 connections at once.
    let per_round = 40;
    let mut latency: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
    let mut throughput: Vec<(Tally, Vec<f64>)> = targets
        .iter()
        .map(|_| (Tally::default(), Vec::new()))
        .collect();
    for round in 0..rounds {
        for step in 0..targets.len() {
            let t = (round + step) % targets.len();
            let addresses: Vec<String> = (0..per_round)
                .map(|i| format!("seq-{round}-{i}@seq-bench.example"))
                .collect();
            latency[t].add(sign_up_in_turn(
                &keep_alive_agent(),
                &targets[t].endpoint,
                &addresses,
            ));
        }
        for step in 0..targets.len() {
            let t = (round + step) % targets.len();
            let (tally, rate) = sign_up_at_once(
                &targets[t].endpoint,
                &format!("par-{round}"),
                CONNECTIONS,
                40,
            );
            throughput[t].0.add(tally);
            throughput[t].1.push(rate);
        }
    }
    let calls = ses.take_calls();
    for (t, target) in targets.iter().enumerate() {
        for tally in [&latency[t], &throughput[t].0] {
            assert_eq!(
                tally.statuses.get("200").copied(),
                Some(tally.count()),
                "{}: every signup must be sent in its request ({}); a refusal is no measurement",
                target.name,
                tally.describe()
            );
        }
    }

    let upload = [
        upload_bytes(
            &ours_stack.dir.join("wrangler.toml"),
            &root().join("target/bench/upload-ours"),
        ),
        upload_bytes(
            &baseline.dir.join("wrangler.toml"),
            &root().join("target/bench/upload-baseline"),
        ),
        upload_bytes(
            &rust_floor.dir.join("wrangler.toml"),
            &root().join("target/bench/upload-rust-floor"),
        ),
    ];
    drop(rust_floor);
    drop(floor);
    drop(baseline);
    drop(compare_stack);
    drop(quiet_stack);
    drop(ours_stack);

    let rate = |t: usize| {
        let rates = &throughput[t].1;
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    };
    println!();
    println!("## signup-verify beside aws4fetch + a JavaScript Durable Object gate");
    println!(
        "(one run; {rounds} interleaved rounds of {per_round} one at a time and {} over \
         {CONNECTIONS} connections per target; gate interval 1 ms; stub SES)",
        CONNECTIONS * 40
    );
    println!();
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    println!("| figure | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(targets.len()));
    // Each figure, and beside signup-verify's its ratio to the baseline's.
    let cells = |value: &dyn Fn(usize) -> f64| -> Vec<String> {
        (0..targets.len())
            .map(|t| match t {
                BASELINE => format!("{:.2}", value(t)),
                _ => format!("{:.2} ({:.2}×)", value(t), value(t) / value(BASELINE)),
            })
            .collect()
    };
    let ms = cells(&|t| latency[t].mean_ms());
    println!(
        "| one signup at a time, ms per signup (× the baseline's time) | {} |",
        ms.join(" | ")
    );
    let per_s = cells(&rate);
    println!(
        "| {CONNECTIONS} connections, signups/s (× the baseline's rate) | {} |",
        per_s.join(" | ")
    );
    // The upload of each Worker, under the first of its targets.
    let upload_of = |u: usize| format!("{} ({} raw)", kb(upload[u].1), kb(upload[u].0));
    let uploads = [
        upload_of(0),
        "same".to_string(),
        upload_of(1),
        String::new(),
        String::new(),
        upload_of(2),
        "same".to_string(),
        "another build".to_string(),
    ];
    let uploads = &uploads[..targets.len()];
    println!("| upload: wasm + JS, gzip -9 | {} |", uploads.join(" | "));
    println!();
    println!("exercised:");
    for (t, target) in targets.iter().enumerate() {
        println!(
            "  {}: one at a time {}; {CONNECTIONS} connections {}",
            target.name,
            latency[t].describe(),
            throughput[t].0.describe()
        );
    }
    for (who, files) in [
        ("signup-verify", &upload[0].2),
        ("baseline", &upload[1].2),
        ("Rust floor", &upload[2].2),
    ] {
        for (name, raw, gz) in files {
            println!("  {who} upload: {name} {raw} bytes, {gz} gzipped");
        }
    }
    println!("  stub SES calls by action: {calls:?}");

    one_object_or_two(compare_build.as_deref());
    if intake_records > 0 {
        let log_level =
            std::env::var("BENCH_INTAKE_LOG_LEVEL").unwrap_or_else(|_| "error".to_string());
        intake(&ses, intake_records, &log_level);
    }
    sqlite_statements(&ses);
}

/// What the one-object or two-object question turns on, for this build and `compare` (another
/// build's `build/`) in turns: spacing in a burst of 100 at 100 ms against ses-local throttling
/// at 100 ms (the shortest and mean gap, and Throttling answers), slot use at the real 1000 ms
/// interval (20 signups at once: the interval over the mean gap once intake ended), and intake
/// under a flood at the real interval (`GATE_MAX_WAIT_MS=0`, 3 windows of 1,000 signups over 8
/// connections against the stub SES). Two rounds; each figure is the mean of the rounds.
fn one_object_or_two(compare: Option<&Path>) {
    use support::gate::{burst, throttled_at_ses, unix_now_us, warm_up, Spacing};
    use support::Reply;
    // A warm-up send, then `n` signups at once: their answers, how many of the `n + 1` were
    // sent, and the spacing of the burst's sends.
    let paced_burst = |stack: &Stack, prefix: &str, n: usize| {
        warm_up(stack);
        let replies: Vec<(String, Reply)> = burst(stack, prefix, n);
        let ended = unix_now_us();
        let sent = stack.wait_for_outbox(n + 1, Duration::from_secs(60)).len();
        let spacing = Spacing::of(&stack.send_arrivals_us()[1..], ended);
        (replies, sent, spacing)
    };
    const ROUNDS: usize = 2;
    let builds: Vec<(&str, Option<&Path>)> = [("this build", None)]
        .into_iter()
        .chain(compare.map(|build| ("BENCH_COMPARE_BUILD", Some(build))))
        .collect();
    let ses = StubSes::start();
    // Per build: (min gap, mean gap after intake, Throttling) at 100 ms; slot use at 1000 ms;
    // intake signups/s; what each exercised.
    let mut figures: Vec<[Vec<f64>; 5]> = builds.iter().map(|_| Default::default()).collect();
    let mut exercised: Vec<Vec<String>> = builds.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for step in 0..builds.len() {
            let b = (round + step) % builds.len();
            let build = builds[b].1;
            let start = |name: &str, vars: &[(&str, &str)], ses_args: &[&str]| {
                Stack::start(
                    name,
                    Spec {
                        vars,
                        ses_args,
                        build,
                        ..Spec::default()
                    },
                )
            };
            let burst_stack = start(
                "bench-pacing-100",
                &[("GATE_INTERVAL_MS", "100"), ("GATE_MAX_WAIT_MS", "1000")],
                &["--throttle-ms", "100"],
            );
            let (replies, sent, spacing) = paced_burst(&burst_stack, "burst", 100);
            figures[b][0].push(spacing.min_ms);
            figures[b][1].push(spacing.steady_mean_ms);
            figures[b][2].push(throttled_at_ses(&burst_stack) as f64);
            exercised[b].push(format!(
                "burst of 100 at 100 ms: {} answered 200/202, {sent} of 101 sent; {}",
                replies
                    .iter()
                    .filter(|(_, r)| matches!(r.status, 200 | 202))
                    .count(),
                spacing.summary()
            ));
            drop(burst_stack);

            let real_stack = start("bench-pacing-1000", &[("GATE_MAX_WAIT_MS", "2000")], &[]);
            let (_, sent, spacing) = paced_burst(&real_stack, "real", 20);
            figures[b][3].push(100.0 * 1000.0 / spacing.steady_mean_ms);
            exercised[b].push(format!(
                "20 at 1000 ms: {sent} of 21 sent, {} Throttling; {}",
                throttled_at_ses(&real_stack),
                spacing.summary()
            ));
            drop(real_stack);

            let flood_stack = our_stack_of(
                "bench-flood",
                &ses,
                &[("GATE_MAX_WAIT_MS", "0"), ("LOG_LEVEL", "error")],
                build,
            );
            let endpoint = format!("{}/signup", flood_stack.worker);
            sign_up_at_once(&endpoint, "flood-warm", CONNECTIONS, 25);
            let windows = IntakeWindows::measure(&endpoint, &format!("flood-{round}"));
            figures[b][4].push(windows.rate);
            exercised[b].push(format!("flood: {} ({})", windows.answers, windows.spread));
        }
    }
    let calls = ses.take_calls();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!();
    println!(
        "## one object or two: pacing, slot use and intake ({ROUNDS} rounds, builds in turns)"
    );
    println!();
    println!(
        "| build | burst of 100 at 100 ms: shortest gap ms | mean gap after intake ms | \
         Throttling | slot use at 1000 ms | flood intake at 1000 ms, signups/s |"
    );
    println!("|---|---|---|---|---|---|");
    for (b, (name, _)) in builds.iter().enumerate() {
        let f = &figures[b];
        println!(
            "| {name} | {:.1} | {:.2} | {:.0} | {:.1} % | {:.0} |",
            mean(&f[0]),
            mean(&f[1]),
            f[2].iter().sum::<f64>(),
            mean(&f[3]),
            mean(&f[4])
        );
    }
    println!();
    println!("exercised:");
    for (b, (name, _)) in builds.iter().enumerate() {
        for line in &exercised[b] {
            println!("  {name}: {line}");
        }
    }
    println!("  stub SES calls by action during the floods: {calls:?}");
}

/// Queue intake at the real 1 s interval (`GATE_MAX_WAIT_MS=0`: every signup after the first is
/// queued), 8 connections, distinct addresses, measured as the stored records (queued items plus
/// address records) grow from 0 to `top`.
/// At `top`, the stack's `wrangler dev` is then restarted on the same stored records and measured
/// again: a rate that comes back after the restart was lost to the process (wrangler dev's log
/// handling), not to the records.
fn intake(ses: &StubSes, top: usize, log_level: &str) {
    let mut stack = our_stack(
        "bench-intake",
        ses,
        &[
            ("GATE_INTERVAL_MS", "1000"),
            ("GATE_MAX_WAIT_MS", "0"),
            ("LOG_LEVEL", log_level),
        ],
    );
    let intake_endpoint = format!("{}/signup", stack.worker);
    // At each level, right after signup-verify's windows, the same windows through the Rust
    // floor: the Worker posts the address to one object, which appends it to a SQLite table and
    // answers with a slot (`202`). A durable queue with none of signup-verify's work, measured
    // under the same machine conditions (a shared machine's speed drifts over a run).
    let rust_floor = bench_worker("rust-floor", ses);
    let queue_floor = format!("{}/queue", rust_floor.url);
    // Warm up (compile the wasm, create the tables) before the first window.
    sign_up_at_once(&queue_floor, "floor-warm", CONNECTIONS, 25);
    let (warm, _) = sign_up_at_once(&intake_endpoint, "intake-warm", CONNECTIONS, 25);
    let mut admitted = warm.accepted();
    let levels = [0, top / 5, top];
    let mut rows = Vec::new();
    let mut batch = 0;
    for level in levels {
        // Fill: each admitted signup stores an address record and a queue item.
        loop {
            let records = admitted + queue_length(&stack);
            if records as usize >= level {
                break;
            }
            let need = (level - records as usize).div_ceil(2);
            let per = need.div_ceil(CONNECTIONS).min(1_000);
            let (tally, _) =
                sign_up_at_once(&intake_endpoint, &format!("fill-{batch}"), CONNECTIONS, per);
            batch += 1;
            admitted += tally.accepted();
            assert!(
                tally.accepted() > 0,
                "intake fill refused everything: {}",
                tally.describe()
            );
        }
        let before = admitted + queue_length(&stack);
        let windows = IntakeWindows::measure(&intake_endpoint, &format!("intake-{level}"));
        admitted += windows.accepted;
        let floor = IntakeWindows::measure(&queue_floor, &format!("floor-{level}"));
        rows.push((before.to_string(), windows, floor));
    }
    stack.restart_worker();
    let intake_endpoint = format!("{}/signup", stack.worker);
    let (rewarm, _) = sign_up_at_once(&intake_endpoint, "intake-rewarm", CONNECTIONS, 25);
    let before = queue_length(&stack) + admitted + rewarm.accepted();
    let windows = IntakeWindows::measure(&intake_endpoint, "intake-restarted");
    let floor = IntakeWindows::measure(&queue_floor, "floor-restarted");
    rows.push((format!("{before} (wrangler dev restarted)"), windows, floor));
    drop(rust_floor);
    drop(stack);
    let calls = ses.take_calls();
    let base = rows.first().map(|r| r.1.rate).unwrap_or(1.0);
    println!();
    println!(
        "## queue intake at the real 1 s interval (GATE_MAX_WAIT_MS=0, LOG_LEVEL={log_level}, \
         {CONNECTIONS} connections, distinct addresses on {CONNECTIONS} domains)"
    );
    println!();
    println!(
        "| stored records at the start | signups/s (median of {} windows of {}) | windows | vs at 0 \
         | p50 ms | p99 ms | answers | Rust floor right after: signups/s (windows; answers) | vs \
         the floor |",
        IntakeWindows::COUNT,
        IntakeWindows::SIGNUPS
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (before, ours, floor) in &rows {
        println!(
            "| {before} | {:.0} | {} | {:.2}× | {:.1} | {:.1} | {} | {:.0} ({}; {}) | {:.2}× |",
            ours.rate,
            ours.spread,
            ours.rate / base,
            ours.p50_ms,
            ours.p99_ms,
            ours.answers,
            floor.rate,
            floor.spread,
            floor.answers,
            ours.rate / floor.rate
        );
    }
    println!();
    println!("  stub SES calls by action during intake: {calls:?}");
}

/// Queue intake over a few windows of signups in a row, the median rate kept: a single window on a
/// shared 2-core machine moved by a third between runs (a GC, the drain's alarm, wrangler's
/// logging).
struct IntakeWindows {
    /// Signups per second, the median window's.
    rate: f64,
    /// The slowest and fastest window's rate.
    spread: String,
    p50_ms: f64,
    p99_ms: f64,
    answers: String,
    accepted: u64,
}

impl IntakeWindows {
    const COUNT: usize = 3;
    const SIGNUPS: usize = 1_000;

    fn measure(endpoint: &str, label: &str) -> IntakeWindows {
        let mut tally = Tally::default();
        let mut rates = Vec::new();
        for w in 0..Self::COUNT {
            let (window_tally, rate) = sign_up_at_once(
                endpoint,
                &format!("{label}-{w}"),
                CONNECTIONS,
                Self::SIGNUPS / CONNECTIONS,
            );
            tally.add(window_tally);
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        let mut sorted = tally.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        IntakeWindows {
            rate: rates[Self::COUNT / 2],
            spread: format!("{:.0}–{:.0}", rates[0], rates[Self::COUNT - 1]),
            p50_ms: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
            p99_ms: sorted.get(sorted.len() * 99 / 100).copied().unwrap_or(0.0),
            answers: tally.describe(),
            accepted: tally.accepted(),
        }
    }
}

/// What each SQLite statement a signup runs costs a Durable Object under `wrangler dev`: the very
/// texts `SqlGateStore` runs, over its schema with 20,000 rows in each table a signup touches, 32
/// times in one request to a JavaScript object (bench/sqlite-statements), less a request that runs
/// none. The fastest of three rounds of 30 requests.
fn sqlite_statements(ses: &StubSes) {
    use signup_verify_gate::sql_schema as sql;
    const ROWS: u64 = 20_000;
    const PER_REQUEST: u64 = 32;
    let worker = bench_worker("sqlite-statements", ses);
    let agent = keep_alive_agent();
    let signup_row =
        r#"{"email":"someone@example.com","state":"sent","next_check_ms":1764651239600}"#;
    let identity_row = r#"{"email":"someone@example.com","owner":"ours","sent_ms":1,"cleanup":"not_yet","next_cleanup_ms":null,"cleanup_failures":0}"#;
    let statements: [(&str, &str, serde_json::Value); 11] = [
        ("none (the request alone)", "", serde_json::json!([])),
        (
            "dedupe: the queued place",
            sql::QUEUED_PLACE_SQL,
            serde_json::json!(["$qkey"]),
        ),
        (
            "address record read",
            sql::LOAD_ADDRESS_SQL,
            serde_json::json!(["$key", 0]),
        ),
        (
            "address record write",
            sql::STORE_ADDRESS_SQL,
            serde_json::json!(["$key", "{\"last_ms\":1}", "$n"]),
        ),
        (
            "signup row read",
            sql::LOAD_SIGNUP_SQL,
            serde_json::json!(["$key"]),
        ),
        (
            "signup row write",
            sql::STORE_SIGNUP_SQL,
            serde_json::json!(["$key", signup_row, "$n", 1, "$n"]),
        ),
        (
            "identity row read",
            sql::LOAD_IDENTITY_SQL,
            serde_json::json!(["$key"]),
        ),
        (
            "identity row write",
            sql::STORE_IDENTITY_SQL,
            serde_json::json!(["$key", identity_row, null, 1, "$n"]),
        ),
        (
            "gate state write",
            sql::SAVE_STATE_SQL,
            serde_json::json!([r#"{"next_free_ms":1764651234567,"served_tag":1234}"#]),
        ),
        (
            "the domain's last tag",
            sql::LAST_TAG_SQL,
            serde_json::json!(["d3.example"]),
        ),
        (
            "a position from the back",
            sql::COUNT_BEHIND_SQL,
            serde_json::json!([ROWS / 8 - 1, ROWS - 8]),
        ),
    ];
    let url = format!("{}/", worker.url);
    let mut best_ms = Vec::new();
    for (_, text, args) in &statements {
        let body = serde_json::json!({
            "schema": sql::fresh(), "rows": ROWS, "sql": text, "args": args, "n": PER_REQUEST,
        })
        .to_string();
        let mut best = f64::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            for _ in 0..30 {
                let answer = agent
                    .post(&url)
                    .send_string(&body)
                    .expect("the statement object answers");
                assert_eq!(answer.status(), 200, "{text}");
                let _ = answer.into_string();
            }
            best = best.min(started.elapsed().as_secs_f64() * 1000.0 / 30.0);
        }
        best_ms.push(best);
    }
    println!();
    println!(
        "## SQLite: each statement a signup runs, {PER_REQUEST} times a request, {ROWS} rows a table (JS Durable Object under wrangler dev)"
    );
    println!();
    println!("| statement | ms per request | µs per statement |");
    println!("|---|---|---|");
    for ((name, _, _), ms) in statements.iter().zip(&best_ms) {
        let per = (ms - best_ms[0]) * 1000.0 / PER_REQUEST as f64;
        println!("| {name} | {ms:.2} | {per:.0} |");
    }
}
