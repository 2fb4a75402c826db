//! The log: one JSON object per line, either `info` (what happened: a signup, an admission, an
//! SES call) or `error` (what went wrong). `LOG_LEVEL=error` keeps only the errors: each line is
//! CPU in the request and one Workers Logs event. The level is set whenever a config is loaded
//! (once per Worker isolate and per Durable Object instance); before that, everything is logged.
//!
//! Invariant: callers never put an email address or a secret in a line (keyed hashes only).

use std::cell::Cell;
use std::fmt::Display;

use signup_verify_domain::settings::LogLevel;
use worker::{console_error, console_log};

thread_local! {
    static LEVEL: Cell<LogLevel> = const { Cell::new(LogLevel::Info) };
}

pub fn set_level(level: LogLevel) {
    LEVEL.with(|l| l.set(level));
}

/// Writes the line `line` makes unless `LOG_LEVEL=error`, which then does not build it at all
/// (a JSON line costs allocations and formatting in every request).
pub fn info<D: Display>(line: impl FnOnce() -> D) {
    if LEVEL.with(Cell::get) == LogLevel::Info {
        console_log!("{}", line());
    }
}

/// Writes `line` at every level.
pub fn error(line: impl Display) {
    console_error!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_error_level_an_info_line_is_never_built() {
        set_level(LogLevel::Error);
        let built = Cell::new(false);
        info(|| {
            built.set(true);
            "a line"
        });
        set_level(LogLevel::Info);
        assert!(!built.get());
    }
}
