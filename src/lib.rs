//! signup-verify: the edge endpoint behind signup forms. `POST /signup` takes an email address,
//! and the `SesGate` Durable Object sends it an Amazon SES custom verification email, at most one
//! SES call per `GATE_INTERVAL_MS` across all isolates.
//!
//! This file is only the entry point; see `http` for the shell, `signup`/`email` for input,
//! `ses` for the SES request and reply, and `gate` for the Durable Object.

pub mod browser;
pub mod config;
pub mod demo;
pub mod email;
pub mod error;
pub mod gate;
pub mod http;
pub mod runtime;
pub mod ses;
pub mod signup;
pub mod turnstile;

pub use gate::object::SesGate;
pub use gate::sender::SesSender;

#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    Ok(http::handle(req, env).await)
}
