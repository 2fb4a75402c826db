//! The JavaScript client (`clients/js`) and the two example pages (`examples/`), tested with
//! node's test runner against a real stack: `wrangler dev` and ses-local with Turnstile (the
//! siteverify stand-in), status tokens, a webhook and a short gate interval. The node tests
//! drive the client from node and the examples in Chromium; this test builds the client, starts
//! the stack and a webhook mailbox, runs `node --test clients/js/test/*.test.mjs` with their
//! addresses, and requires every declared node test to have run and passed.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::gate::TOKEN as ADMIN;
use support::{request_with, root, Spec, Stack, STATUS_SECRET, WEBHOOK_SECRET};

/// Where the examples' pages are served from by the node test: listed in ALLOWED_ORIGINS and
/// another site than the Worker's `127.0.0.1`, as a real site's would be.
fn app_origin(port: u16) -> String {
    format!("http://localhost:{port}")
}

/// A webhook mailbox on 127.0.0.1: keeps every POST exactly as received (its headers and its
/// raw body, which a signature covers byte for byte) and answers 204; `GET /deliveries` lists
/// them as JSON, for the node test that verifies them with the client's verifier.
fn webhook_mailbox() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook mailbox");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let kept: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || serve(stream, &kept));
        }
    });
    url
}

fn serve(stream: TcpStream, kept: &Mutex<Vec<serde_json::Value>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut stream = stream;
    if request_line.starts_with("GET /deliveries ") {
        let list = serde_json::to_string(&*kept.lock().expect("lock")).expect("json");
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{list}",
            list.len()
        );
        return;
    }
    if request_line.starts_with("POST ") {
        kept.lock().expect("lock").push(serde_json::json!({
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }));
        let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        return;
    }
    let _ = stream
        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

/// How many `test(` calls the node test files declare, by file.
fn declared_tests(dir: &PathBuf) -> BTreeMap<String, usize> {
    std::fs::read_dir(dir)
        .expect("clients/js/test")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read a test file");
            let count = text.lines().filter(|l| l.starts_with("test(")).count();
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                count,
            )
        })
        .collect()
}

/// The number after `# <name> ` in a TAP summary.
fn tap_count(tap: &str, name: &str) -> Option<usize> {
    let prefix = format!("# {name} ");
    tap.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
}

/// Brings the gate to the state of one that has been running: it takes its snapshot of the
/// account's identities once idle after its first signup. Until then a click that comes before
/// a signup's first check cannot be told from an address verified before the send, and the
/// signup ends `expired` (`already_verified`): the node tests click at once.
fn take_the_identity_snapshot(stack: &Stack) {
    let body =
        r#"{"email":"warm-up@example.com","turnstileToken":"XXXX.DUMMY.TOKEN.XXXX.warm-up"}"#;
    let first = request_with(
        "POST",
        &format!("{}/signup", stack.worker),
        Some(("application/json", body.as_bytes())),
        &[],
    );
    assert_eq!(first.status, 200, "{}", first.text);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = stack.stats(Some(ADMIN));
        if stats.json["identitySnapshotAt"].is_string() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no identity snapshot: {}",
            stats.text
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_javascript_client_and_the_example_pages_pass_their_node_tests_against_a_running_stack() {
    let chromium = support::chromium();
    let node = root().join("node_modules/.bin/node");
    let tsc = root().join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "{} is missing: run `npm ci` (the root package.json's workspaces install clients/js's tools)",
        tsc.display()
    );

    // The client as the tests and the examples import it: built now from its sources.
    let build = Command::new(&node)
        .arg(&tsc)
        .arg("-p")
        .arg(root().join("clients/js"))
        .output()
        .expect("run tsc");
    assert!(
        build.status.success(),
        "tsc failed:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );

    let app_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let app = app_origin(app_port);
    let plain_form = format!("{app}/examples/plain-form.html");
    let mailbox = webhook_mailbox();
    let webhook_url = format!("{mailbox}/hooks/signup");
    let stack = Stack::start(
        "js-client",
        Spec {
            vars: &[
                ("STATUS_TOKEN_SECRET", STATUS_SECRET),
                ("ADMIN_TOKEN", ADMIN),
                ("WEBHOOK_URL", &webhook_url),
                ("WEBHOOK_SECRET", WEBHOOK_SECRET),
                ("ALLOWED_ORIGINS", &app),
                ("SUCCESS_REDIRECT_URL", &plain_form),
                ("FAILURE_REDIRECT_URL", &plain_form),
                // Slots every 500 ms; a signup waits at most 1.2 s for one, so a lone signup is
                // sent and a burst of them is partly queued.
                ("GATE_INTERVAL_MS", "500"),
                ("GATE_MAX_WAIT_MS", "1200"),
            ],
            ses_args: &["--throttle-ms", "500"],
            turnstile: true,
            ..Spec::default()
        },
    );
    // The mailed links land on the fetch example's confirmation view.
    stack
        .client
        .point_success_url_at(&format!("{app}/examples/fetch-form.html?confirm"));

    take_the_identity_snapshot(&stack);

    let tests = root().join("clients/js/test");
    let declared = declared_tests(&tests);
    let total: usize = declared.values().sum();
    assert!(
        declared.len() >= 4 && declared.values().all(|&n| n > 0),
        "{declared:?}"
    );
    let output = Command::new(&node)
        .args([
            "--test",
            "--test-reporter=tap",
            "--test-concurrency=1",
            "--test-timeout=240000",
        ])
        .arg("clients/js/test/*.test.mjs")
        .current_dir(root())
        .env("SV_WORKER", &stack.worker)
        .env("SV_SES", &stack.ses)
        .env("SV_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("SV_MAILBOX", &mailbox)
        .env("SV_APP_PORT", app_port.to_string())
        .env("CHROMIUM_PATH", &chromium)
        .output()
        .expect("run node --test");
    let tap = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "node --test:\n{tap}\n{}\n(the stack's logs: {})",
        String::from_utf8_lossy(&output.stderr),
        stack.dir.display()
    );
    assert!(output.status.success(), "{report}");
    for (name, expected) in [
        ("fail", 0),
        ("cancelled", 0),
        ("skipped", 0),
        ("todo", 0),
        ("pass", total),
        ("tests", total),
    ] {
        assert_eq!(
            tap_count(&tap, name),
            Some(expected),
            "`# {name}` of {declared:?}: {report}"
        );
    }
    println!("{tap}");
}
