//! What the core needs from the Workers runtime, read in one place: settings from `Env`, the
//! clock (`Date.now()`; the std system clock traps on wasm32), randomness (`getRandomValues`),
//! the console, the gate's alarm and its webhook POSTs ([`WorkerRuntime`], the real
//! [`GateRuntime`]).

use signup_verify_domain::log_line;
use signup_verify_domain::log_line::LogLine;
use std::cell::OnceCell;
use std::time::Duration;

use serde::de::DeserializeOwned;
use worker::{Date, Env, Request, Storage};

use crate::outbound::Outbound;
use crate::outbound::Redirects;

use signup_verify_domain::settings::ConfigError;
use signup_verify_gate::messages::{SendReply, SendRequest};
use signup_verify_gate::ports::GateRuntime;
use signup_verify_web::config::build_config;
use signup_verify_web::config::Config;

/// Reads `Config` from `[vars]` and secrets (both are string bindings). A problem is logged with
/// the variable's name and returned; a loaded config sets the log level. Called once per Worker
/// isolate ([`worker_config`]) and once per Durable Object instance.
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    let config = build_config(|name| env.var(name).ok().map(|value| value.to_string()));
    match &config {
        Ok(config) => crate::log::set_level(config.log_level),
        Err(e) => crate::log::error(
            log_line!({"event": "config_error", "variable": e.variable, "problem": e.problem}),
        ),
    }
    config
}

/// A request's JSON body: its bytes in one call, parsed in wasm (workers-rs's `Request::json`
/// converts the parsed JavaScript object field by field).
pub async fn request_json<T: DeserializeOwned>(req: &mut Request) -> worker::Result<T> {
    Ok(serde_json::from_slice(&req.bytes().await?)?)
}

thread_local! {
    /// The Worker's config, parsed at the isolate's first request: an isolate's bindings do not
    /// change while it lives (a new deploy or `wrangler dev` restart starts new isolates).
    static WORKER_CONFIG: OnceCell<Result<Config, ConfigError>> = const { OnceCell::new() };
}

/// The Worker's [`Config`], parsed once per isolate by [`load_config`] (which logs a problem once).
pub fn worker_config(env: &Env) -> Result<Config, ConfigError> {
    WORKER_CONFIG.with(|config| config.get_or_init(|| load_config(env)).clone())
}

/// The path of a request's URL, read from the runtime's string (already parsed and normalized by
/// it): workers-rs's `Request::path()` parses the whole URL again with the `url` crate.
pub fn request_path(req: &Request) -> String {
    split_url(&req.inner().url()).1.to_string()
}

/// The origin (`scheme://host[:port]`) of a request's URL, read the same way.
pub fn request_origin(req: &Request) -> String {
    split_url(&req.inner().url()).0.to_string()
}

/// `(origin, path)` of an absolute URL as the runtime serializes it; the path without its query
/// or fragment, `/` when there is none.
fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let rest = &url[path_start..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    (&url[..path_start], if path.is_empty() { "/" } else { path })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Fills `out` from the platform's CSPRNG (`getRandomValues`), for key material, nonces and
/// anything else a stranger must not guess; an error if the source fails, never a fallback.
pub fn secure_random(out: &mut [u8]) -> Result<(), String> {
    getrandom::fill(out).map_err(|e| e.to_string())
}

/// A random number for jitter and request ids, from the platform's CSPRNG. No secret may come
/// from it: should the source ever fail, the clock's low bits stand in (use [`secure_random`]
/// for anything secret).
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => (now_ms() % u64::from(u32::MAX)) as u32,
    }
}

/// A webhook receiver gets this long to answer.
const WEBHOOK_TIMEOUT_MS: u64 = 10_000;

/// The gate's platform: the Workers clock, randomness and console, the Durable Object's
/// alarm, and its bindings (another region's gate, for a hand-over).
pub struct WorkerRuntime(pub Storage, pub Env);

impl GateRuntime for WorkerRuntime {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn random_u32(&self) -> u32 {
        random_u32()
    }

    fn secure_random(&self, out: &mut [u8]) -> Result<(), String> {
        secure_random(out)
    }

    fn log_info(&self, line: impl FnOnce() -> LogLine) {
        crate::log::info(line);
    }

    fn log_error(&self, line: LogLine) {
        crate::log::error(line);
    }

    /// workers-rs takes an offset from now, not a time.
    async fn set_alarm(&self, at_ms: u64) -> Result<(), String> {
        let offset = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.0.set_alarm(offset).await.map_err(|e| e.to_string())
    }

    /// Redirects are never followed (`redirect: "manual"`): the status is the receiver's own, so
    /// a 3xx is a failed delivery (`webhook::delivered`), and the signed body goes to the
    /// configured URL only (a 307 or 308 would post it again to wherever `Location` says).
    /// workerd answers a manual-redirect fetch with the 3xx response itself, not an opaque one.
    async fn post_webhook(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<u16, String> {
        Outbound::post(url, headers, body, Redirects::Manual)
            .map_err(|e| e.to_string())?
            .status(WEBHOOK_TIMEOUT_MS)
            .await
            .map_err(|e| e.to_string())
    }

    async fn hand_over(&self, region: &str, request: &SendRequest) -> Result<SendReply, String> {
        let gate = crate::gate::clients::GateClient::for_region(&self.1, region)
            .map_err(|e| e.code().to_string())?;
        Ok(gate.post_send(request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn a_url_splits_into_its_origin_and_its_path_without_query_or_fragment() {
        for (url, origin, path) in [
            (
                "https://signup.example.com/signup",
                "https://signup.example.com",
                "/signup",
            ),
            (
                "http://127.0.0.1:8787/signup/status?token=a/b",
                "http://127.0.0.1:8787",
                "/signup/status",
            ),
            ("https://gate/call#x", "https://gate", "/call"),
            ("https://example.com", "https://example.com", "/"),
            ("https://example.com?q=/x", "https://example.com", "/"),
        ] {
            assert_eq!(split_url(url), (origin, path), "{url}");
        }
    }
}
