//! What the core needs from the Workers runtime, read in one place: settings from `Env`, the
//! clock (`Date.now()`; the std system clock traps on wasm32) and randomness (`getRandomValues`).

use worker::{console_error, Date, Env};

use crate::config::{build_config, Config, ConfigError};

/// Reads `Config` from `[vars]` and secrets (both are string bindings). A problem is logged with
/// the variable's name and returned.
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
