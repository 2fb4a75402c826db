//! The gate's third port, [`GateRuntime`]: what the gate needs from its platform besides
//! storage ([`crate::store::GateStore`]) and the SES wire ([`crate::messages::SenderLink`]):
//! the clock, randomness, log lines, the alarm, one bounded webhook POST, and a hand-over to
//! another region's gate. The Worker crate's
//! runtime implements it; the host tests fake it.

use signup_verify_domain::log_line::LogLine;

use crate::messages::{SendReply, SendRequest};

/// What the gate needs from its platform besides storage and the SES wire.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound is wanted.
pub trait GateRuntime {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Randomness for jitter (no secret depends on it).
    fn random_u32(&self) -> u32;
    /// Fills `out` from the platform's CSPRNG, for key material and nonces; an error when the
    /// source fails (never a fallback: key material fails closed).
    fn secure_random(&self, out: &mut [u8]) -> Result<(), String>;
    /// One structured log line (never an address or a secret), built only if it is written.
    fn log_info(&self, line: impl FnOnce() -> LogLine);
    fn log_error(&self, line: LogLine);
    /// Wakes the object's `alarm` at `at_ms` (replacing any earlier alarm).
    async fn set_alarm(&self, at_ms: u64) -> Result<(), String>;
    /// POSTs `body` to `url` with `headers`, within a bounded time: the receiver's status, or
    /// why there is none.
    async fn post_webhook(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<u16, String>;
    /// Sends `request` (a hand-over) to the gate of `region`: its answer, or why there is none.
    async fn hand_over(&self, region: &str, request: &SendRequest) -> Result<SendReply, String>;
}
