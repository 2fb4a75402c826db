//! Where a freshly started ses-local listens: the first line it prints is
//! `ses-local listening on http://127.0.0.1:PORT/`. Shared by the Worker's e2e harness and
//! ses-local's own test harness (which includes this file by path).

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;

/// Reads ses-local's first line and returns its URL (`http://127.0.0.1:PORT/`).
pub fn ses_local_url(stdout: ChildStdout) -> String {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ses-local prints where it listens");
    let url = line.trim().rsplit(' ').next().unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "ses-local said {line:?}"
    );
    url.to_string()
}
