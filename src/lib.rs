//! signup-verify: the edge endpoint behind signup forms. `POST /signup` takes an email address,
//! the `SesGate` Durable Object admits and queues it, and the `SesSender` Durable Object sends it
//! an Amazon SES custom verification email, at most one SES call per `GATE_INTERVAL_MS` across
//! all isolates.
//!
//! This file is only the entry point. The pure core: `config`, `email`, `signup`, `browser`,
//! `turnstile`, `demo`, `error`, `ses` (the SES request and reply) and `gate`'s decisions. The
//! Workers shell: `http` (one handler per endpoint), `runtime`, and `gate`'s Durable Objects.

pub mod browser;
pub mod config;
pub mod confirm;
pub mod demo;
pub mod email;
pub mod error;
pub mod gate;
pub mod http;
pub mod log;
pub mod mailbox;
pub mod redact;
pub mod request_id;
pub mod runtime;
pub mod ses;
pub mod signup;
pub mod status_token;
pub mod turnstile;
pub mod utc;

pub use gate::ses_gate::SesGate;
pub use gate::ses_sender::SesSender;

#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    Ok(http::handle(req, env).await)
}
