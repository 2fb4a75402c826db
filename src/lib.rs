//! signup-verify: the edge endpoint behind signup forms. `POST /signup` takes an email address,
//! and the `SesGate` Durable Object admits it, queues it if it must, and sends it an Amazon SES
//! custom verification email, at most one SES call per `GATE_INTERVAL_MS` across all isolates.
//!
//! This crate is the Workers shell only: `http` (one handler per endpoint), `runtime` (the
//! runtime behind the gate's ports), `outbound` (every request to another service, under a
//! timeout that aborts it), `log` (writing the lines), and `gate`'s Durable Object, SQLite
//! store, clients and SES wire code. Every decision is in the pure crates:
//! `signup_verify_domain`, `signup_verify_ses`, `signup_verify_gate` and `signup_verify_web`.

pub mod gate;
pub mod http;
pub mod log;
pub mod outbound;
pub mod runtime;

pub use gate::ses_gate::SesGate;

#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    Ok(http::handle(req, env).await)
}
