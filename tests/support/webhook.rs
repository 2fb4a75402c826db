//! A webhook receiver for the e2e tests, on 127.0.0.1: it checks every delivery's Standard
//! Webhooks signature itself (HMAC-SHA256 over `id.timestamp.body`, written here from the spec,
//! not with the Worker's code) and validates every delivery against `openapi.yaml`'s `webhooks`
//! with the validator the responses go through (`contract`), keeps what it received, and can be
//! taken down and brought back on the same port. A delivery that breaks the document is refused
//! (`400`) and fails the test: [`Receiver::deliveries`] panics with what broke it, and so does
//! dropping the receiver if the test never asked.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::contract;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub body: serde_json::Value,
    /// The signature matched and the timestamp was within five minutes.
    pub valid: bool,
    /// What in it breaks `openapi.yaml`'s `webhooks` (empty: nothing).
    pub breaks: Vec<String>,
    pub received_at: SystemTime,
}

pub struct Receiver {
    pub port: u16,
    key: Vec<u8>,
    received: Arc<Mutex<Vec<Delivery>>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Receiver {
    /// A receiver for `secret` (`whsec_…`), listening.
    pub fn start(secret: &str) -> Receiver {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64 key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        let mut receiver = Receiver {
            port,
            key,
            received: Arc::default(),
            running: None,
        };
        receiver.serve(listener);
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/signup", self.port)
    }

    /// Every delivery so far; panics if one broke `openapi.yaml`.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let deliveries = self.received.lock().expect("lock").clone();
        assert_conform(&deliveries);
        deliveries
    }

    /// Stops listening: connections are refused until [`Receiver::up`].
    pub fn down(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }

    pub fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the port");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (key, received, stopping) = (self.key.clone(), self.received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(delivery) = handle(stream, &key) {
                            received.lock().expect("lock").push(delivery);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        self.running = Some((stop, thread));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
        // A test that never looked at its deliveries still fails on one that broke the document
        // (unless it is failing already: a second panic would abort).
        if !std::thread::panicking() {
            assert_conform(&self.received.lock().expect("lock"));
        }
    }
}

/// Panics with what broke the document, if a delivery did.
fn assert_conform(deliveries: &[Delivery]) {
    let broken: Vec<String> = deliveries
        .iter()
        .filter(|d| !d.breaks.is_empty())
        .map(|d| format!("{} {}: {}", d.id, d.body, d.breaks.join("; ")))
        .collect();
    assert!(
        broken.is_empty(),
        "webhook deliveries break openapi.yaml's webhooks:\n{}",
        broken.join("\n")
    );
}

/// Reads one request, answers 204 for a delivery with a valid signature that satisfies the
/// document, and 400 otherwise.
fn handle(stream: TcpStream, key: &[u8]) -> Option<Delivery> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|h| {
            let (n, v) = h.split_once(':')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let length: usize = header("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body = String::from_utf8(body).ok()?;
    let id = header("webhook-id").unwrap_or_default();
    let timestamp = header("webhook-timestamp").unwrap_or_default();
    let signatures = header("webhook-signature").unwrap_or_default();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("key");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let fresh = timestamp
        .parse::<u64>()
        .is_ok_and(|t| t.abs_diff(now) <= 300);
    let valid = fresh && signatures.split(' ').any(|s| s == expected);
    let breaks = contract::webhook_violations(&headers, &body);
    let status = if valid && breaks.is_empty() {
        "204 No Content"
    } else {
        "400 Bad Request"
    };
    let mut stream = stream;
    let _ = stream.write_all(
        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    Some(Delivery {
        id,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        valid,
        breaks,
        received_at: SystemTime::now(),
    })
}
