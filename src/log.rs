//! The log: one JSON object per line, either `info` (what happened: a signup, an admission, an
//! SES call) or `error` (what went wrong). `LOG_LEVEL=error` keeps only the errors: each line is
//! CPU in the request and one Workers Logs event. The level is set whenever a config is loaded
//! (once per Worker isolate and per Durable Object instance); before that, everything is logged.
//!
//! Invariant: callers never put an email address or a secret in a line (keyed hashes only).

use std::cell::Cell;
use std::fmt::Display;

use worker::{console_error, console_log};

/// Which lines are written (`LOG_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Every line (the default).
    Info,
    /// Only the errors.
    Error,
}

thread_local! {
    static LEVEL: Cell<LogLevel> = const { Cell::new(LogLevel::Info) };
}

pub fn set_level(level: LogLevel) {
    LEVEL.with(|l| l.set(level));
}

/// Writes `line` unless `LOG_LEVEL=error`.
pub fn info(line: impl Display) {
    if LEVEL.with(Cell::get) == LogLevel::Info {
        console_log!("{line}");
    }
}

/// Writes `line` at every level.
pub fn error(line: impl Display) {
    console_error!("{line}");
}
