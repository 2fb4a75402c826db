//! The fuzz properties: one module per parser that sees strangers' input or SES replies, each
//! with a `check(data)` that feeds it arbitrary bytes and panics when a property fails, not only
//! when the parser does. libFuzzer drives them in `fuzz_targets/` (`make fuzz`, nightly); the
//! replay test (`tests/corpora.rs`) runs every kept input through them on stable in `make test`.
//!
//! Invariant: each `check` is deterministic (fixed secrets, fixed clocks), so an input that failed
//! once fails again when replayed.

pub mod dns_answer;
pub mod email_address;
pub mod query_api;
pub mod ses_reply;
pub mod signup_body;
pub mod sigv4_verify;
pub mod status_token;

/// The names of the targets, as in `fuzz_targets/` and `corpus/`.
pub const TARGETS: [&str; 7] = [
    "signup_body",
    "email_address",
    "ses_reply",
    "status_token",
    "sigv4_verify",
    "query_api",
    "dns_answer",
];

/// Runs `data` through the target called `name`. `None` for an unknown name.
pub fn check(name: &str, data: &[u8]) -> Option<()> {
    match name {
        "signup_body" => signup_body::check(data),
        "email_address" => email_address::check(data),
        "ses_reply" => ses_reply::check(data),
        "status_token" => status_token::check(data),
        "sigv4_verify" => sigv4_verify::check(data),
        "query_api" => query_api::check(data),
        "dns_answer" => dns_answer::check(data),
        _ => return None,
    }
    Some(())
}
