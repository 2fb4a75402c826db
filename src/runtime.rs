//! What the core needs from the Workers runtime, read in one place: settings from `Env`, the
//! clock (`Date.now()`; the std system clock traps on wasm32), randomness (`getRandomValues`),
//! the console, the gate's alarm and its webhook POSTs ([`WorkerRuntime`], the real
//! [`GateRuntime`]).

use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, AbortController, Date, Env, Fetch, Headers, Method, Request,
    RequestInit, Storage,
};

use crate::config::{build_config, Config, ConfigError};
use crate::gate::decisions::GateRuntime;

/// Reads `Config` from `[vars]` and secrets (both are string bindings). A problem is logged with
/// the variable's name and returned. Called once per Worker request and once per Durable Object
/// instance.
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    build_config(|name| env.var(name).ok().map(|value| value.to_string())).inspect_err(|e| {
        console_error!(
            "{}",
            serde_json::json!({"event": "config_error", "variable": e.variable, "problem": e.problem})
        )
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// A random number from the platform's CSPRNG. Should that ever fail, the clock's low bits
/// still vary from call to call.
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => (now_ms() % u64::from(u32::MAX)) as u32,
    }
}

/// A webhook receiver gets this long to answer.
const WEBHOOK_TIMEOUT_MS: u64 = 10_000;

/// The gate's platform: the Workers clock, randomness and console, and the Durable Object's
/// alarm.
pub struct WorkerRuntime(pub Storage);

impl GateRuntime for WorkerRuntime {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn random_u32(&self) -> u32 {
        random_u32()
    }

    fn log_info(&self, line: Value) {
        console_log!("{line}");
    }

    fn log_error(&self, line: Value) {
        console_error!("{line}");
    }

    /// workers-rs takes an offset from now, not a time.
    async fn set_alarm(&self, at_ms: u64) -> Result<(), String> {
        let offset = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.0.set_alarm(offset).await.map_err(|e| e.to_string())
    }

    async fn post_webhook(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<u16, String> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let sent = Headers::new();
            for (name, value) in headers {
                sent.set(name, value)?;
            }
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_headers(sent)
                .with_body(Some(JsValue::from_str(body)));
            let request = Request::new_with_init(url, &init)?;
            let response = Fetch::Request(request).send_with_signal(&signal).await?;
            Ok::<_, worker::Error>(response.status_code())
        };
        let timeout = worker::Delay::from(Duration::from_millis(WEBHOOK_TIMEOUT_MS));
        let answer = match select(Box::pin(exchange), timeout).await {
            Either::Left((answer, _)) => answer.map_err(|e| e.to_string()),
            Either::Right(_) => {
                controller.abort();
                Err(format!("no answer within {WEBHOOK_TIMEOUT_MS} ms"))
            }
        };
        answer
    }
}
